import os

# No hub on these machines: fail fast instead of retrying the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_lm():
    """(model, tokenizer) of the tiny random LLaMA; tests that train must copy the model."""
    from assay.models import load_causal_lm

    return load_causal_lm("tiny-random-llama")
