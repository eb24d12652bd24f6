#!/usr/bin/env bash
# Stop a broker started by scripts/start-tansu.sh STATE_DIR.
# Usage: scripts/stop-tansu.sh STATE_DIR   (no-op if it is not running; SIGTERM,
#   SIGKILL after 20 s. tansu takes ~2 s to exit, ~7 s after group consumers)
set -euo pipefail

DIR="${1:?usage: $0 STATE_DIR}"
PIDFILE="$DIR/tansu.pid"
[[ -f "$PIDFILE" ]] || exit 0
PID="$(cat "$PIDFILE")"
# Only signal the pid if it still is tansu (guards against pid reuse).
if [[ "$(cat "/proc/$PID/comm" 2>/dev/null)" == tansu ]]; then
    kill -TERM "$PID" 2>/dev/null || true
    for _ in $(seq 200); do
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$PID" 2>/dev/null || true
fi
rm -f "$PIDFILE"
