#!/usr/bin/env bash
# The checks that need a GPU, as one run on a lent CUDA machine (CI has none): the engine against the pipeline on
# CUDA in fp32 (parity; torch.compile and CUDA graphs too) and in bf16 at Cosmos3-Nano's geometry (speed, distance to
# fp32), every mode on CUDA against CPU, `worldpolicy serve --device cuda` under 8 concurrent clients, and
# fine-tuning on CUDA against CPU. Each step has its own time limit; logs and JSON go to $OUT. Packages the machine
# lacks (diffusers, websockets, av, ...) can ride along as wheels in .whl/ (installed to /tmp/site first).
#
#     OUT=/tmp/gpu_check bash scripts/gpu_check.sh
set -o pipefail
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/gpu_check}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}

failed=()
step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $OUT/NAME.log, go on whatever happens
  local name=$1 limit=$2 status
  shift 2
  echo "### $name (limit ${limit} s)"
  timeout "$limit" "$@" 2>&1 | grep -v --line-buffered "Loading pipeline components" | tee "$OUT/$name.log"
  status=${PIPESTATUS[0]}
  echo "### $name: exit $status"
  [ "$status" = 0 ] || failed+=("$name")
}

step env 30 bash -c "nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total,clocks.sm --format=csv;
  $PY -c 'import torch, diffusers, transformers; print(torch.__version__, diffusers.__version__, transformers.__version__,
  torch.cuda.get_device_name()); from diffusers import Cosmos3OmniPipeline; import worldpolicy.policy'"
bench="$PY benchmarks/bench_engine.py --device cuda --repeats 5"
step small 60 $bench --settings tiny,wide --json "$OUT/small.json"
step nano 200 $bench --dtype bfloat16 --settings nano --chunks 16,32 --fp32-reference --profile --json "$OUT/nano.json"
step compiled 120 $bench --settings tiny --variants eager,compile,cuda_graphs --json "$OUT/compiled.json"
step nano_graphs 150 $bench --dtype bfloat16 --settings nano --chunks 32 --variants eager,cuda_graphs \
  --json "$OUT/nano_graphs.json"
step modes 90 $PY scripts/gpu_modes_check.py
step serve 60 $PY scripts/gpu_serve_check.py
step train 90 $PY scripts/gpu_train_check.py
if [ ${#failed[@]} -gt 0 ]; then
  echo "### failed: ${failed[*]}"
  exit 1
fi
echo "### all steps passed"
