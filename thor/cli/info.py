"""``thor info``: versions, registered parts, and whether sandbox isolation works here."""

from __future__ import annotations

import argparse
import platform


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="show versions and registered parts")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import thor

    print(f"thor {thor.__version__} on Python {platform.python_version()} ({platform.machine()})")
    for reg in (
        thor.ENVS,
        thor.TOOLS,
        thor.SANDBOXES,
        thor.REWARDS,
        thor.POLICIES,
        thor.AGENTS,
        thor.ALGORITHMS,
        thor.DATASETS,
    ):
        try:
            names = ", ".join(reg.names()) or "-"
        except ImportError as err:  # a part not built yet, or an optional dependency missing
            names = f"(unavailable: {err})"
        print(f"{reg.kind:>10}: {names}")
    return 0
