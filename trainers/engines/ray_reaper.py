"""Tear down the local Ray cluster a driver started when the driver dies without shutting it down.

``ray.init()`` with no cluster to join starts one as the driver's children (GCS, raylet, the
dashboard and log monitors); the raylet starts a ``DashboardAgent`` and a ``RuntimeEnvAgent``. When
the driver is killed (SIGKILL, OOM killer, a lost node) Ray's own clean-up stops the GCS and the
raylet, but on Ray 2.60 the two agents outlive it for good (reparented to init, measured on this
machine). Ray has no option for this, so :func:`watch` starts this file as a small detached
process that remembers every descendant of the cluster's processes while the driver runs, and
once the driver is gone sends SIGTERM, then SIGKILL, to those still alive.

Linux only (it reads ``/proc``); elsewhere :func:`watch` does nothing. It runs as a plain script,
not ``python -m trainers...``, so that it imports nothing of assay (and stays a few MB).

Processes are identified by pid *and* start time, so a pid the OS hands to an unrelated process
after ours exited is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

POLL_S = 1.0
# Ray's own clean-up gets this long after the driver dies before we step in.
GRACE_S = 2.0
# SIGTERM to SIGKILL.
TERM_WAIT_S = 5.0

Proc = tuple[int, int]  # (pid, start time in clock ticks since boot)


def _stat(pid: int) -> tuple[int, int] | None:
    """``(ppid, start time)`` of ``pid``, or None if it is gone (or a zombie)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after the last ')'.
    fields = text[text.rfind(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[19])


def _alive(proc: Proc) -> bool:
    stat = _stat(proc[0])
    return stat is not None and stat[1] == proc[1]


def _children() -> dict[int, list[Proc]]:
    """Every live process on the machine, grouped by parent pid."""
    out: dict[int, list[Proc]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                out.setdefault(stat[0], []).append((int(entry), stat[1]))
    return out


def _descendants(roots: set[Proc]) -> set[Proc]:
    """``roots`` still alive and every live process below them."""
    children = _children()
    found: set[Proc] = set()
    todo = [p for p in roots if _alive(p)]
    while todo:
        proc = todo.pop()
        if proc not in found:
            found.add(proc)
            todo.extend(children.get(proc[0], ()))
    return found


def _signal(procs: set[Proc], sig: int) -> None:
    for proc in procs:
        if _alive(proc):
            with contextlib.suppress(OSError):  # gone meanwhile, or not ours
                os.kill(proc[0], sig)


def reap(driver: Proc, roots: set[Proc], *, poll_s: float = POLL_S) -> None:
    """Remember the descendants of ``roots`` while ``driver`` lives; once it is gone, stop them.
    Returns early if the cluster stops by itself (``ray.shutdown()``) while the driver lives."""
    seen: set[Proc] = set(roots)
    while _alive(driver):
        current = _descendants(seen)
        if not current:
            return
        seen |= current
        time.sleep(poll_s)
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline and _descendants(seen):
        time.sleep(0.2)
    left = _descendants(seen)
    _signal(left, signal.SIGTERM)
    deadline = time.monotonic() + TERM_WAIT_S
    while time.monotonic() < deadline and _descendants(left):
        time.sleep(0.2)
    _signal(_descendants(left), signal.SIGKILL)


def watch(root_pids: list[int]) -> subprocess.Popen | None:
    """Start a detached reaper for the cluster whose top processes are ``root_pids``, on behalf of
    this process. None where there is no ``/proc`` or nothing to watch."""
    if not Path("/proc/self/stat").exists():
        return None
    me = _stat(os.getpid())
    roots = [(pid, stat[1]) for pid in root_pids if (stat := _stat(pid)) is not None]
    if me is None or not roots:
        return None
    args = [str(os.getpid()), str(me[1])] + [f"{pid}:{start}" for pid, start in roots]
    return subprocess.Popen(
        [sys.executable, "-S", str(Path(__file__).resolve()), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        close_fds=True,
        # Its own session: a Ctrl-C or a kill of the driver's process group does not reach it.
        start_new_session=True,
    )


def main(argv: list[str]) -> None:
    driver = (int(argv[0]), int(argv[1]))
    roots = {(int(pid), int(start)) for pid, start in (a.split(":") for a in argv[2:])}
    reap(driver, roots)


if __name__ == "__main__":
    main(sys.argv[1:])
