"""Off-policy rollouts (``engines.off_policy: true``): step t+1's samples are generated in the
background while step t trains, so each step trains on samples from weights one step older;
truncated importance weights (``engines.is_cap``) correct for the lag. Wraps either rollout
strategy; the engine holds its own copy of the weights, synced once a background rollout ends.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from trainers.rl.samples import Samples


class OffPolicyRollout:
    """``collect(env, step, next_env)`` returns the samples prefetched for ``step`` (generated
    now if none were), syncs the engine, and starts generating ``step + 1`` on ``next_env``."""

    engine_busy = True  # a background rollout may be using the engine

    def __init__(self, inner, sync_weights: Callable[[], float], last_step: int):
        self.inner, self.sync_weights, self.last_step = inner, sync_weights, last_step
        self.micro_batch_tokens = inner.micro_batch_tokens
        self.seats = inner.seats
        self.synced_s = 0.0  # the sync before this step's update
        self._background = ThreadPoolExecutor(max_workers=1)
        self._next: Future | None = None

    def collect(self, env, step: int, next_env=None) -> Samples:
        pending = self._next or self._background.submit(self.inner.collect, env, step)
        self._next = None
        samples = pending.result()
        self.synced_s = self.sync_weights()  # the engine is idle now: the current weights
        if step < self.last_step:  # no rollout for a step that will not run
            following = next_env if next_env is not None else env
            self._next = self._background.submit(self.inner.collect, following, step + 1)
        return samples

    def finish(self) -> None:
        """Wait for a background rollout (before evaluation or the end)."""
        if self._next is not None:
            pending, self._next = self._next, None
            pending.result()

    def close(self) -> None:
        """Stop the background rollout (its result is dropped). Safe to call while another
        error is on its way out: failures here do not hide it."""
        try:
            if self._next is not None:
                pending, self._next = self._next, None
                if not pending.cancel():  # already running: wait; its error is moot now
                    pending.exception()
            self._background.shutdown()
        finally:
            self.inner.close()
