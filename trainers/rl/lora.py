"""LoRA adapters (``peft``) on the policy, and the merged weights an engine without adapter
support loads."""

from __future__ import annotations

import torch

from trainers.rl.config import RLConfig


def is_peft(model) -> bool:
    return hasattr(model, "peft_config")


def base_model(model):
    return model.get_base_model() if is_peft(model) else model


def add_lora(model, config: RLConfig):
    """Wrap ``model`` with trainable LoRA adapters (``peft``); the base weights are frozen."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:  # pragma: no cover - peft is a dependency
        raise ImportError("lora.enabled needs the peft package: pip install peft") from None
    lora = config.lora
    tied = getattr(base_model(model).config, "tie_word_embeddings", False)
    if tied and {"lm_head", "embed_tokens"} & set(lora.target_modules):
        raise ValueError(
            "lora.target_modules may not include lm_head or embed_tokens on a model with tied "
            "embeddings: merged weights would differ between the two tied matrices"
        )
    peft_config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        task_type="CAUSAL_LM",
    )
    # peft draws the adapters' initial A matrices from torch's global RNG: seed it from the run's
    # seed, so two runs with the same config start from the same adapters (and the global RNG
    # is left as it was for everything else).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.train.seed)
        return get_peft_model(model, peft_config)


def merged_state_dict(peft_model) -> dict[str, torch.Tensor]:
    """Base-model state dict with every LoRA delta added to its weight, under the plain model's
    parameter names (what an engine without adapter support loads)."""
    from peft.tuners.lora import LoraLayer

    base = peft_model.get_base_model()
    deltas = {}
    for name, module in base.named_modules():
        if isinstance(module, LoraLayer):
            for adapter in module.active_adapters:
                if adapter in module.lora_A:
                    delta = module.get_delta_weight(adapter).detach()
                    deltas[f"{name}.weight"] = deltas.get(f"{name}.weight", 0) + delta
    out = {}
    for key, value in base.state_dict().items():
        if "lora_" in key:
            continue
        plain = key.replace(".base_layer.", ".")
        out[plain] = value + deltas[plain].to(value.dtype) if plain in deltas else value
    return out
