"""How much word association does a model bring to Codenames guessing before any training?

    python scripts/codenames_base_association.py [--model smollm2-135m-instruct] [--boards 100]

For each held-out board of the demo config, scores every board word as the first guess
(log p("Guesses: WORD" | prompt)) and reports how often the top-scored word is a target, next to
the rate expected by chance (|T| / board size) and the probability mass on targets.
"""

from __future__ import annotations

import argparse

import torch

import envs
from assay.config import load_config
from assay.models import load_causal_lm
from trainers.rl.config import RLConfig


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--config", default="configs/codenames_guess.yaml")
    parser.add_argument("--boards", type=int, default=100)
    args = parser.parse_args()
    config = load_config(RLConfig, args.config)
    env = envs.make(config.env.id, **config.env.kwargs)
    model, tokenizer = load_causal_lm(args.model)
    model.eval()
    top_is_target = chance = target_mass = 0.0
    for i in range(args.boards):
        observation, info = env.reset(seed=config.eval.seed_offset + i)
        prefix = tokenizer.apply_chat_template(
            observation, add_generation_prompt=True, tokenize=True, return_dict=False
        ) + tokenizer.encode("Guesses:")
        scores = []
        for word in info["board"]:
            word_ids = tokenizer.encode(" " + word)
            ids = torch.tensor([prefix + word_ids])
            with torch.no_grad():
                logits = model(ids).logits[0, len(prefix) - 1 : -1]  # (len(word_ids), V)
            logp = torch.log_softmax(logits, -1).gather(-1, torch.tensor(word_ids)[:, None])
            scores.append(logp.sum().item())
        probs = torch.softmax(torch.tensor(scores), 0)
        is_target = torch.tensor([w in info["targets"] for w in info["board"]])
        top_is_target += float(is_target[int(probs.argmax())])
        chance += len(info["targets"]) / len(info["board"])
        target_mass += probs[is_target].sum().item()
    n = args.boards
    print(
        f"top-scored word is a target on {top_is_target / n:.1%} of boards (chance {chance / n:.1%})"
    )
    print(
        f"RESULT top_is_target={top_is_target / n:.3f} chance={chance / n:.3f} target_mass={target_mass / n:.3f}"
    )


if __name__ == "__main__":
    main()
