#!/usr/bin/env bash
# System packages the build and the local stack need, installed when missing.
#   system.sh install   install the missing Debian packages (apt-get; sudo when not root)
#   system.sh check     print the missing ones, exit 1 if any
# librdkafka is built from source by rdkafka-sys (cmake, a C toolchain, the OpenSSL, SASL,
# curl and zlib headers); the broker's jars come through Maven and run on Java 17 (the JDK:
# `make bench` compiles its Kafka Streams peer).
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

PACKAGES=(build-essential cmake pkg-config libssl-dev libsasl2-dev libcurl4-openssl-dev
  zlib1g-dev maven openjdk-17-jdk-headless curl kcat python3 python3-venv buildah ca-certificates
  prometheus)

missing() {
  local p
  for p in "${PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || printf '%s\n' "$p"
  done
}

if ! command -v dpkg >/dev/null; then
  log "not a Debian system: make sure these (or their equivalents) are installed: ${PACKAGES[*]}"
  exit 0
fi
mapfile -t absent < <(missing)

case "${1:-install}" in
  check)
    if (( ${#absent[@]} )); then log "missing: ${absent[*]}"; exit 1; fi
    ;;
  install)
    if (( ${#absent[@]} == 0 )); then exit 0; fi
    sudo=()
    if (( EUID != 0 )); then
      command -v sudo >/dev/null || die "missing packages (${absent[*]}) and no sudo: install them as root"
      sudo=(sudo)
    fi
    log "installing: ${absent[*]}"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${absent[@]}" >/dev/null
    ;;
  *) die "usage: system.sh install|check" ;;
esac
