"""Issue 9, defect 2, end to end: a reused idempotency key with a different command is
refused by the real CLI against a real daemon (exit 2, naming the key and the earlier
command), and nothing is queued or run.

The smoke test of the command queue's key rules. The rest moved down a tier (issue 19):
key replays, dead claimers settled as ``claimer_died`` and commands never reported done
when they are not, against the in-process daemon and the CLI called in-process
(``tests/daemon/test_command_cli.py``, ``tests/daemon/test_command_queue.py``); the
decisions themselves are ``tests/core/test_command_decisions.py``'s, the queue's
``tests/store/test_commands.py``'s.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from autoheal.drills.stacks.simple import Runtime
from autoheal.store import commands as queue
from autoheal.store.journal import Journal

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    with Runtime(tmp_path) as runtime:
        yield runtime


def only_command(rt: Runtime, key: str) -> queue.Command:
    with Journal.open(rt.runtime_dir) as journal:
        rows = journal.query("SELECT id FROM commands WHERE idempotency_key = ?", (key,))
        assert len(rows) == 1, f"{len(rows)} rows for key {key}"
        command = queue.get(journal, rows[0]["id"])
    assert command is not None
    return command


def test_reused_key_with_a_different_command_is_refused_exit_2(rt: Runtime) -> None:
    rt.start_daemon()
    first = rt.cli("restart", "feeder", "--idempotency-key", "K1")
    assert first.returncode == 0, first.stderr
    earlier = only_command(rt, "K1")

    second = rt.cli("failsafe", "enter", "--reason", "halt now", "--idempotency-key", "K1")

    assert second.returncode == 2, (second.stdout, second.stderr)
    assert "succeeded" not in second.stdout
    assert "K1" in second.stderr and earlier.id in second.stderr
    assert "restart feeder" in second.stderr
    assert not rt.stop_file.exists()
    assert (rt.flags() or {}).get("failsafe_active") is not True
    assert rt.kinds(kind="failsafe_enter.started") == []
    assert only_command(rt, "K1").id == earlier.id  # nothing new was queued

    # Same type and target, another payload (the reason): a different command too.
    third = rt.cli("restart", "feeder", "--reason", "other", "--idempotency-key", "K1")
    assert third.returncode == 2, (third.stdout, third.stderr)
    assert "payload" in third.stderr
    assert len(rt.kinds(kind="restart.started")) == 1
