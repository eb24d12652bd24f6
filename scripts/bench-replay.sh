#!/usr/bin/env bash
# End-to-end replay throughput: times `recall-radar replay --output /dev/null INPUT` RUNS times
# (default 5) on
#   (a) the NHTSA file, decompressed to a temp file first so gzip is not measured, and
#   (b) a generated file of GEN_EVENTS events (default 1,000,000, seed 7), written with
#       `recall-radar generate` and replayed with config/synthetic.toml,
# and prints median, min and max of wall time and of events/s. Replay is single-threaded.
#
# usage: scripts/bench-replay.sh [RUNS]
# env:   GEN_EVENTS (1000000), GEN_SEED (7), WARMUP (1 untimed run per input to warm the page
#        cache; 0 turns it off), KEEP_TMP=1 keeps the temp dir, TMPDIR as usual.
set -euo pipefail

RUNS=${1:-5}
GEN_EVENTS=${GEN_EVENTS:-1000000}
GEN_SEED=${GEN_SEED:-7}
WARMUP=${WARMUP:-1}
if ! [[ $RUNS =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [RUNS]  (RUNS a positive integer, default 5)" >&2
    exit 2
fi

cd "$(dirname "$0")/.."
REPO=$(pwd)
NHTSA_GZ=data/nhtsa/events-ford-toyota.jsonl.gz

echo "== cargo build --release" >&2
cargo build --release >&2
target_dir=$(cargo metadata --no-deps --format-version 1 |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
BIN="$target_dir/release/recall-radar"
[[ -x $BIN ]] || { echo "no binary at $BIN" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-replay.XXXXXX")
cleanup() { if [[ ${KEEP_TMP:-0} == 1 ]]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi; }
trap cleanup EXIT

inputs=()
labels=()

echo "== decompressing $NHTSA_GZ" >&2
gzip -dc "$NHTSA_GZ" >"$tmp/nhtsa.jsonl"
inputs+=("$tmp/nhtsa.jsonl")
labels+=("nhtsa ($(wc -l <"$tmp/nhtsa.jsonl") lines)")

gen_note="generated file replayed with --config config/synthetic.toml (its routine contact reasons in a tag class, as a deployment would configure)"
gen="$tmp/generated.jsonl"
echo "== recall-radar generate --events $GEN_EVENTS --seed $GEN_SEED" >&2
"$BIN" generate --events "$GEN_EVENTS" --seed "$GEN_SEED" --output "$gen" >&2
inputs+=("$gen")
labels+=("generated seed $GEN_SEED ($(wc -l <"$gen") lines, $(($(stat -c %s "$gen") / 1048576)) MiB)")

# One replay; prints "wall_seconds events reported_events_per_s".
run_once() {
    local input=$1 err=$tmp/stderr start end
    start=$(date +%s%N)
    local config=()
    [[ $input == "$gen" ]] && config=(--config "$REPO/config/synthetic.toml")
    if ! RUST_LOG=warn "$BIN" replay "${config[@]}" --output /dev/null "$input" 2>"$err"; then
        echo "replay of $input failed:" >&2
        cat "$err" >&2
        exit 1
    fi
    end=$(date +%s%N)
    local line
    line=$(grep -m1 '^replayed ' "$err") || { echo "no summary line from replay:" >&2; cat "$err" >&2; exit 1; }
    # replayed N events from M lines in Xs (Y events/s); ...
    awk -v ns=$((end - start)) '{
        sub(/^replayed /, ""); n = $1; y = $8; sub(/^\(/, "", y)
        printf "%.6f %d %s\n", ns / 1e9, n, y
    }' <<<"$line"
}

results=$tmp/results
: >"$results"
for i in "${!inputs[@]}"; do
    input=${inputs[$i]}
    label=${labels[$i]}
    if [[ $WARMUP != 0 ]]; then
        echo "-- $label: warm-up run (not counted)" >&2
        run_once "$input" >/dev/null
    fi
    for ((r = 1; r <= RUNS; r++)); do
        m=$(run_once "$input")
        echo "-- $label: run $r/$RUNS: wall ${m%% *}s (events, replay's own events/s: ${m#* })" >&2
        printf '%s\t%s\n' "$label" "$m" >>"$results"
    done
done

echo
echo "recall-radar replay --output /dev/null INPUT, $RUNS runs per input (single thread; $(nproc) CPUs; load avg $(cut -d' ' -f1-3 /proc/loadavg))"
python3 - "$results" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, rest = line.rstrip("\n").split("\t")
    wall, events, reported = rest.split()
    rows.setdefault(label, []).append((float(wall), int(events), float(reported)))
head = ("input", "events", "runs", "wall median s", "wall min s", "wall max s",
        "events/s median", "events/s min", "events/s max", "replay-reported ev/s median")
table = []
for label, rs in rows.items():
    walls = [w for w, _, _ in rs]
    rates = [n / w for w, n, _ in rs]
    table.append((label, f"{rs[0][1]:,}", str(len(rs)),
                  f"{statistics.median(walls):.3f}", f"{min(walls):.3f}", f"{max(walls):.3f}",
                  f"{statistics.median(rates):,.0f}", f"{min(rates):,.0f}", f"{max(rates):,.0f}",
                  f"{statistics.median(r for _, _, r in rs):,.0f}"))
widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(head)]
fmt = lambda r: "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) + " |"
print(fmt(head))
print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
for r in table:
    print(fmt(r))
print("events/s = events in the summary line / wall time of the whole process (start-up, reading, "
      "decode, engine, alert JSON to /dev/null); the last column is replay's own figure "
      "(its timer, excluding process start-up and exit).")
EOF
if [[ -n $gen_note ]]; then
    echo "$gen_note"
fi
