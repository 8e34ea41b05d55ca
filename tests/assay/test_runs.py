import json

import pytest

from assay.runs import MetricsLog, atomic_write_text, new_run_dir, plot_metrics


def test_run_dir_layout_and_unique_names(tmp_path):
    a = new_run_dir(tmp_path, "rl", "same")
    (a / "config.yaml").write_text("x: 1\n")
    b = new_run_dir(tmp_path, "rl", "same")
    assert a != b and (a / "checkpoints").is_dir() and (b / "plots").is_dir()


def test_metrics_log_appends_and_truncates(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    for step in range(1, 5):
        log.append({"step": step, "reward_mean": step / 10})
    log.truncate_after(2)
    assert [r["step"] for r in log.read()] == [1, 2]


def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / "summary.json"
    atomic_write_text(path, json.dumps({"a": 1}))
    atomic_write_text(path, json.dumps({"b": 2}))
    assert json.loads(path.read_text()) == {"b": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temp files left


def test_plot_is_a_png(tmp_path):
    records = [
        {"step": s, "reward_mean": s / 10, "reward_std": 0.1, "loss": 1 / s} for s in range(1, 6)
    ]
    path = plot_metrics(records, ["reward_mean", "loss"], tmp_path / "plots" / "training.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_half_written_last_metrics_line_is_skipped_with_a_warning(tmp_path):
    from assay.runs import MetricsLog

    log = MetricsLog(tmp_path / "metrics.jsonl")
    log.append({"step": 1, "loss": 2.0})
    log.append({"step": 2, "loss": 1.5})
    with log.path.open("a") as f:
        f.write('{"step": 3, "lo')  # killed during the write
    with pytest.warns(UserWarning, match="skipped 1 unreadable line"):
        assert [r["step"] for r in log.read()] == [1, 2]
    with pytest.warns(UserWarning):
        log.truncate_after(2)  # what --resume does: the broken line is gone afterwards
    assert [r["step"] for r in log.read()] == [1, 2]
