"""Alertmanager: the runtime's open problems as alerts, re-sent while they last.

Webhooks hear events; Alertmanager wants state. Each active alert is posted to
``POST /api/v2/alerts`` with a stable ``startsAt`` and re-sent every ``resend_s``
(Alertmanager resolves an alert it has not heard of for its ``resolve_timeout``),
and a problem that ends is posted once more with ``endsAt``. The alerts are computed
from the same health document that ``health_v2.json`` holds (:func:`active_alerts`,
pure), so Alertmanager and the file cannot disagree; a push that fails is tried again
at the next check, and nothing is lost because the state is recomputed each time.

Alerts (labels ``alertname``, ``component``, ``severity``, ``instance``):

* ``AutohealFailsafe`` (critical): the failsafe is latched, new orders are halted.
* ``AutohealDegraded`` (warning), one per failing dependency: buys paused.
* ``AutohealKillSwitchWriteFailed`` (critical), one per kill-switch file whose
  write keeps failing.
"""

from __future__ import annotations

import logging
import os
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson

from autoheal.daemon.clock import Clock, LoopClock
from autoheal.daemon.notify import WebhookError, WebhookSpec, _check_transport
from autoheal.store.alerts import ALERTS_DIRNAME
from autoheal.store.atomic import read_json

log = logging.getLogger("autoheal")

Key = tuple[str, str]  # (alertname, component)

#: Re-send active alerts this often; well under Alertmanager's default resolve_timeout (5m).
RESEND_S = 30.0
#: Look at the health document this often (and push at once when the alert set changed).
CHECK_S = 1.0


@dataclass(frozen=True, slots=True)
class Alert:
    alertname: str
    component: str
    severity: str
    summary: str
    description: str


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def active_alerts(doc: Mapping[str, Any] | None) -> dict[Key, Alert]:
    """The problems a health document shows, by (alertname, component)."""
    doc = _mapping(doc)
    out: dict[Key, Alert] = {}
    if doc.get("failsafe") is True:
        reason = str(doc.get("failsafe_reason") or "failsafe active")
        out[("AutohealFailsafe", "runtime")] = Alert(
            "AutohealFailsafe",
            "runtime",
            "critical",
            "autoheal failsafe active: new orders halted",
            reason,
        )
    for name, raw_dep in sorted(_mapping(doc.get("dependencies")).items()):
        dep = _mapping(raw_dep)
        if dep.get("ok") is False:
            out[("AutohealDegraded", str(name))] = Alert(
                "AutohealDegraded",
                str(name),
                "warning",
                f"dependency {name} failing: runtime DEGRADED, new entries paused",
                str(dep.get("reason") or "failing"),
            )
    failures = _mapping(_mapping(doc.get("kill_switch")).get("write_failures"))
    for key, raw_failure in sorted(failures.items()):
        failure = _mapping(raw_failure)
        out[("AutohealKillSwitchWriteFailed", str(key))] = Alert(
            "AutohealKillSwitchWriteFailed",
            str(key),
            "critical",
            str(failure.get("message") or f"{key} could not be written"),
            "the failsafe holds in memory and in every file that can be written; retrying",
        )
    return out


#: At most this many alert files become alerts (a folder flooded with files stays bounded).
MAX_FILE_ALERTS = 50
#: Alert files whose problem halts or hides orders: paged as critical.
CRITICAL_FILE_ALERTS = frozenset(
    {"order_reconciliation", "ledger_unreadable", "risk_pnl_unreadable", "state_bus_invalid"}
)


def file_alerts(files: Mapping[str, Mapping[str, Any]]) -> dict[Key, Alert]:
    """The ``alerts/<name>.json`` files (the guard's, the daemon's) as alerts.

    A trading process raises its problems there (an order the venue holds that the
    ledger does not know, an unreadable ledger or P&L, a corrupt state bus); without
    this they reached ``autoheal status`` only, never a pager. One alert per file,
    ``AutohealAlert`` with the file's name as the component; an unreadable file is an
    alert too (its name is all that is known).
    """
    out: dict[Key, Alert] = {}
    for name in sorted(files)[:MAX_FILE_ALERTS]:
        doc = _mapping(files[name])
        detail = next(
            (
                str(doc[k])
                for k in ("problem", "detail", "reason", "reasons", "unreadable")
                if doc.get(k) not in (None, "", [], {})
            ),
            "see alerts/" + name + ".json",
        )
        out[("AutohealAlert", str(name))] = Alert(
            "AutohealAlert",
            str(name),
            "critical" if name in CRITICAL_FILE_ALERTS else "warning",
            f"alert {name} raised in the runtime directory",
            detail[:500],
        )
    return out


class AlertFiles:
    """The runtime directory's alert files as alerts, re-read only when the folder changed.

    An alert file is written by a rename into ``alerts/`` or removed, so the folder's
    own ``mtime`` moves with every change: one ``stat`` a look while nothing happens.
    """

    def __init__(self, runtime_dir: Path) -> None:
        self._folder = Path(runtime_dir) / ALERTS_DIRNAME
        self._seen: tuple[int, int] | None = None
        self._alerts: dict[Key, Alert] = {}

    def __call__(self) -> dict[Key, Alert]:
        try:
            st = self._folder.stat()
        except FileNotFoundError:
            self._seen, self._alerts = None, {}
            return {}
        except OSError as exc:
            return {("AutohealAlert", "alerts"): Alert(
                "AutohealAlert", "alerts", "critical",
                "the runtime directory's alerts folder cannot be read",
                exc.strerror or type(exc).__name__,
            )}
        if (st.st_ino, st.st_mtime_ns) != self._seen:
            docs: dict[str, Mapping[str, Any]] = {}
            try:
                paths = sorted(self._folder.glob("*.json"))[:MAX_FILE_ALERTS]
            except OSError:
                paths = []
            for path in paths:
                result = read_json(path)
                if result.reason == "missing":
                    continue  # cleared between the listing and the read
                docs[path.stem] = (
                    result.doc if isinstance(result.doc, Mapping)
                    else {"unreadable": result.reason or "not a JSON object"}
                )
            self._alerts = file_alerts(docs)
            self._seen = (st.st_ino, st.st_mtime_ns)
        return dict(self._alerts)


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alert_doc(
    alert: Alert, *, instance: str, starts_at: float, ends_at: float | None
) -> dict[str, Any]:
    """One alert as ``POST /api/v2/alerts`` takes it."""
    doc: dict[str, Any] = {
        "labels": {
            "alertname": alert.alertname,
            "component": alert.component,
            "severity": alert.severity,
            "instance": instance,
        },
        "annotations": {"summary": alert.summary, "description": alert.description},
        "startsAt": rfc3339(starts_at),
    }
    if ends_at is not None:
        doc["endsAt"] = rfc3339(ends_at)
    return doc


def alerts_url(url: str) -> str:
    """``http://am:9093`` → ``http://am:9093/api/v2/alerts`` (a full path is kept)."""
    parts = urllib.parse.urlsplit(url)
    if parts.path.rstrip("/").endswith("/api/v2/alerts"):
        return url
    return urllib.parse.urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/api/v2/alerts"))


class AlertmanagerPusher:
    """Keeps every configured Alertmanager told of what the health document shows.

    Args:
        specs: the ``format = "alertmanager"`` webhooks.
        health: the daemon's current health document (the one written to the file).
        instance: the ``instance`` label (default: this host's name).
        env: where ``secret_env`` is read (sent as ``Authorization: Bearer``).
        clock: the daemon's clock (alert times are its wall time).
        resend_s: how often active alerts are re-sent.
        check_s: how often the health document is looked at.
        files: the alert files' alerts (:func:`file_alerts` of the runtime directory's
            ``alerts/``), looked at as often as the health document.
    """

    def __init__(
        self,
        specs: Sequence[WebhookSpec],
        health: Callable[[], Mapping[str, Any] | None],
        *,
        instance: str,
        client: httpx.AsyncClient | None = None,
        env: Mapping[str, str] = os.environ,
        clock: Clock | None = None,
        resend_s: float = RESEND_S,
        check_s: float = CHECK_S,
        files: Callable[[], Mapping[Key, Alert]] | None = None,
    ) -> None:
        self._specs = list(specs)
        self._files = files
        self._health = health
        self._instance = instance
        self._client = client
        self._env = env
        self._clock = clock or LoopClock()
        self._resend_s = resend_s
        self._check_s = check_s
        self._started: dict[Key, float] = {}
        self._resolved: dict[Key, tuple[Alert, float, float]] = {}
        self._sent: dict[str, tuple[frozenset[Key], float]] = {}
        self._errors: dict[str, str] = {}
        self._last: dict[Key, Alert] = {}

    def _update(self, now: float) -> dict[Key, Alert]:
        active = active_alerts(self._health())
        if self._files is not None:
            active.update(self._files())
        for key in active:
            self._started.setdefault(key, now)
            self._resolved.pop(key, None)
        for key in [k for k in self._started if k not in active]:
            self._resolved[key] = (self._last[key], self._started.pop(key), now)
        self._last = dict(active)
        return active

    def body(self, active: Mapping[Key, Alert]) -> list[dict[str, Any]]:
        docs = [
            alert_doc(a, instance=self._instance, starts_at=self._started[k], ends_at=None)
            for k, a in sorted(active.items())
        ]
        docs += [
            alert_doc(a, instance=self._instance, starts_at=start, ends_at=end)
            for _, (a, start, end) in sorted(self._resolved.items())
        ]
        return docs

    async def _post(self, client: httpx.AsyncClient, spec: WebhookSpec, docs: list[Any]) -> None:
        _check_transport(spec)
        headers = {"content-type": "application/json"}
        if spec.secret_env:
            secret = self._env.get(spec.secret_env)
            if not secret:
                raise WebhookError(f"secret_env_missing:{spec.secret_env}")
            headers["authorization"] = f"Bearer {secret}"
        with self._clock.fail_after(spec.timeout):
            response = await client.post(
                alerts_url(spec.url), content=orjson.dumps(docs), headers=headers
            )
        if not 200 <= response.status_code < 300:
            raise WebhookError(f"http_status_{response.status_code}")

    async def push_once(self, client: httpx.AsyncClient) -> None:
        """Push to each Alertmanager whose view is out of date or due for a re-send."""
        now = self._clock.wall()
        active = self._update(now)
        keys = frozenset(active)
        docs = self.body(active)
        delivered_everywhere = True
        for spec in self._specs:
            sent_keys, sent_at = self._sent.get(spec.name, (None, 0.0))
            due = sent_keys != keys or bool(self._resolved) or now - sent_at >= self._resend_s
            if not due or (not docs and sent_keys is None):
                continue
            try:
                await self._post(client, spec, docs)
            except (WebhookError, httpx.HTTPError, TimeoutError) as exc:
                delivered_everywhere = False
                error = exc.reason if isinstance(exc, WebhookError) else type(exc).__name__
                if self._errors.get(spec.name) != error:
                    log.warning("alertmanager %s push failed: %s; retrying", spec.name, error)
                self._errors[spec.name] = error
                continue
            if self._errors.pop(spec.name, None) is not None:
                log.info("alertmanager %s reachable again", spec.name)
            self._sent[spec.name] = (keys, now)
        if delivered_everywhere:
            self._resolved.clear()

    async def run(self) -> None:
        """Push until cancelled."""
        client = self._client or httpx.AsyncClient()
        try:
            while True:
                await self.push_once(client)
                await self._clock.sleep(self._check_s)
        finally:
            if self._client is None:
                with anyio.CancelScope(shield=True):
                    await client.aclose()
