import os
import threading
import time

# No hub on these machines: fail fast instead of retrying the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

import envs  # noqa: E402


@pytest.fixture(scope="session")
def tiny_lm():
    """(model, tokenizer) of the tiny random LLaMA; tests that train must copy the model."""
    from assay.models import load_causal_lm

    return load_causal_lm("tiny-random-llama")


def pip_install_target(source, target) -> None:
    """Install a local package into ``target`` (a folder for PYTHONPATH), as a user's pip would."""
    import subprocess
    import sys

    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        timeout=300,
    )


def env_with_path(site) -> dict:
    """os.environ with ``site`` first on PYTHONPATH."""
    return dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    )


class LengthEnv(envs.TextEnv):
    """Rewards answers by length mod 3, so random answers get different rewards (a real signal
    for a learner to follow)."""

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        n = int(self.np_random.integers(100))
        return [{"role": "user", "content": f"Write {n} words."}], self.make_info("writer")

    def step(self, action):
        info = self.make_info("writer")
        reward = (len(action) % 3) / 2
        return [{"role": "assistant", "content": action}], reward, True, False, info


class ServedApp:
    """A uvicorn server for ``app`` on a free loopback port, in a thread."""

    def __init__(self, app):
        import uvicorn

        from assay.distributed import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the test server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)
