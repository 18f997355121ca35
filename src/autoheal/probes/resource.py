"""Resource probe: RSS, CPU %, open fds and threads of a service's process tree.

monit's ``if memory > 80% for 3 cycles``: this module measures, the core judges
(:func:`autoheal.core.resources.judge_resources`), and a crossing is a soft failure
the core counts like any other (``failures_before_restart`` is the "3 cycles").

The tree is the service's main process (its PID comes from the daemon's own process
table, through ``pid_of``) and every descendant. The cost per check, on the event
loop (``check_inline``: procfs reads do not block): the descendants from
:class:`~autoheal.probes.proctree.ProcessTree` (the tree's own ``children`` files,
or one walk of ``/proc`` shared by every resource probe of the daemon), then one
``oneshot()`` read per process of only the measures a limit is configured for. The
``psutil.Process`` objects are kept between checks (each one's identity, PID and
start time, is read once), so is the CPU sample.

No process (the service is stopped, restarting, or has exited) is
``process_missing``, as the process probe says it: there is no resource verdict
without a process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import psutil

from autoheal.core.reasons import PROCESS_MISSING
from autoheal.core.resources import (
    ResourceLimits,
    ResourceUsage,
    judge_resources,
    tree_cpu_percent,
)
from autoheal.probes.proctree import ProcessTree
from autoheal.probes.result import ProbeResult

__all__ = ["ResourceProbe"]

Key = tuple[int, float]  # (pid, create time): a PID reused later is another process


class ResourceProbe:
    """Measure the tree of the process ``pid_of()`` names and judge it against ``limits``.

    Args:
        pid_of: the service's live PID, or None when it has no process (the daemon's
            process table; ``autoheal check`` reads the pidfile).
        limits: the thresholds (at least one should be set).
        tree: finds the descendants; the daemon's resource probes share one.
        clock: monotonic time, for the CPU % between two checks.
    """

    def __init__(
        self,
        pid_of: Callable[[], int | None],
        limits: ResourceLimits,
        *,
        tree: ProcessTree | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pid_of = pid_of
        self.limits = limits
        self._tree = ProcessTree() if tree is None else tree
        self._clock = clock
        self._main: psutil.Process | None = None
        self._kids: dict[int, psutil.Process] = {}
        self._cpu_sample: dict[Key, float] = {}
        self._cpu_before: dict[Key, float] = {}
        self._cpu_at: float | None = None

    def __repr__(self) -> str:
        return f"ResourceProbe({self.limits!r})"

    async def check(self) -> ProbeResult:
        return self.check_inline()

    def check_inline(self) -> ProbeResult:
        """The whole check, on the event loop: ``/proc`` reads of a few processes never
        block and cost less than a worker thread's round trip (about 0.5 ms a check on
        a 2-vCPU VM, more than the reads themselves)."""
        usage = self.measure()
        if usage is None:
            return ProbeResult(False, PROCESS_MISSING, None, None, detail="no process")
        usage = replace(usage, cpu_percent=self._cpu(self._cpu_sample))
        v = judge_resources(usage, self.limits)
        return ProbeResult(v.ok, v.reason, v.value, v.threshold, detail=v.detail)

    def measure(self) -> ResourceUsage | None:
        """One measurement of the tree (its CPU times are kept for the CPU %, which
        :meth:`check_inline` works out); None when there is no process."""
        pid = self._pid_of()
        if pid is None:
            self._forget()
            return None
        main = self._main
        try:
            # is_running() compares the start time: a restart that got the same PID back
            # is a new process, with a new CPU baseline.
            if main is None or main.pid != pid or not main.is_running():
                self._forget()
                main = self._main = psutil.Process(pid)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            self._forget()
            return None
        procs = [main, *self._descendants(pid)]
        lim = self.limits
        rss = 0 if lim.max_rss is not None else None
        fds = 0 if lim.max_fds is not None else None
        threads = 0 if lim.max_threads is not None else None
        cpu: dict[Key, float] = {}
        counted = 0
        for proc in procs:
            try:
                with proc.oneshot():
                    if rss is not None:
                        rss += proc.memory_info().rss
                    if threads is not None:
                        threads += proc.num_threads()
                    if lim.max_cpu_percent is not None:
                        times = proc.cpu_times()
                        cpu[(proc.pid, proc.create_time())] = times.user + times.system
                    if fds is not None:
                        try:
                            fds += proc.num_fds()
                        except psutil.AccessDenied:
                            fds = None  # unknown is not evidence: no fds verdict
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                if proc is main:
                    self._forget()
                    return None
                continue  # a descendant that exited meanwhile: not part of the tree now
            except psutil.AccessDenied:
                continue
            counted += 1
        self._cpu_sample = cpu
        return ResourceUsage(rss, None, fds, threads, counted)

    def _descendants(self, pid: int) -> list[psutil.Process]:
        kids: dict[int, psutil.Process] = {}
        for child in self._tree.descendants(pid):
            proc = self._kids.get(child)
            if proc is None:
                try:
                    proc = psutil.Process(child)
                except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                    continue  # gone meanwhile, or not ours to read
            kids[child] = proc
        self._kids = kids  # those no longer in the tree are dropped
        return list(kids.values())

    def _cpu(self, sample: dict[Key, float]) -> float | None:
        if self.limits.max_cpu_percent is None:
            return None
        now = self._clock()
        percent = (
            None
            if self._cpu_at is None
            else tree_cpu_percent(self._cpu_before, sample, now - self._cpu_at)
        )
        self._cpu_before, self._cpu_at = sample, now
        return percent

    def _forget(self) -> None:
        self._main = None
        self._kids = {}
        self._cpu_before, self._cpu_at = {}, None
