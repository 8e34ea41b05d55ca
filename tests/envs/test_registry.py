import pytest

import envs
from assay.errors import ConfigError, EnvNotFound


def test_builtin_env_is_listed():
    assert "codenames-guess-v0" in envs.list_envs()


def test_unknown_env_id_message_names_the_closest_and_the_known_ids():
    with pytest.raises(EnvNotFound) as err:
        envs.make("codenames-gues-v0")
    message = str(err.value)
    assert "No environment is registered as 'codenames-gues-v0'" in message
    assert "Did you mean 'codenames-guess-v0'?" in message
    assert "Known ids: " in message


def test_unknown_env_option_is_a_config_error():
    with pytest.raises(
        ConfigError, match="has no option 'difficulty_level'.*Did you mean 'difficulty'"
    ):
        envs.make("codenames-guess-v0", difficulty_level="far")


def test_register_and_make_a_callable_entry_point():
    class Echo(envs.TextEnv):
        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.name = ["Ada", "Bo", "Cy"][int(self.np_random.integers(3))]
            return [{"role": "user", "content": f"Say hi to {self.name}"}], self.make_info("player")

        def step(self, action):
            ok = action.strip() == "hi"
            info = self.make_info("player", ok, "" if ok else "expected 'hi'")
            return [{"role": "user", "content": "bye"}], float(ok), True, False, info

    envs.register("test-echo-v0", Echo)
    env = envs.make("test-echo-v0")
    env.reset(seed=0)
    assert env.step("hi")[1] == 1.0
    assert all(r.passed for r in envs.check_env(env))


def test_every_text_env_scores_a_batch_as_its_episodes_would_one_by_one():
    """``score_many`` is part of the contract: the default replays each (seed, answer), and
    envs that override it (a judge) must agree with that replay."""
    env = envs.make("codenames-guess-v0")
    answers = [(seed, answer) for seed in (0, 1, 2) for answer in ("Guess: X", "nonsense")]
    by_one = []
    for seed, answer in answers:
        env.reset(seed=seed)
        _, reward, _, _, info = env.step(answer)
        by_one.append((reward, info["valid"], info["reason"]))
    batched = [(r, i["valid"], i["reason"]) for r, i in env.score_many(answers)]
    assert batched == by_one
    assert envs.TextEnv.score_many is type(env).score_many  # inherited, not reimplemented
    game = envs.make("codenames-game-v0")
    with pytest.raises(ConfigError, match="goes on after the first answer"):
        game.score_many([(0, "Clue: ANIMAL 2")])  # not single-turn: refused
