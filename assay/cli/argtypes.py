"""argparse types shared by the command families: a bad value fails while the command line is
parsed, before any run folder or manifest exists."""

from __future__ import annotations

import argparse


def count(text: str) -> int:
    """An argparse type: a whole number >= 1 (so a bad value fails before any run folder or
    manifest exists)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {value}")
    return value


def token_budget(text: str) -> int:
    """An argparse type: new tokens per answer, 1 to ``trainers.rl.config.MAX_NEW_TOKENS``."""
    from trainers.rl.config import MAX_NEW_TOKENS

    value = count(text)
    if value > MAX_NEW_TOKENS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_NEW_TOKENS:,}, got {value:,}")
    return value
