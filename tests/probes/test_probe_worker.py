"""call_in_worker: a blocking call is timed out on its own time, not on the host's (issue 18 C).

Real worker threads, under trio's MockClock without autojump: virtual time moves only
when a test jumps it, so "the host kept the worker waiting for ten timeouts" is a jump
while the worker cannot start (the test holds the only thread token), not a sleep.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import anyio
import anyio.to_thread
import pytest
from anyio import CapacityLimiter
from trio.testing import MockClock

from autoheal.probes.worker import call_in_worker

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

TIMEOUT = 1.0


@pytest.fixture
def clock() -> MockClock:
    return MockClock()


@pytest.fixture
def anyio_backend(clock: MockClock) -> tuple[str, dict[str, MockClock]]:
    return ("trio", {"clock": clock})


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """What a hung call blocks on; always opened at the end, so no thread outlives a test."""
    event = threading.Event()
    yield event
    event.set()


async def _wait(event: threading.Event) -> None:
    """Wait for a worker's signal without blocking the event loop (a real condition)."""
    assert await anyio.to_thread.run_sync(event.wait, 10.0)


async def test_a_quick_call_is_done_with_its_value() -> None:
    answer = await call_in_worker(lambda: 42, TIMEOUT)
    assert (answer.outcome, answer.value) == ("done", 42)


async def test_a_call_that_never_returns_is_hung_after_its_timeout(
    clock: MockClock, gate: threading.Event
) -> None:
    entered, left = threading.Event(), threading.Event()

    def stuck() -> int:
        entered.set()
        gate.wait(10.0)
        left.set()
        return 1

    outcome: list[str] = []

    async def call() -> None:
        outcome.append((await call_in_worker(stuck, TIMEOUT)).outcome)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await _wait(entered)
        await anyio.wait_all_tasks_blocked()
        clock.jump(TIMEOUT * 0.9)
        await anyio.wait_all_tasks_blocked()
        assert outcome == []  # still within its own time
        clock.jump(TIMEOUT * 0.2)
    assert outcome == ["hung"]
    gate.set()  # let the abandoned thread finish before the loop ends
    await _wait(left)


async def test_a_worker_that_starts_late_is_not_a_timeout(clock: MockClock) -> None:
    # The host keeps the worker from starting for ten timeouts (the test holds the only
    # thread token); the call itself then takes no time: done, not probe_timeout.
    limiter = CapacityLimiter(1)
    outcome: list[object] = []

    async def call() -> None:
        answer = await call_in_worker(lambda: "alive", TIMEOUT, limiter=limiter)
        outcome.append((answer.outcome, answer.value))

    async with anyio.create_task_group() as tg:
        await limiter.acquire()
        tg.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        clock.jump(TIMEOUT * 10)
        await anyio.wait_all_tasks_blocked()
        assert outcome == []
        limiter.release()
    assert outcome == [("done", "alive")]


async def test_a_worker_that_never_starts_is_reported_as_such(clock: MockClock) -> None:
    limiter = CapacityLimiter(1)
    ran = threading.Event()
    outcome: list[str] = []

    async def call() -> None:
        answer = await call_in_worker(ran.set, TIMEOUT, start_within=5.0, limiter=limiter)
        outcome.append(answer.outcome)

    async with anyio.create_task_group() as tg:
        await limiter.acquire()
        tg.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        clock.jump(5.1)
    assert outcome == ["not_started"]
    # Given up while still queued for a thread: nothing is left waiting, nothing ran.
    assert limiter.statistics().tasks_waiting == 0
    limiter.release()
    assert not ran.is_set()


async def test_the_call_s_own_error_reaches_the_caller() -> None:
    def broken() -> int:
        raise PermissionError("/proc/1/cmdline")

    with pytest.raises(PermissionError, match="cmdline"):
        await call_in_worker(broken, TIMEOUT)
