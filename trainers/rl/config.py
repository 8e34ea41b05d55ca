"""The RL job's config: one dataclass per concern, each field documented once (here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from trainers.algos import registry
from trainers.algos.config import AlgoConfig
from trainers.engines.config import EnginesConfig
from trainers.rl.model_config import LoraConfig, ModelConfig

__all__ = ["AlgoConfig", "EnginesConfig", "EpisodesConfig", "LoraConfig", "ModelConfig", "RLConfig"]


@dataclass
class EnvConfig:
    id: str = "codenames-guess-v0"
    """Registered env id (``assay envs list``)."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Options passed to ``envs.make``; unknown options fail before training starts."""
    schedule: list[dict[str, Any]] = field(default_factory=list)
    """A curriculum: ``[{step: 50, kwargs: {...}}, ...]``; from each ``step`` on, its kwargs
    replace those of ``kwargs`` (e.g. Codenames tiers or harder math splits)."""

    def problems(self) -> list[str]:
        out = []
        last = 0
        for i, phase in enumerate(self.schedule):
            step, kwargs = phase.get("step"), phase.get("kwargs")
            extra = set(phase) - {"step", "kwargs"}
            if not isinstance(step, int) or step < 1 or step <= last or extra:
                out.append(
                    f"schedule[{i}] must be {{step: int, kwargs: mapping}} with increasing steps >= 1"
                )
            elif not isinstance(kwargs, dict):
                out.append(f"schedule[{i}].kwargs must be a mapping")
            else:
                last = step
        return out

    def kwargs_at(self, step: int) -> dict[str, Any]:
        """The env options in force at RL step ``step`` (1-based)."""
        current = dict(self.kwargs)
        for phase in self.schedule:
            if step >= phase["step"]:
                current = {**self.kwargs, **phase["kwargs"]}
        return current


@dataclass
class SamplingConfig:
    temperature: float = 0.7
    """Sampling temperature for rollouts; the loss uses the same temperature (as TRL does)."""
    top_p: float = 1.0
    top_k: int = 0
    """0 disables top-k."""
    max_new_tokens: int = 32

    def engine_sampling(self, n: int, seed: int | None, logprobs: bool = True):
        """These settings as an engine request for ``n`` samples per prompt."""
        from trainers.engines.base import Sampling

        return Sampling(
            n=n,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            max_new_tokens=self.max_new_tokens,
            seed=seed,
            logprobs=logprobs,
        )

    def problems(self) -> list[str]:
        out = []
        if not 0 < self.temperature < float("inf"):  # also rejects nan
            out.append(f"temperature must be > 0 for rollouts, got {self.temperature}")
        if self.top_k < 0:
            out.append(f"top_k must be >= 0 (0 disables it), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            out.append(f"top_p must be in (0, 1], got {self.top_p}")
        if not 1 <= self.max_new_tokens <= MAX_NEW_TOKENS:
            out.append(
                f"max_new_tokens must be in [1, {MAX_NEW_TOKENS:,}], got {self.max_new_tokens:,}"
            )
        return out


MAX_NEW_TOKENS = 1 << 17  # 131,072: past any model's context; a larger value is a typo


@dataclass
class EpisodesConfig:
    multi_turn: bool = False
    """Play whole episodes of a multi-turn, multi-agent env (``trainers.rl.multi_turn``): every
    token-exact context of an agent the learner plays is trained on, with the advantage of its
    agent's episode reward among the ``group_size`` episodes of the same seed."""
    seats: dict[str, str] = field(default_factory=dict)
    """multi_turn: agents (``fnmatch`` patterns, e.g. ``blue/*``) played by something not
    trained: one of the env's scripted agents (codenames-game-v0: ``embedding``, ``random``) or
    ``frozen`` (``model.name`` loaded afresh: the starting policy, also after a resume). The
    learner plays every other agent."""
    max_turns: int = 256
    """multi_turn: steps per episode before it is cut (and counted as truncated)."""

    def problems(self) -> list[str]:
        out = []
        if self.max_turns < 1:
            out.append(f"max_turns must be >= 1, got {self.max_turns}")
        if self.seats and not self.multi_turn:
            out.append("seats are for multi_turn: true (single-turn envs have one agent)")
        return out


@dataclass
class OptimConfig:
    lr: float = 1e-5
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    warmup_steps: int = 0
    """Linear warm-up from 0 to lr over this many RL steps."""
    schedule: Literal["constant", "cosine"] = "constant"
    """After warm-up: constant, or cosine decay to min_lr_ratio * lr at train.steps."""
    min_lr_ratio: float = 0.0

    def problems(self) -> list[str]:
        out = []
        if not self.lr > 0:
            out.append(f"lr must be > 0, got {self.lr}")
        if self.warmup_steps < 0:
            out.append(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0 <= self.min_lr_ratio <= 1:
            out.append(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        return out


@dataclass
class TrainConfig:
    steps: int = 100
    """Maximum optimisation steps."""
    max_minutes: float | None = None
    """Stop after this many minutes of training (checked between steps); none for no limit."""
    seed: int = 0
    """Seeds rollouts (env boards and sampling) per step, so a resumed run replays exactly."""
    checkpoint_every: int = 10
    keep_checkpoints: int = 1
    """How many checkpoints to keep (the latest ones)."""
    output_dir: str = "runs"
    run_name: str | None = None
    """Run directory name under output_dir; default ``rl-<timestamp>``."""
    threads: int | None = None
    """torch CPU threads; none leaves torch's default."""
    samples_every: int = 1
    """Write the first completion of each group to samples.jsonl every this many steps."""
    sharding: Literal["none", "fsdp"] = "none"
    """``fsdp``: shard the policy, its gradients and optimizer state, and the KL reference over
    the processes with PyTorch's FSDP2 (each decoder layer, then the root), instead of a full
    replica per process. See "Scaling up" in docs/rl.md."""
    cpu_offload: bool = False
    """With ``sharding: fsdp``: keep parameters, gradients and optimizer state in CPU memory
    between uses (FSDP2's CPUOffloadPolicy); slower, for models that do not fit the GPUs."""

    def problems(self) -> list[str]:
        out = []
        if self.steps < 1:
            out.append(f"steps must be >= 1, got {self.steps}")
        if self.checkpoint_every < 1:
            out.append(f"checkpoint_every must be >= 1, got {self.checkpoint_every}")
        if not 0 <= self.seed < 1000:
            out.append(
                f"seed must be in [0, 1000) so training seeds never meet eval seeds, got {self.seed}"
            )
        if self.keep_checkpoints < 1:
            out.append(f"keep_checkpoints must be >= 1, got {self.keep_checkpoints}")
        if self.samples_every < 1:
            out.append(f"samples_every must be >= 1, got {self.samples_every}")
        if self.threads is not None and self.threads < 1:
            out.append(f"threads must be >= 1 or null, got {self.threads}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            out.append(f"max_minutes must be > 0 or null, got {self.max_minutes}")
        if self.cpu_offload and self.sharding != "fsdp":
            out.append("cpu_offload needs sharding: fsdp")
        return out


@dataclass
class EvalConfig:
    episodes: int = 100
    """Held-out episodes for the before/after evaluation; 0 skips it."""
    seed_offset: int = 1_000_000_000
    """Eval episodes use seeds seed_offset + i; training seeds stay below 10**9."""
    compare_base: bool = True
    """Also evaluate the starting policy, to print base vs trained."""
    batch_size: int = 32
    """Prompts per generate call (greedy decoding)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Env options that replace ``env.kwargs`` ones for evaluation only, e.g. ``{split: test}``
    so a math run is evaluated on held-out problems."""
    every: int = 0
    """Also evaluate every this many steps during training (``eval/*`` metrics); 0: only before
    and after."""
    every_episodes: int | None = None
    """Episodes of each evaluation during training; null: ``episodes``."""
    sampled: int = 0
    """Also sample this many completions per episode at the training temperature and log their
    mean reward (``eval/sampled_reward_mean``) and the mean best-of-k reward
    (``eval/sampled_max_reward``)."""
    best_metric: str = "reward_mean"
    """Keep the checkpoint with the highest ``eval/<best_metric>`` in ``checkpoints/best``: one
    of ``reward_mean``, ``valid_rate``, the env's metrics, or (with ``sampled``)
    ``sampled_reward_mean`` / ``sampled_max_reward``."""

    def problems(self) -> list[str]:
        out = []
        if self.episodes < 0:
            out.append(f"episodes must be >= 0 (0 skips evaluation), got {self.episodes}")
        if self.batch_size < 1:
            out.append(f"batch_size must be >= 1, got {self.batch_size}")
        if self.every < 0 or self.sampled < 0:
            out.append("every and sampled must be >= 0")
        if self.every_episodes is not None and self.every_episodes < 1:
            out.append(f"every_episodes must be >= 1 or null, got {self.every_episodes}")
        if self.seed_offset < 1_000_000_000:
            out.append(
                f"seed_offset must be >= 10**9 to stay clear of training seeds, got {self.seed_offset}"
            )
        return out


@dataclass
class RewardModelConfig:
    path: str | None = None
    """A saved ORM or PRM (``assay rm train``) that rewards the answers; none: the env's own
    (verifiable) reward only."""
    aggregate: str = "min"
    """PRM step scores -> reward: ``min``, ``prod``, ``mean``, ``last``, ``max``, ``geomean``,
    or ``per_step`` (dense rewards at each step's last token; needs ``algo.name: ppo``)."""
    weight: float = 1.0
    """Weight of the reward-model score in the reward."""
    dense: Literal["delta", "score"] = "delta"
    """With ``per_step``: each step's reward is the change in PRM score (``delta``; they sum to
    the last score minus 0.5, so extra steps earn nothing) or the score itself (``score``, the
    paper's fine-grained reward, which pays for every extra step)."""
    grader_weight: float = 0.0
    """Weight of the env's verifiable reward (the math grader), mixed in: reward =
    weight * rm_score + grader_weight * env_reward."""
    batch_size: int | None = None
    """Answers per reward-model forward pass; none: 4 on a CPU, 16 on a GPU."""
    device: str = "auto"
    """Where the reward model runs: ``cpu``, ``cuda``... or ``auto``: the policy's device, or
    for an actor its own GPU when ``num_gpus`` > 0 and the CPU otherwise."""
    actor: bool = False
    """Run the reward model in a Ray actor beside the rollout pool (on a GPU of its own when
    ``num_gpus`` > 0) instead of in the learner's process."""
    num_gpus: float = 0.0
    """GPUs the reward-model actor reserves (``actor: true``)."""

    def problems(self) -> list[str]:
        from rewards.rm.aggregate import NAMES

        out = []
        if self.aggregate not in NAMES:
            out.append(f"aggregate must be one of {', '.join(NAMES)}, got {self.aggregate!r}")
        if self.weight < 0 or self.grader_weight < 0:
            out.append("weight and grader_weight must be >= 0")
        if self.batch_size is not None and self.batch_size < 1:
            out.append(f"batch_size must be >= 1 or null, got {self.batch_size}")
        if self.num_gpus < 0:
            out.append(f"num_gpus must be >= 0, got {self.num_gpus}")
        return out


@dataclass
class LogConfig:
    tensorboard: bool = False
    """Also write TensorBoard event files to ``<run>/tensorboard`` (``pip install tensorboard``)."""
    wandb: bool = False
    """Also log to Weights & Biases (``pip install wandb``)."""
    wandb_project: str = "assay"
    wandb_mode: Literal["offline", "online"] = "offline"
    """``offline`` writes to ``<run>/wandb`` with no network; ``wandb sync`` uploads it later."""


@dataclass
class RLConfig:
    """``assay train rl``: RL (GRPO family or PPO) on a TextEnv with a causal LM."""

    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    engines: EnginesConfig = field(default_factory=EnginesConfig)
    episodes: EpisodesConfig = field(default_factory=EpisodesConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    log: LogConfig = field(default_factory=LogConfig)
    reward_model: RewardModelConfig = field(default_factory=RewardModelConfig)

    RENAMED: ClassVar[dict[str, str]] = {
        **{f"rollout.{key}": f"engines.{key}" for key in EnginesConfig.__dataclass_fields__},
        **{f"rollout.{key}": f"episodes.{key}" for key in EpisodesConfig.__dataclass_fields__},
    }
    """Keys of assay 0.1 (``rollout:`` held both engines and episodes), refused with their new
    name by :func:`assay.config.load_config`."""

    @property
    def sample_rounds(self) -> int:
        """Prompt rounds one step may draw seeds for (dynamic sampling, multi-turn replays)."""
        if self.algo.setting("dynamic_sampling"):
            return self.algo.max_sample_rounds
        return MULTI_TURN_ROUNDS if self.episodes.multi_turn else 1

    def problems(self) -> list[str]:
        """Checks across sections (each section checks its own fields; messages are relative)."""
        out = []
        if self.algo.name not in registry.PRESETS:
            return out  # algo.problems() says so; the checks below need the preset
        # Training seeds are seed * 10**6 + ((step - 1) * rounds + round) * prompts_per_step + i.
        rounds = self.sample_rounds
        if self.train.steps * self.algo.prompts_per_step * rounds > 1_000_000:
            out.append(
                "train.steps * algo.prompts_per_step (* algo.max_sample_rounds with dynamic "
                "sampling) must be <= 10**6 so runs with different seeds never share boards"
            )
        if self.episodes.multi_turn:
            out += _multi_turn_problems(self)
        if self.train.sharding == "fsdp" and self.engines.off_policy:
            out.append(
                "train.sharding: fsdp generates on a full copy of the policy synced after each "
                "update; engines.off_policy is not supported with it yet"
            )
        known = registry.ADVANTAGES.get(self.algo.setting("advantage"))
        if self.reward_model.aggregate == "per_step" and known and not known.needs_values:
            out.append(
                "reward_model.aggregate: per_step gives dense per-token rewards, which only PPO's "
                "value head (advantage gae) uses; set algo.name: ppo or pick an aggregation such "
                "as min"
            )
        return out


MULTI_TURN_ROUNDS = 4
"""Multi-turn: batches replayed (on boards of their own) when no episode gave the learner a
turn; each step's seeds leave room for them."""


def _multi_turn_problems(config: RLConfig) -> list[str]:
    """What multi-turn training (episode-level advantages per seat) cannot combine with."""
    algo, out = config.algo, []
    if algo.problems():
        return out
    estimator = algo.estimator()
    if estimator.needs_values or not estimator.within_group:
        fits = [
            e.name for e in registry.ADVANTAGES.values() if e.within_group and not e.needs_values
        ]
        out.append(
            f"episodes.multi_turn needs a group advantage that compares each seat's episodes with "
            f"the same seed's only ({', '.join(fits)}), but algo {algo.name} uses {estimator.name}"
        )
    if algo.setting("dynamic_sampling"):
        out.append("episodes.multi_turn does not resample groups: set algo.dynamic_sampling: false")
    if algo.setting("overlong_buffer"):
        out.append("episodes.multi_turn has no single answer length: set algo.overlong_buffer: 0")
    if algo.kl_coef > 0 and algo.kl_in == "reward":
        out.append("episodes.multi_turn puts KL in the loss: set algo.kl_in: loss")
    if config.reward_model.path is not None:
        out.append("episodes.multi_turn takes the env's own rewards; unset reward_model.path")
    if config.eval.sampled:
        out.append("episodes.multi_turn evaluates greedy episodes only: set eval.sampled: 0")
    return out
