"""Scale benchmark: autoheal vs supervisord vs circus at N services (run by hand, not by the tests).

For each supervisor and each N in ``--services`` (one value or a list, ``10,100,500``),
one after the other on the same machine:

* N cheap children, ``sleep 200000.<i>`` (a command line unique on the machine, so
  ``/proc`` tells each one apart);
* ONE helper process, started before the supervisor and for the peers too (same
  machine load), rewrites ``<runtime_dir>/<name>.heartbeat.json`` for every service
  once a second (``component``, ``pid``, ``ts``, ``seq``, ``ws_last_msg_ts``; tmp file
  + ``os.replace``);
* autoheal runs 3 probes per service (``process``; ``heartbeat`` max_age 5 s;
  ``ws_freshness`` max_age 5 s on ``ws_last_msg_ts``; each every ``--probe-interval``),
  so N = 500 is 1500 probes; supervisord and circus probe nothing. The configs and
  the policy (``max_restarts=1000``, ``stable_reset=0.5s``, ``verify_min_uptime=0s``)
  are restart_latency.py's.

Measured per (supervisor, N):

* ``ready_s``: from launching the supervisor until every child runs (all N command
  lines found in ``/proc``) and, for autoheal, the daemon is READY (``health_v2.json``
  says ``daemon.ready`` and ``dor`` true: the same beat that logs ``ready DOR=true``);
  ``children_s`` is the first half alone.
* ``cpu_percent`` / ``rss_mb``: the supervisor's own process (not its children) over
  ``--seconds`` of idle after a ``--warmup``, as in overhead.py (CPU of one core; RSS max).
* ``restart_p50_ms`` / ``restart_p95_ms``: ``--trials`` SIGKILLs of a random child, each
  timed until a new PID with that child's command line shows in ``/proc`` (polled every
  ``--poll-ms``, 0.5 ms: only the PIDs new since the kill are read). Before each trial
  every child runs and, for autoheal, every component is in ``OBSERVE`` with its
  attempts reset, so each restart is the first of an episode.
* ``loop_lag_p99_ms`` / ``loop_lag_max_ms`` (autoheal; null for the peers): the
  ``loop_lag_s`` of the daemon's ``auto_heal.heartbeat.json``, one sample per beat
  (1 s), over the idle window and the trials; ``loop_lag_startup_max_ms`` is the worst
  beat between launch and READY (null when READY came with the first beat read).
* ``stop_s``: SIGTERM to the supervisor's exit (it stops its N children first); circus
  gets another SIGTERM every 5 s (it sometimes drops one), ``stop_sigterms`` says how many.

``--verify-window`` overrides autoheal's 5 s (restart_latency's): a daemon that takes
longer than the window to start all N restarts the first ones for ``verify_timeout``.
The JSON's ``meta`` has the commit before and after (the daemon may change under a long
run) and the uncommitted files under ``src/``; a (supervisor, N) that fails gets
``error`` and the run goes on. ``loadavg_1m_*`` show what else ran on the machine.

Usage: ``.venv/bin/python benchmarks/scale.py --services 10,100,500 --seconds 30 --json``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil
from overhead import PROBES, sample
from restart_latency import (
    BENCH_DIR,
    SUPERVISORS,
    Child,
    autoheal_config,
    ensure_peers,
    launch,
    one_trial,
    proc_pids,
)

from autoheal.core.stats import percentile  # one percentile: nearest rank
from autoheal.drills.stacks.harness import autoheal_argv

#: The children's command line is ``sleep 200000.<i>`` (other benchmarks use other numbers).
SLEEP_BASE = "200000"

#: The one heartbeat writer: every service's heartbeat, atomically, once a second.
HELPER_CODE = """
import json, os, sys, time
rt, names = sys.argv[1], sys.argv[2:]
seq = 0
while True:
    now = time.time()
    for n in names:
        path = os.path.join(rt, n + ".heartbeat.json")
        doc = dict(component=n, pid=os.getpid(), ts=now, seq=seq, ws_last_msg_ts=now)
        with open(path + ".tmp", "w") as fh:
            fh.write(json.dumps(doc))
        os.replace(path + ".tmp", path)
    seq += 1
    time.sleep(max(0.0, 1.0 - (time.time() - now)))
"""


def make_children(count: int) -> list[Child]:
    """``count`` sleep children, each with a command line unique on the machine."""
    sleep = shutil.which("sleep") or "/bin/sleep"
    return [Child(f"s{i:04d}", (sleep, f"{SLEEP_BASE}.{i:04d}")) for i in range(count)]


# --- /proc, once for all children -------------------------------------------------------


def _key(argv: Sequence[str | bytes]) -> tuple[bytes, ...]:
    raw = [a if isinstance(a, bytes) else a.encode() for a in argv]
    return (os.path.basename(raw[0]), *raw[1:]) if raw else ()


def running_pids(children: Sequence[Child]) -> dict[str, int]:
    """One pass over /proc: the PID of every child whose command line is running."""
    want = {_key(c.argv): c.name for c in children}
    found: dict[str, int] = {}
    for pid in proc_pids():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                parts = fh.read().split(b"\0")[:-1]
        except OSError:
            continue
        name = want.get(_key(parts))
        if name is not None:
            found[name] = max(pid, found.get(name, 0))
    return found


def kill_leftovers(children: Sequence[Child]) -> None:
    """SIGKILL every child still running (a supervisor that left some behind)."""
    for _ in range(100):
        left = running_pids(children)
        if not left:
            return
        for pid in left.values():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.02)


def stop(proc: subprocess.Popen[bytes], timeout: float, resend: float | None) -> dict[str, Any]:
    """SIGTERM and wait for the exit (``resend``: SIGTERM again every so many seconds).

    circusd sometimes drops a SIGTERM (its arbiter refuses ``quit`` while it runs another
    command), so circus gets one every 5 s; the others get exactly one. Returns
    ``stop_s`` (from the first SIGTERM; None if still alive after ``timeout``) and
    ``stop_sigterms``. Whatever the supervisor left behind is killed (a SIGKILLed
    circusd leaves its circusd-stats running).
    """
    family = psutil.Process(proc.pid).children(recursive=True)
    t0 = time.monotonic()
    sent = 0
    stop_s = None
    while (left := timeout - (time.monotonic() - t0)) > 0:
        proc.send_signal(signal.SIGTERM)
        sent += 1
        try:
            proc.wait(timeout=min(resend or left, max(0.1, left)))
        except subprocess.TimeoutExpired:
            if resend is None:
                break
            continue
        stop_s = round(time.monotonic() - t0, 2)
        break
    if stop_s is None:
        kill_tree(proc)
    for p in family:
        try:
            p.kill()
        except psutil.Error:
            pass
    return {"stop_s": stop_s, "stop_sigterms": sent}


def kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL ``proc`` and everything under it."""
    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        family = []
    proc.kill()
    proc.wait()
    for p in family:
        try:
            p.kill()
        except psutil.Error:
            pass


# --- autoheal's own files -------------------------------------------------------------


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None


def autoheal_ready(rt: Path) -> bool:
    """health_v2.json says the daemon is READY with DOR true."""
    doc = _read_json(rt / "health_v2.json")
    return bool(isinstance(doc, dict) and doc.get("dor") and doc.get("daemon", {}).get("ready"))


def autoheal_stable(rt: Path, names: Sequence[str]) -> bool:
    """Every component in OBSERVE, ok, attempts reset (restart_latency.stability_check)."""
    doc = _read_json(rt / "health_v2.json")
    try:
        comps = doc["components"]
        return all(
            comps[n]["stage"] == "OBSERVE" and comps[n]["ok"] and comps[n]["attempts"] == 0
            for n in names
        )
    except (TypeError, KeyError):
        return False


class LagSampler(threading.Thread):
    """Reads ``auto_heal.heartbeat.json`` every 0.25 s; one ``loop_lag_s`` per beat (seq)."""

    def __init__(self, rt: Path) -> None:
        super().__init__(daemon=True)
        self.path = rt / "auto_heal.heartbeat.json"
        self.phase = "startup"
        self.samples: dict[str, dict[int, float]] = {}
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.25):
            doc = _read_json(self.path)
            if isinstance(doc, dict) and "seq" in doc and "loop_lag_s" in doc:
                self.samples.setdefault(self.phase, {}).setdefault(doc["seq"], doc["loop_lag_s"])

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def lags(self, *phases: str) -> list[float]:
        return [lag for p in phases for lag in self.samples.get(p, {}).values()]


# --- one (supervisor, N) --------------------------------------------------------------


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def start_helper(rt: Path, children: Sequence[Child]) -> subprocess.Popen[bytes]:
    """Start the heartbeat writer and wait for its first round."""
    helper = subprocess.Popen(
        [sys.executable, "-c", HELPER_CODE, str(rt), *(c.name for c in children)]
    )
    last = rt / f"{children[-1].name}.heartbeat.json"
    deadline = time.monotonic() + 30
    while not last.exists():
        if helper.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the heartbeat helper did not write its first round")
        time.sleep(0.01)
    return helper


def start_supervisor(
    kind: str,
    children: Sequence[Child],
    workdir: Path,
    bindir: Path,
    probes: Sequence[str],
    args: argparse.Namespace,
) -> subprocess.Popen[bytes]:
    """restart_latency.launch, but autoheal's ``verify_window`` may be overridden."""
    if kind != "autoheal" or args.verify_window is None:
        return launch(
            kind, children, workdir, bindir, check_delay=args.circus_check_delay, probes=probes
        )
    cfg = autoheal_config(children, workdir, probes)
    text = cfg.read_text()
    if 'verify_window = "5s"' not in text:
        raise SystemExit("restart_latency.autoheal_config no longer writes verify_window = 5s")
    cfg.write_text(text.replace('verify_window = "5s"', f'verify_window = "{args.verify_window}"'))
    argv = autoheal_argv("run", config=cfg)
    with open(workdir / f"{kind}.out", "ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)


def wait_ready(
    kind: str,
    proc: subprocess.Popen[bytes],
    children: Sequence[Child],
    rt: Path,
    t0: float,
    timeout: float,
) -> tuple[float, float]:
    """Poll every 50 ms: (seconds from ``t0`` to all children up, and to ready)."""
    children_s = None
    while True:
        now = time.monotonic() - t0
        if proc.poll() is not None:
            out = (rt.parent / f"{kind}.out").read_text(errors="replace")[-3000:]
            raise SystemExit(f"{kind} exited with {proc.returncode} before it was ready:\n{out}")
        if now > timeout:
            raise SystemExit(f"{kind} not ready after {timeout:.0f} s")
        if children_s is None and len(running_pids(children)) == len(children):
            children_s = now
        if children_s is not None and (kind != "autoheal" or autoheal_ready(rt)):
            return children_s, now
        time.sleep(0.05)


def wait_stable(kind: str, children: Sequence[Child], rt: Path, timeout: float) -> None:
    """Every child runs and (autoheal) every component is stable; one /proc scan a turn."""
    names = [c.name for c in children]
    deadline = time.monotonic() + timeout
    while not (
        len(running_pids(children)) == len(children)
        and (kind != "autoheal" or autoheal_stable(rt, names))
    ):
        if time.monotonic() > deadline:
            raise SystemExit(f"{kind}: children not all up and stable after {timeout:.0f} s")
        time.sleep(0.02)


def measure(kind: str, count: int, args: argparse.Namespace, bindir: Path) -> dict[str, Any]:
    """Start ``kind`` on ``count`` children; ready, idle, trials, stop; the figures."""
    children = make_children(count)
    if running_pids(children):
        raise SystemExit(f"sleep {SLEEP_BASE}.* children from an earlier run are alive: kill them")
    rng = random.Random(args.seed)
    probes = (
        tuple(f'{p}\ninterval = "{args.probe_interval}s"' for p in PROBES)
        if kind == "autoheal"
        else ()
    )
    with tempfile.TemporaryDirectory(prefix=f"sc-{kind}-{count}-") as tmp:
        workdir = Path(tmp)
        rt = workdir / "rt"
        rt.mkdir()
        helper = start_helper(rt, children)
        lag = LagSampler(rt)
        proc = None
        result: dict[str, Any] = {
            "loadavg_1m_before": round(os.getloadavg()[0], 2),
            "services": count,
            "probes": count * (1 + len(probes)) if probes else 0,
        }
        try:
            t_launch = time.monotonic()
            proc = start_supervisor(kind, children, workdir, bindir, probes, args)
            if kind == "autoheal":
                lag.start()
            children_s, ready_s = wait_ready(kind, proc, children, rt, t_launch, args.ready_timeout)
            result["ready_s"] = round(ready_s, 2)
            result["children_s"] = round(children_s, 2)
            lag.phase = "warmup"
            time.sleep(args.warmup)
            lag.phase = "idle"
            idle = sample(proc.pid, args.seconds)
            result["cpu_percent"] = idle["cpu_pct"]
            result["rss_mb"] = idle["rss_max_mb"]
            result["threads"] = idle["threads"]
            lag.phase = "trials"
            restarts = []
            for _ in range(args.trials):
                child = rng.choice(children)
                time.sleep(args.gap)
                wait_stable(kind, children, rt, 60)
                restarts.append(one_trial(child, args.poll_ms / 1000))
                if proc.poll() is not None:
                    raise SystemExit(f"{kind} exited with {proc.returncode}")
            if restarts:
                result["restart_p50_ms"] = _ms(statistics.median(restarts))
                result["restart_p95_ms"] = _ms(percentile(restarts, 95))
                result["restart_max_ms"] = _ms(max(restarts))
                result["trials"] = len(restarts)
            lag.phase = "done"
            result["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
            result.update(stop(proc, args.stop_timeout, 5.0 if kind == "circus" else None))
        finally:
            if proc is not None and proc.poll() is None:
                kill_tree(proc)
            if lag.is_alive():
                lag.stop()
            helper.kill()
            helper.wait()
            kill_leftovers(children)
        if kind == "autoheal":
            steady = lag.lags("idle", "trials")
            startup = lag.lags("startup")
            result["loop_lag_p99_ms"] = _ms(percentile(steady, 99)) if steady else None
            result["loop_lag_max_ms"] = _ms(max(steady)) if steady else None
            result["loop_lag_samples"] = len(steady)
            result["loop_lag_startup_max_ms"] = _ms(max(startup)) if startup else None
        else:
            result["loop_lag_p99_ms"] = None
    result.setdefault("restart_p50_ms", None)
    result.setdefault("restart_p95_ms", None)
    return result


def _git(*argv: str) -> str:
    """The output of a git command in this checkout (the daemon changes under a long run)."""
    done = subprocess.run(
        ["git", *argv], check=False, cwd=BENCH_DIR.parent, capture_output=True, text=True
    )
    return done.stdout.rstrip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", default="10,100,500", help="N, or a list: 10,100,500")
    parser.add_argument("--seconds", type=float, default=30, help="idle window sampled")
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--supervisors", default=",".join(SUPERVISORS))
    parser.add_argument("--poll-ms", type=float, default=0.5, help="/proc poll period")
    parser.add_argument("--gap", type=float, default=0.2, help="idle seconds between trials")
    parser.add_argument("--probe-interval", type=float, default=1.0)
    parser.add_argument(
        "--verify-window",
        default=None,
        help='autoheal policy verify_window, e.g. "60s" (default: restart_latency\'s 5s)',
    )
    parser.add_argument("--ready-timeout", type=float, default=180)
    parser.add_argument("--stop-timeout", type=float, default=60)
    parser.add_argument("--circus-check-delay", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    bindir = ensure_peers()
    results: dict[str, dict[str, dict[str, Any]]] = {}
    meta: dict[str, Any] = {
        "commit": _git("rev-parse", "HEAD"),
        "src_dirty": _git("status", "--porcelain", "--", "src").splitlines(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "argv": sys.argv[1:],
    }
    for count in (int(n) for n in args.services.split(",")):
        for kind in args.supervisors.split(","):
            print(f"running {kind} with {count} services ...", file=sys.stderr, flush=True)
            try:
                row = measure(kind, count, args, bindir)
            except SystemExit as exc:  # one (supervisor, N) failing does not end the run
                print(f"{kind} / {count}: {exc}", file=sys.stderr, flush=True)
                row = {"services": count, "error": str(exc).splitlines()[0]}
            results.setdefault(kind, {})[str(count)] = row
    meta["commit_after"] = _git("rev-parse", "HEAD")
    if args.json:
        print(json.dumps({"meta": meta, **results}, indent=2))
        return
    cols = ("ready_s", "cpu_percent", "rss_mb", "restart_p50_ms", "restart_p95_ms")
    cols += ("loop_lag_p99_ms", "stop_s")
    print(f"{'supervisor':11} {'N':>4} {'probes':>6} " + " ".join(f"{c:>15}" for c in cols))
    for kind, rows in results.items():
        for count, r in rows.items():
            cells = " ".join(f"{'-' if r.get(c) is None else r[c]:>15}" for c in cols)
            print(f"{kind:11} {count:>4} {r.get('probes', '-'):>6} {r.get('error') or cells}")


if __name__ == "__main__":
    main()
