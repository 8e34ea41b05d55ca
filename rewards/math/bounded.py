"""Run grading work in worker processes that are killed when they overrun.

Why processes and not ``signal.alarm`` (what math-verify uses): an alarm only fires in the main
thread of the main interpreter, so in a thread, an asyncio executor or a Ray actor it silently
does nothing, and sympy can spin for minutes on a crafted answer. A process can always be killed.

Why not ``multiprocessing``/``concurrent.futures``/``pebble``: their workers are forked (unsafe in
a process that already runs threads, as torch and Ray workers do) or spawned, and spawning
re-imports the caller's ``__main__``; a script that grades at top level without an
``if __name__ == "__main__"`` guard then re-runs itself in every worker, which fails and is
restarted forever. So each worker here is a fresh ``python -m rewards.math._worker`` started with
``subprocess``, talking over a private pipe pair: nothing of the caller is re-imported, and it
works inside daemonic processes (``datasets.map(num_proc=...)``) and Ray actors.

Workers ignore Ctrl-C (the parent handles it), cap their address space so a memory bomb fails
fast, and exit when the parent's pipe closes. The pool is created on first use, shared by every
thread of the process, and re-created after a fork.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

DEFAULT_WORKERS = max(1, min(4, os.cpu_count() or 1))
BURST_FACTOR = 2  # while every worker is stuck, up to this many times as many run for a while
STARTUP_TIMEOUT = 120.0
WORKER_MEMORY_BYTES = 4 * 1024**3


class WorkerTimeout(TimeoutError):
    """The task ran past its time limit; its worker was killed."""


class WorkerDied(RuntimeError):
    """The worker exited mid-task (e.g. it hit its memory limit)."""


class _Worker:
    def __init__(self) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rewards.math._worker",
                str(to_child_r),
                str(from_child_w),
                str(WORKER_MEMORY_BYTES),
            ],  # fmt: skip
            pass_fds=(to_child_r, from_child_w),
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in the terminal goes to the parent only
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self.send = Connection(to_child_w, readable=False)
        self.recv = Connection(from_child_r, writable=False)
        self.ready = False
        self.tasks = 0

    def wait_ready(self) -> None:
        if not self.ready:
            if not self.recv.poll(STARTUP_TIMEOUT) or self.recv.recv() != "ready":
                self.kill()
                raise WorkerDied("a grading worker did not start")
            self.ready = True

    def run(self, fn: Callable[..., Any], args: tuple, timeout: float) -> Any:
        """Send one task and wait for *its* reply. Each task carries a fresh id that the reply
        echoes, and any interruption of the exchange (Ctrl-C, a timeout, a broken pipe) kills the
        worker: a reply left pending in a live worker would be read as the next task's answer."""
        self.tasks += 1
        task_id = self.tasks
        reply_id = status = value = None
        try:
            self.send.send((task_id, fn, args))
            deadline = time.monotonic() + timeout
            while reply_id != task_id and self.recv.poll(max(0.0, deadline - time.monotonic())):
                reply_id, status, value = self.recv.recv()
        except (EOFError, OSError) as err:
            self.kill()
            raise WorkerDied("the grading worker exited mid-task") from err
        except BaseException:
            self.kill()
            raise
        if reply_id != task_id:
            self.kill()
            raise WorkerTimeout(f"grading took longer than {timeout:g} s")
        if status == "error":
            raise RuntimeError(value)
        return value

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for conn in (self.send, self.recv):
            conn.close()


class WorkerPool:
    """Up to ``size`` worker processes; :meth:`run` borrows one for a single task."""

    def __init__(self, size: int = DEFAULT_WORKERS):
        self.size = size
        self._idle: list[_Worker] = []
        self._live: set[_Worker] = set()
        self._starting = 0
        self._cond = threading.Condition()
        self._threads = ThreadPoolExecutor(max_workers=size, thread_name_prefix="assay-grader")

    def run(self, fn: Callable[..., Any], *args: Any, timeout: float) -> Any:
        """``fn(*args)`` in a worker; raises WorkerTimeout after ``timeout`` seconds of running.

        A caller whose wait for a free worker reaches ``timeout`` (other callers' slow tasks hold
        them all) gets an extra worker (up to ``BURST_FACTOR`` times the pool), retired after its
        task; past that it raises WorkerTimeout. So a caller waits about twice ``timeout`` plus a
        worker's start-up at most. ``fn`` must be importable by the worker (a module-level
        function)."""
        worker = self._acquire(deadline=time.monotonic() + timeout)
        try:
            return worker.run(fn, args, timeout)
        finally:
            self._release(worker)

    def map(self, fn: Callable[..., Any], calls: Sequence[tuple], timeout: float) -> list[Any]:
        """Run ``fn(*call)`` for each call, ``size`` at a time; a failed call's slot holds its
        exception instead of a result."""
        futures = [self._threads.submit(self.run, fn, *call, timeout=timeout) for call in calls]
        results = []
        for future in futures:
            try:
                results.append(future.result())
            except Exception as err:
                results.append(err)
        return results

    def warm_up(self) -> None:
        """Start every worker now (each imports sympy, about a second)."""
        workers = [self._acquire() for _ in range(self.size - len(self._live) - self._starting)]
        for worker in workers:
            self._release(worker)

    def _acquire(self, deadline: float | None = None) -> _Worker:
        with self._cond:
            while True:
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive:
                        return worker
                    self._live.discard(worker)
                if len(self._live) + self._starting < self.size:
                    self._starting += 1
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    # Every worker has been busy for a whole time limit (slow answers from other
                    # callers): start an extra one rather than grade this answer False unseen.
                    if len(self._live) + self._starting < self.size * BURST_FACTOR:
                        self._starting += 1
                        break
                    raise WorkerTimeout("no grading worker became free in time (all busy)")
                self._cond.wait(remaining)
        try:
            worker = _Worker()
            worker.wait_ready()
        except Exception:
            with self._cond:
                self._starting -= 1
                self._cond.notify()
            raise
        with self._cond:
            self._starting -= 1
            self._live.add(worker)
        return worker

    def _release(self, worker: _Worker) -> None:
        with self._cond:
            if worker.alive and len(self._live) > self.size:
                self._live.discard(worker)  # an extra worker of a busy spell: retire it
                worker.kill()
                self._cond.notify()
                return
            if worker.alive:
                self._idle.append(worker)
                self._cond.notify()
                return
            self._live.discard(worker)  # killed after a timeout
            self._cond.notify()
        # Start its replacement now, so the next caller does not pay the start-up (sympy's
        # import, about a second) inside its own time limit.
        threading.Thread(target=self._replace, daemon=True, name="assay-grader-start").start()

    def _replace(self) -> None:
        try:
            worker = self._acquire()
        except Exception:  # the next caller will try again and report it
            return
        self._release(worker)

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
        with self._cond:
            for worker in self._live:
                worker.kill()
            self._live.clear()
            self._idle.clear()


_pool: WorkerPool | None = None
_pool_pid: int | None = None
_pool_lock = threading.Lock()


def pool() -> WorkerPool:
    """The process-wide worker pool (created on first use, re-created after a fork)."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = WorkerPool()
            _pool_pid = os.getpid()
        return _pool


def warm_up() -> None:
    """Start the grading workers now rather than at the first slow grade."""
    pool().warm_up()


def shutdown() -> None:
    """Stop the grading workers (also done at interpreter exit)."""
    global _pool
    with _pool_lock:
        if _pool is not None and _pool_pid == os.getpid():
            _pool.close()
        _pool = None


atexit.register(shutdown)
