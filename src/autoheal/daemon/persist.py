"""What the daemon writes about itself: ``autoheal_state.json`` and ``health_v2.json``.

Two marks say what is due: the state (the core's state changed; saved durably,
before a command is answered) and the health document (anything it shows changed:
the state, a PID, the kill switch's knowledge, readiness). :meth:`Persist.flush`
writes what is due once for a batch of changes; at 500 services a save and a
document per observation made the start quadratic. Flushes take at most
:data:`FLUSH_DUTY` of the consumer's time (measured on the daemon's clock), and a
write that failed is retried at the next beat, not in a busy loop.

The health document is built when something in it may have changed, and written
when what a reader acts on changed (:func:`~autoheal.daemon.health.content_key`) or
every :data:`~autoheal.daemon.health.HEALTH_REFRESH_S`; the status page and
``/metrics`` get every document built (:attr:`Persist.last_health`), written or not,
so the page and the file cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoheal.daemon import files
from autoheal.daemon.clock import Clock
from autoheal.daemon.health import HEALTH_REFRESH_S, build_health, content_key, kill_switch_doc
from autoheal.daemon.runtime import Runtime
from autoheal.guard.scoped_record import HaltsReader

if TYPE_CHECKING:
    from autoheal.config import Config
    from autoheal.probes.result import ProbeResult

__all__ = ["FLUSH_DUTY", "DaemonFacts", "Persist"]

#: The most of the consumer's time that saving the state and the health document may
#: take: 0.3 ms flushes (10 services) run at once, 15 ms ones (500) at most every 150 ms.
FLUSH_DUTY = 0.1


@dataclass
class DaemonFacts:
    """What the health document says of the daemon itself (its ``daemon`` part).

    Set by those who know: the beat (``loop_lag``, ``ready``), the lifetime
    (``stopping``).
    """

    pid: int
    started_at: float
    chaos: bool
    config: str
    ready: bool = False
    stopping: bool = False
    loop_lag: float = 0.0

    def doc(self) -> dict[str, object]:
        return {
            "pid": self.pid,
            "started_at": self.started_at,
            "loop_lag_s": round(self.loop_lag, 6),
            "chaos": self.chaos,
            "config": self.config,
            "ready": self.ready,
            "stopped": self.stopping,
        }


class Persist:
    """Saves the state and writes the health document, when due.

    Args:
        runtime_dir: where both files live.
        clock: the daemon's clock.
        runtime: the core's state and policy.
        facts: the daemon's own facts.
        readings: the last probe result per (target, probe) (values, thresholds).
        pids: the current PID per component.
        config: the config in force (the stop file, the beat's interval, the page).
    """

    def __init__(
        self,
        runtime_dir: Path,
        *,
        clock: Clock,
        runtime: Runtime,
        facts: DaemonFacts,
        readings: Mapping[tuple[str, str], ProbeResult],
        pids: Callable[[], Mapping[str, int | None]],
        config: Callable[[], Config],
    ) -> None:
        self._dir = runtime_dir
        self._clock = clock
        self._runtime = runtime
        self._facts = facts
        self._readings = readings
        self._pids = pids
        self._config = config
        self.state_dirty = False
        self.health_dirty = True
        #: The consumer's next flush may run from then (monotonic).
        self.flush_after = -math.inf
        #: The last document built: what the status page streams.
        self.last_health: dict[str, Any] | None = None
        self._switch_in_health: object = None
        self._health_key = b""
        self._health_written_at = -math.inf
        #: The operator's scoped halts, for the health document (re-read on a change).
        self._scoped = HaltsReader(runtime_dir)

    # ------------------------------------------------------------------ marks

    def mark_state(self) -> None:
        self.state_dirty = True
        self.health_dirty = True

    def mark_health(self) -> None:
        self.health_dirty = True

    def dirty(self) -> bool:
        return self.state_dirty or self.health_dirty

    # ------------------------------------------------------------------ writes

    def to_wall(self) -> float:
        """Add to a monotonic time to get unix seconds."""
        return self._clock.wall() - self._clock.now()

    def save_state(self) -> None:
        """``autoheal_state.json``; a failed write stays due (each beat retries it)."""
        saved = files.save_state(
            self._dir, self._runtime.state, to_wall=self.to_wall(), now_wall=self._clock.wall()
        )
        self.state_dirty = not saved

    def health_doc(self) -> dict[str, Any]:
        """The health document, now (``/metrics``, Alertmanager and the fleet read it)."""
        to_wall = self.to_wall()
        state = self._runtime.state
        stop_file = self._config().paths.stop_file
        doc = build_health(
            state,
            self._runtime.policy,
            readings=self._readings,
            pids=self._pids(),
            to_wall=to_wall,
            now_wall=self._clock.wall(),
            daemon=self._facts.doc(),
            kill_switch=kill_switch_doc(state.switch, stop_file, to_wall=to_wall),
        )
        scoped = self._scoped.doc()
        doc["scoped_halts"] = scoped["halts"]
        doc["scoped_halts_error"] = scoped["error"]
        if self._facts.stopping:
            # The last document a stopping daemon writes: nothing supervises the runtime any
            # more (and its services are stopped), so it must not read as ready to trade.
            doc["dor"] = False
        return doc

    def latest_health(self) -> dict[str, Any] | None:
        """The last document built (the status page streams this very object)."""
        return self.last_health

    def write_health(self) -> None:
        """Build the document; write it when what it says changed (or to refresh it)."""
        self._switch_in_health = self._runtime.state.switch
        doc = self.health_doc()
        self.last_health = doc
        key = content_key(doc)
        now = self._clock.now()
        if key == self._health_key and now - self._health_written_at < HEALTH_REFRESH_S:
            self.health_dirty = False
            return
        if files.write_health(self._dir, doc):
            self.health_dirty = False
            self._health_key, self._health_written_at = key, now

    def flush(self) -> None:
        """Write what is due, once for a batch, and say when the next flush may run."""
        started = self._clock.now()
        if self.state_dirty:
            self.save_state()
        if self.health_dirty:
            self.write_health()
        ended = self._clock.now()
        self.flush_after = ended + (ended - started) * (1 / FLUSH_DUTY - 1)
        if self.dirty():  # a write failed (logged): the beats retry it, not a busy loop
            retry_at = ended + self._config().daemon.heartbeat_interval
            self.flush_after = max(self.flush_after, retry_at)

    def write_all(self) -> None:
        """Save the state and write the document now (start, reload, shutdown)."""
        self.save_state()
        self.write_health()

    def on_beat(self, _seq: int) -> None:
        """Each beat: build the document when something in it may have changed.

        Also for the status page's live stream, and to refresh its readings; not for
        nothing at 500 services.
        """
        if (
            self.health_dirty
            or self._runtime.state.switch != self._switch_in_health
            or self._config().daemon.status_listen is not None
            or self._clock.now() - self._health_written_at >= HEALTH_REFRESH_S
        ):
            self.write_health()
