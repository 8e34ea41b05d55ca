"""The sharded learner (train.sharding: fsdp, PyTorch's FSDP2) on two gloo processes trains
exactly like one unsharded process on the same data, while each rank holds about half of the
parameters, gradients and optimizer state."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainers.distributed import World

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from dist_fsdp import VARIANTS, run  # noqa: E402
from dist_update import torchrun as _torchrun  # noqa: E402


@pytest.fixture(scope="module")
def one_process():
    """The unsharded single-process update of each variant (computed once per variant)."""
    cache = {}

    def get(variant):
        if variant not in cache:
            cache[variant] = run(World(), variant, sharded=False)[:3]
        return cache[variant]

    return get


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_two_fsdp_ranks_equal_one_process(tmp_path, variant, one_process):
    done = _torchrun([str(HERE / "dist_fsdp.py"), str(tmp_path / "out"), variant])
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"out.rank{r}.pt", weights_only=False) for r in (0, 1)]
    two = ranks[0]
    stats, grads, weights = one_process(variant)
    assert two["world"] == 2
    for key in ("loss", "grad_norm"):
        assert two["stats"][key] == pytest.approx(stats[key], rel=1e-5, abs=1e-7), key
    assert stats["grad_norm"] > 0
    assert two["grads"].keys() == grads.keys()
    for key, value in grads.items():
        torch.testing.assert_close(two["grads"][key], value, atol=1e-7, rtol=1e-4)
    # AdamW's first step is about lr * sign(g): a gradient of ~1e-9 whose float32 rounding
    # differs can move a weight by a few percent of lr (1e-3); a real error moves it by ~lr.
    for key, value in weights.items():
        torch.testing.assert_close(two["weights"][key], value, atol=5e-5, rtol=1e-4)
    # Weight sync, one gathered tensor at a time: each rank's engine computes the learner's
    # log-probs (LoRA: the adapters merged in).
    assert all(rank["engine_gap"] < 1e-5 for rank in ranks)
    if variant == "grpo-kl":  # each rank holds its half of every sharded tensor
        whole = sum(g.numel() * g.element_size() for g in grads.values())  # tied: counted once
        for rank in ranks:
            held = rank["bytes"]
            assert 0.45 * whole <= held["params"] <= 0.55 * whole
            assert 0.45 * whole <= held["grads"] <= 0.55 * whole
            assert 0.9 * whole <= held["optimizer"] <= 1.1 * whole  # AdamW: two moments


def test_sharding_refuses_a_model_it_cannot_cut():
    from assay.sharding import decoder_layers

    with pytest.raises(ValueError, match="names no decoder layer class"):
        decoder_layers(torch.nn.Sequential(torch.nn.Linear(2, 2)))


def test_a_sharded_checkpoint_resumes_exactly_on_two_ranks_and_on_one(tmp_path):
    """Saved after step 1 by two ranks (each writes its optimizer shards), then step 2 three
    ways: straight on, resumed on two ranks, resumed by one unsharded process. The policy in
    the checkpoint is a plain transformers folder with the trained model's logits."""
    from transformers import AutoModelForCausalLM

    script, run_dir = str(HERE / "dist_fsdp.py"), tmp_path / "run"
    done = _torchrun([script, str(tmp_path / "straight"), "grpo-kl", "save", str(run_dir)])
    assert done.returncode == 0, done.stderr[-3000:]
    straight = torch.load(tmp_path / "straight.rank0.pt", weights_only=False)["stats"]
    checkpoint = run_dir / "checkpoints" / "step-000001"
    assert sorted(p.name for p in (checkpoint / "optimizer").glob("*.distcp")) == [
        "__0_0.distcp", "__1_0.distcp"]  # fmt: skip
    done = _torchrun([script, str(tmp_path / "resumed"), "grpo-kl", "resume", str(run_dir)])
    assert done.returncode == 0, done.stderr[-3000:]
    two = torch.load(tmp_path / "resumed.rank0.pt", weights_only=False)["stats"]
    one = run(World(), "grpo-kl", sharded=False, resume=run_dir)[0]
    for key in ("loss", "grad_norm", "kl", "ratio_mean"):
        assert two[key] == pytest.approx(straight[key], rel=1e-5, abs=1e-7), key
        assert one[key] == pytest.approx(straight[key], rel=1e-5, abs=1e-7), key
    assert straight["kl"] > 0  # step 2 starts away from the reference: the state mattered
    exported = AutoModelForCausalLM.from_pretrained(checkpoint)
    trained = run(World(), "grpo-kl", sharded=False)[3].model  # step 1 on the same batch
    ids = torch.tensor([[1, 5, 9, 200, 3000, 17]])
    with torch.no_grad():
        torch.testing.assert_close(exported(ids).logits, trained(ids).logits, atol=1e-5, rtol=1e-5)


def test_a_checkpoint_index_that_would_run_code_is_refused(tmp_path):
    import os as os_module
    import pickle

    from assay.errors import CheckpointError
    from trainers.rl.checkpoint import SafeReader

    class Payload:
        def __reduce__(self):
            return (os_module.system, ("touch " + str(tmp_path / "pwned"),))

    (tmp_path / "optimizer").mkdir()
    (tmp_path / "optimizer" / ".metadata").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(CheckpointError, match="will not load it"):
        SafeReader(tmp_path / "optimizer").read_metadata()
    assert not (tmp_path / "pwned").exists()


def test_assay_train_rl_shards_over_two_processes_and_resumes_on_one(tmp_path):
    config = HERE.parents[1] / "configs" / "codenames_guess.yaml"
    args = [sys.executable, "-m", "assay.cli", "train", "rl", "--nproc", "2", "--config",
            str(config), "model.name=tiny-random-llama", "train.steps=2", "algo.group_size=2",
            "algo.prompts_per_step=2", "sampling.max_new_tokens=4", "algo.kl_coef=0.05",
            f"train.output_dir={tmp_path}", "train.run_name=fsdp", "eval.episodes=2",
            "eval.every=1", "train.sharding=fsdp"]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "fsdp"
    checkpoint = run_dir / "checkpoints" / "step-000002"
    assert len(list((checkpoint / "optimizer").glob("*.distcp"))) == 2  # one file per rank
    assert (run_dir / "checkpoints" / "best" / "model.safetensors").exists()
    resume = [sys.executable, "-m", "assay.cli", "train", "rl", "--resume", str(run_dir),
              "train.steps=3", "train.sharding=none"]  # fmt: skip
    done = subprocess.run(resume, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Resuming" in done.stdout
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").open()]
    assert steps == [1, 2, 3]
