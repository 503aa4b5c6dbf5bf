#!/usr/bin/env bash
# `make image`: one OCI image with every service binary and bridgectl, built by buildah
# without a daemon and without pulling a base: FROM scratch plus exactly the shared
# libraries the binaries link (read from ldd), the dynamic loader, Debian's CA bundle and a
# non-root user. Prints the image id and size.
#   build.sh                 release binaries (IMAGE_PROFILE=dev: the debug ones, as built)
# Environment: IMAGE_NAME (localhost/magento-erp-bridge), IMAGE_PROFILE (release),
# IMAGE_SOURCE (the source URL label), IMAGE_ROOTFS (where the filesystem is laid out).
# shellcheck source=../local/lib.sh
source "$(dirname "$0")/../local/lib.sh"

BINARIES=(order-ingest inventory-aggregator erp-writer magento-writer reconciler bridgectl)
IMAGE_NAME="${IMAGE_NAME:-localhost/magento-erp-bridge}"
PROFILE="${IMAGE_PROFILE:-release}"
SOURCE="${IMAGE_SOURCE:-https://github.com/magento-erp-bridge/magento-erp-bridge}"
ROOTFS="${IMAGE_ROOTFS:-$DATA_DIR/image/rootfs}"
UID_GID=65532

command -v buildah >/dev/null || {
  log "installing buildah (Debian)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah ca-certificates >/dev/null
}
[[ -f /etc/ssl/certs/ca-certificates.crt ]] || die "no CA bundle: apt-get install ca-certificates"

cd "$ROOT"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
revision="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]]; then revision="$revision-dirty"; fi
export BRIDGE_REVISION="$revision"

packages=()
for b in "${BINARIES[@]}"; do packages+=(-p "$b"); done
if [[ "$PROFILE" == release ]]; then
  log "building the release binaries ($revision)"
  cargo build --release --locked "${packages[@]}"
  bin_dir="$ROOT/target/release"
else
  log "building the $PROFILE binaries ($revision)"
  cargo build --profile "$PROFILE" --locked "${packages[@]}"
  bin_dir="$ROOT/target/debug"
fi

log "laying out the root filesystem in $ROOTFS"
rm -rf "$ROOTFS"
mkdir -p "$ROOTFS"/{usr/local/bin,etc/ssl/certs,usr/lib/ssl,tmp,var/lib/bridge,etc/bridge}
chmod 1777 "$ROOTFS/tmp"
for b in "${BINARIES[@]}"; do
  # Debug sections off: backtraces keep function names, the image loses most of its size.
  objcopy --strip-debug "$bin_dir/$b" "$ROOTFS/usr/local/bin/$b"
done
# Exactly the libraries the binaries load: what ldd resolves, each under its own path.
mapfile -t libs < <(for b in "${BINARIES[@]}"; do ldd "$bin_dir/$b"; done |
  awk '/=> \// {print $3} /^[ \t]*\/[^ ]+ \(/ {print $1}' | sort -u)
for lib in "${libs[@]}"; do
  real="$(readlink -f "$lib")"
  mkdir -p "$ROOTFS$(dirname "$lib")"
  cp "$real" "$ROOTFS$lib"
done
# glibc's name service: files then DNS (Kubernetes mounts /etc/hosts and /etc/resolv.conf).
printf 'hosts: files dns\n' >"$ROOTFS/etc/nsswitch.conf"
printf 'root:x:0:0:root:/root:/sbin/nologin\nbridge:x:%d:%d:magento-erp-bridge:/var/lib/bridge:/sbin/nologin\n' \
  "$UID_GID" "$UID_GID" >"$ROOTFS/etc/passwd"
printf 'root:x:0:\nbridge:x:%d:\n' "$UID_GID" >"$ROOTFS/etc/group"
cp /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
ln -s /etc/ssl/certs/ca-certificates.crt "$ROOTFS/usr/lib/ssl/cert.pem"
ln -s /etc/ssl/certs "$ROOTFS/usr/lib/ssl/certs"
chown -R "$UID_GID:$UID_GID" "$ROOTFS/var/lib/bridge"

log "committing $IMAGE_NAME:$version-$revision"
ctr="$(buildah from scratch)"
trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
buildah copy --quiet "$ctr" "$ROOTFS/" / >/dev/null
created="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
buildah config \
  --user "$UID_GID:$UID_GID" \
  --workingdir /var/lib/bridge \
  --env PATH=/usr/local/bin \
  --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --entrypoint '[]' --cmd '["bridgectl", "--help"]' \
  --port 8080 \
  --label org.opencontainers.image.title=magento-erp-bridge \
  --label "org.opencontainers.image.description=Magento 2 / Adobe Commerce to ERP over Kafka: order-ingest, inventory-aggregator, erp-writer, magento-writer, reconciler, bridgectl" \
  --label "org.opencontainers.image.version=$version" \
  --label "org.opencontainers.image.revision=$revision" \
  --label "org.opencontainers.image.source=$SOURCE" \
  --label "org.opencontainers.image.created=$created" \
  --label org.opencontainers.image.licenses=Apache-2.0 \
  "$ctr"
buildah commit --quiet --format oci "$ctr" "$IMAGE_NAME:$version-$revision" >/dev/null
buildah tag "$IMAGE_NAME:$version-$revision" "$IMAGE_NAME:$version"
id="$(buildah inspect --type image --format '{{.FromImageID}}' "$IMAGE_NAME:$version-$revision")"
size_kib="$(du -sk "$ROOTFS" | cut -f1)"
echo "image: $IMAGE_NAME:$version-$revision (also :$version)"
echo "id:    sha256:$id"
echo "size:  $((size_kib / 1024)) MiB uncompressed ($(buildah images --format '{{.Size}}' "$IMAGE_NAME:$version-$revision" | head -1) as buildah counts it)"
echo "libs:  ${libs[*]}"
