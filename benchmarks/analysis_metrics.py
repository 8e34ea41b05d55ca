"""Analysis throughput: loss-landscape evaluation per direction per 1k tokens, batched vs one
window at a time, and linear CKA on 10k x 512 activations vs the n x n Gram-matrix form.

    python benchmarks/analysis_metrics.py [--size llama-10m] [--windows 16] [--points 11]

1. Landscape: one filter-normalised random direction on a randomly initialised ``--size`` LLaMA
   (4096-token BPE vocabulary), ``--points`` values of alpha, ``--windows`` WikiText-2 windows of
   128 tokens; ``analysis.landscape`` with its batched loss (8 windows per forward) vs the same
   with batch size 1 (how a per-example loop evaluates it). Reported as seconds per direction
   per 1k tokens (per alpha point).
2. CKA: ``analysis.linear_cka`` (feature-space form, d x d products) vs the textbook
   HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with n x n centred linear Gram matrices (float64), on
   random 10000 x 512 float32 activations; the two values agree to 1e-6.

Ends with a RESULT line.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def landscape_seconds(size: str, n_windows: int, points: int) -> tuple[float, float]:
    from analysis.evalset import eval_windows
    from analysis.landscape import alpha_grid, landscape, random_direction
    from pretraining.corpus import load_corpus, train_tokenizer
    from pretraining.models import build_model, llama_config

    tokenizer = train_tokenizer(load_corpus("wikitext2"), 4096)
    windows = eval_windows(tokenizer, "wikitext2-test", 128, n_windows)
    model = build_model(llama_config(size, vocab_size=len(tokenizer), max_len=128)).eval()
    direction = random_direction(model, generator=torch.Generator().manual_seed(0))
    alphas = alpha_grid(1.0, points)
    kilo_tokens = windows.numel() / 1000 * len(alphas)
    times = []
    for batch_size in (8, 1):
        _, seconds = _timed(
            lambda b=batch_size: landscape(
                model, [direction], alphas, windows, batch_size=b, progress=False
            )  # fmt: skip
        )
        times.append(seconds / kilo_tokens)
    return times[0], times[1]


def _gram_cka(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(0), y - y.mean(0)  # centring the features centres the Gram matrices
    k, l_ = x @ x.T, y @ y.T  # (n, n)
    return float(np.vdot(k, l_) / np.sqrt(np.vdot(k, k) * np.vdot(l_, l_)))


def cka_seconds(n: int = 10_000, d: int = 512) -> tuple[float, float, float]:
    from analysis.similarity import linear_cka

    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = (x @ rng.standard_normal((d, d)) + rng.standard_normal((n, d))).astype(np.float32)
    ours, fast = _timed(lambda: linear_cka(x, y))
    gram, slow = _timed(lambda: _gram_cka(x.astype(np.float64), y.astype(np.float64)))
    return fast, slow, abs(ours - gram)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="llama-10m")
    parser.add_argument("--windows", type=int, default=16)
    parser.add_argument("--points", type=int, default=11)
    args = parser.parse_args()
    batched, single = landscape_seconds(args.size, args.windows, args.points)
    print(f"landscape, {args.size}: {batched:.3f} s per direction per 1k tokens batched (8), "
          f"{single:.3f} s one window at a time ({single / batched:.2f}x)")  # fmt: skip
    fast, slow, gap = cka_seconds()
    print(f"linear CKA, 10000 x 512: {fast:.2f} s feature-space vs {slow:.2f} s Gram-matrix "
          f"({slow / fast:.1f}x), values differ by {gap:.1e}")  # fmt: skip
    print(f"RESULT landscape_s_per_ktok={batched:.4f} landscape_unbatched_s_per_ktok={single:.4f} "
          f"landscape_ratio={batched / single:.2f} cka_s={fast:.3f} cka_gram_s={slow:.3f} "
          f"cka_ratio={fast / slow:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
