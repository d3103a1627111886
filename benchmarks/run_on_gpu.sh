#!/usr/bin/env bash
# The device-machine command sequence for issue 6 (see benchmarks/README.md, "On the GPU machine").
#
#   here, once:   bash benchmarks/run_on_gpu.sh prepare       # wheels and fixtures into .whl/ (git-ignored)
#   call 1:       bash benchmarks/run_on_gpu.sh conv           carry [".whl/conv"]               ~1 min
#   call 2:       bash benchmarks/run_on_gpu.sh all            carry [".whl/rest", ".whl/conformance"]  <10 min
#                 (or "tests", "model", "compare": parts of "all", each well inside one call)
#
# causal-conv1d travels alone in call 1 (the wheels together exceed the 64 MiB a call carries) and is
# installed into build/site, which stays on the machine while it is warm (30 s after a call): make
# call 2 at once. If it went cold, "all" still runs and says causal-conv1d is missing.
# Every stage writes to $OUT and is bounded by `timeout`, so one slow stage cannot lose the others.
set -u -o pipefail
cd "$(dirname "$0")/.."
SITE=$PWD/build/site
export PYTHONPATH=$SITE:$PWD PYTHONUNBUFFERED=1 CADUCEUS_CONFORMANCE=$PWD/.whl/conformance
PY=${PYTHON:-python3}
OUT=${OUT:-/tmp/caduceus-gpu-out}
mkdir -p "$OUT"

install() {  # wheels of one folder into build/site; no index, no network on the device
  mkdir -p "$SITE"
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$1"/*.whl
}

environment() {
  {
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    $PY - <<'EOF'
import importlib, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))
for name in ("mamba_ssm", "causal_conv1d", "triton", "pysam", "h5py"):
    try:
        module = importlib.import_module(name)
        print(name, getattr(module, "__version__", "installed"))
    except ImportError as err:
        print(name, "MISSING:", err)
from caduceus_cli.model.scan import cuda_kernel_available
print("our CUDA scan available:", cuda_kernel_available())
EOF
  } 2>&1 | tee "$OUT/environment.txt"
}

run_tests() {
  timeout "${1:-150}" $PY -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$OUT/test_cuda.txt"
}

model_tables() {  # card rates, floor, our path model-only, bf16 error, profiler
  timeout "${1:-270}" $PY -m benchmarks.gpu_throughput --sections rates floor model error profile cpu \
    --batches 1 4 --cpu-length 4096 2>"$OUT/model.log" | tee "$OUT/model.md"
}

compare_tables() {  # the plain mamba-ssm path next to ours, then end to end
  timeout "${1:-240}" $PY -m benchmarks.gpu_throughput --sections plain e2e --batches 1 4 \
    --e2e-windows 8 --threads 8 2>"$OUT/compare.log" | tee "$OUT/compare.md"
}

case "${1:-all}" in
  prepare)  # here, not on the device
    mkdir -p .whl/conv .whl/rest .whl/conformance
    cp ../shared/gpu/wheels/causal_conv1d-*.whl .whl/conv/
    cp ../shared/gpu/wheels/mamba_ssm-*.whl ../shared/gpu/wheels/pysam-*.whl .whl/rest/
    cp -r ../shared/conformance/. .whl/conformance/
    du -sh .whl/*
    ;;
  conv)
    install .whl/conv && $PY -c "import causal_conv1d; print('causal-conv1d', causal_conv1d.__version__)"
    ;;
  all)
    install .whl/rest || exit 1
    environment
    run_tests 100
    model_tables 230
    compare_tables 230
    ;;
  tests) install .whl/rest && environment && run_tests 500 ;;
  model) install .whl/rest && environment && model_tables 540 ;;
  compare) install .whl/rest && environment && compare_tables 540 ;;
  *) echo "usage: $0 prepare|conv|all|tests|model|compare" >&2; exit 2 ;;
esac
