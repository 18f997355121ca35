"""Health probes: which fields each kind takes, their defaults, and unique names per owner.

Shared by services and dependencies; only services have a process, so only they may
have a ``process`` probe.
"""

from __future__ import annotations

import math
import re
from urllib.parse import urlsplit

from msgspec.structs import replace

from autoheal.config._judging import with_window
from autoheal.config._model import PROBE_KINDS, ProbeConfig
from autoheal.config._schema import RawProbe, fail
from autoheal.config._system_probes import (
    SYSTEM_OPTIONAL,
    SYSTEM_PROBE_FIELDS,
    resolve_system_probe,
)
from autoheal.config._values import (
    ENV_NAME,
    NAME,
    Context,
    as_duration,
    as_path,
    as_url,
    is_loopback_host,
)
from autoheal.core.json_pointer import PointerError, parse_pointer

#: Probe fields each kind may set, besides kind, name, interval and timeout.
_PROBE_FIELDS = {
    "process": frozenset(),
    "heartbeat": frozenset({"max_age", "path"}),
    "ws_freshness": frozenset({"max_age", "path", "field"}),
    "http": frozenset({"url", "expect_status", "latency_p95", "window"}),
    "http_json": frozenset(
        {"url", "expect_status", "pointer", "max_age", "equals", "unit", "auth", "auth_env"}
    ),
    "feed_lag": frozenset({"max_age", "path", "symbols", "max_gaps"}),
    **SYSTEM_PROBE_FIELDS,
}
#: Every optional field, in the order a misplaced one is reported.
_OPTIONAL = (
    "max_age",
    "path",
    "field",
    "url",
    "expect_status",
    "latency_p95",
    "window",
    "pointer",
    "equals",
    "unit",
    "auth",
    "auth_env",
    "symbols",
    "max_gaps",
    *SYSTEM_OPTIONAL,
)


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
        probe = with_window(_probe(raw, owner, key, ctx, has_process=has_process), raw, key)
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
    if raw.kind in ("process", "resource") and not has_process:
        fail(
            f"{key}.kind",
            "a dependency has no process; use heartbeat, ws_freshness, http, http_json,"
            " feed_lag, exec or tcp",
        )
    allowed = _PROBE_FIELDS[raw.kind]
    for optional in _OPTIONAL:
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
    if raw.kind == "http_json":
        return _http_json(raw, probe, key, ctx)
    if raw.kind == "feed_lag":
        return _feed_lag(raw, probe, owner, key, ctx)
    if raw.kind in SYSTEM_PROBE_FIELDS:
        return resolve_system_probe(raw, probe, key, ctx)
    return probe


#: What a market symbol may look like in ``symbols`` (BTCUSDT, BTC/USDT, BTC-USDT-SWAP, ...).
_SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/:._-]{0,63}$")


def _feed_lag(raw: RawProbe, probe: ProbeConfig, owner: str, key: str, ctx: Context) -> ProbeConfig:
    """A ``feed_lag`` probe: the feeder's heartbeat, the exchange timestamps' max age,
    which symbols, and how many sequence gaps are tolerated."""
    if raw.max_age is None:
        fail(f"{key}.max_age", "required for a 'feed_lag' probe (the exchange timestamps' age)")
    symbols = tuple(raw.symbols) if raw.symbols is not None else ()
    if raw.symbols is not None and not symbols:
        fail(f"{key}.symbols", "must name at least one symbol (leave it out for all of them)")
    for i, symbol in enumerate(symbols):
        if not _SYMBOL.fullmatch(symbol):
            fail(f"{key}.symbols[{i}]", f"not a market symbol: {symbol!r}")
        if symbol in symbols[:i]:
            fail(f"{key}.symbols[{i}]", f"duplicate symbol {symbol!r}")
    if raw.max_gaps is not None and raw.max_gaps < 0:
        fail(f"{key}.max_gaps", "must be 0 or more")
    return replace(
        probe,
        max_age=as_duration(raw.max_age, f"{key}.max_age"),
        path=as_path(
            raw.path or f"{owner}.heartbeat.json", ctx.runtime_dir, f"{key}.path", ctx.placeholders
        ),
        symbols=symbols,
        max_gaps=raw.max_gaps if raw.max_gaps is not None else 0,
    )


def _http_json(raw: RawProbe, probe: ProbeConfig, key: str, ctx: Context) -> ProbeConfig:
    """An ``http_json`` probe: url, pointer, one judgement, and the credential's variable."""
    if raw.url is None:
        fail(f"{key}.url", "required for an 'http_json' probe")
    url = as_url(raw.url, f"{key}.url", ctx.placeholders)
    if raw.pointer is None:
        fail(f"{key}.pointer", "required for an 'http_json' probe (e.g. '/last_process_ts')")
    try:
        parse_pointer(raw.pointer)
    except PointerError as exc:
        fail(f"{key}.pointer", str(exc))
    if raw.max_age is not None and raw.equals is not None:
        fail(f"{key}.equals", "not with max_age: judge the field by one of the two")
    if raw.max_age is None and raw.equals is None:
        fail(
            f"{key}.max_age",
            "an 'http_json' probe needs max_age (the field is a timestamp) or equals",
        )
    if isinstance(raw.equals, float) and not math.isfinite(raw.equals):
        fail(f"{key}.equals", "must be a finite number (JSON has no nan or inf)")
    if raw.unit is not None and raw.max_age is None:
        fail(f"{key}.unit", "only with max_age (the unit of a numeric timestamp)")
    if raw.unit not in (None, "s", "ms"):
        fail(f"{key}.unit", f"unknown unit {raw.unit!r} (expected 's' or 'ms')")
    status = tuple(raw.expect_status) if raw.expect_status is not None else (200,)
    if not status or any(not 100 <= s <= 599 for s in status):
        fail(f"{key}.expect_status", "must list HTTP status codes between 100 and 599")
    _check_auth(raw, url, key)
    return replace(
        probe,
        url=url,
        expect_status=status,
        pointer=raw.pointer,
        max_age=None if raw.max_age is None else as_duration(raw.max_age, f"{key}.max_age"),
        equals=raw.equals,
        unit=raw.unit or "s",
        auth=raw.auth,
        auth_env=raw.auth_env,
    )


def _check_auth(raw: RawProbe, url: str, key: str) -> None:
    if raw.auth is not None and raw.auth not in ("basic", "bearer"):
        fail(f"{key}.auth", f"unknown auth {raw.auth!r} (expected 'basic' or 'bearer')")
    if raw.auth is not None and raw.auth_env is None:
        fail(
            f"{key}.auth_env",
            f"required with auth = {raw.auth!r}: the environment variable holding the "
            + ("'user:password'" if raw.auth == "basic" else "token"),
        )
    if raw.auth_env is None:
        return
    if raw.auth is None:
        fail(f"{key}.auth", "required with auth_env: 'basic' or 'bearer'")
    if not ENV_NAME.fullmatch(raw.auth_env):
        fail(f"{key}.auth_env", "must be the name of an environment variable, not the secret")
    parts = urlsplit(url)
    if parts.scheme == "http" and not is_loopback_host(parts.hostname or ""):
        # Never echo the URL.
        fail(
            f"{key}.url",
            "a probe with auth must use https:// unless it goes to a loopback address",
        )
