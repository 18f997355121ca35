"""Issue 9, defects 2 and 3, end to end: the real CLI, real daemons, real dead claimers.

* A reused idempotency key with a different command is refused (exit 2, naming the key
  and the earlier command); the same key with the same command returns the recorded
  result with the original's exit code, and runs nothing again.
* A command claimed by a process that then died is settled as ``failed`` with reason
  ``claimer_died`` (``result_written`` in the journal), by the next daemon start or by
  the CLI; the CLI never exits 0 for a command that is still pending or claimed.

The dead claimers are real: a daemon SIGKILLed while it waits for a service that
ignores SIGTERM (between ``started`` and ``result_written``), or a small Python process
that claims through the real store code and is then killed and reaped.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from autoheal.drills.stacks.simple import Runtime, alive, toml_str, wait_for
from autoheal.store import commands as queue
from autoheal.store.journal import Journal

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

#: A service that writes its heartbeat and ignores SIGTERM, so that a restart keeps the
#: daemon busy between ``restart.started`` and ``result_written`` for ``stop_timeout``.
STUBBORN_CODE = """\
import json, os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
rt, name = sys.argv[1], sys.argv[2]
path = os.path.join(rt, name + ".heartbeat.json")
seq = 0
while True:
    seq += 1
    tmp = path + ".tmp." + str(os.getpid())
    with open(tmp, "w") as f:
        json.dump(dict(component=name, pid=os.getpid(), ts=time.time(), seq=seq), f)
    os.replace(tmp, path)
    time.sleep(0.2)
"""

#: Claims one command through the real store code, says so, then waits to be killed.
CLAIMER_CODE = """\
import os, sys, time
from autoheal.store import commands
from autoheal.store.journal import Journal
with Journal.open(sys.argv[1]) as j:
    c = commands.claim(j, sys.argv[2], f"pid:{os.getpid()}")
print("claimed" if c is not None else "not-claimed", flush=True)
time.sleep(120)
"""

#: Holds the daemon lock without claiming anything: a hung daemon.
LOCK_HOLDER_CODE = """\
import sys, time
from autoheal.store.lock import RuntimeLock
RuntimeLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(120)
"""


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    with Runtime(tmp_path) as runtime:
        yield runtime


def stubborn_runtime(root: Path) -> Runtime:
    """A runtime whose feeder ignores SIGTERM (3 s until the daemon escalates to KILL)."""
    rt = Runtime(root)
    argv = ", ".join(
        toml_str(a) for a in ("{python}", "-c", STUBBORN_CODE, "{runtime_dir}", "feeder")
    )
    text = rt.config.read_text()
    head = text[: text.index("[services.feeder]")]
    rt.config.write_text(
        head
        + f"""
[services.feeder]
argv = [{argv}]
stop_timeout = "3s"

[[services.feeder.probes]]
kind = "process"
interval = "200ms"
"""
    )
    return rt


def only_command(rt: Runtime, key: str) -> queue.Command:
    with Journal.open(rt.runtime_dir) as journal:
        rows = journal.query("SELECT id FROM commands WHERE idempotency_key = ?", (key,))
        assert len(rows) == 1, f"{len(rows)} rows for key {key}"
        command = queue.get(journal, rows[0]["id"])
    assert command is not None
    return command


def kill_daemon(rt: Runtime) -> None:
    """SIGKILL the daemon (no shutdown at all) and reap it; its services stay behind."""
    proc = rt.daemon
    assert proc is not None
    try:
        rt._children.update(c.pid for c in psutil.Process(proc.pid).children(recursive=True))
    except psutil.Error:
        pass
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    rt.daemon = None


def start_helper(code: str, *args: str) -> tuple[subprocess.Popen[str], str]:
    """Start a helper Python process and return it with the first line it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()  # bounded: the global pytest timeout
    return proc, line


def stop_helper(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=10)


def result_written(rt: Runtime, command_id: str) -> list[tuple[str | None, dict | None]]:  # type: ignore[type-arg]
    return [(e.reason, e.data) for e in rt.events(command_id=command_id, kind="result_written")]


# ------------------------------------------------------------------------------- defect 2


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


def test_same_key_same_command_returns_recorded_result_and_exit_code(rt: Runtime) -> None:
    rt.start_daemon()
    entered = rt.cli("failsafe", "enter", "--reason", "halt", "--idempotency-key", "E1")
    assert entered.returncode == 0, entered.stderr
    again = rt.cli("failsafe", "enter", "--reason", "halt", "--idempotency-key", "E1")
    assert again.returncode == 0, again.stderr
    assert "duplicate" in again.stdout and "succeeded" in again.stdout
    assert len(rt.kinds(kind="failsafe_enter.started")) == 1

    # A refused original (exit 3 inside a failsafe) replays as refused, exit 3.
    refused = rt.cli("restart", "feeder", "--idempotency-key", "R1")
    assert refused.returncode == 3, (refused.stdout, refused.stderr)
    replay = rt.cli("restart", "feeder", "--idempotency-key", "R1")
    assert replay.returncode == 3, (replay.stdout, replay.stderr)
    assert "duplicate" in replay.stdout and "failsafe" in replay.stderr
    cid = only_command(rt, "R1").id
    assert rt.kinds(command_id=cid) == [
        "started", "restart.started", "restart.failed", "result_written"]


# ------------------------------------------------------------------------------- defect 3


def test_claim_of_a_dead_daemon_is_settled_claimer_died_at_daemon_start(tmp_path: Path) -> None:
    with stubborn_runtime(tmp_path) as rt:
        daemon = rt.start_daemon()
        old = rt.healthy_pid("feeder")
        assert old is not None
        queued = rt.cli("restart", "feeder", "--reason", "crash me", "--idempotency-key", "D1",
                        "--no-wait")
        assert queued.returncode == 0, queued.stderr
        # The daemon is now stuck in the stop (the feeder ignores SIGTERM): kill it there,
        # between "restart.started" and "result_written".
        wait_for(lambda: rt.kinds(kind="restart.started"), 10, "restart.started")
        kill_daemon(rt)
        command = only_command(rt, "D1")
        assert command.status == "claimed"
        assert command.claimer_pid == daemon.pid
        assert rt.kinds(command_id=command.id) == ["started", "restart.started"]

        rt.start_daemon(wait_ready=False)

        def settled() -> queue.Command | None:
            c = only_command(rt, "D1")
            return c if c.status != "claimed" else None

        done = wait_for(settled, 15, "the dead daemon's claim to be settled")
        assert done.status == "failed"
        assert done.result["reason"] == "claimer_died"
        [(reason, data)] = result_written(rt, done.id)
        assert reason == "claimer_died"
        assert data is not None and data["status"] == "failed"
        assert data["claimer_pid"] == daemon.pid
        assert rt.kinds(command_id=done.id) == ["started", "restart.started", "result_written"]

        # A retry with the same key reports the settled failure: exit 1, never 0.
        retry = rt.cli("restart", "feeder", "--reason", "crash me", "--idempotency-key", "D1")
        assert retry.returncode == 1, (retry.stdout, retry.stderr)
        assert "claimer_died" in retry.stderr
        assert "duplicate" in retry.stdout


def test_claim_of_a_dead_daemon_is_settled_claimer_died_by_the_waiting_cli(
    tmp_path: Path,
) -> None:
    with stubborn_runtime(tmp_path) as rt:
        daemon = rt.start_daemon()
        waiting = rt.cli_popen("restart", "feeder", "--idempotency-key", "D2", "--timeout", "30")
        wait_for(lambda: rt.kinds(kind="restart.started"), 10, "restart.started")
        kill_daemon(rt)
        started = time.monotonic()

        out, err = waiting.communicate(timeout=30)

        assert waiting.returncode == 1, (out, err)
        assert time.monotonic() - started < 10, "the CLI waited for a claimer that was gone"
        assert "claimer_died" in err
        done = only_command(rt, "D2")
        assert done.status == "failed" and done.result["reason"] == "claimer_died"
        [(reason, data)] = result_written(rt, done.id)
        assert reason == "claimer_died" and data is not None
        assert data["claimer_pid"] == daemon.pid


def test_claim_of_a_dead_claimer_is_settled_claimer_died_by_a_retry(rt: Runtime) -> None:
    """No daemon: the retry with the same key finds the claim of a killed process."""
    rt.runtime_dir.mkdir()
    with Journal.open(rt.runtime_dir) as journal:
        command = queue.submit(journal, "restart", "feeder", {"reason": "manual"},
                               _os_user(), idempotency_key="D3", ttl=600).command
    claimer, line = start_helper(CLAIMER_CODE, str(rt.runtime_dir), command.id)
    assert line == "claimed"
    claimer.kill()
    claimer.communicate(timeout=10)  # reaped: the PID is gone

    retry = rt.cli("restart", "feeder", "--idempotency-key", "D3", "--timeout", "5")

    assert retry.returncode == 1, (retry.stdout, retry.stderr)
    assert "claimer_died" in retry.stderr
    done = only_command(rt, "D3")
    assert done.status == "failed" and done.result["reason"] == "claimer_died"
    [(reason, data)] = result_written(rt, done.id)
    assert reason == "claimer_died" and data is not None
    assert data["claimer_pid"] == claimer.pid and data["why"] == "no_such_process"
    assert rt.kinds(kind="restart.started") == []  # nothing ran, and nothing was retried


def test_claim_with_a_reused_pid_is_settled_claimer_died_by_the_cli(rt: Runtime) -> None:
    """The claimer's PID is alive, but it is another process: its start time differs."""
    rt.runtime_dir.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        start = psutil.Process(sleeper.pid).create_time()
        with Journal.open(rt.runtime_dir) as journal:
            command = queue.submit(journal, "restart", "feeder", {"reason": "manual"},
                                   _os_user(), idempotency_key="D4", ttl=600).command
            claimed = queue.claim(journal, command.id, f"pid:{sleeper.pid}",
                                  identity=(sleeper.pid, start - 100.0))
            assert claimed is not None

        retry = rt.cli("restart", "feeder", "--idempotency-key", "D4", "--timeout", "5")

        assert retry.returncode == 1, (retry.stdout, retry.stderr)
        assert "claimer_died" in retry.stderr
        assert alive(sleeper.pid), "the process that now has the PID is left alone"
        [(reason, data)] = result_written(rt, command.id)
        assert reason == "claimer_died" and data is not None and data["why"] == "pid_reused"
    finally:
        sleeper.kill()
        sleeper.wait(timeout=10)


def test_cli_never_exits_0_for_a_pending_or_claimed_command(rt: Runtime) -> None:
    rt.runtime_dir.mkdir()
    # Claimed by a live process that never finishes it.
    with Journal.open(rt.runtime_dir) as journal:
        command = queue.submit(journal, "restart", "feeder", {"reason": "manual"},
                               _os_user(), idempotency_key="C1", ttl=600).command
    claimer, line = start_helper(CLAIMER_CODE, str(rt.runtime_dir), command.id)
    try:
        assert line == "claimed"
        retry = rt.cli("restart", "feeder", "--idempotency-key", "C1", "--timeout", "0.5")
        assert retry.returncode == 1, (retry.stdout, retry.stderr)
        assert "claimed" in retry.stderr
        assert only_command(rt, "C1").status == "claimed"  # a live claim is not settled
    finally:
        stop_helper(claimer)

    # Pending: the daemon lock is held by a process that never claims (a hung daemon).
    holder, line = start_helper(LOCK_HOLDER_CODE, str(rt.runtime_dir))
    try:
        assert line == "locked"
        queued = rt.cli("restart", "feeder", "--idempotency-key", "P1", "--no-wait")
        assert queued.returncode == 0, queued.stderr
        assert "queued" in queued.stdout
        retry = rt.cli("restart", "feeder", "--idempotency-key", "P1", "--timeout", "0.5")
        assert retry.returncode == 1, (retry.stdout, retry.stderr)
        assert "pending" in retry.stderr
        fresh = rt.cli("failsafe", "enter", "--reason", "r", "--timeout", "0.5")
        assert fresh.returncode == 1, (fresh.stdout, fresh.stderr)
        assert "pending" in fresh.stderr
    finally:
        stop_helper(holder)
    assert not rt.stop_file.exists()


def _os_user() -> str:
    import os
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name
