"""Run directories, the metrics log, atomic writes and plots.

A run directory is ``<output_dir>/<name>/`` with ``config.yaml``, ``metrics.jsonl`` (one JSON
object per step), ``checkpoints/``, ``plots/*.png`` and ``summary.json``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (never a half file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def write_jsonl(path: Path, records: Sequence[dict[str, Any]]) -> None:
    """One JSON object per line, written atomically (a dataset that ``datasets`` loads)."""
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))


def check_settings(path: Path, settings: dict[str, Any], what: str) -> None:
    """Record ``settings`` at ``path``, or, when a record exists, refuse different ones: output
    folders that resume (rollouts, reward-model data) are never mixed across settings."""
    from assay.errors import ConfigError

    settings = json.loads(json.dumps(settings, default=str))
    if path.exists():
        before = json.loads(path.read_text())
        changed = sorted(k for k in settings if before.get(k) != settings[k])
        if changed:
            raise ConfigError(
                f"{path.parent} holds {what} made with other settings ({', '.join(changed)}); "
                "use a new --out or delete it."
            )
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, settings)


def env_identity(env) -> dict[str, Any]:
    """The registered id and options an env was made with (what a resumed run must match)."""
    spec = getattr(env, "spec", None)
    return {
        "env": getattr(spec, "id", type(env).__name__),
        "env_kwargs": getattr(spec, "kwargs", None),
    }


def new_run_dir(output_dir: str | Path, job: str, name: str | None = None) -> Path:
    """Create ``output_dir/name`` (default ``<job>-<YYYYmmdd-HHMMSS>``) with its subfolders."""
    name = name or f"{job}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = Path(output_dir) / name
    suffix = 1
    while (run_dir / "config.yaml").exists():  # two runs started in the same second
        suffix += 1
        run_dir = Path(output_dir) / f"{name}-{suffix}"
    try:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        (run_dir / "plots").mkdir(exist_ok=True)
    except OSError as err:
        from assay.errors import ConfigError

        raise ConfigError(
            f"Cannot create the run folder {str(run_dir)!r} ({err.strerror}); set "
            "train.output_dir to a folder you can write."
        ) from None
    return run_dir


def latest_run_dir(output_dir: str | Path, job: str) -> Path | None:
    """The most recently modified ``<job>-*`` run directory under ``output_dir``."""
    runs = [p for p in Path(output_dir).glob(f"{job}-*") if (p / "config.yaml").exists()]
    return max(runs, key=lambda p: p.stat().st_mtime) if runs else None


def find_resume_dir(resume: str, job: str, output_dir) -> Path:
    """The run directory ``--resume`` names: a path, or ``latest`` (the newest ``<job>-*`` run
    under ``output_dir()``, a callable so the config is read only when needed)."""
    from assay.errors import CheckpointError

    if resume == "latest":
        found = latest_run_dir(output_dir(), job)
        if found is None:
            raise CheckpointError(f"No {job} run to resume under {str(output_dir())!r}.")
    else:
        found = Path(resume)
    if not (found / "config.yaml").exists():
        raise CheckpointError(f"{str(found)!r} is not a run directory (no config.yaml).")
    return found


def pyplot():
    """``matplotlib.pyplot`` on the file-only Agg backend (no window, works headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> Path:
    """Save a matplotlib figure (creating the folder) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


class MetricsLog:
    """Append-only ``metrics.jsonl``: one JSON object per step, flushed as it is written."""

    def __init__(self, path: Path):
        self.path = path

    def append(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def read(self) -> list[dict[str, Any]]:
        """Every whole record. A line that is not a JSON object (a kill during a write leaves a
        half line at the end) is skipped with a warning, never a traceback on ``--resume``."""
        if not self.path.exists():
            return []
        records, broken = [], []
        for number, line in enumerate(self.path.read_text(errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if isinstance(record, dict):
                records.append(record)
            else:
                broken.append(number)
        if broken:
            warnings.warn(
                f"{self.path}: skipped {len(broken)} unreadable line(s) (line {broken[0]}"
                f"{'' if len(broken) == 1 else ', ...'}), e.g. one half-written when a run was "
                "killed; the other records are used.",
                stacklevel=2,
            )
        return records

    def truncate_after(self, step: int) -> None:
        """Drop records past ``step`` (logged after the checkpoint a run resumes from)."""
        kept = [r for r in self.read() if r.get("step", 0) <= step]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))


def _ema(values: Sequence[float], alpha: float = 0.2) -> list[float]:
    out: list[float] = []
    for v in values:
        out.append(v if not out else alpha * v + (1 - alpha) * out[-1])
    return out


SKILL_OVERLAYS = {
    "reward_mean": ("reward_valid_mean",),
    "eval/reward_mean": ("eval/reward_valid_mean", "eval/chance_reward"),
}
"""Format and skill on one panel: the raw reward, the reward among valid answers and the
chance baseline (a random valid answer)."""


def plot_metrics(
    records: Sequence[dict[str, Any]],
    keys: Sequence[str],
    path: Path,
    title: str = "",
    overlays: dict[str, Sequence[str]] | None = None,
) -> Path:
    """One panel per metric against ``step``: raw points, a smoothed line (EMA), and a +-1 std
    band where the record holds the spread (``reward_mean`` with ``reward_std``). ``overlays``
    draws more metrics on a metric's panel (e.g. the reward among valid answers on the
    reward's), each as its own labelled line."""
    plt = pyplot()
    overlays = overlays or {}

    cols = 2
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.2 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        have = [r for r in records if key in r]  # eval metrics exist only at some steps
        steps = [r["step"] for r in have]
        values = [r[key] for r in have]
        ax.plot(steps, values, ".", alpha=0.45, color="tab:blue")
        ax.plot(steps, _ema(values), "-", linewidth=1.8, color="tab:blue", label="EMA 0.2")
        spread_key = key.removesuffix("_mean") + "_std"
        if have and all(spread_key in r for r in have) and spread_key != key:
            std = [r[spread_key] for r in have]
            low = [v - s for v, s in zip(values, std, strict=True)]
            high = [v + s for v, s in zip(values, std, strict=True)]
            ax.fill_between(steps, low, high, alpha=0.15, color="tab:blue", label="±1 std")
            ax.legend(loc="best", fontsize=8)
        extra = [k for k in overlays.get(key, ()) if any(k in r for r in records)]
        for other, colour in zip(extra, ("tab:orange", "tab:gray"), strict=False):
            points = [(r["step"], r[other]) for r in records if other in r]
            style = "--" if other.endswith("chance_reward") else "-"
            ax.plot([p[0] for p in points], _ema([p[1] for p in points]), style,
                    linewidth=1.5, color=colour, label=other)  # fmt: skip
        if extra:
            ax.legend(loc="best", fontsize=8)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
