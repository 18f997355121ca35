"""A real ``redis-server`` (Debian package ``redis-server``) for the fleet tests and the
fleet benchmark (``benchmarks/fleet_latency.py``).

Each user starts its own, on a free loopback port, in its own folder, without
persistence, and stops it. Killing, restarting and SIGSTOPping it are real faults:
a refused connection and a hung engine. Every wait is bounded. The processes are
started and stopped by the drills' harness (:mod:`autoheal.drills.stacks.harness`).
"""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

from autoheal.drills.errors import StackError
from autoheal.drills.stacks.harness import Spawned, wait_for

__all__ = ["RedisServer", "SentinelServer", "free_port", "ping"]

START_S = 10.0
STOP_S = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ping(port: int, password: str | None = None, timeout: float = 0.5) -> bool:
    """A raw RESP PING (no client library): True on +PONG."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            if password is not None:
                s.sendall(f"AUTH {password}\r\n".encode())
                if not s.recv(64).startswith(b"+OK"):
                    return False
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process; ``start``/``stop`` may be called again (same port)."""

    def __init__(self, binary: str, folder: Path, *, password: str | None = None) -> None:
        self.binary = binary
        self.folder = folder
        self.password = password
        self.port = free_port()
        self._spawned: Spawned | None = None
        self.extra_args: list[str] = []  # e.g. a TLS port beside the plain one
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return None if self._spawned is None else self._spawned.popen

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.folder),
        ]  # fmt: skip
        if self.password is not None:
            argv += ["--requirepass", self.password]
        argv += self.extra_args
        self._spawned = _start(
            argv,
            self.folder / "redis.log",
            lambda: ping(self.port, self.password),
            f"redis-server on port {self.port}",
        )

    def stop(self) -> None:
        spawned, self._spawned = self._spawned, None
        if spawned is not None:
            spawned.send(signal.SIGCONT)  # a paused server cannot handle a signal
            spawned.kill()

    def pause(self) -> None:
        self._running().send(signal.SIGSTOP)

    def resume(self) -> None:
        self._running().send(signal.SIGCONT)

    def _running(self) -> Spawned:
        if self._spawned is None:
            raise StackError(f"redis-server on port {self.port} is not started")
        return self._spawned

    def command(self, *args: str | bytes) -> bytes:
        """One command through a raw socket (the tests' own look, independent of redis-py).

        A ``bytes`` argument goes as it is (a key or value that is not UTF-8).
        """
        parts = [f"*{len(args)}\r\n".encode()]
        for a in args:
            b = a if isinstance(a, bytes) else a.encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            if self.password is not None:
                s.sendall(f"AUTH {self.password}\r\n".encode())
                s.recv(64)
            s.sendall(b"".join(parts))
            return s.recv(65536)


class SentinelServer:
    """``redis-server --sentinel`` watching ``master`` as ``mymaster`` (quorum 1)."""

    def __init__(self, binary: str, folder: Path, master: RedisServer) -> None:
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self.master = master
        self._spawned: Spawned | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return None if self._spawned is None else self._spawned.popen

    def start(self) -> None:
        conf = self.folder / "sentinel.conf"  # sentinel rewrites its config: a file of its own
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.folder}\n"
            f"sentinel monitor mymaster 127.0.0.1 {self.master.port} 1\n"
        )
        self._spawned = _start(
            [self.binary, str(conf), "--sentinel"],
            self.folder / "sentinel.log",
            lambda: ping(self.port),
            f"redis sentinel on port {self.port}",
        )

    def stop(self) -> None:
        spawned, self._spawned = self._spawned, None
        if spawned is not None:
            spawned.kill()


def _start(argv: list[str], log: Path, up: Callable[[], bool], what: str) -> Spawned:
    """Start ``argv`` and wait until ``up()``; a process that exits or is not up within
    :data:`START_S` is killed and raises :class:`StackError`."""
    spawned = Spawned(argv, log)

    def ready() -> bool:
        if not spawned.alive():
            raise StackError(f"{what} exited with {spawned.returncode}; see {log}")
        return up()

    try:
        wait_for(ready, START_S, what)
    except (TimeoutError, StackError) as exc:
        spawned.kill()
        raise StackError(f"{what} did not start; see {log}") from exc
    return spawned
