"""The disk's acts in a run: a fault window, an event fault, a power loss.

:class:`SimDisk` holds one seed's simulated disk (:mod:`autoheal.sim.disk`: the
ledger and the fault windows) and its change-event faults
(:mod:`autoheal.sim.events`), draws each act from the run's generator, and says
what the trace records of it (never a temporary path). :func:`sim_disk` sets it all
up for a run.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from autoheal.core.switch import RETRY_CAP_S
from autoheal.daemon.beat import RECONCILE_EVERY
from autoheal.sim.disk import DiskFaults, FaultWindow, Ledger, simulated_disk
from autoheal.sim.events import EventFaults, EventWindow, faulty_watch
from autoheal.sim.profile import FaultProfile

__all__ = ["EVENT_LAG_S", "GRACE_S", "SimDisk", "sim_disk"]

#: After a write fault's window ends, the daemon's kill-switch writes are retried on a
#: backoff capped at ``RETRY_CAP_S`` (and the state at the next beat): until then a
#: failsafe may be invisible in the files because the disk refused it.
GRACE_S = RETRY_CAP_S + 5.0
#: After a change event was dropped, held or delayed, the daemon learns of the change
#: at its periodic read of the kill-switch files at the latest: every
#: ``RECONCILE_EVERY`` beats of ``heartbeat_interval`` (5 s in the simulated config),
#: and one beat more for the phase.
EVENT_LAG_S = (RECONCILE_EVERY + 1) * 5.0


@dataclass
class SimDisk:
    """One seed's disk and change events, and the acts on them."""

    root: Path
    ledger: Ledger
    faults: DiskFaults
    events: EventFaults
    write_fault_until: float = -math.inf
    """The end of the last window that made writes fail."""
    stalled_until: float = -math.inf
    """A latency window's end: the stalled loop reads the files late (excused)."""
    power_losses: int = 0
    emptied: set[str] = field(default_factory=set)
    """The file names the last power loss left empty."""
    reverted: dict[str, int] = field(default_factory=dict)

    def draw_fault(self, rng: random.Random, profile: FaultProfile) -> dict[str, Any]:
        """One of the profile's disk faults, for a drawn time (what :meth:`fault` does)."""
        if not profile.disk_faults:
            return {"act": "disk_fault", "on": False}
        kind = rng.choice(profile.disk_faults)
        duration = round(rng.uniform(1.0, 60.0), 3)
        rate = rng.choice((0.2, 0.5, 1.0))
        plan: dict[str, Any] = {"act": "disk_fault", "kind": kind, "s": duration, "rate": rate}
        if kind == "latency":
            plan["max_s"] = rng.choice((0.5, 5.0, 20.0))
        return plan

    def fault(self, plan: dict[str, Any], now: float) -> dict[str, Any]:
        """Switch the disk fault ``plan`` holds (:meth:`draw_fault`) on."""
        if plan.get("on") is False:
            return {"act": "disk_fault", "on": False}
        kind, duration, rate = plan["kind"], float(plan["s"]), float(plan["rate"])
        latency = (0.05, float(plan["max_s"])) if kind == "latency" else (0.0, 0.0)
        self.faults.open(FaultWindow(kind, now + duration, rate, latency))
        if kind != "latency":
            self.write_fault_until = max(self.write_fault_until, now + duration)
        else:  # a stalled loop reads the files late, as after a lost event (seed 632)
            self.stalled_until = max(self.stalled_until, now + duration)
        doc: dict[str, Any] = {"act": "disk_fault", "kind": kind, "s": duration, "rate": rate}
        if kind == "latency":
            doc["max_s"] = latency[1]
        return doc

    def draw_event_fault(self, rng: random.Random, profile: FaultProfile) -> dict[str, Any]:
        """One of the profile's change-event faults, for a drawn time."""
        if not profile.event_faults:
            return {"act": "event_fault", "on": False}
        kind = rng.choice(profile.event_faults)
        duration = round(rng.uniform(1.0, 60.0), 3)
        rate = rng.choice((0.5, 1.0))
        plan: dict[str, Any] = {"act": "event_fault", "kind": kind, "s": duration, "rate": rate}
        if kind == "late":
            plan["max_delay_s"] = rng.choice((2.0, 10.0, 60.0))
        return plan

    def event_fault(self, plan: dict[str, Any], now: float) -> dict[str, Any]:
        """Switch the change-event fault ``plan`` holds (:meth:`draw_event_fault`) on."""
        if plan.get("on") is False:
            return {"act": "event_fault", "on": False}
        kind, duration, rate = plan["kind"], float(plan["s"]), float(plan["rate"])
        delay = (0.1, float(plan["max_delay_s"])) if kind == "late" else (0.0, 0.0)
        self.events.window = EventWindow(kind, now + duration, rate, delay)
        return {"act": "event_fault", "kind": kind, "s": duration, "rate": rate}

    def excused(self, now: float) -> bool:
        """Whether the files may not show the daemon's mind yet, for a reason that is
        not a bug: the disk refused a write whose retry has not come, or a change event
        was lost or late and the periodic read has not come."""
        return (
            now < self.write_fault_until + GRACE_S
            or now < self.events.last_struck + EVENT_LAG_S
            or now < self.stalled_until + EVENT_LAG_S
        )

    def writing(self) -> bool:
        """A fault window is on: a kill now lands on a failing or stalled write."""
        return bool(self.faults.active())

    def failsafe_saved(self, state_path: Path) -> bool:
        """Whether the durable state file (what a power loss leaves) holds a failsafe."""
        raw = self.ledger.durable_bytes(state_path)
        try:
            doc = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            return False
        return isinstance(doc, dict) and doc.get("failsafe") is not None

    def power_loss(self) -> list[str]:
        """Every modelled file back to its durable content; the names that changed."""
        self.power_losses += 1
        paths = self.ledger.power_loss()
        names = [self._name(p) for p in paths]
        for name in names:
            self.reverted[name] = self.reverted.get(name, 0) + 1
        self.emptied = {Path(p).name for p in paths if _size(p) == 0}
        return names

    def emptied_by_power_loss(
        self, lines: list[str], docs: Mapping[str, bytes | None]
    ) -> list[tuple[str, str]]:
        """The ``whole_documents`` lines about a document the last power loss left
        empty and nobody wrote since (a fresh name made durable unsynced): (name, line)."""
        out = []
        for name in sorted(self.emptied):
            if docs.get(name) != b"":
                self.emptied.discard(name)  # written since
                continue
            out += [(name, line) for line in lines if line.startswith(f"{name} ")]
        return out

    def quiet(self, now: float) -> None:
        """Faults off (the liveness phase): every window ends ``now``, and its grace runs
        on from there. A kill-switch write the disk refused just before is retried on its
        backoff, up to ``RETRY_CAP_S`` later (seed 1009: an operator's failsafe entered
        during an EIO window, its STOP.TXT written 30 s after the faults went off, was
        called invisible 5 s after)."""
        self.faults.clear()
        self.events.window = None
        self.write_fault_until = min(self.write_fault_until, now)
        self.stalled_until = min(self.stalled_until, now)

    def _name(self, path: str) -> str:
        name = Path(path).relative_to(self.root).as_posix()
        base = Path(name).name
        return "<temp>" if base.startswith(".") and base.endswith(".tmp") else name


def _size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


@contextmanager
def sim_disk(
    root: Path,
    rng: random.Random,
    now: Callable[[], float],
    jump: Callable[[float], None],
    exempt: tuple[str, ...] = (),
) -> Iterator[SimDisk]:
    """For a run: the disk's ledger and faults on ``root``, and the faulty watch.

    The fault and event generators are drawn from ``rng`` once, here, so how many
    writes and events a run makes never shifts its other draws. ``exempt``: name
    fragments of files the disk's faults leave alone (the simulated services' own
    heartbeats: their processes are faulted by the process acts).
    """
    faults = DiskFaults(random.Random(rng.getrandbits(64)), now)
    faults.jump = jump
    faults.exempt = exempt
    events = EventFaults(random.Random(rng.getrandbits(64)))
    with ExitStack() as stack:
        ledger = stack.enter_context(simulated_disk(root, faults))
        stack.enter_context(faulty_watch(events))
        yield SimDisk(root, ledger, faults, events)
