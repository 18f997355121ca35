"""The faulty folder watch: a batch of changed names dropped, held and merged, or late."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
import trio
from trio.testing import MockClock

from autoheal.daemon import dirwatch
from autoheal.sim.events import EventFaults, EventWindow, faulty_watch

pytestmark = pytest.mark.timeout(30)


def run_watch(faults: EventFaults, monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, set[str]]]:
    """Two batches from a stand-in for the kernel ({a} at t=1, {b} at t=2); what the
    daemon's callback got, and when."""

    async def kernel(
        _folders: Any, _files: Any, on_change: Callable[[set[str]], None], **_kw: Any
    ) -> None:
        await anyio.sleep(1.0)
        on_change({"a"})
        await anyio.sleep(1.0)
        on_change({"b"})
        await anyio.sleep(100.0)

    monkeypatch.setattr(dirwatch, "watch", kernel)
    got: list[tuple[float, set[str]]] = []

    async def main() -> None:
        with anyio.move_on_after(50.0):
            await dirwatch.watch([Path(".")], [], lambda n: got.append((anyio.current_time(), n)))

    with faulty_watch(faults):
        trio.run(main, clock=MockClock(autojump_threshold=0))
    assert dirwatch.watch is kernel  # put back
    return got


def test_no_window_delivers_each_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_watch(EventFaults(random.Random(1)), monkeypatch) == [(1.0, {"a"}), (2.0, {"b"})]


def test_a_dropped_batch_never_comes(monkeypatch: pytest.MonkeyPatch) -> None:
    faults = EventFaults(random.Random(1))
    faults.window = EventWindow("drop", until=1.5, rate=1.0)
    assert run_watch(faults, monkeypatch) == [(2.0, {"b"})]
    assert faults.struck == {"drop": 1} and faults.last_struck == 1.0


def test_a_held_batch_comes_with_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    faults = EventFaults(random.Random(1))
    faults.window = EventWindow("hold", until=1.5, rate=1.0)
    assert run_watch(faults, monkeypatch) == [(2.0, {"a", "b"})]


def test_a_late_batch_comes_after_its_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    faults = EventFaults(random.Random(1))
    faults.window = EventWindow("late", until=1.5, rate=1.0, delay_s=(7.0, 7.0))
    assert run_watch(faults, monkeypatch) == [(2.0, {"b"}), (8.0, {"a"})]
