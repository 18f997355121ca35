"""Idle overhead benchmark: autoheal vs supervisord (and circus) (run by hand, not by the tests).

Each supervisor in turn supervises the same 10 children: tiny Python loops that
rewrite ``<name>.heartbeat.json`` (``ts``, ``seq``, ``ws_last_msg_ts``) once a
second. autoheal also runs 30 probes on them, one of two sets (``--probe-sets``):

* ``issue23`` (the default): per service ``process`` and ``heartbeat`` (max_age 5 s,
  every 1 s); on four of them a ``resource`` probe (RSS, CPU %, fds and threads of
  the tree, every ``--resource-interval``, 5 s), on three a ``tcp`` probe (a
  loopback listener this script runs, every ``--tcp-interval``, 5 s), on three an ``exec`` probe
  (``true``, every ``--exec-interval``, 10 s, as an operator runs a check script);
* ``main`` (before issue 23): per service ``process``, ``heartbeat`` and
  ``ws_freshness`` (max_age 5 s), each every 1 s;
* ``base``: ``issue23`` without its ten new probes (``process`` and ``heartbeat``
  only, 20 probes): ``issue23`` minus ``base`` is what the new kinds cost.

supervisord and circus have no probes. After a warm-up, the supervisor's own
process (not its children, nor the exec probes' commands) is sampled with psutil
for ``--seconds``: CPU % = (user + system CPU time delta) / wall time, of one core;
RSS = the maximum of samples taken every 0.5 s. With ``--rounds N`` every
configuration is measured N times, interleaved (a neighbour's burst then hits all
of them alike), and the median is reported.

The supervisor configs (and the peer venv) come from ``restart_latency.py``.

Usage: ``.venv/bin/python benchmarks/overhead.py [--seconds 60] [--rounds 3]
[--probe-sets issue23,main] [--supervisors autoheal,supervisord] [--json]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psutil
from restart_latency import Child, ensure_peers, shutdown, start_all

#: The child: rewrite the heartbeat atomically every second, forever, on one line
#: (supervisord and circus take a one-line command; no braces, '%' or '$').
HEARTBEAT_CODE = (
    "import collections,itertools,json,os,sys,time;p=sys.argv[1];n=sys.argv[2];"
    "d=lambda s,t: json.dumps(dict(component=n,pid=os.getpid(),ts=t,seq=s,ws_last_msg_ts=t));"
    "w=lambda s: (open(p+'.tmp','w').write(d(s,time.time())),os.replace(p+'.tmp',p),"
    "time.sleep(1));"
    "collections.deque(map(w,itertools.count()),maxlen=0)"
)

PROBES = (
    'kind = "heartbeat"\nmax_age = "5s"',
    'kind = "ws_freshness"\nmax_age = "5s"\nfield = "ws_last_msg_ts"',
)


def loopback_listener() -> int:
    """A listener on 127.0.0.1 (port 0) that accepts and closes, in a daemon thread:
    what the tcp probes connect to (a database, a local gateway)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)

    def serve() -> None:
        while True:
            conn, _ = srv.accept()
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return int(srv.getsockname()[1])


def issue23_probes(
    args: argparse.Namespace, port: int
) -> Callable[[Child], Sequence[str]]:
    """The 30-probe set with the new kinds (module docstring), as a function of the child."""
    true = shutil.which("true") or "/bin/true"
    every = f'interval = "{args.probe_interval}s"'

    def probes(child: Child) -> Sequence[str]:
        i = int(child.name[2:])
        out = [f'kind = "heartbeat"\nmax_age = "5s"\n{every}']
        if i < 4:
            out.append(
                'kind = "resource"\nmax_rss = "1GiB"\nmax_cpu_percent = 90\nmax_fds = 1024\n'
                f'max_threads = 64\ninterval = "{args.resource_interval}s"'
            )
        elif i < 7:
            out.append(
                f'kind = "tcp"\naddress = "127.0.0.1:{port}"\ninterval = "{args.tcp_interval}s"'
            )
        else:
            out.append(f'kind = "exec"\nargv = ["{true}"]\ninterval = "{args.exec_interval}s"')
        return out

    return probes


def heartbeat_children(workdir: Path, count: int = 10) -> list[Child]:
    """10 heartbeat writers; paths are where autoheal's probes look (runtime_dir)."""
    rt = workdir / "rt"
    rt.mkdir(exist_ok=True)
    return [
        Child(
            f"hb{i:02d}",
            (
                sys.executable,
                "-c",
                HEARTBEAT_CODE,
                str(rt / f"hb{i:02d}.heartbeat.json"),
                f"hb{i:02d}",
            ),
        )
        for i in range(count)
    ]


def sample(pid: int, seconds: float) -> dict[str, float]:
    """CPU % (one core) and RSS of ``pid`` alone over ``seconds`` of wall time."""
    proc = psutil.Process(pid)
    start_cpu = proc.cpu_times()
    start = time.monotonic()
    rss: list[int] = []
    while (elapsed := time.monotonic() - start) < seconds:
        rss.append(proc.memory_info().rss)
        time.sleep(min(0.5, max(0.0, seconds - elapsed)))
    end_cpu = proc.cpu_times()
    wall = time.monotonic() - start
    cpu = (end_cpu.user - start_cpu.user) + (end_cpu.system - start_cpu.system)
    return {
        "seconds": round(wall, 1),
        "cpu_pct": round(100 * cpu / wall, 3),
        "cpu_s": round(cpu, 3),
        "rss_max_mb": round(max(rss) / 2**20, 1),
        "rss_median_mb": round(sorted(rss)[len(rss) // 2] / 2**20, 1),
        "threads": proc.num_threads(),
    }


def measure(kind: str, probe_set: str, args: argparse.Namespace, bindir: Path,
            port: int) -> dict[str, float]:
    """Start ``kind`` on the 10 heartbeat children, warm up, sample, stop."""
    with tempfile.TemporaryDirectory(prefix=f"oh-{kind}-") as tmp:
        workdir = Path(tmp)
        children = heartbeat_children(workdir)
        probes: Sequence[str] | Callable[[Child], Sequence[str]] = ()
        if kind == "autoheal" and probe_set == "main":
            probes = tuple(f'{p}\ninterval = "{args.probe_interval}s"' for p in PROBES)
        elif kind == "autoheal" and probe_set == "base":
            probes = (f'{PROBES[0]}\ninterval = "{args.probe_interval}s"',)
        elif kind == "autoheal":
            probes = issue23_probes(args, port)
        proc = start_all(
            kind, children, workdir, bindir, check_delay=args.circus_check_delay, probes=probes
        )
        try:
            time.sleep(args.warmup)
            result = sample(proc.pid, args.seconds)
            if proc.poll() is not None:
                raise SystemExit(f"{kind} exited with {proc.returncode}")
        finally:
            shutdown(proc, children)
    if callable(probes):
        result["probes"] = sum(1 + len(probes(c)) for c in children)
    else:
        result["probes"] = len(children) * (1 + len(probes)) if kind == "autoheal" else 0
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--supervisors", default="autoheal,supervisord,circus")
    parser.add_argument("--probe-sets", default="issue23",
                        help="autoheal's probe sets, comma-separated: issue23, main, base")
    parser.add_argument("--circus-check-delay", type=float, default=0.1)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--probe-interval", type=float, default=1.0,
        help="seconds between heartbeat/ws/tcp checks (staleness itself is timer-driven)",
    )
    parser.add_argument("--resource-interval", type=float, default=5.0)
    parser.add_argument("--exec-interval", type=float, default=10.0)
    parser.add_argument("--tcp-interval", type=float, default=5.0)
    args = parser.parse_args()
    bindir = ensure_peers()
    port = loopback_listener()
    configs = [
        (kind, ps)
        for kind in args.supervisors.split(",")
        for ps in (args.probe_sets.split(",") if kind == "autoheal" else [""])
    ]
    runs: dict[str, list[dict[str, float]]] = {}
    for r in range(args.rounds):
        for kind, ps in configs:
            label = f"{kind}:{ps}" if ps else kind
            print(f"[{r + 1}/{args.rounds}] sampling {label} for {args.seconds:.0f} s ...",
                  file=sys.stderr, flush=True)
            runs.setdefault(label, []).append(measure(kind, ps, args, bindir, port))
    results = {}
    for label, rs in runs.items():
        results[label] = {
            **rs[len(rs) // 2],
            "cpu_pct_median": round(statistics.median(r["cpu_pct"] for r in rs), 3),
            "cpu_pct_rounds": [r["cpu_pct"] for r in rs],
            "rss_max_mb": max(r["rss_max_mb"] for r in rs),
        }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'supervisor':18} {'probes':>6} {'CPU % med':>9} {'rounds':>24} {'RSS max MB':>10}")
    for label, r in results.items():
        rounds = " ".join(f"{c:.3f}" for c in r["cpu_pct_rounds"])
        print(f"{label:18} {r['probes']:6d} {r['cpu_pct_median']:9.3f} {rounds:>24} "
              f"{r['rss_max_mb']:10.1f}")


if __name__ == "__main__":
    main()
