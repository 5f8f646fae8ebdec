"""The Verifier's API and its process model: batches, cache, threads, asyncio, timeouts, limits."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from thor.errors import ConfigError, RewardError
from thor.rewards import Verdict, Verifier, VerifierConfig, default_verifier

TOWER = "9^{9^{9^{9}}}"
TIMEOUT = 1.5


@pytest.fixture(scope="module")
def verifier() -> Iterator[Verifier]:
    """A verifier with a short timeout, for the tests that time out on purpose."""
    with Verifier(VerifierConfig(workers=2, timeout_s=TIMEOUT)) as v:
        yield v


@pytest.fixture(scope="module")
def shared() -> Verifier:
    """The shared verifier (5 s timeout) for tests that must not time out on a busy machine."""
    return default_verifier()


def wait_for_workers(v: Verifier, n: int) -> list[int]:
    """Ensure every worker has started and return their pids."""
    pids = sorted(v.warm_up().worker_pids)
    assert len(pids) == n
    return pids


@pytest.mark.timeout(60)
def test_batch_keeps_order_and_matches_single_calls(shared: Verifier) -> None:
    pairs = [
        ("\\frac12", "0.5"),
        ("3", "4"),
        ("\\frac12", "0.5"),
        ("x^2", "x\\cdot x"),
        ("(1,2)", "(2,1)"),
    ]
    batch = shared.verify_batch(pairs)
    assert [v.equal for v in batch] == [True, False, True, True, False]
    assert [shared.verify(g, p).equal for g, p in pairs] == [v.equal for v in batch]
    assert shared.verify_batch([]) == []


@pytest.mark.timeout(60)
def test_verdict_is_a_frozen_model(shared: Verifier) -> None:
    v = shared.verify("2", "2")
    assert isinstance(v, Verdict) and v.equal and not v.timed_out
    with pytest.raises(Exception, match="frozen"):
        v.equal = False  # type: ignore[misc]


@pytest.mark.timeout(60)
def test_cache_hits_and_bounds() -> None:
    with Verifier(workers=1, cache_size=2, timeout_s=10) as v:
        first = v.verify("\\frac{1}{3}", "0.3333333")
        again = v.verify("\\frac{1}{3}", "0.3333333")
        assert not first.cached and again.cached and again.equal == first.equal
        v.verify("\\frac{1}{5}", "0.2")
        v.verify("\\frac{1}{7}", "0.142857")
        assert v.cache_info()["size"] == 2
        assert not v.verify("\\frac{1}{3}", "0.3333333").cached  # evicted (least recently used)


@pytest.mark.timeout(60)
def test_many_threads_at_once(shared: Verifier) -> None:
    results: dict[int, bool] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            results[i] = shared.verify(f"\\frac{{{i}}}{{2}}", f"{i / 2}").equal
        except BaseException as err:  # collected and reported by the test
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(1, 17)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and all(results.values()) and len(results) == 16


@pytest.mark.timeout(60)
def test_timeout_from_a_thread_costs_one_worker(verifier: Verifier) -> None:
    before = wait_for_workers(verifier, 2)
    box: list[Verdict] = []
    start = time.monotonic()
    t = threading.Thread(target=lambda: box.append(verifier.verify("1", TOWER)))
    t.start()
    t.join(timeout=TIMEOUT + 30)
    elapsed = time.monotonic() - start
    assert box and box[0].timed_out and not box[0].equal and "timeout" in box[0].reason
    assert elapsed < TIMEOUT + 30
    after = wait_for_workers(verifier, 2)
    assert len(set(before) - set(after)) == 1 and len(after) == 2  # one worker replaced, one kept
    assert verifier.verify("\\frac12", "0.5").equal  # and the verifier goes on


@pytest.mark.timeout(60)
def test_timeout_inside_a_batch_keeps_the_other_verdicts(verifier: Verifier) -> None:
    pairs = [("\\frac12", "0.5"), ("2", TOWER + "+1"), ("x+1", "1+x"), ("3", "4")]
    verdicts = verifier.verify_batch(pairs)
    assert [v.equal for v in verdicts] == [True, False, True, False]
    assert [v.timed_out for v in verdicts] == [False, True, False, False]


@pytest.mark.timeout(60)
def test_asyncio_does_not_block_the_loop(verifier: Verifier) -> None:
    async def main() -> tuple[list[Verdict], int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        tick = asyncio.create_task(ticker())
        verdicts = await asyncio.gather(
            verifier.averify("3", TOWER + "+2"),
            verifier.averify("\\frac{2}{4}", "0.5"),
            *(verifier.averify(str(i), str(i)) for i in range(5)),
        )
        batch = await verifier.averify_batch([("1", "1.0"), ("1", "2")])
        tick.cancel()
        return [*verdicts, *batch], ticks

    verdicts, ticks = asyncio.run(main())
    assert verdicts[0].timed_out and verdicts[1].equal and all(v.equal for v in verdicts[2:7])
    assert [v.equal for v in verdicts[7:]] == [True, False]
    assert ticks >= 10  # the loop kept running while the tower was being computed


@pytest.mark.timeout(60)
def test_workers_have_a_memory_limit(verifier: Verifier) -> None:
    pids = wait_for_workers(verifier, 2)
    for pid in pids:
        limits = Path(f"/proc/{pid}/limits").read_text()
        line = next(x for x in limits.splitlines() if x.startswith("Max address space"))
        assert str(1024 * 1024 * 1024) in line


@pytest.mark.timeout(60)
def test_a_worker_killed_from_outside_is_replaced(verifier: Verifier) -> None:
    pids = wait_for_workers(verifier, 2)
    os.kill(pids[0], signal.SIGKILL)
    time.sleep(0.2)
    pairs = [(f"\\frac{{{i}}}{{3}}", f"{i / 3 + 0.5:.7f}") for i in range(1, 41)] + [("x", "x+0")]
    verdicts = verifier.verify_batch(pairs)  # needs both workers: the dead one is replaced
    assert all(not v.equal and v.reason.startswith("math-verify") for v in verdicts[:-1])
    assert verdicts[-1].equal
    assert pids[0] not in verifier.worker_pids


@pytest.mark.timeout(60)
def test_verify_response_extracts_first(shared: Verifier) -> None:
    assert shared.verify_response("\\frac{1}{2}", "so $\\boxed{0.5}$.").equal
    none = shared.verify_response("1", "no box here")
    assert not none.equal and "no answer" in none.reason
    assert shared.verify_response("42", "The answer is 42.", mode="lenient").equal


@pytest.mark.timeout(60)
def test_close_stops_the_workers_and_refuses_further_use() -> None:
    v = Verifier(workers=1, timeout_s=10)
    pids = wait_for_workers(v, 1)
    v.close()
    v.close()  # idempotent
    with pytest.raises(RewardError, match="closed"):
        v.verify("1", "1")
    time.sleep(0.2)
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        )


@pytest.mark.timeout(60)
def test_pickles_as_its_config() -> None:
    with Verifier(workers=1, timeout_s=7) as v:
        clone = pickle.loads(pickle.dumps(v))
        try:
            assert clone.config == v.config and clone is not v
            assert clone.verify("\\frac12", "0.5").equal
        finally:
            clone.close()


def test_bad_config_is_rejected_early() -> None:
    with pytest.raises(ConfigError, match="workers"):
        Verifier(workerz=2)
    with pytest.raises(ConfigError, match="timeout_s"):
        Verifier(timeout_s=0)


@pytest.mark.timeout(60)
def test_default_verifier_is_shared_and_fork_safe() -> None:
    v = default_verifier()
    assert default_verifier() is v and not v._closed
    assert v.verify("2", "2.0").equal
    pid = os.fork()
    if pid == 0:  # the child cannot use the parent's workers, and is told so
        code = 1
        try:
            v.verify("1", "1.5")
        except RewardError:
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
