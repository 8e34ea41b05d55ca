"""``assay pretrain zeroshot``: zero-shot accuracy of several models on evaluation sets filtered
to the simple vocabulary (BLiMP minimal pairs; SST-2, AG News, RTE, TREC, CB by label-word
log-likelihood), as in Muckatira et al. 2024, so a small model trained on simplified text can be
compared with a larger one on the same examples. Writes ``zeroshot.json`` and ``zeroshot.png``."""

from __future__ import annotations

from pathlib import Path

from assay.runs import save_figure, write_json
from pretraining.simplify import DEFAULT_TOP_N, simple_vocabulary
from pretraining.zeroshot import zeroshot_report


def _load(name: str):
    """A pretraining checkpoint folder (any method, CoLA included) or a registered/hub model."""
    from assay.models import load_causal_lm
    from pretraining.trainer import METHOD_FILE, load_pretrained

    path = Path(name)
    if (path / METHOD_FILE).exists():
        from transformers import AutoTokenizer

        return load_pretrained(path), AutoTokenizer.from_pretrained(path)
    return load_causal_lm(name)


def run_zeroshot(
    models: list[str], out: Path, limit: int | None, top_n: int | None, vocab_file: Path | None
) -> list[dict]:
    vocab = simple_vocabulary(path=vocab_file) if vocab_file else simple_vocabulary(
        top_n or DEFAULT_TOP_N
    )  # fmt: skip
    rows = []
    for name in models:
        model, tokenizer = _load(name)
        for row in zeroshot_report(model, tokenizer, vocab, limit=limit):
            rows.append({"model": name, **row})
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "zeroshot.json", rows)
    _plot(rows, out / "zeroshot.png")
    print(f"{'model':40}{'set':34}{'n':>6}{'acc':>7}{'calib':>7}")
    for r in rows:
        acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.3f}"
        cal = r.get("accuracy_calibrated")
        cal = "-" if cal is None else f"{cal:.3f}"
        print(
            f"{r['model'][-40:]:40}{r['suite'] + '/' + r['name']:34}{r['n_scored']:>6}{acc:>7}{cal:>7}"
        )
    return rows


def _plot(rows: list[dict], path: Path) -> None:
    """Grouped bars: one group per evaluation set, one bar per model."""
    from assay.runs import pyplot

    plt = pyplot()
    import numpy as np

    models = list(dict.fromkeys(r["model"] for r in rows))
    sets = list(dict.fromkeys(f"{r['suite']}/{r['name']}" for r in rows))
    width = 0.8 / max(len(models), 1)
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(sets)), 3.8))
    for i, model in enumerate(models):
        acc = {f"{r['suite']}/{r['name']}": r["accuracy"] for r in rows if r["model"] == model}
        values = [acc.get(s) if acc.get(s) is not None else np.nan for s in sets]
        ax.bar(np.arange(len(sets)) + i * width, values, width, label=Path(model).name or model)
    ax.set_xticks(np.arange(len(sets)) + width * (len(models) - 1) / 2, sets, rotation=45,
                  ha="right", fontsize=8)  # fmt: skip
    ax.set_ylabel("zero-shot accuracy (simple subset)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
