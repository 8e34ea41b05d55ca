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
    from assay.checkpoints import save_checkpoint
    from assay.cli import main
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


def _sni(tmp_path, outputs):
    task = {
        "Definition": ["Answer the question about the sentence."],
        "Positive Examples": [
            {"input": f"ex {i}", "output": outputs[i % len(outputs)], "explanation": "."}
            for i in range(4)
        ],  # fmt: skip
        "Negative Examples": [],
        "Instances": [
            {"id": f"t{i}", "input": f"q {i}", "output": [outputs[i % len(outputs)], "alt"]}
            for i in range(6)
        ],  # fmt: skip
    }
    path = tmp_path / "task001_demo.json"
    path.write_text(json.dumps(task))
    return path


def test_sni_task_files_load_as_classification_or_generation(tmp_path, tiny_lm):
    from envs.icl.tasks import load_sni_task

    classes = load_sni_task(_sni(tmp_path, ["yes", "no"]))
    assert classes.kind == "classification" and set(classes.label_space) == {"yes", "no"}
    assert classes.description == "Answer the question about the sentence."
    assert len(classes.demos) == 4 and classes.tests[0].references == ("yes", "alt")
    outputs = [f"a long free-form answer number {i}" for i in range(30)]
    path = _sni(tmp_path, outputs)
    gen = load_sni_task(path, max_labels=5)
    assert gen.kind == "generation" and gen.label_space == ()
    model, tokenizer = tiny_lm  # a random model: ROUGE-L is a mean in [0, 1]
    score = accuracy(model, tokenizer, str(path), "all", 0, n_demos=2, limit=3)
    assert 0.0 <= score <= 1.0
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not a Super-NaturalInstructions task"):
        load_sni_task(tmp_path / "bad.json")


def test_rouge_l_by_hand():
    from envs.icl.rouge import best_rouge_l, rouge_l

    # LCS of "a b c d e" and "a x c e" is "a c e": P = 3/5, R = 3/4, F = 2PR/(P+R) = 2/3
    assert rouge_l("A b, c d e!", "a x c e") == pytest.approx(2 * 0.6 * 0.75 / 1.35)
    assert rouge_l("", "") == 1.0 and rouge_l("x", "") == 0.0 and rouge_l("x", "y") == 0.0
    assert best_rouge_l("paris", ["London", "Paris"]) == 1.0


def test_attention_mass_by_component_sums_to_one_and_follows_the_layout(tmp_path, tiny_lm):
    from envs.icl import Demo, Parts, corrupt
    from trainers.icl_probe import COMPONENTS, attention_by_component, plot_attention

    model, tokenizer = tiny_lm
    parts = Parts("Classify the review.", tuple(Demo(f"review {i}", "positive", "Positive?")
                                                for i in range(3)), "the test", "Positive?")  # fmt: skip
    mass = attention_by_component(model, tokenizer, parts)
    layers = model.config.num_hidden_layers
    assert mass.shape == (layers, model.config.num_attention_heads, len(COMPONENTS))
    torch.testing.assert_close(mass.sum(-1), torch.ones(mass.shape[:2]))
    assert (mass > 0).all()  # every component has tokens here
    bare = attention_by_component(model, tokenizer, corrupt(parts, "empty", 0, ["positive"]))
    gone = [COMPONENTS.index(c) for c in ("description", "demo_input", "demo_inline",
                                          "demo_label", "test_inline")]  # fmt: skip
    assert (
        bare[:, :, gone].abs().max() == 0 and bare[:, :, COMPONENTS.index("test_input")].min() > 0
    )
    assert model.config._attn_implementation != "eager"  # restored afterwards
    assert plot_attention(mass, tmp_path / "attention.png").stat().st_size > 5000


def test_assay_icl_attention_writes_a_heatmap(tmp_path, capsys):
    from assay.cli import main

    out = tmp_path / "att.png"
    assert main(["icl", "attention", "--model", "tiny-random-llama", "--task", "trec",
                 "--corruption", "wrong_labels", "--out", str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "demo_label=" in printed and out.stat().st_size > 5000
