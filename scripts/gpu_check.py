"""GPU checks for assay, run by scripts/gpu_check.sh on a CUDA machine; prints one line per check.

The SmolLM2 GGUF (98 MB) may not travel to a remote GPU box; without it this uses SmolLM2-135M's
architecture with random weights (same shapes, so the same speed), built from the cached config.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import torch

import envs
from assay.config import load_config
from assay.models import load_causal_lm
from assay.paths import cache_dir
from trainers.config import RLConfig
from trainers.logprobs import completion_logprobs, grouped_completion_logprobs
from trainers.rl import GRPOLearner, Rollout, run_rl
from trainers.rollout import Completion, HFEngine, Sampling


def smollm2_shaped_model() -> str:
    try:
        load_causal_lm("smollm2-135m-instruct")
        return "smollm2-135m-instruct"
    except Exception as err:  # noqa: BLE001 - fall back to random weights, say so
        print(
            f"note: real SmolLM2 weights unavailable ({type(err).__name__}); using random weights"
        )
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(cache_dir() / "smollm2-config")
    tokenizer = AutoTokenizer.from_pretrained(cache_dir() / "smollm2-135m-instruct-tokenizer")
    model = AutoModelForCausalLM.from_config(config)
    target = Path("/tmp/smollm2-random")
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return str(target)


def check_grouped_equals_naive(model) -> None:
    g, tp, tc = 4, 40, 12
    prompt = torch.randint(100, 1000, (2, tp), device="cuda")
    pmask = torch.ones_like(prompt)
    pmask[1, :7] = 0
    comp = torch.randint(100, 1000, (2 * g, tc), device="cuda")
    cmask = torch.ones_like(comp)
    cmask[3, 5:] = 0
    with torch.no_grad():
        a, _ = grouped_completion_logprobs(model, prompt, pmask, comp, cmask)
        full = torch.cat([prompt.repeat_interleave(g, 0), comp], 1)
        b, _ = completion_logprobs(
            model, full, torch.cat([pmask.repeat_interleave(g, 0), cmask], 1), tc
        )
    diff = (a - b)[cmask == 1].abs().max().item()
    print(f"CHECK grouped_vs_naive_logprobs max_abs_diff={diff:.2e} ok={diff < 1e-3}")


def check_engine_logprobs(model, tokenizer) -> None:
    engine = HFEngine(model, tokenizer)
    env = envs.make("codenames-guess-v0")
    prompts = [env.reset(seed=s)[0] for s in range(4)]
    groups = engine.generate(prompts, Sampling(n=4, temperature=0.7, max_new_tokens=24, seed=0))
    worst = 0.0
    for c in [c for g in groups for c in g]:
        ids = torch.tensor([c.prompt_ids + c.token_ids], device="cuda")
        with torch.no_grad():
            forced, _ = completion_logprobs(model, ids, torch.ones_like(ids), len(c.token_ids), 0.7)
        worst = max(worst, (forced.cpu() - torch.tensor([c.logprobs])).abs().max().item())
    print(f"CHECK engine_logprobs_vs_forward max_abs_diff={worst:.2e} ok={worst < 1e-2}")


def check_learning_bf16(name: str) -> None:
    model, tokenizer = load_causal_lm(name, "bfloat16", "cuda")
    config = load_config(
        RLConfig, overrides=["optim.lr=1e-4", "sampling.temperature=1.0", "model.dtype=bfloat16"]
    )
    learner = GRPOLearner(config, model, tokenizer)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Say yes."}],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=False,
    )
    good = Completion("", prompt, tokenizer.encode("yes indeed"), [], "stop")
    bad = Completion("", prompt, tokenizer.encode("no way at all"), [], "stop")
    rollout = Rollout([good, bad], torch.tensor([[1.0, 0.0]]))

    def logprob(c):
        ids = torch.tensor([c.prompt_ids + c.token_ids], device="cuda")
        with torch.no_grad():
            return (
                completion_logprobs(model, ids, torch.ones_like(ids), len(c.token_ids))[0]
                .sum()
                .item()
            )

    before = logprob(good), logprob(bad)
    for _ in range(5):
        learner.update(rollout)
    after = logprob(good), logprob(bad)
    ok = after[0] > before[0] and after[1] < before[1]
    print(
        f"CHECK bf16_update good={before[0]:.2f}->{after[0]:.2f} bad={before[1]:.2f}->{after[1]:.2f} ok={ok}"
    )


def check_run_rl(name: str, out: Path) -> None:
    config = load_config(
        RLConfig,
        "configs/codenames_guess.yaml",
        [
            f"model.name={name}",
            "model.device=cuda",
            "model.dtype=bfloat16",
            "train.steps=8",
            "train.max_minutes=null",
            f"train.output_dir={out}",
            "eval.episodes=64",
            "eval.batch_size=64",
        ],
    )
    start = time.perf_counter()
    summary = run_rl(config, log=lambda *_: None)
    import json

    metrics = [
        json.loads(x) for x in (Path(summary["run_dir"]) / "metrics.jsonl").read_text().splitlines()
    ]
    step_s = sum(m["step_time_s"] for m in metrics[1:]) / max(len(metrics) - 1, 1)
    print(
        f"CHECK run_rl_cuda_bf16 steps={summary['steps']} mean_step_s={step_s:.2f} "
        f"total_s={time.perf_counter() - start:.1f} trained_valid={summary['eval_trained']['valid_rate']:.2f}"
    )


def check_rollout_backends(name: str) -> None:
    """HF bf16 tokens/s, the Ray pool with 2 replicas sharing this GPU, and vLLM, when they import;
    a missing one is reported as SKIP with the reason."""
    prompts = [[{"role": "user", "content": f"Tell a story about {i}."}] for i in range(16)]
    sampling = Sampling(n=8, temperature=1.0, max_new_tokens=128, seed=0)
    greedy = Sampling(temperature=0.0, max_new_tokens=32)
    model, tokenizer = load_causal_lm(name, "bfloat16", "cuda")
    hf = HFEngine(model, tokenizer)
    start = time.perf_counter()
    n = sum(len(c.token_ids) for g in hf.generate(prompts, sampling) for c in g)
    print(f"CHECK hf_bf16_tokens_per_s={n / (time.perf_counter() - start):.0f}")
    reference = [g[0].token_ids for g in hf.generate(prompts, greedy)]
    try:
        import ray

        from trainers.pool import EngineSpec, RolloutPool

        ray.init(include_dashboard=False, log_to_driver=False)
        spec = EngineSpec(name, dtype="bfloat16", device="cuda", num_gpus=0.4)
        syncs = ["object_store"]
        if torch.cuda.device_count() >= 3:  # NCCL needs its own GPU per rank
            syncs.append("broadcast")
        else:
            print("SKIP pool broadcast sync: NCCL needs one GPU per rank (learner + 2 replicas)")
        for sync in syncs:
            pool = RolloutPool(spec, replicas=2, weight_sync=sync)
            pool.update_weights(model.state_dict())
            same = [g[0].token_ids for g in pool.generate(prompts, greedy)] == reference
            print(f"CHECK pool_2_replicas_one_gpu weight_sync={sync} greedy_equals_hf={same}")
            pool.close()
        ray.shutdown()
    except ImportError as err:
        print(f"SKIP pool: {err}")
    try:
        from trainers.vllm_engine import VLLMEngine

        engine = VLLMEngine(name, dtype="bfloat16", gpu_memory_utilization=0.3)
        start = time.perf_counter()
        n = sum(len(c.token_ids) for g in engine.generate(prompts, sampling) for c in g)
        print(f"CHECK vllm_bf16_tokens_per_s={n / (time.perf_counter() - start):.0f}")
        agree = sum(
            g[0].token_ids == r
            for g, r in zip(engine.generate(prompts, greedy), reference, strict=True)
        )
        print(f"CHECK vllm_vs_hf_greedy_agreement={agree}/{len(prompts)} (bf16 kernels differ)")
        engine.update_weights(model.state_dict())
        print("CHECK vllm_update_weights ok=True")
    except Exception as err:  # ConfigError when vLLM is absent, or a start-up failure: report it
        print(f"SKIP vllm: {str(err).splitlines()[0]}")


def main() -> None:
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name(0)}")
    name = smollm2_shaped_model()
    model, tokenizer = load_causal_lm(name, "float32", "cuda")
    check_grouped_equals_naive(model)
    check_engine_logprobs(model, tokenizer)
    del model
    check_learning_bf16(name)
    out = Path("/tmp/assay-gpu-runs")  # checkpoints are large; keep them off $OUT
    check_run_rl(name, out)
    check_rollout_backends(name)
    print("BENCH rl_step on GPU (fp32, same settings as the CPU benchmark):", flush=True)
    subprocess.run(
        [sys.executable, "benchmarks/rl_step.py", "--model", name], check=False, timeout=400
    )


if __name__ == "__main__":
    main()
