#!/usr/bin/env bash
# Installs the Python `prometheus_client` package when `python3 -c 'import prometheus_client'`
# fails, so that the metrics test in tests/live.rs can parse the engine's /metrics text
# with the reference parser (it skips, saying why, without it). Idempotent: does nothing
# when the import works. Needs python3 with pip; prints every step it takes.
set -euo pipefail

if ! command -v python3 >/dev/null 2>&1; then
    echo "install-prometheus-client: python3 not found; install Python 3 and pip, then: python3 -m pip install prometheus_client" >&2
    exit 1
fi

if python3 -c 'import prometheus_client' >/dev/null 2>&1; then
    echo "install-prometheus-client: prometheus_client is present: $(python3 -c 'import prometheus_client, importlib.metadata as m; print(m.version("prometheus_client"))' 2>/dev/null || echo 'version unknown')"
    exit 0
fi

echo "install-prometheus-client: prometheus_client missing; running: python3 -m pip install --quiet prometheus_client"
python3 -m pip install --quiet prometheus_client

if ! python3 -c 'import prometheus_client' >/dev/null 2>&1; then
    echo "install-prometheus-client: pip finished but python3 still cannot import prometheus_client" >&2
    exit 1
fi
echo "install-prometheus-client: installed prometheus_client $(python3 -c 'import importlib.metadata as m; print(m.version("prometheus_client"))' 2>/dev/null || true)"
