"""The stage machine: ``step(state, observation, now, policy) -> Decision``.

Theory of operation
-------------------
Each supervised component is in one of five stages (``stages.Stage``)::

    OBSERVE --hard failure, or N soft failures--> RESTART --spawned--> BACKOFF
    BACKOFF --verified within verify_window--> OBSERVE
    BACKOFF --verify failed, attempts < max--> (wait delay) --> RESTART
    BACKOFF --verify failed, attempts = max--> FAILSAFE --> NOTIFY --> FAILSAFE (latched)
    FAILSAFE --operator clear--> RESTART (a fresh episode)

The moves themselves are a table (``stages.TRANSITIONS``); the rules that pick one,
driven by counters and clocks, are code, one module per concern: ``healing``
(restart, backoff, verify, FAILSAFE, deadlines, a new config), ``checks`` (what a
probe's result means), ``operator_rules`` (commands), ``fleet_rules`` (the fleet
switch); all of them change one scratch, ``work.Work``. This module dispatches:


* A *hard* failure (the process exited or vanished) restarts at once; a *soft*
  one (stale heartbeat, probe over threshold) after ``failures_before_restart``
  consecutive failed checks of the same probe, or, for a probe with a K-of-N
  window (``core.judgement``), K failed checks within its last N counted ones.
* An exit code may carry a rule (``core.exit_rules``): a *failsafe* code enters
  FAILSAFE at once (``exit_code_<code>``), spending no restart; a *restart* code of
  a verified process restarts at once without spending an attempt.
* A restart after a failure of a component with ``debug_on_retry`` is marked
  ``debug`` (the shell adds the service's debug environment); an operator's
  restart, a start and a restart for a new config never are.
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
  ``set_by = "fleet"`` only when none is active; REDUCE_ONLY likewise. An
  operator's halt entered during a fleet halt takes it over, so the fleet's RUN,
  which clears only what ``set_by = "fleet"`` holds, never clears it. No local
  failsafe (``max_restarts``) begins during a fleet halt: a component that fails
  then is parked (BACKOFF, ``failsafe_active``) without counting an attempt, and
  the fleet's RUN restarts it as a fresh episode. A lost fleet link makes the
  runtime DEGRADED (or halted, ``on_lost = "halt"``) and clears nothing; only a
  fresh read ends it. A switch version lower than the one applied is never applied.
* Order within a step: the deadlines due at ``now`` are handled before the
  observation (they fell due first), except for an observation that can halt (an
  operator's failsafe, a fleet read, a lost fleet link): that comes first, so a
  restart due at the moment a halt is learnt is parked, never sent out with it.
  A step (or one read of the kill-switch files, which steps each act it found) that
  leaves a failsafe holding takes back the spawns it decided (``withhold_spawns``).

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

from dataclasses import dataclass, replace

from autoheal.core import checks, exit_rules, fleet_rules, healing, operator_rules
from autoheal.core.actions import Action, LogSwitchEvent, ProcessAction, WriteFlags
from autoheal.core.errors import CommandRefusedError, IllegalCommandError
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
    SwitchFilesRead,
    SwitchWriteFailed,
    SwitchWriteLanded,
)
from autoheal.core.policy import Policy
from autoheal.core.queries import FlagsView, deadlines, dor, flags_for, healthy
from autoheal.core.state import RuntimeState, state_from_dict, state_to_dict
from autoheal.core.switch import interpret, write_failed, write_succeeded
from autoheal.core.work import Work

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


#: Observations that can halt the runtime: applied before the deadlines due at ``now``,
#: so that a restart whose backoff ran out while the halt was on its way (a daemon that
#: was down while the operator wrote the flags) is parked by it, not spawned with it.
_HALTS = (OperatorEnteredFailsafe, FleetSwitchRead, FleetLost)


def _dispatch(w: Work, obs: Observation, added: tuple[str, ...], removed: tuple[str, ...]) -> None:
    """Hand ``obs`` to the rule of its concern."""
    match obs:
        case ProbeSucceeded(target, probe):
            _probe(w, target, probe, True, "")
        case ProbeFailed(target, probe, reason):
            _probe(w, target, probe, False, reason)
        case ProcessExited(component, reason, code):
            if component in w.components:
                exit_rules.process_exited(w, component, reason, code)
        case SpawnFinished(component, ok, reason):
            if component in w.components:
                healing.spawn_finished(w, component, ok, reason)
        case DeadlineReached():
            pass
        case OperatorRestarted():
            operator_rules.restart(w, obs)
        case OperatorStopped():
            operator_rules.stop(w, obs)
        case OperatorStarted():
            operator_rules.start(w, obs)
        case OperatorEnteredFailsafe():
            operator_rules.enter_failsafe(w, obs)
        case OperatorSetReduceOnly():
            operator_rules.set_reduce_only(w, obs)
        case OperatorClearedFailsafe():
            operator_rules.clear_failsafe(w, obs)
        case RiskLatchSeen():
            operator_rules.risk_latched(w, obs)
        case ConfigReloaded(changed):
            healing.config_reloaded(w, changed, added, removed)
        case FleetSwitchRead():
            fleet_rules.read(w, obs)
        case FleetLost():
            fleet_rules.lost(w, obs)
        case FleetDetached():
            fleet_rules.detached(w)


def _probe(w: Work, target: str, probe: str, ok: bool, reason: str) -> None:
    if target in w.dependencies:
        checks.dependency_probe(w, target, probe, ok, reason)
    elif target in w.components:
        checks.component_probe(w, target, probe, ok, reason)


def _files_read(state: RuntimeState, obs: SwitchFilesRead, now: float, policy: Policy) -> Decision:
    """What the kill-switch files say (``core.switch.interpret``), then each act stepped.

    An operator's act that changes nothing (a halt while halted) is no act.
    """
    result = interpret(state.switch, state, obs.disk, startup=obs.startup or obs.late)
    state = replace(state, switch=result.switch)
    actions: list[Action] = list(result.actions)
    for event in result.events:
        actions.append(LogSwitchEvent(event.journal_kind, event.token, event.actor))
        try:
            decision = step(state, event.observation, now, policy)
        except (IllegalCommandError, CommandRefusedError):
            continue
        state = decision.state
        actions.extend(decision.actions)
    if state.failsafe is not None:
        # One read can hold a clear and a new halt (STOP.TXT removed by hand, the flags
        # then set): the clear's restarts must not go out into the new failsafe.
        w = Work(state, now, policy)
        w.actions = actions
        healing.withhold_spawns(w)
        state, actions = w.snapshot(), w.actions
    return Decision(state, tuple(actions), deadlines(state, policy))


def _write_outcome(
    state: RuntimeState,
    obs: SwitchWriteLanded | SwitchWriteFailed,
    now: float,
    policy: Policy,
) -> Decision:
    """How our write went: what the daemon knows of the file, and a notice when that
    changes (a failure begins or ends). Nothing else moves (no deadline is handled)."""
    if isinstance(obs, SwitchWriteLanded):
        switch, notices = write_succeeded(
            state.switch, obs.key, present=obs.present, flags=obs.flags
        )
    else:
        switch, notices = write_failed(
            state.switch,
            obs.key,
            op=obs.op,
            errno=obs.errno,
            detail=obs.detail,
            now=now,
            flags=obs.flags,
        )
    state = replace(state, switch=switch)
    return Decision(state, notices, deadlines(state, policy))


def step(state: RuntimeState, obs: Observation, now: float, policy: Policy) -> Decision:
    """Advance the runtime by one observation at monotonic time ``now``.

    Args:
        state: the current state (never mutated).
        obs: a fact or an operator command.
        now: the caller's monotonic time in seconds.
        policy: components, dependencies and healing policy.

    Returns:
        The new state, the actions to execute in order, the next deadline
        (``wake_at``, absolute, ``>= now``) or None when only new observations matter,
        and, for a command, the action that answers it (``reply_after``).

    Raises:
        IllegalCommandError: an operator command that does not apply.
        CommandRefusedError: an operator command refused by a safety gate.
    """
    before = flags_for(state)
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    if isinstance(obs, SwitchFilesRead):
        return _files_read(state, obs, now, policy)
    if isinstance(obs, SwitchWriteLanded | SwitchWriteFailed):
        return _write_outcome(state, obs, now, policy)
    if isinstance(obs, ConfigReloaded):
        # Carry every kept component's state over to the new policy's shape.
        added = tuple(n for n in policy.components if n not in state.components)
        removed = tuple(n for n in state.components if n not in policy.components)
        state = replace(state_from_dict(state_to_dict(state), policy), switch=state.switch)
    w = Work(state, now, policy)
    if not isinstance(obs, _HALTS):
        healing.advance(w)  # what fell due before the observation is handled before it
    _dispatch(w, obs, added, removed)
    healing.advance(w)
    if w.failsafe is not None:
        # A command's own spawn is never taken back: the deadlines come before the
        # command, and a command is refused inside a failsafe (the property test holds
        # ``reply_after`` to be one of the step's actions).
        healing.withhold_spawns(w)
    new_state = w.snapshot()
    after = flags_for(new_state)
    actions = w.actions
    if after != before:
        flags = WriteFlags(after.failsafe_active, after.mode, after.reason, after.set_by)
        # Flags first: the trading processes must learn of a failsafe before anything else.
        actions = [flags, *actions]
    return Decision(new_state, tuple(actions), deadlines(new_state, policy), w.reply_after)
