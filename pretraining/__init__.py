"""Pretraining: LLaMA-style configs by name, a BPE tokenizer and packed data with a recorded read
order, simplified-language filtering, one trainer for full-rank and low-rank methods (ReLoRA,
GaLore, Fira, CoLA, SLTrain), an exposure log with a phrase index, scaling-law fits, iterative
magnitude pruning and zero-shot evaluation on simple-vocabulary subsets.

Heavy modules (the trainer, transformers models) are imported on first use.
"""

from pretraining.config import PretrainConfig
from pretraining.exposure import ExposureIndex, ExposureLog, build_exposure_index
from pretraining.models import MODEL_SHAPES, count_parameters, list_models, llama_config
from pretraining.scaling import PowerLawFit, fit_power_law, scaling_fits
from pretraining.schedules import jagged_cosine, warmup_cosine

__all__ = [
    "MODEL_SHAPES",
    "ExposureIndex",
    "ExposureLog",
    "PowerLawFit",
    "PretrainConfig",
    "build_exposure_index",
    "count_parameters",
    "fit_power_law",
    "jagged_cosine",
    "list_models",
    "llama_config",
    "load_pretrained",
    "run_pretrain",
    "scaling_fits",
    "warmup_cosine",
]


def __getattr__(name: str):
    if name in ("run_pretrain", "load_pretrained"):
        from pretraining import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'pretraining' has no attribute {name!r}")
