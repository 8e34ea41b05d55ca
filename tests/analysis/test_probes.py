import math

import pytest
import torch

from analysis.grammar import plot_heads, plot_probes
from analysis.probes import (
    compare_before_after,
    concept_dimensionality,
    concept_vectors,
    head_attention,
    head_concentration,
    probe_accuracy,
    rank_heads,
    sentence_states,
)
from assay.errors import AssayError, ConfigError

SENTENCES = [
    "The dogs that the cat chases are barking.",
    "The keys to the cabinet are on the table.",
    "A cat sleeps.",
]


# ---------------------------------------------------------------- concept vectors, probes


def test_concept_vectors_are_difference_of_means():
    good = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [2.0, 2.0]]])  # (L=2, n=2, d=2)
    bad = torch.tensor([[[0.0, 0.0], [1.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]])
    vectors, norms = concept_vectors(good, bad)
    # layer 0: mean good (2, 3) - mean bad (0.5, 0) = (1.5, 3); layer 1: (1, 1) - (1, 1) = 0
    assert torch.allclose(vectors, torch.tensor([[1.5, 3.0], [0.0, 0.0]]))
    assert torch.allclose(norms, torch.tensor([math.sqrt(1.5**2 + 9), 0.0]))


def test_probe_separates_shifted_states_and_not_identical_ones():
    gen = torch.Generator().manual_seed(0)
    n, d = 60, 8
    x = torch.randn(2, n, d, generator=gen)  # (L=2, n, d) shared per pair
    v = torch.zeros(d)
    v[0] = 4.0  # x_0 ~ N(0, 1): a ±4 shift leaves the classes separable
    # Layer 0: good = x + v, bad = x - v (separable along v); layer 1: independent draws
    # from one distribution (nothing to find).
    good = torch.stack([x[0] + v, x[1]])
    bad = torch.stack([x[0] - v, torch.randn(n, d, generator=gen)])
    rows = probe_accuracy(good, bad, folds=5, seed=0)
    assert [r["layer"] for r in rows] == [0, 1]
    assert rows[0]["accuracy"] >= 0.97
    assert abs(rows[1]["accuracy"] - 0.5) < 0.15
    assert rows[0]["n_pairs"] == n and rows[0]["std"] >= 0.0


def test_probe_rejects_unpaired_states_and_too_many_folds():
    with pytest.raises(AssayError, match="do not match"):
        probe_accuracy(torch.zeros(1, 5, 3), torch.zeros(1, 4, 3))
    with pytest.raises(ConfigError, match="folds"):
        probe_accuracy(torch.zeros(1, 3, 2), torch.zeros(1, 3, 2), folds=5)


def _with_spectrum(eigenvalues: list[float], n: int = 40, d: int = 10) -> torch.Tensor:
    """(n, d) data whose sample covariance has exactly ``eigenvalues`` (rest zero)."""
    gen = torch.Generator().manual_seed(1)
    r = len(eigenvalues)
    # Columns orthonormal and orthogonal to the all-ones vector -> the data are centred.
    basis, _ = torch.linalg.qr(
        torch.cat([torch.ones(n, 1), torch.randn(n, r, generator=gen)], 1).double()
    )
    scores = basis[:, 1:]  # (n, r)
    directions, _ = torch.linalg.qr(torch.randn(d, r, generator=gen).double())  # (d, r)
    lam = torch.tensor(eigenvalues, dtype=torch.float64)
    return math.sqrt(n - 1) * scores * lam.sqrt() @ directions.T + 3.0  # offset: mean removed


def test_participation_ratio_of_k_equal_eigenvalues_is_k():
    out = concept_dimensionality(_with_spectrum([2.0] * 4))
    assert out["participation_ratio"] == pytest.approx(4.0)
    assert out["n_components"] == 4  # 90% of four equal parts needs all four


def test_pcs_for_variance_share_on_constructed_spectrum():
    diffs = _with_spectrum([5.0, 3.0, 1.0, 1.0])  # shares 0.5, 0.8, 0.9, 1.0
    assert concept_dimensionality(diffs)["n_components"] == 3
    assert concept_dimensionality(diffs, threshold=0.8)["n_components"] == 2
    assert concept_dimensionality(diffs, threshold=0.5)["n_components"] == 1
    # (Σλ)²/Σλ² = 100 / 36
    assert concept_dimensionality(diffs)["participation_ratio"] == pytest.approx(100 / 36)
    assert concept_dimensionality(torch.ones(5, 3))["participation_ratio"] == 0.0


# ---------------------------------------------------------------- model-based


def test_sentence_states_shapes_and_padding_is_ignored(tiny_lm):
    model, tokenizer = tiny_lm
    layers, d = model.config.num_hidden_layers + 1, model.config.hidden_size
    for pool in ("mean", "last"):
        batched = sentence_states(model, tokenizer, SENTENCES, pool=pool, batch_size=3)
        assert batched.shape == (layers, len(SENTENCES), d)
        assert batched.dtype == torch.float32 and batched.device.type == "cpu"
        single = sentence_states(model, tokenizer, SENTENCES, pool=pool, batch_size=1)
        assert torch.allclose(batched, single, atol=1e-5)
    with pytest.raises(ConfigError, match="pool"):
        sentence_states(model, tokenizer, SENTENCES, pool="max")


def _manual_attention(model, tokenizer, sentence, query, keys):
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            ids = tokenizer(sentence, return_tensors="pt").input_ids
            attentions = model(input_ids=ids, output_attentions=True).attentions
    finally:
        model.set_attn_implementation(previous)
    return torch.stack([a[0, :, query, keys].sum(-1) for a in attentions])  # (L, H)


def test_head_attention_matches_manual_computation(tiny_lm):
    model, tokenizer = tiny_lm
    sentence = SENTENCES[0]
    # Tokens: The| dogs| that| the| cat| ch|ases| are| barking|.  (0..9)
    previous = model.config._attn_implementation
    # "are" (word 6, token 7) -> "chases" (word 5, tokens 5 and 6: summed).
    scores = head_attention(model, tokenizer, [sentence], [(6, 5)])
    shape = (model.config.num_hidden_layers, model.config.num_attention_heads)
    assert scores.shape == shape
    assert ((scores >= 0) & (scores <= 1)).all()
    assert torch.allclose(
        scores, _manual_attention(model, tokenizer, sentence, 7, [5, 6]), atol=1e-6
    )
    assert model.config._attn_implementation == previous  # restored
    # "barking." (word 7, tokens 8 and 9): query is its first token 8; "dogs" is token 1.
    scores = head_attention(model, tokenizer, [sentence], lambda s: (7, 1))
    assert torch.allclose(scores, _manual_attention(model, tokenizer, sentence, 8, [1]), atol=1e-6)


def test_head_attention_averages_sentences_and_checks_order(tiny_lm):
    model, tokenizer = tiny_lm
    pairs = [(6, 1), (5, 1)]  # "are" -> "dogs" / "keys"
    both = head_attention(model, tokenizer, SENTENCES[:2], pairs, batch_size=2)
    each = [
        head_attention(model, tokenizer, [s], [p])
        for s, p in zip(SENTENCES[:2], pairs, strict=True)
    ]
    assert torch.allclose(both, (each[0] + each[1]) / 2, atol=1e-6)
    with pytest.raises(AssayError, match="before"):
        head_attention(model, tokenizer, SENTENCES[:1], [(1, 6)])
    with pytest.raises(AssayError, match="out of range"):
        head_attention(model, tokenizer, SENTENCES[2:], [(9, 0)])


# ---------------------------------------------------------------- heads, comparison, plots


SCORES = torch.tensor([[0.1, 0.4, 0.0], [0.3, 0.2, 0.0]])  # (L=2, H=3), sum 1.0


def test_rank_heads_and_concentration():
    assert rank_heads(SCORES)[:4] == [
        (0, 1, pytest.approx(0.4)),
        (1, 0, pytest.approx(0.3)),
        (1, 1, pytest.approx(0.2)),
        (0, 0, pytest.approx(0.1)),
    ]
    assert head_concentration(SCORES, k=1) == pytest.approx(0.4)
    assert head_concentration(SCORES, k=2) == pytest.approx(0.7)
    assert head_concentration(SCORES, k=10) == pytest.approx(1.0)
    assert head_concentration(torch.ones(4, 5), k=5) == pytest.approx(0.25)


def test_compare_before_after():
    before = {"probe": [{"layer": 0, "accuracy": 0.5}, {"layer": 1, "accuracy": 0.6}], "conc": 0.2}
    after = {"probe": [{"layer": 0, "accuracy": 0.5}, {"layer": 1, "accuracy": 0.9}], "conc": 0.5}
    table = compare_before_after(before, after)
    assert table["probe"]["after"] == [0.5, 0.9]
    assert table["probe"]["delta"] == pytest.approx([0.0, 0.3])
    assert table["conc"]["delta"] == pytest.approx(0.3)
    with pytest.raises(AssayError, match="same metrics"):
        compare_before_after(before, {"conc": 0.1})


def test_plots_write_files(tmp_path):
    rows = [{"layer": i, "accuracy": 0.5 + 0.1 * i, "std": 0.05} for i in range(3)]
    assert plot_probes({"before": rows, "after": rows}, tmp_path / "probes.png").stat().st_size > 0
    assert plot_heads(SCORES, tmp_path / "heads.png").stat().st_size > 0
