"""The batched rollout engine: many episodes at once, generation batched across episodes.

Episodes in flight are split into cohorts that alternate: while one cohort's turns are being
generated, the code of another cohort's turns runs in the sandbox (and its rewards are verified) on
worker threads. Cohort membership and every generation batch depend only on the task order and the
seed, so a run is reproducible: same policy, tasks and seed give the same episodes.

The engine drives any env that offers :class:`~thor.agents.env.AgentEnv` (built from an ``ENVS``
id with its config, or by a factory you pass) with any registered :class:`~thor.agents.base.Agent`;
it never looks at the agent's or the env's name. Step-level RL asks :meth:`RolloutEngine.rollout`
to keep *failure snapshots*: a fork of the env taken just before each failed tool call, owned by
the returned :class:`Rollout` and closed with it.

Example:
    >>> from thor.agents import RolloutConfig, RolloutEngine  # doctest: +SKIP
    >>> engine = RolloutEngine(policy, RolloutConfig(agent="thor"))  # doctest: +SKIP
    >>> episodes = engine.run(problems, seed=0)  # doctest: +SKIP
    >>> with engine.rollout(problems, seed=0, keep_snapshots=True) as r:  # doctest: +SKIP
    ...     env = r.snapshot(r.episodes[0].id, 1)  # the env before turn 1's failed call
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

from thor.agents.backtrack import TurnPrefix
from thor.agents.base import Agent, EpisodeState, StepOutcome
from thor.agents.config import RolloutConfig
from thor.agents.env import AgentEnv, EnvFactory, env_factory
from thor.envs.sandbox.base import Sandbox
from thor.registries import EnvSpec
from thor.text.protocol import StopRule
from thor.types import DiscardedAttempt, Episode, Problem, SamplingParams, Turn, failed

if TYPE_CHECKING:
    from thor.agents.backends.base import Policy

__all__ = ["Rollout", "RolloutEngine", "RolloutStats", "RolloutTask"]

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
class _Cohort:
    slots: list[EpisodeState] = field(default_factory=list)
    pending: list[tuple[EpisodeState, Future[None]]] = field(default_factory=list)


class Rollout:
    """The episodes of one run and, when asked for, their failure snapshots.

    A snapshot is a fork of an episode's env taken just before a tool call that failed (for a
    call that self-correction discarded, too): the interpreter state step-level RL branches from.
    The rollout owns them; :meth:`close` (or leaving a ``with`` block) closes every one. Keys are
    ``(episode id, turn index)``, the ``turn_index`` of :class:`~thor.algos.step_level.BranchPoint`.
    """

    def __init__(self, episodes: list[Episode], snapshots: dict[tuple[str, int], AgentEnv]) -> None:
        self.episodes = episodes
        self.snapshots = snapshots

    def snapshot(self, episode_id: str, turn_index: int) -> AgentEnv | None:
        """The env before turn ``turn_index``'s failed call of ``episode_id``, if one was kept."""
        return self.snapshots.get((episode_id, turn_index))

    def close(self) -> None:
        """Close every snapshot (their sandbox sessions)."""
        snaps, self.snapshots = self.snapshots, {}
        for env in snaps.values():
            env.close()

    def __enter__(self) -> Rollout:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RolloutEngine:
    """Runs episodes of one agent over one kind of env with one policy.

    Args:
        policy: a :class:`~thor.agents.backends.base.Policy` (HF, vLLM, OpenAI-compatible...).
        config: the agent (by name, with its config), the env (by id, with its config) and the
            engine's batching.
        env: an env factory (a zero-argument callable returning an :class:`AgentEnv`), or an env
            spec; overrides ``config.env``.
        agent: an agent object; overrides ``config.agent``.
        sandbox: the sandbox envs open sessions in (default: the env's own choice).
        reward_fn: the episode reward (default: the env's).
    """

    def __init__(
        self,
        policy: Policy,
        config: RolloutConfig | None = None,
        *,
        env: EnvFactory | EnvSpec | dict[str, Any] | str | None = None,
        agent: Agent | None = None,
        sandbox: Sandbox | None = None,
        reward_fn: Callable[[Episode], float] | None = None,
    ) -> None:
        self.policy = policy
        self.config = config or RolloutConfig()
        self.agent: Agent = agent if agent is not None else self.config.agent.build()
        self.stats = RolloutStats()
        self._stats_lock = threading.Lock()
        runtime: dict[str, Any] = {"tokenizer": policy}
        if sandbox is not None:
            runtime["sandbox"] = sandbox
        if reward_fn is not None:
            runtime["reward_fn"] = reward_fn
        self._make_env = env_factory(
            env if env is not None else self.config.env_spec(self.agent), **runtime
        )
        self._pool = ThreadPoolExecutor(
            max_workers=self.config.exec_workers, thread_name_prefix="thor-rollout"
        )

    # -- public ---------------------------------------------------------------------------------
    def run(
        self,
        tasks: Iterable[RolloutTask | Problem],
        *,
        seed: int = 0,
        on_episode: Callable[[Episode], None] | None = None,
    ) -> list[Episode]:
        """Run every task; returns the episodes in task order (``on_episode`` sees them as they end)."""
        with self.rollout(tasks, seed=seed, on_episode=on_episode) as done:
            return done.episodes

    def rollout(
        self,
        tasks: Iterable[RolloutTask | Problem],
        *,
        seed: int = 0,
        on_episode: Callable[[Episode], None] | None = None,
        keep_snapshots: bool = False,
    ) -> Rollout:
        """Like :meth:`run`, returning a :class:`Rollout` that also holds the failure snapshots."""
        queue = deque(t if isinstance(t, RolloutTask) else RolloutTask(problem=t) for t in tasks)
        order = {t.episode_id: i for i, t in enumerate(queue)}
        if len(order) != len(queue):
            raise ValueError("tasks must be unique (problem id, sample) pairs")
        ctx = _Calls(self, keep_snapshots)
        results: dict[str, Episode] = {}
        cohorts = [_Cohort() for _ in range(self.config.cohorts)]
        capacity = max(1, self.config.batch_size // len(cohorts))
        wave = 0
        finished = False
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
                        self._generate_and_submit(cohort, ctx, seed, wave)
                        wave += 1
            finished = True
        finally:
            if not finished:  # an interrupted rollout returns nothing: close what it kept
                ctx.close()
            for cohort in cohorts:
                for slot in cohort.slots:
                    slot.env.close()
        episodes = sorted(results.values(), key=lambda e: order[e.id])
        return Rollout(episodes, ctx.snapshots)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __enter__(self) -> RolloutEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- episode life cycle ----------------------------------------------------------------------
    def _start(self, task: RolloutTask) -> EpisodeState:
        env = self._make_env()
        p = task.problem
        _, info = env.reset(
            options={
                "problem": p.problem,
                "answer": p.answer,
                "id": task.episode_id,
                "metadata": {
                    "problem_id": p.id,
                    "sample": task.sample,
                    **self.agent.metadata(),
                    "source": p.source,
                },
            }
        )
        prompt = self.policy.apply_chat_template(info["messages"])
        ids = self.policy.encode(prompt)
        env.episode.prompt, env.episode.prompt_token_ids = prompt, ids
        return EpisodeState(
            episode_id=task.episode_id,
            problem=p,
            sample=task.sample,
            env=env,
            context_ids=list(ids),
        )

    def _generate_and_submit(self, cohort: _Cohort, ctx: _Calls, seed: int, wave: int) -> None:
        groups: dict[tuple[float, StopRule], list[EpisodeState]] = {}
        for slot in cohort.slots:
            rule = slot.env.stop_rule() if self.agent.uses_tools else StopRule()
            groups.setdefault((self.agent.temperature(slot), rule), []).append(slot)
        ordered = sorted(groups.items(), key=lambda kv: (kv[0][0], repr(kv[0][1])))
        for j, ((temp, rule), slots) in enumerate(ordered):
            params = self._params(slots, temp, rule, seed=seed * 1_000_003 + wave * 7 + j)
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
                cohort.pending.append((slot, self._pool.submit(self._step, slot, turn, ctx)))

    def _params(
        self, slots: Sequence[EpisodeState], temperature: float, rule: StopRule, *, seed: int
    ) -> SamplingParams:
        a = self.agent.config
        left = max(s.env.tokens_left - (len(s.prefix.token_ids) if s.prefix else 0) for s in slots)
        max_tokens = max(1, min(left, a.max_turn_tokens or left))
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=a.top_p,
            top_k=a.top_k,
            seed=seed,
            stop=list(rule.stop),
            stop_at_code_close=rule.code_close,
        )

    def _collect(self, cohort: _Cohort) -> list[Episode]:
        finished: list[Episode] = []
        for slot, fut in cohort.pending:
            try:
                fut.result()
            except Exception as err:  # one broken episode is recorded, the run goes on
                log.warning("episode %s failed: %s", slot.episode_id, err)
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
    def _step(self, slot: EpisodeState, turn: Turn, ctx: _Calls) -> None:
        t0 = time.perf_counter()
        try:
            if self.agent.uses_tools and slot.env.will_call(turn.text):
                self.agent.on_call(slot, turn, ctx)
            else:
                self.agent.on_answer(slot, turn, ctx)
        finally:
            with self._stats_lock:
                self.stats.execute_s += time.perf_counter() - t0


class _Calls:
    """The engine's services to its agent during one rollout (see ``thor.agents.base.CallContext``)."""

    def __init__(self, engine: RolloutEngine, keep_snapshots: bool) -> None:
        self.keep_snapshots = keep_snapshots
        self.snapshots: dict[tuple[str, int], AgentEnv] = {}
        self._decode = engine.policy.decode
        self._lock = threading.Lock()

    def decode(self, ids: Sequence[int]) -> str:
        return self._decode(ids)

    def act(self, state: EpisodeState, turn: Turn) -> StepOutcome:
        env = state.env
        turn_index = len(env.episode.turns)
        snapshot = env.fork() if self.keep_snapshots and env.will_call(turn.text) else None
        outcome = _outcome(env.act(turn))
        state.done, state.pending_obs = outcome.ended, outcome.observation
        if snapshot is not None:
            kept = failed(outcome.info.get("exec")) and self._store(
                state.episode_id, turn_index, snapshot
            )
            if not kept:
                snapshot.close()
        return outcome

    def act_on_fork(self, state: EpisodeState, turn: Turn) -> tuple[AgentEnv, StepOutcome]:
        branch = state.env.fork()
        return branch, _outcome(branch.act(turn))

    def adopt(self, state: EpisodeState, branch: AgentEnv, outcome: StepOutcome) -> None:
        state.env.close()
        state.env = branch
        state.done, state.pending_obs = outcome.ended, outcome.observation

    def keep_snapshot(self, state: EpisodeState, turn_index: int) -> None:
        if not self.keep_snapshots:
            return
        with self._lock:
            if (state.episode_id, turn_index) in self.snapshots:
                return
        snapshot = state.env.fork()
        if not self._store(state.episode_id, turn_index, snapshot):
            snapshot.close()

    def discard(self, state: EpisodeState, turn: Turn, prefix: TurnPrefix | None) -> None:
        ep = state.env.episode
        ep.discarded.append(
            DiscardedAttempt(
                turn_index=len(ep.turns),
                turn=turn,
                kept_text=prefix.text if prefix else "",
                kept_tokens=len(prefix.token_ids) if prefix else 0,
                retry=state.retries,
            )
        )
        state.prefix = prefix

    def close(self) -> None:
        snaps, self.snapshots = self.snapshots, {}
        for env in snaps.values():
            env.close()

    def _store(self, episode_id: str, turn_index: int, snapshot: AgentEnv) -> bool:
        with self._lock:
            if (episode_id, turn_index) in self.snapshots:
                return False
            self.snapshots[(episode_id, turn_index)] = snapshot
            return True


def _outcome(step: tuple[str, float, bool, bool, dict[str, Any]]) -> StepOutcome:
    obs, _, term, trunc, info = step
    return StepOutcome(observation=obs, terminated=term, truncated=trunc, info=info)


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
