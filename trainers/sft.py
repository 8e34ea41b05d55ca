"""Supervised fine-tuning on chat conversations, with the loss on the assistant's tokens only,
tokenized exactly as the RL learner conditions and samples (``assay train sft``).

Token-exact: :func:`encode_conversation` renders a conversation with the pieces the multi-turn
rollout uses (``trainers.episodes.continuation_ids`` and ``closing_ids``): every prompt and
every turn of the template as the chat template adds it (masked out), each assistant answer
plus the end-of-turn token the policy itself generates (trained on), then the template's closing
tokens (masked out). So SFT trains on the very token ids that ``assay train rl`` will sample and
condition on for the same messages (``tests/trainers/test_sft.py`` checks it against a
multi-turn rollout), which a chat template's ``{% generation %}`` markers cannot promise (and
SmolLM2's and Qwen's templates have none).

The training loop is TRL's ``SFTTrainer``, the library made for it: it takes the encoded rows
as ``input_ids`` and ``assistant_masks`` and sets every masked token's label to -100. assay adds
the encoding, data from anywhere (JSONL, parquet, a ``datasets`` folder, ``assay rollout``
datasets, which already hold token-exact contexts), the run directory (``metrics.jsonl``,
plots, ``summary.json``), LoRA from the RL config's section, resume, and a plain Hugging Face
folder at the end (LoRA merged) that ``assay train rl`` starts from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from assay.errors import ConfigError
from trainers.episodes import closing_ids, continuation_ids

Message = dict[str, str]


def encode_conversation(tokenizer, messages: list[Message]) -> tuple[list[int], list[int]]:
    """``(input_ids, assistant_mask)`` of ``messages``: 1 on the tokens of each assistant answer
    and its end-of-turn token, 0 on everything the template or the other roles add. Messages
    after the last assistant answer are dropped (nothing to learn from them)."""
    ids: list[int] = []
    mask: list[int] = []
    rendered: list[Message] = []
    for i, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        prompt = continuation_ids(tokenizer, rendered, messages[:i])
        answer = tokenizer.encode(message["content"], add_special_tokens=False)
        closing = closing_ids(tokenizer, messages[: i + 1], [])
        generated = answer + closing[:1]  # the policy ends its turn with the end-of-turn token
        ids += prompt + generated + closing[1:]
        mask += [0] * len(prompt) + [1] * len(generated) + [0] * len(closing[1:])
        rendered = messages[: i + 1]
    if not any(mask):
        raise ConfigError("a conversation has no assistant message to train on")
    while not mask[-1]:  # the template's closing after the last answer: RL rows end before it
        ids.pop()
        mask.pop()
    return ids, mask


def load_rows(path: str | Path, tokenizer, min_reward: float | None = None) -> list[dict]:
    """Encoded rows (``input_ids``, ``assistant_masks``) from ``path``: a JSONL or parquet file of
    ``messages`` (or conversational ``prompt`` + ``completion``), a ``datasets`` folder of either,
    or an ``assay rollout`` output (its token-exact contexts, kept when their reward is at least
    ``min_reward``)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"SFT data {path} does not exist.")
    records = _records(path)
    rows = []
    for n, record in enumerate(records):
        if "token_ids" in record and "train_mask" in record:  # an assay rollout's context
            if min_reward is not None and float(record["reward"]) < min_reward:
                continue
            rows.append({"input_ids": list(record["token_ids"]),
                         "assistant_masks": list(record["train_mask"])})  # fmt: skip
            continue
        messages = _messages(record, path, n)
        ids, mask = encode_conversation(tokenizer, messages)
        rows.append({"input_ids": ids, "assistant_masks": mask})
    if not rows:
        raise ConfigError(f"SFT data {path} holds no row to train on.")
    return rows


def teacher_conversations(
    env, seeds: list[int], max_turns: int = 64, desc: str = "teacher"
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Conversations in which the env's own teacher (``TextEnv.demonstration``) answers every
    turn of the episodes of ``seeds``: records of ``messages`` (the observation plus the
    demonstration), ``seed`` and ``reward``, and counts of what was dropped.

    A demonstration the env itself finds invalid is dropped (counted), as is a turn without
    one. In a multi-turn episode each turn is a conversation of its own, except where the
    next observation extends the last conversation (the agent's own context): then the
    longer one replaces it, so every demonstration is trained on once.
    """
    from tqdm.auto import tqdm

    unwrapped = env.unwrapped
    if not hasattr(unwrapped, "demonstration"):
        raise ConfigError(f"{type(unwrapped).__name__} is not an assay TextEnv: it cannot teach.")
    records: list[dict[str, Any]] = []
    dropped = {"no_demonstration": 0, "invalid": 0}
    for seed in tqdm(seeds, desc=desc, unit="episode", leave=False):
        observation, info = env.reset(seed=seed)
        last: dict[str, dict[str, Any]] = {}  # agent -> its conversation so far
        for _ in range(max_turns):
            answer = unwrapped.demonstration()
            if answer is None:
                dropped["no_demonstration"] += 1
                break
            agent = info.get("agent", "")
            messages = [*observation, {"role": "assistant", "content": answer}]
            observation, reward, terminated, truncated, info_after = env.step(answer)
            if not info_after.get("valid", True):
                dropped["invalid"] += 1
                break
            record = {"messages": messages, "seed": seed, "reward": float(reward)}
            previous = last.get(agent)
            if (
                previous is not None
                and messages[: len(previous["messages"])] == previous["messages"]
            ):
                previous.update(record)  # the same context, one turn longer
            else:
                records.append(record)
                last[agent] = record
            if terminated or truncated:
                break
            info = info_after  # step returned the next agent's observation
    return records, dropped


def _records(path: Path) -> list[dict[str, Any]]:
    if path.is_dir():
        from datasets import load_from_disk

        folder = path / "dataset" if (path / "dataset").is_dir() else path  # assay rollout --out
        try:
            return list(load_from_disk(str(folder)))
        except (FileNotFoundError, ValueError) as err:
            raise ConfigError(f"{folder} is not a datasets folder: {err}") from None
    if path.suffix == ".parquet":
        from datasets import Dataset

        return list(Dataset.from_parquet(str(path)))
    records = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ConfigError(f"{path}:{n} is not JSON: {err.msg}") from None
    return records


def _messages(record: dict[str, Any], path: Path, n: int) -> list[Message]:
    if "messages" in record:
        messages = record["messages"]
    elif isinstance(record.get("prompt"), list) and isinstance(record.get("completion"), list):
        messages = record["prompt"] + record["completion"]
    else:
        raise ConfigError(
            f"{path} row {n}: expected 'messages' (chat messages), 'prompt' + 'completion' "
            f"(lists of messages) or an assay rollout's 'token_ids' + 'train_mask'; got "
            f"{sorted(record)}"
        )
    if not (isinstance(messages, list) and all(isinstance(m, dict) and "role" in m
                                               and isinstance(m.get("content"), str)
                                               for m in messages)):  # fmt: skip
        raise ConfigError(f"{path} row {n}: messages must be {{role, content}} dicts")
    return messages
