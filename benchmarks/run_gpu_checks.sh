#!/usr/bin/env bash
# The GPU checks of the engine, as one script for a borrowed GPU machine (run from the
# repository root; results also go to $OUT when it is set). No Django, no database: the
# engine's CUDA tests, then the speed, SAG and quality benchmarks. About 8 minutes on an H100.
set -u
OUT=${OUT:-/tmp/gpu-checks}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONPATH=.
run() {  # run NAME SECONDS COMMAND...: print and keep the output, never stop the script
  local name=$1 limit=$2; shift 2
  echo "=== $name: $*" | tee "$OUT/$name.txt"
  local started=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee -a "$OUT/$name.txt"
  echo "=== $name took $((SECONDS - started)) s" | tee -a "$OUT/$name.txt"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
$PY -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)" | tee -a "$OUT/gpu.txt"
run tests 180 $PY -m pytest -q -p no:django -p no:cacheprovider --noconftest \
  tests/explain_engine/test_methods.py tests/explain_engine/test_igos.py \
  tests/explain_engine/test_sag.py tests/explain_engine/test_xnn.py \
  tests/explain_engine/test_metrics.py
run xnn 240 $PY -m pytest -q -p no:django -p no:cacheprovider --noconftest \
  tests/explain_engine/test_xnn_cuda.py tests/explain_engine/test_xnn_excitation.py
run speed 150 $PY benchmarks/saliency_speed.py --model resnet50 --images 16 --batch-size 128
run sag 120 $PY benchmarks/sag_search.py --model resnet50 --images 16 --batch-size 128 --chunk 4
run quality 300 $PY benchmarks/saliency_quality.py --images 50 \
  --resolutions 7 14 28 56 112 224 --protocols igos rise --batch-size 128
