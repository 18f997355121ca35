"""Watches ``STOP.TXT`` and ``global_flags.json`` for an operator's hand.

An operator who creates ``STOP.TXT`` enters the failsafe; one who removes it, or
writes ``{"failsafe_active": false}``, clears it. Our own writes are told apart
from the operator's by comparing the files with what the core's state says they
should be. A flags file that does not parse leaves the state alone (the guard
already fails closed on it) and raises an alert until it is valid again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from autoheal.core import OperatorClearedFailsafe, OperatorEnteredFailsafe, OperatorSetReduceOnly
from autoheal.store.atomic import write_json_atomic
from autoheal.store.flags import FLAGS_FILENAME, Flags, read_flags, stop_file_present
from autoheal.store.journal import JOURNAL_FILENAME

if TYPE_CHECKING:
    from autoheal.daemon.loop import Daemon

log = logging.getLogger("autoheal")

ALERT_NAME = "flags_invalid"


class KillSwitchWatcher:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self._written: Flags | None = None
        self._alerted: str | None = None

    def expect(self, flags: Flags) -> None:
        self._written = flags

    def startup(self) -> None:
        """A failsafe found on disk survives the daemon: re-enter it if the state lost it."""
        self.reconcile(startup=True)

    def reconcile(self, *, startup: bool = False) -> None:
        d = self.daemon
        active = d.state.failsafe is not None
        stop = stop_file_present(d.stop_file)
        read = read_flags(d.runtime_dir)
        if read.flags is None:
            self._alert(read.detail)
        else:
            self._clear_alert()
        if not active and stop:
            log.warning("operator_stop_file_created path=%s", d.stop_file)
            d.journal_event("operator_kill_switch", reason="stop_file_created", actor="operator")
            d.apply(OperatorEnteredFailsafe("STOP.TXT present (created by hand)", "operator"))
            return
        # Under REDUCE_ONLY the daemon itself removed STOP.TXT (it would halt the unwinding).
        if active and not stop and not startup and d.state.reduce_only is None:
            log.warning("operator_stop_file_removed path=%s", d.stop_file)
            d.journal_event("operator_kill_switch", reason="stop_file_removed", actor="operator")
            d.apply(OperatorClearedFailsafe("STOP.TXT removed by hand", "operator"))
            return
        flags = read.flags
        if flags is None or read.missing:
            return
        if startup and flags.failsafe_active and not active:
            d.apply(
                OperatorEnteredFailsafe(
                    flags.reason or "failsafe_active in global_flags.json",
                    flags.set_by or "operator",
                )
            )
            return
        if flags != self._written and self._reduce_only_by_hand(flags, active=active):
            return
        if active and not flags.failsafe_active and flags != self._written:
            log.warning("operator_flags_cleared_failsafe")
            d.journal_event("operator_kill_switch", reason="flags_cleared", actor="operator")
            d.apply(
                OperatorClearedFailsafe(
                    "failsafe_active=false written to global_flags.json", "operator"
                )
            )
        elif not active and flags.failsafe_active and flags != self._written:
            log.warning("operator_flags_entered_failsafe")
            d.journal_event("operator_kill_switch", reason="flags_entered", actor="operator")
            d.apply(
                OperatorEnteredFailsafe(
                    flags.reason or "failsafe_active=true written by hand",
                    flags.set_by or "operator",
                )
            )

    def _reduce_only_by_hand(self, flags: Flags, *, active: bool) -> bool:
        """An operator wrote mode REDUCE_ONLY, or wrote it away; True when it acted."""
        d = self.daemon
        if flags.mode == "REDUCE_ONLY" and d.state.reduce_only is None:
            log.warning("operator_flags_reduce_only")
            d.journal_event("operator_kill_switch", reason="flags_reduce_only", actor="operator")
            if active and not flags.failsafe_active:
                d.apply(
                    OperatorClearedFailsafe("failsafe_active=false written by hand", "operator")
                )
            d.apply(
                OperatorSetReduceOnly(
                    flags.reason or "mode REDUCE_ONLY written to global_flags.json",
                    flags.set_by or "operator",
                )
            )
            return True
        if d.state.reduce_only is not None and flags.mode != "REDUCE_ONLY":
            log.warning("operator_flags_left_reduce_only mode=%s", flags.mode)
            d.journal_event(
                "operator_kill_switch", reason="flags_left_reduce_only", actor="operator"
            )
            if flags.failsafe_active or flags.mode == "SIGNAL_READ_ONLY":
                d.apply(OperatorEnteredFailsafe("mode written back to a full halt", "operator"))
            else:
                d.apply(OperatorClearedFailsafe(f"mode {flags.mode} written by hand", "operator"))
            return True
        return False

    def _alert(self, detail: str) -> None:
        if self._alerted == detail:
            return
        self._alerted = detail
        d = self.daemon
        log.error(
            "flags_invalid file=%s detail=%s; keeping the last valid state (the guard halts)",
            d.runtime_dir / FLAGS_FILENAME,
            detail,
        )
        d.journal_event("alert", reason=ALERT_NAME, data={"detail": detail})
        alerts = d.runtime_dir / "alerts"
        try:
            alerts.mkdir(exist_ok=True)
            write_json_atomic(
                alerts / f"{ALERT_NAME}.json",
                {
                    "alert": ALERT_NAME,
                    "file": FLAGS_FILENAME,
                    "detail": detail,
                    "ts": d.wall(),
                },
            )
        except OSError as exc:
            log.error("alert_write_failed error=%s", exc)

    def _clear_alert(self) -> None:
        if self._alerted is None:
            return
        self._alerted = None
        path = self.daemon.runtime_dir / "alerts" / f"{ALERT_NAME}.json"
        path.unlink(missing_ok=True)
        log.info("flags_valid_again")

    async def watch(self) -> None:
        """React to changes at once (inotify through watchfiles); the heartbeat also reconciles.

        The same watcher wakes the command queue when the journal's WAL changes (a CLI
        submitted a command), so neither needs a fast poll. ``step=100`` bounds the
        watcher's wake-ups to 10 a second: its thread takes the GIL at every step.
        """
        import watchfiles

        d = self.daemon
        dirs = {d.runtime_dir, d.stop_file.parent}
        switch = {d.stop_file.name, FLAGS_FILENAME}
        journal = {JOURNAL_FILENAME, f"{JOURNAL_FILENAME}-wal"}

        def interesting(_change: object, path: str) -> bool:
            name = path.rsplit("/", 1)[-1]
            return name in switch or name in journal

        async for changes in watchfiles.awatch(
            *dirs, watch_filter=interesting, recursive=False, debounce=30, step=100
        ):
            names = {path.rsplit("/", 1)[-1] for _, path in changes}
            if names & journal:
                d.commands.poke()
            if names & switch:
                self.reconcile()
