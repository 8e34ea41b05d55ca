"""The pretraining job end to end, through the CLI as users run it: training lowers the loss,
checkpoints load with AutoModelForCausalLM, every method trains and reports its memory, runs
resume exactly, two gloo ranks equal one, and the sweep/prune/zero-shot commands work."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from assay.cli import main
from pretraining.packing import step_windows

ROOT = Path(__file__).parents[2]
CONFIG = str(ROOT / "configs" / "pretrain_tiny.yaml")


def tiny(out, **extra) -> list[str]:
    settings = {
        "model.seq_len": 32,
        "data.vocab_size": 512,
        "data.max_train_tokens": 4096,
        "train.batch_size": 4,
        "train.micro_batch_size": 2,
        "train.max_steps": 6,
        "optim.warmup_steps": 1,
        "train.eval_every": 3,
        "train.eval_windows": 8,
        "train.checkpoint_every": 3,
        "train.keep_checkpoints": 2,
        "train.output_dir": str(out),
        "method.relora.reset_every": 3,
        "method.relora.restart_warmup_steps": 1,
        "method.galore.update_proj_gap": 2,
        **extra,
    }
    return [f"{k}={v}" for k, v in settings.items()]


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def state(path: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path).state_dict()


def test_training_lowers_the_loss_logs_exposure_and_saves_loadable_models(tmp_path):
    args = tiny(tmp_path, **{"train.max_steps": 20, "train.eval_every": 10, "run_name": "r"})
    assert main(["pretrain", "--config", CONFIG, *args]) == 0
    run = tmp_path / "r"
    log = records(run)
    assert [r["step"] for r in log] == list(range(1, 21))
    assert np.mean([r["loss"] for r in log[-3:]]) < log[0]["loss"] - 0.5
    assert all(r["tokens_per_s"] > 0 and "mem/cpu_max_rss_gb" in r for r in log)
    assert [r["step"] for r in log if "eval/ppl" in r] == [10, 20]
    # The exposure log holds exactly the windows the recorded order gives each step.
    exposure = [json.loads(x) for x in (run / "exposure.jsonl").read_text().splitlines()]
    windows = np.load(run / "data" / "windows.npy")
    assert len(windows) == 4096 // 32
    for row in exposure:
        assert row["windows"] == step_windows(row["step"] - 1, 4, len(windows), 0).tolist()
    # The final checkpoint is a plain LLaMA whose held-out loss is the one the run reported.
    from transformers import AutoModelForCausalLM

    from assay.config import load_config
    from pretraining.config import PretrainConfig
    from pretraining.corpus import prepare_corpus
    from pretraining.trainer import evaluate

    model = AutoModelForCausalLM.from_pretrained(run / "final")
    corpus = prepare_corpus(load_config(PretrainConfig, run / "config.yaml"), tmp_path / "d")
    again = evaluate(
        model, corpus.eval, torch.device("cpu"), 4, torch.autocast("cpu", enabled=False)
    )
    summary = json.loads((run / "summary.json").read_text())
    assert again["eval/loss"] == pytest.approx(summary["eval/loss"], abs=1e-5)
    assert (run / "plots" / "training.png").exists()


def test_seen_traces_a_phrase_to_the_first_step_that_read_it(tmp_path, capsys):
    args = tiny(tmp_path, **{"train.max_steps": 8, "run_name": "r"})
    assert main(["pretrain", "--config", CONFIG, *args]) == 0
    run = tmp_path / "r"
    from transformers import AutoTokenizer

    from pretraining.trace import trace_phrases

    tokenizer = AutoTokenizer.from_pretrained(run / "tokenizer")
    windows = np.load(run / "data" / "windows.npy")
    exposure = [json.loads(x) for x in (run / "exposure.jsonl").read_text().splitlines()]
    read_at = {}
    for row in exposure:
        for w in row["windows"]:
            read_at.setdefault(w, row["step"])
    # Text from the middle of a window read at the last step: first read then or earlier.
    window = exposure[-1]["windows"][0]
    phrase = tokenizer.decode(windows[window][10:18])
    [traced] = trace_phrases(run, [phrase])
    assert traced["first_step"] is not None and traced["first_step"] <= read_at[window]
    # Brute force: the earliest step whose windows hold the phrase's tokens contiguously.
    ids = tokenizer(phrase, add_special_tokens=False)["input_ids"]
    steps = [
        read_at[w]
        for w in read_at
        if any(windows[w][i : i + len(ids)].tolist() == ids for i in range(33 - len(ids)))
    ]
    assert traced["first_step"] == min(steps)
    assert main(["pretrain", "seen", "--run", str(run), phrase, "zqxj vwuk qqq"]) == 0
    out = capsys.readouterr().out
    assert f"first read at step {traced['first_step']}" in out
    assert "'zqxj vwuk qqq': never read" in out


METHODS = ["relora", "galore", "fira", "cola", "sltrain"]


def test_every_method_trains_and_reports_fewer_trainable_parameters_or_less_state(tmp_path):
    summaries = {}
    for method in ["full", *METHODS]:
        args = tiny(
            tmp_path, **{"method.name": method, "run_name": method, "model.size": "llama-3m"}
        )
        assert main(["pretrain", "--config", CONFIG, *args]) == 0
        summaries[method] = json.loads((tmp_path / method / "summary.json").read_text())
        assert np.isfinite(summaries[method]["eval/loss"])
    full = summaries["full"]
    for method in METHODS:
        assert summaries[method]["optimizer_state_bytes"] < full["optimizer_state_bytes"], method
    for method in ["relora", "cola", "sltrain"]:
        trainable = summaries[method]["parameters"]["trainable"]
        assert trainable < full["parameters"]["trainable"], method
    # Full-rank AdamW keeps two fp32 moments per parameter (and a step counter per tensor).
    extra = full["optimizer_state_bytes"] - 2 * 4 * full["parameters"]["trainable"]
    assert 0 <= extra <= 4 * 64
    # ReLoRA resets every 3 steps (not after the last one) and prunes 99% of the LoRA state.
    resets = [r for r in records(tmp_path / "relora") if "relora/reset" in r]
    assert [r["step"] for r in resets] == [3]
    assert resets[0]["relora/state_pruned"] == pytest.approx(0.99, abs=0.005)
    # ReLoRA, GaLore and SLTrain save plain LLaMA checkpoints; CoLA needs load_pretrained.
    for method in ["relora", "galore", "sltrain"]:
        assert "model.layers.0.self_attn.q_proj.weight" in state(tmp_path / method / "final")
    from pretraining.cola import CoLALinear
    from pretraining.trainer import load_pretrained

    cola = load_pretrained(tmp_path / "cola" / "final")
    assert isinstance(cola.model.layers[0].mlp.down_proj, CoLALinear)


def test_a_resumed_run_ends_exactly_where_the_uninterrupted_run_ends(tmp_path):
    # GaLore's optimizer state holds projector objects: they load with weights_only=True too
    for method in ["full", "relora", "galore"]:
        args = tiny(tmp_path, **{"method.name": method, "run_name": method})
        assert main(["pretrain", "--config", CONFIG, *args]) == 0
        whole = tmp_path / method
        cut = tmp_path / f"{method}-cut"
        shutil.copytree(whole, cut)
        # Crash after step 3's checkpoint: the last checkpoint and the final model are gone,
        # while metrics and exposure already hold steps 4-6 (they are truncated on resume).
        shutil.rmtree(cut / "checkpoints" / "step-000006")
        shutil.rmtree(cut / "final")
        (cut / "summary.json").unlink()
        assert main(["pretrain", "--resume", str(cut)]) == 0
        a, b = state(whole / "final"), state(cut / "final")
        for name in a:
            assert torch.allclose(a[name], b[name], atol=1e-6), (method, name)
        assert [r["loss"] for r in records(cut)] == pytest.approx(
            [r["loss"] for r in records(whole)]
        )
        assert (cut / "exposure.jsonl").read_text() == (whole / "exposure.jsonl").read_text()


def test_config_errors_are_reported_before_any_work(tmp_path, capsys):
    code = main(["pretrain", "--config", CONFIG, "method=lora", f"train.output_dir={tmp_path}"])
    assert code == 2
    assert "method.name: got 'lora'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_two_gloo_ranks_train_exactly_like_one(tmp_path):
    one = tiny(tmp_path, **{"run_name": "one"})
    assert main(["pretrain", "--config", CONFIG, *one]) == 0
    two = tiny(tmp_path, **{"run_name": "two"})
    command = [sys.executable, "-m", "assay.cli", "pretrain", "--nproc", "2", "--config", CONFIG]
    subprocess.run([*command, *two], check=True, timeout=600, cwd=ROOT)
    a, b = state(tmp_path / "one" / "final"), state(tmp_path / "two" / "final")
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5), name
    assert (tmp_path / "one" / "exposure.jsonl").read_text() == (
        tmp_path / "two" / "exposure.jsonl"
    ).read_text()
    assert [r["loss"] for r in records(tmp_path / "two")] == pytest.approx(
        [r["loss"] for r in records(tmp_path / "one")], abs=1e-5
    )


@pytest.mark.slow
def test_sweep_trains_the_grid_once_and_fits_what_it_can(tmp_path):
    out = tmp_path / "sweep"
    command = ["pretrain", "sweep", "--config", CONFIG, "--sizes", "llama-1m,llama-3m",
               "--tokens", "1024,2048", "--out", str(out), *tiny(tmp_path)[:3]]  # fmt: skip
    assert main(command) == 0
    result = json.loads((out / "sweep.json").read_text())
    assert len(result["records"]) == 4
    assert {r["tokens"] for r in result["records"]} == {1024, 2048}
    assert set(result["fits"]) | set(result["skipped"]) == {"N", "D", "C"}
    assert (out / "scaling.png").exists()
    before = (out / "llama-1m-D1024" / "summary.json").stat().st_mtime
    assert main(command) == 0  # read back, not retrained
    assert (out / "llama-1m-D1024" / "summary.json").stat().st_mtime == before


def test_prune_reaches_the_sparsity_of_each_round_and_keeps_pruned_weights_at_zero(tmp_path):
    out = tmp_path / "imp"
    command = ["pretrain", "prune", "--config", CONFIG, "--rounds", "2", "--fraction", "0.2",
               "--rewind-step", "2", "--out", str(out), *tiny(tmp_path)]  # fmt: skip
    assert main(command) == 0
    rounds = json.loads((out / "imp.json").read_text())
    assert [r["sparsity"] for r in rounds] == pytest.approx([0.0, 0.2, 0.36], abs=1e-3)
    assert (out / "round-0" / "checkpoints" / "keep-000002").exists()
    final = state(out / "round-2" / "final")
    prunable = [v for k, v in final.items() if k.endswith("proj.weight")]
    zeros = sum(int((v == 0).sum()) for v in prunable) / sum(v.numel() for v in prunable)
    assert zeros == pytest.approx(0.36, abs=2e-3)
    assert (out / "imp.png").exists()


def test_zeroshot_compares_models_on_the_simple_subsets(tmp_path):
    args = tiny(tmp_path, **{"run_name": "z", "train.max_steps": 2})
    assert main(["pretrain", "--config", CONFIG, *args]) == 0
    out = tmp_path / "zs"
    models = f"{tmp_path / 'z' / 'final'},tiny-random-llama"
    assert (
        main(["pretrain", "zeroshot", "--models", models, "--limit", "4", "--out", str(out)]) == 0
    )
    rows = json.loads((out / "zeroshot.json").read_text())
    assert {r["model"] for r in rows} == set(models.split(","))
    scored = [r for r in rows if r["accuracy"] is not None]
    assert scored and all(0 <= r["accuracy"] <= 1 and r["n_scored"] <= 4 for r in scored)
    assert all(r["n_simple"] <= r["n_total"] for r in rows)
    assert (out / "zeroshot.png").exists()


def test_simplified_language_runs_train_on_in_vocabulary_text_only(tmp_path):
    from transformers import AutoTokenizer

    from pretraining.corpus import load_corpus
    from pretraining.simplify import count_oov, oov_rate, simple_vocabulary

    settings = {"run_name": "s", "max_steps": 2, "data.simplify.enabled": "true"}
    args = tiny(tmp_path, **settings, **{"data.max_train_tokens": "null"})  # every span packed
    assert main(["pretrain", "--config", CONFIG, *args]) == 0
    meta = json.loads((tmp_path / "s" / "data" / "meta.json").read_text())
    assert meta["simplified_spans"] > 0 and meta["vocabulary"] == 20000
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "s" / "tokenizer")
    windows = np.load(tmp_path / "s" / "data" / "windows.npy")
    vocab = simple_vocabulary()
    stream = windows.reshape(-1).tolist()
    spans, piece = [], []
    for token in stream:  # the spans, split at the EOS between documents
        if token == tokenizer.eos_token_id:
            spans.append(tokenizer.decode(piece))
            piece = []
        else:
            piece.append(token)
    counts = np.array([count_oov(span, vocab) for span in spans]).sum(axis=0)  # (words, oov)
    assert counts[1] / counts[0] <= 0.01 < oov_rate(" ".join(load_corpus("wikitext2")), vocab)


def test_relora_warm_starts_from_a_dense_checkpoint(tmp_path):
    from assay.config import load_config
    from pretraining.config import PretrainConfig, expand_short
    from pretraining.trainer import build

    assert main(["pretrain", "--config", CONFIG, *tiny(tmp_path, run_name="dense")]) == 0
    dense = state(tmp_path / "dense" / "final")
    overrides = tiny(tmp_path, **{"method": "relora"})
    overrides.append(f"method.relora.warm_start={tmp_path / 'dense' / 'final'}")
    config = load_config(PretrainConfig, CONFIG, expand_short(overrides))
    model, method = build(config, vocab_size=512)
    q = model.model.layers[0].self_attn.q_proj
    assert torch.equal(q.weight, dense["model.layers.0.self_attn.q_proj.weight"])  # frozen W
    assert not q.weight.requires_grad and torch.count_nonzero(q.lora_B) == 0
    assert torch.equal(model.lm_head.weight, dense["lm_head.weight"])


def test_bf16_autocast_trains(tmp_path):
    args = tiny(tmp_path, **{"run_name": "bf16", "train.dtype": "bfloat16", "max_steps": 3})
    assert main(["pretrain", "--config", CONFIG, *args]) == 0
    assert all(np.isfinite(r["loss"]) for r in records(tmp_path / "bf16"))


@pytest.mark.parametrize(
    "override",
    [
        "train.keep_checkpoints=-1",
        "train.keep_checkpoints=0",
        "train.micro_batch_size=0",
        "train.checkpoint_every=0",
        "train.eval_every=0",
        "train.batch_size=-16",
    ],  # fmt: skip
)
def test_counts_and_intervals_are_checked_before_any_work(tmp_path, override, capsys):
    # keep_checkpoints=-1 once deleted every checkpoint right after writing it; zeros divided
    args = ["pretrain", "--config", CONFIG, f"train.output_dir={tmp_path}", override]
    assert main(args) == 2  # a usage error
    assert f"train.{override.split('.')[1].split('=')[0]}: must be a whole number >= 1" in (
        capsys.readouterr().err
    )
    assert list(tmp_path.iterdir()) == []  # no run folder


@pytest.mark.slow
@pytest.mark.parametrize("method", ["full", "relora"])  # relora: merges and prunes at step 3
def test_fsdp_on_two_gloo_ranks_trains_like_one_process_and_resumes_on_one(tmp_path, method):
    one = tiny(tmp_path, **{"run_name": "one", "method.name": method})
    assert main(["pretrain", "--config", CONFIG, *one]) == 0
    two = tiny(tmp_path, **{"run_name": "fsdp", "train.sharding": "fsdp", "method.name": method})
    command = [sys.executable, "-m", "assay.cli", "pretrain", "--nproc", "2", "--config", CONFIG]
    subprocess.run([*command, *two], check=True, timeout=600, cwd=ROOT)
    a, b = state(tmp_path / "one" / "final"), state(tmp_path / "fsdp" / "final")
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5), name
    assert [r["loss"] for r in records(tmp_path / "fsdp")] == pytest.approx(
        [r["loss"] for r in records(tmp_path / "one")], abs=1e-5
    )
    # Cut after step 3's checkpoint (gathered whole by rank 0) and resume in one plain process.
    cut = tmp_path / "cut"
    shutil.copytree(tmp_path / "fsdp", cut)
    shutil.rmtree(cut / "checkpoints" / "step-000006")
    shutil.rmtree(cut / "final")
    assert main(["pretrain", "--resume", str(cut), "train.sharding=none"]) == 0
    c = state(cut / "final")
    for name in a:
        assert torch.allclose(a[name], c[name], atol=1e-5), name


@pytest.mark.parametrize("method", ["galore", "fira", "cola", "sltrain"])
def test_methods_that_cannot_shard_are_refused_with_the_reason(tmp_path, method, capsys):
    args = tiny(tmp_path, **{"method.name": method, "train.sharding": "fsdp"})
    assert main(["pretrain", "--config", CONFIG, *args]) == 2
    err = capsys.readouterr().err
    assert f"shards methods full and relora only; {method}" in err
    assert "train.sharding: none" in err
    assert not any(tmp_path.iterdir())
