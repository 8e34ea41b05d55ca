"""``algo:`` in an RL config: which algorithm (a preset from the registry) and its knobs; a
knob left unset takes the preset's value (:meth:`AlgoConfig.setting`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from trainers.algos import registry


@dataclass
class AlgoConfig:
    name: str = "grpo"
    """The algorithm: a preset in ``trainers.algos.registry`` (grpo, dapo, dr_grpo, rloo,
    reinforce_pp, gspo, ppo, or one you register); it sets every knob below left null."""
    group_size: int = 8
    """Completions sampled per prompt (>= 2 for group baselines; PPO may use 1)."""
    prompts_per_step: int = 2
    """Prompt groups per RL step; a step trains on prompts_per_step * group_size completions."""
    advantage: str | None = None
    """Advantage estimator (registered by name): group-normalised (``grpo``), group-centred
    (``dr_grpo``), leave-one-out (``rloo``), batch-normalised (``reinforce_pp``), or a value head
    with GAE (``gae``, PPO)."""
    policy_loss: str | None = None
    """Policy loss (registered by name): ``clip``, PPO's clipped surrogate with DAPO's decoupled
    range (token or sequence ratios, see ``ratio_level``)."""
    clip_low: float | None = None
    """epsilon_low: the ratio is clipped at 1 - clip_low for negative advantages."""
    clip_high: float | None = None
    """epsilon_high: the ratio is clipped at 1 + clip_high for positive advantages (DAPO's
    clip-higher: 0.28)."""
    loss_agg: Literal["token-mean", "seq-mean-token-mean", "seq-sum"] | None = None
    """How per-token terms become one loss (``trainers.algos.policy.aggregate``)."""
    loss_constant: int | None = None
    """The constant of ``seq-sum`` (Dr. GRPO); null: ``sampling.max_new_tokens``."""
    ratio_level: Literal["token", "sequence"] | None = None
    """``sequence``: GSPO's length-normalised sequence importance ratio."""
    dynamic_sampling: bool | None = None
    """DAPO: drop groups whose rewards are all equal and sample more prompts to refill."""
    max_sample_rounds: int = 3
    """Dynamic sampling's budget: at most this many rounds of prompts_per_step prompts a step."""
    overlong_buffer: int | None = None
    """DAPO's L_cache: soft length penalty over the last this-many tokens before
    ``sampling.max_new_tokens``; 0 disables it, -1 is a quarter of the limit."""
    overlong_penalty: float = 1.0
    """Factor on the overlong penalty (1 in DAPO)."""
    kl_coef: float = 0.0
    """beta of the KL to the frozen starting policy; 0 disables it (and the reference model)."""
    kl_estimator: Literal["k1", "k3"] = "k3"
    kl_in: Literal["loss", "reward"] = "loss"
    """``loss``: beta * KL is added to the loss; ``reward``: beta * k1 is subtracted from the
    rewards (per sequence for group estimators, per token for PPO)."""
    entropy_coef: float = 0.0
    """Entropy bonus: the loss subtracts entropy_coef * mean token entropy."""
    epochs: int = 1
    """Optimisation passes over each batch; > 1 (or mini_batches > 1) stores old log-probs."""
    mini_batches: int = 1
    """Optimizer steps per epoch; each takes a 1/mini_batches share of the prompt groups."""
    grad_accum: int = 1
    """Micro-batches per optimizer step (gradients accumulated; same result, less memory)."""
    micro_batch_tokens: int | None = None
    """Most tokens (prompts and padded completions) in one forward/backward pass: micro-batches
    are split further to stay under it (same result, less memory). None: no limit for
    single-turn rollouts, 2048 for multi-turn ones (a row per turn, each with its own prompt:
    configs/codenames_game.yaml peaks near 7 GB on a CPU with it, 17 GB at 8192); 0: no
    limit."""
    gamma: float = 1.0
    """PPO: discount per token."""
    lam: float = 0.95
    """PPO: GAE lambda."""
    vf_coef: float = 0.5
    """PPO: weight of the value loss."""
    value_clip: float = 0.2
    """PPO: clip range of the value update."""
    whiten_advantages: bool = True
    """PPO: normalise GAE advantages over the batch."""
    # Older spelling of clip_low/clip_high, kept so older configs still load.
    clip_eps: float | None = None
    """Deprecated: sets clip_low and clip_high together."""
    scale_rewards: bool | None = None
    """Deprecated: false turns GRPO's advantage into Dr. GRPO's (no std)."""

    def setting(self, key: str) -> Any:
        """A knob's value: the field if set, else the algorithm's preset."""
        value = getattr(self, key)
        if value is not None:
            return value
        if key in ("clip_low", "clip_high") and self.clip_eps is not None:
            return self.clip_eps
        if key == "advantage" and self.scale_rewards is False and self.name == "grpo":
            return "dr_grpo"
        return registry.PRESETS[self.name][key]

    def estimator(self) -> registry.AdvantageEstimator:
        """The advantage estimator in force (checked by :meth:`problems`)."""
        return registry.estimator(self.setting("advantage"))

    def problems(self) -> list[str]:
        out = []
        unknown = registry.unknown_name(registry.PRESETS, self.name, "algorithm")
        if unknown:
            return [f"name: {unknown}"]
        for key, table, what in (
            ("advantage", registry.ADVANTAGES, "advantage estimator"),
            ("policy_loss", registry.POLICY_LOSSES, "policy loss"),
        ):
            unknown = registry.unknown_name(table, self.setting(key), what)
            if unknown:
                out.append(f"{key}: {unknown}")
        if out:
            return out
        if self.micro_batch_tokens is not None and self.micro_batch_tokens < 0:
            out.append(
                f"micro_batch_tokens must be >= 0 (0: no limit), got {self.micro_batch_tokens}"
            )
        group = not self.estimator().needs_values
        if group and self.group_size < 2:
            out.append(
                f"group_size must be >= 2 for group-relative advantages, got {self.group_size}"
            )
        if self.group_size < 1:
            out.append(f"group_size must be >= 1, got {self.group_size}")
        if self.prompts_per_step < 1:
            out.append(f"prompts_per_step must be >= 1, got {self.prompts_per_step}")
        for key in ("epochs", "mini_batches", "grad_accum", "max_sample_rounds"):
            if getattr(self, key) < 1:
                out.append(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.mini_batches * self.grad_accum > self.prompts_per_step:
            out.append(
                "mini_batches * grad_accum must be <= prompts_per_step (batches split by prompt "
                f"group), got {self.mini_batches} * {self.grad_accum} > {self.prompts_per_step}"
            )
        for key in ("clip_low", "clip_high"):
            if not 0 < self.setting(key) < 1:
                out.append(f"{key} must be in (0, 1), got {self.setting(key)}")
        if self.kl_coef < 0 or self.entropy_coef < 0:
            out.append("kl_coef and entropy_coef must be >= 0")
        if not 0 <= self.gamma <= 1 or not 0 <= self.lam <= 1:
            out.append("gamma and lam must be in [0, 1]")
        if self.kl_coef > 0 and self.kl_in == "loss" and self.kl_estimator == "k1":
            out.append(
                "kl_estimator k1 in the loss has zero expected gradient (it does not regularise); "
                "use k3 in the loss, or k1 with kl_in: reward"
            )
        if not group and self.setting("ratio_level") == "sequence":
            out.append(
                f"ratio_level sequence (GSPO) needs a per-sequence advantage, not "
                f"{self.setting('advantage')} (per token)"
            )
        return out
