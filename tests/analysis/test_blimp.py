from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from analysis.blimp import (
    OnePrefix,
    accuracy,
    blimp_accuracy_table,
    blimp_scores,
    one_prefix_split,
)
from assay.errors import ConfigError
from pretraining.zeroshot import BLIMP_DEFAULT, BlimpPair, load_blimp

LIMIT = 4
HAND = BlimpPair("The cats sleep.", "The cats sleeps.", "hand_made", "subject_verb_agreement", "")
HAND_SPLIT = OnePrefix("The cats", "sleep", "sleeps")


class PrefixTableLM(torch.nn.Module):
    """A causal LM whose logits are a fixed table keyed by the token prefix.

    After a prefix of one of the ``favoured`` sequences it gives logit 0 to the tokens that
    continue one of them and -1000 to every other token; after any other prefix all tokens tie.
    A favoured sentence so costs at most log(#continuations) nats a token, while a sentence that
    leaves the table pays ~1000 nats where it leaves: built from the good sentences, the model
    prefers every good sentence to its bad twin, whatever their lengths or word order."""

    def __init__(self, sequences: list[list[int]], vocab_size: int):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # the scorer reads the device off it
        self.vocab_size = vocab_size
        self.next_tokens: dict[tuple[int, ...], set[int]] = defaultdict(set)
        for seq in sequences:
            for t in range(1, len(seq)):
                self.next_tokens[tuple(seq[:t])].add(seq[t])

    def forward(self, input_ids, attention_mask=None):
        batch, width = input_ids.shape
        logits = torch.zeros(batch, width, self.vocab_size)  # (B, T, V)
        for b, row in enumerate(input_ids.tolist()):
            for t in range(width):
                favoured = self.next_tokens.get(tuple(row[: t + 1]))
                if favoured:
                    logits[b, t] = -1000.0
                    logits[b, t, list(favoured)] = 0.0
        return SimpleNamespace(logits=logits)


def rigged(tokenizer, sentences: list[str]) -> PrefixTableLM:
    ids = tokenizer(sentences, add_special_tokens=False)["input_ids"]
    return PrefixTableLM([[tokenizer.bos_token_id, *s] for s in ids], len(tokenizer))


def default_pairs(limit: int = LIMIT) -> list[BlimpPair]:
    return [p for name in BLIMP_DEFAULT for p in load_blimp(name)[:limit]]


# ---- the one-at-a-time reference ----


def reference_tail(model, ids: list[int], n_tail: int) -> float:
    """Sum of log p(token) over the last ``n_tail`` tokens of one unpadded sequence."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0]  # (T, V)
    logprobs = torch.log_softmax(logits.float(), -1)
    return sum(logprobs[t - 1, ids[t]].item() for t in range(len(ids) - n_tail, len(ids)))


def reference_sentence(model, tokenizer, text: str) -> float:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return reference_tail(model, [tokenizer.bos_token_id, *ids], len(ids))


def reference_word(model, tokenizer, prefix: str, word: str) -> float:
    """log p(" word" | BOS + prefix), the two tokenized apart as in running text."""
    context = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    tail = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
    return reference_tail(model, [tokenizer.bos_token_id, *context, *tail], len(tail))


# ---- tests ----


def test_rigged_model_scores_every_default_paradigm_perfectly(tiny_lm):
    _, tokenizer = tiny_lm
    pairs = default_pairs()
    for prefer, expected in (("sentence_good", 1.0), ("sentence_bad", 0.0)):
        model = rigged(tokenizer, [getattr(p, prefer) for p in pairs])
        rows = blimp_accuracy_table(model, tokenizer, BLIMP_DEFAULT, limit=LIMIT, batch_size=8)
        assert [r["name"] for r in rows if r["level"] == "paradigm"] == list(BLIMP_DEFAULT)
        assert {r["accuracy"] for r in rows} == {expected}
        assert all(r["n"] == LIMIT for r in rows if r["level"] == "paradigm")
        by_name = {r["name"]: r for r in rows}
        assert by_name["determiner_noun_agreement_1"]["linguistics_term"] == (
            "determiner_noun_agreement"
        )
        assert by_name["island_effects"]["level"] == "phenomenon"
        assert by_name["all"]["n"] == LIMIT * len(BLIMP_DEFAULT)


def test_one_prefix_table_skips_pairs_without_a_split(tiny_lm):
    _, tokenizer = tiny_lm
    model = rigged(tokenizer, [p.sentence_good for p in default_pairs()])
    rows = blimp_accuracy_table(model, tokenizer, method="one_prefix", limit=LIMIT)
    by_name = {r["name"]: r for r in rows}
    for name in ("wh_questions_object_gap", "adjunct_island"):  # no one-prefix data in BLiMP
        assert (by_name[name]["n"], by_name[name]["n_skipped"]) == (0, LIMIT)
        assert by_name[name]["accuracy"] is None
    for name in ("determiner_noun_agreement_1", "anaphor_number_agreement", "npi_present_1"):
        assert by_name[name]["accuracy"] == 1.0
    assert by_name["all"]["accuracy"] == 1.0  # the mean over paradigms that were scored


def test_batched_scores_equal_one_at_a_time_reference(tiny_lm):
    model, tokenizer = tiny_lm
    pairs = default_pairs(limit=3)
    scores = blimp_scores(model, tokenizer, pairs, batch_size=4)
    for pair, row in zip(pairs, scores, strict=True):
        good = reference_sentence(model, tokenizer, pair.sentence_good)
        bad = reference_sentence(model, tokenizer, pair.sentence_bad)
        assert row["logprob_good"] == pytest.approx(good, abs=1e-4)
        assert row["logprob_bad"] == pytest.approx(bad, abs=1e-4)
        assert row["correct"] == (good > bad) and row["skipped"] is None

    one_prefix = blimp_scores(model, tokenizer, pairs, method="one_prefix", batch_size=4)
    scored = [(p, r) for p, r in zip(pairs, one_prefix, strict=True) if r["skipped"] is None]
    assert len(scored) == 12  # four of the six default paradigms have one-prefix data
    for pair, row in scored:
        split, _ = one_prefix_split(pair)
        good = reference_word(model, tokenizer, split.prefix, split.word_good)
        bad = reference_word(model, tokenizer, split.prefix, split.word_bad)
        assert row["logprob_good"] == pytest.approx(good, abs=1e-4)
        assert row["logprob_bad"] == pytest.approx(bad, abs=1e-4)


def test_one_prefix_on_a_hand_made_pair(tiny_lm):
    model, tokenizer = tiny_lm
    split, why = one_prefix_split(HAND)
    assert split is None and "not a BLiMP paradigm" in why
    row, skipped = blimp_scores(
        model, tokenizer, [HAND, HAND], method="one_prefix", splits=[HAND_SPLIT, None]
    )
    assert row["logprob_good"] == pytest.approx(
        reference_word(model, tokenizer, "The cats", "sleep"), abs=1e-4
    )
    assert row["logprob_bad"] == pytest.approx(
        reference_word(model, tokenizer, "The cats", "sleeps"), abs=1e-4
    )
    assert skipped["skipped"] and skipped["correct"] is None and skipped["logprob_good"] is None
    assert accuracy([row, skipped]) == float(row["correct"])

    # The rigged model only knows "The cats sleep.": the one-prefix method must prefer it too.
    model = rigged(tokenizer, [HAND.sentence_good])
    (row,) = blimp_scores(model, tokenizer, [HAND], method="one_prefix", splits=[HAND_SPLIT])
    assert row["correct"] is True and row["logprob_bad"] < -900 < row["logprob_good"]


def test_one_prefix_split_reads_the_data():
    pair = load_blimp("determiner_noun_agreement_1")[0]
    assert one_prefix_split(pair) == (
        OnePrefix("Raymond is selling this", "sketch", "sketches"),
        None,
    )
    split, why = one_prefix_split(load_blimp("adjunct_island")[0])
    assert split is None and "unfit" in why


def test_ties_count_as_wrong(tiny_lm):
    _, tokenizer = tiny_lm
    uniform = PrefixTableLM([], len(tokenizer))  # every token equally likely
    pair = BlimpPair("cats chase dogs.", "dogs chase cats.", "hand_made", "word_order", "")
    (row,) = blimp_scores(uniform, tokenizer, [pair])
    assert row["logprob_good"] == row["logprob_bad"] and row["correct"] is False


def test_unknown_method_and_mismatched_splits_are_config_errors(tiny_lm):
    model, tokenizer = tiny_lm
    with pytest.raises(ConfigError, match="Did you mean 'one_prefix'"):
        blimp_scores(model, tokenizer, [HAND], method="one-prefix")
    with pytest.raises(ConfigError, match="1 pairs but 2 splits"):
        blimp_scores(model, tokenizer, [HAND], method="one_prefix", splits=[None, None])
    assert blimp_scores(model, tokenizer, [], method="one_prefix") == []
    assert blimp_scores(model, tokenizer, []) == []
