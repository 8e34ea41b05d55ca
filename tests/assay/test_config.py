from pathlib import Path

import pytest

from assay.config import load_config, parse_overrides
from assay.errors import ConfigError
from trainers.rl.config import RLConfig

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))
# pretrain_*.yaml configure `assay pretrain`, study_*.yaml `assay study`, sft_*.yaml and
# rft_*.yaml `assay train sft` and `rft`; the rest `assay train rl`.
RL_CONFIGS = [p for p in CONFIGS if not p.name.startswith(("pretrain", "study", "sft", "rft"))]


def _config_class(path: Path):
    from analysis.study import StudyConfig
    from pretraining.config import PretrainConfig
    from trainers.rft import RFTConfig
    from trainers.sft_job import SFTConfig

    if path.name.startswith("rft"):
        return RFTConfig
    if path.name.startswith("study"):
        return StudyConfig
    if path.name.startswith("sft"):
        return SFTConfig
    return PretrainConfig if path.name.startswith("pretrain") else RLConfig


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads_and_starts_with_its_command(path):
    load_config(_config_class(path), path)
    assert path.read_text().splitlines()[0].startswith("# assay ")


def test_overrides_set_nested_typed_values():
    config = load_config(
        RLConfig,
        overrides=[
            "optim.lr=1e-5",
            "algo.group_size=4",
            "env.kwargs.n_targets=[2, 3]",
            "train.max_minutes=null",
        ],
    )
    assert config.optim.lr == 1e-5 and isinstance(config.optim.lr, float)
    assert config.algo.group_size == 4
    assert config.env.kwargs == {"n_targets": [2, 3]}
    assert config.train.max_minutes is None


def test_unknown_key_names_the_key_and_suggests():
    with pytest.raises(ConfigError) as err:
        load_config(RLConfig, overrides=["train.stpes=3"])
    message = str(err.value)
    assert "train.stpes: unknown key. Did you mean 'steps'?" in message
    assert "Allowed keys: steps," in message


def test_keys_of_the_old_rollout_section_are_refused_with_their_new_names(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text("rollout:\n  backend: vllm\n  multi_turn: true\n  colour: red\n")
    with pytest.raises(ConfigError) as err:
        load_config(RLConfig, old)
    message = str(err.value)
    assert "3 config problem(s)" in message
    assert "rollout.backend is now engines.backend" in message
    assert "rollout.multi_turn is now episodes.multi_turn" in message
    assert "rollout.colour: unknown key (rollout was split into engines and episodes)" in message
    with pytest.raises(ConfigError, match=r"rollout\.max_turns is now episodes\.max_turns"):
        load_config(RLConfig, overrides=["rollout.max_turns=4"])
    moved = load_config(RLConfig, overrides=["engines.backend=vllm", "episodes.max_turns=4"])
    assert (moved.engines.backend, moved.episodes.max_turns) == ("vllm", 4)


def test_all_problems_are_reported_together():
    with pytest.raises(ConfigError) as err:
        load_config(
            RLConfig,
            overrides=[
                "algo.group_size=eight",
                "model.dtype=float16",
                "sampling.temperature=0",
                "nope=1",
            ],
        )
    message = str(err.value)
    assert message.startswith("4 config problem(s)")
    assert "algo.group_size: expected int, got 'eight' (str)" in message
    assert "model.dtype: got 'float16'; allowed values: 'float32', 'bfloat16'" in message
    assert "sampling.temperature must be > 0" in message
    assert "nope: unknown key" in message


def test_bool_is_not_an_int_and_int_is_a_float():
    with pytest.raises(ConfigError, match="expected int, got True"):
        load_config(RLConfig, overrides=["algo.group_size=true"])
    assert load_config(RLConfig, overrides=["optim.lr=1"]).optim.lr == 1.0


def test_malformed_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [steps: 3\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(RLConfig, bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(RLConfig, tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not of the form dotted.key=value"):
        parse_overrides(["train.steps"])


def test_range_checks_and_cross_field_seed_budget():
    with pytest.raises(ConfigError) as err:
        load_config(
            RLConfig,
            overrides=[
                "train.keep_checkpoints=0",
                "eval.batch_size=0",
                "sampling.temperature=.nan",
                "train.steps=600000",
            ],
        )
    message = str(err.value)
    assert "train.keep_checkpoints must be >= 1" in message
    assert "eval.batch_size must be >= 1" in message
    assert "sampling.temperature must be > 0" in message
    assert "train.steps * algo.prompts_per_step" in message and "<= 10**6" in message


def test_string_fields_accept_yaml_dates_and_numbers():
    assert (
        load_config(RLConfig, overrides=["train.run_name=2024-01-01"]).train.run_name
        == "2024-01-01"
    )
    assert load_config(RLConfig, overrides=["train.run_name=42"]).train.run_name == "42"


def test_every_shipped_config_loads_and_builds_its_envs():
    """configs/*.yaml stay valid as the config grows: types, ranges, env options, eval options."""
    import envs
    from trainers.rl.evaluation import eval_env
    from trainers.rl.job import EnvSchedule

    assert len(RL_CONFIGS) >= 6
    for path in RL_CONFIGS:
        config = load_config(RLConfig, path)
        EnvSchedule(config)
        eval_env(config)
        assert config.env.id in envs.list_envs()
