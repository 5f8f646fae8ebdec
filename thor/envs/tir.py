"""TIREnv: tool-integrated reasoning as a gymnasium environment whose step runs code.

An episode is one problem. ``reset`` returns the problem (and, in ``info["messages"]``, the chat
messages with THOR's system prompt); each ``step`` takes the model's next turn: when the turn ends
with a tool call (a python block by default) the call runs in the episode's sandbox session and the
observation is its rendered output; otherwise the turn is the final answer, the episode terminates
and the reward comes from the env's reward function (the verifier by default). The episode is
truncated when the round or token budget is spent.

Example:
    >>> import thor
    >>> env = thor.make("thor/MathTIR-v0")  # doctest: +SKIP
    >>> obs, info = env.reset(options={"problem": "What is 2^10?", "answer": "1024"})  # doctest: +SKIP
    >>> obs, r, term, trunc, info = env.step("```python\\nprint(2**10)\\n```")  # doctest: +SKIP
    >>> obs  # doctest: +SKIP
    '\\n```output\\n1024\\n```\\n'
    >>> env.step("So the answer is \\\\boxed{1024}.")[1:3]  # doctest: +SKIP
    (1.0, True)
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from typing import Any, Literal

import gymnasium
from pydantic import Field, field_validator

from thor.config import ThorConfig
from thor.data.loaders import load_problems
from thor.envs.sandbox.base import Sandbox, Session
from thor.envs.spaces import UnicodeText
from thor.envs.tools import Tool, ToolContext
from thor.errors import SandboxError
from thor.registries import ENVS, SANDBOXES, SandboxSpec, ToolSpec
from thor.rewards.terms import RewardConfig, build_reward, check_reward_names
from thor.text.prompts import PromptStyle, messages_for
from thor.text.protocol import StopRule
from thor.types import Episode, ExecResult, Problem, Turn

__all__ = ["TIREnv", "TIREnvConfig", "shared_sandbox"]

log = logging.getLogger(__name__)

MAX_OBSERVATION = 1 << 18  # longest observation the space admits (a problem or a tool output)
MAX_ACTION = 1 << 22  # longest model turn the space admits


class TIREnvConfig(ThorConfig):
    """Configuration of a tool-integrated reasoning episode (THOR-SPEC section 0 defaults)."""

    dataset: str = Field(
        "math_train",
        description="A registered dataset name or a JSONL path (never a test set by default)",
    )
    dataset_limit: int | None = Field(None, ge=1)
    prompt_style: PromptStyle = "tir"
    system_prompt: str | None = Field(None, description="Replaces the style's system message")
    tool: ToolSpec = Field(
        "python",  # validated into a ToolSpec (validate_default)
        validate_default=True,
        description="A registered tool with its config",
    )
    sandbox: SandboxSpec = Field(
        "local",
        validate_default=True,
        description="A registered sandbox with its config (where tool calls run)",
    )
    max_rounds: int = Field(
        5, ge=0, description="Tool calls per episode; 0 disables tools (chain of thought)"
    )
    max_response_tokens: int = Field(4096, ge=1, description="Budget for model text + tool outputs")
    cell_timeout_s: float | None = Field(
        None, gt=0, description="Per-call limit; None uses the sandbox's (30 s)"
    )
    reward: RewardConfig = Field(
        "correct",
        description="A reward name, {name: weight}, or a list of {name, weight, config} terms",
    )
    on_sandbox_error: Literal["raise", "record"] = Field(
        "raise", description="A broken sandbox raises SandboxError, or is recorded as a failed call"
    )

    @field_validator("reward")
    @classmethod
    def _known_rewards(cls, value: RewardConfig) -> RewardConfig:
        return check_reward_names(value)


class TIREnv(gymnasium.Env[str, str]):
    """A gymnasium environment for tool-integrated reasoning.

    Args:
        config: the episode settings (also accepts keyword arguments through ``thor.make``).
        sandbox: the sandbox that opens sessions (default: the process-wide shared one of
            ``config.sandbox``). Envs share a sandbox; each episode has its own session.
        tokenizer: anything with ``encode(text) -> list[int]``; budgets count tokens with it
            (and with the token ids agents attach to turns), else characters.
        reward_fn: the reward function (default: ``config.reward`` from :data:`thor.REWARDS`).
        problems: the problems to draw from (default: ``config.dataset``).
        tool: the tool (default: ``config.tool`` from :data:`thor.TOOLS`).

    Sessions: the episode's session opens at its first tool call and closes on ``close()`` and on
    the next ``reset()``. ``fork()`` returns an independent copy that the caller owns and closes.
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi"]}  # noqa: RUF012 (gymnasium's own)

    def __init__(
        self,
        config: TIREnvConfig | None = None,
        *,
        sandbox: Sandbox | None = None,
        tokenizer: Any = None,
        reward_fn: Callable[[Episode], float] | None = None,
        problems: Sequence[Problem] | None = None,
        tool: Tool | None = None,
        render_mode: str | None = None,
    ) -> None:
        self.config = config or TIREnvConfig()
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.render_mode = render_mode
        self.observation_space = UnicodeText(MAX_OBSERVATION)
        self.action_space = UnicodeText(MAX_ACTION)
        self.tokenizer = tokenizer
        self.tool: Tool = tool or self.config.tool.build()
        self._sandbox = sandbox
        self._reward_fn = reward_fn
        self._problems = list(problems) if problems is not None else None
        self._session: Session | None = None
        self._episode: Episode | None = None
        self._rounds = 0
        self._tokens = 0
        self._done = False

    # -- public state ---------------------------------------------------------------------------
    @property
    def episode(self) -> Episode:
        """The episode so far (typed); agents attach token ids and logprobs to its turns."""
        if self._episode is None:
            raise RuntimeError("call reset() before using the episode")
        return self._episode

    @property
    def rounds_used(self) -> int:
        return self._rounds

    @property
    def tokens_used(self) -> int:
        return self._tokens

    @property
    def tokens_left(self) -> int:
        """What the response budget still allows (model text + tool outputs)."""
        return max(0, self.config.max_response_tokens - self._tokens)

    def stop_rule(self) -> StopRule:
        """Where the policy must stop a turn: the tool's rule, or none without tool rounds."""
        return self.tool.stop_rule if self.config.max_rounds > 0 else StopRule()

    def will_call(self, text: str) -> bool:
        """Whether acting ``text`` now would run a tool call (one that ends it, rounds left)."""
        if self.config.max_rounds <= 0 or self._rounds >= self.config.max_rounds:
            return False
        return self.tool.find_call(text) is not None

    @property
    def sandbox(self) -> Sandbox:
        if self._sandbox is None:
            self._sandbox = shared_sandbox(self.config.sandbox)
        return self._sandbox

    @property
    def reward_fn(self) -> Callable[[Episode], float]:
        if self._reward_fn is None:
            self._reward_fn = build_reward(self.config.reward)
        return self._reward_fn

    # -- gymnasium API --------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Start an episode: ``options={"problem": ..., "answer": ...}`` or a problem drawn by seed.

        Other options: ``id`` (episode id), ``index`` (a dataset index), ``metadata`` (kept).
        """
        super().reset(seed=seed)
        self._close_session()
        problem = self._choose_problem(options or {})
        messages = messages_for(
            problem.problem, self.config.prompt_style, self.config.system_prompt
        )
        self._episode = Episode(
            id=str((options or {}).get("id") or problem.id),
            problem=problem.problem,
            answer=problem.answer,
            metadata={
                "source": problem.source,
                **problem.metadata,
                **(options or {}).get("metadata", {}),
            },
        )
        self._rounds = 0
        self._tokens = 0
        self._done = False
        return problem.problem, {
            "messages": messages,
            "answer": problem.answer,
            "problem_id": problem.id,
        }

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """Take the model's next turn (text up to and including a closing code fence, or the answer)."""
        if not isinstance(action, str):
            raise TypeError(f"action must be a str (the model's turn), got {type(action).__name__}")
        return self.act(Turn(text=action))

    def act(self, turn: Turn) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """Like :meth:`step`, for agents that have the turn's token ids and logprobs."""
        ep = self.episode
        if self._done:
            raise RuntimeError("the episode is over; call reset()")
        self._tokens += self._count(turn.text, turn.token_ids)
        call = self.tool.find_call(turn.text) if self.config.max_rounds > 0 else None
        info: dict[str, Any] = {}
        if call is None:  # no tool call: this turn is the final answer (unless the budget ran out)
            ep.turns.append(turn)
            if self._tokens >= self.config.max_response_tokens:
                return self._finish("", info, terminated=False, reason="max_tokens")
            return self._finish("", info, terminated=True, reason="answer")
        if self._rounds >= self.config.max_rounds:
            ep.turns.append(turn)
            return self._finish("", info, terminated=False, reason="max_rounds")
        self._rounds += 1
        result = self._run(call)
        obs = self.tool.render(result)
        if not turn.text.endswith("\n"):
            obs = "\n" + obs
        turn = turn.model_copy(update={"call": call, "result": result, "observation": obs})
        ep.turns.append(turn)
        self._tokens += self._count(obs, None)
        info.update(
            {
                "exec": result,
                "round": self._rounds,
                "rounds_left": self.config.max_rounds - self._rounds,
            }
        )
        if self._tokens >= self.config.max_response_tokens:
            return self._finish(obs, info, terminated=False, reason="max_tokens")
        info["tokens_used"] = self._tokens
        return obs, 0.0, False, False, info

    def fork(self, *, reseed: bool = False) -> TIREnv:
        """An independent copy of the episode so far: text, counters and a forked session.

        The caller owns the fork and must ``close()`` it; closing either leaves the other intact.
        No cell is replayed: the interpreter process itself is branched, random generators
        included (the branch draws what the parent would), unless ``reseed`` gives the branch
        fresh seeds (e.g. for diverse step-level continuations).
        """
        twin = copy.copy(self)
        twin._episode = self._episode.model_copy(deep=True) if self._episode is not None else None
        twin._session = (
            self._session.fork(reseed=reseed)
            if self._session is not None and not self._session.closed
            else None
        )
        twin._np_random = copy.deepcopy(self._np_random)
        return twin

    def render(self) -> str | None:
        if self.render_mode != "ansi" or self._episode is None:
            return None
        return self._episode.problem + "\n\n" + self._episode.response_text()

    def close(self) -> None:
        """Close the episode's session (not the shared sandbox)."""
        self._close_session()
        super().close()

    # -- internals ------------------------------------------------------------------------------
    def _choose_problem(self, options: dict[str, Any]) -> Problem:
        if "problem" in options:
            text = options["problem"]
            if not isinstance(text, str) or not text.strip():
                raise ValueError("options['problem'] must be a non-empty string")
            answer = options.get("answer")
            return Problem(
                id=str(options.get("id", "custom")),
                problem=text,
                answer=None if answer is None else str(answer),
                source="custom",
            )
        if self._problems is None:
            self._problems = load_problems(self.config.dataset, limit=self.config.dataset_limit)
        if not self._problems:
            raise ValueError(f"dataset {self.config.dataset!r} has no problems")
        if "index" in options:
            return self._problems[int(options["index"]) % len(self._problems)]
        return self._problems[int(self.np_random.integers(len(self._problems)))]

    def _run(self, call: Any) -> ExecResult:
        ctx = ToolContext(self._open_session, self.config.cell_timeout_s)
        try:
            return self.tool.run(call, ctx)
        except SandboxError as err:
            if self.config.on_sandbox_error == "raise":
                raise
            log.warning("sandbox error recorded as a failed call: %s", err)
            self._close_session()
            return ExecResult(status="sandbox_error", reason=str(err), state_lost=True)

    def _open_session(self) -> Session:
        if self._session is None or self._session.closed:
            self._session = self.sandbox.open()
        return self._session

    def _close_session(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def _count(self, text: str, ids: Sequence[int] | None) -> int:
        if ids is not None:
            return len(ids)
        if self.tokenizer is not None:
            return len(self.tokenizer.encode(text))
        return len(text)

    def _finish(
        self, obs: str, info: dict[str, Any], *, terminated: bool, reason: str
    ) -> tuple[str, float, bool, bool, dict[str, Any]]:
        from thor.rewards import score
        from thor.text.protocol import extract_boxed

        ep = self.episode
        self._done = True
        ep.terminated, ep.truncated, ep.stop_reason = terminated, not terminated, reason
        ep.final_answer = extract_boxed(ep.turns[-1].text) if ep.turns else None
        if ep.final_answer is None:  # the model's own last box, never one printed by its code
            ep.final_answer = extract_boxed(ep.model_text())
        breakdown = score(self.reward_fn, ep)
        ep.rewards, ep.reward = dict(breakdown.terms), breakdown.total
        info.update(
            {
                "reward_terms": dict(breakdown.terms),
                "stop_reason": reason,
                "tokens_used": self._tokens,
                "episode": ep,
            }
        )
        self._close_session()
        return obs, float(breakdown.total), terminated, not terminated, info


def shared_sandbox(spec: SandboxSpec | str | dict[str, Any]) -> Sandbox:
    """The process-wide shared instance of a registered sandbox (if it has one), else a new one."""
    if not isinstance(spec, SandboxSpec):
        spec = SandboxSpec.model_validate(spec)
    shared = getattr(SANDBOXES.entry(spec.name).factory, "shared", None)
    if shared is not None:
        sandbox: Sandbox = shared(spec.config)
        return sandbox
    built: Sandbox = spec.build()
    return built


class MathCoTConfig(TIREnvConfig):
    """Chain of thought without tools: the same episode shape, every turn is the answer."""

    prompt_style: PromptStyle = "cot"
    max_rounds: int = Field(0, ge=0)


ENVS.register(
    "thor/MathTIR-v0",
    config=TIREnvConfig,
    factory=TIREnv,
    description="Tool-integrated math reasoning on MATH train problems (THOR-SPEC section 0)",
)
ENVS.register(
    "thor/MathCoT-v0",
    config=MathCoTConfig,
    factory=TIREnv,
    description="The same problems without tools (chain of thought)",
)
