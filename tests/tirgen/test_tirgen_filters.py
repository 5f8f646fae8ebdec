"""TIRGen's filter stages, each on its own."""

from __future__ import annotations

import pytest

from thor.data.tirgen import (
    Piece,
    balance_by_calls,
    check_answer,
    check_code_quality,
    check_difficulty,
    check_format,
    check_repetition,
    is_low_quality,
    judge_sample,
)
from thor.data.tirgen.text import code_piece, output_piece
from thor.rewards.verifier import Verdict as VerifierVerdict
from thor.types import ExecResult


def text(t: str) -> Piece:
    return Piece(kind="text", text=t)


def call(code: str, out: str = "42\n") -> list[Piece]:
    return [code_piece(code), output_piece(ExecResult(status="ok", stdout=out))]


GOOD = [
    text("We compute.\n"),
    *call("import math\nprint(math.comb(7, 2))", "21\n"),
    text("So \\boxed{21}."),
]


class FakeVerifier:
    """Equality of stripped strings; records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    def verify_response(self, gold: str, response: str) -> VerifierVerdict:
        from thor.text.protocol import extract_boxed

        pred = extract_boxed(response) or ""
        self.asked.append((gold, pred))
        return VerifierVerdict(equal=pred.strip() == gold.strip(), reason="fake")


# -- format --------------------------------------------------------------------------------------
def test_format_accepts_a_well_formed_sample() -> None:
    assert check_format(GOOD).ok


@pytest.mark.parametrize(
    ("pieces", "reason"),
    [
        ([text("No code. \\boxed{1}")], "no_code"),
        ([text("A.\n"), *call("print(1)"), text("No answer.")], "no_boxed_answer"),
        (
            [text("A.\n```python\nprint(9)\n```\n"), *call("print(1)"), text("\\boxed{1}")],
            "unexecuted_block",
        ),
        (
            [text("A.\n```output\n5\n```\n"), *call("print(1)"), text("\\boxed{1}")],
            "stray_output_block",
        ),
        ([text("A.\n"), code_piece("print(1)"), text("\\boxed{1}")], "block_without_output"),
    ],
)
def test_format_rejections(pieces: list[Piece], reason: str) -> None:
    v = check_format(pieces)
    assert not v.ok and v.reason == reason


def test_format_rejects_an_unclosed_actor_block() -> None:
    pieces = [text("A.\n"), *call("print(1)"), text("\\boxed{1}\n```python\nprint(2)\n")]
    assert check_format(pieces).reason == "unclosed_block"


# -- code quality ----------------------------------------------------------------------------------
def test_low_quality_rules() -> None:
    trivial = "print(12 * 13)"
    library = "import sympy\nprint(sympy.factorint(360))"
    loop = "t = 0\nfor k in range(10):\n    t += k\nprint(t)"
    long_plain = "\n".join(f"a{i} = {i}" for i in range(6)) + "\nprint(a5)"
    assert is_low_quality(trivial) and not is_low_quality(library) and not is_low_quality(loop)
    assert not is_low_quality("print(pow(4, 580, 201))")  # modular exponentiation
    assert is_low_quality(loop, "release") and not is_low_quality(long_plain, "release")
    assert is_low_quality(trivial, "either") and not is_low_quality(long_plain, "either")
    assert is_low_quality("# a comment\n" * 9 + "print(1)", "release")  # comments do not count


def test_code_quality_threshold_is_ceil_of_forty_percent() -> None:
    good, bad = "import math\nprint(math.pi)", "print(2 * 3)"
    assert check_code_quality([bad], [True]).ok  # 1 <= ceil(0.4)
    assert not check_code_quality([bad, bad], [True, True]).ok  # 2 > ceil(0.8) = 1
    assert check_code_quality([bad, good], [True, True]).ok
    assert check_code_quality([bad, bad, good, good, good], [True] * 5).ok  # 2 <= ceil(2.0)
    assert not check_code_quality([bad, bad, bad, good, good], [True] * 5).ok


def test_code_quality_needs_every_block_to_have_run() -> None:
    v = check_code_quality(["import math\nprint(1)"], [False])
    assert not v.ok and v.reason == "block_failed"


# -- answer, repetition, difficulty ------------------------------------------------------------
def test_answer_uses_the_verifier() -> None:
    v = FakeVerifier()
    assert check_answer("so \\boxed{21}", "21", v).ok
    assert check_answer("so \\boxed{20}", "21", v).reason == "wrong_answer"
    assert check_answer("so \\boxed{21}", None, v).reason == "no_gold_answer"
    assert v.asked == [("21", "21"), ("21", "20")]


def test_answer_with_the_real_verifier() -> None:
    from thor.rewards import default_verifier

    assert check_answer("thus \\boxed{\\frac{1}{2}}", "0.5", default_verifier()).ok


def test_repetition_is_thor_s_twenty_by_twenty_rule() -> None:
    assert check_repetition("I think so. " * 30).reason == "repetition"
    assert check_repetition("I think so. " * 3).ok
    assert check_repetition("".join(f"step {i} gives {i * i}; " for i in range(200))).ok


def test_difficulty() -> None:
    assert check_difficulty(None).ok  # not evaluated
    assert check_difficulty(0.0).ok and check_difficulty(0.25).ok
    assert check_difficulty(0.5).reason == "cot_solved" and not check_difficulty(1.0).ok
    assert check_difficulty(0.25, solved_at=0.25).reason == "cot_solved"


# -- balance ---------------------------------------------------------------------------------------
def test_balance_down_samples_the_one_call_bucket() -> None:
    calls = {f"one{i}": 1 for i in range(10)} | {f"two{i}": 2 for i in range(3)} | {"five": 5}
    kept, dropped = balance_by_calls(calls, 0.5, seed=0)
    assert {k for k in kept if k.startswith("two")} == {"two0", "two1", "two2"} and "five" in kept
    assert len([k for k in kept if k.startswith("one")]) == 4 and len(dropped) == 6
    assert balance_by_calls(calls, 0.5, seed=0) == (kept, dropped)  # stable
    assert balance_by_calls(calls, 1.0)[1] == set()  # 1.0 keeps all
    kept2, _ = balance_by_calls(calls, 0.5, seed=1)
    assert len(kept2) == len(kept)


def test_balance_with_only_one_call_samples_keeps_them(caplog: pytest.LogCaptureFixture) -> None:
    # nothing to balance against: emptying the output would help no one
    kept, dropped = balance_by_calls({"a": 1, "b": 1}, 0.5)
    assert kept == {"a", "b"} and dropped == set()
    assert "all 2 samples have one call" in caplog.text
    assert balance_by_calls({"a": 1, "b": 1, "c": 2}, 0.5)[0] >= {"c"}


# -- all per-sample stages in order ------------------------------------------------------------
def test_judge_sample_names_the_first_failing_stage() -> None:
    v = FakeVerifier()
    assert judge_sample(GOOD, [True], "21", v) == ("", "")
    assert judge_sample(GOOD, [True], "22", v) == ("answer", "wrong_answer")
    assert judge_sample([text("\\boxed{21}")], [], "21", v) == ("format", "no_code")
    two_bad = [text("A.\n"), *call("print(1 * 2)"), *call("print(3 * 4)"), text("\\boxed{21}")]
    assert judge_sample(two_bad, [True, True], "21", v) == ("code_quality", "low_quality_blocks")
    looping = [text("again and again " * 30), *GOOD]
    assert judge_sample(looping, [True], "21", v) == ("repetition", "repetition")
    # tool outputs may repeat themselves: only model-written text is judged for repetition
    noisy = [
        text("A.\n"),
        *call("import math\nprint([1] * 300)", "[1, 1, 1, " * 80),
        text("\\boxed{21}"),
    ]
    assert judge_sample(noisy, [True], "21", v) == ("", "")
