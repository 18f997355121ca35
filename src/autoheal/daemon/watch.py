"""One watch over the daemon's files: each changed name goes to whoever subscribed to it.

Today two subscribers share it: the kill switch (``STOP.TXT`` in its folder,
``global_flags.json``, ``risk_latch.json``: read the files at once) and the command
queue (the journal and its WAL: a CLI submitted a command), so neither needs a fast
poll. On Linux the inotify descriptor sits on the event loop
(:mod:`autoheal.daemon.dirwatch`): nothing wakes until a watched name changes.
Elsewhere, watchfiles (its thread takes the GIL every ``step=100`` ms).

The runtime folder is not watched as a folder (its heartbeats would wake us every
second each): its files are watched one by one (``files``); only ``folders`` (the
stop file's) are watched whole. A folder that cannot be watched (the stop file's
folder replaced by a plain file) is logged and tried again later with a backoff;
meanwhile ``watching`` is False and the heartbeat reads the files itself. Whatever
changed while nothing watched is delivered as :data:`~autoheal.daemon.dirwatch.OVERFLOW`
(when a watch ends, and again once the next is in place): every subscriber looks.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from autoheal.daemon import dirwatch
from autoheal.daemon.clock import Clock

log = logging.getLogger("autoheal")

__all__ = ["DirectoryWatch"]


class DirectoryWatch:
    """Watches ``folders`` (every name in them) and ``files`` (each by itself).

    Args:
        folders: folders whose every name matters.
        files: files whose writes and replacement matter.
        clock: the daemon's clock (the backoff between two tries).
        on_watching: told True once changes are seen, False when they are not (the
            command queue polls faster meanwhile).
    """

    def __init__(
        self,
        *,
        folders: Iterable[Path],
        files: Iterable[Path],
        clock: Clock,
        on_watching: Callable[[bool], None] = lambda _watching: None,
    ) -> None:
        self._folders = frozenset(folders)
        self._files = tuple(files)
        self._clock = clock
        self._on_watching = on_watching
        self._subscribers: list[tuple[frozenset[str], Callable[[], None]]] = []
        #: Whether changes are being seen now (else the heartbeat reads the files).
        self.watching = False

    def subscribe(self, names: Iterable[str], callback: Callable[[], None]) -> None:
        """Call ``callback()`` when one of ``names`` changes (or events were lost)."""
        self._subscribers.append((frozenset(names), callback))

    def changed(self, names: set[str]) -> None:
        """Tell each subscriber whose names changed, in the order they subscribed."""
        lost = dirwatch.OVERFLOW in names
        for wanted, callback in self._subscribers:
            if lost or names & wanted:
                callback()

    def _set_watching(self, watching: bool) -> None:
        self.watching = watching
        self._on_watching(watching)
        if watching:
            # A change made after the last read but before the watch was in place would
            # otherwise wait for the heartbeat's safety-net read: every subscriber looks now.
            self.changed({dirwatch.OVERFLOW})

    async def run(self) -> None:
        """Watch until cancelled, watching again after every loss or failure."""
        failures = 0
        while True:
            started = self._clock.now()
            try:
                unwatchable = [f for f in self._folders if not f.is_dir()]
                if unwatchable:
                    # Nothing could hear a file appear there: not watching (each beat reads).
                    raise NotADirectoryError(f"the folder {unwatchable[0]} is not a folder")
                if dirwatch.AVAILABLE:
                    await dirwatch.watch(
                        self._folders,
                        self._files,
                        self.changed,
                        on_started=functools.partial(self._set_watching, True),
                    )
                else:
                    await self._watch_portably()
            except dirwatch.WatchLost as exc:
                # A file removed, or replaced faster than we followed it: usual, not an error.
                log.info("kill_switch_watch_lost detail=%s; watching again", exc)
            except (OSError, RuntimeError) as exc:
                log.error(
                    "kill_switch_watch_failed error=%s; the heartbeat reconciles meanwhile", exc
                )
            finally:
                self._set_watching(False)
            # Whatever changed while nothing watched is read now, not at the next beat.
            self.changed({dirwatch.OVERFLOW})
            # A watch that ran a while starts the backoff afresh; one failing at once backs off.
            failures = 0 if self._clock.now() - started > 10.0 else failures + 1
            await self._clock.sleep(min(30.0, 0.25 * 2**failures))

    async def _watch_portably(self) -> None:
        import watchfiles

        dirs = {d for d in (*self._folders, *(f.parent for f in self._files)) if d.is_dir()}
        self._set_watching(True)
        async for changes in watchfiles.awatch(*dirs, recursive=False, debounce=30, step=100):
            self.changed({path.rsplit("/", 1)[-1] for _, path in changes})
