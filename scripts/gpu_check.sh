#!/usr/bin/env bash
# The GPU checks of assay, in one go, on a CUDA machine (from the repository root):
#   bash scripts/gpu_check.sh [--only CHECK,...]
# On a machine without the package registries, put wheels of the missing packages in .gpu/whl and
# SmolLM2's tokenizer and config under .gpu/cache (see scripts/prepare_gpu_carry.sh).
set -euo pipefail
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if compgen -G ".gpu/whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
# Ray, slimmed to fit the carry limit (prepare_gpu_carry.sh --ray): unpacked beside the wheels.
if [ -f .gpu/ray-slim.tar.xz ]; then
  mkdir -p /tmp/site && tar -xJf .gpu/ray-slim.tar.xz -C /tmp/site
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}" RAY_USAGE_STATS_ENABLED=0
fi
[ -d .gpu/cache ] && export ASSAY_CACHE="$PWD/.gpu/cache"
export PYTHONPATH="$PWD:${PYTHONPATH:-}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 scripts/gpu_check.py "$@"
