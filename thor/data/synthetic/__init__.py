"""Seeded synthetic problems that need computation, with worked solutions in a small schema.

Families (:data:`FAMILIES`): ``arithmetic`` (2-digit addition up to 4-digit multiplication),
``modular`` (powers mod n, inverses, remainders), ``combinatorics`` (binomials, arrangements with
constraints, committees), ``number_theory`` (gcd/lcm, digit sums, divisor counts), ``equations``
(linear, quadratic, 2x2 systems) and ``series`` (arithmetic, geometric, power sums, telescoping).
Difficulty runs from 1 (2-digit addition, which SmolLM2-135M sometimes gets right by itself) to 5
(modular inverses); 4-digit products and modular powers (4) need a tool.

Each problem is a :class:`thor.types.Problem` (``source`` ``synthetic_train`` or
``synthetic_heldout``) whose answer is an integer or a fraction ``\\frac{a}{b}``, and whose
``metadata`` follows :class:`~thor.data.synthetic.schema.SyntheticMeta`: ``family``, ``kind``,
``difficulty``, ``template``, ``params``, ``split`` and ``steps``, the worked solution as a list of
:class:`~thor.data.synthetic.schema.SolutionStep` (``text``; and where the step computes, ``code``,
a self-contained snippet that prints the step's ``value``). The last step's value is the answer.
A rule-based critic inserts a step's ``code`` into an actor's step; :func:`render_solution` is a
rule-based actor.

Splits never overlap, by construction: a problem's split is a hash of its canonical form (its kind
and parameters, order-free where the problem is symmetric), so a problem belongs to one split
whatever the seed, the wording or the call. Within one call, problems are distinct. The datasets
``synthetic_train`` and ``synthetic_heldout`` are registered in :data:`thor.data.DATASETS`.

Example:
    >>> probs = generate_problems(3, seed=0, families=["arithmetic"])
    >>> [p.metadata["family"] for p in probs]
    ['arithmetic', 'arithmetic', 'arithmetic']
    >>> p = generate_problems(1, seed=0, split="heldout", families=["modular"])[0]
    >>> SyntheticMeta.model_validate(p.metadata).split
    'heldout'
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

from pydantic import Field

from thor.data.loaders import DATASETS, DatasetConfig
from thor.data.synthetic.kinds import KINDS, Kind
from thor.data.synthetic.schema import (
    FAMILIES,
    Family,
    SolutionStep,
    Split,
    SyntheticMeta,
    format_answer,
)
from thor.types import Problem

__all__ = [
    "FAMILIES",
    "HELDOUT_PERCENT",
    "KINDS",
    "SolutionStep",
    "SyntheticConfig",
    "SyntheticMeta",
    "canonical_form",
    "canonical_split",
    "format_answer",
    "generate_problems",
    "render_solution",
    "write_problems_jsonl",
]

HELDOUT_PERCENT = 20
"""Share (in percent, by hash) of the canonical problem space that belongs to the held-out split."""

_MAX_DRAWS = 200


def canonical_form(kind: Kind, params: dict[str, Any]) -> str:
    """A problem's canonical form: kind + parameters, symmetric ones sorted, cosmetic ones dropped.

    Two problems with the same canonical form are the same problem (``37 × 52`` and ``52 × 37``;
    the letters of a word whose arrangements are counted).
    """
    p = dict(params)
    if len(kind.symmetric) == 1 and isinstance(p[kind.symmetric[0]], list):
        p[kind.symmetric[0]] = sorted(p[kind.symmetric[0]])
    elif kind.symmetric:
        ordered = sorted(p[n] for n in kind.symmetric)
        p.update(zip(kind.symmetric, ordered, strict=True))
    if kind.name == "word":
        p.pop("word", None)
    return kind.name + ":" + json.dumps(p, sort_keys=True, separators=(",", ":"))


def _digest(canonical: str) -> bytes:
    return hashlib.sha256(canonical.encode()).digest()


def canonical_split(canonical: str) -> Split:
    """The one split a canonical form belongs to (:data:`HELDOUT_PERCENT` percent are held out)."""
    bucket = int.from_bytes(_digest(canonical)[:8], "big") % 100
    return "heldout" if bucket < HELDOUT_PERCENT else "train"


def _problem(kind: Kind, params: dict[str, Any], canonical: str, split: Split, t: int) -> Problem:
    text = kind.templates[t].format(**params, **kind.text(params))
    answer, steps = kind.solve(params)
    meta = SyntheticMeta(
        family=kind.family,
        kind=kind.name,
        difficulty=kind.difficulty,
        template=t,
        params=params,
        split=split,
        steps=steps,
    )
    return Problem(
        id=f"synthetic-{split}-{kind.name}-{_digest(canonical).hex()[:12]}",
        problem=text,
        answer=format_answer(answer),
        source=f"synthetic_{split}",
        metadata=meta.model_dump(),
    )


def _select(families: Iterable[str] | None, difficulties: Collection[int] | None) -> list[Kind]:
    fams = list(FAMILIES if families is None else families)
    unknown = sorted(set(fams) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown families {unknown}; known: {', '.join(FAMILIES)}")
    kinds = [
        k
        for k in KINDS
        if k.family in fams and (difficulties is None or k.difficulty in difficulties)
    ]
    if not kinds:
        raise ValueError(
            f"no problem kind in families {fams} with difficulties {sorted(difficulties or [])}"
        )
    return kinds


def generate_problems(
    n: int,
    *,
    seed: int,
    split: Split = "train",
    families: Iterable[str] | None = None,
    difficulties: Collection[int] | None = None,
) -> list[Problem]:
    """``n`` distinct problems of one split; the same for the same arguments (and prefix-stable:
    the first ``k`` of ``n`` problems are the ``k`` problems of a call with ``n=k``).

    A family is drawn uniformly among those asked for, then a kind within it, then parameters
    until they fall into ``split`` and are new to this call. A kind whose space is used up (a few
    are small, e.g. ``apart``) is set aside.

    Args:
        n: how many problems.
        seed: the seed.
        split: ``"train"`` or ``"heldout"``.
        families: restrict to these families (default: all of :data:`FAMILIES`).
        difficulties: restrict to these difficulty levels (1-5).

    Raises:
        ValueError: an unknown family or split, no kind left by the filters, or ``n`` larger than
            the number of distinct problems the filters allow.
    """
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    live = _select(families, difficulties)
    rng = random.Random(f"thor-synthetic:{seed}:{split}")
    seen: set[str] = set()
    out: list[Problem] = []
    while len(out) < n:
        if not live:
            raise ValueError(
                f"only {len(out)} distinct {split} problems exist for these filters (asked for {n})"
            )
        family = rng.choice(sorted({k.family for k in live}))
        kind = rng.choice([k for k in live if k.family == family])
        for _ in range(_MAX_DRAWS):
            params = kind.draw(rng)
            canonical = canonical_form(kind, params)
            if canonical not in seen and canonical_split(canonical) == split:
                break
        else:
            live.remove(kind)
            continue
        seen.add(canonical)
        out.append(_problem(kind, params, canonical, split, rng.randrange(len(kind.templates))))
    return out


def render_solution(problem: Problem, *, with_code: bool = False) -> str:
    """The worked solution as text (a rule-based actor), ending in ``\\boxed{answer}``.

    With ``with_code``, each computing step is followed by its code in a python block and its value
    in an output block: a tool-integrated solution in thor's text protocol.

    Example:
        >>> p = generate_problems(1, seed=3, families=["arithmetic"], difficulties=[1])[0]
        >>> render_solution(p).endswith("$\\\\boxed{" + p.answer + "}$.")
        True
    """
    meta = SyntheticMeta.model_validate(problem.metadata)
    parts: list[str] = []
    for step in meta.steps:
        parts.append(step.text + "\n")
        if with_code and step.code is not None:
            parts.append(f"```python\n{step.code}\n```\n```output\n{step.value}\n```\n")
    parts.append(f"The answer is $\\boxed{{{problem.answer}}}$.")
    return "".join(parts)


def write_problems_jsonl(problems: Iterable[Problem], path: str | Path) -> Path:
    """Write problems as JSONL that :func:`thor.data.load_jsonl_problems` reads back.

    Each line is ``{"id", "problem", "answer", **metadata}``. The file is written under a temporary
    name and renamed, so no reader ever sees half a file.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for prob in problems:
            row = {"id": prob.id, "problem": prob.problem, "answer": prob.answer, **prob.metadata}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(p)
    return p


class SyntheticConfig(DatasetConfig):
    """Config of ``synthetic_train`` / ``synthetic_heldout``: ``n`` problems for ``seed``.

    ``limit`` keeps the first ``limit`` (after a seeded shuffle if ``shuffle_seed``).
    """

    n: int = Field(1000, ge=1)
    seed: int = 0
    families: list[Family] | None = None
    difficulties: list[int] | None = None


def _register(split: Split) -> None:
    def make(cfg: SyntheticConfig) -> list[Problem]:
        count = (
            cfg.n if cfg.shuffle_seed is not None or cfg.limit is None else min(cfg.n, cfg.limit)
        )
        probs = generate_problems(
            count, seed=cfg.seed, split=split, families=cfg.families, difficulties=cfg.difficulties
        )
        if cfg.shuffle_seed is not None:
            random.Random(cfg.shuffle_seed).shuffle(probs)
        return probs[: cfg.limit] if cfg.limit else probs

    DATASETS.register(
        f"synthetic_{split}",
        config=SyntheticConfig,
        factory=make,
        description=f"generated problems that need computation ({split} split)",
    )


_register("train")
_register("heldout")
