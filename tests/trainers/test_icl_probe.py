"""ICL probe evaluation: jackknife, log-likelihood scoring with a rigged model, resumable sweeps."""

import copy
import json
import statistics

import pytest
import torch

from trainers.icl_probe import accuracy, jackknife, label_logliks, probe, report


def test_jackknife_variance_of_the_mean_equals_the_closed_form():
    values = [0.5, 0.75, 0.25, 1.0, 0.6]
    mean, var = jackknife(values)
    assert mean == pytest.approx(statistics.mean(values))
    assert var == pytest.approx(statistics.variance(values) / len(values))


def _rigged(tiny_lm, word: str):
    """The tiny model with a hand-set logit bias towards the first token of ' word'."""
    model, tokenizer = tiny_lm
    model = copy.deepcopy(model)
    token = tokenizer.encode(" " + word, add_special_tokens=False)[0]
    bias = torch.zeros(model.config.vocab_size)
    bias[token] = 50.0
    model.lm_head.register_forward_hook(lambda _m, _i, out: out + bias)
    return model, tokenizer


def test_loglik_scoring_picks_the_label_the_model_is_rigged_to_prefer(tiny_lm):
    model, tokenizer = _rigged(tiny_lm, "positive")
    prompt = tokenizer.encode("Review: fine.\nAnswer:", add_special_tokens=False)
    scores = label_logliks(model, tokenizer, prompt, ["negative", "positive"])
    assert scores[1] > scores[0] + 10
    # Label-balanced test instances: always answering "positive" is right on exactly half.
    assert accuracy(model, tokenizer, "sst2", "all", 0, limit=8, scoring="loglik") == 0.5
    # Contextual calibration subtracts each label's score after a content-free input: the
    # rigged preference cancels, leaving the plain model's calibrated scores.
    plain, _ = tiny_lm
    blank = tokenizer.encode("Review: N/A\nAnswer:", add_special_tokens=False)

    def calibrated(m):
        s = label_logliks(m, tokenizer, prompt, ["negative", "positive"])
        b = label_logliks(m, tokenizer, blank, ["negative", "positive"])
        return [x - y for x, y in zip(s, b, strict=True)]

    rigged, plain_scores = calibrated(model), calibrated(plain)
    # The decision is the calibrated margin between the labels: the same for both models.
    assert rigged[1] - rigged[0] == pytest.approx(plain_scores[1] - plain_scores[0], abs=1e-4)
    assert abs(plain_scores[1] - plain_scores[0]) > 1e-3  # and not trivially zero
    raw = label_logliks(model, tokenizer, prompt, ["negative", "positive"])
    assert raw[1] - raw[0] > 10 > abs(rigged[1] - rigged[0])


def test_a_sweep_resumes_and_reports_deltas_against_all(tmp_path, tiny_lm):
    model, _ = _rigged(tiny_lm, "positive")
    args = dict(models=["tiny-random-llama"], tasks=["sst2"], corruptions=["all", "empty"],
                seeds=2, out=tmp_path, limit=4, scoring="loglik", log=lambda *_: None)  # fmt: skip
    path = probe(**args)
    lines = path.read_text().splitlines()
    assert len(lines) == 4
    probe(**args)  # everything done: nothing is added
    assert path.read_text().splitlines() == lines
    rows = {r["corruption"]: r for r in report(path)}
    assert rows["all"]["delta_vs_all"] == 0.0 and rows["all"]["seeds"] == 2
    records = [json.loads(x) for x in lines]
    empty = [r["accuracy"] for r in records if r["corruption"] == "empty"]
    base = [r["accuracy"] for r in records if r["corruption"] == "all"]
    assert rows["empty"]["delta_vs_all"] == pytest.approx(
        statistics.mean(e - b for e, b in zip(empty, base, strict=True))
    )


def test_assay_icl_probe_over_the_checkpoints_of_a_run(tmp_path, tiny_lm):
    from assay.cli import main
    from trainers.checkpoint import save_checkpoint
    from trainers.icl_probe import checkpoint_step

    model, tokenizer = tiny_lm
    run = tmp_path / "run"
    for step in (10, 20):
        save_checkpoint(run, step, model, tokenizer, {}, keep=5)
    out = tmp_path / "probe"
    code = main(["icl", "probe", "--checkpoints", str(run), "--tasks", "sst2", "--corruptions",
                 "empty", "--seeds", "1", "--limit", "2", "--scoring", "loglik", "--out", str(out)])  # fmt: skip
    assert code == 0
    rows = json.loads((out / "report.json").read_text())
    assert sorted({checkpoint_step(r["model"]) for r in rows}) == [10, 20]
    assert {r["corruption"] for r in rows} == {"all", "empty"}
    assert (out / "report.png").stat().st_size > 5000
    assert (out / "over_training.png").stat().st_size > 5000
