#!/usr/bin/env bash
# Proves the image built by build.sh: its layers are unpacked from the OCI layout buildah
# pushes (as a runtime would see them, not the folder it was built from) and every binary
# runs from that root filesystem under chroot as the image's user: `--version` and
# `--check-config` for all, then inventory-aggregator against the test broker and registry
# until /readyz answers 200. Containers cannot run on these machines (crun cannot set
# rlimits here), so chroot is the runtime.
#   check.sh IMAGE   (BRIDGE_TEST_BOOTSTRAP and BRIDGE_TEST_REGISTRY: the test stack)
# shellcheck source=../local/lib.sh
source "$(dirname "$0")/../local/lib.sh"

image="${1:?usage: check.sh IMAGE}"
(( EUID == 0 )) || die "chroot needs root: run make test-image as root"
: "${BRIDGE_TEST_BOOTSTRAP:?the test broker (deploy/local/test-stack.sh sets it)}"
: "${BRIDGE_TEST_REGISTRY:?the test registry (deploy/local/test-stack.sh sets it)}"
work="$(mktemp -d /tmp/bridge-image-check-XXXXXX)"
pid=""
cleanup() {
  if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { printf '[image-check] FAIL: %s\n' "$*" >&2; exit 1; }

buildah push --quiet "$image" "oci:$work/oci:check" >/dev/null
rootfs="$work/rootfs"
mkdir -p "$rootfs"
python3 - "$work/oci" "$rootfs" <<'EOF'
import json, sys, tarfile, pathlib
layout, rootfs = pathlib.Path(sys.argv[1]), sys.argv[2]
blob = lambda digest: layout / "blobs" / digest.split(":")[0] / digest.split(":")[1]
index = json.loads((layout / "index.json").read_text())
manifest = json.loads(blob(index["manifests"][0]["digest"]).read_text())
config = json.loads(blob(manifest["config"]["digest"]).read_text())
for layer in manifest["layers"]:
    with tarfile.open(blob(layer["digest"])) as tar:
        tar.extractall(rootfs, filter="fully_trusted")
c = config["config"]
(pathlib.Path(rootfs).parent / "config.json").write_text(json.dumps(c))
print(f"[image-check] {len(manifest['layers'])} layer(s); user {c.get('User')}; "
      f"labels {sorted(c.get('Labels', {}))}")
EOF
user="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["User"])' "$work/config.json")"
[[ "$user" == 65532:65532 ]] || fail "the image runs as '$user', not the non-root 65532"
python3 - "$work/config.json" <<'EOF' || fail "OCI labels missing"
import json, sys
labels = json.load(open(sys.argv[1])).get("Labels", {})
for key in ("version", "revision", "source", "created"):
    assert labels.get(f"org.opencontainers.image.{key}"), key
EOF
[[ -s "$rootfs/etc/ssl/certs/ca-certificates.crt" ]] || fail "no CA bundle in the image"

in_image() { chroot --userspec=65532:65532 "$rootfs" /usr/local/bin/"$@"; }

# A configuration as a mounted ConfigMap would hold it, inside the root filesystem.
mkdir -p "$rootfs/etc/bridge" "$rootfs/var/lib/bridge/check"
chown 65532:65532 "$rootfs/var/lib/bridge/check"
http_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat >"$rootfs/etc/bridge/inventory-aggregator.toml" <<EOF
[kafka]
bootstrap_servers = "$BRIDGE_TEST_BOOTSTRAP"
[registry]
url = "$BRIDGE_TEST_REGISTRY"
[http]
listen = "127.0.0.1:$http_port"
[processor]
state_dir = "/var/lib/bridge/check"
EOF

for b in order-ingest inventory-aggregator erp-writer magento-writer reconciler bridgectl; do
  out="$(in_image "$b" --version)" || fail "$b --version did not run from the image"
  [[ "$out" == "$b "* ]] || fail "$b --version printed '$out'"
  echo "[image-check] $out"
done
in_image inventory-aggregator --check-config --config /etc/bridge/inventory-aggregator.toml ||
  fail "inventory-aggregator --check-config"
# A value out of bounds (from the environment, as a Deployment would set it) is refused.
if BRIDGE__PROCESSOR__COMMIT_INTERVAL_MS=5 in_image inventory-aggregator --check-config \
  --config /etc/bridge/inventory-aggregator.toml 2>/dev/null; then
  fail "inventory-aggregator accepted commit_interval_ms = 5"
fi
# bridgectl from the image creates the topics the service reads (idempotent).
in_image bridgectl --bootstrap-servers "$BRIDGE_TEST_BOOTSTRAP" create-topics >/dev/null ||
  fail "bridgectl create-topics from the image against the test broker"

chroot --userspec=65532:65532 "$rootfs" /usr/local/bin/inventory-aggregator \
  --config /etc/bridge/inventory-aggregator.toml >"$work/aggregator.log" 2>&1 &
pid=$!
deadline=$((SECONDS + 60))
until curl -fsS "http://127.0.0.1:$http_port/readyz" >/dev/null 2>&1; do
  kill -0 "$pid" 2>/dev/null || { tail -20 "$work/aggregator.log" >&2; fail "inventory-aggregator exited"; }
  (( SECONDS < deadline )) || { tail -20 "$work/aggregator.log" >&2; curl -sS "http://127.0.0.1:$http_port/readyz" >&2; fail "inventory-aggregator not ready in 60 s"; }
  sleep 0.5
done
curl -fsS "http://127.0.0.1:$http_port/healthz" >/dev/null || fail "/healthz from the image"
echo "[image-check] inventory-aggregator from the image is ready against $BRIDGE_TEST_BOOTSTRAP"
echo "[image-check] PASS: $(du -sh "$rootfs" | cut -f1) root filesystem, every binary runs from it"
