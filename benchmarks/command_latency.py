"""Command latency benchmark (run by hand, not by the tests).

Starts a real daemon (``python -m autoheal run``) over one simple service in a
fresh temporary folder, then runs ``autoheal restart svc`` as a real subprocess
``--rounds`` times and measures, each time:

1. invoked → old process signalled: from just before the CLI subprocess is spawned
   to the wall-clock moment the old service process received SIGTERM (its handler
   appends ``time.time()`` to ``<runtime_dir>/svc.sigterm``). Includes the CLI's
   start-up, the queue insert, the daemon's claim poll (50 ms) and the core step.
   Target: median < 300 ms.
2. the whole CLI call (invoked → exit 0 with the new PID printed).
3. the CLI's start-up alone: ``python -m autoheal --help`` (interpreter, imports, argparse).

Between rounds it waits until the new process is healthy again, so every round
restarts a verified service.

Usage: ``.venv/bin/python benchmarks/command_latency.py [--rounds 20]``
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autoheal.core.stats import p95  # one percentile: nearest rank
from autoheal.drills.stacks.simple import Runtime, wait_for

SERVICE = "svc"


def summary(label: str, samples: list[float], *, width: int = 36, mid: str = "median") -> str:
    """One line: median (called ``mid``), p95, min, max in ms, and n."""
    ms = [s * 1000 for s in samples]
    return (
        f"{label:<{width}} {mid} {statistics.median(ms):7.1f} ms   p95 {p95(ms):7.1f} ms   "
        f"min {min(ms):7.1f} ms   max {max(ms):7.1f} ms   (n={len(ms)})"
    )


def _sigterms(rt: Runtime) -> list[float]:
    try:
        text = (rt.runtime_dir / f"{SERVICE}.sigterm").read_text()
    except FileNotFoundError:
        return []
    return [float(line) for line in text.split()]


def measure_restarts(rt: Runtime, rounds: int) -> tuple[list[float], list[float]]:
    """Per round: (invoked → old signalled, invoked → CLI exited), in seconds."""
    signalled, whole = [], []
    for i in range(rounds):
        old = wait_for(lambda: rt.healthy_pid(SERVICE), 15, "a healthy service")
        before = len(_sigterms(rt))
        invoked_wall, invoked = time.time(), time.perf_counter()
        done = rt.cli("restart", SERVICE, "--reason", f"benchmark {i}")
        exited = time.perf_counter()
        if done.returncode != 0:
            raise SystemExit(f"round {i}: exit {done.returncode}: {done.stderr.strip()}")
        stamps = wait_for(
            lambda before=before: _sigterms(rt)[before:], 5, "the old process's SIGTERM stamp"
        )
        signalled.append(stamps[0] - invoked_wall)
        whole.append(exited - invoked)
        wait_for(
            lambda old=old: (p := rt.healthy_pid(SERVICE)) is not None and p != old,
            15,
            "the new process healthy",
        )
    return signalled, whole


def measure_cli_startup(rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "autoheal", "--help"], capture_output=True, check=True
        )
        samples.append(time.perf_counter() - started)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="autoheal-bench-") as tmp,
        Runtime(Path(tmp), services=(SERVICE,)) as rt,
    ):
        rt.start_daemon()
        signalled, whole = measure_restarts(rt, args.rounds)
        startup = measure_cli_startup(args.rounds)
    print(f"python {sys.version.split()[0]}, {args.rounds} rounds")
    print(summary("restart invoked -> old signalled", signalled))
    print(summary("restart invoked -> CLI exited", whole))
    print(summary("CLI start-up alone (--help)", startup))
    verdict = "PASS" if statistics.median(signalled) < 0.300 else "FAIL"
    print(f"target: median invoked -> old signalled < 300 ms: {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
