"""The simulated operator: commands through the real queue, and hands on the files.

Every act is drawn from the run's one :class:`random.Random` into a plain dict (a
``draw_*`` method: the act's every parameter, nothing else), and performed from that
dict alone (the method of the act's name), so that a run can replay a script of acts
without the generator (:mod:`autoheal.sim.script`). Performing returns what the trace
records of it (no command id: those are uuid4s; the keys are the seed's own).

* commands (``restart``/``stop``/``start`` a service, ``failsafe_enter``/``clear``/
  ``reduce_only``) through :func:`autoheal.store.commands.submit`, as the CLI queues
  them, under a fresh key or a reused one (the same command again, or another one);
* ``STOP.TXT`` created and removed by hand;
* ``global_flags.json`` written by hand: a whole document, a partial one, or garbage;
* the config edited (a valid change or a broken file), which the daemon's config
  watch reloads.

The acts that may clear a failsafe are told to the :class:`ClearLedger`: only while
a daemon runs (a file touched while none runs is not a clear: DESIGN.md §2, a
failsafe is never cleared by restarting the daemon).
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable
from typing import Any

import anyio
import orjson

from autoheal.sim.files import EPOCH, SERVICES, SimFiles
from autoheal.sim.invariants import ClearLedger, KeyLedger, Submission
from autoheal.store import commands as queue
from autoheal.store import layout
from autoheal.store.journal import Journal

__all__ = ["COMMAND_TTL_S", "Operator"]

#: Seconds a queued command waits for a daemon before it expires: the CLI's (at least
#: a minute). Stamped on the simulated wall clock, which the daemon's command bridge
#: claims and expires on too: a command queued while the daemon is down long enough is
#: rejected ``expired`` by the next one, which is a final status.
COMMAND_TTL_S = 60.0

_COMPONENT_COMMANDS = ("restart", "stop", "start")
_RUNTIME_COMMANDS = ("failsafe_enter", "failsafe_clear", "failsafe_reduce_only")

_WHOLE_FLAGS = (
    {"failsafe_active": False, "mode": "NORMAL", "reason": "all clear", "set_by": "alice"},
    {"failsafe_active": True, "mode": "SIGNAL_READ_ONLY", "reason": "halt", "set_by": "alice"},
    {"failsafe_active": True, "mode": "REDUCE_ONLY", "reason": "unwind", "set_by": "alice"},
)
_PARTIAL_FLAGS = (
    {"failsafe_active": False},
    {"failsafe_active": True},
    {"mode": "REDUCE_ONLY"},
    {"mode": "NORMAL"},
    {"reason": "just a note"},
)
_GARBAGE = (b'{"failsafe_active": fal', b"\x00\xff\xfe", b"[]", b"", b'{"mode": 7}')


class Operator:
    """One operator at the keyboard.

    Args:
        daemon_up: whether a daemon runs now (a file act then may clear).
        journal_max_id: the journal's newest event id now.
    """

    def __init__(
        self,
        rng: random.Random,
        files: SimFiles,
        journal: Journal,
        clears: ClearLedger,
        keys: KeyLedger,
        *,
        daemon_up: Callable[[], bool],
        journal_max_id: Callable[[], int],
    ) -> None:
        self._rng = rng
        self._files = files
        self._journal = journal
        self._clears = clears
        self._keys = keys
        self._daemon_up = daemon_up
        self._max_id = journal_max_id
        self._used: list[tuple[str, tuple[str, str, str]]] = []
        #: file name → the bytes last written there by hand.
        self.by_hand: dict[str, bytes] = {}
        #: keys whose command was queued (each must finish by the end).
        self.queued: dict[str, str] = {}
        self.violations: list[str] = []
        self.config_variant = 0

    # ------------------------------------------------------------------ commands

    def _intent(self) -> tuple[str, str, str]:
        rng = self._rng
        if rng.random() < 0.5:
            return rng.choice(_COMPONENT_COMMANDS), rng.choice(SERVICES), "by hand"
        return rng.choice(_RUNTIME_COMMANDS), "", "by hand"

    def draw_command(self, *, reuse: bool) -> dict[str, Any]:
        """The next command: a fresh key, or a used one (the same command, or another)."""
        rng = self._rng
        if reuse and self._used:
            key, intent = rng.choice(self._used)
            if rng.random() < 0.5:
                intent = self._intent()  # another command under a used key
        else:
            key, intent = f"k{len(self._used)}", self._intent()
            self._used.append((key, intent))
        ctype, target, reason = intent
        return {"act": "command", "key": key, "type": ctype, "target": target, "reason": reason}

    def command(self, plan: dict[str, Any]) -> dict[str, Any]:
        """Queue the command ``plan`` holds (:meth:`draw_command`), as the CLI does."""
        key, ctype, target = plan["key"], plan["type"], plan["target"]
        intent = (ctype, target, plan.get("reason", "by hand"))
        try:
            submitted = queue.submit(
                self._journal,
                ctype,
                target,
                {"reason": intent[2]},
                "operator",
                idempotency_key=key,
                ttl=COMMAND_TTL_S,
                now=EPOCH + anyio.current_time(),
            )
        except queue.KeyConflictError:
            outcome, command_id = "conflict", None
        except sqlite3.OperationalError:
            # The queue's lock (autoheal.sim.queuelock): nothing was written; the key
            # stays the operator's, to retry with.
            return {
                "act": "command",
                "key": key,
                "type": ctype,
                "target": target,
                "outcome": "lock_error",
            }
        else:
            outcome = "duplicate" if submitted.duplicate else "queued"
            command_id = submitted.command.id
            if outcome == "queued":
                self.queued[key] = command_id
        self.violations += self._keys.submitted(Submission(key, intent, outcome, command_id))
        return {"act": "command", "key": key, "type": ctype, "target": target, "outcome": outcome}

    def unfinished(self) -> list[str]:
        """The keys of queued commands with no final status yet."""
        out = []
        for key, command_id in self.queued.items():
            command = queue.get(self._journal, command_id)
            if command is None or command.status not in queue.TERMINAL_STATUSES:
                out.append(key)
        return out

    # ------------------------------------------------------------------ the files

    def _clearing(self) -> None:
        if self._daemon_up():
            self._clears.act(self._max_id())

    def draw_stop_create(self) -> dict[str, Any]:
        data = self._rng.choice((b"", b"halted by hand\n"))
        return {"act": "stop_create", "text": data.decode()}

    def stop_create(self, plan: dict[str, Any]) -> dict[str, Any]:
        data = str(plan.get("text", "")).encode()
        self._files.stop_file.write_bytes(data)
        self.by_hand[layout.STOP_FILE_DEFAULT] = data
        return {"act": "stop_create", "bytes": len(data)}

    def stop_remove(self) -> dict[str, Any]:
        present = self._files.stop_file.exists()
        if present:
            self._files.stop_file.unlink()
            self._clearing()
        return {"act": "stop_remove", "was_there": present}

    def _write_flags(self, data: bytes) -> None:
        self._files.runtime_dir.mkdir(parents=True, exist_ok=True)
        self._files.flags.write_bytes(data)  # in place, as an editor without a rename
        self.by_hand[layout.FLAGS] = data

    def draw_flags(self, kind: str) -> dict[str, Any]:
        """A hand edit of the flags: ``whole``, ``partial`` or ``garbage`` bytes."""
        rng = self._rng
        if kind == "garbage":
            return {"act": "flags_garbage", "bytes": rng.choice(_GARBAGE).decode("latin-1")}
        doc = dict(rng.choice(_WHOLE_FLAGS if kind == "whole" else _PARTIAL_FLAGS))
        return {"act": f"flags_{kind}", "doc": doc}

    def flags(self, plan: dict[str, Any]) -> dict[str, Any]:
        """Write the flags ``plan`` holds (:meth:`draw_flags`) by hand."""
        if plan["act"] == "flags_garbage":
            self._write_flags(str(plan["bytes"]).encode("latin-1"))
            return {"act": "flags_garbage", "bytes": plan["bytes"]}
        doc = dict(plan["doc"])
        self._write_flags(orjson.dumps(doc))
        if doc.get("failsafe_active") is False:
            self._clearing()
        return {"act": plan["act"], "doc": doc}

    def draw_reload(self) -> dict[str, Any]:
        return {"act": "reload", "valid": self._rng.random() >= 0.3}

    def reload(self, plan: dict[str, Any]) -> dict[str, Any]:
        if not plan["valid"]:
            self._files.config_path.write_text("[policy\nmax_restarts = \n")
            return {"act": "reload", "valid": False}
        self.config_variant += 1
        self._files.config_path.write_text(self._files.config(self.config_variant))
        return {"act": "reload", "valid": True, "variant": self.config_variant % 2}

    def fix_config(self) -> bool:
        """Put a valid config back if the file does not load (before a daemon starts)."""
        if self._files.load() is not None:
            return False
        self._files.config_path.write_text(self._files.config(self.config_variant))
        return True

    def draw_fiddle_while_down(self) -> dict[str, Any]:
        """While no daemon runs: remove STOP.TXT or clear the flags by hand."""
        if self._rng.random() < 0.5:
            return {"act": "stop_remove"}
        return self.draw_flags("partial" if self._rng.random() < 0.5 else "whole")
