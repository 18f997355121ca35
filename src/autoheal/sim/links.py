"""The host's links to the outside in one run: the exchange, the fleet's Redis, the queue's lock.

One :class:`Links` per seed holds the stand-ins (:mod:`autoheal.sim.network`,
:mod:`autoheal.sim.fleet`, :mod:`autoheal.sim.queuelock`), their run-scoped patches,
the acts that switch their faults (and the operator's ``fleet halt|run``), the
invariant of a fleet HALT (:func:`fleet_halt_refuses_buy`), what the trace shows of
them, and the "sometimes" they reach. Whether a seed has a fleet and the exchange is
the profile's draw (:class:`autoheal.sim.profile.FaultProfile`); the queue's lock is
there for every seed.

The latencies and the lock's failures inside the daemon's own calls are drawn from a
generator seeded once from the run's :class:`random.Random`, so that how many calls
the daemon makes does not shift the steps' draws (both are deterministic).
"""

from __future__ import annotations

import random
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import anyio

from autoheal.core import fleet as core_fleet
from autoheal.core.fleet import SwitchRecord
from autoheal.core.state import RuntimeState
from autoheal.sim.files import EPOCH, SimFiles
from autoheal.sim.fleet import (
    FLEET_IO_TIMEOUT_S,
    FLEET_NAME,
    FLEET_POLL_S,
    FLEET_STALE_S,
    PARTITIONS,
    RedisStandIn,
    fleet_config,
    fleet_patches,
    fleet_set,
)
from autoheal.sim.invariants import KNOWN_BUGS
from autoheal.sim.network import HTTP_MODES, SimExchange, exchange_config, network_patches
from autoheal.sim.profile import FaultProfile
from autoheal.sim.queuelock import QueueLock, queue_lock_patches

__all__ = ["LINK_SOMETIMES", "Links", "fleet_halt_refuses_buy", "known_daemon_death"]

#: The "sometimes" of the links (counted per batch, like the run's own).
LINK_SOMETIMES = (
    "fleet_halt_applied",
    "fleet_halt_during_partition",
    "fleet_empty_restart",
    "fleet_run_after_halt",
    "fleet_lost",
    "http_refused",
    "http_timeout",
    "http_slow",
    "queue_lock_error_daemon",
    "queue_lock_error_submit",
)

#: A fleet HALT the daemon applied must be held within this long after an operator's
#: last clearing act (a local clear of the fleet's failsafe is undone by the next read
#: of the switch: within a poll, and a slow one).
HALT_GRACE_S = 2.0 * FLEET_POLL_S + 1.0
#: The same when the link failed meanwhile: a partition, or a switch set below the
#: version this host applied (after an empty restart), which the host reads as going
#: backwards and never applies (docs/fleet.md). The read that would apply it cannot
#: come, and the host is lost (``on_lost``) ``stale_after`` after its last good read
#: (seed 1177: an operator's local clear, a partition 1.7 s later; seed 1671: a HALT v1
#: set under the applied v18).
LOST_GRACE_S = FLEET_STALE_S + HALT_GRACE_S


def fleet_halt_refuses_buy(
    record_halt: bool,
    record_version: int,
    applied_version: int,
    lost: bool,
    gate: tuple[bool, str],
) -> list[str]:
    """While the fleet switch says HALT and this daemon applied that version, or cannot
    read the switch (fail closed: DEGRADED or halted), a ``TradingGate`` refuses a buy."""
    if not record_halt:
        return []
    seen = applied_version >= record_version
    if not (seen or lost) or not gate[0]:
        return []
    why = f"applied v{applied_version}" if seen else "the link is lost"
    return [f"fleet HALT v{record_version} in force ({why}) but a buy was allowed ({gate[1]})"]


def known_daemon_death(exc: BaseException) -> str | None:
    """The known bug a daemon's death is, if any: the queue's ``database is locked``
    escaping the command bridge (:data:`autoheal.sim.invariants.KNOWN_BUGS`)."""
    if isinstance(exc, BaseExceptionGroup):
        found = [known_daemon_death(e) for e in exc.exceptions]
        return found[0] if found and all(f == found[0] for f in found) else None
    bug = "queue_lock_error_kills_daemon"
    if isinstance(exc, sqlite3.OperationalError) and "database is locked" in str(exc):
        return bug if bug in KNOWN_BUGS else None
    return None


class Links:
    """The stand-ins of one seed and what the simulator does with them."""

    def __init__(self, rng: random.Random, profile: FaultProfile) -> None:
        self._rng = rng
        inner = random.Random(rng.getrandbits(64))
        self.fleet = profile.fleet
        self.http = profile.http
        self.redis = RedisStandIn(inner)
        self.exchange = SimExchange(inner)
        self.lock = QueueLock(inner)
        self.coverage: Counter[str] = Counter()
        self._last_set = ""
        self._pending_since: float | None = None
        self._pending_acts = 0
        self._link_failing = False
        """The link failed while a violation was pending (see :data:`LOST_GRACE_S`)."""

    def files(self, root: Any) -> SimFiles:
        """The seed's files, with its ``[dependencies.exchange]`` and ``[fleet]``."""
        links = (exchange_config() if self.http else "") + (
            fleet_config(self.fleet) if self.fleet else ""
        )
        return SimFiles(root, links=links, trader_deps=("exchange",) if self.http else ())

    @contextmanager
    def patches(self) -> Iterator[None]:
        with ExitStack() as stack:
            stack.enter_context(queue_lock_patches(self.lock))
            if self.http:
                stack.enter_context(network_patches(self.exchange))
            if self.fleet:
                stack.enter_context(fleet_patches(self.redis, lambda: EPOCH + anyio.current_time()))
            yield

    # ------------------------------------------------------------------ acts

    def draw(self, name: str) -> dict[str, Any]:
        """A link act's parameters, drawn from the seed (performed by :meth:`act`)."""
        rng = self._rng
        match name:
            case "fleet_partition":
                return {"act": name, "partition": rng.choice(PARTITIONS)}
            case "fleet_slow":
                return {"act": name, "latency_max": rng.choice((0.3, 1.5))}
            case "http_fault":
                return {"act": name, "mode": rng.choice(HTTP_MODES)}
            case "queue_lock":
                return {"act": name, "chance": rng.choice((0.2, 0.6, 1.0))}
        return {"act": name}

    def act(self, plan: dict[str, Any], files: SimFiles) -> dict[str, Any]:
        """Perform ``plan`` (:meth:`draw`); a fault that is on is switched off."""
        redis, name = self.redis, plan["act"]
        match name:
            case "fleet_halt" | "fleet_run":
                action = name.removeprefix("fleet_")
                config = files.load()
                if config is None:
                    return {"act": name, "config": "broken"}
                code, line = fleet_set(config, action, f"{action} by hand")
                if code == 0:
                    if action == "halt" and redis.partition is not None:
                        self.coverage["fleet_halt_during_partition"] += 1
                    if action == "run" and self._last_set == "halt":
                        self.coverage["fleet_run_after_halt"] += 1
                    self._last_set = action
                return {"act": name, "exit": code, "said": line}
            case "fleet_partition":
                redis.partition = None if redis.partition else plan["partition"]
                return {"act": name, "partition": redis.partition}
            case "fleet_empty_restart":
                redis.empty_restart()
                self.coverage["fleet_empty_restart"] += 1
                return {"act": name}
            case "fleet_slow":
                redis.latency_max = 0.0 if redis.latency_max else plan["latency_max"]
                return {"act": name, "latency_max": redis.latency_max}
            case "http_fault":
                self.exchange.mode = plan["mode"]
                return {"act": name, "mode": self.exchange.mode}
            case "queue_lock":
                self.lock.chance = 0.0 if self.lock.chance else plan["chance"]
                return {"act": name, "chance": self.lock.chance}
        raise ValueError(f"not a link act: {name}")

    def faults_off(self) -> None:
        """The liveness phase: the network whole again, the lock free."""
        self.redis.partition = None
        self.redis.latency_max = 0.0
        self.exchange.mode = "ok"
        self.lock.chance = 0.0

    # ------------------------------------------------------------------ checks

    def switch(self) -> SwitchRecord | None:
        """The switch record in Redis now (None: none, or not a valid one)."""
        raw = self.redis.get(core_fleet.switch_key(FLEET_NAME).encode())
        record = core_fleet.parse_switch(raw)
        return record if isinstance(record, SwitchRecord) and raw is not None else None

    def check(
        self,
        state: RuntimeState | None,
        gate: tuple[bool, str],
        flags_by_hand: bool,
        clear_acts: int,
        excused: bool = False,
    ) -> list[str]:
        """The fleet's invariant after a step: a violation counts when it is seen again
        :data:`HALT_GRACE_S` or more after it was first seen (:data:`LOST_GRACE_S` when
        the link failed meanwhile), with no clearing act of the operator
        (``clear_acts``, a running count) in between. ``excused``: the
        simulated disk refuses the daemon's writes (or did a moment ago): the files
        the gate reads cannot say the halt, and the daemon says so loudly (its
        write-failed alert), as for ``failsafe_visible``."""
        if not self.fleet or state is None or excused:
            self._pending_since = None
            return []
        if state.fleet.lost:
            self.coverage["fleet_lost"] += 1
        record = self.switch()
        halt = record is not None and record.state == "HALT"
        below = record is not None and record.version < state.fleet.version
        if below:
            # An operator's set (after an empty restart) under what this host applied: the
            # host reads it as going backwards and stays fail-closed (docs/fleet.md).
            self.coverage["fleet_switch_below_applied"] += 1
        if halt and state.failsafe is not None and state.failsafe.set_by == core_fleet.FLEET:
            self.coverage["fleet_halt_applied"] += 1
        found = fleet_halt_refuses_buy(
            halt,
            record.version if record is not None else 0,
            state.fleet.version,
            bool(state.fleet.lost),
            gate,
        )
        if not found or flags_by_hand:
            self._pending_since = None
            return []
        now = anyio.current_time()
        if self._pending_since is None or clear_acts != self._pending_acts:
            self._pending_since, self._pending_acts = now, clear_acts
            self._link_failing = False
        # A slow link whose calls may outlast the client's timeout (fleet_slow) fails
        # reads as a partition does (seed 7416: an operator's local clear of a fleet
        # HALT right after a good read, then every read for 6 s timed out: the re-halt
        # could not come, and the host is lost stale_after after its last good read).
        slow = self.redis.latency_max > FLEET_IO_TIMEOUT_S
        self._link_failing = (
            self._link_failing or below or slow or self.redis.partition is not None
        )
        grace = LOST_GRACE_S if self._link_failing else HALT_GRACE_S
        if now - self._pending_since < grace:
            return []
        return found

    def seen(self, state: RuntimeState | None) -> dict[str, Any]:
        """What the trace shows of the links after a step."""
        out: dict[str, Any] = {}
        if self.fleet and state is not None:
            out["fleet"] = [state.fleet.version, state.fleet.lost]
        return out

    def tally(self, coverage: Counter[str]) -> None:
        """Add what the stand-ins met to the run's coverage (at the end of a seed)."""
        seen = self.exchange.seen
        coverage["http_refused"] += seen["refused"]
        coverage["http_timeout"] += seen["timeout"] + seen["blackhole"]
        coverage["http_slow"] += seen["slow"]
        coverage["queue_lock_error_daemon"] += sum(
            n for entry, n in self.lock.failed.items() if entry != "submit"
        )
        coverage["queue_lock_error_submit"] += self.lock.failed["submit"]
        coverage.update(self.coverage)
