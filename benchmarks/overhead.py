"""Idle overhead benchmark: autoheal vs supervisord (and circus) (run by hand, not by the tests).

Each supervisor in turn supervises the same 10 children: tiny Python loops that
rewrite ``<name>.heartbeat.json`` (``ts``, ``seq``, ``ws_last_msg_ts``) once a
second. autoheal also runs 30 probes on them (per service: ``process``,
``heartbeat`` max_age 5 s and ``ws_freshness`` max_age 5 s, each every 1 s);
supervisord and circus have no probes. After a warm-up, the supervisor's own
process (not its children) is sampled with psutil for ``--seconds``: CPU % =
(user + system CPU time delta) / wall time, of one core; RSS = the maximum of
samples taken every 0.5 s.

The supervisor configs (and the peer venv) come from ``restart_latency.py``.

Usage: ``.venv/bin/python benchmarks/overhead.py [--seconds 60] [--json]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
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


def measure(kind: str, args: argparse.Namespace, bindir: Path) -> dict[str, float]:
    """Start ``kind`` on the 10 heartbeat children, warm up, sample, stop."""
    with tempfile.TemporaryDirectory(prefix=f"oh-{kind}-") as tmp:
        workdir = Path(tmp)
        children = heartbeat_children(workdir)
        probes = (
            tuple(f'{p}\ninterval = "{args.probe_interval}s"' for p in PROBES)
            if kind == "autoheal"
            else ()
        )
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
    result["probes"] = len(children) * (1 + len(probes)) if kind == "autoheal" else 0
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--supervisors", default="autoheal,supervisord,circus")
    parser.add_argument("--circus-check-delay", type=float, default=0.1)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--probe-interval", type=float, default=1.0,
        help="seconds between heartbeat/ws checks (staleness itself is timer-driven)",
    )
    args = parser.parse_args()
    bindir = ensure_peers()
    results = {}
    for kind in args.supervisors.split(","):
        print(f"sampling {kind} for {args.seconds:.0f} s ...", file=sys.stderr, flush=True)
        results[kind] = measure(kind, args, bindir)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    base = results.get("autoheal")
    print(f"{'supervisor':11} {'probes':>6} {'CPU %':>7} {'RSS max MB':>10} {'CPU x':>7}")
    for kind, r in results.items():
        ratio = f"{r['cpu_pct'] / base['cpu_pct']:7.2f}" if base and base["cpu_pct"] else "      -"
        print(f"{kind:11} {r['probes']:6d} {r['cpu_pct']:7.2f} {r['rss_max_mb']:10.1f} {ratio}")


if __name__ == "__main__":
    main()
