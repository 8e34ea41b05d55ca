"""Curriculum tiers for both Codenames tasks, built around topics from a clue vocabulary.

The clue vocabulary is 3,000 common English nouns and adjectives (wordfreq's frequency list
filtered by lemminflect's parts of speech, board words excluded), shipped with their MiniLM
embeddings (``data/clue_vocab.txt``, ``data/clue_vocab_minilm.npy``; rebuild with
:func:`write_clue_vocabulary`). A board has a target topic and a non-target topic (two vocabulary
words far apart); board words are ranked by similarity to each topic.

- ``simple``: the targets are the board words most associated with the target topic;
- ``moderate``: half of them close associates, half distant ones (ranks 3|T| to 12|T|);
- ``advanced``: all distant associates;
- ``expert``: half distant associates, the rest trick words strongly associated with the
  non-target topic; the guess limit is floor(|T| / 2).

Non-targets are the words most associated with the non-target topic. Common vs rare: ``simple``
and ``moderate`` draw their topics from the common half of the vocabulary (by word frequency),
``advanced`` and ``expert`` from the rare half. ``mixed`` samples a tier per board with weights.
In the guess task the target topic is the clue. A curriculum that walks simple -> expert over
training is ``env.schedule`` in the RL config (docs/rl.md).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from envs.codenames.boards import Board, _single_word_indices
from envs.codenames.words import embeddings, wordlist

TIERS = ("simple", "moderate", "advanced", "expert")
_DATA = resources.files("envs.codenames") / "data"
VOCAB_FILE, VOCAB_EMBEDDINGS_FILE = "clue_vocab.txt", "clue_vocab_minilm.npy"
_EXCLUDED = {"shit", "fuck", "fucking", "damn", "bitch", "sexy", "porn", "nude"}


@lru_cache(maxsize=1)
def clue_vocabulary() -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """(words upper-cased, Zipf frequencies, unit MiniLM embeddings float32)."""
    rows = [line.split("\t") for line in (_DATA / VOCAB_FILE).read_text().splitlines() if line]
    words = tuple(w.upper() for w, _ in rows)
    zipf = np.asarray([float(z) for _, z in rows], dtype=np.float32)
    with resources.as_file(_DATA / VOCAB_EMBEDDINGS_FILE) as path:
        vectors = np.load(path).astype(np.float32)
    if vectors.shape[0] != len(words):
        raise RuntimeError(f"{VOCAB_EMBEDDINGS_FILE} has {vectors.shape[0]} rows for {len(words)}")
    return words, zipf, vectors


def build_clue_vocabulary(size: int = 3000) -> list[tuple[str, float]]:
    """Common English nouns and adjectives in their base form, most frequent first, skipping
    the 300 most frequent words (function words) and the board words."""
    from lemminflect import getAllLemmas
    from wordfreq import top_n_list, zipf_frequency

    board = {w.lower() for w in wordlist()}
    out = []
    for word in top_n_list("en", 40000)[300:]:
        if not (word.isascii() and word.isalpha() and len(word) >= 4):
            continue
        if word in board or word in _EXCLUDED:
            continue
        lemmas = getAllLemmas(word)
        if word in lemmas.get("NOUN", ()) or word in lemmas.get("ADJ", ()):
            out.append((word, zipf_frequency(word, "en")))
        if len(out) == size:
            break
    return out


def write_clue_vocabulary(directory: Path, size: int = 3000) -> None:
    """Rebuild the shipped vocabulary and its embeddings (float16) into ``directory``."""
    from envs.codenames.words import compute_embeddings

    vocab = build_clue_vocabulary(size)
    (directory / VOCAB_FILE).write_text("".join(f"{w}\t{z:.2f}\n" for w, z in vocab))
    vectors = compute_embeddings(tuple(w.upper() for w, _ in vocab))
    np.save(directory / VOCAB_EMBEDDINGS_FILE, vectors.astype(np.float16))


def make_tier_board(
    rng: np.random.Generator,
    tier: str,
    n_targets: tuple[int, int],
    n_non_targets: tuple[int, int],
    n_neutral: tuple[int, int] = (0, 0),
    max_guesses: int | None = None,
) -> Board:
    """A board of ``tier``; its ``clue`` is the target topic, never a variant of a board word
    (FANCY with FAN on the board is drawn again), so it is a legal clue."""
    from rewards.codenames_clue import variant_of

    if tier not in TIERS:
        raise ValueError(f"tier must be one of {', '.join(TIERS)}, got {tier!r}")
    while True:
        board = _draw(rng, tier, n_targets, n_non_targets, n_neutral, max_guesses)
        if not any(variant_of(board.clue, w) for w in board.words):
            return board


def _draw(rng, tier, n_targets, n_non_targets, n_neutral, max_guesses) -> Board:
    words, zipf, vectors = clue_vocabulary()
    board_words = wordlist()
    singles = _single_word_indices()
    nt = int(rng.integers(n_targets[0], n_targets[1], endpoint=True))
    nn = int(rng.integers(n_non_targets[0], n_non_targets[1], endpoint=True))
    nz = int(rng.integers(n_neutral[0], n_neutral[1], endpoint=True))

    median = np.median(zipf)
    common = tier in ("simple", "moderate")
    pool = np.flatnonzero(zipf >= median) if common else np.flatnonzero(zipf < median)
    topic_t = int(rng.choice(pool))
    sims_t = embeddings()[singles] @ vectors[topic_t]  # (n_single,)
    # The non-target topic: a vocabulary word unrelated to the target topic.
    far = np.flatnonzero(vectors @ vectors[topic_t] < 0.15)
    topic_n = int(rng.choice(far))
    sims_n = embeddings()[singles] @ vectors[topic_n]
    ranked_t = singles[np.argsort(-sims_t, kind="stable")]
    ranked_n = singles[np.argsort(-sims_n, kind="stable")]

    n_close = {"simple": nt, "moderate": nt // 2, "advanced": 0, "expert": 0}[tier]
    n_trick = nt - (nt + 1) // 2 if tier == "expert" else 0
    n_distant = nt - n_close - n_trick
    close = [int(i) for i in ranked_t[:nt]][:n_close]
    distant_pool = [int(i) for i in ranked_t[3 * nt : 12 * nt] if int(i) not in close]
    distant = [int(i) for i in rng.choice(distant_pool, n_distant, replace=False)]
    taken = set(close) | set(distant)
    trick_pool = [int(i) for i in ranked_n[: 2 * nt + 2 * nn] if int(i) not in taken]
    trick = [int(i) for i in rng.choice(trick_pool[: 2 * nt], n_trick, replace=False)]
    targets = close + distant + trick
    taken |= set(trick)
    nontarget_pool = [int(i) for i in ranked_n[: 4 * nn + 2 * nt] if int(i) not in taken]
    non_targets = [int(i) for i in nontarget_pool[:nn]]
    taken |= set(non_targets)
    middle = [int(i) for i in ranked_t[len(ranked_t) // 3 :] if int(i) not in taken]
    neutral = [int(i) for i in rng.choice(middle, nz, replace=False)] if nz else []

    board = np.asarray(targets + non_targets + neutral)
    rng.shuffle(board)
    limit = nt // 2 if tier == "expert" else nt
    return Board(
        words=tuple(board_words[i] for i in board),
        targets=tuple(board_words[i] for i in targets),
        non_targets=tuple(board_words[i] for i in non_targets),
        clue=words[topic_t],
        max_guesses=max(1, limit) if max_guesses is None else max_guesses,
    )
