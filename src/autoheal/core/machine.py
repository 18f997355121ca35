"""The stage machine: ``step(state, observation, now, policy) -> Decision``.

Theory of operation
-------------------
Each supervised component is in one of five stages (``stages.Stage``)::

    OBSERVE --hard failure, or N soft failures--> RESTART --spawned--> BACKOFF
    BACKOFF --verified within verify_window--> OBSERVE
    BACKOFF --verify failed, attempts < max--> (wait delay) --> RESTART
    BACKOFF --verify failed, attempts = max--> FAILSAFE --> NOTIFY --> FAILSAFE (latched)
    FAILSAFE --operator clear--> RESTART (a fresh episode)

Rules driven by counters and clocks, written as code below rather than a table:

* A *hard* failure (the process exited or vanished) restarts at once; a *soft*
  one (stale heartbeat, probe over threshold) after ``failures_before_restart``
  consecutive failed checks of the same probe.
* The first restart of an episode is immediate; later ones wait
  ``delay_for(attempts)``. An episode ends after ``stable_reset`` of continuous
  health, which resets ``attempts`` to 0.
* The episode rule: an operator's ``restart``, ``stop`` or ``start`` of a
  component, and a ``failsafe clear``, each begin a fresh episode for it
  (``attempts`` = 0): the operator has taken over, and what failed before is
  not held against the next try. Only these and ``stable_reset`` reset it.
* A restart is *verified* (BACKOFF -> OBSERVE, reason ``verified``) only when
  every probe of the component has passed since the spawn (``SpawnFinished``
  records ``started_at``) and the process has stayed up ``verify_min_uptime``
  (supervisord's ``startsecs``); a deadline at ``started_at + verify_min_uptime``
  wakes the shell for it. ``HealPolicy`` keeps that minimum within
  ``verify_window``, so a healthy restart always has time to verify.
* A restart whose process exits during verification fails at once; one that is
  merely unhealthy fails when ``verify_window`` runs out.
* While an external dependency of a component fails, that component's failures
  are recorded but never counted, its deadlines are paused, and it is never
  restarted: restarting cannot fix the network. The runtime is DEGRADED instead,
  which clears by itself when the dependency recovers. Soft failures are not
  counted either while a dependency is merely *suspect* (it failed its last
  check but not yet ``failures_before_degraded`` in a row), so the dependency's
  verdict comes first.
* FAILSAFE is latched: nothing but ``OperatorClearedFailsafe`` leaves it, except
  a failsafe the fleet set (``set_by = "fleet"``), which the fleet's RUN clears.
* The guard's daily-loss latch (``RiskLatchSeen``) only tightens: it sets
  REDUCE_ONLY (``set_by = "risk"``) when nothing at least as strict holds, and is
  ignored inside a failsafe (REDUCE_ONLY there would unwind the halt). An
  operator's clear of REDUCE_ONLY (not of a failsafe) also removes the latch file
  (``RemoveRiskLatch``); while the file stays, it asks again.
* The fleet (``core.fleet`` judges the reads): a fleet HALT enters a failsafe with
  ``set_by = "fleet"`` only when none is active; REDUCE_ONLY likewise. A local
  failsafe (``max_restarts``) or an operator's halt entered during a fleet halt
  takes it over, so the fleet's RUN, which clears only what ``set_by = "fleet"``
  holds, never clears it. A lost fleet link makes the runtime DEGRADED (or
  halted, ``on_lost = "halt"``) and clears nothing; only a fresh read ends it. A
  switch version lower than the one applied is never applied.

Observations are facts and ``step`` is total over them. Operator commands may
raise ``IllegalCommandError`` / ``CommandRefusedError``. Which action answers a
command is decided here too (``Decision.reply_after``): a ``restart``, ``stop`` or
``start`` is answered by its own process action (the new PID, or why the spawn
failed); every other command (``failsafe enter|clear|reduce-only``) by the command
itself, as soon as the actions are carried out. The restarts that a ``failsafe
clear`` begins do not answer it: their outcome is reported on its own. Not here: reading
clocks, jitter, process handling, file formats (the shell's business).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from autoheal.core import stages as S
from autoheal.core.actions import (
    Action,
    ClearAlert,
    LogTransition,
    ProcessAction,
    RaiseAlert,
    RemoveRiskLatch,
    RemoveStop,
    RestartProcess,
    SendNotice,
    StartProcess,
    StopProcess,
    WriteFlags,
    WriteStop,
)
from autoheal.core.backoff import delay_for
from autoheal.core.errors import CommandRefusedError, IllegalCommandError
from autoheal.core.fleet import FLEET, FLEET_LOST
from autoheal.core.observations import (
    ConfigReloaded,
    DeadlineReached,
    FleetDetached,
    FleetLost,
    FleetSwitchRead,
    Observation,
    OperatorClearedFailsafe,
    OperatorEnteredFailsafe,
    OperatorRestarted,
    OperatorSetReduceOnly,
    OperatorStarted,
    OperatorStopped,
    ProbeFailed,
    ProbeSucceeded,
    ProcessExited,
    RiskLatchSeen,
    SpawnFinished,
)
from autoheal.core.policy import Policy
from autoheal.core.queries import (
    FlagsView,
    deadlines,
    dor,
    flags_for,
    has_deadline,
    healthy,
    stable_deadline,
    verify_deadline,
)
from autoheal.core.stages import Stage
from autoheal.core.state import (
    ComponentState,
    DependencyState,
    FailsafeState,
    ProbeState,
    ReduceOnlyState,
    RuntimeState,
    state_from_dict,
    state_to_dict,
)
from autoheal.core.switch import RISK

__all__ = ["Decision", "FlagsView", "deadlines", "dor", "flags_for", "healthy", "step"]


@dataclass(frozen=True, slots=True)
class Decision:
    """What ``step`` decided.

    Attributes:
        state: the new state.
        actions: what the shell carries out, in order.
        wake_at: the next deadline (absolute, ``>= now``), or None.
        reply_after: for an operator's command, the one action of ``actions`` whose
            outcome answers it; None: the command is answered as soon as the actions
            are carried out. Always None for a fact.
    """

    state: RuntimeState
    actions: tuple[Action, ...]
    wake_at: float | None
    reply_after: ProcessAction | None = None


# ---------------------------------------------------------------- the step


class _Step:
    """Scratch space for one call of :func:`step`; never escapes it."""

    def __init__(self, state: RuntimeState, now: float, policy: Policy) -> None:
        self.components: dict[str, ComponentState] = dict(state.components)
        self.dependencies: dict[str, DependencyState] = dict(state.dependencies)
        self.failsafe = state.failsafe
        self.reduce_only = state.reduce_only
        self.fleet = state.fleet
        self.now = now
        self.policy = policy
        self.actions: list[Action] = []
        self.reply_after: ProcessAction | None = None

    # -- helpers

    def snapshot(self) -> RuntimeState:
        return RuntimeState(
            self.components, self.dependencies, self.failsafe, self.reduce_only, self.fleet
        )

    def dep_blocked(self, name: str) -> bool:
        spec = self.policy.components[name]
        return any(self.dependencies[d].failing for d in spec.dependencies)

    def dep_suspect(self, name: str) -> bool:
        """A dependency failed its last check but is not declared failing yet."""
        spec = self.policy.components[name]
        return any(
            p.ok is False for d in spec.dependencies for p in self.dependencies[d].probes.values()
        )

    def move(self, name: str, cs: ComponentState, to: Stage, reason: str) -> ComponentState:
        heal = self.policy.components[name].heal
        new = replace(cs, stage=to, reason=reason)
        if cs.stage is not to:
            self.actions.append(
                LogTransition(name, cs.stage, to, reason, new.attempts, heal.max_restarts)
            )
        self.components[name] = new
        return new

    def set_probe(
        self, probes: Mapping[str, ProbeState], probe: str, ps: ProbeState
    ) -> dict[str, ProbeState]:
        out = dict(probes)
        out[probe] = ps
        return out

    # -- healing

    def begin_restart(self, name: str, reason: str) -> None:
        """The component failed: restart now, schedule a delayed restart, or give up."""
        cs = self.components[name]
        heal = self.policy.components[name].heal
        cs = replace(cs, healthy_since=None, verify_until=None, restart_at=None)
        if self.dep_blocked(name):
            # Restarting cannot fix a failing dependency: park without deadlines;
            # resume_dependents() picks it up when the dependency recovers.
            self.components[name] = cs
            if cs.stage is not Stage.OBSERVE:
                self.move(name, cs, Stage.BACKOFF, S.DEPENDENCY_FAILING)
            else:
                self.components[name] = replace(cs, reason=reason)
            return
        if self.failsafe is not None and cs.stage not in (Stage.FAILSAFE, Stage.NOTIFY):
            # Nothing restarts while the kill switch holds: park until the operator clears.
            self.components[name] = cs
            self.move(name, cs, Stage.BACKOFF, S.FAILSAFE_ACTIVE)
            self.components[name] = replace(self.components[name], reason=S.FAILSAFE_ACTIVE)
            return
        if cs.attempts >= heal.max_restarts:
            self.enter_failsafe(name, cs, reason)
            return
        if cs.attempts == 0:
            self.restart_now(name, cs, reason)
            return
        self.components[name] = cs
        self.move(
            name,
            replace(cs, restart_at=self.now + delay_for(cs.attempts, heal)),
            Stage.BACKOFF,
            reason,
        )

    def restart_now(self, name: str, cs: ComponentState, reason: str) -> RestartProcess:
        heal = self.policy.components[name].heal
        cs = replace(
            cs,
            attempts=cs.attempts + 1,
            restarts=cs.restarts + 1,
            restart_at=None,
            verify_until=None,
            healthy_since=None,
            held=False,
            started_at=None,
            probes={p: ProbeState() for p in cs.probes},
        )
        self.components[name] = cs
        self.move(name, cs, Stage.RESTART, reason)
        action = RestartProcess(name, cs.attempts, heal.max_restarts, reason)
        self.actions.append(action)
        return action

    def enter_failsafe(self, name: str, cs: ComponentState, cause: str) -> None:
        cs = replace(cs, restart_at=None, verify_until=None, healthy_since=None)
        self.components[name] = cs
        cs = self.move(name, cs, Stage.FAILSAFE, S.MAX_RESTARTS_EXCEEDED)
        self.actions.append(StopProcess(name, S.MAX_RESTARTS_EXCEEDED))
        if self.failsafe is None or self.failsafe.set_by == FLEET:
            # A local failsafe during a fleet halt takes it over: the fleet's RUN
            # must not clear it.
            self.failsafe = FailsafeState(
                f"{name}: {S.MAX_RESTARTS_EXCEEDED} (last failure {cause})", "autoheal", name
            )
            # A new failsafe halts everything, an operator's REDUCE_ONLY included.
            self.reduce_only = None
            self.actions.append(WriteStop(self.failsafe.reason, "autoheal"))
        cs = self.move(name, cs, Stage.NOTIFY, S.MAX_RESTARTS_EXCEEDED)
        heal = self.policy.components[name].heal
        self.actions.append(
            SendNotice(
                "failsafe",
                name,
                S.MAX_RESTARTS_EXCEEDED,
                f"{name} failed {heal.max_restarts} restart attempts (last failure {cause}); "
                "FAILSAFE entered, STOP.TXT written, trading halted",
            )
        )
        self.move(name, cs, Stage.FAILSAFE, S.MAX_RESTARTS_EXCEEDED)

    def became_healthy(self, name: str) -> None:
        """Every probe passes: end a grace period, or verify a restart that has been up
        ``verify_min_uptime`` (the deadline at that moment brings ``advance`` back here)."""
        cs = self.components[name]
        if not healthy(cs):
            return
        if cs.stage is Stage.BACKOFF:
            heal = self.policy.components[name].heal
            verified_at = verify_deadline(cs, heal.verify_min_uptime)
            if verified_at is None or verified_at > self.now:
                return
            cs = replace(cs, verify_until=None, restart_at=None, healthy_since=self.now)
            self.components[name] = cs
            self.move(name, cs, Stage.OBSERVE, S.VERIFIED)
        elif cs.stage is Stage.OBSERVE:
            self.components[name] = replace(
                cs,
                verify_until=None,
                reason="",
                healthy_since=cs.healthy_since if cs.healthy_since is not None else self.now,
            )

    # -- observations

    def component_probe(self, name: str, probe: str, ok: bool, reason: str) -> None:
        cs = self.components[name]
        old = cs.probes.get(probe, ProbeState())
        if ok:
            ps = ProbeState(True, "", 0)
        else:
            # A soft failure while a dependency is failing checks is most likely the
            # dependency's (a slow network starves the websocket before the REST probe
            # has failed twice): not counted, so the dependency's verdict comes first.
            hard_failure = reason in S.HARD_REASONS
            suspect = not hard_failure and self.dep_suspect(name)
            counted = not self.dep_blocked(name) and not suspect and cs.stage is Stage.OBSERVE
            ps = ProbeState(False, reason, old.failures + 1 if counted else old.failures)
        cs = replace(cs, probes=self.set_probe(cs.probes, probe, ps))
        self.components[name] = cs
        if ok:
            self.became_healthy(name)
            return
        cs = replace(cs, healthy_since=None)
        self.components[name] = cs
        hard = reason in S.HARD_REASONS
        if cs.held or cs.stage in (Stage.FAILSAFE, Stage.NOTIFY, Stage.RESTART):
            return
        if self.dep_blocked(name):
            self.components[name] = replace(cs, reason=reason)
            return
        heal = self.policy.components[name].heal
        if cs.stage is Stage.OBSERVE:
            if hard or (cs.verify_until is None and ps.failures >= heal.failures_before_restart):
                self.begin_restart(name, reason)
            else:
                self.components[name] = replace(cs, reason=reason)
        elif cs.stage is Stage.BACKOFF and cs.verify_until is not None and hard:
            self.begin_restart(name, reason)

    def dependency_probe(self, name: str, probe: str, ok: bool, reason: str) -> None:
        ds = self.dependencies[name]
        old = ds.probes.get(probe, ProbeState())
        ps = ProbeState(True, "", 0) if ok else ProbeState(False, reason, old.failures + 1)
        probes = self.set_probe(ds.probes, probe, ps)
        if not ok and not ds.failing and ps.failures >= self.policy.failures_before_degraded:
            self.dependencies[name] = DependencyState(probes, True, reason)
            self.actions.append(
                SendNotice(
                    "degraded",
                    name,
                    reason,
                    f"dependency {name} failing ({reason}); "
                    "runtime DEGRADED: new entries paused, no restarts of its dependents",
                )
            )
        elif ok and ds.failing and all(p.ok is True for p in probes.values()):
            self.dependencies[name] = DependencyState(probes, False, "")
            self.actions.append(
                SendNotice("recovered", name, S.RECOVERED, f"dependency {name} recovered")
            )
            self.resume_dependents()
        else:
            self.dependencies[name] = replace(
                ds, probes=probes, reason=reason if ds.failing and not ok else ds.reason
            )

    def resume_dependents(self) -> None:
        """A dependency recovered: pick up what its failure paused."""
        for name, spec in self.policy.components.items():
            if not spec.dependencies or self.dep_blocked(name):
                continue
            cs = self.components[name]
            if cs.held or cs.stage in (Stage.FAILSAFE, Stage.NOTIFY, Stage.RESTART):
                continue
            hard = next(
                (
                    p.reason
                    for p in cs.probes.values()
                    if p.ok is False and p.reason in S.HARD_REASONS
                ),
                None,
            )
            paused = cs.stage is Stage.BACKOFF and cs.restart_at is None and cs.verify_until is None
            if paused:
                # Its verification or restart was paused: verify afresh rather than count
                # a window the dependency disturbed; a dead process fails it below at once.
                heal = self.policy.components[name].heal
                cs = replace(cs, verify_until=self.now + heal.verify_window)
                self.components[name] = cs
            if cs.stage in (Stage.OBSERVE, Stage.BACKOFF) and hard is not None:
                self.begin_restart(name, hard)
            elif paused:
                self.became_healthy(name)

    def spawn_finished(self, name: str, ok: bool, reason: str) -> None:
        cs = self.components[name]
        heal = self.policy.components[name].heal
        if not ok:
            probes = cs.probes
            if "process" in probes:
                probes = self.set_probe(probes, "process", ProbeState(False, S.SPAWN_FAILED, 0))
            cs = replace(cs, probes=probes, started_at=None)
            self.components[name] = cs
            if cs.stage is Stage.RESTART:
                cs = self.move(name, cs, Stage.BACKOFF, reason or S.SPAWN_FAILED)
            if cs.stage in (Stage.BACKOFF, Stage.OBSERVE) and not cs.held:
                self.begin_restart(name, reason or S.SPAWN_FAILED)
            return
        # Health is judged on checks of this process only: a verdict from before the
        # spawn (the old process's heartbeat, a state file's) does not count.
        probes = {p: ProbeState() for p in cs.probes}
        if "process" in probes:
            probes["process"] = ProbeState(True, "", 0)
        cs = replace(cs, probes=probes, started_at=self.now)
        if cs.stage is Stage.RESTART:
            cs = replace(cs, verify_until=self.now + heal.verify_window)
            self.components[name] = cs
            self.move(name, cs, Stage.BACKOFF, "verifying")
        elif cs.stage is Stage.BACKOFF and cs.restart_at is None:
            # A new process (one that finished spawning after a pause, or adopted by a
            # restarted daemon) gets a whole window, which holds its minimum uptime.
            self.components[name] = replace(cs, verify_until=self.now + heal.verify_window)
        elif cs.stage is Stage.OBSERVE and not cs.held and not healthy(cs):
            # A plain start (daemon start-up, operator start): a grace period in which
            # soft failures (no heartbeat yet) do not count, like a startup probe.
            self.components[name] = replace(cs, verify_until=self.now + heal.verify_window)
        else:
            self.components[name] = cs
        self.became_healthy(name)

    # -- time

    def advance(self) -> None:
        """Handle every deadline at or before ``now``; each handling clears or moves it."""
        for _ in range(4 * len(self.components) + 4):
            due = False
            for name, cs in list(self.components.items()):
                if not has_deadline(cs):
                    continue  # most of them, most of the time: O(N) at 500 services
                heal = self.policy.components[name].heal
                if cs.restart_at is not None and cs.restart_at <= self.now:
                    due = True
                    if self.dep_blocked(name):
                        self.components[name] = replace(cs, restart_at=None)
                    elif self.failsafe is not None:
                        self.begin_restart(name, cs.reason or "backoff_elapsed")
                    else:
                        self.restart_now(name, cs, cs.reason or "backoff_elapsed")
                elif (
                    verified_at := verify_deadline(cs, heal.verify_min_uptime)
                ) is not None and verified_at <= self.now:
                    # Up for verify_min_uptime with every probe passing: verified.
                    due = True
                    self.became_healthy(name)
                elif cs.verify_until is not None and cs.verify_until <= self.now:
                    due = True
                    if self.dep_blocked(name):
                        self.components[name] = replace(cs, verify_until=None)
                    elif not healthy(cs) or cs.stage is Stage.BACKOFF:
                        # In BACKOFF the verification above comes first: a restart still
                        # unverified when its window ends has failed.
                        worst = next(
                            (p.reason for p in cs.probes.values() if p.ok is False),
                            S.VERIFY_TIMEOUT,
                        )
                        self.begin_restart(
                            name, worst if cs.stage is Stage.OBSERVE else S.VERIFY_TIMEOUT
                        )
                    else:
                        self.components[name] = replace(cs, verify_until=None)
                else:
                    stable_at = stable_deadline(cs, heal.stable_reset)
                    if stable_at is not None and stable_at <= self.now and healthy(cs):
                        due = True
                        self.components[name] = replace(cs, attempts=0, reason=S.STABLE)
            if not due:
                return

    # -- configuration

    def config_reloaded(
        self, changed: frozenset[str], added: tuple[str, ...], removed: tuple[str, ...]
    ) -> None:
        """A new policy: removed components stop, added ones start, changed ones restart.

        Nothing starts or restarts while the failsafe holds (an added component waits,
        parked, for the clear), and a component an operator stopped stays stopped: its
        new settings apply at its next start.
        """
        for name in removed:
            self.actions.append(StopProcess(name, S.CONFIG_REMOVED))
        for name in added:
            cs = self.components[name]
            if self.failsafe is not None:
                self.components[name] = replace(cs, stage=Stage.BACKOFF, reason=S.FAILSAFE_ACTIVE)
                continue
            heal = self.policy.components[name].heal
            self.components[name] = replace(
                cs, reason=S.STARTED, verify_until=self.now + heal.verify_window
            )
            self.actions.append(StartProcess(name, S.CONFIG_ADDED))
        for name in sorted(changed):
            kept = self.components.get(name)
            if kept is None or name in added or kept.held or self.failsafe is not None:
                continue
            self.restart_now(name, replace(kept, attempts=0), S.CONFIG_CHANGED)

    # -- operator commands

    def check_component(self, name: str) -> ComponentState:
        if name not in self.components:
            raise IllegalCommandError(f"unknown component {name!r}", reason="unknown_component")
        return self.components[name]

    def refuse_in_failsafe(self, name: str, verb: str) -> None:
        cs = self.components[name]
        if cs.stage in (Stage.FAILSAFE, Stage.NOTIFY) or self.failsafe is not None:
            raise CommandRefusedError(
                f"can't {verb} {name} while the failsafe is active "
                f"({self.failsafe.reason if self.failsafe else cs.reason}); "
                "clear it first with 'autoheal failsafe clear --reason ...'",
                reason="failsafe_active",
            )

    def operator_restart(self, obs: OperatorRestarted) -> None:
        self.check_component(obs.component)
        self.refuse_in_failsafe(obs.component, "restart")
        cs = replace(self.components[obs.component], attempts=0)
        self.reply_after = self.restart_now(obs.component, cs, S.OPERATOR)

    def operator_stop(self, obs: OperatorStopped) -> None:
        cs = self.check_component(obs.component)
        if cs.held:
            raise IllegalCommandError(
                f"{obs.component} is already stopped", reason="already_stopped"
            )
        cs = replace(
            cs, held=True, restart_at=None, verify_until=None, healthy_since=None, attempts=0
        )
        self.components[obs.component] = cs
        if cs.stage is not Stage.FAILSAFE:
            self.move(obs.component, cs, Stage.OBSERVE, S.OPERATOR)
        self.components[obs.component] = replace(self.components[obs.component], reason="stopped")
        self.reply_after = StopProcess(obs.component, S.OPERATOR)
        self.actions.append(self.reply_after)

    def operator_start(self, obs: OperatorStarted) -> None:
        cs = self.check_component(obs.component)
        self.refuse_in_failsafe(obs.component, "start")
        if not cs.held:
            raise IllegalCommandError(
                f"{obs.component} is not stopped (stage {cs.stage}); use restart",
                reason="not_stopped",
            )
        heal = self.policy.components[obs.component].heal
        self.components[obs.component] = replace(
            cs,
            held=False,
            attempts=0,
            reason=S.STARTED,
            probes={p: ProbeState() for p in cs.probes},
            verify_until=self.now + heal.verify_window,
        )
        self.reply_after = StartProcess(obs.component, S.OPERATOR)
        self.actions.append(self.reply_after)

    def operator_enter_failsafe(self, obs: OperatorEnteredFailsafe) -> None:
        fleet_held = self.failsafe is not None and self.failsafe.set_by == FLEET
        if fleet_held:
            # The operator's halt takes over the fleet's: the fleet's RUN must not clear it.
            self.failsafe = FailsafeState(obs.reason, obs.actor)
            self.fleet = replace(self.fleet, displaced=None)
            self.actions.append(
                SendNotice(
                    "operator",
                    "runtime",
                    S.OPERATOR,
                    f"failsafe taken over from the fleet by {obs.actor}: {obs.reason}",
                )
            )
        if self.failsafe is not None and self.reduce_only is not None:
            # Unwinding is over: halt everything again.
            self.reduce_only = None
            self.actions.append(WriteStop(obs.reason, obs.actor))
            self.actions.append(
                SendNotice(
                    "failsafe",
                    "runtime",
                    S.OPERATOR,
                    f"REDUCE_ONLY ended by {obs.actor}, failsafe halts all orders: {obs.reason}",
                )
            )
            return
        if fleet_held:
            return
        if self.failsafe is not None:
            raise IllegalCommandError(
                f"the failsafe is already active ({self.failsafe.reason}, "
                f"set by {self.failsafe.set_by})",
                reason="already_active",
            )
        self.failsafe = FailsafeState(obs.reason, obs.actor)
        self.reduce_only = None
        self.actions.append(WriteStop(obs.reason, obs.actor))
        self.actions.append(
            SendNotice(
                "failsafe", "runtime", S.OPERATOR, f"failsafe entered by {obs.actor}: {obs.reason}"
            )
        )

    def operator_set_reduce_only(self, obs: OperatorSetReduceOnly) -> None:
        if self.reduce_only is not None:
            raise IllegalCommandError(
                f"REDUCE_ONLY is already set ({self.reduce_only.reason}, "
                f"by {self.reduce_only.set_by})",
                reason="already_reduce_only",
            )
        self.reduce_only = ReduceOnlyState(obs.reason, obs.actor)
        if self.failsafe is not None:
            # STOP.TXT halts every order, reducing sells too: unwinding needs it gone,
            # while global_flags.json keeps failsafe_active with mode REDUCE_ONLY.
            self.actions.append(RemoveStop(obs.reason, obs.actor))
        self.actions.append(
            SendNotice(
                "operator",
                "runtime",
                S.OPERATOR,
                f"REDUCE_ONLY set by {obs.actor}: only position-reducing sells; {obs.reason}",
            )
        )

    def operator_clear_failsafe(self, obs: OperatorClearedFailsafe) -> None:
        if self.failsafe is None and self.reduce_only is None:
            raise IllegalCommandError(
                "the failsafe is not active; nothing to clear", reason="not_active"
            )
        self.reduce_only = None
        self.fleet = replace(self.fleet, displaced=None)
        if self.failsafe is None:
            # Clearing REDUCE_ONLY lifts the guard's daily-loss latch too; clearing a
            # failsafe does not (the latch then asks for REDUCE_ONLY again).
            self.actions.append(RemoveRiskLatch(obs.reason, obs.actor))
            self.actions.append(
                SendNotice(
                    "operator",
                    "runtime",
                    S.OPERATOR,
                    f"REDUCE_ONLY cleared by {obs.actor}: {obs.reason}",
                )
            )
            return
        self.failsafe = None
        self.actions.append(RemoveStop(obs.reason, obs.actor))
        self.actions.append(
            SendNotice(
                "failsafe_cleared",
                "runtime",
                S.OPERATOR,
                f"failsafe cleared by {obs.actor}: {obs.reason}",
            )
        )
        for name, old in list(self.components.items()):
            cs = replace(old, attempts=0)
            self.components[name] = cs
            parked = cs.stage is Stage.BACKOFF and cs.reason == S.FAILSAFE_ACTIVE
            if cs.stage in (Stage.FAILSAFE, Stage.NOTIFY) or (parked and not cs.held):
                self.restart_now(name, cs, S.OPERATOR)

    def risk_latched(self, obs: RiskLatchSeen) -> None:
        """The guard's latch asks for REDUCE_ONLY: granted only where it tightens."""
        if self.failsafe is not None or self.reduce_only is not None:
            return  # as strict or stricter already; inside a failsafe it would unwind it
        self.reduce_only = ReduceOnlyState(obs.reason, RISK)
        self.actions.append(
            SendNotice(
                "operator",
                RISK,
                "risk_reduce_only",
                f"REDUCE_ONLY latched by the risk guard: {obs.reason}",
            )
        )

    # -- the fleet

    def fleet_lost(self, obs: FleetLost) -> None:
        """The switch could not be read for ``stale_after``: fail closed, clear nothing."""
        if self.fleet.lost:
            return
        self.fleet = replace(self.fleet, lost=obs.reason or FLEET_LOST)
        halt = obs.on_lost == "halt"
        if halt and self.failsafe is None:
            self.failsafe = FailsafeState(f"{FLEET_LOST}: {obs.reason}", FLEET)
            if self.reduce_only is not None and self.reduce_only.set_by != FLEET:
                self.fleet = replace(self.fleet, displaced=self.reduce_only)
            self.reduce_only = None
            self.actions.append(WriteStop(self.failsafe.reason, FLEET))
        self.actions.append(RaiseAlert(FLEET_LOST, "fleet switch", obs.reason))
        self.actions.append(
            SendNotice(
                "failsafe" if halt else "degraded",
                FLEET,
                FLEET_LOST,
                f"fleet switch unreadable ({obs.reason}); runtime "
                + ("HALTED" if halt else "DEGRADED: new entries paused, exits allowed"),
            )
        )

    def fleet_read(self, obs: FleetSwitchRead) -> None:
        """A fresh valid read of the fleet switch: end a loss, then apply what it says."""
        if obs.version < self.fleet.version:
            return  # never applied (core.fleet already reports it as unreadable)
        if self.fleet.lost:
            self.fleet = replace(self.fleet, lost="")
            self.actions.append(ClearAlert(FLEET_LOST, "fleet switch", "read again"))
            self.actions.append(
                SendNotice("recovered", FLEET, S.RECOVERED, "fleet switch read again")
            )
        self.fleet = replace(self.fleet, version=obs.version)
        what = f"fleet {obs.state} v{obs.version} by {obs.set_by or '?'}: {obs.reason}"
        fleet_halt = self.failsafe is not None and self.failsafe.set_by == FLEET
        if obs.state == "HALT":
            if self.failsafe is None:
                self.failsafe = FailsafeState(what, FLEET)
                if self.reduce_only is not None and self.reduce_only.set_by != FLEET:
                    self.fleet = replace(self.fleet, displaced=self.reduce_only)
                self.reduce_only = None
                self.actions.append(WriteStop(what, FLEET))
                self.actions.append(SendNotice("failsafe", FLEET, "fleet_halt", what))
            elif fleet_halt and self.failsafe.reason != what:
                self.failsafe = replace(self.failsafe, reason=what)
            elif self.reduce_only is not None and self.reduce_only.set_by == FLEET:
                # A local failsafe was unwinding under the fleet's REDUCE_ONLY: halt again.
                self.reduce_only = None
                self.actions.append(WriteStop(self.failsafe.reason, self.failsafe.set_by))
            return
        if fleet_halt:
            self.clear_fleet_failsafe(what)
        if obs.state == "REDUCE_ONLY":
            if self.failsafe is None and self.reduce_only is None:
                self.reduce_only = ReduceOnlyState(what, FLEET)
                self.actions.append(SendNotice("operator", FLEET, "fleet_reduce_only", what))
            return
        if self.reduce_only is not None and self.reduce_only.set_by == FLEET:
            self.reduce_only = None
            self.actions.append(SendNotice("recovered", FLEET, "fleet_run", what))

    def fleet_detached(self) -> None:
        """No ``[fleet]`` any more: end a persisted loss; a fleet failsafe stays latched."""
        if not self.fleet.lost:
            return
        self.fleet = replace(self.fleet, lost="")
        self.actions.append(ClearAlert(FLEET_LOST, "fleet switch", "[fleet] removed"))
        self.actions.append(
            SendNotice("recovered", FLEET, S.RECOVERED, "[fleet] removed from the config")
        )

    def clear_fleet_failsafe(self, what: str) -> None:
        """Lift the fleet's own halt, give back what it displaced, resume parked components."""
        self.failsafe = None
        if self.reduce_only is None and self.fleet.displaced is not None:
            self.reduce_only = self.fleet.displaced
        self.fleet = replace(self.fleet, displaced=None)
        self.actions.append(RemoveStop(what, FLEET))
        self.actions.append(SendNotice("failsafe_cleared", FLEET, "fleet_run", what))
        for name, cs in list(self.components.items()):
            if cs.stage is Stage.BACKOFF and cs.reason == S.FAILSAFE_ACTIVE and not cs.held:
                self.restart_now(name, replace(cs, attempts=0), FLEET)


def step(state: RuntimeState, obs: Observation, now: float, policy: Policy) -> Decision:
    """Advance the runtime by one observation at monotonic time ``now``.

    Args:
        state: the current state (never mutated).
        obs: a fact or an operator command.
        now: the caller's monotonic time in seconds.
        policy: components, dependencies and healing policy.

    Returns:
        The new state, the actions to execute in order, and the next deadline
        (``wake_at``, absolute, ``>= now``) or None when only new observations matter.

    Raises:
        IllegalCommandError: an operator command that does not apply.
        CommandRefusedError: an operator command refused by a safety gate.
    """
    before = flags_for(state)
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    if isinstance(obs, ConfigReloaded):
        # Carry every kept component's state over to the new policy's shape.
        added = tuple(n for n in policy.components if n not in state.components)
        removed = tuple(n for n in state.components if n not in policy.components)
        state = state_from_dict(state_to_dict(state), policy)
    st = _Step(state, now, policy)
    st.advance()
    match obs:
        case ProbeSucceeded(target, probe) | ProbeFailed(target, probe, _):
            ok = isinstance(obs, ProbeSucceeded)
            reason = "" if isinstance(obs, ProbeSucceeded) else obs.reason
            if target in st.dependencies:
                st.dependency_probe(target, probe, ok, reason)
            elif target in st.components:
                st.component_probe(target, probe, ok, reason)
        case ProcessExited(component, reason, _):
            if component in st.components:
                st.component_probe(component, "process", False, reason or S.PROCESS_EXITED)
        case SpawnFinished(component, ok, reason):
            if component in st.components:
                st.spawn_finished(component, ok, reason)
        case DeadlineReached():
            pass
        case OperatorRestarted():
            st.operator_restart(obs)
        case OperatorStopped():
            st.operator_stop(obs)
        case OperatorStarted():
            st.operator_start(obs)
        case OperatorEnteredFailsafe():
            st.operator_enter_failsafe(obs)
        case OperatorSetReduceOnly():
            st.operator_set_reduce_only(obs)
        case OperatorClearedFailsafe():
            st.operator_clear_failsafe(obs)
        case RiskLatchSeen():
            st.risk_latched(obs)
        case ConfigReloaded(changed):
            st.config_reloaded(changed, added, removed)
        case FleetSwitchRead():
            st.fleet_read(obs)
        case FleetLost():
            st.fleet_lost(obs)
        case FleetDetached():
            st.fleet_detached()
    st.advance()
    new_state = st.snapshot()
    after = flags_for(new_state)
    actions = st.actions
    if after != before:
        flags = WriteFlags(after.failsafe_active, after.mode, after.reason, after.set_by)
        # Flags first: the trading processes must learn of a failsafe before anything else.
        actions = [flags, *actions]
    return Decision(new_state, tuple(actions), deadlines(new_state, policy), st.reply_after)
