#!/usr/bin/env bash
# The GPU check (`fhnkit gpu-check`): every GPU path of fhnkit once, one PASS/FAIL/SKIP line per check,
# in at most 8 minutes on one H100/H200, without a network. Run from the repository root:
#   bash benchmarks/gpu_check.sh [-o gpu_check.json] [--only CHECK ...]
# fhnkit need not be installed: its sources are used from src/ with the machine's PyTorch, CuPy and numba
# (and pandas, pyarrow, pyyaml, jsonschema, tqdm, which fhnkit imports).
set -uo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if ! "$python" -c "import fhnkit" 2>/dev/null; then
    export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
fi
exec timeout --signal=INT 480 "$python" -m fhnkit gpu-check "$@"
