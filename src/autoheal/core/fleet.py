"""The fleet switch's meaning: what a read of Redis, or the lack of one, says.

A fleet is several hosts, each with its own daemon, sharing one Redis. Two kinds of
key live there (names below, one home):

* ``autoheal:fleet:<fleet>:switch``: the fleet switch, one JSON record
  ``{"state": "RUN"|"REDUCE_ONLY"|"HALT", "version": int, "set_by", "reason", "ts"}``,
  changed only by a compare-and-set that raises ``version`` by one or more;
* ``autoheal:fleet:<fleet>:host:<host>``: each host's summary, with a TTL, and
  ``autoheal:fleet:<fleet>:hosts``, the set of hosts that ever reported.

A fleet flag is *state*, not an event: every valid read says what the fleet wants
now. The rules, each a reason the fleet can never loosen a host by accident:

* A read that fails, times out, or returns a record that does not parse, has an
  unknown state or a version lower than the one applied is *unreadable*. After
  ``stale_after`` without a valid read the link is *lost* (:class:`FleetLost`): the
  machine makes the host DEGRADED or halts it (``on_lost``), and never clears
  anything because of it.
* Only a fresh valid read (:class:`FleetSwitchRead`) ends a loss; the machine
  (``core.machine``) applies the switch: HALT and REDUCE_ONLY are entered with
  ``set_by = "fleet"``; RUN clears only what the fleet set.
* A missing switch key is ``RUN`` at version 0: a fleet nobody ever switched. After
  any higher version was applied, that is a version going backwards (a Redis that
  lost its data may have lost a HALT): unreadable.

What a record *means* is decided here, for the daemon and the CLI alike, and reading
one never raises: whatever bytes a key holds (not JSON, nested past the parser's
limit, a number like ``1e400``, a string with a lone surrogate) become a record, an
:class:`Unreadable`, or a host shown with its ``problem``. Free text in a record
(``set_by``, ``reason``, a host's ``mode``) is made valid text (a lone surrogate
escaped), so it can be written to the local files, the journal and a terminal: a
HALT with a strange reason still halts. A host summary that does not hold what the
daemon writes is *malformed*: ``fleet status`` reports it by name and
``fleet halt|reduce-only|run`` skips it (it cannot raise the version floor) and
still sets the switch.

Pure: no clock, no sockets. The shell (``autoheal.daemon.fleet``) reads Redis, maps
its exceptions to the problem tokens below, and feeds the outcomes here.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeGuard

from autoheal.core.actions import ClearAlert, RaiseAlert
from autoheal.core.fleet_scoped import (
    SCOPED_FIELD,
    FleetScoped,
    encode_scoped,
    parse_scoped,
    with_scope,
)
from autoheal.core.observations import FleetLost, FleetSwitchRead, Observation

__all__ = [
    "FLEET",
    "FLEET_LOST",
    "HOST_NAME",
    "ON_LOST",
    "SUMMARY_FIELDS",
    "SWITCH_STATES",
    "FleetLink",
    "HostView",
    "Judgement",
    "SwitchRecord",
    "Unreadable",
    "channel",
    "encode_switch",
    "host_key",
    "host_name",
    "host_prefix",
    "hosts_key",
    "judge_read",
    "judge_time",
    "lost_at",
    "next_record",
    "next_scoped_record",
    "parse_host",
    "parse_switch",
    "switch_key",
    "version_floor",
]

#: ``set_by`` of everything the fleet sets on a host, and a reason token.
FLEET = "fleet"
#: Reason token of a host that cannot read the fleet switch.
FLEET_LOST = "fleet_lost"
#: Problem tokens of an unreadable switch (the shell adds its own for I/O failures:
#: ``fleet_unreachable``, ``fleet_timeout``, ``fleet_auth_failed``, ``fleet_tls_failed``).
SWITCH_INVALID = "fleet_switch_invalid"
VERSION_BACKWARDS = "fleet_version_backwards"
SWITCH_STATES = ("RUN", "REDUCE_ONLY", "HALT")
ON_LOST = ("degrade", "halt")
#: The alert a bad record raises (cleared by the next valid one).
INVALID_ALERT = "fleet_switch_invalid"
#: A record bigger than this is not ours.
MAX_RECORD_BYTES = 64 * 1024
#: What a host may be called (``[fleet] host``; a host key's last part).
HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,252}")


def switch_key(fleet: str) -> str:
    return f"autoheal:fleet:{fleet}:switch"


def channel(fleet: str) -> str:
    """Pub/sub channel announcing a new switch version (a speed-up: polling decides)."""
    return f"autoheal:fleet:{fleet}:switch:changed"


def host_prefix(fleet: str) -> str:
    return f"autoheal:fleet:{fleet}:host:"


def host_key(fleet: str, host: str) -> str:
    return host_prefix(fleet) + host


def hosts_key(fleet: str) -> str:
    """A set of every host that ever reported (no TTL): a member without a live host
    key is a lost host."""
    return f"autoheal:fleet:{fleet}:hosts"


@dataclass(frozen=True, slots=True)
class SwitchRecord:
    state: str
    version: int
    set_by: str
    reason: str
    ts: float
    #: The optional ``scoped_halts`` (:mod:`autoheal.core.fleet_scoped`), sorted.
    scoped: tuple[FleetScoped, ...] = ()


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A read that gave no valid switch: ``problem`` is a token, ``detail`` words (no secrets)."""

    problem: str
    detail: str = ""


def parse_switch(
    raw: bytes | str | None, canonical: Callable[[str], str] | None = None
) -> SwitchRecord | Unreadable:
    """The switch record from the key's value; None (no key) is RUN at version 0.

    Never raises: anything that is not a valid record is :class:`Unreadable`, a bad
    ``scoped_halts`` field too (``canonical`` checks its scopes, see
    :func:`~autoheal.core.fleet_scoped.parse_scoped`).
    """
    if raw is None:
        return SwitchRecord("RUN", 0, "", "fleet switch never set", 0.0)
    doc = _load_object(raw)
    if isinstance(doc, str):
        return Unreadable(SWITCH_INVALID, doc)
    state, version = doc.get("state"), doc.get("version")
    if state not in SWITCH_STATES:
        return Unreadable(SWITCH_INVALID, f"unknown state {_text(str(state)[:40])!r}")
    if not _is_whole(version):
        return Unreadable(SWITCH_INVALID, "version is not a whole number >= 0")
    set_by, reason, ts = doc.get("set_by", ""), doc.get("reason", ""), doc.get("ts", 0.0)
    if not isinstance(set_by, str) or not isinstance(reason, str):
        return Unreadable(SWITCH_INVALID, "set_by and reason must be strings")
    if not _is_finite(ts):
        return Unreadable(SWITCH_INVALID, "ts is not a number")
    scoped = parse_scoped(doc.get(SCOPED_FIELD), canonical)
    if isinstance(scoped, str):
        return Unreadable(SWITCH_INVALID, scoped)
    return SwitchRecord(
        str(state), version, _text(set_by[:200]), _text(reason[:500]), float(ts), scoped
    )


def _load_object(raw: bytes | str) -> dict[str, Any] | str:
    """A record's JSON object, or why there is none (never raises)."""
    if len(raw) > MAX_RECORD_BYTES:
        return f"record larger than {MAX_RECORD_BYTES} bytes"
    try:
        doc = json.loads(raw)
    except RecursionError:
        # Nested deeper than the parser goes: "[[[[..." is a record, not a crash.
        return "not JSON (nested too deeply)"
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        return f"not JSON ({type(exc).__name__})"
    if not isinstance(doc, dict):
        return "not a JSON object"
    return doc


def _text(value: str) -> str:
    """``value`` as valid text: a lone surrogate (JSON allows ``"\\udcff"``) escaped.

    Such a string cannot be encoded as UTF-8, so the flags file, the journal or a
    terminal would fail on it.
    """
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def _is_whole(value: object) -> TypeGuard[int]:
    """A whole number >= 0 (JSON's ``true`` is not one, nor ``7.0`` or ``1e400``)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_finite(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def encode_switch(record: SwitchRecord) -> str:
    doc: dict[str, object] = {
        "state": record.state,
        "version": record.version,
        "set_by": record.set_by,
        "reason": record.reason,
        "ts": record.ts,
    }
    if record.scoped:  # absent when none: a record as older daemons wrote it
        doc[SCOPED_FIELD] = encode_scoped(record.scoped)
    return json.dumps(doc, sort_keys=True)


def next_record(
    current: SwitchRecord, state: str, *, set_by: str, reason: str, ts: float, floor: int = 0
) -> SwitchRecord:
    """The record an operator's ``fleet halt|reduce-only|run`` writes over ``current``.

    The version goes above both the current one and ``floor`` (the highest version any
    host reports having applied), so a Redis that lost its data can be set again.

    Raises:
        ValueError: ``state`` is not a switch state.
    """
    if state not in SWITCH_STATES:
        raise ValueError(f"unknown fleet switch state {state!r}")
    version = max(current.version, floor) + 1
    return SwitchRecord(state, version, set_by, reason, ts, current.scoped)


def next_scoped_record(
    current: SwitchRecord,
    scope: str,
    *,
    halted: bool,
    set_by: str,
    reason: str,
    ts: float,
    floor: int = 0,
) -> SwitchRecord:
    """The record ``fleet halt|run --scope`` writes: ``scope`` added to (or removed from)
    the scoped halts, the state and its who and why kept, the version raised as above."""
    scoped = with_scope(current.scoped, scope, halted=halted, set_by=set_by, reason=reason, ts=ts)
    version = max(current.version, floor) + 1
    return replace(current, version=version, scoped=scoped)


# ------------------------------------------------------------------ the link


@dataclass(frozen=True, slots=True)
class FleetLink:
    """How this host's reads of the switch have gone.

    ``good_at`` starts the stale clock: the last valid read, or the agent's start.
    ``lost`` is True once :class:`FleetLost` was sent for this outage. ``invalid`` is
    the problem token of the bad record an alert is up for ("" when none).
    ``booting``: no read has succeeded since the agent started. Nothing is known of
    the switch then (a HALT may have been set while this daemon was down), so the
    first failed read is a loss at once, not after ``stale_after``.
    """

    good_at: float
    problem: str = ""
    detail: str = ""
    lost: bool = False
    invalid: str = ""
    booting: bool = False


@dataclass(frozen=True, slots=True)
class Judgement:
    link: FleetLink
    observations: tuple[Observation, ...]
    actions: tuple[RaiseAlert | ClearAlert, ...]


def lost_at(link: FleetLink, stale_after: float) -> float | None:
    """When the link counts as lost if no valid read comes; None once it is lost."""
    return None if link.lost else link.good_at + stale_after


def judge_time(link: FleetLink, now: float, *, stale_after: float, on_lost: str) -> Judgement:
    """Time passed without a valid read: the link is lost once ``stale_after`` has run out."""
    deadline = lost_at(link, stale_after)
    if deadline is None or now < deadline:
        return Judgement(link, (), ())
    return _lose(link, on_lost)


def _lose(link: FleetLink, on_lost: str) -> Judgement:
    reason = link.problem or "fleet_no_read"
    if link.detail:
        reason = f"{reason}: {link.detail}"
    return Judgement(replace(link, lost=True), (FleetLost(reason, on_lost),), ())


def judge_read(
    link: FleetLink,
    outcome: SwitchRecord | Unreadable,
    now: float,
    *,
    applied_version: int,
    stale_after: float,
    on_lost: str,
) -> Judgement:
    """One read of the switch, judged.

    Args:
        link: how reads have gone so far.
        outcome: the parsed record, or why there is none.
        now: monotonic seconds.
        applied_version: the highest version this host applied (``FleetState.version``).
        stale_after: seconds without a valid read before the link is lost.
        on_lost: ``degrade`` or ``halt``.

    Returns:
        The new link, the observations for ``step`` (a :class:`FleetSwitchRead`, or a
        :class:`FleetLost` when the stale clock ran out) and alert actions for bad records.
    """
    if isinstance(outcome, SwitchRecord) and outcome.version < applied_version:
        outcome = Unreadable(
            VERSION_BACKWARDS,
            f"version {outcome.version} is lower than the applied {applied_version}",
        )
    if isinstance(outcome, SwitchRecord):
        actions: tuple[RaiseAlert | ClearAlert, ...] = ()
        if link.invalid:
            actions = (ClearAlert(INVALID_ALERT, "fleet switch", "a valid record was read"),)
        obs = FleetSwitchRead(outcome.state, outcome.version, outcome.set_by, outcome.reason)
        return Judgement(FleetLink(now), (obs,), actions)
    alerts: tuple[RaiseAlert | ClearAlert, ...] = ()
    invalid = link.invalid
    # One alert per kind of bad record, not one per read.
    bad_record = outcome.problem in (SWITCH_INVALID, VERSION_BACKWARDS)
    if bad_record and outcome.problem != link.invalid:
        detail = f"{outcome.problem}: {outcome.detail}"
        alerts = (RaiseAlert(INVALID_ALERT, "fleet switch", detail),)
        invalid = outcome.problem
    failed = replace(link, problem=outcome.problem, detail=outcome.detail, invalid=invalid)
    if failed.booting and not failed.lost:
        later = _lose(failed, on_lost)
    else:
        later = judge_time(failed, now, stale_after=stale_after, on_lost=on_lost)
    return Judgement(later.link, later.observations, alerts)


# ------------------------------------------------------------------ hosts


@dataclass(frozen=True, slots=True)
class HostView:
    """One host's published summary as ``autoheal fleet status`` shows it.

    ``problem`` is non-empty for a key that cannot be shown as a host (its name is
    not a host name, its summary does not parse or is malformed, or it claims another
    host's name): such a key is ignored, and reported by name. ``doc`` holds only the
    checked fields of a valid summary (:data:`SUMMARY_FIELDS`), ``{}`` otherwise.
    """

    host: str
    age_s: float | None
    lost: bool
    doc: Mapping[str, Any]
    problem: str = ""

    @property
    def fleet_version(self) -> int:
        """The highest switch version this host applied (0 when not known)."""
        version = self.doc.get("fleet_version", 0)
        return version if _is_whole(version) else 0


def _is_text(value: object) -> bool:
    return isinstance(value, str)


def _is_bool(value: object) -> bool:
    return isinstance(value, bool)


def _is_mode(value: object) -> bool:
    return value is None or isinstance(value, str)


def _is_names(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_lost(value: object) -> bool:
    return isinstance(value, str | bool)


#: The summary fields ``fleet status`` and ``fleet halt`` use: each with its check,
#: what it must be (for the problem's words) and its default when absent (a summary
#: from an older daemon may lack one).
SUMMARY_FIELDS: Mapping[str, tuple[Any, str, object]] = {
    "ts": (_is_finite, "a finite number", None),
    "dor": (_is_bool, "true or false", False),
    "mode": (_is_mode, "a string", None),
    "failsafe": (_is_bool, "true or false", False),
    "failsafe_set_by": (_is_text, "a string", ""),
    "failsafe_reason": (_is_text, "a string", ""),
    "failing_components": (_is_names, "a list of strings", []),
    "fleet_version": (_is_whole, "a whole number >= 0", 0),
    "fleet_lost": (_is_lost, "a string", ""),
    "scoped_halts": (_is_names, "a list of strings", []),
}


def host_name(raw: bytes | str) -> str:
    """A host name from a Redis key or set member, safe to print.

    A valid name comes back as it is; any other (not UTF-8, a control character, a
    space) comes back escaped (``bad\\x1b[2J``), which :func:`parse_host` then
    reports as not a host name.
    """
    name = raw.decode("utf-8", "backslashreplace") if isinstance(raw, bytes) else raw
    if HOST_NAME.fullmatch(name):
        return name
    return "".join(c if " " <= c <= "~" else ascii(c)[1:-1] for c in name)


def parse_host(key_host: str, raw: bytes | str | None, *, now_wall: float) -> HostView:
    """A host key's value, checked: it must parse, name the host its key names, and hold
    what a daemon publishes (:data:`SUMMARY_FIELDS`). Never raises.

    An absent value (the TTL ran out between listing and reading) is a lost host.
    """
    if not HOST_NAME.fullmatch(key_host):
        return HostView(key_host, None, True, {}, "not a valid host name: ignored")
    if raw is None:
        return HostView(key_host, None, True, {})
    doc = _load_object(raw)
    if isinstance(doc, str):
        return HostView(key_host, None, True, {}, f"summary is {doc}: ignored")
    claimed = doc.get("host")
    if claimed != key_host:
        shown = _text(str(claimed)[:80])
        return HostView(key_host, None, True, {}, f"claims host {shown!r}: ignored")
    checked: dict[str, Any] = {}
    for name, (is_valid, words, default) in SUMMARY_FIELDS.items():
        if name in doc and not is_valid(doc[name]):
            return HostView(
                key_host, None, True, {}, f"malformed summary: {name} is not {words}: ignored"
            )
        checked[name] = _clean(doc.get(name, default))
    ts = checked["ts"]
    age = None if ts is None else max(0.0, now_wall - float(ts))
    return HostView(key_host, age, False, checked)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, list):
        return [_text(v) for v in value]
    return value


def version_floor(hosts: Iterable[HostView]) -> int:
    """The highest switch version any valid host reports having applied (0 if none).

    A new switch record goes above it, so a Redis that lost its data can be set
    again; a malformed summary (``problem``) cannot raise it.
    """
    return max((h.fleet_version for h in hosts if not h.problem), default=0)
