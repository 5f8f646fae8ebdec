r"""GSM8K's usual scoring: the last number in the response (lm-eval's "flexible extraction").

thor scores an answer by its last ``\boxed{}`` (the ``correct`` reward); most GSM8K figures
(EleutherAI's lm-evaluation-harness, ``exact_match,flexible-extract``) take the last number the
model wrote instead. :class:`LastNumberReward` (registered as ``gsm8k_last_number``) does the
same, so a thor table can stand beside lm-eval's:

- the numbers are the matches of ``(-?[$0-9.,]{2,})|(-?[0-9]+)`` in the text; the last one is the
  prediction (``[invalid]`` when there is none);
- prediction and gold lose commas, dollar signs and one trailing period, and must then be equal
  as strings, ignoring case (``72.0`` is not ``72``, as in lm-eval).

The text is what the model wrote (its turns; tool outputs excluded unless
``include_observations``). Nothing is evaluated: it is string matching.

Example:
    >>> last_number("So she has 5 + 3 = 8 apples, i.e. $1,200.")
    '$1,200.'
    >>> lm_eval_match("$1,200.", "1200"), lm_eval_match("72.0", "72")
    (True, False)
    >>> from thor.types import Episode, Turn
    >>> ep = Episode(id="e", problem="?", answer="72", turns=[Turn(text="48 + 24 = 72 clips.")])
    >>> LastNumberReward()(ep)
    1.0
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from thor.config import ThorConfig, validate_config
from thor.registries import REWARDS
from thor.types import Episode

__all__ = ["INVALID", "LastNumberConfig", "LastNumberReward", "last_number", "lm_eval_match"]

_NUMBERS = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
_IGNORE = (re.compile(","), re.compile(r"\$"), re.compile(r"(?s).*#### "), re.compile(r"\.$"))
INVALID = "[invalid]"
"""lm-eval's prediction when the response has no number."""


def last_number(text: str) -> str:
    """The last match of lm-eval's flexible-extraction pattern in ``text`` (``[invalid]`` if none)."""
    found = _NUMBERS.findall(text)
    if not found:
        return INVALID
    groups = [g for g in found[-1] if g]
    return groups[0].strip() if groups else INVALID


def _normalize(text: str) -> str:
    for pattern in _IGNORE:
        text = pattern.sub("", text)
    return text.strip().lower()


def lm_eval_match(prediction: str, gold: str) -> bool:
    """lm-eval's ``exact_match`` for GSM8K: equal after dropping ``,``, ``$``, a trailing ``.``."""
    return _normalize(prediction) == _normalize(gold)


class LastNumberConfig(ThorConfig):
    """GSM8K's flexible extraction."""

    include_observations: bool = Field(
        False, description="Also read tool outputs (the model did not write them)"
    )


class LastNumberReward:
    """1.0 when the last number in the response matches the gold answer (see the module docstring)."""

    name = "gsm8k_last_number"
    config_class = LastNumberConfig

    def __init__(
        self, config: LastNumberConfig | dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if config is not None and kwargs:
            raise TypeError("pass a config or keyword arguments, not both")
        self.config = validate_config(LastNumberConfig, config if config is not None else kwargs)

    def text(self, episode: Episode) -> str:
        """The text the number is read from."""
        if self.config.include_observations:
            return episode.response_text()
        return "".join(t.text for t in episode.turns)

    def prediction(self, episode: Episode) -> str:
        return last_number(self.text(episode))

    def __call__(self, episode: Episode) -> float:
        if episode.answer is None:
            raise ValueError("the episode has no gold answer")
        return 1.0 if lm_eval_match(self.prediction(episode), episode.answer) else 0.0

    def __repr__(self) -> str:
        return f"LastNumberReward({self.config!r})"


REWARDS.register(
    LastNumberReward.name,
    config=LastNumberConfig,
    factory=LastNumberReward,
    description="GSM8K's usual scoring: the last number in the response (lm-eval's flexible extraction)",
)
