"""assay eval math: the metrics against hand-worked values, the sample log, and the command."""

import json

import pytest

import envs
from assay.cli import main
from trainers.engines.base import Completion, Sampling
from trainers.math_eval import (
    evaluate_math,
    majority_correct,
    pass_at_k,
    summarize,
    wilson_interval,
)


def test_pass_at_k_matches_the_closed_form():
    assert pass_at_k(5, 2, 1) == pytest.approx(2 / 5)
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)  # 1 - C(3,2)/C(5,2)
    assert pass_at_k(5, 0, 3) == 0.0
    assert pass_at_k(5, 3, 3) == 1.0  # fewer than k wrong samples: some draw is correct


def test_wilson_interval_known_values():
    zero = wilson_interval(0, 10)
    assert (zero.value, zero.low) == (0.0, 0.0) and zero.high == pytest.approx(0.2775, abs=1e-4)
    half = wilson_interval(5, 10)
    assert (half.low, half.high) == pytest.approx((0.2366, 0.7634), abs=1e-4)


def test_majority_vote_groups_by_normalised_answer():
    def sample(norm, correct):
        return {"answer": norm, "answer_norm": norm, "correct": correct}

    assert majority_correct([sample("3", True), sample("4", False), sample("4", False)]) is False
    assert majority_correct([sample("3", True), sample("3", True), sample("4", False)]) is True
    tie = [sample("3", True), sample("4", False)]
    assert majority_correct(tie) is True  # ties go to the earliest answer
    assert majority_correct([{"answer": None, "answer_norm": "", "correct": False}]) is False


class ScriptedEngine:
    """Answers each problem with fixed texts, cycling through ``script``."""

    def __init__(self, script):
        self.script = script

    def generate(self, prompts, sampling):
        return [
            [
                Completion(self.script[j % len(self.script)], [], [], [], "stop")
                for j in range(sampling.n)
            ]  # fmt: skip
            for _ in prompts
        ]


def test_evaluate_math_scores_and_logs_every_sample(tmp_path):
    env = envs.make("math-gsm8k-v0", split="test")  # gold of problem 0 is 18, of problem 1 is 3
    engine = ScriptedEngine(["The answer is 18.", "The answer is 3.", "The answer is 3."])
    summary = evaluate_math(engine, env, 2, Sampling(n=3, temperature=0.7), tmp_path / "s.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert len(rows) == 6
    assert [r["correct"] for r in rows] == [True, False, False, False, True, True]
    assert summary["accuracy"]["value"] == pytest.approx((1 / 3 + 2 / 3) / 2)
    assert summary["pass@3"]["value"] == 1.0
    assert summary["maj@3"]["value"] == 0.5  # problem 0 votes 3 (wrong), problem 1 votes 3
    assert summary["answered_rate"] == 1.0


def test_single_sample_accuracy_uses_the_wilson_interval():
    rows = [[{"answer": "1", "answer_norm": "1", "correct": c}] for c in [True] * 5 + [False] * 5]
    summary = summarize(rows, 1)
    assert summary["accuracy"]["low"] == pytest.approx(0.2366, abs=1e-4)


def test_the_command_writes_samples_and_summary(tmp_path, capsys):
    code = main(
        [
            "eval",
            "math",
            "--model",
            "tiny-random-llama",
            "--n",
            "3",
            "--max-new-tokens",
            "4",
            "--output-dir",
            str(tmp_path),
        ]  # fmt: skip
    )
    assert code == 0
    (run_dir,) = tmp_path.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["problems"] == 3 and summary["samples_per_problem"] == 1
    assert len((run_dir / "samples.jsonl").read_text().splitlines()) == 3
    assert "accuracy" in capsys.readouterr().out


def test_greedy_with_several_samples_is_refused(tmp_path, capsys):
    code = main(
        [
            "eval",
            "math",
            "--model",
            "tiny-random-llama",
            "--samples",
            "4",
            "--temperature",
            "0",
            "--output-dir",
            str(tmp_path),
        ]  # fmt: skip
    )
    assert code == 2
    assert "--samples > 1 needs --temperature > 0" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
