#!/usr/bin/env bash
# Fuzz the contact-event decoder (fuzz/fuzz_targets/decode.rs) with cargo-fuzz and libFuzzer.
#
#   scripts/fuzz.sh [SECONDS] [-- LIBFUZZER_ARGS...]     (SECONDS defaults to 60)
#
# Works on the stable toolchain: cargo-fuzz passes nightly-only flags (-Zsanitizer, sancov), which
# RUSTC_BOOTSTRAP=1 lets stable rustc accept. Installs cargo-fuzz (`cargo install --locked`) when
# `cargo fuzz` is missing.
#
# Corpus: libFuzzer writes new inputs only to the FIRST corpus directory and just reads the others,
# so the run uses fuzz/corpus/decode (grown across runs, gitignored) first and the tracked seeds in
# fuzz/seeds/decode second; the seeds are never modified. -keep_seed=1 keeps every seed in play
# even when it adds no coverage over smaller inputs: the boundary timestamps (years 0000 and 9999)
# would otherwise be dropped at startup, and they are the short path to date-range bugs.
#
# The corpus only grows; a corpus of thousands of near-duplicates spreads libFuzzer's effort thin,
# so `rm -rf fuzz/corpus` (or `cargo fuzz cmin`) now and then and start again from the seeds.
#
# Exits non-zero when the target crashes (panic, failed invariant, sanitizer report, timeout, OOM)
# and prints where the crashing input was saved (fuzz/artifacts/decode/, gitignored) and how to
# replay it. libFuzzer stops at the first crash. Arguments after `--` go to libFuzzer as they are.
#
# Environment:
#   FUZZ_SANITIZER  address (default), leak, none, ...: cargo fuzz's --sanitizer
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

duration=60
if [[ $# -gt 0 && "$1" != "--" ]]; then
    duration="$1"
    shift
fi
if [[ "${1:-}" == "--" ]]; then
    shift
fi
if ! [[ "$duration" =~ ^[0-9]+$ ]] || [[ "$duration" -lt 1 ]]; then
    echo "usage: scripts/fuzz.sh [SECONDS] [-- LIBFUZZER_ARGS...]" >&2
    exit 2
fi

target=decode
sanitizer="${FUZZ_SANITIZER:-address}"
fuzz_dir="$root/fuzz"
corpus="$fuzz_dir/corpus/$target"
seeds="$fuzz_dir/seeds/$target"
artifacts="$fuzz_dir/artifacts/$target"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== cargo fuzz not found: cargo install cargo-fuzz --locked"
    t0=$SECONDS
    cargo install cargo-fuzz --locked
    echo "== installed $(cargo fuzz --version) in $((SECONDS - t0)) s"
fi

# Fuzz against exactly the dependency versions the daemon ships with: start from the root lock
# (cargo then only adds libfuzzer-sys and its few dependencies). fuzz/Cargo.lock is gitignored.
cp "$root/Cargo.lock" "$fuzz_dir/Cargo.lock"

if [[ "$sanitizer" == address ]]; then
    # With RUSTC_BOOTSTRAP=1 cargo reports `sanitize="address"` to build scripts, and the cc crate
    # then builds the bundled C libraries (zstd, zlib, OpenSSL) with -fsanitize=address too.
    # librdkafka's own configure script links test programs against that libzstd.a without the
    # ASan runtime and fails ("undefined reference to __asan_report_load8"). The fuzzed code is
    # pure Rust (serde_json and the decoder), so leave the C code uninstrumented.
    export CFLAGS="${CFLAGS:+$CFLAGS }-fno-sanitize=address"
    export CXXFLAGS="${CXXFLAGS:+$CXXFLAGS }-fno-sanitize=address"
fi

mkdir -p "$corpus" "$artifacts"

echo "== building fuzz target '$target' (sanitizer: $sanitizer, toolchain: $(rustc --version))"
t0=$SECONDS
cargo fuzz build --fuzz-dir "$fuzz_dir" --sanitizer "$sanitizer" "$target"
echo "== built in $((SECONDS - t0)) s"

before="$(mktemp)"
log="$(mktemp)"
trap 'rm -f "$before" "$log"' EXIT
list_artifacts() { find "$artifacts" -maxdepth 1 -type f -printf '%f\n' | sort; }
list_artifacts >"$before"

cmd=(cargo fuzz run --fuzz-dir "$fuzz_dir" --sanitizer "$sanitizer" "$target" "$corpus" "$seeds"
    -- -max_total_time="$duration" -dict="$fuzz_dir/$target.dict" -keep_seed=1 -print_final_stats=1
    "$@")
echo "== RUSTC_BOOTSTRAP=1 ${cmd[*]}"
set +e
"${cmd[@]}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

new_artifacts=$(list_artifacts | comm -13 "$before" -)
fstat() { sed -n "s/^stat::$1:[[:space:]]*//p" "$log" | tail -n 1; }
execs=$(fstat number_of_executed_units)
rate=$(fstat average_exec_per_sec)
if [[ -z "$execs" ]]; then
    # With -fork=N libFuzzer prints no final stats; use its last line "#N: cov: ... time: Ts ...".
    last=$(grep -E '^#[0-9]+: cov:' "$log" | tail -n 1 || true)
    execs=$(sed -nE 's/^#([0-9]+):.*/\1/p' <<<"$last")
    secs=$(sed -nE 's/.* time: ([0-9]+)s.*/\1/p' <<<"$last")
    if [[ -n "$execs" && -n "$secs" && "$secs" -gt 0 ]]; then
        rate=$((execs / secs))
    fi
fi

echo "== summary"
echo "   executions:       ${execs:-?}"
echo "   execs per second: ${rate:-?}"
echo "   new units added:  $(fstat new_units_added)"
echo "   peak RSS (MB):    $(fstat peak_rss_mb)"
echo "   corpus:           $(find "$corpus" -type f | wc -l) files in ${corpus#"$root"/} (+ $(find "$seeds" -type f | wc -l) seeds)"

if [[ -n "$new_artifacts" ]]; then
    echo "== CRASH: the target failed; inputs saved to:"
    while IFS= read -r f; do echo "   ${artifacts#"$root"/}/$f"; done <<<"$new_artifacts"
    echo "   replay one: fuzz/target/x86_64-unknown-linux-gnu/release/$target ${artifacts#"$root"/}/<file>"
    echo "   (or: CFLAGS=-fno-sanitize=address CXXFLAGS=-fno-sanitize=address RUSTC_BOOTSTRAP=1 \\"
    echo "        cargo fuzz run --fuzz-dir fuzz $target ${artifacts#"$root"/}/<file>)"
    [[ "$status" -ne 0 ]] || status=1
    exit "$status"
fi
if [[ "$status" -ne 0 ]]; then
    echo "== FAILED: cargo fuzz exited with status $status (no crash input was saved)"
    exit "$status"
fi
echo "== OK: no crash in ${duration} s"
