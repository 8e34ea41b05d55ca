"""assay's math grader against math-verify: accuracy, false positives/negatives, throughput.

    python benchmarks/grader.py

Sets, each graded by both in the same run:

- ``gsm8k``: the 1,319 GSM8K test golds against themselves and re-formatted variants
  (``72.0``, ``$72$``, ``72 dollars``, ``\\$72``, thousands separators, ``x = 72``);
- ``math500``: the MATH-500 golds against themselves and variants (``$...$``, ``\\dfrac`` for
  ``\\frac``, ``\\left(``/``\\right)``, terminating fractions as decimals, spacing);
- ``cases``: the labelled case set ``benchmarks/data/grader_cases.jsonl`` (every answer type,
  positive and negative, with the known traps, and one-digit perturbations of MATH-500 golds).

math-verify gets each string inside ``$...$`` (its LaTeX extraction, which also reads plain
numbers) and is called as ``verify(parse(gold), parse(answer))``; assay gets the same strings
through ``rewards.math.is_equivalent``. Throughput is measured on the GSM8K set (numeric answers),
serially for both. Goals: accuracy >= math-verify's on every set, zero false positives on the
negative cases, throughput >= 2x math-verify's on GSM8K-style answers and >= 1x on LaTeX answers
(the MATH-500 set).

Adversarial section (assay only): overflowing answers against every MATH-500 gold (goal: no false
positive), a grade interrupted by Ctrl-C followed by grades that must not read its reply, and
callers that share the pool with hung tasks (12 tasks that time out and 12 normal grades on 8
threads, ``timeout=2``): the p99 of a normal caller's wait is reported (goal: < 2 x timeout + 1 s).

For the differential test on generated and real outputs, see ``benchmarks/grader_diff.py``.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from fractions import Fraction
from pathlib import Path

from envs.math.data import load_problems
from rewards.math import bounded, is_equivalent

CASE_FILE = Path(__file__).parent / "data" / "grader_cases.jsonl"


def gsm8k_pairs() -> list[tuple[str, str, bool]]:
    pairs = []
    for p in load_problems("gsm8k", "test"):
        g = p.answer
        variants = [g, f"{g}.0", f"${g}$", f"{g} dollars", f"\\${g}", f"x = {g}"]
        if re.fullmatch(r"\d{4,}", g):
            variants.append(f"{int(g):,}")
        pairs += [(v, g, True) for v in variants]
    return pairs


def math500_pairs() -> list[tuple[str, str, bool]]:
    pairs = []
    for p in load_problems("math500", "test"):
        g = p.answer
        variants = {g, f"${g}$", g.replace(" ", ""), g.replace("\\frac", "\\dfrac")}
        if g.startswith("(") and g.endswith(")"):
            variants.add(f"\\left{g[:-1]}\\right)")
        if m := re.fullmatch(r"(-?)\\frac\{(\d+)\}\{(\d+)\}", g):
            value = Fraction(int(m[2]), int(m[3]))
            if _terminates(value.denominator):
                variants.add(m[1] + _decimal(value))
        pairs += [(v, g, True) for v in sorted(variants)]
    return pairs


def case_pairs() -> list[tuple[str, str, bool]]:
    rows = [json.loads(line) for line in CASE_FILE.read_text().splitlines() if line.strip()]
    return [(r["answer"], r["gold"], r["expected"]) for r in rows]


def _terminates(q: int) -> bool:
    for p in (2, 5):
        while q % p == 0:
            q //= p
    return q == 1


def _decimal(value: Fraction) -> str:
    return format(value.numerator / value.denominator, ".10f").rstrip("0").rstrip(".")


def assay_verdict(answer: str, gold: str) -> bool:
    return is_equivalent(answer, gold)


def math_verify_verdict(answer: str, gold: str) -> bool:
    from math_verify import parse, verify

    try:
        return bool(verify(parse(f"${gold}$"), parse(f"${answer}$")))
    except Exception:
        return False


def score(pairs, verdict) -> dict[str, float]:
    start = time.perf_counter()
    verdicts = [verdict(a, g) for a, g, _ in pairs]
    seconds = time.perf_counter() - start
    right = sum(v == e for v, (_, _, e) in zip(verdicts, pairs, strict=True))
    fp = sum(v and not e for v, (_, _, e) in zip(verdicts, pairs, strict=True))
    fn = sum(e and not v for v, (_, _, e) in zip(verdicts, pairs, strict=True))
    return {"acc": right / len(pairs), "fp": fp, "fn": fn, "per_s": len(pairs) / seconds}


OVERFLOWS = [r"\boxed{e^{1000}}", r"\boxed{10^{400}}", r"\boxed{10^{400}\pi}",
             r"\boxed{9^{(9)^{9}}}", r"\boxed{-e^{1000}}"]  # fmt: skip


def adversarial() -> dict[str, float]:
    """Overflow false positives, verdicts after an interrupted grade, and callers' waits beside
    hung tasks."""
    import _thread
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from rewards.math import grade_many

    golds = [p.answer for p in load_problems("math500", "test")]
    outputs = [o for _ in golds for o in OVERFLOWS]
    expanded = [g for g in golds for _ in OVERFLOWS]
    overflow_fp = sum(r.correct for r in grade_many(outputs, expanded))

    pool = bounded.pool()
    timer = threading.Timer(0.3, _thread.interrupt_main)
    timer.start()
    with contextlib.suppress(KeyboardInterrupt):  # the interrupt lands during this task
        pool.run(time.sleep, 1.5, timeout=10)
    timer.join()
    time.sleep(1.5)
    poisoned = sum(pool.run(divmod, 7, 2, timeout=10) != (3, 1) for _ in range(8))
    poisoned += is_equivalent(r"2\sqrt{3}", r"\sqrt{13}")

    timeout, waits, missed = 2.0, [], []

    def hung() -> None:
        with contextlib.suppress(bounded.WorkerTimeout):
            pool.run(time.sleep, 60, timeout=timeout)

    def normal() -> None:
        start = time.perf_counter()
        right = is_equivalent(r"\frac{\sqrt{3}}{2}", r"\frac{1}{2}\sqrt{3}", timeout=timeout)
        waits.append(time.perf_counter() - start)
        missed.append(not right)  # no worker came free in time: graded False ("timeout")

    with ThreadPoolExecutor(max_workers=8) as threads:
        jobs = [threads.submit(hung) for _ in range(12)] + [
            threads.submit(normal) for _ in range(12)
        ]
        for job in jobs:
            job.result()
    waits.sort()
    p99 = waits[min(len(waits) - 1, int(0.99 * len(waits)))]
    print(f"overflowing answers x MATH-500 golds: {len(outputs)}, false positives: {overflow_fp}")
    print(f"verdicts read from an interrupted task: {poisoned}")
    print(f"caller wait beside hung tasks (timeout {timeout:g} s): p50 {waits[len(waits) // 2]:.2f} s,"
          f" p99 {p99:.2f} s, max {waits[-1]:.2f} s; {sum(missed)} of {len(missed)} graded False"
          " because no worker came free within the timeout")  # fmt: skip
    return {"overflow_fp": overflow_fp, "poisoned": poisoned, "hung_p99_s": p99,
            "hung_missed": sum(missed)}  # fmt: skip


def main() -> None:
    bounded.warm_up()  # worker start-up is not grading time
    math_verify_verdict("1", "1")  # import math-verify before timing it
    sets = {"gsm8k": gsm8k_pairs(), "math500": math500_pairs(), "cases": case_pairs()}
    result: dict[str, float] = {}
    print(f"{'set':8} {'pairs':>6}  {'assay acc':>9} {'fp':>3} {'fn':>4} {'ans/s':>8}"
          f"  {'mv acc':>7} {'fp':>3} {'fn':>4} {'ans/s':>8}")  # fmt: skip
    for name, pairs in sets.items():
        ours, theirs = score(pairs, assay_verdict), score(pairs, math_verify_verdict)
        print(
            f"{name:8} {len(pairs):6d}  {ours['acc']:9.2%} {ours['fp']:3d} {ours['fn']:4d} "
            f"{ours['per_s']:8.0f}  {theirs['acc']:7.2%} {theirs['fp']:3d} {theirs['fn']:4d} "
            f"{theirs['per_s']:8.0f}"
        )
        for key in ("acc", "fp", "fn"):
            result[f"{name}_{key}"] = ours[key]
            result[f"mv_{name}_{key}"] = theirs[key]
        if name in ("gsm8k", "math500"):
            result[f"{name}_per_s"], result[f"mv_{name}_per_s"] = ours["per_s"], theirs["per_s"]
    result["throughput_ratio"] = result["gsm8k_per_s"] / result["mv_gsm8k_per_s"]
    result["latex_throughput_ratio"] = result["math500_per_s"] / result["mv_math500_per_s"]
    result |= adversarial()
    negatives = sum(not e for _, _, e in sets["cases"])
    print(f"negative cases: {negatives}, assay false positives: {result['cases_fp']}")
    print("RESULT " + " ".join(
        f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()
    ))  # fmt: skip


if __name__ == "__main__":
    main()
