"""The ``thor`` command line: a thin layer over public Python functions.

Each module of this package that defines ``register(subparsers)`` adds one command; the handler it
sets (``func``) receives the parsed arguments and calls a public function of the library. Command
modules import heavy dependencies (torch, transformers) inside their handlers only, so ``thor
--help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

from thor.errors import ThorError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from thor import __version__

    parser = argparse.ArgumentParser(
        prog="thor",
        description="Tool-integrated reasoning with LLMs, trained by hierarchical RL (THOR).",
    )
    parser.add_argument("--version", action="version", version=f"thor {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(mod, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = args.func(args)
    except ThorError as err:
        print(f"thor {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"thor {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)
