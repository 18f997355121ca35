"""Shared helpers for the guard tests: a fake clock, a deadline-based wait, and a runtime
directory as the daemon leaves it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from autoheal.store.flags import Flags, write_flags


def daemon_runtime(path: Path) -> Path:
    """``path`` made a runtime directory as a running daemon keeps it: created, with
    ``global_flags.json`` written (NORMAL). The daemon always writes the flags; without
    them the guard reads the kill switch as unknown and refuses everything."""
    path.mkdir(parents=True, exist_ok=True)
    write_flags(path, Flags())
    return path


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
