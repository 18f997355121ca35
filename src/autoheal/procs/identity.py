"""The psutil boundary: is this PID ours, what does it run, what hangs below it.

Every function here is synchronous and blocking (it reads ``/proc``); the async
shell calls them through ``anyio.to_thread.run_sync``. psutil's
``NoSuchProcess``, ``ZombieProcess`` and ``AccessDenied`` never leave this
module: they become a :class:`ProcessStatus`, ``None`` or ``False``.

Proof of identity is the PID plus the kernel start time. psutil reports the
start time as wall-clock seconds (boot time + jiffies since boot); a clock
*step* between taking and checking an identity therefore makes it look
``not_ours``. That errs on the safe side: we never signal what we cannot prove.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import psutil

from autoheal.procs.model import ProcessIdentity, ProcessStatus

__all__ = [
    "CREATE_TIME_TOLERANCE_S",
    "ParentMap",
    "cmdline_matches",
    "collect_descendants",
    "identity_of",
    "live_process",
    "read_cmdline",
    "read_pidfile",
    "same_program",
    "signal_each",
    "status_of",
    "still_running",
]

#: Start times are in jiffies (10 ms); this only absorbs float noise, never a reused PID.
CREATE_TIME_TOLERANCE_S = 0.005
#: A pidfile is a PID and a newline; anything longer is garbage.
_PIDFILE_MAX_BYTES = 64
#: How many leading words (an interpreter and one option) a shebang may add in front of argv.
_MAX_INTERPRETER_WORDS = 2


def read_pidfile(path: Path) -> int | None:
    """Return the PID in a pidfile, or ``None`` when it is absent, unreadable or garbage."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(_PIDFILE_MAX_BYTES + 1)
    except OSError:
        return None
    if len(data) > _PIDFILE_MAX_BYTES:
        return None
    text = data.decode("ascii", "replace").strip()
    if not text.isdigit():
        return None
    pid = int(text)
    return pid if pid > 0 else None


def live_process(pid: int, create_time: float) -> psutil.Process | None:
    """Return the psutil handle of ``pid`` if it is alive and started at ``create_time``."""
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - create_time) > CREATE_TIME_TOLERANCE_S:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
    except (psutil.Error, OSError):
        return None
    return proc


def status_of(identity: ProcessIdentity) -> ProcessStatus:
    """Classify a PID against the identity we recorded for it."""
    try:
        proc = psutil.Process(identity.pid)
        if abs(proc.create_time() - identity.create_time) > CREATE_TIME_TOLERANCE_S:
            return ProcessStatus.NOT_OURS
        if proc.status() == psutil.STATUS_ZOMBIE:
            return ProcessStatus.ZOMBIE
    except psutil.ZombieProcess:
        return ProcessStatus.ZOMBIE
    except psutil.NoSuchProcess:
        return ProcessStatus.MISSING
    except (psutil.AccessDenied, OSError):
        return ProcessStatus.NOT_OURS
    return ProcessStatus.RUNNING


def identity_of(pid: int, cmdline: Sequence[str]) -> ProcessIdentity | None:
    """Take the identity of our just-spawned child; ``None`` if ``/proc`` does not know it.

    Only the start time is read. The command line is the argv we exec'd, not
    ``/proc/<pid>/cmdline``: right after ``exec`` returns to the parent the kernel
    may still be loading the program and report an empty command line (seen for
    over 10 ms on a loaded VM), and reading it would only slow a restart down.
    """
    try:
        create_time = psutil.Process(pid).create_time()
    except (psutil.Error, OSError):
        return None
    return ProcessIdentity(pid, create_time, tuple(cmdline))


def read_cmdline(proc: psutil.Process, settle_s: float = 0.25) -> tuple[str, ...] | None:
    """The command line of a live process, or ``None`` when it cannot be read.

    An empty command line from a live process means an ``exec`` still in progress
    (the new program's arguments are not mapped yet), so it is read again for up
    to ``settle_s`` before giving up. This blocks: call it in a worker thread.
    """
    deadline = time.monotonic() + settle_s
    while True:
        try:
            cmdline = tuple(proc.cmdline())
        except (psutil.Error, OSError):
            return None
        if cmdline:
            return cmdline
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.002)


def _resolve(word: str, cwd: Path) -> str:
    """Resolve a program word the way ``execvp`` would, then follow symlinks."""
    if os.sep not in word:
        found = shutil.which(word)
        if found is None:
            return word
        word = found
    path = Path(word) if os.path.isabs(word) else cwd / word
    return os.path.realpath(path)


def same_program(expected: str, actual: str, cwd: Path) -> bool:
    """Whether two program words name the same file (``python3`` vs ``/usr/bin/python3.11``)."""
    return expected == actual or _resolve(expected, cwd) == _resolve(actual, cwd)


def cmdline_matches(expected: Sequence[str], actual: Sequence[str], cwd: Path) -> bool:
    """Whether a process's command line is the one we would have started.

    The rule, and why:

    * the arguments after the program word must be *equal*: they carry what
      makes a service itself (the script, the module after ``-m``, its flags);
    * the program word must name the same file, compared after ``PATH`` lookup
      and symlink resolution relative to the spec's ``cwd``, because a venv's
      ``python`` is a symlink and a config may say ``python3`` where ``/proc``
      shows an absolute path;
    * the kernel may put up to two words in front (a shebang's interpreter and
      one option): ``./feeder.py --x`` runs as ``/usr/bin/python3 ./feeder.py --x``.

    Anything else (an empty command line, a rewritten process title, another
    script under the same interpreter) is *not* ours.
    """
    exp, act = tuple(expected), tuple(actual)
    if not exp or not act or len(act) < len(exp):
        return False
    extra = len(act) - len(exp)
    if extra > _MAX_INTERPRETER_WORDS:
        return False
    if act[extra + 1 :] != exp[1:]:
        return False
    return same_program(exp[0], act[extra], cwd)


class ParentMap:
    """Who is whose parent, from one walk of ``/proc`` shared by stops that run together.

    psutil's ``children(recursive=True)`` reads every process's ``stat`` on each call;
    a shutdown of 500 services made 500 such walks at once (about 20 s on two cores).
    A walk is reused for at most ``max_age_s``; a process forked after it is still
    reached by the process-group signal, and every PID found is checked again (its
    parent and start time) before it counts, so a reused PID is never taken for ours.
    """

    def __init__(
        self, max_age_s: float = 0.05, clock: Callable[[], float] = time.monotonic
    ) -> None:
        import threading

        self._max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()  # stops collect in worker threads
        self._at = -math.inf
        self._children: dict[int, list[int]] = {}

    def children(self) -> dict[int, list[int]]:
        with self._lock:
            if self._clock() - self._at > self._max_age_s:
                self._children = _read_children()
                self._at = self._clock()
            return self._children


def _read_children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
            ppid = int(stat.rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        children.setdefault(ppid, []).append(int(name))
    return children


def _descendants_from(proc: psutil.Process, tree: ParentMap) -> list[psutil.Process]:
    children = tree.children()
    found: list[psutil.Process] = []
    parents = [proc]
    while parents:
        parent = parents.pop()
        for pid in children.get(parent.pid, ()):
            try:
                child = psutil.Process(pid)
                # Still the child of that parent, and not older: not a reused PID.
                if child.ppid() != parent.pid or child.create_time() < parent.create_time():
                    continue
            except (psutil.Error, OSError):
                continue
            found.append(child)
            parents.append(child)
    return found


def collect_descendants(
    proc: psutil.Process, tree: ParentMap | None = None
) -> list[psutil.Process]:
    """Every live descendant of ``proc``, taken *before* signalling (children reparent later).

    Each one's start time is read now and cached by psutil, so later identity
    checks (and waits) need no ``/proc`` read and cannot mistake a reused PID.
    ``tree`` shares the walk of ``/proc`` between stops (Linux); without it, psutil's.
    """
    try:
        if tree is not None and os.path.isdir("/proc/self"):
            children = _descendants_from(proc, tree)
        else:
            children = proc.children(recursive=True)
    except (psutil.Error, OSError):
        return []
    primed = []
    for child in children:
        try:
            child.create_time()
        except (psutil.Error, OSError):
            continue
        primed.append(child)
    return primed


def still_running(procs: Iterable[psutil.Process]) -> list[psutil.Process]:
    """The processes that are still alive (not reaped, not zombies, PID not reused)."""
    alive = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except (psutil.Error, OSError):
            continue
    return alive


def signal_each(procs: Iterable[psutil.Process], sig: int) -> int:
    """Send ``sig`` to each process that is still the same one; return how many got it.

    psutil re-checks the start time before sending, so a reused PID is skipped.
    """
    sent = 0
    for proc in procs:
        if proc.pid == os.getpid():
            continue
        try:
            proc.send_signal(sig)
            sent += 1
        except (psutil.Error, OSError):
            continue
    return sent
