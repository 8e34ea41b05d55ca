"""Outcome and process reward models on a causal-LM backbone.

- :class:`OutcomeRewardModel` (ORM): a sequence classifier (transformers'
  ``AutoModelForSequenceClassification``, one logit read at the last token).
  ``score(problem, solution)`` is sigmoid(logit), the predicted probability that the final answer
  is right. The same model trains with a classification loss or pairwise (Bradley-Terry) through
  TRL's ``RewardTrainer`` (``trainers.rm``).
- :class:`ProcessRewardModel` (PRM): a token classifier (``AutoModelForTokenClassification``, 2 or
  3 classes) read at the step-tag token that closes each step. ``score_steps(problem, steps)``
  is P(good) per step (with 3 classes, P(good) + P(neutral) unless ``neutral="negative"``).

Both encode their input with :class:`RMFormat`, the one encoding used in training and scoring:
the problem as a prompt (the backbone's chat template, or plain ``problem + "\\n"``), then the
solution. For the PRM each step is tokenized on its own and followed by the step-tag token
(``"\\n"`` by default, a single token), so step boundaries never depend on how the tokenizer
merges text across them, and the score of step k is read at exactly the k-th tag.

A saved model is a transformers folder plus ``assay_rm.json`` (its kind and format), loaded back
with :func:`load_reward_model`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch

from assay.errors import ConfigError
from rewards.rm.steps import check_splitter, split_steps

META_FILE = "assay_rm.json"
Kind = Literal["orm", "prm"]


@dataclass(frozen=True)
class RMFormat:
    """How a (problem, solution) pair becomes token ids; saved with the model."""

    template: Literal["chat", "plain"] = "chat"
    split: str = "newline"
    """Step splitter (``rewards.rm.steps``) used to cut solutions into steps."""
    step_tag: str = "\n"
    """Text of the token that closes every step (must be one token)."""
    max_length: int = 1024
    """Inputs longer than this keep their last ``max_length`` tokens. A PRM step whose tag is
    cut off gets position -1: it scores 0.0, and training skips such rows."""
    neutral: Literal["positive", "negative"] = "positive"
    """With a 3-class PRM, whether P(neutral) counts toward a step's score."""

    def __post_init__(self):
        check_splitter(self.split)
        if self.template not in ("chat", "plain"):
            raise ConfigError(f"template must be 'chat' or 'plain', got {self.template!r}.")

    def prompt_ids(self, tokenizer, problem: str) -> list[int]:
        if self.template == "chat" and getattr(tokenizer, "chat_template", None):
            messages = [{"role": "user", "content": problem}]
            return list(
                tokenizer.apply_chat_template(
                    messages, add_generation_prompt=True, tokenize=True, return_dict=False
                )
            )
        return tokenizer(problem + "\n", add_special_tokens=False)["input_ids"]

    def tag_id(self, tokenizer) -> int:
        ids = tokenizer(self.step_tag, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise ConfigError(
                f"step_tag {self.step_tag!r} is {len(ids)} tokens for this tokenizer; pick text "
                "that is one token (the default '\\n' is for most tokenizers)."
            )
        return ids[0]

    def solution_ids(self, tokenizer, problem: str, solution: str) -> list[int]:
        """ORM input: prompt then solution, cut from the left to ``max_length``."""
        ids = self.prompt_ids(tokenizer, problem)
        ids += tokenizer(solution.strip(), add_special_tokens=False)["input_ids"]
        return ids[-self.max_length :]

    def steps_ids(
        self, tokenizer, problem: str, steps: Sequence[str]
    ) -> tuple[list[int], list[int]]:
        """PRM input and the positions of the step tags (one per step)."""
        tag = self.tag_id(tokenizer)
        ids = self.prompt_ids(tokenizer, problem)
        positions = []
        for step in steps:
            ids += tokenizer(step.strip(), add_special_tokens=False)["input_ids"] + [tag]
            positions.append(len(ids) - 1)
        cut = max(0, len(ids) - self.max_length)
        return ids[cut:], [p - cut if p >= cut else -1 for p in positions]


def _pad_right(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids, mask  # (B, T), (B, T)


class _RewardModel:
    kind: Kind

    def __init__(
        self, model, tokenizer, fmt: RMFormat | None = None, batch_size: int | None = None
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.format = fmt or RMFormat()
        self.batch_size = batch_size
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id

    @property
    def batch_size(self) -> int:
        """Inputs per forward pass: as set, or 4 on a CPU (larger padded batches were slower on
        a 2-core CPU: 3.4 vs 4.1 SmolLM2 solutions/s at 16 vs 4) and 16 on a GPU."""
        if self._batch_size is not None:
            return self._batch_size
        return 4 if self.device.type == "cpu" else 16

    @batch_size.setter
    def batch_size(self, value: int | None) -> None:
        self._batch_size = value

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device):
        self.model.to(device)
        return self

    def forward(self, rows: list[list[int]]) -> torch.Tensor:
        """Logits of a right-padded batch: (B, 1) for the ORM, (B, T, C) for the PRM."""
        ids, mask = _pad_right(rows, self.tokenizer.pad_token_id)
        return self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        meta = {"kind": self.kind, "format": asdict(self.format)}
        (path / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        return path


class OutcomeRewardModel(_RewardModel):
    """P(the final answer is right) for a whole solution (see the module docstring)."""

    kind: Kind = "orm"

    @classmethod
    def from_backbone(
        cls, name: str, fmt: RMFormat | None = None, seed: int = 0, device: str = "cpu"
    ) -> OutcomeRewardModel:
        model, tokenizer = _load_with_head(name, "orm", 1, seed)
        return cls(model.to(device), tokenizer, fmt)

    def encode(self, problem: str, solution: str) -> list[int]:
        return self.format.solution_ids(self.tokenizer, problem, solution)

    @torch.no_grad()
    def score_many(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """``score`` of every (problem, solution) pair, batched (longest-first, to pad little)."""
        encoded = [self.encode(p, s) for p, s in pairs]
        out = [0.0] * len(encoded)
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        self.model.eval()
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            probs = torch.sigmoid(self.forward([encoded[i] for i in chunk])[:, 0].float())
            for i, p in zip(chunk, probs.tolist(), strict=True):
                out[i] = p
        return out

    def score(self, problem: str, solution: str) -> float:
        return self.score_many([(problem, solution)])[0]


class ProcessRewardModel(_RewardModel):
    """P(step k is good) for every step of a solution (see the module docstring)."""

    kind: Kind = "prm"

    @classmethod
    def from_backbone(
        cls,
        name: str,
        fmt: RMFormat | None = None,
        num_labels: int = 2,
        seed: int = 0,
        device: str = "cpu",
    ) -> ProcessRewardModel:
        if num_labels not in (2, 3):
            raise ConfigError(
                f"A PRM has 2 (bad, good) or 3 (bad, neutral, good) classes, got {num_labels}."
            )
        model, tokenizer = _load_with_head(name, "prm", num_labels, seed)
        return cls(model.to(device), tokenizer, fmt)

    @property
    def num_labels(self) -> int:
        return int(self.model.config.num_labels)

    def encode(self, problem: str, steps: Sequence[str]) -> tuple[list[int], list[int]]:
        return self.format.steps_ids(self.tokenizer, problem, steps)

    def good_probability(self, logits: torch.Tensor) -> torch.Tensor:
        """(..., C) logits -> (...) P(good); classes are (bad, good) or (bad, neutral, good)."""
        probs = logits.float().softmax(-1)
        if self.num_labels == 2:
            return probs[..., 1]
        good = probs[..., 2]
        return good + probs[..., 1] if self.format.neutral == "positive" else good

    @torch.no_grad()
    def score_steps_many(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[list[float]]:
        """``score_steps`` of every (problem, steps) item, batched."""
        encoded = [self.encode(p, s) for p, s in items]
        out: list[list[float]] = [[] for _ in encoded]
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i][0]))
        self.model.eval()
        for start in range(0, len(order), self.batch_size):
            chunk = [i for i in order[start : start + self.batch_size] if encoded[i][1]]
            if not chunk:
                continue
            good = self.good_probability(self.forward([encoded[i][0] for i in chunk]))  # (B, T)
            for row, i in enumerate(chunk):
                out[i] = [good[row, p].item() if p >= 0 else 0.0 for p in encoded[i][1]]
        return out

    def score_steps(self, problem: str, steps: Sequence[str]) -> list[float]:
        return self.score_steps_many([(problem, steps)])[0]

    def score_solutions(self, pairs: Sequence[tuple[str, str]]) -> list[list[float]]:
        """Per-step scores of whole solutions, cut into steps by the model's own splitter."""
        return self.score_steps_many([(p, split_steps(s, self.format.split)) for p, s in pairs])


def _load_with_head(name: str, kind: Kind, num_labels: int, seed: int):
    """The backbone ``name`` (registered name, folder or hub id) with a fresh, seeded head."""
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification
    from transformers import logging as hf_logging

    from assay.models import load_tokenizer_and_dir

    tokenizer, source = load_tokenizer_and_dir(name)
    head = AutoModelForSequenceClassification if kind == "orm" else AutoModelForTokenClassification
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "some weights were newly initialised": the head, expected
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = head.from_pretrained(source, num_labels=num_labels)
    finally:
        hf_logging.set_verbosity(verbosity)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def load_reward_model(
    path: str | Path, device: str = "cpu"
) -> OutcomeRewardModel | ProcessRewardModel:
    """A reward model saved by ``save`` (``assay rm train``)."""
    from transformers import (
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        AutoTokenizer,
    )

    meta_path = Path(path) / META_FILE
    if not meta_path.exists():
        raise ConfigError(
            f"{path} is not a saved assay reward model (no {META_FILE}); train one with `assay rm train`."
        )
    meta = json.loads(meta_path.read_text())
    fmt = RMFormat(**meta["format"])
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if meta["kind"] == "orm":
        model = AutoModelForSequenceClassification.from_pretrained(path)
        return OutcomeRewardModel(model.to(device), tokenizer, fmt)
    model = AutoModelForTokenClassification.from_pretrained(path)
    return ProcessRewardModel(model.to(device), tokenizer, fmt)
