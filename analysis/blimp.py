"""BLiMP minimal-pair scores and per-phenomenon accuracy tables.

Warstadt et al. (2020), "BLiMP: The Benchmark of Linguistic Minimal Pairs for English", score a
pair two ways, both here:

- ``"full"``: the pair is right when log p(good) > log p(bad), each the sum of the token
  log-probs of the whole sentence given the BOS (:func:`pretraining.logprob.sequence_logprob`).
- ``"one_prefix"``: for pairs whose sentences share a prefix and differ in the next word(s), the
  pair is right when log p(word_good | prefix) > log p(word_bad | prefix). Only the pairs the
  data marks ``one_prefix_method`` have the split; the others are skipped with a reason.

Ties count as wrong in both. :class:`pretraining.zeroshot.BlimpPair` does not carry the
one-prefix fields, so they are read here from the same raw rows :func:`load_blimp` reads.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

from assay.errors import AssayError, ConfigError, did_you_mean
from pretraining.logprob import continuation_logprob, sequence_logprob
from pretraining.zeroshot import (
    BLIMP_DEFAULT,
    BLIMP_PARADIGMS,
    BlimpPair,
    load_blimp,
    shared_data_dir,
)

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

METHODS = ("full", "one_prefix")


@dataclass(frozen=True)
class OnePrefix:
    """The one-prefix split of a pair: ``prefix + " " + word_good`` starts the good sentence."""

    prefix: str
    word_good: str
    word_bad: str


# ---- one-prefix data ----


def _raw_rows(paradigm: str) -> list[dict]:
    """The raw BLiMP rows of ``paradigm``, from the places :func:`load_blimp` looks, in order."""
    packaged = resources.files("pretraining") / "data" / "blimp" / f"{paradigm}.jsonl.gz"
    if packaged.is_file():
        with packaged.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    shared = shared_data_dir() / "blimp" / f"{paradigm}.jsonl"
    if shared.is_file():
        lines = shared.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
    try:
        import datasets

        return list(datasets.load_dataset("nyu-mll/blimp", paradigm, split="train"))
    except Exception as err:  # offline, no datasets cache, ...: one sentence, not a traceback
        raise AssayError(
            f"the one-prefix fields of BLiMP paradigm {paradigm!r} are neither shipped with "
            f"assay, nor in {shared.parent}, nor loadable from the hub ({type(err).__name__}); "
            "set ASSAY_SHARED_DATA to a folder holding blimp/<paradigm>.jsonl."
        ) from None


@cache
def _one_prefix_table(paradigm: str) -> dict[tuple[str, str], OnePrefix | None]:
    table = {}
    for row in _raw_rows(paradigm):
        split = None
        if row.get("one_prefix_method") and row.get("one_prefix_word_good"):
            split = OnePrefix(
                row.get("one_prefix_prefix") or "",
                row["one_prefix_word_good"],
                row["one_prefix_word_bad"],
            )
        table[row["sentence_good"], row["sentence_bad"]] = split
    return table


def one_prefix_split(pair: BlimpPair) -> tuple[OnePrefix | None, str | None]:
    """``(split, None)`` from the BLiMP data of ``pair.paradigm``, or ``(None, why not)``."""
    if pair.paradigm not in BLIMP_PARADIGMS:
        return None, f"{pair.paradigm!r} is not a BLiMP paradigm, so the data has no split"
    key = (pair.sentence_good, pair.sentence_bad)
    table = _one_prefix_table(pair.paradigm)
    if key not in table:
        return None, f"the pair is not in the BLiMP data of {pair.paradigm!r}"
    if table[key] is None:
        return None, "BLiMP marks this pair unfit for the one-prefix method"
    return table[key], None


# ---- scores ----


def blimp_scores(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[BlimpPair],
    *,
    method: str = "full",
    batch_size: int = 16,
    splits: Sequence[OnePrefix | None] | None = None,
) -> list[dict]:
    """Per pair: ``paradigm``, ``linguistics_term``, ``sentence_good``, ``sentence_bad``,
    ``method``, ``logprob_good``, ``logprob_bad``, ``correct`` (good > bad; ties wrong) and
    ``skipped`` (why a pair has no score, else None; scores are then None).

    ``splits`` gives the one-prefix split of each pair (None: skip it) instead of the data's,
    for pairs that are not from BLiMP."""
    if method not in METHODS:
        raise ConfigError(
            f"Unknown BLiMP scoring method {method!r}; methods: {', '.join(METHODS)}."
            f"{did_you_mean(method, METHODS)}"
        )
    if splits is not None and len(splits) != len(pairs):
        raise ConfigError(f"blimp_scores got {len(pairs)} pairs but {len(splits)} splits.")
    rows = [_row(pair, method) for pair in pairs]
    if method == "full":
        texts = [p.sentence_good for p in pairs] + [p.sentence_bad for p in pairs]
        scored = list(range(len(pairs)))
        scores = sequence_logprob(model, tokenizer, texts, batch_size) if pairs else []
    else:
        scored, contexts, goods, bads = [], [], [], []
        for i, pair in enumerate(pairs):
            if splits is not None:
                split, why = splits[i], "no one-prefix split was given for this pair"
            else:
                split, why = one_prefix_split(pair)
            if split is None:
                rows[i]["skipped"] = why
                continue
            scored.append(i)
            contexts.append(split.prefix)
            goods.append(split.word_good)
            bads.append(split.word_bad)
        # Goods then bads in one scorer call, so that similar lengths share batches.
        scores = continuation_logprob(model, tokenizer, contexts * 2, goods + bads, batch_size)
    for k, i in enumerate(scored):
        good, bad = scores[k], scores[k + len(scored)]
        rows[i].update(logprob_good=good, logprob_bad=bad, correct=good > bad)
    return rows


def _row(pair: BlimpPair, method: str) -> dict:
    return {
        "paradigm": pair.paradigm,
        "linguistics_term": pair.linguistics_term,
        "sentence_good": pair.sentence_good,
        "sentence_bad": pair.sentence_bad,
        "method": method,
        "logprob_good": None,
        "logprob_bad": None,
        "correct": None,
        "skipped": None,
    }


def accuracy(scores: Sequence[dict]) -> float | None:
    """Fraction correct among the scored rows of :func:`blimp_scores` (None if none scored)."""
    correct = [s["correct"] for s in scores if s["correct"] is not None]
    return sum(correct) / len(correct) if correct else None


# ---- tables ----


def blimp_accuracy_table(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    paradigms: Sequence[str] = BLIMP_DEFAULT,
    *,
    method: str = "full",
    limit: int | None = None,
    batch_size: int = 16,
) -> list[dict]:
    """Accuracy per paradigm (the first ``limit`` pairs of each), then per phenomenon, then over
    all paradigms. Rows: ``level`` ("paradigm", "phenomenon" or "overall"), ``name``,
    ``linguistics_term``, ``n`` (pairs scored), ``n_skipped``, ``n_paradigms`` and ``accuracy``
    (None when nothing was scored). Phenomenon and overall accuracies are means over their
    paradigms, each weighted equally, as BLiMP reports them."""
    paradigms = (paradigms,) if isinstance(paradigms, str) else tuple(paradigms)
    pairs = [p for name in paradigms for p in load_blimp(name)[:limit]]
    scores = blimp_scores(model, tokenizer, pairs, method=method, batch_size=batch_size)
    rows = []
    for name in paradigms:
        mine = [s for s in scores if s["paradigm"] == name]
        term = mine[0]["linguistics_term"] if mine else None
        rows.append(_table_row("paradigm", name, term, mine, 1, accuracy(mine)))
    terms = dict.fromkeys(r["linguistics_term"] for r in rows)
    for term in terms:
        members = [r for r in rows if r["level"] == "paradigm" and r["linguistics_term"] == term]
        mine = [s for s in scores if s["linguistics_term"] == term]
        rows.append(_table_row("phenomenon", term, term, mine, len(members), _mean(members)))
    members = [r for r in rows if r["level"] == "paradigm"]
    rows.append(_table_row("overall", "all", None, scores, len(members), _mean(members)))
    return rows


def _table_row(
    level: str,
    name: str,
    term: str | None,
    scores: list[dict],
    n_paradigms: int,
    acc: float | None,
) -> dict:
    n = sum(s["skipped"] is None for s in scores)
    return {
        "level": level,
        "name": name,
        "linguistics_term": term,
        "n": n,
        "n_skipped": len(scores) - n,
        "n_paradigms": n_paradigms,
        "accuracy": acc,
    }


def _mean(rows: list[dict]) -> float | None:
    values = [r["accuracy"] for r in rows if r["accuracy"] is not None]
    return sum(values) / len(values) if values else None
