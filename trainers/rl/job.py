"""The RL job: any algorithm of ``trainers.algos`` on a TextEnv, one process or several
(``torchrun``; see ``trainers.distributed``).

``run_rl`` wraps :class:`trainers.rl.learner.RLLearner` with the run directory, evaluation before,
during and after training (keeping the best checkpoint), a curriculum of env options, trackers
(metrics.jsonl always; TensorBoard and W&B by config), plots, checkpoints and resuming.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

import envs
from assay.checkpoints import (
    latest_checkpoint,
    load_trainer_state,
    save_checkpoint,
)
from assay.config import dump_yaml
from assay.distributed import resolve_device
from assay.models import load_causal_lm, run_model
from assay.runs import SKILL_OVERLAYS, MetricsLog, new_run_dir, plot_metrics, write_json
from assay.trackers import Trackers
from trainers.distributed import World, all_gather_objects, barrier, init_world
from trainers.rl.checkpoint import save_learner_checkpoint
from trainers.rl.checks import check_best_metric, check_single_turn, check_world
from trainers.rl.config import RLConfig
from trainers.rl.evaluation import (
    Best,
    base_eval,
    eval_during,
    eval_env,
    evaluate,
    format_eval_table,
)
from trainers.rl.forward import CHECKPOINTING_NOTE
from trainers.rl.learner import RLLearner
from trainers.rl.samples import Samples


# --- the job -------------------------------------------------------------------------------------
def _samples(step: int, samples: Samples, group_size: int) -> dict[str, Any]:
    """The first completion of each group with its reward and validity, for reading a run
    (multi-turn: the first 16 contexts)."""
    firsts = range(0, len(samples.completions), samples.group_size or group_size)
    return {
        "step": step,
        "samples": [
            {
                "answer": samples.completions[i].text,
                "reward": samples.reward_of(i),
                "reason": samples.infos[i].get("reason", ""),
            }
            for i in list(firsts)[:16]
        ],
    }


class SignalWatch:
    """Warns once, early, when a run has no learning signal: every group of the last
    ``patience`` steps had equal rewards (``zero_std_groups`` 1.0), so every advantage is zero
    and nothing is learned. The warning names the commonest reason the env gave (often a
    format the model never writes) and what to try."""

    def __init__(self, patience: int = 5):
        self.patience, self.flat_steps, self.warned = patience, 0, False
        self.reasons: Counter[str] = Counter()

    def update(self, metrics: dict[str, float], samples: Samples | None) -> str | None:
        """The warning to print after this step, or None."""
        if metrics.get("zero_std_groups", 0.0) < 1.0:
            self.flat_steps, self.reasons = 0, Counter()
            return None
        self.flat_steps += 1
        if samples is not None:
            self.reasons.update(str(i.get("reason") or "") for i in samples.infos if i)
        if self.warned or self.flat_steps < self.patience:
            return None
        self.warned = True
        reason, count = (self.reasons.most_common(1) or [("", 0)])[0]
        because = f'; the commonest reason the env gave: "{reason}" ({count}x)' if reason else ""
        return (
            f"Warning: no learning signal in the last {self.flat_steps} steps: every group had "
            f"equal rewards (valid_rate {metrics.get('valid_rate', 0.0):.0%}){because}. Nothing "
            "is being learned; try a lenient answer format, an example turn in the prompt, more "
            "samples per group, a higher temperature, or a warm start."
        )


class EnvSchedule:
    """The training env at each step: ``env.kwargs`` updated by ``env.schedule`` phases (a
    curriculum). Envs are built once per distinct set of options."""

    def __init__(self, config: RLConfig, world: World | None = None):
        self.config = config
        self.world = world
        self._built: dict[str, Any] = {}
        for step in [1, *(phase["step"] for phase in config.env.schedule)]:
            self.at(step)  # bad options in any phase fail now, not hours into a run

    def at(self, step: int):
        kwargs = self.config.env.kwargs_at(step)
        key = json.dumps(kwargs, sort_keys=True, default=str)
        if key not in self._built:
            env = envs.make(self.config.env.id, **kwargs)
            self._built[key] = _with_reward_model(self.config, env, self.world)
        return self._built[key]


def _with_reward_model(config: RLConfig, env, world: World | None = None):
    """``env`` rewarded by ``config.reward_model`` (an ORM or PRM), when one is set."""
    rm = config.reward_model
    if rm.path is None:
        return env
    from envs.reward_model import RewardModelEnv
    from trainers.rm_actor import reward_scorer

    if rm.device != "auto":
        device = rm.device
    elif rm.actor:  # Ray shows an actor only the GPUs it reserved
        device = "cuda" if rm.num_gpus > 0 else "cpu"
    else:
        device = str(resolve_device(config.model.device, world))
    scorer = reward_scorer(rm.path, device, rm.batch_size, rm.actor, rm.num_gpus)
    return RewardModelEnv(env, scorer, rm.aggregate, rm.weight, rm.grader_weight, rm.dense)


def _load_policy(config: RLConfig, checkpoint: Path | None, device: str):
    """The policy (and tokenizer) to train: the configured model, or a checkpoint's weights.
    A LoRA checkpoint holds only adapters, so the base model is loaded under them."""
    if checkpoint is None:
        return load_causal_lm(config.model.name, config.model.dtype, device)
    if config.lora.enabled:
        from peft import PeftModel

        base, tokenizer = load_causal_lm(config.model.name, config.model.dtype, device)
        return PeftModel.from_pretrained(base, str(checkpoint), is_trainable=True), tokenizer
    return load_causal_lm(str(checkpoint), config.model.dtype, device)


def _open_run(
    config: RLConfig, resume_dir: Path | None, log, world: World
) -> tuple[Path, RLLearner, int]:
    """Load the policy (fresh or from the last checkpoint) and the run directory."""
    device = str(resolve_device(config.model.device, world))
    reference = None
    if resume_dir is None:
        # Load first: a wrong model name must not leave an empty run directory behind.
        model, tokenizer = _load_policy(config, None, device)
        run_dir = None
        if world.main:
            run_dir = new_run_dir(config.train.output_dir, "rl", config.train.run_name)
        run_dir = Path(all_gather_objects(str(run_dir), world)[0])
        start_step, state = 0, None
    else:
        run_dir, checkpoint = resume_dir, latest_checkpoint(resume_dir)
        state = load_trainer_state(checkpoint)
        model, tokenizer = _load_policy(config, checkpoint, device)
        start_step = state["step"]
        if config.algo.kl_coef > 0 and not config.lora.enabled:  # KL to the *starting* policy
            reference = load_causal_lm(config.model.name, config.model.dtype, device)[0]
    try:
        learner = RLLearner(config, model, tokenizer, reference=reference, world=world)
    except BaseException:
        # The engines or the Ray pool could not start: a new run folder holds nothing yet.
        if resume_dir is None and world.main and not any((run_dir / "checkpoints").iterdir()):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    if state is not None:
        learner.load_trainer_state(state, checkpoint)
        learner.weights_step = start_step
        if world.main:
            for name in ("metrics.jsonl", "samples.jsonl"):  # drop steps logged after it
                MetricsLog(run_dir / name).truncate_after(start_step)
            log(f"Resuming {run_dir} from step {start_step}")
    if world.main:
        dump_yaml(config, run_dir / "config.yaml")
        log(f"Run directory: {run_dir}")
        if config.model.gradient_checkpointing:
            log(CHECKPOINTING_NOTE)
        warm = run_model(config.model.name)
        if warm != config.model.name or (Path(warm) / "config.json").exists():
            kl = ("the KL reference is this model, not the base it was tuned from"
                  if config.algo.kl_coef > 0 else "no KL term (algo.kl_coef is 0)")  # fmt: skip
            log(f"Warm start from {warm}; {kl}.")
    barrier(world)
    return run_dir, learner, start_step


def _train(
    learner: RLLearner, schedule: EnvSchedule, config: RLConfig, run_dir: Path, start, log
) -> int:
    """The step loop with evaluation, logging, checkpoints, the time limit and Ctrl-C; returns
    the last step. Only rank 0 writes; every rank trains."""
    main = learner.world.main
    metrics_log = MetricsLog(run_dir / "metrics.jsonl")
    samples_log = MetricsLog(run_dir / "samples.jsonl")  # what the policy wrote
    trackers = Trackers(
        run_dir,
        tensorboard=config.log.tensorboard and main,
        wandb=config.log.wandb and main,
        wandb_project=config.log.wandb_project,
        wandb_mode=config.log.wandb_mode,
        config=asdict(config),
    )
    best = Best(run_dir, config.eval.best_metric, start)
    watch = SignalWatch()

    def checkpoint(step: int) -> None:
        save_learner_checkpoint(run_dir, step, learner, config.train.keep_checkpoints)

    step = logged = start
    limit = config.train.max_minutes
    deadline = None if limit is None else time.time() + 60 * limit
    bar = tqdm(total=config.train.steps, initial=start, desc="train", unit="step", disable=not main)
    try:
        while step < config.train.steps:
            stop = deadline is not None and time.time() >= deadline
            if all_gather_objects(stop, learner.world)[0]:  # rank 0's clock decides for all
                log(f"Time limit of {limit} min reached after step {step}.")
                break
            metrics = learner.step(schedule.at(step + 1), step + 1, schedule.at(step + 2))
            step += 1
            if main and (warning := watch.update(metrics, learner.last_samples)):
                log(warning)
            if config.eval.every and step % config.eval.every == 0:
                metrics.update(eval_during(learner, config, run_dir, step, best))
            if main:
                metrics_log.append(metrics)
                trackers.log(metrics)
                if step % config.train.samples_every == 0:
                    samples_log.append(_samples(step, learner.last_samples, config.algo.group_size))
            logged = step
            bar.update(1)
            bar.set_postfix(
                reward=f"{metrics['reward_mean']:.2f}", valid=f"{metrics['valid_rate']:.2f}"
            )
            if step % config.train.checkpoint_every == 0:
                checkpoint(step)
    except KeyboardInterrupt:
        # Save only weights that match the last logged step: interrupted while generating they
        # do; inside an update, or after it but before its metrics were logged, they do not.
        consistent = not learner.updating and learner.weights_step == step == logged
        if learner.sharded:  # its other ranks may be anywhere: no collective save now
            consistent = False
        if step > start and consistent and main:
            save_checkpoint(
                run_dir, step, learner.model, learner.tokenizer, learner.trainer_state(),
                config.train.keep_checkpoints,
            )  # fmt: skip
        log(
            f"Interrupted; continue from the last checkpoint with: assay train rl --resume {run_dir}"
        )
        raise
    finally:
        bar.close()
        trackers.close()
    if step > start and step % config.train.checkpoint_every != 0:
        checkpoint(step)
    return step


def run_rl(config: RLConfig, resume_dir: Path | None = None, log=print) -> dict[str, Any]:
    """Train (or resume) an RL run and return its summary; see ``configs/``.

    Phases: open the run -> evaluate the starting policy -> train (evaluating every
    ``eval.every`` steps) -> plot -> evaluate the trained policy -> ``summary.json``. Under
    ``torchrun`` every rank trains on its share of the prompts and rank 0 writes the run.
    """
    world = init_world()
    check_world(config, world)
    if not world.main:
        log = _silent
    schedule = EnvSchedule(config, world)  # bad env options fail before any loading
    check_single_turn(config, schedule.at(1))
    try:
        if config.eval.episodes:
            check_best_metric(config, eval_env(config))
        Trackers.check(config.log.tensorboard, config.log.wandb)  # on every rank
        if config.train.threads:
            torch.set_num_threads(config.train.threads)
        run_dir, learner, start_step = _open_run(config, resume_dir, log, world)
        try:
            return _run_phases(learner, schedule, config, run_dir, start_step, log)
        finally:
            learner.close()
    finally:
        if config.reward_model.path is not None:  # reward-model actors give their resources back
            from trainers.rm_actor import close_scorers

            close_scorers()


def _silent(*_args, **_kwargs) -> None:
    return None


def _run_phases(learner, schedule, config: RLConfig, run_dir: Path, start_step: int, log) -> dict:
    main = learner.world.main
    base = base_eval(learner, config, run_dir)
    barrier(learner.world)
    step = _train(learner, schedule, config, run_dir, start_step, log)
    learner.finish()  # a background rollout done, the engine holds the final weights
    summary = {"run_dir": str(run_dir), "steps": step, "eval_base": base, "eval_trained": None}
    if not main:
        barrier(learner.world)
        return summary
    records = MetricsLog(run_dir / "metrics.jsonl").read()
    env = schedule.at(step)
    metric_keys = getattr(env, "metric_keys", ())  # envs that are not TextEnvs may lack it
    keys = ["reward_mean", "valid_rate", *metric_keys]
    keys += [k for k in ("eval/reward_mean", "completion_len", "entropy", "kl", "clip_frac", "loss")
             if any(k in r for r in records)]  # fmt: skip
    if records:
        title = f"{config.env.id} · {config.algo.name}"
        plot_metrics(records, keys, run_dir / "plots" / "training.png", title=title,
                     overlays=SKILL_OVERLAYS)  # fmt: skip
    trained = None
    if config.eval.episodes:
        trained = evaluate(learner, config, run_dir, "trained").metrics
    summary["eval_trained"] = trained
    best = run_dir / "best.json"
    if best.exists():
        summary["best"] = json.loads(best.read_text())
    write_json(run_dir / "summary.json", summary)
    if trained is not None:
        log(format_eval_table(base, trained, config.eval.episodes))
    barrier(learner.world)
    return summary
