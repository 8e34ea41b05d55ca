"""Critical phrases of BLiMP pairs, and delayed grammatical generalisation over a run.

"A Pre-Training Analogue of Grokking in Language Models" splits BLiMP pairs by whether the
pair's critical phrase appeared in the pretraining data before step t (proxy-train) or not
(proxy-validation), and finds accuracy on the proxy-train split rising earlier: generalisation
to unseen phrases is delayed. This module defines the critical phrase of a pair, splits pairs by
exposure (:mod:`pretraining.exposure`), and measures both splits' accuracy over a run's
checkpoints.

Critical phrases are word spans of the good sentence: its whitespace tokens, with punctuation
stripped from their edges (apostrophes kept: "hadn't", "patients'"), compared in lower case.
Spans are half-open, ``words[start_word:end_word]``. The *diff span* is the smallest span that
covers every word where the good and bad sentences differ, aligned with difflib on words; where
the bad sentence has extra words, the good word after them (the last word at the end) counts as
changed, so a moved word marks both of its places and word-order pairs are covered.

RULES, by ``linguistics_term`` (the phrase in brackets in the example good sentence):

=========================  ========================================================================
phenomenon                 critical phrase
=========================  ========================================================================
determiner_noun_agreement  The demonstrative (this/that/these/those) nearest at or before the diff,
                           through the noun: the diff when it is the noun, else (the diff is the
                           demonstrative) the sentence end, as BLiMP's pairs end on their noun
                           phrase. "Craig explored [that grocery store]."
subject_verb_agreement     The subject head through the verb: from the first word, or the second
                           when the first is a determiner ("The", "Most", ...), or the fourth
                           after a sentence-initial "A lot of", through the diff (the verb); when
                           the diff is the subject noun itself, through the word after it (the
                           verb). "The [cups alarm] Angela."
anaphor_agreement          The antecedent through the reflexive: from the first word (the subject:
                           a name, or determiner + noun) through the diff (the reflexive).
                           "[These patients do respect themselves]."
npi_licensing              The smallest span covering the diff (the licensor, or the word in the
                           NPI's slot) and the NPI (ever, any, anyone, anybody, anything,
                           anywhere, yet) nearest to it. "Teresa had [not ever] sold a movie
                           theater." When the good sentence has no NPI (npi_present_*: an adverb
                           stands where the bad sentence has "ever"), the diff with one word on
                           each side. "Even Suzanne [has really joked] around."
filler_gap_dependency      The filler (the first wh-word or "that" at or after the diff start,
                           else the diff start) through the sentence end, where BLiMP puts the
                           gap or its absence. "Joel discovered the vase [that Patricia might
                           take]."
island_effects             The wh-word (the first in the sentence, else the diff start) through
                           the sentence end, where BLiMP puts the gap. "[Who should Derek hug
                           after shocking Richard]?"
(any other)                The diff span. "Amanda was respected by some [waitresses]."
(identical words)          The whole sentence: a few BLiMP pairs repeat the good sentence as the
                           bad one (up to punctuation and case), so no word differs.
=========================  ========================================================================

These are word-level heuristics without a parser: in "The sketch of the actors is", "sketch" is
the head only because it comes first. A phrase that starts the sentence is also looked up with
its first letter in lower case (the capital is positional), so "These patients" counts as seen
where "these patients" was.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.blimp import accuracy, blimp_scores
from assay.errors import AssayError, CheckpointError
from pretraining.zeroshot import BLIMP_DEFAULT, BlimpPair, load_blimp

if TYPE_CHECKING:
    from pretraining.exposure import ExposureIndex, TextEncoder

_EDGE_PUNCTUATION = '.,!?;:"()[]{}'
_DEMONSTRATIVES = frozenset({"this", "that", "these", "those"})
_DETERMINERS = _DEMONSTRATIVES | {
    "the", "a", "an", "some", "most", "many", "all", "every", "each", "no", "few", "several",
    "both", "any", "much",
}  # fmt: skip
_NPIS = frozenset({"ever", "any", "anyone", "anybody", "anything", "anywhere", "yet"})
_WH_WORDS = frozenset({"who", "whom", "whose", "what", "which", "where", "when", "why", "how"})
_FILLERS = _WH_WORDS | {"that"}

Span = tuple[int, int]  # half-open word span


@dataclass(frozen=True)
class CriticalPhrase:
    """A span of the good sentence's words: ``text`` is ``words[start_word:end_word]`` joined by
    spaces, edge punctuation stripped; ``rule`` names the RULES row that chose it."""

    text: str
    start_word: int
    end_word: int
    rule: str


# ---- words and the diff span ----


def sentence_words(sentence: str) -> list[str]:
    """The whitespace tokens of ``sentence`` that hold more than punctuation."""
    return [t for t in sentence.split() if t.strip(_EDGE_PUNCTUATION)]


def _keys(words: list[str]) -> list[str]:
    return [w.strip(_EDGE_PUNCTUATION).lower() for w in words]


def diff_span(pair: BlimpPair) -> Span:
    """The smallest word span of the good sentence covering where it differs from the bad one."""
    good, bad = _keys(sentence_words(pair.sentence_good)), _keys(sentence_words(pair.sentence_bad))
    changed = []
    matcher = difflib.SequenceMatcher(None, good, bad, autojunk=False)
    for tag, i1, i2, _, _ in matcher.get_opcodes():
        if tag == "equal":
            continue
        # An insertion into the bad sentence (i1 == i2) marks the good word after it.
        changed += [i1, i2 - 1] if i2 > i1 else [min(i1, len(good) - 1)]
    if not changed or not good:
        raise AssayError(
            f"the sentences of this {pair.paradigm} pair have the same words, so it has no "
            f"critical phrase: {pair.sentence_good!r} vs {pair.sentence_bad!r}."
        )
    return min(changed), max(changed) + 1


# ---- rules: (word keys, diff span) -> span ----


def _determiner_noun(keys: list[str], diff: Span) -> Span:
    start, end = diff
    determiner = next((i for i in range(start, -1, -1) if keys[i] in _DEMONSTRATIVES), start)
    if end == start + 1 and keys[start] in _DEMONSTRATIVES:
        end = len(keys)  # the diff is the demonstrative: its noun ends the sentence
    return determiner, end


def _subject_verb(keys: list[str], diff: Span) -> Span:
    head = 0
    if keys[:3] == ["a", "lot", "of"]:
        head = 3
    elif len(keys) > 1 and keys[0] in _DETERMINERS:
        head = 1
    start, end = diff
    if end <= head + 1:  # the diff is the subject noun: take the verb after it
        end = min(head + 2, len(keys))
    return min(head, start), end


def _anaphor(keys: list[str], diff: Span) -> Span:
    return 0, diff[1]


def _npi(keys: list[str], diff: Span) -> Span:
    start, end = diff
    npis = [i for i, k in enumerate(keys) if k in _NPIS]
    if not npis:
        return max(start - 1, 0), min(end + 1, len(keys))
    nearest = min(npis, key=lambda i: start - i if i < start else max(i - (end - 1), 0))
    return min(start, nearest), max(end, nearest + 1)


def _filler_gap(keys: list[str], diff: Span) -> Span:
    filler = next((i for i in range(diff[0], len(keys)) if keys[i] in _FILLERS), diff[0])
    return filler, len(keys)


def _island(keys: list[str], diff: Span) -> Span:
    wh = next((i for i, k in enumerate(keys) if k in _WH_WORDS), diff[0])
    return wh, len(keys)


def _diff(keys: list[str], diff: Span) -> Span:
    return diff


RULES: dict[str, Callable[[list[str], Span], Span]] = {
    "determiner_noun_agreement": _determiner_noun,
    "subject_verb_agreement": _subject_verb,
    "anaphor_agreement": _anaphor,
    "npi_licensing": _npi,
    "filler_gap_dependency": _filler_gap,
    "island_effects": _island,
}


def critical_phrase(pair: BlimpPair) -> CriticalPhrase:
    """The critical phrase of ``pair`` by the rule of its phenomenon (see RULES above)."""
    words = sentence_words(pair.sentence_good)
    if not words:
        raise AssayError(f"this {pair.paradigm} pair has an empty good sentence: {pair!r}.")
    if _keys(words) == _keys(sentence_words(pair.sentence_bad)):
        # A few BLiMP pairs (e.g. in passive_1) repeat the good sentence as the bad one: no
        # minimal difference to point at, so the whole sentence.
        return CriticalPhrase(" ".join(words).strip(_EDGE_PUNCTUATION), 0, len(words), "identical")
    rule = pair.linguistics_term if pair.linguistics_term in RULES else "diff"
    start, end = RULES.get(rule, _diff)(_keys(words), diff_span(pair))
    text = " ".join(words[start:end]).strip(_EDGE_PUNCTUATION)
    return CriticalPhrase(text, start, end, rule)


# ---- exposure ----


def first_seen_steps(
    pairs: Sequence[BlimpPair], index: ExposureIndex, tokenizer: TextEncoder
) -> list[int | None]:
    """Per pair, the first step whose windows held its critical phrase (None: never)."""
    cache: dict[str, int | None] = {}
    steps = []
    for pair in pairs:
        phrase = critical_phrase(pair)
        variants = [phrase.text]
        if phrase.start_word == 0:  # a sentence-initial capital is positional, not lexical
            variants.append(phrase.text[:1].lower() + phrase.text[1:])
        for text in variants:
            if text not in cache:
                cache[text] = index.first_seen_text(text, tokenizer)
        found = [cache[t] for t in variants if cache[t] is not None]
        steps.append(min(found, default=None))
    return steps


def split_by_exposure(
    pairs: Sequence[BlimpPair], index: ExposureIndex, tokenizer: TextEncoder, step: int | None
) -> tuple[list[BlimpPair], list[BlimpPair]]:
    """``(seen, unseen)``: pairs whose critical phrase a step strictly before ``step`` consumed
    (as :meth:`ExposureIndex.seen_before`), and the rest; ``step=None`` means any step.

    The trainer logs steps from 1 (the count of updates done) and ``step-N`` holds the weights
    after N updates, so the split of checkpoint N is ``step=N + 1``."""
    firsts = first_seen_steps(pairs, index, tokenizer)
    seen = [f is not None and (step is None or f < step) for f in firsts]
    return (
        [p for p, s in zip(pairs, seen, strict=True) if s],
        [p for p, s in zip(pairs, seen, strict=True) if not s],
    )


# ---- curves over a run ----


def run_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``(step, folder)`` of every model a run saved (``checkpoints/step-*``, ``keep-*`` and
    ``final``), by step; of folders holding the same step (``final`` is the last ``step-N``),
    the first by name."""
    run_dir = Path(run_dir)
    folders = [*(run_dir / "checkpoints").glob("step-*"), *(run_dir / "checkpoints").glob("keep-*")]
    folders += [run_dir / "final"]
    found: dict[int, Path] = {}
    for folder in sorted(f for f in folders if (f / "config.json").is_file()):
        step = _checkpoint_step(folder)
        found.setdefault(step, folder)
    if not found:
        raise CheckpointError(
            f"{str(run_dir)!r} holds no saved model (checkpoints/step-*, checkpoints/keep-* or "
            "final with a config.json); pass the directory of a pretraining run."
        )
    return sorted(found.items())


def _checkpoint_step(folder: Path) -> int:
    named = re.fullmatch(r"(?:step|keep)-(\d+)", folder.name)
    if named:
        return int(named.group(1))
    from pretraining.trainer import METHOD_FILE  # {"method", "step"} beside every saved model

    if (folder / METHOD_FILE).is_file():
        return int(json.loads((folder / METHOD_FILE).read_text())["step"])
    from assay.checkpoints import load_trainer_state

    return int(load_trainer_state(folder)["step"])


def generalisation_curves(
    run_dir: str | Path,
    paradigms: Sequence[str] = BLIMP_DEFAULT,
    limit: int | None = None,
    *,
    method: str = "full",
    batch_size: int = 16,
    device: str | None = None,
) -> list[dict]:
    """One row per checkpoint of the run, by step: ``step``, ``checkpoint`` (folder name),
    ``accuracy`` (all pairs), ``accuracy_seen`` and ``accuracy_unseen`` on the proxy-train and
    proxy-validation splits, ``n_seen`` and ``n_unseen`` (their sizes), and
    ``n_seen_by_step`` (pairs whose phrase that checkpoint had already been trained on: first
    seen at a logged step <= its step, see :func:`split_by_exposure`).

    The split is fixed at the end of the run (phrase seen at any step vs never), so every
    checkpoint is measured on the same two sets of pairs."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pretraining.trace import run_exposure_index

    run_dir = Path(run_dir)
    paradigms = (paradigms,) if isinstance(paradigms, str) else tuple(paradigms)
    checkpoints = run_checkpoints(run_dir)
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "tokenizer")
    pairs = [p for name in paradigms for p in load_blimp(name)[:limit]]
    firsts = first_seen_steps(pairs, run_exposure_index(run_dir), tokenizer)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    for step, folder in checkpoints:
        model = AutoModelForCausalLM.from_pretrained(folder).to(device)
        scores = blimp_scores(model, tokenizer, pairs, method=method, batch_size=batch_size)
        del model
        seen = [s for s, f in zip(scores, firsts, strict=True) if f is not None]
        unseen = [s for s, f in zip(scores, firsts, strict=True) if f is None]
        rows.append(
            {
                "step": step,
                "checkpoint": folder.name,
                "accuracy": accuracy(scores),
                "accuracy_seen": accuracy(seen),
                "accuracy_unseen": accuracy(unseen),
                "n_seen": sum(s["skipped"] is None for s in seen),
                "n_unseen": sum(s["skipped"] is None for s in unseen),
                "n_seen_by_step": sum(f is not None and f <= step for f in firsts),
            }
        )
    return rows


# ---- the delay ----


def generalisation_delay(
    curves: Sequence[dict], threshold: float | None = None, min_rise: float = 0.05
) -> dict:
    """When each split's accuracy rises, and how much later the unseen split does.

    A split rises at the first step whose accuracy reaches ``threshold``, or by default its own
    half-way mark ``0.5 + 0.5 * (best - 0.5)`` between chance and its best accuracy: relative to
    each split's best, so a split that ends lower is not called late for that alone, and at
    half-way, so one noisy early point near chance does not count. With no ``threshold``, a
    split whose best is below ``0.5 + min_rise`` never rises. Returns ``threshold_seen``,
    ``threshold_unseen``, ``step_seen``, ``step_unseen`` (None: never rises) and ``delay``
    (``step_unseen - step_seen``; None unless both rise)."""
    out: dict = {}
    for split in ("seen", "unseen"):
        points = sorted(
            (row["step"], row[f"accuracy_{split}"])
            for row in curves
            if row.get(f"accuracy_{split}") is not None
        )
        best = max((acc for _, acc in points), default=None)
        level = threshold
        if level is None and best is not None and best >= 0.5 + min_rise:
            level = 0.5 + 0.5 * (best - 0.5)
        out[f"threshold_{split}"] = level
        out[f"step_{split}"] = next(
            (step for step, acc in points if level is not None and acc >= level), None
        )
    rose = out["step_seen"] is not None and out["step_unseen"] is not None
    out["delay"] = out["step_unseen"] - out["step_seen"] if rose else None
    return out


def plot_generalisation(curves: Sequence[dict], path: str | Path) -> Path:
    """Accuracy of the proxy-train (seen) and proxy-validation (unseen) splits over steps, with
    chance and each split's rise step (:func:`generalisation_delay`) marked."""
    from assay.runs import pyplot, save_figure

    plt = pyplot()

    delay = generalisation_delay(curves)
    fig, ax = plt.subplots(figsize=(6, 4))
    for split, color in (("seen", "tab:blue"), ("unseen", "tab:orange")):
        points = [(r["step"], r[f"accuracy_{split}"]) for r in curves]
        points = [(s, a) for s, a in points if a is not None]
        n = curves[-1][f"n_{split}"] if curves and f"n_{split}" in curves[-1] else "?"
        label = f"{'proxy-train' if split == 'seen' else 'proxy-validation'} ({split}, n={n})"
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", color=color, label=label)
        if delay[f"step_{split}"] is not None:
            ax.axvline(delay[f"step_{split}"], color=color, linestyle=":", alpha=0.7)
    ax.axhline(0.5, color="gray", linestyle="--", linewidth=1, label="chance")
    ax.set_xlabel("step")
    ax.set_ylabel("BLiMP accuracy")
    ax.set_title(f"Delayed generalisation (delay: {delay['delay']} steps)")
    ax.legend(fontsize=8)
    return save_figure(fig, path)
