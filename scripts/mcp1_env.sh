#!/bin/sh
# A separate environment with mcp 1.x (the shared .venv keeps mcp 2.x) for tests/mcp/test_mcp_v1.py.
#   scripts/mcp1_env.sh [DIR]     (default: .venv-mcp1; about 30 s with a warm pip cache)
#   MCP1_PYTHON=DIR/bin/python python -m pytest tests/mcp/test_mcp_v1.py
# Everything but mcp is pinned by requirements.lock; chatobs itself is imported from src/ (PYTHONPATH).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$here/.venv-mcp1}
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
grep -v -i -E '^mcp(-types)?==' "$here/requirements.lock" > "$constraints"
${PYTHON:-python3} -m venv "$dir"
"$dir/bin/python" -m pip install --quiet --disable-pip-version-check -c "$constraints" \
    'mcp==1.30.0' opentelemetry-sdk opentelemetry-exporter-otlp-proto-http pydantic-settings pyyaml detect-secrets
"$dir/bin/python" -c 'import importlib.metadata as m; print("mcp", m.version("mcp"), "in", __import__("sys").prefix)'
