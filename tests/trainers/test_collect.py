"""assay rollout: a dataset of trajectories with rewards, written in resumable shards."""

import json

import datasets

import envs
from assay.cli import main
from assay.models import load_tokenizer_and_dir
from trainers.collect import collect_rollouts
from trainers.engines.base import Sampling
from trainers.engines.hf import HFEngine


def test_rollouts_become_a_dataset_and_resume_from_shards(tmp_path, tiny_lm):
    model, tokenizer = tiny_lm
    engine = HFEngine(model, tokenizer)
    make = lambda: envs.make("math-gsm8k-v0", split="test")  # noqa: E731
    sampling = Sampling(temperature=1.0, max_new_tokens=4, seed=0)
    ds = collect_rollouts(engine, make, tokenizer, tmp_path, n=5, samples=2, sampling=sampling,
                          shard_size=2)  # fmt: skip
    assert len(ds) == 10 and sorted({r for r in ds["seed"]}) == [0, 1, 2, 3, 4]
    assert {"prompt", "completion", "reward", "token_ids", "train_mask"} <= set(ds.column_names)
    row = ds[0]
    assert row["prompt"][-1]["role"] == "user" and row["agent"] == "solver"
    assert json.loads(row["info"])["gold"] == make().reset(seed=row["seed"])[1]["gold"]
    assert len(row["token_ids"]) == len(row["train_mask"]) == len(row["logprobs"])
    assert len(list((tmp_path / "shards").iterdir())) == 3

    # An interrupted run: drop the last shard, run again, only that shard is played again.
    import shutil

    shutil.rmtree(tmp_path / "shards" / "00002")
    calls = []

    class Counting(HFEngine):
        def generate(self, prompts, sampling):
            calls.append(len(prompts))
            return super().generate(prompts, sampling)

    again = collect_rollouts(Counting(model, tokenizer), make, tokenizer, tmp_path, n=5,
                             samples=2, sampling=sampling, shard_size=2)  # fmt: skip
    assert calls == [2]  # seed 4 x 2 samples, one turn
    assert again["completion"] == ds["completion"]
    assert datasets.load_from_disk(str(tmp_path / "dataset"))["reward"] == ds["reward"]


def test_the_rollout_command(tmp_path, capsys):
    code = main(
        ["rollout", "--model", "tiny-random-llama", "--env", "codenames-guess-v0", "--n", "3",
         "--samples", "2", "--max-new-tokens", "4", "--out", str(tmp_path), "difficulty=far"]
    )  # fmt: skip
    assert code == 0
    ds = datasets.load_from_disk(str(tmp_path / "dataset"))
    assert len(ds) == 6 and set(ds["reward"]) == {-1.0}  # a random model never answers in form
    assert "6 rows (contexts)" in capsys.readouterr().out
    # The env's prompt holds a solved example turn (an assistant message): the row's prompt is
    # the whole observation and its completion only what the policy wrote.
    tokenizer = load_tokenizer_and_dir("tiny-random-llama")[0]
    for row in ds:
        observation = envs.make("codenames-guess-v0", difficulty="far").reset(seed=row["seed"])[0]
        assert any(m["role"] == "assistant" for m in observation)
        assert row["prompt"] == observation
        policy = [t for t, m in zip(row["token_ids"], row["train_mask"], strict=True) if m]
        assert row["completion"] == tokenizer.decode(policy, skip_special_tokens=True)


def test_bad_env_options_fail_before_loading(tmp_path, capsys):
    code = main(["rollout", "--env", "codenames-guess-v0", "--out", str(tmp_path), "difficulty=x"])
    assert code == 2 and "difficulty must be one of" in capsys.readouterr().err


def test_resuming_with_other_settings_is_refused(tmp_path, tiny_lm):
    import pytest

    from assay.errors import ConfigError

    model, tokenizer = tiny_lm
    engine = HFEngine(model, tokenizer)
    make = lambda: envs.make("math-gsm8k-v0", split="test")  # noqa: E731
    sampling = Sampling(temperature=1.0, max_new_tokens=2, seed=0)
    collect_rollouts(engine, make, tokenizer, tmp_path, n=2, samples=1, sampling=sampling)
    with pytest.raises(ConfigError, match=r"other settings \(n\)"):
        collect_rollouts(engine, make, tokenizer, tmp_path, n=3, samples=1, sampling=sampling)


def test_tensor_parallel_hf_rollouts_are_refused_in_one_sentence(tmp_path, capsys):
    code = main(["rollout", "--env", "codenames-guess-v0", "--out", str(tmp_path),
                 "--model", "tiny-random-llama", "--tensor-parallel-size", "2"])  # fmt: skip
    assert (
        code == 2 and "--tensor-parallel-size > 1 needs --backend vllm" in capsys.readouterr().err
    )


def test_a_gpu_pool_without_a_gpu_is_refused_in_one_sentence(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)  # a machine without a GPU
    code = main(["rollout", "--env", "codenames-guess-v0", "--out", str(tmp_path), "--model",
                 "tiny-random-llama", "--replicas", "2", "--device", "cuda"])  # fmt: skip
    assert code == 2 and "--device cuda, but no GPU is visible" in capsys.readouterr().err


def test_codenames_games_with_scripted_seats_give_a_row_per_turn(tmp_path, capsys):
    """The full game shows a fresh board each turn: one row per turn of the model's red seats,
    none for blue's scripted agents, and each row carries its seat's game result."""
    code = main(
        ["rollout", "--model", "tiny-random-llama", "--env", "codenames-game-v0", "--n", "2",
         "--max-new-tokens", "6", "--temperature", "1.0", "--seat", "blue/*=random",
         "--out", str(tmp_path)]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    ds = datasets.load_from_disk(str(tmp_path / "dataset"))
    assert set(ds["agent"]) <= {"red/spymaster", "red/operative"} and set(ds["turns"]) == {1}
    assert len(ds) > 2  # several turns per game
    assert any(json.loads(r)["winner"] in ("red", "blue") for r in ds["info"])  # played out
    for row in ds:
        final = json.loads(row["info"])
        if final["winner"] in ("red", "blue"):
            assert row["reward"] == (1.0 if final["winner"] == "red" else -1.0)
        assert row["prompt"][0]["role"] == "system" and "Board:" in row["prompt"][-1]["content"]
    manifest = json.loads((tmp_path / "rollout.json").read_text())
    assert manifest["seats"] == {"blue/*": "random"}
    # The same folder with other seats is not mixed in.
    again = main(["rollout", "--model", "tiny-random-llama", "--env", "codenames-game-v0",
                  "--n", "2", "--max-new-tokens", "6", "--temperature", "1.0",
                  "--seat", "blue/*=embedding", "--out", str(tmp_path)])  # fmt: skip
    assert again == 2 and "seats" in capsys.readouterr().err


def test_seats_that_cannot_be_played_are_refused_in_one_sentence(tmp_path, capsys, monkeypatch):
    # "no-such-model" would fail to load: the seats are checked before any model loads.
    base = ["rollout", "--model", "no-such-model", "--env", "codenames-game-v0", "--n", "1",
            "--out", str(tmp_path)]  # fmt: skip
    assert main([*base, "--seat", "green/*=random"]) == 2
    assert "matches no agent; agents: red/spymaster" in capsys.readouterr().err
    assert main([*base, "--seat", "*=random"]) == 2
    assert "every agent is played by a scripted agent" in capsys.readouterr().err
    assert main([*base, "--seat", "blue/*"]) == 2
    assert "--seat takes AGENT=WHO" in capsys.readouterr().err
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # "random" is no model either, and no hub here
    assert main(["rollout", "--model", "tiny-random-llama", "--env", "math-gsm8k-v0", "--n", "1",
                 "--seat", "solver=random", "--out", str(tmp_path / "m")]) == 2  # fmt: skip
    assert "not one of the env's scripted agents (none), and not a model" in (
        capsys.readouterr().err)  # fmt: skip


def test_a_model_seat_plays_and_is_recorded_and_a_foreign_tokenizer_is_refused(tmp_path, tiny_lm):
    import copy

    import pytest

    from assay.errors import ConfigError
    from trainers.collect import seat_policies

    model, tokenizer = tiny_lm
    env = envs.make("codenames-game-v0")
    frozen = HFEngine(copy.deepcopy(model), tokenizer)
    closed = []

    class Closing(HFEngine):
        def close(self):
            closed.append(True)

    seats, opened = seat_policies({"blue/*": "frozen"}, env, tokenizer,
                                  lambda name: (frozen, tokenizer))  # fmt: skip
    assert seats == {"blue/*": frozen} and opened == [frozen]
    sampling = Sampling(temperature=1.0, max_new_tokens=6, seed=0)
    ds = collect_rollouts(HFEngine(model, tokenizer), lambda: envs.make("codenames-game-v0"),
                          tokenizer, tmp_path, n=1, samples=1, sampling=sampling, seats=seats,
                          seat_names={"blue/*": "frozen"})  # fmt: skip
    assert {a.split("/")[0] for a in ds["agent"]} == {"red", "blue"}  # both engines' turns kept

    other = copy.deepcopy(tokenizer)
    other.chat_template = "{{ messages[0]['content'] }}"
    with pytest.raises(ConfigError, match="tokenizer or chat template differs"):
        seat_policies({"blue/*": "other"}, env, tokenizer,
                      lambda name: (Closing(model, other), other))  # fmt: skip
    assert closed == [True]


def test_scripted_seats_are_seeded_per_episode_so_a_resumed_run_plays_the_same(tmp_path, tiny_lm):
    import shutil

    from trainers.collect import seat_policies

    model, tokenizer = tiny_lm
    make = lambda: envs.make("codenames-game-v0")  # noqa: E731
    sampling = Sampling(temperature=1.0, max_new_tokens=6, seed=0)

    def play():
        seats, _ = seat_policies({"blue/*": "random"}, make(), tokenizer, None)
        return collect_rollouts(HFEngine(model, tokenizer), make, tokenizer, tmp_path, n=2,
                                samples=1, sampling=sampling, shard_size=1, seats=seats,
                                seat_names={"blue/*": "random"})  # fmt: skip

    first = play()
    shutil.rmtree(tmp_path / "shards" / "00001")  # the second game is played again, alone
    again = play()
    assert again["info"] == first["info"] and again["completion"] == first["completion"]


def test_a_star_seat_wins_over_the_main_model_and_failed_seats_close_their_engines(
    tmp_path, capsys, tiny_lm
):
    import pytest

    from assay.errors import ConfigError
    from trainers.collect import seat_policies

    code = main(["rollout", "--model", "tiny-random-llama", "--env", "codenames-game-v0",
                 "--n", "1", "--max-new-tokens", "6", "--seat", "red/spymaster=tiny-random-llama",
                 "--seat", "*=random", "--out", str(tmp_path)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    ds = datasets.load_from_disk(str(tmp_path / "dataset"))
    assert set(ds["agent"]) == {"red/spymaster"}  # every other seat scripted

    model, tokenizer = tiny_lm
    closed = []

    class Closing(HFEngine):
        def close(self):
            closed.append(True)

    def open_model(name):
        if name == "broken":
            raise ConfigError("cannot load")
        return Closing(model, tokenizer), tokenizer

    with pytest.raises(ConfigError, match="blue/\\* *=broken: not one of the env's scripted"):
        seat_policies({"red/*": "fine", "blue/*": "broken"}, envs.make("codenames-game-v0"),
                      tokenizer, open_model)  # fmt: skip
    assert closed == [True]  # the first seat's engine


def test_a_rollout_folder_is_never_resumed_by_another_policy(tmp_path, capsys):
    common = ["rollout", "--env", "codenames-guess-v0", "--n", "2", "--max-new-tokens", "3",
              "--shard-size", "1", "--out", str(tmp_path), "difficulty=far"]  # fmt: skip
    assert main([*common, "--model", "tiny-random-llama"]) == 0
    manifest = json.loads((tmp_path / "rollout.json").read_text())
    assert manifest["policy"]["model"] == "tiny-random-llama"
    assert len(manifest["policy"]["weights"]) == 16  # a hash of the weight files
    capsys.readouterr()
    # the same command resumes; another dtype or model is refused before any shard is mixed
    assert main([*common, "--model", "tiny-random-llama"]) == 0
    shards = sorted(p.name for p in (tmp_path / "shards").iterdir())
    assert main([*common, "--model", "tiny-random-llama", "--dtype", "bfloat16"]) != 0
    assert "other settings (policy)" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == shards


def test_the_weights_fingerprint_follows_the_weights(tmp_path):
    from tiny_llama import tiny_llama

    from assay.models import weights_fingerprint

    tiny_llama(seed=0).save_pretrained(tmp_path / "a")
    tiny_llama(seed=1).save_pretrained(tmp_path / "b")
    tiny_llama(seed=0).save_pretrained(tmp_path / "c")
    a, b, c = (weights_fingerprint(str(tmp_path / x)) for x in "abc")
    assert a == c and a != b
