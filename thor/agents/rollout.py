"""The batched rollout engine: many episodes at once, generation batched across episodes.

Episodes in flight are split into cohorts that alternate: while one cohort's turns are being
generated, the code of another cohort's turns runs in the sandbox (and its rewards are verified) on
worker threads. Cohort membership and every generation batch depend only on the task order and the
seed, so a run is reproducible: same policy, tasks and seed give the same episodes.

Example:
    >>> from thor.agents import RolloutConfig, RolloutEngine  # doctest: +SKIP
    >>> engine = RolloutEngine(policy, RolloutConfig(agent="thor"))  # doctest: +SKIP
    >>> episodes = engine.run(problems, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from thor.agents.backtrack import TurnPrefix, cut_before_call
from thor.agents.config import RolloutConfig
from thor.envs.sandbox.base import Sandbox
from thor.envs.tir import TIREnv, TIREnvConfig, shared_sandbox
from thor.types import DiscardedAttempt, Episode, Problem, SamplingParams, Turn, failed

if TYPE_CHECKING:
    from thor.agents.backends.base import Policy

__all__ = ["RolloutEngine", "RolloutStats", "RolloutTask"]

log = logging.getLogger(__name__)


class RolloutTask(BaseModel):
    """One episode to run: a problem and which sample of it (for Avg@k and groups)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    problem: Problem
    sample: int = 0

    @property
    def episode_id(self) -> str:
        return f"{self.problem.id}#{self.sample}"


@dataclass
class RolloutStats:
    """Where the time went, summed over a run (execution overlaps generation)."""

    episodes: int = 0
    generate_s: float = 0.0
    execute_s: float = 0.0
    tokens_generated: int = 0
    generate_calls: int = 0

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.__dict__.items() if not k.startswith("_")}


@dataclass
class _Slot:
    task: RolloutTask
    env: TIREnv
    context_ids: list[int]
    prefix: TurnPrefix | None = None
    retries: int = 0
    attempts: int = 0
    done: bool = False
    pending_obs: str = ""


@dataclass
class _Cohort:
    slots: list[_Slot] = field(default_factory=list)
    pending: list[tuple[_Slot, Future[None]]] = field(default_factory=list)


class RolloutEngine:
    """Runs episodes of one agent with one policy.

    Args:
        policy: a :class:`~thor.agents.backends.base.Policy` (HF, vLLM, OpenAI-compatible...).
        config: the agent, its sampling and the engine's batching.
        sandbox: the sandbox sessions come from (default: the shared one of ``config.sandbox``).
        reward_fn: the episode reward (default: ``config.reward``).
    """

    def __init__(
        self,
        policy: Policy,
        config: RolloutConfig | None = None,
        *,
        sandbox: Sandbox | None = None,
        reward_fn: Callable[[Episode], float] | None = None,
    ) -> None:
        self.policy = policy
        self.config = config or RolloutConfig()
        self.stats = RolloutStats()
        self._stats_lock = threading.Lock()
        c = self.config
        self._env_config = TIREnvConfig(
            prompt_style=c.style,
            system_prompt=c.system_prompt,
            max_rounds=0 if c.agent == "cot" else c.max_rounds,
            max_response_tokens=c.max_response_tokens,
            cell_timeout_s=c.cell_timeout_s,
            reward=c.reward,
            sandbox=c.sandbox,
            sandbox_config=c.sandbox_config,
            on_sandbox_error="record",
        )
        self._sandbox = sandbox
        if reward_fn is None:
            from thor.rewards import resolve_reward

            reward_fn = resolve_reward(c.reward)
        self._reward_fn = reward_fn
        self._pool = ThreadPoolExecutor(
            max_workers=c.exec_workers, thread_name_prefix="thor-rollout"
        )
        self.snapshots: dict[tuple[str, int], TIREnv] = {}
        """With ``keep_failure_snapshots``: (episode id, turn index) -> a fork of the env taken just
        before that turn's failed call. The caller owns them: see :meth:`close_snapshots`."""

    # -- public ---------------------------------------------------------------------------------
    def run(
        self,
        tasks: Iterable[RolloutTask | Problem],
        *,
        seed: int = 0,
        on_episode: Callable[[Episode], None] | None = None,
    ) -> list[Episode]:
        """Run every task; returns the episodes in task order (``on_episode`` sees them as they end)."""
        queue = deque(t if isinstance(t, RolloutTask) else RolloutTask(problem=t) for t in tasks)
        order = {t.episode_id: i for i, t in enumerate(queue)}
        if len(order) != len(queue):
            raise ValueError("tasks must be unique (problem id, sample) pairs")
        results: dict[str, Episode] = {}
        cohorts = [_Cohort() for _ in range(self.config.cohorts)]
        capacity = max(1, self.config.batch_size // len(cohorts))
        wave = 0
        try:
            while queue or any(c.slots for c in cohorts):
                for cohort in cohorts:
                    for ep in self._collect(cohort):
                        results[ep.id] = ep
                        if on_episode is not None:
                            on_episode(ep)
                    while queue and len(cohort.slots) < capacity:
                        cohort.slots.append(self._start(queue.popleft()))
                    if cohort.slots:
                        self._generate_and_submit(cohort, seed, wave)
                        wave += 1
        finally:
            for cohort in cohorts:
                for slot in cohort.slots:
                    slot.env.close()
        return sorted(results.values(), key=lambda e: order[e.id])

    def close_snapshots(self) -> None:
        """Close every kept snapshot (their sandbox sessions)."""
        snaps, self.snapshots = self.snapshots, {}
        for env in snaps.values():
            env.close()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.close_snapshots()

    def __enter__(self) -> RolloutEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- episode life cycle ----------------------------------------------------------------------
    def _start(self, task: RolloutTask) -> _Slot:
        if self._sandbox is None:
            self._sandbox = shared_sandbox(
                self._env_config.sandbox, self._env_config.sandbox_config
            )
        env = TIREnv(
            self._env_config,
            sandbox=self._sandbox,
            tokenizer=self.policy,
            reward_fn=self._reward_fn,
        )
        p = task.problem
        _, info = env.reset(
            options={
                "problem": p.problem,
                "answer": p.answer,
                "id": task.episode_id,
                "metadata": {
                    "problem_id": p.id,
                    "sample": task.sample,
                    "agent": self.config.agent,
                    "source": p.source,
                },
            }
        )
        prompt = self.policy.apply_chat_template(info["messages"])
        ids = self.policy.encode(prompt)
        env.episode.prompt, env.episode.prompt_token_ids = prompt, ids
        return _Slot(task=task, env=env, context_ids=list(ids))

    def _generate_and_submit(self, cohort: _Cohort, seed: int, wave: int) -> None:
        groups: dict[float, list[_Slot]] = {}
        for slot in cohort.slots:
            temp = (
                self.config.retry_temperature
                if slot.prefix is not None
                else self.config.temperature
            )
            groups.setdefault(temp, []).append(slot)
        for j, (temp, slots) in enumerate(sorted(groups.items())):
            params = self._params(slots, temp, seed=seed * 1_000_003 + wave * 7 + j)
            prompts = [s.context_ids + (s.prefix.token_ids if s.prefix else []) for s in slots]
            t0 = time.perf_counter()
            completions = self.policy.generate(prompts, params)
            self.stats.generate_s += time.perf_counter() - t0
            self.stats.generate_calls += 1
            if len(completions) != len(slots):
                raise RuntimeError(
                    f"policy returned {len(completions)} completions for {len(slots)} prompts"
                )
            for slot, comp in zip(slots, completions, strict=True):
                self.stats.tokens_generated += len(comp.token_ids)
                turn = _join(slot.prefix, comp)
                slot.prefix = None
                cohort.pending.append((slot, self._pool.submit(self._step, slot, turn)))

    def _params(self, slots: Sequence[_Slot], temperature: float, *, seed: int) -> SamplingParams:
        c = self.config
        left = max(
            c.max_response_tokens - s.env.tokens_used - (len(s.prefix.token_ids) if s.prefix else 0)
            for s in slots
        )
        max_tokens = max(1, min(left, c.max_turn_tokens or left))
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=c.top_p,
            top_k=c.top_k,
            seed=seed,
            stop_at_code_close=c.agent != "cot",
        )

    def _collect(self, cohort: _Cohort) -> list[Episode]:
        finished: list[Episode] = []
        for slot, fut in cohort.pending:
            try:
                fut.result()
            except Exception as err:  # one broken episode is recorded, the run goes on
                log.warning("episode %s failed: %s", slot.task.episode_id, err)
                ep = slot.env.episode
                ep.truncated, ep.stop_reason = True, f"error: {type(err).__name__}: {err}"
                slot.done = True
            if slot.pending_obs:
                # the observation's tokens, also when the budget ended the episode right after a
                # tool call: the episode's token sequence must cover all of its text
                last = slot.env.episode.turns[-1]
                obs_ids = self.policy.encode(slot.pending_obs)
                slot.env.episode.turns[-1] = last.model_copy(
                    update={"observation_token_ids": obs_ids}
                )
                slot.context_ids += list(last.token_ids or []) + obs_ids
                slot.pending_obs = ""
            if slot.done:
                finished.append(slot.env.episode)
                slot.env.close()
                self.stats.episodes += 1
        cohort.pending = []
        cohort.slots = [s for s in cohort.slots if not s.done]
        return finished

    # -- one step (runs on a worker thread) ------------------------------------------------------
    def _step(self, slot: _Slot, turn: Turn) -> None:
        t0 = time.perf_counter()
        try:
            env = slot.env
            call = env.tool.find_call(turn.text) if env.config.max_rounds > 0 else None
            can_call = call is not None and env.rounds_used < env.config.max_rounds
            if can_call and self.config.agent == "thor":
                self._step_with_correction(slot, turn)
                return
            snapshot = env.fork() if can_call and self.config.keep_failure_snapshots else None
            turn_index = len(env.episode.turns)
            obs, _, term, trunc, info = env.act(turn)
            slot.done, slot.pending_obs = term or trunc, obs
            if snapshot is not None:
                if failed(info.get("exec")):
                    with self._stats_lock:
                        self.snapshots[(slot.task.episode_id, turn_index)] = snapshot
                else:
                    snapshot.close()
        finally:
            with self._stats_lock:
                self.stats.execute_s += time.perf_counter() - t0

    def _step_with_correction(self, slot: _Slot, turn: Turn) -> None:
        """THOR self-correction: run the call on a fork; on failure discard it and back up."""
        slot.attempts += 1
        branch = slot.env.fork()
        obs, _, term, trunc, info = branch.act(turn)
        result = info.get("exec")
        retry = (
            result is not None
            and failed(result)
            and not (term or trunc)
            and slot.retries < self.config.max_retries
            and slot.attempts < self.config.max_interactions
        )
        if retry:
            kept = branch.episode.turns[-1]
            branch.close()
            slot.retries += 1
            slot.prefix = cut_before_call(kept, self.config.backtrack_tokens, self.policy.decode)
            ep = slot.env.episode
            ep.discarded.append(
                DiscardedAttempt(
                    turn_index=len(ep.turns),
                    turn=kept,
                    kept_text=slot.prefix.text,
                    kept_tokens=len(slot.prefix.token_ids),
                    retry=slot.retries,
                )
            )
            return
        slot.env.close()
        slot.env = branch
        slot.retries = 0  # a success, or a failure kept after the last retry, resets the counter
        slot.done, slot.pending_obs = term or trunc, obs


def _join(prefix: TurnPrefix | None, comp: Any) -> Turn:
    """The turn made of a kept prefix (after a backtrack) and a new completion."""
    reason = comp.finish_reason
    if prefix is None:
        return Turn(
            text=comp.text,
            token_ids=list(comp.token_ids),
            logprobs=comp.logprobs,
            finish_reason=reason,
        )
    lps = None
    if prefix.logprobs is not None and comp.logprobs is not None:
        lps = prefix.logprobs + list(comp.logprobs)
    ids = prefix.token_ids + list(comp.token_ids)
    return Turn(text=prefix.text + comp.text, token_ids=ids, logprobs=lps, finish_reason=reason)
