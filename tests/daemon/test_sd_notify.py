"""sd_notify against a real NOTIFY_SOCKET: a unix datagram socket the test binds itself.

The receiver stands in for systemd: it binds a path socket in tmp_path (or an abstract
one), turns on SO_PASSCRED to learn the sender's PID as systemd does for
``NotifyAccess=main``, and reads datagrams with bounded waits. Nothing sleeps: the
watchdog loop's own sleep is wrapped so the test can wait for "N iterations done".
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from autoheal.daemon.systemd import (
    SYSTEMD_ENV_VARS,
    LoopLiveness,
    SystemdNotifier,
    watchdog_loop,
)

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="sd_notify is Linux-only")

_CREDS = struct.Struct("3i")  # struct ucred: pid, uid, gid
WAIT_S = 5.0


class FakeSystemd:
    """The receiving end of NOTIFY_SOCKET."""

    def __init__(self, sock: socket.socket, env_value: str) -> None:
        self.sock = sock
        self.env_value = env_value

    def notifier(self, **env: str) -> SystemdNotifier:
        return SystemdNotifier.from_env({"NOTIFY_SOCKET": self.env_value, **env})

    def recv(self) -> tuple[bytes, int]:
        """One datagram and its sender's PID, waiting at most WAIT_S."""
        self.sock.settimeout(WAIT_S)
        data, anc, _flags, _addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(_CREDS.size))
        pid = -1
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = _CREDS.unpack(payload[: _CREDS.size])[0]
        return data, pid

    async def arecv(self) -> bytes:
        """One datagram, without blocking the event loop, within WAIT_S."""
        self.sock.setblocking(False)
        with anyio.fail_after(WAIT_S):
            while True:
                await anyio.wait_readable(self.sock)
                try:
                    return self.sock.recv(4096)
                except BlockingIOError:
                    continue

    def pending(self) -> list[bytes]:
        """Everything queued right now (no wait)."""
        self.sock.setblocking(False)
        out = []
        while True:
            try:
                out.append(self.sock.recv(4096))
            except BlockingIOError:
                return out


def _bind(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    sock.bind(address)
    return sock


@pytest.fixture
def path_systemd(tmp_path: Path) -> Iterator[FakeSystemd]:
    path = str(tmp_path / "notify.sock")
    if len(path.encode()) >= 108:  # sun_path limit
        pytest.skip(f"tmp_path too long for a unix socket: {path}")
    with _bind(path) as sock:
        yield FakeSystemd(sock, path)


@pytest.fixture
def abstract_systemd() -> Iterator[FakeSystemd]:
    name = f"autoheal-test-{uuid.uuid4().hex}"
    with _bind("\0" + name) as sock:
        yield FakeSystemd(sock, "@" + name)


@pytest.fixture(params=["path", "abstract"])
def systemd(request: pytest.FixtureRequest) -> FakeSystemd:
    fake: FakeSystemd = request.getfixturevalue(f"{request.param}_systemd")
    return fake


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# --------------------------------------------------------------------------- messages


def test_notifier_sends_each_message_from_our_pid(systemd: FakeSystemd) -> None:
    notifier = systemd.notifier()
    assert notifier.enabled
    assert notifier.ready("first probe round done")
    assert notifier.status("DOR=true components=3/3")
    assert notifier.watchdog()
    assert notifier.stopping()
    received = [systemd.recv() for _ in range(4)]
    assert [data for data, _ in received] == [
        b"READY=1\nSTATUS=first probe round done",
        b"STATUS=DOR=true components=3/3",
        b"WATCHDOG=1",
        b"STOPPING=1",
    ]
    # systemd matches this PID against MainPID= under NotifyAccess=main.
    assert {pid for _, pid in received} == {os.getpid()}


def test_notify_sends_fields_as_one_datagram_in_order(path_systemd: FakeSystemd) -> None:
    notifier = path_systemd.notifier()
    assert notifier.notify(READY=1, STATUS="line one\nWATCHDOG=1", ERRNO=0)
    assert notifier.ready()
    assert notifier.stopping("stopping services")
    # A newline in a value must not smuggle in a second field.
    assert path_systemd.recv()[0] == b"READY=1\nSTATUS=line one WATCHDOG=1\nERRNO=0"
    assert path_systemd.recv()[0] == b"READY=1"
    assert path_systemd.recv()[0] == b"STOPPING=1\nSTATUS=stopping services"
    assert path_systemd.pending() == []


def test_notifier_without_notify_socket_is_a_noop() -> None:
    notifier = SystemdNotifier.from_env({})
    assert not notifier.enabled
    assert notifier.watchdog_interval() is None
    assert not notifier.ready("x")
    assert not notifier.watchdog()
    assert not notifier.status("x")
    assert not notifier.stopping()
    assert not notifier.notify(READY=1)


def test_notifier_from_env_can_unset_the_systemd_variables(path_systemd: FakeSystemd) -> None:
    env = {
        "NOTIFY_SOCKET": path_systemd.env_value,
        "WATCHDOG_USEC": "30000000",
        "WATCHDOG_PID": str(os.getpid()),
        "PATH": "/usr/bin",
    }
    notifier = SystemdNotifier.from_env(env, unset_environment=True)
    assert env == {"PATH": "/usr/bin"}
    assert set(SYSTEMD_ENV_VARS) == {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"}
    assert notifier.watchdog_interval() == 30.0
    assert notifier.watchdog()
    assert path_systemd.recv()[0] == b"WATCHDOG=1"


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("30000000", "self", 30.0),
        ("500000", None, 0.5),
        ("30000000", "1", None),  # another process's watchdog (PID 1 is never pytest)
        ("30000000", "junk", None),
        ("0", None, None),
        ("-5", None, None),
        ("abc", None, None),
        (None, None, None),
    ],
)
def test_watchdog_interval_from_env(
    path_systemd: FakeSystemd, usec: str | None, pid: str | None, expected: float | None
) -> None:
    env = {}
    if usec is not None:
        env["WATCHDOG_USEC"] = usec
    if pid is not None:
        env["WATCHDOG_PID"] = str(os.getpid()) if pid == "self" else pid
    assert path_systemd.notifier(**env).watchdog_interval() == expected


def test_watchdog_interval_is_none_without_notify_socket() -> None:
    env = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    assert SystemdNotifier.from_env(env).watchdog_interval() is None


# --------------------------------------------------------------------------- failures


def test_notifier_never_raises_and_logs_once_per_failure_streak(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "later.sock"
    notifier = SystemdNotifier(str(path))
    with caplog.at_level(logging.INFO, logger="autoheal.daemon.systemd"):
        assert [notifier.watchdog() for _ in range(5)] == [False] * 5
        failed = [r for r in caplog.records if "sd_notify_failed" in r.getMessage()]
        assert len(failed) == 1 and failed[0].levelno == logging.WARNING
        with _bind(str(path)) as sock:
            assert notifier.watchdog()
            assert sock.recv(64) == b"WATCHDOG=1"
    assert any("sd_notify_recovered" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("value", ["relative/notify.sock", "vsock:2:1234"])
def test_notifier_ignores_unsupported_addresses(value: str) -> None:
    notifier = SystemdNotifier(value)
    assert not notifier.enabled
    assert not notifier.ready()


def test_notifier_never_blocks_on_a_full_receive_queue(path_systemd: FakeSystemd) -> None:
    notifier = path_systemd.notifier()
    # net.unix.max_dgram_qlen is small (10 by default): an unread queue fills quickly,
    # and a blocking send would hang here forever.
    results = [notifier.watchdog() for _ in range(2000)]
    assert results[0] is True
    assert False in results
    assert path_systemd.pending()  # what fitted was delivered


# --------------------------------------------------------------------------- watchdog loop


class CountingSleep:
    """anyio.sleep that also lets the test await "the loop has slept N more times"."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = anyio.Event()

    async def __call__(self, seconds: float) -> None:
        self.count += 1
        self._changed.set()
        self._changed = anyio.Event()
        await anyio.sleep(seconds)

    async def wait_for(self, count: int) -> None:
        with anyio.fail_after(WAIT_S):
            while self.count < count:
                await self._changed.wait()


@pytest.mark.anyio
async def test_watchdog_loop_pings_only_while_healthy(
    path_systemd: FakeSystemd, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = path_systemd.notifier()
    healthy = True
    sleep = CountingSleep()
    caplog.set_level(logging.INFO, logger="autoheal.daemon.systemd")

    async with anyio.create_task_group() as tg:
        tg.start_soon(
            lambda: watchdog_loop(notifier, lambda: healthy, interval=0.01, sleep_fn=sleep)
        )
        for _ in range(3):
            assert await path_systemd.arecv() == b"WATCHDOG=1"

        healthy = False
        path_systemd.pending()  # pings sent before the flip
        await sleep.wait_for(sleep.count + 3)  # three whole iterations while unhealthy
        assert path_systemd.pending() == []

        healthy = True
        assert await path_systemd.arecv() == b"WATCHDOG=1"
        tg.cancel_scope.cancel()

    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("watchdog_withheld reason=main_loop_stalled") == 1
    assert messages.count("watchdog_resumed") == 1


@pytest.mark.anyio
async def test_watchdog_loop_stops_pinging_when_the_main_loop_stalls(
    path_systemd: FakeSystemd,
) -> None:
    now = [0.0]
    liveness = LoopLiveness(1.0, time_fn=lambda: now[0])
    sleep = CountingSleep()
    async with anyio.create_task_group() as tg:
        tg.start_soon(
            lambda: watchdog_loop(path_systemd.notifier(), liveness, interval=0.01, sleep_fn=sleep)
        )
        assert await path_systemd.arecv() == b"WATCHDOG=1"
        now[0] = 5.0  # the main loop has not marked for 5 s
        path_systemd.pending()
        await sleep.wait_for(sleep.count + 2)
        assert path_systemd.pending() == []
        liveness.mark()
        assert await path_systemd.arecv() == b"WATCHDOG=1"
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_watchdog_loop_returns_at_once_without_notify_socket() -> None:
    with anyio.fail_after(1):
        await watchdog_loop(SystemdNotifier.from_env({}), lambda: True, interval=3600)


@pytest.mark.anyio
@pytest.mark.parametrize("interval", [0.0, -1.0, float("nan")])
async def test_watchdog_loop_rejects_bad_interval(interval: float) -> None:
    with pytest.raises(ValueError, match="interval"):
        await watchdog_loop(SystemdNotifier.from_env({}), lambda: True, interval=interval)


def test_loop_liveness_tracks_marks_on_a_fake_clock() -> None:
    now = [100.0]
    liveness = LoopLiveness(2.0, time_fn=lambda: now[0])
    assert liveness()
    now[0] = 102.0
    assert liveness()
    now[0] = 102.5
    assert not liveness()
    liveness.mark()
    assert liveness()
    with pytest.raises(ValueError, match="max_silence"):
        LoopLiveness(0)
