"""The invariant "replaying the observations through ``step`` gives the same transitions".

Each simulated daemon records what its interpreter stepped the core with: the state
before its first step, then every observation with the monotonic time and the policy
of that step (:class:`StepLog`, filled by :class:`autoheal.sim.daemon.SimDaemon`).
:class:`Replayer` steps a fresh copy of the core through the same list and compares
what comes out with what the daemon left behind:

* the ``stage_transition`` rows the daemon journaled, one for one, in order (the
  journal is what an operator reads after the fact: ``autoheal events``);
* the state the daemon holds (nothing but ``step`` changes it: no part of the shell
  edits the state behind the core's back).

It runs incrementally (each check replays only the new steps), so a run stays linear.
The observations are the simulator's record, not the journal's: the journal holds what
happened (transitions, probe changes, commands), not every observation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from autoheal.core.actions import LogTransition
from autoheal.core.errors import CommandRefusedError, IllegalCommandError
from autoheal.core.machine import step
from autoheal.core.observations import Observation
from autoheal.core.policy import Policy
from autoheal.core.state import RuntimeState
from autoheal.store.journal import Journal

__all__ = ["Replayer", "StepLog", "Transition"]

#: (component, from, to, reason, attempt): a transition as the journal holds it.
Transition = tuple[str, str, str, str, int]


@dataclass
class StepLog:
    """One daemon's steps of the core, as its interpreter made them."""

    initial: RuntimeState | None = None
    steps: list[tuple[Observation, float, Policy]] = field(default_factory=list)
    first_event: int = 0
    """The journal's last event id before the daemon's first step."""

    def record(self, state: RuntimeState, obs: Observation, now: float, policy: Policy) -> None:
        if self.initial is None:
            self.initial = state
        self.steps.append((obs, now, policy))


@dataclass
class Replayer:
    """Replays one :class:`StepLog` and compares, step list and journal growing."""

    log: StepLog
    state: RuntimeState | None = None
    done: int = 0
    replayed: list[Transition] = field(default_factory=list)
    journaled: list[Transition] = field(default_factory=list)
    last_event: int = -1
    failed: bool = False

    def check(self, journal: Journal, held: RuntimeState | None) -> list[str]:
        """What differs so far (once); ``held``: the daemon's state now (None: not known)."""
        log = self.log
        if log.initial is None or self.failed:
            return []
        if self.state is None:
            self.state, self.last_event = log.initial, log.first_event
        for obs, now, policy in log.steps[self.done :]:
            try:
                decision = step(self.state, obs, now, policy)
            except (IllegalCommandError, CommandRefusedError):
                continue
            self.state = decision.state
            self.replayed.extend(
                (a.component, a.from_stage.value, a.to_stage.value, a.reason, a.attempt)
                for a in decision.actions
                if isinstance(a, LogTransition)
            )
        self.done = len(log.steps)
        rows = journal.query(
            "SELECT id, component, reason, data FROM events"
            " WHERE kind = 'stage_transition' AND id > ? ORDER BY id",
            (self.last_event,),
        )
        for row in rows:
            self.journaled.append(_transition(row))
            self.last_event = row["id"]
        out = []
        if self.journaled != self.replayed:
            at = next(
                (
                    i
                    for i, (a, b) in enumerate(zip(self.journaled, self.replayed, strict=False))
                    if a != b
                ),
                min(len(self.journaled), len(self.replayed)),
            )
            out.append(
                f"transition {at}: journaled {self.journaled[at : at + 1]}, "
                f"replayed {self.replayed[at : at + 1]} "
                f"({len(self.journaled)} journaled, {len(self.replayed)} replayed)"
            )
        if held is not None and held != self.state:
            out.append("the daemon's state is not the replayed one")
        self.failed = bool(out)
        return out


def _transition(row: Any) -> Transition:
    data: dict[str, Any] = orjson.loads(row["data"])
    return (row["component"], data["from"], data["to"], row["reason"], data["attempt"])
