"""THOR's hierarchical RL: trajectory-level GRPO plus step-level RL on failed code steps.

THOR-SPEC section 2. For each failed action in a step's rollouts, the branch point is the context
before the failed fence minus ``suffix_tokens`` of the reasoning before it
(:func:`thor.algos.step_level.branch_points`); the interpreter state there is restored from the
fork the rollout engine kept just before the failed call (a *failure snapshot* of the step's
:class:`~thor.agents.rollout.Rollout`; no replay), with every agent, ``thor``'s self-correction
included. From each branch point ``step_group_size`` continuations regenerate the suffix and
exactly one code action; each is scored by ``step_reward`` (a registered reward, ``exec_success``
by default: 1 when its code runs), continuations without code are dropped, groups with zero spread
are dropped, and the prefix is masked from the loss.

Step samples join the trajectory samples in one token-mean batch (THOR's way, ``combine="joint"``)
or are weighted apart (``combine="separate"``: each kind gets its own token mean); the trainer logs
both losses apart either way.

Example:
    >>> import thor
    >>> algo = thor.ALGORITHMS.make("thor", group_size=4, step_group_size=4, suffix_tokens=128)
    >>> algo.keeps_snapshots, algo.combine, algo.config.step_reward.name
    (True, 'joint', 'exec_success')
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import torch
from pydantic import Field

from thor.agents.env import AgentEnv
from thor.algos.base import CollectContext, Collected
from thor.algos.batch import TrainSample
from thor.algos.grpo import GRPO, GRPOConfig
from thor.algos.step_level import BranchPoint, StepSample, branch_points
from thor.registries import RewardSpec
from thor.types import Episode, SamplingParams, Turn

__all__ = ["ThorAlgorithm", "ThorAlgorithmConfig", "sample_step_groups"]

log = logging.getLogger(__name__)


class ThorAlgorithmConfig(GRPOConfig):
    """Trajectory-level GRPO plus step-level RL (THOR-SPEC section 2)."""

    step_level: bool = Field(True, description="Turn the step level off to get plain GRPO")
    step_group_size: int = Field(16, ge=2, description="Continuations per branch point")
    suffix_tokens: int = Field(
        128, ge=0, description="L_suf: reasoning tokens regenerated before the fence"
    )
    step_max_tokens: int = Field(
        384, ge=1, description="Budget of one continuation (suffix + code)"
    )
    step_temperature: float = Field(1.0, ge=0.0)
    max_branch_points: int = Field(16, ge=1, description="Branch points per step, at most")
    step_weight: float = Field(1.0, ge=0.0)
    step_reward: RewardSpec = Field(
        default_factory=lambda: RewardSpec.model_validate("exec_success"),
        description="Scores a continuation's episode (its last call is the continuation's)",
    )
    combine: Literal["joint", "separate"] = "joint"


class _Decoder:
    """Adapts a policy's ``decode`` to the tokenizer-shaped object branch_points expects."""

    def __init__(self, policy: Any) -> None:
        self._decode = policy.decode

    def decode(self, token_ids: Any, **_: Any) -> str:
        return self._decode(list(token_ids))


class ThorAlgorithm(GRPO):
    """THOR: GRPO on trajectories plus step-level RL on failed code steps."""

    name = "thor"
    config: ThorAlgorithmConfig

    def __init__(self, config: ThorAlgorithmConfig | None = None) -> None:
        super().__init__(config or ThorAlgorithmConfig())
        self.keeps_snapshots = self.config.step_level
        self.combine = self.config.combine
        self.step_reward = self.config.step_reward.build()

    def collect(self, ctx: CollectContext) -> Collected:
        out = super().collect(ctx)
        if not self.config.step_level:
            return out
        try:
            step_samples, metrics = self._step_level(ctx, out)
        finally:
            out.close()  # the snapshots are used: close their sessions now
        out.samples += step_samples
        out.metrics.update(metrics)
        return out

    def _step_level(
        self, ctx: CollectContext, out: Collected
    ) -> tuple[list[TrainSample], dict[str, float]]:
        cfg = self.config
        decoder = _Decoder(ctx.policy)
        points: list[tuple[BranchPoint, AgentEnv]] = []
        for rollout in out.rollouts:
            for ep in rollout.episodes:
                if ep.prompt_token_ids is None:
                    continue
                for bp in branch_points(ep, suffix_tokens=cfg.suffix_tokens, tokenizer=decoder):
                    snap = rollout.snapshot(ep.id, bp.turn_index)
                    if snap is not None and len(points) < cfg.max_branch_points:
                        points.append((bp, snap))
        groups = sample_step_groups(
            ctx.policy,
            points,
            reward=self.step_reward,
            group_size=cfg.step_group_size,
            params=SamplingParams(
                max_tokens=cfg.step_max_tokens,
                temperature=cfg.step_temperature,
                seed=ctx.seed + 31 * ctx.step + 17,
            ),
        )
        samples: list[TrainSample] = []
        kept = zero = no_code = 0
        rewards_all: list[float] = []
        for gi, group in enumerate(groups):
            with_code = [s for s in group if s.has_code]
            no_code += len(group) - len(with_code)
            rewards = torch.tensor([float(s.reward or 0.0) for s in with_code])
            rewards_all += rewards.tolist()
            if len(with_code) < 2 or not self.keep_group(rewards):
                zero += 1
                continue
            kept += 1
            adv = self.advantages(rewards, len(with_code)).tolist()
            samples += [
                s.to_train_sample(a, weight=cfg.step_weight, group_id=f"{ctx.step}:step{gi}")
                for s, a in zip(with_code, adv, strict=True)
            ]
        return samples, {
            "step_branch_points": float(len(points)),
            "step_groups_kept": float(kept),
            "step_groups_dropped": float(zero),
            "step_no_code": float(no_code),
            "step_exec_success": sum(rewards_all) / len(rewards_all) if rewards_all else 0.0,
            "step_samples": float(len(samples)),
        }


def sample_step_groups(
    policy: Any,
    points: list[tuple[BranchPoint, AgentEnv]],
    *,
    group_size: int,
    params: SamplingParams,
    reward: Callable[[Episode], float] | None = None,
    workers: int = 4,
) -> list[list[StepSample]]:
    """Sample ``group_size`` continuations per branch point and score each with ``reward``.

    Each continuation's code runs in a fork of the branch point's snapshot env (the interpreter as
    it was before the failed call), so no cell is replayed and siblings never see each other; the
    reward (``exec_success`` by default) scores the fork's episode, whose last call is the
    continuation's.
    """
    if not points:
        return []
    score = reward if reward is not None else RewardSpec.model_validate("exec_success").build()
    prompts = [bp.prompt_token_ids for bp, _ in points for _ in range(group_size)]
    rule = points[0][1].stop_rule()  # the tool's stop rule: one call per continuation
    params = params.model_copy(
        update={"stop": list(rule.stop), "stop_at_code_close": rule.code_close}
    )
    completions = policy.generate(prompts, params)
    jobs: list[tuple[BranchPoint, AgentEnv, Any]] = [
        (points[i // group_size][0], points[i // group_size][1], c)
        for i, c in enumerate(completions)
    ]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="thor-step") as pool:
        samples = list(pool.map(lambda job: _run_continuation(job[0], job[1], job[2], score), jobs))
    return [samples[i : i + group_size] for i in range(0, len(samples), group_size)]


def _run_continuation(
    bp: BranchPoint, snapshot: AgentEnv, completion: Any, reward: Callable[[Episode], float]
) -> StepSample:
    sample = StepSample(
        branch=bp,
        completion_text=completion.text,
        completion_ids=list(completion.token_ids),
        logprobs=completion.logprobs,
    )
    text = bp.prefix_text + completion.text
    if not snapshot.will_call(text):
        return sample  # no call: no reward, dropped from its group
    branch = snapshot.fork()
    try:
        _, _, _, _, info = branch.act(Turn(text=text))
        call = branch.episode.turns[-1].call
        value = float(reward(branch.episode))
    finally:
        branch.close()
    return sample.model_copy(
        update={"code": call.code if call else "", "result": info.get("exec"), "reward": value}
    )
