"""codenames-clue-v0: every format-gate rule, the judges, the tiers, and batched scoring."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

import envs
from assay.errors import ConfigError
from envs.codenames.clue import format_clue
from envs.codenames.judges import APIJudge, EmbeddingJudge, JudgeRequest
from envs.codenames.tiers import TIERS, clue_vocabulary, make_tier_board
from envs.codenames.words import embeddings, wordlist
from rewards.codenames_clue import ClueAnswer, check_clue, parse_clue

BOARD = ["SWIMMING", "SEASHELL", "MOUSE", "HAPPINESS", "ICE CREAM", "CAR", "WHALE"]
TARGETS = ["CAR", "WHALE"]


def _rule(clue: str, selected=("CAR",)) -> str:
    return check_clue(ClueAnswer(clue, tuple(selected)), BOARD, TARGETS).rule


@pytest.mark.parametrize(
    ("clue", "selected", "rule"),
    [
        ("SEA-SHELL", ["CAR"], "compound"),
        ("ROAD TRIP", ["CAR"], "compound"),
        ("R2D2", ["CAR"], "not_alphabetic"),
        ("NAÏVE", ["CAR"], "not_alphabetic"),
        ("VEHICLE", [], "no_targets"),
        ("VEHICLE", ["CAR", "MOUSE"], "foreign_target"),  # MOUSE is on the board, not a target
        ("VEHICLE", ["BUS"], "foreign_target"),
        ("WHALE", ["CAR"], "on_board"),
        ("SWIM", ["CAR"], "variant"),  # swim / swimming: same lemma
        ("MICE", ["CAR"], "variant"),  # mice / mouse: an inflection
        ("SEA", ["CAR"], "variant"),  # sea / seashell: contained, >= 3 letters
        ("HAPPY", ["CAR"], "variant"),  # happy / happiness: the same stem
        ("CREAM", ["CAR"], "variant"),  # part of a two-word board entry
        ("CARS", ["CAR"], "variant"),
        ("XQZVBT", ["CAR"], "not_english"),
    ],
)
def test_each_gate_rule_trips(clue, selected, rule):
    assert _rule(clue, selected) == rule


@pytest.mark.parametrize(
    "clue",
    [
        "VEHICLE",
        "OCEAN",
        "SEAL",  # shares letters with SEASHELL, but neither contains the other
        "SWIMMER",  # near SWIMMING, but another lemma and another stem
        "LEFT",  # LEFT and LEAF share the form "leaves", yet are different words
        "ICY",
        "BITCOIN",  # unknown to lemminflect, but common (Zipf >= 3)
    ],
)
def test_legal_clues_pass_the_gate(clue):
    board = [*BOARD, "LEAF"]
    assert check_clue(ClueAnswer(clue, ("CAR", "WHALE")), board, TARGETS).valid


@pytest.mark.parametrize("clue", ["AAAA", "QWERTY", "ZZZ"])
def test_letter_strings_that_wordfreq_has_seen_are_not_english_words(clue):
    assert _rule(clue) == "not_english"


def test_both_answer_formats_parse():
    simple = "Let me think.\n**Clue:** ocean\nTargets: whale, car, whale"
    assert parse_clue(simple) == ClueAnswer("OCEAN", ("WHALE", "CAR"))
    tagged = format_clue("OCEAN", ["WHALE", "CAR"], "tagged")
    assert parse_clue(tagged, "tagged") == ClueAnswer("OCEAN", ("WHALE", "CAR"))
    assert parse_clue(tagged, "simple") is None  # formats do not leak into each other
    assert parse_clue("Clue: ocean", "simple") is None  # no targets line
    assert parse_clue("Clue: SEA\r\nTargets: CAR\r\n") == ClueAnswer("SEA", ("CAR",))
    start = time.perf_counter()  # long untrusted lines parse in linear time
    assert parse_clue("Clue: " + "a " * 50_000 + "\nTargets: b").selected == ("B",)
    assert parse_clue("[CODENAMES-CLUE-START] [Clue]: " + "a" * 50_000, "tagged") is None
    assert time.perf_counter() - start < 0.5
    assert check_clue(None, BOARD, TARGETS).rule == "format"


def test_the_embedding_judge_is_deterministic_and_ranks_by_similarity():
    judge = EmbeddingJudge()
    board = ("WHALE", "SHARK", "PIANO", "CAR", "BANK")
    requests = [JudgeRequest(board, "OCEAN", 2), JudgeRequest(board, "MUSIC", 1)]
    first, second = judge.guess_many(requests), EmbeddingJudge().guess_many(requests)
    assert first == second
    assert set(first[0]) == {"WHALE", "SHARK"} and first[1] == ["PIANO"]
    # The ranking is the cosine similarity of the shipped MiniLM rows.
    index = {w: i for i, w in enumerate(wordlist())}
    vectors = judge.vectors(["OCEAN"])[0]
    sims = [embeddings()[index[w]] @ vectors for w in board]
    assert first[0] == [board[i] for i in np.argsort(sims)[::-1][:2]]


class _Stub(BaseHTTPRequestHandler):
    failures_left = 0
    hang = False
    mode = ""  # "garbage": not HTTP at all; "trickle": a valid reply, one byte at a time
    seen_auth: list[str] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen_auth.append(self.headers.get("Authorization", ""))
        if type(self).hang:
            time.sleep(3)
            return
        if type(self).mode == "trickle_status":  # the status line itself, a byte at a time
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}":
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.1)
            return
        if type(self).mode.startswith("redirect:"):
            self.send_response(307)
            self.send_header("Location", type(self).mode.removeprefix("redirect:"))
            self.end_headers()
            return
        if type(self).mode == "garbage":
            self.wfile.write(b"this is not HTTP\r\n\r\n")
            return
        if type(self).mode == "trickle":
            self.send_response(200)
            self.send_header("Content-Length", "400")
            self.end_headers()
            for _ in range(400):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.02)
            return
        if type(self).failures_left > 0:
            type(self).failures_left -= 1
            self.send_response(503)
            self.end_headers()
            return
        board_line = body["messages"][-1]["content"].splitlines()[0]
        first = board_line.removeprefix("Board: ").split(", ")[0]
        reply = {"choices": [{"message": {"content": f"Guesses: {first}"}}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def stub_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Stub.failures_left, _Stub.hang, _Stub.mode, _Stub.seen_auth = 0, False, "", []
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_api_judge_retries_then_answers(stub_server, monkeypatch):
    monkeypatch.setenv("STUB_API_KEY", "sk-secret")
    _Stub.failures_left = 2
    judge = APIJudge(
        stub_server, "stub", key_env="STUB_API_KEY", timeout=2, retries=3, backoff=0.01
    )
    (guesses,) = judge.guess_many([JudgeRequest(("WHALE", "CAR"), "OCEAN", 1)])
    assert guesses == ["WHALE"]
    assert len(_Stub.seen_auth) == 3 and _Stub.seen_auth[-1] == "Bearer sk-secret"
    assert judge.last_errors == ["HTTPError 503", "HTTPError 503"]  # no key in the errors


def test_api_judge_that_never_answers_scores_zero_in_bounded_time(stub_server):
    _Stub.hang = True
    env = envs.make(
        "codenames-clue-v0",
        judge="api",
        judge_options={"base_url": stub_server, "model": "stub", "timeout": 0.3,
                       "retries": 3, "backoff": 0.01},
    )  # fmt: skip
    _, info = env.reset(seed=0)
    answer = format_clue("VEHICLE", info["targets"][:1], "simple")
    start = time.perf_counter()
    _, reward, _, _, step_info = env.step(answer)
    assert time.perf_counter() - start < 4 * 0.3 + 1.0  # 4 attempts of 0.3 s plus backoff
    assert reward == 0.0 and step_info["judge_failure"] == 1.0 and step_info["valid"]


@pytest.mark.parametrize("mode", ["garbage", "trickle"])
def test_api_judge_survives_broken_and_trickling_servers(stub_server, mode):
    _Stub.mode = mode
    judge = APIJudge(stub_server, "stub", timeout=0.5, retries=1, backoff=0.01)
    start = time.perf_counter()
    assert judge.guess_many([JudgeRequest(("WHALE", "CAR"), "OCEAN", 1)]) == [None]
    assert time.perf_counter() - start < 2 * 0.5 + 1.0  # wall-clock bound, not per read
    assert len(judge.last_errors) == 2


def test_api_judge_stops_calling_a_dead_endpoint(stub_server):
    _Stub.failures_left = 10**6
    judge = APIJudge(stub_server, "stub", retries=0, backoff=0.0, breaker=3, cooldown=60)
    requests = [JudgeRequest(("WHALE", "CAR"), "OCEAN", 1)] * 10
    judge.workers = 1
    assert judge.guess_many(requests) == [None] * 10
    assert len(_Stub.seen_auth) == 3  # the breaker opened after three failures
    assert judge.last_errors[-1] == "circuit open"


def test_invalid_clues_score_minus_one_without_calling_the_judge():
    class Counting:
        name, calls = "counting", 0

        def guess_many(self, requests):
            type(self).calls += len(requests)
            return [[r.board[0]] for r in requests]

    env = envs.make("codenames-clue-v0", judge=Counting())
    _, info = env.reset(seed=3)
    _, reward, _, _, step_info = env.step(
        f"Clue: {info['board'][0]}\nTargets: {info['targets'][0]}"
    )
    assert reward == -1.0 and step_info["rule"] == "on_board" and Counting.calls == 0


def test_clue_rewards_follow_the_guess_formula_and_batch_equals_one_by_one():
    env = envs.make("codenames-clue-v0", n_targets=[3, 3], n_non_targets=[3, 3])
    answers = []
    for seed in range(6):
        _, info = env.reset(seed=seed)
        answers.append((seed, format_clue("ANIMAL", info["targets"][:2], "simple")))
    answers.append((6, "no clue here"))
    batched = env.score_many(answers)
    for (seed, text), (reward, info) in zip(answers, batched, strict=True):
        env.reset(seed=seed)
        _, single, _, _, single_info = env.step(text)
        assert single == reward and single_info == info
    for reward, info in batched[:-1]:
        t, n, g = set(info["targets"]), set(info["non_targets"]), set(info["guesses"])
        expected = len(t & g) / len(t) - len(n & g) / len(n) - len(g - t - n) / len(g)
        assert reward == pytest.approx(expected) and len(g) == 2
    assert batched[-1][0] == -1.0 and batched[-1][1]["rule"] == "format"


def test_tiers_measurably_differ_in_clue_to_target_similarity():
    words, _, vectors = clue_vocabulary()
    topic = {w: i for i, w in enumerate(words)}
    index = {w: i for i, w in enumerate(wordlist())}
    means = []
    for tier in TIERS[:3]:  # simple, moderate, advanced
        rng = np.random.default_rng(0)
        sims = []
        for _ in range(200):
            board = make_tier_board(rng, tier, (2, 4), (2, 4))
            clue = vectors[topic[board.clue]]
            sims += [float(embeddings()[index[t]] @ clue) for t in board.targets]
        means.append(np.mean(sims))
    assert means[0] > means[1] + 0.02 > means[2] + 0.04


def test_expert_tier_halves_the_guess_limit_and_puts_non_target_associates_among_targets():
    rng = np.random.default_rng(1)
    board = make_tier_board(rng, "expert", (4, 4), (3, 3))
    assert board.max_guesses == 2 and len(board.targets) == 4
    clue_env = envs.make("codenames-clue-v0", tier="expert", n_targets=[4, 4])
    _, info = clue_env.reset(seed=0)
    answer = format_clue("ANIMAL", info["targets"], "simple")  # selects all 4 targets
    _, _, _, _, step_info = clue_env.step(answer)
    assert len(step_info["guesses"]) == 2  # the judge guesses at most floor(|T|/2)
    env = envs.make("codenames-guess-v0", tier="mixed", n_targets=[2, 4], n_non_targets=[2, 4])
    for seed in range(20):
        _, info = env.reset(seed=seed)
        assert info["clue"] not in info["board"]


def test_api_judge_bounds_the_whole_exchange_even_a_trickled_status_line(stub_server):
    _Stub.mode = "trickle_status"  # 47 bytes at 0.1 s each: 4.7 s if each read had its own bound
    judge = APIJudge(stub_server, "stub", timeout=0.5, retries=0, backoff=0.0)
    start = time.perf_counter()
    assert judge.guess_many([JudgeRequest(("WHALE", "CAR"), "OCEAN", 1)]) == [None]
    assert time.perf_counter() - start < 0.5 + 0.5
    assert judge.last_errors == ["TimeoutError"]


def test_api_judge_never_follows_a_redirect_with_the_key(stub_server, monkeypatch):
    other = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("STUB_API_KEY", "sk-secret")
        _Stub.mode = f"redirect:http://127.0.0.1:{other.server_address[1]}/v1/chat/completions"
        judge = APIJudge(stub_server, "stub", key_env="STUB_API_KEY", retries=2, backoff=0.0)
        assert judge.guess_many([JudgeRequest(("WHALE", "CAR"), "OCEAN", 1)]) == [None]
        assert _Stub.seen_auth == ["Bearer sk-secret"]  # one request, to the configured server
        assert judge.last_errors == ["HTTPError 307"]  # not retried either
    finally:
        other.shutdown()
        other.server_close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"base_url": "http://127.0.0.1:1/v1", "model": "m", "timout": 5},
            "unknown judge_options key 'timout' for the api judge .* Did you mean 'timeout'",
        ),
        (
            {"base_url": "http://127.0.0.1:1/v1", "model": "m", "key_env": "AWS_SECRET_ACCESS_KEY"},
            "key_env must name a variable ending in _API_KEY",
        ),
        ({"base_url": "http://judge.example.com/v1", "model": "m"}, "must be https://"),
        ({"model": "m"}, "needs judge_options base_url"),
    ],
)
def test_judge_options_are_checked_when_the_env_is_made(options, message):
    with pytest.raises(ConfigError, match=message):
        envs.make("codenames-clue-v0", judge="api", judge_options=options)
