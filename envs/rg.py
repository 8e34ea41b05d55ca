"""reasoning-gym's procedural tasks as assay envs: ``rg/<dataset>-v0`` for every dataset it
registers (``pip install reasoning-gym``; loaded only when such an env is listed or made).

One episode is one task entry: episode seed ``s`` is entry ``s % size`` of
``reasoning_gym.create_dataset(dataset, seed=rg_seed, size=size, **config)``, so the same seed is
the same problem as reasoning-gym generates it, and the env's other options are the dataset's own
config fields. The prompt is reasoning-gym's system prompt (``system_prompt``, default
``default``) and the question; the reward is the dataset's own ``score_answer`` of the text
inside the answer's last ``<answer>...</answer>`` (reasoning-gym's ``extract_answer``), 0 without one.
"""

from __future__ import annotations

from typing import Any

from assay.errors import ConfigError
from envs.core import TextEnv

PREFIX, SUFFIX = "rg/", "-v0"


def _gym():
    try:
        import reasoning_gym
    except ImportError:
        raise ConfigError(
            "rg/* envs need reasoning-gym: pip install 'assay[gyms]' (or reasoning-gym)."
        ) from None
    return reasoning_gym


def dataset_names() -> list[str]:
    """Every dataset reasoning-gym registers ([] when it is not installed)."""
    try:
        from reasoning_gym.factory import DATASETS
    except ImportError:
        return []
    return sorted(DATASETS)


class ReasoningGymEnv(TextEnv):
    """One reasoning-gym task entry per episode, scored by the dataset's own ``score_answer``."""

    metric_keys = ("answered",)
    possible_agents = ("solver",)

    def __init__(
        self,
        dataset: str,
        rg_seed: int = 0,
        size: int = 100_000,
        system_prompt: str = "default",
        **config: Any,
    ):
        super().__init__()
        gym = _gym()
        from reasoning_gym.factory import DATASETS
        from reasoning_gym.utils import SYSTEM_PROMPTS

        if dataset not in DATASETS:
            raise ConfigError(f"reasoning-gym has no dataset {dataset!r}.")
        if system_prompt not in SYSTEM_PROMPTS:
            raise ConfigError(
                f"system_prompt must be one of {', '.join(SYSTEM_PROMPTS)}, got {system_prompt!r}."
            )
        if size < 1:
            raise ConfigError(f"size must be >= 1, got {size}.")
        try:
            self.data = gym.create_dataset(dataset, seed=rg_seed, size=size, **config)
        except (TypeError, ValueError, AssertionError) as err:
            fields = [
                f for f in DATASETS[dataset][1].__dataclass_fields__ if f not in ("seed", "size")
            ]
            raise ConfigError(
                f"rg/{dataset}-v0: {err or 'invalid option'}. Its options are: rg_seed, size, "
                f"system_prompt, {', '.join(fields)}."
            ) from None
        self.dataset, self.size = dataset, size
        self.system = SYSTEM_PROMPTS[system_prompt]
        self._entry: dict[str, Any] | None = None
        self._messages: list[dict[str, str]] = []
        self._index = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._index = (
            seed % self.size if seed is not None else int(self.np_random.integers(self.size))
        )
        self._entry = self.data[self._index]
        self._messages = [
            {"role": "system", "content": self.system},
            {"role": "user", "content": self._entry["question"]},
        ]
        return list(self._messages), self._info()

    def step(self, action: str):
        if self._entry is None:
            raise ConfigError("call reset() before step().")
        from reasoning_gym.utils import extract_answer

        answer = extract_answer(action)
        try:
            reward = float(self.data.score_answer(answer, self._entry))
        except Exception as err:  # a scorer that chokes on odd text scores it 0
            reward, answer = 0.0, None
            reason = f"the dataset's scorer failed: {type(err).__name__}"
        else:
            reason = "" if answer is not None else "no <answer>...</answer> in the answer"
        info = self._info(
            valid=answer is not None, reason=reason, answered=float(answer is not None)
        )
        transcript = self._messages + [{"role": "assistant", "content": action}]
        return transcript, reward, True, False, info

    def _info(self, valid: bool = True, reason: str = "", **extra: Any) -> dict[str, Any]:
        return self.make_info("solver", valid, reason, gold=str(self._entry["answer"]),
                              index=self._index, **extra)  # fmt: skip
