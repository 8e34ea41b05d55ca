"""Corpora as lists of documents, and the byte-level BPE tokenizer trained on them.

Corpus specs (``data.corpus`` / ``data.eval_corpus`` in a pretraining config):

- ``wikitext2`` / ``wikitext2-test``: WikiText-2's validation / test split, shipped as package
  data (the tokenized version, with ``<unk>`` and ``@-@``); one document per article
  (`` = Title = `` heading). The default trains on the validation split and evaluates on test,
  since the 11 MB train split is not shipped (pass ``hf:wikitext:wikitext-2-raw-v1`` where a hub
  is reachable).
- ``hf:NAME[:CONFIG][:SPLIT]``: any ``datasets`` text dataset (its ``text`` column), for users
  with a hub or a local datasets cache.
- a path: a ``datasets`` folder saved with ``save_to_disk`` (``text`` column), a ``.txt`` file
  (documents separated by blank lines) or a ``.jsonl`` file (one ``{"text": ...}`` per line).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from assay.errors import ConfigError
from assay.paths import cache_dir
from pretraining.config import PretrainConfig
from pretraining.packing import PackedData, pack, tokenize_documents

_DATA = resources.files("pretraining") / "data" / "corpus"
_PACKAGED = {"wikitext2": "wikitext2_valid.txt.gz", "wikitext2-test": "wikitext2_test.txt.gz"}
_HEADING = re.compile(r"^ = [^=].* = $")

SPECIAL_TOKENS = ("<|endoftext|>", "<|pad|>")


def split_wikitext(text: str) -> list[str]:
    """One document per article: a top-level `` = Title = `` line starts a new one."""
    docs: list[list[str]] = []
    for line in text.splitlines():
        if _HEADING.match(line) or not docs:
            docs.append([])
        docs[-1].append(line.strip())
    joined = ("\n".join(x for x in lines if x) for lines in docs)
    return [d for d in joined if d]


def load_corpus(spec: str) -> list[str]:
    """The documents of a corpus spec (see the module docstring)."""
    if spec in _PACKAGED:
        with gzip.open(_DATA.joinpath(_PACKAGED[spec]).open("rb"), "rt") as f:
            return split_wikitext(f.read())
    if spec.startswith("hf:"):
        return _load_hub(spec)
    path = Path(spec)
    if not path.exists():
        raise ConfigError(
            f"Corpus {spec!r} is neither a shipped corpus ({', '.join(_PACKAGED)}), "
            "an hf:NAME[:CONFIG][:SPLIT] dataset, nor an existing path."
        )
    if path.is_dir():
        import datasets

        rows = datasets.load_from_disk(str(path))
        if "text" not in rows.column_names:
            raise ConfigError(f"Dataset {spec!r} has no 'text' column ({rows.column_names}).")
        return [t for t in rows["text"] if t.strip()]
    if path.suffix == ".jsonl":
        lines = path.read_text().splitlines()
        return [json.loads(line)["text"] for line in lines if line.strip()]
    return [d.strip() for d in re.split(r"\n\s*\n", path.read_text()) if d.strip()]


def _load_hub(spec: str) -> list[str]:
    import datasets

    parts = spec.removeprefix("hf:").split(":")
    name, config = parts[0], parts[1] if len(parts) > 1 and parts[1] else None
    split = parts[2] if len(parts) > 2 else "train"
    try:
        rows = datasets.load_dataset(name, config, split=split)
    except Exception as err:  # offline, unknown name, ...: one sentence, not a traceback
        raise ConfigError(
            f"Could not load {spec!r} from the Hugging Face hub or its cache ({type(err).__name__}); "
            "use a shipped corpus (wikitext2) or a local path instead."
        ) from None
    return [t for t in rows["text"] if t.strip()]


def corpus_fingerprint(documents: list[str]) -> str:
    digest = hashlib.sha256()
    for doc in documents:
        digest.update(doc.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def train_tokenizer(documents: list[str], vocab_size: int, out_dir: Path | None = None):
    """A byte-level BPE (``tokenizers``) trained on ``documents``, wrapped as a transformers fast
    tokenizer with ``<|endoftext|>`` as EOS/BOS and ``<|pad|>`` for padding.

    Trained once per (corpus, vocab size) and cached under ``out_dir`` when given.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if out_dir is not None and (out_dir / "tokenizer.json").exists():
        return PreTrainedTokenizerFast.from_pretrained(str(out_dir))
    if vocab_size < 300:
        raise ConfigError(f"data.vocab_size must be >= 300 (256 bytes + merges), got {vocab_size}.")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(documents, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token=SPECIAL_TOKENS[0],
        bos_token=SPECIAL_TOKENS[0],
        pad_token=SPECIAL_TOKENS[1],
    )
    if out_dir is not None:
        tokenizer.save_pretrained(str(out_dir))
    return tokenizer


# --- a pretraining run's corpus -------------------------------------------------------------


@dataclass
class Corpus:
    tokenizer: Any
    train: PackedData
    eval: PackedData | None
    meta: dict[str, Any]


def _documents(spec: str, config: PretrainConfig) -> tuple[list[str], dict[str, Any]]:
    documents = load_corpus(spec)
    meta: dict[str, Any] = {"corpus": spec, "documents": len(documents)}
    s = config.data.simplify
    if s.enabled:
        from pretraining.simplify import simple_vocabulary, simplify

        vocab = simple_vocabulary(path=s.vocab_file) if s.vocab_file else simple_vocabulary(
            **({"top_n": s.top_n} if s.top_n else {})
        )  # fmt: skip
        spans = simplify(documents, vocab, max_oov=s.max_oov, min_words=s.min_words)
        meta.update(simplified_spans=len(spans), vocabulary=len(vocab))
        documents = [span.text for span in spans]
    return documents, meta


def prepare_corpus(config: PretrainConfig, data_dir: Path) -> Corpus:
    """Tokenizer (trained once per corpus and size, then cached) and packed train/eval windows."""
    from transformers import AutoTokenizer

    documents, meta = _documents(config.data.corpus, config)
    if config.data.tokenizer:
        tokenizer = AutoTokenizer.from_pretrained(config.data.tokenizer)
    else:
        key = f"{corpus_fingerprint(documents)}-{config.data.vocab_size}"
        tokenizer = train_tokenizer(documents, config.data.vocab_size, cache_dir() / "bpe" / key)
    eos = tokenizer.eos_token_id
    seq_len = config.model.seq_len
    train = pack(tokenize_documents(documents, tokenizer), seq_len, eos)
    if config.data.max_train_tokens is not None:
        keep = max(1, config.data.max_train_tokens // seq_len)
        train = PackedData(train.windows[:keep], train.doc_starts)
    evaluation = None
    if config.data.eval_corpus:
        eval_docs = load_corpus(config.data.eval_corpus)
        evaluation = pack(tokenize_documents(eval_docs, tokenizer), seq_len, eos)
        evaluation = PackedData(
            evaluation.windows[: config.train.eval_windows], evaluation.doc_starts
        )
    meta.update(train_windows=len(train), train_tokens=train.num_tokens, seq_len=seq_len)
    return Corpus(tokenizer, train, evaluation, meta)
