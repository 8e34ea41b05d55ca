import pytest

from assay.errors import ConfigError
from pretraining.simplify import (
    DEFAULT_TOP_N,
    in_vocab,
    oov_rate,
    sentences,
    simple_vocabulary,
    simplify,
    simplify_stats,
    words,
)

VOCAB = frozenset({"the", "cat", "sat", "on", "mat", "and", "dog", "ran", "well", "known"})


def clean(n: int) -> str:
    """A sentence of exactly ``n`` in-vocabulary words."""
    return " ".join(["cat"] * (n - 1) + ["sat."])


def test_words_lowercases_and_skips_numbers_and_punctuation():
    assert words("The Cat, the DOG; 42 cats & 3rd (mat)!") == [
        "the",
        "cat",
        "the",
        "dog",
        "cats",
        "mat",
    ]
    assert words("Don't stop the well-known dog’s run") == [
        "don't", "stop", "the", "well-known", "dog's", "run",
    ]  # fmt: skip


def test_words_undoes_wikitext_markup_and_keeps_unk():
    text = "The well @-@ known <unk> didn 't sell 1 @,@ 000 copies at 0 @.@ 7 each ."
    assert words(text) == ["the", "well-known", "<unk>", "didn't", "sell", "copies", "at", "each"]
    assert words("the city 's dog and the dogs ' mat") == [
        "the", "city's", "dog", "and", "the", "dogs", "mat",
    ]  # fmt: skip


def test_unk_is_always_out_of_vocabulary():
    assert not in_vocab("<unk>", VOCAB | {"<unk>"})
    assert oov_rate("the <unk> sat on the mat", VOCAB) == pytest.approx(1 / 6)
    assert "<unk>" not in simple_vocabulary(words=["<unk>", "the"])


def test_in_vocab_accepts_possessives_and_compounds_of_listed_words():
    assert in_vocab("cat's", VOCAB) and not in_vocab("cats's", VOCAB)
    assert in_vocab("well-known", VOCAB)
    assert not in_vocab("well-liked", VOCAB)


def test_oov_rate_by_hand():
    assert oov_rate("The cat sat on 2 mats.", VOCAB) == pytest.approx(1 / 5)  # only "mats"
    assert oov_rate("42 , .", VOCAB) == 0.0  # no words at all


def test_sentences_split_at_end_punctuation_and_line_breaks():
    doc = ' = Title = \n The cat sat . The dog ran! "Why?" he said. Then 3.5 cats'
    spans = [doc[a:b] for a, b in sentences(doc)]
    assert spans == [
        "= Title =",
        "The cat sat .",
        "The dog ran!",
        '"Why?"',
        "he said.",
        "Then 3.5 cats",
    ]


def test_oov_sentence_splits_runs_and_short_runs_are_dropped():
    oov = "the zorp sat on the mat and the dog ran."  # 10 words, 1 OOV
    parts = [clean(10)] * 4 + [oov] + [clean(10)] * 2 + [oov] + [clean(10)] * 4
    doc = " ".join(parts)
    spans = simplify([doc], VOCAB, max_oov=0.01, min_words=32)
    assert [(s.n_words, s.n_oov) for s in spans] == [(40, 0), (40, 0)]
    first, last = spans
    assert first.text == " ".join([clean(10)] * 4) == doc[first.start : first.end]
    assert last.text == " ".join([clean(10)] * 4) and last.end == len(doc)
    assert "zorp" not in first.text + last.text
    # The same two runs of 20 words survive once min_words allows them.
    assert len(simplify([doc], VOCAB, min_words=20)) == 3


def test_one_percent_edge_is_inclusive():
    # 99 clean words then a one-word OOV sentence: 1 / 100 = max_oov exactly, so it stays.
    doc = " ".join([clean(11)] * 9 + ["Zorp."])
    (span,) = simplify([doc], VOCAB, max_oov=0.01, min_words=32)
    assert (span.n_words, span.n_oov, span.end) == (100, 1, len(doc))
    # 98 clean words: 1 / 99 > 1%, so the OOV sentence ends the run and is dropped on its own.
    doc = " ".join([clean(11)] * 8 + [clean(10), "Zorp."])
    (span,) = simplify([doc], VOCAB, max_oov=0.01, min_words=32)
    assert (span.n_words, span.n_oov) == (98, 0) and span.text.endswith("sat.")
    # With max_oov=0 any OOV word splits.
    assert all(s.n_oov == 0 for s in simplify([doc], VOCAB, max_oov=0.0, min_words=1))


def test_long_run_absorbs_an_oov_sentence_that_a_short_one_cannot():
    doc = " ".join([clean(100), "the zorp sat.", clean(40)])
    (span,) = simplify([doc], VOCAB)
    assert (span.n_words, span.n_oov) == (143, 1) and span.text == doc


def test_wikitext_unk_splits_runs():
    doc = " ".join([clean(40), "The <unk> ran on the mat .", clean(40)])
    spans = simplify([doc], VOCAB)
    assert [s.n_words for s in spans] == [40, 40]


def test_spans_record_documents_and_stats():
    docs = ["zorp zorp.", clean(40), " ".join([clean(33), "Zorp zorp.", clean(12)])]
    spans = simplify(docs, VOCAB)
    assert [(s.doc, s.n_words) for s in spans] == [(1, 40), (2, 33)]
    assert spans == simplify(docs, VOCAB)  # deterministic
    stats = simplify_stats(docs, spans)
    assert (stats.documents, stats.spans, stats.words_in, stats.words_kept) == (3, 2, 89, 73)
    assert stats.kept_fraction == pytest.approx(73 / 89)


def test_simplify_rejects_bad_settings():
    with pytest.raises(ConfigError, match="max_oov"):
        simplify(["x"], VOCAB, max_oov=1.5)
    with pytest.raises(ConfigError, match="min_words"):
        simplify(["x"], VOCAB, min_words=0)


def test_default_vocabulary_is_top_n_words_of_wordfreq():
    vocab = simple_vocabulary()
    assert len(vocab) == DEFAULT_TOP_N
    assert {"the", "cat", "don't", "because"} <= vocab
    assert all(w == w.lower() and words(w) == [w] for w in vocab)
    small = simple_vocabulary(100)
    assert len(small) == 100 and small < vocab


def test_vocabulary_from_a_word_list_file(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("Cat\nDOG\n\n42\nice-cream\n")
    assert simple_vocabulary(path=path) == {"cat", "dog", "ice-cream"}
    assert simple_vocabulary(words=["Cat", "cat"]) == {"cat"}
    with pytest.raises(ConfigError, match="both"):
        simple_vocabulary(words=["cat"], path=path)
    with pytest.raises(ConfigError, match="no words"):
        simple_vocabulary(words=["42", "!"])
    with pytest.raises(ConfigError, match="cannot read"):
        simple_vocabulary(path=tmp_path / "missing.txt")
