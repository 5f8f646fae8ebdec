"""The funnel of a TIRGen run: how many problems and samples each stage kept and dropped, and why.

Computed from the run's record (:mod:`thor.data.tirgen.store`), so a resumed run reports the whole
run, not only its last invocation.

Example:
    >>> records = [
    ...     {"problem_id": "a", "status": "dropped", "stage": "answer", "reason": "no_answer", "attempts": []},
    ...     {"problem_id": "b", "status": "kept", "stage": "", "reason": "", "calls": 1, "attempts": [
    ...         {"outcome": "abandoned", "stage": "generation", "reason": "exec_timeout", "events": {"steps": 2}},
    ...         {"outcome": "accepted", "stage": "", "reason": "", "events": {"steps": 3}}]},
    ... ]
    >>> f = build_funnel(records, kept={"b"}, balanced_out=set())
    >>> f.stage("attempts").dropped, f.stage("output").kept, f.events["steps"]
    (1, 1, 5)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from thor.data.tirgen.filters import SAMPLE_STAGES

__all__ = ["Funnel", "FunnelStage", "build_funnel"]

_LABELS = {
    "input": "problems in",
    "answer": "has a gold answer",
    "difficulty": "CoT does not solve it",
    "attempts": "attempts finished",
    "format": "format",
    "code_quality": "code quality",
    "answer_correct": "answer correct",
    "repetition": "no repetition",
    "one_per_problem": "one per problem",
    "generation": "problems with a sample",
    "balance": "balance by calls",
    "output": "written",
}


class FunnelStage(BaseModel):
    """One stage: how many entered, were kept and dropped (by reason)."""

    model_config = ConfigDict(extra="forbid")

    stage: str
    unit: Literal["problems", "samples"]
    entered: int
    kept: int
    dropped: int
    reasons: dict[str, int] = Field(default_factory=dict)


class Funnel(BaseModel):
    """What a TIRGen run kept at each stage, the step-level counters and the output's call counts."""

    model_config = ConfigDict(extra="forbid")

    stages: list[FunnelStage]
    events: dict[str, int] = Field(default_factory=dict, description="Step-level counters")
    calls: dict[int, int] = Field(
        default_factory=dict, description="Output samples by number of calls"
    )
    problems: int = 0
    samples: int = 0
    wall_s: float = 0.0
    actor: str = ""
    critic: str = ""
    out: str = ""

    def stage(self, name: str) -> FunnelStage:
        for s in self.stages:
            if s.stage == name:
                return s
        raise KeyError(name)

    def table(self) -> Any:
        """The funnel as a rich table."""
        from rich.table import Table

        t = Table(title=f"TIRGen funnel ({self.actor} + {self.critic} critic, {self.wall_s:.0f} s)")
        for col in ("stage", "unit", "in", "kept", "dropped", "why dropped"):
            t.add_column(col, justify="right" if col in ("in", "kept", "dropped") else "left")
        for s in self.stages:
            why = ", ".join(f"{k} {v}" for k, v in sorted(s.reasons.items(), key=lambda kv: -kv[1]))
            t.add_row(
                _LABELS.get(s.stage, s.stage),
                s.unit,
                str(s.entered),
                str(s.kept),
                str(s.dropped),
                why,
            )
        return t

    def events_table(self) -> Any:
        """The step-level counters (steps, critic verdicts, repairs, blocks run) as a rich table."""
        from rich.table import Table

        t = Table(title="TIRGen steps")
        t.add_column("counter")
        t.add_column("count", justify="right")
        for k, v in sorted(self.events.items()):
            t.add_row(k, str(v))
        if self.calls:
            t.add_row(
                "output samples by calls",
                ", ".join(f"{k}: {v}" for k, v in sorted(self.calls.items())),
            )
        return t

    def markdown(self) -> str:
        """The funnel as a markdown table (for docs)."""
        lines = [
            "| stage | unit | in | kept | dropped | why dropped |",
            "|---|---|---:|---:|---:|---|",
        ]
        for s in self.stages:
            why = ", ".join(f"{k} {v}" for k, v in sorted(s.reasons.items(), key=lambda kv: -kv[1]))
            lines.append(
                f"| {_LABELS.get(s.stage, s.stage)} | {s.unit} | {s.entered} | {s.kept} | {s.dropped} | {why} |"
            )
        return "\n".join(lines)


def _stage(
    name: str, unit: Literal["problems", "samples"], entered: int, reasons: Counter[str]
) -> FunnelStage:
    dropped = sum(reasons.values())
    return FunnelStage(
        stage=name,
        unit=unit,
        entered=entered,
        kept=entered - dropped,
        dropped=dropped,
        reasons=dict(reasons),
    )


def _count(reason: str, n: int) -> Counter[str]:
    return Counter({reason: n}) if n > 0 else Counter()


def _sample_stages(attempts: list[dict[str, Any]]) -> list[FunnelStage]:
    """Attempts finished, then each per-sample filter in order."""
    left = len(attempts)
    abandoned = Counter(a["reason"] for a in attempts if a["outcome"] == "abandoned")
    stages = [_stage("attempts", "samples", left, abandoned)]
    left -= sum(abandoned.values())
    for name in SAMPLE_STAGES:
        why = Counter(
            a["reason"] for a in attempts if a["outcome"] == "rejected" and a["stage"] == name
        )
        stages.append(_stage("answer_correct" if name == "answer" else name, "samples", left, why))
        left -= sum(why.values())
    return stages


def build_funnel(
    records: Iterable[dict[str, Any]],
    *,
    kept: set[str],
    balanced_out: set[str],
    wall_s: float = 0.0,
    actor: str = "",
    critic: str = "",
    out: str = "",
) -> Funnel:
    """The funnel of a run from its problem records and the balance stage's decision."""
    recs = list(records)
    n = len(recs)
    no_answer = Counter(r["reason"] for r in recs if r.get("stage") == "answer")
    solved = Counter(r["reason"] for r in recs if r.get("stage") == "difficulty")
    stages = [
        _stage("input", "problems", n, Counter()),
        _stage("answer", "problems", n, no_answer),
        _stage("difficulty", "problems", n - sum(no_answer.values()), solved),
    ]
    generated = [r for r in recs if r.get("stage") not in ("answer", "difficulty")]
    attempts = [a for r in generated for a in r.get("attempts", [])]
    events: Counter[str] = Counter()
    for a in attempts:
        events.update(a.get("events", {}))
    stages += _sample_stages(attempts)
    left = stages[-1].kept
    with_sample = [r for r in generated if r.get("status") == "kept"]
    out_ones = [r for r in with_sample if r["problem_id"] in balanced_out]
    stages += [
        _stage("one_per_problem", "samples", left, _count("extra_sample", left - len(with_sample))),
        _stage(
            "generation",
            "problems",
            len(generated),
            _count("no_accepted_attempt", len(generated) - len(with_sample)),
        ),
        _stage(
            "balance", "samples", len(with_sample), _count("one_call_downsampled", len(out_ones))
        ),
    ]
    final = [r for r in with_sample if r["problem_id"] in kept]
    stages.append(_stage("output", "samples", len(final), Counter()))
    return Funnel(
        stages=stages,
        events=dict(events),
        calls=dict(Counter(int(r.get("calls", 0)) for r in final)),
        problems=n,
        samples=len(final),
        wall_s=wall_s,
        actor=actor,
        critic=critic,
        out=out,
    )
