"""TIRGen critics: the LLM critic's parsing, the rule critic's recognition, and the verbatim rule."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tirgen_fakes import ScriptedCriticPolicy

from thor.data.synthetic import generate_problems, render_solution
from thor.data.tirgen import (
    CriticResult,
    LLMCritic,
    Part,
    RuleCritic,
    check_rewrite,
    parse_rewrite,
    rewrite_steps,
)
from thor.data.tirgen.critic import CRITIC_SYSTEM
from thor.data.tirgen.text import same_text, text_of_parts

STEP = "First we multiply 4821 by 3967 to get the total.\nThen we add the two parts.\n"
BLOCK = "```python\nprint(4821 * 3967)\n```"


def rewritten(step: str = STEP) -> str:
    first, rest = step.split("\n", 1)
    return f"{first}\n{BLOCK}\n{rest}"


# -- parse_rewrite: what an LLM critic writes ------------------------------------------------------
def test_clean_rewrite_in_tags() -> None:
    r = parse_rewrite(STEP, f"<rewrite>\n{rewritten()}</rewrite>")
    assert r.status == "code" and r.blocks == ["print(4821 * 3967)"]
    assert text_of_parts(r.parts).replace("\n", "") == STEP.replace("\n", "")


def test_prose_around_the_rewrite_is_trimmed() -> None:
    raw = f"Sure! Here is the step with code:\n\n{rewritten()}\nI hope this helps, let me know."
    r = parse_rewrite(STEP, raw)
    assert r.status == "code" and "prose_trimmed" in r.notes
    assert same_text(text_of_parts(r.parts), STEP)
    assert r.blocks == ["print(4821 * 3967)"]


def test_block_right_after_the_step_is_kept_when_prose_follows() -> None:
    raw = f"{STEP}{BLOCK}\nThat is all."
    r = parse_rewrite(STEP, raw)
    assert r.status == "code" and r.blocks == ["print(4821 * 3967)"]


def test_predicted_output_is_dropped() -> None:
    raw = f"{rewritten()}".replace(BLOCK, BLOCK + "\n```output\n12345\n```")
    r = parse_rewrite(STEP, raw)
    assert r.status == "code" and "predicted_output_dropped" in r.notes
    assert "12345" not in "".join(p.text for p in r.parts)


def test_nested_and_unclosed_fences_are_repaired() -> None:
    nested = rewritten().replace(BLOCK, "```python\n```python\nprint(4821 * 3967)\n```")
    r = parse_rewrite(STEP, nested)
    assert r.status == "code" and "nested_fence" in r.notes
    unclosed = STEP + "```python\nprint(4821 * 3967)\n"
    r = parse_rewrite(STEP, unclosed)
    assert r.status == "code" and "unclosed_fence" in r.notes and r.blocks == ["print(4821 * 3967)"]


def test_no_code_empty_and_malformed_outputs() -> None:
    assert parse_rewrite(STEP, STEP).status == "no_code"
    assert parse_rewrite(STEP, "").status == "malformed"
    assert parse_rewrite(STEP, "   \n").status == "malformed"
    broken = "```python\nprint(1)\nand the reasoning went into the code block by mistake"
    assert parse_rewrite(STEP, broken).status in ("malformed", "not_verbatim")


def test_a_template_replacing_the_reasoning_is_rejected() -> None:
    template = "Let's solve this step by step using python.\n```python\nprint(4821 * 3967)\n```\n"
    r = parse_rewrite(STEP, template)
    assert r.status == "not_verbatim" and r.parts == []


def test_check_rewrite_rejects_changed_text_whatever_the_critic_says() -> None:
    lying = CriticResult(
        status="code",
        parts=[Part(kind="text", text="A summary.\n"), Part(kind="code", text="print(1)")],
    )
    assert check_rewrite(STEP, lying).status == "not_verbatim"
    empty_code = CriticResult(
        status="code", parts=[Part(kind="text", text=STEP), Part(kind="code", text="  ")]
    )
    assert check_rewrite(STEP, empty_code).status == "no_code"
    spaced = CriticResult(
        status="code",
        parts=[Part(kind="text", text=STEP.replace(" ", "  ")), Part(kind="code", text="print(1)")],
    )
    assert check_rewrite(STEP, spaced).status == "code"  # whitespace alone may change


# -- LLMCritic over a policy ---------------------------------------------------------------------
def test_llm_critic_batches_and_keeps_the_text() -> None:
    policy = ScriptedCriticPolicy(lambda step: rewritten(step) + "</rewrite>")
    critic = LLMCritic(policy)
    steps = [STEP, STEP.replace("4821", "5000")]
    results = rewrite_steps(critic, steps)
    assert policy.calls == 1  # one generate call for every step
    for step, r in zip(steps, results, strict=True):
        assert r.status == "code"
        assert same_text(text_of_parts(r.parts), step)


def test_llm_critic_prompt_sees_only_the_step() -> None:
    critic = LLMCritic(ScriptedCriticPolicy(lambda s: s))
    prompt = critic.prompt("STEP TEXT\n")
    assert "STEP TEXT" in prompt and prompt.endswith("<rewrite>\n")
    assert "python" in CRITIC_SYSTEM and "exactly" in CRITIC_SYSTEM


def test_a_critic_that_raises_is_recorded_not_fatal() -> None:
    class Broken:
        name = "broken"

        def rewrite(self, step: str) -> CriticResult:
            raise RuntimeError("model fell over")

    [r] = rewrite_steps(Broken(), [STEP])
    assert r.status == "error" and "model fell over" in r.reason


# -- RuleCritic ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("step", "code"),
    [
        ("The product is 463 × 920 × 128 = 54522880.", "print(463 * 920 * 128)"),
        ("We need $4821 \\times 3967$.", "print(4821 * 3967)"),
        ("Then 4^580 mod 201 = 169.", "print(pow(4, 580, 201))"),
        ("So 89^(-1) \\bmod 349 = 200.", "print(pow(89, -1, 349))"),
        ("Its remainder is 54522880 mod 16.", "print(54522880 % 16)"),
        ("There are \\binom{39}{8} ways.", "import math\nprint(math.comb(39, 8))"),
        ("There are C(12, 3) ways.", "import math\nprint(math.comb(12, 3))"),
        ("and gcd(84, 126) = 42.", "import math\nprint(math.gcd(84, 126))"),
        ("So $6^{36} = 10314424798490535546171949056$.", "print(6**36)"),
        ("Adding: 4106 + 939 = 5045.", "print(4106 + 939)"),
    ],
)
def test_rule_critic_recognises(step: str, code: str) -> None:
    assert code in RuleCritic().rewrite(step).blocks


def test_rule_critic_solves_equations_with_sympy() -> None:
    [code] = RuleCritic().rewrite("Solve 5x - 7 = 3x + 9 first.").blocks
    assert "sp.solve(sp.Eq(5*x - 7, 3*x + 9), x)" in code


@pytest.mark.parametrize(
    "step",
    [
        "Let us think about it.",
        "Step 1: 4 + 5 = 9.",
        "Pages 1-100, in 2023.",
        "So x = 8.",
        "It is 3/4 of them.",
    ],
)
def test_rule_critic_leaves_trivial_or_non_computations(step: str) -> None:
    assert RuleCritic().rewrite(step).status == "no_code"


def test_rule_critic_caps_blocks_per_step() -> None:
    step = "".join(f"We have {10 + i} * {20 + i} = ?\n" for i in range(8))
    assert len(RuleCritic(max_blocks=5).rewrite(step).blocks) == 5


# -- the actor's text survives verbatim around the code, for both critics ------------------------
@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 10_000),
    st.sampled_from(["arithmetic", "modular", "combinatorics", "equations", "series"]),
)
def test_rule_critic_keeps_the_text_verbatim(seed: int, family: str) -> None:
    [p] = generate_problems(1, seed=seed, families=[family])
    step = render_solution(p)
    r = RuleCritic().rewrite(step)
    assert text_of_parts(r.parts) == step if r.status == "code" else r.parts == []


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789 +-*/^=()x.,\nabmod")), max_size=120))
def test_rule_critic_never_changes_any_text(step: str) -> None:
    r = RuleCritic().rewrite(step)
    if r.status == "code":
        assert text_of_parts(r.parts) == step
        assert check_rewrite(step, r).status == "code"


def test_llm_critic_output_keeps_the_actors_words() -> None:
    steps = [render_solution(p) for p in generate_problems(5, seed=7)]

    def respond(step: str) -> str:  # a critic that inserts a block after every line
        return "".join(
            line + "```python\nprint(1 + 1)\n```\n" for line in step.splitlines(keepends=True)
        )

    for step, r in zip(
        steps, LLMCritic(ScriptedCriticPolicy(respond)).rewrite_batch(steps), strict=True
    ):
        assert r.status == "code"
        assert text_of_parts(r.parts).replace("\n", "") == step.replace("\n", "")


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_llm_critic_with_the_embedded_model() -> None:
    """SmolLM2-135M as critic: whatever it writes is read without error and checked verbatim."""
    from thor.agents.backends.hf import HFPolicy

    policy = HFPolicy(model="embedded", dtype="float32")
    try:
        critic = LLMCritic(policy, max_tokens=160)
        steps = [STEP, "The remainder of 2^50 modulo 13 is what we need, so we compute it.\n"]
        for step, r in zip(steps, rewrite_steps(critic, steps), strict=True):
            assert r.status in ("code", "no_code", "not_verbatim", "malformed")
            assert r.raw.startswith("<rewrite>")
            if r.status == "code":
                assert same_text(text_of_parts(r.parts), step)
    finally:
        policy.close()
