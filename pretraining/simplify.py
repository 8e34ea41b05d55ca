"""Simplified pretraining text: keep only the spans of a corpus written in a simple vocabulary.

Muckatira et al. (2024), "Emergent Abilities in Reduced-Scale Generative Language Models",
pretrain small models on text whose out-of-vocabulary (OOV) rate against a child-level
vocabulary stays under 1% and whose spans are at least 32 words long. This module gives the
pieces: a vocabulary (:func:`simple_vocabulary`), the word tokenizer the OOV rate is counted on
(:func:`words`), the rate itself (:func:`oov_rate`) and the span filter (:func:`simplify`).

>>> vocab = frozenset({"the", "cat", "sat"})
>>> oov_rate("The cat sat on 2 mats.", vocab)  # "on" and "mats" are OOV; "2" is not a word
0.4
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from assay.errors import ConfigError

# Chosen by measuring how much of WikiText-2 survives the default filter: see simple_vocabulary.
DEFAULT_TOP_N = 20_000

UNK = "<unk>"  # WikiText's unknown-word token: always out of vocabulary
# A word: letters (any script) with inner apostrophes or hyphens ("don't", "well-known").
# Runs that contain digits are numbers ("1998", "3rd") and are skipped, like punctuation.
_TOKEN = re.compile(r"<unk>|[^\W_]+(?:['\-][^\W_]+)*")
_WORD = re.compile(r"[^\W\d_]+(?:['\-][^\W\d_]+)*")
# WikiText-2 (tokenized) writes "well @-@ known", "1 @,@ 000", "0 @.@ 7" and splits clitics
# ("don 't", "city 's"); undo both so words match a vocabulary of ordinary spellings.
_WIKITEXT_JOIN = re.compile(r"\s*@([-,.])@\s*")
_CLITIC = re.compile(r"(?<=\w) (['’](?:s|t|re|ve|ll|d|m))(?=\s|$)", re.IGNORECASE)
# A sentence ends at . ! ? (plus closing quotes/brackets) before whitespace, or at a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)\]]*(?=\s)|\n")


def words(text: str) -> list[str]:
    """The words of ``text`` that the OOV rate counts, lowercased.

    A word is a run of letters with inner apostrophes or hyphens ("don't", "well-known").
    Numbers (any run containing a digit) and punctuation are not words and count neither way.
    WikiText-2 markup is undone first (``@-@`` joins a hyphenated word, ``@,@``/``@.@`` join
    a number, split clitics like ``don 't`` are rejoined) and ``<unk>`` is kept as a word that
    is always out of vocabulary.

    >>> words("The well @-@ known <unk> didn 't sell 1 @,@ 000 copies .")
    ['the', 'well-known', '<unk>', "didn't", 'sell', 'copies']
    """
    text = _CLITIC.sub(r"\1", _WIKITEXT_JOIN.sub(r"\1", text)).replace("’", "'").lower()
    return [t for t in _TOKEN.findall(text) if t == UNK or _WORD.fullmatch(t)]


def in_vocab(word: str, vocab: frozenset[str]) -> bool:
    """Whether ``word`` (from :func:`words`) counts as in-vocabulary: listed itself, a
    possessive of a listed word ("city's"), or a hyphenated compound of listed words."""
    if word == UNK:
        return False
    if word in vocab:
        return True
    if word.endswith("'s") and word[:-2] in vocab:
        return True
    parts = word.split("-")
    return len(parts) > 1 and all(in_vocab(p, vocab) for p in parts)


def count_oov(text: str, vocab: frozenset[str]) -> tuple[int, int]:
    """``(number of words, number of them out of vocabulary)`` in ``text``."""
    ws = words(text)
    return len(ws), sum(not in_vocab(w, vocab) for w in ws)


def oov_rate(text: str, vocab: frozenset[str]) -> float:
    """The fraction of the words of ``text`` outside ``vocab`` (0.0 for text without words)."""
    n_words, n_oov = count_oov(text, vocab)
    return n_oov / n_words if n_words else 0.0


def simple_vocabulary(
    top_n: int = DEFAULT_TOP_N,
    words: Iterable[str] | None = None,
    path: str | Path | None = None,
) -> frozenset[str]:
    """The simple vocabulary, lowercased: the ``top_n`` most frequent English words of
    ``wordfreq`` by default, or a word list given as ``words`` or as a text file ``path`` with
    one word per line (e.g. the vocabulary of AO-CHILDES, as in Muckatira et al., 2024).

    Entries that are not words in the sense of :func:`words` (numbers, symbols, "u.s") are
    dropped; the default keeps taking wordfreq's list until it has ``top_n`` words.

    The default ``top_n = 20_000`` was measured on WikiText-2 valid+test (the ``wikitext2``
    and ``wikitext2-test`` corpora of :mod:`pretraining.corpus`: 122 articles, 369k words) under the default filter (max_oov=0.01,
    min_words=32); the fraction of words kept in spans by vocabulary size is 1k: 0.01%, 5k: 0.3%, 10k: 2.2%
    (8k words), 20k: 8.1% (29.8k words, 533 spans), 30k: 11.3%, 50k: 14.0%, 100k: 15.5%.
    The ceiling is low because 7.3% of WikiText-2's words are ``<unk>``. Past 20k each extra
    word buys less text (10k->20k adds 5.9 points, 20k->30k 3.2): 20k keeps enough for a CPU
    demo to train on while the long tail of rarer names and technical terms stays out.
    """
    if words is not None and path is not None:
        raise ConfigError("simple_vocabulary got both `words` and `path`; give one of them.")
    if path is not None:
        try:
            words = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as err:
            raise ConfigError(f"cannot read the word list {str(path)!r}: {err}") from None
    if words is not None:
        vocab = frozenset(_clean(words))
        if not vocab:
            raise ConfigError("the word list has no words (letters with inner ' or -); check it.")
        return vocab
    if top_n < 1:
        raise ConfigError(f"simple_vocabulary: top_n must be a positive integer, got {top_n!r}.")
    import wordfreq

    # A margin for the entries that are not words (numbers, "u.s"); about 5% of the list.
    listed = _clean(wordfreq.top_n_list("en", int(top_n * 1.2) + 100))
    return frozenset(listed[:top_n])


def _clean(entries: Iterable[str]) -> list[str]:
    """The entries that are words, lowercased and stripped, in order without duplicates."""
    out = dict.fromkeys(
        w
        for w in (e.strip().lower().replace("’", "'") for e in entries)
        if _WORD.fullmatch(w) and w != UNK
    )
    return list(out)


@dataclass(frozen=True)
class Span:
    """A kept run of consecutive sentences of one document."""

    doc: int  # index of the document in the input
    start: int  # character offsets into that document: text == document[start:end]
    end: int
    text: str
    n_words: int
    n_oov: int


@dataclass(frozen=True)
class SimplifyStats:
    documents: int
    spans: int
    words_in: int
    words_kept: int

    @property
    def kept_fraction(self) -> float:
        return self.words_kept / self.words_in if self.words_in else 0.0


def sentences(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` character offsets of the sentences of ``text`` (whitespace trimmed).

    A sentence ends at ``.``, ``!`` or ``?`` (and any closing quotes or brackets) followed by
    whitespace, or at a line break, so a heading line is a sentence of its own."""
    out, begin = [], 0
    for cut in [m.end() for m in _SENTENCE_END.finditer(text)] + [len(text)]:
        piece = text[begin:cut]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            out.append((begin + lead, begin + len(piece.rstrip())))
        begin = cut
    return out


def simplify(
    documents: Sequence[str],
    vocab: frozenset[str],
    *,
    max_oov: float = 0.01,
    min_words: int = 32,
) -> list[Span]:
    """The spans of ``documents`` written in ``vocab``: maximal runs of consecutive sentences
    whose OOV rate, counted over the whole run, stays ``<= max_oov`` as the run grows, kept when
    they have ``>= min_words`` words (Muckatira et al., 2024: 1% and 32 words).

    Runs grow greedily left to right. A sentence that would push the run over ``max_oov`` ends
    it and starts the next run if it is within ``max_oov`` on its own (else it is dropped), so
    an OOV word ends any run shorter than ``1 / max_oov`` words. Deterministic.
    """
    if not 0.0 <= max_oov < 1.0:
        raise ConfigError(f"simplify: max_oov must be in [0, 1), got {max_oov!r}.")
    if min_words < 1:
        raise ConfigError(f"simplify: min_words must be at least 1, got {min_words!r}.")
    spans: list[Span] = []
    for doc_index, doc in enumerate(documents):
        for start, end, n_words, n_oov in _runs(doc, vocab, max_oov):
            if n_words >= min_words:
                spans.append(Span(doc_index, start, end, doc[start:end], n_words, n_oov))
    return spans


def _runs(doc: str, vocab: frozenset[str], max_oov: float) -> list[tuple[int, int, int, int]]:
    """The greedy runs of :func:`simplify` in one document: ``(start, end, words, oov)``."""
    runs: list[list[int]] = []  # [start, end, words, oov]; the last one is still growing
    growing = False
    for start, end in sentences(doc):
        n_words, n_oov = count_oov(doc[start:end], vocab)
        if growing:
            run = runs[-1]
            total_words, total_oov = run[2] + n_words, run[3] + n_oov
            if total_oov == 0 or total_oov / total_words <= max_oov:
                run[1:] = [end, total_words, total_oov]
                continue
        growing = n_oov == 0 or n_oov / n_words <= max_oov
        if growing:
            runs.append([start, end, n_words, n_oov])
    return [(a, b, w, o) for a, b, w, o in runs]


def simplify_stats(documents: Sequence[str], spans: Sequence[Span]) -> SimplifyStats:
    """How much of ``documents`` the ``spans`` kept (documents, spans, words in and kept)."""
    words_in = sum(len(words(doc)) for doc in documents)
    return SimplifyStats(len(documents), len(spans), words_in, sum(s.n_words for s in spans))
