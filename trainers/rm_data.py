"""Reward-model data from a policy: sampled solutions, graded, with step labels.

``generate_rm_data`` (``assay rm data``) walks the first ``problems`` problems of a math env's
split, samples ``samples`` solutions each with any :class:`GenerationEngine` (an HF engine, a
vLLM engine or the Ray :class:`trainers.pool.RolloutPool`), grades their final answers with
:func:`rewards.math.grade_many`, and writes, under ``out``:

- ``samples.jsonl``: every graded solution, appended batch by batch (an interrupted run resumes
  after the last finished problem, nothing is lost or sampled twice);
- ``orm/``: a ``datasets`` dataset of (``problem``, ``solution``, ``correct``, ...);
- ``prm_arith/``: PRM rows labelled by exact arithmetic (:func:`rewards.rm.arithmetic_labels`);
- ``prm_mc/``: PRM rows labelled by Monte-Carlo rollouts (:func:`mc_step_labels`), with
  ``labels`` the soft estimates and ``hard_labels`` the hard ones; the per-solution results are
  appended to ``mc.jsonl`` as they finish, so this long phase resumes too.

**Monte-Carlo step labels** (Math-Shepherd, Wang et al. 2024): for step k of a solution with K
steps, sample ``m`` continuations of the prefix (steps 1..k) and grade them. The soft label is
the fraction that reach the gold answer; the hard label is 1 if any does. The last step's
prefix is the whole solution, so its label is the solution's own correctness.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from assay.errors import ConfigError
from rewards.math import grade_many
from rewards.rm import arithmetic_labels, split_steps
from trainers.rollout import GenerationEngine, Sampling, encode_prompts

LABEL_SOURCES = ("arith", "mc")


@dataclass(frozen=True)
class MCLabels:
    soft: list[float]
    hard: list[float]


def mc_step_labels(
    engine: GenerationEngine,
    tokenizer,
    items: Sequence[tuple[list[dict], list[str], str, bool]],
    m: int,
    sampling: Sampling,
) -> list[MCLabels]:
    """Monte-Carlo labels for each (prompt messages, steps, gold answer, solution correct) item
    (see the module docstring). All prefixes of all items go to the engine in one call."""
    prompt_ids = encode_prompts(tokenizer, [messages for messages, _, _, _ in items])
    prefixes: list[tuple[int, int, str]] = []  # (item, step, prefix text)
    requests: list[list[int]] = []
    for i, (_, steps, _, _) in enumerate(items):
        for k in range(len(steps) - 1):
            text = "\n".join(steps[: k + 1]) + "\n"
            prefixes.append((i, k, text))
            requests.append(prompt_ids[i] + tokenizer(text, add_special_tokens=False)["input_ids"])
    groups = (
        engine.generate(requests, Sampling(**{**sampling.__dict__, "n": m})) if requests else []
    )
    texts = [
        prefix + c.text
        for (_, _, prefix), group in zip(prefixes, groups, strict=True)
        for c in group
    ]
    golds = [items[i][2] for i, _, _ in prefixes for _ in range(m)]
    grades = iter(grade_many(texts, golds))
    out = [MCLabels([0.0] * len(steps), [0.0] * len(steps)) for _, steps, _, _ in items]
    for i, k, _ in prefixes:
        right = sum(next(grades).correct for _ in range(m))
        out[i].soft[k] = right / m
        out[i].hard[k] = float(right > 0)
    for i, (_, steps, _, correct) in enumerate(items):
        if steps:
            out[i].soft[-1] = out[i].hard[-1] = float(correct)
    return out


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut by an interruption: everything after it is redone
    return rows


def sample_solutions(
    engine: GenerationEngine,
    env,
    out: Path,
    problems: int,
    sampling: Sampling,
    batch_size: int = 8,
) -> list[dict[str, Any]]:
    """Graded solutions for the first ``problems`` problems of ``env``, kept in
    ``out/samples.jsonl`` (resumed when it exists)."""
    path = out / "samples.jsonl"
    done = _read_jsonl(path)
    done = [r for r in done if sum(d["index"] == r["index"] for d in done) == sampling.n]
    start = max((r["index"] for r in done), default=-1) + 1
    problems = min(problems, len(env.problems))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:  # rewrite only whole problems, then append
        f.writelines(json.dumps(r) + "\n" for r in done)
        for first in tqdm(range(start, problems, batch_size), desc="sample", unit="batch"):
            indices = list(range(first, min(first + batch_size, problems)))
            prompts = [env.reset(options={"index": i})[0] for i in indices]
            seeded = (
                sampling
                if sampling.seed is None
                else Sampling(**{**sampling.__dict__, "seed": sampling.seed + first})
            )
            groups = engine.generate(prompts, seeded)
            texts = [c.text for g in groups for c in g]
            grades = grade_many(
                texts, [env.problems[i].answer for i in indices for _ in range(sampling.n)]
            )
            for j, (i, prompt) in enumerate(zip(indices, prompts, strict=True)):
                for s in range(sampling.n):
                    g = grades[j * sampling.n + s]
                    row = {
                        "index": i,
                        "sample": s,
                        "problem_id": env.problems[i].id,
                        "problem": env.problems[i].question,
                        "prompt": prompt,
                        "solution": groups[j][s].text,
                        "gold": env.problems[i].answer,
                        "answer": g.answer,
                        "correct": bool(g.correct),
                    }
                    done.append(row)
                    f.write(json.dumps(row) + "\n")
            f.flush()
    return done


def generate_rm_data(
    engine: GenerationEngine,
    tokenizer,
    env,
    out: Path,
    problems: int,
    sampling: Sampling,
    labels: Sequence[str] = ("arith",),
    mc_rollouts: int = 8,
    split: str = "newline",
    batch_size: int = 8,
    mc_limit: int | None = None,
) -> dict[str, Path]:
    """Write the ORM and PRM datasets (see the module docstring); returns their folders.
    ``mc_limit`` labels only the first that many solutions by Monte-Carlo (the costly part: about
    ``steps * mc_rollouts`` continuations per solution)."""
    import datasets

    unknown = sorted(set(labels) - set(LABEL_SOURCES))
    if unknown:
        raise ConfigError(
            f"Unknown step-label source(s) {unknown}; known: {', '.join(LABEL_SOURCES)}."
        )
    rows = sample_solutions(engine, env, out, problems, sampling, batch_size)
    paths = {"orm": out / "orm"}
    orm_rows = [{k: r[k] for k in ("problem", "solution", "correct", "gold", "answer", "index", "sample")}
                for r in rows]  # fmt: skip
    datasets.Dataset.from_list(orm_rows).save_to_disk(str(paths["orm"]))
    if "arith" in labels:
        prm = [
            {**_prm_base(r, split), "labels": arithmetic_labels(r["solution"], r["correct"], split),
             "source": "arith"}
            for r in rows
        ]  # fmt: skip
        paths["prm_arith"] = _save(prm, out / "prm_arith")
    if "mc" in labels:
        chosen = rows[:mc_limit] if mc_limit else rows
        prm = _mc_rows(engine, tokenizer, chosen, out, mc_rollouts, sampling, split, batch_size)
        paths["prm_mc"] = _save(prm, out / "prm_mc")
    return paths


def _prm_base(row: dict[str, Any], split: str) -> dict[str, Any]:
    return {
        "problem": row["problem"],
        "steps": split_steps(row["solution"], split),
        "correct": row["correct"],
        "index": row["index"],
        "sample": row["sample"],
    }


def _save(rows: list[dict[str, Any]], path: Path) -> Path:
    import datasets

    datasets.Dataset.from_list(rows).save_to_disk(str(path))
    return path


def _mc_rows(engine, tokenizer, rows, out, m, sampling, split, batch_size) -> list[dict[str, Any]]:
    path = out / "mc.jsonl"
    done = _read_jsonl(path)
    with path.open("w") as f:
        f.writelines(json.dumps(r) + "\n" for r in done)
        todo = rows[len(done) :]
        for first in tqdm(range(0, len(todo), batch_size), desc="mc labels", unit="batch"):
            chunk = todo[first : first + batch_size]
            bases = [_prm_base(r, split) for r in chunk]
            items = [
                (r["prompt"], b["steps"], r["gold"], r["correct"])
                for r, b in zip(chunk, bases, strict=True)
            ]
            for base, mc in zip(
                bases, mc_step_labels(engine, tokenizer, items, m, sampling), strict=True
            ):
                row = {**base, "labels": mc.soft, "hard_labels": mc.hard, "source": "mc"}
                done.append(row)
                f.write(json.dumps(row) + "\n")
            f.flush()
    return done
