"""A run as a script: the list of its acts, replayed without the seed's generator.

Each step of a seeded run is drawn first into a plain dict (the act and every
parameter it needs: the gap before it, the process, the exit code, the command and
its key, the bytes written by hand, the passes before a kill, the downtime), then
performed from that dict alone; the trace writes the dict as the step's ``do``.
:func:`run_script` performs such a list instead of drawing one, so a failing seed's
acts can be cut down (:mod:`autoheal.sim.shrink`) and pasted into a test. An act that
no longer applies (a crash of a process that is not running, a kill of a daemon that
is down, a start of one that is up) does nothing.

The seed is still passed: it orders trio's scheduling (``run._deterministic_trio``),
so replaying a seed's own script gives the seed's own trace, line for line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from autoheal.sim.run import Outcome, run_seed

__all__ = ["Script", "run_script", "script_of_trace"]

#: One act a line: ``{"gap": 3.2, "act": "crash", "name": "feeder", "code": 137}``.
Script = list[dict[str, Any]]


def run_script(
    script: Script,
    *,
    seed: int = 0,
    plant: str | None = None,
    strict: bool = False,
    trace_path: Path | None = None,
) -> Outcome:
    """Replay ``script`` (then the liveness phase), with ``plant`` on; the outcome."""
    return run_seed(
        seed, 0.0, plant=plant, strict=strict, trace_path=trace_path, script=list(script)
    )


def script_of_trace(lines: list[bytes] | Path) -> Script:
    """The acts of a trace (a file, or its lines): each step's ``do``, in order."""
    if isinstance(lines, Path):
        lines = lines.read_bytes().splitlines()
    script: Script = []
    for raw in lines:
        if not raw.strip():
            continue
        doc = orjson.loads(raw)
        if isinstance(doc, dict) and "do" in doc:
            script.append(doc["do"])
    return script
