"""``health_v2.json``: the runtime's health as the operator, the trader and /status see it.

Built from the core state (decisions) plus the shell's last probe readings
(values and thresholds, which the core does not need). See docs/files.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from autoheal.core.machine import dor, flags_for, healthy
from autoheal.core.outlook import Outlook, outlook
from autoheal.core.policy import HealPolicy, Policy
from autoheal.core.queries import has_deadline
from autoheal.core.stages import SEVERITY, Stage
from autoheal.core.state import RuntimeState
from autoheal.core.switchfiles import FILE_LABEL, SwitchState
from autoheal.probes.result import ProbeResult
from autoheal.store import layout

HEALTH_FILENAME = layout.HEALTH
HEALTH_SCHEMA = 2
#: The longest a written document's readings (probe values, loop lag) may lag behind.
HEALTH_REFRESH_S = 30.0


def _probe_doc(
    verdict_ok: bool | None, verdict_reason: str, reading: ProbeResult | None
) -> dict[str, Any]:
    return {
        "ok": verdict_ok,
        "reason": verdict_reason,
        "value": None if reading is None else reading.value,
        "threshold": None if reading is None else reading.threshold,
    }


def _wall(monotonic: float | None, to_wall: float) -> float | None:
    return None if monotonic is None else monotonic + to_wall


def outlook_doc(o: Outlook, *, to_wall: float) -> dict[str, Any]:
    """A component's ``outlook``: its next restart and budget, deadlines in unix seconds.

    Absolute moments only (no "in N s"): a reader subtracts the document's own ``ts``
    (the page) or its clock (``autoheal status``, on the same host), and the document
    need not be rewritten as the seconds run down.
    """
    return {
        "next": o.next.value,
        "reason": o.reason,
        "attempt": o.attempt,
        "attempts": o.attempts,
        "max_restarts": o.max_restarts,
        "attempts_left": o.attempts_left,
        "restart_at": _wall(o.restart_at, to_wall),
        "verify_until": _wall(o.verify_until, to_wall),
        "attempts_reset_at": _wall(o.reset_at, to_wall),
        "stable_reset_s": o.stable_reset,
        "on_failure": None if o.on_failure is None else o.on_failure.value,
        "on_failure_delay_s": o.on_failure_delay,
    }


#: Outlook documents of quiet components by what they depend on (see :func:`_outlook_of`).
_QUIET: dict[tuple[str, bool, bool, bool, bool, HealPolicy], dict[str, Any]] = {}
_QUIET_MAX = 256


def _outlook_of(
    state: RuntimeState, policy: Policy, name: str, *, ok: bool, now: float, to_wall: float
) -> dict[str, Any]:
    """A component's ``outlook`` part; a quiet one's from a small cache.

    Most components are quiet (OBSERVE, no attempt used, no deadline: ``has_deadline``
    is false); their outlook has no moment and depends only on the key below, so at
    500 services the document is not four times dearer to build for it.
    """
    cs = state.components[name]
    if has_deadline(cs):
        return outlook_doc(outlook(state, policy, name, now), to_wall=to_wall)
    spec = policy.components[name]
    failing = any(state.dependencies[d].failing for d in spec.dependencies)
    key = (cs.reason, cs.held, ok, state.failsafe is not None, failing, spec.heal)
    doc = _QUIET.get(key)
    if doc is None:
        if len(_QUIET) >= _QUIET_MAX:
            _QUIET.clear()
        doc = _QUIET[key] = outlook_doc(outlook(state, policy, name, now), to_wall=to_wall)
    return dict(doc)


def build_health(
    state: RuntimeState,
    policy: Policy,
    *,
    readings: Mapping[tuple[str, str], ProbeResult],
    pids: Mapping[str, int | None],
    to_wall: float,
    now_wall: float,
    daemon: Mapping[str, Any],
    kill_switch: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The health document.

    Args:
        state: the core's state.
        policy: the core's policy (required flags, max_restarts).
        readings: the last ``ProbeResult`` per (target, probe), for values and thresholds.
        pids: the current PID per component (None when not running).
        to_wall: add to a monotonic deadline to get unix seconds.
        now_wall: the document's timestamp.
        daemon: facts about the daemon itself (pid, started_at, loop lag, ...).
        kill_switch: what the daemon knows of ``STOP.TXT`` and the flags, failing writes first.
    """
    components: dict[str, Any] = {}
    failing_components: list[str] = []
    now = now_wall - to_wall  # the core's monotonic timeline
    for name, cs in state.components.items():
        spec = policy.components[name]
        ok = healthy(cs) and cs.stage is Stage.OBSERVE
        if not ok:
            failing_components.append(name)
        components[name] = {
            "ok": ok,
            "stage": cs.stage.value,
            "reason": cs.reason if not ok else "",
            "pid": pids.get(name),
            "restarts": cs.restarts,
            "attempts": cs.attempts,
            "max_restarts": spec.heal.max_restarts,
            "held": cs.held,
            "required": spec.required,
            "next_restart_at": None if cs.restart_at is None else cs.restart_at + to_wall,
            "verify_until": None if cs.verify_until is None else cs.verify_until + to_wall,
            "probes": {
                probe: _probe_doc(ps.ok, ps.reason, readings.get((name, probe)))
                for probe, ps in cs.probes.items()
            },
            "outlook": _outlook_of(state, policy, name, ok=ok, now=now, to_wall=to_wall),
        }
    dependencies: dict[str, Any] = {}
    failing_deps: list[str] = []
    for name, ds in state.dependencies.items():
        if ds.failing:
            failing_deps.append(name)
        dependencies[name] = {
            "ok": not ds.failing,
            "reason": ds.reason,
            "probes": {
                probe: _probe_doc(ps.ok, ps.reason, readings.get((name, probe)))
                for probe, ps in ds.probes.items()
            },
        }
    stages = [cs.stage for cs in state.components.values()] or [Stage.OBSERVE]
    flags = flags_for(state)
    return {
        "schema": HEALTH_SCHEMA,
        "ts": now_wall,
        "dor": dor(state, policy),
        "stage": max(stages, key=lambda s: SEVERITY[s]).value,
        "failsafe": state.failsafe is not None,
        "failsafe_reason": state.failsafe.reason if state.failsafe else "",
        "degraded": bool(failing_deps) or bool(state.fleet.lost),
        "fleet": {"version": state.fleet.version, "lost": state.fleet.lost},
        "mode": flags.mode,
        "failing_components": sorted(failing_deps) + sorted(failing_components),
        "daemon": dict(daemon),
        "kill_switch": dict(kill_switch or {}),
        "components": components,
        "dependencies": dependencies,
    }


def kill_switch_doc(switch: SwitchState, stop_file: Path, *, to_wall: float) -> dict[str, Any]:
    """The ``kill_switch`` part: what the daemon knows of the files, failing writes first."""
    return {
        "stop_file": str(stop_file),
        "stop_file_on_disk": switch.stop_on_disk,
        "flags_invalid": switch.flags_invalid,
        "write_failures": {
            key: {
                "file": FILE_LABEL[key],
                "op": f.op,
                "errno": f.errno,
                "detail": f.detail,
                "attempts": f.attempts,
                "since": f.since + to_wall,
                "next_try_at": f.retry_at + to_wall,
                "message": f.message(key),
            }
            for key, f in sorted(switch.failures.items())
        },
    }


_MOMENTS = ("next_restart_at", "verify_until")
_OUTLOOK_MOMENTS = ("restart_at", "verify_until", "attempts_reset_at")


def _coarse(moment: Any) -> Any:
    """A moment to the tenth of a second, for comparing documents."""
    return round(moment, 1) if isinstance(moment, float) else moment


def content_key(doc: Mapping[str, Any]) -> bytes:
    """What a reader acts on: the document less what changes at every look.

    ``health_v2.json`` is written when this changes (and every :data:`HEALTH_REFRESH_S`),
    not every beat: the timestamp, the loop lag and the probes' values (a heartbeat's
    age grows between two reads) are left out, and deadlines count to 0.1 s. Whether
    the daemon is alive is told by its own heartbeat (``auto_heal.heartbeat.json``),
    written every beat.
    """
    import orjson

    def probes(holder: Mapping[str, Any]) -> dict[str, Any]:
        return {**holder, "probes": {p: {**v, "value": None} for p, v in holder["probes"].items()}}

    def component(holder: Mapping[str, Any]) -> dict[str, Any]:
        # A deadline moves by microseconds from one document to the next (the shift
        # from monotonic to wall clock is taken anew each time): not a change.
        out = {**probes(holder), **{k: _coarse(holder.get(k)) for k in _MOMENTS}}
        if isinstance(holder.get("outlook"), Mapping):
            view = holder["outlook"]
            out["outlook"] = {**view, **{k: _coarse(view.get(k)) for k in _OUTLOOK_MOMENTS}}
        return out

    return orjson.dumps(
        {
            **doc,
            "ts": None,
            "daemon": {**doc["daemon"], "loop_lag_s": None},
            "components": {n: component(c) for n, c in doc["components"].items()},
            "dependencies": {n: probes(d) for n, d in doc["dependencies"].items()},
        }
    )
