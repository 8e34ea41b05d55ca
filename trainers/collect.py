"""Standalone rollouts to a ``datasets`` dataset: what reward-model data and best-of-N use.

    assay rollout --model smollm2-135m-instruct --env math-gsm8k-v0 --n 1000 --samples 4 --out DIR

Episodes are played with :func:`trainers.episodes.run_episodes` (so multi-turn and multi-agent
envs work) for seeds ``seed_offset .. seed_offset + n - 1``, ``samples`` episodes per seed. Every
token-exact context of an engine-played agent becomes one row (one per agent where observations
grow; one per turn where the env shows a fresh board each turn):

``seed``, ``sample``, ``agent``, ``prompt`` (the context's first observation, chat messages),
``completion`` (the agent's answers in it, joined by blank lines), ``reward`` (the agent's
episode reward), ``turns``, ``truncated``, ``token_ids``, ``train_mask``, ``logprobs`` (the
token-exact context) and ``info`` (the env's final ``info`` as JSON).

Seats (``seats={"blue/*": "embedding"}``, ``assay rollout --seat``) give some agents another
policy: a scripted agent the env offers (``env.scripted_kinds``) or another model with the same
tokenizer (e.g. a frozen earlier checkpoint); every other agent plays the main engine.

Rows are written in shards of ``shard_size`` seeds under ``DIR/shards/``, each saved whole (to a
temporary folder, then renamed), so an interrupted run resumes at the first missing shard; at the
end all shards are joined into ``DIR/dataset`` (``datasets.load_from_disk``). ``DIR/rollout.json``
records the settings; resuming with different ones is refused.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from assay.errors import AssayError, ConfigError
from assay.runs import check_settings, env_identity
from trainers.engines.base import GenerationEngine, Sampling
from trainers.episodes import Episode, Policy, policy_for, run_episodes


def parse_seats(items: Sequence[str]) -> dict[str, str]:
    """``["blue/*=embedding", "red/operative=NAME"]`` -> ``{pattern: who}``."""
    out: dict[str, str] = {}
    for item in items:
        pattern, sep, who = item.partition("=")
        if not sep or not pattern or not who:
            raise ConfigError(f"--seat takes AGENT=WHO (e.g. 'blue/*=embedding'), got {item!r}.")
        out[pattern] = who
    return out


def check_seats(seats: Mapping[str, str], env, label: str = "--seat") -> None:
    """Refuse, before any model loads, a pattern that matches none of the env's agents and
    seats that leave no agent to an engine (nothing would be recorded)."""
    env = getattr(env, "unwrapped", env)
    known = getattr(env, "possible_agents", ())
    if not known:
        return
    for pattern in seats:
        if not any(fnmatchcase(agent, pattern) for agent in known):
            raise ConfigError(f"{label} {pattern!r} matches no agent; agents: {', '.join(known)}.")
    kinds = getattr(env, "scripted_kinds", ())
    whos = {**seats, **({} if "*" in seats else {"*": "the main model"})}
    if all(policy_for(whos, agent) in kinds for agent in known):
        raise ConfigError(
            f"{label}: every agent is played by a scripted agent, so no engine plays and "
            "nothing is recorded; leave at least one agent to a model."
        )


def seat_policies(
    seats: Mapping[str, str],
    env,
    tokenizer,
    open_model: Callable[[str], tuple[Any, Any]],
    label: str = "--seat",
) -> tuple[dict[str, Policy], list[Any]]:
    """Policies for the seats (patterns over agent names), and the engines opened for them
    (to close). ``who`` is one of the env's scripted kinds, else a model name for
    ``open_model(name) -> (engine, tokenizer)``; a model must share ``tokenizer``, as
    contexts are built with it. A failure closes what was opened."""
    check_seats(seats, env, label)
    env = getattr(env, "unwrapped", env)
    kinds = getattr(env, "scripted_kinds", ())
    policies: dict[str, Policy] = {}
    engines: dict[str, Any] = {}
    try:
        for k, (pattern, who) in enumerate(seats.items()):
            if who in kinds:
                policies[pattern] = ScriptedSeat(env, who, index=k)
                continue
            if who not in engines:
                engines[who] = _open_seat_model(pattern, who, tokenizer, open_model, kinds, label)
            policies[pattern] = engines[who]
    except BaseException:
        for engine in engines.values():
            engine.close()
        raise
    return policies, list(engines.values())


def _open_seat_model(pattern, who, tokenizer, open_model, kinds, label):
    try:
        engine, other = open_model(who)
    except AssayError as err:
        raise ConfigError(
            f"{label} {pattern}={who}: not one of the env's scripted agents "
            f"({', '.join(kinds) or 'none'}), and not a model: {err}"
        ) from err
    if other.get_vocab() != tokenizer.get_vocab() or other.chat_template != tokenizer.chat_template:
        engine.close()
        raise ConfigError(
            f"{label} {pattern}={who}: that model's tokenizer or chat template differs from the "
            f"main model's; seats take the env's scripted agents ({', '.join(kinds) or 'none'}) "
            "or models that share it."
        )
    return engine


class ScriptedSeat:
    """A seat played by the env's scripted agent ``kind``: one per episode and agent, seeded by
    the episode's seed and sample, so a shard plays the same whatever ran before it."""

    def __init__(self, env, kind: str, index: int):
        self.env, self.kind, self.index = env, kind, index

    def for_episode(self, agent: str, seed: int, sample: int) -> Policy:
        episode_seed = (seed * 1_000_003 + sample * 7_919 + self.index) % 2**32
        return self.env.scripted_policy(self.kind, agent, seed=episode_seed)


def collect_rollouts(
    engine: GenerationEngine,
    make_env: Callable[[], Any],
    tokenizer,
    out_dir: Path,
    n: int,
    samples: int,
    sampling: Sampling,
    seed_offset: int = 0,
    shard_size: int = 64,
    seats: Mapping[str, Policy] | None = None,
    seat_names: Mapping[str, str] | None = None,
    max_turns: int = 256,
    policy: Mapping[str, Any] | None = None,
):
    """Play and save ``n * samples`` episodes (each cut after ``max_turns`` steps, and marked
    truncated); returns the joined ``datasets.Dataset``.
    ``seats`` (pattern -> policy, see :func:`seat_policies`) play some agents instead of
    ``engine``; ``seat_names`` (pattern -> what plays it) and ``policy`` (the model's name,
    weights hash, dtype and engine settings) go into the manifest, so a resumed folder never
    mixes policies."""
    import datasets

    policies: Policy | dict[str, Policy] = engine
    if seats:
        policies = dict(seats)
        policies.setdefault("*", engine)  # a '*' seat of the user's wins
    shards_dir = out_dir / "shards"
    shards_dir.mkdir(parents=True, exist_ok=True)
    _check_manifest(
        out_dir,
        n=n,
        samples=samples,
        sampling=sampling,
        seed_offset=seed_offset,
        shard_size=shard_size,
        make_env=make_env,
        seats=dict(seat_names or {}),
        max_turns=max_turns,
        policy=dict(policy or {}),
    )
    starts = list(range(0, n, shard_size))
    for number, start in enumerate(tqdm(starts, desc="rollout", unit="shard")):
        final = shards_dir / f"{number:05d}"
        if final.exists():
            continue  # done in an earlier, interrupted run
        seeds = [seed_offset + s for s in range(start, min(start + shard_size, n))]
        rows = _play_shard(
            policies,
            make_env,
            tokenizer,
            seeds=seeds,
            samples=samples,
            sampling=sampling,
            number=number,
            max_turns=max_turns,
        )
        tmp = shards_dir / f".{number:05d}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        datasets.Dataset.from_list(rows).save_to_disk(str(tmp))
        tmp.rename(final)
    parts = [datasets.load_from_disk(str(shards_dir / f"{k:05d}")) for k in range(len(starts))]
    dataset = datasets.concatenate_datasets(parts)
    dataset.save_to_disk(str(out_dir / "dataset"))
    return dataset


def _play_shard(
    policies, make_env, tokenizer, *, seeds, samples, sampling, number, max_turns
) -> list[dict]:
    all_seeds = [s for s in seeds for _ in range(samples)]
    if sampling.seed is not None:  # a shard's samples do not depend on earlier shards
        sampling = replace(sampling, seed=sampling.seed * 100_003 + number)
    episodes = run_episodes(policies, make_env, all_seeds, sampling, tokenizer, max_turns)
    rows = []
    for k, episode in enumerate(episodes):
        rows += _rows(episode, sample=k % samples)
    return rows


def _rows(episode: Episode, sample: int) -> list[dict[str, Any]]:
    out = []
    for t in episode.contexts:
        first_prompt = t.messages[: t.policy_messages[0]]
        answers = [t.messages[i]["content"] for i in t.policy_messages]
        out.append(
            {
                "seed": episode.seed,
                "sample": sample,
                "agent": t.agent,
                "prompt": first_prompt,
                "completion": "\n\n".join(answers),
                "reward": t.reward,
                "turns": t.turns,
                "truncated": episode.truncated,
                "token_ids": t.token_ids,
                "train_mask": t.train_mask,
                "logprobs": t.logprobs,
                "info": json.dumps(episode.infos[-1], default=str),
            }
        )
    return out


def _check_manifest(
    out_dir: Path,
    *,
    n,
    samples,
    sampling,
    seed_offset,
    shard_size,
    make_env,
    seats: dict[str, str],
    max_turns: int,
    policy: dict[str, Any],
):
    """Shards are only reused by a run with the same settings; a different run must not silently
    mix with them."""
    manifest = {
        # 2: prompt and completion come from the policy's own turns (1 took an env prompt's
        # example assistant turns for the policy's); a folder of either is never mixed.
        "row_format": 2,
        "n": n,
        "samples": samples,
        "seed_offset": seed_offset,
        "shard_size": shard_size,
        "max_turns": max_turns,
        "sampling": asdict(sampling),
        **env_identity(make_env()),
        **({"seats": seats} if seats else {}),  # absent without seats, as in older folders
        **({"policy": policy} if policy else {}),
    }
    check_settings(out_dir / "rollout.json", manifest, "rollouts")
