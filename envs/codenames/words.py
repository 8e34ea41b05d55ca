"""The 400-word Codenames list and its MiniLM embeddings, shipped as package data.

The embeddings (``data/minilm_l6.npy``, float16, L2-normalised rows in word-list order) are
computed from ``minilm-l6`` by :func:`compute_embeddings`; shipping them lets an env build boards
without loading the embedder (>= 2,000 boards/s). ``tests/envs/test_codenames_words.py`` checks
that the shipped file matches the model.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

_DATA = resources.files("envs.codenames") / "data"
WORDLIST_FILE = "wordlist_en.txt"
EMBEDDINGS_FILE = "minilm_l6.npy"


@lru_cache(maxsize=1)
def wordlist() -> tuple[str, ...]:
    """The 400 Codenames words, upper case, in file order (four are two words, e.g. ``ICE CREAM``)."""
    text = (_DATA / WORDLIST_FILE).read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def compute_embeddings(words: tuple[str, ...] | None = None) -> np.ndarray:
    """Embed words with ``minilm-l6``: mean-pooled, L2-normalised, ``(n_words, 384)`` float32."""
    from assay.models import load_embedder

    words = wordlist() if words is None else words
    model = load_embedder("minilm-l6")
    return model.encode(
        [w.lower() for w in words], normalize_embeddings=True, convert_to_numpy=True
    ).astype(np.float32)


@lru_cache(maxsize=1)
def embeddings() -> np.ndarray:
    """The shipped embeddings of :func:`wordlist`, ``(400, 384)`` float32, unit rows."""
    with resources.as_file(_DATA / EMBEDDINGS_FILE) as path:
        table = np.load(path).astype(np.float32)
    if table.shape[0] != len(wordlist()):
        raise RuntimeError(
            f"{EMBEDDINGS_FILE} has {table.shape[0]} rows for {len(wordlist())} words"
        )
    return table


@lru_cache(maxsize=1)
def similarity() -> np.ndarray:
    """Cosine similarity between every pair of words, ``(400, 400)`` float32."""
    table = embeddings()
    return table @ table.T


def write_embeddings(path: Path) -> None:
    """Recompute the embeddings and save them as float16 (run after changing the word list)."""
    np.save(path, compute_embeddings().astype(np.float16))
