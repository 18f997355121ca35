"""The simulated disk: a pending and a durable layer over real files, and disk faults.

Every write of the kill-switch files, the state and the health documents goes
through :mod:`autoheal.store.atomic`, which calls its module-global ``os``. For a run,
:func:`simulated_disk` puts an :class:`OsProxy` there: it delegates to the real ``os``
(the bytes land in real files, on tmpfs when there is one) and keeps a
:class:`Ledger` of what a power loss would leave:

* a file's bytes are durable once its descriptor is ``fsync``-ed;
* a name (a ``rename``, a ``link``, an ``unlink``, a new temp file) is durable once
  its folder is ``fsync``-ed (:func:`autoheal.store.atomic.fsync_dir`);
* what a name shows after a power loss: the bytes of its file at the last fsync; a
  file never fsynced that replaced an existing name shows what it held at the
  rename (ext4's ``auto_da_alloc``, the default: a replace-by-rename flushes the
  data with the rename), and one that took a fresh name shows nothing (empty);
* a name never made durable shows what was there before the simulator first saw it.

``fsync`` does no real I/O here (that is the speed win: it was most of a batch's
wall time). Writes the proxy does not see (the operator's hand edits, ``rm``, the
daemon's ``os.unlink`` of ``STOP.TXT`` in :mod:`autoheal.store.flags`) are taken as
durable as they are: the ledger notices them (the real bytes differ from what it
last wrote there) and adopts them. The journal (SQLite, WAL, ``synchronous=FULL``)
is trusted to be durable: SQLite's own fsync is not modelled (on tmpfs it costs
nothing).

Faults (:class:`DiskFaults`): a window, drawn from the seed, during which a write or
fsync raises ``ENOSPC`` or ``EIO``, an open for writing raises ``EROFS`` or
``ENOTDIR``, or a write stalls for drawn virtual seconds (``MockClock.jump`` inside
the call: in one thread a blocking write cannot yield, it stalls the loop, as on a
real host). Each call in a window fails with the window's rate, drawn from the
window's own generator (seeded from the run's), so the number of the daemon's writes
never shifts the run's other draws.
"""

from __future__ import annotations

import errno
import os
import random
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "FAULT_KINDS",
    "DiskFaults",
    "FaultWindow",
    "Ledger",
    "OsProxy",
    "scratch_dir",
    "simulated_disk",
    "temp_root",
]

_real_os = os

#: Fault kind → (the errno raised, where it strikes). ``latency`` raises nothing.
FAULT_KINDS: dict[str, tuple[int, str]] = {
    "enospc": (errno.ENOSPC, "write"),
    "eio": (errno.EIO, "write"),
    "erofs": (errno.EROFS, "open"),
    "enotdir": (errno.ENOTDIR, "open"),
    "latency": (0, "write"),
}

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def scratch_dir() -> str | None:
    """Where a seed's folder goes: ``/dev/shm`` when it is there and writable (tmpfs:
    no fsync or rename reaches a real disk), else the default temp folder (None)."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return None


# ---------------------------------------------------------------------- the ledger


@dataclass
class _Inode:
    data: bytearray = field(default_factory=bytearray)
    synced: bytes | None = None
    """The bytes at the last fsync; None: never fsynced."""
    at_rename: bytes | None = None
    """The bytes when it replaced an existing name unsynced (``auto_da_alloc``)."""

    def durable(self) -> bytes:
        if self.synced is not None:
            return self.synced
        return self.at_rename if self.at_rename is not None else b""


class Ledger:
    """What each name under ``root`` shows now, and what it would show after a power loss.

    Names are tracked from the first time the proxy touches them; what was there
    before (written by the simulator's setup or by hand) counts as durable.
    """

    def __init__(self, root: Path) -> None:
        self.root = str(root)
        self._now: dict[str, _Inode | None] = {}
        """Name → the file the proxy last put there (None: the proxy removed it)."""
        self._durable: dict[str, _Inode | None] = {}
        self._pending: dict[str, dict[str, _Inode | None]] = {}
        """Folder → name → the change not yet made durable by an fsync of the folder."""

    def covers(self, path: str) -> bool:
        return path == self.root or path.startswith(self.root + os.sep)

    # -------------------------------------------------------------- what the proxy tells

    def adopt(self, path: str) -> None:
        """Before a change to ``path``: what is there now, if the ledger did not put it
        there (first sight, a hand edit, an unlink behind its back), is durable."""
        real = _read(path)
        if path in self._now:
            inode = self._now[path]
            if real == (None if inode is None else bytes(inode.data)):
                return
        adopted = None if real is None else _Inode(bytearray(real), synced=real)
        self._now[path] = adopted
        self._durable[path] = adopted
        self._pending.get(os.path.dirname(path), {}).pop(path, None)

    def created(self, path: str) -> _Inode:
        """A new file at ``path`` (an exclusive create: nothing had the name before)."""
        self._now.setdefault(path, None)
        self._durable.setdefault(path, None)
        inode = _Inode()
        self._name(path, inode)
        return inode

    def renamed(self, src: str, dst: str, *, replaced: bool) -> None:
        inode = self._now.get(src) or _Inode()
        if inode.synced is None and replaced:
            inode.at_rename = bytes(inode.data)
        self._name(dst, inode)
        self._name(src, None)

    def linked(self, src: str, dst: str) -> None:
        self._name(dst, self._now.get(src) or _Inode())

    def unlinked(self, path: str) -> None:
        self._name(path, None)

    def synced_dir(self, folder: str) -> None:
        """An fsync of ``folder``: its names' changes are durable."""
        changes = self._pending.pop(folder, {})
        self._durable.update(changes)
        for path, inode in changes.items():
            if inode is None and self._now.get(path) is None:  # gone for good: forget it
                del self._now[path], self._durable[path]

    def _name(self, path: str, inode: _Inode | None) -> None:
        if path not in self._now:
            self.adopt(path)
        self._now[path] = inode
        self._pending.setdefault(os.path.dirname(path), {})[path] = inode

    # -------------------------------------------------------------- questions

    def pending(self) -> list[str]:
        """The names whose power loss would change what they show (sorted)."""
        return sorted(p for p in self._now if self._after_loss(p) != self._shows(p))

    def durable_bytes(self, path: str | Path) -> bytes | None:
        """What ``path`` would show after a power loss (None: no file)."""
        path = str(path)
        if path not in self._now:
            return _read(path)  # not touched since the last power loss: all durable
        return self._after_loss(path)

    def _shows(self, path: str) -> bytes | None:
        inode = self._now.get(path)
        return None if inode is None else bytes(inode.data)

    def _after_loss(self, path: str) -> bytes | None:
        inode = self._durable.get(path)
        return None if inode is None else inode.durable()

    # -------------------------------------------------------------- the power loss

    def power_loss(self) -> list[str]:
        """Every tracked name reverts to its durable content; returns those that changed.

        A name whose real bytes are not what the proxy left there was changed by
        someone else (a hand edit): that stands. Afterwards everything on disk is
        durable and the ledger starts afresh.
        """
        changed = []
        for path in sorted(self._now):
            real = _read(path)
            if real != self._shows(path):
                continue  # changed behind the proxy's back: taken as durable
            after = self._after_loss(path)
            if after == real:
                continue
            changed.append(path)
            if after is None:
                _real_os.unlink(path)
            else:
                _write_direct(path, after)
        self._now.clear()
        self._durable.clear()
        self._pending.clear()
        return changed


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def _write_direct(path: str, data: bytes) -> None:
    tmp = f"{path}.power-loss"
    with open(tmp, "wb") as f:
        f.write(data)
    _real_os.replace(tmp, path)


# ---------------------------------------------------------------------- faults


@dataclass
class FaultWindow:
    """One fault, on until ``until`` (virtual seconds), striking with ``rate``."""

    kind: str
    until: float
    rate: float
    latency_s: tuple[float, float] = (0.0, 0.0)


class DiskFaults:
    """The fault windows that are on, and the generator that decides each call."""

    def __init__(self, rng: random.Random, now: Callable[[], float]) -> None:
        self._rng = rng
        self._now = now
        self.windows: list[FaultWindow] = []
        self.struck: dict[str, int] = {}
        """Kind → how many calls it failed or stalled (the "sometimes")."""
        self.jump: Callable[[float], None] | None = None
        self.exempt: tuple[str, ...] = ()
        """Name fragments of files no fault strikes."""

    def open(self, window: FaultWindow) -> None:
        self.windows = [w for w in self.windows if w.kind != window.kind] + [window]

    def clear(self) -> None:
        self.windows = []

    def active(self) -> list[FaultWindow]:
        now = self._now()
        self.windows = [w for w in self.windows if w.until > now]
        return self.windows

    def strike(self, where: str, path: str) -> None:
        """Raise (or stall) if a window for ``where`` is on and the draw says so."""
        if not self.windows:
            return
        if self.exempt and any(e in os.path.basename(path) for e in self.exempt):
            return
        for w in self.active():
            code, at = FAULT_KINDS[w.kind]
            if at != where or self._rng.random() >= w.rate:
                continue
            self.struck[w.kind] = self.struck.get(w.kind, 0) + 1
            if w.kind == "latency":
                if self.jump is not None:
                    self.jump(round(self._rng.uniform(*w.latency_s), 3))
                continue
            raise OSError(code, f"{_real_os.strerror(code)} (simulated)", path)


# ---------------------------------------------------------------------- the proxy


class OsProxy:
    """``os`` for :mod:`autoheal.store.atomic`: the real one, with a ledger and faults
    on every path under the ledger's root; anything else passes straight through."""

    def __init__(self, ledger: Ledger, faults: DiskFaults) -> None:
        self._ledger = ledger
        self._faults = faults
        self._files: dict[int, tuple[str, _Inode | None]] = {}
        self._dirs: dict[int, str] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(_real_os, name)

    def open(self, path: Any, flags: int, mode: int = 0o777, **kw: Any) -> int:
        p = _real_os.fspath(path)
        p = str(p) if isinstance(p, str) else _real_os.fsdecode(p)
        mine = self._ledger.covers(p)
        writing = bool(flags & _WRITE_FLAGS)
        if mine and writing:
            self._faults.strike("open", p)
        fd = _real_os.open(path, flags, mode, **kw)
        if not mine:
            return fd
        if flags & getattr(_real_os, "O_DIRECTORY", 0):
            self._dirs[fd] = p
        elif writing:
            exclusive = flags & _real_os.O_CREAT and flags & _real_os.O_EXCL
            self._files[fd] = (p, self._ledger.created(p) if exclusive else None)
        return fd

    def write(self, fd: int, data: Any) -> int:
        entry = self._files.get(fd)
        if entry is None:
            return _real_os.write(fd, data)
        path, inode = entry
        self._faults.strike("write", path)
        n = _real_os.write(fd, data)
        if inode is not None:
            inode.data += bytes(data[:n])
        return n

    def fsync(self, fd: int) -> None:
        if fd in self._dirs:
            self._faults.strike("write", self._dirs[fd])
            self._ledger.synced_dir(self._dirs[fd])
            return
        entry = self._files.get(fd)
        if entry is None:
            _real_os.fsync(fd)
            return
        path, inode = entry
        self._faults.strike("write", path)
        if inode is not None:
            inode.synced = bytes(inode.data)

    def close(self, fd: int) -> None:
        self._files.pop(fd, None)
        self._dirs.pop(fd, None)
        _real_os.close(fd)

    def replace(self, src: Any, dst: Any, **kw: Any) -> None:
        s, d = _real_os.fspath(src), _real_os.fspath(dst)
        if not (isinstance(s, str) and isinstance(d, str) and self._ledger.covers(d)):
            _real_os.replace(src, dst, **kw)
            return
        self._ledger.adopt(d)
        replaced = _real_os.path.lexists(d)
        _real_os.replace(src, dst, **kw)
        self._ledger.renamed(s, d, replaced=replaced)

    def link(self, src: Any, dst: Any, **kw: Any) -> None:
        s, d = _real_os.fspath(src), _real_os.fspath(dst)
        _real_os.link(src, dst, **kw)
        if isinstance(s, str) and isinstance(d, str) and self._ledger.covers(d):
            self._ledger.linked(s, d)

    def unlink(self, path: Any, **kw: Any) -> None:
        p = _real_os.fspath(path)
        _real_os.unlink(path, **kw)
        if isinstance(p, str) and self._ledger.covers(p):
            self._ledger.unlinked(p)


@contextmanager
def simulated_disk(root: Path, faults: DiskFaults) -> Iterator[Ledger]:
    """For the block: :mod:`autoheal.store.atomic` writes through an :class:`OsProxy`
    on ``root`` (restored on exit)."""
    from autoheal.store import atomic

    ledger = Ledger(root)
    saved = vars(atomic)["os"]
    setattr(atomic, "os", OsProxy(ledger, faults))  # noqa: B010 (the module's global)
    try:
        yield ledger
    finally:
        setattr(atomic, "os", saved)  # noqa: B010


def temp_root() -> tempfile.TemporaryDirectory[str]:
    """A seed's folder, on tmpfs when there is one."""
    return tempfile.TemporaryDirectory(prefix="autoheal-sim-", dir=scratch_dir())
