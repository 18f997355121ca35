"""The descendants of a process, found cheaply, for the resource probes.

psutil's ``children(recursive=True)`` reads ``/proc/<pid>/stat`` of *every* process on
the host to build a parent map, each time it is called: about 1 ms for 90 processes,
more on a busy host, per probe per check. Two cheaper ways, in order:

1. ``/proc/<pid>/task/<tid>/children`` (Linux with ``CONFIG_PROC_CHILDREN``, as
   Debian's and Ubuntu's kernels have): the tree's own PIDs, nothing else read.
2. Otherwise one walk of ``/proc`` builds the parent map, and every resource probe
   of the daemon shares it for ``ttl`` seconds (probes due at about the same moment
   walk once between them).

Blocking (file reads): called from the probes' worker threads; a lock keeps two
threads from walking at once.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

__all__ = ["ProcessTree"]


class ProcessTree:
    """Finds a PID's descendants (see the module docstring for how).

    Args:
        ttl: how long one walk of ``/proc`` serves every caller (seconds).
        clock: monotonic time.
        proc: the ``/proc`` mount (a test may point it elsewhere).
    """

    def __init__(
        self,
        *,
        ttl: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        proc: str = "/proc",
    ) -> None:
        self.ttl = ttl
        self._clock = clock
        self._proc = proc
        self._lock = threading.Lock()
        self._children_files: bool | None = None  # unknown until first tried
        self._map: dict[int, list[int]] = {}
        self._map_at: float | None = None
        #: How many full walks of /proc were made (the benchmark reports it).
        self.walks = 0

    def descendants(self, pid: int) -> list[int]:
        """Every descendant of ``pid`` (children first), as the kernel shows them now."""
        if self._children_files is not False:
            found = self._from_children_files(pid)
            if found is not None:
                self._children_files = True
                return found
            self._children_files = False
        children = self._parent_map()
        out: list[int] = []
        stack = list(children.get(pid, ()))
        while stack:
            child = stack.pop()
            out.append(child)
            stack.extend(children.get(child, ()))
        return out

    def _from_children_files(self, pid: int) -> list[int] | None:
        out: list[int] = []
        stack = [pid]
        while stack:
            current = stack.pop()
            try:
                tids = os.listdir(f"{self._proc}/{current}/task")
            except OSError:
                if current == pid:
                    return [] if self._children_files else None
                continue  # a descendant that exited meanwhile
            for tid in tids:
                try:
                    with open(f"{self._proc}/{current}/task/{tid}/children", "rb") as f:
                        kids = [int(x) for x in f.read().split()]
                except FileNotFoundError:
                    if self._children_files is None and current == pid:
                        return None  # no CONFIG_PROC_CHILDREN here
                    continue
                except (OSError, ValueError):
                    continue
                out.extend(kids)
                stack.extend(kids)
        return out

    def _parent_map(self) -> dict[int, list[int]]:
        with self._lock:
            now = self._clock()
            if self._map_at is not None and now - self._map_at < self.ttl:
                return self._map
            children: dict[int, list[int]] = {}
            with os.scandir(self._proc) as it:
                for entry in it:
                    if not entry.name.isdigit():
                        continue
                    try:
                        with open(f"{self._proc}/{entry.name}/stat", "rb") as f:
                            data = f.read()
                    except OSError:
                        continue  # exited meanwhile
                    # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
                    fields = data[data.rfind(b")") + 2 :].split(maxsplit=2)
                    if len(fields) >= 2:
                        children.setdefault(int(fields[1]), []).append(int(entry.name))
            self._map, self._map_at = children, now
            self.walks += 1
            return children
