"""One RL step's sampled and scored completions, and the seeds that make a step replayable."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from trainers.distributed import World
from trainers.engines.base import Completion
from trainers.rl.config import RLConfig

SEEDS_PER_RUN_SEED = 1_000_000  # train seeds: seed * 1e6 + k, so they stay below eval's 1e9


@dataclass
class Samples:
    """One step's completions on this rank, with their rewards: ``P`` prompt groups of ``G``
    completions, flattened group-major."""

    completions: list[Completion]  # (P*G,)
    rewards: torch.Tensor  # (P, G) what the env returned
    infos: list[dict[str, Any]] = field(default_factory=list)  # (P*G,)
    shaped: torch.Tensor | None = None  # (P, G) rewards the advantages use (overlong penalty)
    sampled_rewards: list[float] = field(default_factory=list)  # every completion sampled
    sampled_valid: list[bool] = field(default_factory=list)
    """Single-turn: whether each sampled answer was valid, aligned with ``sampled_rewards``
    (multi-turn: one entry per move the learner made, not aligned)."""
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


def sampling_seed(config: RLConfig, step: int, round_: int, world: World) -> int:
    """The engine's sampling seed for one round of one step on one rank."""
    return (config.train.seed * 1_000_003 + step) * 131 + round_ * 17 + world.rank


def prompt_indices(config: RLConfig, world: World) -> range:
    """This rank's share of each round's ``prompts_per_step`` prompts."""
    per_rank = config.algo.prompts_per_step // world.size
    return range(world.rank * per_rank, (world.rank + 1) * per_rank)
