"""``autoheal status``: what the runtime looks like right now, read from its files.

The command reads ``health_v2.json``, ``auto_heal.heartbeat.json``,
``global_flags.json`` and ``STOP.TXT`` (docs/files.md) and never talks to the
daemon, so it works when the daemon is down, which is exactly when an operator
needs it. Bad content never raises: a missing, corrupt or wrongly typed file
is reported in plain words and makes the exit code 1.

Exit 0 only when DOR is true, the daemon's heartbeat is fresh and the health
document is fresh. Both count as stale when older than
``max(5 s, 5 x heartbeat interval)`` (:mod:`autoheal.core.liveness`).

Start-up time matters (an operator types this at 3 a.m., scripts poll it), so
this module imports only the standard library, orjson, ``autoheal.store`` and
:mod:`autoheal.cli.common`; the config package only to read ``--config``, and the
pure staleness rule (:mod:`autoheal.core.liveness`) when it reads. ``--json`` with a
config adds ``risk``, the status page's money side (:mod:`autoheal.daemon.risk_files`).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import orjson

from autoheal.cli.common import EXIT_USAGE, clean, clean_json, err, load_config
from autoheal.store import layout
from autoheal.store.alerts import read_alerts
from autoheal.store.atomic import ReadResult, read_json
from autoheal.store.flags import FlagsRead, read_flags, read_stop_line, stop_file_present

if TYPE_CHECKING:
    import argparse

    from autoheal.config import Config

__all__ = [
    "DAEMON_HEARTBEAT_FILENAME",
    "HEALTH_FILENAME",
    "StatusSnapshot",
    "exit_code",
    "handle",
    "read_status",
    "render_json",
    "render_text",
    "status_command",
]

HEALTH_FILENAME = layout.HEALTH
DAEMON_HEARTBEAT_FILENAME = layout.DAEMON_HEARTBEAT


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    """Everything ``autoheal status`` read, with ages computed against one ``now``."""

    health: ReadResult
    health_age_s: float | None
    daemon: ReadResult
    daemon_age_s: float | None
    flags: FlagsRead
    stop_present: bool
    stop_line: str
    stale_after_s: float
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The wall clock the ages were computed against (the outlook's countdowns too).
    now: float | None = None
    #: The scoped halts (a :class:`autoheal.guard.scopes.HaltsView`), None: not read.
    scoped: Any = None

    @property
    def daemon_stale(self) -> bool:
        return self.daemon_age_s is None or self.daemon_age_s > self.stale_after_s

    @property
    def health_stale(self) -> bool:
        """The health document is current while the daemon that wrote it beats.

        The daemon rewrites ``health_v2.json`` when what it says changes, not every
        beat, so its own age proves nothing; the daemon's heartbeat, written every
        beat by the same process, does.
        """
        return self.health_age_s is None or self.daemon_stale or self.health_writer_differs

    @property
    def health_writer_differs(self) -> bool:
        """The health document was written by another daemon than the one beating now."""
        written_by = _dict(self.health.doc).get("daemon")
        beating = _dict(self.daemon.doc).get("pid")
        return _dict(written_by).get("pid") != beating

    @property
    def dor(self) -> bool:
        return self.health.doc is not None and self.health.doc.get("dor") is True


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    """A finite float, or None for anything else (bools, strings, NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _age(doc: dict[str, Any] | None, now: float) -> float | None:
    ts = _number(doc.get("ts")) if doc is not None else None
    return None if ts is None else max(0.0, now - ts)


def read_status(
    runtime_dir: Path, stop_file: Path, *, now: float, heartbeat_interval_s: float = 1.0
) -> StatusSnapshot:
    """Read the runtime's files into a :class:`StatusSnapshot`; never raises on content."""
    # Imported here: importing this module loads nothing of the core (test_status.py).
    from autoheal.core.liveness import stale_after_s

    runtime_dir = Path(runtime_dir)
    health = read_json(runtime_dir / HEALTH_FILENAME)
    daemon = read_json(runtime_dir / DAEMON_HEARTBEAT_FILENAME)
    present = stop_file_present(Path(stop_file))
    return StatusSnapshot(
        health=health,
        health_age_s=_age(health.doc, now),
        daemon=daemon,
        daemon_age_s=_age(daemon.doc, now),
        flags=(flags_read := read_flags(runtime_dir)),
        scoped=_read_scoped(runtime_dir, flags_read),
        stop_present=present,
        stop_line=read_stop_line(Path(stop_file)) if present else "",
        stale_after_s=stale_after_s(heartbeat_interval_s),
        alerts=read_alerts(runtime_dir),
        now=now,
    )


def exit_code(snap: StatusSnapshot) -> int:
    """0 when DOR is true and both the daemon heartbeat and the health doc are fresh."""
    return 0 if snap.dor and not snap.daemon_stale and not snap.health_stale else 1


# -- text -----------------------------------------------------------------------------------


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _fmt_s(value: Any) -> str:
    number = _number(value)
    if number is None:
        return "-"
    return f"{number * 1000:.0f}ms" if abs(number) < 1 else f"{number:.1f}s"


def _headline(snap: StatusSnapshot) -> str:
    doc = _mapping(snap.health.doc)
    dor = "true" if snap.dor else "false"
    flags = snap.flags.flags
    if flags is None:
        mode = "UNKNOWN"
        failsafe = f"UNKNOWN (global_flags.json {snap.flags.reason}: {clean(snap.flags.detail)})"
    else:
        mode = clean(flags.mode)
        if flags.failsafe_active or doc.get("failsafe"):
            failsafe = f"ON ({clean(flags.reason or 'no reason')}, set by {clean(flags.set_by)})"
        else:
            failsafe = "off"
    degraded = "yes" if doc.get("degraded") is True or mode == "DEGRADED" else "no"
    return f"DOR {dor}  mode={mode}  failsafe={failsafe}  degraded={degraded}"


def _daemon_line(snap: StatusSnapshot) -> str:
    if snap.daemon.reason == "missing":
        return "daemon heartbeat MISSING: is autoheal run running?"
    if snap.daemon.doc is None:
        return (
            f"daemon heartbeat UNREADABLE ({snap.daemon.reason}: {clean(snap.daemon.detail)}):"
            " the daemon may be down"
        )
    if snap.daemon_age_s is None:
        return "daemon heartbeat INVALID (no numeric ts): the daemon may be down"
    if snap.daemon_stale:
        return f"daemon heartbeat STALE ({snap.daemon_age_s:.1f}s old): the daemon may be down"
    return f"daemon pid {clean(snap.daemon.doc.get('pid'))} heartbeat {snap.daemon_age_s:.1f}s ago"


def _health_line(snap: StatusSnapshot) -> str | None:
    if snap.health.reason == "missing":
        return f"{HEALTH_FILENAME} MISSING: the daemon has not written it (is it running?)"
    if snap.health.doc is None:
        return (
            f"{HEALTH_FILENAME} UNREADABLE ({snap.health.reason}: {clean(snap.health.detail)}):"
            " health unknown"
        )
    if snap.health_age_s is None:
        return f"{HEALTH_FILENAME} has no numeric ts: cannot tell how old it is"
    if snap.health_stale and not snap.daemon_stale and snap.health_writer_differs:
        return (
            f"{HEALTH_FILENAME} STALE (written by another daemon than pid "
            f"{clean(_dict(snap.daemon.doc).get('pid'))}, {snap.health_age_s:.1f}s ago)"
        )
    if snap.health_stale:
        return f"{HEALTH_FILENAME} STALE (written {snap.health_age_s:.1f}s ago; daemon not beating)"
    return None


def _rows(doc: dict[str, Any]) -> list[list[str]]:
    rows = [["NAME", "STAGE", "OK", "REASON", "PID", "RESTARTS", "HEARTBEAT"]]
    for name, raw in sorted(_mapping(doc.get("components")).items()):
        comp = _mapping(raw)
        heartbeat = _mapping(_mapping(comp.get("probes")).get("heartbeat"))
        rows.append([
            clean(name), clean(comp.get("stage")), "ok" if comp.get("ok") is True else "FAIL",
            clean(comp.get("reason") or None), clean(comp.get("pid")),
            clean(comp.get("restarts")), _fmt_s(heartbeat.get("value")),
        ])  # fmt: skip
    for name, raw in sorted(_mapping(doc.get("dependencies")).items()):
        dep = _mapping(raw)
        values = [
            f"{clean(probe)}={_fmt_s(_mapping(result).get('value'))}"
            for probe, result in sorted(_mapping(dep.get("probes")).items())
        ]
        rows.append([
            clean(name), "dependency", "ok" if dep.get("ok") is True else "FAIL",
            clean(dep.get("reason") or None), "-", "-", " ".join(values) or "-",
        ])  # fmt: skip
    return rows


def _span(seconds: float) -> str:
    """A wait as an operator reads it: ``12.4s``, ``9m58s``, ``2h05m``."""
    if seconds < 59.95:
        return f"{max(0.0, seconds):.1f}s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _count(value: Any) -> str:
    number = _number(value)
    return "?" if number is None else str(int(number))


def _until(view: dict[str, Any], key: str, now: float | None) -> float | None:
    """Seconds from ``now`` to the outlook's moment ``key`` (negative when past)."""
    at = _number(view.get(key))
    return None if at is None or now is None else at - now


def _then(view: dict[str, Any]) -> str:
    """What a failure of the current attempt leads to."""
    if view.get("on_failure") == "failsafe":
        return "if it fails: FAILSAFE (no attempt left)"
    delay = _number(view.get("on_failure_delay_s"))
    if view.get("on_failure") == "restart" and delay is not None:
        return "if it fails: restart " + ("at once" if delay <= 0 else f"after {_span(delay)}")
    return ""


def _budget(view: dict[str, Any], now: float | None) -> str:
    """Attempts used (unless an "attempt k of n" says it already) and when they reset."""
    used = f"{_count(view.get('attempts'))} of {_count(view.get('max_restarts'))} attempts used"
    if _number(view.get("attempt")) is not None:
        used = ""
    reset_in = _until(view, "attempts_reset_at", now)
    stable = _number(view.get("stable_reset_s"))
    if reset_in is not None:
        reset = f"budget resets in {_span(reset_in)}"
    elif (
        view.get("next") in ("failsafe", "held")
        or stable is None
        or _number(view.get("attempts")) in (None, 0.0)
    ):
        reset = ""  # reset by an operator's start or clear, or nothing to reset
    else:
        reset = f"budget resets {_span(stable)} after it is healthy"
    return ", ".join(p for p in (used, reset) if p)


def outlook_text(view: dict[str, Any], now: float | None) -> str | None:
    """One component's next restart and budget in words, or None when there is nothing
    to say (healthy, no attempt used). Every value from the file goes through ``clean``."""
    nxt = view.get("next")
    reason = clean(view.get("reason") or "-")
    attempt = f"attempt {_count(view.get('attempt'))} of {_count(view.get('max_restarts'))}"
    if nxt == "scheduled":
        left = _until(view, "restart_at", now)
        when = "restart due now" if left is None or left <= 0 else f"restart in {_span(left)}"
        last = ", the last" if view.get("attempt") == view.get("max_restarts") else ""
        head = f"{when} ({attempt}{last}, reason {reason})"
    elif nxt == "restarting":
        head = f"restarting now ({attempt}, reason {reason})"
    elif nxt == "verifying":
        left = _until(view, "verify_until", now)
        within = "" if left is None else f", at most {_span(max(0.0, left))} more"
        head = f"verifying the restart ({attempt}{within})"
    elif nxt == "waiting":
        head = f"waiting for the process of the restart ({attempt})"
    elif nxt == "watching":
        head = f"no restart yet: watching its probes (reason {reason})"
    elif nxt == "healthy":
        if _number(view.get("attempts")) in (None, 0.0):
            return None
        head = "healthy, no restart due"
    elif nxt == "held":
        head = "no restart: stopped by an operator"
    elif nxt == "failsafe":
        head = f"no restart while the failsafe holds (reason {reason})"
    elif nxt == "dependency":
        head = f"no restart while a dependency fails (reason {reason})"
    else:
        return None
    parts = [head, _then(view), _budget(view, now)]
    return "; ".join(p for p in parts if p)


def _outlook_rows(doc: dict[str, Any], now: float | None) -> list[list[str]]:
    rows = []
    for name, raw in sorted(_mapping(doc.get("components")).items()):
        comp = _mapping(raw)
        line = outlook_text(_mapping(comp.get("outlook")), now)
        if line is not None:
            rows.append([clean(name), clean(comp.get("stage")), line])
    return [["NAME", "STAGE", "NEXT RESTART"], *rows] if rows else []


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _alert_lines(snap: StatusSnapshot) -> list[str]:
    """Failing kill-switch writes first (from the daemon's health), then every alert file."""
    lines: list[str] = []
    shown: set[str] = set()
    switch = _mapping(_mapping(snap.health.doc).get("kill_switch"))
    for key, raw in sorted(_mapping(switch.get("write_failures")).items()):
        failure = _mapping(raw)
        lines.append(
            f"ALERT {clean(failure.get('message'))} "
            f"(attempt {clean(failure.get('attempts'))}, retrying; the failsafe holds)"
        )
        shown.add(f"{key}_write_failed")
    for name, alert in sorted(snap.alerts.items()):
        if name in shown:
            continue
        detail = alert.get("detail") or alert.get("problem") or alert.get("unreadable") or ""
        lines.append(f"ALERT {clean(name)}: {clean(detail)}")
    return lines


def render_text(snap: StatusSnapshot) -> str:
    """The human view: headline, daemon, STOP.TXT, then one aligned line per component."""
    lines = [_headline(snap), _daemon_line(snap)]
    health_problem = _health_line(snap)
    if health_problem:
        lines.append(health_problem)
    if snap.flags.flags is not None and snap.flags.missing:
        lines.append("global_flags.json missing: defaults apply (NORMAL, no failsafe)")
    lines += _scoped_lines(snap)
    if snap.stop_present:
        lines.append(f"STOP.TXT present: {clean(snap.stop_line)}  (new orders halted)")
    else:
        lines.append("STOP.TXT absent")
    lines.extend(_alert_lines(snap))
    if snap.health.doc is not None:
        lines.extend(_table(_rows(snap.health.doc)))
        outlook = _outlook_rows(snap.health.doc, snap.now)
        if outlook:
            lines.append("")
            lines.extend(_table(outlook))
    return "\n".join(lines) + "\n"


# -- json -----------------------------------------------------------------------------------


def _outlook_json(components: dict[str, Any], now: float | None) -> dict[str, Any]:
    """Each component's ``outlook`` with its moments also as seconds from ``now``
    (negative once past); anything malformed is passed on as it was."""
    out: dict[str, Any] = {}
    for name, comp in components.items():
        view = comp.get("outlook") if isinstance(comp, dict) else None
        if isinstance(view, dict):
            counted = {
                "restart_in_s": _until(view, "restart_at", now),
                "verify_in_s": _until(view, "verify_until", now),
                "attempts_reset_in_s": _until(view, "attempts_reset_at", now),
            }
            out[name] = {**comp, "outlook": {**view, **counted}}
        else:
            out[name] = comp
    return out


def _read_scoped(runtime_dir: Path, flags: FlagsRead) -> Any:
    """The scoped halts as the guard sees them: the flags' key and the daemon's record."""
    from autoheal.guard.scoped_record import read_view
    from autoheal.guard.scopes import merge_views, parse_halts

    return merge_views(parse_halts(flags.scoped_halts), read_view(runtime_dir))


def _scoped_view(snap: StatusSnapshot) -> Any:
    from autoheal.guard.scopes import HaltsView

    return snap.scoped if snap.scoped is not None else HaltsView()


def _scoped_lines(snap: StatusSnapshot) -> list[str]:
    """A line per scoped halt (``failsafe enter --scope``); garbage halts every order."""
    view = _scoped_view(snap)
    if view.garbage:
        return [f"SCOPED HALTS UNREADABLE: {clean(view.garbage)}  (every new order halted)"]
    return [
        f"scoped halt {clean(name)}: {clean(h.reason or 'no reason')}, set by "
        f"{clean(h.set_by or '?')}  (orders in this scope halted; "
        f"autoheal failsafe clear --scope {clean(name)})"
        for name, h in view.by_name().items()
    ]


def render_json(snap: StatusSnapshot) -> dict[str, Any]:
    """The health document plus what ``status`` adds: daemon staleness, flags, STOP.TXT,
    and each component's outlook counted down against this command's clock."""
    doc: dict[str, Any] = dict(snap.health.doc or {})
    if isinstance(doc.get("components"), dict):
        doc["components"] = _outlook_json(doc["components"], snap.now)
    flags = snap.flags.flags
    health_error = None
    if snap.health.doc is None:
        health_error = f"{snap.health.reason}: {snap.health.detail}".rstrip(": ")
    doc.update(
        health_error=health_error,
        health_age_s=snap.health_age_s,
        health_stale=snap.health_stale,
        daemon_heartbeat_age_s=snap.daemon_age_s,
        daemon_stale=snap.daemon_stale,
        daemon_pid=_mapping(snap.daemon.doc).get("pid"),
        stop_file_present=snap.stop_present,
        stop_file_line=snap.stop_line or None,
        flags=flags.to_doc() if flags is not None else None,
        flags_error=None if flags is not None else f"{snap.flags.reason}: {snap.flags.detail}",
        alerts=snap.alerts,
        exit_code=exit_code(snap),
    )
    view = _scoped_view(snap)
    doc["scoped_halts"] = {name: h.to_doc() for name, h in view.by_name().items()}
    doc["scoped_halts_error"] = view.garbage or None
    return doc


def status_command(
    runtime_dir: Path,
    stop_file: Path,
    *,
    as_json: bool,
    out: TextIO | None = None,
    now: Callable[[], float] = time.time,
    heartbeat_interval_s: float = 1.0,
    risk: Callable[[], dict[str, Any] | None] | None = None,
) -> int:
    """Print the runtime's status and return the exit code.

    Args:
        runtime_dir: the folder holding ``health_v2.json`` and friends.
        stop_file: the configured ``STOP.TXT`` path.
        as_json: print one JSON object instead of the text view.
        out: where to print (default ``sys.stdout``).
        now: wall clock; the files carry unix timestamps, so ages are wall-clock ages.
        heartbeat_interval_s: the daemon's ``heartbeat_interval``; sets the stale limit.
        risk: with ``as_json``, the risk panel's document (``risk``: the page's money side).

    Returns:
        0 when DOR is true and the daemon and the health document are fresh, else 1.
    """
    stream = sys.stdout if out is None else out
    snap = read_status(runtime_dir, stop_file, now=now(), heartbeat_interval_s=heartbeat_interval_s)
    if as_json:
        doc = render_json(snap)
        if risk is not None:
            doc["risk"] = risk()
        data = orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        stream.write(clean_json(data.decode()) + "\n")  # orjson writes DEL, C1, bidi raw
    else:
        stream.write(render_text(snap))
    stream.flush()
    return exit_code(snap)


def handle(args: argparse.Namespace) -> int:
    """``autoheal status``: from ``--runtime-dir`` alone, or from the config's paths."""
    if args.runtime_dir is not None:
        runtime_dir = Path(args.runtime_dir)
        default = runtime_dir.parent / layout.STOP_FILE_DEFAULT
        stop = Path(args.stop_file) if args.stop_file else default
        return status_command(runtime_dir, stop, as_json=args.json)
    cfg = load_config(args.config)
    if cfg is None:
        err(
            "autoheal: the daemon keeps running its last valid config; "
            "'autoheal status --runtime-dir DIR' reads its files without the config"
        )
        return EXIT_USAGE
    return status_command(
        cfg.paths.runtime_dir,
        cfg.paths.stop_file,
        as_json=args.json,
        heartbeat_interval_s=cfg.daemon.heartbeat_interval,
        risk=_risk_reader(cfg) if args.json else None,
    )


def _risk_reader(cfg: Config) -> Callable[[], dict[str, Any] | None]:
    """The page's risk panel, read once from the files (only for ``--json``)."""
    from autoheal.daemon.risk_files import RiskFiles

    return RiskFiles(lambda: cfg, clock=time.monotonic, wall=time.time).view
