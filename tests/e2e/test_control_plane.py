"""The operator's control plane end to end: a real daemon, the real CLI, the real journal.

The smoke test starts ``autoheal run`` over one simple service (``feeder``, a Python
child that writes a heartbeat every 0.2 s) in ``tmp_path``, restarts it with a
``python -m autoheal ...`` subprocess, then checks what an operator would: the exit
code and message, the PIDs in the pidfile and in ``health_v2.json``, the SIGTERM the
old process got, and the command's audit events in the journal, in order.

The rest moved down a tier (issue 19): replays, expired and tampered commands, the
failsafe's refusals and racing CLIs against the in-process daemon
(``tests/daemon/test_command_cli.py``, ``tests/daemon/test_command_queue.py``), and the
CLI acting with no daemon (``tests/daemon/test_direct_commands.py``).
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from autoheal.drills.stacks.simple import Runtime, alive, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

FOUR_EVENTS = ["started", "restart.started", "restart.succeeded", "result_written"]


def os_user() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    with Runtime(tmp_path) as runtime:
        yield runtime


def command_ids(rt: Runtime, ctype: str) -> list[str]:
    """Ids of the commands of one type that the journal saw start, oldest first."""
    return [e.command_id for e in rt.events(kind=f"{ctype}.started") if e.command_id is not None]


def sigterm_count(rt: Runtime, name: str = "feeder") -> int:
    """How many times a ``name`` process was sent SIGTERM (each one writes a line)."""
    try:
        return len((rt.runtime_dir / f"{name}.sigterm").read_text().splitlines())
    except FileNotFoundError:
        return 0


def new_healthy_pid(rt: Runtime, old: int) -> int:
    """Wait until pidfile and health agree on a PID other than ``old`` and it is healthy."""
    return wait_for(
        lambda: (p := rt.healthy_pid("feeder")) is not None and p != old and p,
        10,
        "a new healthy feeder PID",
    )


def test_restart_gives_new_pid_and_four_events_in_order(rt: Runtime) -> None:
    rt.start_daemon()
    old = rt.healthy_pid("feeder")
    assert old is not None

    done = rt.cli("restart", "feeder", "--reason", "e2e")

    assert done.returncode == 0, done.stderr
    assert "restart feeder succeeded" in done.stdout
    new = new_healthy_pid(rt, old)
    assert f'"pid": {new}' in done.stdout
    assert not alive(old)
    (cid,) = command_ids(rt, "restart")
    events = rt.events(command_id=cid)
    assert [e.kind for e in events] == FOUR_EVENTS
    assert {e.actor for e in events} == {os_user()}
    assert {e.reason for e in events} == {"e2e"}
    assert {e.component for e in events} == {"feeder"}
    assert sigterm_count(rt) == 1
    notices = [
        orjson.loads(line)
        for line in (rt.runtime_dir / "notifications.log").read_text().splitlines()
    ]
    assert any(n["kind"] == "operator" and n["component"] == "feeder" for n in notices)
