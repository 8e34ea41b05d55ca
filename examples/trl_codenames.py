"""Train on Codenames with TRL's GRPOTrainer, using assay's envs as the reward.

    python examples/trl_codenames.py --task clue --model tiny-random-llama --steps 1

The boards come from ``assay codenames export`` (balanced across the curriculum tiers); the
reward function rebuilds each row's episode from its ``seed`` and ``env_kwargs`` and scores every
completion (the clue task's judge sees a whole batch at once).
"""

from __future__ import annotations

import argparse
import tempfile

from assay.models import load_causal_lm
from envs.codenames.export import TASKS, export_boards
from envs.trl import env_reward


def train(task: str, model_name: str, steps: int, output_dir: str, n_boards: int = 16):
    from trl import GRPOConfig, GRPOTrainer

    dataset = export_boards(task, n_boards)
    model, tokenizer = load_causal_lm(model_name)
    args = GRPOConfig(
        output_dir=output_dir,
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=16,
        max_steps=steps,
        learning_rate=1e-5,
        beta=0.0,
        bf16=False,
        use_cpu=True,
        save_strategy="no",
        report_to=[],
        logging_steps=1,
        disable_tqdm=True,
    )
    trainer = GRPOTrainer(
        model=model,
        processing_class=tokenizer,
        reward_funcs=[env_reward(TASKS[task])],
        args=args,
        train_dataset=dataset["train"],
    )
    trainer.train()
    return trainer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", choices=sorted(TASKS), default="guess")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        trainer = train(args.task, args.model, args.steps, out)
    for record in trainer.state.log_history:
        if "reward" in record:
            print(f"step {record['step']}: reward {record['reward']:+.3f}")


if __name__ == "__main__":
    main()
