"""Notifications: ``notifications.log`` and webhooks that lose nothing and never block the loop.

A notification is first made durable, then delivered:

1. :meth:`WebhookSender.enqueue` (called from the daemon loop) writes one ``outbox`` row
   per webhook into the journal and sets an ``anyio.Event``. That is all the loop does.
2. :meth:`WebhookSender.run`, a task of its own, delivers due rows oldest first with
   httpx under a timeout. A failure pushes that webhook's rows back by an exponential
   backoff (0.5 s doubling to a 30 s cap by default) and the other webhooks carry on.
   Rows stay in the outbox until delivered, so a webhook that is down, or a daemon that
   restarts, loses nothing. Delivery is at-least-once (a crash between the POST and the
   ``delivered_at`` update sends that one again).

Secrets come only from environment variables, are read at send time, are sent only
over ``https://`` or to a loopback address (``insecure_url`` otherwise), and are never
stored or logged: the outbox holds the notification, not the rendered request; logs
name the webhook, never its URL; and while :meth:`WebhookSender.run` runs, a filter on
the ``httpx`` logger (which logs every request URL at INFO) masks secret values, since
Telegram wants its token in the URL path.
"""

from __future__ import annotations

import logging
import math
import os
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
from anyio.abc import TaskStatus

from autoheal.config import is_loopback_host, telegram_chat_id_env
from autoheal.daemon.clock import Clock, LoopClock
from autoheal.store.atomic import append_jsonl
from autoheal.store.journal import Journal

__all__ = [
    "FORMATS",
    "Notification",
    "NotificationLog",
    "Notifier",
    "RetryPolicy",
    "WebhookError",
    "WebhookSender",
    "WebhookSpec",
    "render_request",
    "summary_text",
]

log = logging.getLogger(__name__)

FORMATS = ("generic", "slack", "telegram", "alertmanager")


@dataclass(frozen=True, slots=True)
class Notification:
    """Something an operator must hear about; ``kind`` is failsafe, degraded, recovered, ..."""

    kind: str
    component: str | None
    reason: str
    message: str
    ts: float
    data: dict[str, Any] = field(default_factory=dict)

    def to_doc(self) -> dict[str, Any]:
        """The notification as a JSON-ready dict (the ``generic`` webhook body)."""
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Notification:
        """Rebuild from :meth:`to_doc` output (outbox rows)."""
        return cls(
            kind=str(doc["kind"]),
            component=doc.get("component"),
            reason=str(doc.get("reason", "")),
            message=str(doc.get("message", "")),
            ts=float(doc["ts"]),
            data=dict(doc.get("data") or {}),
        )


def summary_text(n: Notification) -> str:
    """One human line, for chat formats: ``[autoheal] FAILSAFE feeder: reason - message``."""
    where = f" {n.component}" if n.component else ""
    tail = f" - {n.message}" if n.message else ""
    return f"[autoheal] {n.kind.upper()}{where}: {n.reason}{tail}"


class NotificationLog:
    """``notifications.log``: one JSON object a line, appended durably."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def append(self, n: Notification) -> None:
        """Append one notification (blocking: a single write and an fsync)."""
        append_jsonl(self.path, n.to_doc())


@dataclass(frozen=True, slots=True)
class WebhookSpec:
    """One webhook. ``url`` may hold ``{secret}`` (Telegram's bot token goes in the path).

    Attributes:
        name: what logs and the outbox call it (never the URL).
        url: the endpoint.
        format: ``generic``, ``slack``, ``telegram``, or ``alertmanager`` (not an outbox
            webhook: :mod:`autoheal.daemon.alertmanager` pushes state instead).
        secret_env: environment variable holding the secret; for generic and slack it is
            also sent as ``Authorization: Bearer``.
        timeout: seconds for one delivery attempt, connect to response.
        chat_id: Telegram chat id; default from ``<secret_env>_CHAT_ID``.
    """

    name: str
    url: str
    format: str = "generic"
    secret_env: str | None = None
    timeout: float = 5.0
    chat_id: str | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff between failed attempts of one webhook: ``initial_s`` doubling to ``cap_s``."""

    initial_s: float = 0.5
    factor: float = 2.0
    cap_s: float = 30.0
    batch: int = 50

    def delay_for(self, attempts: int) -> float:
        """Delay after the ``attempts``-th consecutive failure (1 = the first)."""
        return min(self.cap_s, self.initial_s * self.factor ** max(0, attempts - 1))


class WebhookError(Exception):
    """A webhook that cannot be rendered (missing secret or chat id); ``reason`` is a token."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Request:
    """A rendered request; ``url`` may contain the secret, so never log it."""

    url: str
    headers: dict[str, str]
    body: dict[str, Any]


def render_request(spec: WebhookSpec, n: Notification, env: Mapping[str, str]) -> Request:
    """Build the HTTP request for one webhook (pure).

    Raises:
        WebhookError: ``secret_env_missing:<VAR>``, ``chat_id_missing``, ``unknown_format``,
            or ``insecure_url`` (a secret over plain ``http://`` to a non-loopback host;
            config validation refuses that already, this is the last line).
    """
    _check_transport(spec)
    secret = None
    if spec.secret_env:
        secret = env.get(spec.secret_env)
        if not secret:
            raise WebhookError(f"secret_env_missing:{spec.secret_env}")
    url = spec.url
    if "{secret}" in url:
        if secret is None:
            raise WebhookError("secret_env_missing")
        url = url.replace("{secret}", urllib.parse.quote(secret, safe=":"))
    headers = {"content-type": "application/json"}
    if spec.format == "generic":
        body: dict[str, Any] = n.to_doc()
    elif spec.format == "slack":
        body = {"text": summary_text(n)}
    elif spec.format == "telegram":
        chat_id = spec.chat_id or (
            env.get(telegram_chat_id_env(spec.secret_env)) if spec.secret_env else None
        )
        if not chat_id:
            raise WebhookError("chat_id_missing")
        body = {"chat_id": chat_id, "text": summary_text(n)}
    else:
        raise WebhookError("unknown_format")
    if secret is not None and spec.format != "telegram":
        headers["authorization"] = f"Bearer {secret}"
    return Request(url, headers, body)


def _check_transport(spec: WebhookSpec) -> None:
    parts = urllib.parse.urlsplit(spec.url)
    if parts.scheme == "https" or is_loopback_host(parts.hostname or ""):
        return
    if spec.secret_env or "{secret}" in spec.url or parts.password is not None:
        raise WebhookError("insecure_url")


class _RedactSecrets(logging.Filter):
    """Masks secret values in records of a library logger (httpx logs request URLs)."""

    def __init__(self, secrets: Callable[[], Iterable[str]]) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        masked = _redact(text, self._secrets())
        if masked != text:
            record.msg, record.args = masked, None
        return True


def _redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        for form in {secret, urllib.parse.quote(secret, safe=":"), urllib.parse.quote(secret)}:
            text = text.replace(form, "***")
    return text


class WebhookSender:
    """Delivers notifications to webhooks through the journal's outbox (see module docstring).

    Args:
        webhooks: the configured webhooks; names must be unique.
        journal: where the outbox lives.
        client: an httpx client to use (closed by its owner); default one of our own.
        env: where secrets are read from, at send time.
        clock: the daemon's clock; outbox deadlines are its wall time, so they survive a
            restart.
        retry: the backoff policy.
    """

    def __init__(
        self,
        webhooks: Sequence[WebhookSpec],
        journal: Journal,
        *,
        client: httpx.AsyncClient | None = None,
        env: Mapping[str, str] = os.environ,
        clock: Clock | None = None,
        retry: RetryPolicy = RetryPolicy(),
    ) -> None:
        self._specs = {spec.name: spec for spec in webhooks}
        if len(self._specs) != len(webhooks):
            raise ValueError("webhook names must be unique")
        self._journal = journal
        self._client = client
        self._env = env
        self._clock = clock or LoopClock()
        self._retry = retry
        self._wake: anyio.Event | None = None

    def _secrets(self) -> list[str]:
        names = [s.secret_env for s in self._specs.values() if s.secret_env]
        return [value for name in names if (value := self._env.get(name))]

    def enqueue(self, n: Notification) -> int:
        """Make ``n`` durable for every webhook and wake the sender; returns rows written.

        Only a short journal insert: call it from the loop, it never waits for the network.
        """
        if not self._specs:
            return 0
        now, text = self._clock.wall(), orjson.dumps(n.to_doc()).decode()
        with self._journal.transaction() as conn:
            conn.executemany(
                "INSERT INTO outbox (created_at, webhook, notification, next_attempt_at)"
                " VALUES (?, ?, ?, ?)",
                [(now, name, text, now) for name in self._specs],
            )
        if self._wake is not None:
            self._wake.set()
        return len(self._specs)

    def undelivered(self) -> int:
        """How many outbox rows for our webhooks still wait for delivery."""
        names = tuple(self._specs)
        marks = ",".join("?" * len(names)) or "NULL"
        sql = f"SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL AND webhook IN ({marks})"  # noqa: S608
        return int(self._journal.query(sql, names)[0][0])

    def _due(self, now: float) -> tuple[list[Any], float | None]:
        names = tuple(self._specs)
        marks = ",".join("?" * len(names)) or "NULL"
        where = f"delivered_at IS NULL AND webhook IN ({marks})"
        rows = self._journal.query(
            f"SELECT id, webhook, notification, attempts FROM outbox WHERE {where}"  # noqa: S608
            " AND next_attempt_at <= ? ORDER BY id LIMIT ?",
            (*names, now, self._retry.batch),
        )
        nxt = self._journal.query(f"SELECT MIN(next_attempt_at) FROM outbox WHERE {where}", names)  # noqa: S608
        return rows, nxt[0][0]

    def _mark_delivered(self, row_id: int) -> None:
        with self._journal.transaction() as conn:
            conn.execute(
                "UPDATE outbox SET delivered_at = ?, last_error = NULL WHERE id = ?",
                (self._clock.wall(), row_id),
            )

    def _mark_failed(self, row_id: int, webhook: str, attempts: int, error: str) -> float:
        delay = self._retry.delay_for(attempts)
        retry_at = self._clock.wall() + delay
        with self._journal.transaction() as conn:
            conn.execute(
                "UPDATE outbox SET attempts = ?, last_error = ?, next_attempt_at = ? WHERE id = ?",
                (attempts, error, retry_at, row_id),
            )
            # The whole webhook backs off, so a dead endpoint gets one probe per delay.
            conn.execute(
                "UPDATE outbox SET next_attempt_at = ? WHERE webhook = ?"
                " AND delivered_at IS NULL AND next_attempt_at < ?",
                (retry_at, webhook, retry_at),
            )
        return delay

    async def _attempt(self, client: httpx.AsyncClient, spec: WebhookSpec, text: str) -> str | None:
        """One POST; returns None when delivered, else a redacted error token."""
        try:
            request = render_request(spec, Notification.from_doc(orjson.loads(text)), self._env)
            with self._clock.fail_after(spec.timeout):
                response = await client.post(
                    request.url,
                    content=orjson.dumps(request.body),
                    headers=request.headers,
                    timeout=spec.timeout,
                )
        except WebhookError as exc:
            return exc.reason
        except TimeoutError:
            return "timeout"
        except httpx.HTTPError as exc:
            return _redact(f"{type(exc).__name__}: {exc}", self._secrets())
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return "invalid_outbox_row"
        if 200 <= response.status_code < 300:
            return None
        return f"http_status_{response.status_code}"

    async def _deliver_webhook(self, client: httpx.AsyncClient, name: str, rows: list[Any]) -> None:
        spec = self._specs[name]
        for row in rows:
            error = await self._attempt(client, spec, row["notification"])
            if error is None:
                await anyio.to_thread.run_sync(self._mark_delivered, row["id"])
                log.info("webhook %s delivered outbox row %d", name, row["id"])
                continue
            attempts = row["attempts"] + 1
            delay = await anyio.to_thread.run_sync(
                self._mark_failed, row["id"], name, attempts, error
            )
            log.warning(
                "webhook %s delivery failed (attempt %d): %s; retrying in %.2f s",
                name,
                attempts,
                error,
                delay,
            )
            return  # keep this webhook's order: later rows wait for this one

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Deliver the outbox until cancelled, starting with rows left by an earlier run."""
        client = self._client or httpx.AsyncClient()
        redactor = _RedactSecrets(self._secrets)
        httpx_log = logging.getLogger("httpx")
        httpx_log.addFilter(redactor)
        try:
            task_status.started()
            while True:
                self._wake = anyio.Event()  # before the query, so no enqueue is missed
                rows, next_at = await anyio.to_thread.run_sync(self._due, self._clock.wall())
                if rows:
                    by_webhook: dict[str, list[Any]] = {}
                    for row in rows:
                        by_webhook.setdefault(row["webhook"], []).append(row)
                    async with anyio.create_task_group() as tg:
                        for name, mine in by_webhook.items():
                            tg.start_soon(self._deliver_webhook, client, name, mine)
                    continue
                wait = math.inf if next_at is None else max(0.0, next_at - self._clock.wall())
                with self._clock.move_on_at(self._clock.now() + wait):
                    await self._wake.wait()
        finally:
            httpx_log.removeFilter(redactor)
            if self._client is None:
                with anyio.CancelScope(shield=True):
                    await client.aclose()


class Notifier:
    """What the daemon calls: the log line and the webhook outbox, in that order."""

    def __init__(self, log_file: NotificationLog, sender: WebhookSender | None = None) -> None:
        self._log = log_file
        self._sender = sender

    @property
    def sender(self) -> WebhookSender | None:
        """The webhook sender whose ``run`` the daemon starts in its task group."""
        return self._sender

    def notify(self, n: Notification) -> None:
        """Record ``n`` durably; delivery to webhooks happens in the sender's task."""
        self._log.append(n)
        if self._sender is not None:
            self._sender.enqueue(n)
