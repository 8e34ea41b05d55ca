"""A third-party game installed with pip is found through the ``assay.envs`` entry point."""

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import env_with_path, pip_install_target

PLUGIN = Path(__file__).parent / "plugin_game"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    pip_install_target(PLUGIN, target)
    return target


def _run(code: str, site: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env_with_path(site),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_installed_plugin_is_listed_and_made(plugin_site):
    out = _run(
        "import envs; print(envs.list_envs()); env = envs.make('tiny-parity-v0');"
        "obs, info = env.reset(seed=4); n = env.n;"
        "print(env.step('even' if n % 2 == 0 else 'odd')[1], envs.spec('tiny-parity-v0').source)",
        plugin_site,
    )
    assert "tiny-parity-v0" in out
    assert "1.0 tinygame" in out


def test_installed_plugin_is_a_gymnasium_env(plugin_site):
    out = _run(
        "import gymnasium as gym, envs; env = gym.make('assay/tiny-parity-v0');"
        "print(env.reset(seed=1)[1]['agent'])",
        plugin_site,
    )
    assert out.strip() == "player"


def test_installed_plugin_passes_assay_envs_check(plugin_site):
    out = _run(
        "from assay.cli import main; raise SystemExit(main(['envs', 'check', 'tiny-parity-v0']))",
        plugin_site,
    )
    assert "tiny-parity-v0: 6 passed, 0 failed" in out
