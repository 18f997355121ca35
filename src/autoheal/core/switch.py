"""The kill switch's meaning: what the files on disk, and our writes to them, say.

``STOP.TXT`` and ``global_flags.json`` are shared with people. An operator may
create or remove ``STOP.TXT``, or write a partial flags document by hand; the
daemon writes both, and any write may fail (EROFS, ENOSPC, ENOTDIR). The guard's
daily-loss latch writes a file of its own, ``risk_latch.json``, never the flags.
This module decides what each of those facts means, from three inputs:

* :class:`SwitchState`: what the daemon last *knows* of each file: what it wrote
  successfully or saw on disk, and which of its writes are failing;
* :class:`DiskView`: what is on disk now;
* the core's :class:`~autoheal.core.state.RuntimeState`.

The rules, each a reason the kill switch cannot be loosened by accident:

* Only a ``STOP.TXT`` the daemon knew to be on disk and that then disappears is an
  operator's removal. A ``STOP.TXT`` that is missing because our write failed is
  written again (with a capped backoff), never read as "cleared".
* A flags document is an operator's edit only when it differs from what the
  daemon last wrote or saw, and it changes only the keys it names: a missing key
  never means "clear". Only an explicit ``"failsafe_active": false``, the removal
  of a ``STOP.TXT`` the daemon saw, or ``failsafe clear`` clears a failsafe.
* Only the daemon and an operator clear. A flags document signed by a writer that
  may only tighten (:data:`TIGHTEN_ONLY`: the guard's risk latch, the fleet) is
  never read as a clear, nor as a REDUCE_ONLY that would unwind a failsafe; it
  can only tighten.
* An operator's halt written by hand (``failsafe_active: true`` or mode
  ``SIGNAL_READ_ONLY``) during the fleet's halt takes the failsafe over from the
  fleet, as ``failsafe enter`` does, so the fleet's RUN cannot lift it.
* ``risk_latch.json`` on disk asks for REDUCE_ONLY for as long as it is there,
  whenever nothing at least as strict holds (:class:`RiskLatchSeen`). Only the
  removal by hand of a latch the daemon saw, while its REDUCE_ONLY holds, is an
  operator's clear; an operator's clear of REDUCE_ONLY removes it
  (``RemoveRiskLatch``).
* At start nothing on disk can loosen: what the previous daemon's state and the
  files say is merged towards the stricter side.
* A write that fails is loud (a notice and an alert, once per episode) and is
  retried; one that succeeds again ends the episode (notice, alert cleared).

Pure: no clock, no files. The shell (``autoheal.daemon.killswitch``) reads the
disk, executes the actions and reports each write's outcome back here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from autoheal.core.actions import (
    ClearAlert,
    RaiseAlert,
    RemoveRiskLatch,
    RemoveStop,
    SendNotice,
    WriteFlags,
    WriteStop,
)
from autoheal.core.fleet import FLEET
from autoheal.core.observations import (
    Observation,
    OperatorClearedFailsafe,
    OperatorEnteredFailsafe,
    OperatorSetReduceOnly,
    RiskLatchSeen,
)
from autoheal.core.queries import flags_for
from autoheal.core.state import RuntimeState
from autoheal.core.switchfiles import (
    FILE_LABEL,
    FLAGS,
    LATCH,
    STOP,
    WRITE_FAILED_ALERT,
    DiskView,
    FlagsDoc,
    LatchView,
    SwitchState,
    WriteFailure,
)

__all__ = [
    "ATTEMPTED_MAX",
    "FLAGS",
    "LATCH",
    "RETRY_BASE_S",
    "RETRY_CAP_S",
    "RISK",
    "STOP",
    "TIGHTEN_ONLY",
    "DiskView",
    "FlagsDoc",
    "Interpretation",
    "LatchView",
    "SwitchEvent",
    "SwitchNotice",
    "SwitchState",
    "SwitchWrite",
    "WriteFailure",
    "due_writes",
    "interpret",
    "retry_delay",
    "stop_set_by",
    "write_failed",
    "write_succeeded",
]

#: ``set_by`` of the guard's daily-loss latch.
RISK = "risk"
#: Writers that may only tighten: a document they signed is never read as a clear.
TIGHTEN_ONLY = frozenset({RISK, FLEET})

#: First retry of a failed kill-switch write after this long; doubling up to the cap.
RETRY_BASE_S = 1.0
RETRY_CAP_S = 30.0

#: What the switch asks the shell to write, and to say.
SwitchWrite = WriteFlags | WriteStop | RemoveStop | RemoveRiskLatch
SwitchNotice = RaiseAlert | ClearAlert | SendNotice

FLAGS_INVALID_ALERT = "flags_invalid"


@dataclass(frozen=True, slots=True)
class SwitchEvent:
    """One thing someone did to the files, with what it amounts to for ``step``.

    ``actor`` is who did it: an operator (a name from the document, or
    ``operator``) or a writer that may only tighten (``risk``, ``fleet``).
    """

    token: str  # stop_file_created | stop_file_removed | flags_cleared | risk_latch | ...
    observation: Observation
    actor: str = "operator"

    @property
    def journal_kind(self) -> str:
        """``operator_kill_switch`` for an operator's act, else ``kill_switch_tightened``."""
        return "kill_switch_tightened" if self.actor in TIGHTEN_ONLY else "operator_kill_switch"


@dataclass(frozen=True, slots=True)
class Interpretation:
    switch: SwitchState
    events: tuple[SwitchEvent, ...]
    actions: tuple[SwitchNotice, ...]


def retry_delay(attempts: int) -> float:
    """Seconds before the next try after ``attempts`` failed ones (1, 2, 4, ... 30)."""
    return float(min(RETRY_CAP_S, RETRY_BASE_S * 2 ** max(0, min(attempts - 1, 16))))


def _halted(state: RuntimeState) -> bool:
    """Whether ``STOP.TXT`` must be on disk: a failsafe that is not unwinding."""
    return state.failsafe is not None and state.reduce_only is None


def stop_set_by(first_line: str) -> str | None:
    """Who a ``STOP.TXT`` first line says set it: ``... STOP set_by=NAME ...`` → NAME.

    The daemon writes that marker; a file written by hand usually has none (None).
    """
    marker = " STOP set_by="
    at = f" {first_line}".find(marker)
    if at < 0:
        return None
    name = f" {first_line}"[at + len(marker) :].split(" ", 1)[0]
    return name or None


def _interpret_stop(
    known: bool | None,
    present: bool,
    active: bool,
    ro: bool,
    *,
    fleet_held: bool,
    set_by: str | None,
    startup: bool,
) -> SwitchEvent | None:
    if present and known is not True and (not active or ro):
        return SwitchEvent(
            "stop_file_created",
            OperatorEnteredFailsafe("STOP.TXT present (created by hand)", "operator"),
        )
    if present and fleet_held and not ro and set_by != FLEET:
        # The fleet's STOP.TXT rewritten by someone (or one written while the daemon was
        # down): an operator's halt, which takes the failsafe over so that the fleet's RUN
        # cannot lift it, as a hand-written halt in the flags does.
        actor = set_by if set_by and set_by not in TIGHTEN_ONLY else "operator"
        return SwitchEvent(
            "stop_file_rewritten",
            OperatorEnteredFailsafe("STOP.TXT rewritten by hand during a fleet halt", actor),
            actor,
        )
    if not present and known is True and active and not ro and not startup:
        return SwitchEvent(
            "stop_file_removed", OperatorClearedFailsafe("STOP.TXT removed by hand", "operator")
        )
    return None


def _interpret_flags(
    doc: FlagsDoc, active: bool, ro: bool, *, fleet_held: bool, startup: bool
) -> tuple[list[SwitchEvent], bool]:
    """A flags document someone wrote: each named key that disagrees is a command.

    Returns the events, and whether the document asked to loosen what only the
    daemon and an operator may loosen (it was signed by a tighten-only writer).
    """
    out: list[SwitchEvent] = []
    actor = doc.set_by or "operator"
    # Who a clear is journaled under: the operator who signed it (an audit trail names
    # a person), never the daemon's own name on a document it did not write.
    clearer = actor if actor != "autoheal" else "operator"
    # Only an operator's document clears; a tighten-only writer's never does.
    may_loosen = doc.set_by not in TIGHTEN_ONLY
    refused = False
    # An operator's halt during the fleet's takes it over (the fleet's RUN must not
    # lift it); the fleet's own document, read back, does not.
    takes_over = fleet_held and doc.set_by != FLEET
    if doc.failsafe_active is False and active and not startup:
        if may_loosen:
            out.append(
                SwitchEvent(
                    "flags_cleared",
                    OperatorClearedFailsafe(
                        "failsafe_active=false written to global_flags.json", clearer
                    ),
                    clearer,
                )
            )
            active, ro, takes_over = False, False, False
        else:
            refused = True
    elif doc.failsafe_active is True and (not active or takes_over):
        out.append(
            SwitchEvent(
                "flags_entered",
                OperatorEnteredFailsafe(
                    doc.reason or "failsafe_active=true written to global_flags.json", actor
                ),
                actor,
            )
        )
        active, ro, takes_over = True, False, False
    if doc.mode == "REDUCE_ONLY" and not ro:
        # Inside a failsafe REDUCE_ONLY unwinds its halt: only an operator's document
        # does that, and never one found at start (it may be older than the failsafe).
        if not active or (may_loosen and not startup):
            out.append(
                SwitchEvent(
                    "flags_reduce_only",
                    OperatorSetReduceOnly(
                        doc.reason or "mode REDUCE_ONLY written to global_flags.json", actor
                    ),
                    actor,
                )
            )
        else:
            refused = not may_loosen
    elif doc.mode == "SIGNAL_READ_ONLY" and (ro or not active or takes_over):
        out.append(
            SwitchEvent(
                "flags_halt",
                OperatorEnteredFailsafe(
                    doc.reason or "mode SIGNAL_READ_ONLY written to global_flags.json", actor
                ),
                actor,
            )
        )
    elif doc.mode in ("NORMAL", "DEGRADED") and ro and not startup:
        if active:
            # Leaving REDUCE_ONLY inside a failsafe halts everything again: only an
            # explicit failsafe_active=false ends the failsafe itself.
            out.append(
                SwitchEvent(
                    "flags_left_reduce_only",
                    OperatorEnteredFailsafe(
                        f"mode {doc.mode} written while the failsafe holds: full halt", actor
                    ),
                    actor,
                )
            )
        elif may_loosen:
            out.append(
                SwitchEvent(
                    "flags_left_reduce_only",
                    OperatorClearedFailsafe(f"mode {doc.mode} written by hand", clearer),
                    clearer,
                )
            )
        else:
            refused = True
    return out, refused


def _interpret_latch(
    known: LatchView | None, seen: LatchView | None, state: RuntimeState, *, startup: bool
) -> SwitchEvent | None:
    """The risk latch against the state before this round's acts.

    A request while nothing at least as strict holds (after a clear, the next round
    asks again: the clear removes the latch it saw first); the removal by hand of a
    latch whose REDUCE_ONLY holds is an operator's clear of it.
    """
    if seen is not None and state.failsafe is None and state.reduce_only is None:
        return SwitchEvent("risk_latch", RiskLatchSeen(seen.reason), RISK)
    risk_holds = state.reduce_only is not None and state.reduce_only.set_by == RISK
    removed = seen is None and known is not None and not startup
    if removed and risk_holds and state.failsafe is None:
        return SwitchEvent(
            "risk_latch_removed",
            OperatorClearedFailsafe("risk_latch.json removed by hand", "operator"),
        )
    return None


def interpret(
    switch: SwitchState, state: RuntimeState, disk: DiskView, *, startup: bool = False
) -> Interpretation:
    """What the operator did to the files since the daemon last knew them.

    Args:
        switch: what the daemon knows of the files.
        state: the core's state before the operator's acts.
        disk: what is on disk now.
        startup: the daemon just started: nothing on disk may loosen the resumed state.

    Returns:
        The new knowledge, the operator's acts in order (each carries the command to
        ``step``), and alert actions for a flags file that does not parse.
    """
    active = state.failsafe is not None
    ro = state.reduce_only is not None
    fleet_held = state.failsafe is not None and state.failsafe.set_by == FLEET
    events: list[SwitchEvent] = []
    actions: list[SwitchNotice] = []
    stop_event = _interpret_stop(
        switch.stop_on_disk,
        disk.stop_present,
        active,
        ro,
        fleet_held=fleet_held,
        set_by=disk.stop_set_by,
        startup=startup,
    )
    # A STOP.TXT that halts in this very read may be newer than the flags document
    # read with it: like a document found at start, the flags may not loosen it.
    halted_now = False
    if stop_event is not None:
        events.append(stop_event)
        if isinstance(stop_event.observation, OperatorEnteredFailsafe):
            active, ro, fleet_held, halted_now = True, False, False, True
        else:
            active = False
    failures = dict(switch.failures)
    if disk.stop_present == _halted_after(active, ro):
        # The file already says what it must (someone else wrote or removed it).
        failures.pop(STOP, None)
    flags_on_disk = switch.flags_on_disk
    invalid = disk.flags_invalid
    if invalid:
        if invalid != switch.flags_invalid:
            actions.append(RaiseAlert(FLAGS_INVALID_ALERT, FILE_LABEL[FLAGS], invalid))
    else:
        if switch.flags_invalid:
            actions.append(ClearAlert(FLAGS_INVALID_ALERT, FILE_LABEL[FLAGS], "valid again"))
        failing = failures.get(FLAGS)
        # A document our failing write put there after all is ours, not an act.
        ours = failing is not None and disk.flags in failing.attempted
        if disk.flags != flags_on_disk:
            if not ours:
                flag_events, refused = _interpret_flags(
                    disk.flags, active, ro, fleet_held=fleet_held, startup=startup or halted_now
                )
                events.extend(flag_events)
                if refused:
                    actions.append(_refusal(disk.flags))
            flags_on_disk = disk.flags
    latch_event = _interpret_latch(switch.latch_on_disk, disk.latch, state, startup=startup)
    if latch_event is not None:
        events.append(latch_event)
    if disk.latch is None and failures.pop(LATCH, None) is not None:
        actions.append(ClearAlert(WRITE_FAILED_ALERT[LATCH], FILE_LABEL[LATCH], "gone"))
    new = replace(
        switch,
        stop_on_disk=disk.stop_present,
        flags_on_disk=flags_on_disk,
        failures=failures,
        flags_invalid=invalid,
        latch_on_disk=disk.latch,
    )
    return Interpretation(new, tuple(events), tuple(actions))


def _refusal(doc: FlagsDoc) -> SendNotice:
    """What a tighten-only writer's attempt to loosen is: refused, said once."""
    return SendNotice(
        "operator",
        "runtime",
        "flags_loosen_refused",
        f"global_flags.json signed set_by={doc.set_by} asks to loosen the kill switch: "
        "ignored (only the daemon and an operator clear; `autoheal failsafe clear`, or "
        "a document signed with your own name)",
    )


def _halted_after(active: bool, ro: bool) -> bool:
    return active and not ro


def due_writes(switch: SwitchState, state: RuntimeState, now: float) -> tuple[SwitchWrite, ...]:
    """The writes that make the files say what the state says, where they do not yet.

    A file whose last write failed is tried again only when its backoff has run out.
    """
    out: list[SwitchWrite] = []

    def due(key: str) -> bool:
        failure = switch.failures.get(key)
        return failure is None or failure.retry_at <= now

    failsafe = state.failsafe
    if failsafe is not None and _halted(state) and switch.stop_on_disk is not True and due(STOP):
        out.append(WriteStop(failsafe.reason, failsafe.set_by))
    elif not _halted(state) and switch.stop_on_disk is True and due(STOP):
        # Only a removal of ours that failed leaves this (interpret() reads any other
        # STOP.TXT as an operator's halt first).
        out.append(RemoveStop("retrying the removal of STOP.TXT", "autoheal"))
    want = flags_for(state)
    have = switch.flags_on_disk
    stale = (
        have is None
        or not have.complete
        or (have.failsafe_active, have.mode) != (want.failsafe_active, want.mode)
    )
    # A failed write is retried until one lands, even if the disk looks right meanwhile.
    if (stale or FLAGS in switch.failures) and not switch.flags_invalid and due(FLAGS):
        out.append(WriteFlags(want.failsafe_active, want.mode, want.reason, want.set_by))
    return tuple(out)


def write_succeeded(
    switch: SwitchState, key: str, *, present: bool | None = None, flags: FlagsDoc | None = None
) -> tuple[SwitchState, tuple[SwitchNotice, ...]]:
    """Our write of ``key`` reached the disk: ``present`` for STOP.TXT, ``flags`` for the
    flags; for the latch, its removal (``present`` False) or a newer latch left standing."""
    failures = dict(switch.failures)
    old = failures.pop(key, None)
    if key == STOP:
        switch = replace(switch, stop_on_disk=present, failures=failures)
    elif key == LATCH:
        latch = switch.latch_on_disk if present else None
        switch = replace(switch, latch_on_disk=latch, failures=failures)
    else:
        switch = replace(switch, flags_on_disk=flags, failures=failures)
    if old is None:
        return switch, ()
    label = FILE_LABEL[key]
    return switch, (
        ClearAlert(WRITE_FAILED_ALERT[key], label, f"written after {old.attempts} failed tries"),
        SendNotice(
            "write_recovered",
            "runtime",
            "write_recovered",
            f"{label} written again after {old.attempts} failed tries ({old.errno})",
        ),
    )


#: How many documents of failing flags writes are remembered as possibly ours.
ATTEMPTED_MAX = 8


def write_failed(
    switch: SwitchState,
    key: str,
    *,
    op: str,
    errno: str,
    detail: str,
    now: float,
    flags: FlagsDoc | None = None,
) -> tuple[SwitchState, tuple[SwitchNotice, ...]]:
    """Our write (or removal) of ``key`` failed: keep trying, loudly.

    The knowledge of the file is left as it was: a STOP.TXT we failed to write is not
    on disk, and its absence is never read as an operator's removal. A flags document
    we tried to write (``flags``) is remembered: the write may have landed before it
    failed, and our own document read back is never an operator's act.
    """
    old = switch.failures.get(key)
    attempts = 1  # a new failure
    attempted: tuple[FlagsDoc, ...] = ()
    if old is not None and old.op == op:  # the same failure going on
        attempts, attempted = old.attempts + 1, old.attempted
    if flags is not None:
        attempted = (*attempted, flags)[-ATTEMPTED_MAX:]
    failure = WriteFailure(
        op=op,
        errno=errno,
        detail=detail,
        since=now if old is None else old.since,
        attempts=attempts,
        retry_at=now + retry_delay(attempts),
        attempted=attempted,
    )
    failures = dict(switch.failures)
    failures[key] = failure
    switch = replace(switch, failures=failures)
    if old is not None and old.op == op and old.errno == errno:
        return switch, ()
    message = failure.message(key)
    return switch, (
        RaiseAlert(WRITE_FAILED_ALERT[key], FILE_LABEL[key], message),
        SendNotice("write_failed", "runtime", f"{key}_write_failed", message),
    )
