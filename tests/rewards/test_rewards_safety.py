"""Model text is never evaluated as code: file-canary payloads in predictions and golds.

The payloads are live: ``test_payloads_are_live_without_the_guard`` shows that sympy's ``sympify``
runs each of them (it creates the canary file) in a process without thor's guard. The verifier
tests then plant the same payloads, in many shapes, in predictions and golds, and check that no
canary file ever appears.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from thor.rewards import Verifier, default_verifier
from thor.rewards.safety import check_generated_code


def payloads(canary: Path) -> list[str]:
    """Python expressions that create ``canary`` when evaluated (each a different trick)."""
    c = str(canary)
    return [
        f"__import__('os').system('touch {c}_system')",
        f"open('{c}_open', 'w').write('x')",
        f"(lambda: open('{c}_lambda', 'w'))()",
        f"[open('{c}_listcomp', 'w') for _ in (1,)]",
        f"getattr(__import__('builtins'), 'open')('{c}_getattr', 'w')",
        f"exec(\"open('{c}_exec', 'w')\")",
        f"eval(\"open('{c}_eval', 'w')\")",
        f"__import__('pathlib').Path('{c}_pathlib').touch()",
        f"Symbol('x').__class__.__init__.__globals__['__builtins__']['open']('{c}_dunder', 'w')",
        f"[c for c in ().__class__.__base__.__subclasses__() if c.__name__ == 'Popen'][0](['touch', '{c}_subclasses'])",
    ]


def shapes(payload: str) -> list[str]:
    """Ways a payload can sit in an answer string."""
    return [
        payload,
        f"x + {payload}",
        f"\\text{{{payload}}}",
        f"\\operatorname{{{payload}}}",
        f"${payload}$",
        f"\\boxed{{{payload}}}",
        f"1/{payload}",
        f"{payload} = 1",
        f"\\{{1, {payload}\\}}",
        f"\\frac{{{payload}}}{{2}}",
        payload.replace("'", '"'),
        payload.replace(" ", ""),
    ]


UNGUARDED = """
import json, sys, sympy
for p in json.loads(sys.argv[1]):
    try:
        sympy.sympify(p)
    except Exception:
        pass
"""

GUARDED = """
import json, sys
from thor.rewards.safety import install_eval_guard
install_eval_guard()
import sympy
refused = 0
for p in json.loads(sys.argv[1]):
    try:
        sympy.sympify(p)
    except ValueError as err:
        refused += "refused to evaluate" in str(err) or "refused" in repr(err.__context__)
    except Exception:
        pass
print(refused)
"""


def run_python(code: str, arg: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, arg], capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout


@pytest.mark.timeout(150)
def test_payloads_are_live_without_the_guard(tmp_path: Path) -> None:
    items = payloads(tmp_path / "canary")
    run_python(UNGUARDED, json.dumps(items))
    created = sorted(p.name for p in tmp_path.iterdir())
    # every trick that sympify lets through creates its canary; the dunder ones it blocks itself
    assert len(created) >= 7, created


@pytest.mark.timeout(150)
def test_the_guard_refuses_every_payload_in_sympify(tmp_path: Path) -> None:
    items = payloads(tmp_path / "canary")
    out = run_python(GUARDED, json.dumps(items))
    assert list(tmp_path.iterdir()) == []
    assert int(out.strip()) >= 7


@pytest.fixture(scope="module")
def verifier() -> Verifier:
    return default_verifier()


@pytest.mark.timeout(300)
def test_verifier_never_runs_planted_payloads(verifier: Verifier, tmp_path: Path) -> None:
    answers = [s for p in payloads(tmp_path / "canary") for s in shapes(p)]
    pairs = (
        [("1", a) for a in answers]
        + [(a, "1") for a in answers]
        + [(a, a + " ") for a in answers[:20]]
    )
    verdicts = verifier.verify_batch(pairs)
    for a in answers[::12]:  # one shape of each payload through extraction
        verifier.verify_response("1", f"The answer is {a}.", mode="lenient")
        verifier.verify_response("1", f"so \\boxed{{{a}}}")
    # math-verify's own extraction (its expression extraction calls parse_expr) on every shape
    responses = [r for a in answers for r in (a, f"The final answer is {a}. I hope it is correct.")]
    extracted = verifier.verify_response_batch([("1", r) for r in responses], mode="math_verify")
    assert len(extracted) == len(responses)  # (the shapes hold real 1s: "= 1", "(1,)")
    assert list(tmp_path.iterdir()) == [], "a payload ran"
    assert not any(v.equal for v in verdicts[: 2 * len(answers)])


@pytest.mark.parametrize(
    "code",
    [
        "Integer (2 )",
        "Symbol ('x' )*Float ('1.5' )",
        "sin (Symbol ('x' ))**Integer (2 )",
        "Rational (1 ,2 )+pi -oo",
        "Add (Integer (1 ),Integer (2 ),evaluate =False )",
        "Symbol ('x' )<Integer (1 )",
    ],
)
def test_plain_mathematics_passes_the_check(code: str) -> None:
    check_generated_code(code)


@pytest.mark.parametrize(
    ("code", "why"),
    [
        ("__import__ ('os' )", "name"),
        ("Integer (1 ).__class__", "attribute"),
        ("open ('f','w' )", "name"),
        ("(lambda :1 )()", "callee"),
        ("[x for x in ()]", "ListComp"),
        ("Symbol ('x' )[0 ]", "Subscript"),
        ("Integer (**{'a':1 })", r"\*\*kwargs"),
        ("x := 1", "not an expression"),
        ("getattr (Integer ,'x' )", "name"),
    ],
)
def test_anything_else_is_refused(code: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_generated_code(code)
