"""`thor demo`: the ablation of THOR-SPEC section 4, in the small, on the embedded model.

Stages, each cached in its own directory under ``out_dir`` (a re-run skips finished stages; see
:mod:`thor.demo.stages`, which also records each stage's wall time, peak memory and tokens):

1. problems: seeded synthetic problems that need computation, or (preset ``gsm8k``) a seeded
   subset of GSM8K test held out and GSM8K train to learn from;
2. base: the embedded model with chain of thought (and, for GSM8K, with the TIR prompt) on the
   held-out problems;
3. TIRGen: a reference actor (the problems' worked solutions), a rule critic (``rule``, or
   ``gsm8k`` for GSM8K's annotations), real execution, THOR's filters -> SFT data;
4. cold start: SFT on that data, evaluated with the TIR agent;
5. + trajectory RL: GRPO from the cold-start model;
6. + step RL: THOR's hierarchical RL (trajectory + step level) from the cold-start model;
7. + self-correction: the step-RL model with THOR's self-correcting agent.

It prints the ablation table (accuracy with 95% bootstrap intervals, paired intervals against
the previous stage, and what each stage did), writes reward curves as PNG and a report with the
cost of every stage. The CPU budget forces settings unlike the paper's; :func:`deviations` lists
them.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from thor.demo.presets import DEMO_TIR_SYSTEM, DEVIATIONS, PRESETS, DemoConfig, deviations
from thor.demo.report import StageCost, StageResult, cost_table, markdown_table, rich_table
from thor.demo.stages import DemoStages

__all__ = ["DEMO_TIR_SYSTEM", "DEVIATIONS", "PRESETS", "DemoConfig", "DemoResult", "run_demo"]

log = logging.getLogger(__name__)


class DemoResult(BaseModel):
    """What the demo produced: the ablation rows and where things are."""

    stages: list[StageResult]
    costs: list[StageCost] = []
    out_dir: str
    table_markdown: str
    plots: list[str]
    wall_s: float


def run_demo(config: DemoConfig | None = None) -> DemoResult:
    """Run (or resume) the demo and print the ablation table; returns what it produced."""
    cfg = config or DemoConfig()
    st = DemoStages(cfg)
    t0 = time.perf_counter()
    costs: list[StageCost] = []

    def stage(name: str, fn: Any) -> dict[str, Any]:
        r = st.cached(name, fn)
        costs.append(
            StageCost(
                stage=name,
                wall_s=r["wall_s"],
                peak_rss_mb=r.get("peak_rss_mb"),
                tokens=int(r.get("tokens", 0)),
            )
        )
        return r

    probs = stage("01-problems", st.problems)
    heldout, train = probs["heldout"], probs["train"]
    rows: list[StageResult] = []

    def row(label: str, name: str, model: str, agent: str, step_groups: int | None = None) -> None:
        r = stage(name, lambda d: st.evaluate(d, heldout=heldout, model=model, agent=agent))
        rows.append(
            StageResult(
                stage=label,
                agent=agent,
                model=model,
                correct=r["correct"],
                last_number=r.get("last_number"),
                tool_calls=r["tool_calls"],
                calls_ran=r.get("calls_ran"),
                calls_failed=r.get("calls_failed"),
                exec_success=r["exec_success"],
                retries=r["retries"],
                tokens=r.get("tokens_per_episode", r.get("tokens", 0)),
                wall_s=r["wall_s"],
                step_groups=step_groups,
            )
        )

    for agent in cfg.get("base_agents"):
        label = "base (CoT)" if agent == "cot" else f"base ({agent.upper()})"
        row(label, "02-eval-base" if agent == "cot" else f"02-eval-base-{agent}", cfg.model, agent)
    data = stage("03-tirgen", lambda d: st.tirgen(d, train=train))
    cold = stage("04-sft", lambda d: st.sft(d, data=data["data"]))["model"]
    row("cold start (TIRGen + SFT)", "05-eval-coldstart", cold, "tir")
    traj = stage("06-rl-trajectory", lambda d: st.rl(d, model=cold, train=train, algorithm="grpo"))
    row("+ trajectory RL", "07-eval-trajectory", traj["model"], "tir")
    hier = stage("08-rl-step", lambda d: st.rl(d, model=cold, train=train, algorithm="thor"))
    row("+ step RL", "09-eval-step", hier["model"], "tir", hier.get("step_groups_trained"))
    row("+ self-correction", "10-eval-selfcorrect", hier["model"], "thor")
    plots = _plots(st.out, [Path(traj["metrics"]).parent, Path(hier["metrics"]).parent])
    return _finish(cfg, st, rows, costs, plots, time.perf_counter() - t0)


def _finish(
    cfg: DemoConfig,
    st: DemoStages,
    rows: list[StageResult],
    costs: list[StageCost],
    plots: list[Path],
    wall_s: float,
) -> DemoResult:
    """Print the table, write ``report.md`` and say where everything is."""
    from rich.console import Console

    md = markdown_table(rows)
    what = (
        "GSM8K test problems (seeded)"
        if cfg.get("data") == "gsm8k"
        else "held-out synthetic problems"
    )
    title = f"thor demo ({cfg.preset}): {len(rows[0].correct)} {what}, Avg@1"
    # the table is wider than most terminals: render it whole rather than squeezed
    Console(width=max(st.console.width, 170)).print(rich_table(rows, title))
    devs = deviations(cfg.preset)
    st.console.print(
        "Deviations from the paper (CPU budget):\n" + "\n".join(f"  - {x}" for x in devs)
    )
    costs_md = cost_table(costs)
    report = st.out / "report.md"
    report.write_text(
        f"# {title}\n\n{md}\n\n## Cost per stage\n\n{costs_md}\n\n"
        "Peak RSS is this process's (the sandbox and verifier workers are others); tokens are"
        " generated (evaluation, TIRGen's actor, RL rollouts) plus trained on (SFT, RL updates);"
        " a stage finished in an earlier invocation keeps the figures it had then.\n\n"
        "Deviations:\n" + "".join(f"- {x}\n" for x in devs)
    )
    st.console.print(
        f"\nEverything is in {st.out}: report.md, each stage's directory, plots/ "
        f"({len(plots)} PNG), SFT data in 03-tirgen/sft.jsonl, models in 04-sft/model, "
        "06-rl-trajectory/model, 08-rl-step/model."
    )
    return DemoResult(
        stages=rows,
        costs=costs,
        out_dir=str(st.out),
        table_markdown=md,
        plots=[str(p) for p in plots],
        wall_s=wall_s,
    )


def _plots(out: Path, runs: list[Path]) -> list[Path]:
    from thor.algos.plot import plot_run

    written: list[Path] = []
    for run in runs:
        try:
            written += plot_run(run, out / "plots" / run.name)
        except Exception as err:  # a plot is a convenience: report, do not fail the demo
            log.warning("no plots for %s: %s", run, err)
    return written
