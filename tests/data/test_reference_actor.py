"""The demo's rule-based TIRGen actor: writes the worked solution in the model's tokens, continues
from a transcript that a critic rewrote, and drives a real TIRGen run to accepted samples."""

from __future__ import annotations

import json
from pathlib import Path

from thor.data.synthetic import generate_problems, render_solution, write_problems_jsonl
from thor.data.synthetic.actor import ReferenceActor
from thor.data.tirgen import TirgenConfig, run_tirgen
from thor.testing import tiny_tokenizer
from thor.types import SamplingParams

PROBLEMS = generate_problems(12, seed=5, split="train", families=["arithmetic"])


def prompt_for(actor: ReferenceActor, problem: str) -> str:
    return actor.apply_chat_template(
        [
            {"role": "system", "content": "Reason step by step."},
            {"role": "user", "content": problem},
        ]
    )


def test_writes_the_solution_in_windows_of_tokens() -> None:
    tok = tiny_tokenizer()
    actor = ReferenceActor(PROBLEMS, tok)
    p = next(p for p in PROBLEMS if len(render_solution(p)) > 60)
    prompt = prompt_for(actor, p.problem)
    written = ""
    for _ in range(100):
        out = actor.generate([prompt + written], SamplingParams(max_tokens=8))[0]
        assert len(out.token_ids) <= 8 and out.text == tok.decode(out.token_ids)
        written += out.text
        if out.finish_reason == "eos":
            break
    assert written == render_solution(p)


def test_continues_after_an_inserted_code_block() -> None:
    actor = ReferenceActor(PROBLEMS, tiny_tokenizer())
    p = PROBLEMS[0]
    solution = render_solution(p)
    first_line, rest = solution.split("\n", 1)
    transcript = (
        prompt_for(actor, p.problem)
        + first_line
        + "\n```python\nprint(1)\n```\n```output\n1\n```\n"
    )
    out = actor.generate([transcript], SamplingParams(max_tokens=10_000))[0]
    assert out.text == rest and out.finish_reason == "eos"


def test_an_unknown_problem_gets_an_answer_the_filter_rejects() -> None:
    actor = ReferenceActor(PROBLEMS, tiny_tokenizer())
    out = actor.generate([prompt_for(actor, "What is 1 + 1?")], SamplingParams(max_tokens=64))[0]
    assert "\\boxed{?}" in out.text
    assert "\\boxed{?}" in actor.generate(["no chat template of mine"], SamplingParams())[0].text


def test_drives_tirgen_to_tool_integrated_samples(tmp_path: Path) -> None:
    src = write_problems_jsonl(PROBLEMS, tmp_path / "train.jsonl")
    funnel = run_tirgen(
        TirgenConfig(
            problems=str(src),
            out=tmp_path / "out",
            actor="reference",
            critic="rule",
            preset="cpu",
            step_tokens=64,
            min_critic_tokens=8,
            low_quality_fraction=1.0,
            max_one_call_fraction=1.0,
            difficulty=False,
            progress=False,
        ),
        actor=ReferenceActor(PROBLEMS, tiny_tokenizer()),
    )
    rows = [json.loads(x) for x in (tmp_path / "out" / "sft.jsonl").read_text().splitlines()]
    assert funnel.samples == len(rows) >= len(PROBLEMS) - 2
    for row in rows:
        text = row["completion"][0]["content"]
        assert "```python" in text and "```output" in text
        assert text.rstrip().endswith("\\boxed{" + row["provenance"]["gold_answer"] + "}$.")
        assert row["provenance"]["actor"] == "reference-actor"
