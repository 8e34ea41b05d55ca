"""One sharded (FSDP2) learner update on a fixed batch, run by each rank under torchrun (see
test_sharding). Each rank saves its own file: rank 0 the whole gradients and updated weights
(gathered), every rank the bytes it holds of parameters, gradients and optimizer state.

Usage: torchrun --nproc_per_node N dist_fsdp.py OUT_PREFIX VARIANT [save RUN_DIR | resume RUN_DIR]

``save``: one update, a checkpoint of step 1 in RUN_DIR, then a second update on the same batch
(its stats are saved). ``resume``: the learner from RUN_DIR's checkpoint, then one update.
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import dist_update  # noqa: E402

from assay.checkpoints import latest_checkpoint, load_trainer_state
from assay.config import load_config
from assay.models import load_causal_lm
from assay.sharding import full_tensor, local_bytes
from trainers.distributed import init_world
from trainers.engines.base import Completion
from trainers.rl.checkpoint import save_learner_checkpoint
from trainers.rl.config import RLConfig
from trainers.rl.learner import RLLearner
from trainers.rl.samples import Samples

VARIANTS = {
    "grpo-kl": ["algo.kl_coef=0.05", "algo.entropy_coef=0.01"],
    "ppo": ["algo.name=ppo"],
    "lora": ["lora.enabled=true", "algo.kl_coef=0.05"],
    # Group 0's long prompt splits rank 0's share into two micro-batches; rank 1 has one.
    "uneven": ["algo.micro_batch_tokens=110", "algo.epochs=2"],
    # Multi-turn rows: a context per row, env tokens masked out, advantages given; rank 0 holds
    # three rows and rank 1 one, each row a micro-batch of its own.
    "multi-turn": ["algo.micro_batch_tokens=40"],
}
ROW_ADVANTAGES = [1.0, -0.5, 0.25, -1.0]


def multi_turn_rows(tokenizer, rows):
    completions = []
    for r in rows:
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": f"Turn {r}: your move."}],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=False,
        )
        tokens = tokenizer.encode(" a b c d e f"[: 4 + 2 * r])
        mask = [1 if i % 3 != 1 else 0 for i in range(len(tokens))]  # some env tokens
        completions.append(Completion("x", prompt, tokens, [], "stop", train_mask=mask))
    rewards = torch.tensor([[ROW_ADVANTAGES[r]] for r in rows])
    return Samples(completions, rewards, group_size=1,
                   advantages=torch.tensor([ROW_ADVANTAGES[r] for r in rows]))  # fmt: skip


def fixed_batch(tokenizer, groups):
    """dist_update's batch, with group 0's prompt long enough to need a micro-batch of its own."""
    return dist_update.fixed_batch(tokenizer, groups, question=_long_first)


def _long_first(p: int) -> str:
    return f"Question {p}: say yes." + " Please." * (30 if p == 0 else 0)


def config(variant: str, sharded: bool) -> RLConfig:
    overrides = ["algo.group_size=2", "algo.prompts_per_step=4", "optim.lr=1e-3",
                 "sampling.temperature=1.0", "eval.episodes=0", "model.logprob_chunk=16",
                 f"train.sharding={'fsdp' if sharded else 'none'}"]  # fmt: skip
    return load_config(RLConfig, overrides=overrides + VARIANTS[variant])


def run(world, variant: str, sharded: bool, resume: Path | None = None):
    """``(stats, whole grads, whole weights, learner)`` after one update; rank r trains on its
    share of the four prompt groups. ``resume``: start from that run's last checkpoint."""
    model, tokenizer = load_causal_lm("tiny-random-llama")
    reference, checkpoint = None, None
    if resume is not None:
        checkpoint = latest_checkpoint(resume)
        reference, model = model, load_causal_lm(str(checkpoint))[0]  # KL to the base model
    learner = RLLearner(
        config(variant, sharded), model, tokenizer, reference=reference, world=world
    )
    if checkpoint is not None:
        learner.load_trainer_state(load_trainer_state(checkpoint), checkpoint)
    stats = learner.update(batch_for(variant, tokenizer, world))
    named = list(learner.model.named_parameters())
    if learner.value_head is not None:
        named += [(f"value_head.{n}", p) for n, p in learner.value_head.named_parameters()]
    grads = {n: full_tensor(p.grad).clone() for n, p in named if p.grad is not None}
    weights = {n: full_tensor(t).clone() for n, t in learner.model.state_dict().items()}
    return stats, grads, weights, learner


def shard_of(world) -> list[int]:
    per_rank = 4 // world.size
    return list(range(world.rank * per_rank, (world.rank + 1) * per_rank))


def batch_for(variant: str, tokenizer, world):
    if variant != "multi-turn":
        return fixed_batch(tokenizer, shard_of(world))
    rows = [[0, 1, 2, 3]] if world.size == 1 else [[0, 1, 2], [3]]
    return multi_turn_rows(tokenizer, rows[world.rank])


def engine_gap(learner, tokenizer) -> float:
    """After a weight sync: the largest |log p_engine - log p_learner| over a fixed batch (the
    engine holds a whole copy; the learner's forward runs sharded on every rank)."""
    from trainers.logprobs import completion_logprobs

    learner.sync_weights()
    batch = fixed_batch(tokenizer, [1, 2, 3]).completions  # prompts of one length
    ids = torch.tensor([c.prompt_ids + c.token_ids for c in batch if len(c.token_ids) == 2])
    with torch.no_grad():
        ours = completion_logprobs(learner.model.eval(), ids, torch.ones_like(ids), 2)[0]
        theirs = completion_logprobs(learner.engine.model, ids, torch.ones_like(ids), 2)[0]
    return float((ours - theirs).abs().max())


def held_bytes(learner) -> dict[str, int]:
    params = [p for p in learner.model.parameters() if p.requires_grad]
    state = [t for s in learner.optimizer.state.values() for t in s.values() if t.dim() > 0]
    return {
        "params": local_bytes(params),
        "grads": local_bytes([p.grad for p in params if p.grad is not None]),
        "optimizer": local_bytes(state),
    }


if __name__ == "__main__":
    world = init_world()
    mode, run_dir = (sys.argv[3], Path(sys.argv[4])) if len(sys.argv) > 4 else (None, None)
    resume = run_dir if mode == "resume" else None
    stats, grads, weights, learner = run(world, sys.argv[2], sharded=True, resume=resume)
    if mode == "save":
        save_learner_checkpoint(run_dir, 1, learner, keep=1)
        stats = learner.update(batch_for(sys.argv[2], learner.tokenizer, world))  # step 2
    saved = {"bytes": held_bytes(learner), "world": world.size, "rank": world.rank}
    saved["engine_gap"] = engine_gap(learner, learner.tokenizer)
    if world.main:
        saved.update(stats=stats, grads=grads, weights=weights)
    torch.save(saved, f"{sys.argv[1]}.rank{world.rank}.pt")
    torch.distributed.destroy_process_group()
