"""What a check's result means: a component's probe, a dependency's probe.

A hard failure (the process is gone) restarts at once; a soft one after
``failures_before_restart`` counted failures in a row, or, for a probe with a
``FailureWindow``, K counted failures within its last N counted checks. Failures
are not counted while a dependency of the component is failing (or merely suspect:
its verdict comes first) nor outside OBSERVE. A dependency failing
``failures_before_degraded`` checks in a row (or K of its last N) makes the runtime
DEGRADED (a notice); its recovery resumes what it paused.

Functions of the step's scratch (:class:`~autoheal.core.work.Work`); pure.
"""

from __future__ import annotations

from dataclasses import replace

from autoheal.core import healing
from autoheal.core import reasons as R
from autoheal.core.actions import (
    SendNotice,
)
from autoheal.core.judgement import FailureWindow, judged_failing, pushed
from autoheal.core.stages import Stage
from autoheal.core.state import (
    DependencyState,
    ProbeState,
)
from autoheal.core.work import Work, with_probe


def component_probe(w: Work, name: str, probe: str, ok: bool, reason: str) -> None:
    cs = w.components[name]
    old = cs.probes.get(probe, ProbeState())
    rule = w.policy.components[name].windows.get(probe)
    hard_failure = not ok and reason in R.HARD_REASONS
    # A soft failure while a dependency is failing checks is most likely the
    # dependency's (a slow network starves the websocket before the REST probe
    # has failed twice): not counted, so the dependency's verdict comes first.
    # A K-of-N window takes passes by the same rule, so it holds counted checks only.
    suspect = not hard_failure and w.dep_suspect(name)
    counted = not w.dep_blocked(name) and not suspect and cs.stage is Stage.OBSERVE
    window = _window(old.window, not ok, rule, counted)
    if ok:
        ps = ProbeState(True, "", 0, window)
    else:
        ps = ProbeState(False, reason, old.failures + 1 if counted else old.failures, window)
    cs = replace(cs, probes=with_probe(cs.probes, probe, ps))
    w.components[name] = cs
    if ok:
        healing.became_healthy(w, name)
        return
    cs = replace(cs, healthy_since=None)
    w.components[name] = cs
    hard = reason in R.HARD_REASONS
    if cs.held or cs.stage in (Stage.FAILSAFE, Stage.NOTIFY, Stage.RESTART):
        return
    if w.dep_blocked(name):
        w.components[name] = replace(cs, reason=reason)
        return
    heal = w.policy.components[name].heal
    if cs.stage is Stage.OBSERVE:
        failing = (
            judged_failing(ps.window, rule)
            if rule is not None
            else ps.failures >= heal.failures_before_restart
        )
        if hard or (cs.verify_until is None and failing):
            healing.begin_restart(w, name, reason)
        else:
            w.components[name] = replace(cs, reason=reason)
    elif cs.stage is Stage.BACKOFF and cs.verify_until is not None and hard:
        healing.begin_restart(w, name, reason)


def dependency_probe(w: Work, name: str, probe: str, ok: bool, reason: str) -> None:
    ds = w.dependencies[name]
    old = ds.probes.get(probe, ProbeState())
    rule = w.policy.dependency_windows.get(name, {}).get(probe)
    window = _window(old.window, not ok, rule, True)
    ps = (
        ProbeState(True, "", 0, window)
        if ok
        else ProbeState(False, reason, old.failures + 1, window)
    )
    probes = with_probe(ds.probes, probe, ps)
    failing = (
        judged_failing(ps.window, rule)
        if rule is not None
        else ps.failures >= w.policy.failures_before_degraded
    )
    if not ok and not ds.failing and failing:
        w.dependencies[name] = DependencyState(probes, True, reason)
        w.actions.append(
            SendNotice(
                "degraded",
                name,
                reason,
                f"dependency {name} failing ({reason}); "
                "runtime DEGRADED: new entries paused, no restarts of its dependents",
            )
        )
    elif ok and ds.failing and all(p.ok is True for p in probes.values()):
        # Recovered: its windows start afresh, as its failure counts do.
        probes = {p: replace(s, window=()) for p, s in probes.items()}
        w.dependencies[name] = DependencyState(probes, False, "")
        w.actions.append(SendNotice("recovered", name, R.RECOVERED, f"dependency {name} recovered"))
        resume_dependents(w)
    else:
        w.dependencies[name] = replace(
            ds, probes=probes, reason=reason if ds.failing and not ok else ds.reason
        )


def _window(
    old: tuple[bool, ...], failed: bool, rule: FailureWindow | None, counted: bool
) -> tuple[bool, ...]:
    """The probe's K-of-N window after this check (always empty without a rule)."""
    if rule is None:
        return ()
    return pushed(old, failed, rule) if counted else old


def resume_dependents(w: Work) -> None:
    """A dependency recovered: pick up what its failure paused."""
    for name, spec in w.policy.components.items():
        if not spec.dependencies or w.dep_blocked(name):
            continue
        cs = w.components[name]
        if cs.held or cs.stage in (Stage.FAILSAFE, Stage.NOTIFY, Stage.RESTART):
            continue
        hard = next(
            (p.reason for p in cs.probes.values() if p.ok is False and p.reason in R.HARD_REASONS),
            None,
        )
        paused = cs.stage is Stage.BACKOFF and cs.restart_at is None and cs.verify_until is None
        if paused:
            # Its verification or restart was paused: verify afresh rather than count
            # a window the dependency disturbed; a dead process fails it below at once.
            heal = w.policy.components[name].heal
            cs = replace(cs, verify_until=w.now + heal.verify_window)
            w.components[name] = cs
        if cs.stage in (Stage.OBSERVE, Stage.BACKOFF) and hard is not None:
            healing.begin_restart(w, name, hard)
        elif paused:
            healing.became_healthy(w, name)
