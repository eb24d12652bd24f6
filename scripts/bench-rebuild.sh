#!/usr/bin/env bash
# The rebuild benchmark: how long kafka::rebuild::rebuild takes to rebuild one partition's windows
# from N events (tansu on loopback, default detector settings); prints a Markdown table of the
# median seconds, events/s, live keys and peak RSS per size.
# Usage: bash scripts/bench-rebuild.sh [--sizes 100000,1000000] [--runs 3]   (--help: options)
#   Both default sizes take a few minutes on 2 cores, most of it producing the input.
#   Runs `cargo bench --bench rebuild -- ARGS` (the bench profile: release, debug info).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
for arg in "$@"; do
    case "$arg" in -h|--help) exec cargo bench --quiet --bench rebuild -- --help ;; esac
done
# The bench starts tansu (scripts/start-tansu.sh installs it too); install it up front so a
# failure shows before the build.
bash scripts/install-tansu.sh >/dev/null
exec cargo bench --bench rebuild -- "$@"
