"""GSM8K and MATH problems: shipped as package data, or from the Hugging Face hub when reachable.

Shipped (``source="package"``, the default; see ``envs/math/data/SOURCES.md``):

- ``gsm8k``: ``test`` (all 1,319) and ``train`` (the first 2,000 of 7,473);
- ``math``: ``train`` (the 7,500 MATH train problems with final answers, no solutions) and
  ``test`` (MATH-500, the PRM800K test split, with solutions);
- ``math500``: ``test`` only (the same MATH-500 rows).

``source="hub"`` loads the full sets with ``datasets``: ``openai/gsm8k`` and, for MATH,
``HuggingFaceH4/MATH-500`` (test) and ``EleutherAI/hendrycks_math`` (train, all subjects).
Train and test never mix: each split comes from its own file or hub split.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

from assay.errors import ConfigError, did_you_mean

Source = Literal["package", "hub"]
SPLITS: dict[str, tuple[str, ...]] = {
    "gsm8k": ("train", "test"),
    "math": ("train", "test"),
    "math500": ("test",),
}
_FILES = {
    ("gsm8k", "train"): "gsm8k_train.jsonl.gz",
    ("gsm8k", "test"): "gsm8k_test.jsonl.gz",
    ("math", "train"): "math_train.jsonl.gz",
    ("math", "test"): "math500_test.jsonl.gz",
    ("math500", "test"): "math500_test.jsonl.gz",
}
_CALCULATOR = re.compile(r"<<[^<>]*>>")


@dataclass(frozen=True)
class Problem:
    """One problem: ``answer`` is the final gold answer, ``solution`` the worked solution
    (GSM8K keeps its ``<<48/2=24>>`` calculator annotations; empty for MATH train)."""

    id: str
    question: str
    answer: str
    solution: str = ""


def load_problems(dataset: str, split: str, source: Source = "package") -> tuple[Problem, ...]:
    """All problems of one split, in the file's order."""
    check_split(dataset, split)
    if source == "hub":
        return _from_hub(dataset, split)
    if source != "package":
        raise ConfigError(f"source must be 'package' or 'hub', got {source!r}.")
    return _from_package(dataset, split)


def check_split(dataset: str, split: str) -> None:
    if dataset not in SPLITS:
        raise ConfigError(
            f"Unknown math dataset {dataset!r}; known: {', '.join(SPLITS)}."
            f"{did_you_mean(dataset, SPLITS)}"
        )
    if split not in SPLITS[dataset]:
        raise ConfigError(
            f"Dataset {dataset!r} has no split {split!r}; it has {', '.join(SPLITS[dataset])}."
        )


def strip_calculator(solution: str) -> str:
    """GSM8K solution text without its ``<<...>>`` calculator annotations."""
    return _CALCULATOR.sub("", solution)


@cache
def _from_package(dataset: str, split: str) -> tuple[Problem, ...]:
    path = resources.files("envs.math") / "data" / _FILES[dataset, split]
    with path.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return tuple(_problem(dataset, split, i, row) for i, row in enumerate(rows))


def _problem(dataset: str, split: str, index: int, row: dict) -> Problem:
    if dataset == "gsm8k":
        solution, _, answer = row["answer"].rpartition("####")
        return Problem(
            f"gsm8k/{split}/{index}",
            row["question"],
            answer.strip().replace(",", ""),
            solution.strip(),
        )
    problem_id = row.get("unique_id") or f"math/{split}/{index}"
    return Problem(problem_id, row["problem"], str(row["answer"]).strip(), row.get("solution", ""))


@cache
def _from_hub(dataset: str, split: str) -> tuple[Problem, ...]:
    from rewards.math import last_boxed

    try:
        import datasets

        if dataset == "gsm8k":
            rows = datasets.load_dataset("openai/gsm8k", "main", split=split)
            return tuple(_problem("gsm8k", split, i, r) for i, r in enumerate(rows))
        if split == "test":
            rows = datasets.load_dataset("HuggingFaceH4/MATH-500", split="test")
            return tuple(_problem(dataset, split, i, r) for i, r in enumerate(rows))
        rows = datasets.load_dataset("EleutherAI/hendrycks_math", "all", split="train")
    except Exception as err:  # ImportError, offline, missing dataset: one clear sentence
        raise ConfigError(
            f"Could not load {dataset}/{split} from the Hugging Face hub ({type(err).__name__}); "
            "use source='package' for the shipped data or install `datasets` and go online."
        ) from err
    return tuple(
        Problem(
            f"math/train/{i}",
            r["problem"],
            (last_boxed(r["solution"]) or "").strip(),
            r["solution"],
        )  # fmt: skip
        for i, r in enumerate(rows)
    )
