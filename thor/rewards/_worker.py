"""The verifier worker process: ``python .../thor/rewards/_worker.py '<json config>'``.

It runs as a script, not as ``-m thor.rewards._worker``, so that it does not import the ``thor``
package (pydantic, gymnasium...): it loads only :mod:`thor.rewards.safety` and
:mod:`thor.rewards.compare` (which need nothing from thor) by file, and starts faster.

Protocol (one JSON object per line, ASCII): the worker writes ``{"ready": true, "pid": N}`` once it
has imported math-verify; then, for each request ``{"pairs": [[gold, pred], ...]}`` read from stdin,
it writes one reply per pair, in order, as soon as that pair is done:
``{"i": k, "equal": bool, "reason": str}``. A pair ``[gold, response, "response"]`` compares the
answer math-verify's own extraction finds in a whole response, and ``[gold, response, "extract"]``
only extracts it (``gold`` unused); both replies add ``"answer": str | null``. The parent times
each pair and kills the worker when one runs past its timeout. End of input ends the worker.

Limits set on itself before importing anything heavy: RLIMIT_AS (memory), and before each pair an
RLIMIT_CPU soft limit a little above the pair's budget, so that a worker stuck in C code (a tower
of powers) dies by SIGXCPU even if its parent is gone. Stray prints go to stderr, never into the
protocol channel. The sympy eval guard (:mod:`thor.rewards.safety`) is installed before any
parsing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import resource
import sys
from types import ModuleType
from typing import Any, BinaryIO

_HERE = os.path.dirname(os.path.abspath(__file__))


def _load(name: str) -> ModuleType:
    """Import ``thor/rewards/<name>.py`` without importing the thor package."""
    spec = importlib.util.spec_from_file_location(
        f"_thor_verifier_{name}", os.path.join(_HERE, f"{name}.py")
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {name}.py from {_HERE}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _limit_memory(megabytes: int | None) -> None:
    if megabytes:
        limit = megabytes * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _limit_cpu(budget_s: float) -> None:
    """Let this process use at most ``budget_s`` more CPU seconds (soft limit: SIGXCPU)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(used + budget_s) + 1
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _send(out: BinaryIO, obj: dict[str, Any]) -> None:
    out.write(json.dumps(obj).encode("ascii") + b"\n")
    out.flush()


def main(argv: list[str]) -> int:
    cfg: dict[str, Any] = json.loads(argv[1]) if len(argv) > 1 else {}
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # anything printed lands in stderr, not in the protocol
    _limit_memory(cfg.get("memory_limit_mb"))
    cpu_budget = float(cfg.get("cpu_budget_s", 30.0))

    if sys.path and os.path.abspath(sys.path[0] or ".") == _HERE:
        sys.path.pop(
            0
        )  # the script's folder holds modules (compare, safety...) that could shadow others
    _load("safety").install_eval_guard()
    compare = _load("compare")

    compare.warm_up()
    kwargs = {
        "float_rounding": int(cfg.get("float_rounding", 6)),
        "numeric_precision": int(cfg.get("numeric_precision", 15)),
        "corrections": bool(cfg.get("corrections", True)),
    }
    _send(out, {"ready": True, "pid": os.getpid()})
    for line in sys.stdin.buffer:
        request = json.loads(line)
        for i, pair in enumerate(request["pairs"]):
            _limit_cpu(cpu_budget)
            try:
                reply = _one(compare, pair, kwargs)
            except MemoryError:
                reply = {
                    "equal": False,
                    "reason": "worker: out of memory (the worker's memory limit)",
                }
            except RecursionError:
                reply = {"equal": False, "reason": "worker: expression too deeply nested"}
            except Exception as err:  # one bad pair must not end the worker: it is reported
                reply = {"equal": False, "reason": f"worker: {type(err).__name__}: {err}"[:300]}
            _send(out, {"i": i, **reply})
    return 0


def _one(compare: ModuleType, pair: list[str], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The reply for one pair: ``[gold, pred]``, ``[gold, response, "response"|"extract"]``."""
    kind = pair[2] if len(pair) > 2 else "answer"
    if kind == "extract":
        answer = compare.extract_response(pair[1])
        return {"equal": False, "reason": "extracted", "answer": answer}
    if kind == "response":
        equal, reason, answer = compare.compare_response(pair[0], pair[1], **kwargs)
        return {"equal": bool(equal), "reason": reason, "answer": answer}
    equal, reason = compare.compare(pair[0], pair[1], **kwargs)
    return {"equal": bool(equal), "reason": reason}


if __name__ == "__main__":
    sys.exit(main(sys.argv))
