"""Structural and semantic corruptions of a few-shot prompt's components, one registry.

Every corruption is a pure function of the prompt's :class:`~envs.icl.prompt.Parts` and a
:class:`Context` (a seeded RNG, the label space, word lists, and optionally the model's tokenizer
for token-length matching). ``all`` is the uncorrupted baseline. The two parametric ones take
``k``, written ``inline_in_k_demos:2``; :func:`expand` lists them for k = 0..n.

Random words come from ``data/words.txt`` (wordfreq's 4,000 most frequent words); replacements
have the same number of tokens as what they replace under the tokenizer (or of words, without
one).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources

import numpy as np

from envs.icl.prompt import Demo, Parts

_DATA = resources.files("envs.icl") / "data"


@lru_cache(maxsize=1)
def word_list() -> tuple[str, ...]:
    return tuple((_DATA / "words.txt").read_text().split())


@lru_cache(maxsize=1)
def ood_sentences() -> tuple[str, ...]:
    return tuple(s for s in (_DATA / "ood_sentences.txt").read_text().splitlines() if s)


@dataclass
class Context:
    rng: np.random.Generator
    label_space: Sequence[str]
    tokenizer: object | None = None
    k: int | None = None

    def length(self, text: str) -> int:
        if self.tokenizer is None:
            return len(text.split())
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def random_words(self, like: str, pool: Sequence[str] | None = None) -> str:
        """Random words with the same token length as ``like`` (words from ``pool``)."""
        return random_text(self.length(like), self, pool or word_list())


def random_text(target: int, ctx: Context, pool: Sequence[str]) -> str:
    """Words drawn from ``pool`` whose text is exactly ``target`` tokens long."""
    if target <= 0:
        return ""
    for _ in range(200):
        words: list[str] = []
        while ctx.length(" ".join(words)) < target:
            words.append(pool[int(ctx.rng.integers(len(pool)))])
        if ctx.length(" ".join(words)) == target:
            return " ".join(words)
        words.pop()  # overshot with a multi-token word: fill the rest with one-token words
        singles = [w for w in pool[:500] if ctx.length(w) == 1 and ctx.length(f"x {w}") == 2]
        while ctx.length(" ".join(words)) < target and singles:
            words.append(singles[int(ctx.rng.integers(len(singles)))])
        if ctx.length(" ".join(words)) == target:
            return " ".join(words)
    raise RuntimeError(f"could not build {target} tokens of random words")


def _inline_k(parts: Parts, k: int, inline: str | None) -> Parts:
    demos = [replace(d, inline=inline if i < k else None) for i, d in enumerate(parts.demos)]
    return replace(parts.with_demos(demos), test_inline=inline)


def _structural(parts: Parts, description: bool, demos: bool, demo_inline: bool,
                test_inline: bool) -> Parts:  # fmt: skip
    kept = [replace(d, inline=d.inline if demo_inline else None) for d in parts.demos]
    return Parts(
        description=parts.description if description else None,
        demos=tuple(kept) if demos else (),
        test_input=parts.test_input,
        test_inline=parts.test_inline if test_inline else None,
    )


def _inline_text(parts: Parts) -> str | None:
    return parts.test_inline or next((d.inline for d in parts.demos if d.inline), None)


def _random_inline_k(parts: Parts, ctx: Context) -> Parts:
    inline = _inline_text(parts)
    return _inline_k(parts, ctx.k, ctx.random_words(inline) if inline else None)


def _instruction_random_words(parts: Parts, ctx: Context) -> Parts:
    description = ctx.random_words(parts.description) if parts.description else None
    inline = _inline_text(parts)
    noise = ctx.random_words(inline) if inline else None
    demos = [replace(d, inline=noise if d.inline else None) for d in parts.demos]
    return replace(parts.with_demos(demos), description=description,
                   test_inline=noise if parts.test_inline else None)  # fmt: skip


def _wrong_labels(parts: Parts, ctx: Context) -> Parts:
    demos = []
    for d in parts.demos:
        others = [label for label in ctx.label_space if label != d.label]
        demos.append(replace(d, label=others[int(ctx.rng.integers(len(others)))]))
    return parts.with_demos(demos)


def _ood_inputs(parts: Parts, ctx: Context) -> Parts:
    pool = ood_sentences()
    picks = ctx.rng.choice(len(pool), len(parts.demos), replace=False)
    return parts.with_demos(
        replace(d, input=pool[int(i)]) for d, i in zip(parts.demos, picks, strict=True)
    )


Corruption = Callable[[Parts, Context], Parts]

CORRUPTIONS: dict[str, Corruption] = {
    # structural
    "empty": lambda p, c: _structural(p, False, False, False, False),
    "only_instruction": lambda p, c: _structural(p, True, False, False, False),
    "only_inline": lambda p, c: _structural(p, False, False, False, True),
    "both_instructions": lambda p, c: _structural(p, True, False, False, True),
    "only_demonstrations": lambda p, c: _structural(p, False, True, False, False),
    "instruction_and_demos": lambda p, c: _structural(p, True, True, False, False),
    "inline_and_demos": lambda p, c: _structural(p, False, True, True, True),
    "all": lambda p, c: p,
    "inputs_removed": lambda p, c: p.with_demos(replace(d, input=None) for d in p.demos),
    "labels_removed": lambda p, c: p.with_demos(replace(d, label=None) for d in p.demos),
    "instruction_after_demos": lambda p, c: replace(p, description_after_demos=True),
    "inline_in_k_demos": lambda p, c: _inline_k(p, c.k, _inline_text(p)),
    # semantic
    "instruction_random_words": _instruction_random_words,
    "labels_random_words": lambda p, c: p.with_demos(
        replace(d, label=c.random_words(d.label)) for d in p.demos
    ),
    "inputs_random_words": lambda p, c: p.with_demos(
        replace(d, input=c.random_words(d.input)) for d in p.demos
    ),
    "inputs_out_of_distribution": _ood_inputs,
    "wrong_labels": _wrong_labels,
    "random_words_inline_in_k_demos": _random_inline_k,
    "instruction_frequent_words": lambda p, c: replace(
        p, description=c.random_words(p.description, word_list()[:100]) if p.description else None
    ),
}
PARAMETRIC = ("inline_in_k_demos", "random_words_inline_in_k_demos")


def list_corruptions() -> list[str]:
    """Every corruption's name (the parametric ones take ``:k``)."""
    return list(CORRUPTIONS)


def expand(names: Sequence[str], n_demos: int) -> list[str]:
    """Names with the parametric corruptions spelled out for k = 0..n_demos."""
    out = []
    for name in names:
        if name in PARAMETRIC:
            out += [f"{name}:{k}" for k in range(n_demos + 1)]
        else:
            out.append(name)
    return out


def corrupt(
    parts: Parts,
    name: str,
    seed: int,
    label_space: Sequence[str],
    tokenizer=None,
) -> Parts:
    """Apply corruption ``name`` (``"inline_in_k_demos:2"`` for the parametric ones); the same
    seed gives the same result."""
    base, _, k = name.partition(":")
    if base not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {base!r}; see envs.icl.list_corruptions()")
    if base in PARAMETRIC and (not k.isdigit() or int(k) > len(parts.demos)):
        raise ValueError(f"{base} needs :k with 0 <= k <= {len(parts.demos)}, got {name!r}")
    ctx = Context(np.random.default_rng(seed), label_space, tokenizer, int(k) if k else None)
    return CORRUPTIONS[base](parts, ctx)


__all__ = ["CORRUPTIONS", "Context", "Demo", "corrupt", "expand", "list_corruptions"]
