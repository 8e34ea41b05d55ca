"""The grader never runs model text, stays within its time bound, and gives the same verdicts
from threads, asyncio and a Ray actor as serially."""

import ast
import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rewards.math import bounded, grade, grade_async, grade_many, is_equivalent

ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIRS = (
    "assay",
    "envs",
    "rewards",
    "trainers",
    "pretraining",
    "analysis",
    "benchmarks",
    "scripts",
)
FORBIDDEN_CALLS = {"eval", "exec"}
FORBIDDEN_NAMES = {"sympify", "parse_expr", "lambdify", "parse_latex"}


def _violations(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in FORBIDDEN_CALLS
        ):
            found.append(f"{path}:{node.lineno}: {node.func.id}()")
        name = None
        if isinstance(node, ast.Name):
            name = node.id
        elif isinstance(node, ast.Attribute):
            name = node.attr
        elif isinstance(node, ast.alias):
            name = node.name.rsplit(".", 1)[-1]
        if name in FORBIDDEN_NAMES:
            found.append(f"{path}:{getattr(node, 'lineno', '?')}: {name}")
    return found


def test_no_eval_exec_or_sympify_anywhere_in_the_project():
    files = [p for d in SOURCE_DIRS if (ROOT / d).exists() for p in (ROOT / d).rglob("*.py")]
    assert len(files) > 30
    violations = [v for f in files for v in _violations(f)]
    assert violations == []


def test_the_scanner_catches_what_it_looks_for(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from sympy import sympify\nx = eval('1')\nsympy.parsing.parse_expr(s)\n")
    assert len(_violations(bad)) == 3
    ok = tmp_path / "ok.py"
    ok.write_text("model.eval()\n")
    assert _violations(ok) == []


INJECTIONS = [
    "__import__('os').system('touch {sentinel}')",
    "\\boxed{__import__('os').system('touch {sentinel}')}",
    "The answer is open('{sentinel}', 'w').write('x')",
    "lambda: open('{sentinel}', 'w')",
    "().__class__.__bases__[0].__subclasses__()",
    "exec(\"open('{sentinel}','w')\")",
    "eval(compile('open(\"{sentinel}\",\"w\")', 's', 'exec'))",
    "\\boxed{x.__globals__['os'].system('touch {sentinel}')}",
    "getattr(__builtins__, 'open')('{sentinel}', 'w')",
    "Symbol('x').__init__.__globals__",
]


def test_code_injection_is_graded_false_and_nothing_runs(tmp_path):
    sentinel = tmp_path / "pwned"
    outputs = [s.replace("{sentinel}", str(sentinel)) for s in INJECTIONS]
    # A gold answer no digit of the temporary path can spell: the last number of an answer
    # counts, and pytest's folders are numbered (pytest-1/...).
    results = grade_many(outputs, ["987654321"] * len(outputs))
    results += [grade(o, "x") for o in outputs]
    assert not any(r.correct for r in results)
    assert not sentinel.exists()


@pytest.fixture(scope="module")
def warm_pool():
    bounded.warm_up()
    return bounded.pool()


BOMBS = [
    "10^{10^{10}}",
    "9**9**9**9",
    "2^{2^{2^{2^{2^{2}}}}}",
    "(10^{100000})",
    "99999!",
    "\\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}",
    "(" * 5000 + "1" + ")" * 5000,
    "\\frac{1}{" * 300 + "2" + "}" * 300,
    "x^{" + "2^" * 2000 + "2}",
    "1+" * 50_000 + "1",
    "7" * 100_000,
    "\\boxed{" * 10_000,  # unclosed boxes: extraction must stay linear
    "\\(" * 30_000,
    "9" * 330 + ".5",  # past float range: compared as exact fractions
]


@pytest.mark.parametrize("bomb", BOMBS, ids=lambda b: b[:20])
def test_bombs_are_false_within_the_bound(bomb, warm_pool):
    start = time.perf_counter()
    result = grade(f"The answer is {bomb}", r"\frac{1}{3}", timeout=2.0)
    elapsed = time.perf_counter() - start
    assert result.correct is False
    assert elapsed < 2.0 + 1.5, f"{elapsed:.1f}s"  # the bound plus process hand-off


def test_a_task_past_its_timeout_is_killed_and_the_pool_recovers(warm_pool):
    start = time.perf_counter()
    with pytest.raises(bounded.WorkerTimeout):
        warm_pool.run(time.sleep, 60, timeout=0.5)
    assert time.perf_counter() - start < 5
    assert is_equivalent(r"\frac{\sqrt{3}}{2}", r"\frac{1}{2}\sqrt{3}")  # goes to a fresh worker


def test_a_memory_bomb_in_a_worker_does_not_take_the_caller_down(warm_pool):
    with pytest.raises(RuntimeError, match="MemoryError"):
        warm_pool.run(bytearray, 16 * 1024**3, timeout=10)
    assert is_equivalent("x^2+2x", "x(x+2)")


CONCURRENT_CASES = [
    (f"The answer is ${a}$", g)
    for a, g in [
        ("72", "72"),
        (r"\frac{\sqrt{3}}{2}", r"\frac{1}{2}\sqrt{3}"),
        ("x^2+2x", "x(x+2)"),
        ("x^2", "2x"),
        (r"\{1,2\}", r"\{2,1\}"),
        ("[1,2)", "[1,2]"),
        ("10^{10^{10}}", "1"),
        ("y = 2x+1", "4x - 2y + 2 = 0"),
        (r"\sin^2 x + \cos^2 x", "1"),
        ("1/2", "12"),
    ]
] * 5  # 50 answers


def test_threads_and_asyncio_agree_with_serial_grading():
    serial = [grade(o, g).correct for o, g in CONCURRENT_CASES]
    assert serial.count(True) == 30
    with ThreadPoolExecutor(max_workers=8) as threads:
        threaded = list(threads.map(lambda c: grade(*c).correct, CONCURRENT_CASES))
    assert threaded == serial

    async def all_async():
        return await asyncio.gather(*(grade_async(o, g) for o, g in CONCURRENT_CASES))

    assert [r.correct for r in asyncio.run(all_async())] == serial
    assert [r.correct for r in grade_many(*zip(*CONCURRENT_CASES, strict=True))] == serial


@pytest.mark.slow
def test_a_ray_actor_agrees_with_serial_grading():
    ray = pytest.importorskip("ray")
    serial = [grade(o, g).correct for o, g in CONCURRENT_CASES]
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:

        @ray.remote
        class Grader:
            def grade(self, cases):
                from rewards.math import grade as grade_one

                return [grade_one(o, g).correct for o, g in cases]

        actor = Grader.remote()
        assert ray.get(actor.grade.remote(CONCURRENT_CASES), timeout=300) == serial
    finally:
        ray.shutdown()


def test_an_interrupted_grade_does_not_answer_the_next_one(warm_pool):
    """Ctrl-C while a worker computes: the worker is killed, so its late reply can never be read
    as the answer to the next task (it once made `2\\sqrt{3}` equal `\\sqrt{13}`)."""
    import os
    import signal
    import threading

    # A real SIGINT, as Ctrl-C sends: it wakes the main thread from its wait for the reply
    # (`_thread.interrupt_main` only sets a flag, and does nothing at all if some earlier code
    # left SIGINT ignored). Python's own handler is put in place for the test's duration.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            warm_pool.run(time.sleep, 4.0, timeout=10)  # replies (None) after the interrupt
    finally:
        signal.signal(signal.SIGINT, previous)
    timer.join()
    time.sleep(4.0)  # past the moment the interrupted task would have replied
    for _ in range(4):  # every worker of the pool, one after the other
        assert warm_pool.run(divmod, 7, 2, timeout=10) == (3, 1)
    assert not is_equivalent(r"2\sqrt{3}", r"\sqrt{13}")
    assert is_equivalent(r"2\sqrt{3}", r"\sqrt{12}")


def test_a_caller_waits_about_its_timeout_even_when_every_worker_is_busy(warm_pool):
    """Slow tasks from other threads hold every worker: a caller's own wait stays bounded by its
    timeout for a free worker plus its timeout to run (not by the queue of everyone's tasks)."""
    timeout = 1.0
    waits = []

    def slow():
        with pytest.raises(bounded.WorkerTimeout):
            warm_pool.run(time.sleep, 30, timeout=timeout)

    def normal():
        start = time.perf_counter()
        grade(r"\frac{\sqrt{3}}{2}", r"\frac{1}{2}\sqrt{3}", timeout=timeout)
        waits.append(time.perf_counter() - start)

    with ThreadPoolExecutor(max_workers=8) as threads:
        jobs = [threads.submit(slow) for _ in range(12)] + [
            threads.submit(normal) for _ in range(12)
        ]
        for job in jobs:
            job.result()
    assert len(waits) == 12
    # two timeouts, plus a worker's start-up on this busy 2-core machine; a queue of 12 slow
    # tasks on 4 workers would take 3 timeouts of waiting alone
    assert max(waits) < 2 * timeout + 2.5, sorted(waits)


@pytest.mark.parametrize(
    "output",
    ["\\( a " * 30_000, "\\[ x " * 30_000, "$$a " * 30_000, "$ a\n" * 30_000, "$x$ w " * 30_000],
    ids=["paren", "bracket", "dollars", "lines", "spans"],
)
def test_degenerate_unmarked_outputs_are_read_in_linear_time(output):
    """No marker sends the whole output to the span and number rules: 30,000 unclosed `\\(`
    once took 46 s there (a lazy regular expression rescans to the end for each opener)."""
    start = time.perf_counter()
    grade(output, "1")
    assert time.perf_counter() - start < 3.0
