"""Held-out evaluation of an RL run: greedy (and sampled) episodes of the starting and the
trained policy, ``eval/*`` metrics during training, and the best checkpoint by one metric."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import envs
from assay.runs import write_json
from trainers.distributed import all_gather_objects, barrier
from trainers.evaluate import EvalResult, evaluate_policy
from trainers.rl.checkpoint import save_policy
from trainers.rl.config import RLConfig
from trainers.rl.learner import RLLearner


def eval_env(config: RLConfig):
    """The held-out env, always with its own (verifiable) reward: a learned reward trains the
    policy, but evaluation and the best checkpoint go by the ground truth."""
    return envs.make(config.env.id, **{**config.env.kwargs, **config.eval.env_kwargs})


def evaluate(
    learner: RLLearner,
    config: RLConfig,
    run_dir: Path,
    label: str,
    episodes: int | None = None,
    engine=None,
) -> EvalResult:
    """Greedy (and, with ``eval.sampled``, sampled) episodes on held-out seeds; written to
    ``eval_<label>.json``."""
    env = eval_env(config)
    n = config.eval.episodes if episodes is None else episodes
    seeds = [config.eval.seed_offset + i for i in range(n)]
    if config.episodes.multi_turn:
        from trainers.rl.multi_turn import evaluate_episodes

        # The seats' engines and scripted agents are shared with rollouts: let a background
        # (off-policy) rollout finish first.
        learner.finish()
        result = evaluate_episodes(
            engine or learner.engine,
            learner.seats,
            env,
            seeds,
            learner.tokenizer,
            max_new_tokens=config.sampling.max_new_tokens,
            max_turns=config.episodes.max_turns,
            batch_size=config.eval.batch_size,
            desc=f"eval {label}",
        )
        write_json(
            run_dir / f"eval_{label}.json", {"metrics": result.metrics, "episodes": result.episodes}
        )
        return result
    sampled = None
    if config.eval.sampled:
        sampled = config.sampling.engine_sampling(
            config.eval.sampled, config.train.seed, logprobs=False
        )
    result = evaluate_policy(
        engine or learner.engine,
        env,
        seeds,
        config.sampling.max_new_tokens,
        config.eval.batch_size,
        desc=f"eval {label}",
        sampling=sampled,
    )
    write_json(
        run_dir / f"eval_{label}.json", {"metrics": result.metrics, "episodes": result.episodes}
    )
    return result


def base_eval(learner: RLLearner, config: RLConfig, run_dir: Path) -> dict[str, float] | None:
    if not (config.eval.episodes and config.eval.compare_base) or not learner.world.main:
        return None
    saved = run_dir / "eval_base.json"
    if saved.exists():  # a resumed run evaluated its starting policy already
        return json.loads(saved.read_text())["metrics"]
    return evaluate(learner, config, run_dir, "base").metrics


class Best:
    """The best evaluation so far (``best.json``) and its checkpoint (``checkpoints/best``)."""

    def __init__(self, run_dir: Path, metric: str, start_step: int = 0):
        self.path = run_dir / "best.json"
        self.metric = metric
        self.value = None
        if self.path.exists():
            record = json.loads(self.path.read_text())
            # A best from after the checkpoint a run resumes from (killed between the eval and
            # the step's checkpoint) is forgotten: that eval runs again, and since it beat every
            # earlier one it will again, so the resumed run records what an unbroken one did.
            if record["step"] <= start_step:
                self.value = record["value"]

    @property
    def target(self) -> Path:
        return self.path.parent / "checkpoints" / "best"

    def offer(
        self, learner: RLLearner, step: int, metrics: dict[str, float], save: bool = True
    ) -> bool:
        """Whether ``metrics`` beat the best so far; then record them and (``save``) write the
        policy to :attr:`target`."""
        if self.metric not in metrics:
            raise KeyError(
                f"eval.best_metric {self.metric!r} is not an eval metric; "
                f"choose one of {', '.join(sorted(metrics))}"
            )
        value = metrics[self.metric]
        if self.value is not None and value <= self.value:
            return False
        if save:
            save_policy(learner, self.target, step)
        self.value = value
        write_json(self.path, {"step": step, "metric": self.metric, "value": value})
        return True


def eval_during(learner: RLLearner, config: RLConfig, run_dir: Path, step: int, best) -> dict:
    """``eval/*`` metrics at ``step`` (rank 0 evaluates, the others wait), and the best
    checkpoint kept up to date."""
    out: dict[str, Any] = {}
    improved = False
    if learner.world.main:
        episodes = config.eval.every_episodes or config.eval.episodes
        result = evaluate(
            learner, config, run_dir, f"step{step:06d}", episodes, learner.eval_engine()
        )
        out = {f"eval/{k}": v for k, v in result.metrics.items()}
        improved = best.offer(learner, step, result.metrics, save=not learner.sharded)
        out["eval/best"] = float(improved)
    if learner.sharded and all_gather_objects(improved, learner.world)[0]:
        save_policy(learner, best.target, step)  # every rank gathers the weights
    barrier(learner.world)
    return out


def format_eval_table(
    base: dict[str, float] | None, trained: dict[str, float], episodes: int
) -> str:
    """A small text table of base vs trained held-out metrics."""
    """A small text table of base vs trained held-out metrics: format (valid rate) and skill
    (reward among valid answers, next to the env's chance baseline) on their own rows."""
    rows = [(label, key, fmt) for label, key, fmt in EVAL_ROWS if key in trained or
            (base and key in base)]  # fmt: skip
    rows += [
        (k.replace("_", " "), k, "{:.3f}") for k in trained if k not in {r[1] for r in EVAL_ROWS}
    ]
    head = f"Held-out evaluation ({episodes} episodes, greedy)"
    lines = [head, f"{'':26}{'base':>10}{'trained':>10}"]
    for label, key, fmt in rows:
        b = fmt.format(base[key]) if base and key in base else "-"
        t = fmt.format(trained[key]) if key in trained else "-"
        lines.append(f"{label:26}{b:>10}{t:>10}")
    return "\n".join(lines)


EVAL_ROWS = (
    ("mean reward", "reward_mean", "{:+.3f}"),
    ("format-valid rate", "valid_rate", "{:.1%}"),
    ("reward among valid", "reward_valid_mean", "{:+.3f}"),
    ("chance (random valid)", "chance_reward", "{:+.3f}"),
)
