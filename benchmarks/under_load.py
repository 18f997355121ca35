"""Restart latency and stale-heartbeat detection, quiet and beside ``stress-ng --cpu 2`` (by hand).

One invocation runs two phases, one after the other: ``quiet`` (nothing else started)
and ``loaded`` (``stress-ng --cpu N`` running for the whole phase, in its own process
group, stopped in a ``finally``). In each phase, for autoheal, supervisord and circus:

1. **Restart latency**: SIGKILL of a random one of 10 ``sleep`` children → the
   replacement exec'd, exactly as ``restart_latency.py`` measures it (its functions,
   settings and ``/proc`` polling are reused as they are): p50, p95 and n.
2. **Stale-heartbeat detection** (autoheal only): a daemon supervises one Python child
   that rewrites ``<name>.heartbeat.json`` (``component``, ``pid``, ``ts``, ``seq``;
   tmp + ``os.replace``) every 0.2 s in the runtime dir, with a ``heartbeat`` probe,
   ``max_age = 2s``. A trial SIGSTOPs the child, waits until the kernel shows it stopped,
   then reads the last heartbeat it wrote. Detection time = the daemon's journal stamp
   (``time.time()`` taken as it records the ``probe_changed`` event with reason
   ``heartbeat_stale``, the first thing it does with a failing result, before the core
   decides) minus (last ``ts`` + ``max_age``). Both are the same host's wall clock.
   ``stale_seen_*`` cross-checks it from outside: when this script, polling the journal
   every 2 ms, first saw the event (an upper bound, late by that polling). The
   daemon then restarts the child (SIGTERM stays pending on a stopped process, so the
   SIGKILL after ``stop_timeout`` 1 s ends it); the next trial waits for the component to
   be back in OBSERVE, passing, attempts reset, with a heartbeat from the new child.
   supervisord and circus have no heartbeat-file probe: their figures are ``null`` with
   that reason. (circus ships a ``watchdog`` plugin that restarts a process missing UDP
   ``pid;timestamp`` messages for ``loop_rate * max_count`` seconds; it is not a file
   probe and is not built here. supervisord has none; superlance's ``httpok`` is HTTP.)

Output: a table, or with ``--json`` one object::

    {"quiet":  {supervisor: {restart_p50_ms, restart_p95_ms, restart_n,
                             stale_detect_p50_ms, stale_detect_max_ms, stale_n,
                             stale_seen_p50_ms, stale_seen_max_ms | stale_note}},
     "loaded": {... the same ...},
     "loaded_over_quiet": {supervisor: {restart_p50, restart_p95, stale_detect_p50}},
     "meta": {commit, commit_at_end, src_uncommitted, stress_argv, cpus,
              loadavg_1m_{start,end}_<phase>, leftovers_reaped_<phase>, ...}}

Needs Debian's ``stress-ng`` (``apt-get install stress-ng``); exits 2 without it.

Usage: ``.venv/bin/python benchmarks/under_load.py [--trials 20] [--stale-trials 10] [--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from restart_latency import (
    SUPERVISORS,
    Child,
    ensure_peers,
    find_pid,
    proc_pids,
    run_trials,
    shutdown,
    stability_check,
    start_all,
    summarize,
    wait_all_stable,
    wait_until,
)

BENCH_DIR = Path(__file__).resolve().parent
MAX_AGE_S = 2.0
HEARTBEAT_EVERY_S = 0.2
STALE_REASON = "heartbeat_stale"
NO_PROBE = "no heartbeat probe"

#: The child: rewrite the heartbeat atomically every 0.2 s, forever, on one line
#: (no braces, '%' or '$', which the supervisors expand).
HEARTBEAT_CODE = (
    "import collections,itertools,json,os,sys,time;p=sys.argv[1];n=sys.argv[2];"
    "d=lambda s: json.dumps(dict(component=n,pid=os.getpid(),ts=time.time(),seq=s));"
    "w=lambda s: (open(p+'.tmp','w').write(d(s)),os.replace(p+'.tmp',p),"
    f"time.sleep({HEARTBEAT_EVERY_S}));"
    "collections.deque(map(w,itertools.count()),maxlen=0)"
)


# --- stress-ng ------------------------------------------------------------------------


@contextmanager
def stress_ng(argv: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` (stress-ng) in its own process group for the block; always stop it."""
    load = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        time.sleep(2)  # let the workers start and the load settle
        if load.poll() is not None:
            raise SystemExit(f"stress-ng exited at once with {load.returncode}: {argv}")
        yield load
    finally:
        _stop_group(load)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the whole group (stress-ng and its workers), SIGKILL what is left after 10 s."""
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue
    try:  # the leader may be gone while a worker of its group lingers
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# --- stale-heartbeat detection (autoheal) ---------------------------------------------


def heartbeat_child(workdir: Path) -> Child:
    """The heartbeat writer; its file is where autoheal's heartbeat probe looks by default."""
    rt = workdir / "rt"
    rt.mkdir(exist_ok=True)
    path = rt / "hb00.heartbeat.json"
    return Child("hb00", (sys.executable, "-c", HEARTBEAT_CODE, str(path), "hb00"))


def _heartbeat(workdir: Path, name: str) -> dict[str, Any] | None:
    try:
        doc = json.loads((workdir / "rt" / f"{name}.heartbeat.json").read_bytes())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _stopped(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            # the state follows the ")" that closes the command name
            return fh.read().rsplit(b")", 1)[1].split()[0] in (b"T", b"t")
    except (OSError, IndexError):
        return False


def _alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


class Journal:
    """Read-only view of the daemon's journal: the ``probe_changed`` events it recorded."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
        try:
            db = sqlite3.connect(f"file:{self._path}?mode=ro", uri=True, timeout=5)
        except sqlite3.Error:
            return []
        try:
            db.row_factory = sqlite3.Row
            return db.execute(sql, params).fetchall()
        except sqlite3.Error:  # not created yet, or busy past the timeout: look again
            return []
        finally:
            db.close()

    def last_id(self) -> int:
        rows = self._query("SELECT max(id) AS id FROM events", ())
        return int(rows[0]["id"] or 0) if rows else 0

    def stale_event(self, component: str, after_id: int) -> tuple[int, float] | None:
        """The first ``probe_changed`` to ``heartbeat_stale`` after ``after_id``: (id, ts)."""
        rows = self._query(
            "SELECT id, ts FROM events WHERE id > ? AND kind = 'probe_changed'"
            " AND component = ? AND reason = ? ORDER BY id LIMIT 1",
            (after_id, component, STALE_REASON),
        )
        return (int(rows[0]["id"]), float(rows[0]["ts"])) if rows else None


def _fresh_from(workdir: Path, child: Child) -> bool:
    """The heartbeat file was written by the child's current process, under max_age / 2 ago."""
    pid = find_pid(child.argv)
    doc = _heartbeat(workdir, child.name)
    return (
        pid is not None
        and doc is not None
        and doc.get("pid") == pid
        and time.time() - float(doc.get("ts", 0)) < MAX_AGE_S / 2
    )


def one_stale_trial(child: Child, workdir: Path, journal: Journal) -> tuple[float, float]:
    """SIGSTOP the heartbeat writer; seconds from its heartbeat going stale to the journal.

    Returns:
        (to the daemon's journal stamp, to this script seeing the event): the second is a
        cross-check and an upper bound, late by this script's polling of the journal.
    """
    pid = wait_until(lambda: find_pid(child.argv), 10, f"{child.name} running") or 0
    after_id = journal.last_id()
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_until(lambda: _stopped(pid), 10, f"{child.name} stopped")
        # Stopped: the file can no longer change (os.replace is atomic, so a stop mid-write
        # leaves the previous heartbeat), and this is the last heartbeat the daemon can see.
        last = _heartbeat(workdir, child.name)
        if last is None or last.get("pid") != pid:
            raise SystemExit(f"{child.name}: no heartbeat of pid {pid} at SIGSTOP: {last}")
        crossed = float(last["ts"]) + MAX_AGE_S
        seen = wait_until(
            lambda: journal.stale_event(child.name, after_id),
            MAX_AGE_S + 30,
            f"{STALE_REASON} for {child.name} in the journal",
        )
        seen_here = time.time()
        # Let the daemon restart it (its SIGKILL ends a stopped process); it must not linger.
        wait_until(lambda: not _alive(pid), 30, f"old {child.name} (pid {pid}) to be replaced")
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGCONT)
    return (seen or (0, crossed))[1] - crossed, seen_here - crossed


def run_stale_trials(args: argparse.Namespace, bindir: Path) -> list[tuple[float, float]]:
    """Start autoheal on the heartbeat writer, SIGSTOP it ``args.stale_trials`` times, stop it."""
    probe = f'kind = "heartbeat"\nmax_age = "{MAX_AGE_S:g}s"'
    with tempfile.TemporaryDirectory(prefix="ul-autoheal-hb-") as tmp:
        workdir = Path(tmp)
        child = heartbeat_child(workdir)
        proc = start_all("autoheal", [child], workdir, bindir, probes=(probe,))
        stable = stability_check("autoheal", workdir)
        journal = Journal(workdir / "rt" / "journal.sqlite3")
        samples = []
        try:
            for _ in range(args.stale_trials):
                wait_all_stable([child], stable, 30)
                wait_until(lambda: _fresh_from(workdir, child), 30, "a fresh heartbeat")
                time.sleep(args.gap)
                samples.append(one_stale_trial(child, workdir, journal))
                if proc.poll() is not None:
                    raise SystemExit(f"autoheal exited with {proc.returncode}")
        finally:
            shutdown(proc, [child])
    return samples


# --- leftovers ------------------------------------------------------------------------


def reap_leftovers(base: Path) -> int:
    """SIGKILL what a stopped supervisor left behind under ``base``; return how many.

    restart_latency's circus.ini names a ``stats_endpoint``, which makes circus turn
    ``statsd`` on; the ``circusd-stats`` process it starts outlives circusd's SIGTERM and
    would go on polling through the later measurements. Every work directory of this run
    lies under ``base``, so only this run's leftovers match.
    """
    killed = 0
    for pid in proc_pids() - {os.getpid()}:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read()
        except OSError:
            continue
        if os.fsencode(str(base)) in cmdline:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
    return killed


# --- phases and report ----------------------------------------------------------------


def measure_phase(
    name: str, args: argparse.Namespace, bindir: Path, base: Path
) -> tuple[dict[str, Any], int]:
    """Every supervisor's restart and stale-detection figures, one after the other.

    Returns:
        The figures per supervisor, and how many leftover processes were reaped.
    """
    out: dict[str, Any] = {}
    reaped = 0
    for kind in args.supervisors.split(","):
        print(f"[{name}] {kind}: {args.trials} restarts ...", file=sys.stderr, flush=True)
        restart = summarize(run_trials(kind, "sleep", args, bindir))
        reaped += reap_leftovers(base)
        row: dict[str, Any] = {
            "restart_p50_ms": restart["p50_ms"],
            "restart_p95_ms": restart["p95_ms"],
            "restart_n": restart["n"],
        }
        if kind == "autoheal" and args.stale_trials > 0:
            print(f"[{name}] {kind}: {args.stale_trials} stale heartbeats ...", file=sys.stderr)
            stale = run_stale_trials(args, bindir)
            reaped += reap_leftovers(base)
            stamped, seen = [s[0] for s in stale], [s[1] for s in stale]
            row |= {
                "stale_detect_p50_ms": round(statistics.median(stamped) * 1000, 1),
                "stale_detect_max_ms": round(max(stamped) * 1000, 1),
                "stale_n": len(stamped),
                # cross-check: when this script saw the journal event (its polling included)
                "stale_seen_p50_ms": round(statistics.median(seen) * 1000, 1),
                "stale_seen_max_ms": round(max(seen) * 1000, 1),
            }
        else:
            note = NO_PROBE if kind != "autoheal" else "--stale-trials 0"
            row |= {
                "stale_detect_p50_ms": None,
                "stale_detect_max_ms": None,
                "stale_n": 0,
                "stale_note": note,
            }
        out[kind] = row
    return out, reaped


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def ratios(quiet: dict[str, Any], loaded: dict[str, Any]) -> dict[str, Any]:
    """loaded / quiet, per supervisor, for the p50s and the restart p95."""
    return {
        kind: {
            "restart_p50": _ratio(row["restart_p50_ms"], quiet[kind]["restart_p50_ms"]),
            "restart_p95": _ratio(row["restart_p95_ms"], quiet[kind]["restart_p95_ms"]),
            "stale_detect_p50": _ratio(
                row["stale_detect_p50_ms"], quiet[kind]["stale_detect_p50_ms"]
            ),
        }
        for kind, row in loaded.items()
        if kind in quiet
    }


def _git(*argv: str) -> str:
    done = subprocess.run(
        ["git", *argv], cwd=BENCH_DIR, capture_output=True, text=True, check=False
    )
    return done.stdout.rstrip()


def print_table(results: dict[str, Any]) -> None:
    def cell(value: float | None, width: int = 8) -> str:
        return f"{value:{width}.1f}" if value is not None else f"{'-':>{width}}"

    print(f"{'':19} {'restart (SIGKILL -> exec)':>26}   {'stale heartbeat -> detected':>35}")
    print(
        f"{'phase':7} {'supervisor':11} {'n':>3} {'p50 ms':>8} {'p95 ms':>8}"
        f"    {'n':>3} {'p50 ms':>8} {'max ms':>8} {'seen p50':>8}"
    )
    for phase in ("quiet", "loaded"):
        for kind, r in results.get(phase, {}).items():
            print(
                f"{phase:7} {kind:11} {r['restart_n']:3d} {cell(r['restart_p50_ms'])}"
                f" {cell(r['restart_p95_ms'])}    {r['stale_n']:3d}"
                f" {cell(r['stale_detect_p50_ms'])} {cell(r['stale_detect_max_ms'])}"
                f" {cell(r.get('stale_seen_p50_ms'))}"
                + (f"  ({r['stale_note']})" if "stale_note" in r else "")
            )
    print("\nloaded / quiet")
    for kind, r in results.get("loaded_over_quiet", {}).items():
        parts = [f"{k} {'-' if v is None else f'{v:.2f}x'}" for k, v in r.items()]
        print(f"  {kind:11} " + ", ".join(parts))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="restarts per supervisor")
    parser.add_argument("--stale-trials", type=int, default=10, help="SIGSTOPs (autoheal)")
    parser.add_argument("--cpu", type=int, default=2, help="stress-ng --cpu workers")
    parser.add_argument("--supervisors", default=",".join(SUPERVISORS))
    parser.add_argument("--phases", default="quiet,loaded")
    parser.add_argument("--poll-ms", type=float, default=0.5, help="/proc poll period")
    parser.add_argument("--gap", type=float, default=0.2, help="idle seconds between trials")
    parser.add_argument("--circus-check-delay", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    stress = shutil.which("stress-ng")
    if stress is None:
        print(
            "under_load.py: stress-ng not found on PATH; install Debian's package:"
            " apt-get install stress-ng",
            file=sys.stderr,
        )
        return 2
    # A safety net only: the finally below stops it; this ends it if we are SIGKILLed.
    stress_argv = [stress, "--cpu", str(args.cpu), "--timeout", "3600s", "--quiet"]
    bindir = ensure_peers()
    results: dict[str, Any] = {}
    meta: dict[str, Any] = {
        "commit": _git("log", "-1", "--format=%h"),
        # others edit src/ while benchmarks run: say what was measured beyond the commit
        "src_uncommitted": _git("status", "--porcelain", "--", "../src").splitlines(),
        "stress_argv": ["stress-ng", *stress_argv[1:]],
        "cpus": os.cpu_count(),
        "max_age_s": MAX_AGE_S,
        "heartbeat_every_s": HEARTBEAT_EVERY_S,
    }
    # Every TemporaryDirectory of this run (restart_latency's too) goes under ``base``.
    base = Path(tempfile.mkdtemp(prefix="under-load-"))
    tempfile.tempdir = str(base)
    try:
        for phase in args.phases.split(","):
            with stress_ng(stress_argv) if phase == "loaded" else nullcontext():
                meta[f"loadavg_1m_start_{phase}"] = round(os.getloadavg()[0], 2)
                results[phase], reaped = measure_phase(phase, args, bindir, base)
                meta[f"loadavg_1m_end_{phase}"] = round(os.getloadavg()[0], 2)
                meta[f"leftovers_reaped_{phase}"] = reaped
    finally:
        reap_leftovers(base)
        shutil.rmtree(base, ignore_errors=True)
    # If someone committed while this ran, say so: the daemons import src/ from disk at start.
    meta["commit_at_end"] = _git("log", "-1", "--format=%h")
    if "quiet" in results and "loaded" in results:
        results["loaded_over_quiet"] = ratios(results["quiet"], results["loaded"])
    results["meta"] = meta
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_table(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
