"""Model text is never evaluated as code: the guard thor installs in its verifier workers.

Where evaluation can happen. ``sympy.sympify(str)`` and ``sympy.parse_expr`` turn a string into
Python source (``stringify_expr``) and ``eval`` it (``eval_expr``) with ``from sympy import *`` and
the builtins in scope, so ``sympify("__import__('os').system('...')")`` runs a shell command. On the
verification path these are reached by:

- math-verify's *expression* extraction (``ExprExtractionConfig``): ``parse_expr`` on text matched
  by a regex of digits and operators. Thor never uses that extraction (answers are parsed as LaTeX
  only), so this path is not taken;
- ``sympy.Number(text)``, which calls ``sympify`` on a string: latex2sympy2_extended uses it for
  number tokens (text restricted by its grammar to digits, ``.``, ``,`` and exponents), and
  math-verify for numbers it matched;
- ``sympify`` of any other string anywhere inside sympy.

Rather than trust every caller's regex, the guard closes the door itself: in each worker process,
:func:`install_eval_guard` wraps sympy's ``stringify_expr`` and ``eval_expr`` so that only code
made of numbers, operators and an allow-list of sympy constructors and functions is evaluated
(:func:`check_generated_code`): no attribute access, no subscripts, no lambdas, no names outside the
allow-list (so no ``__import__``, ``open``, ``eval``, ``getattr``). Anything else raises
``ValueError``, which the parsers treat as "cannot parse" and the verifier reports as not equal.

The guard patches sympy for the whole process, which is why thor installs it only in its own
verifier workers, never in the caller's process (which never imports sympy for verification).

Example:
    >>> check_generated_code("Integer (2 )+Symbol ('x' )")
    >>> check_generated_code("__import__ ('os' ).system ('true' )")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ValueError: refused to evaluate code: attribute access
"""

from __future__ import annotations

import ast
import types
from typing import Any

__all__ = ["ALLOWED_NAMES", "check_generated_code", "install_eval_guard"]

ALLOWED_NAMES: frozenset[str] = frozenset(
    {
        # what sympy's transformations generate for numbers and names
        "Integer", "Float", "Rational", "Symbol", "Function", "Number", "UnevaluatedExpr",
        # what evaluateFalse generates
        "Add", "Mul", "Pow", "Mod", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "Not", "And", "Or",
        # constants
        "I", "E", "pi", "oo", "zoo", "nan", "S", "true", "false", "EulerGamma",
        # functions of school and olympiad mathematics
        "sin", "cos", "tan", "cot", "sec", "csc", "asin", "acos", "atan", "acot", "asec", "acsc",
        "atan2", "sinh", "cosh", "tanh", "coth", "asinh", "acosh", "atanh", "exp", "log", "ln",
        "sqrt", "cbrt", "root", "Abs", "sign", "floor", "ceiling", "frac", "factorial",
        "factorial2", "binomial", "gamma", "Max", "Min", "re", "im", "arg", "conjugate", "gcd",
        "lcm", "Tuple", "FiniteSet", "Interval", "Union", "Intersection", "Complement", "Matrix",
        "Sum", "Product", "Integral", "Derivative", "Limit", "Piecewise",
    }
)  # fmt: skip
"""Names that generated code may use; everything else is refused."""

_ALLOWED_NODES = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.Constant,
    ast.Call,
    ast.keyword,
    ast.Name,
    ast.Load,
    ast.Tuple,
    ast.List,
    ast.operator,
    ast.unaryop,
    ast.boolop,
    ast.cmpop,
)


def check_generated_code(code: str) -> None:
    """Raise ``ValueError`` unless ``code`` is a plain expression over the allow-list.

    Args:
        code: Python source produced by sympy's ``stringify_expr`` from some text.
    """
    try:
        tree = ast.parse(code.strip(), mode="eval")
    except SyntaxError as err:
        raise ValueError(f"refused to evaluate code: not an expression ({err.msg})") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            raise ValueError("refused to evaluate code: attribute access")
        if not isinstance(node, _ALLOWED_NODES):
            raise ValueError(f"refused to evaluate code: {type(node).__name__} is not allowed")
        if isinstance(node, ast.Name) and node.id not in ALLOWED_NAMES:
            raise ValueError(f"refused to evaluate code: name {node.id[:40]!r} is not allowed")
        if isinstance(node, ast.Call) and not isinstance(node.func, ast.Name):
            raise ValueError("refused to evaluate code: call of a computed callee")
        if isinstance(node, ast.keyword) and node.arg is None:
            raise ValueError("refused to evaluate code: **kwargs")


def _check_code_object(code: types.CodeType) -> None:
    for name in code.co_names:
        if name not in ALLOWED_NAMES and name != "evaluate":
            raise ValueError(f"refused to evaluate code: name {name[:40]!r} is not allowed")
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            raise ValueError("refused to evaluate code: nested code object")


def install_eval_guard() -> None:
    """Make sympy refuse to evaluate any string that is not plain mathematics (idempotent).

    Wraps ``sympy.parsing.sympy_parser.stringify_expr`` (every ``parse_expr``/``sympify`` of a
    string goes through it) and ``eval_expr`` (a second check on what is actually evaluated).
    Call it in a process that verifies untrusted text; it changes sympy for that whole process.
    """
    from sympy.parsing import sympy_parser

    if getattr(sympy_parser.stringify_expr, "_thor_guard", False):
        return
    stringify = sympy_parser.stringify_expr
    evaluate = sympy_parser.eval_expr

    def guarded_stringify(s: str, local_dict: Any, global_dict: Any, transformations: Any) -> str:
        code = stringify(s, local_dict, global_dict, transformations)
        check_generated_code(code)
        return code

    def guarded_eval(code: Any, local_dict: Any, global_dict: Any) -> Any:
        if isinstance(code, str):
            check_generated_code(code)
            code = compile(code, "<sympy>", "eval")
        if not isinstance(code, types.CodeType):
            raise ValueError("refused to evaluate code: unknown code type")
        _check_code_object(code)
        return evaluate(code, local_dict, global_dict)

    guarded_stringify._thor_guard = True  # type: ignore[attr-defined]
    guarded_eval._thor_guard = True  # type: ignore[attr-defined]
    sympy_parser.stringify_expr = guarded_stringify
    sympy_parser.eval_expr = guarded_eval
