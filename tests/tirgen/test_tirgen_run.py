"""run_tirgen end to end with a scripted actor: outputs, resumption, bad input, the funnel."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from tirgen_fakes import ScriptedCriticPolicy, SolutionActor

from thor.data.synthetic import generate_problems, write_problems_jsonl
from thor.data.tirgen import LLMCritic, RuleCritic, TirgenConfig, run_tirgen, token_loss_mask
from thor.errors import ConfigError
from thor.types import Problem

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def problems() -> list[Problem]:
    return generate_problems(12, seed=11, families=["arithmetic", "modular", "combinatorics"])


@pytest.fixture
def problems_file(tmp_path: Path, problems: list[Problem]) -> Path:
    return write_problems_jsonl(problems, tmp_path / "problems.jsonl")


def cfg(problems_file: Path, out: Path, **kw: object) -> TirgenConfig:
    base: dict[str, object] = {
        "problems": str(problems_file),
        "out": out,
        "step_tokens": 64,
        "attempts": 2,
        "max_response_tokens": 3000,
        "difficulty": False,
        "progress": False,
        "max_one_call_fraction": 1.0,
    }
    base.update(kw)
    return TirgenConfig(**base)


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def records(out: Path) -> list[dict]:
    return [r for r in rows(out / "records.jsonl") if r.get("type") == "problem"]


def test_a_run_writes_sft_rows_records_and_the_funnel(
    tmp_path: Path, problems_file: Path, problems: list[Problem]
) -> None:
    out = tmp_path / "out"
    funnel = run_tirgen(cfg(problems_file, out), actor=SolutionActor(problems), critic=RuleCritic())
    recs = records(out)
    assert sorted(r["problem_id"] for r in recs) == sorted(p.id for p in problems)
    sft = rows(out / "sft.jsonl")
    assert funnel.samples == len(sft) > 0
    assert funnel.stage("input").entered == len(problems)
    assert json.loads((out / "funnel.json").read_text())["samples"] == len(sft)
    by_id = {p.id: p for p in problems}
    for row in sft:
        prov = row["provenance"]
        assert [m["role"] for m in row["prompt"]] == ["system", "user"]
        assert row["prompt"][1]["content"] == by_id[prov["problem_id"]].problem
        [msg] = row["completion"]
        assert msg["role"] == "assistant"
        text = msg["content"]
        model = "".join(text[a:b] for a, b in row["model_spans"])
        assert "```output" not in model and "```python" in model
        assert len(model) + sum(len(e["output"]) for e in prov["executions"]) == len(text)
        assert prov["calls"] == text.count("```python") == len(prov["executions"])
        assert {"attempt", "actor", "critic", "created", "executions"} <= set(prov)
        assert prov["actor"] == "solution-actor" and prov["critic"] == "rule"
    # every stage adds up
    for s in funnel.stages:
        assert s.kept + s.dropped == s.entered


def test_resuming_a_finished_run_changes_nothing(
    tmp_path: Path, problems_file: Path, problems: list[Problem]
) -> None:
    out = tmp_path / "out"
    first = run_tirgen(cfg(problems_file, out), actor=SolutionActor(problems), critic=RuleCritic())
    sft = (out / "sft.jsonl").read_text()
    again = SolutionActor(problems)
    second = run_tirgen(cfg(problems_file, out), actor=again, critic=RuleCritic())
    assert again.calls == 0
    assert (out / "sft.jsonl").read_text() == sft
    assert len(records(out)) == len(problems)
    assert second.stages == first.stages


def test_a_larger_limit_extends_the_run(
    tmp_path: Path, problems_file: Path, problems: list[Problem]
) -> None:
    out = tmp_path / "out"
    run_tirgen(cfg(problems_file, out, limit=5), actor=SolutionActor(problems), critic=RuleCritic())
    assert len(records(out)) == 5
    actor = SolutionActor(problems)
    run_tirgen(cfg(problems_file, out, limit=9, concurrency=3), actor=actor, critic=RuleCritic())
    ids = [r["problem_id"] for r in records(out)]
    assert len(ids) == len(set(ids)) == 9


def test_other_settings_refuse_to_resume(
    tmp_path: Path, problems_file: Path, problems: list[Problem]
) -> None:
    out = tmp_path / "out"
    run_tirgen(cfg(problems_file, out, limit=2), actor=SolutionActor(problems), critic=RuleCritic())
    with pytest.raises(ConfigError, match="step_tokens"):
        run_tirgen(
            cfg(problems_file, out, limit=2, step_tokens=80),
            actor=SolutionActor(problems),
            critic=RuleCritic(),
        )


def test_a_truncated_record_file_is_repaired_with_a_message(
    tmp_path: Path, problems_file: Path, problems: list[Problem], caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "out"
    run_tirgen(cfg(problems_file, out, limit=4), actor=SolutionActor(problems), critic=RuleCritic())
    path = out / "records.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    last = json.loads(lines[-1])["problem_id"]
    path.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # killed mid-write
    with caplog.at_level(logging.WARNING):
        run_tirgen(
            cfg(problems_file, out, limit=4), actor=SolutionActor(problems), critic=RuleCritic()
        )
    assert "half-written last line" in caplog.text
    ids = [r["problem_id"] for r in records(out)]
    assert sorted(ids) == sorted(p.id for p in problems[:4]) and ids[-1] == last


def test_problems_without_answers_are_counted(tmp_path: Path, problems: list[Problem]) -> None:
    path = tmp_path / "mixed.jsonl"
    lines = [
        {"id": "no-answer", "problem": "What is love?"},
        {"id": "blank", "problem": "Hm?", "answer": "  "},
    ]
    lines += [{"id": p.id, "problem": p.problem, "answer": p.answer} for p in problems[:2]]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    funnel = run_tirgen(
        cfg(path, tmp_path / "out"), actor=SolutionActor(problems), critic=RuleCritic()
    )
    stage = funnel.stage("answer")
    assert stage.dropped == 2 and stage.reasons == {"no_answer": 2}
    assert {r["problem_id"]: r["stage"] for r in records(tmp_path / "out")}["no-answer"] == "answer"


def test_bad_critic_output_and_failing_code_are_counted_not_fatal(
    tmp_path: Path, problems_file: Path, problems: list[Problem]
) -> None:
    replies = iter(
        [
            "",
            "```python\n```python\nprint(1)\n```\n",
            "no code here",
            "```python\nwhile True:\n    pass\n```",
        ]
        * 200
    )

    def respond(step: str) -> str:
        reply = next(replies)
        return step + reply if "while" in reply else reply

    funnel = run_tirgen(
        cfg(problems_file, tmp_path / "out", cell_timeout_s=0.5, limit=4),
        actor=SolutionActor(problems),
        critic=LLMCritic(ScriptedCriticPolicy(respond)),
    )
    ev = funnel.events
    assert ev.get("critic_malformed", 0) + ev.get("critic_not_verbatim", 0) >= 1
    assert ev.get("critic_no_code", 0) >= 1
    reasons = funnel.stage("attempts").reasons
    assert reasons.get("exec_timeout", 0) >= 1


def test_the_cot_agent_drops_problems_it_already_solves(
    tmp_path: Path, problems_file: Path, problems: list[Problem]
) -> None:
    easy = [p.problem for p in problems[:3]]
    out = tmp_path / "out"
    funnel = run_tirgen(
        cfg(problems_file, out, difficulty=True, cot_samples=1, cot_max_tokens=2000, limit=6),
        actor=SolutionActor(problems, easy=easy),
        critic=RuleCritic(),
    )
    stage = funnel.stage("difficulty")
    assert stage.reasons == {"cot_solved": 3}
    dropped = {r["problem_id"] for r in records(out) if r["stage"] == "difficulty"}
    assert dropped == {p.id for p in problems[:3]}
    episodes = [r for r in rows(out / "difficulty.jsonl") if r.get("type") == "episode"]
    assert len(episodes) == 6 and {e["episode"]["metadata"]["agent"] for e in episodes} == {"cot"}


def test_model_spans_make_a_token_mask(
    tmp_path: Path, problems_file: Path, problems: list[Problem]
) -> None:
    from thor.testing import tiny_tokenizer

    out = tmp_path / "out"
    run_tirgen(cfg(problems_file, out, limit=6), actor=SolutionActor(problems), critic=RuleCritic())
    row = rows(out / "sft.jsonl")[0]
    text = row["completion"][0]["content"]
    tok = tiny_tokenizer()
    ids, mask = token_loss_mask(tok, text, row["model_spans"])
    assert len(ids) == len(mask) and 0 < sum(mask) < len(mask)
    masked = tok.decode([i for i, m in zip(ids, mask, strict=True) if not m])
    for e in row["provenance"]["executions"]:
        body = e["output"].strip().removeprefix("```output\n").removesuffix("```").strip()
        assert body in masked
