#!/usr/bin/env bash
# One call on a lent GPU machine (see ../shared/GPU.md): install ganzoo offline, build the
# CUDA ops, run the GPU tests, the op and training benchmarks and a profile; logs and JSON
# go to $OUT (default ./gpu-out). Each step has its own time limit, so a failing step leaves
# the others' results. Usage: bash benchmarks/gpu_session.sh [steps...]
# steps: install build tests tests_sg2 tests_accel bench_ops bench_sg2 bench_sg2_cuda
#        bench_modes (eager, --compile, --cuda-graphs, both) profile profile_ref
#        profile_graphs profile_both
#        train (TRAIN_KIMG, default 20: the 64x64 auto config on shapes; grid, stats, memory)
# Issue 18's one call: BUDGET_S=450 bash benchmarks/gpu_session.sh install build bench_modes \
#   tests_accel profile_graphs bench_ops profile
set -u
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
export TORCH_EXTENSIONS_DIR=${TORCH_EXTENSIONS_DIR:-$PWD/.torch-extensions}
export GANZOO_HOME=${GANZOO_HOME:-$PWD/.ganzoo-home}
export PYTHONUNBUFFERED=1
steps=${*:-install build tests bench_ops bench_sg2 profile}
# BUDGET_S: the whole call's seconds; each step's limit is cut to what is left, and a step
# with under 20 s left is skipped, so the call ends on its own with every finished step's log.
budget=${BUDGET_S:-100000}
t_start=$(date +%s)
step() {  # step NAME LIMIT_S COMMAND...
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s)
  local left=$(( budget - (t0 - t_start) - 5 ))
  if (( left < 20 )); then echo "=== $name skipped: ${left}s left"; return; fi
  (( limit > left )) && limit=$left
  echo "=== $name (limit ${limit}s) at +$((t0 - t_start))s"
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "=== $name rc=$rc in $(( $(date +%s) - t0 ))s"
  tail -n 8 "$OUT/$name.log"
  # At most 8 files come back from the device tool: each log joins one file at once.
  { echo "##### $name rc=$rc"; cat "$OUT/$name.log"; } >> "$OUT/all-logs.txt"
  rm -f "$OUT/$name.log"
}
for s in $steps; do
  case $s in
    install) step install 120 python3 -m pip install -q --no-deps --no-build-isolation -e . ;;
    build) nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt" 2>&1
           python3 -c "import torch; print(torch.__version__, torch.version.cuda)" >> "$OUT/gpu.txt"
           step build 300 python3 -m ganzoo ops build
           step check 60 python3 -m ganzoo ops check ;;
    tests) step tests 300 python3 -m pytest -q -s --maxfail=20 -p no:cacheprovider \
             tests/test_ops_native.py tests/test_ops_reference.py \
             tests/test_stylegan2_networks.py ;;
    tests_sg2) step tests_sg2 240 python3 -m pytest -q -s -p no:cacheprovider \
             tests/test_stylegan2_networks.py tests/test_stylegan2_parity.py \
             tests/test_stylegan2_official.py ;;
    tests_accel) step tests_accel 180 python3 -m pytest -q -s -p no:cacheprovider \
             tests/test_acceleration.py tests/test_ops_library.py \
             tests/test_ops_native.py -k "cuda or graph or captured or channels_last" ;;
    bench_ops) step bench_ops 240 python3 -m pytest -q -s -p no:cacheprovider \
             benchmarks/test_ops_throughput.py -k gpu --benchmark-json="$OUT/bench_ops.json" ;;
    bench_sg2) step bench_sg2 400 python3 -m pytest -q -s -p no:cacheprovider \
             benchmarks/test_stylegan2_speed.py --benchmark-json="$OUT/bench_sg2.json" ;;
    bench_sg2_cuda) step bench_sg2_cuda 300 python3 -m pytest -q -s -p no:cacheprovider \
             benchmarks/test_stylegan2_speed.py -k cuda --benchmark-json="$OUT/bench_sg2.json" ;;
    bench_modes) step bench_modes 300 python3 -m pytest -q -s -p no:cacheprovider \
             benchmarks/test_stylegan2_speed.py -k "cuda" \
             --benchmark-json="$OUT/bench_modes.json" ;;
    profile_graphs) step profile_graphs 120 python3 benchmarks/profile_stylegan2.py \
               --impl cuda --cuda-graphs --out "$OUT/profile_graphs.txt" ;;
    profile_both) step profile_both 200 python3 benchmarks/profile_stylegan2.py \
               --impl cuda --compile --cuda-graphs --out "$OUT/profile_both.txt" ;;
    profile) step profile_cuda 200 python3 benchmarks/profile_stylegan2.py --impl cuda \
               --out "$OUT/profile_cuda.txt" ;;
    profile_ref) step profile_ref 200 python3 benchmarks/profile_stylegan2.py --impl ref \
               --out "$OUT/profile_ref.txt" ;;
    train) step train 420 python3 -m ganzoo train stylegan2-ada --data shapes --resolution 64 \
             --kimg "${TRAIN_KIMG:-20}" --tick 1 --snap 5 --device cuda --out "$PWD/gpu-runs"
           cp gpu-runs/*/final.png "$OUT/train-final.png" 2>/dev/null
           cp gpu-runs/*/stats.jsonl "$OUT/train-stats.jsonl" 2>/dev/null ;;
    *) echo "unknown step $s" ;;
  esac
done
echo "total $(( $(date +%s) - t_start ))s"
