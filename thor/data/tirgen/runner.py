"""`thor tirgen` as a Python function: build tool-integrated SFT data, resumably.

:func:`run_tirgen` loads the problems, drops those without a gold answer and those the ``cot`` agent
already solves (through :func:`thor.evaluation.evaluate`, so that stage is resumable too), runs the
actor-critic loop (:class:`~thor.data.tirgen.generate.TirGenerator`) with the per-sample filters,
records every processed problem the moment it is done, and finally balances the output by number
of calls and writes it. The output directory holds:

- ``records.jsonl``: one line per processed problem, kept or dropped, with the reason (the truth);
- ``sft.jsonl``: the training rows (:mod:`thor.data.tirgen.output`), rewritten at the end of each
  invocation from the record (atomically);
- ``funnel.json``: the funnel (:class:`~thor.data.tirgen.funnel.Funnel`);
- ``difficulty.jsonl`` and ``difficulty_problems.jsonl``: the CoT evaluation of the difficulty stage.

Kill it at any moment and run it again: it continues, writes no duplicate and loses no finished
problem.

Example:
    >>> from thor.data.tirgen import TirgenConfig, run_tirgen  # doctest: +SKIP
    >>> funnel = run_tirgen(TirgenConfig(problems="synthetic_train", limit=20, preset="cpu",
    ...                                  critic="rule", out="runs/tirgen-demo"))  # doctest: +SKIP
    >>> funnel.samples  # doctest: +SKIP
    3
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thor.data.loaders import load_problems
from thor.data.tirgen.config import TirgenConfig
from thor.data.tirgen.critic import Critic
from thor.data.tirgen.filters import balance_by_calls, check_difficulty, judge_sample
from thor.data.tirgen.funnel import Funnel, build_funnel
from thor.data.tirgen.generate import AttemptResult, ProblemOutcome, TirGenerator
from thor.data.tirgen.output import sft_row, sft_system_message
from thor.data.tirgen.store import TirgenStore
from thor.io.jsonl import write_jsonl_atomic
from thor.progress import ProgressBar, wall_time
from thor.types import Problem

if TYPE_CHECKING:
    from thor.agents.backends.base import Policy
    from thor.envs.sandbox.base import Sandbox
    from thor.rewards.verifier import Verifier

__all__ = ["build_critic", "build_policy", "cot_accuracy", "finalize", "run_tirgen"]

log = logging.getLogger(__name__)


def build_policy(backend: str, model: str, options: dict[str, Any] | None = None) -> Policy:
    """A policy for ``model`` from the registered ``backend`` (``hf`` works before registration)."""
    from thor.registries import POLICIES

    opts = dict(options or {})
    if backend in POLICIES or backend != "hf":
        return POLICIES.make(backend, model=model, **opts)
    from thor.agents.backends.hf import HFPolicy

    return HFPolicy(model=model, **opts)


def build_critic(config: TirgenConfig, actor: Policy | None) -> Critic:
    """The registered critic ``config.critic`` (:data:`thor.registries.CRITICS`) built from
    ``config.critic_options``; a model name is the ``llm`` critic with that model (sharing the
    actor's policy when it names the actor's model, as does an ``llm`` critic without a model)."""
    from thor.data.tirgen.critics import make_critic

    name, options = config.critic_spec()
    if actor is not None and options.get("model") == config.actor:
        options = {k: v for k, v in options.items() if k != "model"}  # the actor's policy
    return make_critic(name, options, actor=actor)


def cot_accuracy(
    problems: Sequence[Problem], actor: Policy, config: TirgenConfig
) -> dict[str, float]:
    """The ``cot`` agent's accuracy on each problem, through :func:`thor.evaluation.evaluate`.

    Episodes go to ``out/difficulty.jsonl`` (a resumable results file): problems evaluated by an
    earlier invocation are not run again.
    """
    from thor.evaluation import EvalConfig, ResultsFile, evaluate

    cfg = config.resolved()
    out = Path(cfg.out)
    bench = out / "difficulty_problems.jsonl"
    write_jsonl_atomic(
        ({"id": p.id, "problem": p.problem, "answer": p.answer} for p in problems), bench
    )
    results = out / "difficulty.jsonl"
    evaluate(
        EvalConfig(
            benchmark=str(bench),
            agent="cot",
            k=cfg.cot_samples,
            model=cfg.actor,
            backend=cfg.backend,
            seed=cfg.seed,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            max_response_tokens=cfg.cot_max_tokens,
            rollout={"batch_size": cfg.cot_batch_size, "cohorts": 1}
            | ({"env": {"system_prompt": cfg.system_prompt}} if cfg.system_prompt else {}),
            out=results,
            progress=cfg.progress,
        ),
        policy=actor,
    )
    store = ResultsFile(results)
    store.load()
    right: dict[str, list[bool]] = {}
    for row in store.records:
        pid = str(row["episode"].get("metadata", {}).get("problem_id", row["episode"]["id"]))
        right.setdefault(pid, []).append(bool(row.get("correct")))
    return {pid: sum(v) / len(v) for pid, v in right.items()}


def _record(
    problem: Problem,
    *,
    status: str,
    stage: str,
    reason: str,
    attempts: Sequence[AttemptResult] = (),
    cot: float | None = None,
    row: dict[str, Any] | None = None,
    calls: int = 0,
) -> dict[str, Any]:
    return {
        "problem_id": problem.id,
        "source": problem.source,
        "status": status,
        "stage": stage,
        "reason": reason,
        "cot_accuracy": cot,
        "calls": calls,
        "attempts": [a.summary() for a in attempts],
        "row": row,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _provenance(
    problem: Problem, attempt: AttemptResult, actor: str, critic: str, cfg: TirgenConfig
) -> dict[str, Any]:
    from thor import __version__

    return {
        "problem_id": problem.id,
        "source": problem.source,
        "gold_answer": problem.answer,
        "attempt": attempt.attempt,
        "calls": attempt.num_calls,
        "steps": attempt.steps,
        "actor_tokens": attempt.actor_tokens,
        "executions": [e.model_dump(mode="json") for e in attempt.executions],
        "actor": actor,
        "critic": critic,
        "step_tokens": cfg.step_tokens,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(attempt.started)),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "elapsed_s": round(attempt.elapsed_s, 3),
        "thor_version": __version__,
    }


def run_tirgen(
    config: TirgenConfig,
    *,
    actor: Policy | None = None,
    critic: Critic | None = None,
    sandbox: Sandbox | None = None,
    verifier: Verifier | None = None,
) -> Funnel:
    """Run TIRGen (resuming ``config.out`` if it holds part of this run); returns the funnel.

    Args:
        config: the run's settings.
        actor: a policy to use instead of building ``config.actor``.
        critic: a critic to use instead of building ``config.critic``.
        sandbox: where the critic's code runs (default: the shared sandbox of ``config.sandbox``).
        verifier: the answer verifier (default: :func:`thor.rewards.default_verifier`).

    Raises:
        ConfigError: the output directory holds a run made with other settings.
    """
    cfg = config.resolved()
    out = Path(cfg.out)
    problems = _unique(load_problems(cfg.problems, limit=cfg.limit, shuffle_seed=cfg.shuffle_seed))
    store = TirgenStore(out / "records.jsonl")
    store.load()
    store.check_manifest(cfg.manifest())
    store.open(cfg.manifest())
    invocation, t0 = uuid.uuid4().hex[:8], time.perf_counter()
    own_actor, own_critic = actor is None, critic is None
    names = _names(cfg, actor, critic)
    try:

        def write(record: dict[str, Any]) -> None:
            record.update(run=invocation, elapsed_s=round(time.perf_counter() - t0, 3))
            store.append_record(record)

        done = store.done_ids()
        todo = [p for p in problems if p.id not in done]
        for p in todo:
            if not (p.answer and p.answer.strip()):
                write(_record(p, status="dropped", stage="answer", reason="no_answer"))
        todo = [p for p in todo if p.answer and p.answer.strip()]
        if todo:
            actor = actor or build_policy(cfg.backend, cfg.actor, cfg.backend_options)
            critic = critic or build_critic(cfg, actor)
            todo = _difficulty(todo, actor, cfg, write)
            _generate(
                todo, actor, critic, cfg, sandbox, verifier, write, names, total=len(problems)
            )
    finally:
        store.close()
        critic_policy = getattr(critic, "policy", None) if own_critic else None
        if critic_policy is not None and critic_policy is not actor:
            critic_policy.close()
        if own_actor and actor is not None:
            actor.close()
    return finalize(out, cfg, names=names, current=(invocation, time.perf_counter() - t0))


def _names(cfg: TirgenConfig, actor: Policy | None, critic: Critic | None) -> dict[str, str]:
    """Display names: the objects' own when given, else from the config (stable across resumes)."""
    actor_name = str(getattr(actor, "name", cfg.actor)) if actor is not None else cfg.actor
    if critic is not None:
        critic_name = critic.name
    else:
        name, options = cfg.critic_spec()
        model = options.get("model") or (cfg.actor if name == "llm" else None)
        critic_name = f"{name}:{model}" if model else name
    return {"actor": actor_name, "critic": critic_name}


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: set[str] = set()
    out: list[Problem] = []
    for p in problems:
        if p.id in seen:
            log.warning("problem id %s appears twice in the input; processing the first only", p.id)
            continue
        seen.add(p.id)
        out.append(p)
    return out


def _difficulty(
    todo: list[Problem], actor: Policy, cfg: TirgenConfig, write: Callable[[dict[str, Any]], None]
) -> list[Problem]:
    if not cfg.difficulty:
        return todo
    acc = cot_accuracy(todo, actor, cfg)
    left: list[Problem] = []
    for p in todo:
        verdict = check_difficulty(acc.get(p.id), cfg.cot_solved_at)
        if verdict.ok:
            left.append(p)
        else:
            write(
                _record(
                    p,
                    status="dropped",
                    stage="difficulty",
                    reason=verdict.reason,
                    cot=acc.get(p.id),
                )
            )
    return left


def _generate(
    todo: list[Problem],
    actor: Policy,
    critic: Critic,
    cfg: TirgenConfig,
    sandbox: Sandbox | None,
    verifier: Verifier | None,
    write: Callable[[dict[str, Any]], None],
    names: dict[str, str],
    *,
    total: int,
) -> None:
    if not todo:
        return
    if verifier is None:
        from thor.rewards import default_verifier

        verifier = default_verifier()
    system = sft_system_message(cfg.sft_system_prompt)
    kept = [0]  # samples kept in this invocation, for the progress bar

    def judge(problem: Problem, attempt: AttemptResult) -> tuple[str, str]:
        ran = [e.ok for e in attempt.executions]
        return judge_sample(
            attempt.pieces,
            ran,
            problem.answer,
            verifier,
            rule=cfg.code_quality_rule,
            low_fraction=cfg.low_quality_fraction,
            ngram=cfg.repetition_ngram,
            max_repeats=cfg.repetition_max,
        )

    def on_problem(outcome: ProblemOutcome) -> None:
        p, best = outcome.problem, outcome.accepted
        if best is None:
            write(
                _record(
                    p,
                    status="dropped",
                    stage="generation",
                    reason="no_accepted_attempt",
                    attempts=outcome.attempts,
                )
            )
        else:
            prov = _provenance(p, best, names["actor"], names["critic"], cfg)
            row = sft_row(p.problem, best.pieces, system=system, provenance=prov)
            write(
                _record(
                    p,
                    status="kept",
                    stage="",
                    reason="",
                    attempts=outcome.attempts,
                    row=row,
                    calls=best.num_calls,
                )
            )
        kept[0] += best is not None
        bar.advance(kept=kept[0])

    with (
        TirGenerator(actor, critic, cfg, sandbox=sandbox, judge=judge) as gen,
        ProgressBar("tirgen", len(todo), field="kept", initial=0, enabled=cfg.progress) as bar,
    ):
        gen.run(todo, on_problem)


def finalize(
    out: str | Path,
    config: TirgenConfig,
    *,
    names: dict[str, str] | None = None,
    current: tuple[str, float] | None = None,
) -> Funnel:
    """Balance the recorded samples, write ``sft.jsonl`` and ``funnel.json``; return the funnel.

    Idempotent: derived from ``records.jsonl`` alone (a torn last line is dropped first).
    """
    cfg = config.resolved()
    out = Path(out)
    store = TirgenStore(out / "records.jsonl")
    store.load()
    records = store.rows
    with_sample = {
        r["problem_id"]: int(r.get("calls", 0)) for r in records if r.get("status") == "kept"
    }
    kept, dropped = balance_by_calls(with_sample, cfg.max_one_call_fraction, seed=cfg.seed)
    write_jsonl_atomic((r["row"] for r in records if r["problem_id"] in kept), out / "sft.jsonl")
    names = names or _names(cfg, None, None)
    funnel = build_funnel(
        records,
        kept=kept,
        balanced_out=dropped,
        wall_s=wall_time(records, current),
        actor=names["actor"],
        critic=names["critic"],
        out=str(out),
    )
    tmp = out / ".funnel.json.tmp"
    tmp.write_text(funnel.model_dump_json(indent=2) + "\n", encoding="utf-8")
    tmp.replace(out / "funnel.json")
    return funnel
