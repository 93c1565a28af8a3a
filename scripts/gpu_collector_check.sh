#!/usr/bin/env bash
# Run the accelerator collector on a real GPU host once: print the snapshot it takes and what
# collecting costs, through NVML first and then through the nvidia-smi fallback alone.
# Read-only and idempotent: it sends nothing anywhere (no EDGE_API_URL needed).
#
#   scripts/gpu_collector_check.sh            # uses python3 with pydantic, httpx, nvidia-ml-py
#   PYTHON=.venv/bin/python scripts/gpu_collector_check.sh
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: scripts/gpu_collector_check.sh [--help]

Runs the accelerator collector once on this host: nvidia-smi -L, REPEAT snapshots through
NVML (the last one as JSON) with what collecting costs, then REPEAT through the nvidia-smi
fallback alone. Read-only; sends nothing (no EDGE_API_URL needed).
Environment: PYTHON (default python3; needs pydantic, httpx, nvidia-ml-py), REPEAT (default 20).
USAGE
}

case "${1:-}" in
    -h | --help) usage; exit 0 ;;
    "") ;;
    *) echo "gpu_collector_check.sh: unexpected argument '$1' (see --help)" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
REPEAT=${REPEAT:-20}
export PYTHONPATH="services${PYTHONPATH:+:$PYTHONPATH}"

echo ">> host: $(hostname), $("$PYTHON" --version 2>&1)"
if command -v nvidia-smi >/dev/null; then
    echo ">> nvidia-smi -L"
    nvidia-smi -L
else
    echo ">> nvidia-smi is not on PATH: the collector will report a CPU-only runtime"
fi
"$PYTHON" -c 'import pydantic, httpx' 2>/dev/null || {
    echo "missing pydantic/httpx for $PYTHON: pip install 'pydantic>=2.9' httpx nvidia-ml-py" >&2
    exit 1
}
"$PYTHON" -c 'import pynvml' 2>/dev/null || echo ">> pynvml not importable: expect the nvidia-smi fallback"

echo ">> collector as a notebook runs it (NVML first), $REPEAT snapshots, the last one as JSON"
"$PYTHON" -m ca4_producer snapshot --repeat "$REPEAT" --json

echo ">> the nvidia-smi fallback alone (pynvml hidden), $REPEAT snapshots"
"$PYTHON" - "$REPEAT" <<'PY'
import sys

sys.modules["pynvml"] = None  # what a host without nvidia-ml-py looks like
from ca4_producer.__main__ import main

sys.exit(main(["snapshot", "--repeat", sys.argv[1]]))
PY
