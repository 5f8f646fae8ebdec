"""The template's random generators: found once, reseeded for every session, exact across forks.

Every session is forked from one template, so every generator the template created (python's
``random``, numpy's global ``RandomState``, sympy's own ``random.Random`` instances, and any other
``random.Random`` / numpy generator alive in it) would start in the same state in every session.
:func:`find` lists them in the template; :func:`reseed` gives a session fresh OS entropy for
each, and a branch that asks for it (those of :func:`loaded` too). CPython reseeds the module-level ``random`` generator in every forked
child (``os.register_at_fork``): :func:`python_state` and :func:`restore_python` undo that, so a
branch continues its parent's streams exactly.
"""

from __future__ import annotations

import gc
import os
import random
import sys

TEMPLATE: list[object] = []
"""The generators :func:`find` found in the template (filled before the template forks)."""

_PY: random.Random = random._inst  # the generator behind random.random() & co.


def _numpy_kinds() -> tuple[type, ...]:
    np_random = sys.modules.get("numpy.random")
    if np_random is None:
        return ()
    return tuple(
        k for k in (getattr(np_random, "RandomState", None), getattr(np_random, "Generator", None))
        if isinstance(k, type)
    )  # fmt: skip


def find() -> list[object]:
    """Every generator with state alive in this interpreter (scanned once, in the template)."""
    kinds = (random.Random, *_numpy_kinds())
    found: list[object] = [_PY]
    for obj in gc.get_objects():
        if isinstance(obj, kinds) and not isinstance(obj, random.SystemRandom) and obj is not _PY:
            found.append(obj)
    return found


def loaded() -> list[object]:
    """The generators in the globals of every module but ``__main__`` (the cell's namespace):
    python's, numpy's, sympy's, and those of libraries imported after the template started."""
    kinds = (random.Random, *_numpy_kinds())
    found: list[object] = []
    for name, module in list(sys.modules.items()):
        if name == "__main__":
            continue
        for value in list(getattr(module, "__dict__", {}).values()):
            if isinstance(value, kinds) and not isinstance(value, random.SystemRandom):
                found.append(value)
    return found


def reseed(generators: list[object]) -> None:
    """Seed each generator afresh from the OS (128 bits each; one getrandom call in all)."""
    gens = list({id(g): g for g in (_PY, *generators)}.values())
    entropy = os.urandom(16 * len(gens))
    kinds = _numpy_kinds()
    for i, gen in enumerate(gens):
        seed = entropy[16 * i : 16 * (i + 1)]
        if isinstance(gen, random.Random):
            gen.seed(int.from_bytes(seed, "little"))
        elif kinds and isinstance(gen, kinds[0]):  # RandomState: MT19937 from four 32-bit words
            gen.seed([int.from_bytes(seed[j : j + 4], "little") for j in range(0, 16, 4)])  # type: ignore[attr-defined]
        elif len(kinds) > 1 and isinstance(gen, kinds[1]):  # Generator: a fresh bit generator
            bits = gen.bit_generator  # type: ignore[attr-defined]
            bits.state = type(bits)(int.from_bytes(seed, "little")).state


def python_state() -> object:
    """The state of the module-level ``random`` generator (taken before a fork)."""
    return _PY.getstate()


def restore_python(state: object) -> None:
    """Undo CPython's reseed of the module-level generator in a forked child."""
    _PY.setstate(state)  # type: ignore[arg-type]
