"""Differential test of assay's math grader against math-verify, on generated and real outputs.

    python benchmarks/grader_diff.py [--per-family 300] [--seed 0] [--show 3] [--out DIR]

Both graders see the same (output, gold) pairs in one run: assay as ``grade(output, gold)``,
math-verify 0.9 as ``verify(parse(gold), parse(output))`` with its default extraction (a bare gold
is put in ``$...$``, since math-verify reads LaTeX only between delimiters). Corpora:

- ``forms``: every shipped GSM8K and MATH answer (MATH-500 and the 7,500 MATH train answers)
  rendered in many surface forms (math delimiters, ``\\boxed``, prose with and without an answer
  marker, ``\\dfrac``/``\\tfrac``/brace-less fractions, ``\\left``/``\\right``, spacing commands,
  units, relations written both ways, sets reordered, locale number formats, doubled
  backslashes, a full MATH solution as the gold). Right by construction.
- ``negatives``: one-token perturbations of each gold, another problem's answer, hedges naming
  two answers, tuples reordered, digits inside a random token, overflowing values. Wrong by
  construction.
- ``real``: 200 SmolLM2-135M-Instruct samples on MATH-500, shipped in
  ``benchmarks/data/smollm2_samples.jsonl.gz`` (``assay eval math --env math-math500-v0
  --samples 4``: problems 0-19 at ``--max-new-tokens 384 --seed 0``, and 0-29 at
  ``--max-new-tokens 320 --seed 1``; temperature 0.7), and the shipped PRM800K rows. No label:
  every disagreement is listed to be read.

For labelled pairs a disagreement has a winner (the grader that matches the label); each family
prints its size, agreement rate and who was right. The last line is ``RESULT ...``. Tests import
:func:`labelled_cases` and :func:`grade_assay` from here (``tests/rewards/test_grader_diff.py``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

from envs.math.data import load_problems
from rewards.math import bounded, grade_many

SAMPLES = Path(__file__).parent / "data" / "smollm2_samples.jsonl.gz"
PRM800K = Path(__file__).parents[1] / "rewards" / "rm" / "data" / "prm800k_samples.jsonl"


@dataclass(frozen=True)
class Case:
    corpus: str  # forms | negatives | real
    family: str
    output: str
    gold: str
    expected: bool | None  # None: unlabelled (real model output)


# ----------------------------------------------------------------------------- answers
def golds() -> list[tuple[str, str]]:
    """``(dataset, answer)`` for every shipped answer, deduplicated, in a fixed order."""
    seen, out = set(), []
    for dataset, split in (("gsm8k", "test"), ("math500", "test"), ("math", "train")):
        for p in load_problems(dataset, split):
            if p.answer and p.answer not in seen:
                seen.add(p.answer)
                out.append((dataset, p.answer))
    return out


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_FRAC = re.compile(r"\\frac\{(\d)\}\{(\d)\}")


def _is_number(g: str) -> bool:
    return _NUMBER.fullmatch(g) is not None


# ----------------------------------------------------------------------------- positive forms
# Each takes a gold and returns a list of outputs that state it (empty when it does not apply).
def _delimiters(g: str) -> list[str]:
    return [f"${g}$", f"\\({g}\\)", f"\\[{g}\\]", f"$$ {g} $$"]


def _boxed(g: str) -> list[str]:
    return [f"Adding these up, the answer is $\\boxed{{{g}}}$.", f"\\boxed{{{g}}}"]


def _prose_span(g: str) -> list[str]:
    return [f"So we get ${g}$.", f"Putting it together, we find that the value is ${g}$."]


def _markers(g: str) -> list[str]:
    return [
        f"The answer is ${g}$.",
        f"Final Answer: The final answer is ${g}$. I hope it is correct.",
        f"**Answer:** ${g}$",
    ]


def _plain_prose(g: str) -> list[str]:
    # Prose with no marker and no delimiters: only a plain number can be found there.
    return [f"We add them and get {g}", f"Therefore x = {g}"] if _is_number(g) else []


def _fractions(g: str) -> list[str]:
    if "\\frac" not in g:
        return []
    out = [g.replace("\\frac", "\\dfrac"), g.replace("\\frac", "\\tfrac")]
    if _FRAC.search(g):
        out.append(_FRAC.sub(r"\\frac\1\2", g))
    return out


def _sizing(g: str) -> list[str]:
    if not re.search(r"[()\[\]]", g) or "\\left" in g:
        return []
    out = re.sub(r"(?<!\\)\(", r"\\left( ", g)
    out = re.sub(r"(?<!\\)\)", r" \\right)", out)
    out = re.sub(r"(?<![\\a-z])\[", r"\\left[ ", out)
    out = re.sub(r"(?<![\\a-z])\]", r" \\right]", out)
    return [out]


def _spacing(g: str) -> list[str]:
    if not re.search(r"[+=,]", g) or "\\begin" in g:
        return []
    return [re.sub(r"\s*([+=])\s*", r"\\,\1\\,", g).replace(", ", ",\\;"), g.replace(" ", "")]


def _units(g: str) -> list[str]:
    if not _is_number(g):
        return []
    return [f"{g} cm", f"{g}\\text{{ cm}}", f"{g} \\textnormal{{meters}}", f"${g}$ apples"]


def _decimal_forms(g: str) -> list[str]:
    m = re.fullmatch(r"(-?)\\frac\{(\d+)\}\{(\d+)\}", g)
    if not m or int(m[3]) == 0:
        return []
    value = Fraction(int(m[2]), int(m[3]))
    q = value.denominator
    for p in (2, 5):
        while q % p == 0:
            q //= p
    if q != 1:
        return []
    places = max(len(str(value.denominator)) * 4, 1)
    digits = value.numerator * 10**places // value.denominator  # exact: the decimal terminates
    text = f"{digits // 10**places}.{digits % 10**places:0{places}d}".rstrip("0").rstrip(".")
    return [m[1] + text]


def _locale(g: str) -> list[str]:
    out = []
    if re.fullmatch(r"\d{4,7}", g):
        n = int(g)
        out += [f"{n:,}", f"{n:,}".replace(",", " "), f"{n:,}".replace(",", "{,}")]
    if re.fullmatch(r"-?\d+\.\d{1,2}", g) or re.fullmatch(r"-?0\.\d+", g):
        out.append(g.replace(".", ","))
    return out


def _equation(g: str) -> list[str]:
    if (
        "=" in g
        or "," in g
        or "\\" in g
        and not g.startswith("\\frac")
        or re.fullmatch(r"[A-E]", g)
    ):
        return []  # a choice letter is not a value of x
    return [f"x = {g}", f"$x = {g}$"]


def _relations(g: str) -> list[str]:
    """An interval with one infinite end, stated as an inequality both ways round."""
    if m := re.fullmatch(r"\[\s*([^,]+?)\s*,\s*\\infty\s*\)", g):
        a = m[1]
        return [f"x \\ge {a}", f"{a} \\le x", f"x >= {a}"]
    if m := re.fullmatch(r"\(\s*-\\infty\s*,\s*([^,]+?)\s*\)", g):
        a = m[1]
        return [f"x < {a}", f"{a} > x", f"x \\lt {a}"]
    return []


def _set_reorder(g: str) -> list[str]:
    if "\\text" in g or "{,}" in g or re.fullmatch(r"\d{1,3}(?:,\d{3})+", g):
        return []  # words, or one number with thousands separators
    if g.startswith("\\{") and g.endswith("\\}"):
        items = [s.strip() for s in g[2:-2].split(",")]
        if len(items) > 1 and all(items):
            return [f"\\{{{', '.join(reversed(items))}\\}}"]
    if re.fullmatch(r"-?[\w\\{}^/]+(?:\s*,\s*-?[\w\\{}^/]+)+", g):
        items = [s.strip() for s in g.split(",")]
        return [", ".join(reversed(items))]
    return []


def _doubled(g: str) -> list[str]:
    return [g.replace("\\", "\\\\")] if re.search(r"\\[a-zA-Z]", g) else []


FORMS: dict[str, Callable[[str], list[str]]] = {
    "delimiters": _delimiters,
    "boxed": _boxed,
    "prose_span": _prose_span,
    "answer_marker": _markers,
    "plain_prose": _plain_prose,
    "dfrac_tfrac_braceless": _fractions,
    "left_right": _sizing,
    "spacing": _spacing,
    "units": _units,
    "decimal_for_fraction": _decimal_forms,
    "locale_numbers": _locale,
    "equation_label": _equation,
    "relations": _relations,
    "set_reordered": _set_reorder,
    "doubled_backslashes": _doubled,
}


# ----------------------------------------------------------------------------- negatives
def _perturb_digit(g: str, rng: random.Random) -> list[str]:
    digits = [m.start() for m in re.finditer(r"\d", g)]
    if not digits:
        return []
    i = rng.choice(digits)
    new = str((int(g[i]) + rng.randint(1, 8)) % 10)
    out = g[:i] + new + g[i + 1 :]
    # a leading zero would make `05` equal to `5`: keep only real changes of value
    return [] if re.search(r"(?<![\d.])0\d", out) else [out]


def _perturb_sign(g: str, rng: random.Random) -> list[str]:
    if g in ("0", "0.0") or "\\infty" in g or "," in g or "=" in g:
        return []
    return [g[1:]] if g.startswith("-") else [f"-{g}"]


def _bracket_swap(g: str, rng: random.Random) -> list[str]:
    if g[:1] in "([" and g[-1:] in ")]" and "," in g and "\\infty" not in g:
        return [{"(": "[", "[": "("}[g[0]] + g[1:]]
    return []


def _tuple_reorder(g: str, rng: random.Random) -> list[str]:
    if g.startswith("(") and g.endswith(")") and g.count(",") == 1 and "\\infty" not in g:
        a, b = (s.strip() for s in g[1:-1].split(","))
        return [f"({b}, {a})"] if a != b and "(" not in a + b else []
    return []


def _token_noise(g: str, rng: random.Random) -> list[str]:
    if not _is_number(g):
        return []
    letters = "".join(rng.choice("ABCDEFGHKMNPQRSTUVWXYZ") for _ in range(5))
    return [f"{letters}{g}{rng.choice('ABCXYZ')}"]


def _overflow(g: str, rng: random.Random) -> list[str]:
    return [rng.choice([r"\boxed{e^{1000}}", r"\boxed{10^{400}}", r"\boxed{10^{400}\pi}"])]


NEGATIVES: dict[str, Callable[[str, random.Random], list[str]]] = {
    "perturbed_digit": _perturb_digit,
    "perturbed_sign": _perturb_sign,
    "interval_bracket_swapped": _bracket_swap,
    "tuple_reordered": _tuple_reorder,
    "digits_in_a_token": _token_noise,
    "overflowing_value": _overflow,
}


def _plain_value(g: str) -> Fraction | None:
    from rewards.math import normalize, parse_number

    return parse_number(normalize(g).text)


def labelled_cases(per_family: int = 300, seed: int = 0) -> list[Case]:
    """Generated (output, gold) pairs whose verdict is known by construction, at most
    ``per_family`` per family, drawn reproducibly from every shipped answer."""
    rng = random.Random(seed)
    answers = golds()
    by_family: dict[tuple[str, str], list[Case]] = defaultdict(list)
    for _, g in answers:
        for family, make in FORMS.items():
            by_family[("forms", family)] += [Case("forms", family, o, g, True) for o in make(g)]
        for family, make in NEGATIVES.items():
            by_family[("negatives", family)] += [
                Case("negatives", family, o, g, False) for o in make(g, rng)
            ]
    # Another problem's answer, and a hedge naming the right answer and another one.
    for _, g in answers:
        _, other = rng.choice(answers)
        if other != g and not (
            _plain_value(other) is not None and _plain_value(other) == _plain_value(g)
        ):
            by_family[("negatives", "other_answer")].append(
                Case("negatives", "other_answer", f"The answer is ${other}$.", g, False)
            )
            if _is_number(g) and _is_number(other):
                hedge = f"It is either ${g}$ or ${other}$."
                by_family[("negatives", "hedge")].append(
                    Case("negatives", "hedge", f"The answer is ${g}$ or ${other}$.", g, False)
                )
                by_family[("negatives", "hedge")].append(
                    Case("negatives", "hedge", hedge, g, False)
                )
    # A full MATH solution as the gold: the same verdict as its boxed answer.
    for p in load_problems("math500", "test"):
        by_family[("forms", "solution_as_gold")].append(
            Case("forms", "solution_as_gold", f"\\boxed{{{p.answer}}}", p.solution, True)
        )
    cases = []
    for key in sorted(by_family):
        pool = by_family[key]
        cases += pool if len(pool) <= per_family else rng.sample(pool, per_family)
    return cases


def real_cases() -> list[Case]:
    """Real model outputs with their golds, unlabelled."""
    cases = []
    if SAMPLES.exists():
        with gzip.open(SAMPLES, "rt") as f:
            for line in f:
                row = json.loads(line)
                cases.append(
                    Case("real", f"smollm2_{row['env']}", row["output"], row["gold"], None)
                )
    for line in PRM800K.read_text().splitlines():
        row = json.loads(line)
        gold = row["question"].get("ground_truth_answer")
        if not gold:
            continue
        for step in row["label"]["steps"]:
            for completion in step["completions"] or []:
                if "# Answer" in completion["text"]:
                    cases.append(Case("real", "prm800k_answers", completion["text"], gold, None))
    return cases


# ----------------------------------------------------------------------------- graders
def grade_assay(cases: list[Case]) -> list[bool]:
    results = grade_many([c.output for c in cases], [c.gold for c in cases])
    return [r.correct for r in results]


_DELIMITED = re.compile(r"\$|\\boxed|\\\(|\\\[")


def grade_math_verify(cases: list[Case], progress: bool = True) -> list[bool]:
    from math_verify import parse, verify

    verdicts = []
    for i, c in enumerate(cases):
        # A bare gold goes in `$...$`: math-verify reads LaTeX only inside delimiters, and its
        # documentation asks for golds written so.
        gold = c.gold if _DELIMITED.search(c.gold) else f"${c.gold}$"
        try:
            verdict = bool(verify(parse(gold), parse(c.output)))
        except KeyboardInterrupt:
            raise
        except BaseException:  # its signal timeouts, parse errors: a False, not a crash
            verdict = False
        finally:
            signal.alarm(0)  # a late alarm of math-verify's must not fire in the next case
        verdicts.append(verdict)
        if progress and i % 500 == 499:
            print(f"  math-verify: {i + 1}/{len(cases)}", flush=True)
    return verdicts


# ----------------------------------------------------------------------------- report
def _rows(cases, ours, theirs) -> Iterator[dict]:
    for c, a, m in zip(cases, ours, theirs, strict=True):
        yield {**asdict(c), "assay": a, "math_verify": m}


def report(cases: list[Case], ours: list[bool], theirs: list[bool], show: int) -> dict:
    stats: dict[tuple[str, str], Counter] = defaultdict(Counter)
    examples: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in _rows(cases, ours, theirs):
        key = (row["corpus"], row["family"])
        s = stats[key]
        s["n"] += 1
        s["agree"] += row["assay"] == row["math_verify"]
        if row["expected"] is not None:
            s["assay_right"] += row["assay"] == row["expected"]
            s["mv_right"] += row["math_verify"] == row["expected"]
        if row["assay"] != row["math_verify"]:
            examples[key].append(row)
    print(f"\n{'corpus':9} {'family':26} {'n':>5} {'agree':>7} {'assay ok':>9} {'mv ok':>7}")
    for key in sorted(stats):
        s = stats[key]
        labelled = key[0] != "real"
        print(
            f"{key[0]:9} {key[1]:26} {s['n']:5d} {s['agree'] / s['n']:7.1%} "
            + (f"{s['assay_right'] / s['n']:9.1%} {s['mv_right'] / s['n']:7.1%}" if labelled else
               f"{'-':>9} {'-':>7}")
        )  # fmt: skip
    if show:
        print("\nDisagreements (first few per family):")
        for key in sorted(examples):
            for row in examples[key][:show]:
                print(f"  [{key[1]}] expected={row['expected']} assay={row['assay']} "
                      f"mv={row['math_verify']}  output={row['output'][-90:]!r}  "
                      f"gold={row['gold'][-60:]!r}")  # fmt: skip
    labelled = [r for r in _rows(cases, ours, theirs) if r["expected"] is not None]
    total = len(cases)
    return {
        "pairs": total,
        "labelled": len(labelled),
        "agreement": sum(a == m for a, m in zip(ours, theirs, strict=True)) / total,
        "assay_right": sum(r["assay"] == r["expected"] for r in labelled) / len(labelled),
        "mv_right": sum(r["math_verify"] == r["expected"] for r in labelled) / len(labelled),
        "assay_fp": sum(r["assay"] and not r["expected"] for r in labelled),
        "mv_fp": sum(r["math_verify"] and not r["expected"] for r in labelled),
        "assay_fn": sum(r["expected"] and not r["assay"] for r in labelled),
        "mv_fn": sum(r["expected"] and not r["math_verify"] for r in labelled),
        "families_disagreeing": len(examples),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-family", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=3, help="disagreements to print per family")
    parser.add_argument(
        "--out", type=Path, help="write every disagreement to OUT/disagreements.jsonl"
    )
    args = parser.parse_args()
    cases = labelled_cases(args.per_family, args.seed) + real_cases()
    print(f"{len(cases)} pairs: " + ", ".join(
        f"{k} {v}" for k, v in sorted(Counter(c.corpus for c in cases).items())
    ))  # fmt: skip
    bounded.warm_up()
    start = time.perf_counter()
    ours = grade_assay(cases)
    assay_s = time.perf_counter() - start
    start = time.perf_counter()
    theirs = grade_math_verify(cases)
    mv_s = time.perf_counter() - start
    result = report(cases, ours, theirs, args.show)
    result["assay_s"], result["mv_s"] = assay_s, mv_s
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        with open(args.out / "disagreements.jsonl", "w") as f:
            for row in _rows(cases, ours, theirs):
                if row["assay"] != row["math_verify"]:
                    f.write(json.dumps(row) + "\n")
    print("RESULT " + " ".join(
        f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()
    ))  # fmt: skip


if __name__ == "__main__":
    main()
