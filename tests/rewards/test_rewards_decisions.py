"""thor's verification decisions, one test each (docs/verification.md lists the deviations).

Each test states what thor answers; the tests marked "math-verify says otherwise" also check that
plain math-verify 0.9 really disagrees, so a deviation that becomes unnecessary is noticed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from thor.rewards import Verifier, VerifierConfig


@pytest.fixture(scope="module")
def verifier() -> Iterator[Verifier]:
    # a generous timeout: these tests state verdicts, and a busy machine must not turn one into
    # a timeout
    with Verifier(VerifierConfig(workers=2, timeout_s=30.0)) as v:
        yield v


def check(v: Verifier, pairs: list[tuple[str, str]], equal: bool) -> None:
    verdicts = v.verify_batch(pairs)
    wrong = [
        (g, p, vd.reason) for (g, p), vd in zip(pairs, verdicts, strict=True) if vd.equal != equal
    ]
    assert not wrong, f"expected equal={equal}: {wrong}"


def plain_math_verify(gold: str, pred: str) -> bool:
    """What math-verify alone answers (parsed the way thor parses: as the content of a box)."""
    from math_verify import LatexExtractionConfig, parse, verify

    cfg = [LatexExtractionConfig(boxed_match_priority=0)]
    return verify(
        parse("\\boxed{" + gold + "}", cfg, parsing_timeout=None),
        parse("\\boxed{" + pred + "}", cfg, parsing_timeout=None),
        timeout_seconds=None,
    )


@pytest.mark.timeout(120)
def test_units_and_symbols_around_a_matching_number_are_equal(verifier: Verifier) -> None:
    check(
        verifier,
        [("30^\\circ", "30"), ("30", "30^{\\circ}"), ("25\\%", "25"), ("5\\text{ cm}", "5"),
         ("5", "5\\text{ cm}"), ("\\$32", "32"), ("15\\mbox{ cm}^2", "15"), ("90^\\circ", "90")],
        equal=True,
    )  # fmt: skip
    # ...but the number must match, and degrees are not converted to radians
    check(
        verifier,
        [("30^\\circ", "31"), ("25\\%", "26"), ("30^\\circ", "\\frac{\\pi}{6}")],
        equal=False,
    )


@pytest.mark.timeout(120)
def test_percent_equals_its_number_and_its_fraction(verifier: Verifier) -> None:
    check(verifier, [("25\\%", "0.25"), ("10\\%", "10")], equal=True)


@pytest.mark.timeout(120)
def test_dfrac_tfrac_and_frac_are_alike(verifier: Verifier) -> None:
    check(
        verifier,
        [("\\dfrac{1}{2}", "\\frac{1}{2}"), ("\\tfrac{1}{2}", "\\frac12"), ("\\frac{3}{4}", "\\dfrac34"),
         ("\\dfrac{\\sqrt{3}}{2}", "\\tfrac{\\sqrt 3}{2}"), ("\\frac{1}{2}", "1/2"), ("\\frac{1}{2}", "0.5")],
        equal=True,
    )  # fmt: skip


@pytest.mark.timeout(120)
def test_thousands_commas(verifier: Verifier) -> None:
    check(
        verifier,
        [("1,000", "1000"), ("10{,}080", "10080"), ("10,\\!080", "10080"), ("1\\,000", "1000"),
         ("1,000,000", "1000000"), ("\\$32,\\!348", "32348"), ("1000", "1,000")],
        equal=True,
    )  # fmt: skip
    check(verifier, [("1,000", "1001"), ("1,2", "12"), ("1\\,000", "1001")], equal=False)


@pytest.mark.timeout(120)
def test_intervals_and_sets(verifier: Verifier) -> None:
    check(
        verifier,
        [("(1,2]", "\\left(1, 2\\right]"), ("\\{1,2,3\\}", "\\{3,2,1\\}"), ("1,2,3", "3, 2, 1"),
         ("(-\\infty, 0]", "(-\\infty,0]"), ("[-2,7]", "\\left[ -2 , 7 \\right]"),
         ("(0,9) \\cup (9,36)", "(0, 9)\\cup(9, 36)"), ("x \\in [-2,7]", "[-2,7]")],
        equal=True,
    )  # fmt: skip
    check(
        verifier,
        [("[1,2)", "(1,2]"), ("(1,2)", "[1,2]"), ("\\{1,2,3\\}", "\\{1,2\\}"), ("(1,2)", "(2,1)"),
         ("(-\\infty, 0]", "(-\\infty, 0)")],
        equal=False,
    )  # fmt: skip


@pytest.mark.timeout(120)
def test_pi_forms(verifier: Verifier) -> None:
    check(
        verifier,
        [("\\frac{\\pi}{2}", "\\pi/2"), ("\\frac{\\pi}{2}", "\\frac12\\pi"), ("\\frac{\\pi}{2}", "0.5\\pi"),
         ("2\\pi", "2 \\pi"), ("\\pi", "3.141593"), ("-\\frac{\\pi}{6}", "-\\pi/6"), ("4\\pi^2-1", "4 \\pi^{2} - 1")],
        equal=True,
    )  # fmt: skip
    # a decimal approximation counts only to math-verify's 6 decimals
    check(
        verifier,
        [("\\pi", "3.14"), ("\\frac{\\pi}{2}", "\\frac{\\pi}{3}"), ("\\pi", "-\\pi")],
        equal=False,
    )


@pytest.mark.timeout(120)
def test_markdown_bold_answer(verifier: Verifier) -> None:
    assert verifier.verify("73", "**73**").equal
    assert verifier.verify_response("73", "Adding up, we get **73**", mode="lenient").equal
    assert not verifier.verify_response("73", "Adding up, we get **73**").equal  # strict: no box
    assert not verifier.verify_response("73", "Adding up, we get **74**", mode="lenient").equal


@pytest.mark.timeout(120)
def test_tiny_exact_values_are_not_equal(verifier: Verifier) -> None:
    pairs = [
        ("\\frac{1}{2004!}", "\\frac{1}{2006!}"),
        ("\\frac{1}{2^{99}}", "\\frac{1}{2^{98}}"),
        ("10^{-20}", "2\\cdot 10^{-20}"),
        ("\\frac{2^{2005}+1}{3 \\cdot 2^{2006}}", "\\frac{1}{3 \\cdot 2^{2006}}"),
        ("\\{1, 2^{-99}\\}", "\\{2^{-98}, 1\\}"),
    ]
    assert all(plain_math_verify(g, p) for g, p in pairs)  # math-verify says otherwise
    check(verifier, pairs, equal=False)
    assert verifier.verify("\\frac{1}{2004!}", "\\frac{1}{2006!}").reason.startswith("thor:")
    # equal tiny values stay equal
    check(
        verifier,
        [("\\frac{1}{2004!}", "\\frac{1}{2004 \\cdot 2003!}"), ("10^{-20}", "\\frac{1}{10^{20}}")],
        equal=True,
    )


@pytest.mark.timeout(120)
def test_listed_solutions_of_an_equation(verifier: Verifier) -> None:
    check(
        verifier,
        [("n=2,3,4", "n=1,2,3"), ("n = 2, 3, 4", "n = 1, 2, 3"), ("n=2,3,4", "1,2,3")],
        equal=False,
    )
    check(verifier, [("n=2,3,4", "n=4,3,2"), ("n=2,3,4", "2,3,4")], equal=True)


@pytest.mark.timeout(120)
def test_expressions_equal_wherever_both_are_real(verifier: Verifier) -> None:
    pairs = [
        ("\\sqrt{1/n}", "\\frac{1}{\\sqrt{n}}"),
        ("\\sqrt{\\frac{1}{n}}", "1/\\sqrt{n}"),
        ("1+274i", "1 + 274 i"),
    ]
    assert not any(plain_math_verify(g, p) for g, p in pairs)  # math-verify says otherwise
    check(verifier, pairs, equal=True)
    # where both sides are real and differ, they stay unequal
    check(
        verifier,
        [("|x|", "x"), ("\\sqrt{x^2}", "x"), ("\\sqrt{1/n}", "\\frac{2}{\\sqrt{n}}")],
        equal=False,
    )


@pytest.mark.timeout(120)
def test_identical_answers_are_equal_even_when_math_verify_cannot_parse_them(
    verifier: Verifier,
) -> None:
    check(
        verifier,
        [("\\frac{1}{0}", "\\frac{1}{0}"), ("SRAC=LRAC", "SRAC = LRAC"), ("12:00", "12:00")],
        equal=True,
    )


@pytest.mark.timeout(120)
def test_verification_is_not_symmetric_for_assignments(verifier: Verifier) -> None:
    # the gold's form leads: a bare number matches an assignment gold, both ways in math-verify
    check(verifier, [("x=5", "5"), ("5", "x=5"), ("y = 2x + 3", "y=2x+3")], equal=True)
    check(verifier, [("x=5", "y=5")], equal=False)
