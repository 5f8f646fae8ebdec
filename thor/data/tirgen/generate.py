"""The actor-critic loop of TIRGen: many problems at once, the actor's steps batched across them.

Each round, every problem in flight asks the actor for its next step (one ``generate`` call for
all of them, at most ``step_tokens`` tokens each). A step that stopped at the token limit is cut
back to its last newline (the rest is regenerated next round). A step of at least
``min_critic_tokens`` (default: half of ``step_tokens``) tokens goes to the critic (one ``rewrite_batch`` call for all such steps, when the
critic has one); shorter steps, and steps in which the actor wrote a code fence itself, are kept
as they are. Each block of a rewrite runs in the attempt's own sandbox session (persistent across
its blocks); the real output replaces whatever the critic predicted; a failing block abandons the
attempt. The rewritten step replaces the actor's and the actor continues from it. A finished
attempt is judged by the per-sample filters; a problem stops at its first accepted attempt or after
``attempts`` tries, and is reported once (``on_problem``).
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from thor.data.tirgen.config import TirgenConfig
from thor.data.tirgen.critic import Critic, CriticResult, rewrite_steps, visible_text
from thor.data.tirgen.text import (
    Part,
    Piece,
    code_piece,
    join_pieces,
    model_spans,
    output_piece,
    snap_window,
)
from thor.errors import SandboxError
from thor.text.prompts import COT_SYSTEM
from thor.types import ExecResult, ExecStatus, Problem, SamplingParams, failed

if TYPE_CHECKING:
    from thor.agents.backends.base import Policy
    from thor.envs.sandbox.base import Sandbox, Session

__all__ = ["AttemptResult", "Execution", "ProblemOutcome", "TirGenerator"]

log = logging.getLogger(__name__)

Judge = Callable[[Problem, "AttemptResult"], tuple[str, str]]
"""Per-sample filters: ``("", "")`` when an attempt is accepted, else ``(stage, reason)``."""


class Execution(BaseModel):
    """One critic block run in the sandbox."""

    model_config = ConfigDict(extra="forbid")

    step: int
    code: str
    status: ExecStatus
    output: str = Field(description="The observation inserted after the block")
    reason: str = ""
    duration_s: float = 0.0
    ok: bool = True


class AttemptResult(BaseModel):
    """One attempt at one problem: the TIR pieces it built and how it ended."""

    model_config = ConfigDict(extra="forbid")

    problem_id: str
    attempt: int
    outcome: Literal["accepted", "rejected", "abandoned"] = "abandoned"
    stage: str = Field("", description="Where it was dropped: generation or a filter stage")
    reason: str = ""
    pieces: list[Piece] = Field(default_factory=list)
    executions: list[Execution] = Field(default_factory=list)
    steps: int = 0
    actor_tokens: int = 0
    events: dict[str, int] = Field(default_factory=dict)
    started: float = 0.0
    elapsed_s: float = 0.0

    @property
    def text(self) -> str:
        return join_pieces(self.pieces)

    @property
    def spans(self) -> list[tuple[int, int]]:
        return model_spans(self.pieces)

    @property
    def num_calls(self) -> int:
        return sum(p.kind == "code" for p in self.pieces)

    def summary(self) -> dict[str, Any]:
        """The attempt without its text (what the record of a problem keeps of every attempt)."""
        return {
            "attempt": self.attempt,
            "outcome": self.outcome,
            "stage": self.stage,
            "reason": self.reason,
            "calls": self.num_calls,
            "steps": self.steps,
            "actor_tokens": self.actor_tokens,
            "elapsed_s": round(self.elapsed_s, 3),
            "events": self.events,
        }


class ProblemOutcome(BaseModel):
    """Every attempt at one problem; ``accepted`` is the one kept (at most one per problem)."""

    model_config = ConfigDict(extra="forbid")

    problem: Problem
    attempts: list[AttemptResult]
    accepted: AttemptResult | None = None


@dataclass
class _Slot:
    problem: Problem
    prompt: str
    attempt: int = 0
    pieces: list[Piece] = field(default_factory=list)
    executions: list[Execution] = field(default_factory=list)
    events: Counter[str] = field(default_factory=Counter)
    session: Session | None = None
    steps: int = 0
    tokens: int = 0
    generated: int = 0
    started: float = field(default_factory=time.time)
    history: list[AttemptResult] = field(default_factory=list)
    # (stage, reason) once the attempt is over; ("", "") when it completed
    end: tuple[str, str] | None = None
    window: str = ""
    final: bool = False

    @property
    def response(self) -> str:
        return join_pieces(self.pieces)


class TirGenerator:
    """Runs the actor-critic loop over problems.

    Args:
        actor: the policy that writes solutions (any backend).
        critic: the critic that inserts code (:class:`~thor.data.tirgen.critic.Critic`).
        config: the run's settings (resolved: presets filled).
        sandbox: where code runs (default: the shared sandbox of ``config.sandbox``).
        judge: the per-sample filters (default: accept every complete attempt).
    """

    def __init__(
        self,
        actor: Policy,
        critic: Critic,
        config: TirgenConfig,
        *,
        sandbox: Sandbox | None = None,
        judge: Judge | None = None,
    ) -> None:
        self.actor = actor
        self.critic = critic
        self.config = config.resolved()
        self._sandbox = sandbox
        self._judge = judge or (lambda _p, _a: ("", ""))
        self._pool = ThreadPoolExecutor(self.config.exec_workers, thread_name_prefix="thor-tirgen")
        self._round = 0

    # -- public ---------------------------------------------------------------------------------
    def run(
        self, problems: Iterable[Problem], on_problem: Callable[[ProblemOutcome], None]
    ) -> None:
        """Process every problem; ``on_problem`` receives each one's outcome as soon as it is done."""
        queue = deque(problems)
        slots: list[_Slot] = []
        try:
            while queue or slots:
                while queue and len(slots) < self.config.concurrency:
                    slots.append(self._start(queue.popleft()))
                self._round_of_steps(slots)
                still: list[_Slot] = []
                for slot in slots:
                    outcome = self._after_step(slot)
                    if outcome is None:
                        still.append(slot)
                    else:
                        on_problem(outcome)
                slots = still
        finally:
            for slot in slots:
                self._close_session(slot)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __enter__(self) -> TirGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one round: actor, critic, execution ------------------------------------------------------
    def _start(self, problem: Problem) -> _Slot:
        messages = [
            {"role": "system", "content": self.config.system_prompt or COT_SYSTEM},
            {"role": "user", "content": problem.problem},
        ]
        return _Slot(problem=problem, prompt=self.actor.apply_chat_template(messages))

    def _round_of_steps(self, slots: Sequence[_Slot]) -> None:
        cfg = self.config
        params = SamplingParams(
            max_tokens=int(cfg.step_tokens or 512),
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            seed=cfg.seed * 1_000_003 + self._round,
        )
        self._round += 1
        completions = self.actor.generate([s.prompt + s.response for s in slots], params)
        if len(completions) != len(slots):
            raise RuntimeError(
                f"the actor returned {len(completions)} completions for {len(slots)} prompts"
            )
        to_critic: list[_Slot] = []
        for slot, comp in zip(slots, completions, strict=True):
            slot.final = comp.finish_reason != "length"
            slot.window = comp.text if slot.final else snap_window(comp.text)
            n_tokens = (
                len(comp.token_ids)
                if slot.window == comp.text
                else len(self.actor.encode(slot.window))
            )
            slot.steps += 1
            slot.tokens += n_tokens
            slot.generated += len(comp.token_ids)
            slot.events["steps"] += 1
            if "```" in slot.window:
                slot.events["steps_actor_fence"] += 1
            elif n_tokens < _min_critic_tokens(cfg) or not slot.window.strip():
                slot.events["steps_short"] += 1
            else:
                to_critic.append(slot)
        results = rewrite_steps(self.critic, [s.window for s in to_critic])
        by_slot = {id(s): r for s, r in zip(to_critic, results, strict=True)}
        futures = [self._pool.submit(self._apply, s, by_slot.get(id(s))) for s in slots]
        for fut in futures:
            fut.result()

    def _apply(self, slot: _Slot, result: CriticResult | None) -> None:
        """Put the step (rewritten when the critic inserted code) into the attempt; run its blocks."""
        if result is None or result.status != "code":
            if result is not None:
                slot.events[f"critic_{result.status}"] += 1
                for note in result.notes:
                    slot.events[f"critic_repair_{note}"] += 1
            slot.pieces.append(Piece(kind="text", text=visible_text(self.critic, slot.window)))
            return
        slot.events["critic_code"] += 1
        for note in result.notes:
            slot.events[f"critic_repair_{note}"] += 1
        parts = self._limit_blocks(slot, result.parts)
        pieces: list[Piece] = []
        for part in parts:
            if part.kind == "text":
                text = part.text
                if pieces and pieces[-1].kind == "output":
                    text = re.sub(r"^[ \t]*\n?", "", text)
                if text:
                    pieces.append(Piece(kind="text", text=text))
                continue
            before = join_pieces(pieces) if pieces else slot.response
            if before and not before.endswith("\n"):
                pieces.append(Piece(kind="text", text="\n"))
            execution = self._execute(slot, part.text)
            pieces.append(code_piece(part.text))
            pieces.append(Piece(kind="output", text=execution.output))
            if not execution.ok:
                slot.pieces += pieces
                reason = f"exec_{execution.status}"
                if execution.status in ("ok", "sandbox_error"):
                    reason = "exec_no_output" if execution.status == "ok" else "sandbox_error"
                slot.end = ("generation", reason)
                return
        if slot.window.endswith("\n") and not join_pieces(pieces).endswith("\n"):
            pieces.append(Piece(kind="text", text="\n"))
        slot.pieces += pieces
        slot.events["steps_rewritten"] += 1

    def _limit_blocks(self, slot: _Slot, parts: Sequence[Part]) -> list[Part]:
        out: list[Part] = []
        blocks = 0
        for p in parts:
            if p.kind == "code":
                blocks += 1
                if blocks > self.config.max_exec_per_step:
                    slot.events["blocks_over_limit"] += 1
                    continue
            out.append(p)
        return out

    def _execute(self, slot: _Slot, code: str) -> Execution:
        slot.events["blocks_run"] += 1
        t0 = time.perf_counter()
        try:
            if slot.session is None or slot.session.closed:
                slot.session = self._get_sandbox().open()
            result = slot.session.run(code, timeout_s=self.config.cell_timeout_s)
        except SandboxError as err:
            log.warning("sandbox error in %s: %s", slot.problem.id, err)
            result = ExecResult(status="sandbox_error", reason=str(err), state_lost=True)
            self._close_session(slot)
        bad = failed(result)
        if bad:
            slot.events[f"blocks_failed_{result.status}"] += 1
        execution = Execution(
            step=slot.steps,
            code=code,
            status=result.status,
            output=output_piece(result).text,
            reason=result.reason,
            duration_s=round(time.perf_counter() - t0, 4),
            ok=not bad,
        )
        slot.executions.append(execution)
        return execution

    # -- end of a step, an attempt, a problem ----------------------------------------------------
    def _after_step(self, slot: _Slot) -> ProblemOutcome | None:
        cfg = self.config
        if slot.end is None and slot.final:
            slot.end = ("", "")
        budget = cfg.max_response_tokens or 4096
        if slot.end is None and (slot.tokens >= budget or slot.generated >= 2 * budget):
            slot.end = ("generation", "actor_no_end")
        if slot.end is None:
            return None
        self._close_session(slot)
        attempt = AttemptResult(
            problem_id=slot.problem.id,
            attempt=slot.attempt,
            pieces=list(slot.pieces),
            executions=list(slot.executions),
            steps=slot.steps,
            actor_tokens=slot.tokens,
            events=dict(slot.events),
            started=slot.started,
            elapsed_s=time.time() - slot.started,
        )
        stage, reason = slot.end
        if stage:
            attempt.outcome, attempt.stage, attempt.reason = "abandoned", stage, reason
        else:
            stage, reason = self._judge(slot.problem, attempt)
            attempt.outcome = "rejected" if stage else "accepted"
            attempt.stage, attempt.reason = stage, reason
        slot.history.append(attempt)
        if attempt.outcome == "accepted" or slot.attempt + 1 >= (cfg.attempts or 8):
            accepted = attempt if attempt.outcome == "accepted" else None
            return ProblemOutcome(problem=slot.problem, attempts=slot.history, accepted=accepted)
        self._reset(slot)
        return None

    def _reset(self, slot: _Slot) -> None:
        slot.attempt += 1
        slot.pieces, slot.executions, slot.events = [], [], Counter()
        slot.steps = slot.tokens = slot.generated = 0
        slot.started = time.time()
        slot.end, slot.window, slot.final = None, "", False

    def _close_session(self, slot: _Slot) -> None:
        if slot.session is not None:
            try:
                slot.session.close()
            except SandboxError as err:  # a session that died with the code it ran: nothing to free
                log.debug("closing a session of %s: %s", slot.problem.id, err)
            slot.session = None

    def _get_sandbox(self) -> Sandbox:
        if self._sandbox is None:
            from thor.envs.tir import shared_sandbox

            self._sandbox = shared_sandbox(self.config.sandbox)
        return self._sandbox


def _min_critic_tokens(cfg: TirgenConfig) -> float:
    """Steps shorter than this are kept as written (the paper: half of ``L_step``)."""
    if cfg.min_critic_tokens is not None:
        return cfg.min_critic_tokens
    return (cfg.step_tokens or 512) / 2
