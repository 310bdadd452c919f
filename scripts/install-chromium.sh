#!/usr/bin/env bash
# Installs Debian's `chromium` package when /usr/bin/chromium is missing, so that
# scripts/check-report.sh and the headless test in journal/report/tests/report_html.rs can
# render a report page. Idempotent: does nothing when chromium is already there.
# Needs root (or sudo) and apt; prints every step it takes.
set -euo pipefail

if [[ -x /usr/bin/chromium ]]; then
    echo "install-chromium: /usr/bin/chromium is present: $(/usr/bin/chromium --version 2>/dev/null || echo 'version unknown')"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-chromium: apt-get not found; install chromium with your system's package manager" >&2
    exit 1
fi

sudo=""
if [[ "$(id -u)" != 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo="sudo"
    else
        echo "install-chromium: not root and no sudo; run as root: apt-get install -y chromium" >&2
        exit 1
    fi
fi

echo "install-chromium: /usr/bin/chromium missing; running: ${sudo:+$sudo }apt-get update"
$sudo apt-get update
echo "install-chromium: running: ${sudo:+$sudo }apt-get install -y chromium"
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y chromium

if [[ ! -x /usr/bin/chromium ]]; then
    echo "install-chromium: apt-get finished but /usr/bin/chromium is still missing" >&2
    exit 1
fi
echo "install-chromium: installed $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
