"""A blocking read in a worker thread, timed out on its own time, not on the host's.

A probe that reads ``/proc`` or a file on a filesystem that may stall runs the read
in a worker thread, abandoned when it takes too long, so that a hung read cannot
hang its caller. But a plain ``move_on_after(timeout)`` around the thread starts the
clock when the read is *asked for*: on a host whose CPUs are busy, the worker may
wait longer than the timeout for its first slice, or for the interpreter lock while
the event loop imports a module, and a live process is then reported as
``probe_timeout`` -- ``autoheal check`` under ``stress-ng --cpu 2`` did exactly that
(issue 18 C). A busy host is not a hung read.

So :func:`call_in_worker` starts the clock when the worker starts the call, and
calls it hung only when the call itself ran ``timeout`` seconds without returning:

1. Wait for the worker to start, at most ``start_within`` seconds (then the answer
   is ``not_started``: the host could not run a thread at all).
2. Wait ``timeout`` from the moment the event loop learns of the start.
3. A call that has returned but whose answer has not reached the event loop yet
   is waited for, never abandoned: the read was quick, the loop was slow.
4. Only a call still running after its ``timeout`` is ``hung``; its thread is
   abandoned and finishes (or not) in the background.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
from anyio import CapacityLimiter

__all__ = ["WorkerAnswer", "call_in_worker"]

T = TypeVar("T")

#: How long a worker may take to start before the host counts as unable to run one.
START_WITHIN_S = 30.0


@dataclass(frozen=True, slots=True)
class WorkerAnswer(Generic[T]):
    """What came of the call: ``done`` with its ``value``, ``hung``, or ``not_started``."""

    outcome: Literal["done", "hung", "not_started"]
    value: T | None = None


async def call_in_worker(
    fn: Callable[[], T],
    timeout: float,
    *,
    start_within: float = START_WITHIN_S,
    limiter: CapacityLimiter | None = None,
) -> WorkerAnswer[T]:
    """Call ``fn()`` in a worker thread; see the module docstring for when it is abandoned.

    Args:
        fn: the blocking call; its exceptions propagate to the caller.
        timeout: how long the call itself may run, once started.
        start_within: how long the worker may take to start.
        limiter: the worker threads' limiter (anyio's default one if None).

    Returns:
        The answer: ``done`` with the value, ``hung`` or ``not_started``.
    """
    started = anyio.Event()
    returned = threading.Event()  # set in the worker: the call is over, its answer on its way
    answered = anyio.Event()
    box: list[T] = []
    failed: list[BaseException] = []

    def work() -> T:
        anyio.from_thread.run_sync(started.set)
        try:
            return fn()
        finally:
            returned.set()

    async def call() -> None:
        try:
            box.append(
                await anyio.to_thread.run_sync(work, abandon_on_cancel=True, limiter=limiter)
            )
        except Exception as exc:  # fn's own error: raised to the caller as it is, below
            failed.append(exc)
        answered.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        with anyio.move_on_after(start_within):
            await started.wait()
        if started.is_set():
            with anyio.move_on_after(timeout):
                await answered.wait()
            if returned.is_set():
                await answered.wait()
        if not answered.is_set():
            tg.cancel_scope.cancel()
            return WorkerAnswer("hung" if started.is_set() else "not_started")
    if failed:
        raise failed[0]
    return WorkerAnswer("done", box[0])
