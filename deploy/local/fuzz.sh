#!/usr/bin/env bash
# Coverage-guided fuzzing of every entry point with cargo-fuzz (libFuzzer) on the stable
# toolchain (RUSTC_BOOTSTRAP=1 for its flags; no sanitizer runtime is needed: Rust code is
# memory safe, the findings are panics, overflows, huge allocations and hangs).
#   fuzz.sh RUNS [TARGET...]   each target for RUNS executions, its corpus seeded from the
#                              fixtures; prints the executions and crashes per target and
#                              fails on any crash (the input is kept in fuzz/artifacts/).
# FUZZ_PROFILE=dev builds unoptimised (a short pass: the build dominates, not the runs);
# the default is release, for long runs.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

RUNS="${1:?usage: fuzz.sh RUNS [TARGET...]}"; shift || true
FUZZ="$ROOT/fuzz"
CORPUS="$DATA_DIR/fuzz-corpus"
export RUSTC_BOOTSTRAP=1
PROFILE=()
if [[ "${FUZZ_PROFILE:-release}" == dev ]]; then PROFILE=(--dev); fi

if ! command -v cargo-fuzz >/dev/null; then
  log "installing cargo-fuzz (crates.io)"
  cargo install cargo-fuzz --locked --version 0.13.2
fi

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  mapfile -t targets < <(cd "$FUZZ" && cargo fuzz list)
fi

# Seeds: the Magento fixtures for the Magento targets, configuration and mapping files for
# the config target, the Avro samples the codec tests write for the decoder.
seed() {
  local target="$1" dir="$CORPUS/$1"
  mkdir -p "$dir"
  case "$target" in
    magento_order|magento_rest_pages)
      find "$ROOT/crates/magento/tests/fixtures/magento" -name '*.json' -exec cp {} "$dir/" \; ;;
    config_and_mapping)
      cp "$ROOT"/deploy/config/*.toml "$dir/" ;;
    webhook_signatures)
      printf 't=1700000000,v1=%064d\n{"type":"sales_order_save","data":{"value":{"entity_id":"1"}}}' 0 >"$dir/hmac" ;;
    avro_decode)
      printf '\x00\x02\x06abc' >"$dir/short" ;;
    erp_answers)
      printf '\x00\x00{"items":[{"id":"SO-1","external_ref":"WEB-1","lines":[]}],"total":1}' >"$dir/erp-sim"
      printf '\x80\x03{"id":2,"result":[{"product":1,"quantity":2.5}]}' >"$dir/tryton" ;;
  esac
}

(cd "$FUZZ" && cargo fuzz build -s none "${PROFILE[@]}" >/dev/null) \
  || die "building the fuzz targets failed"
failed=0
for target in "${targets[@]}"; do
  seed "$target"
  out="$DATA_DIR/fuzz-$target.log"
  if (cd "$FUZZ" && cargo fuzz run -s none "${PROFILE[@]}" "$target" "$CORPUS/$target" -- \
        -runs="$RUNS" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1) >"$out" 2>&1; then
    status=ok
  else
    status=CRASH; failed=1
  fi
  execs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$out" | grep -Eo '[0-9]+$' | tail -n 1)
  secs=$(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$out" | grep -Eo 'in [0-9]+' | grep -Eo '[0-9]+' | tail -n 1)
  printf 'fuzz %-22s %10s executions in %5s s  %s\n' "$target" "${execs:-0}" "${secs:-?}" "$status"
  if [[ $status != ok ]]; then tail -n 30 "$out" >&2; fi
done
exit $failed
