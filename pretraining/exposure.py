"""What the model was trained on, and when: the exposure log and a phrase index over it.

:class:`ExposureLog` records, for every optimizer step, the packed window ids the step consumed
(``exposure.jsonl`` in the run directory). :class:`ExposureIndex`, built from the packed windows
and that log by :func:`build_exposure_index`, answers "at which step was this token phrase first
seen?" and "was it seen before step t?" with a suffix array, so that a contamination or
memorisation probe can ask thousands of phrases without rescanning the corpus.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from assay.errors import AssayError
from pretraining.suffix_array import build_suffix_array

EXPOSURE_FILENAME = "exposure.jsonl"

# Token ids are >= 0, so a query (checked to be >= 0) can never match across a window boundary.
_SEPARATOR = -1
_INDEX_FORMAT = 1

Piece = tuple[int, int, int, int]  # (doc_id, doc_token_start, doc_token_end, window_offset)
# Per window its pieces: a list, a dict, or a lookup such as ``PackedData.provenance``.
Provenance = (
    Sequence[Sequence[Piece]] | Mapping[int, Sequence[Piece]] | Callable[[int], Sequence[Piece]]
)


class ExposureLog:
    """Append-only record of the window ids consumed at each optimizer step.

    One JSON line per step, ``{"step": int, "windows": [int, ...]}``, with window ids global over
    data-parallel ranks. Each :meth:`append` opens, writes and closes the file, so a crash loses
    at most the step in flight. Steps must strictly increase; a resumed run calls
    :meth:`truncate_after` with its checkpoint step before logging again.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Open the log at ``path``, loading the steps already there (if the file exists)."""
        self.path = Path(path)
        self._by_step: dict[int, list[int]] = {}
        self._needs_rewrite = False
        if self.path.exists():
            self._load()

    @classmethod
    def in_run_dir(cls, run_dir: str | os.PathLike[str]) -> ExposureLog:
        """The log of a run: ``<run_dir>/exposure.jsonl``."""
        return cls(Path(run_dir) / EXPOSURE_FILENAME)

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> ExposureLog:
        """Load an existing log; unlike the constructor, a missing file is an error."""
        if not Path(path).is_file():
            raise AssayError(
                f"no exposure log at {str(path)!r}; pass the {EXPOSURE_FILENAME} of a pretraining "
                "run (or use ExposureLog.in_run_dir(run_dir))."
            )
        return cls(path)

    def _load(self) -> None:
        lines = self.path.read_text().split("\n")
        # Each line is written with its newline in one call, so a last line without one is a
        # write cut short by a crash: drop it, and rewrite the file before the next append.
        if lines[-1]:
            self._needs_rewrite = True
        lines.pop()
        for number, line in enumerate(lines, start=1):
            try:
                record = json.loads(line)
                step, window_ids = int(record["step"]), [int(w) for w in record["windows"]]
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise AssayError(
                    f"{self.path}:{number}: not an exposure record ({exc}); expected "
                    f'{{"step": int, "windows": [int, ...]}}, got {line[:80]!r}.'
                ) from None
            self._check_step(step)
            self._by_step[step] = window_ids

    def _check_step(self, step: int) -> None:
        if self._by_step:
            last = next(reversed(self._by_step))
            if step <= last:
                raise AssayError(
                    f"exposure log {self.path}: step {step} comes after step {last}, but steps "
                    "must increase; a resumed run must call truncate_after(checkpoint_step) first."
                )

    def append(self, step: int, window_ids: Iterable[int]) -> None:
        """Record that optimizer ``step`` consumed ``window_ids`` and flush it to disk."""
        step = int(step)
        ids = [int(w) for w in window_ids]
        if any(w < 0 for w in ids):
            raise AssayError(f"step {step}: window ids must be >= 0, got {ids}.")
        self._check_step(step)
        self._by_step[step] = ids
        if self._needs_rewrite:
            self._rewrite()
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(_record_line(step, ids))

    def truncate_after(self, step: int) -> None:
        """Drop the steps logged after ``step`` (a resumed run's checkpoint) and rewrite the file
        atomically (temp file + ``os.replace``), so a crash leaves the old or the new log."""
        self._by_step = {s: ids for s, ids in self._by_step.items() if s <= step}
        self._rewrite()

    def _rewrite(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                f.writelines(_record_line(s, ids) for s, ids in self._by_step.items())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._needs_rewrite = False

    def steps(self) -> list[int]:
        """The logged steps, increasing."""
        return list(self._by_step)

    def windows(self, step: int) -> list[int]:
        """The window ids consumed at ``step``."""
        if step not in self._by_step:
            raise AssayError(
                f"step {step} is not in the exposure log {self.path} "
                f"({len(self)} steps logged{_step_span(self.steps())})."
            )
        return list(self._by_step[step])

    def __iter__(self) -> Iterator[tuple[int, list[int]]]:
        """``(step, window_ids)`` in step order."""
        return ((s, list(ids)) for s, ids in self._by_step.items())

    def __len__(self) -> int:
        return len(self._by_step)

    def first_step_of_window(self) -> dict[int, int]:
        """Window id -> the first step that consumed it (later epochs do not count)."""
        first: dict[int, int] = {}
        for step, ids in self._by_step.items():
            for w in ids:
                first.setdefault(w, step)
        return first

    def pieces(self, step: int, provenance: Provenance) -> list[tuple[int, range]]:
        """The document token ranges consumed at ``step``, as ``(doc_id, range(start, end))`` in
        consumption order; ``provenance[window_id]`` (or ``provenance(window_id)``) lists that
        window's ``(doc_id, doc_token_start, doc_token_end, window_offset)`` pieces."""
        lookup = provenance if callable(provenance) else provenance.__getitem__
        consumed = []
        for w in self.windows(step):
            try:
                window_pieces = lookup(w)
            except (IndexError, KeyError):
                raise AssayError(
                    f"step {step} consumed window {w}, which the provenance does not describe; "
                    "pass the provenance of the packed data this run was trained on."
                ) from None
            consumed += [(int(d), range(int(a), int(b))) for d, a, b, _ in window_pieces]
        return consumed


def _record_line(step: int, window_ids: list[int]) -> str:
    return json.dumps({"step": step, "windows": window_ids}) + "\n"


def _step_span(steps: list[int]) -> str:
    return f", {steps[0]}..{steps[-1]}" if steps else ""


class TextEncoder(Protocol):
    """What :meth:`ExposureIndex.first_seen_text` needs of a tokenizer (a HF fast tokenizer)."""

    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...


class ExposureIndex:
    """First-seen steps of token phrases over the windows a training run consumed.

    Approach: the windows, in the order training first consumed them (a window seen again in a
    later epoch adds nothing), are joined into one token stream with a separator after each
    window, and a suffix array is built over the stream (:func:`build_suffix_array`). All
    suffixes starting with a query form one contiguous range of the suffix array, found by two
    binary searches; as stream positions increase with the step, the first-seen step is the step
    of the smallest position in that range.

    Cost, for n stream tokens, a query of m tokens occurring k times: build O(n log n) per
    prefix-doubling round, one round per doubling of the longest repeated phrase, so
    O(n log^2 n) at worst; query O(m log n + k); memory 24 bytes per token (three int64 arrays).
    """

    def __init__(
        self,
        stream: np.ndarray,
        suffix_array: np.ndarray,
        position_step: np.ndarray,
        last_step: int | None,
    ) -> None:
        """Wrap built arrays; use :func:`build_exposure_index` or :meth:`load` to get them."""
        if not len(stream) == len(suffix_array) == len(position_step):
            raise AssayError(
                f"index arrays differ in length: stream {len(stream)}, suffix_array "
                f"{len(suffix_array)}, position_step {len(position_step)}; rebuild the index."
            )
        self.stream = np.asarray(stream, dtype=np.int64)  # (n,) tokens, -1 after each window
        self.suffix_array = np.asarray(suffix_array, dtype=np.int64)  # (n,) sorted suffix starts
        self.position_step = np.asarray(position_step, dtype=np.int64)  # (n,) step of each token
        self.last_step = last_step  # the last step the index covers; None for an empty log

    def first_seen(self, token_ids: Sequence[int] | np.ndarray) -> int | None:
        """The first step whose windows contain ``token_ids`` contiguously, or None if none did."""
        query = _as_query(token_ids)
        lo = self._bound(query, past_equal=False)
        hi = self._bound(query, past_equal=True)
        if lo == hi:
            return None
        return int(self.position_step[self.suffix_array[lo:hi].min()])

    def seen_before(self, token_ids: Sequence[int] | np.ndarray, step: int) -> bool:
        """Whether a step strictly before ``step`` consumed ``token_ids``, i.e. whether the weights
        entering ``step`` were trained on the phrase."""
        if self.last_step is not None and step > self.last_step + 1:
            raise AssayError(
                f"the exposure index covers steps up to {self.last_step}, so it cannot tell what "
                f"was seen before step {step}; rebuild it with upto_step >= {step - 1}."
            )
        first = self.first_seen(token_ids)
        return first is not None and first < step

    def first_seen_text(self, text: str, tokenizer: TextEncoder) -> int | None:
        """:meth:`first_seen` of ``text``, tokenized with and without a leading space.

        BPE tokenizers give a word a different token at the start of a text than after a space
        (``cat`` vs ``Ġcat``), and a phrase inside a document follows a space, so both forms are
        tried and the earlier step returned. Still a lower bound on exposure: a phrase whose
        last word runs on in the corpus (``cat`` in ``cats``) tokenizes differently there.
        """
        variants = [text] if text.startswith(" ") else [text, " " + text]
        found = [self.first_seen(tokenizer.encode(v, add_special_tokens=False)) for v in variants]
        return min((s for s in found if s is not None), default=None)

    def _bound(self, query: np.ndarray, past_equal: bool) -> int:
        """First suffix-array slot whose suffix sorts after ``query`` (``past_equal``) or not
        before it (otherwise), comparing only the first ``len(query)`` tokens."""
        lo, hi = 0, len(self.suffix_array)
        while lo < hi:
            mid = (lo + hi) // 2
            order = self._compare(int(self.suffix_array[mid]), query)
            if order < 0 or (past_equal and order == 0):
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _compare(self, position: int, query: np.ndarray) -> int:
        """-1, 0 or 1 as the suffix at ``position``, cut to ``len(query)`` tokens, sorts before,
        equal to or after ``query``; a suffix that ends early sorts first."""
        head = self.stream[position : position + len(query)]
        mismatch = np.flatnonzero(head != query[: len(head)])
        if mismatch.size:
            i = mismatch[0]
            return -1 if head[i] < query[i] else 1
        return -1 if len(head) < len(query) else 0

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the index to ``path`` as .npz (numpy adds the suffix if missing); returns it."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        last = [] if self.last_step is None else [self.last_step]
        np.savez(
            path,
            format=np.array(_INDEX_FORMAT),
            stream=self.stream,
            suffix_array=self.suffix_array,
            position_step=self.position_step,
            last_step=np.array(last, dtype=np.int64),
        )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ExposureIndex:
        """Read an index written by :meth:`save`."""
        if not Path(path).is_file():
            raise AssayError(f"no exposure index at {str(path)!r}; build one and save() it first.")
        with np.load(path, allow_pickle=False) as data:
            keys = {"format", "stream", "suffix_array", "position_step", "last_step"}
            if not keys <= set(data.files) or int(data["format"]) != _INDEX_FORMAT:
                raise AssayError(
                    f"{path} is not an exposure index of format {_INDEX_FORMAT} (arrays "
                    f"{sorted(data.files)}); rebuild it with build_exposure_index(...).save()."
                )
            last = data["last_step"]
            return cls(
                data["stream"],
                data["suffix_array"],
                data["position_step"],
                int(last[0]) if last.size else None,
            )


def _as_query(token_ids: Sequence[int] | np.ndarray) -> np.ndarray:
    query = np.asarray(token_ids, dtype=np.int64)
    if query.ndim != 1 or query.size == 0:
        raise AssayError(
            f"a phrase query must be a non-empty 1-D list of token ids, got shape {query.shape}."
        )
    if query.min() < 0:
        raise AssayError(f"token ids must be >= 0, got {query.tolist()}.")
    return query


def build_exposure_index(
    windows: np.ndarray, log: ExposureLog, upto_step: int | None = None
) -> ExposureIndex:
    """Index the packed ``windows`` (num_windows, seq_len) consumed by the steps of ``log`` up to
    ``upto_step`` (all logged steps if None). See :class:`ExposureIndex` for the approach."""
    windows = np.asarray(windows)
    if windows.ndim != 2 or not np.issubdtype(windows.dtype, np.integer):
        raise AssayError(
            f"windows must be a 2-D integer array (num_windows, seq_len), got shape "
            f"{windows.shape} and dtype {windows.dtype}."
        )
    if windows.size and windows.min() < 0:
        raise AssayError("windows hold negative token ids; token ids must be >= 0.")

    first_step: dict[int, int] = {}
    for step, ids in log:
        if upto_step is not None and step > upto_step:
            break
        for w in ids:
            if w >= len(windows):
                raise AssayError(
                    f"step {step} consumed window {w}, but the packed data holds {len(windows)} "
                    "windows; pass the windows this run was trained on."
                )
            first_step.setdefault(w, step)
    covered = [s for s in log.steps() if upto_step is None or s <= upto_step]

    seq_len = windows.shape[1]
    window_ids = np.fromiter(first_step.keys(), dtype=np.int64, count=len(first_step))
    steps = np.fromiter(first_step.values(), dtype=np.int64, count=len(first_step))
    block = np.full((len(window_ids), seq_len + 1), _SEPARATOR, dtype=np.int64)
    block[:, :seq_len] = windows[window_ids]  # (W, seq_len + 1), separator last
    stream = block.reshape(-1)
    position_step = np.repeat(steps, seq_len + 1)
    return ExposureIndex(
        stream, build_suffix_array(stream), position_step, covered[-1] if covered else None
    )
