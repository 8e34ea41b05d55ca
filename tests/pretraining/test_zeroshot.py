import json
from importlib import resources

import pytest
import torch

from assay.errors import AssayError, ConfigError
from envs.icl.tasks import Example, ICLTask
from pretraining.simplify import simple_vocabulary
from pretraining.zeroshot import (
    BLIMP_DEFAULT,
    BlimpPair,
    continuation_logprob,
    filter_simple,
    icl_accuracy,
    label_logprobs,
    label_words_oov,
    load_blimp,
    predict_labels,
    sequence_logprob,
    zeroshot_prompt,
    zeroshot_report,
)


def reference_logprob(model, ids: list[int], n_tail: int) -> float:
    """Unbatched: the sum of log p(token) over the last ``n_tail`` tokens of one sequence."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0]  # (T, V)
    logprobs = torch.log_softmax(logits.float(), -1)
    return sum(logprobs[t - 1, ids[t]].item() for t in range(len(ids) - n_tail, len(ids)))


def reference_sequence(model, tokenizer, text: str) -> float:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return reference_logprob(model, [tokenizer.bos_token_id, *ids], len(ids))


def reference_continuation(model, tokenizer, context: str, continuation: str) -> float:
    """Context as given, continuation tokenized with its leading space, ids concatenated."""
    context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    tail = tokenizer(continuation, add_special_tokens=False)["input_ids"]
    return reference_logprob(model, [tokenizer.bos_token_id, *context_ids, *tail], len(tail))


TEXTS = [
    "The cat sat.",
    "Who should Derek hug after shocking Richard?",
    "a",
    "Many dogs ran across the big green field while the children watched them.",
    "",
]


# ---- data ----


def test_default_paradigms_are_package_data():
    folder = resources.files("pretraining") / "data" / "blimp"
    for paradigm in BLIMP_DEFAULT:
        assert (folder / f"{paradigm}.jsonl.gz").is_file()
    pairs = load_blimp("adjunct_island")
    assert len(pairs) == 1000 and isinstance(pairs[0], BlimpPair)
    assert pairs[0].sentence_good == "Who should Derek hug after shocking Richard?"
    assert pairs[0].sentence_bad == "Who should Derek hug Richard after shocking?"
    assert {(p.paradigm, p.linguistics_term, p.field) for p in pairs} == {
        ("adjunct_island", "island_effects", "syntax")
    }


def test_load_blimp_falls_back_to_the_shared_folder_then_fails_in_one_sentence(
    tmp_path, monkeypatch
):
    row = {"sentence_good": "A.", "sentence_bad": "B.", "UID": "passive_1"}
    row |= {"linguistics_term": "argument_structure", "field": "syntax_semantics"}
    (tmp_path / "blimp").mkdir()
    (tmp_path / "blimp" / "passive_1.jsonl").write_text(json.dumps(row) + "\n")
    monkeypatch.setenv("ASSAY_SHARED_DATA", str(tmp_path))
    load_blimp.cache_clear()
    try:
        assert load_blimp("passive_1") == (
            BlimpPair("A.", "B.", "passive_1", "argument_structure", "syntax_semantics"),
        )
        import datasets

        def offline(*args, **kwargs):
            raise ConnectionError("no network")

        monkeypatch.setattr(datasets, "load_dataset", offline)
        with pytest.raises(AssayError) as err:
            load_blimp("passive_2")
        message = str(err.value)
        assert "\n" not in message and message.endswith("(ConnectionError).")
        assert "ASSAY_SHARED_DATA" in message and "nyu-mll/blimp" in message
    finally:
        load_blimp.cache_clear()
    with pytest.raises(ConfigError, match="Did you mean 'adjunct_island'"):
        load_blimp("adjunct_islands")


# ---- filters ----


def test_filter_keeps_exactly_the_pairs_with_in_vocabulary_words():
    vocab = frozenset({"the", "cat", "cats", "sat", "sit", "dog", "was", "were", "himself"})
    pairs = [
        BlimpPair("The cat sat.", "The cat sit.", "p", "t", "f"),  # both in vocab: kept
        BlimpPair("The cat sat.", "The cats sits.", "p", "t", "f"),  # "sits": dropped
        BlimpPair("The dog was.", "The dogs was.", "p", "t", "f"),  # "dogs": dropped
        BlimpPair("The cats were.", "The cats was.", "p", "t", "f"),  # kept
        BlimpPair("Derek sat.", "Derek sit.", "p", "t", "f"),  # the name: dropped
    ]
    assert filter_simple(pairs, vocab) == [pairs[0], pairs[3]]
    # On real pairs, the vocabulary of two pairs keeps those two and no pair with another word.
    real = load_blimp("determiner_noun_agreement_1")[:200]
    from pretraining.simplify import words

    vocab = frozenset(
        w for p in real[:2] for s in (p.sentence_good, p.sentence_bad) for w in words(s)
    )
    kept = filter_simple(real, vocab)
    assert real[0] in kept and real[1] in kept
    expected = [
        p for p in real if set(words(p.sentence_good)) | set(words(p.sentence_bad)) <= vocab
    ]
    assert kept == expected


def test_icl_filter_needs_input_and_label_words_in_vocabulary():
    vocab = frozenset({"a", "good", "film", "positive"})
    examples = [
        Example("A good film", "positive"),
        Example("A good film", "negative"),  # label out of vocabulary
        Example("A dull film", "positive"),  # input out of vocabulary
    ]
    assert filter_simple(examples, vocab) == examples[:1]
    from envs.icl.tasks import load_task

    trec = load_task("trec")
    assert label_words_oov(trec, simple_vocabulary(words=["description", "entity"])) == [
        "Abbreviation", "Person", "Location", "Number",
    ]  # fmt: skip


# ---- scoring ----


def test_batched_sequence_logprob_equals_unbatched(tiny_lm):
    model, tokenizer = tiny_lm
    model.train()  # the scorer must switch dropout off and give the mode back
    batched = sequence_logprob(model, tokenizer, TEXTS, batch_size=2)
    assert model.training
    model.eval()
    expected = [reference_sequence(model, tokenizer, t) for t in TEXTS]
    assert batched == pytest.approx(expected, abs=1e-4)
    assert batched[-1] == 0.0  # the empty text has no tokens to score
    assert sequence_logprob(model, tokenizer, TEXTS, batch_size=16) == pytest.approx(
        expected, abs=1e-4
    )


def test_batched_continuation_logprob_equals_unbatched(tiny_lm):
    model, tokenizer = tiny_lm
    contexts = ["Review: a good film\nAnswer:", "Answer: ", "Question\n", "The cat"]
    continuations = ["positive", "negative", "Number", " sat on the mat"]
    # The continuation carries the space: "Answer: " + "negative" is scored as "Answer:" + " negative".
    seams = [
        ("Review: a good film\nAnswer:", " positive"),
        ("Answer:", " negative"),
        ("Question\n", "Number"),
        ("The cat", " sat on the mat"),
    ]
    batched = continuation_logprob(model, tokenizer, contexts, continuations, batch_size=3)
    expected = [reference_continuation(model, tokenizer, c, x) for c, x in seams]
    assert batched == pytest.approx(expected, abs=1e-4)
    with pytest.raises(ConfigError, match="one continuation per context"):
        continuation_logprob(model, tokenizer, contexts, continuations[:2])


# ---- benchmarks ----


def test_report_blimp_accuracy_equals_by_hand_comparison(tiny_lm):
    model, tokenizer = tiny_lm
    (row,) = zeroshot_report(
        model, tokenizer, None, blimp=("anaphor_number_agreement",), tasks=(), limit=12
    )
    pairs = load_blimp("anaphor_number_agreement")[:12]
    by_hand = [
        reference_sequence(model, tokenizer, p.sentence_good)
        > reference_sequence(model, tokenizer, p.sentence_bad)
        for p in pairs
    ]
    assert row == {
        "suite": "blimp",
        "name": "anaphor_number_agreement",
        "n_total": 1000,
        "n_simple": 1000,
        "n_scored": 12,
        "accuracy": sum(by_hand) / 12,
        "accuracy_calibrated": None,
        "skipped": None,
    }


def test_zeroshot_prompt_is_description_input_and_answer_cue():
    from envs.icl.tasks import load_task

    prompt = zeroshot_prompt(load_task("sst2"), "a gripping film")
    assert prompt == (
        "Classify the sentiment of the movie review as positive or negative.\n\n"
        "Review: a gripping film\nAnswer:"
    )


def test_calibration_subtracts_content_free_logprobs():
    scores = torch.tensor([[-1.0, -2.0], [-1.0, -3.0], [-4.0, -1.0]])  # (N, L)
    content_free = torch.tensor([-0.5, -3.0])  # the model prefers label 0 whatever the input
    assert predict_labels(scores).tolist() == [0, 0, 1]
    # scores - content_free = [[-0.5, 1.0], [-0.5, 0.0], [-3.5, 2.0]]
    assert predict_labels(scores, content_free).tolist() == [1, 1, 1]


def test_icl_accuracy_by_hand(tiny_lm):
    model, tokenizer = tiny_lm
    tests = tuple(
        Example(text, label)
        for text, label in [
            ("a good film", "positive"),
            ("a bad film", "negative"),
            ("the best film of the year", "positive"),
            ("dull and long", "negative"),
        ]
    )
    task = ICLTask("toy", "Is the review positive or negative?", "", "Review: ",
                   ("negative", "positive"), (), tests)  # fmt: skip
    scores, content_free = label_logprobs(model, tokenizer, task, tests, batch_size=3)
    assert scores.shape == (4, 2) and content_free.shape == (2,)
    for i, example in enumerate(tests):
        prompt = zeroshot_prompt(task, example.input)
        for j, label in enumerate(task.label_space):
            assert scores[i, j].item() == pytest.approx(
                reference_continuation(model, tokenizer, prompt, " " + label), abs=1e-4
            )
    cf_prompt = zeroshot_prompt(task, "N/A")
    assert content_free[1].item() == pytest.approx(
        reference_continuation(model, tokenizer, cf_prompt, " positive"), abs=1e-4
    )
    gold = [0 if ex.label == "negative" else 1 for ex in tests]
    raw_pred = scores.argmax(-1).tolist()
    calibrated_pred = (scores - content_free).argmax(-1).tolist()
    accuracy, calibrated = icl_accuracy(model, tokenizer, task, tests, batch_size=3)
    assert accuracy == sum(p == g for p, g in zip(raw_pred, gold, strict=True)) / 4
    assert calibrated == sum(p == g for p, g in zip(calibrated_pred, gold, strict=True)) / 4


def test_report_skips_tasks_with_label_words_outside_the_vocabulary(tiny_lm):
    model, tokenizer = tiny_lm
    rows = zeroshot_report(
        model, tokenizer, simple_vocabulary(), blimp=(), tasks=("trec", "cb"), limit=2
    )
    trec, cb = rows
    assert trec["skipped"] == "label words not in the vocabulary: Abbreviation"
    assert trec["accuracy"] is None and trec["n_scored"] == 0
    assert (cb["suite"], cb["n_total"], cb["n_scored"]) == ("icl", 28, 2)
    assert 0 < cb["n_simple"] < 28
    assert cb["accuracy"] in (0.0, 0.5, 1.0) and cb["accuracy_calibrated"] in (0.0, 0.5, 1.0)
    with pytest.raises(ConfigError, match="Did you mean 'sst2'"):
        zeroshot_report(model, tokenizer, None, blimp=(), tasks=("sst",))


def test_scorers_take_empty_lists(tiny_lm):
    model, tokenizer = tiny_lm
    assert sequence_logprob(model, tokenizer, []) == []
    assert continuation_logprob(model, tokenizer, [], []) == []
