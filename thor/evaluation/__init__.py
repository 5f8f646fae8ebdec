"""Evaluation: `thor eval` as functions (resumable runs, Avg@k, pass@k, summaries, comparisons)."""

from __future__ import annotations

from thor.evaluation.metrics import EvalSummary, avg_at_k, is_correct, pass_at_k, summarize
from thor.evaluation.report import compare_runs, load_run, summary_table
from thor.evaluation.runner import PRESETS, EvalConfig, evaluate, make_policy
from thor.evaluation.store import ResultsFile

__all__ = [
    "PRESETS",
    "EvalConfig",
    "EvalSummary",
    "ResultsFile",
    "avg_at_k",
    "compare_runs",
    "evaluate",
    "is_correct",
    "load_run",
    "make_policy",
    "pass_at_k",
    "summarize",
    "summary_table",
]
