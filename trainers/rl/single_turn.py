"""Single-turn rollouts: each prompt is an env's first observation, each completion one answer
scored by one ``step``. With DAPO's dynamic sampling, groups whose rewards are all equal are
set aside and more prompts are drawn (up to ``algo.max_sample_rounds`` rounds); with overlong
shaping, long answers get DAPO's soft penalty on the rewards the advantages see."""

from __future__ import annotations

import torch

import envs
from trainers.algos import overlong_penalty, varied_groups
from trainers.distributed import World
from trainers.engines.base import Completion, GenerationEngine
from trainers.rl.config import RLConfig
from trainers.rl.samples import Samples, prompt_indices, sampling_seed, train_seed

Scored = tuple[list[Completion], list[float], list[dict]]  # one group: answers, rewards, infos


class SingleTurnRollout:
    """``collect(env, step)`` -> this rank's :class:`Samples` for ``step``."""

    micro_batch_tokens = 0  # no token budget by default: rows are short
    engine_busy = False  # the engine is free between steps (for evaluation)
    synced_s = None  # the learner syncs a separate engine after each update

    def __init__(self, config: RLConfig, engine: GenerationEngine, world: World):
        self.config, self.engine, self.world = config, engine, world
        self.seats: dict = {}  # no other agents

    def collect(self, env, step: int, next_env=None) -> Samples:
        cfg = self.config
        dynamic = cfg.algo.setting("dynamic_sampling")
        rounds = cfg.algo.max_sample_rounds if dynamic else 1
        indices = prompt_indices(cfg, self.world)
        kept: list[Scored] = []
        spare: list[Scored] = []
        out = Samples([], torch.zeros(0))
        for round_ in range(rounds):
            seeds = [train_seed(cfg, step, i, round_) for i in indices]
            prompts = [env.reset(seed=s)[0] for s in seeds]
            seed = sampling_seed(cfg, step, round_, self.world)
            groups = self.engine.generate(
                prompts, cfg.sampling.engine_sampling(cfg.algo.group_size, seed)
            )
            scored = score(env, seeds, groups)
            out.rounds = round_ + 1
            keep = varied_groups(torch.tensor([r for _, r, _ in scored]))
            for (group, rewards, infos), varied in zip(scored, keep.tolist(), strict=True):
                out.sampled_rewards += rewards
                out.sampled_valid += [bool(i.get("valid", True)) for i in infos]
                (kept if not dynamic or varied else spare).append((group, rewards, infos))
            if len(kept) >= len(indices):
                break
        need = len(indices)
        batch = (kept + spare)[:need]  # budget spent: equal-reward groups fill the rest
        out.dropped_groups = len(spare) - max(0, need - len(kept))  # equal-reward, not trained on
        out.completions = [c for group, _, _ in batch for c in group]
        out.rewards = torch.tensor([rewards for _, rewards, _ in batch], dtype=torch.float32)
        out.infos = [i for _, _, infos in batch for i in infos]
        out.shaped = shaped_rewards(cfg, out)
        return out

    def finish(self) -> None:
        pass

    def close(self) -> None:
        pass


def score(env, seeds: list[int], groups: list[list[Completion]]) -> list[Scored]:
    """(completions, rewards, infos) per group. Each completion replays its episode's start
    (``reset(seed)``) and answers with one ``step``; envs with a judge score the whole batch in
    one call (``envs.score_answers``)."""
    pairs = [(seed, c.text) for seed, group in zip(seeds, groups, strict=True) for c in group]
    results = iter(envs.score_answers(env, pairs))
    out = []
    for group in groups:
        scored = [next(results) for _ in group]
        out.append((group, [r for r, _ in scored], [i for _, i in scored]))
    return out


def shaped_rewards(config: RLConfig, samples: Samples) -> torch.Tensor | None:
    """DAPO's overlong penalty added to the rewards (None without shaping)."""
    buffer = config.algo.setting("overlong_buffer")
    limit = config.sampling.max_new_tokens
    if buffer == -1:
        buffer = limit // 4
    if not buffer:
        return None
    lengths = torch.tensor([len(c.token_ids) for c in samples.completions])
    truncated = torch.tensor([c.finish_reason == "length" for c in samples.completions])
    # A completion cut at the limit would have been longer: it gets the full penalty.
    lengths = torch.where(truncated, torch.full_like(lengths, limit + 1), lengths)
    penalty = overlong_penalty(lengths, limit, buffer).view_as(samples.rewards)
    return samples.rewards + config.algo.overlong_penalty * penalty
