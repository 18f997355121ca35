"""What the command-queue tests on the in-process daemon share.

The real :class:`~autoheal.daemon.loop.Daemon` runs in the test's event loop with
:class:`~autoheal.testing.FakeProcessControl`; the config, the runtime directory and
its lock, the journal and its queue, the flags, ``STOP.TXT`` and the health document
are real files in ``tmp_path``. The CLI is the real one (:func:`autoheal.cli.main`),
called in this process; :func:`cli` keeps each call's output apart from every other
thread's, so two CLIs racing each get their own.
"""

from __future__ import annotations

import gc
import io
import os
import pwd
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import anyio
import psutil
import pytest

from autoheal.cli import main
from autoheal.config import Config, load_config
from autoheal.daemon.clock import Clock, LoopClock
from autoheal.daemon.interpreter import Interpreter
from autoheal.daemon.loop import Daemon
from autoheal.store import commands as queue
from autoheal.store.atomic import read_json
from autoheal.store.journal import Event, Journal
from autoheal.testing import FakeProcessControl

#: Unix time at virtual time 0 (the wall clock is a label; it follows the virtual one).
EPOCH = 1_700_000_000.0

#: One service with a process probe only: a fake process is healthy while it runs, and
#: no probe reads a file that nobody writes.
CONFIG = """\
environment = "paper"

[paths]
runtime_dir = "rt"
stop_file = "STOP.TXT"

[policy]
failures_before_restart = 2
restart_backoff = ["{backoff}"]
verify_window = "{verify}"
verify_min_uptime = "{uptime}"
max_restarts = 3
stable_reset = "10m"

[daemon]
heartbeat_interval = "{beat}"

[services.feeder]
argv = ["{{python}}", "-c", "feeder"]

[[services.feeder.probes]]
kind = "process"
interval = "{beat}"
"""

#: The audit trail of an executed restart, in order.
FOUR_EVENTS = ["started", "restart.started", "restart.succeeded", "result_written"]


def write_config(root: Path, *, virtual: bool) -> Config:
    """``root/autoheal.toml`` (runtime ``root/rt``, stop file ``root/STOP.TXT``), loaded.

    On virtual time the runbook's own timings; on real time, scaled down to tens of ms.
    """
    timings = (
        {"backoff": "15s", "verify": "90s", "uptime": "2s", "beat": "10s"}
        if virtual
        else {"backoff": "50ms", "verify": "300ms", "uptime": "20ms", "beat": "50ms"}
    )
    path = root / "autoheal.toml"
    path.write_text(CONFIG.format(**timings))
    return load_config(path)


@asynccontextmanager
async def running_daemon(
    config: Config, fake: FakeProcessControl, clock: Clock | None = None
) -> AsyncIterator[Interpreter]:
    """Run the real daemon until the block ends, then cancel it (it stops its services)."""
    daemon = Daemon(config, procs=fake, clock=clock or LoopClock())
    async with anyio.create_task_group() as tg:
        yield await tg.start(lambda task_status: daemon.run(task_status=task_status))
        tg.cancel_scope.cancel()
    gc.collect()  # an unclosed stream of the daemon's would warn (an error) here, not later


def os_user() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


def doc(path: Path) -> dict[str, Any]:
    """A JSON file the daemon writes, or ``{}`` while it is missing."""
    return read_json(path).doc or {}


def flags(config: Config) -> dict[str, Any]:
    return doc(config.paths.runtime_dir / "global_flags.json")


def health(config: Config) -> dict[str, Any]:
    return doc(config.paths.runtime_dir / "health_v2.json")


def events(config: Config, **filters: Any) -> list[Event]:
    """Journal events, oldest first (e.g. ``events(config, command_id=...)``)."""
    with Journal.open(config.paths.runtime_dir) as journal:
        return journal.events(limit=10_000, **filters)


def kinds(config: Config, **filters: Any) -> list[str]:
    return [e.kind for e in events(config, **filters)]


def command(config: Config, command_id: str) -> queue.Command:
    with Journal.open(config.paths.runtime_dir) as journal:
        found = queue.get(journal, command_id)
    assert found is not None, command_id
    return found


def only_command(config: Config, key: str) -> queue.Command:
    """The one command queued under idempotency key ``key``."""
    with Journal.open(config.paths.runtime_dir) as journal:
        rows = journal.query("SELECT id FROM commands WHERE idempotency_key = ?", (key,))
    assert len(rows) == 1, f"{len(rows)} rows for key {key}"
    return command(config, rows[0]["id"])


def submit(config: Config, ctype: str, target: str = "", reason: str = "test", **kw: Any) -> str:
    """Queue a command as the CLI would (``kw``: ``idempotency_key``, ``ttl``, ``now``); its id."""
    config.paths.runtime_dir.mkdir(parents=True, exist_ok=True)
    with Journal.open(config.paths.runtime_dir) as journal:
        return queue.submit(journal, ctype, target, {"reason": reason}, os_user(), **kw).command.id


def exited_process() -> tuple[int, float]:
    """The PID and kernel start time of a real process that has exited and been reaped."""
    proc = subprocess.Popen(["true"])
    try:
        start = psutil.Process(proc.pid).create_time()  # readable while it is a zombie too
    finally:
        proc.wait(timeout=10)
    assert not psutil.pid_exists(proc.pid)
    return proc.pid, start


def claim_as(
    config: Config, command_id: str, pid: int, start: float, *, began: bool = True
) -> queue.Command:
    """Claim a pending command as process ``pid`` (started at ``start``) would, and, with
    ``began``, journal what a claimer journals before it acts (``started``,
    ``<type>.started``), as a daemon killed mid-command leaves it."""
    with Journal.open(config.paths.runtime_dir) as journal:
        claimed = queue.claim(journal, command_id, f"pid:{pid}", identity=(pid, start))
        assert claimed is not None
        if began:
            queue.record_started(journal, claimed)
            queue.record_action(journal, claimed, "started")
    return claimed


# ------------------------------------------------------------------------------ the CLI


@dataclass(frozen=True)
class Ran:
    """One CLI call: its exit code and what it printed."""

    code: int
    out: str
    err: str


_local = threading.local()
_install_lock = threading.Lock()
_installed: list[tuple[TextIO, TextIO]] = []  # the streams replaced, while calls run


class _ThreadStream(io.TextIOBase):
    """Writes go to the calling thread's buffer while :func:`cli` runs in it, else on."""

    def __init__(self, name: str, fallback: TextIO) -> None:
        self._name = name
        self._fallback = fallback

    def write(self, text: str) -> int:
        buffer: io.StringIO | None = getattr(_local, self._name, None)
        return (buffer or self._fallback).write(text)

    def flush(self) -> None:
        self._fallback.flush()


@contextmanager
def _own_streams() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """This thread's stdout and stderr, apart from every other thread's.

    ``print`` writes to whatever ``sys.stdout`` is: while any call runs, both are
    replaced by streams that look up the calling thread's buffers (pytest's capture
    stays underneath, for everyone else); the last call to end puts them back.
    """
    with _install_lock:
        if not _installed:
            _installed.append((sys.stdout, sys.stderr))
            sys.stdout = _ThreadStream("out", sys.stdout)  # type: ignore[assignment]
            sys.stderr = _ThreadStream("err", sys.stderr)  # type: ignore[assignment]
        _installed.append(_installed[0])
    out, err = _local.out, _local.err = io.StringIO(), io.StringIO()
    try:
        yield out, err
    finally:
        _local.out = _local.err = None
        with _install_lock:
            _installed.pop()
            if len(_installed) == 1:
                sys.stdout, sys.stderr = _installed.pop()


def cli(config: Config, *argv: str) -> Ran:
    """``autoheal ARGV --config CONFIG``, in this process and thread; what it printed."""
    with _own_streams() as (out, err):
        code = main([*argv, "--config", str(config.path)])
    return Ran(code, out.getvalue(), err.getvalue())


async def acli(config: Config, *argv: str) -> Ran:
    """:func:`cli` in a worker thread, while the daemon runs in this event loop."""
    return await anyio.to_thread.run_sync(lambda: cli(config, *argv))


async def until(predicate: Callable[[], object], what: str, *, within: float = 60) -> None:
    """Wait in virtual time (a look a second) until ``predicate()``."""
    deadline = anyio.current_time() + within
    while not predicate():
        if anyio.current_time() > deadline:
            pytest.fail(f"no {what} within {within} virtual seconds")
        await anyio.sleep(1.0)
