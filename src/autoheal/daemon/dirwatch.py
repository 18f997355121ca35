"""Wake when the kill-switch files or the journal change: inotify on the event loop, no tick.

watchfiles runs its Rust watcher in a worker thread that takes the GIL every
``step`` milliseconds to look for a stop request, and returns to Python (one
thread hop) for every change in a watched folder, even those its filter then
drops: in an idle daemon, those were most of the wake-ups
(``benchmarks/overhead.py``). Here the inotify descriptor is registered with the
event loop, so nothing runs until the kernel reports a change.

The runtime folder also holds every component's heartbeat, rewritten each second
(temp file, write, close, rename): a watch on that folder would wake the daemon
for each of them. So what is asked of the kernel is narrow:

* of a folder (the stop file's), names created, written, renamed or deleted there:
  ``touch STOP.TXT`` is a create and a close;
* of a named file (``global_flags.json``, the journal's WAL), every write to it and
  its replacement: an edit in place, a command a CLI appended, or a new file renamed
  over it (the old one's link count drops), after which the new file is watched.
  A named file that cannot be watched ends the watch (:class:`WatchLost`): the
  caller reads everything once and watches again a moment later.

Linux only (:data:`AVAILABLE`); the caller falls back to watchfiles elsewhere.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import anyio

__all__ = ["AVAILABLE", "FOLDER", "OVERFLOW", "WatchLost", "watch"]

AVAILABLE = sys.platform.startswith("linux")

#: Stands in for every name when the kernel's event queue overflowed: events were lost.
OVERFLOW = "*"

# <sys/inotify.h>; the same on every Linux architecture.
_IN_MODIFY = 0x002
_IN_ATTRIB = 0x004
_IN_CLOSE_WRITE = 0x008
_IN_MOVED_FROM = 0x040
_IN_MOVED_TO = 0x080
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_DELETE_SELF = 0x400
_IN_MOVE_SELF = 0x800
_IN_Q_OVERFLOW = 0x4000
_IN_IGNORED = 0x8000
_IN_ONLYDIR = 0x1000000

_SELF = _IN_DELETE_SELF | _IN_MOVE_SELF
#: A folder: names created, written, renamed in or out, or deleted.
FOLDER = (
    _IN_CREATE | _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_MOVED_FROM | _IN_DELETE | _SELF | _IN_ONLYDIR
)
#: A file: written (SQLite keeps its WAL open: no close), or unlinked (link count).
_FILE = _IN_MODIFY | _IN_CLOSE_WRITE | _IN_ATTRIB | _SELF


class WatchLost(OSError):
    """A watched folder or file went away: the caller reads everything and watches again."""


async def watch(
    folders: Iterable[Path],
    files: Iterable[Path],
    on_change: Callable[[set[str]], None],
    *,
    on_started: Callable[[], None] = lambda: None,
) -> None:
    """Call ``on_change(names)`` with the names that changed, batch by batch.

    Args:
        folders: folders whose every name matters (the stop file's).
        files: files whose writes and replacement matter, each watched by itself.
        on_change: gets the changed names; :data:`OVERFLOW` when events were lost.
        on_started: runs once everything is watched: changes from then on are seen.

    Returns never. Raises :class:`WatchLost` when a folder or file goes (the names
    concerned were passed to ``on_change`` first), and ``OSError`` when one cannot
    be watched at the start (missing, not a folder, no permission, out of watches).
    """
    from inotify_simple import INotify

    with INotify(nonblocking=True) as inotify:
        folder_of = {inotify.add_watch(folder, FOLDER): folder for folder in folders}
        paths = {Path(f).name: Path(f) for f in files}
        file_of: dict[int, str] = {}

        def follow(name: str) -> None:
            """Watch the file now under ``name`` (at the start, or after a replacement)."""
            try:
                file_of[inotify.add_watch(paths[name], _FILE)] = name
            except OSError as exc:
                raise WatchLost(f"cannot watch {paths[name]}: {exc.strerror or exc}") from exc

        for name in paths:
            follow(name)
        on_started()
        while True:
            await anyio.wait_readable(inotify.fileno())
            names: set[str] = set()
            try:
                for event in inotify.read(timeout=0):
                    if event.mask & _IN_Q_OVERFLOW:
                        names.add(OVERFLOW)
                    elif event.wd in folder_of:
                        if event.mask & (_SELF | _IN_IGNORED):
                            names.add(OVERFLOW)  # whatever was in it is gone with it
                            raise WatchLost(f"watched folder {folder_of[event.wd]} went away")
                        names.add(event.name)
                    elif event.wd in file_of:
                        name = file_of[event.wd]
                        names.add(name)
                        if event.mask & (_IN_ATTRIB | _SELF | _IN_IGNORED):
                            if event.mask & _IN_IGNORED:
                                del file_of[event.wd]
                            follow(name)  # replaced (or removed: then the watch ends)
            finally:
                if names:
                    on_change(names)
