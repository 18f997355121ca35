"""A loopback TCP fault proxy (toxiproxy-like) placed between the runtime and its exchange.

Theory of operation: :class:`FaultProxy` accepts loopback connections and pipes
each one to the upstream. Every direction of a connection is a reader task and a
writer task joined by a small memory stream, so a latency fault delays each chunk
without reordering it and without adding up (the delay is pipelined, as in
toxiproxy). One fault at a time is active; it is read per chunk, so changing it
takes effect on live connections at once:

* ``latency``: each chunk waits ``ms`` (+/- ``jitter_ms``). ``ms`` is the added
  *round-trip* time: ``direction="both"`` puts half on each way, ``"upstream"``
  or ``"downstream"`` all of it on one way. An operator asking 2000 ms sees
  requests take 2 s longer.
* ``blackhole``: connections are accepted and never answered; data is read and
  dropped; new connections never reach the upstream.
* ``refuse`` / ``reset``: new connections are closed at once with RST
  (SO_LINGER 0) and live ones are reset.
* ``bandwidth``: each direction of each connection is paced to ``bytes_per_s``.

When a fault ends (cleared, replaced, or its duration ran out on anyio's
monotonic clock) every live connection is closed, so clients reconnect cleanly
instead of keeping a half-dead socket. :class:`ProxyControlServer` lets another
process set, clear and read faults through JSON lines on a loopback TCP port;
``python -m autoheal.chaos.proxy`` runs both as a process of its own.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import random
import signal
import socket
import struct
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import orjson
from anyio import TASK_STATUS_IGNORED, CancelScope, EndOfStream
from anyio.abc import ByteStream, SocketAttribute, SocketStream, TaskGroup, TaskStatus
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.memory import MemoryObjectReceiveStream

from autoheal.store.atomic import write_bytes_atomic

__all__ = [
    "Fault",
    "FaultProxy",
    "ProxyControlServer",
    "acontrol",
    "bandwidth",
    "blackhole",
    "control",
    "latency",
    "main",
    "refuse",
    "reset",
]

logger = logging.getLogger(__name__)

KINDS = ("latency", "blackhole", "refuse", "reset", "bandwidth")
DIRECTIONS = ("both", "upstream", "downstream")
_RESETTING = ("refuse", "reset")
_CHUNK = 65536
_CONTROL_LINE_MAX = 65536
_STREAM_ERRORS = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


@dataclass(frozen=True)
class Fault:
    """One network fault; build it with :func:`latency`, :func:`blackhole`, ... .

    Raises:
        ValueError: an unknown kind or direction, or a negative or missing amount.
    """

    kind: str
    ms: float = 0.0
    jitter_ms: float = 0.0
    direction: str = "both"
    bytes_per_s: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {KINDS}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {self.direction!r}; expected one of {DIRECTIONS}")
        if min(self.ms, self.jitter_ms, self.bytes_per_s) < 0:
            raise ValueError("fault amounts must not be negative")
        if self.kind == "bandwidth" and self.bytes_per_s <= 0:
            raise ValueError("a bandwidth fault needs bytes_per_s > 0")

    def applies_to(self, direction: str) -> bool:
        """Whether this fault acts on ``direction`` (``upstream`` or ``downstream``)."""
        return self.direction in ("both", direction)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form used by the control port and the status document."""
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: Any) -> Fault:
        """Parse the JSON form; raises ``ValueError`` on anything malformed."""
        if not isinstance(doc, dict) or not isinstance(doc.get("kind"), str):
            raise ValueError("a fault must be an object with a string 'kind'")
        unknown = set(doc) - {"kind", "ms", "jitter_ms", "direction", "bytes_per_s"}
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        for key in ("ms", "jitter_ms", "bytes_per_s"):
            value = doc.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"fault field {key!r} must be a number")
        return cls(**doc)


def latency(ms: float, jitter_ms: float = 0.0, direction: str = "both") -> Fault:
    """Add ``ms`` of round-trip latency (see the module docstring for ``direction``)."""
    return Fault("latency", ms=ms, jitter_ms=jitter_ms, direction=direction)


def blackhole() -> Fault:
    """Accept connections and never answer them."""
    return Fault("blackhole")


def refuse() -> Fault:
    """Close new connections at once with RST; reset live ones."""
    return Fault("refuse")


def reset() -> Fault:
    """Reset live connections and every new one (RST)."""
    return Fault("reset")


def bandwidth(bytes_per_s: float, direction: str = "both") -> Fault:
    """Pace each direction of each connection to ``bytes_per_s``."""
    return Fault("bandwidth", bytes_per_s=bytes_per_s, direction=direction)


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
                except (EndOfStream, *_STREAM_ERRORS):
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
            except _STREAM_ERRORS:  # one side broke (or the writer gave up): the connection goes
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
            except _STREAM_ERRORS:
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


class ProxyControlServer:
    """The proxy's control port: one JSON request a line, one JSON reply a line.

    Requests are ``{"op": "set", "fault": {...}, "duration_s": 30}``,
    ``{"op": "clear"}`` and ``{"op": "status"}``. Replies are
    ``{"ok": true, "status": {...}}`` or ``{"ok": false, "error": "..."}``.

    Args:
        proxy: the proxy to drive; it must run on the same event loop.
        host: the control address; keep it on loopback, it can cut the network.
        port: the control port; 0 lets the OS pick (read :attr:`port`).
    """

    def __init__(self, proxy: FaultProxy, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.proxy = proxy
        self.listen = (host, port)
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The bound control port; ``RuntimeError`` before serving."""
        if self._port is None:
            raise RuntimeError("the control server is not serving yet")
        return self._port

    def handle(self, request: Any) -> dict[str, Any]:
        """Apply one decoded request to the proxy and build its reply; never raises."""
        op = request.get("op") if isinstance(request, dict) else None
        try:
            if op == "set":
                duration = request.get("duration_s")
                if duration is not None and (
                    isinstance(duration, bool) or not isinstance(duration, int | float)
                ):
                    raise ValueError("duration_s must be a number")
                self.proxy.set_fault(Fault.from_dict(request.get("fault")), duration)
            elif op == "clear":
                self.proxy.clear()
            elif op != "status":
                raise ValueError(f"unknown op {op!r}; expected set, clear or status")
        except (ValueError, TypeError, RuntimeError) as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": True, "status": self.proxy.status()}

    async def serve(self, *, task_status: TaskStatus[int] = TASK_STATUS_IGNORED) -> None:
        """Answer control connections until cancelled; ``task_status.started`` gets the port."""
        listener = await anyio.create_tcp_listener(
            local_host=self.listen[0], local_port=self.listen[1]
        )
        async with listener:
            self._port = listener.extra(SocketAttribute.local_port)  # noqa: S610
            task_status.started(self._port)
            await listener.serve(self._serve_client)

    async def _serve_client(self, stream: SocketStream) -> None:
        async with stream:
            reader = BufferedByteReceiveStream(stream)
            while True:
                try:
                    line = await reader.receive_until(b"\n", _CONTROL_LINE_MAX)
                    if len(line) > _CONTROL_LINE_MAX:  # the limit only holds across reads
                        raise anyio.DelimiterNotFound(_CONTROL_LINE_MAX)
                except anyio.DelimiterNotFound:
                    await _send_line(stream, {"ok": False, "error": "request line too long"})
                    return
                except (anyio.IncompleteRead, EndOfStream, *_STREAM_ERRORS):
                    return
                try:
                    reply = self.handle(orjson.loads(line))
                except orjson.JSONDecodeError:
                    reply = {"ok": False, "error": "request is not valid JSON"}
                try:
                    await _send_line(stream, reply)
                except _STREAM_ERRORS:
                    return


async def _send_line(stream: ByteStream, doc: Any) -> None:
    await stream.send(orjson.dumps(doc) + b"\n")


def _decode_reply(line: bytes) -> dict[str, Any]:
    try:
        reply = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ValueError("the proxy control port sent invalid JSON") from exc
    if not isinstance(reply, dict):
        raise ValueError("the proxy control port sent a non-object reply")
    return reply


async def acontrol(
    port: int, request: dict[str, Any], *, host: str = "127.0.0.1", timeout_s: float = 5.0
) -> dict[str, Any]:
    """Send one request to a proxy's control port and return its reply.

    Raises:
        OSError: the control port cannot be reached.
        TimeoutError: no reply within ``timeout_s``.
        ValueError: the reply is not a JSON object.
    """
    with anyio.fail_after(timeout_s):
        async with await anyio.connect_tcp(host, port) as stream:
            await _send_line(stream, request)
            reader = BufferedByteReceiveStream(stream)
            try:
                line = await reader.receive_until(b"\n", _CONTROL_LINE_MAX * 16)
            except (anyio.IncompleteRead, anyio.DelimiterNotFound) as exc:
                raise ValueError("the proxy control port sent no complete reply") from exc
    return _decode_reply(line)


def control(
    port: int, request: dict[str, Any], *, host: str = "127.0.0.1", timeout_s: float = 5.0
) -> dict[str, Any]:
    """Blocking twin of :func:`acontrol`, for synchronous callers such as a CLI."""
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(orjson.dumps(request) + b"\n")
        with sock.makefile("rb") as reader:
            line = reader.readline(_CONTROL_LINE_MAX * 16)
    if not line.endswith(b"\n"):
        raise ValueError("the proxy control port sent no complete reply")
    return _decode_reply(line)


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the command line of ``python -m autoheal.chaos.proxy`` (exits 2 on bad usage)."""
    parser = argparse.ArgumentParser(
        prog="python -m autoheal.chaos.proxy", description="Loopback TCP fault proxy."
    )
    parser.add_argument("--listen", type=_host_port, default=("127.0.0.1", 0))
    parser.add_argument("--upstream", type=_host_port, required=True)
    parser.add_argument("--control", type=_host_port, default=("127.0.0.1", 0))
    parser.add_argument("--port-file", type=Path, help="write the bound proxy port here")
    parser.add_argument("--control-port-file", type=Path, help="write the control port here")
    parser.add_argument("--seed", type=int, default=None, help="seed for latency jitter")
    args = parser.parse_args(argv)
    if args.control[0] not in ("127.0.0.1", "::1", "localhost"):
        parser.error("--control must be a loopback address: the control port can cut the network")
    return args


async def _run(args: argparse.Namespace) -> None:
    proxy = FaultProxy(
        *args.upstream, listen_host=args.listen[0], listen_port=args.listen[1], seed=args.seed
    )
    server = ProxyControlServer(proxy, host=args.control[0], port=args.control[1])
    async with anyio.create_task_group() as tg:
        port = await tg.start(proxy.serve)
        control_port = await tg.start(server.serve)
        # Listen for signals before publishing the ports: whoever reads them may stop us at once.
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            for path, value in ((args.port_file, port), (args.control_port_file, control_port)):
                if path is not None:
                    write_bytes_atomic(path, f"{value}\n".encode())
            logger.info("proxy on %s -> %s:%s, control %s", port, *args.upstream, control_port)
            async for _ in signals:
                break
        tg.cancel_scope.cancel()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the proxy and its control port until SIGTERM or SIGINT; returns the exit code."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        anyio.run(_run, args)
    except OSError as exc:
        print(f"autoheal.chaos.proxy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
