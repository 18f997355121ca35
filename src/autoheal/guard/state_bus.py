"""The state bus: one JSON document shared by the trading processes, never torn, always valid.

Writes are validated against a :class:`StateSchema` first; a document that fails is
rejected with :class:`~autoheal.guard.errors.StateBusValidationError` and an alert
file (``alerts/state_bus_invalid.json``), and nothing on disk changes. A valid
document is written atomically to ``state_bus.json`` and then to
``state_bus.json.bak`` (the last-known-good copy), under an exclusive ``flock`` so
concurrent read-modify-writes do not lose updates. A writer killed at any point
leaves both files valid: each is either its old or its new version.

A read that finds ``state_bus.json`` corrupt (not JSON, truncated, wrong schema)
returns the backup, or the schema's defaults when the backup is bad too, and writes
the alert. It never raises and never crashes the caller; the next good write
repairs the file. The alert stays until :meth:`StateBus.clear_alert` (an operator
should see that it happened).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoheal.guard._filelock import locked
from autoheal.guard.errors import StateBusValidationError
from autoheal.guard.kill_switch import PathArg, runtime_dir_from_env
from autoheal.store import layout as runtime_files
from autoheal.store.alerts import clear_alert, write_alert
from autoheal.store.atomic import read_json, write_json_atomic

__all__ = ["DEFAULT_SCHEMA", "BusRead", "StateBus", "StateSchema"]

STATE_BUS_FILENAME = runtime_files.STATE_BUS
ALERT_NAME = "state_bus_invalid"
ALERT_RELPATH = Path(runtime_files.ALERTS_DIR) / f"{ALERT_NAME}.json"

log = logging.getLogger("autoheal.guard.state_bus")


@dataclass(frozen=True, slots=True)
class StateSchema:
    """Which top-level fields a state document may have and of which JSON types.

    Attributes:
        version: the required value of ``schema_version``.
        fields: field name → allowed Python types (``bool`` never passes as a number).
        defaults: the document used when nothing valid is on disk.
        allow_unknown: accept fields not listed (off: a typo is an error, not a new field).
    """

    version: int = 1
    fields: Mapping[str, tuple[type, ...]] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    allow_unknown: bool = False

    def validate(self, doc: object) -> list[str]:
        """Every problem with ``doc``; an empty list means valid."""
        if not isinstance(doc, dict):
            return [f"document is {type(doc).__name__}, not an object"]
        problems = []
        version = doc.get("schema_version")
        if isinstance(version, bool) or version != self.version:
            problems.append(f"schema_version must be {self.version}, got {version!r}")
        for key, value in doc.items():
            if key in ("schema_version", "updated_at"):
                continue
            types = self.fields.get(key)
            if types is None:
                if not self.allow_unknown:
                    problems.append(f"unknown field {key!r}")
                continue
            if isinstance(value, bool) and bool not in types:
                problems.append(f"{key} must be {'/'.join(t.__name__ for t in types)}, got bool")
            elif not isinstance(value, types):
                names = "/".join(t.__name__ for t in types)
                problems.append(f"{key} must be {names}, got {type(value).__name__}")
        updated = doc.get("updated_at")
        if updated is not None and (
            isinstance(updated, bool) or not isinstance(updated, int | float)
        ):
            problems.append("updated_at must be a number")
        return problems

    def default_doc(self) -> dict[str, Any]:
        return {"schema_version": self.version, **dict(self.defaults)}


#: The trading bot's state: mode and positions as the trader sees them, last signals,
#: per-component notes.
DEFAULT_SCHEMA = StateSchema(
    version=1,
    fields={
        "mode": (str,),
        "positions": (dict,),
        "signals": (dict,),
        "components": (dict,),
        "last_order": (dict, type(None)),
        "note": (str,),
    },
    defaults={"mode": "NORMAL", "positions": {}, "signals": {}, "components": {}},
)


@dataclass(frozen=True, slots=True)
class BusRead:
    """A read's result: ``source`` is ``primary``, ``backup`` or ``defaults``."""

    doc: dict[str, Any]
    source: str
    reason: str | None = None


class StateBus:
    """Validated, atomic, backed-up access to ``<runtime_dir>/state_bus.json``.

    Args:
        runtime_dir: the shared runtime directory (must exist); default
            ``AUTOHEAL_RUNTIME_DIR`` (``ValueError`` when neither is set).
        schema: what a valid document looks like.
        time_fn: wall-clock seconds for the ``updated_at`` label and alerts.
    """

    def __init__(
        self,
        runtime_dir: PathArg | None = None,
        *,
        schema: StateSchema = DEFAULT_SCHEMA,
        time_fn: Callable[[], float] = time.time,
    ) -> None:
        runtime = runtime_dir_from_env(runtime_dir, what="StateBus")
        self.path = runtime / STATE_BUS_FILENAME
        self.backup_path = self.path.with_name(STATE_BUS_FILENAME + ".bak")
        self.alert_path = runtime / ALERT_RELPATH
        self.schema = schema
        self._time_fn = time_fn

    def read(self) -> BusRead:
        """The current document; falls back to the backup, then to defaults, with an alert."""
        doc, problem = self._load(self.path)
        if doc is not None:
            return BusRead(doc, "primary")
        backup, _ = self._load(self.backup_path)
        source = "backup" if backup is not None else "defaults"
        if problem != "missing" or backup is not None:
            self._alert("read_corrupt", problem or "invalid", fallback=source)
        return BusRead(backup if backup is not None else self.schema.default_doc(), source, problem)

    def write(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and write ``doc`` (``updated_at`` is stamped); returns what was written.

        Raises:
            StateBusValidationError: the document fails the schema; nothing was written.
        """
        with locked(self.path):
            return self._write_unlocked(doc)

    def update(self, **changes: Any) -> dict[str, Any]:
        """Read, apply ``changes`` to the top level, validate and write, all under the lock.

        Raises:
            StateBusValidationError: the result fails the schema; nothing was written.
        """
        with locked(self.path):
            current = self.read().doc
            return self._write_unlocked({**current, **changes})

    def clear_alert(self) -> bool:
        """Remove the alert file (an operator's acknowledgement); returns whether it existed."""
        return clear_alert(self.alert_path.parent.parent, ALERT_NAME)

    def _write_unlocked(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        stamped = {**dict(doc), "updated_at": self._time_fn()}
        problems = self.schema.validate(stamped)
        if problems:
            self._alert("write_rejected", "schema_invalid", problems=problems)
            raise StateBusValidationError(problems)
        write_json_atomic(self.path, stamped)
        # Second, so a crash between the two leaves the old good document as backup.
        write_json_atomic(self.backup_path, stamped)
        return stamped

    def _load(self, path: Path) -> tuple[dict[str, Any] | None, str | None]:
        result = read_json(path)
        if result.doc is None:
            return None, result.reason
        if self.schema.validate(result.doc):
            return None, "schema_invalid"
        return result.doc, None

    def _alert(self, event: str, reason: str, **details: Any) -> None:
        log.error(
            "[state-bus] %s reason=%s %s",
            event,
            reason,
            " ".join(f"{k}={v}" for k, v in details.items()),
        )
        # An alert that cannot be written must not take the trader down: returned, not raised.
        error = write_alert(
            self.alert_path.parent.parent,
            ALERT_NAME,
            ts=self._time_fn(),
            event=event,
            reason=reason,
            file=str(self.path),
            **details,
        )
        if error is not None:
            log.error("[state-bus] cannot write alert %s: %s", self.alert_path, error)
