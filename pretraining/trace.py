"""Trace phrases to the step a run first read them: the exposure index of a run directory.

``assay pretrain seen --run RUN_DIR "the cat" "is on the mat"`` prints, for each phrase, the first
optimizer step whose windows contained it (or that it was never read). The index is built from
``data/windows.npy`` and ``exposure.jsonl`` and cached as ``exposure_index.npz`` until the log
grows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from assay.errors import CheckpointError
from pretraining.exposure import ExposureIndex, ExposureLog, build_exposure_index

INDEX_FILE = "exposure_index.npz"


def run_exposure_index(run_dir: str | Path) -> ExposureIndex:
    """The exposure index of a pretraining run (built once, then read from its cache)."""
    run_dir = Path(run_dir)
    log_path, windows_path = run_dir / "exposure.jsonl", run_dir / "data" / "windows.npy"
    if not log_path.exists() or not windows_path.exists():
        raise CheckpointError(
            f"{str(run_dir)!r} is not a pretraining run with an exposure log "
            "(exposure.jsonl and data/windows.npy); train with train.log_exposure=true."
        )
    cached = run_dir / INDEX_FILE
    if cached.exists() and cached.stat().st_mtime >= log_path.stat().st_mtime:
        return ExposureIndex.load(cached)
    index = build_exposure_index(np.load(windows_path), ExposureLog(log_path))
    index.save(cached)
    return index


def trace_phrases(run_dir: str | Path, phrases: list[str]) -> list[dict]:
    """``[{"phrase", "first_step"}]``: the first step that read each phrase (None: never)."""
    from transformers import AutoTokenizer

    index = run_exposure_index(run_dir)
    tokenizer = AutoTokenizer.from_pretrained(Path(run_dir) / "tokenizer")
    return [{"phrase": p, "first_step": index.first_seen_text(p, tokenizer)} for p in phrases]
