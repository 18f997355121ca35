"""Heartbeat-file probes: the age of ``ts`` (alive) and of ``ws_last_msg_ts`` (data flowing).

Each component writes ``<name>.heartbeat.json`` atomically (DESIGN.md §3), so
a reader sees a whole document or none; anything else -- a truncated write by
a foreign tool, binary garbage, a runaway multi-megabyte file -- is a failed
check with ``heartbeat_invalid``, never an exception.

The read runs inline by default: the file is at most ``max_bytes`` on the
runtime directory's local disk, where the daemon's own health and state writes
happen inline too, and a worker-thread hop costs more CPU than the read
(benchmarks/overhead.py: 20 hops a second dominated the idle daemon). Pass
``in_thread=True`` for a runtime directory on a filesystem that may stall: the
read then runs in a worker thread abandoned on cancellation, so the runner's
timeout still bites.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import anyio.to_thread

from autoheal.probes.freshness import DEFAULT_FUTURE_TOLERANCE, judge_timestamp
from autoheal.probes.result import HEARTBEAT_STALE, WS_STALE, ProbeResult
from autoheal.store.atomic import read_json

__all__ = ["DEFAULT_MAX_BYTES", "FieldFreshnessProbe", "HeartbeatProbe"]

#: Heartbeats are a few hundred bytes; anything past this is a broken writer.
DEFAULT_MAX_BYTES = 64 * 1024


class FieldFreshnessProbe:
    """Fails when a unix-timestamp field of a heartbeat file is older than ``max_age``.

    Args:
        path: the heartbeat JSON file.
        field: the key holding unix seconds.
        max_age: the oldest acceptable age, in seconds.
        stale_reason: the token reported when the field is too old.
        wall: unix time, to compare with the field.
        clock: monotonic time, for ``recheck_at``; must be the runner's clock.
        future_tolerance: how far ahead of ``wall()`` the field may lie.
        max_bytes: a larger file is ``heartbeat_invalid``.
    """

    def __init__(
        self,
        path: Path | str,
        field: str = "ws_last_msg_ts",
        *,
        max_age: float,
        stale_reason: str = WS_STALE,
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
        future_tolerance: float = DEFAULT_FUTURE_TOLERANCE,
        max_bytes: int = DEFAULT_MAX_BYTES,
        in_thread: bool = False,
    ) -> None:
        if max_age <= 0:
            raise ValueError(f"max_age must be positive, got {max_age!r}")
        self.path = Path(path)
        self.field = field
        self.max_age = float(max_age)
        self.stale_reason = stale_reason
        self._wall = wall
        self._clock = clock
        self._future_tolerance = future_tolerance
        self._max_bytes = max_bytes
        self._in_thread = in_thread

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}({str(self.path)!r}, field={self.field!r}, max_age={self.max_age})"

    async def check(self) -> ProbeResult:
        """Read the file once and judge the field's age; never raises on the file's content."""
        reader = partial(read_json, self.path, max_bytes=self._max_bytes)
        if self._in_thread:
            read = await anyio.to_thread.run_sync(reader, abandon_on_cancel=True)
        else:
            read = reader()
        # Both clocks are read *after* the read, so a slow read cannot make the age look younger.
        return judge_timestamp(
            read,
            field=self.field,
            max_age=self.max_age,
            stale_reason=self.stale_reason,
            now_wall=self._wall(),
            now_mono=self._clock(),
            future_tolerance=self._future_tolerance,
        )


class HeartbeatProbe(FieldFreshnessProbe):
    """Fails with ``heartbeat_stale`` when the heartbeat's ``ts`` is older than ``max_age``.

    Missing file: ``heartbeat_missing``; bad file or ``ts``: ``heartbeat_invalid``.
    See :class:`FieldFreshnessProbe` for the arguments.
    """

    def __init__(
        self,
        path: Path | str,
        max_age: float,
        *,
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
        future_tolerance: float = DEFAULT_FUTURE_TOLERANCE,
        max_bytes: int = DEFAULT_MAX_BYTES,
        in_thread: bool = False,
    ) -> None:
        super().__init__(
            path,
            "ts",
            max_age=max_age,
            stale_reason=HEARTBEAT_STALE,
            wall=wall,
            clock=clock,
            future_tolerance=future_tolerance,
            max_bytes=max_bytes,
            in_thread=in_thread,
        )
