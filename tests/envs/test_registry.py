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
