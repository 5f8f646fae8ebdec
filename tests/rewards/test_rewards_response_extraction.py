r"""The ``math_verify`` extraction mode: answers outside ``\boxed{}``, found as math-verify finds them.

Boxed-only stays the training default; ``mode="math_verify"`` is for evaluating models that do not
box. The shapes below are derived from math-verify 0.9's own test cases (its ``tests/test_all.py``
``test_latex_notation`` and ``test_math_extraction_additional_cases``, ``tests/test_numina_cases.py``,
``tests/test_open_thoughts.py``; Apache-2.0), written anew and shortened; the full agreement
measurement over all its cases is ``benchmarks/verify_agreement.py`` (docs/verification.md).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from thor.rewards import CorrectReward, FormatReward, Verifier, VerifierConfig, extract_answer
from thor.types import Episode, Turn


@pytest.fixture(scope="module")
def verifier() -> Iterator[Verifier]:
    with Verifier(VerifierConfig(workers=2, timeout_s=30.0)) as v:
        yield v


FOUND = [
    # answers in math delimiters, display or inline
    ("9", "So the result is $ 9 $"),
    ("9", "Answer \\[ 9 \\]"),
    ("9", "Answer $$ 9 $$"),
    ("9", "Answer \\( 9 \\)"),
    ("10", "Answer \\( (9+1) \\)"),
    ("\\frac{10}{9}", "We get $ \\frac{1}{2} \\$ = \\frac{10}{9} $"),
    ("\\frac{1}{3}", "It is $k = \\frac{1}{3}$"),
    # after "the (final) answer is"
    ("28\\%", "Final Answer: The final answer is $28 \\%$. I hope it is correct."),
    ("\\frac{1}{2}", "Thus the answer is 1/2"),
    ("14916", "Final Answer: The final answer is $14{,}916$. I hope it is correct."),
    # several boxes, or a box among other mathematics
    ("\\{1,2,3\\}", "\\boxed{1} and \\boxed{2} and \\boxed{3}"),
    ("\\{1,2,3\\}", "\\boxed{1},\\boxed{2},\\boxed{3}"),
    ("(2, 2), (6, 2)", "$$\\boxed{(2, 2)} \\quad \\text{and} \\quad \\boxed{(6, 2)}$$"),
    ("143", "so the count is 143. **Final Answer** \\boxed{143}"),
    # a rescaled equation written inline
    ("x+y=1", "so the line is $2x+2y=2$."),
]


@pytest.mark.timeout(300)
def test_answers_outside_a_box_are_found(verifier: Verifier) -> None:
    verdicts = verifier.verify_response_batch(FOUND, mode="math_verify")
    wrong = [(g, r, v.reason) for (g, r), v in zip(FOUND, verdicts, strict=True) if not v.equal]
    assert not wrong
    assert all(v.answer for v in verdicts)


UNEQUAL = [
    ("2", "AZYUK2A"),  # no number standing on its own
    ("2", "$\\frac{1+\\sqrt{5}}{2}$"),
    ("4", "$4\\sqrt{2}$"),
    ("1", "$-[0,1)$"),
    ("0.28", "28"),
    ("32349", "the answer is $\\boxed{32, 349}$"),  # a list, not a number
    ("\\frac{1}{2004!}", "so $x = \\frac{1}{2006!}$"),  # thor's tiny-value correction
    ("x+y=1", "so the line is $2x+2y=3$."),
    ("n=2,3,4", "The answer is $n=1,2,3$."),
    ("\\{1,2,3\\}", "\\boxed{1} and \\boxed{2}"),
    ("9", "no answer here"),
]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", ["boxed", "lenient", "math_verify"])
def test_cases_that_must_stay_unequal(verifier: Verifier, mode: str) -> None:
    verdicts = verifier.verify_response_batch(UNEQUAL, mode=mode)  # type: ignore[arg-type]
    wrong = [(g, r, v.reason) for (g, r), v in zip(UNEQUAL, verdicts, strict=True) if v.equal]
    assert not wrong


@pytest.mark.timeout(120)
def test_boxed_only_stays_the_default(verifier: Verifier) -> None:
    assert not verifier.verify_response("9", "So the result is $ 9 $").equal
    assert verifier.verify_response("9", "So the result is $ 9 $", mode="math_verify").equal
    assert CorrectReward().config.mode == "boxed"
    ep = Episode(id="e", problem="?", answer="9", turns=[Turn(text="It is $9$.")])
    assert CorrectReward()(ep) == 0.0
    fn = CorrectReward(mode="math_verify", verifier={"workers": 1, "timeout_s": 30.0})
    try:
        assert fn(ep) == 1.0
        assert fn.answer(ep) == "9"
        assert fn.verdict(ep).answer == "9"
    finally:
        fn.close()


@pytest.mark.timeout(120)
def test_extraction_needs_the_verifier(verifier: Verifier) -> None:
    with pytest.raises(ValueError, match=r"Verifier\.extract_answer"):
        extract_answer("It is $9$.", mode="math_verify")
    assert verifier.extract_answer("It is $9$.", mode="math_verify") == "9"
    assert verifier.extract_answer("It is $9$.") is None  # boxed
    assert verifier.extract_answer("It is $9$.", mode="lenient") == "9"
    assert verifier.extract_answer("no mathematics", mode="math_verify") is None
    with pytest.raises(Exception, match="boxed"):
        FormatReward(mode="math_verify")  # the format reward judges the TIR protocol: boxed


@pytest.mark.timeout(120)
def test_bad_responses_are_refused_with_a_reason() -> None:
    with Verifier(VerifierConfig(workers=1, timeout_s=30.0, max_response_chars=1000)) as v:
        for response, why in [
            ("", "empty response"),
            ("$9$ " * 1000, "longer than 1000"),
            (None, "not text"),
            (b"\xff$9$", "not valid UTF-8"),
        ]:
            verdict = v.verify_response("9", response, mode="math_verify")  # type: ignore[arg-type]
            assert not verdict.equal and why in verdict.reason, verdict
        # a whole response and an answer with the same text are cached apart
        assert v.verify("9", "$9$ done").equal is False
        assert v.verify_response("9", "$9$ done", mode="math_verify").equal
