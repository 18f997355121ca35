"""``risk_pnl.json`` on disk: read when it changed, read-modify-write under the guard's lock.

What the document means is :mod:`autoheal.guard.risk_day`'s; this module only moves
it. Every trading process of a runtime shares the one file, so a write is a
read-modify-write under ``risk_pnl.json.lock`` (:mod:`autoheal.guard._filelock`): two
traders booking fills at once both count. Writes are atomic and durable
(:func:`~autoheal.store.atomic.write_json_atomic`), so a reader needs no lock: it sees
the old document or the new one.

The order check asks :meth:`DayFile.changed` before every decision that needs the
day's PnL: one ``stat`` (about 1-2 µs) instead of a read and a parse (20-40 µs on a
busy host). The file is re-read only when its identity moved: device, inode, size,
mtime or ctime. The file last read stays open, so its inode cannot be freed and
handed to a later replacement: "same inode" then really means "the same file", even
when two replacements land within one coarse mtime tick.

Nothing here raises on a bad file: :meth:`DayFile.read` returns a
:class:`~autoheal.guard.risk_day.DayRead` with the problem. Writes raise ``OSError``
(``LockTimeout`` is one) for the caller to keep the bookings and retry.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from autoheal.guard._filelock import locked
from autoheal.guard.risk_day import DayRead, RiskDay, day_doc, parse_day
from autoheal.store import layout as runtime_files
from autoheal.store.atomic import MAX_DOCUMENT_BYTES, decode_json, write_json_atomic

__all__ = ["RISK_PNL_FILENAME", "DayFile"]

RISK_PNL_FILENAME = runtime_files.RISK_PNL
#: How long a booking waits for another process's read-modify-write (each takes a few ms).
LOCK_TIMEOUT_S = 5.0

_Identity = tuple[int, int, int, int, int]
#: ``DayFile._seen`` before the first read, and while the file is missing or unopenable.
_NEVER, _MISSING, _FAILED = "never", "missing", "failed"


def _identity(st: os.stat_result) -> _Identity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _close(held: list[int]) -> None:
    while held:
        os.close(held.pop())


class DayFile:
    """The runtime's ``risk_pnl.json``: :meth:`changed`, :meth:`read`, :meth:`update`."""

    def __init__(self, runtime_dir: Path, *, lock_timeout_s: float = LOCK_TIMEOUT_S) -> None:
        self.path = Path(runtime_dir) / RISK_PNL_FILENAME
        self._name = os.fspath(self.path)
        self._lock_timeout_s = lock_timeout_s
        self._seen: _Identity | str = _NEVER  # the file last read, or why there is none
        self._held: list[int] = []  # its descriptor, kept open (see the module docstring)
        weakref.finalize(self, _close, self._held)

    def changed(self) -> bool:
        """Whether the file is not the one last read (a stat; never raises)."""
        now: _Identity | str
        try:
            now = _identity(os.stat(self._name))
        except FileNotFoundError:
            now = _MISSING
        except OSError:
            return True  # read() says why
        return now != self._seen

    def read(self) -> DayRead:
        """The document as it is now; ``DayRead(None, None)`` when there is none."""
        try:
            fd = os.open(self._name, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            self._hold(None, _MISSING)
            return DayRead(None)
        except OSError as exc:
            self._hold(None, _FAILED)
            return DayRead(None, f"cannot open {self.path}: {exc.strerror or exc}")
        try:
            seen = _identity(os.fstat(fd))
            data = b""
            while len(data) <= MAX_DOCUMENT_BYTES:
                chunk = os.read(fd, MAX_DOCUMENT_BYTES + 1 - len(data))
                if not chunk:
                    break
                data += chunk
        except OSError as exc:
            os.close(fd)
            self._hold(None, _FAILED)
            return DayRead(None, f"cannot read {self.path}: {exc.strerror or exc}")
        self._hold(fd, seen)
        result = decode_json(data)
        if result.doc is None:
            return DayRead(None, f"{result.reason}: {result.detail}".rstrip(": "))
        return parse_day(result.doc)

    @contextmanager
    def update(self) -> Iterator[DayRead]:
        """Hold the lock, yield the document as it is, let the body :meth:`write` a new one.

        Raises:
            OSError: the lock cannot be taken (``LockTimeout`` after ``lock_timeout_s``).
        """
        with locked(self.path, self._lock_timeout_s):
            yield self.read()

    def write(self, day: RiskDay, updated_at: float) -> None:
        """Replace the document (call inside :meth:`update`); remember it as read.

        Raises:
            OSError: the write failed; the old document is untouched.
        """
        write_json_atomic(self.path, day_doc(day, updated_at))
        try:
            fd = os.open(self._name, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            self._hold(None, _FAILED)  # the next changed() re-reads it
            return
        try:
            seen = _identity(os.fstat(fd))
        except OSError:
            os.close(fd)
            self._hold(None, _FAILED)
            return
        self._hold(fd, seen)

    def _hold(self, fd: int | None, seen: _Identity | str) -> None:
        _close(self._held)
        if fd is not None:
            self._held.append(fd)
        self._seen = seen
