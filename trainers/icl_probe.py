"""ICL probes: accuracy of a causal LM on ICL tasks under each prompt corruption, over seeds.

Scoring, two ways:

- ``generate``: greedy generation of at most 10 new tokens (as in the paper), exact match of the
  first line with the label word (``envs.icl.env.is_match``);
- ``loglik``: the label whose tokens have the highest log-likelihood after the prompt;
  ``calibrated`` subtracts each label's log-likelihood after a content-free test input ("N/A"),
  as in contextual calibration (Zhao et al. 2021).

A sweep (:func:`probe`) writes one JSON line per (model, task, corruption, seed) to
``results.jsonl`` and skips the ones already there, so an interrupted sweep resumes. The
report (:func:`report`) gives each corruption's accuracy and its difference from ``all`` with
jackknife standard errors over seeds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from envs.icl.corruptions import corrupt
from envs.icl.env import balanced_demos, build_parts, is_match
from envs.icl.prompt import Layout, Parts, render_chat, render_plain
from envs.icl.rouge import best_rouge_l
from envs.icl.tasks import resolve_task
from trainers.engines.base import Sampling, encode_prompts
from trainers.engines.hf import HFEngine


def jackknife(values: Sequence[float]) -> tuple[float, float]:
    """(mean, jackknife variance of the mean): with leave-one-out means m_i and their mean m,
    var = (n - 1) / n * sum_i (m_i - m)^2, which for the mean equals s^2 / n.

    >>> mean, var = jackknife([1.0, 2.0, 3.0, 6.0])
    >>> mean, round(var, 12)
    (3.0, 1.166666666667)
    """
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, float("nan")
    loo = [(n * mean - v) / (n - 1) for v in values]
    m = sum(loo) / n
    return mean, (n - 1) / n * sum((x - m) ** 2 for x in loo)


def episode_prompts(task_name, corruption, seed, *, n_demos, limit, mode, tokenizer):
    """(prompts, test examples, parts, layout) for the first ``limit`` label-balanced test
    instances, demonstrations drawn with ``seed``; the same seed gives the same demonstrations
    for every corruption."""
    import numpy as np

    task = resolve_task(task_name)
    rng = np.random.default_rng(seed)
    if task.label_space:
        per_label = {
            label: [t for t in task.tests if t.label == label] for label in task.label_space
        }
        tests = []
        for i in range(limit):  # label-balanced test sample
            pool = per_label[task.label_space[i % len(task.label_space)]]
            if i // len(task.label_space) < len(pool):
                tests.append(pool[i // len(task.label_space)])
    else:
        tests = list(task.tests[:limit])
    layout = Layout(input_prefix=task.input_prefix)
    prompts, parts_list = [], []
    for j, test in enumerate(tests):
        demos = balanced_demos(task, n_demos, rng)
        parts = corrupt(build_parts(task, demos, test), corruption, seed * 100_003 + j,
                        task.label_space, tokenizer)  # fmt: skip
        parts_list.append(parts)
        prompts.append(_render(parts, layout, mode))
    return prompts, tests, parts_list, layout


def _render(parts: Parts, layout: Layout, mode: str):
    if mode == "chat":
        return render_chat(parts, layout)
    return render_plain(parts, layout)


def _encode(tokenizer, prompt) -> list[int]:
    if isinstance(prompt, str):
        return tokenizer.encode(prompt, add_special_tokens=False)
    return encode_prompts(tokenizer, [prompt])[0]


@torch.no_grad()
def label_logliks(model, tokenizer, prompt_ids: list[int], labels: Sequence[str]) -> list[float]:
    """log p(label tokens | prompt) for each label (a leading space for plain prompts)."""
    out = []
    for label in labels:
        label_ids = tokenizer.encode(" " + label, add_special_tokens=False)
        ids = torch.tensor([prompt_ids + label_ids], device=model.device)
        logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1].float()
        logp = torch.log_softmax(logits, -1).gather(-1, ids[0, len(prompt_ids) :, None])
        out.append(logp.sum().item())
    return out


def accuracy(model, tokenizer, task_name, corruption, seed, *, n_demos=4, limit=50,
             scoring="generate", mode="chat", batch_size=16) -> float:  # fmt: skip
    """Accuracy of one (task, corruption, seed) cell; for a generation task, the mean best
    ROUGE-L of greedy answers (at most 64 new tokens) against the accepted outputs."""
    task = resolve_task(task_name)
    prompts, tests, parts_list, layout = episode_prompts(
        task_name, corruption, seed, n_demos=n_demos, limit=limit, mode=mode, tokenizer=tokenizer
    )
    labels = [t.label for t in tests]
    if task.kind == "generation":
        engine = HFEngine(model, tokenizer, batch_size=batch_size)
        greedy = Sampling(temperature=0.0, max_new_tokens=64, logprobs=False)
        answers = [g[0].text for g in engine.generate(prompts, greedy)]
        scores = [
            best_rouge_l(a, t.references or (t.label,)) for a, t in zip(answers, tests, strict=True)
        ]
        return sum(scores) / len(scores)
    if scoring == "generate":
        engine = HFEngine(model, tokenizer, batch_size=batch_size)
        greedy = Sampling(temperature=0.0, max_new_tokens=10, logprobs=False)
        answers = [g[0].text for g in engine.generate(prompts, greedy)]
        return sum(is_match(a, y) for a, y in zip(answers, labels, strict=True)) / len(labels)
    correct = 0
    for prompt, label, parts in zip(prompts, labels, parts_list, strict=True):
        scores = label_logliks(model, tokenizer, _encode(tokenizer, prompt), task.label_space)
        if scoring == "calibrated":
            blank = _render(_replace_test(parts, "N/A"), layout, mode)
            base = label_logliks(model, tokenizer, _encode(tokenizer, blank), task.label_space)
            scores = [s - b for s, b in zip(scores, base, strict=True)]
        correct += task.label_space[max(range(len(scores)), key=scores.__getitem__)] == label
    return correct / len(labels)


def _replace_test(parts: Parts, text: str) -> Parts:
    from dataclasses import replace

    return replace(parts, test_input=text)


def probe(models: Sequence[str], tasks: Sequence[str], corruptions: Sequence[str], seeds: int,
          out: Path, *, limit: int = 50, n_demos: int = 4, scoring: str = "generate",
          mode: str = "chat", log=print) -> Path:  # fmt: skip
    """Run the sweep, appending to ``out/results.jsonl`` and skipping finished cells."""
    from assay.models import load_causal_lm

    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.jsonl"
    done = set()
    if path.exists():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            done.add((r["model"], r["task"], r["corruption"], r["seed"]))
    cells = [(m, t, c, s) for m in models for t in tasks for c in corruptions for s in range(seeds)]
    todo = [cell for cell in cells if cell not in done]
    log(f"{len(cells)} cells, {len(cells) - len(todo)} already done")
    loaded: dict[str, tuple] = {}
    for model_name, task, corruption, seed in tqdm(todo, desc="icl probe", unit="cell"):
        if model_name not in loaded:
            loaded = {model_name: load_causal_lm(model_name)}
        model, tokenizer = loaded[model_name]
        acc = accuracy(model, tokenizer, task, corruption, seed, n_demos=n_demos, limit=limit,
                       scoring=scoring, mode=mode)  # fmt: skip
        record = {"model": model_name, "task": task, "corruption": corruption, "seed": seed,
                  "accuracy": acc, "limit": limit, "scoring": scoring, "mode": mode}  # fmt: skip
        with path.open("a") as f:
            f.write(json.dumps(record) + "\n")
    return path


def report(results: Path) -> list[dict]:
    """Per (model, task, corruption): mean accuracy, its difference from ``all`` (per seed, so
    demonstration choice cancels) and jackknife standard errors over seeds."""
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    table: dict[tuple, dict[int, float]] = {}
    for r in rows:
        table.setdefault((r["model"], r["task"], r["corruption"]), {})[r["seed"]] = r["accuracy"]
    out = []
    for (model, task, corruption), by_seed in sorted(table.items()):
        base = table.get((model, task, "all"), {})
        mean, var = jackknife(list(by_seed.values()))
        seeds = [s for s in by_seed if s in base]
        delta, dvar = jackknife([by_seed[s] - base[s] for s in seeds]) if seeds else (math.nan,) * 2
        out.append({"model": model, "task": task, "corruption": corruption,
                    "accuracy": mean, "accuracy_se": math.sqrt(var) if var == var else math.nan,
                    "delta_vs_all": delta, "delta_se": math.sqrt(dvar) if dvar == dvar else math.nan,
                    "seeds": len(by_seed)})  # fmt: skip
    return out


def plot_report(rows: list[dict], path: Path) -> Path:
    """One panel per (model, task): each corruption's accuracy change from ``all``, with
    error bars of two jackknife standard errors."""
    from assay.runs import pyplot

    plt = pyplot()

    panels = sorted({(r["model"], r["task"]) for r in rows})
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 7), squeeze=False)
    for ax, (model, task) in zip(axes[0], panels, strict=True):
        mine = [r for r in rows if (r["model"], r["task"]) == (model, task)]
        names = [r["corruption"] for r in mine]
        deltas = [r["delta_vs_all"] for r in mine]
        errors = [2 * r["delta_se"] if r["delta_se"] == r["delta_se"] else 0 for r in mine]
        colours = ["tab:red" if d < 0 else "tab:blue" for d in deltas]
        ax.barh(range(len(names)), deltas, xerr=errors, color=colours, alpha=0.8)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_xlabel("accuracy - accuracy(all)")
        ax.set_title(f"{Path(model).name} · {task}", fontsize=9)
        ax.invert_yaxis()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def checkpoint_step(name: str) -> int | None:
    """The training step of a checkpoint directory (``.../step-000050`` -> 50)."""
    import re

    found = re.search(r"step-(\d+)", Path(name).name)
    return int(found.group(1)) if found else None


def plot_over_checkpoints(rows: list[dict], path: Path) -> Path:
    """Each corruption's accuracy change from ``all`` against the checkpoint's step."""
    from assay.runs import pyplot

    plt = pyplot()

    tasks = sorted({r["task"] for r in rows})
    fig, axes = plt.subplots(1, len(tasks), figsize=(7 * len(tasks), 4.5), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for corruption in sorted({r["corruption"] for r in rows if r["task"] == task}):
            points = sorted(
                (checkpoint_step(r["model"]), r["delta_vs_all"])
                for r in rows
                if r["task"] == task and r["corruption"] == corruption
                and checkpoint_step(r["model"]) is not None
            )  # fmt: skip
            if points and corruption != "all":
                ax.plot(*zip(*points, strict=True), marker=".", label=corruption)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xlabel("training step")
        ax.set_ylabel("accuracy - accuracy(all)")
        ax.set_title(task)
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


COMPONENTS = ("description", "demo_input", "demo_inline", "demo_label", "test_input",
              "test_inline", "format")  # fmt: skip


@torch.no_grad()
def attention_by_component(model, tokenizer, parts: Parts, layout: Layout | None = None):
    """Attention mass from the position that generates the answer (the prompt's last token) to
    each component's tokens, per layer and head: a tensor ``(layers, heads, len(COMPONENTS))``
    whose last axis sums to 1 (plain-text prompt, no special tokens)."""
    from envs.icl.prompt import segments

    pieces = segments(parts, layout or Layout())
    text = "".join(t for _, t in pieces)
    bounds, start = [], 0
    for component, piece in pieces:
        bounds.append((start, start + len(piece), component))
        start += len(piece)
    encoded = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
    owner = []
    for first, last in encoded["offset_mapping"]:
        middle = (first + last - 1) // 2 if last > first else first  # a token's middle character
        owner.append(next((COMPONENTS.index(c) for s, e, c in bounds if s <= middle < e), 6))
    ids = torch.tensor([encoded["input_ids"]], device=model.device)
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")  # only eager attention returns its weights
    try:
        attentions = model(input_ids=ids, output_attentions=True).attentions
    finally:
        model.set_attn_implementation(previous)
    last = torch.stack([a[0, :, -1, :].float().cpu() for a in attentions])  # (L, H, T)
    onehot = torch.zeros(len(owner), len(COMPONENTS))
    onehot[torch.arange(len(owner)), torch.tensor(owner)] = 1.0
    return last @ onehot  # (L, H, C)


def plot_attention(mass: torch.Tensor, path: Path, title: str = "") -> Path:
    """Heatmap of attention mass per layer (rows) and component (columns), mean over heads."""
    from assay.runs import pyplot

    plt = pyplot()

    grid = mass.mean(dim=1).numpy()  # (L, C)
    fig, ax = plt.subplots(figsize=(7, 0.35 * grid.shape[0] + 1.8))
    image = ax.imshow(grid, aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(COMPONENTS)), COMPONENTS, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("layer")
    ax.set_title(title or "attention from the answer position", fontsize=9)
    fig.colorbar(image, ax=ax, label="attention mass (mean over heads)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
