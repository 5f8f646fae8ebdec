"""`thor demo`: the ablation of THOR-SPEC section 4, in the small, on the embedded model.

Stages, each cached in its own directory under ``out_dir`` (a re-run skips finished stages):

1. problems: seeded synthetic problems that need computation (train and held-out splits);
2. base: the embedded model with chain of thought on the held-out problems;
3. TIRGen: the model as actor, the rule-based critic, real execution, THOR's filters -> SFT data;
4. cold start: SFT on that data, evaluated with the TIR agent;
5. + trajectory RL: GRPO from the cold-start model;
6. + step RL: THOR's hierarchical RL (trajectory + step level) from the cold-start model;
7. + self-correction: the step-RL model with THOR's self-correcting agent.

It prints the ablation table (accuracy with 95% bootstrap intervals, and paired intervals against
the previous stage), writes reward curves as PNG and says where everything went. The CPU budget
forces settings unlike the paper's; :data:`DEVIATIONS` lists them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from thor.config import ThorConfig
from thor.data.synthetic.schema import FAMILIES
from thor.demo.report import StageResult, markdown_table, rich_table

__all__ = ["DEMO_TIR_SYSTEM", "DEVIATIONS", "PRESETS", "DemoConfig", "DemoResult", "run_demo"]

log = logging.getLogger(__name__)

PRESETS: dict[str, dict[str, Any]] = {
    # 11.4 minutes measured on 2 CPU cores (2026-11-27; SmolLM2 trains at ~40 tokens/s there).
    "quick": {
        "families": ["arithmetic"],
        "eval_problems": 16,
        "tirgen_problems": 48,
        # no 4-digit-by-4-digit products: their long worked solutions cost a third of the SFT time
        "difficulties": [1, 2, 3],
        "rl_steps": 2,
        "group_size": 4,
        "prompts_per_step": 2,
        "max_draws": 1,
        "step_group_size": 4,
        # measured: 1 epoch at lr 2e-4 left the model repeating digits (0% held-out); 2 at 1e-4
        # taught it the tool format (21%)
        "sft_epochs": 2.0,
        "sft_lr": 1e-4,
        "max_response_tokens": 160,
    },
    # >= 300 held-out problems so the intervals mean something, and every problem family: modular
    # arithmetic, binomials, sympy equations... are where a small model's code fails (in the
    # measured run: unclosed brackets, undefined names, a number called like a function), which is
    # what step-level RL and self-correction act on.
    # 1 h 53 min measured on 2 CPU cores (2026-11-27); five evaluations of 300 problems are 74 min.
    "long": {
        "families": list(FAMILIES),
        "eval_problems": 300,
        "difficulties": [1, 2, 3, 4],
        "tirgen_problems": 120,
        "rl_steps": 6,
        "group_size": 8,
        "prompts_per_step": 2,
        "max_draws": 2,
        "step_group_size": 4,
        "sft_epochs": 2.0,
        "sft_lr": 1e-4,
        "max_response_tokens": 192,
    },
}

# A short tool-use instruction: every token of the prompt is paid for in every SFT row, rollout and
# evaluation, and thor's TIR prompt (THOR-SPEC) is 75 tokens of SmolLM2's tokenizer.
DEMO_TIR_SYSTEM = (
    "Solve the problem. To compute, write a ```python block that prints the result; "
    "then give the final answer in \\boxed{}."
)

DEVIATIONS = [
    "model: SmolLM2-135M-Instruct (the paper: Qwen2.5-Math-1.5B/7B, Qwen3-8B)",
    "problems: seeded synthetic problems (the paper: MATH, AIME...), so a 135M model can show the"
    " effect: arithmetic without 4-digit-by-4-digit products in the quick preset, all six families"
    " (arithmetic, modular, combinatorics, number theory, equations, series) in the long one",
    "TIRGen actor: the synthetic problems' reference chain of thought in the model's tokens"
    " (thor.data.synthetic.actor.ReferenceActor), not the model itself: SmolLM2-135M as its own actor"
    " got 0 of 7 problems through TIRGen (no \\boxed answer or no codable step; 2026-11-27)",
    "TIRGen critic: rule-based (the paper: Qwen3-32B); no difficulty filter (base CoT solves ~none);"
    " no code-quality filter (arithmetic needs one-line prints, which the paper's rule rejects)",
    "SFT: 2 epochs at lr 1e-4 on a few dozen (quick) to about a hundred (long) samples, batch 8"
    " (the paper: 1 epoch, lr 2e-6, batch 256)",
    "RL: 2-6 steps of 2 prompts, group size 4-8, lr 1e-5, 160-192-token responses (the paper: G=16,"
    " lr 1e-6, 4,096 tokens, hundreds of steps)",
    "prompt: a 30-token tool-use instruction for the tir/thor agents and the SFT data (thor's TIR"
    " prompt is 75 tokens), since prompt tokens dominate CPU time here",
    "evaluation: one sample per problem (Avg@1) at T=0.6 on held-out synthetic problems (the paper: Avg@4)",
]


class DemoConfig(ThorConfig):
    """The demo's settings; ``None`` fields take the preset's value."""

    preset: Literal["quick", "long"] = "quick"
    out_dir: Path = Path("runs/demo")
    model: str = "embedded"
    seed: int = 0
    families: list[str] | None = None
    difficulties: list[int] | None = None
    eval_problems: int | None = Field(None, ge=1)
    tirgen_problems: int | None = Field(None, ge=1)
    rl_steps: int | None = Field(None, ge=1)
    group_size: int | None = Field(None, ge=2)
    prompts_per_step: int | None = Field(None, ge=1)
    max_draws: int | None = Field(None, ge=1)
    step_group_size: int | None = Field(None, ge=2)
    sft_epochs: float | None = Field(None, gt=0)
    sft_lr: float | None = Field(None, gt=0)
    rl_lr: float = Field(1e-5, gt=0)
    max_response_tokens: int | None = Field(None, ge=32)
    system_prompt: str = DEMO_TIR_SYSTEM
    temperature: float = Field(0.6, ge=0.0)
    progress: bool = True

    def get(self, name: str) -> Any:
        value = getattr(self, name)
        return PRESETS[self.preset][name] if value is None else value


class DemoResult(BaseModel):
    """What the demo produced: the ablation rows and where things are."""

    stages: list[StageResult]
    out_dir: str
    table_markdown: str
    plots: list[str]
    wall_s: float


class _Stages:
    """Runs the stages in order, caching each one's result in ``out_dir/<stage>/result.json``."""

    def __init__(self, cfg: DemoConfig) -> None:
        from rich.console import Console

        self.cfg = cfg
        self.out = Path(cfg.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.console = Console()

    def cached(self, name: str, fn: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
        d = self.out / name
        marker = d / "result.json"
        if marker.exists():
            self.console.print(f"[dim]{name}: done earlier ({marker})[/dim]")
            return json.loads(marker.read_text())
        d.mkdir(parents=True, exist_ok=True)
        self.console.rule(f"[bold]{name}")
        t0 = time.perf_counter()
        result = fn(d)
        result["wall_s"] = time.perf_counter() - t0
        marker.write_text(json.dumps(result, indent=1))
        self.console.print(f"{name}: {result['wall_s']:.0f} s")
        return result

    # -- stages ---------------------------------------------------------------------------------
    def problems(self, d: Path) -> dict[str, Any]:
        from thor.data.synthetic import generate_problems, write_problems_jsonl

        c = self.cfg
        kinds = {"families": c.get("families"), "difficulties": c.get("difficulties")}
        train = generate_problems(
            c.get("tirgen_problems") + 400, seed=c.seed, split="train", **kinds
        )
        held = generate_problems(c.get("eval_problems"), seed=c.seed + 1, split="heldout", **kinds)
        write_problems_jsonl(train, d / "train.jsonl")
        write_problems_jsonl(held, d / "heldout.jsonl")
        return {
            "train": str(d / "train.jsonl"),
            "heldout": str(d / "heldout.jsonl"),
            "n_train": len(train),
            "n_heldout": len(held),
        }

    def evaluate(self, d: Path, *, heldout: str, model: str, agent: str) -> dict[str, Any]:
        from thor.evaluation import EvalConfig, evaluate, is_correct
        from thor.evaluation.store import ResultsFile

        c = self.cfg
        cfg = EvalConfig(
            benchmark=heldout,
            agent=agent,
            k=1,
            model=model,
            seed=c.seed,
            temperature=c.temperature,
            max_response_tokens=c.get("max_response_tokens"),
            out=d / "results.jsonl",
            progress=c.progress,
            rollout={
                # one cohort of 64: on a CPU a decode step costs about the same at batch 16 and
                # 64 (it streams the weights), and a cell takes milliseconds, so there is little
                # execution for a second cohort to hide
                "batch_size": 64,
                "cohorts": 1,
                "env": {"system_prompt": None if agent == "cot" else c.system_prompt},
            },
        )
        s = evaluate(cfg)
        store = ResultsFile(d / "results.jsonl")
        store.load()
        eps = sorted(store.episodes(), key=lambda e: e.id)
        return {
            "agent": agent,
            "model": model,
            "correct": [is_correct(e) for e in eps],
            "tool_calls": s.tool_calls_per_episode,
            "exec_success": s.exec_success_rate,
            "retries": s.retries_per_episode,
            "tokens": s.tokens_per_episode,
            "accuracy": s.accuracy,
        }

    def tirgen(self, d: Path, *, train: str) -> dict[str, Any]:
        from thor.agents.backends.hf import load_hf_tokenizer
        from thor.data import load_problems
        from thor.data.synthetic.actor import ReferenceActor
        from thor.data.tirgen import TirgenConfig, run_tirgen

        c = self.cfg
        n = c.get("tirgen_problems")
        actor = ReferenceActor(load_problems(train, limit=n), load_hf_tokenizer(c.model))
        funnel = run_tirgen(
            TirgenConfig(
                problems=train,
                limit=n,
                out=d,
                actor="reference",
                critic="rule",
                preset="cpu",
                # the reference solutions are short lines (<= 50 tokens): a step is one to four
                # of them, and every step goes to the critic
                step_tokens=64,
                min_critic_tokens=8,
                # arithmetic needs one-line prints, which the paper's rule calls low quality
                low_quality_fraction=1.0,
                max_response_tokens=c.get("max_response_tokens"),
                sft_system_prompt=c.system_prompt,
                # the base model solves ~none of these with CoT (stage 02): nothing to filter
                difficulty=False,
                seed=c.seed,
                progress=c.progress,
                concurrency=32,
            ),
            actor=actor,
        )
        self.console.print(funnel.table())
        return {
            "data": str(d / "sft.jsonl"),
            "samples": funnel.samples,
            "problems": funnel.problems,
        }

    def sft(self, d: Path, *, data: str) -> dict[str, Any]:
        from thor.algos.sft import SFTConfig, sft

        c = self.cfg
        model = sft(
            SFTConfig(
                data=Path(data),
                model=c.model,
                epochs=c.get("sft_epochs"),
                lr=c.get("sft_lr"),
                batch_size=8,
                max_length=512,
                out_dir=d,
                seed=c.seed,
                progress=c.progress,
            )
        )
        return {"model": str(model)}

    def rl(self, d: Path, *, model: str, train: str, algorithm: str) -> dict[str, Any]:
        from thor.algos.loop import TrainConfig
        from thor.algos.loop import train as run_train

        c = self.cfg
        algo: dict[str, Any] = {
            "group_size": c.get("group_size"),
            "prompts_per_step": c.get("prompts_per_step"),
            "max_draws": c.get("max_draws"),
        }
        if algorithm == "thor":
            algo.update(
                {
                    "step_group_size": c.get("step_group_size"),
                    "suffix_tokens": 16,
                    "step_max_tokens": 96,
                    "max_branch_points": 4,
                }
            )
        run_train(
            TrainConfig(
                model=model,
                algorithm={"name": algorithm, **algo},
                dataset=train,
                steps=c.get("rl_steps"),
                seed=c.seed,
                out_dir=d,
                save_every=max(1, c.get("rl_steps")),
                progress=c.progress,
                rollout={
                    "agent": {"temperature": 1.0},
                    "env": {
                        "max_response_tokens": c.get("max_response_tokens"),
                        "system_prompt": c.system_prompt,
                    },
                    "batch_size": 32,
                },
                optim={"lr": c.rl_lr, "micro_batch_size": 8},
            )
        )
        return {"model": str(d / "model"), "metrics": str(d / "metrics.jsonl")}


def run_demo(config: DemoConfig | None = None) -> DemoResult:
    """Run (or resume) the demo and print the ablation table; returns what it produced."""
    cfg = config or DemoConfig()
    st = _Stages(cfg)
    t0 = time.perf_counter()
    probs = st.cached("01-problems", st.problems)
    heldout, train = probs["heldout"], probs["train"]
    rows: list[StageResult] = []

    def row(stage: str, name: str, model: str, agent: str) -> None:
        r = st.cached(name, lambda d: st.evaluate(d, heldout=heldout, model=model, agent=agent))
        rows.append(
            StageResult(
                stage=stage,
                agent=agent,
                model=model,
                correct=r["correct"],
                tool_calls=r["tool_calls"],
                exec_success=r["exec_success"],
                retries=r["retries"],
                tokens=r["tokens"],
                wall_s=r["wall_s"],
            )
        )

    row("base (CoT)", "02-eval-base", cfg.model, "cot")
    data = st.cached("03-tirgen", lambda d: st.tirgen(d, train=train))
    cold = st.cached("04-sft", lambda d: st.sft(d, data=data["data"]))["model"]
    row("cold start (TIRGen + SFT)", "05-eval-coldstart", cold, "tir")
    traj = st.cached(
        "06-rl-trajectory", lambda d: st.rl(d, model=cold, train=train, algorithm="grpo")
    )
    row("+ trajectory RL", "07-eval-trajectory", traj["model"], "tir")
    hier = st.cached("08-rl-step", lambda d: st.rl(d, model=cold, train=train, algorithm="thor"))
    row("+ step RL", "09-eval-step", hier["model"], "tir")
    row("+ self-correction", "10-eval-selfcorrect", hier["model"], "thor")
    plots = _plots(st.out, [Path(traj["metrics"]).parent, Path(hier["metrics"]).parent])
    md = markdown_table(rows)
    title = f"thor demo ({cfg.preset}): {len(rows[0].correct)} held-out synthetic problems, Avg@1"
    from rich.console import Console

    # the table is wider than most terminals: render it whole rather than squeezed
    Console(width=max(st.console.width, 150)).print(rich_table(rows, title))
    st.console.print(
        "Deviations from the paper (CPU budget):\n" + "\n".join(f"  - {x}" for x in DEVIATIONS)
    )
    report = st.out / "report.md"
    report.write_text(
        f"# {title}\n\n{md}\n\nDeviations:\n" + "".join(f"- {x}\n" for x in DEVIATIONS)
    )
    st.console.print(
        f"\nEverything is in {st.out}: report.md, each stage's directory, plots/ "
        f"({len(plots)} PNG), SFT data in 03-tirgen/sft.jsonl, models in 04-sft/model, "
        "06-rl-trajectory/model, 08-rl-step/model."
    )
    return DemoResult(
        stages=rows,
        out_dir=str(st.out),
        table_markdown=md,
        plots=[str(p) for p in plots],
        wall_s=time.perf_counter() - t0,
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
