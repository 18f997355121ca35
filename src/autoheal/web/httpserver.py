"""The status server's HTTP/1.1 machinery: accept, admit, read the head, route, answer.

It serves ``/metrics``, ``/status``, the page and its event stream (the routes are
handed in, see :func:`autoheal.web.metrics.serve_status`), and it can never take
the daemon down or blind ``/metrics`` (DESIGN.md §8, issue 18 A2/A3):

* **It owns its accept loop.** anyio's ``Listener.serve`` lets an accept error end
  the task group: a flood of idle connections ran the process out of descriptors,
  ``accept()`` raised EMFILE and ``autoheal run`` exited 1, stopping its services.
  Here an accept error is counted, logged once per episode and retried after a
  back-off (10 ms doubling to 1 s); a shortage of descriptors also sheds the oldest
  idle connection. Nothing is raised into the daemon's task group.
* **Connections are bounded**, far below the descriptor limit (the cap is sized from
  RLIMIT_NOFILE by :func:`autoheal.core.admission.budget_for_fds`). Who gets a slot
  and who is shed is :mod:`autoheal.core.admission`'s decision: a new connection is
  always accepted and then admitted at once or shed, never queued for a slot; idle
  sockets make room for new ones; ``/metrics`` has slots that page work cannot take.
* **Every wait has a deadline**: the request head (``head_timeout_s``, slowloris),
  a whole answer (``timeout_s``), each send of a stream, a stream's lifetime.
* **One request per connection** (``connection: close``): no keep-alive socket is
  left idling; an idle socket is one that has not sent its head, and it is the first
  to go.
* **A handler's bug costs one response** (a 500 when nothing was sent yet), never
  the server.
"""

from __future__ import annotations

import contextlib
import errno
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
import anyio.abc
import h11

from autoheal.core.admission import Kind, Limits, accept_error_is_peers, accept_retry_after
from autoheal.web.connections import ConnectionTable, ServerStats, Slot
from autoheal.web.responses import event_stream_head, response

__all__ = ["Exchange", "Handler", "Route", "serve_http"]

log = logging.getLogger(__name__)

#: Request line plus headers; a scraper sends a few hundred bytes.
MAX_REQUEST_BYTES = 8192
#: A browser told "busy" for a stream tries again after this.
BUSY_RETRY_MS = 5000
#: The client is gone or too slow: close quietly, nothing to log.
_CLIENT_GONE = (
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
    OSError,
    TimeoutError,
)


class Exchange:
    """One request as a handler sees it.

    A handler reads a body through ``stream`` and ``conn`` (h11) and answers with
    :meth:`send`, which carries its own deadline so that a client that stops reading
    cannot hold a stream for its whole lifetime.
    """

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        conn: h11.Connection,
        request: h11.Request,
        peer: str,
        send_timeout_s: float,
    ) -> None:
        self.stream = stream
        self.conn = conn
        self.request = request
        self.path = request.target.split(b"?", 1)[0]
        self.peer = peer
        self.sent = False
        self._send_timeout_s = send_timeout_s

    async def send(self, data: bytes) -> None:
        """Send ``data``.

        Raises:
            TimeoutError: the client did not take it within the send deadline.
        """
        self.sent = True
        with anyio.fail_after(self._send_timeout_s):
            await self.stream.send(data)


Handler = Callable[[Exchange], Awaitable[None]]
#: (method, path) -> what the request is (its slot pool) and who answers it.
Route = Callable[[bytes, bytes], tuple[Kind, Handler]]


@dataclass(frozen=True)
class _Settings:
    route: Route
    limits: Limits
    timeout_s: float


async def serve_http(
    host: str,
    port: int,
    route: Route,
    *,
    limits: Limits,
    stats: ServerStats,
    timeout_s: float = 5.0,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve HTTP on ``host:port`` until cancelled; nothing a client does raises out of here.

    Args:
        host: address to bind.
        port: TCP port, 0 for any free one.
        route: maps a request's method and path to its kind and its handler.
        limits: the connection bounds and the head and stream deadlines.
        stats: where the server counts connections, sheds and accept errors.
        timeout_s: deadline for one answer (and each send of a stream); it also caps
            the head deadline.
        task_status: receives the bound port once the socket listens.

    Raises:
        OSError: the address cannot be bound (e.g. the port is in use).
    """
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    table = ConnectionTable(limits, stats)
    settings = _Settings(route, limits, timeout_s)
    async with listener, anyio.create_task_group() as tg:
        # A MultiListener (dual-stack host) binds one ephemeral port on every address.
        bound = listener.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610 (not Django)
        task_status.started(bound)
        for one in listener.listeners:  # one per address (IPv4 and IPv6 for "localhost")
            if isinstance(one, anyio.abc.SocketListener):  # always, for TCP
                tg.start_soon(_accept_forever, one, table, tg, settings)


def _errno_name(exc: BaseException) -> str:
    err = exc.errno if isinstance(exc, OSError) else None
    return errno.errorcode.get(err, "EUNKNOWN") if err is not None else type(exc).__name__


async def _accept_forever(
    listener: anyio.abc.SocketListener,
    table: ConnectionTable,
    tg: anyio.abc.TaskGroup,
    settings: _Settings,
) -> None:
    """Accept until the listener closes; an accept error is a pause, never an exception."""
    retry_s: float | None = None
    failures = 0
    while True:
        try:
            stream = await listener.accept()
        except anyio.ClosedResourceError:
            return
        except Exception as exc:  # EMFILE & co. (OSError), or a bug: never the daemon's end
            name = _errno_name(exc)
            table.stats.accept_errors[name] += 1
            if accept_error_is_peers(exc.errno if isinstance(exc, OSError) else None):
                continue  # one dead pending connection; the next one is fine
            if retry_s is None:
                log.error("status_accept_failing error=%s (%s); backing off", name, exc)
            failures += 1
            retry_s = accept_retry_after(retry_s, shed=table.shed_for_descriptors())
            await anyio.sleep(retry_s)
            continue
        if retry_s is not None:
            log.warning("status_accept_recovered after %d failed accepts", failures)
            retry_s, failures = None, 0
        try:
            slot = table.open(_peer(stream))
            if slot is None:
                await stream.aclose()
            else:
                tg.start_soon(_serve_connection, stream, slot, table, settings)
        except Exception:
            log.exception("status_admission_error")
            with contextlib.suppress(Exception):
                await stream.aclose()


def _peer(stream: anyio.abc.SocketStream) -> str:
    with contextlib.suppress(Exception):
        return str(stream.extra(anyio.abc.SocketAttribute.remote_address)[0])  # noqa: S610
    return "?"


async def _serve_connection(
    stream: anyio.abc.SocketStream, slot: Slot, table: ConnectionTable, settings: _Settings
) -> None:
    try:
        async with stream:
            with slot.scope:  # cancelled when the table sheds this connection
                try:
                    await _exchange(stream, slot, table, settings)
                except _CLIENT_GONE:
                    pass
    except Exception:  # closing a socket should never fail; if it does, not the daemon's end
        log.exception("status_connection_error")
    finally:
        table.close(slot)


async def _exchange(
    stream: anyio.abc.SocketStream, slot: Slot, table: ConnectionTable, settings: _Settings
) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_BYTES)
    request: h11.Request | None = None
    try:
        with anyio.move_on_after(min(settings.limits.head_timeout_s, settings.timeout_s)) as head:
            request = await _read_head(stream, conn)
    except h11.RemoteProtocolError:
        with anyio.move_on_after(settings.timeout_s):
            await stream.send(response(400, b"bad request\n", "text/plain"))
            await _drain(stream)
        return
    if request is None:
        if head.cancelled_caught:
            table.stats.shed["head_timeout"] += 1
        return
    exchange = Exchange(stream, conn, request, slot.conn.peer, settings.timeout_s)
    kind, handler = settings.route(request.method, exchange.path)
    if not table.route(slot, kind):
        with anyio.move_on_after(settings.timeout_s):
            await stream.send(_busy(kind))
        return
    lifetime = settings.limits.stream_lifetime_s if kind is Kind.STREAM else settings.timeout_s
    with anyio.move_on_after(lifetime):
        try:
            await handler(exchange)
        except _CLIENT_GONE:
            raise
        except Exception:
            # The server is an observer: a bug here costs one response, never the daemon.
            log.exception("status_handler_error path=%r", exchange.path)
            if not exchange.sent:
                await exchange.send(response(500, b"", "text/plain"))


def _busy(kind: Kind) -> bytes:
    if kind is Kind.STREAM:
        # EventSource gives up for good on any status but 200; an empty stream with a
        # long retry makes the browser come back later instead.
        return event_stream_head(BUSY_RETRY_MS)
    return response(503, b"busy, try again\n", "text/plain", extra=(("retry-after", "1"),))


async def _read_head(stream: anyio.abc.ByteStream, conn: h11.Connection) -> h11.Request | None:
    """Read one request head; None when the peer closed early, h11 error when malformed."""
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Request):
            return event
        if event is h11.NEED_DATA:
            try:
                data = await stream.receive(4096)
            except anyio.EndOfStream:
                data = b""
            conn.receive_data(data)
        else:  # ConnectionClosed or PAUSED before a request: nothing to answer
            return None


async def _drain(stream: anyio.abc.ByteStream) -> None:
    """Half-close, then read what the peer still sends, so that closing with unread
    input does not turn into a TCP reset that destroys the 400 before it is read."""
    if isinstance(stream, anyio.abc.SocketStream):
        await stream.send_eof()
    with anyio.move_on_after(0.5):
        for _ in range(16):
            await stream.receive(65536)
