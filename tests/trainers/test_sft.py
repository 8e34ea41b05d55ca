"""SFT (``assay train sft``): token-exact with what RL samples, loss on the assistant's tokens
only, data from files, folders and rollouts, and a short run that lowers held-out loss."""

import json

import pytest
import torch

import envs
from assay.cli import main
from assay.errors import ConfigError
from trainers.engines.base import Completion
from trainers.episodes import run_episodes
from trainers.sft import encode_conversation, load_rows


class TwoTurns(envs.TextEnv):
    """Asks twice; the conversation grows."""

    possible_agents = ("a",)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.messages = [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": f"Name a colour ({seed})."}]  # fmt: skip
        self.turn = 0
        return list(self.messages), self.make_info("a")

    def step(self, action):
        self.turn += 1
        self.messages += [{"role": "assistant", "content": action}]
        if self.turn == 2:
            return [], 1.0, True, False, self.make_info("a")
        self.messages += [{"role": "user", "content": "And another one?"}]
        return list(self.messages), 0.0, False, False, self.make_info("a")


class Scripted:
    """An engine that answers with fixed texts, as canonical token ids plus end-of-turn."""

    def __init__(self, tokenizer, answers):
        self.tokenizer, self.answers, self.turn = tokenizer, answers, 0

    def generate(self, prompts, sampling):
        out = []
        for _ in prompts:
            text = self.answers[self.turn % len(self.answers)]
            self.turn += 1
            ids = self.tokenizer.encode(text, add_special_tokens=False)
            ids.append(self.tokenizer.eos_token_id)  # <|im_end|>: where the policy stops
            out.append([Completion(text, [], ids, [0.0] * len(ids), "stop")])
        return out


def test_sft_tokens_equal_the_tokens_rl_conditions_on_and_samples(tiny_lm):
    from trainers.engines.base import Sampling

    tokenizer = tiny_lm[1]
    engine = Scripted(tokenizer, ["Blue, I think.", "Green!"])
    (episode,) = run_episodes(engine, TwoTurns, [3], Sampling(max_new_tokens=8), tokenizer, 4)
    (context,) = episode.contexts
    ids, mask = encode_conversation(tokenizer, context.messages)
    assert ids == context.token_ids
    assert mask == context.train_mask
    assert sum(mask) == len(engine.tokenizer.encode("Blue, I think.")) + len(
        engine.tokenizer.encode("Green!")) + 2  # fmt: skip


def test_single_turn_prompt_is_the_rl_prompt(tiny_lm):
    tokenizer = tiny_lm[1]
    messages = [{"role": "user", "content": "2 + 2?"}, {"role": "assistant", "content": "4"}]
    ids, mask = encode_conversation(tokenizer, messages)
    prompt = tokenizer.apply_chat_template(messages[:1], add_generation_prompt=True,
                                           tokenize=True, return_dict=False)  # fmt: skip
    assert ids[: len(prompt)] == prompt and not any(mask[: len(prompt)])
    trained = [t for t, m in zip(ids, mask, strict=True) if m]
    assert trained == tokenizer.encode("4", add_special_tokens=False) + [tokenizer.eos_token_id]


def test_only_assistant_tokens_get_gradient(tiny_lm):
    """Through TRL's own collator and loss: the LM head's input gets exactly zero gradient at
    every position that predicts a system, user or template token."""
    import copy

    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    model, tokenizer = copy.deepcopy(tiny_lm[0]), tiny_lm[1]
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello there"},
                {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Bye!"}]  # fmt: skip
    ids, mask = encode_conversation(tokenizer, messages)
    labels = [t if m else -100 for t, m in zip(ids, mask, strict=True)]
    batch = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id)(
        [{"input_ids": ids, "labels": labels}]
    )
    captured = []
    head = model.get_output_embeddings()

    def keep(module, inputs, output):
        inputs[0].retain_grad()
        captured.append(inputs[0])

    handle = head.register_forward_hook(keep)
    model(**batch).loss.backward()
    handle.remove()
    grad = captured[0].grad[0].abs().sum(-1)  # (T,): position t predicts token t + 1
    predicts_trained = torch.tensor(mask[1:] + [0], dtype=torch.bool)
    assert torch.all(grad[~predicts_trained] == 0)
    assert torch.all(grad[predicts_trained] > 0)


def test_rows_come_from_jsonl_prompt_completion_and_rollouts(tmp_path, tiny_lm):
    from datasets import Dataset

    tokenizer = tiny_lm[1]
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    jsonl = tmp_path / "chat.jsonl"
    jsonl.write_text(json.dumps({"messages": chat}) + "\n" + json.dumps(
        {"prompt": chat[:1], "completion": chat[1:]}) + "\n")  # fmt: skip
    a, b = load_rows(jsonl, tokenizer)
    assert a == b and a["input_ids"] == encode_conversation(tokenizer, chat)[0]
    Dataset.from_list([
        {"token_ids": [1, 2, 3], "train_mask": [0, 1, 1], "reward": 1.0},
        {"token_ids": [4, 5], "train_mask": [0, 1], "reward": 0.0},
    ]).save_to_disk(str(tmp_path / "rollout" / "dataset"))  # fmt: skip
    rows = load_rows(tmp_path / "rollout", tokenizer, min_reward=0.5)
    assert rows == [{"input_ids": [1, 2, 3], "assistant_masks": [0, 1, 1]}]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "no messages"}\n')
    with pytest.raises(ConfigError, match="expected 'messages'"):
        load_rows(bad, tokenizer)
    with pytest.raises(ConfigError, match="no assistant message"):
        encode_conversation(tokenizer, chat[:1])


def _addition(path, seeds):
    with path.open("w") as f:
        for s in seeds:
            a, b = s % 7, (s * 3) % 5
            f.write(json.dumps({"messages": [
                {"role": "user", "content": f"What is {a} + {b}?"},
                {"role": "assistant", "content": f"The answer is {a + b}."}]}) + "\n")  # fmt: skip


def test_a_short_sft_run_lowers_held_out_loss_and_resumes(tmp_path, capsys):
    _addition(tmp_path / "train.jsonl", range(40))
    _addition(tmp_path / "eval.jsonl", range(40, 48))
    args = ["train", "sft", "--config", "configs/sft_example.yaml",
            "model.name=tiny-random-llama", f"data.train={tmp_path / 'train.jsonl'}",
            f"data.eval={tmp_path / 'eval.jsonl'}", "train.max_steps=6", "train.batch_size=4",
            "optim.lr=3e-3", "train.checkpoint_every=3", f"train.output_dir={tmp_path}",
            "train.run_name=sft", "train.eval_every=100"]  # fmt: skip
    assert main(args) == 0
    run_dir = tmp_path / "sft"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["eval_loss_after"] < summary["eval_loss_before"]
    assert summary["steps"] == 6
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(run_dir / "final")  # what assay train rl starts from
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").open()]
    assert 6 in steps and (run_dir / "plots" / "training.png").exists()
    assert main(["train", "sft", "--resume", str(run_dir), "train.max_steps=8"]) == 0
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 8
