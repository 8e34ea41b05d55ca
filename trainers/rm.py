"""Train outcome and process reward models (``assay rm train``).

- ORM, ``loss="classification"``: binary cross-entropy between sigmoid(logit) and whether the
  solution's final answer is right (Cobbe et al. 2021's verifier objective, at the last token).
- ORM, ``loss="pairwise"``: Bradley-Terry, -log sigmoid(r_chosen - r_rejected), over pairs of a
  right and a wrong solution to the same problem, trained by TRL's ``RewardTrainer`` on ids that
  assay encoded itself (so training and scoring see the same tokens).
- PRM: cross-entropy at each step tag only (every other position is ignored). With 2 classes the
  target may be soft (a Monte-Carlo fraction y: -(y log p_good + (1 - y) log p_bad)); with 3
  classes the targets are PRM800K ratings -1/0/1.

The classification and PRM losses use a small loop of our own rather than TRL's ``PRMTrainer``:
that trainer tokenizes steps joined by separator *text*, which can merge with neighbouring
characters, while assay's PRM reads scores at step-tag *token ids* placed by
:class:`rewards.rm.RMFormat`; soft labels and 3-class ratings need their own loss too.
"""

from __future__ import annotations

import random
import tempfile
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from assay.errors import ConfigError
from rewards.rm import OutcomeRewardModel, ProcessRewardModel


@dataclass
class RMTrainConfig:
    epochs: int = 2
    batch_size: int = 8
    lr: float = 2e-5
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0
    pairs_per_problem: int = 8
    """Pairwise ORM: at most this many (right, wrong) pairs per problem."""

    def check(self) -> None:
        bad = []
        if self.epochs < 1 or self.batch_size < 1:
            bad.append(f"epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}")
        if not self.lr > 0:
            bad.append(f"lr must be > 0, got {self.lr}")
        if self.pairs_per_problem < 1:
            bad.append(f"pairs_per_problem must be >= 1, got {self.pairs_per_problem}")
        if bad:
            raise ConfigError("Bad reward-model training settings: " + "; ".join(bad) + ".")


# --- ORM -----------------------------------------------------------------------------------------
def orm_examples(
    orm: OutcomeRewardModel, rows: Sequence[dict[str, Any]]
) -> list[tuple[list[int], float]]:
    """(input ids, target in [0, 1]) from rows with ``problem``, ``solution``, ``correct``."""
    return [(orm.encode(r["problem"], r["solution"]), float(r["correct"])) for r in rows]


def train_orm(
    orm: OutcomeRewardModel,
    rows: Sequence[dict[str, Any]],
    config: RMTrainConfig | None = None,
    loss: str = "classification",
) -> list[float]:
    """Train ``orm`` in place; returns the mean loss of each epoch (or each logged step for
    ``pairwise``)."""
    config = config or RMTrainConfig()
    config.check()
    if loss == "pairwise":
        return _train_pairwise(orm, rows, config)
    if loss != "classification":
        raise ConfigError(f"ORM loss must be 'classification' or 'pairwise', got {loss!r}.")
    examples = orm_examples(orm, rows)

    def batch_loss(batch: list[tuple[list[int], float]]) -> tuple[torch.Tensor, int]:
        logits = orm.forward([ids for ids, _ in batch])[:, 0].float()  # (B,)
        target = torch.tensor([y for _, y in batch], device=logits.device)
        return F.binary_cross_entropy_with_logits(logits, target), len(batch)

    return _fit(orm.model, examples, batch_loss, config, "orm")


def preference_pairs(
    rows: Sequence[dict[str, Any]], per_problem: int, seed: int = 0
) -> list[tuple[dict, dict]]:
    """(right, wrong) solution pairs to the same problem, at most ``per_problem`` each."""
    by_problem: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_problem[r["problem"]].append(r)
    rng = random.Random(seed)
    pairs = []
    for group in by_problem.values():
        right = [r for r in group if r["correct"]]
        wrong = [r for r in group if not r["correct"]]
        every = [(a, b) for a in right for b in wrong]
        pairs += rng.sample(every, min(per_problem, len(every)))
    return pairs


def _train_pairwise(orm: OutcomeRewardModel, rows, config: RMTrainConfig) -> list[float]:
    import datasets
    from trl import RewardConfig, RewardTrainer

    pairs = preference_pairs(rows, config.pairs_per_problem, config.seed)
    if not pairs:
        raise ConfigError(
            "Pairwise ORM training needs problems with both a right and a wrong solution; "
            "the data has none (sample more solutions per problem, or use loss=classification)."
        )
    data = datasets.Dataset.from_list(
        [
            {"chosen_ids": orm.encode(a["problem"], a["solution"]),
             "rejected_ids": orm.encode(b["problem"], b["solution"])}
            for a, b in pairs
        ]
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as out:
        args = RewardConfig(
            output_dir=out,
            per_device_train_batch_size=config.batch_size,
            num_train_epochs=config.epochs,
            learning_rate=config.lr,
            weight_decay=config.weight_decay,
            max_grad_norm=config.max_grad_norm,
            seed=config.seed,
            max_length=None,  # RMFormat already cut every input
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            use_cpu=orm.device.type == "cpu",
            bf16=False,
        )
        trainer = RewardTrainer(
            model=orm.model, args=args, train_dataset=data, processing_class=orm.tokenizer
        )
        trainer.train()
    orm.model = trainer.model
    return [h["loss"] for h in trainer.state.log_history if "loss" in h]


# --- PRM -----------------------------------------------------------------------------------------
def prm_examples(
    prm: ProcessRewardModel, rows: Sequence[dict[str, Any]], label_key: str = "labels"
) -> list[tuple[list[int], list[int], list[float]]]:
    """(input ids, step-tag positions, per-step targets) from PRM rows. 2-class targets are the
    ``label_key`` values in [0, 1] (``labels``; ``hard_labels`` for hard MC labels); 3-class
    targets are the ``ratings`` (-1, 0, 1) as classes 0, 1, 2. Rows longer than the model's
    ``max_length`` are skipped with a warning."""
    out, too_long = [], 0
    for r in rows:
        if prm.num_labels == 3:
            if "ratings" not in r:
                raise ConfigError(
                    "A 3-class PRM trains on PRM800K-style 'ratings' (-1/0/1) per step."
                )
            targets = [float(x + 1) for x in r["ratings"]]
        else:
            if label_key not in r:
                raise ConfigError(f"PRM rows have no {label_key!r} field (they have {sorted(r)}).")
            targets = [float(x) for x in r[label_key]]
        ids, positions = prm.encode(r["problem"], r["steps"])
        if len(targets) != len(positions):
            raise ConfigError(f"A PRM row has {len(r['steps'])} steps but {len(targets)} labels.")
        if -1 in positions:
            too_long += 1
        elif positions:
            out.append((ids, positions, targets))
    if too_long:
        warnings.warn(
            f"Skipped {too_long} PRM rows longer than max_length={prm.format.max_length} tokens.",
            stacklevel=2,
        )
    return out


def train_prm(
    prm: ProcessRewardModel,
    rows: Sequence[dict[str, Any]],
    config: RMTrainConfig | None = None,
    label_key: str = "labels",
) -> list[float]:
    """Train ``prm`` in place on step labels (``label_key``, see :func:`prm_examples`); returns
    the mean loss of each epoch."""
    config = config or RMTrainConfig()
    config.check()
    examples = prm_examples(prm, rows, label_key)

    def batch_loss(batch) -> tuple[torch.Tensor, int]:
        logits = prm.forward([ids for ids, _, _ in batch]).float()  # (B, T, C)
        rows_idx = torch.tensor([b for b, (_, pos, _) in enumerate(batch) for _ in pos])
        cols_idx = torch.tensor([p for _, pos, _ in batch for p in pos])
        tag_logits = logits[rows_idx, cols_idx]  # (N_tags, C)
        target = torch.tensor([t for _, _, ts in batch for t in ts], device=logits.device)
        if prm.num_labels == 3:
            return F.cross_entropy(tag_logits, target.long()), len(target)
        log_p = tag_logits.log_softmax(-1)  # soft targets: y on "good", 1 - y on "bad"
        return -(target * log_p[:, 1] + (1 - target) * log_p[:, 0]).mean(), len(target)

    return _fit(prm.model, examples, batch_loss, config, "prm")


# --- held-out metrics ---------------------------------------------------------------------------
def orm_ranking_accuracy(orm: OutcomeRewardModel, rows: Sequence[dict[str, Any]]) -> float | None:
    """Over every (right, wrong) pair of solutions to the same problem, the fraction the ORM
    scores right above wrong (ties count half): what best-of-N reranking needs. None when the
    rows have no such pair."""
    pairs = preference_pairs(rows, per_problem=10**9)
    if not pairs:
        return None
    scores = orm.score_many([(r["problem"], r["solution"]) for pair in pairs for r in pair])
    wins = [
        1.0 if a > b else 0.5 if a == b else 0.0
        for a, b in zip(scores[::2], scores[1::2], strict=True)
    ]
    return sum(wins) / len(wins)


def prm_step_accuracy(prm: ProcessRewardModel, rows: Sequence[dict[str, Any]]) -> float | None:
    """Fraction of steps whose score falls on the same side of 0.5 as their label (soft labels
    rounded); None without rows."""
    if not rows:
        return None
    scores = prm.score_steps_many([(r["problem"], r["steps"]) for r in rows])
    hits = [
        (s >= 0.5) == (y >= 0.5)
        for r, row_scores in zip(rows, scores, strict=True)
        for s, y in zip(row_scores, r["labels"], strict=True)
    ]
    return sum(hits) / max(1, len(hits))


# --- the shared loop -----------------------------------------------------------------------------
def _fit(
    model: torch.nn.Module,
    examples: list,
    batch_loss: Callable[[list], tuple[torch.Tensor, int]],
    config: RMTrainConfig,
    name: str,
) -> list[float]:
    if not examples:
        raise ConfigError(f"No training examples for the {name.upper()} (empty data).")
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=config.lr,
        weight_decay=config.weight_decay,
    )
    rng = random.Random(config.seed)
    history = []
    model.train()
    for epoch in range(config.epochs):
        order = list(range(len(examples)))
        rng.shuffle(order)
        total, count = 0.0, 0
        batches = range(0, len(order), config.batch_size)
        bar = tqdm(batches, desc=f"{name} epoch {epoch + 1}/{config.epochs}", unit="batch")
        for start in bar:
            batch = [examples[i] for i in order[start : start + config.batch_size]]
            loss, n = batch_loss(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            total += loss.item() * n
            count += n
            bar.set_postfix(loss=f"{total / count:.4f}")
        history.append(total / count)
    model.eval()
    return history
