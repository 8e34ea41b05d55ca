"""Reward-model data from a policy: sampled solutions, graded, with step labels.

``generate_rm_data`` (``assay rm data``) walks the first ``problems`` problems of a math env's
split, samples ``samples`` solutions each with any :class:`GenerationEngine` (an HF engine, a
vLLM engine or the Ray :class:`trainers.engines.pool.EnginePool`), grades their final answers with
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
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from assay.errors import ConfigError
from assay.runs import check_settings, env_identity
from rewards.math import grade_many
from rewards.rm import arithmetic_labels, split_steps, step_spans
from trainers.engines.base import GenerationEngine, Sampling, encode_prompts

LABEL_SOURCES = ("arith", "mc")


@dataclass(frozen=True)
class MCLabels:
    soft: list[float]
    hard: list[float]


def mc_step_labels(
    engine: GenerationEngine,
    tokenizer,
    items: Sequence[tuple[list[dict], str, str, bool]],
    m: int,
    sampling: Sampling,
    split: str = "newline",
) -> list[MCLabels]:
    """Monte-Carlo labels for the steps of each (prompt messages, solution, gold answer, solution
    correct) item (see the module docstring). The prefix of step k is the solution's own text
    up to the end of step k, so the policy continues exactly what it wrote. All prefixes of all
    items go to the engine in one call."""
    prompt_ids = encode_prompts(tokenizer, [messages for messages, _, _, _ in items])
    spans = [step_spans(solution, split) for _, solution, _, _ in items]
    prefixes: list[tuple[int, int, str]] = []  # (item, step, prefix text)
    requests: list[list[int]] = []
    for i, (_, solution, _, _) in enumerate(items):
        for k, (_, end) in enumerate(spans[i][:-1]):
            text = solution[:end]
            prefixes.append((i, k, text))
            requests.append(prompt_ids[i] + tokenizer(text, add_special_tokens=False)["input_ids"])
    groups = engine.generate(requests, replace(sampling, n=m)) if requests else []
    texts = [
        prefix + c.text
        for (_, _, prefix), group in zip(prefixes, groups, strict=True)
        for c in group
    ]
    golds = [items[i][2] for i, _, _ in prefixes for _ in range(m)]
    grades = iter(grade_many(texts, golds))
    out = [MCLabels([0.0] * len(s), [0.0] * len(s)) for s in spans]
    for i, k, _ in prefixes:
        right = sum(next(grades).correct for _ in range(m))
        out[i].soft[k] = right / m
        out[i].hard[k] = float(right > 0)
    for i, (_, _, _, correct) in enumerate(items):
        if spans[i]:
            out[i].soft[-1] = out[i].hard[-1] = float(correct)
    return out


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of ``path`` up to the first line an interruption cut short."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


def _resume(path: Path, rows: list[dict[str, Any]]):
    """Rewrite ``path`` with exactly ``rows`` (temp file + rename, so a crash loses nothing
    already written) and return it opened for appending."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, path)
    return path.open("a")


def _seeded(sampling: Sampling, offset: int) -> Sampling:
    """Each batch gets its own seed (an offset of the base seed), so batches differ."""
    return sampling if sampling.seed is None else replace(sampling, seed=sampling.seed + offset)


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
    per_problem = Counter(r["index"] for r in done)
    done = [r for r in done if per_problem[r["index"]] == sampling.n]  # whole problems only
    start = max((r["index"] for r in done), default=-1) + 1
    problems = min(problems, len(env.problems))
    with _resume(path, done) as f:
        for first in tqdm(range(start, problems, batch_size), desc="sample", unit="batch"):
            indices = list(range(first, min(first + batch_size, problems)))
            prompts = [env.reset(options={"index": i})[0] for i in indices]
            groups = engine.generate(prompts, _seeded(sampling, first))
            golds = [env.problems[i].answer for i in indices for _ in range(sampling.n)]
            grades = iter(grade_many([c.text for g in groups for c in g], golds))
            for i, prompt, group in zip(indices, prompts, groups, strict=True):
                problem = env.problems[i]
                for s, completion in enumerate(group):
                    g = next(grades)
                    row = {
                        "index": i,
                        "sample": s,
                        "problem_id": problem.id,
                        "problem": problem.question,
                        "prompt": prompt,
                        "solution": completion.text,
                        "gold": problem.answer,
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
    *,
    labels: Sequence[str] = ("arith",),
    mc_rollouts: int = 8,
    split: str = "newline",
    batch_size: int = 8,
    mc_limit: int | None = None,
    include_reference: bool = False,
) -> dict[str, Path]:
    """Write the ORM and PRM datasets (see the module docstring); returns their folders.
    ``mc_limit`` labels only the first that many solutions by Monte-Carlo (the costly part: about
    ``steps * mc_rollouts`` continuations per solution). ``include_reference`` adds each
    problem's reference solution (GSM8K's worked answer, restyled as the env asks) as one more
    correct row (``sample`` -1) to the ORM and arithmetic-labelled data, for policies that are
    rarely right; it is never Monte-Carlo labelled."""
    import datasets

    unknown = sorted(set(labels) - set(LABEL_SOURCES))
    if unknown:
        raise ConfigError(
            f"Unknown step-label source(s) {unknown}; known: {', '.join(LABEL_SOURCES)}."
        )
    settings = {**env_identity(env), "sampling": asdict(sampling), "step_split": split,
                "mc_rollouts": mc_rollouts}  # fmt: skip
    check_settings(out / "rm_data.json", settings, "reward-model data")
    sampled = sample_solutions(engine, env, out, problems, sampling, batch_size)
    rows = sampled + (_reference_rows(env, sampled) if include_reference else [])
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
        chosen = sampled[:mc_limit] if mc_limit else sampled
        prm = _mc_rows(engine, tokenizer, chosen, out, m=mc_rollouts, sampling=sampling,
                       split=split, batch_size=batch_size)  # fmt: skip
        paths["prm_mc"] = _save(prm, out / "prm_mc")
    return paths


def _reference_rows(env, sampled: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i in sorted({r["index"] for r in sampled}):
        problem = env.problems[i]
        solution = env.reference_solution(problem)
        if solution is not None:
            out.append({"index": i, "sample": -1, "problem_id": problem.id,
                        "problem": problem.question, "prompt": None, "solution": solution,
                        "gold": problem.answer, "answer": problem.answer, "correct": True})  # fmt: skip
    return out


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


def _mc_rows(
    engine, tokenizer, rows, out, *, m, sampling, split, batch_size
) -> list[dict[str, Any]]:
    """MC-labelled PRM rows for ``rows``; labels already in ``mc.jsonl`` (keyed by problem index
    and sample) are reused and never deleted, whatever subset this run asks for."""
    path = out / "mc.jsonl"
    done = {(r["index"], r["sample"]): r for r in _read_jsonl(path)}
    todo = [r for r in rows if (r["index"], r["sample"]) not in done]
    with _resume(path, list(done.values())) as f:
        for first in tqdm(range(0, len(todo), batch_size), desc="mc labels", unit="batch"):
            chunk = todo[first : first + batch_size]
            items = [(r["prompt"], r["solution"], r["gold"], r["correct"]) for r in chunk]
            seeded = _seeded(sampling, len(done))
            labels = mc_step_labels(engine, tokenizer, items, m, seeded, split)
            for r, mc in zip(chunk, labels, strict=True):
                row = {**_prm_base(r, split), "labels": mc.soft, "hard_labels": mc.hard,
                       "source": "mc"}  # fmt: skip
                done[r["index"], r["sample"]] = row
                f.write(json.dumps(row) + "\n")
            f.flush()
    return [done[r["index"], r["sample"]] for r in rows]
