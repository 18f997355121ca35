"""Atomic, durable JSON files: a reader sees the old document or the new one, never a torn one.

Writes follow the order that survives a power cut (python-atomicwrites #15, #25):
serialise first, write a temp file in the *same* directory, flush + fsync it,
``os.replace`` it over the target, then fsync the directory so the rename itself
is durable. A failure at any point (full disk, permissions) removes the temp
file and re-raises ``OSError``; the old document is left untouched.

Files are owner/group-only by default (:data:`FILE_MODE`, ``0640``): the trading
processes run as the daemon's user or in its group, and nobody else has any
business reading the runtime's state. The mode is set explicitly, so a lax umask
cannot widen it.

Readers never raise on bad content: they return a :class:`ReadResult` whose
``reason`` is a stable token (``missing``, ``not_a_regular_file``, ``unreadable``,
``too_large``, ``invalid``, ``not_object``) so callers turn it into a failed check
or a default. They open regular files only (:func:`read_regular`): a FIFO blocks
``open`` until a writer comes and a device may never end, so anything else placed
at a runtime file's name is a failed read, never a hang.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoheal.store import _json

__all__ = [
    "FILE_MODE",
    "MAX_DOCUMENT_BYTES",
    "NOT_REGULAR",
    "NotRegularFileError",
    "ReadResult",
    "append_jsonl",
    "create_bytes_atomic",
    "decode_json",
    "fsync_dir",
    "read_json",
    "read_regular",
    "write_bytes_atomic",
    "write_json_atomic",
]

#: Documents larger than this are refused on read (a runaway writer must not eat our memory).
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024

#: Permission bits of every file written here unless the caller says otherwise.
FILE_MODE = 0o640

_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL
_CREATE_FLAGS |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
# O_NONBLOCK: if a FIFO replaced the file between the stat and the open, the open
# returns at once (and fstat refuses it) instead of waiting for a writer.
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)

#: ``ReadResult.reason`` of a path that exists but is not a regular file.
NOT_REGULAR = "not_a_regular_file"
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


class NotRegularFileError(OSError):
    """A path that exists, but names a FIFO, a directory, a device or a socket."""


def _require_regular(path: Path, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _KINDS if test(mode)), "not a file")
    raise NotRegularFileError(errno.EINVAL, f"not a regular file ({kind})", str(path))


def read_regular(path: Path, max_bytes: int) -> bytes:
    """Up to ``max_bytes`` of the regular file at ``path`` (symlinks followed).

    Anything else is never opened for reading: a FIFO would block ``open`` until a
    writer came (a guard's ``allowed()``, the daemon's event loop), a device or
    ``/dev/zero`` might never end.

    Raises:
        FileNotFoundError: nothing is there.
        NotRegularFileError: something is there that is not a regular file.
        OSError: it could not be read (EACCES, EIO, ...).
    """
    _require_regular(path, os.stat(path).st_mode)
    fd = os.open(path, _READ_FLAGS)
    try:
        _require_regular(path, os.fstat(fd).st_mode)
        chunks: list[bytes] = []
        left = max_bytes
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temp(path: Path, data: bytes, *, durable: bool, mode: int) -> str:
    """A temp file beside ``path`` holding ``data`` (fsynced when ``durable``); its name."""
    # The temp file's name is random, hidden and ends in .tmp (remove_stale_temp_files);
    # os.open and os.write directly: this runs every second for the daemon's heartbeat.
    tmp = os.path.join(path.parent, f".{path.name}.{os.urandom(6).hex()}.tmp")
    fd = os.open(tmp, _CREATE_FLAGS, mode)
    try:
        try:
            os.fchmod(fd, mode)  # exactly ``mode``, whatever the umask
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def write_bytes_atomic(
    path: Path, data: bytes, *, durable: bool = True, mode: int = FILE_MODE
) -> None:
    """Replace ``path`` with ``data`` atomically.

    Args:
        path: the target file; its directory must exist.
        data: the complete new content.
        durable: fsync the file and its directory (off only for throw-away files).
        mode: permission bits of the new file.

    Raises:
        OSError: the write failed (e.g. ENOSPC); ``path`` still holds its old content.
    """
    path = Path(path)
    tmp = _write_temp(path, data, durable=durable, mode=mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


#: Where hard links are not supported, the create falls back to O_EXCL (not atomic).
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK}


def create_bytes_atomic(path: Path, data: bytes, *, mode: int = FILE_MODE) -> bool:
    """Create ``path`` holding ``data``, atomically and durably, only if nothing is there.

    The complete temp file is hard-linked to its name, which fails if the name is
    taken: a reader sees no file or the whole one, and an existing file (of any kind)
    is never replaced. On a file system without hard links it falls back to an
    exclusive create (still never replacing anything).

    Returns:
        True when created; False when something already had that name.

    Raises:
        OSError: the write failed (ENOSPC, EROFS, a missing directory).
    """
    path = Path(path)
    tmp = _write_temp(path, data, durable=True, mode=mode)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
        return _create_exclusive(path, data, mode)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    fsync_dir(path.parent)
    return True


def _create_exclusive(path: Path, data: bytes, mode: int) -> bool:
    try:
        fd = os.open(path, _CREATE_FLAGS, mode)
    except FileExistsError:
        return False
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(path.parent)
    return True


def write_json_atomic(path: Path, doc: Any, *, durable: bool = True, mode: int = FILE_MODE) -> None:
    """Serialise ``doc`` (sorted keys, trailing newline) and write it atomically.

    Serialisation happens before any file is touched, so a document that cannot be
    encoded raises ``TypeError`` and leaves the disk as it was.
    """
    data = _json.dumps_line(doc)
    write_bytes_atomic(path, data, durable=durable, mode=mode)


@dataclass(frozen=True, slots=True)
class ReadResult:
    """The outcome of reading a JSON document: ``doc`` when valid, else a ``reason`` token."""

    doc: dict[str, Any] | None
    reason: str | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.doc is not None


def read_json(path: Path, *, max_bytes: int = MAX_DOCUMENT_BYTES) -> ReadResult:
    """Read a JSON object from ``path`` without ever raising on its content.

    Returns:
        ``ReadResult(doc)`` for a JSON object; otherwise ``doc=None`` and ``reason`` one of
        ``missing``, ``not_a_regular_file`` (a FIFO, directory, device or socket: never
        opened), ``unreadable``, ``too_large``, ``invalid`` (not JSON, truncated, binary),
        ``not_object`` (valid JSON but not an object).
    """
    try:
        data = read_regular(path, max_bytes + 1)
    except FileNotFoundError:
        return ReadResult(None, "missing")
    except NotRegularFileError as exc:
        return ReadResult(None, NOT_REGULAR, exc.strerror or NOT_REGULAR)
    except OSError as exc:
        return ReadResult(None, "unreadable", exc.strerror or str(exc))
    return decode_json(data, max_bytes=max_bytes)


def decode_json(data: bytes, *, max_bytes: int = MAX_DOCUMENT_BYTES) -> ReadResult:
    """What :func:`read_json` makes of the bytes it read (for a caller that read them itself)."""
    if len(data) > max_bytes:
        return ReadResult(None, "too_large", f"more than {max_bytes} bytes")
    try:
        doc = _json.loads(data)
    except _json.JSONDecodeError as exc:
        return ReadResult(None, "invalid", str(exc))
    if not isinstance(doc, dict):
        return ReadResult(None, "not_object", f"top level is {type(doc).__name__}")
    return ReadResult(doc)


def append_jsonl(path: Path, doc: Any, *, durable: bool = True, mode: int = FILE_MODE) -> None:
    """Append one JSON object as a line, in a single ``write`` on an O_APPEND descriptor.

    One ``write`` of a line on ``O_APPEND`` keeps concurrent appenders from interleaving
    inside a line; fsync makes the line survive a crash.
    """
    line = _json.dumps_line(doc)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, mode)  # umask may narrow it
    try:
        os.write(fd, line)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
