"""The real daemon under a fake systemd: ``autoheal run`` with ``NOTIFY_SOCKET`` set.

The test binds the notify socket itself (a unix datagram socket in tmp_path, with
SO_PASSCRED so it sees each sender's PID, as systemd does for ``NotifyAccess=main``)
and starts ``python -m autoheal run`` with ``WATCHDOG_USEC`` set, supervising one
``sleep``-like Python child with only a process probe. It expects READY=1, periodic
WATCHDOG=1, every message from the daemon's own PID (never a child), a child
environment without the systemd variables, and STOPPING=1 then exit 0 on
SIGTERM. Every wait is a condition under a deadline.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform != "linux", reason="sd_notify is Linux-only"),
]

_CREDS = struct.Struct("3i")  # struct ucred: pid, uid, gid
START_DEADLINE_S = 20.0
WATCHDOG_USEC = 1_000_000  # the daemon should ping about every 0.5 s

CONFIG = """\
environment = "paper"

[paths]
runtime_dir = {runtime_dir}

[daemon]
heartbeat_interval = "200ms"
stop_services_on_exit = true

[services.sleeper]
argv = [{python}, "-c", "import time; time.sleep(60)"]
stop_timeout = "2s"

[[services.sleeper.probes]]
kind = "process"
"""


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "n.sock")
    if len(path.encode()) >= 108:
        pytest.skip(f"tmp_path too long for a unix socket: {path}")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        sock.bind(path)
        yield sock, path


def _recv(sock: socket.socket, timeout: float) -> tuple[dict[str, str], int] | None:
    """One notify message as fields plus sender PID, or None after ``timeout``."""
    sock.settimeout(max(timeout, 0.001))
    try:
        data, anc, _flags, _addr = sock.recvmsg(4096, socket.CMSG_SPACE(_CREDS.size))
    except TimeoutError:
        return None
    pid = -1
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = _CREDS.unpack(payload[: _CREDS.size])[0]
    fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
    return fields, pid


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the daemon and anything it left behind (children have own groups)."""
    try:
        leftovers = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        leftovers = []
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    for child in leftovers:
        try:
            child.kill()
            child.wait(timeout=5)
        except psutil.Error:
            pass


def test_daemon_sends_ready_watchdog_and_stopping(
    tmp_path: Path, notify_socket: tuple[socket.socket, str]
) -> None:
    sock, sock_path = notify_socket
    cfg = tmp_path / "autoheal.toml"
    cfg.write_text(
        CONFIG.format(
            runtime_dir=_toml_str(str(tmp_path / "rt")),
            python=_toml_str(sys.executable),
        )
    )
    env = {**os.environ, "NOTIFY_SOCKET": sock_path, "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    log_path = tmp_path / "daemon.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "autoheal", "run", "--config", str(cfg)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        messages: list[tuple[dict[str, str], int]] = []
        deadline = time.monotonic() + START_DEADLINE_S
        while not any(f.get("READY") == "1" for f, _ in messages):
            if proc.poll() is not None:
                output = log_path.read_text(errors="replace")
                pytest.fail(f"daemon exited {proc.returncode} before READY=1:\n{output}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no READY=1 within {START_DEADLINE_S} s; got {messages}")
            got = _recv(sock, min(remaining, 0.2))
            if got is not None:
                messages.append(got)

        # READY follows the first probe round, whose results are already on disk.
        assert (tmp_path / "rt" / "health_v2.json").exists()
        # The supervised child must not inherit the daemon's notify socket or watchdog.
        children = psutil.Process(proc.pid).children()
        assert children, "the daemon started no service"
        for child in children:
            leaked = {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} & set(child.environ())
            assert not leaked, f"child {child.pid} inherited {leaked}"

        # At least two watchdog pings, within a few of WatchdogSec's half-periods.
        deadline = time.monotonic() + 4 * WATCHDOG_USEC / 1e6
        while sum(f.get("WATCHDOG") == "1" for f, _ in messages) < 2:
            remaining = deadline - time.monotonic()
            got = _recv(sock, remaining) if remaining > 0 else None
            if got is None:
                pytest.fail(f"fewer than 2 WATCHDOG=1 pings in time; got {messages}")
            messages.append(got)

        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        while not any(f.get("STOPPING") == "1" for f, _ in messages):
            remaining = deadline - time.monotonic()
            got = _recv(sock, remaining) if remaining > 0 else None
            if got is None:
                pytest.fail(f"no STOPPING=1 after SIGTERM; got {messages}")
            messages.append(got)
        assert proc.wait(timeout=15) == 0

        # NotifyAccess=main: every message came from the daemon, none from its child.
        assert {pid for _, pid in messages} == {proc.pid}
        assert any("STATUS" in f for f, _ in messages)
    finally:
        _stop(proc)
