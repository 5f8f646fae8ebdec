"""TIRGen on GSM8K: the GSM8K rule critic, the critic registry, and the reference actor end to end
with the real sandbox."""

from __future__ import annotations

import ast
import json
import random
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tirgen_fakes import ScriptedCriticPolicy

from thor.data import load_problems
from thor.data.gsm8k import ANNOTATION, exact_value, reference_actor, render_solution
from thor.data.tirgen import (
    GSM8KCritic,
    LLMCritic,
    RuleCritic,
    TirgenConfig,
    build_critic,
    check_rewrite,
    is_low_quality,
    make_critic,
    rewrite_steps,
    run_tirgen,
)
from thor.data.tirgen.text import text_of_parts
from thor.errors import ConfigError, DatasetError, UnknownNameError
from thor.registries import CRITICS
from thor.testing import tiny_tokenizer
from thor.types import Problem, SamplingParams

TRAIN = load_problems("gsm8k_train")
STEP = (
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
    "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n"
    "The answer is $\\boxed{72}$."
)


def names_defined_before_use(blocks: list[str]) -> bool:
    """Every name a cell reads was assigned by an earlier statement (same or earlier cell)."""
    defined = {"print"}
    for code in blocks:
        for stmt in ast.parse(code).body:
            loads = {
                n.id
                for n in ast.walk(stmt)
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
            }
            if not loads <= defined:
                return False
            if isinstance(stmt, ast.Assign):
                defined |= {t.id for t in stmt.targets if isinstance(t, ast.Name)}
    return True


def test_annotations_become_named_cells_before_their_line() -> None:
    r = GSM8KCritic().rewrite(STEP)
    assert r.status == "code"
    assert r.blocks == [
        "clips = 48 / 2\nprint(clips)",
        "clips_altogether = 48 + clips\nprint(clips_altogether)",
    ]
    assert [p.kind for p in r.parts] == ["code", "text", "code", "text"]
    assert r.parts[1].text == "Natalia sold 48/2 = 24 clips in May.\n"
    assert "<<" not in text_of_parts(r.parts)


def test_a_number_given_before_is_not_replaced_by_a_variable() -> None:
    # 2 is in the text before the first result (also 2): it is data, not that result
    step = "He has 2 cats and 1+1 = <<1+1=2>>2 dogs.\nIn all 2*2 = <<2*2=4>>4 pets.\n"
    assert GSM8KCritic().rewrite(step).blocks[1] == "pets = 2 * 2\nprint(pets)"


def test_trivial_annotations_get_no_cell_but_are_removed() -> None:
    critic = GSM8KCritic()
    step = "The record is 1,148 because 287 x 4 = <<1148=1148>>1,148\n"
    assert critic.rewrite(step).status == "no_code"
    assert critic.clean(step) == "The record is 1,148 because 287 x 4 = 1,148\n"


def test_numbers_without_a_leading_zero_are_computed() -> None:
    # GSM8K writes "2-.5" and "8/.2": they compute (an earlier rule missed them: 14 solutions lost)
    r = GSM8KCritic().rewrite("It is 2-.5 = <<2-.5=1.5>>1.5 miles.\n")
    assert r.blocks == ["miles = 2 - .5\nprint(miles)"]
    assert GSM8KCritic().rewrite("So +7 = <<+7=7>>7 more.\n").status == "no_code"


def test_rounded_values_are_not_reused_by_name() -> None:
    step = "Each gets 10/3 = <<10/3=3.33>>3.33 pies.\nSo 3.33*3 = <<3.33*3=9.99>>9.99 pies.\n"
    assert GSM8KCritic().rewrite(step).blocks[1] == "pies_2 = 3.33 * 3\nprint(pies_2)"


def test_many_lines_share_at_most_max_blocks_cells() -> None:
    step = "".join(f"Step {i}: {i}+10 = <<{i}+10={i + 10}>>{i + 10} apples.\n" for i in range(9))
    r = GSM8KCritic(max_blocks=5).rewrite(step)
    assert len(r.blocks) == 5 and names_defined_before_use(r.blocks)
    assert sum(b.count(" = ") for b in r.blocks) == 9


def test_every_gsm8k_train_solution_keeps_its_words() -> None:
    critic = GSM8KCritic()
    steps = [render_solution(p) for p in TRAIN]
    results = rewrite_steps(critic, steps)
    statuses = {r.status for r in results}
    assert statuses <= {"code", "no_code"}  # never a changed text
    coded = [r for r in results if r.status == "code"]
    assert len(coded) > 0.95 * len(TRAIN)
    for step, r in zip(steps, results, strict=True):
        if r.status == "code":
            assert check_rewrite(critic.clean(step), r).status == "code"
            assert names_defined_before_use(r.blocks)
            assert not any("<<" in p.text for p in r.parts)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(1, 999),
            st.sampled_from("+-*/"),
            st.integers(1, 999),
            st.sampled_from(["apples", "dollars", "", "more"]),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_cells_compute_each_annotation_exactly(lines: list[tuple[int, str, int, str]]) -> None:
    """Whatever the numbers, each cell's expression (names replaced by their exact values) has the
    annotation's value: reusing earlier results by name never changes the arithmetic."""
    step = ""
    for a, op, b, word in lines:
        value = exact_value(f"{a}{op}{b}")
        shown = (
            str(value) if value is not None and value.denominator == 1 else f"{float(value):.2f}"
        )  # type: ignore[arg-type]
        step += f"So {a}{op}{b} = <<{a}{op}{b}={shown}>>{shown} {word}.\n"
    r = GSM8KCritic(max_blocks=10).rewrite(step)
    env: dict[str, Fraction] = {}
    got = []
    for code in r.blocks:
        for line in code.splitlines()[:-1]:
            name, expr = line.split(" = ", 1)
            for k, v in sorted(env.items(), key=lambda kv: -len(kv[0])):
                expr = expr.replace(k, f"({v.numerator}/{v.denominator})")
            value = exact_value(expr)
            assert value is not None
            env[name] = value
            got.append(value)
    assert got == [exact_value(f"{a}{op}{b}") for a, op, b, _ in lines]


def test_the_computes_rule_rejects_copies_not_arithmetic() -> None:
    assert is_low_quality("print(24)", "computes")
    assert is_low_quality("x = 24\nprint(x)", "computes")
    assert not is_low_quality("clips = 48 / 2\nprint(clips)", "computes")
    assert is_low_quality("clips = 48 / 2\nprint(clips)", "paper")  # why GSM8K needs its own rule


# -- the registry ----------------------------------------------------------------------------------
def test_critics_are_registered_with_typed_configs() -> None:
    assert {"rule", "llm", "gsm8k"} <= set(CRITICS.names())
    assert isinstance(make_critic("rule", {"max_blocks": 2}), RuleCritic)
    assert make_critic("gsm8k", {"max_blocks": 2}).max_blocks == 2  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="max_blocks"):
        make_critic("gsm8k", {"max_block": 2})
    with pytest.raises(UnknownNameError, match="gsm8k"):
        make_critic("gsm8")
    with pytest.raises(ConfigError, match="needs a model"):
        make_critic("llm")


def test_the_tirgen_config_chooses_the_critic_by_name(tmp_path: Path) -> None:
    cfg = TirgenConfig(out=tmp_path, critic="gsm8k", critic_options={"max_blocks": 3})
    critic = build_critic(cfg, None)
    assert isinstance(critic, GSM8KCritic) and critic.max_blocks == 3
    with pytest.raises(ValueError, match="max_blocks"):
        TirgenConfig(out=tmp_path, critic="gsm8k", critic_options={"max_block": 3})
    policy = ScriptedCriticPolicy(lambda s: s)
    shared = build_critic(TirgenConfig(out=tmp_path, critic="llm"), policy)
    assert isinstance(shared, LLMCritic) and shared.policy is policy  # the actor's model
    legacy = TirgenConfig(out=tmp_path, critic="embedded")  # a model name: the llm critic
    assert legacy.critic_spec() == ("llm", {"model": "embedded", "backend": "hf"})
    assert build_critic(legacy, policy).policy is policy  # type: ignore[attr-defined]
    assert "critic_options" not in TirgenConfig(out=tmp_path).manifest()  # old runs resume


# -- the reference actor and a real run ----------------------------------------------------------
def test_render_solution_boxes_the_answer_and_refuses_a_problem_without_one() -> None:
    text = render_solution(TRAIN[0])
    assert text.endswith("The answer is $\\boxed{72}$.") and "####" not in text
    with pytest.raises(DatasetError):
        render_solution(Problem(id="x", problem="?", answer="1"))


def test_the_actor_continues_after_a_rewritten_step() -> None:
    p = TRAIN[0]
    actor = reference_actor([p], tiny_tokenizer())
    prompt = actor.apply_chat_template([{"role": "user", "content": p.problem}])
    first = render_solution(p).split("\n", 1)[0] + "\n"
    rewritten = GSM8KCritic().rewrite(first)
    done = "```python\nclips = 48 / 2\nprint(clips)\n```\n```output\n24.0\n```\n"
    done += text_of_parts(rewritten.parts)
    out = actor.generate([prompt + done], SamplingParams(max_tokens=10_000))[0]
    assert out.text == render_solution(p).split("\n", 1)[1]
    assert ANNOTATION.search(out.text)  # the next line's annotation comes with it


def test_tirgen_on_gsm8k_makes_real_tool_integrated_rows(tmp_path: Path) -> None:
    problems = random.Random(0).sample(TRAIN, 24)
    src = tmp_path / "train.jsonl"
    src.write_text(
        "".join(
            json.dumps({"id": p.id, "problem": p.problem, "answer": p.answer, **p.metadata}) + "\n"
            for p in problems
        )
    )
    funnel = run_tirgen(
        TirgenConfig(
            problems=str(src),
            out=tmp_path / "out",
            actor="reference",
            critic="gsm8k",
            preset="gsm8k",
            difficulty=False,
            code_quality_rule="computes",
            max_one_call_fraction=1.0,
            progress=False,
        ),
        actor=reference_actor(problems, tiny_tokenizer()),
    )
    rows = [json.loads(x) for x in (tmp_path / "out" / "sft.jsonl").read_text().splitlines()]
    assert funnel.samples == len(rows) >= 20
    by_id = {p.id: p for p in problems}
    for row in rows:
        text = row["completion"][0]["content"]
        assert "<<" not in text and text.endswith("}$.")
        prov = row["provenance"]
        assert prov["critic"] == "gsm8k"
        claimed = [
            m.group(2) for m in ANNOTATION.finditer(by_id[prov["problem_id"]].metadata["solution"])
        ]
        for ex in prov["executions"]:  # the real outputs: what the annotations claimed
            assert ex["ok"] and ex["status"] == "ok"
        printed = [v for ex in prov["executions"] for v in ex["output"].split("\n")[2].split()]
        values = [float(v) for v in printed]
        assert all(any(abs(v - float(c)) < 0.01 for c in claimed) for v in values)
