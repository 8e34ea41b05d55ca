"""Experiment trackers beside ``metrics.jsonl``: TensorBoard and Weights & Biases, both
optional. ``metrics.jsonl`` stays the record; a tracker that fails to import is a clear error at
start, before any training."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from assay.errors import ConfigError


class Trackers:
    """Fan one metrics record out to the enabled trackers (numbers only)."""

    @staticmethod
    def check(tensorboard: bool, wandb: bool) -> None:
        """Raise ConfigError now if an enabled tracker's package is missing."""
        for enabled, module, package in (
            (tensorboard, "torch.utils.tensorboard", "tensorboard"),
            (wandb, "wandb", "wandb"),
        ):
            if not enabled:
                continue
            try:
                __import__(module)
            except ImportError:
                raise ConfigError(
                    f"log.{package} needs the {package} package: pip install {package}"
                ) from None

    def __init__(
        self,
        run_dir: Path,
        tensorboard: bool = False,
        wandb: bool = False,
        wandb_project: str = "assay",
        wandb_mode: str = "offline",
        config: dict[str, Any] | None = None,
    ):
        self._tb = None
        self._wandb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError(
                    "log.tensorboard needs the tensorboard package: pip install tensorboard"
                ) from None
            self._tb = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        if wandb:
            try:
                import wandb as wandb_lib
            except ImportError:
                raise ConfigError("log.wandb needs the wandb package: pip install wandb") from None
            os.environ.setdefault("WANDB_SILENT", "true")
            self._wandb = wandb_lib.init(
                project=wandb_project,
                name=run_dir.name,
                id=run_dir.name.replace("/", "-"),
                dir=str(run_dir),
                mode=wandb_mode,
                config=config or {},
                resume="allow",
            )

    def log(self, record: dict[str, Any]) -> None:
        step = int(record.get("step", 0))
        numbers = {
            k: float(v)
            for k, v in record.items()
            if k != "step" and isinstance(v, int | float) and not isinstance(v, bool)
        }
        if self._tb is not None:
            for key, value in numbers.items():
                self._tb.add_scalar(key, value, step)
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(numbers, step=step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None
