"""The shipped classification tasks (SST-2, AG News, RTE, TREC, CB) with their task descriptions,
inline instructions and label words. The first ``DEMO_POOL`` rows of each file are the
demonstration pool; the rest are test instances, so a demonstration is never a test question."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

DEMO_POOL = 100
_DATA = resources.files("envs.icl") / "data"


@dataclass(frozen=True)
class Example:
    input: str
    label: str  # a label word (classification) or the first reference output (generation)
    references: tuple[str, ...] = ()  # every accepted output (generation tasks)


@dataclass(frozen=True)
class ICLTask:
    name: str
    description: str
    inline: str
    input_prefix: str
    label_space: tuple[str, ...]
    demos: tuple[Example, ...]
    tests: tuple[Example, ...]
    kind: str = "classification"  # or "generation" (scored by ROUGE-L)


def _nli(row, words):
    return Example(f"{row['premise']}\nHypothesis: {row['hypothesis']}", words[row["label"]])


_SPECS = {
    "sst2": dict(
        description="Classify the sentiment of the movie review as positive or negative.",
        inline="Is the sentiment of this review positive or negative?",
        input_prefix="Review: ",
        labels=("negative", "positive"),
        read=lambda r: Example(r["sentence"], ("negative", "positive")[r["label"]]),
    ),
    "agnews": dict(
        description="Classify the news article into one of four topics: World, Sports, "
        "Business or Technology.",
        inline="Which topic is this article about: World, Sports, Business or Technology?",
        input_prefix="Article: ",
        labels=("World", "Sports", "Business", "Technology"),
        read=lambda r: Example(
            f"{r['title']}. {r['description']}",
            ("World", "Sports", "Business", "Technology")[r["label"] - 1],
        ),
    ),
    "rte": dict(
        description="Decide whether the hypothesis follows from the premise: True or False.",
        inline="Does the hypothesis follow from the premise, True or False?",
        input_prefix="Premise: ",
        labels=("True", "False"),
        read=lambda r: _nli(r, {"entailment": "True", "not_entailment": "False"}),
    ),
    "trec": dict(
        description="Classify the question by the type of its answer: Abbreviation, "
        "Description, Entity, Person, Location or Number.",
        inline="What type of answer does this question ask for?",
        input_prefix="Question: ",
        labels=("Abbreviation", "Description", "Entity", "Person", "Location", "Number"),
        read=lambda r: Example(
            r["question"],
            {
                "ABBR": "Abbreviation",
                "DESC": "Description",
                "ENTY": "Entity",
                "HUM": "Person",
                "LOC": "Location",
                "NUM": "Number",
            }[r["label"]],  # fmt: skip
        ),
    ),
    "cb": dict(
        description="Decide whether the hypothesis follows from the premise: True, False or "
        "Neither.",
        inline="Does the hypothesis follow from the premise, True, False or Neither?",
        input_prefix="Premise: ",
        labels=("True", "False", "Neither"),
        read=lambda r: _nli(
            r, {"entailment": "True", "contradiction": "False", "neutral": "Neither"}
        ),  # fmt: skip
    ),
}
TASKS = tuple(_SPECS)


@cache
def load_task(name: str) -> ICLTask:
    if name not in _SPECS:
        raise ValueError(f"unknown ICL task {name!r}; tasks: {', '.join(TASKS)}")
    spec = _SPECS[name]
    with resources.as_file(_DATA / f"{name}.jsonl.gz") as path, gzip.open(path, "rt") as f:
        rows = [spec["read"](json.loads(line)) for line in f if line.strip()]
    pool = min(DEMO_POOL, len(rows) // 2)
    return ICLTask(
        name=name,
        description=spec["description"],
        inline=spec["inline"],
        input_prefix=spec["input_prefix"],
        label_space=spec["labels"],
        demos=tuple(rows[:pool]),
        tests=tuple(rows[pool:]),
    )


def load_sni_task(path, inline: str = "", max_labels: int = 20) -> ICLTask:
    """A Super-NaturalInstructions task file (``Definition``, ``Positive Examples``,
    ``Instances``) as an ICL task: the definition is the description, the positive examples the
    demonstration pool, the instances the tests. A task with at most ``max_labels`` distinct
    outputs is a classification task (label space = those outputs); otherwise a generation task
    scored by ROUGE-L against every accepted output. ``inline``: the inline instruction (SNI
    has none; the paper wrote one per task)."""
    from pathlib import Path

    data = json.loads(Path(path).read_text(encoding="utf-8"))
    try:
        definition = " ".join(data["Definition"]).strip()
        demos = tuple(Example(e["input"], e["output"]) for e in data["Positive Examples"])
        tests = tuple(
            Example(i["input"], i["output"][0], tuple(i["output"])) for i in data["Instances"]
        )
    except (KeyError, IndexError, TypeError) as err:
        raise ValueError(f"{path} is not a Super-NaturalInstructions task file: {err!r}") from None
    outputs = sorted({t.label for t in tests} | {d.label for d in demos})
    kind = "classification" if len(outputs) <= max_labels else "generation"
    return ICLTask(
        name=Path(path).stem,
        description=definition,
        inline=inline,
        input_prefix="Input: ",
        label_space=tuple(outputs) if kind == "classification" else (),
        demos=demos,
        tests=tests,
        kind=kind,
    )


def resolve_task(name_or_path: str) -> ICLTask:
    """A shipped task by name, or a Super-NaturalInstructions task file by path (``.json``)."""
    if name_or_path.endswith(".json"):
        return load_sni_task(name_or_path)
    return load_task(name_or_path)
