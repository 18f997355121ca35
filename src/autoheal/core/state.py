"""The runtime state the core evolves, and its plain-dict form for ``autoheal_state.json``.

Every class is frozen; ``dataclasses.replace`` makes the next state. Deadlines
are on the caller's monotonic timeline; :func:`shift_deadlines` moves them to
wall-clock seconds for the state file and back on resume, so a daemon that
restarts keeps each backoff deadline at the same moment of real time.

One value is the whole state of the runtime: the components, the dependencies,
the failsafe, REDUCE_ONLY, the fleet, and what the daemon knows of the kill-switch
files (``switch``). That last part is the daemon's view of the disk, which a
starting daemon reads afresh: it is not written to the state file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from autoheal.core.judgement import MAX_WITHIN
from autoheal.core.policy import Policy
from autoheal.core.stages import Stage
from autoheal.core.switchfiles import SwitchState

STATE_SCHEMA = 1


@dataclass(frozen=True, slots=True)
class ProbeState:
    """Last verdict of one probe: ``ok`` None means not yet known (e.g. just restarted).

    ``failures`` counts counted failures in a row; ``window`` holds the last counted
    checks (True: failed, newest last) of a probe judged K of N (``core.judgement``),
    empty for the others.
    """

    ok: bool | None = None
    reason: str = ""
    failures: int = 0
    window: tuple[bool, ...] = ()


@dataclass(frozen=True, slots=True)
class ComponentState:
    """One component's stage and clocks.

    ``started_at`` is when its current process was last spawned (or adopted), None
    while none is known to run; a restart verifies no sooner than
    ``started_at + verify_min_uptime``.
    """

    stage: Stage = Stage.OBSERVE
    reason: str = ""
    probes: Mapping[str, ProbeState] = field(default_factory=dict)
    attempts: int = 0
    restarts: int = 0
    restart_at: float | None = None
    verify_until: float | None = None
    healthy_since: float | None = None
    held: bool = False
    started_at: float | None = None


@dataclass(frozen=True, slots=True)
class DependencyState:
    probes: Mapping[str, ProbeState] = field(default_factory=dict)
    failing: bool = False
    reason: str = ""


@dataclass(frozen=True, slots=True)
class FailsafeState:
    reason: str
    set_by: str
    component: str = ""


@dataclass(frozen=True, slots=True)
class ReduceOnlyState:
    """An operator's REDUCE_ONLY: only position-reducing sells (e.g. to unwind in a failsafe)."""

    reason: str
    set_by: str


@dataclass(frozen=True, slots=True)
class FleetState:
    """What this host knows of the fleet switch (``core.fleet`` has the rules).

    ``version`` is the highest switch version applied: a lower one is never applied.
    ``lost`` is the reason the switch has not been read for ``stale_after`` ("" while
    it is read fine): the runtime is DEGRADED (or halted) until a fresh read.
    ``displaced`` is an operator's REDUCE_ONLY that a fleet HALT set aside; the fleet's
    RUN gives it back rather than loosen it to NORMAL.
    """

    version: int = 0
    lost: str = ""
    displaced: ReduceOnlyState | None = None


@dataclass(frozen=True, slots=True)
class RuntimeState:
    """The state of the runtime (see the module docstring); ``switch`` is not persisted."""

    components: Mapping[str, ComponentState]
    dependencies: Mapping[str, DependencyState]
    failsafe: FailsafeState | None = None
    reduce_only: ReduceOnlyState | None = None
    fleet: FleetState = field(default_factory=FleetState)
    switch: SwitchState = field(default_factory=SwitchState)

    def persisted(self) -> RuntimeState:
        """The part ``autoheal_state.json`` holds (what a state-file write must follow)."""
        return replace(self, switch=_UNKNOWN_SWITCH)


_UNKNOWN_SWITCH = SwitchState()


def initial_state(policy: Policy) -> RuntimeState:
    """A fresh state: every component in OBSERVE with unknown probes, no failsafe."""
    return RuntimeState(
        components={
            name: ComponentState(probes={p: ProbeState() for p in spec.probes})
            for name, spec in policy.components.items()
        },
        dependencies={
            name: DependencyState(probes={p: ProbeState() for p in probes})
            for name, probes in policy.dependencies.items()
        },
    )


def _shift(value: float | None, delta: float) -> float | None:
    return None if value is None else value + delta


def shift_deadlines(state: RuntimeState, delta: float) -> RuntimeState:
    """Move every deadline and timestamp by ``delta`` seconds (monotonic ↔ wall clock)."""
    return replace(
        state,
        components={
            name: replace(
                cs,
                restart_at=_shift(cs.restart_at, delta),
                verify_until=_shift(cs.verify_until, delta),
                healthy_since=_shift(cs.healthy_since, delta),
                started_at=_shift(cs.started_at, delta),
            )
            for name, cs in state.components.items()
        },
    )


def _probe_to_dict(ps: ProbeState) -> dict[str, Any]:
    out: dict[str, Any] = {"ok": ps.ok, "reason": ps.reason, "failures": ps.failures}
    if ps.window:  # only a K-of-N probe has one; absent means empty
        out["window"] = list(ps.window)
    return out


def _window_from(raw: object) -> tuple[bool, ...]:
    """A saved window; damaged (not a list of booleans) or absent (older files): empty."""
    if not isinstance(raw, list) or not all(isinstance(v, bool) for v in raw):
        return ()
    return tuple(raw[-MAX_WITHIN:])


def state_to_dict(state: RuntimeState) -> dict[str, Any]:
    """The plain form written to ``autoheal_state.json`` (keys are part of the contract)."""
    return {
        "schema": STATE_SCHEMA,
        "failsafe": None
        if state.failsafe is None
        else {
            "reason": state.failsafe.reason,
            "set_by": state.failsafe.set_by,
            "component": state.failsafe.component,
        },
        "reduce_only": None
        if state.reduce_only is None
        else {"reason": state.reduce_only.reason, "set_by": state.reduce_only.set_by},
        "fleet": {
            "version": state.fleet.version,
            "lost": state.fleet.lost,
            "displaced": None
            if state.fleet.displaced is None
            else {
                "reason": state.fleet.displaced.reason,
                "set_by": state.fleet.displaced.set_by,
            },
        },
        "components": {
            name: {
                "stage": cs.stage.value,
                "reason": cs.reason,
                "attempts": cs.attempts,
                "restarts": cs.restarts,
                "restart_at": cs.restart_at,
                "verify_until": cs.verify_until,
                "healthy_since": cs.healthy_since,
                "started_at": cs.started_at,
                "held": cs.held,
                "consecutive_failures": max((p.failures for p in cs.probes.values()), default=0),
                "probes": {p: _probe_to_dict(ps) for p, ps in cs.probes.items()},
            }
            for name, cs in state.components.items()
        },
        "dependencies": {
            name: {
                "failing": ds.failing,
                "reason": ds.reason,
                "probes": {p: _probe_to_dict(ps) for p, ps in ds.probes.items()},
            }
            for name, ds in state.dependencies.items()
        },
    }


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _probes_from(doc: object, names: tuple[str, ...]) -> dict[str, ProbeState]:
    src = doc if isinstance(doc, dict) else {}
    out: dict[str, ProbeState] = {}
    for name in names:
        raw = src.get(name)
        if isinstance(raw, dict):
            ok = raw.get("ok")
            reason = raw.get("reason")
            out[name] = ProbeState(
                ok if isinstance(ok, bool) else None,
                reason if isinstance(reason, str) else "",
                _int(raw.get("failures")),
                _window_from(raw.get("window")),
            )
        else:
            out[name] = ProbeState()
    return out


def state_from_dict(doc: Mapping[str, Any], policy: Policy) -> RuntimeState:
    """Rebuild a state from :func:`state_to_dict` output, tolerating damage.

    Components or dependencies the policy no longer has are dropped; new ones start
    fresh; wrongly typed fields take their defaults. It never raises on content, so a
    damaged state file degrades to a fresh start for the damaged parts only. A latched
    failsafe is kept whatever else is damaged: it must survive the daemon.
    """
    base = initial_state(policy)
    comps_doc = doc.get("components")
    comps_doc = comps_doc if isinstance(comps_doc, dict) else {}
    components: dict[str, ComponentState] = {}
    for name, spec in policy.components.items():
        raw = comps_doc.get(name)
        if not isinstance(raw, dict):
            components[name] = base.components[name]
            continue
        try:
            stage = Stage(str(raw.get("stage")))
        except ValueError:
            stage = Stage.OBSERVE
        reason = raw.get("reason")
        components[name] = ComponentState(
            stage=stage,
            reason=reason if isinstance(reason, str) else "",
            probes=_probes_from(raw.get("probes"), spec.probes),
            attempts=_int(raw.get("attempts")),
            restarts=_int(raw.get("restarts")),
            restart_at=_num(raw.get("restart_at")),
            verify_until=_num(raw.get("verify_until")),
            healthy_since=_num(raw.get("healthy_since")),
            held=raw.get("held") is True,
            started_at=_num(raw.get("started_at")),
        )
    deps_doc = doc.get("dependencies")
    deps_doc = deps_doc if isinstance(deps_doc, dict) else {}
    dependencies: dict[str, DependencyState] = {}
    for name, probes in policy.dependencies.items():
        raw = deps_doc.get(name)
        if not isinstance(raw, dict):
            dependencies[name] = base.dependencies[name]
            continue
        reason = raw.get("reason")
        dependencies[name] = DependencyState(
            probes=_probes_from(raw.get("probes"), probes),
            failing=raw.get("failing") is True,
            reason=reason if isinstance(reason, str) else "",
        )
    failsafe = None
    raw_fs = doc.get("failsafe")
    if isinstance(raw_fs, dict):
        fs_reason, fs_by, fs_comp = (
            raw_fs.get("reason"),
            raw_fs.get("set_by"),
            raw_fs.get("component"),
        )
        failsafe = FailsafeState(
            fs_reason if isinstance(fs_reason, str) else "restored",
            fs_by if isinstance(fs_by, str) else "autoheal",
            fs_comp if isinstance(fs_comp, str) else "",
        )
    elif any(c.stage in (Stage.FAILSAFE, Stage.NOTIFY) for c in components.values()):
        failsafe = FailsafeState("restored", "autoheal")
    reduce_only = _reduce_only_from(doc.get("reduce_only"))
    return RuntimeState(components, dependencies, failsafe, reduce_only, _fleet_from(doc))


def _reduce_only_from(raw: object) -> ReduceOnlyState | None:
    if not isinstance(raw, dict):
        return None
    reason, by = raw.get("reason"), raw.get("set_by")
    return ReduceOnlyState(
        reason if isinstance(reason, str) else "restored",
        by if isinstance(by, str) else "operator",
    )


def _fleet_from(doc: Mapping[str, Any]) -> FleetState:
    """The fleet part; a state file from before the fleet existed has none (all defaults).

    A damaged ``lost`` reads as lost ("restored"): what fails closed must stay closed.
    """
    raw = doc.get("fleet")
    if not isinstance(raw, dict):
        return FleetState()
    lost = raw.get("lost", "")
    return FleetState(
        version=_int(raw.get("version")),
        lost=lost if isinstance(lost, str) else "restored",
        displaced=_reduce_only_from(raw.get("displaced")),
    )
