"""A new policy loss in one file: CISPO (clipped importance-sampling weights, MiniMax-M1).

CISPO keeps every token's gradient and clips the importance weight instead of the update:
``loss_t = -sg(clip(r_t, 1 - eps_low, 1 + eps_high)) * A * log pi(t)``. Its gradient is
``clip(r) * A * grad log pi``; written through the ratio ``r`` (whose gradient is ``r * grad log
pi``) that is the objective ``sg(clip(r) / r) * r * A``, so one overridden hook of
:class:`~thor.algos.GRPOLoss` is the whole loss. Registered in :data:`thor.LOSSES`, any algorithm
config names it, with no new algorithm::

    thor train --import examples/cispo_loss.py --set algorithm.loss.name=cispo
    python examples/cispo_loss.py      # one training step of GRPO with this loss, tiny model
"""

from __future__ import annotations

import torch
from pydantic import Field

import thor
import thor.config
from thor.algos.losses import GRPOLoss, GRPOLossConfig


class CISPOConfig(GRPOLossConfig):
    """CISPO clips the weight on the high side only by default (MiniMax-M1: eps_high large)."""

    eps_low: float = Field(1.0, ge=0.0, le=1.0, description="1.0: no lower clip of the weight")
    eps_high: float = Field(4.0, ge=0.0)
    dual_clip: float | None = None


class CISPOLoss(GRPOLoss):
    """Clipped importance-sampling-weight policy gradient: every token keeps its gradient."""

    def per_token_objective(self, ratio: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
        c = self.config
        weight = torch.clamp(ratio, 1.0 - c.eps_low, 1.0 + c.eps_high).detach()
        return weight / ratio.detach().clamp(min=1e-8) * ratio * advantages


if "cispo" not in thor.LOSSES:
    thor.LOSSES.register("cispo", config=CISPOConfig, factory=CISPOLoss, description="CISPO")


class _VarietyConfig(thor.config.ThorConfig):
    """No settings."""


def variety(_: _VarietyConfig) -> object:
    """A reward a random tiny model's samples differ in: distinct characters / 10."""
    return lambda episode: len(set(episode.response_text())) / 10


if "example.variety" not in thor.REWARDS:
    thor.REWARDS.register("example.variety", config=_VarietyConfig, factory=variety)


def main(out_dir: str = "runs/example-cispo") -> dict[str, float]:
    from thor.algos.loop import TrainConfig, Trainer
    from thor.testing import tiny_model, tiny_tokenizer

    problems = [
        thor.Problem(id=f"p{i}", problem=f"Say a number {i}.", answer="7") for i in range(4)
    ]
    config = TrainConfig(
        algorithm={
            "name": "grpo",
            "group_size": 4,
            "prompts_per_step": 2,
            "loss": {"name": "cispo"},
        },
        rollout={"agent": "cot", "env": {"reward": "example.variety", "max_response_tokens": 8}},
        optim={"lr": 1e-3, "micro_batch_size": 8},
        precision="fp32",
        steps=1,
        out_dir=out_dir,
        export=False,
        progress=False,
    )
    trainer = Trainer(config, model=tiny_model(), tokenizer=tiny_tokenizer(), problems=problems)
    assert isinstance(trainer.algorithm.loss, CISPOLoss)
    metrics = trainer.train_step()
    print({k: round(v, 4) for k, v in metrics.items() if k in ("loss", "train_tokens")})
    return metrics


if __name__ == "__main__":
    main()
