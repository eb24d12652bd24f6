#!/usr/bin/env bash
# The pipeline benchmark: engine vs parse-only, the Kafka daemon vs a raw consumer, alert latency
# and memory per key, on the same generated input; prints a Markdown table of medians with the
# targets and PASS/MISS, and writes it as JSON to target/bench-results.json.
# Usage: bash scripts/bench.sh [--quick] [--runs N] [--phases engine,kafka,latency,memory] ...
#   (--help lists every option). Full sizes take ~8-10 minutes on 2 cores; --quick about 1.
#   Runs `cargo bench --bench pipeline -- ARGS` (the bench profile: release, debug info).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
GIVEN_BROKER=
for arg in "$@"; do
    case "$arg" in
        -h|--help) exec cargo bench --quiet --bench pipeline -- --help ;;
        --brokers|--brokers=*) GIVEN_BROKER=1 ;;
    esac
done
# The Kafka phases start tansu unless given --brokers (scripts/start-tansu.sh installs it too);
# install it up front so a failure shows before the long phases.
[[ -n "$GIVEN_BROKER" ]] || bash scripts/install-tansu.sh >/dev/null
exec cargo bench --bench pipeline -- "$@"
