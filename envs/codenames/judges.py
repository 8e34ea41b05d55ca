"""Judge guessers for the clue task: given a board and a clue, guess k board words.

Every judge answers a whole batch at once (``guess_many``) and returns, per request, the guessed
board words (at most k, best first), or ``None`` when the judge itself failed (an API that never
answered); the env scores a failure 0 and counts it, so a flaky judge never stops a run.

- :class:`EmbeddingJudge` (default, offline, deterministic): the k board words with the highest
  cosine similarity to the clue under ``minilm-l6``.
- :class:`ModelJudge`: a frozen causal LM (any registry name) prompted as the guesser, greedy.
- :class:`APIJudge`: an OpenAI-compatible chat endpoint at temperature 0, with a deadline on
  each whole exchange and retries with exponential backoff; https only (plain http only to this
  machine), no redirects followed; the key comes from an environment variable named
  ``*_API_KEY`` and is never logged.
"""

from __future__ import annotations

import contextlib
import difflib
import http.client
import inspect
import ipaddress
import json
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from assay.errors import ConfigError
from envs.codenames.boards import Board
from envs.codenames.prompts import _EXAMPLE, SYSTEM_PROMPT, format_answer, render_question
from envs.codenames.words import embeddings, wordlist
from rewards.codenames import parse_guesses


@dataclass(frozen=True)
class JudgeRequest:
    board: tuple[str, ...]  # the shuffled board, as the judge sees it
    clue: str
    k: int  # how many words to guess


class Judge(Protocol):
    name: str

    def guess_many(self, requests: Sequence[JudgeRequest]) -> list[list[str] | None]: ...


def guesser_messages(request: JudgeRequest) -> list[dict[str, str]]:
    """The guess task's prompt (with its solved example) for one request."""
    board = Board(request.board, (), (), request.clue, request.k)
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": render_question(_EXAMPLE, "simple")},
        {"role": "assistant", "content": format_answer(_EXAMPLE.targets, "simple")},
        {"role": "user", "content": render_question(board, "simple")},
    ]


def legal_guesses(text: str, request: JudgeRequest) -> list[str]:
    """The board words a judge's answer names, in order, at most k (off-board words dropped)."""
    on_board = {w.casefold(): w for w in request.board}
    parsed = parse_guesses(text, "simple", lenient=True) or []
    picked = [on_board[g.casefold()] for g in parsed if g.casefold() in on_board]
    return list(dict.fromkeys(picked))[: request.k]


class EmbeddingJudge:
    """Ranks the board by cosine similarity to the clue (MiniLM, normalised embeddings) and
    takes the top k; ties keep board order. Board words and the 3,000-word clue vocabulary use
    the shipped embeddings; other clues are embedded in one batch per call and cached."""

    name = "embedding"

    def __init__(self, embedder: str = "minilm-l6"):
        self.embedder_name = embedder
        self._model = None
        index = {w: i for i, w in enumerate(wordlist())}
        self._word_vectors = {w: embeddings()[i] for w, i in index.items()}
        self._cache: dict[str, np.ndarray] = {}
        if embedder == "minilm-l6":  # the shipped vectors are this model's
            from envs.codenames.tiers import clue_vocabulary

            words, _, vectors = clue_vocabulary()
            self.add_vectors(words, vectors)

    def add_vectors(self, words: Sequence[str], vectors: np.ndarray) -> None:
        """Seed the clue cache with precomputed unit vectors (e.g. a whole clue vocabulary)."""
        for word, vector in zip(words, vectors, strict=True):
            self._cache[word.upper()] = np.asarray(vector, dtype=np.float32)

    def vectors(self, words: Sequence[str]) -> np.ndarray:
        """Unit vectors of ``words`` (upper-cased), embedding the unseen ones in one batch."""
        keys = [w.upper() for w in words]
        missing = [
            k for k in dict.fromkeys(keys) if k not in self._cache and k not in self._word_vectors
        ]
        if missing:
            if self._model is None:
                from assay.models import load_embedder

                self._model = load_embedder(self.embedder_name)
            encoded = self._model.encode(
                [m.lower() for m in missing], normalize_embeddings=True, convert_to_numpy=True
            )
            self.add_vectors(missing, encoded)
        return np.stack([self._word_vectors.get(k, self._cache.get(k)) for k in keys])

    def guess_many(self, requests: Sequence[JudgeRequest]) -> list[list[str] | None]:
        clues = self.vectors([r.clue for r in requests])
        out: list[list[str] | None] = []
        for request, clue in zip(requests, clues, strict=True):
            board = self.vectors(request.board)
            scores = board @ clue
            order = np.argsort(-scores, kind="stable")[: request.k]
            out.append([request.board[i] for i in order])
        return out


class ModelJudge:
    """A frozen causal LM as the guesser, greedy, batched with left padding. It generates with
    transformers directly: engines live in ``trainers``, which ``envs`` may not import."""

    name = "model"

    def __init__(
        self, model: str = "smollm2-135m-instruct", device: str = "cpu", batch_size: int = 16
    ):
        from assay.models import load_causal_lm

        self.model, self.tokenizer = load_causal_lm(model, device=device)
        self.model.eval().requires_grad_(False)
        self.batch_size = batch_size

    def guess_many(self, requests: Sequence[JudgeRequest]) -> list[list[str] | None]:
        import torch

        out: list[list[str] | None] = []
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start : start + self.batch_size]
            prompts = [
                self.tokenizer.apply_chat_template(
                    guesser_messages(r),
                    add_generation_prompt=True,
                    tokenize=True,
                    return_dict=False,
                )
                for r in chunk
            ]
            width = max(len(p) for p in prompts)
            pad = self.tokenizer.pad_token_id
            ids = torch.full((len(prompts), width), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for i, p in enumerate(prompts):
                ids[i, width - len(p) :] = torch.tensor(p)
                mask[i, width - len(p) :] = 1
            with torch.no_grad():
                generated = self.model.generate(
                    input_ids=ids.to(self.model.device),
                    attention_mask=mask.to(self.model.device),
                    do_sample=False,
                    max_new_tokens=16 + 8 * max(r.k for r in chunk),
                    pad_token_id=pad,
                )
            for request, row in zip(chunk, generated[:, width:], strict=True):
                text = self.tokenizer.decode(row, skip_special_tokens=True)
                out.append(legal_guesses(text, request))
        return out


class APIJudge:
    """An OpenAI-compatible ``/chat/completions`` endpoint as the guesser.

    Each attempt has ``timeout`` seconds of wall-clock time (connect, send, and read, however
    slowly the server trickles its reply); a failed attempt (any error: HTTP 429 or 5xx, a
    timeout, a malformed reply) is retried up to ``retries`` times, waiting
    ``backoff * 2**attempt`` seconds; other 4xx replies are not retried. After that the request
    is a judge failure (``None``). After ``breaker`` consecutive failed requests the judge stops
    calling for ``cooldown`` seconds and fails at once, so a dead endpoint costs seconds, not
    hours. Requests of a batch run on ``workers`` threads. The key is read from ``key_env`` at
    call time and never logged.
    """

    name = "api"

    def __init__(
        self,
        base_url: str,
        model: str,
        key_env: str = "OPENAI_API_KEY",
        timeout: float = 20.0,
        retries: int = 3,
        backoff: float = 0.5,
        workers: int = 8,
        breaker: int = 16,
        cooldown: float = 60.0,
    ):
        self.url = base_url.rstrip("/") + "/chat/completions"
        check_endpoint(self.url)
        check_key_env(key_env)
        self.model, self.key_env = model, key_env
        self.timeout, self.retries, self.backoff, self.workers = timeout, retries, backoff, workers
        self.breaker, self.cooldown = breaker, cooldown
        self.last_errors: list[str] = []
        self._lock = threading.Lock()
        self._consecutive_failures = 0
        self._down_until = 0.0

    def guess_many(self, requests: Sequence[JudgeRequest]) -> list[list[str] | None]:
        self.last_errors = []
        with ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(requests)))) as pool:
            return list(pool.map(self._guess, requests))

    def _guess(self, request: JudgeRequest) -> list[str] | None:
        if time.monotonic() < self._down_until:
            self._note("circuit open")
            return None
        body = json.dumps(
            {
                "model": self.model,
                "messages": guesser_messages(request),
                "temperature": 0,
                "max_tokens": 16 + 8 * request.k,
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                text = self._post(body, headers)
                with self._lock:
                    self._consecutive_failures = 0
                return legal_guesses(text, request)
            except Exception as err:  # any failure of a remote call is the judge's, not the run's
                status = getattr(err, "code", "")
                # Only the error's type and status: a message could echo request headers.
                self._note(f"{type(err).__name__} {status}".strip())
                if isinstance(status, int) and 300 <= status < 500 and status != 429:
                    break  # the request itself is wrong (or redirected): retrying cannot help
        with self._lock:
            self._consecutive_failures += 1
            if self._consecutive_failures >= self.breaker:
                self._down_until = time.monotonic() + self.cooldown
        return None

    def _post(self, body: bytes, headers: dict[str, str]) -> str:
        """One exchange, bounded as a whole by ``timeout``: a server that trickles its status
        line or headers a byte at a time cannot hold it longer (a socket timeout bounds each
        read, not their sum). Redirects are not followed, so the key never goes elsewhere."""
        parts = urllib.parse.urlsplit(self.url)
        kind = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        connection = kind(parts.hostname, parts.port, timeout=self.timeout)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        outcome: dict[str, Any] = {}

        def exchange() -> None:
            try:
                connection.connect()
                outcome["socket"] = connection.sock  # kept: the reply reads it after close()
                connection.request("POST", path, body=body, headers=headers)
                reply = connection.getresponse()
                outcome["status"], outcome["reason"] = reply.status, reply.reason
                outcome["data"] = reply.read(MAX_REPLY_BYTES + 1)
            except BaseException as err:  # handed to the caller's thread
                outcome["error"] = err

        worker = threading.Thread(target=exchange, daemon=True, name="assay-judge-call")
        worker.start()
        worker.join(self.timeout)
        if worker.is_alive():
            _abort(connection, outcome.get("socket"))  # wakes the blocked read: the thread ends
            raise TimeoutError("reply not complete within the timeout")
        connection.close()
        if "error" in outcome:
            raise outcome["error"]
        if outcome["status"] >= 300:
            raise urllib.error.HTTPError(self.url, outcome["status"], outcome["reason"], None, None)
        if len(outcome["data"]) > MAX_REPLY_BYTES:
            raise ValueError(f"reply longer than {MAX_REPLY_BYTES} bytes")
        return str(json.loads(outcome["data"])["choices"][0]["message"]["content"])

    def _note(self, error: str) -> None:
        with self._lock:
            self.last_errors.append(error)


MAX_REPLY_BYTES = 1 << 20
_KEY_ENV = re.compile(r"[A-Z][A-Z0-9_]*_API_KEY")
JUDGES: dict[str, type] = {"embedding": EmbeddingJudge, "model": ModelJudge, "api": APIJudge}


def _abort(connection: http.client.HTTPConnection, sock: socket.socket | None) -> None:
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed by the other side
            sock.shutdown(socket.SHUT_RDWR)
    connection.close()


def check_endpoint(url: str) -> None:
    """A judge endpoint is https, or plain http to this machine only (a key must not cross a
    network in clear text)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme == "http" and loopback:
        return
    raise ConfigError(
        f"judge base_url must be https:// (or http:// to localhost/127.0.0.1), got {url!r}."
    )


def check_key_env(name: str) -> None:
    """The key comes from a variable named ``SOMETHING_API_KEY``: a config (perhaps from a
    downloaded run) must not be able to send ``AWS_SECRET_ACCESS_KEY`` to an endpoint."""
    if not (isinstance(name, str) and _KEY_ENV.fullmatch(name)):
        raise ConfigError(
            f"judge key_env must name a variable ending in _API_KEY (e.g. OPENAI_API_KEY), got "
            f"{name!r}: assay sends no other variable to a judge endpoint."
        )


def check_judge_options(kind: str, options: dict[str, Any]) -> None:
    """Refuse unknown option names before any work (a ``timout`` typo must not surface hours
    into a run), with a suggestion; and an api judge's endpoint and key variable up front."""
    if kind not in JUDGES:
        raise ConfigError(f"judge must be embedding, model or api; got {kind!r}.")
    accepted = [p for p in inspect.signature(JUDGES[kind].__init__).parameters if p != "self"]
    for name in options:
        if name not in accepted:
            close = difflib.get_close_matches(name, accepted, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"unknown judge_options key {name!r} for the {kind} judge (it takes "
                f"{', '.join(accepted)}).{hint}"
            )
    if kind == "api":
        missing = [p for p in ("base_url", "model") if p not in options]
        if missing:
            raise ConfigError(f"the api judge needs judge_options {', '.join(missing)}.")
        check_endpoint(str(options["base_url"]).rstrip("/") + "/chat/completions")
        check_key_env(options.get("key_env", "OPENAI_API_KEY"))


def make_judge(kind: str, **options) -> Judge:
    """A judge by config name: ``embedding``, ``model`` (``model=...``) or ``api``
    (``base_url=...``, ``model=...``, ``key_env=...``, ``timeout=...``)."""
    check_judge_options(kind, options)
    return JUDGES[kind](**options)
