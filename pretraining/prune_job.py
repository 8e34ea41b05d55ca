"""``assay pretrain prune``: lottery-ticket iterative magnitude pruning with rewinding.

Round 0 trains the dense model (``OUT/round-0``); each later round prunes ``fraction`` of the
surviving attention/MLP weights by magnitude (globally or per layer), rewinds the survivors to
their values at step k (0 = the initialisation; k > 0 is read from round 0's kept checkpoint,
Frankle et al. 2020) and retrains the same number of steps with a fresh optimizer and schedule,
pruned weights held at zero (``OUT/round-r``). Rounds that finished are read back, not retrained.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from assay.errors import ConfigError
from assay.runs import write_json
from pretraining.config import PretrainConfig
from pretraining.corpus import prepare_corpus
from pretraining.pruning import plot_imp, run_imp, snapshot_state
from pretraining.trainer import build, load_pretrained, run_pretrain


def _round_config(config: PretrainConfig, out: Path, round_: int, rewind_step: int):
    train = replace(config.train, output_dir=str(out), run_name=f"round-{round_}")
    if round_ == 0 and rewind_step > 0:
        train.save_steps = sorted({*train.save_steps, rewind_step})
    return replace(config, train=train)


def run_prune_job(
    config: PretrainConfig, out: Path, rounds: int, fraction: float, scope: str, rewind_step: int
) -> list[dict]:
    if config.method.name != "full":
        raise ConfigError(
            f"pruning trains dense models: use method=full, not {config.method.name}."
        )
    if not 0 <= rewind_step < config.train.max_steps:
        raise ConfigError(
            f"--rewind-step must be in [0, max_steps={config.train.max_steps}), got {rewind_step}."
        )
    corpus = prepare_corpus(config, out / "data")
    model, _ = build(config, len(corpus.tokenizer))  # the same initial weights as every round
    initial = snapshot_state(model)
    summaries: dict[int, dict] = {}

    def train_fn(model, masks, round_):
        cfg = _round_config(config, out, round_, rewind_step)
        run_dir = out / f"round-{round_}"
        if not (run_dir / "summary.json").exists():
            state = None if round_ == 0 else {k: v.clone() for k, v in model.state_dict().items()}
            kept = None if round_ == 0 else masks
            run_pretrain(cfg, init_state=state, masks=kept)
        summaries[round_] = json.loads((run_dir / "summary.json").read_text())
        model.load_state_dict(load_pretrained(run_dir / "final").state_dict())

    def rewind_state():
        if rewind_step == 0:
            return initial
        path = out / "round-0" / "checkpoints" / f"keep-{rewind_step:06d}"
        return snapshot_state(load_pretrained(path))

    records = run_imp(
        model,
        rounds=rounds,
        fraction=fraction,
        scope=scope,
        rewind_state=rewind_state,
        train_fn=train_fn,
        eval_fn=lambda m: summaries[max(summaries)]["eval/loss"],
    )
    plot_imp(records, out / "imp.png")
    write_json(out / "imp.json", records)
    return records
