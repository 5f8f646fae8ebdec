"""Bad input: each case returns "not equal" with a reason, within the timeout plus a generous margin.

The ``pytest.mark.timeout`` values are hang detectors, not timing assertions.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thor.rewards import Verifier, VerifierConfig

TIMEOUT = 2.0
HANG = 90  # seconds: the hang detector for one case (timeout + worker restart + a busy machine)


@pytest.fixture(scope="module")
def verifier() -> Iterator[Verifier]:
    with Verifier(VerifierConfig(workers=2, timeout_s=TIMEOUT)) as v:
        yield v


BAD_PREDICTIONS = {
    "tower_of_powers": "9^{9^{9^{9}}}",
    "one_megabyte": "1" * (1 << 20),
    "one_megabyte_of_latex": "\\frac{1}{" * 100_000 + "}" * 100_000,
    "unbalanced_open": "\\frac{1}{2",
    "unbalanced_close": "1}{2}",
    "null_bytes": "1\x00",
    "control_characters": "\x1b[31m1\x07",
    "tex_def": "\\def\\x{1}\\x",
    "tex_input": "\\input{/etc/passwd}",
    "tex_newcommand": "\\newcommand{\\one}{1}\\one",
    "python_expression": "__import__('os').getcwd()",
    "python_lambda": "(lambda: 1)()",
    "python_arithmetic": "int('1')",
    "empty": "",
    "whitespace": "   \n\t ",
    "non_utf8_bytes": b"\xff\xfe1",
    "lone_surrogates": b"1\xff".decode("utf-8", "surrogateescape"),
    "not_text": 1,
    "none": None,
}


@pytest.mark.parametrize("name", sorted(BAD_PREDICTIONS))
@pytest.mark.timeout(HANG)
def test_bad_prediction_is_not_equal_with_a_reason(verifier: Verifier, name: str) -> None:
    verdict = verifier.verify("1", BAD_PREDICTIONS[name])  # type: ignore[arg-type]
    assert not verdict.equal, verdict
    assert verdict.reason.strip()


@pytest.mark.parametrize(
    "name",
    ["one_megabyte", "null_bytes", "tex_input", "empty", "non_utf8_bytes", "unbalanced_open"],
)
@pytest.mark.timeout(HANG)
def test_bad_gold_is_not_equal_with_a_reason(verifier: Verifier, name: str) -> None:
    verdict = verifier.verify(BAD_PREDICTIONS[name], "1")  # type: ignore[arg-type]
    assert not verdict.equal and verdict.reason.strip()


@pytest.mark.timeout(HANG)
def test_reasons_name_the_problem(verifier: Verifier) -> None:
    reasons = {
        name: verifier.verify("1", BAD_PREDICTIONS[name]).reason  # type: ignore[arg-type]
        for name in (
            "one_megabyte",
            "null_bytes",
            "tex_def",
            "empty",
            "non_utf8_bytes",
            "unbalanced_open",
            "not_text",
        )
    }
    assert "longer than" in reasons["one_megabyte"]
    assert "control characters" in reasons["null_bytes"]
    assert "\\def" in reasons["tex_def"]
    assert "empty" in reasons["empty"]
    assert "UTF-8" in reasons["non_utf8_bytes"]
    assert "unbalanced" in reasons["unbalanced_open"]
    assert "not text" in reasons["not_text"]
    tower = verifier.verify("1", BAD_PREDICTIONS["tower_of_powers"])
    assert tower.timed_out and "timeout" in tower.reason


@pytest.mark.timeout(HANG)
def test_bad_pairs_in_one_batch(verifier: Verifier) -> None:
    pairs = [("1", v) for v in BAD_PREDICTIONS.values()] + [("\\frac12", "0.5"), ("1", ("1",))]
    verdicts = verifier.verify_batch(pairs)  # type: ignore[arg-type]
    assert [v.equal for v in verdicts] == [False] * len(BAD_PREDICTIONS) + [True, False]
    assert not verifier.verify_batch([("1",)]).pop().equal  # type: ignore[list-item]


latex_alphabet = st.sampled_from(
    [
        *"0123456789+-*/^_{}()[]|=<>,.!xyznabcde ",
        "\\frac",
        "\\sqrt",
        "\\pi",
        "\\infty",
        "\\cdot",
        "\\left(",
        "\\right)",
        "\\{",
        "\\}",
        "^{",
        "\\boxed{",
        "\\text{",
        "\\%",
        "\\circ",
        "\\\\",
    ],
)
latexish = st.lists(latex_alphabet, max_size=30).map("".join)


@pytest.mark.timeout(300)
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    gold=st.one_of(st.text(max_size=60), latexish), pred=st.one_of(st.text(max_size=60), latexish)
)
def test_arbitrary_text_never_raises_never_hangs(verifier: Verifier, gold: str, pred: str) -> None:
    verdict = verifier.verify(gold, pred)
    assert isinstance(verdict.equal, bool) and verdict.reason
    if gold == pred and gold.strip() and verdict.equal is False:
        assert verdict.reason.startswith("refused:")  # identical answers are equal unless refused


@pytest.mark.timeout(300)
@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.text(max_size=40), latexish), st.one_of(st.text(max_size=40), latexish)
        ),
        max_size=25,
    )
)
def test_arbitrary_batches_never_raise(verifier: Verifier, pairs: list[tuple[str, str]]) -> None:
    verdicts = verifier.verify_batch(pairs)
    assert len(verdicts) == len(pairs)
