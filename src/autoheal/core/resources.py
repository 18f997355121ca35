"""What a process tree's resource use means: which threshold, if any, it crosses.

The ``resource`` probe (:mod:`autoheal.probes.resource`) measures a supervised
service's process tree (the main process and its descendants) with psutil; this
module judges the numbers. Pure: no clock, no psutil, numbers in, a verdict out.

Rules:

* A limit that is not configured (``None``) is never crossed.
* A measure that could not be taken (``None``: the CPU on the first sample, the open
  files of a process we may not inspect) crosses nothing: an unknown is not evidence.
* Crossing is strictly greater than the limit (monit's ``memory > 80%``): a tree
  exactly at its limit passes.
* When several limits are crossed, the first of RSS, CPU, fds, threads is the reason
  (memory first: it is what ends in the OOM killer); the detail names every one.
* A crossing is a *soft* failure: the core counts it like any failed check
  (``failures_before_restart``), which is monit's ``for 3 cycles``.

CPU % is the tree's CPU time over wall time between two samples, summed over the
processes present in both (a process that exited took its CPU time with it; one
born in between counts all of its own). 100 is one core, as ``top`` shows it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from autoheal.core import reasons as R

__all__ = [
    "ResourceLimits",
    "ResourceUsage",
    "ResourceVerdict",
    "judge_resources",
    "tree_cpu_percent",
]


@dataclass(frozen=True, slots=True)
class ResourceLimits:
    """The configured thresholds; ``None`` is "not checked"."""

    max_rss: int | None = None
    max_cpu_percent: float | None = None
    max_fds: int | None = None
    max_threads: int | None = None


@dataclass(frozen=True, slots=True)
class ResourceUsage:
    """One measurement of a process tree; ``None`` is "could not be measured"."""

    rss: int | None
    cpu_percent: float | None
    fds: int | None
    threads: int | None
    processes: int = 1


@dataclass(frozen=True, slots=True)
class ResourceVerdict:
    """The judgement: ok, or the reason token with the measured value and its limit."""

    ok: bool
    reason: str
    value: float | None
    threshold: float | None
    detail: str


def _mib(n: float) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"


def judge_resources(usage: ResourceUsage, limits: ResourceLimits) -> ResourceVerdict:
    """Judge one measurement against the limits (rules in the module docstring).

    Returns:
        ok with the first configured measure as the value (the health document shows
        it beside its limit), or the first crossing's reason, value and threshold.
    """
    rows: list[tuple[str, str, float | None, float | None, str]] = [
        (R.RSS_HIGH, "rss", _num(usage.rss), _num(limits.max_rss), "bytes"),
        (R.CPU_HIGH, "cpu", usage.cpu_percent, limits.max_cpu_percent, "%"),
        (R.FDS_HIGH, "fds", _num(usage.fds), _num(limits.max_fds), ""),
        (R.THREADS_HIGH, "threads", _num(usage.threads), _num(limits.max_threads), ""),
    ]
    crossed = [r for r in rows if r[2] is not None and r[3] is not None and r[2] > r[3]]
    if crossed:
        reason, _, value, limit, _ = crossed[0]
        detail = "; ".join(_say(name, v, lim) for _, name, v, lim, _ in crossed)
        return ResourceVerdict(False, reason, value, limit, f"{detail} ({usage.processes} proc)")
    configured = [r for r in rows if r[3] is not None]
    first = configured[0] if configured else rows[0]
    measured = ", ".join(_say(n, v, None) for _, n, v, _, _ in rows if v is not None)
    return ResourceVerdict(True, "", first[2], first[3], measured)


def _num(n: int | None) -> float | None:
    return None if n is None else float(n)


def _say(name: str, value: float | None, limit: float | None) -> str:
    def fmt(x: float) -> str:
        if name == "rss":
            return _mib(x)
        if name == "cpu":
            return f"{x:.1f}%"
        return f"{x:.0f}"

    shown = "?" if value is None else fmt(value)
    return f"{name} {shown}" if limit is None else f"{name} {shown} > {fmt(limit)}"


def tree_cpu_percent(
    before: Mapping[tuple[int, float], float],
    after: Mapping[tuple[int, float], float],
    elapsed_s: float,
) -> float | None:
    """CPU % of a process tree between two samples.

    Args:
        before: CPU seconds (user + system) per process, keyed by (pid, create time),
            at the first sample.
        after: the same at the second sample.
        elapsed_s: wall seconds between the samples.

    Returns:
        the percentage (100 = one core), or ``None`` when it cannot be known: no
        elapsed time, or no process in the second sample.
    """
    if not elapsed_s > 0 or not math.isfinite(elapsed_s) or not after:
        return None
    used = 0.0
    for key, now in after.items():
        then = before.get(key, 0.0)  # born since the first sample: all of it is new
        used += max(0.0, now - then)  # CPU time never runs backwards; a bad read does
    return 100.0 * used / elapsed_s
