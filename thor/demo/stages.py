"""The demo's stages, each cached in ``out_dir/<stage>/result.json`` with what it cost.

Every stage records its wall time, the peak resident memory of this process while it ran (the
kernel's high-water mark, reset before the stage; sandbox and verifier workers are other
processes) and the tokens it handled: generated (evaluations, TIRGen's actor, RL rollouts) and
trained on (SFT, RL updates).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from thor.demo.presets import DemoConfig

__all__ = ["DemoStages", "peak_rss_mb", "read_jsonl_rows", "reset_peak_rss"]


def reset_peak_rss() -> bool:
    """Reset this process's peak resident memory (Linux ``clear_refs``); False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mb() -> float | None:
    """This process's peak resident memory since start or the last reset, in MiB (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def read_jsonl_rows(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file (a torn last line is skipped)."""
    rows: list[dict[str, Any]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _metric_sum(path: Path, *keys: str) -> int:
    """Sum of ``keys`` over a metrics JSONL file (0 when absent)."""
    if not path.exists():
        return 0
    total = 0.0
    for row in read_jsonl_rows(path):
        total += sum(float(row.get(k) or 0.0) for k in keys)
    return int(total)


def _disjoint(held: list[Any], train: list[Any]) -> None:
    """Held-out problems are never trained on: refuse a split that shares a problem text."""
    overlap = {p.problem for p in held} & {p.problem for p in train}
    if overlap:
        raise RuntimeError(f"{len(overlap)} held-out problems are also in the training split")


class DemoStages:
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
            return dict(json.loads(marker.read_text()))
        d.mkdir(parents=True, exist_ok=True)
        self.console.rule(f"[bold]{name}")
        measured = reset_peak_rss()
        t0 = time.perf_counter()
        result = fn(d)
        result["wall_s"] = time.perf_counter() - t0
        result["peak_rss_mb"] = peak_rss_mb() if measured else None
        result.setdefault("tokens", 0)
        tmp = d / "result.json.tmp"
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(marker)  # a stage is done only when its whole result is written
        self.console.print(f"{name}: {result['wall_s']:.0f} s")
        return result

    # -- stages ---------------------------------------------------------------------------------
    def problems(self, d: Path) -> dict[str, Any]:
        if self.cfg.get("data") == "gsm8k":
            return self._gsm8k_problems(d)
        from thor.data.synthetic import generate_problems, write_problems_jsonl

        c = self.cfg
        kinds = {"families": c.get("families"), "difficulties": c.get("difficulties")}
        train = generate_problems(
            c.get("tirgen_problems") + 400, seed=c.seed, split="train", **kinds
        )
        held = generate_problems(c.get("eval_problems"), seed=c.seed + 1, split="heldout", **kinds)
        _disjoint(held, train)
        write_problems_jsonl(train, d / "train.jsonl")
        write_problems_jsonl(held, d / "heldout.jsonl")
        return self._split(d, len(train), len(held))

    def _gsm8k_problems(self, d: Path) -> dict[str, Any]:
        """Held-out: a seeded subset of GSM8K test; train: the GSM8K train split (never tested)."""
        from thor.data import load_problems
        from thor.data.synthetic import write_problems_jsonl

        c = self.cfg
        held = load_problems("gsm8k", shuffle_seed=c.seed, limit=c.get("eval_problems"))
        train = load_problems("gsm8k_train")
        _disjoint(held, train)
        write_problems_jsonl(train, d / "train.jsonl")
        write_problems_jsonl(held, d / "heldout.jsonl")
        return self._split(d, len(train), len(held))

    @staticmethod
    def _split(d: Path, n_train: int, n_held: int) -> dict[str, Any]:
        return {
            "train": str(d / "train.jsonl"),
            "heldout": str(d / "heldout.jsonl"),
            "n_train": n_train,
            "n_heldout": n_held,
        }

    def evaluate(self, d: Path, *, heldout: str, model: str, agent: str) -> dict[str, Any]:
        from thor.evaluation import EvalConfig, evaluate, is_correct
        from thor.evaluation.metrics import last_number_correct, numeric_answers
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
            "last_number": [last_number_correct(e) for e in eps] if numeric_answers(eps) else None,
            "tool_calls": s.tool_calls_per_episode,
            "calls_ran": sum(e.num_calls for e in eps),
            "calls_failed": sum(e.num_failed_calls for e in eps),
            "exec_success": s.exec_success_rate,
            "retries": s.retries_per_episode,
            "tokens_per_episode": s.tokens_per_episode,
            "tokens": int(s.tokens_per_episode * s.episodes),
            "accuracy": s.accuracy,
        }

    def tirgen(self, d: Path, *, train: str) -> dict[str, Any]:
        from thor.agents.backends.hf import load_hf_tokenizer
        from thor.data import load_problems
        from thor.data.tirgen import TirgenConfig, run_tirgen

        c = self.cfg
        n = c.get("tirgen_problems")
        tokenizer = load_hf_tokenizer(c.model)
        problems = load_problems(train, limit=n)
        common: dict[str, Any] = {
            "problems": train,
            "limit": n,
            "out": d,
            "actor": "reference",
            "max_response_tokens": c.get("max_response_tokens"),
            "sft_system_prompt": c.system_prompt,
            # the base model solves ~none of these with CoT (stage 02): nothing to filter
            "difficulty": False,
            "seed": c.seed,
            "progress": c.progress,
            "concurrency": 32,
        }
        if c.get("data") == "gsm8k":
            from thor.data.gsm8k import reference_actor

            actor = reference_actor(problems, tokenizer)
            settings: dict[str, Any] = {
                "critic": "gsm8k",
                "preset": "gsm8k",
                "code_quality_rule": "computes",
                "max_response_tokens": None,
            }
        else:
            from thor.data.synthetic.actor import ReferenceActor

            actor = ReferenceActor(problems, tokenizer)
            settings = {
                "critic": "rule",
                "preset": "cpu",
                # the reference solutions are short lines (<= 50 tokens): a step is one to four
                # of them, and every step goes to the critic
                "step_tokens": 64,
                "min_critic_tokens": 8,
                # arithmetic needs one-line prints, which the paper's rule calls low quality
                "low_quality_fraction": 1.0,
            }
        funnel = run_tirgen(TirgenConfig(**{**common, **settings}), actor=actor)
        self.console.print(funnel.table())
        tokens = sum(
            int(a.get("actor_tokens", 0))
            for r in read_jsonl_rows(d / "records.jsonl")
            if r.get("type") == "problem"
            for a in r.get("attempts", [])
        )
        return {
            "data": str(d / "sft.jsonl"),
            "samples": funnel.samples,
            "problems": funnel.problems,
            "tokens": tokens,
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
                limit=c.get("sft_rows"),
                out_dir=d,
                seed=c.seed,
                progress=c.progress,
            )
        )
        rows = list(read_jsonl_rows(d / "metrics.jsonl")) if (d / "metrics.jsonl").exists() else []
        tokens = max((int(r.get("num_tokens") or 0) for r in rows), default=0)
        return {"model": str(model), "tokens": tokens}

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
        metrics = d / "metrics.jsonl"
        return {
            "model": str(d / "model"),
            "metrics": str(metrics),
            "tokens": _metric_sum(metrics, "tokens_generated", "train_tokens"),
            "step_groups_trained": _metric_sum(metrics, "step_groups_kept"),
            "step_branch_points": _metric_sum(metrics, "step_branch_points"),
            "step_samples": _metric_sum(metrics, "step_samples"),
        }
