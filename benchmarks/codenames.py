"""Codenames throughput: full games with scripted agents, and judged clues per second.

    python benchmarks/codenames.py [--games 300] [--clues 2000]

- Full games of ``codenames-game-v0`` with embedding agents in all four seats (the clue
  vocabulary's similarities are cached per board after the first game), and with random agents.
  Goal: >= 50 games/s with embedding agents.
- The clue task's embedding judge: ``--clues`` boards, each with a different clue word, scored
  through ``env.score_many`` in one batch vs one ``reset``/``step`` at a time, each on a fresh
  judge. Clue words from the clue vocabulary use shipped embeddings; words from outside it are
  embedded by MiniLM (one call for the batch, or one per clue). Goal: >= 500 judged clues/s
  batched.

Ends with ``RESULT embedding_games_per_s=... random_games_per_s=... clues_per_s_batched=...
clues_per_s_single=... batch_speedup=...``.
"""

from __future__ import annotations

import argparse
import time

import envs
from envs.codenames.agents import scripted_agent
from envs.codenames.clue import format_clue
from envs.codenames.game import SEATS, play_game


def games_per_second(kind: str, n: int) -> tuple[float, dict]:
    env = envs.make("codenames-game-v0")
    agents = {
        seat: scripted_agent(kind, seat.split("/")[1], seed=i) for i, seat in enumerate(SEATS)
    }
    play_game(env, agents, seed=0)  # warm-up: embeddings, lemma and stem caches
    wins: dict[str, int] = {}
    start = time.perf_counter()
    for seed in range(1, n + 1):
        winner = play_game(env, agents, seed=seed)[0]
        wins[winner] = wins.get(winner, 0) + 1
    return n / (time.perf_counter() - start), wins


def clue_batch(n: int, in_vocabulary: bool) -> list[tuple[int, str]]:
    """n boards, each with a different legal clue word: from the clue vocabulary (shipped
    embeddings) or from outside it (each clue embedded anew by MiniLM)."""
    from wordfreq import top_n_list

    from envs.codenames.tiers import clue_vocabulary
    from rewards.codenames_clue import variant_of

    env = envs.make("codenames-clue-v0", tier="mixed")
    vocab = clue_vocabulary()[0]
    if in_vocabulary:
        words = iter(vocab)
    else:
        known = set(vocab)
        words = iter(w.upper() for w in top_n_list("en", 50000)[300:]
                     if w.isascii() and w.isalpha() and len(w) >= 4 and w.upper() not in known)  # fmt: skip
    batch = []
    for seed in range(n):
        _, info = env.reset(seed=seed)
        clue = next(w for w in words if not any(variant_of(w, b) for b in info["board"]))
        batch.append((seed, format_clue(clue, info["targets"][:2], "simple")))
    return batch


def clues_per_second(batch: list[tuple[int, str]]) -> tuple[float, float]:
    """Judged clues/s scored in one batch vs one at a time, each on a fresh judge (no cached
    clue embeddings), after the embedder is loaded."""
    warm = envs.make("codenames-clue-v0", tier="mixed")
    warm.score_many([(0, format_clue("ZEBRA", ["X"], "simple"))])
    env = envs.make("codenames-clue-v0", tier="mixed")
    env.judge._model = warm.judge._model  # share the loaded embedder, not the cache
    start = time.perf_counter()
    batched = env.score_many(batch)
    t_batched = time.perf_counter() - start
    env = envs.make("codenames-clue-v0", tier="mixed")
    env.judge._model = warm.judge._model
    start = time.perf_counter()
    single = []
    for seed, text in batch:
        env.reset(seed=seed)
        single.append(env.step(text)[1])
    t_single = time.perf_counter() - start
    assert [r for r, _ in batched] == single, "batched and single scoring disagree"
    return len(batch) / t_batched, len(batch) / t_single


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--games", type=int, default=300)
    parser.add_argument("--clues", type=int, default=2000)
    args = parser.parse_args()
    emb, emb_wins = games_per_second("embedding", args.games)
    rnd, _ = games_per_second("random", args.games)
    print(f"full games, embedding agents: {emb:.1f} games/s (wins {emb_wins})")
    print(f"full games, random agents:    {rnd:.1f} games/s")
    batched, single = clues_per_second(clue_batch(args.clues, in_vocabulary=True))
    print(f"judged clues, vocabulary words: {batched:.0f}/s batched, {single:.0f}/s one at a time")
    fresh_b, fresh_s = clues_per_second(clue_batch(args.clues, in_vocabulary=False))
    print(
        f"judged clues, new words (MiniLM): {fresh_b:.0f}/s batched, {fresh_s:.0f}/s one at a time"
    )
    print(
        f"RESULT embedding_games_per_s={emb:.1f} random_games_per_s={rnd:.1f} "
        f"clues_per_s_batched={batched:.0f} clues_per_s_single={single:.0f} "
        f"new_clues_per_s_batched={fresh_b:.0f} new_clues_per_s_single={fresh_s:.0f} "
        f"new_clue_batch_speedup={fresh_b / fresh_s:.2f}"
    )


if __name__ == "__main__":
    main()
