#!/usr/bin/env bash
# `mmexport bench` on a GPU machine in one short call: PyTorch CUDA fp32/fp16, TensorRT (where
# installed) and ONNX Runtime beside PyTorch eager on the CPU, for the LLaVA MLP and the BLIP-2
# Q-Former at batch 1 and 8. Writes JSON and plots into ${OUT:-gpu-bench}/.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-bench}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
for connector in mlp qformer; do
  python3 -m mmexport bench --connector "$connector" --backends torch,ort,torch-cuda,torch-cuda-fp16,trt \
    --batch 1,8 --warmup 5 --iters 20 --json "$out/gpu-$connector.json" --plot "$out/gpu-$connector.png"
done
