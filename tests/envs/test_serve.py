"""``assay serve env`` and ``openenv:`` envs: openenv-core's own client plays an assay env served
by assay, assay's RemoteEnv plays an env served by openenv-core's own server, and the server
survives every kind of bad client."""

import json
import time

import pytest
from conftest import LengthEnv, ServedApp

import envs
from assay.distributed import free_port
from envs.serve import protocol as wire
from envs.serve.client import RemoteEnvError

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
from fastapi.testclient import TestClient  # noqa: E402

from envs.serve.server import EnvServer, ServerLimits  # noqa: E402


def _served(env_id="codenames-game-v0", **limits):
    return EnvServer(lambda: envs.make(env_id), env_id, ServerLimits(**limits))


def _play_locally_and_remotely(env_id, seed, remote_reset, remote_step, max_steps=400):
    """Play one episode with the env's random scripted agents on a local env and, with the same
    actions, through ``remote_*``; every observation and reward must be the same."""
    local = envs.make(env_id)
    observation, info = local.reset(seed=seed)
    remote = remote_reset(seed)
    assert remote["observation"]["messages"] == observation
    assert remote["observation"]["agent"] == info["agent"]
    players, steps = {}, 0
    for steps in range(1, max_steps + 1):
        agent = info["agent"]
        if agent not in players:
            players[agent] = local.scripted_policy("random", agent, seed=seed)
        action = players[agent](observation, info)
        observation, reward, terminated, truncated, info = local.step(action)
        remote = remote_step(action)
        assert remote["observation"]["messages"] == observation
        assert remote["observation"]["agent"] == info["agent"]
        assert remote["observation"]["info"]["rewards"] == pytest.approx(info["rewards"])
        assert remote["reward"] == pytest.approx(reward)
        assert remote["done"] == (terminated or truncated)
        if terminated or truncated:
            return steps
    raise AssertionError("the episode did not end")


def test_openenv_cores_own_client_plays_a_codenames_game_like_the_local_env():
    from openenv.core.generic_client import GenericEnvClient

    def plain(result):
        return {"observation": result.observation, "reward": result.reward, "done": result.done}

    with ServedApp(_served().app()) as running, GenericEnvClient(running.url).sync() as client:
        steps = _play_locally_and_remotely(
            "codenames-game-v0",
            11,
            lambda seed: plain(client.reset(seed=seed)),
            lambda action: plain(client.step({"message": action})),
        )
    assert steps >= 4  # a whole game: four seats acted


def test_remote_env_plays_an_env_served_by_openenv_cores_own_server():
    from openenv.core.env_server.http_server import create_fastapi_app
    from openenv.core.env_server.interfaces import Environment
    from openenv.core.env_server.types import Action, Observation, State

    class Say(Action):
        message: str

    class Heard(Observation):
        text: str

    class Echo(Environment):
        """Rewards the length of what it hears; two turns."""

        SUPPORTS_CONCURRENT_SESSIONS = True

        def __init__(self):
            super().__init__()
            self._state = State()

        def reset(self, seed=None, episode_id=None, **kwargs):
            self._state = State(episode_id=episode_id, step_count=0)
            return Heard(text=f"seed {seed}: say something")

        def step(self, action, timeout_s=None, **kwargs):
            self._state.step_count += 1
            done = self._state.step_count >= 2
            return Heard(text=action.message.upper(), reward=len(action.message), done=done)

        @property
        def state(self):
            return self._state

    app = create_fastapi_app(Echo, Say, Heard, max_concurrent_envs=2)
    with ServedApp(app) as running:
        env = envs.make(f"openenv:{running.url}")
        observation, info = env.reset(seed=5)
        assert observation == [{"role": "user", "content": "seed 5: say something"}]
        assert info["valid"] and info["agent"] == "agent"
        observation, reward, terminated, truncated, _ = env.step("hi")
        assert (observation[0]["content"], reward, terminated) == ("HI", 2.0, False)
        observation, reward, terminated, truncated, _ = env.step("there")
        assert (observation[0]["content"], reward, terminated, truncated) == (
            "THERE",
            5.0,
            True,
            False,
        )
        env.close()


def test_remote_env_passes_the_checker_and_rebuilds_an_episode_after_a_lost_connection():
    with ServedApp(_served("codenames-guess-v0").app()) as running:
        remote = envs.make(f"openenv:{running.url}", timeout_s=30)
        failed = [r for r in envs.check_env(remote) if not r.passed]
        assert not failed, failed
        game = envs.make(f"openenv:{running.url.replace('http', 'ws')}/ws")
        local = envs.make("codenames-guess-v0")
        assert game.reset(seed=4) == local.reset(seed=4)
        game._socket.close()  # the network drops the connection mid-episode
        got, want = game.step("apple"), local.step("apple")
        assert got[:4] == want[:4] and got[4]["reason"] == want[4]["reason"]
        assert game.reconnects == 1
    with pytest.raises(RemoteEnvError, match="No OpenEnv server answers"):
        envs.make(f"openenv:http://127.0.0.1:{free_port()}", connect_timeout_s=2)


def test_sessions_are_isolated_and_http_scores_one_answer_per_request():
    server = _served("codenames-guess-v0")
    local = envs.make("codenames-guess-v0")
    with TestClient(server.app()) as http:
        with http.websocket_connect("/ws") as a, http.websocket_connect("/ws") as b:
            a.send_json({"type": "reset", "data": {"seed": 1}})
            b.send_json({"type": "reset", "data": {"seed": 2}})
            first, second = a.receive_json()["data"], b.receive_json()["data"]
            assert first["observation"]["messages"] == local.reset(seed=1)[0]
            assert second["observation"]["messages"] == local.reset(seed=2)[0]
            b.send_json({"type": "step", "data": {"message": "x"}})
            b.receive_json()
            a.send_json({"type": "state"})
            assert a.receive_json()["data"]["step_count"] == 0  # b's step left a alone
            assert len(server.sessions) == 2
        local.reset(seed=9)
        want = local.step("apple, river")
        got = http.post("/step", json={"action": {"message": "apple, river"}, "seed": 9}).json()
        assert got["reward"] == pytest.approx(want[1]) and got["done"] is True
        stateless = http.post("/step", json={"action": {"message": "apple"}})
        assert stateless.status_code == 409 and "stateless" in stateless.json()["detail"]
        assert http.get("/health").json() == {"status": "healthy"}
        meta = http.get("/metadata").json()
        assert (
            meta["name"] == "codenames-guess-v0" and "target_recall" in meta["assay"]["metric_keys"]
        )
        assert set(http.get("/schema").json()) == {"action", "observation", "state"}
    assert not server.sessions


def _error(socket, message):
    socket.send_text(message if isinstance(message, str) else json.dumps(message))
    reply = socket.receive_json()
    assert reply["type"] == "error", reply
    return reply["data"]["code"]


def test_bad_requests_get_a_clear_error_and_the_session_goes_on():
    server = _served("codenames-guess-v0", max_request_bytes=4096)
    with TestClient(server.app()) as http, http.websocket_connect("/ws") as ws:
        assert _error(ws, "{not json") == wire.INVALID_JSON
        assert _error(ws, {"type": "dance"}) == wire.UNKNOWN_TYPE
        assert _error(ws, {"type": "step", "data": {"message": "a"}}) == wire.NO_EPISODE
        assert _error(ws, {"type": "reset", "data": {"seed": -1}}) == wire.VALIDATION_ERROR
        ws.send_json({"type": "reset", "data": {"seed": 3}})
        assert ws.receive_json()["type"] == "observation"
        assert _error(ws, {"type": "step", "data": {"msg": "a"}}) == wire.VALIDATION_ERROR
        assert _error(ws, {"type": "step", "data": {"message": 7}}) == wire.VALIDATION_ERROR
        assert (
            _error(ws, {"type": "step", "data": {"message": "x" * 5000}}) == wire.MESSAGE_TOO_LARGE
        )
        ws.send_json({"type": "step", "data": {"message": "apple"}})
        assert ws.receive_json()["data"]["done"] is True
        assert _error(ws, {"type": "step", "data": {"message": "apple"}}) == wire.EPISODE_DONE
        big = http.post("/reset", content=b"{" + b" " * 5000 + b"}")
        assert big.status_code == 413 and big.json()["code"] == wire.MESSAGE_TOO_LARGE
        assert http.post("/reset", content=b"[1,").status_code == 400
        assert http.post("/reset", json={"seed": "x"}).status_code == 422
        assert http.post("/reset", json={"seed": 0}).status_code == 200


class _Flaky(envs.TextEnv):
    """Raises on "boom" and sleeps on "sleep": an env with bugs and a hang."""

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return [{"role": "user", "content": "go"}], self.make_info("a")

    def step(self, action):
        if action == "boom":
            raise RuntimeError("the env broke\nsecond line")
        if action == "sleep":
            time.sleep(2)
        return [], 1.0, False, False, self.make_info("a")


def test_a_session_cap_idle_expiry_a_hung_env_and_a_raising_env_leave_the_server_up():
    server = EnvServer(_Flaky, "flaky", ServerLimits(max_sessions=1, idle_timeout_s=0.5,
                                                     request_timeout_s=0.3))  # fmt: skip
    with TestClient(server.app()) as http:
        with http.websocket_connect("/ws") as first:
            first.send_json({"type": "reset", "data": {"seed": 0}})
            first.receive_json()
            with http.websocket_connect("/ws") as second:
                refused = second.receive_json()["data"]
                assert refused["code"] == wire.CAPACITY_REACHED and refused["max_sessions"] == 1
            assert (
                _error(first, {"type": "step", "data": {"message": "boom"}}) == wire.EXECUTION_ERROR
            )
            assert _error(first, {"type": "step", "data": {"message": "x"}}) == wire.NO_EPISODE
            first.send_json({"type": "reset", "data": {"seed": 0}})
            first.receive_json()
            assert _error(first, {"type": "step", "data": {"message": "sleep"}}) == wire.TIMEOUT
        with http.websocket_connect("/ws") as idle:
            began = time.monotonic()
            assert idle.receive_json()["data"]["code"] == wire.SESSION_EXPIRED
            assert 0.4 < time.monotonic() - began < 5
        hung = http.post("/step", json={"action": {"message": "sleep"}, "seed": 1})
        assert hung.status_code == 504 and hung.json()["code"] == wire.TIMEOUT
        with http.websocket_connect("/ws") as later:  # every slot was given back
            later.send_json({"type": "reset", "data": {"seed": 0}})
            assert later.receive_json()["type"] == "observation"
    assert not server.sessions


def test_a_client_that_disconnects_mid_episode_frees_its_session():
    with ServedApp(_served("codenames-guess-v0", max_sessions=1).app()) as running:
        from websockets.sync.client import connect

        socket = connect(running.url.replace("http", "ws") + "/ws", open_timeout=5, legacy=True)
        socket.send(json.dumps({"type": "reset", "data": {"seed": 0}}))
        socket.recv(timeout=10)
        socket.socket.close()  # gone without a close frame
        env = envs.make(f"openenv:{running.url}")
        deadline = time.monotonic() + 10
        while True:  # the server notices the dead connection and frees the only slot
            try:
                env.reset(seed=0)
                break
            except RemoteEnvError:
                env.close()
                assert time.monotonic() < deadline, "the dead session was never freed"
                time.sleep(0.2)
        assert env.step("apple")[2] is True


def test_training_on_a_served_env_gives_the_metrics_of_the_local_env(tmp_path):
    from assay.config import load_config
    from trainers.rl.config import RLConfig
    from trainers.rl.job import run_rl

    envs.register("test-serve-length-v0", LengthEnv)

    def run(env_id, name):
        settings = {
            "model.name": "tiny-random-llama", "env.id": env_id, "train.steps": 2,
            "train.output_dir": str(tmp_path), "train.run_name": name, "algo.group_size": 2,
            "sampling.max_new_tokens": 5, "sampling.temperature": 1.0, "optim.lr": 1e-3,
            "eval.episodes": 3,
        }  # fmt: skip
        run_rl(load_config(RLConfig, overrides=[f"{k}={v}" for k, v in settings.items()]),
               log=lambda *_: None)  # fmt: skip
        records = [
            json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        ]
        return [
            {
                k: v
                for k, v in r.items()
                if not k.endswith(("_s", "_per_s", "_per_sec")) and not k.startswith("mem/")
            }
            for r in records
        ]

    try:
        server = EnvServer(LengthEnv, "test-serve-length-v0")
        with ServedApp(server.app()) as running:
            remote = run(f"openenv:{running.url}", "remote")
        local = run("test-serve-length-v0", "local")
    finally:
        envs.registry._REGISTRY.pop("test-serve-length-v0", None)
    assert len(remote) == len(local) == 2
    for got, want in zip(remote, local, strict=True):
        assert got.keys() == want.keys()
        for key in want:
            assert got[key] == pytest.approx(want[key], abs=1e-6), key


def test_assay_serve_env_serves_until_stopped_and_refuses_a_bad_option(tmp_path):
    import subprocess
    import sys

    from assay.cli import main

    assert main(["serve", "env", "codenames-guess-v0", "colour=red"]) == 2
    port = free_port()
    command = [sys.executable, "-m", "assay.cli", "serve", "env", "codenames-guess-v0",
               "--port", str(port), "--max-sessions", "2"]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert "serving codenames-guess-v0" in server.stdout.readline()
        deadline = time.monotonic() + 60
        while True:
            try:
                env = envs.make(f"openenv:http://127.0.0.1:{port}", connect_timeout_s=2)
                break
            except RemoteEnvError:
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.3)
        assert env.server["assay"]["max_sessions"] == 2
        env.reset(seed=0)
        assert env.step("apple")[2] is True
        env.close()
    finally:
        server.terminate()
        server.wait(20)
