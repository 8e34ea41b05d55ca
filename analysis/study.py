"""``assay study lowrank``: pretrain a tiny full-rank and a tiny ReLoRA model on the CPU with
:mod:`pretraining`, then run the geometry suite on both ("Beyond Perplexity" in miniature).

The study's config (``configs/study_lowrank_tiny.yaml``) names a pretraining config, the
overrides every run shares, each run's own overrides, and the analysis settings. Finished runs
(with a ``summary.json``) are not retrained, so an interrupted study resumes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from analysis.report import AnalysisConfig, analyze, table
from assay.config import load_config
from assay.runs import write_json


@dataclass
class StudyRun:
    name: str
    overrides: list[str] = field(default_factory=list)  # e.g. [method=relora, lr=3e-3]


@dataclass
class StudyConfig:
    pretrain_config: str = "configs/pretrain_tiny.yaml"
    out: str = "runs/study-lowrank"
    common: list[str] = field(default_factory=list)  # overrides every run shares
    runs: list[StudyRun] = field(default_factory=list)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)

    def problems(self) -> list[str]:
        names = [r.name for r in self.runs]
        if len(names) < 2:
            return ["runs: a study compares at least two runs"]
        return [] if len(set(names)) == len(names) else ["runs: names must differ"]


def run_study(config: StudyConfig, root: Path = Path(".")) -> Path:
    """Train the study's runs (or read them back), analyse them, write ``OUT/report.md``."""
    from pretraining.config import PretrainConfig, expand_short
    from pretraining.trainer import run_pretrain

    out = Path(config.out)
    pretrain = root / config.pretrain_config
    summaries = []
    for run in config.runs:
        overrides = [*config.common, *run.overrides, f"train.output_dir={out}",
                     f"train.run_name={run.name}"]  # fmt: skip
        if not (out / run.name / "summary.json").exists():
            run_pretrain(load_config(PretrainConfig, pretrain, expand_short(overrides)))
        summary = json.loads((out / run.name / "summary.json").read_text())
        summaries.append(
            {
                "run": run.name,
                "method": summary["method"],
                "trainable": summary["parameters"]["trainable"],
                "optimizer_state_mb": summary["optimizer_state_bytes"] / 2**20,
                "eval_loss": summary.get("eval/loss"),
                "eval_ppl": summary.get("eval/ppl"),
            }
        )
    write_json(out / "runs.json", summaries)
    analyze([str(out / r.name) for r in config.runs], out / "analysis", config.analysis)
    report = out / "analysis" / "report.md"
    columns = ["run", "method", "trainable", "optimizer_state_mb", "eval_loss", "eval_ppl"]
    head = f"# Study: {', '.join(r.name for r in config.runs)}\n\n{table(summaries, columns)}\n\n"
    report.write_text(head + report.read_text().removeprefix("# assay analyze report\n"))
    return report
