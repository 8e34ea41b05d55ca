"""A local Ray cluster started by a driver goes down with the driver, even a SIGKILLed one (Ray
2.60 leaves its DashboardAgent and RuntimeEnvAgent running), and nothing else is touched."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="Linux /proc")

# A stand-in for a cluster: a "root" process whose child moves to its own session, as Ray's
# agents outlive the raylet. The driver starts it, starts the reaper for it and waits.
FAKE_DRIVER = """
import json, subprocess, sys, time
from trainers.engines import ray_reaper
child = "import subprocess, time; subprocess.Popen(['sleep', '300'], start_new_session=True); time.sleep(300)"
if sys.argv[1] == "shutdown":
    child = "import time; time.sleep(300)"
root = subprocess.Popen([sys.executable, "-c", child])
time.sleep(1.0)
reaper = ray_reaper.watch([root.pid])
print(json.dumps({"root": root.pid, "reaper": reaper.pid}), flush=True)
if sys.argv[1] == "shutdown":
    root.kill(); root.wait()
time.sleep(300)
"""

RAY_DRIVER = """
import json, os, time
import ray
from trainers.engines.cluster import init_ray
init_ray(ray, None, ())
@ray.remote
def pid():
    return os.getpid()
print(json.dumps({"worker": ray.get(pid.remote())}), flush=True)
time.sleep(300)
"""


def _state(pid: int) -> str | None:
    """The /proc state letter of ``pid``; None once it is gone (a zombie counts as gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state = text[text.rfind(")") + 2]
    return None if state == "Z" else state


def _tree(pid: int) -> set[int]:
    """``pid`` and every live process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                text = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(text[text.rfind(")") + 2 :].split()[1]), []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        if p not in found and _state(p):
            found.add(p)
            todo.extend(children.get(p, ()))
    return found


def _wait_gone(pids: set[int], within_s: float) -> set[int]:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        left = {p for p in pids if _state(p)}
        if not left:
            return left
        time.sleep(0.3)
    return {p for p in pids if _state(p)}


def _start(script: str, *args: str) -> tuple[subprocess.Popen, dict]:
    driver = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"},
    )
    line = driver.stdout.readline()
    assert line, "the driver died before it was ready"
    return driver, json.loads(line)


def test_a_killed_driver_takes_its_cluster_and_its_strays_down_and_nothing_else():
    bystander = subprocess.Popen(["sleep", "300"])
    driver, info = _start(FAKE_DRIVER, "kill")
    try:
        cluster = _tree(info["root"])
        assert len(cluster) == 2  # the root and the sleep it detached
        driver.kill()
        driver.wait()
        assert _wait_gone(cluster | {info["reaper"]}, within_s=20) == set()
        assert _state(bystander.pid)  # not below the cluster: untouched
    finally:
        bystander.kill()
        driver.kill()
        for pid in _tree(info["root"]):
            os.kill(pid, signal.SIGKILL)


def test_a_cluster_that_stops_by_itself_lets_the_reaper_go_while_the_driver_runs():
    driver, info = _start(FAKE_DRIVER, "shutdown")
    try:
        assert _wait_gone({info["reaper"]}, within_s=10) == set()
        assert driver.poll() is None
    finally:
        driver.kill()
        driver.wait()


@pytest.mark.slow
def test_a_sigkilled_driver_leaves_no_ray_process_behind():
    pytest.importorskip("ray")
    driver, info = _start(RAY_DRIVER)
    try:
        cluster = _tree(driver.pid) - {driver.pid}
        assert info["worker"] in cluster
        assert len(cluster) >= 6  # GCS, raylet, monitors, the two agents, a worker, the reaper
        driver.kill()
        driver.wait()
        assert _wait_gone(cluster, within_s=30) == set()
    finally:
        for pid in _tree(driver.pid) - {driver.pid}:
            os.kill(pid, signal.SIGKILL)
