#!/bin/bash
# GPU benchmarks (docs/BENCHMARKS.md, section GPU), on a machine with an NVIDIA GPU and the
# CUDA toolkit: the device's limits, then exact search of 1M x 128 and 1M x 768 on the GPU and
# the CPU for batches of 1, 100 and 10,000 queries. Writes bench/results/gpu-*.json.
# Environment: OMEN_BUILD (default build-bench), OMEN_SCRATCH (default data/scratch).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${OMEN_BUILD:-$ROOT/build-bench}
SCRATCH=${OMEN_SCRATCH:-$ROOT/data/scratch}
RES=$ROOT/bench/results
NVCC=${NVCC:-/usr/local/cuda/bin/nvcc}
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" "$ROOT" >/dev/null
ninja -C "$BUILD" bench/omendb-bench-gpu >/dev/null
mkdir -p "$SCRATCH" "$RES"
"$NVCC" -O2 -gencode arch=compute_90,code=sm_90 "$ROOT/bench/gpu_limits.cu" -lcublas \
	-o "$BUILD/bench/gpu_limits"
"$BUILD/bench/gpu_limits" | tee "$RES/gpu-limits.json"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv | tee "$RES/gpu-smi.txt" || true
for dim in 128 768; do
	"$BUILD/bench/omendb-bench-gpu" "$SCRATCH/gpu-bench" --n 1000000 --dim "$dim" --rounds 5 |
		tee "$RES/gpu-1000000-$dim.json"
done
