#!/usr/bin/env bash
# Every GPU part of the benchmarks in one go (about 8 minutes on one H100), for a session with a device.
# Results (logs, JSON, CSV, figure) go under $OUT if set, else benchmarks/out/gpu. Each step has its own time
# limit, so one slow part cannot eat the others' time; a step that fails or times out is reported and skipped.
#
#   bash benchmarks/gpu.sh              # needs the bench extra: pip install -e .[bench]
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
DEST=${OUT:-benchmarks/out/gpu}
mkdir -p "$DEST"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  echo "=== $name (limit ${limit}s) ===" | tee -a "$DEST/summary.txt"
  local start=$SECONDS
  timeout "$limit" "$@" > "$DEST/$name.log" 2>&1
  local rc=$?
  grep -E "ratio|MFU|model_step on|runs/hour|slope|  (ours|plain|x-transformers) |skipped|failed|Error" \
    "$DEST/$name.log" | tee -a "$DEST/summary.txt"
  echo "--- $name: exit $rc after $((SECONDS - start))s" | tee -a "$DEST/summary.txt"
}

"$PY" - <<'PY' | tee "$DEST/summary.txt"
import torch
from models.flops import peak_bf16_flops
name = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
print(f"device: {name}; torch {torch.__version__}; peak lookup: {peak_bf16_flops(name)}")
PY

# GPT-2-small shape (768 / 12 layers / seq 1024 / batch 16), bf16 autocast: eager, then torch.compile (+ MFU)
step model_step_gpt2_eager 90 "$PY" benchmarks/model_step.py --preset gpt2-small --device cuda --bf16 \
  --reps 7 --steps-per-rep 3 --json "$DEST/model_step_gpt2_eager.json"
step model_step_gpt2_compile 170 "$PY" benchmarks/model_step.py --preset gpt2-small --device cuda --bf16 --compile \
  --reps 7 --steps-per-rep 3 --json "$DEST/model_step_gpt2_compile.json"
# the CPU benchmark's shape on the GPU (ours vs x-transformers at equal shape)
step model_step_small_gpu 40 "$PY" benchmarks/model_step.py --device cuda --bf16 --reps 10 \
  --json "$DEST/model_step_small_gpu.json"
# attention variants, T = 128 .. 8192 on the GPU
step attention_scaling 60 "$PY" benchmarks/attention_scaling.py --device cuda --max-len 8192 --batch 4 --reps 5 \
  --out "$DEST"
# stacked runs (trainer.stack 1, 8, 32) and two workers sharing the GPU, side by side (issue 15: stack >= 10x)
step sweep_throughput 240 "$PY" benchmarks/sweep_throughput.py --device cuda --configs 1x1,8x1,32x1,1x2 \
  --trials 32 --seeds 2 --steps 100
# the other stack engine on the GPU (auto is vmap there): which one the GPU's default should be
step sweep_throughput_loop 150 "$PY" benchmarks/sweep_throughput.py --device cuda --engine loop --configs 1x1,8x1 \
  --trials 32 --seeds 2 --steps 100
echo "results in $DEST" | tee -a "$DEST/summary.txt"
