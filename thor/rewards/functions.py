r"""Reward functions over an episode: small typed callables, each registered by name with its config.

=================  =====================================================================  ==========
name               value                                                                  config
=================  =====================================================================  ==========
``correct``        1.0 when the final answer verifies against the gold answer, else 0.0   CorrectConfig
``format``         1.0 for a well-formed protocol (every python block closed and           FormatConfig
                   followed by an output block, no output block written by the model,
                   an answer present), else 0.0
``repetition``     ``penalty`` when a ``ngram``-character n-gram occurs more than          RepetitionConfig
                   ``max_repeats`` times in the model's text, else 0.0
``exec_success``   THOR's step-level reward: 1.0 when the step's tool call did not fail    ExecSuccessConfig
                   (``not thor.types.failed(result)``), else 0.0
``tool_calls``     the number of tool calls, or a bonus for using the tool                  ToolCallsConfig
=================  =====================================================================  ==========

Composites (``Weighted``, THOR's trajectory reward ``thor``) and :func:`score` are in
:mod:`thor.rewards.composite`.

Example:
    >>> from thor.types import Episode, ExecResult, ToolCall, Turn
    >>> call = Turn(text="```python\nprint(2**10)\n```", call=ToolCall(code="print(2**10)"),
    ...             result=ExecResult(status="ok", stdout="1024\n"), observation="```output\n1024\n```\n")
    >>> ep = Episode(id="e", problem="2^10?", answer="1024",
    ...              turns=[call, Turn(text="So \\boxed{1024}.")], final_answer="1024")
    >>> FormatReward()(ep), ExecSuccessReward()(ep), ToolCallsReward()(ep), RepetitionReward()(ep)
    (1.0, 1.0, 1.0, 0.0)
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import Field

from thor.config import ThorConfig, validate_config
from thor.rewards.extract import ExtractionMode, extract_answer
from thor.rewards.repetition import has_repetition
from thor.rewards.verifier import Verdict, Verifier, VerifierConfig, default_verifier
from thor.text.protocol import find_code_blocks
from thor.types import Episode, failed

__all__ = [
    "CorrectConfig",
    "CorrectReward",
    "ExecSuccessConfig",
    "ExecSuccessReward",
    "FormatConfig",
    "FormatReward",
    "RepetitionConfig",
    "RepetitionReward",
    "RewardFn",
    "ToolCallsConfig",
    "ToolCallsReward",
    "model_text",
]


def model_text(episode: Episode) -> str:
    """What the model wrote in ``episode``: its turns' text, without the tools' outputs.

    Rewards that judge the model's writing (format, answer, repetition) read this, never
    :meth:`Episode.response_text`: code may print fences or a ``\\boxed{}`` of its own.
    """
    return episode.model_text()


@runtime_checkable
class RewardFn(Protocol):
    """A reward over one episode. ``name`` labels its term in :class:`RewardBreakdown`."""

    name: str

    def __call__(self, episode: Episode) -> float: ...


class _Configured:
    """Base of thor's reward classes: built from a config (or its fields), pickled as it."""

    name: ClassVar[str]
    config_class: ClassVar[type[ThorConfig]]

    def __init__(self, config: ThorConfig | dict[str, Any] | None = None, **kwargs: Any) -> None:
        if config is not None and kwargs:
            raise TypeError("pass a config or keyword arguments, not both")
        self.config = validate_config(self.config_class, config if config is not None else kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"


# -- correct ----------------------------------------------------------------------------------------
class CorrectConfig(ThorConfig):
    """Answer correctness."""

    mode: ExtractionMode = Field(
        "boxed",
        description="How to find the answer when episode.final_answer is unset: strict \\boxed{} "
        "(training), or, for evaluating models that do not box: thor's lenient fallbacks or "
        "math_verify (math-verify's own extraction: $...$, 'the answer is', several boxes)",
    )
    verifier: VerifierConfig | None = Field(
        None, description="A verifier of its own; None shares thor.rewards.default_verifier()"
    )


class CorrectReward(_Configured):
    r"""1.0 when the episode's answer verifies against its gold answer, else 0.0.

    The answer is ``episode.final_answer`` when set (the env sets it from the last ``\boxed{}``),
    else it is extracted from the model's text (:func:`model_text`, not tool outputs) with
    ``config.mode``. An episode without a gold answer is an error (a reward cannot be made up),
    raised as :class:`~thor.errors.RewardError` by :func:`~thor.rewards.score`.

    Example:
        >>> from thor.types import Episode
        >>> ep = Episode(id="e", problem="?", answer="\\frac{1}{2}", final_answer="0.5")
        >>> CorrectReward()(ep)  # doctest: +SKIP
        1.0
    """

    name = "correct"
    config_class = CorrectConfig
    config: CorrectConfig

    def __init__(self, config: CorrectConfig | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self._verifier = Verifier(self.config.verifier) if self.config.verifier else None

    @property
    def verifier(self) -> Verifier:
        return self._verifier if self._verifier is not None else default_verifier()

    def answer(self, episode: Episode) -> str | None:
        """The predicted answer this reward checks."""
        if episode.final_answer is not None:
            return episode.final_answer
        if self.config.mode == "math_verify":  # sympy: in the verifier's workers
            return self.verifier.extract_answer(model_text(episode), mode="math_verify")
        return extract_answer(model_text(episode), mode=self.config.mode)

    def verdict(self, episode: Episode) -> Verdict:
        """The verifier's full verdict (reason, timeout) for the episode."""
        if episode.answer is None:
            raise ValueError("the episode has no gold answer")
        if episode.final_answer is None and self.config.mode == "math_verify":
            return self.verifier.verify_response(
                episode.answer, model_text(episode), mode="math_verify"
            )
        pred = self.answer(episode)
        if pred is None:
            return Verdict(
                equal=False, reason=f"refused: no answer found ({self.config.mode} extraction)"
            )
        return self.verifier.verify(episode.answer, pred)

    def __call__(self, episode: Episode) -> float:
        return 1.0 if self.verdict(episode).equal else 0.0

    def close(self) -> None:
        """Stop this reward's own verifier, if it has one (the shared default is left running)."""
        if self._verifier is not None:
            self._verifier.close()

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.config,))


# -- format -----------------------------------------------------------------------------------------
class FormatConfig(ThorConfig):
    """Protocol well-formedness."""

    require_answer: bool = Field(True, description="A response without an answer is malformed")
    mode: Literal["boxed", "lenient"] = Field(
        "boxed", description="How an answer is found (see CorrectConfig)"
    )
    forbid_model_outputs: bool = Field(
        True,
        description="Model-written text may not contain an ```output block (only the env writes them)",
    )


class FormatReward(_Configured):
    """1.0 when the response follows the TIR protocol (THOR-SPEC section 0), else 0.0."""

    name = "format"
    config_class = FormatConfig
    config: FormatConfig

    def __call__(self, episode: Episode) -> float:
        return 1.0 if not self.problems(episode) else 0.0

    def problems(self, episode: Episode) -> list[str]:
        """What is wrong with the episode's format (empty when it is well formed).

        Only the model's own text is read for blocks and answers: a tool's output (an observation)
        may print anything, fences included, without costing the model its format.
        """
        found: list[str] = []
        k = 0
        for turn in episode.turns:
            for block in find_code_blocks(turn.text):
                after = turn.text[block.end :] + turn.observation
                if not block.closed:
                    found.append(f"python block {k} is not closed")
                elif not after.lstrip().startswith("```output"):
                    found.append(f"python block {k} is not followed by an output block")
                k += 1
        if self.config.forbid_model_outputs and any("```output" in t.text for t in episode.turns):
            found.append("the model wrote an output block itself")
        if self.config.require_answer:
            answer = episode.final_answer or extract_answer(
                model_text(episode), mode=self.config.mode
            )
            if not answer:
                found.append("no answer")
        return found


# -- repetition -------------------------------------------------------------------------------------
class RepetitionConfig(ThorConfig):
    """THOR's degenerate-repetition rule (THOR-SPEC section 2)."""

    ngram: int = Field(50, ge=1, description="n-gram length in characters")
    max_repeats: int = Field(20, ge=0, description="The rule fires above this many occurrences")
    penalty: float = Field(-1.0, description="The value when the rule fires (0.0 otherwise)")
    include_observations: bool = Field(
        False, description="Also count tool outputs (the model did not write them)"
    )


class RepetitionReward(_Configured):
    """``penalty`` when the model's text repeats an n-gram too often, else 0.0."""

    name = "repetition"
    config_class = RepetitionConfig
    config: RepetitionConfig

    def fires(self, episode: Episode) -> bool:
        """Whether the repetition rule fires on this episode."""
        text = episode.response_text() if self.config.include_observations else model_text(episode)
        return has_repetition(text, self.config.ngram, self.config.max_repeats)

    def __call__(self, episode: Episode) -> float:
        return self.config.penalty if self.fires(episode) else 0.0


# -- exec_success -----------------------------------------------------------------------------------
class ExecSuccessConfig(ThorConfig):
    """Execution success of tool calls."""

    aggregate: Literal["last", "all", "mean"] = Field(
        "last",
        description="last: the step's call (the last one; THOR's step-level reward); all: 1.0 "
        "when no call failed; mean: the share of calls that did not fail (best-of-N's pass rate)",
    )
    no_call_value: float = Field(
        0.0, description="The value of an episode without a tool call (step-level RL drops those)"
    )


class ExecSuccessReward(_Configured):
    """THOR's step-level reward: 1.0 when the tool call did not fail (``thor.types.failed``)."""

    name = "exec_success"
    config_class = ExecSuccessConfig
    config: ExecSuccessConfig

    def __call__(self, episode: Episode) -> float:
        calls = [t for t in episode.turns if t.call is not None]
        if not calls:
            return self.config.no_call_value
        ok = [not failed(t.result) for t in calls]
        if self.config.aggregate == "last":
            return 1.0 if ok[-1] else 0.0
        if self.config.aggregate == "all":
            return 1.0 if all(ok) else 0.0
        return sum(ok) / len(ok)


# -- tool_calls -------------------------------------------------------------------------------------
class ToolCallsConfig(ThorConfig):
    """Tool use."""

    mode: Literal["count", "bonus"] = Field(
        "count", description="count: the number of calls; bonus: `bonus` when there is at least one"
    )
    bonus: float = 0.1
    successful_only: bool = Field(False, description="Count only calls that did not fail")
    cap: int | None = Field(None, ge=0, description="Upper bound of the count")


class ToolCallsReward(_Configured):
    """The number of tool calls (or a bonus for using the tool at all)."""

    name = "tool_calls"
    config_class = ToolCallsConfig
    config: ToolCallsConfig

    def __call__(self, episode: Episode) -> float:
        calls = [t for t in episode.turns if t.call is not None]
        if self.config.successful_only:
            calls = [t for t in calls if not failed(t.result)]
        n = len(calls) if self.config.cap is None else min(len(calls), self.config.cap)
        if self.config.mode == "bonus":
            return self.config.bonus if n else 0.0
        return float(n)
