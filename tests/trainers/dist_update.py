"""One learner update on a fixed batch, run by each rank under torchrun (see test_distributed).

Usage: torchrun --nproc_per_node N dist_update.py OUT_FILE ALGO
Rank r trains on its share of the same 4 prompt groups; rank 0 saves the loss, the summed
(clipped) gradients and the updated weights.
"""

import os
import subprocess
import sys

import torch

from assay.config import load_config
from assay.models import load_causal_lm
from trainers.distributed import init_world
from trainers.engines.base import Completion
from trainers.rl.config import RLConfig
from trainers.rl.learner import RLLearner
from trainers.rl.samples import Samples

REWARDS = [[1.0, 0.0], [0.0, 0.5], [1.0, 1.0], [0.2, 0.9]]
ANSWERS = ["yes indeed", "no way at all", "maybe so", "yes"]


def torchrun(args: list[str], nproc: int = 2, timeout: int = 300) -> subprocess.CompletedProcess:
    """``args`` under torchrun on ``nproc`` gloo processes, one thread each."""
    from assay.distributed import free_port

    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
           f"--master_port={free_port()}", *args]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def fixed_batch(tokenizer, groups, question=lambda p: f"Question {p}: say yes."):
    completions = []
    for p in groups:
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": question(p)}],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=False,
        )
        for g in range(2):
            text = ANSWERS[(p + g) % 4]
            completions.append(Completion(text, prompt, tokenizer.encode(text), [], "stop"))
    return Samples(completions, torch.tensor([REWARDS[p] for p in groups]))


def config(algo: str, grad_accum: int) -> RLConfig:
    return load_config(
        RLConfig,
        overrides=[
            f"algo.name={algo}",
            "algo.group_size=2",
            "algo.prompts_per_step=4",
            f"algo.grad_accum={grad_accum}",
            "algo.kl_coef=0.05",
            "optim.lr=1e-3",
            "sampling.temperature=1.0",
            "eval.episodes=0",
        ],
    )


def run(world, algo: str):
    model, tokenizer = load_causal_lm("tiny-random-llama")
    per_rank = 4 // world.size
    groups = list(range(world.rank * per_rank, (world.rank + 1) * per_rank))
    learner = RLLearner(config(algo, 2 if world.size == 1 else 1), model, tokenizer, world=world)
    stats = learner.update(fixed_batch(tokenizer, groups))
    grads = {n: p.grad.clone() for n, p in learner.model.named_parameters() if p.grad is not None}
    return stats, grads, learner.model.state_dict()


if __name__ == "__main__":
    world = init_world()
    stats, grads, weights = run(world, sys.argv[2])
    if world.main:
        saved = {"stats": stats, "grads": grads, "weights": weights, "world": world.size}
        torch.save(saved, sys.argv[1])
    if world.active:
        torch.distributed.destroy_process_group()
