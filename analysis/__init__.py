"""Analysis of checkpoints: loss landscapes and interpolation, spectra of weights and updates,
activation similarity (CKA), BLiMP with critical phrases and delayed generalisation, probes and
attention heads, and the ``assay analyze`` report. Every function takes any transformers causal
LM; the run-level tools read pretraining and RL run directories.

The model-free metrics import nothing heavy; the rest import on first use.
"""

from analysis.similarity import debiased_cka, linear_cka, mean_cosine, relative_l2
from analysis.spectra import (
    count_above,
    effective_rank,
    fraction_above,
    matrix_rank,
    matrix_spectra,
    rank_ratio,
    singular_values,
    spectral_gap,
    spectral_ratio,
    stable_rank,
    summarize_by_projection,
)

__all__ = [
    "analyze",
    "blimp_accuracy_table",
    "count_above",
    "critical_phrase",
    "debiased_cka",
    "effective_rank",
    "fraction_above",
    "interpolate",
    "landscape",
    "linear_cka",
    "matrix_rank",
    "matrix_spectra",
    "mean_cosine",
    "probe_accuracy",
    "rank_ratio",
    "relative_l2",
    "singular_values",
    "spectral_gap",
    "spectral_ratio",
    "stable_rank",
    "summarize_by_projection",
]

_LAZY = {
    "analyze": "analysis.report",
    "blimp_accuracy_table": "analysis.blimp",
    "critical_phrase": "analysis.critical",
    "interpolate": "analysis.interpolation",
    "landscape": "analysis.landscape",
    "probe_accuracy": "analysis.probes",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
