#!/usr/bin/env bash
# The GPU check (`fhnkit gpu-check`): every GPU path of fhnkit once, one PASS/FAIL/SKIP line per check,
# in at most 8 minutes on one H100/H200, without a network. Run from the repository root:
#   bash benchmarks/gpu_check.sh [-o gpu_check.json] [--only CHECK ...]
# fhnkit need not be installed: its sources are used from src/ with the machine's PyTorch, CuPy and numba
# (and pandas, pyarrow, pyyaml, jsonschema, tqdm, which fhnkit imports).
# Offline, what the machine lacks (Snakemake for the `pipeline` check, jsonschema) comes from a wheelhouse
# made beforehand by benchmarks/gpu_wheelhouse.sh: $FHNKIT_WHEELHOUSE (absolute, or from the repository
# root), else benchmarks/wheelhouse, when it holds wheels, is installed into a temporary folder put first
# on PYTHONPATH (removed at the end).
set -uo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
wheelhouse=${FHNKIT_WHEELHOUSE:-benchmarks/wheelhouse}
if compgen -G "$wheelhouse/*.whl" >/dev/null; then
    site=$(mktemp -d "${TMPDIR:-/tmp}/fhnkit-site.XXXXXX")
    trap 'rm -rf "$site"' EXIT
    "$python" -m pip install --quiet --no-index --no-deps --no-compile --target "$site" "$wheelhouse"/*.whl || {
        echo "gpu_check: $wheelhouse did not install for $("$python" -V); make it for this Python:" \
            "bash benchmarks/gpu_wheelhouse.sh --python X.Y" >&2
        exit 1
    }
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
    echo "gpu_check: $(compgen -G "$wheelhouse/*.whl" | wc -l) wheels of $wheelhouse installed in $site" >&2
fi
if ! "$python" -c "import fhnkit" 2>/dev/null; then
    export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
fi
timeout --signal=INT 480 "$python" -m fhnkit gpu-check "$@"
