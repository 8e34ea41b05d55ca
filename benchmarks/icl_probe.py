"""ICL probe throughput: prompts evaluated per second through the generation engine, batched
vs one at a time, on this CPU.

    python benchmarks/icl_probe.py [--model smollm2-135m-instruct] [--prompts 48] [--batch 16]

Each prompt is a 4-demonstration SST-2 prompt (chat mode, the ``all`` corruption); answers are
greedy, at most 10 new tokens, as in the probe. Ends with
``RESULT batched_prompts_per_s=... single_prompts_per_s=... speedup=...``.
"""

from __future__ import annotations

import argparse
import time

from assay.models import load_causal_lm
from trainers.engines.base import Sampling
from trainers.engines.hf import HFEngine
from trainers.icl_probe import episode_prompts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--prompts", type=int, default=48)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    model, tokenizer = load_causal_lm(args.model)
    prompts, *_ = episode_prompts(
        "sst2", "all", 0, n_demos=4, limit=args.prompts, mode="chat", tokenizer=tokenizer
    )
    greedy = Sampling(temperature=0.0, max_new_tokens=10, logprobs=False)
    HFEngine(model, tokenizer).generate(prompts[:2], greedy)  # warm-up
    start = time.perf_counter()
    batched = HFEngine(model, tokenizer, batch_size=args.batch).generate(prompts, greedy)
    t_batched = time.perf_counter() - start
    single_engine = HFEngine(model, tokenizer, batch_size=1)
    start = time.perf_counter()
    single = [single_engine.generate([p], greedy)[0] for p in prompts]
    t_single = time.perf_counter() - start
    same = sum(a[0].text == b[0].text for a, b in zip(batched, single, strict=True))
    b, s = len(prompts) / t_batched, len(prompts) / t_single
    print(f"batched (batch {args.batch}): {b:.2f} prompts/s; one at a time: {s:.2f} prompts/s; "
          f"identical answers: {same}/{len(prompts)}")  # fmt: skip
    print(f"RESULT batched_prompts_per_s={b:.2f} single_prompts_per_s={s:.2f} speedup={b / s:.2f}")


if __name__ == "__main__":
    main()
