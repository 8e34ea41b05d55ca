"""Serving an env over OpenEnv's protocol: assay's server next to openenv-core's own server on
the same env, and next to the env in process, in one run.

    python benchmarks/env_server.py [--envs codenames-guess-v0,codenames-game-v0]
                                    [--sessions 1,8,64] [--seconds 5]

Each server runs in a process of its own on loopback; N client threads each hold one WebSocket
session and replay whole episodes (actions precomputed from the env's random scripted agents,
the same for every server). Prints episodes/s and p50/p99 latency of one step (send to reply)
per server and session count, the in-process step time, and ends with
``RESULT overhead_p50_ms=... ratio_vs_openenv=...`` (at 1 session and at the most sessions; goals:
overhead <= 2 ms, ratio >= 0.8).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

import envs


def _episodes(env_id: str, count: int) -> list[tuple[int, list[str]]]:
    """(seed, actions) of ``count`` episodes played by the env's random agents (a guess: one
    fixed answer)."""
    env, out = envs.make(env_id), []
    for seed in range(count):
        observation, info = env.reset(seed=seed)
        actions, players, done = [], {}, False
        while not done:
            agent = info["agent"]
            if getattr(env, "scripted_kinds", ()):
                players.setdefault(agent, env.scripted_policy("random", agent, seed=seed))
                action = players[agent](observation, info)
            else:
                action = "Guesses: " + ", ".join(info["board"][:2])
            observation, _, terminated, truncated, info = env.step(action)
            actions.append(action)
            done = terminated or truncated
        out.append((seed, actions))
    return out


def in_process(env_id: str, episodes) -> float:
    """Seconds per step (reset or step) with the env in this process."""
    env, calls = envs.make(env_id), 0
    began = time.perf_counter()
    for seed, actions in episodes:
        env.reset(seed=seed)
        for action in actions:
            env.step(action)
        calls += 1 + len(actions)
    return (time.perf_counter() - began) / calls


def _serve(kind: str, env_id: str, port: int) -> None:
    import uvicorn

    if kind == "assay":
        from envs.serve.server import EnvServer, ServerLimits

        app = EnvServer(lambda: envs.make(env_id), env_id, ServerLimits(max_sessions=128)).app()
    else:
        app = _openenv_app(env_id)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error")


def _openenv_app(env_id: str):
    """The same env under openenv-core's own server: its Environment around the assay env."""
    from openenv.core.env_server.http_server import create_fastapi_app
    from openenv.core.env_server.interfaces import Environment
    from openenv.core.env_server.types import Action, Observation, State

    class Say(Action):
        message: str

    class Seen(Observation):
        messages: list
        agent: str

    class Wrapped(Environment):
        SUPPORTS_CONCURRENT_SESSIONS = True

        def __init__(self):
            super().__init__()
            self.env, self._state = envs.make(env_id), State()

        def reset(self, seed=None, episode_id=None, **kwargs):
            observation, info = self.env.reset(seed=seed)
            self._state = State(episode_id=episode_id, step_count=0)
            return Seen(messages=observation, agent=info["agent"])

        def step(self, action, timeout_s=None, **kwargs):
            observation, reward, terminated, truncated, info = self.env.step(action.message)
            self._state.step_count += 1
            return Seen(messages=observation, agent=info["agent"], reward=reward,
                        done=terminated or truncated)  # fmt: skip

        @property
        def state(self):
            return self._state

    return create_fastapi_app(Wrapped, Say, Seen, max_concurrent_envs=128)


def _client(url: str, episodes, stop: float, latencies: list, done: list) -> None:
    from websockets.sync.client import connect

    with connect(url, open_timeout=30, max_size=16 << 20) as socket:
        i = 0
        while time.perf_counter() < stop:
            seed, actions = episodes[i % len(episodes)]
            i += 1
            messages = [{"type": "reset", "data": {"seed": seed}}]
            messages += [{"type": "step", "data": {"message": a}} for a in actions]
            for message in messages:
                began = time.perf_counter()
                socket.send(json.dumps(message))
                reply = json.loads(socket.recv(timeout=60))
                latencies.append(time.perf_counter() - began)
                assert reply["type"] == "observation", reply
            done.append(1)
        socket.send(json.dumps({"type": "close"}))


def measure(kind: str, env_id: str, episodes, sessions: int, seconds: float) -> dict[str, float]:
    from assay.distributed import free_port

    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", kind, "--env", env_id,
                               "--port", str(port)])  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "no server"
                time.sleep(0.2)
        latencies: list[float] = []
        done: list[int] = []
        stop = time.perf_counter() + seconds
        threads = [threading.Thread(target=_client, args=(f"ws://127.0.0.1:{port}/ws", episodes,
                                                          stop, latencies, done))
                   for _ in range(sessions)]  # fmt: skip
        began = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - began
    finally:
        server.terminate()
        server.wait(20)
    latencies.sort()
    return {
        "episodes_per_s": len(done) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", default="codenames-guess-v0,codenames-game-v0")
    parser.add_argument("--sessions", default="1,8,64")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--serve", choices=["assay", "openenv"], help=argparse.SUPPRESS)
    parser.add_argument("--env", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return _serve(args.serve, args.env, args.port)
    counts = [int(n) for n in args.sessions.split(",")]
    result = {}
    for env_id in args.envs.split(","):
        episodes = _episodes(env_id, 64)
        local_ms = 1000 * in_process(env_id, episodes)
        print(f"{env_id}: in process {local_ms:.3f} ms per call")
        for n in counts:
            row = {
                kind: measure(kind, env_id, episodes, n, args.seconds)
                for kind in ("assay", "openenv")
            }
            for kind, m in row.items():
                print(f"  {kind:8} sessions={n:3}  {m['episodes_per_s']:8.1f} episodes/s  "
                      f"p50 {m['p50_ms']:.2f} ms  p99 {m['p99_ms']:.2f} ms")  # fmt: skip
            result[(env_id, n)] = (row, local_ms)
    first, last = counts[0], counts[-1]
    parts = []
    for env_id in args.envs.split(","):
        row, local_ms = result[(env_id, first)]
        wide = result[(env_id, last)][0]
        name = env_id.split("-")[1]
        parts.append(f"{name}_overhead_p50_ms={row['assay']['p50_ms'] - local_ms:.2f}")
        for n, r in ((first, row), (last, wide)):
            ratio = r["assay"]["episodes_per_s"] / r["openenv"]["episodes_per_s"]
            parts.append(f"{name}_ratio_vs_openenv_{n}={ratio:.2f}")
    print("RESULT " + " ".join(parts))


if __name__ == "__main__":
    main()
