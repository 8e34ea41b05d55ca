"""Readers for PRM800K (raw) and Math-Shepherd step labels, on the shipped sample rows."""

import json

import pytest

from assay.errors import ConfigError
from rewards.rm import load_prm_rows, math_shepherd_row, prm800k_rows


def _record(steps):
    return {"question": {"problem": "P"}, "label": {"steps": steps}}


def test_prm800k_follows_chosen_then_human_completions_and_stops_at_the_end():
    steps = [
        {"completions": [{"text": "a", "rating": 1}], "chosen_completion": 0},
        {"completions": [{"text": "b-", "rating": -1}, {"text": "b0", "rating": 0}],
         "chosen_completion": None, "human_completion": {"text": "b-human", "rating": None}},
        {"completions": [{"text": "c-", "rating": -1}], "chosen_completion": None,
         "human_completion": None},
        {"completions": [{"text": "never", "rating": 1}], "chosen_completion": 0},
    ]  # fmt: skip
    (row,) = prm800k_rows([_record(steps)])
    assert row["steps"] == ["a", "b-human", "c-"]
    assert row["ratings"] == [1, 1, -1] and row["labels"] == [1.0, 1.0, 0.0]
    rows = list(prm800k_rows([_record(steps)], neutral=0.0, alternatives=True))
    alternatives = {tuple(r["steps"]): r["labels"] for r in rows[:-1]}
    assert alternatives == {("a", "b-"): [1.0, 0.0], ("a", "b0"): [1.0, 0.0]}


def test_prm800k_sample_rows_load_with_one_label_per_step():
    rows = load_prm_rows("prm800k:sample")
    assert len(rows) == 6
    assert all(len(r["steps"]) == len(r["labels"]) == len(r["ratings"]) > 0 for r in rows)
    assert rows[0]["problem"].startswith("Three pencils and a jumbo eraser")
    assert {x for r in rows for x in r["ratings"]} <= {-1, 0, 1}


def test_math_shepherd_labels_come_from_the_plus_minus_marks():
    record = {
        "input": "What is 2+3? Step 1: 2+3=5 ки\nStep 2: The answer is: 6 ки",
        "label": "What is 2+3? Step 1: 2+3=5 +\nStep 2: The answer is: 6 -",
    }
    row = math_shepherd_row(record)
    assert row["problem"] == "What is 2+3?"
    assert row["steps"] == ["Step 1: 2+3=5", "Step 2: The answer is: 6"]
    assert row["labels"] == [1.0, 0.0]
    with pytest.raises(ConfigError, match="does not repeat"):
        math_shepherd_row({**record, "label": record["label"].replace("2+3=5", "2+3=4")})


def test_math_shepherd_sample_and_local_files(tmp_path):
    rows = load_prm_rows("math-shepherd:sample")
    assert len(rows) == 7 and rows[0]["labels"] == [1.0, 1.0, 1.0, 1.0, 0.0]
    path = tmp_path / "ms.jsonl"
    path.write_text(json.dumps({"input": "Q Step 1: x ки", "label": "Q Step 1: x +"}) + "\n")
    assert load_prm_rows(f"math-shepherd:{path}")[0]["labels"] == [1.0]


def test_bad_specs_say_what_is_accepted():
    with pytest.raises(ConfigError, match="prm800k"):
        load_prm_rows("nonsense")
    with pytest.raises(ConfigError, match="No file"):
        load_prm_rows("prm800k:/does/not/exist.jsonl")


def test_the_full_sets_from_an_unreachable_hub_fail_with_one_sentence():
    with pytest.raises(
        ConfigError, match="Could not load tasksource/PRM800K from the Hugging Face"
    ):
        load_prm_rows("prm800k:hub", limit=2)
