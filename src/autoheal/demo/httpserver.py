"""A small HTTP/1.1 + websocket server on one port: h11 and websockets, both sans-I/O.

REST and the websocket share a port on purpose: one loopback fault proxy in
front of the fake exchange then cuts both, as a real network outage would.
h11 parses each request on a keep-alive connection; a ``GET`` that asks to
upgrade to a websocket on a path the app streams is handed, with the bytes h11
read past the request, to ``websockets.server.ServerProtocol``, which does the
handshake and the framing. Every byte goes through the anyio stream here, so
the app never sees a socket.

The app answers a request with an :class:`HttpResponse`, with :data:`DROP`
to close the connection without a word (the exchange's ``down`` fault and the
end of a ``timeout`` fault), or with ``None`` to let a websocket upgrade go
ahead (so the app can fault or refuse an upgrade like any other request).
"""

from __future__ import annotations

import http
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

import anyio
import h11
import orjson
from anyio.abc import ByteStream
from websockets.frames import Frame, Opcode
from websockets.http11 import Request as WsRequest
from websockets.protocol import State
from websockets.server import ServerProtocol

__all__ = ["DROP", "HttpRequest", "HttpResponse", "WebSocket", "json_response", "serve_connection"]

log = logging.getLogger(__name__)
MAX_BODY = 1024 * 1024
DROP: Final = object()

_IO_ERRORS = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, OSError)


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One parsed request; header names are lower-case."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    #: The query string as sent (a signed request's signature covers it byte for byte).
    raw_query: str = ""

    def json(self) -> Any:
        """The body as JSON; ``orjson.JSONDecodeError`` (a ValueError) when it is not."""
        return orjson.loads(self.body or b"null")


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = "application/json"


def json_response(status: int, doc: Any, headers: tuple[tuple[str, str], ...] = ()) -> HttpResponse:
    return HttpResponse(status, orjson.dumps(doc), headers)


class WebSocket:
    """The app's side of an open websocket: send text, close; reads are done for it."""

    def __init__(self, stream: ByteStream, protocol: ServerProtocol, request: HttpRequest) -> None:
        self.request = request
        self._stream = stream
        self._protocol = protocol
        self._lock = anyio.Lock()

    async def send_text(self, text: str) -> None:
        """Send one text message; raises ``anyio.BrokenResourceError`` once the peer is gone."""
        if self._protocol.state is not State.OPEN:
            # websockets raises InvalidState while closing; an exchange must not die of it
            raise anyio.BrokenResourceError
        self._protocol.send_text(text.encode())
        await self.flush()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self._protocol.state is State.OPEN:
            self._protocol.send_close(code, reason)
            await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            for chunk in self._protocol.data_to_send():
                if chunk:
                    await self._stream.send(chunk)
                else:  # websockets asks for a half-close (its EOF marker)
                    await self._stream.send_eof()

    async def read_until_closed(self) -> None:
        """Feed incoming bytes to the protocol (pongs, close handshake) until the peer leaves."""
        while self._protocol.state is not State.CLOSED:
            try:
                data = await self._stream.receive(65536)
            except (anyio.EndOfStream, *_IO_ERRORS):
                self._protocol.receive_eof()
                return
            self._protocol.receive_data(data)
            for event in self._protocol.events_received():
                if isinstance(event, Frame) and event.opcode is Opcode.CLOSE:
                    log.debug("websocket close frame received")
            await self.flush()


Handler = Callable[[HttpRequest], Awaitable["HttpResponse | object | None"]]
WsHandler = Callable[[WebSocket], Awaitable[None]]


async def _receive_event(conn: h11.Connection, stream: ByteStream) -> Any:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        try:
            data = await stream.receive(65536)
        except anyio.EndOfStream:
            data = b""
        conn.receive_data(data)


async def _read_request(
    conn: h11.Connection, stream: ByteStream
) -> tuple[h11.Request, bytes] | None:
    event = await _receive_event(conn, stream)
    if not isinstance(event, h11.Request):
        return None  # ConnectionClosed, or a peer that left between requests
    body = bytearray()
    while True:
        part = await _receive_event(conn, stream)
        if isinstance(part, h11.Data):
            body += part.data
            if len(body) > MAX_BODY:
                raise h11.RemoteProtocolError("body too large", error_status_hint=413)
        elif isinstance(part, h11.EndOfMessage):
            return event, bytes(body)
        else:
            return None


def _to_request(event: h11.Request, body: bytes) -> HttpRequest:
    target = urlsplit(event.target.decode("latin-1"))
    return HttpRequest(
        method=event.method.decode("ascii"),
        path=target.path,
        query=dict(parse_qsl(target.query)),
        headers={k.decode("latin-1"): v.decode("latin-1") for k, v in event.headers},
        body=body,
        raw_query=target.query,
    )


def _is_upgrade(request: HttpRequest) -> bool:
    return request.headers.get("upgrade", "").lower() == "websocket"


async def _serve_websocket(
    stream: ByteStream, conn: h11.Connection, event: h11.Request, request: HttpRequest,
    ws_handler: WsHandler,
) -> None:
    # Hand websockets the request exactly as it came, plus anything h11 read beyond it.
    raw = b"".join(
        [b"GET " + event.target + b" HTTP/1.1\r\n"]
        + [name + b": " + value + b"\r\n" for name, value in event.headers.raw_items()]
        + [b"\r\n", conn.trailing_data[0]]
    )
    protocol = ServerProtocol()
    protocol.receive_data(raw)
    ws_requests = [e for e in protocol.events_received() if isinstance(e, WsRequest)]
    if ws_requests:
        protocol.send_response(protocol.accept(ws_requests[0]))
    ws = WebSocket(stream, protocol, request)
    await ws.flush()
    if protocol.state is not State.OPEN:
        return
    async with anyio.create_task_group() as tg:

        async def reader() -> None:
            await ws.read_until_closed()
            tg.cancel_scope.cancel()

        tg.start_soon(reader)
        try:
            await ws_handler(ws)
        finally:
            tg.cancel_scope.cancel()
    # The handler returned or the peer left: finish the close handshake if we can.
    with anyio.move_on_after(0.5, shield=True):
        try:
            await ws.close()
        except _IO_ERRORS:
            pass


async def serve_connection(
    stream: ByteStream, handler: Handler, ws_paths: dict[str, WsHandler] | None = None
) -> None:
    """Serve one TCP connection until the peer closes it or the app drops it.

    Args:
        stream: the accepted connection; closed on return.
        handler: answers each HTTP request.
        ws_paths: websocket handlers by path; upgrades to other paths get a 404.
    """
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
    ws_paths = ws_paths or {}
    try:
        while True:
            got = await _read_request(conn, stream)
            if got is None:
                return
            event, body = got
            request = _to_request(event, body)
            result = await handler(request)
            if result is None and _is_upgrade(request) and request.path in ws_paths:
                await _serve_websocket(stream, conn, event, request, ws_paths[request.path])
                return
            if result is None:
                result = json_response(404, {"error": "not_found"})
            if not isinstance(result, HttpResponse):
                return  # DROP: close without answering
            await _send_response(conn, stream, result)
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()
    except h11.RemoteProtocolError as exc:
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            status = exc.error_status_hint
            try:
                await _send_response(conn, stream, json_response(status, {"error": "bad_request"}))
            except (h11.LocalProtocolError, *_IO_ERRORS):
                pass
    except _IO_ERRORS:
        pass
    finally:
        with anyio.CancelScope(shield=True):
            await stream.aclose()


async def _send_response(conn: h11.Connection, stream: ByteStream, response: HttpResponse) -> None:
    headers = [
        ("content-type", response.content_type),
        ("content-length", str(len(response.body))),
        *response.headers,
    ]
    try:
        reason = http.HTTPStatus(response.status).phrase.encode()
    except ValueError:
        reason = b""
    data = conn.send(h11.Response(status_code=response.status, headers=headers, reason=reason))
    data = data or b""
    data += conn.send(h11.Data(data=response.body)) or b""
    data += conn.send(h11.EndOfMessage()) or b""
    await stream.send(data)
