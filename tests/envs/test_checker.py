import pytest

import envs


# Other test modules register throwaway "test-*" envs, and rg/ and ta/ envs come from other
# libraries (tests/envs/test_rg.py, test_ta.py); only the shipped ones are checked here,
# whatever order pytest collects the modules in.
@pytest.mark.parametrize(
    "env_id",
    [e for e in envs.list_envs() if envs.spec(e).source == "assay" and not e.startswith("test-")],
)
def test_every_registered_env_passes_the_checker(env_id):
    results = envs.check_env(envs.make(env_id))
    assert [r for r in results if not r.passed] == []


class _Fragile(envs.TextEnv):
    """Breaks the contract twice: ignores the seed and crashes on text it cannot parse."""

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        import random

        return [{"role": "user", "content": str(random.random())}], self.make_info("p")

    def step(self, action):
        value = int(action)  # crashes on text
        return (
            [{"role": "user", "content": "x"}],
            float(value),
            True,
            False,
            self.make_info("p", False),
        )


def test_checker_reports_each_broken_rule():
    results = {r.name: r for r in envs.check_env(_Fragile())}
    assert not results["check_seed_determinism"].passed
    assert "reset(seed=123) twice" in results["check_seed_determinism"].message
    assert not results["check_invalid_actions"].passed
    assert "raised ValueError" in results["check_invalid_actions"].message
    assert results["check_observation_format"].passed


class _Silent(envs.TextEnv):
    """Seeded and robust, but rejects answers without saying why."""

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        n = int(self.np_random.integers(100))
        return [{"role": "user", "content": f"Say {n}"}], self.make_info("p")

    def step(self, action):
        return [{"role": "user", "content": "x"}], -1.0, True, False, self.make_info("p", False)


def test_checker_requires_a_reason_for_invalid_actions():
    results = {r.name: r for r in envs.check_env(_Silent())}
    assert results["check_seed_determinism"].passed
    assert not results["check_invalid_actions"].passed
    assert "is invalid without a reason" in results["check_invalid_actions"].message
