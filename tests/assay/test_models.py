import pytest
import torch

from assay.errors import ModelNotFound
from assay.models import load_causal_lm, load_embedder


def test_unknown_model_offline_fails_with_one_clear_sentence():
    with pytest.raises(ModelNotFound) as err:
        load_causal_lm("smollm3-135m-instruct")
    message = str(err.value)
    assert message.startswith(
        "Could not load model 'smollm3-135m-instruct': it is not a registered name"
    )
    assert "Did you mean 'smollm2-135m-instruct'?" in message
    assert "Use a registered name, a local path, or a hub id with network access." in message
    assert "\n" not in message and "Traceback" not in message


def test_tiny_random_llama_is_deterministic_and_small():
    a, tokenizer = load_causal_lm("tiny-random-llama")
    b, _ = load_causal_lm("tiny-random-llama")
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    assert sum(p.numel() for p in a.parameters()) < 5_000_000
    assert tokenizer.pad_token is not None and len(tokenizer) == a.config.vocab_size


def test_saved_checkpoint_loads_by_path(tmp_path, tiny_lm):
    model, tokenizer = tiny_lm
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    again, _ = load_causal_lm(str(tmp_path))
    assert all(
        torch.equal(x, y) for x, y in zip(model.parameters(), again.parameters(), strict=True)
    )


def test_minilm_embedder_gives_sensible_associations():
    model = load_embedder("minilm-l6")
    ocean, beach, piano = model.encode(["ocean", "beach", "piano"], normalize_embeddings=True)
    assert ocean @ beach > ocean @ piano + 0.1


@pytest.mark.smollm2
def test_smollm2_loads_from_the_embedded_gguf_and_answers():
    model, tokenizer = load_causal_lm("smollm2-135m-instruct")
    assert model.config.num_hidden_layers == 30 and not hasattr(model.config, "quantization_config")
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, ids["input_ids"].shape[1] :])
