"""Restart latency benchmark: autoheal vs supervisord vs circus (run by hand, not by the tests).

Each supervisor in turn supervises the same 10 children, in the same run, on the same
machine. A trial SIGKILLs one child picked at random and times its replacement:

* ``sleep`` workload (``sleep 1000.0N``): SIGKILL → the replacement is exec'd, found by
  polling ``/proc`` every ``--poll-ms`` (0.5 ms) for a new PID with the child's command
  line (a forked child still shows its parent's command line until it execs).
* ``python`` workload (``python -c ...``): SIGKILL → the replacement is ready, i.e. the
  wall-clock timestamp the new child writes into its ready file as its first statement
  (so this includes the interpreter's start-up).

Before each trial every child must be up and, for autoheal, the component back in
``OBSERVE`` with its attempt count reset (``stable_reset``), so every measured restart
is the first of an episode. Settings, each supervisor's fastest honest ones:
autoheal ``max_restarts=1000`` (no failsafe after 30+ kills), ``stable_reset=0.5s``,
``verify_min_uptime=0s`` (as ``startsecs=0``);
supervisord ``autorestart=true startsecs=0 startretries=1000``; circus ``respawn=true
warmup_delay=0 max_retry=-1 check_delay=--circus-check-delay`` (0.1 s).

supervisor and circus come from ``benchmarks/requirements.txt``, installed with pip
into ``benchmarks/.venv-peers`` when missing.

Usage: ``.venv/bin/python benchmarks/restart_latency.py [--trials 30] [--json]``
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
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

from autoheal.core.stats import p95  # one percentile: nearest rank
from autoheal.drills.stacks.harness import autoheal_argv

BENCH_DIR = Path(__file__).resolve().parent
PEER_VENV = BENCH_DIR / ".venv-peers"
T = TypeVar("T")
SUPERVISORS = ("autoheal", "supervisord", "circus")
WORKLOADS = ("sleep", "python")

#: The Python child: its first statement takes the time, then it says so atomically.
#: No braces, '%' or '$': autoheal, supervisord and circus each expand one of them.
READY_CODE = (
    "import os,sys,time;t=time.time();p=sys.argv[1];"
    "f=open(p+'.tmp','w');f.write(str(os.getpid())+' '+repr(t));f.close();"
    "os.replace(p+'.tmp',p);time.sleep(1e6)"
)


@dataclass(frozen=True)
class Child:
    """One supervised child: its name, argv and (Python workload) ready file."""

    name: str
    argv: tuple[str, ...]
    ready: Path | None = None


def ensure_peers(venv: Path = PEER_VENV) -> Path:
    """Create ``venv`` and pip-install requirements.txt into it when missing.

    Returns:
        The venv's ``bin`` directory, holding ``supervisord`` and ``circusd``.
    """
    bindir = venv / "bin"
    if (bindir / "supervisord").exists() and (bindir / "circusd").exists():
        return bindir
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    req = str(BENCH_DIR / "requirements.txt")
    subprocess.run([str(bindir / "python"), "-m", "pip", "install", "-q", "-r", req], check=True)
    return bindir


def make_children(workload: str, workdir: Path, count: int = 10) -> list[Child]:
    """The 10 children of one workload, each with a command line unique on the machine."""
    if workload == "sleep":
        sleep = shutil.which("sleep") or "/bin/sleep"
        return [Child(f"c{i:02d}", (sleep, f"1000.{i:02d}")) for i in range(count)]
    out = []
    for i in range(count):
        ready = workdir / f"c{i:02d}.ready"
        out.append(Child(f"c{i:02d}", (sys.executable, "-c", READY_CODE, str(ready)), ready))
    return out


# --- /proc ------------------------------------------------------------------------------


def proc_pids() -> set[int]:
    """Every PID in /proc right now."""
    return {int(e) for e in os.listdir("/proc") if e.isdigit()}


def _matches(pid: int, argv: Sequence[str]) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            parts = fh.read().split(b"\0")[:-1]
    except OSError:
        return False
    return (
        len(parts) == len(argv)
        and os.path.basename(parts[0].decode()) == os.path.basename(argv[0])
        and [p.decode() for p in parts[1:]] == list(argv[1:])
    )


def find_pid(argv: Sequence[str], pids: Iterable[int] | None = None) -> int | None:
    """The PID among ``pids`` (default: all) whose command line is ``argv``, or None."""
    for pid in sorted(proc_pids() if pids is None else pids, reverse=True):
        if _matches(pid, argv):
            return pid
    return None


def wait_until(cond: Callable[[], T], timeout: float, what: str) -> T:
    """Poll ``cond`` every 2 ms until it returns something truthy; SystemExit after timeout."""
    deadline = time.monotonic() + timeout
    while not (value := cond()):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.002)
    return value


# --- the three supervisors ------------------------------------------------------------


def _toml_str(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid TOML basic string


#: A service's extra probes (TOML tables' bodies): the same for all, or per child.
Probes = Sequence[str] | Callable[[Child], Sequence[str]]


def autoheal_config(children: Sequence[Child], workdir: Path, probes: Probes = ()) -> Path:
    """Write an autoheal TOML supervising ``children`` (process probe, plus ``probes``:
    the same for each child, or a function of the child)."""
    lines = [
        'environment = "paper"',
        "[paths]",
        f"runtime_dir = {_toml_str(str(workdir / 'rt'))}",
        f"stop_file = {_toml_str(str(workdir / 'STOP.TXT'))}",
        "[policy]",
        'restart_backoff = ["1s"]\nverify_window = "5s"',
        'max_restarts = 1000\nstable_reset = "0.5s"\nverify_min_uptime = "0s"',
        "[daemon]",
        f"log_file = {_toml_str(str(workdir / 'autoheal.log'))}",
    ]
    for c in children:
        argv = ", ".join(_toml_str(a.replace("{", "{{").replace("}", "}}")) for a in c.argv)
        lines += [f"[services.{c.name}]", f"argv = [{argv}]", 'stop_timeout = "1s"']
        lines += [f'[[services.{c.name}.probes]]\nkind = "process"']
        own = probes(c) if callable(probes) else probes
        lines += [f"[[services.{c.name}.probes]]\n{p}" for p in own]
    path = workdir / "autoheal.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def supervisord_config(children: Sequence[Child], workdir: Path) -> Path:
    """Write a supervisord.conf with its fastest honest restart settings."""
    lines = [
        "[supervisord]",
        "nodaemon=true",
        f"logfile={workdir}/supervisord.log",
        f"pidfile={workdir}/supervisord.pid",
        f"childlogdir={workdir}",
        "loglevel=warn",
        "[unix_http_server]",
        f"file={workdir}/supervisor.sock",
    ]
    for c in children:
        command = subprocess.list2cmdline(c.argv).replace("%", "%%")
        lines += [
            f"[program:{c.name}]",
            f"command={command}",
            "autostart=true\nautorestart=true\nstartsecs=0\nstartretries=1000",
            f"stdout_logfile={workdir}/{c.name}.log\nredirect_stderr=true",
            "stopasgroup=true\nkillasgroup=true\nstopwaitsecs=1",
        ]
    path = workdir / "supervisord.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def circus_config(children: Sequence[Child], workdir: Path, check_delay: float) -> Path:
    """Write a circus.ini (ipc endpoints, no fixed ports) polling every ``check_delay`` s."""
    lines = [
        "[circus]",
        f"check_delay = {check_delay}",
        f"endpoint = ipc://{workdir}/circus.sock",
        f"pubsub_endpoint = ipc://{workdir}/circus-pub.sock",
        # No stats_endpoint: naming one turns statsd on, and its circusd-stats process
        # outlived circusd's SIGTERM, polling at about 2.5 % CPU (under_load.py found it).
        "statsd = false\nloglevel = WARNING",
        f"logoutput = {workdir}/circus.log",
    ]
    for c in children:
        lines += [
            f"[watcher:{c.name}]",
            f"cmd = {c.argv[0]}",
            f"args = {subprocess.list2cmdline(c.argv[1:])}",
            "numprocesses = 1\nrespawn = true\nwarmup_delay = 0\nmax_retry = -1",
            "graceful_timeout = 1",
            f"stdout_stream.class = FileStream\nstdout_stream.filename = {workdir}/{c.name}.log",
            f"stderr_stream.class = FileStream\nstderr_stream.filename = {workdir}/{c.name}.log",
        ]
    path = workdir / "circus.ini"
    path.write_text("\n".join(lines) + "\n")
    return path


def launch(
    kind: str,
    children: Sequence[Child],
    workdir: Path,
    bindir: Path,
    *,
    check_delay: float = 0.1,
    probes: Probes = (),
) -> subprocess.Popen[bytes]:
    """Start supervisor ``kind`` on ``children``; return its (foreground) process."""
    if kind == "autoheal":
        cfg = autoheal_config(children, workdir, probes)
        argv = autoheal_argv("run", config=cfg)
    elif kind == "supervisord":
        argv = [str(bindir / "supervisord"), "-n", "-c", str(supervisord_config(children, workdir))]
    else:
        argv = [str(bindir / "circusd"), str(circus_config(children, workdir, check_delay))]
    out = open(workdir / f"{kind}.out", "ab")  # noqa: SIM115 - lives as long as the process
    try:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    finally:
        out.close()


def shutdown(proc: subprocess.Popen[bytes], children: Sequence[Child]) -> None:
    """SIGTERM the supervisor, wait, then SIGKILL any child it left behind."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for c in children:
        while (pid := find_pid(c.argv)) is not None:
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)


def start_all(
    kind: str,
    children: Sequence[Child],
    workdir: Path,
    bindir: Path,
    *,
    check_delay: float = 0.1,
    probes: Probes = (),
) -> subprocess.Popen[bytes]:
    """Launch ``kind`` and wait until every child runs (and, for autoheal, is OBSERVE)."""
    for c in children:
        if find_pid(c.argv) is not None:
            raise SystemExit(f"a {c.argv} from an earlier run is still alive: kill it first")
    proc = launch(kind, children, workdir, bindir, check_delay=check_delay, probes=probes)
    try:
        wait_all_stable(children, stability_check(kind, workdir), 30)
    except BaseException:
        shutdown(proc, children)
        raise
    return proc


def wait_all_stable(
    children: Sequence[Child], stable: Callable[[str], bool], timeout: float
) -> None:
    """Wait until every child runs and ``stable(name)`` holds for each."""
    for c in children:
        wait_until(partial(_up_and_stable, c, stable), timeout, f"{c.name} up and stable")


def _up_and_stable(child: Child, stable: Callable[[str], bool]) -> bool:
    return find_pid(child.argv) is not None and stable(child.name)


def stability_check(kind: str, workdir: Path) -> Callable[[str], bool]:
    """For autoheal: component in OBSERVE with attempts reset; others have no such notion."""
    if kind != "autoheal":
        return lambda _name: True
    health = workdir / "rt" / "health_v2.json"

    def stable(name: str) -> bool:
        try:
            comp = json.loads(health.read_bytes())["components"][name]
        except (OSError, ValueError, KeyError):
            return False
        return bool(comp["stage"] == "OBSERVE" and comp["ok"] and comp["attempts"] == 0)

    return stable


# --- trials ---------------------------------------------------------------------------


def _ready_pid(child: Child) -> tuple[int, float] | None:
    try:
        pid, ts = Path(str(child.ready)).read_text().split()
        return int(pid), float(ts)
    except (OSError, ValueError):
        return None


def _current_pid(child: Child) -> int:
    pid = wait_until(partial(find_pid, child.argv), 10, f"{child.name} running")
    return pid or 0  # never 0: wait_until returns only a truthy value


def _ready_after(child: Child, old: int) -> tuple[int, float] | None:
    ready = _ready_pid(child)
    return ready if ready is not None and ready[0] != old else None


def one_trial(child: Child, poll_s: float) -> float:
    """SIGKILL ``child``'s process; return seconds until its replacement exec'd / was ready."""
    old = _current_pid(child)
    if child.ready is not None:
        wait_until(lambda: (_ready_pid(child) or (0, 0.0))[0] == old, 10, "ready file")
        killed_wall = time.time()
        os.kill(old, signal.SIGKILL)
        ready = wait_until(partial(_ready_after, child, old), 15, f"{child.name} ready")
        return (ready or (0, killed_wall))[1] - killed_wall
    before = proc_pids()
    t0 = time.perf_counter()
    os.kill(old, signal.SIGKILL)
    deadline = t0 + 15
    while True:
        if find_pid(child.argv, proc_pids() - before) is not None:
            return time.perf_counter() - t0
        if time.perf_counter() > deadline:
            raise SystemExit(f"{child.name} was not restarted within 15 s")
        time.sleep(poll_s)


def run_trials(kind: str, workload: str, args: argparse.Namespace, bindir: Path) -> list[float]:
    """Start ``kind`` on 10 ``workload`` children, kill ``args.trials`` times, stop it."""
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix=f"rl-{kind}-") as tmp:
        workdir = Path(tmp)
        children = make_children(workload, workdir)
        proc = start_all(kind, children, workdir, bindir, check_delay=args.circus_check_delay)
        stable = stability_check(kind, workdir)
        samples = []
        try:
            for _ in range(args.trials):
                child = rng.choice(children)
                time.sleep(args.gap)  # let the supervisor go idle between trials
                wait_all_stable(children, stable, 30)
                samples.append(one_trial(child, args.poll_ms / 1000))
                if proc.poll() is not None:
                    raise SystemExit(f"{kind} exited with {proc.returncode}")
        finally:
            shutdown(proc, children)
    return samples


def summarize(samples: Sequence[float]) -> dict[str, float]:
    """p50 (median), p95 (nearest rank) and max, in milliseconds."""
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(p95(ordered) * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--supervisors", default=",".join(SUPERVISORS))
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--poll-ms", type=float, default=0.5, help="/proc poll period")
    parser.add_argument("--gap", type=float, default=0.2, help="idle seconds between trials")
    parser.add_argument("--circus-check-delay", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    bindir = ensure_peers()
    results: dict[str, dict[str, dict[str, float]]] = {}
    for workload in args.workloads.split(","):
        for kind in args.supervisors.split(","):
            print(f"running {kind} / {workload} ...", file=sys.stderr, flush=True)
            results.setdefault(workload, {})[kind] = summarize(
                run_trials(kind, workload, args, bindir)
            )
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(
        f"{'workload':8} {'supervisor':11} {'n':>3} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}"
        f" {'p50 x':>7}"
    )
    for workload, rows in results.items():
        base = rows.get("autoheal", {}).get("p50_ms")
        for kind, r in rows.items():
            ratio = f"{r['p50_ms'] / base:7.1f}" if base else "      -"
            print(
                f"{workload:8} {kind:11} {r['n']:3d} {r['p50_ms']:8.1f} {r['p95_ms']:8.1f}"
                f" {r['max_ms']:8.1f} {ratio}"
            )


if __name__ == "__main__":
    main()
