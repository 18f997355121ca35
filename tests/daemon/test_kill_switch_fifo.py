"""Issue 18 A9: a kill-switch file that is not a regular file is never opened.

A FIFO at ``global_flags.json`` hung every reader in ``open`` (the guard's gate, the
daemon's kill-switch reader on its event loop, and with it the daemon's shutdown), and
a FIFO at ``STOP.TXT`` hung ``autoheal status`` and ``autoheal check``, which read its
first line. Each reader here must return at once with a failed read (fail closed).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from autoheal.cli.check import read_kill_switch
from autoheal.cli.status import read_status
from autoheal.core.machine import step
from autoheal.core.state import initial_state
from autoheal.core.switch import due_writes
from autoheal.daemon.effects import Effects
from autoheal.daemon.killswitch import FileLayer, KillSwitch
from autoheal.store.alerts import alert_path
from autoheal.store.atomic import read_json
from autoheal.store.flags import FLAGS_FILENAME, Flags, read_flags, write_flags
from tests.core.conftest import make_policy
from tests.fifo import returns_within


@pytest.fixture
def runtime(tmp_path: Path) -> Path:
    d = tmp_path / "shared_data"
    d.mkdir()
    return d


def test_regression_issue18_a9_store_readers_refuse_a_fifo(runtime: Path) -> None:
    fifo = runtime / FLAGS_FILENAME
    os.mkfifo(fifo)
    got = returns_within(lambda: read_json(fifo), fifo)
    assert got.doc is None and got.reason == "not_a_regular_file"
    read = returns_within(lambda: read_flags(runtime), fifo)
    assert read.flags is None and read.reason == "flags_invalid"
    assert "not a regular file" in read.detail


def test_regression_issue18_a9_the_daemons_reader_never_hangs_on_a_fifo(
    runtime: Path, tmp_path: Path
) -> None:
    fifo = runtime / FLAGS_FILENAME
    os.mkfifo(fifo)
    files = FileLayer(runtime, tmp_path / "STOP.TXT")
    view = returns_within(files.read, fifo)
    assert "not a regular file" in view.flags_invalid
    policy = make_policy()
    ks = KillSwitch(files, wall=lambda: 1.0)
    effects = Effects(runtime, wall=lambda: 1.0)
    decisions = []

    def reconcile() -> None:
        decision = step(initial_state(policy), ks.read(startup=True), 1.0, policy)
        decisions.append(decision)
        for action in decision.actions:
            effects.execute(action)  # a notice, an alert: nothing else is due
        for action in due_writes(decision.state.switch, decision.state, 1.0):
            ks.write(action, just_read=True)

    returns_within(reconcile, fifo)
    assert decisions[0].state.switch.flags_invalid
    assert alert_path(runtime, "flags_invalid").exists()  # loud
    assert os.path.exists(fifo) and not os.path.isfile(fifo)  # left alone: never written over


def test_regression_issue18_a9_status_and_check_never_hang_on_a_fifo_stop_file(
    runtime: Path, tmp_path: Path
) -> None:
    write_flags(runtime, Flags())
    stop = tmp_path / "STOP.TXT"
    os.mkfifo(stop)
    snap = returns_within(lambda: read_status(runtime, stop, now=0.0), stop)
    assert snap.stop_present and "not a regular file" in snap.stop_line
    fact, line = returns_within(lambda: read_kill_switch(runtime, stop), stop)
    assert fact.active and fact.reason == "stop_file_present" and not line.ok


def test_regression_issue18_a9_status_never_hangs_on_a_fifo_flags_file(
    runtime: Path, tmp_path: Path
) -> None:
    fifo = runtime / FLAGS_FILENAME
    os.mkfifo(fifo)
    snap = returns_within(lambda: read_status(runtime, tmp_path / "STOP.TXT", now=0.0), fifo)
    assert snap.flags.flags is None
    fact, _line = returns_within(lambda: read_kill_switch(runtime, tmp_path / "STOP.TXT"), fifo)
    assert fact.active
