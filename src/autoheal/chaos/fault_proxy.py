"""The data plane of the loopback fault proxy: :class:`FaultProxy` (toxiproxy-like).

Theory of operation: :class:`FaultProxy` accepts loopback connections and pipes
each one to the upstream. Every direction of a connection is a reader task and a
writer task joined by a small memory stream, so a latency fault delays each chunk
without reordering it and without adding up (the delay is pipelined, as in
toxiproxy). One fault at a time is active (:mod:`autoheal.chaos.faults` says what
each kind does); it is read per chunk, so changing it takes effect on live
connections at once.

When a fault ends (cleared, replaced, or its duration ran out on anyio's
monotonic clock) every live connection is closed, so clients reconnect cleanly
instead of keeping a half-dead socket. The control port that drives a proxy from
another process is in :mod:`autoheal.chaos.proxy_control`.
"""

from __future__ import annotations

import itertools
import logging
import random
import socket
import struct
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import anyio
from anyio import TASK_STATUS_IGNORED, CancelScope, EndOfStream
from anyio.abc import ByteStream, SocketAttribute, SocketStream, TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream

from autoheal.chaos.faults import Fault

__all__ = ["STREAM_ERRORS", "FaultProxy"]

# One logger for the whole proxy, named as before it was split into modules.
logger = logging.getLogger("autoheal.chaos.proxy")

_RESETTING = ("refuse", "reset")
_CHUNK = 65536
#: What a broken or closed peer raises from ``send`` and ``receive``.
STREAM_ERRORS = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


@dataclass
class _Connection:
    """Bookkeeping for one proxied connection."""

    id: int
    peer: str
    opened_at: float
    scope: CancelScope = field(default_factory=CancelScope)
    reset: bool = False
    bytes: dict[str, int] = field(default_factory=lambda: {"upstream": 0, "downstream": 0})
    dropped: int = 0
    pace_at: dict[str, float] = field(default_factory=lambda: {"upstream": 0.0, "downstream": 0.0})


def _abort_with_rst(stream: ByteStream) -> None:
    """Make the next close of ``stream`` send RST instead of FIN (SO_LINGER 0)."""
    try:
        sock = stream.extra(SocketAttribute.raw_socket)  # noqa: S610
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except (OSError, anyio.TypedAttributeLookupError):
        pass


class FaultProxy:
    """A TCP proxy from a loopback port to ``upstream_host:upstream_port`` with faults.

    Use ``async with FaultProxy(...) as proxy:`` or ``await tg.start(proxy.serve)``;
    the fault methods are synchronous and must be called from the proxy's event loop.

    Args:
        upstream_host: where connections are forwarded.
        upstream_port: the upstream's port.
        listen_host: the address to listen on (loopback by default).
        listen_port: the port to listen on; 0 lets the OS pick (read :attr:`port`).
        connect_timeout_s: how long to try the upstream before resetting the client.
        seed: seeds the jitter, so a drill can be replayed.
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        connect_timeout_s: float = 5.0,
        seed: int | None = None,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.listen = (listen_host, listen_port)
        self.connect_timeout_s = connect_timeout_s
        self._rng = random.Random(seed)
        self._port: int | None = None
        self._tg: TaskGroup | None = None
        self._outer: TaskGroup | None = None
        self._fault: Fault | None = None
        self._fault_until: float | None = None
        self._timer = CancelScope()
        self._conns: dict[int, _Connection] = {}
        self._ids = itertools.count(1)
        self._totals = {
            "connections": 0,
            "refused": 0,
            "upstream": 0,
            "downstream": 0,
            "dropped": 0,
        }

    @property
    def port(self) -> int:
        """The bound listening port; ``RuntimeError`` before the proxy is serving."""
        if self._port is None:
            raise RuntimeError("the proxy is not serving yet")
        return self._port

    @property
    def fault(self) -> Fault | None:
        """The active fault, or ``None`` for pass-through."""
        return self._fault

    def set_fault(self, fault: Fault | None, duration_s: float | None = None) -> None:
        """Replace the active fault; ``None`` means pass-through.

        The fault being replaced ends, so every live connection is closed. A
        ``duration_s`` makes the new fault end by itself on anyio's clock.

        Raises:
            RuntimeError: a duration was given while the proxy is not serving.
            ValueError: ``duration_s`` is not positive.
        """
        if duration_s is not None and not duration_s > 0:
            raise ValueError(f"duration_s must be positive, got {duration_s!r}")
        if duration_s is not None and self._tg is None:
            raise RuntimeError("a fault with a duration needs a serving proxy")
        if self._fault is not None:
            self._close_all(rst=False)
        self._timer.cancel()
        self._fault, self._fault_until = fault, None
        logger.info("fault set: %s duration_s=%s", fault and fault.to_dict(), duration_s)
        if fault is not None and fault.kind in _RESETTING:
            self._close_all(rst=True)
        if fault is not None and duration_s is not None and self._tg is not None:
            self._fault_until = anyio.current_time() + duration_s
            self._timer = CancelScope()
            self._tg.start_soon(self._expire, self._timer, fault, self._fault_until)

    def clear(self) -> None:
        """End the active fault (closing every live connection) and pass traffic through."""
        self.set_fault(None)

    def status(self) -> dict[str, Any]:
        """Counters and the active fault, as a JSON-ready document."""
        now = anyio.current_time() if self._tg is not None else None
        remaining = None
        if self._fault_until is not None and now is not None:
            remaining = max(0.0, self._fault_until - now)
        return {
            "listen_port": self._port,
            "upstream": f"{self.upstream[0]}:{self.upstream[1]}",
            "fault": self._fault.to_dict() if self._fault else None,
            "fault_remaining_s": remaining,
            "active_connections": len(self._conns),
            "total_connections": self._totals["connections"],
            "refused_connections": self._totals["refused"],
            "bytes_upstream": self._totals["upstream"],
            "bytes_downstream": self._totals["downstream"],
            "bytes_dropped": self._totals["dropped"],
            "connections": [
                {
                    "id": c.id,
                    "peer": c.peer,
                    "age_s": None if now is None else round(now - c.opened_at, 3),
                    "bytes_upstream": c.bytes["upstream"],
                    "bytes_downstream": c.bytes["downstream"],
                    "bytes_dropped": c.dropped,
                }
                for c in self._conns.values()
            ],
        }

    async def serve(self, *, task_status: TaskStatus[int] = TASK_STATUS_IGNORED) -> None:
        """Listen and proxy until cancelled; ``task_status.started`` gets the bound port."""
        listener = await anyio.create_tcp_listener(
            local_host=self.listen[0], local_port=self.listen[1]
        )
        async with listener, anyio.create_task_group() as tg:
            self._tg = tg
            self._port = listener.extra(SocketAttribute.local_port)  # noqa: S610
            try:
                task_status.started(self._port)
                await listener.serve(self._handle, task_group=tg)
            finally:
                self._tg = None

    async def __aenter__(self) -> FaultProxy:
        self._outer = anyio.create_task_group()
        await self._outer.__aenter__()
        await self._outer.start(self.serve)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        outer, self._outer = self._outer, None
        if outer is None:
            return None
        outer.cancel_scope.cancel()
        return await outer.__aexit__(exc_type, exc, tb)

    def _close_all(self, *, rst: bool) -> None:
        for conn in self._conns.values():
            conn.reset = conn.reset or rst
            conn.scope.cancel()

    async def _expire(self, scope: CancelScope, fault: Fault, deadline: float) -> None:
        with scope:
            await anyio.sleep_until(deadline)
            if self._fault is fault:
                logger.info("fault duration over: %s", fault.to_dict())
                self.clear()

    async def _handle(self, client: SocketStream) -> None:
        address = client.extra(SocketAttribute.remote_address, "?")  # noqa: S610 (anyio, not Django)
        peer = ":".join(map(str, address[:2])) if isinstance(address, tuple) else str(address)
        conn = _Connection(next(self._ids), peer, anyio.current_time())
        self._conns[conn.id] = conn
        self._totals["connections"] += 1
        try:
            with conn.scope:
                await self._proxy(client, conn)
        except Exception:  # a bug here must not take the proxy (and the drill) down
            logger.exception("proxy connection %s failed", conn.id)
        finally:
            del self._conns[conn.id]
            with CancelScope(shield=True):
                if conn.reset:
                    _abort_with_rst(client)
                await client.aclose()

    async def _proxy(self, client: SocketStream, conn: _Connection) -> None:
        fault = self._fault
        if fault is not None and fault.kind in _RESETTING:
            self._totals["refused"] += 1
            conn.reset = True
            return
        if fault is not None and fault.kind == "blackhole":
            while True:  # read and drop until the fault ends or the client leaves
                try:
                    self._drop(conn, len(await client.receive(_CHUNK)))
                except (EndOfStream, *STREAM_ERRORS):
                    return
        try:
            with anyio.fail_after(self.connect_timeout_s):
                upstream = await anyio.connect_tcp(*self.upstream)
        except (OSError, TimeoutError):
            logger.warning("proxy %s: upstream %s:%s unreachable", conn.id, *self.upstream)
            conn.reset = True  # the client sees a refused-like reset, as without the proxy
            return
        async with upstream, anyio.create_task_group() as tg:
            tg.start_soon(self._pipe, client, upstream, "upstream", conn)
            tg.start_soon(self._pipe, upstream, client, "downstream", conn)

    def _drop(self, conn: _Connection, n: int) -> None:
        conn.dropped += n
        self._totals["dropped"] += n

    def _delay_s(self, fault: Fault | None, direction: str) -> float:
        if fault is None or fault.kind != "latency" or not fault.applies_to(direction):
            return 0.0
        share = 0.5 if fault.direction == "both" else 1.0
        jitter = self._rng.uniform(-fault.jitter_ms, fault.jitter_ms) if fault.jitter_ms else 0.0
        return max(0.0, (fault.ms + jitter) * share / 1000.0)

    async def _pipe(
        self, src: ByteStream, dst: ByteStream, direction: str, conn: _Connection
    ) -> None:
        send, receive = anyio.create_memory_object_stream[tuple[float, bytes]](64)
        async with anyio.create_task_group() as tg, send:
            tg.start_soon(self._write, receive, dst, direction, conn)
            try:
                while True:
                    data = await src.receive(_CHUNK)
                    fault = self._fault
                    if fault is not None and fault.kind == "blackhole":
                        self._drop(conn, len(data))
                        continue
                    await send.send((anyio.current_time() + self._delay_s(fault, direction), data))
            except EndOfStream:
                pass  # closing ``send`` lets the writer forward the EOF after queued data
            except STREAM_ERRORS:  # one side broke (or the writer gave up): the connection goes
                conn.scope.cancel()

    async def _write(
        self,
        receive: MemoryObjectReceiveStream[tuple[float, bytes]],
        dst: ByteStream,
        direction: str,
        conn: _Connection,
    ) -> None:
        async with receive:
            try:
                async for deliver_at, data in receive:
                    await anyio.sleep_until(deliver_at)
                    fault = self._fault
                    if fault is not None and fault.kind == "blackhole":
                        self._drop(conn, len(data))
                    elif (
                        fault is not None
                        and fault.kind == "bandwidth"
                        and fault.applies_to(direction)
                    ):
                        await self._send_paced(dst, data, fault.bytes_per_s, direction, conn)
                    else:
                        await dst.send(data)
                        self._count(conn, direction, len(data))
                await dst.send_eof()
            except STREAM_ERRORS:
                conn.scope.cancel()  # before ``receive`` closes, so the reader sees a cancel

    async def _send_paced(
        self, dst: ByteStream, data: bytes, rate: float, direction: str, conn: _Connection
    ) -> None:
        step = max(1, int(rate / 20))  # slices of ~50 ms keep the pacing smooth
        for start in range(0, len(data), step):
            piece = data[start : start + step]
            send_at = max(conn.pace_at[direction], anyio.current_time())
            await anyio.sleep_until(send_at)
            await dst.send(piece)
            conn.pace_at[direction] = send_at + len(piece) / rate
            self._count(conn, direction, len(piece))

    def _count(self, conn: _Connection, direction: str, n: int) -> None:
        conn.bytes[direction] += n
        self._totals[direction] += n
