"""Rejection-sampling fine-tuning (RFT, expert iteration): ``assay train rft --config ...``.

For each of ``rft.rounds`` rounds: sample ``rft.samples`` answers to each of ``rft.prompts``
fresh episodes of the env from the current policy (any engine: HF, vLLM, or a Ray pool of
either), keep those the env rewards at least ``rft.threshold`` (valid, deduplicated per
episode), save them as the round's dataset (``rounds/round-N/data.jsonl``: chat ``messages``,
``seed``, ``reward``), fine-tune the policy on them with :func:`trainers.sft_job.run_sft`
(assistant tokens only, tokenized as RL samples), and evaluate on held-out episodes (valid
rate, reward among valid answers, chance).

Everything a round makes is written before the next step needs it, so ``--resume`` picks up
where a run stopped: a finished round is skipped, a sampled round trains on the data it saved,
an interrupted fine-tune resumes from its TRL checkpoint. Sampling is seeded by the round, so
a resumed round samples what an uninterrupted one would have. The run's ``summary.json`` names
the final policy, so ``assay train rl model.name=RUN_DIR`` warm-starts from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from trainers.rl.model_config import LoraConfig, ModelConfig
from trainers.sft_job import (
    PolicyEvalConfig,
    SFTConfig,
    SFTDataConfig,
    SFTOptimConfig,
    SFTTrainConfig,
)


@dataclass
class RFTEnvConfig:
    id: str = "codenames-guess-v0"
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class RFTSamplingConfig:
    rounds: int = 2
    prompts: int = 128
    """Fresh episodes per round (seeds ``seed_offset + (round - 1) * prompts + i``)."""
    samples: int = 4
    """Answers sampled per episode (k)."""
    threshold: float = 1.0
    """Keep an answer when the env's reward is at least this (and the answer is valid)."""
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 64
    seed_offset: int = 0
    backend: str = "hf"
    """``hf`` or ``vllm``; with ``replicas`` > 1, a Ray pool of them."""
    replicas: int = 1
    batch_size: int = 16
    eval_base: bool = True
    """Evaluate the starting policy (round 0) before round 1."""
    eval_each_round: bool = True
    """Evaluate after every round; false: after the last one only."""

    def problems(self) -> list[str]:
        out = [f"{n} must be >= 1, got {getattr(self, n)}"
               for n in ("rounds", "prompts", "samples", "max_new_tokens", "replicas",
                         "batch_size") if getattr(self, n) < 1]  # fmt: skip
        if not self.temperature > 0:
            out.append(f"temperature must be > 0 (RFT samples), got {self.temperature}")
        if self.backend not in ("hf", "vllm"):
            out.append(f"backend must be hf or vllm, got {self.backend!r}")
        if not self.seed_offset >= 0 or self.seed_offset + self.rounds * self.prompts > 10**9:
            out.append("seed_offset + rounds * prompts must stay in [0, 10**9) (eval seeds)")
        return out


@dataclass
class RFTConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    env: RFTEnvConfig = field(default_factory=RFTEnvConfig)
    rft: RFTSamplingConfig = field(default_factory=RFTSamplingConfig)
    optim: SFTOptimConfig = field(default_factory=SFTOptimConfig)
    train: SFTTrainConfig = field(default_factory=SFTTrainConfig)
    """Each round's fine-tune (epochs, batch size, ...); ``output_dir``/``run_name`` name the
    RFT run."""
    eval: PolicyEvalConfig = field(default_factory=PolicyEvalConfig)
    """Held-out evaluation of the starting policy and after every round (``eval.env``
    defaults to ``env``)."""


def select(
    seeds: list[int], answers: list[list[str]], scored: list[list[tuple[float, dict]]],
    threshold: float,
) -> tuple[list[dict[str, Any]], dict[str, int]]:  # fmt: skip
    """The kept samples: each episode's valid answers whose reward is at least ``threshold``,
    each distinct answer text once (the first sample of it), with counts of what was not kept."""
    kept: list[dict[str, Any]] = []
    counts = {"sampled": 0, "below_threshold": 0, "invalid": 0, "duplicate": 0}
    for seed, texts, results in zip(seeds, answers, scored, strict=True):
        seen: set[str] = set()
        for j, (text, (reward, info)) in enumerate(zip(texts, results, strict=True)):
            counts["sampled"] += 1
            if not info.get("valid", True):
                counts["invalid"] += 1
            elif reward < threshold:
                counts["below_threshold"] += 1
            elif text.strip() in seen:
                counts["duplicate"] += 1
            else:
                seen.add(text.strip())
                kept.append({"seed": seed, "sample": j, "answer": text, "reward": float(reward)})
    return kept, counts


def sample_round(engine, env, seeds: list[int], sampling, threshold: float, batch_size: int):
    """Sample ``sampling.n`` answers per episode and keep the good ones (:func:`select`);
    returns ``(records, counts)``, each record with the episode's chat ``messages``."""
    from tqdm.auto import tqdm

    from envs import score_answers

    records: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for start in tqdm(range(0, len(seeds), batch_size), desc="rft sample", unit="batch"):
        chunk = seeds[start : start + batch_size]
        prompts = {s: env.reset(seed=s)[0] for s in chunk}
        completions = engine.generate([prompts[s] for s in chunk], sampling)
        texts = [[c.text for c in group] for group in completions]
        flat = score_answers(env, [(s, t) for s, group in zip(chunk, texts, strict=True)
                                   for t in group])  # fmt: skip
        n = sampling.n
        scored = [flat[i * n : (i + 1) * n] for i in range(len(chunk))]
        kept, part = select(chunk, texts, scored, threshold)
        for record in kept:
            messages = [
                *prompts[record["seed"]],
                {"role": "assistant", "content": record["answer"]},
            ]
            records.append({"messages": messages, **record})
        counts = {k: counts.get(k, 0) + v for k, v in part.items()}
    return records, counts


def run_rft(config: RFTConfig, resume_dir: Path | None = None, log=print) -> dict[str, Any]:
    """Run (or resume) the rounds; returns the summary."""
    import envs
    from assay.config import dump_yaml
    from assay.models import load_tokenizer_and_dir, run_model
    from assay.runs import new_run_dir, write_json

    env = envs.make(config.env.id, **config.env.kwargs)
    load_tokenizer_and_dir(config.model.name)  # a wrong model name fails before any folder
    run_dir = resume_dir or new_run_dir(config.train.output_dir, "rft", config.train.run_name)
    dump_yaml(config, run_dir / "config.yaml")
    log(f"Run directory: {run_dir}")
    policy = run_model(config.model.name)
    history: list[dict[str, Any]] = []
    for round_ in range(1, config.rft.rounds + 1):
        done = run_dir / "rounds" / f"round-{round_}" / "done.json"
        if done.exists():
            record = json.loads(done.read_text())
        else:
            record = _round(config, env, run_dir, round_, policy, log)
            write_json(done, record)
        history.append(record)
        policy = str(run_dir / record["policy"]) if record["policy"] else policy
    base = None
    if (run_dir / "rounds" / "round-0" / "eval.json").exists():
        base = json.loads((run_dir / "rounds" / "round-0" / "eval.json").read_text())["metrics"]
    final = next((h["policy"] for h in reversed(history) if h["policy"]), None)
    summary = {"run_dir": str(run_dir), "rounds": history, "eval_base": base,
               "final": final or policy}  # fmt: skip
    write_json(run_dir / "summary.json", summary)
    _plot(run_dir, base, history)
    log(format_rounds(base, history))
    log(
        f"Final model: {run_dir / final if final else policy} (assay train rl model.name={run_dir})"
    )
    return summary


def _round(config: RFTConfig, env, run_dir: Path, round_: int, policy: str, log) -> dict:
    """One round from wherever it stopped: (base evaluation,) sampling, fine-tune, evaluation;
    returns its record (``policy``: the tuned model relative to the run, None if unchanged)."""
    from assay.runs import write_json, write_jsonl
    from trainers.engines.base import Sampling
    from trainers.sft_job import run_sft

    r = config.rft
    folder = run_dir / "rounds" / f"round-{round_}"
    data = folder / "data.jsonl"
    engine = None
    base_eval = run_dir / "rounds" / "round-0" / "eval.json"
    if round_ == 1 and r.eval_base and config.eval.episodes and not base_eval.exists():
        engine = _open(policy, config)
        _evaluate(engine, config, base_eval, "base")
    if not data.exists():
        engine = engine or _open(policy, config)
        seeds = [r.seed_offset + (round_ - 1) * r.prompts + i for i in range(r.prompts)]
        sampling = Sampling(n=r.samples, temperature=r.temperature, top_p=r.top_p,
                            max_new_tokens=r.max_new_tokens, seed=config.train.seed + round_,
                            logprobs=False)  # fmt: skip
        records, counts = sample_round(engine, env, seeds, sampling, r.threshold, r.batch_size)
        write_json(folder / "counts.json", counts)
        write_jsonl(data, records)  # last: its presence means the round is sampled
        log(f"Round {round_}: kept {len(records)} of {counts['sampled']} samples "
            f"(below threshold {counts['below_threshold']}, invalid {counts['invalid']}, "
            f"duplicate {counts['duplicate']}) -> {data}")  # fmt: skip
    if engine is not None:
        engine.close()
    kept = sum(1 for line in data.open() if line.strip())
    trained = None
    if kept:
        sft = SFTConfig(
            model=replace(config.model, name=policy), lora=config.lora,
            data=SFTDataConfig(train=str(data), eval_fraction=0.0), optim=config.optim,
            train=replace(config.train, seed=config.train.seed + round_),
            eval=replace(config.eval, episodes=0),
        )  # fmt: skip
        (folder / "sft").mkdir(parents=True, exist_ok=True)
        run_sft(sft, resume_dir=folder / "sft", log=log)
        policy, trained = str(folder / "sft" / "final"), f"rounds/round-{round_}/sft/final"
    else:
        log(f"Round {round_} kept no sample: the policy stays as it was.")
    metrics = None
    if config.eval.episodes and (r.eval_each_round or round_ == r.rounds):
        engine = _open(policy, config)
        metrics = _evaluate(engine, config, folder / "eval.json", f"round {round_}")
        engine.close()
    return {"round": round_, "kept": kept, "policy": trained, "eval": metrics,
            "counts": json.loads((folder / "counts.json").read_text())}  # fmt: skip


def _open(policy: str, config: RFTConfig):
    from assay.distributed import resolve_device
    from trainers.engines.factory import open_engine

    r = config.rft
    engine, _ = open_engine(
        policy, backend=r.backend, replicas=r.replicas, dtype=config.model.dtype,
        device=str(resolve_device(config.model.device)), batch_size=r.batch_size,
    )  # fmt: skip
    return engine


def _evaluate(engine, config: RFTConfig, path: Path, label: str) -> dict[str, float]:
    return config.eval.run(engine, config.env.id, config.env.kwargs, path, label)


def format_rounds(base: dict | None, history: list[dict[str, Any]]) -> str:
    """One line per round: kept samples and held-out reward, valid rate, reward among valid
    answers and chance."""
    lines = [f"{'round':>6}{'kept':>7}{'reward':>9}{'valid':>8}{'r|valid':>9}{'chance':>8}"]
    rows = [(0, None, base)] + [(h["round"], h["kept"], h["eval"]) for h in history]
    for round_, kept, m in rows:
        if m is None:
            continue

        def cell(key, fmt, m=m):
            return fmt.format(m[key]) if key in m else "-"

        lines.append(f"{round_:>6}{'-' if kept is None else kept:>7}"
                     f"{cell('reward_mean', '{:+.3f}'):>9}{cell('valid_rate', '{:.1%}'):>8}"
                     f"{cell('reward_valid_mean', '{:+.3f}'):>9}"
                     f"{cell('chance_reward', '{:+.3f}'):>8}")  # fmt: skip
    return "\n".join(lines)


def _plot(run_dir: Path, base: dict | None, history: list[dict[str, Any]]) -> None:
    from assay.runs import SKILL_OVERLAYS, plot_metrics

    records = [{"step": 0, **{f"eval/{k}": v for k, v in base.items()}}] if base else []
    records += [{"step": h["round"], "kept": h["kept"],
                 **{f"eval/{k}": v for k, v in (h["eval"] or {}).items()}}
                for h in history]  # fmt: skip
    keys = [k for k in ("eval/reward_mean", "eval/valid_rate", "kept")
            if any(k in rec for rec in records)]  # fmt: skip
    if records and keys:
        plot_metrics(records, keys, run_dir / "plots" / "rounds.png", title="rft (x: round)",
                     overlays=SKILL_OVERLAYS)  # fmt: skip
