"""Runs docs/interop.md's examples: openenv-core's client and assay's remote env against
``assay serve env``'s app, and verl's ``compute_score``."""

import contextlib
import io
import re
from pathlib import Path

import pytest
from conftest import ServedApp

import envs

DOC = Path(__file__).parents[2] / "docs" / "interop.md"


def _blocks() -> dict[str, str]:
    return dict(re.findall(r"<!-- run: (\S+) -->\n```python\n(.*?)```", DOC.read_text(), re.DOTALL))


def _run(code: str, **names) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(DOC), "exec"), dict(names))  # the doc's own code, not user input
    return out.getvalue()


def test_every_example_is_run_here():
    assert set(_blocks()) == {"openenv-client", "remote-env", "compute-score"}


def test_the_serving_examples_play_the_served_game():
    pytest.importorskip("openenv")
    from envs.serve.server import EnvServer

    server = EnvServer(lambda: envs.make("codenames-game-v0"), "codenames-game-v0")
    with ServedApp(server.app()) as running:
        seat, reward, next_seat, done = _run(_blocks()["openenv-client"], URL=running.url).split()
        local = envs.make("codenames-game-v0")
        local.reset(seed=7)
        _, want, terminated, _, info = local.step("Clue: ANIMAL 2")
        assert (seat, float(reward), next_seat) == ("red/spymaster", want, info["agent"])
        assert done == str(terminated)
        printed = _run(_blocks()["remote-env"], URL=running.url)
        assert printed.startswith("red/spymaster (") and "blue/operative" in printed


def test_the_verl_example_scores_the_gold_answer():
    assert _run(_blocks()["compute-score"]).strip() == "1.0"
