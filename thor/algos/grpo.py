"""Trajectory-level GRPO with DAPO dynamic sampling (THOR-SPEC section 2, trajectory level).

Each step draws ``prompts_per_step`` problems, samples ``group_size`` episodes of each, scores them
with the trajectory reward (1 if the last ``\\boxed{}`` is right, 0 on degenerate repetition),
computes group-normalised advantages, drops groups whose rewards have zero spread and draws more
problems until the batch is full (at most ``max_draws`` rounds, so a model that never succeeds
cannot loop forever). Trajectories whose tool calls failed are left out of the loss (configurable):
an environment failure is not taught as a wrong answer.

Example:
    >>> import thor
    >>> algo = thor.ALGORITHMS.make("grpo", group_size=4, prompts_per_step=2)
    >>> algo.config.loss.config.eps_high
    0.28
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from pydantic import Field

from thor.agents.rollout import Rollout, RolloutTask
from thor.algos.advantages import group_advantages, rloo_advantages, zero_spread_groups
from thor.algos.base import Algorithm, CollectContext, Collected
from thor.algos.batch import TrainSample
from thor.algos.losses import GRPOLoss
from thor.config import ThorConfig
from thor.registries import LossSpec
from thor.types import Episode, failed

__all__ = ["GRPO", "GRPOConfig", "episode_metrics"]


class GRPOConfig(ThorConfig):
    """Trajectory-level GRPO settings (THOR's values where the spec gives them)."""

    group_size: int = Field(16, ge=2, description="G: episodes per problem")
    prompts_per_step: int = Field(8, ge=1, description="Groups kept per step (the batch)")
    advantage: Literal["grpo", "drgrpo", "rloo"] = "grpo"
    eps: float = Field(1e-6, ge=0.0)
    dynamic_sampling: bool = Field(True, description="Drop zero-spread groups and draw more (DAPO)")
    max_draws: int = Field(4, ge=1, description="Rounds of drawing problems per step, at most")
    exclude_failed_calls: bool = Field(
        True, description="Leave trajectories with failed calls out of the loss"
    )
    trajectory_weight: float = Field(1.0, ge=0.0)
    loss: LossSpec = Field(
        default_factory=lambda: LossSpec.model_validate({}),
        description="The policy loss by name with its config (default: grpo, THOR's values)",
    )


class GRPO(Algorithm):
    """Trajectory-level GRPO. Variants override :meth:`advantages` or :meth:`keep_group`."""

    name = "grpo"
    keeps_snapshots = False
    """Whether this algorithm's rollouts keep failure snapshots (step-level RL branches there)."""

    def __init__(self, config: GRPOConfig | None = None) -> None:
        self.config = config or GRPOConfig()
        self.loss: GRPOLoss = self.config.loss.build()

    # -- hooks a variant may override ----------------------------------------------------------
    def advantages(self, rewards: torch.Tensor, group_size: int) -> torch.Tensor:
        """Advantages of one or more consecutive groups of rewards."""
        if self.config.advantage == "rloo":
            return rloo_advantages(rewards, group_size)
        scale: Literal["std", "none"] = "none" if self.config.advantage == "drgrpo" else "std"
        return group_advantages(rewards, group_size, scale=scale, eps=self.config.eps)

    def keep_group(self, rewards: torch.Tensor) -> bool:
        """Whether a group carries signal (dynamic sampling drops zero-spread groups)."""
        if not self.config.dynamic_sampling:
            return True
        return not bool(zero_spread_groups(rewards, len(rewards))[0])

    def trainable(self, episode: Episode) -> bool:
        """Whether an episode's trajectory goes into the loss."""
        if episode.prompt_token_ids is None or any(t.token_ids is None for t in episode.turns):
            return False
        if episode.stop_reason.startswith("error"):
            return False
        return not (self.config.exclude_failed_calls and episode.num_failed_calls > 0)

    # -- collection ------------------------------------------------------------------------------
    def collect(self, ctx: CollectContext) -> Collected:
        cfg = self.config
        g = cfg.group_size
        kept: list[list[Episode]] = []
        drawn: list[Episode] = []
        rollouts: list[Rollout] = []
        draws = zero_spread = 0
        while len(kept) < cfg.prompts_per_step and draws < cfg.max_draws:
            problems = ctx.problems.take(cfg.prompts_per_step - len(kept))
            base = draws * cfg.prompts_per_step * g  # unique episode ids even if a problem recurs
            tasks = [
                RolloutTask(problem=p, sample=base + j * g + s)
                for j, p in enumerate(problems)
                for s in range(g)
            ]
            rollout = ctx.engine.rollout(
                tasks,
                seed=ctx.seed + 7919 * ctx.step + 104_729 * draws,
                keep_snapshots=self.keeps_snapshots,
            )
            rollouts.append(rollout)
            episodes = rollout.episodes
            draws += 1
            drawn += episodes
            for i in range(0, len(episodes), g):
                group = episodes[i : i + g]
                if self.keep_group(_rewards(group)):
                    kept.append(group)
                else:
                    zero_spread += 1
        samples: list[TrainSample] = []
        excluded = 0
        eos = eos_token_id(ctx.policy)
        for gi, group in enumerate(kept[: cfg.prompts_per_step]):
            adv = self.advantages(_rewards(group), g).tolist()
            for ep, a in zip(group, adv, strict=True):
                if not self.trainable(ep):
                    excluded += 1
                    continue
                samples.append(
                    TrainSample.from_episode(
                        ep,
                        a,
                        group_id=f"{ctx.step}:{gi}",
                        weight=cfg.trajectory_weight,
                        eos_token_id=eos,
                    )
                )
        metrics = episode_metrics(drawn)
        metrics.update(
            {
                "groups_kept": float(min(len(kept), cfg.prompts_per_step)),
                "groups_zero_spread": float(zero_spread),
                "draws": float(draws),
                "trajectories_excluded": float(excluded),
                "trajectory_samples": float(len(samples)),
            }
        )
        return Collected(samples=samples, episodes=drawn, metrics=metrics, rollouts=rollouts)


def _rewards(group: Sequence[Episode]) -> torch.Tensor:
    return torch.tensor([float(ep.reward or 0.0) for ep in group], dtype=torch.float32)


def episode_metrics(episodes: Sequence[Episode]) -> dict[str, float]:
    """Reward, accuracy, tool use and lengths of a list of episodes."""
    n = max(1, len(episodes))
    calls = sum(ep.num_calls for ep in episodes)
    fails = sum(ep.num_failed_calls for ep in episodes)
    correct = sum(float(ep.rewards.get("correct", ep.reward or 0.0)) > 0.5 for ep in episodes)
    lengths = [sum(len(t.token_ids or []) for t in ep.turns) for ep in episodes]
    return {
        "reward": sum(float(ep.reward or 0.0) for ep in episodes) / n,
        "accuracy": correct / n,
        "tool_calls": calls / n,
        "exec_success": (calls - fails) / calls if calls else 0.0,
        "failed_call_episodes": sum(
            any(failed(t.result) for t in ep.turns if t.call) for ep in episodes
        )
        / n,
        "response_tokens": sum(lengths) / n,
        "episodes": float(len(episodes)),
    }


def eos_token_id(policy: object) -> int | None:
    """The end token a trajectory sample gets when its last turn stopped on it."""
    tok = getattr(policy, "tokenizer", None)
    if tok is not None and getattr(tok, "eos_token_id", None) is not None:
        return int(tok.eos_token_id)
    ids = getattr(policy, "eos_token_ids", None)
    return min(ids) if ids else None
