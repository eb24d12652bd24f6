#!/usr/bin/env bash
# Install Debian's prometheus package (provides promtool) unless promtool is
# already on PATH. The packaged prometheus service is never left running.
# Usage: scripts/install-prometheus.sh   (idempotent; needs root or sudo;
#   prints the promtool and prometheus versions)
set -euo pipefail

SUDO=""
[[ "$(id -u)" == 0 ]] || SUDO="sudo"
POLICY=/usr/sbin/policy-rc.d

# pids of processes named prometheus (no procps needed)
prometheus_pids() {
    local d
    for d in /proc/[0-9]*; do
        [[ "$(cat "$d/comm" 2>/dev/null)" == prometheus ]] && echo "${d#/proc/}"
    done
    return 0
}

cleanup() {
    # Restore the host's policy-rc.d (or remove ours).
    if [[ -n "${SAVED_POLICY:-}" ]]; then
        $SUDO mv -f "$SAVED_POLICY" "$POLICY"
    else
        $SUDO rm -f "$POLICY"
    fi
    if [[ -d /run/systemd/system ]]; then
        $SUDO systemctl stop prometheus.service 2>/dev/null || true
        $SUDO systemctl disable prometheus.service 2>/dev/null || true
    fi
    local pid
    for pid in $(prometheus_pids); do
        if [[ "$BEFORE" != *" $pid "* ]]; then
            echo "install-prometheus: stopping prometheus (pid $pid) started by the install" >&2
            $SUDO kill -TERM "$pid" 2>/dev/null || true
        fi
    done
}

if ! command -v promtool >/dev/null 2>&1; then
    BEFORE=" $(prometheus_pids | tr '\n' ' ') "
    # Without systemd, the package's postinst runs /etc/init.d/prometheus
    # (which starts a daemon and fails the install); a policy-rc.d that exits
    # 101 forbids that. Swap ours in for the duration of the install.
    SAVED_POLICY=""
    if [[ -e "$POLICY" ]]; then
        SAVED_POLICY="$(mktemp)"
        $SUDO cp -a "$POLICY" "$SAVED_POLICY"
    fi
    trap cleanup EXIT
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 0755 "$POLICY"

    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

promtool --version 2>&1 | sed -n 1p
if command -v prometheus >/dev/null 2>&1; then prometheus --version 2>&1 | sed -n 1p; fi
