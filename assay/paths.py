"""Where assay keeps what it derives once and reuses (de-quantized weights, tokenizers)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The cache directory: ``$ASSAY_CACHE`` if set, else ``~/.cache/assay``; created on demand."""
    root = Path(os.environ.get("ASSAY_CACHE") or Path.home() / ".cache" / "assay")
    root.mkdir(parents=True, exist_ok=True)
    return root
