"""Tokenize documents, pack them into fixed-length windows, and fix the order they are read in.

Every document's tokens, then an EOS, are laid end to end in one stream; window ``w`` is the
stream's tokens ``[w*L, (w+1)*L)`` (the ragged tail is dropped). Because each window is a plain
slice of the stream, its provenance (which documents, which token offsets) follows from the
documents' start offsets alone, and the exposure log only needs window ids.

Optimizer step ``s`` reads the global positions ``[s*B, (s+1)*B)`` of an endless sequence of
epochs, each epoch a permutation of all windows drawn from ``seed + epoch``: the order is
recorded by the seed, identical for any number of data-parallel ranks, and a resumed run reads
exactly what the uninterrupted run would have.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from assay.errors import ConfigError


@dataclass
class PackedData:
    windows: np.ndarray  # (num_windows, seq_len) token ids
    doc_starts: np.ndarray  # (num_docs + 1,) stream offset of each document; the last is the end

    @property
    def seq_len(self) -> int:
        return int(self.windows.shape[1])

    @property
    def num_tokens(self) -> int:
        return int(self.windows.size)

    def __len__(self) -> int:
        return int(self.windows.shape[0])

    def provenance(self, window: int) -> list[tuple[int, int, int, int]]:
        """``(doc_id, doc_token_start, doc_token_end, window_offset)`` for each document piece in
        ``window`` (token positions within the document; the EOS after a document is its last
        position)."""
        lo, hi = window * self.seq_len, (window + 1) * self.seq_len
        first = int(np.searchsorted(self.doc_starts, lo, side="right")) - 1
        pieces = []
        doc = first
        while doc < len(self.doc_starts) - 1 and self.doc_starts[doc] < hi:
            start = max(lo, int(self.doc_starts[doc]))
            end = min(hi, int(self.doc_starts[doc + 1]))
            base = int(self.doc_starts[doc])
            pieces.append((doc, start - base, end - base, start - lo))
            doc += 1
        return pieces

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "windows.npy", self.windows)
        np.save(folder / "doc_starts.npy", self.doc_starts)

    @classmethod
    def load(cls, folder: Path) -> PackedData:
        return cls(np.load(folder / "windows.npy"), np.load(folder / "doc_starts.npy"))


def tokenize_documents(documents: list[str], tokenizer, batch: int = 1000) -> list[list[int]]:
    """Token ids of each document, without special tokens (EOS is added by :func:`pack`)."""
    ids: list[list[int]] = []
    for i in range(0, len(documents), batch):
        ids.extend(tokenizer(documents[i : i + batch], add_special_tokens=False)["input_ids"])
    return ids


def pack(token_lists: list[list[int]], seq_len: int, eos_id: int) -> PackedData:
    """Lay ``doc + [EOS]`` end to end and cut the stream into ``seq_len`` windows."""
    lengths = np.array([len(t) + 1 for t in token_lists], dtype=np.int64)
    doc_starts = np.concatenate([[0], np.cumsum(lengths)])
    total = int(doc_starts[-1])
    if total < seq_len:
        raise ConfigError(
            f"The corpus has {total} tokens, fewer than one window of model.seq_len={seq_len}."
        )
    stream = np.empty(total, dtype=np.int32)
    for start, tokens in zip(doc_starts[:-1], token_lists, strict=True):
        stream[start : start + len(tokens)] = tokens
        stream[start + len(tokens)] = eos_id
    num_windows = total // seq_len
    windows = stream[: num_windows * seq_len].reshape(num_windows, seq_len)  # (W, L)
    return PackedData(windows=windows, doc_starts=doc_starts)


@lru_cache(maxsize=2)  # step_windows asks for the same epoch every step
def epoch_order(num_windows: int, seed: int, epoch: int) -> np.ndarray:
    order = np.random.default_rng([seed, epoch]).permutation(num_windows)
    order.flags.writeable = False  # shared by the cache
    return order


def step_windows(step: int, batch_size: int, num_windows: int, seed: int) -> np.ndarray:
    """The global window ids optimizer step ``step`` (0-based) reads, in order."""
    positions = np.arange(step * batch_size, (step + 1) * batch_size)
    epochs = positions // num_windows
    out = np.empty(batch_size, dtype=np.int64)
    for epoch in np.unique(epochs):
        sel = epochs == epoch
        out[sel] = epoch_order(num_windows, seed, int(epoch))[positions[sel] % num_windows]
    return out


def save_corpus_meta(folder: Path, meta: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
