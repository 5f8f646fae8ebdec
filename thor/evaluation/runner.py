"""`thor eval` as a Python function: run an agent on a benchmark, resumably, and summarise.

Example:
    >>> from thor.evaluation import EvalConfig, evaluate  # doctest: +SKIP
    >>> summary = evaluate(EvalConfig(benchmark="gsm8k", agent="thor", limit=20, preset="cpu",
    ...                               out="runs/gsm8k-thor.jsonl"))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, field_validator, model_validator

from thor.agents.config import RolloutConfig
from thor.agents.rollout import RolloutEngine, RolloutTask
from thor.config import PresetConfig
from thor.data.loaders import load_problems
from thor.evaluation.metrics import EvalSummary, is_correct, summarize
from thor.evaluation.store import ResultsFile
from thor.progress import ProgressBar, wall_time
from thor.types import Episode, Problem

if TYPE_CHECKING:
    from thor.agents.backends.base import Policy

__all__ = ["PRESETS", "EvalConfig", "default_results_path", "evaluate", "make_policy"]

log = logging.getLogger(__name__)

PRESETS: dict[str, dict[str, Any]] = {
    # THOR-SPEC section 4 (also the defaults): Avg@4 at T = 0.6, top_p = 1.0, 4,096 tokens.
    "paper": {"k": 4, "temperature": 0.6, "top_p": 1.0, "max_response_tokens": 4096},
    # Finishes in minutes on 2 CPU cores with the embedded 135M model. One cohort of 64 episodes:
    # a CPU decode step streams every weight whatever the batch (README: throughput by batch size),
    # and cells take milliseconds, so a second cohort hides little.
    "cpu": {
        "k": 1,
        "temperature": 0.6,
        "top_p": 1.0,
        "max_response_tokens": 512,
        "rollout": {"batch_size": 64, "cohorts": 1},
    },
}


class EvalConfig(PresetConfig):
    """What to evaluate and how; ``preset`` (``paper``, ``cpu``) fills what is not given."""

    presets: ClassVar[dict[str, dict[str, Any]]] = PRESETS

    benchmark: str = Field("math500", description="A shipped benchmark name or a JSONL path")
    agent: str = Field("tir", description="A registered agent: cot, tir, thor, or a plugin's")
    k: int = Field(4, ge=1, description="Samples per problem (Avg@k)")
    limit: int | None = Field(None, ge=1, description="First N problems")
    model: str = Field(
        "embedded", description="Model for the backend: 'embedded', a directory or a file"
    )
    backend: str = Field("hf", description="A registered policy backend: hf, vllm, openai")
    backend_options: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    temperature: float = Field(0.6, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_response_tokens: int = Field(4096, ge=1, description="Response budget per episode")
    rollout: dict[str, Any] = Field(
        default_factory=dict,
        description="Other RolloutConfig fields: agent and env config fields, batching",
    )
    out: Path | None = Field(None, description="Results JSONL (resumed when it exists)")
    progress: bool = True

    @field_validator("agent")
    @classmethod
    def _known_agent(cls, name: str) -> str:
        from thor.errors import UnknownNameError
        from thor.registries import AGENTS

        try:
            AGENTS.entry(name)
        except UnknownNameError as err:
            raise ValueError(str(err)) from None
        return name

    @model_validator(mode="after")
    def _rollout_is_valid(self) -> EvalConfig:
        """The rollout fields are checked now (agent, env, typos), before any model loads."""
        self.resolved()
        return self

    def resolved(self) -> tuple[int, RolloutConfig]:
        """The number of samples and the agent's rollout config."""
        extra = dict(self.rollout)
        agent = extra.pop("agent", {})
        agent = {"name": agent} if isinstance(agent, str) else dict(agent)
        env = extra.pop("env", None)
        if env is None or (isinstance(env, dict) and "name" not in env):
            # the eval protocol's budget and reward apply to the agent's default env
            env = {
                "max_response_tokens": self.max_response_tokens,
                "reward": "correct",
                **(env or {}),
            }
        rollout = RolloutConfig.model_validate(
            {
                "agent": {
                    "name": self.agent,
                    "temperature": self.temperature,
                    "top_p": self.top_p,
                    **agent,
                },
                "env": env,
                **extra,
            }
        )
        return self.k, rollout


def default_results_path(config: EvalConfig, root: Path = Path("runs/eval")) -> Path:
    """Where results go when no ``out`` is given: named by benchmark, agent and a hash of every
    setting, so the same command resumes its own file and another one starts a new file."""
    import hashlib
    import json

    settings = config.model_dump(mode="json", exclude={"out", "progress", "limit"})
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    bench = Path(config.benchmark).stem if config.benchmark.endswith(".jsonl") else config.benchmark
    return root / f"{bench}-{config.agent}-{digest}.jsonl"


def make_policy(backend: str, model: str, options: dict[str, Any] | None = None) -> Policy:
    """Build a registered policy backend for ``model``."""
    from thor.registries import POLICIES

    return POLICIES.make(backend, model=model, **(options or {}))


ENGINE_FIELDS = ("batch_size", "cohorts", "exec_workers")
"""Rollout fields that a resumed evaluation may change (how many episodes are in flight)."""


def _manifest(cfg: EvalConfig, k: int, rollout: RolloutConfig, policy_name: str) -> dict[str, Any]:
    from thor import __version__

    return {
        "thor_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "benchmark": cfg.benchmark,
        "model": cfg.model,
        "policy": policy_name,
        "backend": cfg.backend,
        "backend_options": cfg.backend_options,
        "agent": cfg.agent,
        "k": k,
        "seed": cfg.seed,
        "rollout": rollout.model_dump(mode="json", exclude=set(ENGINE_FIELDS)),
        "engine": rollout.model_dump(mode="json", include=set(ENGINE_FIELDS)),
    }


def _tasks(problems: list[Problem], k: int) -> list[RolloutTask]:
    return [RolloutTask(problem=p, sample=s) for p in problems for s in range(k)]


def evaluate(config: EvalConfig, *, policy: Policy | None = None) -> EvalSummary:
    """Run the agent on the benchmark; resume from ``config.out`` if it holds part of this run.

    Finished episodes are appended to ``config.out`` as they end, so a killed run loses nothing;
    running again continues where it stopped. Resuming with a different configuration is refused
    (``limit`` may change: a larger one extends the run).

    Args:
        config: the evaluation settings.
        policy: a policy object to use instead of building ``config.backend`` / ``config.model``.
    """
    k, rollout = config.resolved()
    problems = load_problems(config.benchmark, limit=config.limit)
    answered = [p for p in problems if p.answer and p.answer.strip()]
    if len(answered) < len(problems):
        missing = [p.id for p in problems if p not in answered]
        log.warning(
            "%d problems have no gold answer and are skipped: %s",
            len(missing),
            ", ".join(missing[:10]),
        )
    store = ResultsFile(config.out) if config.out else None
    if store is not None:
        store.load()
    own_policy = policy is None
    policy = policy or make_policy(config.backend, config.model, config.backend_options)
    manifest = _manifest(config, k, rollout, getattr(policy, "name", type(policy).__name__))
    if store is not None:
        # the engine's knobs change speed, not what is measured: a resume may change them
        store.check_manifest(manifest, ignore=("created", "thor_version", "engine"))
        store.open(manifest)
    done = store.done_ids() if store else set()
    todo = [t for t in _tasks(answered, k) if t.episode_id not in done]
    previous = [
        e
        for e in (store.episodes() if store else [])
        if e.metadata.get("problem_id") in {p.id for p in answered}
    ]
    invocation = uuid.uuid4().hex[:8]
    t0 = time.perf_counter()
    episodes: list[Episode] = list(previous)
    try:
        with (
            RolloutEngine(policy, rollout) as engine,
            ProgressBar(
                "eval",
                len(todo) + len(previous),
                field="acc",
                enabled=config.progress,
                tokens=lambda: engine.stats.tokens_generated,
            ) as bar,
        ):
            correct = [sum(is_correct(ep) for ep in previous), len(previous)]
            for _ in previous:
                bar.advance()

            def record(ep: Episode) -> None:
                episodes.append(ep)
                if store is not None:
                    store.append_episode(
                        ep,
                        correct=is_correct(ep),
                        run=invocation,
                        elapsed_s=time.perf_counter() - t0,
                    )
                correct[0] += is_correct(ep)
                correct[1] += 1
                bar.advance(acc=f"{correct[0] / correct[1]:.1%}")

            engine.run(todo, seed=config.seed, on_episode=record)
    finally:
        if store is not None:
            store.close()
        if own_policy:
            policy.close()
    wall = wall_time(store.records if store else [], (invocation, time.perf_counter() - t0))
    return summarize(episodes, wall_s=wall)
