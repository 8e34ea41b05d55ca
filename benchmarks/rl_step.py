"""Seconds per RL step: assay's learner (every algorithm) vs TRL's GRPOTrainer, same model,
prompts and settings.

    python benchmarks/rl_step.py [--model smollm2-135m-instruct] [--steps 5] [--replicas N]
                                 [--algos grpo,dapo,dr_grpo,rloo,reinforce_pp,gspo,ppo]

All train SmolLM2-135M-Instruct on codenames-guess-v0 boards (seeds 0, 1, 2, ... in the same
order), 2 prompts x 8 completions per step, 32 new tokens at most, temperature 0.7, the same
learning rate, fp32, no KL term, and one optimisation pass per batch. TRL runs without gradient
checkpointing (its default recomputes activations, which would only slow it down here). After one
warm-up step each, ``--steps`` steps are timed. Completion lengths differ with sampling, so
tokens/s is printed too. DAPO's dynamic sampling may generate extra rounds in a step; its rounds
are printed. Ends with ``RESULT assay_s=... trl_s=... ratio=... <algo>_s=...`` where assay_s and
ratio are GRPO's (goal: ratio <= 0.5). ``--replicas N`` (N > 1) makes assay generate on a Ray
pool of N HF engines, with weight sync after each step (``engines.replicas=N``).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time

import torch

import envs
from assay.config import load_config
from assay.models import load_causal_lm
from rewards import as_trl_reward, score_guess_answer
from trainers.rl.config import RLConfig
from trainers.rl.learner import RLLearner

GROUP, PROMPTS, MAX_NEW, LR, TEMPERATURE = 8, 2, 32, 1e-5, 0.7
ALGOS = "grpo,dapo,dr_grpo,rloo,reinforce_pp,gspo,ppo"
ENV_KWARGS = {"n_targets": [2, 3], "n_non_targets": [2, 3]}


def time_assay(
    model, tokenizer, steps: int, name: str, replicas: int, algo: str = "grpo"
) -> tuple[list[float], float, float]:
    config = load_config(
        RLConfig,
        overrides=[
            f"algo.name={algo}",
            f"model.name={name}",
            f"engines.replicas={replicas}",
            # Replicas share the GPU(s) with the learner when there is not one GPU each.
            f"engines.placement={'colocated' if 0 < torch.cuda.device_count() <= replicas else 'separate'}",
            f"engines.colocated_gpu_share={min(1.0, torch.cuda.device_count() / replicas) or 0.5}",
            f"algo.group_size={GROUP}",
            f"algo.prompts_per_step={PROMPTS}",
            f"sampling.max_new_tokens={MAX_NEW}",
            f"sampling.temperature={TEMPERATURE}",
            f"optim.lr={LR}",
        ],
    )
    learner = RLLearner(config, model, tokenizer)
    env = envs.make("codenames-guess-v0", **ENV_KWARGS)
    times, lengths, rounds, parts = [], [], [], []
    for step in range(1, steps + 2):
        metrics = learner.step(env, step)
        if step > 1:  # step 1 is the warm-up
            times.append(metrics["step_time_s"])
            lengths.append(metrics["completion_len"])
            rounds.append(metrics.get("sample_rounds", 1))
            parts.append((metrics["rollout_time_s"], metrics.get("weight_sync_s", 0.0)))
    learner.close()
    rollout_s, sync_s = (statistics.mean(p) for p in zip(*parts, strict=True))
    print(f"assay {algo}: rollout {rollout_s:.2f} s/step, weight sync {sync_s:.2f} s/step")
    return times, statistics.mean(lengths), statistics.mean(rounds)


def time_trl(model, tokenizer, steps: int) -> tuple[list[float], float]:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    env = envs.make("codenames-guess-v0", **ENV_KWARGS)
    rows = []
    for seed in range((steps + 1) * PROMPTS):
        prompt, info = env.reset(seed=seed)
        rows.append(
            {
                "prompt": prompt,
                **{k: info[k] for k in ("board", "targets", "non_targets", "max_guesses")},
            }
        )

    def codenames_reward(text, board, targets, non_targets, max_guesses):
        return score_guess_answer(text, board, targets, non_targets, max_guesses).reward

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times: list[float] = []

        def on_step_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter() - self.start)

    timer = StepTimer()
    with tempfile.TemporaryDirectory() as out:
        args = GRPOConfig(
            output_dir=out,
            per_device_train_batch_size=GROUP * PROMPTS,
            num_generations=GROUP,
            max_completion_length=MAX_NEW,
            temperature=TEMPERATURE,
            learning_rate=LR,
            beta=0.0,
            max_steps=steps + 1,
            gradient_checkpointing=False,
            bf16=False,  # TRL defaults to bf16 autocast; assay runs the model's own fp32 here
            shuffle_dataset=False,
            use_cpu=not torch.cuda.is_available(),
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            disable_tqdm=True,
        )
        trainer = GRPOTrainer(
            model=model,
            processing_class=tokenizer,
            reward_funcs=[as_trl_reward(codenames_reward)],
            args=args,
            train_dataset=Dataset.from_list(rows),
            callbacks=[timer],
        )
        trainer.train()
        lengths = [
            h["completions/mean_length"]
            for h in trainer.state.log_history
            if "completions/mean_length" in h
        ]
    return timer.times[1:], statistics.mean(lengths[1:]) if len(lengths) > 1 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--replicas", type=int, default=1, help="> 1: generate on a Ray pool")
    parser.add_argument("--algos", default=ALGOS, help="comma-separated; grpo is always timed")
    args = parser.parse_args()
    algos = ["grpo", *[a for a in args.algos.split(",") if a and a != "grpo"]]
    model, tokenizer = load_causal_lm(
        args.model, device="cuda" if torch.cuda.is_available() else "cpu"
    )

    per_algo: dict[str, float] = {}
    for algo in algos:
        torch.manual_seed(0)
        times, length, rounds = time_assay(
            copy.deepcopy(model), tokenizer, args.steps, args.model, args.replicas, algo
        )
        per_algo[algo] = statistics.mean(times)
        steps = ", ".join(f"{t:.2f}" for t in times)
        print(f"assay {algo:13s} {per_algo[algo]:.2f} s/step (steps: {steps}), "
              f"mean completion {length:.1f} tokens, {rounds:.1f} sampling rounds")  # fmt: skip
        if algo == "grpo":
            assay_len = length
    torch.manual_seed(0)
    trl_times, trl_len = time_trl(copy.deepcopy(model), tokenizer, args.steps)

    assay_s, trl_s = per_algo["grpo"], statistics.mean(trl_times)
    steps = ", ".join(f"{t:.2f}" for t in trl_times)
    print(
        f"TRL GRPO            {trl_s:.2f} s/step (steps: {steps}), mean completion {trl_len:.1f} tokens"
    )
    extra = " ".join(f"{a}_s={t:.3f}" for a, t in per_algo.items() if a != "grpo")
    print(
        f"RESULT replicas={args.replicas} assay_s={assay_s:.3f} trl_s={trl_s:.3f} "
        f"ratio={assay_s / trl_s:.3f} "
        f"assay_tokens={assay_len:.1f} trl_tokens={trl_len:.1f} {extra}"
    )


if __name__ == "__main__":
    main()
