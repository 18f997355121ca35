"""Calls on the bot's own API when the runtime's mode changes: which to send, which to
undo, and what an outcome means.

A bot such as freqtrade can pause its own entries (``POST /api/v1/stopentry``) or stop
trading (``/stop``), and be told to resume (``/reload_config``, ``/start``). The
``[bot_api]`` table maps autoheal's modes to such calls, each with its undo. This
module decides; ``autoheal.daemon.bot_api`` sends.

The rules, each a safety property (``tests/core/test_bot_api.py`` holds them under a
stateful property test against a model of the bot):

* A mode holds every call that it or any looser mode lists (:func:`held`): moving to a
  stricter mode never undoes anything, even when the table lists a call only for a
  looser mode (DEGRADED's ``stopentry`` stays in force in FAILSAFE).
* Tightening comes first: the calls the mode wants and autoheal has not made are sent,
  and only once every one of them was answered are calls undone, so a failed call
  never leaves the bot looser than before (a ``stopentry`` refused on the way down from
  FAILSAFE keeps the bot stopped).
* Only what autoheal did is undone: a call enters the ledger (:class:`Ledger`) when it
  was sent, also when its outcome is unknown (a timeout after the request left), and
  leaves it only when its undo was answered. A call the bot is found doing already
  (:class:`InEffect`: an operator's own ``/stopentry``) is not sent, so never undone:
  entries resume after an outage only if autoheal paused them.
* After a lost answer autoheal cannot tell its own pause from an operator's made in
  that moment: it counts the pause as its own (and undoes it later). Sending the
  call again is safe; leaving the bot paused forever would not be.
* A ledger that cannot be read is empty, loudly: autoheal then undoes nothing (the bot
  stays as paused as it is, which an operator can lift), never more than it did.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace

from autoheal.core.queries import flags_for
from autoheal.core.state import RuntimeState

__all__ = [
    "MODES",
    "BotCall",
    "BotTable",
    "InEffect",
    "Ledger",
    "Outcome",
    "Step",
    "bot_mode",
    "forgotten",
    "held",
    "ledger_from_doc",
    "ledger_to_doc",
    "plan",
    "settle",
    "tidy",
]

#: autoheal's modes as the table names them, loosest first.
MODES = ("NORMAL", "DEGRADED", "REDUCE_ONLY", "FAILSAFE")
_RANK = {m: i for i, m in enumerate(MODES)}


def bot_mode(state: RuntimeState) -> str:
    """The mode the bot is told of: what ``global_flags.json`` says, with a failsafe's
    ``SIGNAL_READ_ONLY`` called FAILSAFE (an operator's REDUCE_ONLY inside a failsafe
    stays REDUCE_ONLY: it is there to let positions unwind)."""
    view = flags_for(state)
    return "FAILSAFE" if view.mode == "SIGNAL_READ_ONLY" else view.mode


Scalar = str | int | float | bool


@dataclass(frozen=True, slots=True)
class InEffect:
    """How to see that the bot already does what a call asks: ``GET get``, and the JSON
    field at ``pointer`` is one of ``one_of`` (freqtrade: ``/show_config``'s ``/state``
    is ``paused`` or ``stopped`` when no entry can happen)."""

    get: str
    pointer: str
    one_of: tuple[Scalar, ...]


@dataclass(frozen=True, slots=True)
class BotCall:
    """One call and its undo: paths under the API's base URL, sent as ``POST``."""

    name: str
    post: str
    undo: str | None = None
    """None: autoheal never undoes it (an operator does)."""
    in_effect: InEffect | None = None
    """Asked before the call is sent: when someone else already did it, autoheal does
    not send it, and so never undoes it (an operator's own pause outlives autoheal's)."""


@dataclass(frozen=True, slots=True)
class BotTable:
    """The ``[bot_api]`` table: the calls by name, and which each mode wants."""

    calls: Mapping[str, BotCall]
    modes: Mapping[str, tuple[str, ...]]


def held(table: BotTable, mode: str) -> frozenset[str]:
    """Every call a mode keeps in force: its own and every looser mode's."""
    rank = _RANK[mode]
    return frozenset(c for m, calls in table.modes.items() if _RANK[m] <= rank for c in calls)


@dataclass(frozen=True, slots=True)
class Ledger:
    """The calls autoheal sent and has not undone, oldest first; ``unconfirmed``: those
    whose answer never came (sent again until one does)."""

    done: tuple[str, ...] = ()
    unconfirmed: frozenset[str] = frozenset()
    foreign: frozenset[str] = frozenset()
    """Calls the mode wants that the bot was found doing already, by someone else's
    hand: neither sent nor undone while the mode holds them (:func:`tidy`)."""


class Outcome(enum.Enum):
    """What became of one request."""

    OK = "ok"
    """Answered with a 2xx."""
    NOT_SENT = "not_sent"
    """It never reached the bot (connection refused, no credentials, a 4xx refusal):
    nothing changed there."""
    IN_EFFECT = "in_effect"
    """Not sent: the bot already does it (:class:`InEffect`). Someone else's doing,
    unless autoheal sent it before (its earlier answer lost): then as OK."""
    UNKNOWN = "unknown"
    """It may have reached the bot (a timeout, a reset, a 5xx). A call is then counted
    as done, so that its undo is owed, and unconfirmed, so that it is sent again while
    wanted; after an undo, the call stays owed its undo and becomes unconfirmed."""


@dataclass(frozen=True, slots=True)
class Step:
    call: str
    undo: bool
    path: str


def plan(table: BotTable, mode: str, ledger: Ledger) -> tuple[Step, ...]:
    """The requests to send, in order, in ``mode`` given what autoheal already did.

    Either calls (the mode wants them and they are not confirmed) or, once there are
    none, undos (of calls no mode as loose as this one holds), newest first. The
    sender sends every call (one that fails does not hold up the next: each only
    tightens), stops undoing at the first undo that does not come back OK, and asks
    again.
    """
    tighten = tuple(
        Step(name, False, table.calls[name].post)
        for name in table.modes.get(mode, ())
        if name not in ledger.foreign and (name not in ledger.done or name in ledger.unconfirmed)
    )
    if tighten:
        return tighten
    keep = held(table, mode)
    loosen = []
    for name in reversed(ledger.done):
        call = table.calls.get(name)
        if name in keep or call is None or call.undo is None:
            continue  # a call no longer in the table: left for the operator
        loosen.append(Step(name, True, call.undo))
    return tuple(loosen)


def settle(ledger: Ledger, step: Step, outcome: Outcome) -> Ledger:
    """The ledger after ``step`` came back with ``outcome``."""
    name, foreign = step.call, ledger.foreign
    if not step.undo:
        if outcome is Outcome.NOT_SENT:
            return ledger
        if outcome is Outcome.IN_EFFECT and name not in ledger.done:
            return replace(ledger, foreign=foreign | {name})
        done = ledger.done if name in ledger.done else (*ledger.done, name)
        if outcome in (Outcome.OK, Outcome.IN_EFFECT):
            return Ledger(done, ledger.unconfirmed - {name}, foreign)
        return Ledger(done, ledger.unconfirmed | {name}, foreign)
    if outcome is Outcome.OK:
        kept = tuple(c for c in ledger.done if c != name)
        return Ledger(kept, ledger.unconfirmed - {name}, foreign)
    if outcome is Outcome.UNKNOWN:
        # The undo may have reached the bot: the call is still owed its undo, and is
        # sent again if a mode wants it back (found by the property test).
        return Ledger(ledger.done, ledger.unconfirmed | {name}, foreign)
    return ledger


def tidy(table: BotTable, mode: str, ledger: Ledger) -> Ledger:
    """Forget someone else's calls once the mode no longer holds them: the next mode
    that wants one asks the bot again."""
    keep = held(table, mode)
    if ledger.foreign <= keep:
        return ledger
    return replace(ledger, foreign=ledger.foreign & keep)


def forgotten(ledger: Ledger) -> Ledger:
    """The bot restarted and lost what it was told (freqtrade keeps ``stopentry`` and
    ``stop`` in memory): nothing autoheal did is in force, nothing is owed an undo, and
    what the mode wants is sent again. Nobody else's call is in force either."""
    del ledger
    return Ledger()


def ledger_to_doc(ledger: Ledger) -> dict[str, object]:
    return {
        "done": list(ledger.done),
        "unconfirmed": sorted(ledger.unconfirmed),
        "foreign": sorted(ledger.foreign),
    }


def ledger_from_doc(doc: object) -> tuple[Ledger, str]:
    """Read the saved ledger: ``(ledger, problem)``; a problem ("" when none) means
    the ledger could not be read and is taken as empty (nothing will be undone)."""
    if doc is None:
        return Ledger(), ""
    if not isinstance(doc, dict):
        return Ledger(), "not a JSON object"
    done, unconfirmed = doc.get("done"), doc.get("unconfirmed", [])
    foreign = doc.get("foreign", [])
    for value, key in ((done, "done"), (unconfirmed, "unconfirmed"), (foreign, "foreign")):
        if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
            return Ledger(), f"'{key}' is not a list of call names"
    assert isinstance(done, list) and isinstance(unconfirmed, list)
    assert isinstance(foreign, list)
    names = tuple(dict.fromkeys(done))
    mine = frozenset(names)
    return Ledger(names, frozenset(unconfirmed) & mine, frozenset(foreign) - mine), ""
