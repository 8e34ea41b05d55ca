"""What an RL config cannot do with this env or this number of processes, refused before any
model loads (the config's own checks, ``RLConfig.problems``, need neither)."""

from __future__ import annotations

from assay.errors import ConfigError
from trainers.distributed import World
from trainers.rl.config import RLConfig


def check_single_turn(config: RLConfig, env) -> None:
    """Without ``episodes.multi_turn`` the learner trains one answer per episode: an env with
    several agents is refused before any model loads (others that go on after one answer are
    refused at the first step). With it, the seats are checked before any model loads."""
    if config.episodes.multi_turn:
        from trainers.rl.multi_turn import check_rl_seats

        check_rl_seats(config, env)
        return
    agents = getattr(getattr(env, "unwrapped", env), "possible_agents", ())
    if len(agents) > 1:
        raise ConfigError(
            f"{config.env.id} has {len(agents)} agents ({', '.join(agents)}) and several turns "
            "per episode; train it with episodes.multi_turn: true (and episodes.seats for the "
            "agents the learner does not play)."
        )


def check_world(config: RLConfig, world: World) -> None:
    """Settings that depend on the number of processes, checked on every rank."""
    if config.algo.prompts_per_step % world.size:
        raise ValueError(
            f"algo.prompts_per_step ({config.algo.prompts_per_step}) must be a multiple of the "
            f"number of processes ({world.size})"
        )
    per_rank = config.algo.prompts_per_step // world.size
    if config.algo.mini_batches * config.algo.grad_accum > per_rank:
        raise ValueError(
            f"algo.mini_batches * algo.grad_accum must be <= the prompt groups per process "
            f"({per_rank} with {world.size} processes)"
        )
    if world.active and (config.engines.backend == "vllm" or config.engines.replicas > 1):
        raise ValueError(
            "several learner processes generate with their own HF engine; engines.backend vllm "
            "and engines.replicas > 1 need a single learner process for now"
        )


def check_best_metric(config: RLConfig, env) -> None:
    known = {"reward_mean", "valid_rate", *getattr(env, "metric_keys", ())}
    if config.episodes.multi_turn:
        known = {"reward_mean", "valid_rate", "episode_steps", "truncated_rate"}
    if config.eval.sampled:
        known |= {"sampled_reward_mean", "sampled_max_reward"}
    if config.eval.best_metric not in known:
        raise ConfigError(
            f"eval.best_metric {config.eval.best_metric!r} is not an eval metric of this run; "
            f"choose one of {', '.join(sorted(known))}"
        )
