"""The fault proxy's control port, and the clients other processes use to drive it.

One JSON request a line, one JSON reply a line, on a loopback TCP port:
:class:`ProxyControlServer` serves it next to a :class:`~autoheal.chaos.fault_proxy.FaultProxy`
on the same event loop; :func:`acontrol` (async) and :func:`control` (blocking) are
the clients the daemon, the drills and the CLI use.
"""

from __future__ import annotations

import socket
from typing import Any

import anyio
import orjson
from anyio import TASK_STATUS_IGNORED, EndOfStream
from anyio.abc import ByteStream, SocketAttribute, SocketStream, TaskStatus
from anyio.streams.buffered import BufferedByteReceiveStream

from autoheal.chaos.fault_proxy import STREAM_ERRORS, FaultProxy
from autoheal.chaos.faults import Fault

__all__ = ["ProxyControlServer", "acontrol", "control"]

_CONTROL_LINE_MAX = 65536


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
                except (anyio.IncompleteRead, EndOfStream, *STREAM_ERRORS):
                    return
                try:
                    reply = self.handle(orjson.loads(line))
                except orjson.JSONDecodeError:
                    reply = {"ok": False, "error": "request is not valid JSON"}
                try:
                    await _send_line(stream, reply)
                except STREAM_ERRORS:
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
