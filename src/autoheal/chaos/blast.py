"""The blast-radius guard: what a drill must not touch, captured before and checked during.

A drill declares protected files and processes. :meth:`ProtectedSet.capture`
records, per file, whether it exists, its sha256 and its mtime, and per process
its PID, create time and command line (psutil). :meth:`ProtectedSet.check`
compares the world with that record and lists every difference as a
:class:`Violation`; :func:`watch` runs the check at least once a second while a
drill runs and calls back on the first violation, so the runner can cancel the
drill, heal its faults and report it ``ABORTED`` with what changed.

A file that did not exist at capture time is protected too: its creation is a
violation (a drill writing the operator's ``STOP.TXT`` must be stopped).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio
import psutil

__all__ = ["FileMark", "ProcessMark", "ProtectedSet", "Violation", "watch"]

_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class Violation:
    """One protected thing that changed.

    Attributes:
        kind: ``file`` or ``process``.
        target: the path or ``pid=<n>``.
        change: what changed, e.g. ``sha256``, ``mtime``, ``created``, ``deleted``,
            ``gone``, ``create_time``, ``cmdline``.
        before: the captured value (short form).
        after: the value now.
    """

    kind: str
    target: str
    change: str
    before: str
    after: str

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.kind} {self.target}: {self.change} changed ({self.before} -> {self.after})"


@dataclass(frozen=True, slots=True)
class FileMark:
    """A file's captured identity; ``exists=False`` protects its absence."""

    exists: bool
    sha256: str = ""
    mtime_ns: int = 0


@dataclass(frozen=True, slots=True)
class ProcessMark:
    """A process's captured identity; ``alive=False`` if it was already gone."""

    alive: bool
    create_time: float = 0.0
    cmdline: tuple[str, ...] = ()


def _mark_file(path: Path) -> FileMark:
    try:
        st = os.stat(path)
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    except FileNotFoundError:
        return FileMark(exists=False)
    return FileMark(True, digest.hexdigest(), st.st_mtime_ns)


def _mark_process(pid: int) -> ProcessMark:
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            return ProcessMark(True, proc.create_time(), tuple(proc.cmdline()))
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return ProcessMark(alive=False)
    except psutil.AccessDenied:
        # We may not read another user's cmdline; PID + create time still identify it.
        try:
            return ProcessMark(True, psutil.Process(pid).create_time(), ())
        except psutil.Error:
            return ProcessMark(alive=False)


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ProtectedSet:
    """Files and processes a drill must leave alone.

    Args:
        files: paths to protect (missing ones are protected as absent).
        processes: PIDs to protect.
    """

    def __init__(self, files: Iterable[Path | str] = (), processes: Iterable[int] = ()) -> None:
        self.files: tuple[Path, ...] = tuple(Path(p) for p in files)
        self.processes: tuple[int, ...] = tuple(int(p) for p in processes)
        self._files: dict[Path, FileMark] = {}
        self._procs: dict[int, ProcessMark] = {}

    def capture(self) -> ProtectedSet:
        """Record the current identity of everything protected; returns ``self``."""
        self._files = {p: _mark_file(p) for p in self.files}
        self._procs = {pid: _mark_process(pid) for pid in self.processes}
        return self

    def describe(self) -> dict[str, Any]:
        """What is protected, for the report (no file contents, only names and PIDs)."""
        return {"files": [str(p) for p in self._files], "processes": sorted(self._procs)}

    def check(self) -> list[Violation]:
        """Every difference between now and the capture (empty: nothing changed)."""
        out: list[Violation] = []
        for path, before in self._files.items():
            out.extend(_compare_file(path, before, _mark_file(path)))
        for pid, was in self._procs.items():
            out.extend(_compare_process(pid, was, _mark_process(pid)))
        return out


def _compare_file(path: Path, before: FileMark, now: FileMark) -> list[Violation]:
    target = str(path)
    if before.exists != now.exists:
        change = "created" if now.exists else "deleted"
        was = "absent" if not before.exists else before.sha256[:12]
        is_ = "absent" if not now.exists else now.sha256[:12]
        return [Violation("file", target, change, was, is_)]
    if not before.exists:
        return []
    out = []
    if before.sha256 != now.sha256:
        out.append(Violation("file", target, "sha256", before.sha256[:12], now.sha256[:12]))
    if before.mtime_ns != now.mtime_ns:
        out.append(
            Violation("file", target, "mtime", str(before.mtime_ns), str(now.mtime_ns))
        )
    return out


def _compare_process(pid: int, before: ProcessMark, now: ProcessMark) -> list[Violation]:
    target = f"pid={pid}"
    if before.alive and not now.alive:
        return [Violation("process", target, "gone", "alive", "gone")]
    if not before.alive:
        return []
    out = []
    if before.create_time != now.create_time:
        # The PID was reused by another process: the protected one is gone.
        out.append(Violation("process", target, "create_time", f"{before.create_time:.3f}",
                             f"{now.create_time:.3f}"))
    if before.cmdline and now.cmdline and before.cmdline != now.cmdline:
        out.append(Violation("process", target, "cmdline", _short(" ".join(before.cmdline)),
                             _short(" ".join(now.cmdline))))
    return out


async def watch(
    guard: ProtectedSet,
    on_violation: Callable[[list[Violation]], Awaitable[None] | None],
    interval: float = 0.5,
) -> list[Violation]:
    """Check ``guard`` every ``interval`` seconds until something changed.

    The check runs in a worker thread (hashing must not stall the drill's event loop).
    Cancel the surrounding scope to stop watching.

    Args:
        guard: a captured :class:`ProtectedSet`.
        on_violation: called once with the violations found (may be async).
        interval: seconds between checks; at most 1 s so a change is seen within a second.

    Returns:
        The violations that ended the watch.

    Raises:
        ValueError: ``interval`` is not in (0, 1].
    """
    if not 0 < interval <= 1.0:
        raise ValueError("interval must be in (0, 1] seconds")
    while True:
        found = await anyio.to_thread.run_sync(guard.check)
        if found:
            result = on_violation(found)
            if result is not None:
                await result
            return found
        await anyio.sleep(interval)
