"""The pretraining job's typed config (``assay pretrain --config configs/pretrain_tiny.yaml``).

Each field is documented once, here; YAML files and ``dotted.key=value`` overrides fill it, and
every problem is reported together before any work starts (see :mod:`assay.config`). Overrides
may also use the short forms ``method=relora`` and ``max_steps=200`` (see :func:`expand_short`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pretraining.models import MODEL_SHAPES

MethodName = Literal["full", "relora", "galore", "fira", "cola", "sltrain"]


@dataclass
class ModelConfig:
    size: str = "llama-1m"  # a name from pretraining.models.MODEL_SHAPES
    seq_len: int = 128  # tokens per packed window (and the model's max positions)
    tie_embeddings: bool = False

    def problems(self) -> list[str]:
        if self.size not in MODEL_SHAPES:
            return [f"size: unknown model {self.size!r}; known: {', '.join(MODEL_SHAPES)}"]
        return [] if self.seq_len >= 8 else [f"seq_len: must be >= 8, got {self.seq_len}"]


@dataclass
class SimplifyConfig:
    """Simplified-language filtering (Muckatira et al. 2024): keep spans of at least
    ``min_words`` words whose out-of-vocabulary rate against a simple vocabulary is at most
    ``max_oov``."""

    enabled: bool = False
    top_n: int | None = (
        None  # simple vocabulary = the top-N English words (wordfreq); None: default
    )
    vocab_file: str | None = None  # or a word list, one word per line (e.g. AO-CHILDES)
    max_oov: float = 0.01
    min_words: int = 32


@dataclass
class DataConfig:
    corpus: str = "wikitext2"  # see pretraining.corpus: wikitext2, hf:NAME[:CONFIG][:SPLIT], a path
    eval_corpus: str | None = "wikitext2-test"  # held-out documents for perplexity; None: skip
    vocab_size: int = 4096  # BPE vocabulary trained on the corpus (cached per corpus and size)
    tokenizer: str | None = None  # a saved tokenizer folder instead of training one
    max_train_tokens: int | None = None  # cut the packed corpus to this many tokens (data budget D)
    simplify: SimplifyConfig = field(default_factory=SimplifyConfig)


@dataclass
class OptimConfig:
    lr: float = 3e-3
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio at max_steps
    warmup_steps: int = 20
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    grad_clip: float = 1.0  # max global grad norm; 0 disables clipping


@dataclass
class ReLoRAConfig:
    """ReLoRA (Lialin et al. 2023): W x + (alpha/r)·B(A x) on attention and MLP, merged and
    re-initialised every ``reset_every`` steps, with Adam state pruning and a jagged cosine."""

    rank: int = 16
    alpha: float = 32.0
    reset_every: int = 50
    restart_warmup_steps: int = 10
    prune: Literal["random", "magnitude"] = "random"
    prune_fraction: float = 0.99  # fraction of each LoRA tensor's Adam moments set to zero
    warm_start: str | None = None  # a dense checkpoint to start from (full-rank warm start)


@dataclass
class GaLoreConfig:
    """GaLore (Zhao et al. 2024) / Fira (Chen et al. 2024) gradient projection, through their
    PyPI packages (``galore-torch``, ``fira``), on attention and MLP weights."""

    rank: int = 16
    update_proj_gap: int = 50  # steps between SVDs of the gradient
    scale: float = 0.25  # GaLore's alpha; Fira's alpha
    proj_type: Literal["std", "reverse_std", "left", "right", "full"] = "std"


@dataclass
class CoLAConfig:
    rank: int = 16


@dataclass
class SLTrainConfig:
    rank: int = 16
    alpha: float = 32.0
    density: float = 0.03  # share of each weight matrix in the fixed random sparse support


@dataclass
class MethodConfig:
    name: MethodName = "full"
    relora: ReLoRAConfig = field(default_factory=ReLoRAConfig)
    galore: GaLoreConfig = field(default_factory=GaLoreConfig)
    cola: CoLAConfig = field(default_factory=CoLAConfig)
    sltrain: SLTrainConfig = field(default_factory=SLTrainConfig)


@dataclass
class PretrainTrainConfig:
    max_steps: int = 300
    batch_size: int = 16  # windows per optimizer step, over all ranks (global batch)
    micro_batch_size: int = 16  # windows per forward pass on one rank; accumulation fills the rest
    eval_every: int = 50
    eval_windows: int = 64  # held-out windows scored at each eval
    checkpoint_every: int = 100
    keep_checkpoints: int = 1  # older ones are deleted; the final model is always kept
    save_steps: list[int] = field(default_factory=list)  # extra checkpoints kept forever (0: init)
    seed: int = 0
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"  # auto: bf16 autocast on CUDA
    device: str = "auto"
    output_dir: str = "runs"
    run_name: str | None = None
    log_exposure: bool = True  # exposure.jsonl: which windows each step read
    tensorboard: bool = False
    sharding: Literal["none", "fsdp"] = "none"  # fsdp: FSDP2 over the ranks instead of DDP

    def problems(self) -> list[str]:
        out = [
            f"{name}: must be a whole number >= {low}, got {getattr(self, name)!r}"
            for name, low in (
                ("max_steps", 1),
                ("batch_size", 1),
                ("micro_batch_size", 1),
                ("eval_every", 1),
                ("eval_windows", 1),
                ("checkpoint_every", 1),
                ("keep_checkpoints", 1),
            )  # fmt: skip
            if getattr(self, name) < low
        ]
        if out:  # the checks below divide by these
            return out
        if self.batch_size % self.micro_batch_size:
            out.append(
                f"batch_size: {self.batch_size} is not a multiple of micro_batch_size "
                f"{self.micro_batch_size}"
            )
        return out


SHARDING_REFUSALS = {
    name: f"train.sharding: fsdp shards methods full and relora only; {name} {why}, so train it with "
    "train.sharding: none (DDP)"
    for name, why in {
        "galore": "projects each weight's whole gradient with an SVD projector of its own, and "
        "a rank holds only a shard of each gradient",
        "fira": "projects each weight's whole gradient with an SVD projector of its own, and a "
        "rank holds only a shard of each gradient",
        "cola": "has factorised layers that have not been run under FSDP2 yet",
        "sltrain": "scatters its sparse values by whole-matrix indices, which has not been "
        "run under FSDP2 yet",
    }.items()
}


@dataclass
class PretrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    train: PretrainTrainConfig = field(default_factory=PretrainTrainConfig)

    def problems(self) -> list[str]:
        out = []
        if self.train.sharding == "fsdp" and self.method.name in SHARDING_REFUSALS:
            out.append(SHARDING_REFUSALS[self.method.name])
        relora, warmup = self.method.relora, min(self.optim.warmup_steps, self.train.max_steps - 1)
        if self.method.name == "relora" and relora.reset_every < warmup:
            out.append(
                f"method.relora.reset_every: {relora.reset_every} is shorter than the warmup "
                f"({warmup} steps); the first reset would fall inside it"
            )
        if self.method.name == "relora" and relora.restart_warmup_steps > relora.reset_every:
            out.append(
                f"method.relora.restart_warmup_steps: {relora.restart_warmup_steps} is longer "
                f"than reset_every ({relora.reset_every})"
            )
        return out


# Short override names for the commands people type most.
SHORT_KEYS = {
    "method": "method.name",
    "max_steps": "train.max_steps",
    "size": "model.size",
    "lr": "optim.lr",
    "seed": "train.seed",
    "run_name": "train.run_name",
}


def expand_short(overrides: list[str]) -> list[str]:
    """``method=relora`` -> ``method.name=relora``; dotted keys pass through unchanged."""
    out = []
    for item in overrides:
        key, sep, value = item.partition("=")
        out.append(f"{SHORT_KEYS[key]}={value}" if sep and key in SHORT_KEYS else item)
    return out
