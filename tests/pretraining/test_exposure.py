import json

import numpy as np
import pytest

from assay.errors import AssayError
from pretraining.exposure import (
    ExposureIndex,
    ExposureLog,
    build_exposure_index,
    build_suffix_array,
)

SEQ_LEN = 32
NUM_WINDOWS = 40
VOCAB = 50  # planted phrases use ids >= VOCAB, so random windows never contain them


def _log(tmp_path, steps):
    log = ExposureLog.in_run_dir(tmp_path)
    for step, ids in steps.items():
        log.append(step, ids)
    return log


@pytest.fixture
def planted(tmp_path):
    """Random windows, phrases planted in windows consumed at known steps, and their log."""
    rng = np.random.default_rng(0)
    windows = rng.integers(0, VOCAB, size=(NUM_WINDOWS, SEQ_LEN))
    # Steps 0..9 consume windows 0..39 four at a time, in a shuffled order.
    order = rng.permutation(NUM_WINDOWS)
    steps = {s: order[4 * s : 4 * s + 4].tolist() for s in range(10)}
    # A second epoch: steps 10..11 consume windows already seen.
    steps[10], steps[11] = steps[7], steps[3]
    step_of = {w: s for s in range(10) for w in steps[s]}

    twice = [100, 101, 102]
    windows[steps[7][1], 5:8] = twice  # seen at step 7 ...
    windows[steps[3][2], 20:23] = twice  # ... and first at step 3
    once = [110, 111, 112, 113]
    windows[steps[6][0], 0:4] = once
    # [120, 121] ends one window and [122, 123] starts the next in the stream.
    straddle = [120, 121, 122, 123]
    windows[steps[2][0], -2:] = straddle[:2]
    windows[steps[2][1], :2] = straddle[2:]
    return {
        "windows": windows,
        "log": _log(tmp_path, steps),
        "step_of": step_of,
        "twice": twice,
        "once": once,
        "straddle": straddle,
    }


def test_first_seen_of_planted_phrases(planted):
    index = build_exposure_index(planted["windows"], planted["log"])
    assert index.first_seen(planted["twice"]) == 3
    assert index.first_seen(planted["twice"][1:]) == 3
    assert index.first_seen(planted["once"]) == 6
    assert index.first_seen([130, 131]) is None
    assert index.first_seen(planted["straddle"]) is None
    assert index.first_seen(planted["straddle"][1:3]) is None
    assert index.first_seen(planted["straddle"][:2]) == 2
    assert index.first_seen(planted["straddle"][2:]) == 2


def test_seen_before_on_both_sides_of_first_step(planted):
    index = build_exposure_index(planted["windows"], planted["log"])
    assert not index.seen_before(planted["once"], 6)
    assert index.seen_before(planted["once"], 7)
    assert not index.seen_before([130], 12)
    with pytest.raises(AssayError, match="upto_step"):
        index.seen_before([130], 13)


def test_window_consumed_twice_counts_at_first_step(planted):
    windows, log = planted["windows"], planted["log"]
    first = log.first_step_of_window()
    assert first == planted["step_of"]
    window = log.windows(10)[0]  # step 10 re-consumes step 7's windows
    index = build_exposure_index(windows, log)
    assert index.first_seen(windows[window]) == 7
    assert len(index.stream) == NUM_WINDOWS * (SEQ_LEN + 1)


def test_upto_step_limits_the_index(planted):
    index = build_exposure_index(planted["windows"], planted["log"], upto_step=5)
    assert index.last_step == 5
    assert index.first_seen(planted["twice"]) == 3
    assert index.first_seen(planted["once"]) is None
    assert index.seen_before(planted["once"], 6) is False
    with pytest.raises(AssayError):
        index.seen_before(planted["once"], 7)


def test_matches_brute_force_scan(planted):
    windows, log = planted["windows"], planted["log"]
    index = build_exposure_index(windows, log)
    first = log.first_step_of_window()
    window_step = np.array([first[w] for w in range(NUM_WINDOWS)])

    def brute(query):
        m = len(query)
        if m > SEQ_LEN:
            return None
        views = np.lib.stride_tricks.sliding_window_view(windows, m, axis=1)  # (W, L-m+1, m)
        hit = (views == query).all(-1).any(-1)
        return int(window_step[hit].min()) if hit.any() else None

    rng = np.random.default_rng(1)
    found = 0
    for _ in range(300):
        m = int(rng.integers(1, 6))
        if rng.random() < 0.5:
            w, start = rng.integers(NUM_WINDOWS), rng.integers(0, SEQ_LEN - m + 1)
            query = windows[w, start : start + m]
        else:
            query = rng.integers(0, VOCAB, size=m)
        expected = brute(query)
        found += expected is not None
        assert index.first_seen(query) == expected, query
    assert 150 < found < 300  # both hits and misses were exercised


def test_suffix_array_matches_sorted_suffixes():
    rng = np.random.default_rng(2)
    for n in (1, 2, 7, 60):
        tokens = rng.integers(0, 3, size=n)
        expected = sorted(range(n), key=lambda i: tokens[i:].tolist())
        assert build_suffix_array(tokens).tolist() == expected


def test_save_and_load_round_trip(planted, tmp_path):
    index = build_exposure_index(planted["windows"], planted["log"])
    path = index.save(tmp_path / "index")
    assert path.name == "index.npz"
    loaded = ExposureIndex.load(path)
    assert loaded.first_seen(planted["twice"]) == 3
    assert loaded.last_step == 11
    with pytest.raises(AssayError, match="no exposure index"):
        ExposureIndex.load(tmp_path / "missing.npz")


def test_bad_queries_are_errors(planted):
    index = build_exposure_index(planted["windows"], planted["log"])
    with pytest.raises(AssayError, match="non-empty"):
        index.first_seen([])
    with pytest.raises(AssayError, match=">= 0"):
        index.first_seen([-1])


def test_log_round_trips_and_truncates(tmp_path):
    log = _log(tmp_path, {0: [4, 2], 1: [0], 2: [3, 1], 3: [2]})
    assert log.path == tmp_path / "exposure.jsonl"
    lines = log.path.read_text().splitlines()
    assert json.loads(lines[1]) == {"step": 1, "windows": [0]}

    again = ExposureLog.read(log.path)
    assert again.steps() == [0, 1, 2, 3]
    assert again.windows(2) == [3, 1]
    assert again.first_step_of_window() == {4: 0, 2: 0, 0: 1, 3: 2, 1: 2}

    again.truncate_after(1)
    again.append(2, [9])
    assert ExposureLog.read(again.path).steps() == [0, 1, 2]
    assert ExposureLog.read(again.path).windows(2) == [9]
    assert [p.name for p in tmp_path.iterdir()] == ["exposure.jsonl"]

    with pytest.raises(AssayError, match="truncate_after"):
        again.append(2, [1])
    with pytest.raises(AssayError, match="no exposure log"):
        ExposureLog.read(tmp_path / "nope.jsonl")


def test_log_drops_a_line_cut_short_by_a_crash(tmp_path):
    log = _log(tmp_path, {0: [1], 1: [2]})
    with log.path.open("a") as f:
        f.write('{"step": 2, "wind')
    resumed = ExposureLog(log.path)
    assert resumed.steps() == [0, 1]
    resumed.append(2, [3])
    assert ExposureLog.read(log.path).windows(2) == [3]


def test_pieces_follow_provenance(tmp_path):
    log = _log(tmp_path, {0: [1, 0]})
    provenance = [
        [(7, 0, 10, 0)],
        [(7, 10, 14, 0), (8, 0, 6, 5)],  # tail of doc 7, EOS, head of doc 8
    ]
    assert log.pieces(0, provenance) == [(7, range(10, 14)), (8, range(0, 6)), (7, range(0, 10))]
    assert log.pieces(0, lambda w: provenance[w]) == log.pieces(0, provenance)
    with pytest.raises(AssayError, match="provenance"):
        log.pieces(0, provenance[:1])


def test_first_seen_text_through_a_bpe_tokenizer(tmp_path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    docs = [
        "the quick brown fox jumps over the lazy dog",
        "a lazy cat sleeps in the warm sun all day",
        "the brown dog chases the quick cat around the yard",
        "quick thinking saves the day for the brown fox",
    ]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        docs * 5,
        trainers.BpeTrainer(
            vocab_size=300,
            special_tokens=["<unk>", "<eos>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<eos>")

    # Pack the EOS-separated documents into windows; window w is consumed at step 10 + w.
    stream = [t for d in docs for t in tokenizer.encode(d) + [tokenizer.eos_token_id]]
    seq_len = 12
    stream += [tokenizer.eos_token_id] * (-len(stream) % seq_len)
    windows = np.array(stream).reshape(-1, seq_len)
    log = _log(tmp_path, {10 + w: [w] for w in range(len(windows))})
    index = build_exposure_index(windows, log)

    def step_of(text):
        position = stream.index(tokenizer.encode(" " + text)[0])
        return 10 + position // seq_len

    # "lazy dog" is only ever seen after a space: only the leading-space variant matches.
    assert index.first_seen(tokenizer.encode("lazy dog")) is None
    assert index.first_seen_text("lazy dog", tokenizer) == step_of("lazy dog")
    # "the quick" opens the first document, without a space.
    assert index.first_seen_text("the quick", tokenizer) == 10
    assert index.first_seen_text("purple elephant", tokenizer) is None
