"""Readers for human and automatic step-label datasets, into assay's PRM rows.

A PRM row is ``{"problem": str, "steps": list[str], "labels": list[float], "source": str}``:
``labels[k]`` in [0, 1] says whether step k is good (fractions are soft labels, e.g. Monte-Carlo
estimates). Rows from PRM800K also carry ``ratings`` (-1, 0, 1 per step) for 3-class PRMs.

- **PRM800K** (Lightman et al., 2023; raw format of ``openai/prm800k``): each step has rated
  candidate ``completions`` (-1 bad, 0 neutral, 1 good), a ``chosen_completion`` index that the
  solution continued with, or a ``human_completion`` written by the labeller. The row follows the
  chosen (else human) completion at each step; a step with neither ends the solution with its
  first rated completion. ``alternatives=True`` also yields one row per rated alternative that
  was not chosen: the prefix so far plus that alternative as the last step. Neutral steps map to
  ``neutral`` (1.0 by default: "neutral counts as positive"; 0.0 to count it as negative).
- **Math-Shepherd** (Wang et al., 2024): ``input`` is the problem followed by ``Step k:`` steps,
  each ending in the tag ``ки``; ``label`` is the same text with ``+`` or ``-`` in place of each tag.

``load_prm_rows(spec)`` reads a local JSONL file (``prm800k:PATH`` or ``math-shepherd:PATH``),
the shipped samples (``prm800k:sample``, ``math-shepherd:sample``), a saved ``datasets`` folder of
PRM rows, or the full sets from the hub (``prm800k:hub``, ``math-shepherd:hub``), which fails
with one sentence when the hub is unreachable.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from assay.errors import ConfigError

SHEPHERD_TAG = "ки"
_HUB_IDS = {"prm800k": "tasksource/PRM800K", "math-shepherd": "peiyi9979/Math-Shepherd"}
_SAMPLES = {"prm800k": "prm800k_samples.jsonl", "math-shepherd": "math_shepherd_samples.jsonl"}
_FIRST_STEP = re.compile(r"\s*Step\s*1\s*:")


def _rating_label(rating: int | None, neutral: float) -> float:
    return {1: 1.0, 0: neutral, -1: 0.0}.get(rating, 0.0)


def prm800k_rows(
    records: Iterable[dict[str, Any]], neutral: float = 1.0, alternatives: bool = False
) -> Iterator[dict[str, Any]]:
    """PRM rows from raw PRM800K records (see the module docstring)."""
    for record in records:
        problem = record["question"]["problem"]
        steps: list[str] = []
        ratings: list[int] = []
        for step in record["label"]["steps"]:
            completions = step.get("completions") or []
            human = step.get("human_completion")
            chosen = step.get("chosen_completion")
            if chosen is None and not human and completions:
                chosen = 0  # the labeller stopped here: the solution ends with this completion
            if alternatives:
                for k, alt in enumerate(completions):
                    if k != chosen and alt.get("rating") is not None:
                        yield _prm800k_row(
                            problem, [*steps, alt["text"]], [*ratings, alt["rating"]], neutral
                        )
            if chosen is not None:
                pick = completions[chosen]
            elif human:
                pick = {**human, "rating": 1}  # written by the labeller to be correct
            else:
                break
            steps.append(pick["text"])
            ratings.append(pick.get("rating") if pick.get("rating") is not None else 0)
            if step.get("chosen_completion") is None and not human:
                break
        if steps:
            yield _prm800k_row(problem, steps, ratings, neutral)


def _prm800k_row(problem, steps, ratings, neutral) -> dict[str, Any]:
    return {
        "problem": problem,
        "steps": list(steps),
        "labels": [_rating_label(r, neutral) for r in ratings],
        "ratings": [int(r) for r in ratings],
        "source": "prm800k",
    }


def math_shepherd_row(record: dict[str, Any]) -> dict[str, Any]:
    """One PRM row from a Math-Shepherd record (``input`` with ``ки`` tags, ``label`` with +/-)."""
    text, label = record["input"], record["label"]
    pieces = text.split(SHEPHERD_TAG)[:-1]  # what follows the last tag is not a step
    if not pieces:
        raise ConfigError(f"A Math-Shepherd row has no {SHEPHERD_TAG!r} step tags: {text[:80]!r}.")
    labels, pos = [], 0
    for piece in pieces:
        if label[pos : pos + len(piece)] != piece or pos + len(piece) >= len(label):
            raise ConfigError("A Math-Shepherd row's label text does not repeat its input text.")
        mark = label[pos + len(piece)]
        if mark not in "+-":
            raise ConfigError(f"Math-Shepherd step labels are '+' or '-', got {mark!r}.")
        labels.append(1.0 if mark == "+" else 0.0)
        pos += len(piece) + 1
    head = _FIRST_STEP.search(pieces[0])
    if head is None:
        raise ConfigError("A Math-Shepherd row's first step does not start with 'Step 1:'.")
    problem = pieces[0][: head.start()].strip()
    steps = [pieces[0][head.start() :].strip(), *(p.strip() for p in pieces[1:])]
    return {
        "problem": problem,
        "steps": steps,
        "labels": labels,
        "source": "math-shepherd",
        "task": record.get("task", ""),
    }


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_prm_rows(
    spec: str, neutral: float = 1.0, limit: int | None = None
) -> list[dict[str, Any]]:
    """PRM rows from ``spec`` (see the module docstring), at most ``limit`` of them."""
    fmt, _, where = spec.partition(":")
    if fmt not in _HUB_IDS:
        if Path(spec).is_dir():
            import datasets

            rows = datasets.load_from_disk(spec)
            return [dict(r) for r in rows.select(range(min(limit or len(rows), len(rows))))]
        raise ConfigError(
            f"Step-label data {spec!r} is not a folder of PRM rows nor FORMAT:WHERE with FORMAT in "
            f"{', '.join(_HUB_IDS)} and WHERE a JSONL path, 'sample' or 'hub'."
        )
    if where == "sample":
        path = resources.files("rewards.rm") / "data" / _SAMPLES[fmt]
        records = [
            json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()
        ]
    elif where == "hub":
        records = _from_hub(fmt, limit)
    else:
        if not Path(where).exists():
            raise ConfigError(f"No file {where!r} (from {spec!r}).")
        records = read_jsonl(where)
    if fmt == "prm800k":
        rows = list(prm800k_rows(records, neutral=neutral))
    else:
        rows = [math_shepherd_row(r) for r in records]
    return rows[:limit] if limit else rows


def _from_hub(fmt: str, limit: int | None) -> list[dict[str, Any]]:
    try:
        import datasets

        split = f"train[:{limit}]" if limit else "train"
        return [dict(r) for r in datasets.load_dataset(_HUB_IDS[fmt], split=split)]
    except Exception as err:  # offline, missing dataset: one clear sentence
        raise ConfigError(
            f"Could not load {_HUB_IDS[fmt]} from the Hugging Face hub ({type(err).__name__}); "
            f"use {fmt}:PATH with a local copy, or {fmt}:sample for the shipped sample rows."
        ) from None
