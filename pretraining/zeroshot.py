"""Zero-shot evaluation of small causal LMs on simple-vocabulary benchmarks.

Muckatira et al. (2024), "Emergent Abilities in Reduced-Scale Generative Language Models",
evaluate models pretrained on simplified text (:mod:`pretraining.simplify`) on evaluation sets
filtered to examples whose words all lie in the simple vocabulary. Here:

- BLiMP (Warstadt et al., 2020): a minimal pair is right when log p(good) > log p(bad).
- The ICL classification tasks of :mod:`envs.icl`, zero-shot: the prompt is the task
  description, the input and an answer cue; the prediction is the label word with the highest
  log-probability as a continuation, raw and calibrated against a content-free input
  ("N/A"; Zhao et al., 2021, "Calibrate Before Use").

Scoring is by summed token log-probabilities, batched with right padding and no gradients.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from assay.errors import AssayError, ConfigError, did_you_mean
from pretraining.logprob import continuation_logprob, sequence_logprob
from pretraining.simplify import in_vocab, words

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from envs.icl.tasks import Example, ICLTask

# Shipped as package data (pretraining/data/blimp): agreement, anaphora, NPIs, filler-gap, islands.
BLIMP_DEFAULT = (
    "determiner_noun_agreement_1",
    "regular_plural_subject_verb_agreement_1",
    "anaphor_number_agreement",
    "npi_present_1",
    "wh_questions_object_gap",
    "adjunct_island",
)
ICL_DEFAULT = ("sst2", "agnews", "rte", "trec", "cb")
# The 67 BLiMP paradigms, so a typo fails with a suggestion instead of a hub look-up.
# (One string split, not 67 quoted lines.)
BLIMP_PARADIGMS = tuple(
    """adjunct_island anaphor_gender_agreement anaphor_number_agreement animate_subject_passive
    animate_subject_trans causative complex_NP_island
    coordinate_structure_constraint_complex_left_branch
    coordinate_structure_constraint_object_extraction determiner_noun_agreement_1
    determiner_noun_agreement_2 determiner_noun_agreement_irregular_1
    determiner_noun_agreement_irregular_2 determiner_noun_agreement_with_adj_2
    determiner_noun_agreement_with_adj_irregular_1 determiner_noun_agreement_with_adj_irregular_2
    determiner_noun_agreement_with_adjective_1 distractor_agreement_relational_noun
    distractor_agreement_relative_clause drop_argument ellipsis_n_bar_1 ellipsis_n_bar_2
    existential_there_object_raising existential_there_quantifiers_1
    existential_there_quantifiers_2 existential_there_subject_raising expletive_it_object_raising
    inchoative intransitive irregular_past_participle_adjectives irregular_past_participle_verbs
    irregular_plural_subject_verb_agreement_1 irregular_plural_subject_verb_agreement_2
    left_branch_island_echo_question left_branch_island_simple_question
    matrix_question_npi_licensor_present npi_present_1 npi_present_2 only_npi_licensor_present
    only_npi_scope passive_1 passive_2 principle_A_c_command principle_A_case_1
    principle_A_case_2 principle_A_domain_1 principle_A_domain_2 principle_A_domain_3
    principle_A_reconstruction regular_plural_subject_verb_agreement_1
    regular_plural_subject_verb_agreement_2 sentential_negation_npi_licensor_present
    sentential_negation_npi_scope sentential_subject_island superlative_quantifiers_1
    superlative_quantifiers_2 tough_vs_raising_1 tough_vs_raising_2 transitive wh_island
    wh_questions_object_gap wh_questions_subject_gap wh_questions_subject_gap_long_distance
    wh_vs_that_no_gap wh_vs_that_no_gap_long_distance wh_vs_that_with_gap
    wh_vs_that_with_gap_long_distance""".split()  # noqa: SIM905
)
_DATA = resources.files("pretraining") / "data" / "blimp"
_REPO = Path(__file__).resolve().parents[1]


# ---- BLiMP data ----


@dataclass(frozen=True)
class BlimpPair:
    sentence_good: str
    sentence_bad: str
    paradigm: str  # BLiMP's UID
    linguistics_term: str  # the phenomenon, e.g. "island_effects"
    field: str  # "syntax", "morphology", "semantics" or "syntax_semantics"


def shared_data_dir() -> Path:
    """The shared data folder: ``$ASSAY_SHARED_DATA`` if set, else ``../shared/data`` beside
    the repository checkout (it holds ``blimp/<paradigm>.jsonl``)."""
    return Path(os.environ.get("ASSAY_SHARED_DATA") or _REPO.parent / "shared" / "data")


@cache
def load_blimp(paradigm: str) -> tuple[BlimpPair, ...]:
    """The 1000 minimal pairs of a BLiMP paradigm, from the package data (:data:`BLIMP_DEFAULT`),
    else ``shared_data_dir()/blimp/<paradigm>.jsonl``, else the hub (``nyu-mll/blimp``)."""
    if paradigm not in BLIMP_PARADIGMS:
        raise ConfigError(
            f"Unknown BLiMP paradigm {paradigm!r}.{did_you_mean(paradigm, BLIMP_PARADIGMS)}"
        )
    packaged = _DATA / f"{paradigm}.jsonl.gz"
    if packaged.is_file():
        with packaged.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as f:
            return tuple(_pair(json.loads(line)) for line in f if line.strip())
    shared = shared_data_dir() / "blimp" / f"{paradigm}.jsonl"
    if shared.is_file():
        lines = shared.read_text(encoding="utf-8").splitlines()
        return tuple(_pair(json.loads(line)) for line in lines if line.strip())
    try:
        import datasets

        rows = datasets.load_dataset("nyu-mll/blimp", paradigm, split="train")
    except Exception as err:  # offline, no datasets cache, ...: one sentence, not a traceback
        raise AssayError(
            f"BLiMP paradigm {paradigm!r} is not shipped with assay, not in {shared.parent} "
            "(set ASSAY_SHARED_DATA to a folder holding blimp/<paradigm>.jsonl), and could not "
            f"be loaded from the Hugging Face hub as nyu-mll/blimp ({type(err).__name__})."
        ) from None
    return tuple(_pair(row) for row in rows)


def _pair(row: dict) -> BlimpPair:
    return BlimpPair(
        row["sentence_good"], row["sentence_bad"], row["UID"], row["linguistics_term"], row["field"]
    )


# ---- simple-vocabulary filters ----


def is_simple(item: BlimpPair | Example, vocab: frozenset[str]) -> bool:
    """Whether every word of the item is in ``vocab``: both sentences of a BLiMP pair, or the
    input and the label of an ICL example (words as :func:`pretraining.simplify.words`)."""
    if isinstance(item, BlimpPair):
        texts = (item.sentence_good, item.sentence_bad)
    else:
        texts = (item.input, item.label)
    return all(in_vocab(w, vocab) for text in texts for w in words(text))


def filter_simple(items: Sequence, vocab: frozenset[str]) -> list:
    """The BLiMP pairs or ICL examples in ``items`` whose words all lie in ``vocab``."""
    return [item for item in items if is_simple(item, vocab)]


def label_words_oov(task: ICLTask, vocab: frozenset[str]) -> list[str]:
    """The label words of ``task`` outside ``vocab``: a task with any is skipped, since the
    model could not be asked to produce an answer it never saw in pretraining."""
    return [
        label for label in task.label_space if not all(in_vocab(w, vocab) for w in words(label))
    ]


# ---- benchmarks ----


def blimp_accuracy(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[BlimpPair],
    batch_size: int = 16,
) -> float:
    """The fraction of pairs with log p(good) > log p(bad) (ties count as wrong)."""
    if not pairs:
        raise ConfigError("blimp_accuracy got no pairs; check the paradigm and the filter.")
    texts = [p.sentence_good for p in pairs] + [p.sentence_bad for p in pairs]
    scores = sequence_logprob(model, tokenizer, texts, batch_size)
    good, bad = scores[: len(pairs)], scores[len(pairs) :]
    return sum(g > b for g, b in zip(good, bad, strict=True)) / len(pairs)


def zeroshot_prompt(task: ICLTask, text: str) -> str:
    """The zero-shot prompt: the task description, the input and the answer cue, e.g.
    ``"Classify the sentiment ...\\n\\nReview: a gripping film\\nAnswer:"``."""
    from envs.icl.prompt import Layout, Parts, render_plain

    parts = Parts(description=task.description, demos=(), test_input=text, test_inline=None)
    return render_plain(parts, Layout(input_prefix=task.input_prefix))


def label_logprobs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    task: ICLTask,
    examples: Sequence[Example],
    *,
    content_free: str = "N/A",
    batch_size: int = 16,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs of each label word as the answer: ``(N, L)`` for the examples and ``(L,)`` for
    the content-free input, labels in ``task.label_space`` order."""
    labels = task.label_space
    prompts = [zeroshot_prompt(task, ex.input) for ex in examples]
    prompts.append(zeroshot_prompt(task, content_free))
    contexts = [p for p in prompts for _ in labels]
    scores = continuation_logprob(
        model, tokenizer, contexts, list(labels) * len(prompts), batch_size
    )
    table = torch.tensor(scores).view(len(prompts), len(labels))  # (N+1, L)
    return table[:-1], table[-1]


def predict_labels(
    scores: torch.Tensor,  # (N, L) label log-probs
    content_free_scores: torch.Tensor | None = None,  # (L,)
) -> torch.Tensor:
    """Index of the predicted label per example ``(N,)``; calibrated when ``content_free_scores``
    is given. Zhao et al. (2021) rescale label probabilities by ``diag(p_cf)^-1``; the argmax of
    ``p(y|x) / p_cf(y)`` is that of ``log p(y|x) - log p_cf(y)``, normalised or not."""
    if content_free_scores is not None:
        scores = scores - content_free_scores[None, :]  # (N, L)
    return scores.argmax(-1)


def icl_accuracy(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    task: ICLTask,
    examples: Sequence[Example],
    *,
    content_free: str = "N/A",
    batch_size: int = 16,
) -> tuple[float, float]:
    """``(accuracy, calibrated accuracy)`` of zero-shot label prediction on ``examples``."""
    if not examples:
        raise ConfigError(f"icl_accuracy got no examples for task {task.name!r}.")
    scores, cf = label_logprobs(
        model, tokenizer, task, examples, content_free=content_free, batch_size=batch_size
    )
    gold = torch.tensor([task.label_space.index(ex.label) for ex in examples])  # (N,)
    raw = int((predict_labels(scores) == gold).sum()) / len(examples)
    calibrated = int((predict_labels(scores, cf) == gold).sum()) / len(examples)
    return raw, calibrated


def zeroshot_report(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    vocab: frozenset[str] | None,
    *,
    blimp: Sequence[str] = BLIMP_DEFAULT,
    tasks: Sequence[str] = ICL_DEFAULT,
    limit: int | None = None,
    batch_size: int = 16,
) -> list[dict]:
    """One row per BLiMP paradigm and ICL task: ``suite``, ``name``, ``n_total``, ``n_simple``
    (examples whose words are all in ``vocab``; all of them when ``vocab`` is None),
    ``n_scored`` (at most ``limit`` of those), ``accuracy``, ``accuracy_calibrated`` (ICL only)
    and ``skipped`` (why a row has no accuracy, else None)."""
    from envs.icl.tasks import TASKS, load_task

    # A lone name is one name, not a sequence of letters.
    blimp = (blimp,) if isinstance(blimp, str) else tuple(blimp)
    tasks = (tasks,) if isinstance(tasks, str) else tuple(tasks)
    for name in tasks:
        if name not in TASKS:
            raise ConfigError(
                f"Unknown ICL task {name!r}; tasks: {', '.join(TASKS)}.{did_you_mean(name, TASKS)}"
            )
    rows = []
    for paradigm in blimp:
        pairs = load_blimp(paradigm)
        simple = filter_simple(pairs, vocab) if vocab is not None else list(pairs)
        scored = simple[:limit]
        row = _row("blimp", paradigm, len(pairs), len(simple), len(scored))
        if scored:
            row["accuracy"] = blimp_accuracy(model, tokenizer, scored, batch_size)
        else:
            row["skipped"] = "no pair has all its words in the vocabulary"
        rows.append(row)
    for name in tasks:
        task = load_task(name)
        simple = filter_simple(task.tests, vocab) if vocab is not None else list(task.tests)
        oov = label_words_oov(task, vocab) if vocab is not None else []
        scored = [] if oov else simple[:limit]
        row = _row("icl", name, len(task.tests), len(simple), len(scored))
        if oov:
            row["skipped"] = f"label words not in the vocabulary: {', '.join(oov)}"
        elif not scored:
            row["skipped"] = "no test example has all its words in the vocabulary"
        else:
            row["accuracy"], row["accuracy_calibrated"] = icl_accuracy(
                model, tokenizer, task, scored, batch_size=batch_size
            )
        rows.append(row)
    return rows


def _row(suite: str, name: str, n_total: int, n_simple: int, n_scored: int) -> dict:
    return {
        "suite": suite,
        "name": name,
        "n_total": n_total,
        "n_simple": n_simple,
        "n_scored": n_scored,
        "accuracy": None,
        "accuracy_calibrated": None,
        "skipped": None,
    }
