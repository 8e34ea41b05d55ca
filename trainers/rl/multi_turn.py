"""Multi-turn RL: whole episodes of multi-turn, multi-agent envs as the learner's batches.

With ``episodes.multi_turn: true`` (:class:`MultiTurnRollout`) a step plays ``algo.group_size`` episodes of each of
``algo.prompts_per_step`` seeds with :func:`trainers.episodes.run_episodes`. The learner's engine
plays every agent that ``episodes.seats`` leaves to it; the seats are played by the env's
scripted agents or by ``frozen``, a copy of the starting policy that is never trained.

- **Samples.** Every token-exact context of an agent the learner plays is one training row:
  one per episode where the env's observations extend the conversation, one per turn where the
  env shows a fresh board each turn (``codenames-game-v0``). The row's prompt is the
  context up to the policy's first token; the rest (the policy's tokens, and the ones the env
  and chat template added between its turns) is the completion. Only the policy's tokens are
  trained on (``Completion.train_mask``); the others are attended to.
- **Advantages.** For each seed and agent, the agent's episode rewards (each summed over its
  episode) over the ``group_size`` episodes go through the group estimator (GRPO, Dr. GRPO or
  RLOO). Every context of the agent in an episode gets that episode's advantage on each of
  its tokens: a turn is credited with the outcome of the whole episode (an undiscounted Monte
  Carlo return, compared with the same seed's other episodes).
- **Evaluation.** Greedy episodes on held-out seeds against the same seats; ``reward_mean`` is
  the learner's agents' mean episode reward.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

import envs
from assay.errors import ConfigError
from assay.models import load_causal_lm
from trainers.collect import check_seats, seat_policies
from trainers.distributed import World
from trainers.engines.base import Completion, Sampling
from trainers.engines.hf import HFEngine
from trainers.episodes import Episode, Policy, Trajectory, policy_for, run_episodes
from trainers.evaluate import EvalResult
from trainers.rl.config import MULTI_TURN_ROUNDS, RLConfig
from trainers.rl.samples import Samples, prompt_indices, sampling_seed, train_seed


def build_seats(config, model, tokenizer) -> tuple[dict[str, Policy], list[Any]]:
    """The policies of ``config.episodes.seats`` and the engines opened for them (to close)."""
    seats = config.episodes.seats
    if not seats:
        return {}, []
    env = envs.make(config.env.id, **config.env.kwargs)
    check_rl_seats(config, env)

    def open_model(name: str):
        if name != "frozen":
            raise ConfigError("the only model a seat takes here is 'frozen' (the start policy)")
        # Loaded afresh: the learner's model may be a resumed checkpoint or carry adapters.
        device = str(next(model.parameters()).device)
        frozen, _ = load_causal_lm(config.model.name, dtype=config.model.dtype, device=device)
        return HFEngine(frozen.eval().requires_grad_(False), tokenizer), tokenizer

    return seat_policies(seats, env, tokenizer, open_model, label="episodes.seats")


def check_rl_seats(config, env) -> None:
    """``episodes.seats`` that cannot work, refused before any model loads: patterns that match
    no agent, kinds that are neither the env's scripted agents nor ``frozen``, and seats that
    leave the learner no agent."""
    from fnmatch import fnmatchcase

    seats = config.episodes.seats
    env = getattr(env, "unwrapped", env)
    check_seats(seats, env, label="episodes.seats")
    kinds = getattr(env, "scripted_kinds", ())
    for pattern, who in seats.items():
        if who not in kinds and who != "frozen":
            raise ConfigError(
                f"episodes.seats {pattern}={who}: seats take the env's scripted agents "
                f"({', '.join(kinds) or 'none'}) or 'frozen' (the starting policy)."
            )
    known = getattr(env, "possible_agents", ())
    if known and all(any(fnmatchcase(a, p) for p in seats) for a in known):
        raise ConfigError(
            f"episodes.seats cover every agent of {config.env.id} ({', '.join(known)}), so the "
            "learner would play none; leave at least one to it."
        )


class MultiTurnRollout:
    """``collect(env, step)`` -> this rank's :class:`Samples` for ``step``: ``prompts_per_step``
    seeds x ``group_size`` episodes, every context of the learner's agents a completion with
    its precomputed advantage (the registered group estimator over each seat's episodes)."""

    # A row per turn, each with its own prompt: configs/codenames_game.yaml peaks near 7 GB on a
    # CPU with this budget, 17 GB at 8192.
    micro_batch_tokens = 2048
    engine_busy = False
    synced_s = None

    def __init__(self, config: RLConfig, engine, tokenizer, world: World, model):
        self.config, self.engine, self.tokenizer, self.world = config, engine, tokenizer, world
        self.estimator = config.algo.estimator()
        self.seats, self._seat_engines = build_seats(config, model, tokenizer)

    def collect(self, env, step: int, next_env=None) -> Samples:
        cfg = self.config
        g = cfg.algo.group_size
        policies = {**self.seats, "*": self.engine}
        for round_ in range(MULTI_TURN_ROUNDS):
            seeds = [train_seed(cfg, step, i, round_) for i in prompt_indices(cfg, self.world)]
            played = run_episodes(
                policies,
                lambda: copy.deepcopy(env),
                [s for s in seeds for _ in range(g)],
                cfg.sampling.engine_sampling(1, sampling_seed(cfg, step, round_, self.world)),
                self.tokenizer,
                cfg.episodes.max_turns,
            )
            batch = episode_batch(played, g, lambda a: policy_for(policies, a) is self.engine)
            if batch["completions"]:
                break
        else:
            raise ConfigError(
                f"No episode of {MULTI_TURN_ROUNDS} batches gave the learner a turn: every agent "
                "that acted was in episodes.seats."
            )
        advantages = self.estimator.fn(batch["rewards"])  # (K, G)
        per_row = torch.tensor([float(advantages[k, j]) for k, j in batch["owners"]])
        row_rewards = [float(batch["rewards"][k, j]) for k, j in batch["owners"]]
        return Samples(
            completions=batch["completions"],
            rewards=batch["rewards"],
            infos=batch["infos"],
            sampled_rewards=batch["rewards"].flatten().tolist(),
            sampled_valid=batch["valid"],
            rounds=round_ + 1,
            group_size=1,
            advantages=per_row,
            row_rewards=row_rewards,
            extra_metrics=_episode_metrics(played),
        )

    def finish(self) -> None:
        pass

    def close(self) -> None:
        for engine in self._seat_engines:
            engine.close()


def episode_batch(
    episodes: Sequence[Episode], group_size: int, trained: Callable[[str], bool]
) -> dict[str, Any]:
    """Group episodes by seed (``group_size`` consecutive episodes each) and agent:
    ``rewards`` (K, G) holds each trained agent's episode rewards, ``completions`` every context
    of theirs with policy tokens, ``owners[i]`` the (group, episode) of completion ``i``."""
    rewards, completions, owners, infos, valid = [], [], [], [], []
    for start in range(0, len(episodes), group_size):
        group = episodes[start : start + group_size]
        agents = sorted({c.agent for e in group for c in e.contexts if trained(c.agent)})
        for agent in agents:
            k = len(rewards)
            rewards.append([e.rewards.get(agent, 0.0) for e in group])
            for j, episode in enumerate(group):
                for context in episode.trajectories.get(agent, []):
                    completion = context_completion(context)
                    if completion is not None:
                        completions.append(completion)
                        owners.append((k, j))
                        infos.append(episode.infos[-1])
        for episode in group:
            valid += _step_validity(episode, trained)
    return {
        "rewards": torch.tensor(rewards, dtype=torch.float32).view(-1, group_size),
        "completions": completions,
        "owners": owners,
        "infos": infos,
        "valid": valid,
    }


def context_completion(context: Trajectory) -> Completion | None:
    """The context as one completion: the prompt up to the policy's first token, then
    everything up to its last (the template's closing ids after it are not needed)."""
    ones = [i for i, m in enumerate(context.train_mask) if m]
    if not ones:
        return None  # the policy produced no token at all
    first, last = ones[0], ones[-1] + 1
    answers = [context.messages[i]["content"] for i in context.policy_messages]
    return Completion(
        text="\n\n".join(answers),
        prompt_ids=context.token_ids[:first],
        token_ids=context.token_ids[first:last],
        logprobs=context.logprobs[first:last] if context.engine_logprobs else [],
        finish_reason="stop",
        train_mask=context.train_mask[first:last],
    )


def _step_validity(episode: Episode, trained: Callable[[str], bool]) -> list[bool]:
    """Whether each step a trained agent took was legal (``info["valid"]`` after it)."""
    acted = [info.get("agent", "") for info in episode.infos[:-1]]
    after = episode.infos[1:]
    return [bool(i.get("valid", True)) for a, i in zip(acted, after, strict=True) if trained(a)]


def _episode_metrics(episodes: Sequence[Episode]) -> dict[str, float]:
    n = max(len(episodes), 1)
    return {
        "episode_steps": sum(e.steps for e in episodes) / n,
        "truncated_rate": sum(e.truncated for e in episodes) / n,
    }


def evaluate_episodes(
    engine,
    seats: dict[str, Policy],
    env,
    seeds: Sequence[int],
    tokenizer,
    *,
    max_new_tokens: int,
    max_turns: int,
    batch_size: int = 32,
    desc: str = "eval",
) -> EvalResult:
    """One greedy episode per seed, the learner's engine against ``seats``. Per episode: the
    learner's agents' rewards, their mean, whether each of their steps was legal, steps and
    truncation."""
    policies = {**seats, "*": engine}

    def trained(agent: str) -> bool:
        return policy_for(policies, agent) is engine

    greedy = Sampling(n=1, temperature=0.0, max_new_tokens=max_new_tokens)
    records: list[dict[str, Any]] = []
    moves = legal = 0
    for start in tqdm(range(0, len(seeds), batch_size), desc=desc, unit="batch", leave=False):
        chunk = list(seeds[start : start + batch_size])
        played = run_episodes(
            policies, lambda: copy.deepcopy(env), chunk, greedy, tokenizer, max_turns
        )
        for seed, episode in zip(chunk, played, strict=True):
            mine = {a: r for a, r in episode.rewards.items() if trained(a)}
            valid = _step_validity(episode, trained)
            moves, legal = moves + len(valid), legal + sum(valid)
            records.append(
                {
                    "seed": seed,
                    "rewards": mine,
                    "reward": sum(mine.values()) / max(len(mine), 1),
                    "moves": len(valid),
                    "legal_moves": sum(valid),
                    "steps": episode.steps,
                    "truncated": episode.truncated,
                    "answers": [
                        [c.agent, c.messages[i]["content"]]
                        for c in episode.contexts
                        if trained(c.agent)
                        for i in c.policy_messages
                    ][:40],
                }
            )
    n = max(len(records), 1)
    metrics = {
        "reward_mean": sum(r["reward"] for r in records) / n,
        "valid_rate": legal / max(moves, 1),  # over every move the learner made
        "episode_steps": sum(r["steps"] for r in records) / n,
        "truncated_rate": sum(r["truncated"] for r in records) / n,
    }
    clean = [r["reward"] for r in records if r["moves"] and r["legal_moves"] == r["moves"]]
    if clean:  # reward of the episodes in which every move of the learner was legal
        metrics["reward_valid_mean"] = sum(clean) / len(clean)
    return EvalResult(metrics, records)
