r"""The multi-stage filter of TIRGen (THOR-SPEC section 1), one small function per stage.

Per sample, in order: :func:`check_format`, :func:`check_code_quality`, :func:`check_answer`,
:func:`check_repetition` (:func:`judge_sample` runs them and names the first that fails). Per
problem: :func:`check_difficulty` (from the ``cot`` agent's accuracy). Over the whole output:
:func:`balance_by_calls` (the 1-call bucket is down-sampled); one sample per problem is kept by
the generator (it stops at a problem's first accepted attempt).

Example:
    >>> check_repetition("abc " * 100).reason
    'repetition'
    >>> is_low_quality("print(12 * 13)"), is_low_quality("import sympy\nprint(sympy.factorint(360))")
    (True, False)
"""

from __future__ import annotations

import ast
import hashlib
import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from thor.data.tirgen.config import CodeQualityRule
from thor.data.tirgen.text import Piece, join_pieces
from thor.rewards.repetition import has_repetition
from thor.text.protocol import extract_boxed, find_code_blocks

if TYPE_CHECKING:
    from thor.rewards.verifier import Verifier

log = logging.getLogger(__name__)

__all__ = [
    "SAMPLE_STAGES",
    "Verdict",
    "balance_by_calls",
    "check_answer",
    "check_code_quality",
    "check_difficulty",
    "check_format",
    "check_repetition",
    "is_low_quality",
    "judge_sample",
]

SAMPLE_STAGES: tuple[str, ...] = ("format", "code_quality", "answer", "repetition")


class Verdict(NamedTuple):
    """A stage's decision: ``ok``, else a short machine-readable ``reason``."""

    ok: bool
    reason: str = ""


PASS = Verdict(True)


def check_format(pieces: Sequence[Piece]) -> Verdict:
    r"""Well-formed code and output blocks, at least one call, and an answer in ``\boxed{}``.

    The text is read with the protocol's own parser (:func:`thor.text.protocol.find_code_blocks`),
    as the env reads it: every python block must be one the critic inserted and that ran (a block
    the actor wrote itself never ran), closed, and followed by its output block; no output block
    may stand without its call.
    """
    text = join_pieces(pieces)
    blocks = find_code_blocks(text)
    calls = sum(p.kind == "code" for p in pieces)
    outputs = sum(p.kind == "output" for p in pieces)
    if calls == 0:
        return Verdict(False, "no_code")
    if any(not b.closed for b in blocks):
        return Verdict(False, "unclosed_block")
    if len(blocks) != calls:
        return Verdict(False, "unexecuted_block")
    if text.count("```output") != outputs:
        return Verdict(False, "stray_output_block")
    for b in blocks:
        if not text[b.end :].startswith("\n```output\n"):
            return Verdict(False, "block_without_output")
    if extract_boxed(text) is None:
        return Verdict(False, "no_boxed_answer")
    return PASS


_LIBRARIES = frozenset(
    {
        "math",
        "cmath",
        "sympy",
        "sp",
        "numpy",
        "np",
        "fractions",
        "itertools",
        "functools",
        "collections",
        "statistics",
        "decimal",
        "scipy",
        "random",
        "operator",
    }
)
_CONTROL = (
    ast.For,
    ast.While,
    ast.If,
    ast.IfExp,
    ast.FunctionDef,
    ast.Lambda,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
    ast.Try,
    ast.With,
    ast.AsyncFor,
)


def _uses_library_or_control(code: str) -> bool:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom, *_CONTROL)):
            return True
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in _LIBRARIES
        ):
            return True
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "pow"
            and len(node.args) == 3
        ):
            return True  # modular exponentiation: a library routine in the builtins
    return False


def _computes(code: str) -> bool:
    """Whether a block computes: an operator, a call other than ``print``, or library/control flow."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp | ast.BoolOp | ast.Compare | ast.Subscript):
            return True
        if isinstance(node, ast.Call) and not (
            isinstance(node.func, ast.Name) and node.func.id == "print"
        ):
            return True
    return _uses_library_or_control(code)


def _code_lines(code: str) -> int:
    return sum(1 for line in code.splitlines() if line.strip() and not line.strip().startswith("#"))


def is_low_quality(code: str, rule: CodeQualityRule = "paper") -> bool:
    """Whether a block is trivial by ``rule`` (see :data:`~thor.data.tirgen.config.CodeQualityRule`)."""
    if rule == "computes":
        return not _computes(code)
    paper_low = not _uses_library_or_control(code)
    release_low = _code_lines(code) <= 5
    if rule == "paper":
        return paper_low
    if rule == "release":
        return release_low
    return paper_low and release_low


def check_code_quality(
    codes: Sequence[str],
    ran: Sequence[bool],
    *,
    rule: CodeQualityRule = "paper",
    low_fraction: float = 0.4,
) -> Verdict:
    """Every block ran, and low-quality blocks are at most ``ceil(low_fraction * blocks)``."""
    if len(ran) != len(codes) or not all(ran):
        return Verdict(False, "block_failed")
    low = sum(is_low_quality(c, rule) for c in codes)
    if low > math.ceil(low_fraction * len(codes)):
        return Verdict(False, "low_quality_blocks")
    return PASS


def check_answer(text: str, gold: str | None, verifier: Verifier) -> Verdict:
    r"""The last ``\boxed{}`` is equivalent to the gold answer (thor's verifier)."""
    if not gold or not gold.strip():
        return Verdict(False, "no_gold_answer")
    verdict = verifier.verify_response(gold, text)
    if verdict.equal:
        return PASS
    return Verdict(False, "timeout" if verdict.timed_out else "wrong_answer")


def check_repetition(text: str, n: int = 20, max_repeats: int = 20) -> Verdict:
    """No ``n``-character substring occurs more than ``max_repeats`` times (THOR-SPEC: 20 and 20)."""
    return Verdict(False, "repetition") if has_repetition(text, n, max_repeats) else PASS


def check_difficulty(cot_accuracy: float | None, solved_at: float = 0.5) -> Verdict:
    """Drop a problem that plain chain of thought already solves (accuracy >= ``solved_at``)."""
    if cot_accuracy is not None and cot_accuracy >= solved_at:
        return Verdict(False, "cot_solved")
    return PASS


def judge_sample(
    pieces: Sequence[Piece],
    ran: Sequence[bool],
    gold: str | None,
    verifier: Verifier,
    *,
    rule: CodeQualityRule = "paper",
    low_fraction: float = 0.4,
    ngram: int = 20,
    max_repeats: int = 20,
) -> tuple[str, str]:
    """Run the per-sample stages in order; ``("", "")`` when all pass, else ``(stage, reason)``.

    Repetition is judged on the model-written text (tool outputs excluded: a printed list may
    repeat itself without the model degenerating).
    """
    v = check_format(pieces)
    if not v.ok:
        return "format", v.reason
    codes = [
        p.text.removeprefix("```python\n").removesuffix("\n```") for p in pieces if p.kind == "code"
    ]
    v = check_code_quality(codes, ran, rule=rule, low_fraction=low_fraction)
    if not v.ok:
        return "code_quality", v.reason
    v = check_answer(join_pieces(pieces), gold, verifier)
    if not v.ok:
        return "answer", v.reason
    model_text = "".join(p.text for p in pieces if p.kind != "output")
    v = check_repetition(model_text, ngram, max_repeats)
    if not v.ok:
        return "repetition", v.reason
    return "", ""


def _rank(key: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def balance_by_calls(
    calls: dict[str, int], max_one_call_fraction: float = 0.5, *, seed: int = 0
) -> tuple[set[str], set[str]]:
    """Down-sample the 1-call bucket to at most ``max_one_call_fraction`` of the output.

    Balancing needs something to balance against: when no sample has more than one call, the
    1-call bucket is the whole output and is kept (a warning says so) rather than emptied.

    Args:
        calls: number of code calls of each sample, by id.
        max_one_call_fraction: the largest share of 1-call samples kept (1.0 keeps all).
        seed: which 1-call samples are kept is a hash of (seed, id): stable across resumed runs.

    Returns:
        ``(kept ids, dropped ids)``.

    Example:
        >>> kept, dropped = balance_by_calls({"a": 1, "b": 1, "c": 1, "d": 2}, 0.5)
        >>> len(kept), len(dropped)
        (2, 2)
        >>> balance_by_calls({"a": 1, "b": 1}, 0.5)[0] == {"a", "b"}
        True
    """
    ones = sorted((k for k, n in calls.items() if n == 1), key=lambda k: _rank(k, seed))
    many = [k for k, n in calls.items() if n != 1]
    if ones and not many and max_one_call_fraction < 1.0:
        log.warning(
            "balance by calls: all %d samples have one call; keeping them (down-sampling would "
            "leave nothing)",
            len(ones),
        )
        return set(ones), set()
    if max_one_call_fraction >= 1.0:
        cap = len(ones)
    else:
        cap = math.floor(max_one_call_fraction * len(many) / (1.0 - max_one_call_fraction))
    keep_ones = set(ones[:cap])
    return set(many) | keep_ones, set(ones) - keep_ones
