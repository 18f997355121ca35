"""The operator's status page: ``/`` (HTML), ``/events`` (Server-Sent Events), ``/api/command``.

One self-contained page shipped in the package (no CDN, no build step, works offline):
DOR, mode, the failsafe and who set it, the money side (risk headroom, scoped halts,
latches, breakers, the dead man's switch per venue, reconciliation:
:mod:`autoheal.web.riskpanel`), each component's stage, reason, PID, restarts
and heartbeat age, its next restart and restart budget (counted down on the
document's own clock: its ``ts``, not the browser's), each dependency's probes with
their latency, the last events.

* The page is rendered on the server from the health document, so it shows the
  current state without JavaScript (and then refreshes itself every few seconds).
* With JavaScript it stays live: ``/events`` pushes the document the daemon last
  wrote to ``health_v2.json`` (the same object, not a second rendering) whenever it
  changes, within a fraction of a second. When nothing arrives for the same stale
  threshold ``autoheal status`` uses, the page says STALE instead of showing old green.
* Alerts (failsafe entered, degraded, a restart, a failing write) appear as fixed
  overlays; every box on the page has a fixed size, so nothing moves when they come
  and go (cumulative layout shift 0: runbook success metric 4).
* Read-only unless ``[daemon] status_token_env`` names a token: then buttons appear
  and ``POST /api/command`` queues the same durable commands as the CLI (actor
  ``web:<address>``). CSRF-safe: the token travels in a custom header that no
  cross-site form can set, the body must be JSON, and a foreign ``Origin`` is refused.
* The server (:mod:`autoheal.web.httpserver`) bounds it: page requests and
  ``/events`` streams have a pool of their own that cannot take ``/metrics``'s slots,
  streams are few (a new one replaces the oldest) and end after a while; the browser
  reconnects on its own (``retry:``) and gets the current document at once.
"""

from __future__ import annotations

import functools
import hmac
import html
import logging
import re
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any

import anyio
import anyio.abc
import h11
import orjson

from autoheal.web.httpserver import Exchange
from autoheal.web.responses import event_stream_head, json_response, response
from autoheal.web.riskpanel import render_risk

log = logging.getLogger("autoheal")

HealthFn = Callable[[], Mapping[str, Any] | None]
#: The risk panel's document (:func:`autoheal.core.risk_view.risk_view`), None if unavailable.
RiskFn = Callable[[], Mapping[str, Any] | None]
EventsFn = Callable[[], list[dict[str, Any]]]
SubmitFn = Callable[[str, str, str, str], str]  # (type, target, reason, actor) -> command id

#: Commands the page may queue, and whether they name a component.
COMMANDS = {
    "restart": True,
    "failsafe_enter": False,
    "failsafe_clear": False,
    "breaker_reset": False,  # every breaker; run under the guard's file lock, off the loop
    # A scoped halt (RTS 6 Art. 12): the target is the scope (``symbol=BTCUSDT``).
    "failsafe_enter_scope": True,
    "failsafe_clear_scope": True,
}
_SCOPED = frozenset({"failsafe_enter_scope", "failsafe_clear_scope"})
_OPERATOR_BAR = (
    '<div id="opbar">token <input id="token" type="password" autocomplete="off">'
    ' reason <input id="reason" value="">'
    ' <button class="op" data-type="failsafe_enter">failsafe enter</button>'
    ' <button class="op" data-type="failsafe_clear">failsafe clear</button>'
    ' <button class="op" data-type="breaker_reset">reset breakers</button>'
    ' scope <input id="scope" value="" placeholder="symbol=BTCUSDT">'
    ' <button class="op" data-type="failsafe_enter_scope" data-scope-input="1">halt scope</button>'
    ' <span id="opresult"></span></div>'
)
MAX_BODY_BYTES = 4096
POLL_S = 0.2
KEEPALIVE_S = 10.0
#: The browser's reconnect delay after a stream ends (its lifetime, or replaced).
STREAM_RETRY_MS = 1000
EVENT_ROWS = 10


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _fmt_age(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"
    return "-"


def _heartbeat_age(component: Mapping[str, Any]) -> Any:
    probe = _mapping(_mapping(component.get("probes")).get("heartbeat"))
    return probe.get("value")


def _component_rows(doc: Mapping[str, Any], operator: bool) -> str:
    rows = []
    for name, raw in sorted(_mapping(doc.get("components")).items()):
        c = _mapping(raw)
        button = (
            f'<button class="op" data-type="restart" data-target="{_esc(name)}">restart</button>'
            if operator
            else ""
        )
        rows.append(
            f'<tr data-component="{_esc(name)}">'
            f'<td class="name">{_esc(name)}</td>'
            f'<td class="stage {_esc(c.get("stage"))}">{_esc(c.get("stage"))}</td>'
            f'<td class="ok">{"ok" if c.get("ok") else "FAIL"}</td>'
            f'<td class="reason">{_esc(c.get("reason") or "-")}</td>'
            f'<td class="pid">{_esc(c.get("pid") or "-")}</td>'
            f'<td class="restarts">{_esc(c.get("restarts"))}</td>'
            f'<td class="heartbeat">{_esc(_fmt_age(_heartbeat_age(c)))}</td>'
            f'<td class="action">{button}</td></tr>'
        )
    return "\n".join(rows)


def _span(seconds: float) -> str:
    """As the page's script writes a wait: ``12.4 s``, ``9m58s``, ``2h05m``."""
    if seconds < 59.95:
        return f"{max(0.0, seconds):.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _outlook_cells(doc: Mapping[str, Any], o: Mapping[str, Any]) -> tuple[str, str, str]:
    """The next restart, what a failure then does, and the budget, as of the document's
    ``ts`` (the script then counts down from there); the same words as the script's.
    The reason is the components table's, in the row above (these cells are narrow)."""
    ts = _num(doc.get("ts"))

    def left(key: str) -> float | None:
        at = _num(o.get(key))
        return None if at is None or ts is None else at - ts

    def count(key: str) -> str:
        value = _num(o.get(key))
        return "?" if value is None else str(int(value))

    attempt = f"attempt {count('attempt')} of {count('max_restarts')}"
    kind = o.get("next")
    if kind == "scheduled":
        s = left("restart_at")
        when = "restart due now" if s is None or s <= 0 else f"restart in {_span(s)}"
        last = "last " if o.get("attempt") == o.get("max_restarts") else ""
        nxt = f"{when} ({last}{attempt})"
    elif kind == "verifying":
        v = left("verify_until")
        nxt = f"verifying {attempt}" + ("" if v is None else f", {_span(max(0.0, v))} left")
    else:
        nxt = {
            "restarting": f"restarting now ({attempt})",
            "waiting": f"waiting for the process ({attempt})",
            "watching": "none yet: watching its probes",
            "healthy": "none due (healthy)",
            "held": "none: stopped by an operator",
            "failsafe": "none while the failsafe holds",
            "dependency": "none while a dependency fails",
        }.get(str(kind), "-")
    delay = _num(o.get("on_failure_delay_s"))
    then = "-"
    if o.get("on_failure") == "failsafe":
        then = "FAILSAFE"
    elif o.get("on_failure") == "restart" and delay is not None:
        then = "restart at once" if delay <= 0 else f"restart after {_span(delay)}"
    used = f"{count('attempts')} of {count('max_restarts')} used"
    reset, stable = left("attempts_reset_at"), _num(o.get("stable_reset_s"))
    if reset is not None:
        budget = f"{used}, resets in {_span(max(0.0, reset))}"
    elif kind in ("failsafe", "held") or not o.get("attempts") or stable is None:
        budget = used
    else:
        budget = f"{used}, resets {_span(stable)} after healthy"
    return nxt, then, budget


def _outlook_rows(doc: Mapping[str, Any]) -> str:
    rows = []
    for name, raw in sorted(_mapping(doc.get("components")).items()):
        o = _mapping(_mapping(raw).get("outlook"))
        nxt, then, budget = _outlook_cells(doc, o) if o else ("-", "-", "-")
        rows.append(
            f'<tr data-outlook="{_esc(name)}"><td class="name">{_esc(name)}</td>'
            f'<td class="next {_esc(o.get("next") or "")}">{_esc(nxt)}</td>'
            f'<td class="then">{_esc(then)}</td><td class="budget">{_esc(budget)}</td></tr>'
        )
    return "\n".join(rows)


def _dependency_rows(doc: Mapping[str, Any]) -> str:
    rows = []
    for name, raw in sorted(_mapping(doc.get("dependencies")).items()):
        d = _mapping(raw)
        probes = " ".join(
            f"{_esc(p)}={_esc(_fmt_age(_mapping(v).get('value')))}"
            for p, v in sorted(_mapping(d.get("probes")).items())
        )
        rows.append(
            f'<tr data-dependency="{_esc(name)}"><td class="name">{_esc(name)}</td>'
            f'<td class="ok">{"ok" if d.get("ok") else "FAIL"}</td>'
            f'<td class="reason">{_esc(d.get("reason") or "-")}</td>'
            f'<td class="probes">{probes or "-"}</td></tr>'
        )
    return "\n".join(rows)


def _scoped_rows(doc: Mapping[str, Any], operator: bool) -> str:
    """A line per scoped halt, with a clear button for an operator (see the page's script)."""
    rows = []
    error = doc.get("scoped_halts_error")
    if error:
        rows.append(
            f'<li class="scoped-error">SCOPED HALTS UNREADABLE: {_esc(error)} '
            "(every new order halted)</li>"
        )
    for scope, raw in sorted(_mapping(doc.get("scoped_halts")).items()):
        h = _mapping(raw)
        button = (
            f' <button class="op" data-type="failsafe_clear_scope" data-target="{_esc(scope)}">'
            "clear</button>"
            if operator
            else ""
        )
        rows.append(
            f'<li data-scope="{_esc(scope)}"><span class="scope">{_esc(scope)}</span>: '
            f'<span class="why">{_esc(h.get("reason") or "no reason")}, set by '
            f"{_esc(h.get('set_by') or '?')}</span>{button}</li>"
        )
    return "\n".join(rows) or '<li class="none">none</li>'


def _event_rows(events: list[dict[str, Any]]) -> str:
    rows = []
    for i in range(EVENT_ROWS):
        e = events[i] if i < len(events) else {}
        rows.append(
            f'<li data-row="{i}"><span class="ts">{_esc(e.get("when", ""))}</span>'
            f'<span class="kind">{_esc(e.get("kind", ""))}</span>'
            f'<span class="what">{_esc(e.get("what", ""))}</span></li>'
        )
    return "\n".join(rows)


def _headline(doc: Mapping[str, Any]) -> dict[str, str]:
    failsafe = "off"
    if doc.get("failsafe"):
        failsafe = f"ON: {doc.get('failsafe_reason') or 'no reason'}"
    return {
        "dor": "true" if doc.get("dor") else "false",
        "mode": str(doc.get("mode") or "-"),
        "failsafe": failsafe,
        "degraded": "yes" if doc.get("degraded") else "no",
    }


def render_page(
    doc: Mapping[str, Any] | None,
    events: list[dict[str, Any]],
    *,
    stale_after_s: float,
    operator: bool,
    risk: Mapping[str, Any] | None = None,
) -> bytes:
    """The whole page for ``doc`` (server-side: correct without JavaScript).

    ``risk`` is the money side (:mod:`autoheal.web.riskpanel`), None when unavailable.
    """
    doc = _mapping(doc)
    head = _headline(doc)
    state = "dor-true" if doc.get("dor") else "dor-false"
    initial = orjson.dumps({"health": doc, "events": events}).decode()
    # </script> inside JSON must not end the script element.
    initial = initial.replace("<", "\\u003c")
    values = dict(
        state=state,
        dor=_esc(head["dor"]),
        mode=_esc(head["mode"]),
        failsafe=_esc(head["failsafe"]),
        degraded=_esc(head["degraded"]),
        components=_component_rows(doc, operator),
        outlook=_outlook_rows(doc),
        dependencies=_dependency_rows(doc),
        scoped=_scoped_rows(doc, operator),
        events=_event_rows(events),
        risk=render_risk(risk),
        operator_bar=_OPERATOR_BAR if operator else "",
        operator="true" if operator else "false",
        stale_ms=int(stale_after_s * 1000),
        initial=initial,
    )
    # One pass: text from the document can never be read as a placeholder.
    page = re.sub(r"@@(\w+)@@", lambda m: str(values[m.group(1)]), _template())
    return page.encode()


@functools.cache
def _template() -> str:
    """``status_page.html``, shipped in the package: one file, inline CSS and script."""
    return (resources.files("autoheal.daemon") / "status_page.html").read_text("utf-8")


class StatusPage:
    """Serves the page, its event stream and (with a token) operator commands.

    Args:
        health: the document the daemon last wrote to ``health_v2.json``.
        events: the last journal events, newest first, as ``{when, kind, what}``.
        stale_after_s: how long without an update before the page says STALE.
        token: the operator token, or None for a read-only page.
        submit: queues a command; returns its id (only used with a token).
        risk: the risk panel's document (bounded, cached, fail-soft:
            :class:`autoheal.daemon.risk_files.RiskFiles`); None: no panel data.
    """

    def __init__(
        self,
        health: HealthFn,
        events: EventsFn,
        *,
        stale_after_s: float,
        token: str | None = None,
        submit: SubmitFn | None = None,
        risk: RiskFn | None = None,
    ) -> None:
        self._health = health
        self._risk = risk
        self._events = events
        self._stale_after_s = stale_after_s
        self._token = token
        self._submit = submit

    @property
    def operator(self) -> bool:
        return self._token is not None and self._submit is not None

    def handles(self, method: bytes, path: bytes) -> bool:
        """Whether a request is the page's (the rest is ``/metrics``'s and ``/status``'s)."""
        return path in (b"/", b"/index.html", b"/events") or (
            path == b"/api/command" and method == b"POST"
        )

    def streams(self, path: bytes) -> bool:
        """Whether a request of the page's is a long-lived stream (its own, smaller pool)."""
        return path == b"/events"

    async def serve(self, exchange: Exchange) -> None:
        """Answer one request of the page's; the server holds its deadline."""
        if exchange.path == b"/events":
            await self._stream(exchange)
        elif exchange.path == b"/api/command":
            await exchange.send(await self._command(exchange))
        else:
            body = render_page(
                self._health(),
                self._safe_events(),
                stale_after_s=self._stale_after_s,
                operator=self.operator,
                risk=self._safe_risk(),
            )
            await exchange.send(response(200, body, "text/html; charset=utf-8"))

    def _safe_risk(self) -> Mapping[str, Any] | None:
        if self._risk is None:
            return None
        try:
            return self._risk()
        except Exception as exc:  # an observer: a failed read costs the panel, not the page
            log.error("status_page_risk_failed error=%s", exc)
            return None

    def _safe_events(self) -> list[dict[str, Any]]:
        try:
            return self._events()[:EVENT_ROWS]
        except Exception as exc:  # the page is an observer: a journal error costs the list
            log.error("status_page_events_failed error=%s", exc)
            return []

    async def _stream(self, exchange: Exchange) -> None:
        """Push the health document whenever the daemon writes a new one.

        It runs until the server's stream lifetime ends it, a newer stream replaces
        it, or a send is not taken within the send deadline (a client that stopped
        reading); the browser then reconnects after ``STREAM_RETRY_MS``.
        """
        await exchange.send(event_stream_head(STREAM_RETRY_MS))
        last: object = None
        last_risk: object = None
        quiet = 0.0
        while True:
            doc = self._health()
            risk = self._safe_risk()
            if doc is not None and (doc is not last or risk is not last_risk):
                last, last_risk = doc, risk
                data = orjson.dumps({
                    "health": doc,
                    "events": self._safe_events(),
                    "risk": risk,
                    "risk_html": render_risk(risk),
                })
                await exchange.send(b"event: health\ndata: " + data + b"\n\n")
                quiet = 0.0
            elif quiet >= KEEPALIVE_S:
                await exchange.send(b": keepalive\n\n")
                quiet = 0.0
            await anyio.sleep(POLL_S)
            quiet += POLL_S

    async def _command(self, exchange: Exchange) -> bytes:
        if self._token is None or self._submit is None:
            return json_response(403, {"error": "read-only status page (no token configured)"})
        request = exchange.request
        headers = {k.lower(): v for k, v in request.headers}
        token = headers.get(b"x-autoheal-token", b"").decode("utf-8", "replace")
        if not hmac.compare_digest(token.encode(), self._token.encode()):
            return json_response(403, {"error": "missing or wrong X-Autoheal-Token"})
        host = headers.get(b"host", b"").decode("latin-1")
        origin = headers.get(b"origin")
        if origin is not None and origin.decode("latin-1") not in (
            f"http://{host}",
            f"https://{host}",
        ):
            return json_response(403, {"error": "cross-origin request refused"})
        if not headers.get(b"content-type", b"").startswith(b"application/json"):
            return json_response(415, {"error": "send application/json"})
        body = await _read_body(exchange.stream, exchange.conn)
        if body is None:
            return json_response(413, {"error": f"at most {MAX_BODY_BYTES} bytes"})
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return json_response(400, {"error": "body is not JSON"})
        if not isinstance(doc, dict):
            return json_response(400, {"error": "body must be a JSON object"})
        kind, target, reason = doc.get("type"), doc.get("target") or "", doc.get("reason")
        if kind not in COMMANDS or not isinstance(target, str) or bool(target) != COMMANDS[kind]:
            return json_response(400, {"error": f"type must be one of {sorted(COMMANDS)}"})
        if not isinstance(reason, str) or not reason.strip():
            return json_response(400, {"error": "a reason is required"})
        if kind in _SCOPED:
            from autoheal.guard.scopes import ScopeError, parse_scope

            try:
                scope = parse_scope(target)
            except ScopeError as exc:
                return json_response(400, {"error": f"scope: {exc}"})
            if scope.is_all:
                return json_response(400, {"error": "scope all: use failsafe enter/clear"})
            target = str(scope)
        actor = f"web:{exchange.peer}"
        if kind == "breaker_reset":
            # It waits for the guard's file lock: never on the daemon's loop.
            command_id = await anyio.to_thread.run_sync(self._submit, kind, target, reason, actor)
        else:
            command_id = self._submit(kind, target, reason, actor)
        log.warning("status_page_command type=%s target=%s actor=%s", kind, target or "-", actor)
        return json_response(202, {"id": command_id, "type": kind, "target": target})


async def _read_body(stream: anyio.abc.ByteStream, conn: h11.Connection) -> bytes | None:
    """The request body, or None when it is larger than :data:`MAX_BODY_BYTES`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Data):
            size += len(event.data)
            if size > MAX_BODY_BYTES:
                return None
            chunks.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            return b"".join(chunks)
        elif event is h11.NEED_DATA:
            try:
                conn.receive_data(await stream.receive(4096))
            except anyio.EndOfStream:
                conn.receive_data(b"")
        else:
            return b"".join(chunks)
