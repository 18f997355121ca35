"""Shared helpers for the guard tests: a fake clock and a deadline-based wait."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest


class FakeClock:
    """A monotonic clock that only moves when the test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def wait_for(
    predicate: Callable[[], bool], *, timeout_s: float = 5.0, what: str = "condition"
) -> float:
    """Spin on ``predicate`` until true or the deadline passes; returns the time it took."""
    start = time.monotonic()
    deadline = start + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.001)
    return time.monotonic() - start
