"""A read that one of a decision's writes asks for is stepped after the decision, so the
journal holds the core's steps in the order they were taken (issue 20, seed 268).

The kill switch writes ``global_flags.json`` only over the document it last read or
wrote; when an operator's edit is there that the watch has not reported yet, the write
reads it instead. Before the fix, that read was stepped *inside* the decision whose
write found it: its transitions were journaled before the decision's own, and the
decision's remaining kill-switch writes ran against the new state. Here the watch is
not running at all, so the edit is found by the write, every time.

Real parts (:func:`autoheal.daemon.parts.build`), a real journal and real files; the
services are :class:`~autoheal.testing.FakeProcessControl`'s.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from autoheal.core import initial_state
from autoheal.core.observations import OperatorClearedFailsafe, OperatorEnteredFailsafe
from autoheal.core.resume import CLEARED, ENTERED
from autoheal.daemon import wiring
from autoheal.daemon.clock import LoopClock
from autoheal.daemon.interpreter import Item
from autoheal.daemon.parts import Parts, build, make_notifier
from autoheal.store.flags import Flags, read_flags, write_flags
from autoheal.store.journal import Journal
from autoheal.testing import FakeProcessControl
from tests.daemon.commands_support import write_config

pytestmark = [pytest.mark.timeout(30)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def parts_of(root: Path) -> AsyncIterator[Parts]:
    """The daemon's parts with nothing running: no watch, no beat, no probes."""
    config = write_config(root, virtual=True)
    config.paths.runtime_dir.mkdir(parents=True, exist_ok=True)
    clock = LoopClock()
    send, receive = anyio.create_memory_object_stream[Item](max_buffer_size=100)
    with Journal.open(config.paths.runtime_dir) as journal:
        async with send, receive, anyio.create_task_group() as tg:
            yield build(
                config,
                initial_state(wiring.build_policy(config)),
                clock=clock,
                procs=FakeProcessControl(),
                journal=journal,
                notifier=make_notifier(config, journal, clock, webhooks=False),
                task_group=tg,
                send=send.send,
            )
            tg.cancel_scope.cancel()


def notices(journal: Journal) -> list[str]:
    """The journaled failsafe notices' messages, oldest first."""
    return [
        e.data["message"]
        for e in journal.events()
        if e.kind == "notice"
        and isinstance(e.data, dict)
        and e.data.get("kind") in (ENTERED, CLEARED)
    ]


@pytest.mark.anyio
async def test_an_edit_found_by_a_clears_write_is_stepped_after_the_clear(
    tmp_path: Path,
) -> None:
    async with parts_of(tmp_path) as parts:
        interpreter, runtime_dir = parts.interpreter, parts.settings.config.paths.runtime_dir
        interpreter.reconcile_switch(startup=True)
        interpreter.apply(OperatorEnteredFailsafe("hold", "bob"))
        assert parts.runtime.state.failsafe is not None
        # An operator halts by hand; the watch (not running) never reports it.
        write_flags(runtime_dir, Flags(True, "SIGNAL_READ_ONLY", "hand edit", None, "carol"))
        # Another operator's clear: its flags write finds carol's edit and reads it.
        interpreter.apply(OperatorClearedFailsafe("checked", "alice"))

        state = parts.runtime.state
        assert state.failsafe is not None and state.failsafe.set_by == "carol"
        on_disk = read_flags(runtime_dir).flags
        assert on_disk is not None and on_disk.failsafe_active
        # The journal, read in order, ends where the daemon is: the clear, then the
        # halt it found (before the fix: the halt's transitions, then the clear's).
        # The journal, read in order, ends where the daemon is: the clear, then the halt
        # its write found. Before the fix the halt was journaled inside the clear, so the
        # journal's last word was "cleared" while carol's failsafe held, and a daemon
        # that lost its state file would not have resumed it (core.resume).
        assert notices(parts.journal) == [
            "failsafe entered by bob: hold",
            "failsafe cleared by alice: checked",
            "failsafe entered by carol: hand edit",
        ]
        last = parts.journal.last_notice((ENTERED, CLEARED))
        assert last is not None and isinstance(last.data, dict)
        assert last.data["kind"] == ENTERED
