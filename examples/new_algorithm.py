"""A new RL algorithm in a few dozen lines: REINFORCE++-style global advantage normalisation.

GRPO divides each group's centred rewards by that group's std; REINFORCE++ (baseline variant)
keeps the group mean as the baseline but divides by the std of *all* advantages in the batch, which
is steadier when a group's rewards barely differ. The new algorithm overrides one hook
(``advantages``: centre only) and rescales after collection; sampling, dynamic sampling, the loss,
checkpoints and metrics all come from thor. Registered as ``reinforce_pp``, it is chosen by name
like the built-in ones::

    python examples/new_algorithm.py                      # two steps on a tiny random model
    thor train --import examples/new_algorithm.py --set algorithm=reinforce_pp ...
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field

import thor
from thor.algos import GRPO, CollectContext, Collected, GRPOConfig, group_advantages


class ReinforcePPConfig(GRPOConfig):
    """GRPO's settings, plus the epsilon of the batch-wide normalisation."""

    global_eps: float = Field(1e-6, ge=0.0)


class ReinforcePP(GRPO):
    """Group-mean baseline, batch-wide std normalisation (REINFORCE++ baseline)."""

    name = "reinforce_pp"

    def __init__(self, config: ReinforcePPConfig | None = None) -> None:
        super().__init__(config or ReinforcePPConfig())

    def advantages(self, rewards: torch.Tensor, group_size: int) -> torch.Tensor:
        return group_advantages(rewards, group_size, scale="none")  # r - mean(group)

    def collect(self, ctx: CollectContext) -> Collected:
        out = super().collect(ctx)
        traj = [s.advantage for s in out.samples if s.kind == "trajectory"]
        std = statistics.pstdev(traj) if len(traj) > 1 else 1.0
        scale = 1.0 / (std + self.config.global_eps)
        out.samples = [
            s.model_copy(update={"advantage": s.advantage * scale}) if s.kind == "trajectory" else s
            for s in out.samples
        ]
        out.metrics["advantage_std_before"] = std
        return out


if "reinforce_pp" not in thor.ALGORITHMS:
    thor.ALGORITHMS.register(
        "reinforce_pp",
        config=ReinforcePPConfig,
        factory=ReinforcePP,
        description="GRPO sampling, REINFORCE++ global advantage normalisation",
    )


# -- a reward a tiny random model gets now and then, so that groups have spread ---------------------
class _NoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DigitShare:
    """The share of digits in the response text."""

    name = "digit_share"

    def __init__(self, cfg: _NoConfig) -> None:
        pass

    def __call__(self, episode: thor.Episode) -> float:
        text = episode.response_text()
        return sum(c.isdigit() for c in text) / max(1, len(text))


if "digit_share" not in thor.REWARDS:
    thor.REWARDS.register("digit_share", config=_NoConfig, factory=DigitShare)


def main(
    out_dir: str | Path = "runs/example_reinforce_pp", steps: int = 2
) -> list[dict[str, float]]:
    """Train the tiny random model for ``steps`` steps with ``reinforce_pp``; returns the metrics.

    Like every thor run, it resumes from ``out_dir`` when that holds a checkpoint.
    """
    from thor.algos.loop import TrainConfig, Trainer
    from thor.algos.metrics import read_metrics
    from thor.testing import tiny_model, tiny_tokenizer

    problems = [thor.Problem(id=f"p{i}", problem=f"Write a number {i}.") for i in range(8)]
    config = TrainConfig(
        algorithm={"name": "reinforce_pp", "group_size": 4, "prompts_per_step": 2},
        rollout={"agent": "cot", "env": {"reward": "digit_share", "max_response_tokens": 12}},
        optim={"lr": 1e-3, "micro_batch_size": 8},
        precision="fp32",
        steps=steps,
        out_dir=Path(out_dir),
        export=False,
        progress=False,
    )
    trainer = Trainer(
        config, model=tiny_model(seed=0), tokenizer=tiny_tokenizer(), problems=problems
    )
    run = trainer.train()
    return read_metrics(run / "metrics.jsonl")


if __name__ == "__main__":
    torch.set_num_threads(1)  # a tiny model: more threads only contend
    for row in main(*sys.argv[1:2]):
        print(f"step {row['step']}: reward {row['reward']:.3f}  loss {row.get('loss', 0.0):.4f}")
