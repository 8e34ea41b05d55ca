"""The RL learner: one call of :meth:`RLLearner.step` is one RL step of any registered algorithm
(``trainers.algos.registry``), on one process or one rank of several.

``step`` reads like the algorithm: rollout (sample and score) -> advantages -> update (epochs x
mini-batches x micro-batches) -> sync weights -> metrics. The pieces are components chosen once,
in ``__init__``: the rollout strategy (single-turn, multi-turn, either off-policy), the engine
(``trainers.engines.factory``), the estimator and the policy loss (by name), the forward passes
and the objective. ``trainers.rl.job`` wraps the learner in a run.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import torch

from assay.errors import CheckpointError
from assay.sharding import clip_gradients, lockstep, shard, stream_full
from trainers.algos import ValueHead, registry, truncated_is_weights
from trainers.algos.policy import denominator
from trainers.distributed import World, all_max, all_sum, current_world, sum_gradients
from trainers.engines.base import GenerationEngine
from trainers.engines.factory import engine_for_learner
from trainers.engines.hf import HFEngine
from trainers.rl import batch as batching
from trainers.rl.advantages import compute_advantages
from trainers.rl.checkpoint import has_optimizer_shards, load_optimizer_shards
from trainers.rl.config import RLConfig
from trainers.rl.forward import PolicyForward, enable_checkpointing
from trainers.rl.lora import add_lora, base_model, is_peft, merged_state_dict
from trainers.rl.metrics import step_metrics
from trainers.rl.multi_turn import MultiTurnRollout
from trainers.rl.objective import Objective, Scale, StepTensors
from trainers.rl.off_policy import OffPolicyRollout
from trainers.rl.samples import Samples
from trainers.rl.schedule import lr_lambda
from trainers.rl.single_turn import SingleTurnRollout


class RLLearner:
    """Holds the policy (optionally with LoRA adapters), its optimizer, a value head (critic
    estimators), a reference policy (KL), the engine and the rollout strategy.

    With a separate engine (a Ray pool, vLLM, or off-policy mode) each step logs
    ``engine_logprob_gap`` (mean |log p_engine - log p_learner| over the sampled tokens) and
    applies truncated importance weights."""

    def __init__(
        self,
        config: RLConfig,
        model,
        tokenizer,
        engine: GenerationEngine | None = None,
        reference=None,
        world: World | None = None,
    ):
        """``engine``: a running engine to generate with (then treated as separate from the
        learner's model); by default the factory builds one from ``config.engines``.
        ``reference``: the frozen policy for the KL term (default: a copy of ``model`` as given,
        or the base model under LoRA adapters)."""
        algo = config.algo
        self.config, self.tokenizer = config, tokenizer
        self.world = world or current_world()
        self.estimator = algo.estimator()
        self.policy_loss = registry.loss(algo.setting("policy_loss"))
        if config.lora.enabled and not is_peft(model):
            model = add_lora(model, config)
        if config.model.gradient_checkpointing:
            enable_checkpointing(model)
        self.model = model
        if algo.kl_coef > 0 and not config.lora.enabled:
            reference = reference if reference is not None else copy.deepcopy(model)
            reference.eval().requires_grad_(False)
        else:
            reference = None
        if engine is not None:
            self.engine, self.separate_engine = engine, True
        else:  # built before sharding: a copy for the engine (sharded learners) is a whole one
            self.engine, self.separate_engine = engine_for_learner(config, model, tokenizer)
        self.sharded = config.train.sharding == "fsdp"
        self.device = _device(model)  # where batches go (CPU offload moves the parameters)
        if self.sharded:
            options = {
                "bf16": config.model.autocast == "bf16",
                "cpu_offload": config.train.cpu_offload,
            }
            shard(model, self.world, **options)
            if reference is not None:
                shard(reference, self.world, **options)
        value_head = None
        if self.estimator.needs_values:
            value_head = ValueHead(base_model(model).config.hidden_size).to(self.device)
        self.forward = PolicyForward(
            config, model, value_head, reference, lockstep=self._lockstep, device=self.device
        )
        if self.separate_engine:
            self.sync_weights()
        self.rollout = self._rollout_strategy()
        self.objective = Objective(config, self.forward, self.policy_loss, self.separate_engine)
        self.last_samples: Samples | None = None
        self.updating = False  # weights may be half-updated while this is True
        self.weights_step = 0  # the last step whose update the weights include
        opt = config.optim
        self.optimizer = torch.optim.AdamW(
            self.trainable_parameters(), lr=opt.lr, weight_decay=opt.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(config))

    def _rollout_strategy(self):
        cfg = self.config
        if cfg.episodes.multi_turn:
            strategy = MultiTurnRollout(cfg, self.engine, self.tokenizer, self.world, self.model)
        else:
            strategy = SingleTurnRollout(cfg, self.engine, self.world)
        if cfg.engines.off_policy:
            strategy = OffPolicyRollout(strategy, self.sync_weights, cfg.train.steps)
        return strategy

    @property
    def value_head(self):
        """PPO's critic (critic estimators only; else None)."""
        return self.forward.value_head

    @property
    def reference(self):
        """The frozen KL reference (None without KL, or under LoRA: then the base model is)."""
        return self.forward.reference

    @property
    def seats(self) -> dict[str, Any]:
        """Multi-turn: the policies of the agents not trained (evaluation plays them too)."""
        return self.rollout.seats

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        params = [p for p in self.model.parameters() if p.requires_grad]
        return params + self.value_head_parameters()

    def value_head_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.value_head.parameters()) if self.value_head is not None else []

    # --- one step ------------------------------------------------------------------------------
    def step(self, env, step: int, next_env=None) -> dict[str, Any]:
        """One RL step on ``env``. ``next_env``: the env of step ``step + 1`` (a curriculum),
        where an off-policy rollout starts it in the background; default ``env``."""
        t0 = time.perf_counter()
        samples = self.rollout.collect(env, step, next_env)  # sample and score
        self.last_samples = samples
        rollout_s = time.perf_counter() - t0
        self.updating = True
        stats = self.update(samples)  # advantages, then the optimizer steps
        self.weights_step = step
        self.updating = False
        stats.update(self._sync_after_update())
        elapsed = time.perf_counter() - t0
        return step_metrics(
            self.config, env, step, samples, stats,
            world=self.world, elapsed=elapsed, rollout_s=rollout_s,
        )  # fmt: skip

    def _sync_after_update(self) -> dict[str, float]:
        if self.rollout.synced_s is not None:  # off-policy: synced before this step's update
            return {"weight_sync_s": self.rollout.synced_s}
        if self.separate_engine:
            return {"weight_sync_s": self.sync_weights()}
        return {}

    # --- advantages and update -----------------------------------------------------------------
    def tensors(self, samples: Samples, chunks: list[list[int]] | None = None) -> StepTensors:
        """The padded batch and every per-token tensor the loss needs: old and reference
        log-probs (where the algorithm needs them), advantages, returns, importance weights."""
        algo, group_size = self.config.algo, samples.group_size or self.config.algo.group_size
        batch = batching.pad_batch(
            samples.completions, group_size, self.tokenizer.pad_token_id, self.device
        )
        mask = batch["loss_mask"].float()  # (B, T_c) the tokens trained on
        if chunks is None:
            groups = list(range(batch["prompt_ids"].shape[0]))
            chunks = self._micro(groups, algo.mini_batches * algo.grad_accum, batch, group_size)
        single_pass = algo.epochs == 1 and algo.mini_batches == 1
        kl_on = algo.kl_coef > 0
        kl_reward = kl_on and algo.kl_in == "reward"
        need_old = not single_pass or self.value_head is not None or kl_reward
        self.model.train()
        old_lp, old_values = (None, None)
        if need_old:
            old_lp, old_values = self.forward.frozen(batch, chunks, group_size)
        ref_lp = (
            self.forward.frozen(batch, chunks, group_size, reference=True)[0] if kl_on else None
        )
        adv, returns = compute_advantages(
            self.estimator, algo, samples, mask,
            old_logprobs=old_lp, ref_logprobs=ref_lp, values=old_values,
            world=self.world, tokenizer=self.tokenizer,
        )  # fmt: skip
        engine_lp = batching.engine_logprobs(samples.completions, mask.shape[1], mask.device)
        is_weights = None
        if engine_lp is not None and old_lp is not None and self.separate_engine:
            is_weights = truncated_is_weights(old_lp, engine_lp, self.config.engines.is_cap)
        return StepTensors(
            batch=batch,
            group_size=group_size,
            mask=mask,
            advantages=adv,
            returns=returns,
            old_logprobs=old_lp,
            old_values=old_values,
            ref_logprobs=ref_lp,
            engine_logprobs=engine_lp,
            is_weights=is_weights,
        )

    def update(self, samples: Samples) -> dict[str, float]:
        """``algo.epochs`` passes over the batch, each ``algo.mini_batches`` optimizer steps of
        ``algo.grad_accum`` micro-batches (each also kept under the token budget)."""
        algo, world = self.config.algo, self.world
        t = self.tensors(samples)
        groups = list(range(t.batch["prompt_ids"].shape[0]))
        self.objective.reset()
        sums: dict[str, float] = {}
        weights: dict[str, float] = {}
        generator = torch.Generator().manual_seed(self.config.train.seed * 7919 + self.weights_step)
        losses = []
        for epoch in range(algo.epochs):
            order = groups
            if algo.mini_batches > 1:
                order = [groups[i] for i in torch.randperm(len(groups), generator=generator)]
            for mini in batching.split_evenly(order, algo.mini_batches):
                total, grad_norm = self._optimizer_step(t, mini, epoch, sums, weights)
                losses.append(total)
                _record(sums, weights, "grad_norm", grad_norm)
        stats = {k: all_sum(sums[k], world) / all_sum(weights[k], world) for k in sums}
        if t.engine_logprobs is not None:
            stats["engine_logprob_gap_max"] = all_max(self.objective.gap_max, world)
        stats["loss"] = sum(losses) / len(losses)
        stats["lr"] = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        return stats

    def _optimizer_step(self, t: StepTensors, mini: list[int], epoch: int, sums, weights):
        """One optimizer step on the prompt groups ``mini``; returns (loss, grad norm)."""
        world = self.world
        rows = batching.group_rows(mini, t.group_size)
        aggregation = self.objective.aggregation
        scale = Scale(
            denom=all_sum(denominator(t.mask[rows], aggregation, self.objective.constant), world),
            n_tokens=all_sum(float(t.mask[rows].sum()), world),
        )
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        micros = self._micro(mini, self.config.algo.grad_accum, t.batch, t.group_size)
        for micro, real in self._lockstep(micros):
            parts = self.objective(t, micro, scale, epoch)
            if not real:  # keeps a sharded model's collectives in step with the other ranks
                (parts["loss"] * 0).backward()
                continue
            parts["loss"].backward()
            total += parts.pop("loss").item()
            tokens = float(t.mask[batching.group_rows(micro, t.group_size)].sum())
            for key, value in parts.items():
                _record(sums, weights, key, value, tokens)
        max_norm = self.config.optim.max_grad_norm
        if self.sharded:  # FSDP2 has reduced the model's gradients; the value head's are left
            sum_gradients(self.value_head_parameters(), world)
            grad_norm = clip_gradients(self.trainable_parameters(), max_norm)
        else:
            sum_gradients(self.trainable_parameters(), world)
            grad_norm = torch.nn.utils.clip_grad_norm_(self.trainable_parameters(), max_norm)
        self.optimizer.step()
        return all_sum(total, world), float(grad_norm)

    def _lockstep(self, chunks: list) -> list:
        """``(chunk, real)``: padded to every rank's count when sharded (see assay.sharding)."""
        if self.sharded:
            return lockstep(chunks, self.world)
        return [(c, True) for c in chunks]

    def _micro(self, groups: list[int], parts: int, batch, group_size: int) -> list[list[int]]:
        """``groups`` in ``parts`` micro-batches, each split further to fit the token budget."""
        budget = self.config.algo.micro_batch_tokens
        if budget is None:
            budget = self.rollout.micro_batch_tokens
        chunks = batching.split_evenly(groups, parts)
        return batching.fit_token_budget(chunks, batch, group_size, budget)

    # --- weights -------------------------------------------------------------------------------
    def policy_state_dict(self):
        """The policy's weights under the base model's names; with LoRA, the adapters merged in
        (W + scale * B A, computed without touching the trained weights). Sharded: an iterator
        of whole tensors, gathered one at a time (a collective: every rank must consume it)."""
        state = merged_state_dict(self.model) if is_peft(self.model) else self.model.state_dict()
        return stream_full(state) if self.sharded else state

    def sync_weights(self) -> float:
        """Copy the learner's weights into a separate engine; returns the seconds it took."""
        t0 = time.perf_counter()
        if self.separate_engine:
            self.engine.update_weights(self.policy_state_dict())
        return time.perf_counter() - t0

    def finish(self) -> None:
        """Wait for a background rollout and bring the engine up to date (before evaluation).
        Rank 0 may call it alone (it evaluates while the others wait): a sharded learner's
        engine is synced after every update already, and a sync would need every rank."""
        self.rollout.finish()
        if not self.sharded:
            self.sync_weights()

    def eval_engine(self) -> GenerationEngine:
        """An engine with the current weights that is free now: the rollout engine, unless a
        background rollout may be using it (then one over the learner's own model)."""
        if self.rollout.engine_busy:
            return HFEngine(self.model, self.tokenizer)
        return self.engine

    def close(self) -> None:
        """Stop the rollout strategy and release the engine. Safe to call while another error
        is on its way out: failures here do not hide it."""
        try:
            self.rollout.close()
        finally:
            if self.separate_engine:
                self.engine.close()

    # --- trainer state -------------------------------------------------------------------------
    def trainer_state(self) -> dict[str, Any]:
        """What ``trainer_state.pt`` holds. Sharded, the optimizer state is not in it: each rank
        writes its shards (``trainers.rl.checkpoint``)."""
        state: dict[str, Any] = {"scheduler": self.scheduler.state_dict()}
        if not self.sharded:
            state["optimizer"] = self.optimizer.state_dict()
        if self.value_head is not None:
            state["value_head"] = self.value_head.state_dict()
        return state

    def load_trainer_state(self, state: dict[str, Any], checkpoint: Path | None = None) -> None:
        """Resume from ``state``; the optimizer from it, or from the shards a sharded run wrote
        into ``checkpoint`` (on any number of ranks; every rank calls this)."""
        if self.value_head is not None:
            self.value_head.load_state_dict(state["value_head"])
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
        elif checkpoint is not None and has_optimizer_shards(checkpoint):
            load_optimizer_shards(self, checkpoint, state["optimizer_groups"])
        else:
            raise CheckpointError(f"{checkpoint} holds no optimizer state to resume from.")
        self.scheduler.load_state_dict(state["scheduler"])
        # The schedule follows this run's config (a resume may extend train.steps), not the
        # learning rate saved with the checkpoint.
        factor = lr_lambda(self.config)(self.scheduler.last_epoch)
        for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs, strict=True):
            group["lr"] = base * factor
        self.scheduler._last_lr = [g["lr"] for g in self.optimizer.param_groups]


def _record(sums: dict, weights: dict, key: str, value: float, weight: float = 1.0) -> None:
    """Accumulate a weighted mean (reduced over ranks at the end of the update)."""
    sums[key] = sums.get(key, 0.0) + value * weight
    weights[key] = weights.get(key, 0.0) + weight


def _device(model) -> torch.device:
    return next(model.parameters()).device
