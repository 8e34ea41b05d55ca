"""What ``assay analyze --runs a,b,...`` measures: each entry is a run directory (a pretraining
run, or an RL run, with ``checkpoints/step-*`` and ``final/``) or one model (a checkpoint folder,
a registered name such as ``smollm2-135m-instruct``, or a hub id). A :class:`Subject` is that
entry's checkpoints ordered by step, with a way to load each one and its tokenizer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from assay.errors import AssayError


@dataclass(frozen=True)
class Subject:
    label: str
    checkpoints: tuple[tuple[int, str], ...]  # (step, folder or model name), by step
    run_dir: Path | None = None  # set for training runs (exposure log, tokenizer/)

    @property
    def final(self) -> str:
        return self.checkpoints[-1][1]

    @property
    def init(self) -> str | None:
        """The step-0 weights, when the run kept them (``train.save_steps: [0]``)."""
        step, ref = self.checkpoints[0]
        return ref if step == 0 and len(self.checkpoints) > 1 else None

    @property
    def has_exposure(self) -> bool:
        return self.run_dir is not None and (self.run_dir / "exposure.jsonl").exists()


def resolve_subject(spec: str) -> Subject:
    """A run directory (every saved checkpoint) or a single model."""
    from analysis.critical import run_checkpoints

    path = Path(spec)
    label = path.name if path.exists() else spec
    if (path / "checkpoints").is_dir() or (path / "final").is_dir():
        found = run_checkpoints(path)
        return Subject(label, tuple((s, str(p)) for s, p in found), run_dir=path)
    if path.exists() and not (path / "config.json").is_file():
        raise AssayError(
            f"{spec!r} is neither a run directory (checkpoints/, final/) nor a model folder "
            "(config.json)."
        )
    return Subject(label, ((0, spec),))


def load_model(ref: str, device: str = "cpu") -> torch.nn.Module:
    """A checkpoint of any method (CoLA included), a model folder, or a registered/hub name."""
    from pretraining.trainer import load_pretrained

    if Path(ref).is_dir():  # any pretraining method's checkpoint, or any saved model folder
        model = load_pretrained(ref)
    else:
        from assay.models import load_causal_lm

        model = load_causal_lm(ref)[0]
    return model.to(device).float().eval()


def load_tokenizer(subject: Subject):
    from transformers import AutoTokenizer

    if subject.run_dir is not None and (subject.run_dir / "tokenizer").is_dir():
        return AutoTokenizer.from_pretrained(subject.run_dir / "tokenizer")
    if Path(subject.final).is_dir():
        return AutoTokenizer.from_pretrained(subject.final)
    from assay.models import load_causal_lm

    return load_causal_lm(subject.final)[1]
