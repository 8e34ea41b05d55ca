"""`assay analyze` and `assay study` end to end on two tiny pretraining runs: the report has
every section, its numbers agree with the CSVs, and ReLoRA's update has the low rank that its
resets allow."""

import csv
import json
from pathlib import Path

import pytest

from assay.cli import main

ROOT = Path(__file__).parents[2]
CONFIG = str(ROOT / "configs" / "pretrain_tiny.yaml")
TINY = [
    "model.seq_len=32",
    "data.vocab_size=512",
    "data.max_train_tokens=4096",
    "train.batch_size=4",
    "train.micro_batch_size=4",
    "max_steps=6",
    "optim.warmup_steps=1",
    "train.eval_every=6",
    "train.eval_windows=4",
    "train.checkpoint_every=3",
    "train.keep_checkpoints=5",
    "train.save_steps=[0]",
    "method.relora.reset_every=3",
    "method.relora.restart_warmup_steps=1",
]
SMALL = ["eval_windows=4", "seq_len=32", "geometry.points=5", "geometry.interpolation_points=5",
         "geometry.random_directions=2", "geometry.singular_directions=2"]  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    for method in ("full", "relora"):
        args = [*TINY, f"method={method}", f"run_name={method}", f"train.output_dir={out}"]
        assert main(["pretrain", "--config", CONFIG, *args]) == 0
    return out


def test_geometry_report_covers_every_measurement(runs, tmp_path):
    out = tmp_path / "geo"
    targets = f"{runs / 'full'},{runs / 'relora'}"
    assert (
        main(["analyze", "--runs", targets, "--suite", "geometry", "--out", str(out), *SMALL]) == 0
    )
    report = (out / "report.md").read_text()
    for section in ("Spectra of the final weights", "Spectra of the update", "Loss landscapes",
                    "consecutive checkpoints", "between runs", "Activation similarity"):  # fmt: skip
        assert section in report, section
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["runs"] == {"full": [0, 3, 6], "relora": [0, 3, 6]}
    geometry = metrics["geometry"]
    families = {(r["run"], r["directions"]) for r in geometry["landscapes"]}
    assert len(families) == 6  # random, singular and trajectory for both runs
    assert all(r["expected_sharpness"] == r["expected_sharpness"] for r in geometry["landscapes"])
    # ReLoRA merged once (step 3) and ends with its live factors: rank <= 2 x 16 of 64.
    ratio = {(r["run"], r["projection"]): r["rank_ratio"] for r in geometry["updates"]}
    assert all(ratio[("relora", p)] <= 0.5 for p in ("q_proj", "up_proj", "down_proj"))
    assert all(ratio[("full", p)] == 1.0 for p in ("q_proj", "up_proj", "down_proj"))
    # Two consecutive pairs per run, and the first run compared with itself at layer 0: none.
    assert [r["pair"] for r in geometry["trajectory"] if r["run"] == "full"] == [
        "step 0 -> 3", "step 3 -> 6"]  # fmt: skip
    assert {r["run"] for r in geometry["similarity"]} == {"relora"}
    # Each ReLoRA step between checkpoints is one rank-16 cycle on 64-wide matrices.
    steps = {(r["run"], r["pair"]): r["rank_ratio"] for r in geometry["steps"]}
    assert steps[("relora", "step 3 -> 6")] <= 0.25 < steps[("full", "step 3 -> 6")]
    assert [r["pair"] for r in geometry["between_runs"]] == ["step 3 -> relora", "step 6 -> relora"]
    with (out / "landscapes.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [float(r["expected_sharpness"]) for r in rows] == pytest.approx(
        [r["expected_sharpness"] for r in geometry["landscapes"]]
    )
    for plot in ("effective_rank", "landscape_full", "cka_to_first_run", "interpolation_relora"):
        assert (out / "plots" / f"{plot}.png").exists(), plot


def test_grammar_report_tracks_blimp_over_checkpoints(runs, tmp_path):
    out = tmp_path / "gram"
    args = ["analyze", "--runs", str(runs / "full"), "--suite", "grammar", "--out", str(out),
            "grammar.limit=8", "grammar.paradigms=[anaphor_number_agreement]"]  # fmt: skip
    assert main(args) == 0
    grammar = json.loads((out / "metrics.json").read_text())["grammar"]
    overall = [r for r in grammar["blimp"] if r["level"] == "overall"]
    assert [r["step"] for r in overall] == [0, 3, 6] and all(r["n"] == 8 for r in overall)
    curves = grammar["generalisation"]["full"]["curves"]
    assert [c["step"] for c in curves] == [0, 3, 6]
    assert all(c["n_seen"] + c["n_unseen"] == 8 for c in curves)
    assert set(grammar["probes"]["full"]["probes"]) == {"step 0", "step 6"}
    report = (out / "report.md").read_text()
    assert "BLiMP accuracy over checkpoints" in report and "Delayed generalisation" in report


def test_analyze_takes_a_plain_model_name(tmp_path):
    out = tmp_path / "one"
    args = ["analyze", "--runs", "tiny-random-llama", "--out", str(out), *SMALL]
    assert main(args) == 0
    geometry = json.loads((out / "metrics.json").read_text())["geometry"]
    assert {r["directions"] for r in geometry["landscapes"]} == {
        "random (filter-normalised)", "singular u_k v_k^T"}  # fmt: skip
    assert geometry["updates"] == [] and geometry["trajectory"] == []


def test_study_trains_both_runs_once_and_writes_one_report(tmp_path):
    common = "common=[" + ", ".join(f"'{o}'" for o in TINY) + "]"
    args = ["study", "lowrank", f"out={tmp_path / 's'}", common,
            *[f"analysis.{o}" for o in SMALL]]  # fmt: skip
    assert main(args) == 0
    report = (tmp_path / "s" / "analysis" / "report.md").read_text()
    assert report.startswith("# Study: full, relora")
    before = (tmp_path / "s" / "full" / "summary.json").stat().st_mtime
    assert main(args) == 0  # read back, not retrained
    assert (tmp_path / "s" / "full" / "summary.json").stat().st_mtime == before


def test_analyze_reads_an_rl_run_directory(tiny_lm, tmp_path):
    """RL runs keep `checkpoints/step-*` (model, tokenizer, trainer state) and no `final/`."""
    import copy

    import torch

    from assay.checkpoints import save_checkpoint

    model, tokenizer = copy.deepcopy(tiny_lm[0]), tiny_lm[1]  # the fixture is shared
    run = tmp_path / "rl-run"
    for step in (1, 2):
        with torch.no_grad():
            model.lm_head.weight.mul_(1.01)  # a different model at each step
        save_checkpoint(run, step, model, tokenizer, {}, keep=5)
    out = tmp_path / "rl"
    assert main(["analyze", "--runs", str(run), "--out", str(out), *SMALL]) == 0
    geometry = json.loads((out / "metrics.json").read_text())["geometry"]
    assert json.loads((out / "metrics.json").read_text())["runs"] == {"rl-run": [1, 2]}
    assert [r["pair"] for r in geometry["trajectory"]] == ["step 1 -> 2"]
