"""A seed's fault profile: which faults and operator acts are on, and how often.

Drawn first from the run's one :class:`random.Random`, printed at the start of a run,
and written as the trace's first line, so a failing seed says what it was exposed to.
Weights are relative (an act's chance is its weight over the sum); 0 turns it off.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from autoheal.sim.disk import FAULT_KINDS
from autoheal.sim.events import EVENT_KINDS

__all__ = ["ACTS", "FaultProfile", "draw_profile"]

#: Every act a step can draw, in a fixed order (the weights' order).
ACTS = (
    # process faults (FakeProcessControl, the heartbeat writer)
    "crash",
    "crash_loop",
    "spawn_fail",
    "hang",
    "slow_start",
    "ignore_stop",
    "pid_reuse",
    # the operator
    "command",
    "command_reused_key",
    "stop_create",
    "stop_remove",
    "flags_whole",
    "flags_partial",
    "flags_garbage",
    "reload",
    # the network, the fleet, the queue's lock (autoheal.sim.links)
    "fleet_halt",
    "fleet_run",
    "fleet_partition",
    "fleet_empty_restart",
    "fleet_slow",
    "http_fault",
    "queue_lock",
    # the daemon itself
    "daemon_kill",
    "daemon_term",
    # the disk (autoheal.sim.disk, autoheal.sim.events)
    "power_loss",
    "disk_fault",
    "event_fault",
    # nothing: time passes
    "wait",
)


@dataclass(frozen=True)
class FaultProfile:
    """What one seed is exposed to.

    Attributes:
        weights: act → relative weight (0: off).
        mean_gap_s: the mean virtual time between two steps.
        downtime_max_s: a killed daemon stays down up to this long.
        fiddle_while_down: the chance an operator touches the kill-switch files while
            the daemon is down (an act that must never read as a clear on restart).
        kill_checkpoints_max: a kill lands this many scheduler passes after the act
            before it at most (0: only between steps), to hit a command mid-flight.
        disk_faults: the kinds a ``disk_fault`` act may switch on (ENOSPC, EIO,
            EROFS, ENOTDIR, latency: :data:`autoheal.sim.disk.FAULT_KINDS`).
        event_faults: what an ``event_fault`` act may do to the change events.
    """

    weights: dict[str, int]
    mean_gap_s: float
    downtime_max_s: float
    fiddle_while_down: float
    kill_checkpoints_max: int
    disk_faults: tuple[str, ...] = ()
    event_faults: tuple[str, ...] = ()
    fleet: str = ""
    """``[fleet]`` configured with this ``on_lost`` (``degrade``/``halt``); "": no fleet."""
    http: bool = False
    """The exchange (an HTTP probe) is a dependency of the trader."""

    def describe(self) -> str:
        on = " ".join(f"{name}={w}" for name, w in self.weights.items() if w)
        off = ",".join(name for name, w in self.weights.items() if not w) or "-"
        return (
            f"profile: gap={self.mean_gap_s:g}s down<={self.downtime_max_s:g}s "
            f"fiddle_while_down={self.fiddle_while_down:g} "
            f"kill_checkpoints<={self.kill_checkpoints_max} "
            f"fleet={self.fleet or 'none'} http={'on' if self.http else 'off'} "
            f"| {on} | off: {off}"
            f" | disk: {','.join(self.disk_faults) or '-'}"
            f" events: {','.join(self.event_faults) or '-'}"
        )

    def to_doc(self) -> dict[str, object]:
        return asdict(self)


def draw_profile(rng: random.Random) -> FaultProfile:
    """A profile: each act on with a chance (the common ones more often), then its weight."""
    weights: dict[str, int] = {}
    for name in ACTS:
        if name in ("wait", "command", "crash"):
            weights[name] = rng.randint(2, 8)
        elif rng.random() < 0.7:
            weights[name] = rng.randint(1, 4)
        else:
            weights[name] = 0
    mean_gap_s = rng.choice((2.0, 5.0, 10.0, 20.0))
    downtime_max_s = rng.choice((0.0, 5.0, 30.0, 120.0))
    fiddle_while_down = rng.choice((0.0, 0.3, 0.8))
    kill_checkpoints_max = rng.choice((0, 4, 16, 40))
    # A share of seeds has a fleet, a share the exchange: seeds without either remain.
    fleet = rng.choice(("", "degrade", "halt"))
    http = rng.random() < 0.5
    for name in ACTS:
        if (name.startswith("fleet_") and not fleet) or (name == "http_fault" and not http):
            weights[name] = 0
    return FaultProfile(
        weights=weights,
        mean_gap_s=mean_gap_s,
        downtime_max_s=downtime_max_s,
        fiddle_while_down=fiddle_while_down,
        kill_checkpoints_max=kill_checkpoints_max,
        fleet=fleet,
        http=http,
        disk_faults=tuple(k for k in FAULT_KINDS if rng.random() < 0.6),
        event_faults=tuple(k for k in EVENT_KINDS if rng.random() < 0.6),
    )
