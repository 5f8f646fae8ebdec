"""A TIRGen run to kill: a slow scripted actor, the rule critic, real sandbox and verifier.

Usage: python tirgen_kill_target.py PROBLEMS.jsonl OUT_DIR DELAY_S DIFFICULTY(0|1)
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tirgen_fakes import SolutionActor

from thor.data.loaders import load_jsonl_problems
from thor.data.tirgen import RuleCritic, TirgenConfig, run_tirgen


def main() -> int:
    problems_file, out, delay, difficulty = (
        sys.argv[1],
        sys.argv[2],
        float(sys.argv[3]),
        sys.argv[4] == "1",
    )
    logging.basicConfig(level=logging.WARNING)
    problems = load_jsonl_problems(problems_file)
    easy = [p.problem for p in problems[::4]]
    cfg = TirgenConfig(
        problems=problems_file,
        out=out,
        step_tokens=64,
        attempts=2,
        max_response_tokens=3000,
        difficulty=difficulty,
        cot_samples=1,
        cot_max_tokens=2000,
        progress=False,
        concurrency=4,
    )
    funnel = run_tirgen(
        cfg, actor=SolutionActor(problems, delay_s=delay, easy=easy), critic=RuleCritic()
    )
    print(f"DONE {funnel.problems} {funnel.samples}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
