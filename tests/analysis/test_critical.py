import json

import numpy as np
import pytest

from analysis.blimp import accuracy, blimp_scores
from analysis.critical import (
    critical_phrase,
    diff_span,
    first_seen_steps,
    generalisation_curves,
    generalisation_delay,
    plot_generalisation,
    run_checkpoints,
    split_by_exposure,
)
from assay.errors import AssayError, CheckpointError
from pretraining.exposure import ExposureLog, build_exposure_index
from pretraining.zeroshot import BlimpPair, load_blimp


def blimp_pair(paradigm: str, good: str) -> BlimpPair:
    """The pair of ``paradigm`` whose good sentence is ``good``."""
    (pair,) = [p for p in load_blimp(paradigm) if p.sentence_good == good]
    return pair


def pair(good: str, bad: str, term: str) -> BlimpPair:
    return BlimpPair(good, bad, "hand_made", term, "syntax")


# (paradigm, good sentence, expected phrase, start_word, end_word), spans written by hand.
DEFAULT_CASES = [
    ("determiner_noun_agreement_1", "Raymond is selling this sketch.", "this sketch", 3, 5),
    (
        "determiner_noun_agreement_1",
        "Craig explored that grocery store.",
        "that grocery store",
        2,
        5,
    ),
    (
        "regular_plural_subject_verb_agreement_1",
        "Paula references Robert.",
        "Paula references",
        0,
        2,
    ),
    ("regular_plural_subject_verb_agreement_1", "The cups alarm Angela.", "cups alarm", 1, 3),
    (
        "regular_plural_subject_verb_agreement_1",
        "Most legislatures haven't disliked children.",
        "legislatures haven't",
        1,
        3,
    ),
    ("anaphor_number_agreement", "Susan revealed herself.", "Susan revealed herself", 0, 3),
    (
        "anaphor_number_agreement",
        "These patients do respect themselves.",
        "These patients do respect themselves",
        0,
        5,
    ),
    ("npi_present_1", "Even Suzanne has really joked around.", "has really joked", 2, 5),
    (
        "wh_questions_object_gap",
        "Joel discovered the vase that Patricia might take.",
        "that Patricia might take",
        4,
        8,
    ),
    (
        "adjunct_island",
        "Who should Derek hug after shocking Richard?",
        "Who should Derek hug after shocking Richard",
        0,
        7,
    ),
]


@pytest.mark.parametrize(("paradigm", "good", "text", "start", "end"), DEFAULT_CASES)
def test_critical_phrases_of_default_paradigms(paradigm, good, text, start, end):
    found = critical_phrase(blimp_pair(paradigm, good))
    assert (found.text, found.start_word, found.end_word) == (text, start, end)
    assert found.rule == load_blimp(paradigm)[0].linguistics_term


def test_diff_spans_cover_substitutions_and_moved_words():
    assert diff_span(blimp_pair(*DEFAULT_CASES[0][:2])) == (4, 5)  # sketch / sketches
    # "Richard" moves: the good sentence's words 4..6 ("after shocking Richard") change.
    assert diff_span(blimp_pair("adjunct_island", DEFAULT_CASES[-1][1])) == (4, 7)
    # "the vase that" -> "what", and "the vase" reappears after "take" (the last word).
    assert diff_span(blimp_pair("wh_questions_object_gap", DEFAULT_CASES[-2][1])) == (2, 8)
    with pytest.raises(AssayError, match="same words"):
        diff_span(pair("Lisa left.", "Lisa left!", "s-selection"))


# (good sentence, bad sentence, phenomenon, expected phrase): real BLiMP pairs of paradigms
# outside the package data (so the test does not need the shared folder), spans by hand.
HAND_CASES = [
    # the determiner is the diff: through the noun phrase that ends the sentence
    (
        "Tracy passed these art galleries.",
        "Tracy passed this art galleries.",
        "determiner_noun_agreement",
        "these art galleries",
    ),
    # the subject noun is the diff: through the verb after it
    ("The students perform.", "The student perform.", "subject_verb_agreement", "students perform"),
    (
        "A lot of dancers research a hospital.",
        "A lot of dancers researches a hospital.",
        "subject_verb_agreement",
        "dancers research",
    ),
    (
        "A niece of most senators hasn't descended most slopes.",
        "A niece of most senators haven't descended most slopes.",
        "subject_verb_agreement",
        "niece of most senators hasn't",
    ),
    (
        "Teresa had not ever sold a movie theater.",
        "Teresa had probably ever sold a movie theater.",
        "npi_licensing",
        "not ever",
    ),
    ("Had Bruce ever played?", "Bruce had ever played.", "npi_licensing", "Had Bruce ever"),
    (
        "Brian had questioned an association that can astound Diana.",
        "Brian had questioned who an association can astound Diana.",
        "filler_gap_dependency",
        "that can astound Diana",
    ),
    (
        "A lady has remembered who the actors conceal.",
        "A lady has remembered that the actors conceal.",
        "filler_gap_dependency",
        "who the actors conceal",
    ),
    (
        "Irene had messed up whose rug?",
        "Whose had Irene messed up rug?",
        "island_effects",
        "whose rug",
    ),
    (
        "Amanda was respected by some waitresses.",
        "Amanda was respected by some picture.",
        "s-selection",
        "waitresses",
    ),
    (
        "Lisa was left by Susan.",
        "Lisa was left by Susan.",
        "argument_structure",
        "Lisa was left by Susan",
    ),
]


@pytest.mark.parametrize(("good", "bad", "term", "text"), HAND_CASES)
def test_critical_phrases_of_other_paradigms(good, bad, term, text):
    assert critical_phrase(pair(good, bad, term)).text == text


def test_rule_names():
    assert critical_phrase(pair(*HAND_CASES[-2][:3])).rule == "diff"
    assert critical_phrase(pair(*HAND_CASES[-1][:3])).rule == "identical"


# ---- exposure ----

SEQ_LEN = 16


def planted_windows(tokenizer, phrases: list[str]) -> np.ndarray:
    """One window per phrase, its tokens after a space, padded with EOS (matches no phrase)."""
    windows = np.full((len(phrases), SEQ_LEN), tokenizer.eos_token_id, dtype=np.int64)
    for w, phrase in enumerate(phrases):
        ids = tokenizer.encode(" " + phrase, add_special_tokens=False)
        windows[w, 2 : 2 + len(ids)] = ids
    return windows


SPLIT_PAIRS = [
    ("determiner_noun_agreement_1", "Raymond is selling this sketch."),  # "this sketch"
    ("regular_plural_subject_verb_agreement_1", "Paula references Robert."),  # "Paula references"
    ("anaphor_number_agreement", "These patients do respect themselves."),  # lower case in data
    ("anaphor_number_agreement", "Susan revealed herself."),  # never planted
]


def test_split_by_exposure_with_planted_phrases(tiny_lm, tmp_path):
    _, tokenizer = tiny_lm
    pairs = [blimp_pair(*case) for case in SPLIT_PAIRS]
    planted = ["this sketch", "filler", "Paula references", "these patients do respect themselves"]
    log = ExposureLog.in_run_dir(tmp_path)
    for step in range(1, 5):  # the trainer's steps count from 1; window w at step w + 1
        log.append(step, [step - 1])
    index = build_exposure_index(planted_windows(tokenizer, planted), log)

    assert first_seen_steps(pairs, index, tokenizer) == [1, 3, 4, None]
    seen, unseen = split_by_exposure(pairs, index, tokenizer, step=3)  # steps 1 and 2 only
    assert (seen, unseen) == (pairs[:1], pairs[1:])
    seen, unseen = split_by_exposure(pairs, index, tokenizer, step=4)
    assert (seen, unseen) == (pairs[:2], pairs[2:])
    seen, unseen = split_by_exposure(pairs, index, tokenizer, step=None)
    assert (seen, unseen) == (pairs[:3], pairs[3:])


# ---- curves over a run and the delay ----


def fake_run(tmp_path, model, tokenizer):
    """A run directory as the trainer leaves it: the same weights at steps 1, 2 and 3."""
    run = tmp_path / "run"
    tokenizer.save_pretrained(run / "tokenizer")
    for folder in ("checkpoints/step-000001", "checkpoints/keep-000002", "final"):
        model.save_pretrained(run / folder)
    (run / "final" / "assay_pretrain.json").write_text(json.dumps({"method": "full", "step": 3}))
    (run / "checkpoints" / ".step-000009-tmp").mkdir()  # an unfinished save: ignored
    windows = planted_windows(tokenizer, ["this sketch", "Paula references", "filler"])
    (run / "data").mkdir()
    np.save(run / "data" / "windows.npy", windows)
    log = ExposureLog.in_run_dir(run)
    for step in (1, 2, 3):
        log.append(step, [step - 1])
    return run


def test_generalisation_curves_over_a_fake_run(tiny_lm, tmp_path):
    model, tokenizer = tiny_lm
    run = fake_run(tmp_path, model, tokenizer)
    assert [(s, p.name) for s, p in run_checkpoints(run)] == [
        (1, "step-000001"),
        (2, "keep-000002"),
        (3, "final"),
    ]
    paradigms = ("determiner_noun_agreement_1", "regular_plural_subject_verb_agreement_1")
    rows = generalisation_curves(run, paradigms, limit=3, device="cpu")
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert [r["n_seen_by_step"] for r in rows] == [1, 2, 2]
    assert all((r["n_seen"], r["n_unseen"]) == (2, 4) for r in rows)

    # Same weights everywhere: each row's split accuracies are those of scoring the splits.
    pairs = [p for name in paradigms for p in load_blimp(name)[:3]]
    seen = [pairs[0], pairs[3]]  # "this sketch" and "Paula references"
    unseen = [p for p in pairs if p not in seen]
    for row in rows:
        assert row["accuracy_seen"] == accuracy(blimp_scores(model, tokenizer, seen))
        assert row["accuracy_unseen"] == accuracy(blimp_scores(model, tokenizer, unseen))

    path = plot_generalisation(rows, tmp_path / "plots" / "curves.png")
    assert path.is_file() and path.stat().st_size > 0
    with pytest.raises(CheckpointError, match="no saved model"):
        run_checkpoints(tmp_path / "empty")


def curve(seen: list[float], unseen: list[float], every: int = 100) -> list[dict]:
    return [
        {"step": i * every, "accuracy_seen": s, "accuracy_unseen": u}
        for i, (s, u) in enumerate(zip(seen, unseen, strict=True))
    ]


def test_generalisation_delay_on_hand_made_curves():
    curves = curve([0.5, 0.75, 0.9, 0.9, 0.9], [0.5, 0.5, 0.55, 0.8, 0.9])
    # Both best at 0.9, so both marks are 0.7: seen reaches it at 100, unseen at 300.
    delay = generalisation_delay(curves)
    assert delay["threshold_seen"] == pytest.approx(0.7)
    assert (delay["step_seen"], delay["step_unseen"], delay["delay"]) == (100, 300, 200)
    # A fixed threshold: 0.85 first at 200 (seen) and 400 (unseen).
    assert generalisation_delay(curves, threshold=0.85)["delay"] == 200

    # The unseen split ends lower (best 0.7, mark 0.6) but rises at 200 all the same.
    lower = curve([0.5, 0.75, 0.9, 0.9], [0.5, 0.52, 0.65, 0.7])
    assert generalisation_delay(lower)["step_unseen"] == 200

    flat = generalisation_delay(curve([0.5, 0.8, 0.9], [0.5, 0.52, 0.51]))  # never rises
    assert (flat["step_seen"], flat["step_unseen"], flat["delay"]) == (100, None, None)
    empty = curve([0.5, 0.8], [None, None])  # no unseen pairs at all
    assert generalisation_delay(empty)["delay"] is None
