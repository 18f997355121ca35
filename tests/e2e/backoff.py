"""A real daemon whose feeder keeps failing, so that it sits in BACKOFF (issue 23).

The simple stack's feeder exits 3 at start while ``<runtime_dir>/feeder.crash``
exists; with that file in place a SIGKILL makes the daemon restart it at once
(attempt 1), see the new process exit, and schedule attempt 2 after the first
backoff delay, long here (:data:`BACKOFF_S`) so that a test or a screenshot has
time to look at the countdown.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from autoheal.drills.stacks.simple import Runtime, wait_for

#: The first backoff delay (before attempt 2); the second is twice as long.
BACKOFF_S = 40.0


def backoff_runtime(root: Path, **config_kw: Any) -> Runtime:
    """A runtime (feeder and trader) whose backoff delays are long; not started."""
    rt = Runtime(root, ("feeder", "trader"), **config_kw)
    text = rt.config.read_text()
    slow = f'restart_backoff = ["{BACKOFF_S:g}s", "{2 * BACKOFF_S:g}s"]'
    fast = 'restart_backoff = ["300ms", "600ms"]'
    assert fast in text, "the simple stack's policy changed"
    rt.config.write_text(text.replace(fast, slow))
    return rt


def feeder_outlook(rt: Runtime) -> dict[str, Any]:
    doc = rt.health() or {}
    feeder = (doc.get("components") or {}).get("feeder") or {}
    outlook = feeder.get("outlook")
    return outlook if isinstance(outlook, dict) else {}


def make_feeder_fail(rt: Runtime, timeout: float = 20.0) -> dict[str, Any]:
    """Make the feeder unable to start, kill it, and wait for attempt 2 to be scheduled.

    Returns:
        The feeder's ``outlook`` from the first ``health_v2.json`` that schedules it.
    """
    pid = rt.healthy_pid("feeder")
    assert pid is not None, "the feeder is not up"
    (rt.runtime_dir / "feeder.crash").write_text("a test keeps the feeder from starting\n")
    os.kill(pid, signal.SIGKILL)
    return wait_for(
        lambda: (
            (o := feeder_outlook(rt)).get("next") == "scheduled" and o.get("attempt") == 2 and o
        ),
        timeout,
        "the feeder's second restart to be scheduled",
    )
