"""The ``feed_lag`` probe: per symbol, is the exchange data in a feeder's heartbeat still moving?

It reads the heartbeat file as the heartbeat probes do (through the daemon's shared
:class:`~autoheal.probes.heartbeat.HeartbeatFiles`, so one write is parsed once for
all the probes of that file), and hands the ``feed`` section to the pure judgement
:func:`autoheal.core.feed_lag.judge_feed`. What the file cannot say is the heartbeat
probes' vocabulary: no file is ``heartbeat_missing``; a truncated, binary, oversized
or non-object file is ``heartbeat_invalid``, never an exception. The probe keeps one
thing between checks: the gap counters it first saw from the current writer, so that
only *new* sequence gaps count.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from autoheal.core.feed_lag import FeedBaseline, judge_feed
from autoheal.probes.heartbeat import DEFAULT_MAX_BYTES, HeartbeatFiles
from autoheal.probes.result import HEARTBEAT_INVALID, HEARTBEAT_MISSING, ProbeResult
from autoheal.store.atomic import ReadResult, read_json

__all__ = ["FeedLagProbe"]


class FeedLagProbe:
    """Fails when a symbol's exchange timestamp is older than ``max_age`` or it missed
    more than ``max_gaps`` sequence numbers.

    Args:
        path: the feeder's heartbeat JSON file.
        max_age: the oldest acceptable exchange timestamp, in seconds.
        symbols: the symbols to judge; empty: every symbol in the file.
        max_gaps: sequence numbers a symbol may miss before the check fails.
        wall: unix time, to compare with the exchange timestamps.
        clock: monotonic time, for ``recheck_at``; must be the runner's clock.
        max_bytes: a larger file is ``heartbeat_invalid``.
        files: the daemon's :class:`HeartbeatFiles`; ``None`` reads at every check.
    """

    def __init__(
        self,
        path: Path | str,
        max_age: float,
        *,
        symbols: Sequence[str] = (),
        max_gaps: int = 0,
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
        max_bytes: int = DEFAULT_MAX_BYTES,
        files: HeartbeatFiles | None = None,
    ) -> None:
        if max_age <= 0:
            raise ValueError(f"max_age must be positive, got {max_age!r}")
        if max_gaps < 0:
            raise ValueError(f"max_gaps must not be negative, got {max_gaps!r}")
        self.path = Path(path)
        self.max_age = float(max_age)
        self.symbols = tuple(symbols)
        self.max_gaps = max_gaps
        self._wall = wall
        self._clock = clock
        self._max_bytes = max_bytes
        self._files = files
        self._baseline = FeedBaseline()
        #: The read is of a small local file: the runner may call it inline.
        self.check_inline: Callable[[], ProbeResult] = self._judge

    def __repr__(self) -> str:
        return (
            f"FeedLagProbe({str(self.path)!r}, max_age={self.max_age}, "
            f"symbols={list(self.symbols)}, max_gaps={self.max_gaps})"
        )

    async def check(self) -> ProbeResult:
        """Read the file once and judge its feed section; never raises on its content."""
        return self._judge()

    def _read(self) -> ReadResult:
        if self._files is None:
            return read_json(self.path, max_bytes=self._max_bytes)
        return self._files.read(self.path, max_bytes=self._max_bytes)

    def _judge(self) -> ProbeResult:
        read = self._read()
        if read.doc is None:
            if read.reason == "missing":
                return ProbeResult(False, HEARTBEAT_MISSING, None, self.max_age, detail="no file")
            detail = f"{read.reason}: {read.detail}".rstrip(": ")
            return ProbeResult(False, HEARTBEAT_INVALID, None, self.max_age, detail=detail)
        # Both clocks after the read: a slow read cannot make the data look younger.
        verdict = judge_feed(
            read.doc.get("feed"),
            writer=read.doc.get("pid"),
            symbols=self.symbols,
            max_age=self.max_age,
            max_gaps=self.max_gaps,
            baseline=self._baseline,
            now_wall=self._wall(),
            now_mono=self._clock(),
        )
        self._baseline = verdict.baseline
        return ProbeResult(
            verdict.ok,
            verdict.reason,
            verdict.age,
            self.max_age,
            recheck_at=verdict.recheck_at,
            detail=verdict.detail,
        )
