"""ROUGE-L F-measure (Lin 2004) for the generation tasks of ICL probes.

Written here rather than taken from ``rouge-score``: that package ships only as an old sdist that
pulls in nltk and absl for what is one longest-common-subsequence over lower-cased word tokens,
which is all the probes need (no stemming, as in the SNI paper's default evaluation).
"""

from __future__ import annotations

import re
from collections.abc import Sequence


def tokens(text: str) -> list[str]:
    """Lower-cased alphanumeric tokens (rouge-score's default tokenizer, without stemming)."""
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).split()


def _lcs(a: list[str], b: list[str]) -> int:
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """F-measure of LCS precision and recall over word tokens.

    >>> round(rouge_l("the cat sat on the mat", "the cat lay on a mat"), 4)
    0.6667
    """
    p, r = tokens(prediction), tokens(reference)
    if not p or not r:
        return float(p == r)
    lcs = _lcs(p, r)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(p), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def best_rouge_l(prediction: str, references: Sequence[str]) -> float:
    """The best ROUGE-L over every accepted reference."""
    return max((rouge_l(prediction, ref) for ref in references), default=0.0)
