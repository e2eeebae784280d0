#!/usr/bin/env bash
# The checks that need a CUDA device, in one run (about 4 minutes on an H200 with cupy):
# the tests marked gpu (every primitive, fused cases, CUDA graphs, GOMD CPU/GPU agreement),
# the GOMD benchmark on the GPU, and one model day with --backend gpu. Logs go to $OUT (or
# ./gpu-check). Usage: bash bench/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-check}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi -L || true
timeout 150 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_kernels_gpu.py \
    tests/test_gomd_jit.py > "$out/pytest_gpu.log" 2>&1
echo "pytest -m gpu: rc $?"; tail -5 "$out/pytest_gpu.log"
timeout 240 python3 -m bench.gomd --backend gpu --steps 7 --out "$out/bench.jsonl" \
    > "$out/bench.log" 2>&1
echo "bench.gomd --backend gpu: rc $?"; tail -5 "$out/bench.log"
timeout 90 python3 -m cases.gomd --backend gpu --days 1 --quiet --no-plots \
    --out "$out/day" > "$out/day.log" 2>&1
echo "one model day on the GPU: rc $?"; tail -4 "$out/day.log"
rm -f "$out/day/gomd.nc" "$out/day/checkpoint.npz"
