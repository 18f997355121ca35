"""The heartbeat: the daemon's proof of life, and what is done once a beat.

Every ``heartbeat_interval`` the beat sends :data:`~autoheal.daemon.interpreter.TICK`
through the stream (the consumer turns: the watchdog's proof), writes
``auto_heal.heartbeat.json``, then calls its subscribers with the beat's number, in
order: the kill switch's safety net (:func:`kill_switch_beat`), readiness
(:class:`Readiness`), the health document's refresh, systemd's ``STATUS=``, the log
rotation. Beat 0 is written at start, so a reader that finds the health document
also finds the proof of life.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from anyio.abc import TaskGroup

from autoheal.core.stages import Stage
from autoheal.daemon import files
from autoheal.daemon.clock import Clock
from autoheal.daemon.interpreter import TICK, Interpreter, Item
from autoheal.daemon.killswitch import KillSwitch
from autoheal.daemon.persist import DaemonFacts, Persist
from autoheal.daemon.runtime import Runtime
from autoheal.daemon.systemd import SystemdNotifier
from autoheal.daemon.watch import DirectoryWatch

__all__ = [
    "LOG_ROTATE_EVERY",
    "RECONCILE_EVERY",
    "Beat",
    "Readiness",
    "every",
    "kill_switch_beat",
    "rotate_logs",
    "systemd_status",
]

log = logging.getLogger("autoheal")

#: Heartbeats between checks of the services' log sizes (rotation also happens at each start).
LOG_ROTATE_EVERY = 10
#: While the watch runs, a beat reads the kill-switch files every this many.
RECONCILE_EVERY = 10

OnBeat = Callable[[int], None]


class Beat:
    """Beats every ``interval`` until cancelled.

    Args:
        clock: the daemon's clock.
        interval: seconds between beats.
        send: the consumer's stream (for :data:`TICK`).
        runtime_dir: where ``auto_heal.heartbeat.json`` is written.
        facts: the daemon's facts (its loop lag).
        each: called with the beat's number after each beat, in order.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        interval: float,
        send: Callable[[Item], Awaitable[None]],
        runtime_dir: Path,
        facts: DaemonFacts,
        each: Sequence[OnBeat],
    ) -> None:
        self._clock = clock
        self._interval = interval
        self._send = send
        self._dir = runtime_dir
        self._facts = facts
        self._each = tuple(each)

    def first(self) -> None:
        """Beat 0: a started daemon has a heartbeat at once, not one interval later."""
        files.write_daemon_heartbeat(self._dir, seq=0, loop_lag=0.0, now_wall=self._clock.wall())

    async def run(self) -> None:
        clock, interval = self._clock, self._interval
        next_at = clock.now()
        seq = 0
        while True:
            next_at += interval
            await clock.sleep_until(next_at)
            self._facts.loop_lag = max(0.0, clock.now() - next_at)
            if next_at < clock.now() - interval:
                next_at = clock.now()
            seq += 1
            await self._send(TICK)  # the consumer's proof of life (the watchdog's)
            files.write_daemon_heartbeat(
                self._dir, seq=seq, loop_lag=self._facts.loop_lag, now_wall=clock.wall()
            )
            for on_beat in self._each:
                on_beat(seq)


def kill_switch_beat(
    watch: DirectoryWatch, killswitch: KillSwitch, interpreter: Interpreter
) -> OnBeat:
    """The kill switch's safety net, once a beat.

    The watch hears the kill-switch files at once: reading them every beat is needed
    only while it does not run, and every few beats in case it missed something (the
    risk latch, unwatched, is checked with one ``lstat``). Failed writes are retried on
    time either way (``sync_switch``).
    """

    def on_beat(seq: int) -> None:
        seen = interpreter.runtime.state.switch.latch_on_disk
        if not watch.watching or seq % RECONCILE_EVERY == 0 or killswitch.latch_changed(seen):
            interpreter.reconcile_switch()
        else:
            interpreter.sync_switch()

    return on_beat


def every(beats: int, on_beat: Callable[[], None]) -> OnBeat:
    """Call ``on_beat()`` every ``beats`` beats."""

    def maybe(seq: int) -> None:
        if seq % beats == 0:
            on_beat()

    return maybe


def rotate_logs(task_group: TaskGroup, rotate: Callable[[], Awaitable[None]]) -> OnBeat:
    """Start the services' log rotation every :data:`LOG_ROTATE_EVERY` beats (its own task)."""

    async def run() -> None:
        await rotate()

    def start() -> None:
        task_group.start_soon(run)

    return every(LOG_ROTATE_EVERY, start)


class Readiness:
    """``READY=1`` after the first full probe round (DESIGN.md §5).

    Ready once every probe runner has reported and every component runs (or is held,
    or is not in OBSERVE: being healed is a known state).

    Args:
        runtime: the core's state.
        all_reported: whether every probe runner has delivered a result.
        running: whether a component's process runs.
        facts: the daemon's facts (``ready`` is set here).
        persist: told the document changed.
        notifier: systemd.
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        all_reported: Callable[[], bool],
        running: Callable[[str], bool],
        facts: DaemonFacts,
        persist: Persist,
        notifier: SystemdNotifier,
    ) -> None:
        self._runtime = runtime
        self._all_reported = all_reported
        self._running = running
        self._facts = facts
        self._persist = persist
        self._notifier = notifier

    def _all_probed(self) -> bool:
        return self._all_reported() and all(
            self._running(n) or cs.held or cs.stage is not Stage.OBSERVE
            for n, cs in self._runtime.state.components.items()
        )

    def __call__(self, _seq: int) -> None:
        if self._facts.ready or not self._all_probed():
            return
        self._facts.ready = True
        self._persist.mark_health()
        summary = self._runtime.summary()
        self._notifier.ready(summary)
        log.info("ready %s", summary)


def systemd_status(notifier: SystemdNotifier, runtime: Runtime) -> OnBeat:
    """systemd's ``STATUS=``: the one-line summary, each beat (when under systemd)."""

    def on_beat(_seq: int) -> None:
        if notifier.enabled:
            notifier.status(runtime.summary())

    return on_beat
