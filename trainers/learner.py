"""The RL learner: one call of :meth:`RLLearner.step` is one RL step of any algorithm in
:mod:`trainers.algos`, on one process or one rank of several.

Each step reads like the algorithm: rollout -> score -> advantages -> update (epochs x
mini-batches x micro-batches) -> sync weights. ``trainers.rl`` wraps it in the job (run
directory, evaluation, checkpoints, logging).
"""

from __future__ import annotations

import copy
import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

import envs
from trainers.algos import (
    ValueHead,
    aggregate,
    kl_estimate,
    overlong_penalty,
    registry,
    truncated_is_weights,
    value_loss,
    varied_groups,
)
from trainers.algos.policy import denominator
from trainers.config import RLConfig
from trainers.distributed import (
    World,
    all_gather_objects,
    all_gather_rows,
    all_max,
    all_sum,
    current_world,
    sum_gradients,
)
from trainers.engines.base import Completion, GenerationEngine
from trainers.engines.factory import engine_for_learner
from trainers.engines.hf import HFEngine
from trainers.logprobs import grouped_forward

SEEDS_PER_RUN_SEED = 1_000_000  # train seeds: seed * 1e6 + k, so they stay below eval's 1e9


@dataclass
class Rollout:
    """One step's training batch on this rank: ``P`` prompt groups of ``G`` completions,
    flattened group-major."""

    completions: list[Completion]  # (P*G,)
    rewards: torch.Tensor  # (P, G) what the env returned
    infos: list[dict[str, Any]] = field(default_factory=list)  # (P*G,)
    shaped: torch.Tensor | None = None  # (P, G) rewards the advantages use (overlong penalty)
    sampled_rewards: list[float] = field(default_factory=list)  # every completion sampled
    sampled_valid: list[bool] = field(default_factory=list)
    dropped_groups: int = 0  # dynamic sampling: groups with equal rewards left out
    rounds: int = 1  # dynamic sampling: prompt rounds generated
    group_size: int = 0
    """Completions per shared prompt in the batch (0: ``algo.group_size``); multi-turn
    rollouts put every context in a group of its own."""
    advantages: torch.Tensor | None = None
    """(B,) per completion, where the rollout computed them (multi-turn: each context gets its
    seat's episode advantage); else the learner computes them from ``rewards``."""
    row_rewards: list[float] | None = None
    """(B,) each completion's reward where ``rewards`` is not laid out like the completions."""
    extra_metrics: dict[str, float] = field(default_factory=dict)
    """Rollout-level means logged with the step's metrics (multi-turn: episode steps, ...)."""

    def reward_of(self, index: int) -> float:
        if self.row_rewards is not None:
            return self.row_rewards[index]
        return float(self.rewards.flatten()[index])

    @property
    def train_rewards(self) -> torch.Tensor:
        return self.rewards if self.shaped is None else self.shaped


def train_seed(config: RLConfig, step: int, index: int, round_: int = 0) -> int:
    """Env seed of prompt ``index`` of ``step`` (1-based) in sampling round ``round_``: a pure
    function, so a resumed run replays the same episodes."""
    rounds = config.sample_rounds
    pps = config.algo.prompts_per_step
    return config.train.seed * SEEDS_PER_RUN_SEED + ((step - 1) * rounds + round_) * pps + index


def lr_lambda(config: RLConfig):
    """Warm-up then constant or cosine decay, as a multiplier of ``optim.lr`` per RL step."""
    opt, total = config.optim, config.train.steps

    def factor(step: int) -> float:  # step counts from 0
        if opt.warmup_steps and step < opt.warmup_steps:
            return (step + 1) / opt.warmup_steps
        if opt.schedule == "constant":
            return 1.0
        span = max(total - opt.warmup_steps, 1)
        progress = min((step - opt.warmup_steps) / span, 1.0)
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return opt.min_lr_ratio + (1 - opt.min_lr_ratio) * cosine

    return factor


def _chunks(items: list[int], n: int) -> list[list[int]]:
    """``items`` split into ``n`` contiguous, nearly equal, non-empty parts (n <= len)."""
    n = max(1, min(n, len(items)))
    size, extra = divmod(len(items), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (i < extra)
        out.append(items[start:end])
        start = end
    return out


class RLLearner:
    """Holds the policy (optionally with LoRA adapters), its optimizer, a value head (PPO), a
    reference policy (KL) and the rollout engine.

    With a separate engine (a Ray pool, vLLM, or off-policy mode) each step logs
    ``engine_logprob_gap`` (mean |log p_engine - log p_learner| over the sampled tokens) and
    applies truncated importance weights. In off-policy mode the rollout of step t+1 is generated
    in the background while step t trains, so step t trains on samples from the weights of step
    t-1.
    """

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
        learner's model); by default one is built from ``config.rollout``. ``reference``: the
        frozen policy for the KL term (default: a copy of ``model`` as given, or the base model
        under LoRA adapters)."""
        self.config = config
        self.world = world or current_world()
        self.tokenizer = tokenizer
        algo = config.algo
        self.estimator = algo.estimator()
        self.policy_loss = registry.loss(algo.setting("policy_loss"))
        self.loss_agg = algo.setting("loss_agg")
        self.loss_constant = float(algo.loss_constant or config.sampling.max_new_tokens)
        if config.lora.enabled and not _is_peft(model):
            model = add_lora(model, config)
        self.model = model
        self.reference = None
        if algo.kl_coef > 0 and not config.lora.enabled:
            self.reference = reference if reference is not None else copy.deepcopy(model)
            self.reference.eval().requires_grad_(False)
        self.value_head = None
        if self.estimator.needs_values:
            hidden = _base(model).config.hidden_size
            self.value_head = ValueHead(hidden).to(model.device)
        if engine is not None:
            self.engine, self.separate_engine = engine, True
        else:
            self.engine, self.separate_engine = engine_for_learner(config, model, tokenizer)
        if self.separate_engine:
            self.sync_weights()
        self._background = ThreadPoolExecutor(max_workers=1) if config.rollout.off_policy else None
        self._next_rollout: Future | None = None
        self.last_sync_s = 0.0  # off-policy mode: the sync before this step's update
        self.last_rollout: Rollout | None = None
        self.env_at = None  # step -> env, for a curriculum; else the env passed to step()
        self.updating = False
        self.weights_step = 0  # the last step whose update the weights include
        self._width = algo.group_size  # completions per prompt in the batch being trained on
        self.seats: dict[str, Any] = {}  # multi-turn: policies of the agents not trained
        self._seat_engines: list = []
        if config.rollout.multi_turn:
            from trainers.multi_turn import build_seats

            self.seats, self._seat_engines = build_seats(config, model, tokenizer)
        opt = config.optim
        self.optimizer = torch.optim.AdamW(
            self.trainable_parameters(), lr=opt.lr, weight_decay=opt.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(config))

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        params = [p for p in self.model.parameters() if p.requires_grad]
        if self.value_head is not None:
            params += list(self.value_head.parameters())
        return params

    # --- rollout -------------------------------------------------------------------------------
    def prompt_indices(self) -> range:
        """This rank's share of each round's ``prompts_per_step`` prompts."""
        per_rank = self.config.algo.prompts_per_step // self.world.size
        return range(self.world.rank * per_rank, (self.world.rank + 1) * per_rank)

    def rollout(self, env, step: int) -> Rollout:
        cfg = self.config
        if cfg.rollout.multi_turn:
            from trainers.multi_turn import episode_rollout

            return episode_rollout(self, env, step)
        dynamic = cfg.algo.setting("dynamic_sampling")
        rounds = cfg.algo.max_sample_rounds if dynamic else 1
        need = len(self.prompt_indices())
        kept: list[tuple[list[Completion], list[float], list[dict]]] = []
        spare: list[tuple[list[Completion], list[float], list[dict]]] = []
        out = Rollout([], torch.zeros(0))
        for round_ in range(rounds):
            seeds = [train_seed(cfg, step, i, round_) for i in self.prompt_indices()]
            prompts = [env.reset(seed=s)[0] for s in seeds]
            seed = (cfg.train.seed * 1_000_003 + step) * 131 + round_ * 17 + self.world.rank
            sampling = cfg.sampling.engine_sampling(cfg.algo.group_size, seed)
            groups = self.engine.generate(prompts, sampling)
            scored = self.score(env, seeds, groups)
            out.rounds = round_ + 1
            keep = varied_groups(torch.tensor([r for _, r, _ in scored]))
            for (group, rewards, infos), varied in zip(scored, keep.tolist(), strict=True):
                out.sampled_rewards += rewards
                out.sampled_valid += [bool(i.get("valid", True)) for i in infos]
                if not dynamic or varied:
                    kept.append((group, rewards, infos))
                else:
                    spare.append((group, rewards, infos))
            if len(kept) >= need:
                break
        batch = (kept + spare)[:need]  # budget spent: equal-reward groups fill the rest
        out.dropped_groups = len(spare) - max(0, need - len(kept))  # equal-reward, not trained on
        out.completions = [c for group, _, _ in batch for c in group]
        out.rewards = torch.tensor([rewards for _, rewards, _ in batch], dtype=torch.float32)
        out.infos = [i for _, _, infos in batch for i in infos]
        self.shape_rewards(out)
        return out

    # --- score ---------------------------------------------------------------------------------
    @staticmethod
    def score(env, seeds: list[int], groups: list[list[Completion]]):
        """(completions, rewards, infos) per group. Single-turn: each completion replays its
        episode's start (``reset(seed)``) and answers with one ``step``; envs with a judge
        score the whole batch in one call (``envs.score_answers``)."""
        pairs = [(seed, c.text) for seed, group in zip(seeds, groups, strict=True) for c in group]
        results = iter(envs.score_answers(env, pairs))
        out = []
        for group in groups:
            scored = [next(results) for _ in group]
            out.append((group, [r for r, _ in scored], [i for _, i in scored]))
        return out

    def shape_rewards(self, rollout: Rollout) -> None:
        """DAPO's overlong penalty, added to the rewards the advantages see."""
        buffer = self.config.algo.setting("overlong_buffer")
        limit = self.config.sampling.max_new_tokens
        if buffer == -1:
            buffer = limit // 4
        if not buffer:
            return
        lengths = torch.tensor([len(c.token_ids) for c in rollout.completions])
        truncated = torch.tensor([c.finish_reason == "length" for c in rollout.completions])
        # A completion cut at the limit would have been longer: it gets the full penalty.
        lengths = torch.where(truncated, torch.full_like(lengths, limit + 1), lengths)
        penalty = overlong_penalty(lengths, limit, buffer).view_as(rollout.rewards)
        rollout.shaped = rollout.rewards + self.config.algo.overlong_penalty * penalty

    # --- batches -------------------------------------------------------------------------------
    def _batch(self, completions: list[Completion], width: int = 0) -> dict[str, torch.Tensor]:
        """Pad one prompt per group (left) and every completion (right) into tensors.
        ``loss_mask`` is ``completion_mask`` without the env's tokens of multi-turn contexts."""
        pad = self.tokenizer.pad_token_id
        g = width or self._width
        prompts = [c.prompt_ids for c in completions[::g]]  # a group shares its prompt
        width_p = max(len(p) for p in prompts)
        width_c = max(max(len(c.token_ids) for c in completions), 1)
        prompt_ids = torch.full((len(prompts), width_p), pad, dtype=torch.long)  # (P, T_p)
        prompt_mask = torch.zeros_like(prompt_ids)
        for i, p in enumerate(prompts):
            prompt_ids[i, width_p - len(p) :] = torch.tensor(p)
            prompt_mask[i, width_p - len(p) :] = 1
        completion_ids = torch.full((len(completions), width_c), pad, dtype=torch.long)  # (B, T_c)
        completion_mask = torch.zeros_like(completion_ids)
        loss_mask = torch.zeros_like(completion_ids)
        for i, c in enumerate(completions):
            completion_ids[i, : len(c.token_ids)] = torch.tensor(c.token_ids, dtype=torch.long)
            completion_mask[i, : len(c.token_ids)] = 1
            train = c.train_mask if c.train_mask is not None else [1] * len(c.token_ids)
            loss_mask[i, : len(train)] = torch.tensor(train, dtype=torch.long)
        device = self.model.device
        return {
            "prompt_ids": prompt_ids.to(device),
            "prompt_mask": prompt_mask.to(device),
            "completion_ids": completion_ids.to(device),
            "completion_mask": completion_mask.to(device),
            "loss_mask": loss_mask.to(device),
        }

    def _rows(self, groups: list[int]) -> torch.Tensor:
        g = self._width
        return torch.tensor([p * g + j for p in groups for j in range(g)], dtype=torch.long)

    def _slice(self, batch: dict[str, torch.Tensor], groups: list[int]) -> dict[str, torch.Tensor]:
        idx = torch.tensor(groups, dtype=torch.long)
        rows = self._rows(groups)
        prompt_mask = batch["prompt_mask"][idx]
        # Prompts are left-padded to the batch's longest: drop the columns that are padding in
        # every prompt of this slice (positions come from the mask, so nothing else changes).
        keep = int(prompt_mask.any(0).nonzero()[0]) if prompt_mask.any() else 0
        return {
            "prompt_ids": batch["prompt_ids"][idx][:, keep:],
            "prompt_mask": prompt_mask[:, keep:],
            "completion_ids": batch["completion_ids"][rows],
            "completion_mask": batch["completion_mask"][rows],
        }

    def _fit(self, chunks: list[list[int]], batch) -> list[list[int]]:
        """Split chunks of prompt groups so that none holds more than ``micro_batch_tokens``: as
        computed, every prompt padded to the chunk's longest and every completion to the
        batch's width (a group is never split)."""
        budget = self.config.algo.micro_batch_tokens
        if budget is None:
            budget = 2048 if self._width == 1 and self.config.rollout.multi_turn else 0
        if not budget:
            return chunks
        prompt = batch["prompt_mask"].sum(1).tolist()
        rows = self._width * batch["completion_ids"].shape[1]
        out = []
        for chunk in chunks:
            part, longest = [], 0
            for group in chunk:
                wider = max(longest, prompt[group])
                if part and (len(part) + 1) * (wider + rows) > budget:
                    out.append(part)
                    part, wider = [], prompt[group]
                part.append(group)
                longest = wider
            if part:
                out.append(part)
        return out

    def _autocast(self):
        if self.config.model.autocast != "bf16":
            return nullcontext()
        return torch.autocast(self.model.device.type, dtype=torch.bfloat16)

    def _forward(self, model, batch, entropy: bool = False, entropy_grad=False, hidden=False):
        with self._autocast():
            return grouped_forward(
                model,
                batch["prompt_ids"],
                batch["prompt_mask"],
                batch["completion_ids"],
                batch["completion_mask"],
                self.config.sampling.temperature,
                with_entropy=entropy,
                entropy_grad=entropy_grad,
                with_hidden=hidden,
            )

    @torch.no_grad()
    def _frozen_pass(self, batch, chunks: list[list[int]], reference: bool = False):
        """Log-probs (and values) of the whole batch without gradients, micro-batch by
        micro-batch: the sampling policy's (``old``), or the reference policy's. Runs in eval
        mode (no dropout), as generation does."""
        was_training = self.model.training
        self.model.eval()
        try:
            return self._frozen_pass_eval(batch, chunks, reference)
        finally:
            self.model.train(was_training)

    def _frozen_pass_eval(self, batch, chunks: list[list[int]], reference: bool):
        width = batch["completion_ids"].shape
        logprobs = torch.zeros(width, device=self.model.device)
        values = torch.zeros(width, device=self.model.device) if not reference else None
        for groups in chunks:
            rows = self._rows(groups).to(self.model.device)
            sub = self._slice(batch, groups)
            if reference and self.reference is None:  # LoRA: the base model is the reference
                with self.model.disable_adapter():
                    out = self._forward(self.model, sub)
            else:
                model = self.reference if reference else self.model
                want_hidden = values is not None and self.value_head is not None
                out = self._forward(model, sub, hidden=want_hidden)
                if want_hidden:
                    values[rows] = self.value_head(out.hidden).float()
            logprobs[rows] = out.logprobs.float()
        return logprobs, values

    def _engine_logprobs(self, completions: list[Completion], width: int) -> torch.Tensor | None:
        """The engine's log-probs as a (B, T_c) tensor, or None if it reported none."""
        if not all(len(c.logprobs) == len(c.token_ids) for c in completions):
            return None
        out = torch.zeros(len(completions), width)
        for i, c in enumerate(completions):
            out[i, : len(c.logprobs)] = torch.tensor(c.logprobs)
        return out.to(self.model.device)

    # --- advantages ----------------------------------------------------------------------------
    def advantages(
        self,
        rollout: Rollout,
        mask: torch.Tensor,
        old_lp: torch.Tensor | None,
        ref_lp: torch.Tensor | None,
        values: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, float]]:
        """Per-token advantages (B, T_c), PPO returns, and stats. Group estimators see the
        whole batch across ranks (REINFORCE++ normalises over it)."""
        algo = self.config.algo
        if rollout.advantages is not None:
            return rollout.advantages.to(mask.device).float().unsqueeze(1) * mask, None, {}
        rewards = rollout.train_rewards.to(mask.device).float()  # (P, G)
        kl_reward = algo.kl_coef > 0 and algo.kl_in == "reward"
        stats: dict[str, float] = {}
        if self.estimator.needs_values:
            token_rewards = self.token_rewards(rollout, mask)
            if kl_reward:
                token_rewards = token_rewards - algo.kl_coef * kl_estimate(old_lp, ref_lp, "k1")
            adv, returns = self.estimator.fn(token_rewards, values, mask, algo.gamma, algo.lam)
            if algo.whiten_advantages:
                adv = self._whiten(adv, mask)
            return adv, returns, stats
        if kl_reward:  # the sequence's summed k1 comes off its reward
            kl_seq = (kl_estimate(old_lp, ref_lp, "k1") * mask).sum(1).view_as(rewards)
            rewards = rewards - algo.kl_coef * kl_seq
        everyone = all_gather_rows(rewards, self.world)  # (P_total, G)
        adv_all = self.estimator.fn(everyone)
        mine = adv_all[self.world.rank * len(rewards) : (self.world.rank + 1) * len(rewards)]
        return mine.flatten().unsqueeze(1) * mask, None, stats

    def _whiten(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.to(x.dtype)
        n = all_sum(float(m.sum()), self.world)
        mean = all_sum(float((x * m).sum()), self.world) / max(n, 1)
        var = all_sum(float((((x - mean) * m) ** 2).sum()), self.world) / max(n, 1)
        return (x - mean) / math.sqrt(var + 1e-8) * m

    def token_rewards(self, rollout: Rollout, mask: torch.Tensor) -> torch.Tensor:
        """(B, T_c): each completion's reward on its last token, plus the env's step rewards
        (``info["step_rewards"]``: ``[[char_end, reward], ...]``) on the token that ends at or
        after each ``char_end`` of the completion text."""
        out = torch.zeros(mask.shape, device=mask.device)
        flat = rollout.train_rewards.flatten()
        for i, c in enumerate(rollout.completions):
            n = len(c.token_ids)
            if n == 0:
                continue
            out[i, n - 1] += flat[i]
            steps = rollout.infos[i].get("step_rewards") if i < len(rollout.infos) else None
            if steps:
                ends = _token_ends(self.tokenizer, c.token_ids)
                for char_end, value in steps:
                    t = next((k for k, e in enumerate(ends) if e >= char_end), n - 1)
                    out[i, t] += float(value)
        return out

    # --- update --------------------------------------------------------------------------------
    def update(self, rollout: Rollout) -> dict[str, float]:
        cfg, algo = self.config, self.config.algo
        self._width = rollout.group_size or algo.group_size
        batch = self._batch(rollout.completions)
        mask = batch["loss_mask"].float()  # (B, T_c) the tokens trained on
        n_groups = batch["prompt_ids"].shape[0]
        groups = list(range(n_groups))
        micro_all = self._fit(_chunks(groups, algo.mini_batches * algo.grad_accum), batch)
        single_pass = algo.epochs == 1 and algo.mini_batches == 1
        kl_on = algo.kl_coef > 0
        need_old = (
            not single_pass or self.value_head is not None or (kl_on and algo.kl_in == "reward")
        )
        self.model.train()
        old_lp, old_values = self._frozen_pass(batch, micro_all) if need_old else (None, None)
        ref_lp = self._frozen_pass(batch, micro_all, reference=True)[0] if kl_on else None
        adv, returns, stats = self.advantages(rollout, mask, old_lp, ref_lp, old_values)
        engine_lp = self._engine_logprobs(rollout.completions, mask.shape[1])
        is_weights = None
        if engine_lp is not None and old_lp is not None and self.separate_engine:
            is_weights = truncated_is_weights(old_lp, engine_lp, cfg.rollout.is_cap)
        self._gap_max = 0.0

        sums: dict[str, float] = {}
        weights: dict[str, float] = {}

        def record(key: str, value: float, weight: float = 1.0) -> None:
            sums[key] = sums.get(key, 0.0) + value * weight
            weights[key] = weights.get(key, 0.0) + weight

        generator = torch.Generator().manual_seed(cfg.train.seed * 7919 + self.weights_step)
        losses = []
        for epoch in range(algo.epochs):
            order = groups
            if algo.mini_batches > 1:
                order = [groups[i] for i in torch.randperm(n_groups, generator=generator)]
            for mini in _chunks(order, algo.mini_batches):
                micros = self._fit(_chunks(mini, algo.grad_accum), batch)
                rows = self._rows(mini)
                denom = all_sum(
                    denominator(mask[rows], self.loss_agg, self.loss_constant), self.world
                )
                n_tokens = all_sum(float(mask[rows].sum()), self.world)
                self.optimizer.zero_grad(set_to_none=True)
                total = 0.0
                for micro in micros:
                    parts = self._micro_loss(
                        batch, micro, mask, adv, returns, old_lp, old_values, ref_lp,
                        engine_lp, is_weights, denom, n_tokens, epoch,
                    )  # fmt: skip
                    parts["loss"].backward()
                    total += parts.pop("loss").item()
                    tokens = float(mask[self._rows(micro)].sum())
                    for key, value in parts.items():
                        record(key, value, tokens)
                sum_gradients(self.trainable_parameters(), self.world)
                grad_norm = torch.nn.utils.clip_grad_norm_(
                    self.trainable_parameters(), cfg.optim.max_grad_norm
                )
                self.optimizer.step()
                losses.append(all_sum(total, self.world))
                record("grad_norm", float(grad_norm))
        stats.update(
            {k: all_sum(sums[k], self.world) / all_sum(weights[k], self.world) for k in sums}
        )
        if engine_lp is not None:
            stats["engine_logprob_gap_max"] = all_max(self._gap_max, self.world)
        stats["loss"] = sum(losses) / len(losses)
        stats["lr"] = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        return stats

    def _micro_loss(
        self, batch, micro, mask, adv, returns, old_lp, old_values, ref_lp, engine_lp,
        is_weights, denom, n_tokens, epoch,
    ) -> dict[str, Any]:  # fmt: skip
        """The loss of one micro-batch, scaled so that micro-batches (and ranks) add up to the
        mini-batch's loss, and its diagnostics."""
        algo = self.config.algo
        dev = self.model.device
        rows = self._rows(micro).to(dev)
        sub = self._slice(batch, micro)
        m = mask[rows]
        out = self._forward(
            self.model,
            sub,
            entropy=True,
            entropy_grad=algo.entropy_coef > 0,
            hidden=self.value_head is not None,
        )
        logprobs = out.logprobs
        old = old_lp[rows] if old_lp is not None else logprobs.detach()
        weights = is_weights[rows] if is_weights is not None else None
        engine_stats: dict[str, float] = {}
        if engine_lp is not None and weights is None and self.separate_engine:
            weights = truncated_is_weights(old, engine_lp[rows], self.config.rollout.is_cap)
        if epoch == 0 and engine_lp is not None:  # token-weighted means over the whole batch
            gap = (old - engine_lp[rows]).abs() * m
            engine_stats["engine_logprob_gap"] = (gap.sum() / m.sum().clamp(min=1)).item()
            self._gap_max = max(self._gap_max, gap.max().item())
            if weights is not None:
                engine_stats.update(_is_stats(weights, m, self.config.rollout.is_cap))
        agg = {"mode": self.loss_agg, "denom": denom, "constant": self.loss_constant}
        loss, diag = self.policy_loss(
            logprobs,
            old,
            adv[rows],
            m,
            algo.setting("clip_low"),
            algo.setting("clip_high"),
            ratio_level=algo.setting("ratio_level"),
            is_weights=weights,
            aggregation=self.loss_agg,
            denom=denom,
            constant=self.loss_constant,
        )
        parts: dict[str, Any] = {**diag, **engine_stats}
        token_mean = {"mode": "token-mean", "denom": n_tokens}
        if ref_lp is not None:
            kl = kl_estimate(logprobs, ref_lp[rows], algo.kl_estimator)
            if algo.kl_in == "loss":
                loss = loss + algo.kl_coef * aggregate(kl, m, **agg)
            parts["kl"] = ((kl.detach() * m).sum() / m.sum().clamp(min=1)).item()
        if out.entropy is not None:
            entropy = out.entropy
            if algo.entropy_coef > 0:
                loss = loss - algo.entropy_coef * aggregate(entropy, m, **agg)
            parts["entropy"] = ((entropy.detach() * m).sum() / m.sum().clamp(min=1)).item()
        if self.value_head is not None:
            values = self.value_head(out.hidden).float()
            v_loss = value_loss(values, old_values[rows], returns[rows], algo.value_clip)
            loss = loss + algo.vf_coef * aggregate(v_loss, m, **token_mean)
            parts["value_loss"] = ((v_loss.detach() * m).sum() / m.sum().clamp(min=1)).item()
            parts["value_mean"] = ((values.detach() * m).sum() / m.sum().clamp(min=1)).item()
        parts["loss"] = loss
        return parts

    # --- sync weights --------------------------------------------------------------------------
    def policy_state_dict(self) -> dict[str, torch.Tensor]:
        """The policy's weights under the base model's names; with LoRA, the adapters merged in
        (W + scale * B A, computed without touching the trained weights)."""
        if not _is_peft(self.model):
            return self.model.state_dict()
        return merged_state_dict(self.model)

    def sync_weights(self) -> float:
        """Copy the learner's weights into a separate engine; returns the seconds it took."""
        t0 = time.perf_counter()
        if self.separate_engine:
            self.engine.update_weights(self.policy_state_dict())
        return time.perf_counter() - t0

    def finish(self) -> None:
        """Wait for a background rollout and bring the engine up to date (before evaluation)."""
        if self._next_rollout is not None:
            pending, self._next_rollout = self._next_rollout, None
            pending.result()
        self.sync_weights()

    def eval_engine(self) -> GenerationEngine:
        """An engine with the current weights that is free now: the rollout engine, unless a
        background rollout is using it (then one over the learner's own model)."""
        if self._background is not None:
            return HFEngine(self.model, self.tokenizer)
        return self.engine

    def close(self) -> None:
        """Stop the background rollout (its result is dropped) and release the engine. Safe to
        call while another error is on its way out: failures here do not hide it."""
        try:
            if self._next_rollout is not None:
                pending, self._next_rollout = self._next_rollout, None
                if not pending.cancel():  # already running: wait; its error is moot now
                    pending.exception()
            if self._background is not None:
                self._background.shutdown()
        finally:
            for engine in self._seat_engines:
                engine.close()
            if self.separate_engine:
                self.engine.close()

    def _rollout_for(self, env, step: int) -> Rollout:
        """This step's rollout; in off-policy mode the one generated during the last update
        (from weights one step older), and the next one is started before returning."""
        if self._background is None:
            return self.rollout(env, step)
        pending = self._next_rollout or self._background.submit(self.rollout, env, step)
        self._next_rollout = None
        rollout = pending.result()
        self.last_sync_s = self.sync_weights()  # the engine is idle now: the current weights
        if step < self.config.train.steps:  # no rollout for a step that will not run
            next_env = self.env_at(step + 1) if self.env_at is not None else env
            self._next_rollout = self._background.submit(self.rollout, next_env, step + 1)
        return rollout

    # --- one step ------------------------------------------------------------------------------
    def step(self, env, step: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        rollout = self._rollout_for(env, step)
        self.last_rollout = rollout
        t_rollout = time.perf_counter() - t0
        self.updating = True  # weights may be half-updated until this is False again
        stats = self.update(rollout)
        self.weights_step = step
        self.updating = False
        if self.separate_engine and self._background is None:
            stats["weight_sync_s"] = self.sync_weights()
        elif self._background is not None:  # synced before this step's update
            stats["weight_sync_s"] = self.last_sync_s
        elapsed = time.perf_counter() - t0
        return self.step_metrics(env, step, rollout, stats, elapsed, t_rollout)

    def step_metrics(self, env, step, rollout, stats, elapsed, t_rollout) -> dict[str, Any]:
        """Rollout metrics over every rank (rewards of every completion sampled this step)."""
        mine = {
            "sampled": rollout.sampled_rewards,
            "valid": rollout.sampled_valid,
            "batch": rollout.rewards.flatten().tolist(),
            "infos": [
                {k: float(i.get(k, 0.0)) for k in getattr(env, "metric_keys", ())}
                for i in rollout.infos
            ],
            "lengths": [_trained(c) for c in rollout.completions],
            "zero_std": (rollout.rewards.amax(1) == rollout.rewards.amin(1)).float().tolist(),
            "dropped": rollout.dropped_groups,
            "rounds": rollout.rounds,
            "extra": rollout.extra_metrics,
        }
        parts = all_gather_objects(mine, self.world)
        sampled = torch.tensor([r for p in parts for r in p["sampled"]])
        valid = [v for p in parts for v in p["valid"]]
        lengths = [n for p in parts for n in p["lengths"]]
        infos = [i for p in parts for i in p["infos"]]
        zero_std = [z for p in parts for z in p["zero_std"]]
        metrics: dict[str, Any] = {
            "step": step,
            "reward_mean": sampled.mean().item(),
            "reward_std": sampled.std().item() if len(sampled) > 1 else 0.0,
            "valid_rate": sum(valid) / len(valid),
            "zero_std_groups": sum(zero_std) / len(zero_std),
            "completion_len": sum(lengths) / len(lengths),
        }
        for key in getattr(env, "metric_keys", ()):
            metrics[key] = sum(i[key] for i in infos) / len(infos)
        for key in rollout.extra_metrics:
            metrics[key] = sum(p["extra"][key] for p in parts) / len(parts)
        if self.config.algo.setting("dynamic_sampling"):
            metrics["dropped_groups"] = sum(p["dropped"] for p in parts)
            metrics["sample_rounds"] = max(p["rounds"] for p in parts)
            batch = [r for p in parts for r in p["batch"]]
            metrics["batch_reward_mean"] = sum(batch) / len(batch)
        if rollout.shaped is not None:
            metrics["overlong_penalty"] = (rollout.shaped - rollout.rewards).mean().item()
        metrics.update(stats)
        n_tokens = sum(lengths)
        metrics.update(
            step_time_s=elapsed,
            rollout_time_s=t_rollout,
            update_time_s=elapsed - t_rollout,
            tokens_per_s=n_tokens / elapsed,
        )
        return metrics

    def trainer_state(self) -> dict[str, Any]:
        state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}
        if self.value_head is not None:
            state["value_head"] = self.value_head.state_dict()
        return state

    def load_trainer_state(self, state: dict[str, Any]) -> None:
        if self.value_head is not None:
            self.value_head.load_state_dict(state["value_head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        # The schedule follows this run's config (a resume may extend train.steps), not the
        # learning rate saved with the checkpoint.
        factor = lr_lambda(self.config)(self.scheduler.last_epoch)
        for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs, strict=True):
            group["lr"] = base * factor
        self.scheduler._last_lr = [g["lr"] for g in self.optimizer.param_groups]


GRPOLearner = RLLearner  # the name it had when GRPO was the only algorithm


# --- helpers ---------------------------------------------------------------------------------------
def _trained(completion: Completion) -> int:
    """The number of tokens the policy generated (multi-turn contexts hold the env's too)."""
    if completion.train_mask is None:
        return len(completion.token_ids)
    return sum(completion.train_mask)


def _is_stats(weights: torch.Tensor, mask: torch.Tensor, cap: float) -> dict[str, float]:
    m = mask.to(weights.dtype)
    n = m.sum().clamp(min=1)
    return {
        "is_weight_mean": ((weights * m).sum() / n).item(),
        "is_weight_capped": (((weights >= cap).to(m.dtype) * m).sum() / n).item(),
    }


def _token_ends(tokenizer, token_ids: list[int]) -> list[int]:
    """Character length of the decoded text after each token (where each token ends)."""
    return [len(tokenizer.decode(token_ids[: k + 1])) for k in range(len(token_ids))]


def _is_peft(model) -> bool:
    return hasattr(model, "peft_config")


def _base(model):
    return model.get_base_model() if _is_peft(model) else model


def add_lora(model, config: RLConfig):
    """Wrap ``model`` with trainable LoRA adapters (``peft``); the base weights are frozen."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:  # pragma: no cover - peft is a dependency
        raise ImportError("lora.enabled needs the peft package: pip install peft") from None
    lora = config.lora
    tied = getattr(_base(model).config, "tie_word_embeddings", False)
    if tied and {"lm_head", "embed_tokens"} & set(lora.target_modules):
        raise ValueError(
            "lora.target_modules may not include lm_head or embed_tokens on a model with tied "
            "embeddings: merged weights would differ between the two tied matrices"
        )
    peft_config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        task_type="CAUSAL_LM",
    )
    # peft draws the adapters' initial A matrices from torch's global RNG: seed it from the run's
    # seed, so two runs with the same config start from the same adapters (and the global RNG
    # is left as it was for everything else).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.train.seed)
        return get_peft_model(model, peft_config)


def merged_state_dict(peft_model) -> dict[str, torch.Tensor]:
    """Base-model state dict with every LoRA delta added to its weight, under the plain model's
    parameter names (what an engine without adapter support loads)."""
    from peft.tuners.lora import LoraLayer

    base = peft_model.get_base_model()
    deltas = {}
    for name, module in base.named_modules():
        if isinstance(module, LoraLayer):
            for adapter in module.active_adapters:
                if adapter in module.lora_A:
                    delta = module.get_delta_weight(adapter).detach()
                    deltas[f"{name}.weight"] = deltas.get(f"{name}.weight", 0) + delta
    out = {}
    for key, value in base.state_dict().items():
        if "lora_" in key:
            continue
        plain = key.replace(".base_layer.", ".")
        out[plain] = value + deltas[plain].to(value.dtype) if plain in deltas else value
    return out
