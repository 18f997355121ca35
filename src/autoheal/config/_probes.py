"""Health probes: which fields each kind takes, their defaults, and unique names per owner.

Shared by services and dependencies; only services have a process, so only they may
have a ``process`` probe.
"""

from __future__ import annotations

from msgspec.structs import replace

from autoheal.config._model import PROBE_KINDS, ProbeConfig
from autoheal.config._schema import RawProbe, fail
from autoheal.config._values import NAME, Context, as_duration, as_path, as_url

#: Probe fields each kind may set, besides kind, name, interval and timeout.
_PROBE_FIELDS = {
    "process": frozenset(),
    "heartbeat": frozenset({"max_age", "path"}),
    "ws_freshness": frozenset({"max_age", "path", "field"}),
    "http": frozenset({"url", "expect_status", "latency_p95", "window"}),
}


def resolve_probes(
    raws: list[RawProbe], owner: str, owner_key: str, ctx: Context, *, has_process: bool
) -> tuple[ProbeConfig, ...]:
    """Resolve the probes of one service or dependency.

    Args:
        raws: the ``probes`` array as parsed.
        owner: the service or dependency name (default heartbeat file ``<owner>.heartbeat.json``).
        owner_key: its dotted key, such as ``services.feeder``.
        ctx: what paths and placeholders resolve against.
        has_process: whether the owner is a service (only those may use ``kind = "process"``).

    Raises:
        Invalid: a probe is wrong, or two share a name.
    """
    seen: dict[str, int] = {}
    out = []
    for i, raw in enumerate(raws):
        key = f"{owner_key}.probes[{i}]"
        probe = _probe(raw, owner, key, ctx, has_process=has_process)
        if probe.name in seen:
            fail(
                f"{key}.name",
                f"duplicate probe name {probe.name!r} (also probes[{seen[probe.name]}])",
            )
        seen[probe.name] = i
        out.append(probe)
    return tuple(out)


def _probe(raw: RawProbe, owner: str, key: str, ctx: Context, *, has_process: bool) -> ProbeConfig:
    if raw.kind not in _PROBE_FIELDS:
        fail(f"{key}.kind", f"unknown probe kind {raw.kind!r} (expected {', '.join(PROBE_KINDS)})")
    if raw.kind == "process" and not has_process:
        fail(f"{key}.kind", "a dependency has no process; use heartbeat, ws_freshness or http")
    allowed = _PROBE_FIELDS[raw.kind]
    for optional in ("max_age", "path", "field", "url", "expect_status", "latency_p95", "window"):
        if getattr(raw, optional) is not None and optional not in allowed:
            fail(f"{key}.{optional}", f"not used by a {raw.kind!r} probe")
    name = raw.name if raw.name is not None else raw.kind
    if not NAME.fullmatch(name):
        fail(f"{key}.name", "names may hold only letters, digits, '_' and '-'")
    probe = ProbeConfig(
        kind=raw.kind,
        name=name,
        interval=as_duration(raw.interval, f"{key}.interval"),
        timeout=as_duration(raw.timeout, f"{key}.timeout"),
    )
    if raw.kind in ("heartbeat", "ws_freshness"):
        if raw.max_age is None:
            fail(f"{key}.max_age", f"required for a {raw.kind!r} probe")
        field = None
        if raw.kind == "ws_freshness":
            field = raw.field if raw.field is not None else "ws_last_msg_ts"
            if not field:
                fail(f"{key}.field", "must not be empty")
        return replace(
            probe,
            max_age=as_duration(raw.max_age, f"{key}.max_age"),
            path=as_path(
                raw.path or f"{owner}.heartbeat.json",
                ctx.runtime_dir,
                f"{key}.path",
                ctx.placeholders,
            ),
            field=field,
        )
    if raw.kind == "http":
        if raw.url is None:
            fail(f"{key}.url", "required for an 'http' probe")
        status = tuple(raw.expect_status) if raw.expect_status is not None else (200,)
        if not status or any(not 100 <= s <= 599 for s in status):
            fail(f"{key}.expect_status", "must list HTTP status codes between 100 and 599")
        if raw.window is not None and raw.window < 1:
            fail(f"{key}.window", "must be at least 1")
        return replace(
            probe,
            url=as_url(raw.url, f"{key}.url", ctx.placeholders),
            expect_status=status,
            latency_p95=(
                None
                if raw.latency_p95 is None
                else as_duration(raw.latency_p95, f"{key}.latency_p95")
            ),
            window=raw.window if raw.window is not None else 20,
        )
    return probe
