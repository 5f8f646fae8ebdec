r"""The answer verifier: math-verify in a pool of worker processes, with timeouts, a cache and batches.

Every verification passes three stages:

1. **In the caller, no sympy** (:mod:`thor.rewards.normalize`): input that is not an answer is
   refused with a reason (empty, longer than ``max_answer_chars``, control characters, invalid
   UTF-8, unbalanced braces, ``\def``/``\input``...); answers with the same conservative normal form
   are equal; two plain integers are compared exactly.
2. **The cache**: an LRU keyed by ``(gold, pred)`` holds the verdicts of stage 3.
3. **A worker process** (:mod:`thor.rewards.pool`): math-verify plus thor's corrections
   (:mod:`thor.rewards.compare`), under a per-pair wall-clock timeout and a memory limit.

Verdict reasons start with the stage that decided: ``refused:``, ``normal form:``, ``integers:``,
``math-verify:``, ``thor:`` (a correction of math-verify), ``timeout:`` or ``worker:``.

Example:
    >>> with Verifier(VerifierConfig(workers=1)) as v:
    ...     v.verify(r"\frac{1}{2}", "0.5").equal
    ...     v.verify("1,000", "1000").reason
    ...     [x.equal for x in v.verify_batch([("3", "3.0"), (r"\{1,2\}", r"\{2,1\}"), ("5", "6")])]
    True
    'integers: equal'
    [True, True, False]
"""

from __future__ import annotations

import asyncio
import atexit
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from thor.config import ThorConfig, validate_config
from thor.errors import RewardError
from thor.rewards.extract import ExtractionMode, extract_answer
from thor.rewards.normalize import coerce_text, integer_value, normalize_answer, refusal
from thor.rewards.pool import WorkerPool, WorkerResult

__all__ = ["Verdict", "Verifier", "VerifierConfig", "default_verifier"]

_DIGIT_GROUP = re.compile(r"(?<=\d)(?:\\[,!;: ]|\{,\})\s*(?=\d{3}(?!\d))")


class VerifierConfig(ThorConfig):
    """How answers are verified."""

    workers: int | None = Field(None, ge=1, description="Worker processes; None: min(2, CPU count)")
    timeout_s: float = Field(
        5.0, gt=0, description="Wall-clock limit per pair (math-verify's own default)"
    )
    memory_limit_mb: int | None = Field(
        1024, ge=256, description="RLIMIT_AS of each worker; None: no limit"
    )
    start_timeout_s: float = Field(120.0, gt=0, description="How long a worker may take to start")
    batch_size: int = Field(16, ge=1, description="Pairs per worker message in verify_batch")
    cache_size: int = Field(
        100_000, ge=0, description="LRU entries keyed by (gold, pred); 0 disables"
    )
    cache_timeouts: bool = Field(
        True, description="Cache timed-out verdicts (a pair that hung once is not retried)"
    )
    max_answer_chars: int = Field(2000, ge=1, description="Longer answers are refused, not parsed")
    max_response_chars: int = Field(
        200_000,
        ge=1,
        description="Longer responses are refused by the math_verify extraction (it scans them all)",
    )
    float_rounding: int = Field(
        6, ge=0, description="math-verify: decimals compared when a float is involved"
    )
    numeric_precision: int = Field(
        15, ge=1, description="math-verify: digits of numeric comparisons"
    )
    corrections: bool = Field(
        True, description="Apply thor's corrections of math-verify (docs/verification.md)"
    )


class Verdict(BaseModel):
    """The outcome of one verification."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    equal: bool
    reason: str
    cached: bool = False
    timed_out: bool = False
    answer: str | None = None
    """The answer found in the response (:meth:`Verifier.verify_response`); None otherwise."""


class _LRU:
    """A thread-safe bounded mapping that forgets the least recently used entry."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[tuple[str, ...], Verdict] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[str, ...]) -> Verdict | None:
        with self._lock:
            found = self._data.get(key)
            if found is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return found

    def put(self, key: tuple[str, ...], value: Verdict) -> None:
        if self.maxsize <= 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class Verifier:
    r"""Checks predicted answers against gold answers; thread-safe, usable from asyncio.

    ``pred`` is an already-extracted answer (the content of the last ``\boxed{}``); use
    :meth:`verify_response` to extract from a whole response. The comparison is not symmetric:
    the first argument is the gold answer.

    Args:
        config: a :class:`VerifierConfig` (or a mapping of its fields); keyword arguments are an
            alternative to it.

    Example:
        >>> v = Verifier(workers=1, timeout_s=10)  # doctest: +SKIP
        >>> v.verify(r"\dfrac{3}{4}", "0.75")  # doctest: +SKIP
        Verdict(equal=True, reason='math-verify: equal', cached=False, timed_out=False)
        >>> v.verify_response("73", "so the total is **73**", mode="lenient").equal  # doctest: +SKIP
        True
        >>> v.close()  # doctest: +SKIP
    """

    def __init__(
        self, config: VerifierConfig | dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if config is not None and kwargs:
            raise TypeError("pass a VerifierConfig or keyword arguments, not both")
        self.config = validate_config(VerifierConfig, config if config is not None else kwargs)
        cfg = self.config
        self.workers = cfg.workers or max(1, min(2, os.cpu_count() or 1))
        self._pid = os.getpid()
        self._cache = _LRU(cfg.cache_size)
        self._pool = WorkerPool(
            self.workers,
            timeout_s=cfg.timeout_s,
            memory_limit_mb=cfg.memory_limit_mb,
            start_timeout_s=cfg.start_timeout_s,
            options={
                "float_rounding": cfg.float_rounding,
                "numeric_precision": cfg.numeric_precision,
                "corrections": cfg.corrections,
            },
        )
        self._executor = ThreadPoolExecutor(
            max_workers=max(2, 2 * self.workers), thread_name_prefix="thor-verify"
        )
        self._closed = False

    # -- public API ------------------------------------------------------------------------------
    def verify(self, gold: str, pred: str) -> Verdict:
        """Whether ``pred`` is equivalent to ``gold``; never raises on bad answers (see the reason)."""
        return self.verify_batch([(gold, pred)])[0]

    def verify_response(
        self, gold: str, response: str, *, mode: ExtractionMode = "boxed"
    ) -> Verdict:
        """Find the answer in ``response`` and verify it; the verdict's ``answer`` is what was found.

        ``mode``: ``"boxed"`` (the training default) or ``"lenient"`` extract in the caller
        (:func:`extract_answer`); ``"math_verify"`` uses math-verify's own extraction (answers in
        ``$...$``, after "the answer is", in several boxes...) in a worker, for evaluating models
        that were not trained to box their answers.
        """
        return self.verify_response_batch([(gold, response)], mode=mode)[0]

    def verify_response_batch(
        self, pairs: Sequence[tuple[str, str]], *, mode: ExtractionMode = "boxed"
    ) -> list[Verdict]:
        """:meth:`verify_response` for many ``(gold, response)`` pairs, in parallel."""
        if mode == "math_verify":
            return self._verify_batch(pairs, kind="response")
        none = Verdict(equal=False, reason=f"refused: no answer found ({mode} extraction)")
        out = [none] * len(pairs)
        found: dict[int, tuple[str, str]] = {}
        for i, pair in enumerate(pairs):
            pred = _extract(pair, mode)
            if pred is not None:
                found[i] = (pair[0], pred)
        verdicts = self.verify_batch(list(found.values()))
        for (i, (_, pred)), verdict in zip(found.items(), verdicts, strict=True):
            out[i] = verdict.model_copy(update={"answer": pred})
        return out

    def extract_answer(self, response: str, *, mode: ExtractionMode = "boxed") -> str | None:
        """The answer ``mode`` finds in ``response``, or None (``math_verify`` asks a worker)."""
        if mode != "math_verify":
            return extract_answer(response, mode=mode) if isinstance(response, str) else None
        self._check_usable()
        text, _ = coerce_text(response)
        if text is None or not text.strip() or len(text) > self.config.max_response_chars:
            return None
        (result,) = self._pool.run([("", text, "extract")])
        return result.answer

    def verify_batch(self, pairs: Sequence[tuple[str, str]]) -> list[Verdict]:
        """Verify many pairs: duplicates and cached pairs once, the rest in parallel on the workers."""
        return self._verify_batch(pairs, kind="answer")

    def _verify_batch(self, pairs: Sequence[tuple[str, str]], *, kind: str) -> list[Verdict]:
        self._check_usable()
        out: list[Verdict | None] = [None] * len(pairs)
        pending: dict[tuple[str, ...], list[int]] = {}
        for i, pair in enumerate(pairs):
            decided, key = self._precheck(pair, kind)
            if decided is not None:
                out[i] = decided
            else:
                assert key is not None
                pending.setdefault(key, []).append(i)
        if pending:
            keys = sorted(pending)  # same gold together: the worker parses it once
            for key, verdict in zip(keys, self._dispatch(keys), strict=True):
                if self.config.cache_timeouts or not verdict.timed_out:
                    self._cache.put(key, verdict)
                for i in pending[key]:
                    out[i] = verdict
        return [v for v in out if v is not None]

    async def averify(self, gold: str, pred: str) -> Verdict:
        """:meth:`verify` for asyncio: runs in the verifier's threads, never blocks the loop."""
        self._check_usable()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.verify, gold, pred)

    async def averify_batch(self, pairs: Sequence[tuple[str, str]]) -> list[Verdict]:
        """:meth:`verify_batch` for asyncio."""
        self._check_usable()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.verify_batch, list(pairs))

    def warm_up(self) -> Verifier:
        """Wait until every worker process has started (they start in the background otherwise)."""
        self._check_usable()
        self._pool.wait_ready()
        return self

    def cache_info(self) -> dict[str, int]:
        """Cache hits, misses, size and the number of worker restarts (timeouts and crashes)."""
        return {
            "hits": self._cache.hits,
            "misses": self._cache.misses,
            "size": len(self._cache),
            "maxsize": self._cache.maxsize,
            "worker_restarts": self._pool.restarts,
        }

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the live worker processes."""
        return self._pool.pids

    def close(self) -> None:
        """Stop the workers (idempotent). A closed verifier raises :class:`RewardError` when used."""
        if self._closed:
            return
        self._closed = True
        if os.getpid() == self._pid:
            self._pool.close()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from its config in the receiving process (fresh workers, empty cache).
        return (_rebuild, (self.config.model_dump(),))

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.workers} workers"
        return f"Verifier({state}, timeout_s={self.config.timeout_s:g})"

    # -- internals -------------------------------------------------------------------------------
    def _check_usable(self) -> None:
        if self._closed:
            raise RewardError("this Verifier is closed")
        if os.getpid() != self._pid:
            raise RewardError(
                "this Verifier belongs to the process that created it (its workers are that "
                "process's children); build a new Verifier, or use default_verifier(), after a fork"
            )

    def _precheck(
        self, pair: tuple[str, str], kind: str = "answer"
    ) -> tuple[Verdict | None, tuple[str, ...] | None]:
        """A verdict decided without a worker, or the cache key of a pair that needs one.

        ``kind`` is ``"answer"`` (an extracted prediction) or ``"response"`` (a whole response for
        math-verify's extraction: only its size is limited, and it is never decided here).
        """
        try:
            raw_gold, raw_pred = pair
        except (TypeError, ValueError):
            return Verdict(equal=False, reason="refused: not a (gold, pred) pair"), None
        gold, why = coerce_text(raw_gold)
        if gold is None:
            return Verdict(equal=False, reason=f"refused: gold is {why}"), None
        pred, why = coerce_text(raw_pred)
        role = "prediction" if kind == "answer" else "response"
        if pred is None:
            return Verdict(equal=False, reason=f"refused: {role} is {why}"), None
        problem = refusal(gold, "gold", max_chars=self.config.max_answer_chars)
        if problem is None and kind == "answer":
            problem = refusal(pred, role, max_chars=self.config.max_answer_chars)
        elif problem is None and not pred.strip():
            problem = "empty response"
        elif problem is None and len(pred) > self.config.max_response_chars:
            problem = f"response longer than {self.config.max_response_chars} characters"
        if problem:
            return Verdict(equal=False, reason=f"refused: {problem}"), None
        key = (gold, pred) if kind == "answer" else (gold, pred, kind)
        cached = self._cache.get(key) if self.config.cache_size else None
        if cached is not None:
            return cached.model_copy(update={"cached": True}), None
        if kind != "answer":
            return None, key
        if normalize_answer(gold) == normalize_answer(pred):
            return Verdict(equal=True, reason="normal form: identical after normalisation"), None
        gi, pi = integer_value(gold), integer_value(pred)
        if gi is not None and pi is not None:
            return Verdict(
                equal=gi == pi, reason="integers: " + ("equal" if gi == pi else "differ")
            ), None
        return None, (gold, pred)

    def _dispatch(self, keys: list[tuple[str, ...]]) -> list[Verdict]:
        # digit groups are rewritten in answers, not in whole responses (math-verify reads those)
        sent = [
            (_regroup_digits(k[0]), k[1] if len(k) > 2 else _regroup_digits(k[1]), *k[2:])
            for k in keys
        ]
        size = self.config.batch_size
        if len(sent) <= size:
            return [_verdict(r) for r in self._pool.run(sent)]
        # Enough chunks to keep every worker busy, no bigger than batch_size, and the pairs of one
        # gold answer in one chunk where they fit (the worker then parses that gold once).
        size = max(1, min(size, -(-len(sent) // (2 * self.workers))))
        chunks: list[list[tuple[str, ...]]] = [[]]
        for i, pair in enumerate(sent):
            new_gold = i > 0 and pair[0] != sent[i - 1][0]
            if len(chunks[-1]) >= 2 * size or (new_gold and len(chunks[-1]) >= size):
                chunks.append([])
            chunks[-1].append(pair)
        results: list[Verdict] = []
        for chunk_results in self._executor.map(self._pool.run, chunks):
            results.extend(_verdict(r) for r in chunk_results)
        return results


def _regroup_digits(text: str) -> str:
    r"""``1\,000`` and ``1{,}000`` as ``1,000`` (a digit-group separator, not a product or a set)."""
    return _DIGIT_GROUP.sub(",", text)


def _verdict(result: WorkerResult) -> Verdict:
    return Verdict(
        equal=result.equal, reason=result.reason, timed_out=result.timed_out, answer=result.answer
    )


def _extract(pair: object, mode: ExtractionMode) -> str | None:
    """The caller-side extraction of a ``(gold, response)`` pair's answer, or None."""
    if not isinstance(pair, tuple | list) or len(pair) != 2 or not isinstance(pair[1], str):
        return None
    return extract_answer(pair[1], mode=mode)


def _rebuild(config: dict[str, Any]) -> Verifier:
    return Verifier(VerifierConfig(**config))


# -- the process-wide shared instance ---------------------------------------------------------------
_default: Verifier | None = None
_default_lock = threading.Lock()


def default_verifier() -> Verifier:
    """The process-wide shared :class:`Verifier` (default config), created on first use.

    This is thor's one explicit process-wide cache for verification: every reward built without
    its own verifier config uses it, so a process runs one pool of workers however many envs and
    reward functions it holds. It is closed at interpreter exit (``atexit``); a forked child gets
    its own on first use (worker processes cannot be shared across a fork).
    """
    global _default
    with _default_lock:
        if _default is None or _default._closed or _default._pid != os.getpid():
            _default = Verifier()
        return _default


@atexit.register
def _close_default() -> None:
    verifier = _default
    if verifier is not None and verifier._pid == os.getpid():
        verifier.close()
