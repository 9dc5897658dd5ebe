#!/usr/bin/env bash
# One GPU session in one command: install the carried wheels, build walkback for the GPU found
# there, run tests/gpu and benchmarks/gpu.py, and leave every log under $OUT.
#
# The device machine has Python 3.12, nvcc, CuPy, PyTorch, pybind11 and scikit-build-core but
# fetches nothing: the scipy-openblas32 wheel for Python 3.12 travels in .whl/ (ignored by git),
# downloaded beforehand with
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 -d .whl scipy-openblas32==0.3.34.481.3
# Usage there:
#   bash benchmarks/gpu_device_run.sh [cuda-architecture, default 90-real]
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/walkback_gpu_out}
mkdir -p "$OUT"
ARCH=${1:-90-real}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  nvcc --version | tail -2
  python3 -c "import sys, cupy, torch; print(sys.version.split()[0], 'cupy', cupy.__version__, 'torch', torch.__version__)"
} 2>&1 | tee "$OUT/device.txt"

t0=$(date +%s)
python3 -m pip install --no-build-isolation --no-deps --no-cache-dir --target /tmp/site \
  -C "cmake.define.CMAKE_CUDA_ARCHITECTURES=$ARCH" -C build-dir=/tmp/wbbuild . \
  >"$OUT/build.log" 2>&1 || { tail -60 "$OUT/build.log"; exit 1; }
echo "build: $(($(date +%s) - t0)) s"

timeout 200 python3 -m pytest -q -p no:cacheprovider tests/gpu 2>&1 | tee "$OUT/gpu_tests.log" \
  | tail -40
timeout 90 python3 benchmarks/gpu_profile.py --out /tmp/walkback_traces 2>&1 \
  | tee "$OUT/gpu_profile.log" | tail -80
timeout 240 python3 benchmarks/gpu.py --json "$OUT/gpu_bench.json" 2>&1 \
  | tee "$OUT/gpu_bench.log" | tail -30
