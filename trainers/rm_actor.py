"""Where a reward model runs during RL: in the learner's process, or as a Ray actor.

``reward_scorer(path, device, actor, ...)`` loads a saved ORM/PRM once per process (cached) and
returns an object with the scorer interface that :class:`envs.reward_model.RewardModelEnv` calls
(``kind``, ``format``, ``score_many``, ``score_solutions``).

With ``actor=True`` the model lives in a Ray actor that reserves ``num_gpus`` (a GPU of its own
beside the rollout pool on a cluster; 0 on a CPU) and ``num_cpus``; :class:`RemoteScorer` forwards
each batched call to it, so one scoring request per RL step crosses the process boundary.
"""

from __future__ import annotations

from typing import Any

from assay.errors import ConfigError


class _ScorerActor:
    """Body of the reward-model actor (wrapped by ``ray.remote`` on start)."""

    def __init__(self, path: str, device: str, batch_size: int | None, threads: int):
        import torch

        from rewards.rm import load_reward_model

        torch.set_num_threads(max(1, threads))
        self.model = load_reward_model(path, device=device)
        self.model.batch_size = batch_size

    def describe(self) -> tuple[str, Any]:
        return self.model.kind, self.model.format

    def score_many(self, pairs):
        return self.model.score_many(pairs)

    def score_solutions(self, pairs):
        return self.model.score_solutions(pairs)


CALL_TIMEOUT_S = 600.0
"""Longest a batch may take to score before the run stops with an error (not a hang)."""


class RemoteScorer:
    """The scorer interface, answered by a Ray actor. A dead actor is restarted by Ray (up to
    ``max_restarts`` times) and its call retried; a call that takes over ``timeout`` seconds
    raises instead of hanging the run."""

    def __init__(
        self,
        path: str,
        device: str,
        batch_size: int | None,
        num_gpus: float,
        num_cpus: float,
        timeout: float = CALL_TIMEOUT_S,
        max_restarts: int = 3,
    ):
        try:
            import ray
        except ImportError as err:
            raise ConfigError("reward_model.actor needs Ray: pip install 'ray>=2.40'.") from err
        if not ray.is_initialized():
            ray.init(include_dashboard=False, log_to_driver=False)
        self._ray, self.timeout = ray, timeout
        remote = ray.remote(
            num_gpus=num_gpus,
            num_cpus=num_cpus,
            max_restarts=max_restarts,
            max_task_retries=max_restarts,
        )(_ScorerActor)
        self.actor = remote.remote(path, device, batch_size, max(1, int(num_cpus)))
        self.kind, self.format = self._get(self.actor.describe.remote())

    def _get(self, ref):
        try:
            return self._ray.get(ref, timeout=self.timeout)
        except self._ray.exceptions.GetTimeoutError:
            raise TimeoutError(
                f"The reward-model actor did not answer within {self.timeout:.0f} s."
            ) from None

    def score_many(self, pairs):
        return self._get(self.actor.score_many.remote(list(pairs)))

    def score_solutions(self, pairs):
        return self._get(self.actor.score_solutions.remote(list(pairs)))

    def close(self) -> None:
        self._ray.kill(self.actor)


_SCORERS: dict[tuple, Any] = {}


def reward_scorer(
    path: str,
    device: str = "cpu",
    batch_size: int | None = None,
    actor: bool = False,
    num_gpus: float = 0.0,
    num_cpus: float = 1.0,
):
    """The reward model at ``path``, local or behind a Ray actor; loaded once per process (the
    training and evaluation envs share it) until :func:`close_scorers`."""
    key = (str(path), device, batch_size, actor, num_gpus, num_cpus)
    if key not in _SCORERS:
        if actor:
            _SCORERS[key] = RemoteScorer(path, device, batch_size, num_gpus, num_cpus)
        else:
            from rewards.rm import load_reward_model

            model = load_reward_model(path, device=device)
            model.batch_size = batch_size
            _SCORERS[key] = model
    return _SCORERS[key]


def close_scorers() -> None:
    """Free every reward model loaded by :func:`reward_scorer`; actors give their CPUs and GPUs
    back to Ray (a run's end must not leave them holding resources)."""
    for scorer in _SCORERS.values():
        if isinstance(scorer, RemoteScorer):
            scorer.close()
    _SCORERS.clear()
