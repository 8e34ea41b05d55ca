"""The RL job: GRPO on a single-turn TextEnv, one process, CPU or GPU.

Each step reads like the algorithm: rollout -> score -> advantages -> update -> log -> checkpoint.
``run_rl`` wraps it with the run directory, the before/after evaluation and resuming.
"""

from __future__ import annotations

import copy
import json
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

import envs
from assay.config import dump_yaml
from assay.models import load_causal_lm
from assay.runs import MetricsLog, new_run_dir, plot_metrics, write_json
from trainers.checkpoint import latest_checkpoint, load_trainer_state, save_checkpoint
from trainers.config import RLConfig
from trainers.evaluate import EvalResult, evaluate_policy
from trainers.grpo import (
    clipped_policy_loss,
    group_advantages,
    grouped_completion_logprobs,
    truncated_is_weights,
)
from trainers.rollout import Completion, GenerationEngine, HFEngine, Sampling

SEEDS_PER_RUN_SEED = 1_000_000  # train seeds: seed * 1e6 + k, so they stay below eval's 1e9


@dataclass
class Rollout:
    """One step's episodes, ``P`` prompt groups of ``G`` completions, flattened row-major."""

    completions: list[Completion]  # (P*G,)
    rewards: torch.Tensor  # (P, G)
    infos: list[dict[str, Any]] = field(default_factory=list)  # (P*G,)


def _is_stats(weights: torch.Tensor, mask: torch.Tensor, cap: float) -> dict[str, float]:
    m = mask.to(weights.dtype)
    n = m.sum().clamp(min=1)
    return {
        "is_weight_mean": ((weights * m).sum() / n).item(),
        "is_weight_capped": (((weights >= cap).to(m.dtype) * m).sum() / n).item(),
    }


def train_seed(config: RLConfig, step: int, index: int) -> int:
    """Env seed of prompt ``index`` of ``step`` (1-based): a pure function, so resume replays."""
    return (
        config.train.seed * SEEDS_PER_RUN_SEED + (step - 1) * config.algo.prompts_per_step + index
    )


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_engine(config: RLConfig, model, tokenizer) -> tuple[GenerationEngine, bool]:
    """The rollout engine chosen by ``config.rollout`` and whether it holds its own weights
    (then the learner syncs them after each step)."""
    ro = config.rollout
    if ro.backend == "vllm":
        from trainers.vllm_engine import VLLMEngine

        dtype = config.model.dtype
        return VLLMEngine(
            config.model.name, dtype=dtype, gpu_memory_utilization=ro.gpu_memory_utilization
        ), True
    if ro.replicas > 1:
        from trainers.pool import EngineSpec, RolloutPool

        device = "cuda" if str(model.device).startswith("cuda") else "cpu"
        spec = EngineSpec(
            config.model.name,
            dtype=config.model.dtype,
            device=device,
            num_gpus=1 if device == "cuda" else 0,
        )
        pool = RolloutPool(
            spec, replicas=ro.replicas, chunk_size=ro.chunk_size, weight_sync=ro.weight_sync
        )
        return pool, True
    if ro.off_policy:  # generation runs while the learner updates: it needs its own copy
        return HFEngine(copy.deepcopy(model).eval(), tokenizer), True
    return HFEngine(model, tokenizer), False


class GRPOLearner:
    """Holds the policy, its optimizer and engine; one call of :meth:`step` is one GRPO step.

    With a separate engine (a Ray pool, vLLM, or off-policy mode) the phases are: rollout ->
    score -> advantages -> update -> sync weights; each step logs ``engine_logprob_gap`` (mean
    |log p_engine - log p_learner| over the sampled tokens) and applies truncated importance
    weights. In off-policy mode the rollout of step t+1 is generated in the background while
    step t trains, so step t trains on samples from the weights of step t-1.
    """

    def __init__(self, config: RLConfig, model, tokenizer, engine: GenerationEngine | None = None):
        """``engine``: a running engine to generate with (then treated as separate from the
        learner's model); by default one is built from ``config.rollout``."""
        self.config = config
        self.model = model
        self.tokenizer = tokenizer
        if engine is not None:
            self.engine, self.separate_engine = engine, True
        else:
            self.engine, self.separate_engine = build_engine(config, model, tokenizer)
        if self.separate_engine:
            self.sync_weights()
        self._background = ThreadPoolExecutor(max_workers=1) if config.rollout.off_policy else None
        self._next_rollout: Future | None = None
        self.last_rollout: Rollout | None = None
        self.updating = False
        self.weights_step = 0  # the last step whose update the weights include
        opt = config.optim
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=opt.lr, weight_decay=opt.weight_decay
        )
        warmup = max(opt.warmup_steps, 0)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0
        )

    # --- rollout -------------------------------------------------------------------------------
    def rollout(self, env, step: int) -> Rollout:
        cfg = self.config
        seeds = [train_seed(cfg, step, i) for i in range(cfg.algo.prompts_per_step)]
        prompts = [env.reset(seed=s)[0] for s in seeds]
        sampling = Sampling(
            n=cfg.algo.group_size,
            temperature=cfg.sampling.temperature,
            top_p=cfg.sampling.top_p,
            top_k=cfg.sampling.top_k,
            max_new_tokens=cfg.sampling.max_new_tokens,
            seed=cfg.train.seed * 1_000_003 + step,
        )
        groups = self.engine.generate(prompts, sampling)
        rollout = Rollout(
            [c for g in groups for c in g], torch.zeros(len(seeds), cfg.algo.group_size)
        )
        self.score(env, seeds, groups, rollout)
        return rollout

    # --- score ---------------------------------------------------------------------------------
    @staticmethod
    def score(env, seeds: list[int], groups: list[list[Completion]], rollout: Rollout) -> None:
        for p, (seed, group) in enumerate(zip(seeds, groups, strict=True)):
            for g, completion in enumerate(group):
                env.reset(seed=seed)  # single-turn: replay the episode's start, then answer
                _, reward, _, _, info = env.step(completion.text)
                rollout.rewards[p, g] = float(reward)
                rollout.infos.append(info)

    # --- update --------------------------------------------------------------------------------
    def _batch(self, completions: list[Completion]) -> dict[str, torch.Tensor]:
        """Pad one prompt per group (left) and every completion (right) into tensors."""
        pad = self.tokenizer.pad_token_id
        g = self.config.algo.group_size
        prompts = [c.prompt_ids for c in completions[::g]]  # a group shares its prompt
        width_p = max(len(p) for p in prompts)
        width_c = max(len(c.token_ids) for c in completions)
        prompt_ids = torch.full((len(prompts), width_p), pad, dtype=torch.long)  # (P, T_p)
        prompt_mask = torch.zeros_like(prompt_ids)
        for i, p in enumerate(prompts):
            prompt_ids[i, width_p - len(p) :] = torch.tensor(p)
            prompt_mask[i, width_p - len(p) :] = 1
        completion_ids = torch.full((len(completions), width_c), pad, dtype=torch.long)  # (B, T_c)
        completion_mask = torch.zeros_like(completion_ids)
        for i, c in enumerate(completions):
            completion_ids[i, : len(c.token_ids)] = torch.tensor(c.token_ids)
            completion_mask[i, : len(c.token_ids)] = 1
        device = self.model.device
        return {
            "prompt_ids": prompt_ids.to(device),
            "prompt_mask": prompt_mask.to(device),
            "completion_ids": completion_ids.to(device),
            "completion_mask": completion_mask.to(device),
        }

    def _logprobs(self, batch: dict[str, torch.Tensor], with_entropy: bool = False):
        return grouped_completion_logprobs(
            self.model,
            batch["prompt_ids"],
            batch["prompt_mask"],
            batch["completion_ids"],
            batch["completion_mask"],
            self.config.sampling.temperature,
            with_entropy,
        )

    def _engine_logprobs(self, completions: list[Completion], width: int) -> torch.Tensor | None:
        """The engine's log-probs as a (B, T_c) tensor, or None if it reported none."""
        if not all(len(c.logprobs) == len(c.token_ids) for c in completions):
            return None
        out = torch.zeros(len(completions), width)
        for i, c in enumerate(completions):
            out[i, : len(c.logprobs)] = torch.tensor(c.logprobs)
        return out.to(self.model.device)

    def update(self, rollout: Rollout, advantages: torch.Tensor) -> dict[str, float]:
        cfg = self.config
        batch = self._batch(rollout.completions)
        adv = advantages.flatten().to(self.model.device)  # (B,)
        mask = batch["completion_mask"]  # (B, T_c)
        engine_lp = self._engine_logprobs(rollout.completions, mask.shape[1])  # (B, T_c)
        self.model.train()
        old_logprobs = None
        if cfg.algo.epochs > 1:  # several passes: freeze the sampling policy's log-probs first
            with torch.no_grad():
                old_logprobs, _ = self._logprobs(batch)
        stats: dict[str, float] = {}
        is_weights = None
        for epoch in range(cfg.algo.epochs):
            logprobs, entropy = self._logprobs(batch, with_entropy=epoch == 0)
            # One pass: the sampling policy is the current one, so ratio = 1 but keeps its gradient.
            old = old_logprobs if old_logprobs is not None else logprobs.detach()
            if epoch == 0 and engine_lp is not None:
                stats.update(self._engine_stats(old, engine_lp, mask))
                if self.separate_engine:
                    is_weights = truncated_is_weights(old, engine_lp, cfg.rollout.is_cap)
                    stats.update(_is_stats(is_weights, mask, cfg.rollout.is_cap))
            loss, diag = clipped_policy_loss(
                logprobs, old, adv, mask, cfg.algo.clip_eps, is_weights
            )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(
                self.model.parameters(), cfg.optim.max_grad_norm
            )
            self.optimizer.step()
            if epoch == 0:
                stats["entropy"] = ((entropy * mask).sum() / mask.sum()).item()
            stats.update(loss=loss.item(), grad_norm=float(grad_norm), **diag)
        stats["lr"] = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        return stats

    @staticmethod
    def _engine_stats(learner_lp, engine_lp, mask) -> dict[str, float]:
        gap = (learner_lp - engine_lp).abs() * mask
        return {
            "engine_logprob_gap": (gap.sum() / mask.sum().clamp(min=1)).item(),
            "engine_logprob_gap_max": gap.max().item(),
        }

    # --- sync weights --------------------------------------------------------------------------
    def sync_weights(self) -> float:
        """Copy the learner's weights into a separate engine; returns the seconds it took."""
        t0 = time.perf_counter()
        if self.separate_engine:
            self.engine.update_weights(self.model.state_dict())
        return time.perf_counter() - t0

    def finish(self) -> None:
        """Wait for a background rollout and bring the engine up to date (before evaluation)."""
        if self._next_rollout is not None:
            pending, self._next_rollout = self._next_rollout, None
            pending.result()
        self.sync_weights()

    def close(self) -> None:
        """Stop the background rollout (its result is dropped) and release the engine. Safe to
        call while another error is on its way out: failures here do not hide it."""
        try:
            if self._next_rollout is not None:
                self._next_rollout.cancel()
                self._next_rollout.exception()  # wait for a running one; its error is moot now
                self._next_rollout = None
            if self._background is not None:
                self._background.shutdown()
        finally:
            if self.separate_engine:
                self.engine.close()

    def _rollout_for(self, env, step: int) -> Rollout:
        """This step's rollout; in off-policy mode the one generated during the last update
        (from weights one step older), and the next one is started before returning."""
        if self._background is None:
            return self.rollout(env, step)
        pending = self._next_rollout or self._background.submit(self.rollout, env, step)
        self._next_rollout = None
        rollout = pending.result()
        self.sync_weights()  # the engine is idle now: give it the current weights
        if step < self.config.train.steps:  # no rollout for a step that will not run
            self._next_rollout = self._background.submit(self.rollout, env, step + 1)
        return rollout

    # --- one step ------------------------------------------------------------------------------
    def step(self, env, step: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        rollout = self._rollout_for(env, step)
        self.last_rollout = rollout
        t_rollout = time.perf_counter() - t0
        advantages = group_advantages(rollout.rewards, scale=self.config.algo.scale_rewards)
        self.updating = True  # weights may be half-updated until this is False again
        stats = self.update(rollout, advantages)
        self.weights_step = step
        self.updating = False
        if self.separate_engine and self._background is None:
            stats["weight_sync_s"] = self.sync_weights()
        elapsed = time.perf_counter() - t0
        n_tokens = sum(len(c.token_ids) for c in rollout.completions)
        metrics: dict[str, Any] = {
            "step": step,
            "reward_mean": rollout.rewards.mean().item(),
            "reward_std": rollout.rewards.std().item(),
            "valid_rate": sum(i["valid"] for i in rollout.infos) / len(rollout.infos),
            "zero_std_groups": (rollout.rewards.std(dim=1) == 0).float().mean().item(),
            "completion_len": n_tokens / len(rollout.completions),
        }
        for key in getattr(env, "metric_keys", ()):
            metrics[key] = sum(float(i.get(key, 0.0)) for i in rollout.infos) / len(rollout.infos)
        metrics.update(stats)
        metrics.update(
            step_time_s=elapsed,
            rollout_time_s=t_rollout,
            update_time_s=elapsed - t_rollout,
            tokens_per_s=n_tokens / elapsed,
        )
        return metrics

    def trainer_state(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_trainer_state(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])


# --- the job -------------------------------------------------------------------------------------
def _samples(step: int, rollout: Rollout, group_size: int) -> dict[str, Any]:
    """The first completion of each group with its reward and validity, for reading a run."""
    firsts = range(0, len(rollout.completions), group_size)
    return {
        "step": step,
        "samples": [
            {
                "answer": rollout.completions[i].text,
                "reward": rollout.rewards.flatten()[i].item(),
                "reason": rollout.infos[i]["reason"],
            }
            for i in firsts
        ],
    }


def _eval_env(config: RLConfig):
    return envs.make(config.env.id, **{**config.env.kwargs, **config.eval.env_kwargs})


def _evaluate(learner: GRPOLearner, config: RLConfig, run_dir: Path, label: str) -> EvalResult:
    env = _eval_env(config)
    seeds = [config.eval.seed_offset + i for i in range(config.eval.episodes)]
    result = evaluate_policy(
        learner.engine,
        env,
        seeds,
        config.sampling.max_new_tokens,
        config.eval.batch_size,
        desc=f"eval {label}",
    )
    write_json(
        run_dir / f"eval_{label}.json", {"metrics": result.metrics, "episodes": result.episodes}
    )
    return result


def _open_run(config: RLConfig, resume_dir: Path | None, log) -> tuple[Path, GRPOLearner, int]:
    """Load the policy (fresh or from the last checkpoint) and the run directory."""
    device = str(resolve_device(config.model.device))
    if resume_dir is None:
        # Load first: a wrong model name must not leave an empty run directory behind.
        model, tokenizer = load_causal_lm(config.model.name, config.model.dtype, device)
        run_dir = new_run_dir(config.train.output_dir, "rl", config.train.run_name)
        learner, start_step = GRPOLearner(config, model, tokenizer), 0
    else:
        run_dir, checkpoint = resume_dir, latest_checkpoint(resume_dir)
        state = load_trainer_state(checkpoint)
        model, tokenizer = load_causal_lm(str(checkpoint), config.model.dtype, device)
        learner, start_step = GRPOLearner(config, model, tokenizer), state["step"]
        learner.load_trainer_state(state)
        learner.weights_step = start_step
        for name in ("metrics.jsonl", "samples.jsonl"):  # drop steps logged after the checkpoint
            MetricsLog(run_dir / name).truncate_after(start_step)
        log(f"Resuming {run_dir} from step {start_step}")
    dump_yaml(config, run_dir / "config.yaml")
    log(f"Run directory: {run_dir}")
    return run_dir, learner, start_step


def _base_eval(learner: GRPOLearner, config: RLConfig, run_dir: Path) -> dict[str, float] | None:
    if not (config.eval.episodes and config.eval.compare_base):
        return None
    saved = run_dir / "eval_base.json"
    if saved.exists():  # a resumed run evaluated its starting policy already
        return json.loads(saved.read_text())["metrics"]
    return _evaluate(learner, config, run_dir, "base").metrics


def _train(learner: GRPOLearner, env, config: RLConfig, run_dir: Path, start_step: int, log) -> int:
    """The step loop with logging, checkpoints, the time limit and Ctrl-C; returns the last step."""
    metrics_log = MetricsLog(run_dir / "metrics.jsonl")
    samples_log = MetricsLog(run_dir / "samples.jsonl")  # what the policy wrote, one line per step

    def checkpoint(step: int) -> None:
        save_checkpoint(
            run_dir,
            step,
            learner.model,
            learner.tokenizer,
            learner.trainer_state(),
            config.train.keep_checkpoints,
        )

    step = start_step
    limit = config.train.max_minutes
    deadline = None if limit is None else time.time() + 60 * limit
    bar = tqdm(total=config.train.steps, initial=start_step, desc="train", unit="step")
    try:
        while step < config.train.steps:
            if deadline is not None and time.time() >= deadline:
                log(f"Time limit of {limit} min reached after step {step}.")
                break
            metrics = learner.step(env, step + 1)
            step += 1
            metrics_log.append(metrics)
            samples_log.append(_samples(step, learner.last_rollout, config.algo.group_size))
            bar.update(1)
            bar.set_postfix(
                reward=f"{metrics['reward_mean']:.2f}", valid=f"{metrics['valid_rate']:.2f}"
            )
            if step % config.train.checkpoint_every == 0:
                checkpoint(step)
    except KeyboardInterrupt:
        # Save only weights that match the last logged step: interrupted while generating they
        # do; inside an update, or after it but before its metrics were logged, they do not.
        if step > start_step and not learner.updating and learner.weights_step == step:
            checkpoint(step)
        log(
            f"Interrupted; continue from the last checkpoint with: assay train rl --resume {run_dir}"
        )
        raise
    finally:
        bar.close()
    if step > start_step and step % config.train.checkpoint_every != 0:
        checkpoint(step)
    return step


def run_rl(config: RLConfig, resume_dir: Path | None = None, log=print) -> dict[str, Any]:
    """Train (or resume) a GRPO run and return its summary; see ``configs/codenames_guess.yaml``.

    Phases: open the run -> evaluate the starting policy -> train -> plot -> evaluate the trained
    policy -> ``summary.json``.
    """
    env = envs.make(config.env.id, **config.env.kwargs)  # bad env options fail before any loading
    if config.eval.episodes:
        _eval_env(config)
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    run_dir, learner, start_step = _open_run(config, resume_dir, log)
    try:
        return _run_phases(learner, env, config, run_dir, start_step, log)
    finally:
        learner.close()


def _run_phases(learner, env, config: RLConfig, run_dir: Path, start_step: int, log) -> dict:
    base = _base_eval(learner, config, run_dir)
    step = _train(learner, env, config, run_dir, start_step, log)
    learner.finish()  # a background rollout done, the engine holds the final weights

    records = MetricsLog(run_dir / "metrics.jsonl").read()
    metric_keys = getattr(env, "metric_keys", ())  # envs that are not TextEnvs may lack it
    keys = ["reward_mean", "valid_rate", *metric_keys, "loss", "completion_len", "entropy"]
    if records:
        title = f"{config.env.id} · GRPO"
        plot_metrics(records, keys, run_dir / "plots" / "training.png", title=title)
    trained = None
    if config.eval.episodes:
        trained = _evaluate(learner, config, run_dir, "trained").metrics
    summary = {"run_dir": str(run_dir), "steps": step, "eval_base": base, "eval_trained": trained}
    write_json(run_dir / "summary.json", summary)
    if trained is not None:
        log(format_eval_table(base, trained, config.eval.episodes))
    return summary


def format_eval_table(
    base: dict[str, float] | None, trained: dict[str, float], episodes: int
) -> str:
    """A small text table of base vs trained held-out metrics."""
    rows = [
        ("mean reward", "reward_mean", "{:+.3f}"),
        ("format-valid rate", "valid_rate", "{:.1%}"),
    ]
    rows += [
        (k.replace("_", " "), k, "{:.3f}")
        for k in trained
        if k not in ("reward_mean", "valid_rate")
    ]
    head = f"Held-out evaluation ({episodes} episodes, greedy)"
    lines = [head, f"{'':22}{'base':>10}{'trained':>10}"]
    for label, key, fmt in rows:
        b = fmt.format(base[key]) if base else "-"
        lines.append(f"{label:22}{b:>10}{fmt.format(trained[key]):>10}")
    return "\n".join(lines)
