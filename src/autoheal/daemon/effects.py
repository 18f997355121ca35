"""The core's file, log and notice actions, carried out: flags, ``STOP.TXT``, notices,
transition lines. Process actions are not here (they take time: see ``services``).

Every effect is logged with stable tokens and journaled; a failed write is logged
and never stops healing (the next step writes the flags again).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autoheal.core.actions import LogTransition, RemoveStop, SendNotice, WriteFlags, WriteStop
from autoheal.store.flags import Flags, remove_stop_file, write_flags, write_stop_file
from autoheal.store.journal import Journal

log = logging.getLogger("autoheal")

FileAction = WriteFlags | WriteStop | RemoveStop | SendNotice | LogTransition


class Effects:
    """Executes :data:`FileAction` s for one runtime directory.

    Args:
        runtime_dir: where ``global_flags.json`` lives.
        stop_file: the ``STOP.TXT`` path.
        wall: unix time, for ``since`` and notification stamps.
        on_flags_written: told which flags we wrote (so our own write is not
            mistaken for an operator's).
    """

    def __init__(
        self,
        runtime_dir: Path,
        stop_file: Path,
        *,
        wall: Callable[[], float],
        on_flags_written: Callable[[Flags], None],
    ) -> None:
        self.runtime_dir = runtime_dir
        self.stop_file = stop_file
        self._wall = wall
        self._on_flags_written = on_flags_written
        self.journal: Journal | None = None
        self.notifier: Any = None

    def execute(self, action: FileAction) -> None:
        match action:
            case WriteFlags():
                self._write_flags(action)
            case WriteStop():
                try:
                    write_stop_file(self.stop_file, action.reason, set_by=action.set_by)
                except OSError as exc:
                    log.error("stop_file_write_failed error=%s", exc)
                log.warning("stop_file_written path=%s reason=%s", self.stop_file, action.reason)
            case RemoveStop():
                remove_stop_file(self.stop_file)
                log.warning(
                    "stop_file_removed path=%s by=%s reason=%s",
                    self.stop_file,
                    action.set_by,
                    action.reason,
                )
            case SendNotice():
                self.notify(action)
            case LogTransition():
                log.info(
                    "stage_transition component=%s from=%s to=%s reason=%s attempt=%d/%d",
                    action.component,
                    action.from_stage,
                    action.to_stage,
                    action.reason,
                    action.attempt,
                    action.max_attempts,
                )
                self.journal_event(
                    "stage_transition",
                    component=action.component,
                    reason=action.reason,
                    data={
                        "from": action.from_stage.value,
                        "to": action.to_stage.value,
                        "attempt": action.attempt,
                        "max_attempts": action.max_attempts,
                    },
                )

    def _write_flags(self, action: WriteFlags) -> None:
        flags = Flags(
            action.failsafe_active, action.mode, action.reason, self._wall(), action.set_by
        )
        try:
            write_flags(self.runtime_dir, flags)
            self._on_flags_written(flags)
        except OSError as exc:
            log.error("flags_write_failed error=%s", exc)
        log.info(
            "flags_written failsafe_active=%s mode=%s reason=%s",
            action.failsafe_active,
            action.mode,
            action.reason,
        )

    def journal_event(self, kind: str, **fields: Any) -> None:
        """Record a journal event; a journal that fails is logged, never fatal."""
        if self.journal is None:
            return
        try:
            self.journal.record(kind, actor=fields.pop("actor", "autoheal"), **fields)
        except Exception as exc:
            log.error("journal_write_failed kind=%s error=%s", kind, exc)

    def notify(self, action: SendNotice) -> None:
        """``notifications.log`` and the webhooks' outbox, plus a log line and an event."""
        from autoheal.daemon.notify import Notification

        log.warning(
            "notice kind=%s target=%s reason=%s message=%s",
            action.kind,
            action.target,
            action.reason,
            action.message,
        )
        self.journal_event(
            "notice",
            component=action.target,
            reason=action.reason,
            data={"kind": action.kind, "message": action.message},
        )
        if self.notifier is None:
            return
        try:
            self.notifier.notify(
                Notification(
                    kind=action.kind,
                    component=action.target,
                    reason=action.reason,
                    message=action.message,
                    ts=self._wall(),
                    data={},
                )
            )
        except Exception as exc:
            log.error("notify_failed error=%s", exc)
