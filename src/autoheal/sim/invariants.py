"""What must hold after every step: plain functions of what the simulator saw.

Each takes plain data (journal events, the fake's start records, file bytes, the
gate's answer) and returns the violations it finds, one line each: so each can be
shown to fail on a hand-made bad input (``tests/sim/test_invariants.py``) as well as
to hold on the real daemon. The run (:mod:`autoheal.sim.run`) gathers the inputs.

* :class:`ClearLedger` — only an operator's act clears a failsafe;
* :func:`halted_refuses_buy` — while halted, a ``TradingGate`` refuses a buy;
* :func:`no_start_in_failsafe` — nothing starts or restarts during a failsafe;
* :func:`whole_documents` — the kill-switch files and the state and health documents
  parse to a whole document;
* :class:`KeyLedger` — a command key runs at most once and stands for one command;
* :func:`within_budget` — restarts stay within the policy's ``max_restarts``;
* :func:`failsafe_visible` — a failsafe the daemon holds is on disk;
* :func:`live` — after the faults stop: back to DOR, or visibly latched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from autoheal.store import layout

__all__ = [
    "KNOWN_BUGS",
    "ClearLedger",
    "JournalEvent",
    "KeyLedger",
    "StartRecord",
    "Submission",
    "failsafe_visible",
    "halted_refuses_buy",
    "known_starts_in_failsafe",
    "live",
    "no_start_in_failsafe",
    "saved_state_durable",
    "whole_documents",
    "within_budget",
]

#: The daemon's own name as an actor: never the author of a clear.
DAEMON_ACTOR = "autoheal"
#: Reasons of the notices of a failsafe the fleet enters (``core.fleet_rules``), and of
#: the fleet's RUN clearing it.
FLEET_ENTRIES = ("fleet_halt", "fleet_lost")
FLEET_CLEAR = "fleet_run"


@dataclass(frozen=True)
class JournalEvent:
    """The part of a journal event the invariants read."""

    id: int
    kind: str
    command_id: str | None = None
    reason: str | None = None
    data: Mapping[str, Any] | None = None

    @property
    def notice(self) -> str | None:
        """For a ``notice`` event, its kind (``failsafe``, ``failsafe_cleared``, ...)."""
        if self.kind != "notice" or not self.data:
            return None
        kind = self.data.get("kind")
        return kind if isinstance(kind, str) else None

    @property
    def message(self) -> str:
        return str((self.data or {}).get("message", ""))


@dataclass
class ClearLedger:
    """Only an operator's act clears a failsafe.

    The acts that may clear are the executed ``failsafe_clear`` commands (their
    ``failsafe_clear.started`` event) and, while a daemon runs, the removal of
    ``STOP.TXT`` and a flags document saying ``failsafe_active: false`` (recorded with
    :meth:`act`, at the journal's newest event id then). Each clear (a
    ``failsafe_cleared`` notice) must follow an unused act made after the failsafe was
    entered (its ``failsafe`` notice), and must not name the daemon as its actor.
    A ``failsafe_clear`` command's own writes may first read an operator's earlier
    hand edit of the flags that the watch had not reported
    (``flags_changed_before_write``) and enter that failsafe; its ``failsafe`` notice
    is journaled before the clear's own ``failsafe_cleared``, so the clear seems to
    follow an entry it did not clear. The running command is the act that pays for
    that clear.
    """

    entered_at: int | None = None
    acts: list[int] = field(default_factory=list)
    running: dict[str, int] = field(default_factory=dict)
    """A running ``failsafe_clear`` command's id → its act (its ``started`` event)."""
    fleet_owned: bool = False
    """The failsafe in force was entered by the fleet (a HALT, or a lost link with
    ``on_lost = "halt"``): the fleet's RUN may clear it, and nothing else of the fleet's."""
    made: int = 0
    """How many clearing acts the operator made so far (never goes down)."""

    seen_through: int = 0
    """The newest journal event id :meth:`see` has read."""
    pending_resume: tuple[int, bool] | None = None
    """A resume told before the ledger read the journal up to it (:meth:`resumed`)."""

    def resumed(self, journal_max_id: int, *, fleet: bool) -> None:
        """A starting daemon resumed a failsafe from its state file. When its entry is
        not the one in force here (it was cleared since, and the clear's save did not
        reach the file), it is entered anew at the daemon's start: it takes an act, or
        the fleet's RUN for the fleet's own, made after that.

        The dead daemon's last events (up to ``journal_max_id``) may not be read yet:
        its clear of the entry in force among them (seed 5456: a fleet halt entered and
        lifted by the fleet's RUN, neither saved under EROFS). The resume is weighed
        once the ledger has read that far."""
        self.pending_resume = (journal_max_id, fleet)
        if self.seen_through >= journal_max_id:
            self._resume()

    def _resume(self) -> None:
        assert self.pending_resume is not None
        (journal_max_id, fleet), self.pending_resume = self.pending_resume, None
        if self.entered_at is None:
            self.entered_at = journal_max_id
            self.fleet_owned = fleet

    def act(self, journal_max_id: int) -> None:
        """An operator's clearing act on the files, while the journal's newest id was this."""
        self.acts.append(journal_max_id)
        self.made += 1

    def see(self, events: Iterable[JournalEvent]) -> list[str]:
        out: list[str] = []
        for event in events:
            if self.pending_resume is not None and event.id > self.pending_resume[0]:
                self._resume()
            self.seen_through = max(self.seen_through, event.id)
            if event.kind == "failsafe_clear.started":
                self.acts.append(event.id)
                self.made += 1
                if event.command_id is not None:
                    self.running[event.command_id] = event.id
            elif event.kind.startswith("failsafe_clear.") and event.command_id is not None:
                self.running.pop(event.command_id, None)
            notice = event.notice
            if notice == "failsafe":
                if self.entered_at is None:
                    # The fleet's own entries, and a fleet-signed flags document read
                    # back (``flags_entered`` by the fleet: set_by "fleet").
                    self.fleet_owned = (
                        event.reason in FLEET_ENTRIES or "entered by fleet:" in event.message
                    )
                    # A failsafe notice while one is in force (the fleet's lost link
                    # saying HALTED, REDUCE_ONLY ended) is no new entry: the acts made
                    # since the entry still count (seed 250).
                    self.entered_at = event.id
            elif notice == "failsafe_cleared":
                out += self._clear(event)
        if self.pending_resume is not None and self.seen_through >= self.pending_resume[0]:
            self._resume()
        return out

    def _clear(self, event: JournalEvent) -> list[str]:
        entered = self.entered_at if self.entered_at is not None else 0
        if event.reason == FLEET_CLEAR:
            # The fleet's RUN (an operator's act elsewhere: ``autoheal fleet run``) clears
            # the fleet's own failsafe; a local one, never.
            owned, self.fleet_owned, self.entered_at = self.fleet_owned, False, None
            if owned:
                return []
            return [
                f"a fleet RUN cleared a local failsafe (event {event.id}, entered at event "
                f"{entered}): {event.message}"
            ]
        self.fleet_owned = False
        usable = [a for a in self.acts if entered <= a < event.id]
        if not usable:
            usable = [a for a in self.running.values() if a in self.acts]
        self.acts = [a for a in self.acts if a >= event.id]
        self.entered_at = None
        out = []
        if not usable:
            out.append(
                f"failsafe cleared (event {event.id}) with no operator act since it was "
                f"entered (event {entered}): {event.message}"
            )
        if f"cleared by {DAEMON_ACTOR}:" in event.message:
            out.append(f"failsafe cleared by the daemon itself: {event.message}")
        return out


def halted_refuses_buy(
    stop_present: bool, flags_raw: bytes | None, gate: tuple[bool, str]
) -> list[str]:
    """While ``STOP.TXT`` is there, or the flags halt, are missing or unreadable, a buy
    is refused."""
    why = None
    if stop_present:
        why = "STOP.TXT present"
    elif flags_raw is None:
        why = "global_flags.json missing"
    else:
        try:
            doc = orjson.loads(flags_raw)
        except orjson.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict):
            why = "global_flags.json unreadable"
        elif doc.get("failsafe_active") is True:
            why = "failsafe_active"
        elif doc.get("mode") in ("SIGNAL_READ_ONLY", "REDUCE_ONLY"):
            why = f"mode {doc.get('mode')}"
    allowed, reason = gate
    if why is not None and allowed:
        return [f"halted ({why}) but TradingGate allowed a buy ({reason})"]
    return []


@dataclass(frozen=True)
class StartRecord:
    """One start the daemon asked of the process control, and what it knew then."""

    t: float
    name: str
    failsafe: str | None
    """The daemon's failsafe at that moment (its reason), None when none held."""
    boot: bool = False
    """Asked by a daemon that was starting (adopting or starting its services)."""
    decided: str | None = None
    """For a process action's start, when the core decided it: ``in_failsafe`` (a
    failsafe held before and after that step), ``same_step`` (that step entered the
    failsafe too), ``before`` (no failsafe held after that step); None: not an
    action's start (boot)."""

    @property
    def kind(self) -> str | None:
        """Which way a start in a failsafe came about, when it is one the simulator named."""
        if self.boot:
            return "boot_start_in_failsafe"
        return {
            "before": "stale_restart_after_failsafe",
            "same_step": "restart_in_the_step_entering_failsafe",
            "reentered": "restart_of_a_clear_undone_in_the_same_read",
        }.get(self.decided or "")

    @property
    def known_bug(self) -> str | None:
        """The known, unfixed bug a start in a failsafe is an instance of, if any."""
        return self.kind if self.kind in KNOWN_BUGS else None


def no_start_in_failsafe(starts: Iterable[StartRecord], *, known: bool = True) -> list[str]:
    """The starts asked for while the daemon held a failsafe.

    Args:
        known: also those that are instances of a :data:`KNOWN_BUGS` (``False`` leaves
            them to :func:`known_starts_in_failsafe`).
    """
    return [
        f"{s.name} started at t={s.t:.3f} during a failsafe ({s.failsafe})"
        + (f" [{s.kind}]" if s.kind else "")
        for s in starts
        if s.failsafe is not None and (known or s.known_bug is None)
    ]


#: Real bugs the simulator found and that are not fixed yet: name → what they are. The
#: simulator counts them apart (``--strict`` makes them failures); each has an
#: ``xfail(strict=True)`` test that turns green when it is fixed.
KNOWN_BUGS: dict[str, str] = {}


def saved_state_durable(durable: bytes | None, expected: Mapping[str, Any]) -> list[str]:
    """When the daemon holds its state as saved (no save due), the durable
    ``autoheal_state.json`` (what a power loss would leave) is that state.

    Args:
        durable: the file's durable bytes (:meth:`autoheal.sim.disk.Ledger.durable_bytes`).
        expected: the daemon's state as it would write it (``written_at_unix`` left out).
    """
    if durable is None:
        return ["the state is held as saved, but no autoheal_state.json is durable"]
    try:
        doc = orjson.loads(durable)
    except orjson.JSONDecodeError:
        return ["the state is held as saved, but the durable autoheal_state.json is torn"]
    if isinstance(doc, dict):
        doc.pop("written_at_unix", None)
    want = orjson.loads(orjson.dumps(expected, option=orjson.OPT_SORT_KEYS))
    if doc == want:
        return []
    diff = sorted(
        k
        for k in set(want) | set(doc if isinstance(doc, dict) else {})
        if not isinstance(doc, dict) or doc.get(k) != want.get(k)
    )
    return [f"the state is held as saved, but the durable file differs in {diff}"]


def known_starts_in_failsafe(starts: Iterable[StartRecord]) -> list[tuple[str, str]]:
    """The starts in a failsafe that are instances of a known bug: (bug, line) each."""
    return [
        (s.known_bug, line)
        for s in starts
        if s.known_bug is not None
        for line in no_start_in_failsafe([s])
    ]


#: The documents a reader must always find whole, and a key each must hold.
WHOLE = {layout.HEALTH: "schema", layout.STATE: "schema", layout.FLAGS: None}


def whole_documents(files: Mapping[str, bytes | None], by_hand: Mapping[str, bytes]) -> list[str]:
    """Each present document parses to a whole JSON object (``STOP.TXT``: a first line).

    ``by_hand`` holds what the operator last wrote into a file by hand (garbage
    included): that is the operator's document, not a torn write.
    """
    out = []
    for name, raw in files.items():
        if raw is None or raw == by_hand.get(name):
            continue
        if name == layout.STOP_FILE_DEFAULT:
            if not raw.endswith(b"\n") or b" STOP set_by=" not in raw.split(b"\n", 1)[0]:
                out.append(f"STOP.TXT is not a whole document: {raw[:80]!r}")
            continue
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            out.append(f"{name} does not parse: {raw[:80]!r}")
            continue
        key = WHOLE.get(name)
        if not isinstance(doc, dict) or (key is not None and key not in doc):
            out.append(f"{name} is not a whole document: {raw[:80]!r}")
    return out


@dataclass(frozen=True)
class Submission:
    """One ``submit`` by the operator: the key, what it asked, what came back."""

    key: str
    intent: tuple[str, str, str]
    """(type, target, reason): what the key was used for."""
    outcome: str
    """``queued``, ``duplicate`` or ``conflict`` (``KeyConflictError``)."""
    command_id: str | None


@dataclass
class KeyLedger:
    """A key stands for one command (another command under it is refused; the same one
    gets the same command back), and a command runs at most once."""

    first: dict[str, Submission] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)

    def submitted(self, sub: Submission) -> list[str]:
        earlier = self.first.get(sub.key)
        if earlier is None:
            if sub.outcome != "queued":
                return [f"key {sub.key} never used before, but submit said {sub.outcome}"]
            self.first[sub.key] = sub
            return []
        if sub.intent != earlier.intent:
            if sub.outcome != "conflict":
                return [
                    f"key {sub.key} stands for {earlier.intent}, yet {sub.intent} under it "
                    f"was {sub.outcome}, not refused"
                ]
            return []
        if sub.outcome != "duplicate" or sub.command_id != earlier.command_id:
            return [f"key {sub.key} reused for the same command: {sub.outcome}, not the same one"]
        return []

    def see(self, events: Iterable[JournalEvent]) -> list[str]:
        out = []
        for event in events:
            if event.command_id is None or event.kind != "started":
                continue
            n = self.runs[event.command_id] = self.runs.get(event.command_id, 0) + 1
            if n > 1:
                key = next(
                    (k for k, s in self.first.items() if s.command_id == event.command_id), "?"
                )
                out.append(f"command under key {key} started {n} times")
        return out


def within_budget(attempts: Mapping[str, int], max_restarts: int) -> list[str]:
    return [
        f"{name}: {n} restart attempts in one episode, over max_restarts={max_restarts}"
        for name, n in sorted(attempts.items())
        if n > max_restarts
    ]


def failsafe_visible(
    failsafe: bool, reduce_only: bool, stop_present: bool, flags: Mapping[str, Any] | None
) -> list[str]:
    """A failsafe the daemon holds is in the files: flags say so, and STOP.TXT is there
    (unless an operator's REDUCE_ONLY unwinds it)."""
    if not failsafe:
        return []
    out = []
    if flags is None or flags.get("failsafe_active") is not True:
        out.append(f"the daemon holds a failsafe, the flags say {dict(flags or {})}")
    if not reduce_only and not stop_present:
        out.append("the daemon holds a failsafe, but STOP.TXT is missing")
    return out


def live(
    dor: bool, latched: bool, unexplained: Sequence[str], unfinished: Sequence[str]
) -> list[str]:
    """After the faults stop: DOR, or a failsafe latched and visible, or every component
    that is not healthy was stopped by the operator; and every command has its answer.

    Args:
        unexplained: the components neither healthy in OBSERVE nor stopped by an operator.
        unfinished: the keys of commands with no final status.
    """
    out = []
    if not dor and not latched and unexplained:
        out.append(f"not back to DOR, no visible failsafe, and {', '.join(unexplained)} not well")
    out += [f"command under key {key} never finished" for key in unfinished]
    return out
