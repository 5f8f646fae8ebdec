"""A deterministic, checkpointable stream of training problems (reshuffled each epoch)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from thor.types import Problem

__all__ = ["ProblemStream"]


class ProblemStream:
    """Problems in a seeded order, reshuffled every epoch; its position survives checkpoints.

    Example:
        >>> from thor.types import Problem
        >>> s = ProblemStream([Problem(id=str(i), problem=f"p{i}") for i in range(3)], seed=0)
        >>> len(s.take(2)), len(s.take(2)), s.epoch
        (2, 2, 1)
    """

    def __init__(self, problems: Sequence[Problem], *, seed: int = 0) -> None:
        if not problems:
            raise ValueError("no training problems")
        self.problems = list(problems)
        self.seed = seed
        self.epoch = 0
        self.position = 0
        self._order = self._shuffled(0)

    def _shuffled(self, epoch: int) -> list[int]:
        order = list(range(len(self.problems)))
        random.Random(self.seed * 100_003 + epoch).shuffle(order)
        return order

    def take(self, n: int) -> list[Problem]:
        """The next ``n`` problems (crossing into the next epoch when needed)."""
        out: list[Problem] = []
        while len(out) < n:
            if self.position >= len(self._order):
                self.epoch += 1
                self.position = 0
                self._order = self._shuffled(self.epoch)
            out.append(self.problems[self._order[self.position]])
            self.position += 1
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "epoch": self.epoch,
            "position": self.position,
            "size": len(self.problems),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("size") != len(self.problems):
            raise ValueError(
                f"the checkpoint was made with {state.get('size')} problems, now {len(self.problems)}"
            )
        self.seed, self.epoch, self.position = (
            int(state["seed"]),
            int(state["epoch"]),
            int(state["position"]),
        )
        self._order = self._shuffled(self.epoch)
