"""The one builder of the status server's HTTP responses, so every answer carries the same headers.

``/metrics``, ``/status``, the page, its commands and its event stream all answer
through here (there used to be two hand-written builders, and ``/metrics`` lacked
``nosniff`` and ``no-store``). Every response closes its connection (one request
per connection: nothing idles in keep-alive) and says:

* ``cache-control: no-store``: the state of a trading runtime is never served stale
  from a cache;
* ``x-content-type-options: nosniff``: a JSON document or metrics text is never
  sniffed into HTML;
* ``x-frame-options: DENY``: the operator's buttons cannot be framed (clickjacking).

Responses are written by hand, not by h11, so that they work whatever state h11 is
in (a malformed request, a deadline passed mid-read).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import orjson

__all__ = ["SECURITY_HEADERS", "event_stream_head", "json_response", "response"]

SECURITY_HEADERS = (
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
)


def _head(status: int, headers: list[tuple[str, str]]) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    lines = [f"HTTP/1.1 {status} {phrase}"]
    lines += [f"{name}: {value}" for name, value in (*headers, *SECURITY_HEADERS)]
    lines.append("connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def response(
    status: int,
    body: bytes,
    content_type: str,
    *,
    extra: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """A complete HTTP/1.1 response: status line, headers, body.

    Args:
        status: the HTTP status code; its standard reason phrase is used.
        body: the whole body (its length becomes ``content-length``).
        content_type: the body's media type.
        extra: more headers, e.g. ``(("retry-after", "1"),)``.
    """
    headers = [("content-type", content_type), ("content-length", str(len(body))), *extra]
    return _head(status, headers) + body


def json_response(status: int, doc: Any) -> bytes:
    """``doc`` as an ``application/json`` response."""
    return response(status, orjson.dumps(doc), "application/json")


def event_stream_head(retry_ms: int) -> bytes:
    """The head of a Server-Sent Events stream, and the reconnect delay the browser keeps."""
    return _head(200, [("content-type", "text/event-stream")]) + f"retry: {retry_ms}\n\n".encode()
