"""Who holds a claim, and settling the claims whose claimer is provably gone.

A claim records its claimer's identity (``claimer_pid``, ``claimer_start_time``: the
kernel start time, so a reused PID is told apart). A claim whose claimer is provably
gone (:func:`autoheal.core.commands.claimer_gone`) is settled by
:func:`settle_dead_claims` (a daemon starting) or :func:`settle_if_claimer_gone` (a
CLI waiting): ``failed`` with result reason ``claimer_died`` and one
``result_written`` event with reason ``claimer_died``. No ``<type>.failed`` event is
forged: nobody knows how far the handler got.

The OS is asked here (:func:`own_identity`, :func:`observe_process`), the core decides
what the answer means; :mod:`autoheal.store.commands` re-exports every public name.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime

import psutil

from autoheal.core.commands import (
    CLAIMER_DIED,
    Claimer,
    ProcessSeen,
    claimer_gone,
    claimer_of,
)
from autoheal.store.command_record import Command, insert_event, json_text, row_to_command
from autoheal.store.journal import Journal

__all__ = [
    "observe_process",
    "own_identity",
    "settle_dead_claims",
    "settle_if_claimer_gone",
]


def own_identity() -> tuple[int, float] | None:
    """This process as a claimer: its PID and kernel start time (None if unreadable)."""
    pid = os.getpid()
    try:
        return pid, psutil.Process(pid).create_time()
    except (psutil.Error, OSError):
        return None


def observe_process(pid: int) -> ProcessSeen:
    """What the OS says about ``pid`` now; "gone" only when the kernel says so.

    Existence is asked with ``kill(pid, 0)``, not ``/proc``: with ``hidepid`` another
    user's processes are missing from ``/proc`` but still answer EPERM.
    """
    if pid <= 0:  # kill(0, 0) would ask about our own process group
        return ProcessSeen(exists=True)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return ProcessSeen(exists=False)
    except PermissionError:
        pass  # exists, owned by another user
    except OSError:
        return ProcessSeen(exists=True)
    try:
        proc = psutil.Process(pid)
        start = proc.create_time()
        zombie = proc.status() == psutil.STATUS_ZOMBIE
    except psutil.ZombieProcess:
        return ProcessSeen(exists=True, zombie=True)
    except (psutil.Error, OSError):
        # Hidden from /proc, or exited a moment ago: not proven; the next look decides.
        return ProcessSeen(exists=True)
    return ProcessSeen(exists=True, start_time=start, zombie=zombie)


def _settle(
    journal: Journal,
    command: Command,
    claimer: Claimer,
    why: str,
    *,
    settled_by: str,
    now: float | None,
) -> Command | None:
    """Write ``failed``/``claimer_died`` for a claim whose claimer is gone (if still claimed)."""
    stamp = time.time() if now is None else now
    started = (
        "unknown"
        if claimer.start_time is None
        else datetime.fromtimestamp(claimer.start_time, tz=UTC).isoformat(timespec="seconds")
    )
    result = {
        "reason": CLAIMER_DIED,
        "why": why,
        "claimed_by": command.claimed_by,
        "message": (
            f"{CLAIMER_DIED}: {command.claimed_by} (pid {claimer.pid}, started "
            f"{started}) is gone ({why}) without writing a result; the command may have "
            "run in part: check 'autoheal status' and retry with a new key"
        ),
    }
    with journal.transaction() as conn:
        rows = conn.execute(
            "UPDATE commands SET status = 'failed', result = ?, finished_at = ?"
            " WHERE id = ? AND status = 'claimed' AND claimed_at IS ? RETURNING *",
            (json_text(result), stamp, command.id, command.claimed_at),
        ).fetchall()
        if not rows:
            return None  # finished (or settled) since we read it
        settled = row_to_command(rows[0])[0]
        insert_event(
            conn,
            settled,
            "result_written",
            reason=CLAIMER_DIED,
            ts=stamp,
            data={
                "status": "failed",
                "why": why,
                "claimed_by": command.claimed_by,
                "claimer_pid": claimer.pid,
                "claimer_start_time": claimer.start_time,
                "settled_by": settled_by,
                "operator_reason": command.reason,
            },
        )
    return settled


def _why_gone(
    command: Command, observe: Callable[[int], ProcessSeen]
) -> tuple[Claimer, str] | None:
    if command.status != "claimed":
        return None
    claimer = claimer_of(command.claimed_by, command.claimer_pid, command.claimer_start_time)
    if claimer is None:
        return None
    why = claimer_gone(claimer, observe(claimer.pid))
    return None if why is None else (claimer, why)


def settle_if_claimer_gone(
    journal: Journal,
    command: Command,
    *,
    settled_by: str,
    observe: Callable[[int], ProcessSeen] = observe_process,
    now: float | None = None,
) -> Command | None:
    """Settle ``command`` as ``failed``/``claimer_died`` if it is claimed by a gone process.

    Args:
        settled_by: who settles, for the journal (e.g. ``cli:alice``, ``pid:1234``).
        observe: asks the OS about a PID (tests may pass a recorded answer).

    Returns:
        The settled command, or None when it was left as it is (not claimed, or its
        claimer is alive or cannot be proven gone).
    """
    gone = _why_gone(command, observe)
    if gone is None:
        return None
    claimer, why = gone
    return _settle(journal, command, claimer, why, settled_by=settled_by, now=now)


def settle_dead_claims(
    journal: Journal,
    *,
    settled_by: str,
    observe: Callable[[int], ProcessSeen] = observe_process,
    now: float | None = None,
) -> list[Command]:
    """Settle every claim whose claimer is provably gone (a daemon does this at start)."""
    rows = journal.query("SELECT * FROM commands WHERE status = 'claimed' ORDER BY claimed_at")
    settled = []
    for row in rows:
        done = settle_if_claimer_gone(
            journal, row_to_command(row)[0], settled_by=settled_by, observe=observe, now=now
        )
        if done is not None:
            settled.append(done)
    return settled
