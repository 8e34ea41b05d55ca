"""``assay analyze --runs a,b --suite geometry|grammar|all --out DIR``: run the suites over every
checkpoint of the given runs (or over single models) and write ``report.md`` with tables and
plots, every number as ``metrics.json``, and one CSV per table."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tqdm.auto import tqdm

from analysis.evalset import eval_windows
from analysis.geometry import (
    GeometrySettings,
    cross_run_rows,
    landscape_rows,
    plot_spectra_by_run,
    spectra_rows,
    trajectory_rows,
)
from analysis.grammar import (
    GrammarSettings,
    blimp_over_checkpoints,
    delayed_generalisation,
    probes_and_heads,
)
from analysis.subjects import Subject, load_tokenizer, resolve_subject
from assay.errors import ConfigError
from assay.runs import write_json

Suite = Literal["geometry", "grammar", "all"]


@dataclass
class AnalysisConfig:
    suite: Suite = "geometry"
    eval_corpus: str = "wikitext2-test"  # the windows every loss is measured on
    eval_windows: int = 16
    seq_len: int = 128
    geometry: GeometrySettings = field(default_factory=GeometrySettings)
    grammar: GrammarSettings = field(default_factory=GrammarSettings)


def analyze(runs: list[str], out: Path, config: AnalysisConfig) -> dict:
    """Measure ``runs`` and write the report under ``out``; returns every number."""
    if not runs:
        raise ConfigError("assay analyze needs at least one run or model in --runs.")
    subjects = [resolve_subject(r) for r in runs]
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    results: dict = {"runs": {s.label: [step for step, _ in s.checkpoints] for s in subjects}}
    if config.suite in ("geometry", "all"):
        results["geometry"] = _geometry(subjects, config, plots)
    if config.suite in ("grammar", "all"):
        results["grammar"] = _grammar(subjects, config.grammar, plots)
    write_json(out / "metrics.json", results)
    _write_csvs(results, out)
    (out / "report.md").write_text(render(results, subjects))
    return results


def _geometry(subjects: list[Subject], config: AnalysisConfig, plots: Path) -> dict:
    settings = config.geometry
    windows = eval_windows(
        load_tokenizer(subjects[0]), config.eval_corpus, config.seq_len, config.eval_windows
    )
    out: dict = {"spectra": [], "updates": [], "landscapes": [], "trajectory": [], "steps": []}
    weights_by_run, updates_by_run = {}, {}
    for subject in tqdm(subjects, desc="geometry"):
        weights, updates = spectra_rows(subject)
        weights_by_run[subject.label], updates_by_run[subject.label] = weights, updates
        out["spectra"] += [{"run": subject.label, **r} for r in weights]
        out["updates"] += [{"run": subject.label, **r} for r in updates]
        out["landscapes"] += landscape_rows(subject, windows, settings, plots)
        barriers, steps = trajectory_rows(subject, windows, settings, plots)
        out["trajectory"] += barriers
        out["steps"] += steps
    plot_spectra_by_run(weights_by_run, plots / "effective_rank.png", "effective_rank")
    plot_spectra_by_run(updates_by_run, plots / "update_effective_rank.png", "effective_rank")
    out["between_runs"], out["similarity"], out["notes"] = cross_run_rows(
        subjects, windows, settings, plots
    )
    return out


def _grammar(subjects: list[Subject], settings: GrammarSettings, plots: Path) -> dict:
    out: dict = {"blimp": [], "generalisation": {}, "probes": {}}
    for subject in tqdm(subjects, desc="grammar"):
        out["blimp"] += blimp_over_checkpoints(subject, settings)
        delayed = delayed_generalisation(subject, settings, plots)
        if delayed is not None:
            out["generalisation"][subject.label] = delayed
        out["probes"][subject.label] = probes_and_heads(subject, settings, plots)
    return out


# --- writing ------------------------------------------------------------------------------------


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def table(rows: list[dict], columns: list[str]) -> str:
    """A markdown table of ``columns`` (missing cells blank)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def _csv_tables(results: dict) -> dict[str, list[dict]]:
    geometry, grammar = results.get("geometry", {}), results.get("grammar", {})
    tables = {k: geometry.get(k, []) for k in ("spectra", "updates", "landscapes", "trajectory",
                                                "steps", "between_runs", "similarity")}  # fmt: skip
    tables["blimp"] = grammar.get("blimp", [])
    tables["generalisation"] = [
        {"run": run, **row}
        for run, g in grammar.get("generalisation", {}).items()
        for row in g["curves"]
    ]
    return {name: rows for name, rows in tables.items() if rows}


def _write_csvs(results: dict, out: Path) -> None:
    for name, rows in _csv_tables(results).items():
        columns = list(dict.fromkeys(k for r in rows for k in r))
        with (out / f"{name}.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            writer.writerows({k: json.dumps(v) if isinstance(v, list | dict) else v
                              for k, v in r.items()} for r in rows)  # fmt: skip


MIN_SPLIT = 20  # pairs per split below which the report flags the delay as unreadable
SPECTRA_COLUMNS = ["run", "projection", "n_matrices", "effective_rank", "stable_rank",
                   "rank_ratio", "spectral_ratio", "fraction_above"]  # fmt: skip
UPDATE_COLUMNS = ["run", "projection", "effective_rank", "stable_rank", "rank_ratio",
                  "relative_update_norm"]  # fmt: skip


def render(results: dict, subjects: list[Subject]) -> str:
    """The markdown report."""
    parts = ["# assay analyze report", ""]
    parts += [f"- `{s.label}`: {len(s.checkpoints)} checkpoint(s), steps "
              f"{', '.join(str(step) for step, _ in s.checkpoints)}" for s in subjects]  # fmt: skip
    if "geometry" in results:
        parts += _render_geometry(results["geometry"])
    if "grammar" in results:
        parts += _render_grammar(results["grammar"])
    return "\n".join(parts) + "\n"


def _render_geometry(g: dict) -> list[str]:
    parts = ["", "## Geometry", "", "### Spectra of the final weights (mean per projection)", ""]
    parts += [table(g["spectra"], SPECTRA_COLUMNS), "", "![](plots/effective_rank.png)", ""]
    if g["updates"]:
        parts += ["### Spectra of the update W_final - W_init", "",
                  table(g["updates"], UPDATE_COLUMNS), "",
                  "![](plots/update_effective_rank.png)", ""]  # fmt: skip
    parts += ["### Loss landscapes at the final model (expected sharpness)", "",
              table(g["landscapes"], ["run", "directions", "n", "loss", "expected_sharpness",
                                      "loss_at_radius"]), ""]  # fmt: skip
    parts += [
        f"![](plots/landscape_{run}.png)"
        for run in dict.fromkeys(r["run"] for r in g["landscapes"])
    ]
    if g["trajectory"]:
        parts += ["", "### Interpolation between consecutive checkpoints", "",
                  table(g["trajectory"], ["run", "pair", "loss_a", "loss_b", "barrier",
                                          "relative_barrier", "chord_barrier"])]  # fmt: skip
    if g["steps"]:
        parts += ["", "### Updates between consecutive checkpoints (means over matrices)", "",
                  table(g["steps"], ["run", "pair", "effective_rank", "stable_rank", "rank_ratio",
                                     "relative_update_norm"])]  # fmt: skip
    if g["between_runs"]:
        parts += ["", "### Interpolation between runs (at each common step)", "",
                  table(g["between_runs"], ["run", "pair", "loss_a", "loss_b", "barrier",
                                            "relative_barrier", "chord_barrier"]),
                  "", "![](plots/interpolation_between_runs.png)"]  # fmt: skip
    if g["similarity"]:
        parts += ["", "### Activation similarity to the first run (per layer)", "",
                  table(g["similarity"], ["run", "layer", "linear_cka", "debiased_cka",
                                          "mean_cosine", "relative_l2"]),
                  "", "![](plots/cka_to_first_run.png)"]  # fmt: skip
    parts += [f"\n> {note}" for note in g["notes"]]
    return parts


def _render_grammar(g: dict) -> list[str]:
    overall = [r for r in g["blimp"] if r["level"] == "overall"]
    parts = ["", "## Grammar", "", "### BLiMP accuracy over checkpoints", "",
             table(overall, ["run", "step", "n", "accuracy"]), ""]  # fmt: skip
    for run, gen in g["generalisation"].items():
        d = gen["delay"]
        last = gen["curves"][-1]
        if min(last["n_seen"], last["n_unseen"]) < MIN_SPLIT:
            parts += [f"> `{run}`: a split has fewer than {MIN_SPLIT} pairs ({last['n_seen']} seen, "
                      f"{last['n_unseen']} unseen): its accuracy and the delay are noise.", ""]  # fmt: skip
        parts += [f"### Delayed generalisation: `{run}`", "",
                  table(gen["curves"], ["step", "accuracy", "accuracy_seen", "accuracy_unseen",
                                        "n_seen", "n_unseen"]), "",
                  f"Rise of the seen split: step {_fmt(d.get('step_seen'))}; unseen: step "
                  f"{_fmt(d.get('step_unseen'))}; delay: {_fmt(d.get('delay'))} steps.", "",
                  f"![](plots/generalisation_{run}.png)", ""]  # fmt: skip
    for run, p in g["probes"].items():
        parts += [f"### Probes and heads: `{run}`", ""]
        for label, dim in p["dimensionality"].items():
            best = max(p["probes"][label], key=lambda r: r["accuracy"])
            head = p["heads"].get(label, {})
            parts.append(
                f"- {label}: best probe layer {best['layer']} (accuracy {best['accuracy']:.3f}); "
                f"concept subspace participation ratio {dim['participation_ratio']:.2f}, "
                f"{dim['n_components']} PCs for 90%; top-{len(head.get('top', []))} head "
                f"concentration {_fmt(head.get('concentration'))}"
            )
        parts += ["", f"![](plots/probes_{run}.png)", ""]
    return parts
