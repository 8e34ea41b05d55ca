"""assay: train language models with verifiable rewards.

The front door: the CLI (``assay ...``), config loading, the model registry and run directories.
"""

from assay.errors import AssayError, CheckpointError, ConfigError, EnvNotFound, ModelNotFound
from assay.models import load_causal_lm, load_embedder

__version__ = "0.1.0"

__all__ = [
    "AssayError",
    "CheckpointError",
    "ConfigError",
    "EnvNotFound",
    "ModelNotFound",
    "load_causal_lm",
    "load_embedder",
]
