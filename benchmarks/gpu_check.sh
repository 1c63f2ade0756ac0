#!/usr/bin/env bash
# One command on a bare GPU box without internet (docs/gpu.md#a-bare-gpu-box-without-internet):
#   benchmarks/gpu_check.sh           installs .whl/*.whl (`make gpu-wheels`) beside the box's packages, imports
#                                     every module the run needs (with versions), prints the environment and the attention `auto` chooses, runs `pytest -m gpu`, then
#                                     benchmarks/gpu_throughput.py, and prints one summary table (also written to
#                                     $OUT/gpu_check.txt when OUT is set, with the logs beside it). About 6 minutes on
#                                     one H200; every stage is cut off so that the whole ends within 8.
#   benchmarks/gpu_check.sh --tiny    the same steps on CPU with a tiny model: checks the script, measures nothing.
# PYTHON (default python3) runs everything; GPU_WHEELS_DIR (default .whl) holds the wheels.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WHEELS=${GPU_WHEELS_DIR:-.whl}
BUDGET=${GPU_CHECK_SECONDS:-470}
TINY=()
[ "${1:-}" = "--tiny" ] && TINY=(--tiny --steps 4 --micro-batch 2 --max-length 512)
WORK=$(mktemp -d)
LOGS=${OUT:-$WORK}
STARTED=$SECONDS
FAILED=""

if compgen -G "$WHEELS/*.whl" >/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" \
        "$WHEELS"/*.whl || exit 1
    export PYTHONPATH="$WORK/site:$PWD"
else
    export PYTHONPATH="$PWD"
fi
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1

echo "== imports"
"$PYTHON" benchmarks/gpu_report.py imports || exit 1
"$PYTHON" benchmarks/gpu_report.py env --json "$WORK/env.json" || exit 1

echo "== pytest -m gpu"
timeout 210 "$PYTHON" -m pytest -o addopts="" -m gpu -q -p no:cacheprovider tests/test_gpu.py --junitxml "$WORK/pytest.xml" \
    2>&1 | tee "$LOGS/pytest.log" || FAILED="$FAILED pytest"

echo "== benchmarks/gpu_throughput.py"
left=$((BUDGET - (SECONDS - STARTED) - 10))
timeout "$left" "$PYTHON" benchmarks/gpu_throughput.py "${TINY[@]}" --json "$WORK/throughput.json" --logs "$LOGS" \
    || FAILED="$FAILED gpu_throughput.py"

echo "== summary"
"$PYTHON" benchmarks/gpu_report.py summary --env "$WORK/env.json" --pytest "$WORK/pytest.xml" \
    --throughput "$WORK/throughput.json" --seconds $((SECONDS - STARTED)) ${OUT:+--out "$OUT/gpu_check.txt"}
[ -z "$FAILED" ] || { echo "gpu_check.sh: failed:$FAILED (logs in $LOGS)"; exit 1; }
