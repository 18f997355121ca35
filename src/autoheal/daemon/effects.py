"""The core's log, notice and alert actions, carried out: notices, alerts, transition
lines. The kill-switch files are written by ``killswitch`` (each outcome goes back to
the core); process actions are in ``services`` (they take time).

Every effect is logged with stable tokens and journaled; a failed write is logged
and never stops healing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from autoheal.core.actions import (
    ClearAlert,
    LogSwitchEvent,
    LogTransition,
    RaiseAlert,
    SendNotice,
)
from autoheal.store.alerts import clear_alert, write_alert
from autoheal.store.journal import Journal

if TYPE_CHECKING:
    from autoheal.daemon.notify import Notifier

log = logging.getLogger("autoheal")

FileAction = SendNotice | LogTransition | LogSwitchEvent | RaiseAlert | ClearAlert


class JournalEvent(Protocol):
    """The port that records one journal event (:meth:`Effects.journal_event`)."""

    def __call__(
        self,
        kind: str,
        *,
        component: str | None = None,
        reason: str | None = None,
        actor: str = "autoheal",
        data: Mapping[str, object] | None = None,
    ) -> None: ...


class Effects:
    """Executes :data:`FileAction` s for one runtime directory.

    Args:
        runtime_dir: where ``alerts/`` lives.
        wall: unix time, for notification and alert stamps.
        journal: the journal (None: events are only logged).
        notifier: ``notifications.log`` and the webhooks (None: notices are only logged).
    """

    def __init__(
        self,
        runtime_dir: Path,
        *,
        wall: Callable[[], float],
        journal: Journal | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.runtime_dir = runtime_dir
        self._wall = wall
        self._journal = journal
        self._notifier = notifier

    def execute(self, action: FileAction) -> None:
        match action:
            case RaiseAlert():
                log.error(
                    "alert name=%s file=%s detail=%s", action.name, action.file, action.detail
                )
                self.journal_event(
                    "alert", reason=action.name, data={"file": action.file, "detail": action.detail}
                )
                err = write_alert(
                    self.runtime_dir,
                    action.name,
                    ts=self._wall(),
                    file=action.file,
                    detail=action.detail,
                )
                if err is not None:
                    log.error("alert_write_failed name=%s error=%s", action.name, err)
            case ClearAlert():
                if clear_alert(self.runtime_dir, action.name):
                    log.info("alert_cleared name=%s detail=%s", action.name, action.detail)
                self.journal_event(
                    "alert_cleared",
                    reason=action.name,
                    data={"file": action.file, "detail": action.detail},
                )
            case SendNotice():
                self.notify(action)
            case LogSwitchEvent():
                log.warning("%s %s actor=%s", action.kind, action.token, action.actor)
                self.journal_event(action.kind, reason=action.token, actor=action.actor)
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

    def journal_event(
        self,
        kind: str,
        *,
        component: str | None = None,
        reason: str | None = None,
        actor: str = "autoheal",
        data: Mapping[str, object] | None = None,
    ) -> None:
        """Record a journal event; a journal that fails is logged, never fatal."""
        journal = self._journal
        if journal is None:
            return
        try:
            journal.record(
                kind,
                component=component,
                reason=reason,
                actor=actor,
                data=None if data is None else dict(data),
                ts=self._wall(),
            )
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
        notifier = self._notifier
        if notifier is None:
            return
        try:
            notifier.notify(
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
