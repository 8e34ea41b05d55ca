"""Where a grammatical contrast lives inside a model: linear probes, concept vectors and
attention heads, measured on BLiMP-style minimal pairs (good vs bad sentence).

- Pooled hidden states per layer (:func:`sentence_states`).
- The concept vector of a contrast: difference of class means per layer, the direction a
  linear readout would use (Kim et al. 2018, "TCAV", arXiv:1711.11279).
- Linear probes with pair-grouped cross-validation (Alain & Bengio 2016, arXiv:1610.01644;
  Hewitt & Liang 2019 on keeping probes honest, arXiv:1909.03368).
- Dimensionality of the per-pair differences: participation ratio (Gao et al. 2017,
  "A theory of multineuronal dimensionality", bioRxiv 214262) and PCs for a variance share.
- Attention from the critical word to its licensing word per head (Clark et al. 2019,
  "What does BERT look at?", arXiv:1906.04341; Voita et al. 2019, arXiv:1905.09418).

No I/O (the plots are :func:`analysis.grammar.plot_probes` and :func:`analysis.grammar.plot_heads`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import numpy as np
import torch

from assay.errors import AssayError, ConfigError

WordPair = tuple[int, int]  # (critical word index, licensing word index), whitespace words


# ---------------------------------------------------------------- encoding


def _encode(tokenizer, sentences: Sequence[str], offsets: bool = False):
    """Right-padded ``(input_ids, attention_mask)`` plus each sentence's encoding.

    Padding by hand keeps positions 0..len-1 for every real token (so batched equals
    one-at-a-time without position_ids) and works whatever the tokenizer's pad token/side.
    """
    encodings = [
        tokenizer(s, return_offsets_mapping=offsets, return_attention_mask=False) for s in sentences
    ]
    lengths = [len(e["input_ids"]) for e in encodings]
    if min(lengths) == 0:
        empty = sentences[lengths.index(0)]
        raise AssayError(f"sentence {empty!r} has no tokens; drop empty sentences first.")
    input_ids = torch.zeros(len(sentences), max(lengths), dtype=torch.long)  # (B, T)
    attention_mask = torch.zeros_like(input_ids)  # (B, T)
    for row, (enc, n) in enumerate(zip(encodings, lengths, strict=True)):
        input_ids[row, :n] = torch.as_tensor(enc["input_ids"])
        attention_mask[row, :n] = 1
    return input_ids, attention_mask, encodings


def _batches(items: Sequence, batch_size: int) -> Iterator[Sequence]:
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}.")
    for start in range(0, len(items), batch_size):
        yield items[start : start + batch_size]


# ---------------------------------------------------------------- representations


@torch.no_grad()
def sentence_states(
    model,
    tokenizer,
    sentences: Sequence[str],
    *,
    pool: Literal["mean", "last"] = "mean",
    batch_size: int = 16,
) -> torch.Tensor:
    """Pooled hidden states ``(n_layers + 1, n, d)`` (index 0 = embeddings), float32 on CPU.

    ``pool="mean"`` averages each sentence's real tokens (special tokens the tokenizer adds
    included, padding excluded); ``"last"`` takes its last real token, the only one that has
    seen the whole sentence in a causal model.
    """
    if pool not in ("mean", "last"):
        raise ConfigError(f"pool must be 'mean' or 'last', got {pool!r}.")
    if not sentences:
        raise AssayError("sentence_states needs at least one sentence, got an empty list.")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    chunks = []
    for batch in _batches(list(sentences), batch_size):
        input_ids, attention_mask, _ = _encode(tokenizer, batch)
        out = model(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            output_hidden_states=True,
        )
        hidden = torch.stack(out.hidden_states).float().cpu()  # (L+1, B, T, d)
        mask = attention_mask.to(hidden.dtype)[None, :, :, None]  # (1, B, T, 1)
        if pool == "mean":
            pooled = (hidden * mask).sum(2) / mask.sum(2)  # (L+1, B, d)
        else:
            last = attention_mask.sum(1) - 1  # (B,) right padding: last real position
            pooled = hidden[:, torch.arange(len(batch)), last]  # (L+1, B, d)
        chunks.append(pooled)
    model.train(was_training)
    return torch.cat(chunks, dim=1)  # (L+1, n, d)


def _check_paired(states_good: torch.Tensor, states_bad: torch.Tensor, same_n: bool) -> None:
    if states_good.dim() != 3 or states_bad.dim() != 3:
        raise AssayError(
            "states must be (layers, n, d) as sentence_states returns, got shapes "
            f"{tuple(states_good.shape)} and {tuple(states_bad.shape)}."
        )
    good_shape, bad_shape = states_good.shape, states_bad.shape
    mismatch = good_shape != bad_shape if same_n else good_shape[::2] != bad_shape[::2]
    if mismatch:
        raise AssayError(
            f"good and bad states do not match: {tuple(good_shape)} vs {tuple(bad_shape)}; "
            "compute both with the same model, and pass the sentences of the same pairs."
        )


def concept_vectors(
    states_good: torch.Tensor, states_bad: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per layer the difference of means good − bad ``(L, d)`` and its norm ``(L,)``."""
    _check_paired(states_good, states_bad, same_n=False)
    vectors = states_good.float().mean(1) - states_bad.float().mean(1)  # (L, d)
    return vectors, vectors.norm(dim=-1)


def probe_accuracy(
    states_good: torch.Tensor, states_bad: torch.Tensor, *, folds: int = 5, seed: int = 0
) -> list[dict]:
    """Cross-validated accuracy of a logistic-regression probe (good vs bad) for each layer.

    Returns one ``{"layer", "accuracy", "std", "folds", "n_pairs"}`` per layer (mean and std
    over folds). Both sentences of a pair always land in the same fold (groups = pair index),
    so the probe is never tested on a sentence whose minimal partner it was trained on: that
    partner differs in one or two words, and otherwise the probe could score by recognising
    the pair instead of the grammatical contrast. Every fold then holds exactly as many good
    as bad sentences, so chance is 0.5.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    _check_paired(states_good, states_bad, same_n=True)
    n_pairs = states_good.shape[1]
    if folds < 2 or folds > n_pairs:
        raise ConfigError(f"folds must be in [2, n_pairs={n_pairs}], got {folds}.")
    labels = np.concatenate([np.ones(n_pairs, dtype=int), np.zeros(n_pairs, dtype=int)])  # (2n,)
    groups = np.concatenate([np.arange(n_pairs), np.arange(n_pairs)])  # (2n,)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    # One split for every layer, so layers are compared on the same held-out pairs.
    splits = list(splitter.split(np.zeros((2 * n_pairs, 1)), labels, groups))
    rows = []
    for layer in range(states_good.shape[0]):
        features = torch.cat([states_good[layer], states_bad[layer]]).double().numpy()  # (2n, d)
        # Scaling first: hidden-state magnitudes grow with depth and would otherwise change
        # how strongly the fixed L2 penalty bites from layer to layer.
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        scores = cross_val_score(probe, features, labels, cv=splits)
        rows.append(
            {
                "layer": layer,
                "accuracy": float(scores.mean()),
                "std": float(scores.std()),
                "folds": folds,
                "n_pairs": n_pairs,
            }
        )
    return rows


def concept_dimensionality(diffs: torch.Tensor, threshold: float = 0.9) -> dict:
    """Spread of the per-pair differences ``(n, d)`` (good − bad) at one layer.

    ``participation_ratio`` is (Σλ)²/Σλ² over the covariance eigenvalues λ: k for k equal
    eigenvalues, 1 when one direction carries everything. ``n_components`` is the number of
    principal components needed for ``threshold`` of the variance. The mean difference (the
    concept vector) is removed first: this measures how the pairs vary around it. Data
    without variance give 0 for both.
    """
    if diffs.dim() != 2 or diffs.shape[0] < 2:
        raise AssayError(f"diffs must be (n >= 2, d), got shape {tuple(diffs.shape)}.")
    if not 0.0 < threshold <= 1.0:
        raise ConfigError(f"threshold must be in (0, 1], got {threshold}.")
    centred = diffs.double() - diffs.double().mean(0)  # (n, d)
    # Squared singular values / (n-1) are the nonzero covariance eigenvalues, without
    # forming the (d, d) covariance when d >> n.
    eigenvalues = torch.linalg.svdvals(centred) ** 2 / (diffs.shape[0] - 1)  # (min(n, d),)
    total = float(eigenvalues.sum())
    if total <= 0.0:
        return {"participation_ratio": 0.0, "n_components": 0, "threshold": threshold}
    share = torch.cumsum(eigenvalues, 0) / total  # descending eigenvalues, so rising share
    # The tolerance keeps an exact 90% (e.g. spectrum 5, 3, 1, 1) from needing one more PC.
    n_components = int((share < threshold - 1e-9).sum()) + 1
    return {
        "participation_ratio": total**2 / float((eigenvalues**2).sum()),
        "n_components": n_components,
        "threshold": threshold,
    }


# ---------------------------------------------------------------- attention heads


@contextmanager
def _eager_attention(model) -> Iterator[None]:
    """Run ``model`` with eager attention, then restore its previous implementation.

    SDPA and flash kernels never materialise the attention matrix, so transformers returns no
    attentions from them. Recent transformers (>= 4.48, including 5.x) pick the kernel at
    forward time from ``config._attn_implementation`` and offer ``set_attn_implementation``;
    older versions baked the kernel into the module class, in which case the caller must load
    with ``attn_implementation="eager"`` (:func:`head_attention` checks and says so).
    """
    previous = model.config._attn_implementation
    if previous == "eager":
        yield
        return
    setter = getattr(model, "set_attn_implementation", None)
    if setter is not None:
        setter("eager")
    else:
        model.config._attn_implementation = "eager"
    try:
        yield
    finally:
        if setter is not None:
            setter(previous)
        else:
            model.config._attn_implementation = previous


def _word_tokens(sentence: str, offsets: Sequence[tuple[int, int]], word: int) -> list[int]:
    """Token positions overlapping whitespace word ``word`` of ``sentence``.

    Offsets rather than ``word_ids``: a byte-level pre-tokenizer splits "happy." into two
    words, while BLiMP word indices count whitespace words.
    """
    spans = [m.span() for m in re.finditer(r"\S+", sentence)]
    if not 0 <= word < len(spans):
        raise AssayError(
            f"word index {word} is out of range for {sentence!r} ({len(spans)} words)."
        )
    start, end = spans[word]
    # Overlap, not containment: byte-level tokens carry their leading space (" cats" = 3..8).
    # Special tokens have empty spans (0, 0) and never overlap.
    tokens = [i for i, (s, e) in enumerate(offsets) if e > s and e > start and s < end]
    if not tokens:
        raise AssayError(f"word {word} of {sentence!r} maps to no token.")
    return tokens


def _query_and_keys(sentence: str, offsets, pair: WordPair) -> tuple[int, list[int]]:
    critical, licensing = pair
    if licensing >= critical:
        raise AssayError(
            f"licensing word {licensing} must come before critical word {critical} in "
            f"{sentence!r}: a causal model's query only attends to earlier tokens."
        )
    query = _word_tokens(sentence, offsets, critical)[0]
    keys = _word_tokens(sentence, offsets, licensing)
    return query, keys


@torch.no_grad()
def head_attention(
    model,
    tokenizer,
    sentences: Sequence[str],
    pairs_of_word_indices: Sequence[WordPair] | Callable[[str], WordPair],
    *,
    batch_size: int = 16,
) -> torch.Tensor:
    """Mean attention ``(n_layers, n_heads)`` from each critical word to its licensing word.

    ``pairs_of_word_indices`` gives per sentence ``(critical, licensing)`` whitespace-word
    indices, or is a callable ``sentence -> (critical, licensing)``. The query is the
    critical word's first token (the first place the model can use the licensor); the score
    is the attention summed over the licensing word's tokens, so each value lies in [0, 1].
    The model runs with eager attention for the call and gets its previous setting back.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise AssayError("head_attention needs a fast tokenizer (offset mapping); load one.")
    if callable(pairs_of_word_indices):
        word_pairs = [pairs_of_word_indices(s) for s in sentences]
    else:
        word_pairs = list(pairs_of_word_indices)
    if len(word_pairs) != len(sentences) or not sentences:
        raise AssayError(
            f"need one (critical, licensing) pair per sentence: got {len(word_pairs)} pairs "
            f"for {len(sentences)} sentences."
        )
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total = None
    with _eager_attention(model):
        for batch_ids in _batches(range(len(sentences)), batch_size):
            batch = [sentences[i] for i in batch_ids]
            input_ids, attention_mask, encodings = _encode(tokenizer, batch, offsets=True)
            out = model(
                input_ids=input_ids.to(device),
                attention_mask=attention_mask.to(device),
                output_attentions=True,
            )
            if not out.attentions:
                raise AssayError(
                    "the model returned no attention weights; load it with "
                    'attn_implementation="eager" (this transformers cannot switch it later).'
                )
            attentions = torch.stack(out.attentions).float().cpu()  # (L, B, H, T, T)
            for row, i in enumerate(batch_ids):
                offsets = encodings[row]["offset_mapping"]
                query, keys = _query_and_keys(sentences[i], offsets, word_pairs[i])
                score = attentions[:, row, :, query, keys].sum(-1)  # (L, H)
                total = score if total is None else total + score
    model.train(was_training)
    return total / len(sentences)


def rank_heads(scores: torch.Tensor) -> list[tuple[int, int, float]]:
    """``(layer, head, score)`` for every head of a ``(L, H)`` score matrix, highest first."""
    if scores.dim() != 2:
        raise AssayError(f"scores must be (layers, heads), got shape {tuple(scores.shape)}.")
    flat = scores.flatten()
    order = torch.argsort(flat, descending=True, stable=True)
    heads = scores.shape[1]
    return [(int(i) // heads, int(i) % heads, float(flat[i])) for i in order]


def head_concentration(scores: torch.Tensor, k: int = 5) -> float:
    """Share of the summed score held by the top-``k`` heads: k/(L·H) if spread evenly, 1.0
    if a few heads do all the work."""
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}.")
    flat = scores.flatten().double()
    if (flat < 0).any() or float(flat.sum()) <= 0.0:
        raise AssayError("head_concentration needs non-negative scores with a positive sum.")
    top = torch.topk(flat, min(k, flat.numel())).values
    return float(top.sum() / flat.sum())


# ---------------------------------------------------------------- before vs after


def _as_values(value):
    """A metric as a float or a list of floats: probe rows become their accuracies."""
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [float(v["accuracy"]) if isinstance(v, dict) else float(v) for v in value]
    return float(value)


def compare_before_after(before: dict, after: dict) -> dict:
    """Put two checkpoints' metrics side by side: ``{name: {"before", "after", "delta"}}``.

    Values may be numbers (e.g. head concentration), per-layer sequences or tensors, or the
    rows of :func:`probe_accuracy` (compared by accuracy); ``delta`` is after − before,
    element-wise for sequences.
    """
    if before.keys() != after.keys():
        raise AssayError(
            "before and after must report the same metrics: only before has "
            f"{sorted(before.keys() - after.keys())}, only after has "
            f"{sorted(after.keys() - before.keys())}."
        )
    table = {}
    for name in before:
        old, new = _as_values(before[name]), _as_values(after[name])
        if isinstance(old, list) != isinstance(new, list) or (
            isinstance(old, list) and len(old) != len(new)
        ):
            raise AssayError(f"metric {name!r} has different shapes before and after.")
        delta = (
            [b - a for a, b in zip(old, new, strict=True)] if isinstance(old, list) else new - old
        )
        table[name] = {"before": old, "after": new, "delta": delta}
    return table
