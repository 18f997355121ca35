"""Prometheus metrics and the small HTTP endpoint serving ``/metrics`` and ``/status``.

Two kinds of metric live here:

* **state**, rendered at scrape time from the latest health document by
  :class:`HealthCollector` (DOR, failsafe, stage per component, restarts, probe
  verdicts): the health document is the single source of truth, so a scrape
  can never disagree with ``health_v2.json``;
* **events**, live instruments the daemon updates through
  :meth:`Metrics.observe_probe` (probe latency histogram, failures by reason),
  which a snapshot cannot reconstruct.

Each :class:`Metrics` owns a fresh ``CollectorRegistry``; the global default
registry is never touched, so two daemons (or two tests) in one process never
collide.

* **the server's own**, counted by the HTTP server (:class:`ServerStats`): open
  connections by kind, connections shed by reason, accept errors by errno; so a
  flood against the status port is visible on the very endpoint it tries to blind.

The endpoint itself is :func:`serve_status`: the routes for ``/metrics`` and
``/status`` (``GET`` only) over the hardened server of
:mod:`autoheal.web.httpserver`. A bad request is answered with 400 and never
takes the server, let alone the daemon, down.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from autoheal.core.admission import Kind, Limits
from autoheal.core.outlook import Next
from autoheal.core.stages import Stage
from autoheal.store import layout as runtime_files
from autoheal.store.atomic import read_json
from autoheal.web.connections import SHED_REASONS, ServerStats
from autoheal.web.httpserver import Exchange, Handler, serve_http
from autoheal.web.responses import json_response, response
from autoheal.web.statuspage import StatusPage

__all__ = [
    "DEFAULT_HOST",
    "METRICS_CONTENT_TYPE",
    "HealthCollector",
    "HealthFn",
    "Metrics",
    "file_health_fn",
    "serve_status",
]

log = logging.getLogger(__name__)

HealthFn = Callable[[], dict[str, Any] | None]

DEFAULT_HOST = "127.0.0.1"
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Probe latencies span sub-millisecond file reads to multi-second HTTP timeouts.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Accept errors always shown (0 until they happen): the ones a flood causes.
ACCEPT_ERRNOS = ("EMFILE", "ENFILE", "ENOBUFS", "ENOMEM", "ECONNABORTED")
_MAX_LABEL = 64


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _label(value: Any) -> str:
    """Bound label values: free text in a label would explode the series count."""
    return str(value)[:_MAX_LABEL] if value else "unknown"


class HealthCollector:
    """Renders the state gauges from the latest health document at each scrape."""

    def __init__(self, health_fn: HealthFn) -> None:
        self._health_fn = health_fn

    def describe(self) -> Iterable[Metric]:
        # Without describe() the registry would call collect() at registration time.
        return ()

    def collect(self) -> Iterator[Metric]:
        doc = _dict(self._health_fn())
        if not doc:
            return
        for name, key, text in (
            ("autoheal_dor", "dor", "1 when the runtime is ready to trade"),
            ("autoheal_failsafe_active", "failsafe", "1 while the failsafe is latched"),
            ("autoheal_degraded", "degraded", "1 while a dependency is failing"),
        ):
            yield GaugeMetricFamily(name, text, value=1.0 if doc.get(key) else 0.0)
        ts = _num(doc.get("ts"))
        if ts is not None:
            yield GaugeMetricFamily(
                "autoheal_health_timestamp_seconds", "when the health document was made", value=ts
            )
        yield _kill_switch_writes(_dict(_dict(doc.get("kill_switch")).get("write_failures")))
        yield from _scoped_halts(doc)
        lag = _num(_dict(doc.get("daemon")).get("loop_lag_s"))
        if lag is not None:
            yield GaugeMetricFamily("autoheal_loop_lag_seconds", "daemon event-loop lag", value=lag)
        probe_ok = GaugeMetricFamily(
            "autoheal_probe_ok", "1 when the probe passes", labels=["target", "probe"]
        )
        probe_value = GaugeMetricFamily(
            "autoheal_probe_value", "measured value (age or latency, s)", labels=["target", "probe"]
        )
        yield from _components(_dict(doc.get("components")), probe_ok, probe_value)
        yield from _outlooks(_dict(doc.get("components")), ts)
        yield from _dependencies(_dict(doc.get("dependencies")), probe_ok, probe_value)
        # One family per name, holding both component and dependency probes.
        yield probe_ok
        yield probe_value


def _kill_switch_writes(failures: dict[str, Any]) -> Metric:
    """1 per kill-switch file whose last write failed (labelled by file and errno), else 0."""
    family = GaugeMetricFamily(
        "autoheal_kill_switch_write_failing",
        "1 while a write of STOP.TXT or global_flags.json keeps failing (retried with backoff)",
        labels=["file", "errno"],
    )
    for file in ("stop_file", "flags"):
        failure = _dict(failures.get(file))
        errno = _label(failure.get("errno")) if failure else "none"
        family.add_metric([file, errno], 1.0 if failure else 0.0)
    return family


def _scoped_halts(doc: dict[str, Any]) -> Iterator[Metric]:
    """A series per scoped halt (``scope`` label, the scope string), and whether the
    halts are unreadable (then every new order is halted)."""
    halted = GaugeMetricFamily(
        "autoheal_scoped_halts",
        "1 per operator's scoped halt (failsafe enter --scope): orders in that scope halted",
        labels=["scope"],
    )
    for scope in sorted(_dict(doc.get("scoped_halts"))):
        halted.add_metric([_label(scope)], 1.0)
    yield halted
    yield GaugeMetricFamily(
        "autoheal_scoped_halts_unreadable",
        "1 when the scoped halts cannot be read: every new order is halted",
        value=1.0 if doc.get("scoped_halts_error") else 0.0,
    )


def _add_probes(
    target: str, entry: dict[str, Any], ok: GaugeMetricFamily, value: GaugeMetricFamily
) -> None:
    for probe, raw in _dict(entry.get("probes")).items():
        result = _dict(raw)
        ok.add_metric([target, probe], 1.0 if result.get("ok") is True else 0.0)
        measured = _num(result.get("value"))
        if measured is not None:
            value.add_metric([target, probe], measured)


def _components(
    components: dict[str, Any], probe_ok: GaugeMetricFamily, probe_value: GaugeMetricFamily
) -> Iterator[Metric]:
    stage = GaugeMetricFamily(
        "autoheal_component_stage", "1 for the current stage", labels=["component", "stage"]
    )
    up = GaugeMetricFamily("autoheal_component_up", "1 when healthy", labels=["component"])
    restarts = CounterMetricFamily(
        "autoheal_component_restarts", "restarts performed", labels=["component"]
    )
    for name, raw in components.items():
        comp = _dict(raw)
        for s in Stage:
            stage.add_metric([name, s.value], 1.0 if comp.get("stage") == s.value else 0.0)
        up.add_metric([name], 1.0 if comp.get("ok") is True else 0.0)
        count = _num(comp.get("restarts"))
        if count is not None:
            restarts.add_metric([name], count)
        _add_probes(name, comp, probe_ok, probe_value)
    yield from (stage, up, restarts)


def _outlooks(components: dict[str, Any], ts: float | None) -> Iterator[Metric]:
    """The next restart and the restart budget per component (each ``outlook``).

    The seconds are counted from the document's ``ts``: the daemon builds the
    document at each scrape, so that is now. A component with no restart scheduled
    (or whose budget reset moment is not known yet) has no sample in those two.
    """
    attempts = GaugeMetricFamily(
        "autoheal_restart_attempts",
        "restart attempts used in the current episode (reset after stable_reset healthy)",
        labels=["component"],
    )
    most = GaugeMetricFamily(
        "autoheal_restart_attempts_max",
        "restart attempts allowed before FAILSAFE (max_restarts)",
        labels=["component"],
    )
    next_in = GaugeMetricFamily(
        "autoheal_next_restart_seconds",
        "seconds until the scheduled restart (absent when none is scheduled)",
        labels=["component"],
    )
    reset_in = GaugeMetricFamily(
        "autoheal_restart_budget_reset_seconds",
        "seconds until the used restart attempts reset (absent until it is healthy again)",
        labels=["component"],
    )
    outlook = GaugeMetricFamily(
        "autoheal_restart_outlook",
        "1 for what comes next for a component's restarts (scheduled, verifying, held, ...)",
        labels=["component", "next"],
    )
    for name, raw in components.items():
        view = _dict(_dict(raw).get("outlook"))
        if not view:
            continue  # a document from before the outlook
        for key, family in (("attempts", attempts), ("max_restarts", most)):
            value = _num(view.get(key))
            if value is not None:
                family.add_metric([name], value)
        for key, family in (("restart_at", next_in), ("attempts_reset_at", reset_in)):
            at = _num(view.get(key))
            if at is not None and ts is not None:
                family.add_metric([name], max(0.0, at - ts))
        for kind in Next:
            outlook.add_metric([name, kind.value], 1.0 if view.get("next") == kind.value else 0.0)
    yield from (attempts, most, next_in, reset_in, outlook)


def _dependencies(
    deps: dict[str, Any], probe_ok: GaugeMetricFamily, probe_value: GaugeMetricFamily
) -> Iterator[Metric]:
    up = GaugeMetricFamily("autoheal_dependency_up", "1 when reachable", labels=["dependency"])
    for name, raw in deps.items():
        dep = _dict(raw)
        up.add_metric([name], 1.0 if dep.get("ok") is True else 0.0)
        _add_probes(name, dep, probe_ok, probe_value)
    yield up


class ServerCollector:
    """Renders the status server's own counters (:class:`ServerStats`) at each scrape."""

    def __init__(self, stats: ServerStats) -> None:
        self._stats = stats

    def describe(self) -> Iterable[Metric]:
        return ()

    def collect(self) -> Iterator[Metric]:
        stats = self._stats
        yield GaugeMetricFamily(
            "autoheal_http_connections_max",
            "most connections the status server holds (sized from RLIMIT_NOFILE)",
            value=float(stats.max_connections),
        )
        open_ = GaugeMetricFamily(
            "autoheal_http_connections",
            "open status-server connections by kind (head: request not read yet)",
            labels=["kind"],
        )
        for kind in Kind:
            open_.add_metric([kind.value], float(stats.open[kind]))
        yield open_
        shed = CounterMetricFamily(
            "autoheal_http_connections_shed",
            "status-server connections closed early or refused, by reason",
            labels=["reason"],
        )
        for reason in sorted({*SHED_REASONS, *stats.shed}):
            shed.add_metric([_label(reason)], float(stats.shed[reason]))
        yield shed
        errors = CounterMetricFamily(
            "autoheal_http_accept_errors",
            "failed accept() calls on the status port, by errno (retried after a back-off)",
            labels=["errno"],
        )
        for name in sorted({*ACCEPT_ERRNOS, *stats.accept_errors}):
            errors.add_metric([_label(name)], float(stats.accept_errors[name]))
        yield errors


class Metrics:
    """A fresh registry with the health collector and the daemon's live instruments.

    Args:
        health_fn: returns the latest health document (or None before the first one).

    Attributes:
        server: the status server's counters, rendered here (``autoheal_http_*``).
    """

    def __init__(self, health_fn: HealthFn) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(HealthCollector(health_fn))
        self.server = ServerStats()
        self.registry.register(ServerCollector(self.server))
        self._latency = Histogram(
            "autoheal_probe_latency_seconds",
            "time one probe took",
            ["target", "probe"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._failures = Counter(
            "autoheal_probe_failures",
            "failed probe checks by reason",
            ["target", "probe", "reason"],
            registry=self.registry,
        )

    def observe_probe(
        self, target: str, probe: str, ok: bool, reason: str, latency_s: float | None
    ) -> None:
        """Record one probe run: its latency, and a failure by reason when it failed."""
        if latency_s is not None and math.isfinite(latency_s) and latency_s >= 0:
            self._latency.labels(target, probe).observe(latency_s)
        if not ok:
            self._failures.labels(target, probe, _label(reason)).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition (version 0.0.4) of every metric."""
        return generate_latest(self.registry)


def file_health_fn(runtime_dir: Path) -> HealthFn:
    """A ``health_fn`` that reads ``health_v2.json`` at each call (None when unreadable).

    The daemon writes that file when what it says changes (at least every 30 s), so its
    ``ts`` may be that old; the daemon's own ``/metrics`` builds the document per scrape.
    """
    path = Path(runtime_dir) / runtime_files.HEALTH
    return lambda: read_json(path).doc


# -- the HTTP endpoint ----------------------------------------------------------------------


def _route(method: bytes, path: bytes, metrics: Metrics, health_fn: HealthFn) -> bytes:
    """Map one request to a complete response; never raises on the caller's input."""
    if method != b"GET":
        return response(405, b"GET only\n", "text/plain", extra=(("allow", "GET"),))
    if path == b"/metrics":
        return response(200, metrics.render(), METRICS_CONTENT_TYPE)
    if path == b"/status":
        doc = health_fn()
        if doc is None:
            return json_response(503, {"error": "no health document yet"})
        return json_response(200, doc)
    return response(404, b"try /metrics or /status\n", "text/plain")


async def serve_status(
    host: str,
    port: int,
    metrics: Metrics,
    health_fn: HealthFn,
    *,
    timeout_s: float = 5.0,
    page: StatusPage | None = None,
    limits: Limits | None = None,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``/metrics`` and ``/status`` (and the status page, given one) until cancelled.

    ``/metrics``, ``/status`` and the short answers (404, 405) are *scrapes*: they
    have slots that the page, its commands and its streams cannot take
    (:mod:`autoheal.core.admission`), so a crowd of browser tabs or idle sockets
    never blinds monitoring.

    Args:
        host: address to bind; keep it loopback (``DEFAULT_HOST``) unless a scraper
            elsewhere needs it.
        port: TCP port, 0 for any free one.
        metrics: the registry to render on ``/metrics``; it also counts the server's
            connections (``autoheal_http_*``).
        health_fn: returns the latest health document for ``/status``.
        timeout_s: deadline for one answer (read the request, send the response).
        page: the operator's page (``/``, ``/events``, ``/api/command``), or None.
        limits: the connection bounds (default: :class:`Limits`); the daemon sizes
            them from its descriptor limit.
        task_status: receives the bound port once the socket listens.

    Raises:
        OSError: the address cannot be bound (e.g. the port is in use).
    """

    async def scrape(exchange: Exchange) -> None:
        await exchange.send(_route(exchange.request.method, exchange.path, metrics, health_fn))

    def route(method: bytes, path: bytes) -> tuple[Kind, Handler]:
        if page is not None and page.handles(method, path):
            return (Kind.STREAM if page.streams(path) else Kind.PAGE), page.serve
        return Kind.SCRAPE, scrape

    await serve_http(
        host,
        port,
        route,
        limits=limits or Limits(),
        stats=metrics.server,
        timeout_s=timeout_s,
        task_status=task_status,
    )
