"""codenames-guess-v0 episodes per second (reset + step with a valid answer; no model).

    python benchmarks/env_throughput.py [--seconds 5]

Board construction from the shipped MiniLM embeddings is included. Goal: >= 2,000 episodes/s on
a 2-core CPU. The peer is gymnasium's own CartPole-v1 reset+step loop, measured in the same run,
as a yardstick for what one env call costs in Python on this machine.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym

import envs
from envs.codenames.guess import format_answer

GOAL = 2000


def episodes_per_second(seconds: float) -> float:
    env = envs.make("codenames-guess-v0")
    env.reset(seed=0)  # warm caches (word list, similarity matrix)
    n, seed, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, info = env.reset(seed=seed)
        _, reward, _, _, _ = env.step(
            format_answer(info["targets"][: info["max_guesses"]], "simple")
        )
        assert reward == 1.0
        n, seed = n + 1, seed + 1
    return n / (time.perf_counter() - start)


def cartpole_per_second(seconds: float) -> float:
    env = gym.make("CartPole-v1")
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        env.reset(seed=n)
        env.step(0)
        n += 1
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    assay_eps = episodes_per_second(args.seconds)
    peer_eps = cartpole_per_second(args.seconds)
    print(f"codenames-guess-v0: {assay_eps:,.0f} episodes/s (goal >= {GOAL:,})")
    print(f"CartPole-v1 reset+step: {peer_eps:,.0f} /s")
    print(
        f"RESULT assay_eps={assay_eps:.0f} cartpole_eps={peer_eps:.0f} ratio={assay_eps / peer_eps:.3f} goal_met={assay_eps >= GOAL}"
    )


if __name__ == "__main__":
    main()
