"""``autoheal fleet status|halt|reduce-only|run``: the fleet's view and its switch.

``halt --scope S`` and ``run --scope S`` add ``S`` to (or remove it from) the switch
record's scoped halts (:mod:`autoheal.core.fleet_scoped`), leaving its state alone;
every host halts that scope only, with ``set_by = "fleet"``.

``status`` lists every host that ever reported (its summary's age, DOR, mode,
failsafe, failing components); a host whose summary expired is shown as lost, and
a key that claims another host's name is ignored and reported. ``halt``,
``reduce-only`` and ``run`` write a new switch record with a compare-and-set (a Lua
script: the record is replaced only if it is still the one this command read), so
two operators never silently overwrite each other; each is journaled locally with
the OS user. The daemons read the record; this command never touches local files
other than the journal.

What a record means is the core's decision (:mod:`autoheal.core.fleet`): a malformed
host summary is shown by name and skipped, never an error, so one bad host can
neither hide the others from ``status`` nor stop a ``halt``. Only Redis itself
failing (:func:`autoheal.daemon.fleet.redis_errors`) is the one-line exit 1 below.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from autoheal.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Problem,
    clean,
    err,
    fail,
    load_config,
    os_user,
    say,
    usage_error,
)
from autoheal.config import Config, FleetConfig
from autoheal.core import fleet as core_fleet
from autoheal.core.fleet import HostView, SwitchRecord, Unreadable

__all__ = ["handle", "read_hosts", "set_command", "status_command"]

#: Replace the switch only if it is still what the caller read (KEYS: switch, channel;
#: ARGV: "1" if a record was read else "0", the record read, the new record, its version).
CAS_SCRIPT = """
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if cur ~= ARGV[2] then return 0 end
elseif cur then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3])
redis.call('PUBLISH', KEYS[2], ARGV[4])
return 1
"""

STATES = {"halt": "HALT", "reduce-only": "REDUCE_ONLY", "run": "RUN"}


def _client(fleet: FleetConfig) -> Any:
    from autoheal.daemon.fleet import sync_client

    return sync_client(fleet, os.environ)


def _fail(cfg: Config, verb: str, exc: BaseException) -> int:
    from autoheal.daemon.fleet import problem_of, redact

    url = redact(cfg.fleet.redis_url) if cfg.fleet is not None else "-"
    text = f"fleet {verb}: {problem_of(exc)}: cannot use Redis at {url} ({type(exc).__name__})"
    return fail(Problem("failed", text))


def _no_fleet(cfg: Config, verb: str) -> int:
    err(f"autoheal: fleet {verb}: {cfg.path}: no [fleet] table")
    return EXIT_USAGE


def read_hosts(client: Any, fleet: str, now_wall: float) -> list[HostView]:
    """Every host that ever reported, and any other host key found, each judged by the core.

    Names stay bytes until shown: a key whose name is not UTF-8 is still read (by its
    exact bytes) and reported, never a decoding error.
    """
    prefix = core_fleet.host_prefix(fleet).encode()
    keys: dict[str, bytes] = {}  # the name as shown -> the key's exact bytes
    for member in client.smembers(core_fleet.hosts_key(fleet)):
        raw = _as_bytes(member)
        keys.setdefault(core_fleet.host_name(raw), prefix + raw)
    for key in client.scan_iter(match=prefix + b"*", count=500):
        raw = _as_bytes(key)[len(prefix) :]
        keys.setdefault(core_fleet.host_name(raw), prefix + raw)
    ordered = sorted(keys)
    values = client.mget([keys[h] for h in ordered]) if ordered else []
    return [
        core_fleet.parse_host(h, v, now_wall=now_wall) for h, v in zip(ordered, values, strict=True)
    ]


def _as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def status_command(cfg: Config, *, as_json: bool) -> int:
    if cfg.fleet is None:
        return _no_fleet(cfg, "status")
    from autoheal.daemon.fleet import redis_errors

    name = cfg.fleet.name
    try:
        client = _client(cfg.fleet)
        raw = client.get(core_fleet.switch_key(name))
        hosts = read_hosts(client, name, time.time())
    except redis_errors() as exc:  # Redis failing is one line; bad records are not errors
        return _fail(cfg, "status", exc)
    from autoheal.daemon.fleet_scoped import canonical_scope

    switch = core_fleet.parse_switch(raw, canonical_scope)
    if as_json:
        print(json.dumps(_as_doc(name, switch, hosts), indent=2, sort_keys=True))
    else:
        _print_text(name, switch, hosts)
    bad = isinstance(switch, Unreadable) or any(h.lost or h.problem for h in hosts)
    return EXIT_FAILED if bad else EXIT_OK


def _as_doc(name: str, switch: SwitchRecord | Unreadable, hosts: list[HostView]) -> dict[str, Any]:
    sw: dict[str, Any]
    if isinstance(switch, SwitchRecord):
        sw = {
            "state": switch.state,
            "version": switch.version,
            "set_by": switch.set_by,
            "reason": switch.reason,
            "ts": switch.ts,
            "scoped_halts": {
                e.scope: {"reason": e.reason, "set_by": e.set_by, "since": e.since}
                for e in switch.scoped
            },
        }
    else:
        sw = {"unreadable": switch.problem, "detail": switch.detail}
    out = []
    for h in hosts:
        d = h.doc
        out.append(
            {
                "host": h.host,
                "lost": h.lost,
                "problem": h.problem,
                "age_s": None if h.age_s is None else round(h.age_s, 3),
                "dor": d.get("dor"),
                "mode": d.get("mode"),
                "failsafe": d.get("failsafe"),
                "failsafe_set_by": d.get("failsafe_set_by"),
                "failing_components": d.get("failing_components", []),
                "fleet_version": d.get("fleet_version"),
                "fleet_lost": d.get("fleet_lost", ""),
                "scoped_halts": d.get("scoped_halts", []),
            }
        )
    return {"fleet": name, "switch": sw, "hosts": out}


def _print_text(name: str, switch: SwitchRecord | Unreadable, hosts: list[HostView]) -> None:
    """The fleet for people. Host names, modes and reasons are read from Redis, which
    anyone with access can write: every such value goes through :func:`clean`."""
    if isinstance(switch, SwitchRecord):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(switch.ts)) if switch.ts else "-"
        print(
            f"fleet {clean(name)}: switch {clean(switch.state)} v{switch.version} "
            f"by {clean(switch.set_by)} at {when}: {clean(switch.reason)}"
        )
        for e in switch.scoped:
            print(f"  scoped halt {clean(e.scope)} by {clean(e.set_by)}: {clean(e.reason)}")
    else:
        print(
            f"fleet {clean(name)}: switch UNREADABLE "
            f"({clean(switch.problem)}: {clean(switch.detail)})"
        )
    print(f"{'HOST':<20} {'AGE':>7} {'DOR':<5} {'MODE':<17} {'FAILSAFE':<10} FAILING")
    for h in hosts:
        host = clean(h.host)
        if h.problem:
            print(f"{host:<20} {'-':>7} {'-':<5} {'IGNORED':<17} {'-':<10} {clean(h.problem)}")
            continue
        if h.lost:
            print(f"{host:<20} {'-':>7} {'-':<5} {'LOST':<17} {'-':<10} report expired")
            continue
        d = h.doc
        age = "-" if h.age_s is None else f"{h.age_s:.1f}s"
        failsafe = clean(d.get("failsafe_set_by") or "-" if d.get("failsafe") else "-")
        listed = d.get("failing_components") or []
        failing = ",".join(map(clean, listed if isinstance(listed, list) else [listed])) or "-"
        if d.get("fleet_lost"):
            failing = f"{failing} (fleet switch unreadable)"
        dor = "true" if d.get("dor") else "false"
        print(f"{host:<20} {age:>7} {dor:<5} {clean(d.get('mode')):<17} {failsafe:<10} {failing}")
        if d.get("scoped_halts"):
            print(f"{'':<20} scoped halts: {', '.join(map(clean, d['scoped_halts']))}")


def set_command(
    cfg: Config, action: str, *, reason: str, user: str, scope: str | None = None
) -> int:
    """Compare-and-set the switch to ``action``'s state (or, with ``scope``, halt or
    resume that scope only), journaled locally with ``user``."""
    if cfg.fleet is None:
        return _no_fleet(cfg, action)
    from autoheal.daemon.fleet import redis_errors
    from autoheal.daemon.fleet_scoped import canonical_scope
    from autoheal.guard.scopes import ScopeError

    if scope is not None:
        if action == "reduce-only":
            return usage_error("fleet reduce-only takes no --scope (a scope halts or runs)")
        try:
            scope = canonical_scope(scope)
        except ScopeError as exc:
            return usage_error(f"fleet {action} --scope: {exc}")

    name = cfg.fleet.name
    state = STATES[action]
    try:
        client = _client(cfg.fleet)
        raw = client.get(core_fleet.switch_key(name))
        current = core_fleet.parse_switch(raw, canonical_scope)
        hosts = _hosts_for_floor(client, name, action)
        base = current if isinstance(current, SwitchRecord) else SwitchRecord("RUN", 0, "", "", 0)
        if scope is not None and not isinstance(current, SwitchRecord):
            # Its state and scopes are unknown: a scoped change over it could drop a HALT.
            text = (
                f"fleet {action} --scope: the switch is unreadable ({current.problem}); "
                f"set it first with 'autoheal fleet halt' or 'run'"
            )
            return fail(Problem("failed", text))
        # Above what any host applied: a Redis that lost its data can be set again.
        floor = core_fleet.version_floor(hosts)
        if scope is None:
            record = core_fleet.next_record(
                base, state, set_by=user, reason=reason, ts=time.time(), floor=floor
            )
        else:
            record = core_fleet.next_scoped_record(
                base,
                scope,
                halted=action == "halt",
                set_by=user,
                reason=reason,
                ts=time.time(),
                floor=floor,
            )
        encoded = core_fleet.encode_switch(record)
        expected = b"" if raw is None else raw  # bytes as read: the record may not be UTF-8
        done = client.eval(
            CAS_SCRIPT,
            2,
            core_fleet.switch_key(name),
            core_fleet.channel(name),
            "0" if raw is None else "1",
            expected,
            encoded,
            str(record.version),
        )
    except redis_errors() as exc:  # Redis failing is one line; bad records are not errors
        return _fail(cfg, action, exc)
    if int(done) != 1:
        text = (
            f"fleet {action}: the switch changed while this command ran "
            "(another operator?); nothing written. Check 'autoheal fleet status' and retry."
        )
        return fail(Problem("failed", text))
    _journal(cfg, record, user, scope=scope, halted=action == "halt")
    if scope is not None:
        verb = "halted" if action == "halt" else "resumed"
        say(f"fleet {name}: scope {scope} {verb} (v{record.version}) by {user}: {reason}")
    else:
        say(f"fleet {name}: switch {record.state} v{record.version} set by {user}: {reason}")
    return EXIT_OK


def _hosts_for_floor(client: Any, name: str, action: str) -> list[HostView]:
    """The hosts whose applied versions the new record must go above; a malformed one is
    named and skipped (the switch still goes out)."""
    import redis.exceptions as rx

    try:
        hosts = read_hosts(client, name, time.time())
    except rx.ResponseError as exc:  # e.g. WRONGTYPE: a host key holds something else
        err(
            f"autoheal: fleet {action}: cannot list the hosts ({type(exc).__name__}); "
            "the new version goes above the switch's own only"
        )
        return []
    for host in hosts:
        if host.problem:
            err(f"autoheal: fleet {action}: skipped host {host.host}: {host.problem}")
    return hosts


def _journal(
    cfg: Config, record: SwitchRecord, user: str, *, scope: str | None = None, halted: bool = True
) -> None:
    from autoheal.store.journal import Journal

    try:
        cfg.paths.runtime_dir.mkdir(parents=True, exist_ok=True)
        with Journal.open(cfg.paths.runtime_dir, group=cfg.daemon.journal_group) as journal:
            journal.record(
                "fleet_switch_set",
                ts=time.time(),  # this module's clock (the simulator's when it runs the CLI)
                actor=user,
                reason=record.reason,
                data={
                    "state": record.state,
                    "version": record.version,
                    "fleet": cfg.fleet.name if cfg.fleet else "",
                    **({} if scope is None else {"scope": scope, "scope_halted": halted}),
                },
            )
    except Exception as exc:
        # The switch is set; say plainly that the local record of it is missing.
        err(f"autoheal: fleet: set, but not journaled locally: {exc}")


def handle(args: argparse.Namespace) -> int:
    """``autoheal fleet status [--json]`` or ``autoheal fleet halt|reduce-only|run --reason``."""
    cfg = load_config(args.config)
    if cfg is None:
        return EXIT_USAGE
    scope = getattr(args, "scope", None)
    if scope is not None and args.action == "status":
        return usage_error("fleet status takes no --scope")
    if args.action == "status":
        return status_command(cfg, as_json=args.json)
    if not (args.reason or "").strip():
        return usage_error(f"fleet {args.action} needs --reason TEXT")
    return set_command(cfg, args.action, reason=args.reason, user=os_user(), scope=scope)
