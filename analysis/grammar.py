"""The grammar suite of ``assay analyze``: BLiMP accuracy over a run's checkpoints, delayed
generalisation on phrases the run saw vs never saw (with its exposure log), and probes and
attention heads before vs after training.

"A Pre-Training Analogue of Grokking in Language Models" is the study this follows: split BLiMP
pairs by whether their critical phrase was in the training data, watch both splits' accuracy
over training, and look for the delay and for what changes inside the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from analysis.blimp import blimp_accuracy_table
from analysis.critical import (
    critical_phrase,
    diff_span,
    generalisation_curves,
    generalisation_delay,
    plot_generalisation,
)
from analysis.probes import (
    concept_dimensionality,
    head_attention,
    head_concentration,
    probe_accuracy,
    rank_heads,
    sentence_states,
)
from analysis.subjects import Subject, load_model, load_tokenizer
from assay.runs import pyplot, save_figure
from pretraining.zeroshot import BLIMP_DEFAULT, load_blimp


@dataclass
class GrammarSettings:
    paradigms: tuple[str, ...] = BLIMP_DEFAULT
    limit: int = 100  # pairs per paradigm
    top_heads: int = 5


def blimp_over_checkpoints(subject: Subject, settings: GrammarSettings) -> list[dict]:
    """Overall and per-phenomenon BLiMP accuracy at every checkpoint."""
    tokenizer = load_tokenizer(subject)
    rows = []
    for step, ref in subject.checkpoints:
        model = load_model(ref)
        table = blimp_accuracy_table(model, tokenizer, settings.paradigms, limit=settings.limit)
        rows += [
            {"run": subject.label, "step": step, **r} for r in table if r["level"] != "paradigm"
        ]
    return rows


def delayed_generalisation(subject: Subject, settings: GrammarSettings, plots: Path):
    """Accuracy on the proxy-train (phrase seen) and proxy-validation (never seen) splits over
    the run, and the delay between their rises; ``None`` without an exposure log."""
    if not subject.has_exposure:
        return None
    curves = generalisation_curves(subject.run_dir, settings.paradigms, settings.limit)
    plot_generalisation(curves, plots / f"generalisation_{subject.label}.png")
    return {"curves": curves, "delay": generalisation_delay(curves)}


def _word_pair(pair) -> tuple[int, int] | None:
    """(critical word, licensing word): where the sentences differ, and the start of the
    critical phrase, when that comes first (attention is causal)."""
    critical = diff_span(pair)[0]
    licensing = critical_phrase(pair).start_word
    return (critical, licensing) if licensing < critical else None


def probes_and_heads(subject: Subject, settings: GrammarSettings, plots: Path) -> dict:
    """At the first and the last checkpoint: per-layer probe accuracy (good vs bad), the concept
    subspace's dimensionality at the best layer, and the heads that attend from the critical
    word to its licensing word."""
    tokenizer = load_tokenizer(subject)
    pairs = [p for name in settings.paradigms for p in load_blimp(name)[: settings.limit]]
    headed = [(p, wp) for p in pairs if (wp := _word_pair(p)) is not None]
    ends = dict.fromkeys([subject.checkpoints[0], subject.checkpoints[-1]])
    out: dict = {"probes": {}, "dimensionality": {}, "heads": {}}
    for step, ref in ends:
        model = load_model(ref)
        good = sentence_states(model, tokenizer, [p.sentence_good for p in pairs])
        bad = sentence_states(model, tokenizer, [p.sentence_bad for p in pairs])
        probes = probe_accuracy(good, bad)
        best = max(probes, key=lambda r: r["accuracy"])["layer"]
        label = f"step {step}"
        out["probes"][label] = probes
        out["dimensionality"][label] = {
            "layer": best, **concept_dimensionality(good[best] - bad[best])
        }  # fmt: skip
        if headed:
            scores = head_attention(
                model, tokenizer, [p.sentence_good for p, _ in headed], [w for _, w in headed]
            )
            plot_heads(scores, plots / f"heads_{subject.label}_step{step}.png")
            out["heads"][label] = {
                "concentration": head_concentration(scores, settings.top_heads),
                "top": rank_heads(scores)[: settings.top_heads],
                "n_sentences": len(headed),
            }
        del model
    plot_probes(out["probes"], plots / f"probes_{subject.label}.png")
    return out


def plot_probes(rows_by_label: dict[str, list[dict]], path: str | Path) -> Path:
    """Probe accuracy per layer, one line (± std band) per checkpoint label."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, rows in rows_by_label.items():
        layers = [r["layer"] for r in rows]
        acc = np.array([r["accuracy"] for r in rows])
        std = np.array([r["std"] for r in rows])
        ax.plot(layers, acc, marker="o", label=label)
        ax.fill_between(layers, acc - std, acc + std, alpha=0.2)
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set(xlabel="layer (0 = embeddings)", ylabel="probe accuracy (CV)", ylim=(0.4, 1.02))
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def plot_heads(scores: torch.Tensor, path: str | Path) -> Path:
    """Layer × head heatmap of attention scores (e.g. from :func:`analysis.probes.head_attention`)."""
    plt = pyplot()
    layers, heads = scores.shape
    fig, ax = plt.subplots(figsize=(1.0 + 0.4 * heads, 1.0 + 0.3 * layers))
    image = ax.imshow(scores.float().numpy(), aspect="auto", cmap="viridis", origin="lower")
    ax.set(xlabel="head", ylabel="layer")
    fig.colorbar(image, ax=ax, label="attention to licensor")
    fig.tight_layout()
    return save_figure(fig, path)
