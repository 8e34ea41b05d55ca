"""Corpus loading, the BPE tokenizer, packing with provenance, and the recorded read order."""

import numpy as np
import pytest

from assay.errors import ConfigError
from pretraining.corpus import load_corpus, split_wikitext, train_tokenizer
from pretraining.models import MODEL_SHAPES, build_model, count_parameters, llama_config
from pretraining.packing import epoch_order, pack, step_windows


def test_wikitext_ships_and_splits_into_articles():
    docs = load_corpus("wikitext2")
    assert len(docs) == 60  # the validation split has 60 top-level `` = Title = `` headings
    assert docs[0].startswith("= Homarus gammarus =")
    assert all(not d.startswith("= = ") for d in docs)  # sub-headings stay inside their article
    assert len(load_corpus("wikitext2-test")) == 62  # 64 heading-like lines, 2 are text


def test_split_wikitext_keeps_sections_with_their_article():
    text = " = A = \n alpha \n = = Sub = = \n beta \n = B = \n gamma \n"
    assert split_wikitext(text) == ["= A =\nalpha\n= = Sub = =\nbeta", "= B =\ngamma"]


def test_unknown_corpus_and_offline_hub_fail_in_one_sentence():
    with pytest.raises(ConfigError, match="neither a shipped corpus"):
        load_corpus("wikitext3")
    with pytest.raises(ConfigError, match="Could not load 'hf:no/such-dataset'"):
        load_corpus("hf:no/such-dataset")


def test_text_and_jsonl_corpora(tmp_path):
    (tmp_path / "c.txt").write_text("one doc\nstill one\n\nsecond doc\n")
    assert load_corpus(str(tmp_path / "c.txt")) == ["one doc\nstill one", "second doc"]
    (tmp_path / "c.jsonl").write_text('{"text": "a b"}\n{"text": "c"}\n')
    assert load_corpus(str(tmp_path / "c.jsonl")) == ["a b", "c"]


def test_bpe_tokenizer_round_trips_text_and_is_cached(tmp_path):
    docs = load_corpus("wikitext2")[:5]
    tokenizer = train_tokenizer(docs, 400, tmp_path / "tok")
    assert len(tokenizer) == 400
    text = docs[1][:300]
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    again = train_tokenizer(["unrelated"], 400, tmp_path / "tok")  # read back, not retrained
    assert again(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert tokenizer.eos_token_id != tokenizer.pad_token_id


def test_windows_are_slices_of_the_document_stream_with_provenance():
    rng = np.random.default_rng(0)
    docs = [list(rng.integers(1, 50, size=n)) for n in (5, 17, 3, 40, 9)]
    data = pack(docs, seq_len=8, eos_id=0)
    stream = [t for d in docs for t in [*d, 0]]
    assert len(data) == len(stream) // 8
    for w in range(len(data)):
        assert data.windows[w].tolist() == stream[w * 8 : (w + 1) * 8]
        rebuilt = []
        for doc, start, end, offset in data.provenance(w):
            assert offset == len(rebuilt)
            rebuilt += [*docs[doc], 0][start:end]
        assert rebuilt == data.windows[w].tolist()


def test_read_order_is_a_permutation_per_epoch_and_fixed_by_the_seed():
    n = 10
    first = np.concatenate([step_windows(s, 4, n, seed=3) for s in range(5)])  # 20 = 2 epochs
    assert sorted(first[:10]) == list(range(n)) and sorted(first[10:]) == list(range(n))
    assert first[:10].tolist() == epoch_order(n, 3, 0).tolist()
    assert first.tolist() == np.concatenate([step_windows(s, 4, n, 3) for s in range(5)]).tolist()
    assert step_windows(0, 4, n, seed=4).tolist() != step_windows(0, 4, n, seed=3).tolist()


def test_named_shapes_build_llama_models_with_the_stated_sizes():
    config = llama_config("llama-60m", vocab_size=32000, max_len=256)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (512, 8, 8)
    assert config.intermediate_size == 1376
    assert MODEL_SHAPES["llama-1.3b"].ffn == 5461
    model = build_model(llama_config("llama-1m", vocab_size=4096, max_len=128))
    counts = count_parameters(model)
    assert 0.5e6 < counts["total"] < 1.5e6
    assert counts["total"] - counts["non_embedding"] == 2 * 4096 * 64  # untied in and out
    with pytest.raises(ConfigError, match="Did you mean 'llama-60m'"):
        llama_config("llama-60", vocab_size=10, max_len=8)
