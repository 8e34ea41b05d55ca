#!/usr/bin/env bash
# Fill .gpu/ (git-ignored) with what scripts/gpu_check.sh needs on a GPU box without registries:
# wheels of packages its image lacks (Python 3.12; its own pyarrow 25 serves datasets, a carried
# one breaks datasets' pickling) and SmolLM2's tokenizer and config.
#   bash scripts/prepare_gpu_carry.sh [--ray]
# --ray adds Ray for the pool checks. Its 79 MB wheel is over the box's 64 MiB carry limit, so
# .gpu/ray-slim.tar.xz (about 27 MB) holds Ray without the parts the pool never loads: the Java
# jars, the dashboard's web client, and the rllib/data/serve/tune/train/llm libraries.
set -euo pipefail
mkdir -p .gpu/whl .gpu/cache
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .gpu/whl gymnasium==1.4.0 farama-notifications trl==1.16.0 datasets==5.2.0 dill multiprocess gguf==0.19.0 \
  latex2sympy2_extended antlr4-python3-runtime==4.13.2
cache="${ASSAY_CACHE:-$HOME/.cache/assay}"
rm -rf .gpu/cache/smollm2-135m-instruct-tokenizer .gpu/cache/smollm2-config
cp -r "$cache/smollm2-135m-instruct-tokenizer" .gpu/cache/
mkdir -p .gpu/cache/smollm2-config && cp "$cache/smollm2-135m-instruct/config.json" .gpu/cache/smollm2-config/
if [ "${1:-}" = "--ray" ]; then
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .gpu/whl jsonschema jsonschema-specifications referencing rpds-py
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 -d "$tmp" ray==2.60.0
  (cd "$tmp" && unzip -q ray-*.whl && rm -rf ray/jars ray/dashboard/client/build ray/rllib ray/data \
    ray/serve ray/tune ray/train ray/llm ray/workflow && tar -cJf ray-slim.tar.xz ray ray-*.dist-info)
  mv "$tmp/ray-slim.tar.xz" .gpu/ && rm -rf "$tmp"
fi
du -sh .gpu
