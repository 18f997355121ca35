"""The bundled demo stack under a busy host: no false restart, no false failsafe, no false alarm.

Runs ``autoheal run`` on a copy of ``config/autoheal.toml`` (the production timings:
heartbeat ``max_age`` 15 s, two failed checks before a restart, a 1.5 s REST p95),
with its two fixed demo ports swapped for free ones and its runtime files in a
temporary folder. Once the daemon says DOR, ``stress-ng --cpu N`` (default 4 on
this 2-core machine: twice as many busy workers as cores) runs beside it for
``--minutes``; every ``--check-every`` seconds ``autoheal check --json`` runs
against the same config. Nothing fails on purpose, so every restart, failsafe,
degraded period or non-zero ``check`` is a false alarm caused by load alone.

Reported (text, or one JSON object with ``--json``):

* ``restarts`` / ``failsafes`` / ``degraded``: journaled ``stage_transition`` events
  into RESTART / FAILSAFE and ``dependency`` failures, counted over the loaded window;
* ``checks``: how many ``autoheal check`` runs, how many exited 0, and each other
  one's failing probes with their reasons; ``check_wall_p50_s`` / ``max_s``;
* ``probe_failures``: the journal's probe results that failed, by component, probe
  and reason (a failed check that did not, or not yet, lead to a restart);
* ``meta``: commit, stress argv, cpus, load average at start and end.

Exit status: 0 when nothing false happened, 1 otherwise, 2 when ``stress-ng`` is
missing. Usage::

    .venv/bin/python benchmarks/soak_under_load.py --minutes 10 --stress-cpus 4 [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from autoheal.drills.stacks.harness import DaemonProcess, autoheal_argv

ROOT = Path(__file__).resolve().parent.parent
DEMO_CONFIG = ROOT / "config" / "autoheal.toml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def render_config(folder: Path) -> Path:
    """The demo config in ``folder/config/``, its fixed ports replaced by free ones."""
    exchange, proxy = free_port(), free_port()
    text = DEMO_CONFIG.read_text()
    text = re.sub(r"\b8765\b", str(exchange), text)
    text = re.sub(r"\b8766\b", str(proxy), text)
    (folder / "config").mkdir(parents=True)
    path = folder / "config" / "autoheal.toml"
    path.write_text(text)
    return path


def autoheal(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        autoheal_argv(*args, config=config),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_ready(config: Path, daemon: DaemonProcess, timeout: float) -> float:
    start = time.monotonic()
    deadline = start + timeout
    while time.monotonic() < deadline:
        if not daemon.alive():
            raise SystemExit(f"the daemon exited with {daemon.returncode} before DOR")
        if autoheal(config, "status", "--json", timeout=30).returncode == 0:
            return time.monotonic() - start
        time.sleep(0.5)
    raise SystemExit(f"no DOR within {timeout:.0f} s")


def journal_counts(journal: Path, since: float, until: float) -> dict[str, Any]:
    con = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=10)
    try:
        rows = con.execute(
            "SELECT kind, component, reason, data FROM events WHERE ts >= ? AND ts <= ?",
            (since, until),
        ).fetchall()
        total = con.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    finally:
        con.close()
    into: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    for kind, component, reason, data in rows:
        kinds[kind] += 1
        doc = json.loads(data) if data else {}
        if kind == "stage_transition":
            into[str(doc.get("to"))] += 1
        if kind == "probe_changed" and doc.get("ok") is False:
            failed[f"{component}/{doc.get('probe')}/{reason}"] += 1
    return {
        "restarts": into.get("RESTART", 0),
        "failsafes": into.get("FAILSAFE", 0),
        "transitions_into": dict(into),
        "probe_failures": dict(failed),
        "event_kinds": dict(kinds),
        # Every event of the run (start-up included): shows the journal was read at all.
        "events_whole_run": total,
    }


def commit() -> str:
    out = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "unknown"


def run(minutes: float, stress_cpus: int, check_every: float) -> dict[str, Any]:
    stress_bin = shutil.which("stress-ng")
    if stress_bin is None:
        print("soak_under_load: needs stress-ng (apt-get install stress-ng)", file=sys.stderr)
        raise SystemExit(2)
    folder = Path(tempfile.mkdtemp(prefix="autoheal-soak-"))
    config = render_config(folder)
    daemon = DaemonProcess(config, folder / "daemon.log")
    stress: subprocess.Popen[bytes] | None = None
    checks: list[dict[str, Any]] = []
    try:
        ready_s = wait_ready(config, daemon, 60)
        stress_argv = [stress_bin, "--cpu", str(stress_cpus), "--quiet"]
        stress = subprocess.Popen(stress_argv, start_new_session=True)
        load_start = os.getloadavg()[0]
        started = time.time()
        end = time.monotonic() + minutes * 60
        while time.monotonic() < end:
            t0 = time.monotonic()
            done = autoheal(config, "check", "--json")
            wall = time.monotonic() - t0
            entry: dict[str, Any] = {"exit": done.returncode, "wall_s": round(wall, 3)}
            if done.returncode != 0:
                try:
                    doc = json.loads(done.stdout)
                    entry["failing"] = [
                        f"{p.get('target')}/{p.get('probe')}: {p.get('reason')}"
                        for p in doc.get("probes", [])
                        if not p.get("ok")
                    ]
                except ValueError:
                    entry["output"] = (done.stdout + done.stderr)[-400:]
            checks.append(entry)
            if not daemon.alive():
                raise SystemExit(f"the daemon exited with {daemon.returncode} under load")
            time.sleep(max(0.0, check_every - (time.monotonic() - t0)))
        finished = time.time()
        load_end = os.getloadavg()[0]
    finally:
        if stress is not None:
            os.killpg(stress.pid, signal.SIGTERM)
            stress.wait(30)
        daemon.stop(60)
        daemon.roster.reap()  # its services, had it left any
    counts = journal_counts(folder / "shared_data" / "journal.sqlite3", started, finished)
    walls = [c["wall_s"] for c in checks]
    result = {
        "minutes": minutes,
        "ready_s": round(ready_s, 2),
        **counts,
        "checks": len(checks),
        "checks_ok": sum(1 for c in checks if c["exit"] == 0),
        "check_failures": [c for c in checks if c["exit"] != 0],
        "check_wall_p50_s": round(statistics.median(walls), 3) if walls else None,
        "check_wall_max_s": max(walls) if walls else None,
        "meta": {
            "commit": commit(),
            "stress_argv": ["stress-ng", "--cpu", str(stress_cpus)],
            "cpus": os.cpu_count(),
            "loadavg_1m_start": load_start,
            "loadavg_1m_end": load_end,
            "folder": str(folder),
        },
    }
    shutil.rmtree(folder, ignore_errors=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--stress-cpus", type=int, default=4)
    parser.add_argument("--check-every", type=float, default=20.0, help="seconds")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.minutes, args.stress_cpus, args.check_every)
    false_alarms = (
        result["restarts"] + result["failsafes"] + (result["checks"] - result["checks_ok"])
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['minutes']} min beside stress-ng --cpu {args.stress_cpus} "
            f"(commit {result['meta']['commit']}, load {result['meta']['loadavg_1m_end']:.1f})"
        )
        print(f"  restarts {result['restarts']}  failsafes {result['failsafes']}")
        print(
            f"  autoheal check: {result['checks_ok']}/{result['checks']} exit 0, "
            f"p50 {result['check_wall_p50_s']} s, max {result['check_wall_max_s']} s"
        )
        for c in result["check_failures"]:
            print(f"    exit {c['exit']}: {c.get('failing') or c.get('output')}")
        print(f"  failed probe results in the journal: {result['probe_failures'] or 'none'}")
    return 1 if false_alarms else 0


if __name__ == "__main__":
    sys.exit(main())
