#!/usr/bin/env bash
# Start an in-memory tansu broker on 127.0.0.1 in the background.
# Usage: scripts/start-tansu.sh STATE_DIR [PORT]
#   PORT defaults to a free port. Writes STATE_DIR/tansu.{pid,port,log} and
#   prints the bootstrap address (127.0.0.1:PORT) on stdout once the port
#   accepts connections. Fails (printing the log) after 30 s.
#   Installs tansu via scripts/install-tansu.sh unless TANSU_BIN is set.
#   TANSU_STORAGE=memory (the default) keeps the log in memory; TANSU_STORAGE=sqlite keeps it in
#   STATE_DIR/tansu.db, which needs a tansu built with SQLite, given as TANSU_BIN (`cargo install
#   tansu --version 0.6.0 --locked --no-default-features --features postgres,libsql,dynostore`).
# Stop with: scripts/stop-tansu.sh STATE_DIR
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${1:?usage: $0 STATE_DIR [PORT]}"
PORT="${2:-}"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"

TANSU="${TANSU_BIN:-$("$REPO/scripts/install-tansu.sh")}"
if [[ -z "$PORT" ]]; then
    PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
fi

if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    echo "start-tansu: port $PORT is already in use" >&2; exit 1
fi

URL="tcp://127.0.0.1:$PORT"
case "${TANSU_STORAGE:-memory}" in
    memory) STORAGE="memory://tansu/" ;;
    # tansu joins the URL's path to its working directory without its first slash: hence four.
    sqlite) STORAGE="sqlite:///$DIR/tansu.db" ;;
    *) echo "start-tansu: TANSU_STORAGE must be memory or sqlite, not ${TANSU_STORAGE}" >&2; exit 1 ;;
esac
# tansu also reads these from the environment (RUST_LOG=info logs ~4000 lines/s); keep stray values out.
env -u CLUSTER_ID -u SCHEMA_REGISTRY -u OTEL_EXPORTER_OTLP_ENDPOINT -u RUST_LOG \
    "$TANSU" broker --listener-url "$URL" --advertised-listener-url "$URL" \
    --storage-engine "$STORAGE" </dev/null >"$DIR/tansu.log" 2>&1 &
PID=$!
echo "$PID" >"$DIR/tansu.pid"
echo "$PORT" >"$DIR/tansu.port"

for _ in $(seq 300); do
    if ! kill -0 "$PID" 2>/dev/null; then
        echo "start-tansu: tansu (pid $PID) exited; log:" >&2; cat "$DIR/tansu.log" >&2
        rm -f "$DIR/tansu.pid"; exit 1
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        echo "127.0.0.1:$PORT"; exit 0
    fi
    sleep 0.1
done
echo "start-tansu: port $PORT not accepting connections after 30 s; log:" >&2
cat "$DIR/tansu.log" >&2
kill -KILL "$PID" 2>/dev/null || true
rm -f "$DIR/tansu.pid"
exit 1
