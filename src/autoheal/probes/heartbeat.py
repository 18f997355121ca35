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

import os
import time
from collections.abc import Callable
from pathlib import Path

import anyio.to_thread

from autoheal.probes.freshness import DEFAULT_FUTURE_TOLERANCE, judge_timestamp
from autoheal.probes.result import HEARTBEAT_STALE, WS_STALE, ProbeResult
from autoheal.store.atomic import ReadResult, read_json

__all__ = ["DEFAULT_MAX_BYTES", "FieldFreshnessProbe", "HeartbeatFiles", "HeartbeatProbe"]

#: Heartbeats are a few hundred bytes; anything past this is a broken writer.
DEFAULT_MAX_BYTES = 64 * 1024


class HeartbeatFiles:
    """Reads each heartbeat file once per version: ``stat`` first, parse only when it changed.

    One per daemon, shared by its probes: the ``heartbeat`` and ``ws_freshness`` probes
    of one file parse each write once, and a file that stopped changing (a hung
    writer) costs one ``stat`` per look. A version is (device, inode, size, mtime,
    ctime): writers replace the file atomically, so a new version is a new inode or
    at least a new ctime. The stat comes before the read, so a write racing the two
    can only cost one extra read later, never keep an old document.
    """

    def __init__(self) -> None:
        self._versions: dict[Path, tuple[tuple[int, ...], ReadResult]] = {}

    def read(self, path: Path, *, max_bytes: int) -> ReadResult:
        try:
            st = os.stat(path)
        except OSError:
            self._versions.pop(path, None)
            return read_json(path, max_bytes=max_bytes)  # says why: missing, unreadable
        version = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, max_bytes)
        known = self._versions.get(path)
        if known is not None and known[0] == version:
            return known[1]
        result = read_json(path, max_bytes=max_bytes)
        self._versions[path] = (version, result)
        return result


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
        files: the daemon's :class:`HeartbeatFiles` (reads shared with its other
            probes); ``None`` reads the file at every check.
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
        files: HeartbeatFiles | None = None,
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
        self._files = files
        #: A check that never blocks, for the runner to call without a timeout scope
        #: (nothing could time out an inline read anyway); None when reads go to a thread.
        self.check_inline: Callable[[], ProbeResult] | None = None if in_thread else self._judge

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}({str(self.path)!r}, field={self.field!r}, max_age={self.max_age})"

    async def check(self) -> ProbeResult:
        """Read the file once and judge the field's age; never raises on the file's content."""
        if not self._in_thread:
            return self._judge()
        read = await anyio.to_thread.run_sync(self._read, abandon_on_cancel=True)
        return self._judge(read)

    def _read(self) -> ReadResult:
        if self._files is None:
            return read_json(self.path, max_bytes=self._max_bytes)
        return self._files.read(self.path, max_bytes=self._max_bytes)

    def _judge(self, read: ReadResult | None = None) -> ProbeResult:
        if read is None:
            read = self._read()
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
        files: HeartbeatFiles | None = None,
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
            files=files,
        )
