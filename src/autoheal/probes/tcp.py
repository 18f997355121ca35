"""TCP probe: connect to ``host:port`` within a timeout, then close; nothing is sent.

Kubernetes' ``tcpSocket`` probe, monit's ``if failed port``. It proves a listener
accepts connections, no more (a half-open socket that accepts and never answers
passes: judge the answer with an ``http`` probe). anyio's errors are mapped here,
at the boundary, to the tokens the http probe uses:

==================================  ==================
connected                           ok (value: the connect time in s)
every address refused the connect   ``CONN_REFUSED``
no connection within ``timeout``    ``CONN_TIMEOUT``
any other OS error (no route, DNS)  ``CONN_ERROR``
==================================  ==================

An IP literal is connected to directly (a non-blocking socket, then wait until it is
writable): anyio's ``connect_tcp`` resolves even a literal through ``getaddrinfo`` in
a worker thread and runs happy eyeballs for it, three times the CPU of the connect.
A name goes through ``connect_tcp``, resolved afresh each check.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import select
import socket
import time
from collections.abc import Callable

import anyio

from autoheal.probes.result import CONN_ERROR, CONN_REFUSED, CONN_TIMEOUT, ProbeResult

__all__ = ["TcpProbe", "connect_reason"]


def connect_reason(exc: BaseException) -> str:
    """The token for a failed connect: refused only when every attempt was refused."""
    leaves: list[BaseException] = []
    stack: list[BaseException] = [exc]
    while stack:
        e = stack.pop()
        if isinstance(e, BaseExceptionGroup):
            stack.extend(e.exceptions)
        elif e.__cause__ is not None:
            stack.append(e.__cause__)
        else:
            leaves.append(e)
    if leaves and all(isinstance(e, ConnectionRefusedError) for e in leaves):
        return CONN_REFUSED
    if any(isinstance(e, TimeoutError) for e in leaves):
        return CONN_TIMEOUT
    return CONN_ERROR


class TcpProbe:
    """Open one TCP connection per check and close it.

    Args:
        host: a name or an IP literal.
        port: 1 to 65535.
        timeout: seconds the connect may take.
        clock: monotonic time, to measure the connect.
    """

    def __init__(
        self, host: str, port: int, timeout: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        self.host = host
        self.port = port
        self.timeout = float(timeout)
        self._clock = clock
        try:
            self._family: int | None = (
                socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
            )
        except ValueError:
            self._family = None  # a name: resolved by connect_tcp

    def __repr__(self) -> str:
        return f"TcpProbe({self.host!r}, {self.port}, timeout={self.timeout})"

    def timed_out(self, after: float) -> ProbeResult:
        """The runner's timeout fired first: the connect did not finish in time."""
        return ProbeResult(
            False, CONN_TIMEOUT, after, self.timeout, detail=f"no connection within {after:g} s"
        )

    async def check(self) -> ProbeResult:
        started = self._clock()
        try:
            with anyio.fail_after(self.timeout):
                if self._family is not None:
                    await self._connect_literal(self._family)
                else:
                    stream = await anyio.connect_tcp(self.host, self.port)
                    with anyio.CancelScope(shield=True):
                        await stream.aclose()
        except TimeoutError:
            return self.timed_out(self._clock() - started)
        except OSError as exc:
            detail = f"{self.host}:{self.port}: {_words(exc)}"
            return ProbeResult(False, connect_reason(exc), None, self.timeout, detail=detail)
        return ProbeResult(True, "", self._clock() - started, self.timeout)

    async def _connect_literal(self, family: int) -> None:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setblocking(False)
            code = sock.connect_ex((self.host, self.port))
            if code == errno.EINPROGRESS:
                if not _writable_now(sock):  # a loopback connect is done already:
                    await anyio.wait_writable(sock)  # no second turn of the event loop
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code == errno.ECONNREFUSED:
                raise ConnectionRefusedError(code, os.strerror(code))
            if code:
                raise OSError(code, os.strerror(code))


def _writable_now(sock: socket.socket) -> bool:
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    return bool(poller.poll(0))


def _words(exc: OSError) -> str:
    cause = exc.__cause__
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return exc.strerror or str(exc) or type(exc).__name__
