"""Fleet latency benchmark (run by hand, not by the tests).

Starts a real ``redis-server`` (Debian package ``redis-server``) on a free loopback
port and ``--hosts`` real daemons (three runtime directories stand in for three
hosts), then measures:

1. ``autoheal fleet halt`` issued → ``STOP.TXT`` present on every host: from just
   before the CLI subprocess is spawned to the moment the last host's ``STOP.TXT``
   is seen (this script polls every 2 ms). Includes the CLI's start-up, the
   compare-and-set, the pub/sub wake-up or the next poll, the core step and the
   atomic writes. It is also split into the CLI process alone (interpreter, imports,
   config, the compare-and-set) and CLI exited → every ``STOP.TXT``. Each round is
   followed by ``fleet run`` and a wait for every ``STOP.TXT`` to go.
   Target: p95 under 1 s.
2. Redis lost → DEGRADED on every host: SIGKILL of ``redis-server`` (refused) and
   SIGSTOP (hung), each to the moment the last host's ``global_flags.json`` says
   DEGRADED. Target: within ``stale_after`` + 1 s. A restarted Redis (no persistence)
   has lost the switch: the hosts stay DEGRADED (the version went backwards) until
   ``fleet run``, which this script issues before the next round.

Usage: ``.venv/bin/python benchmarks/fleet_latency.py [--rounds 20] [--hosts 3]
[--stale-after 1] [--poll 0.1] [--lost-rounds 3]``
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from command_latency import p95, summary

from autoheal.drills.stacks.redis import RedisServer
from autoheal.drills.stacks.simple import Runtime, toml_str, wait_for


def _summary(label: str, samples: list[float]) -> str:
    return summary(label, samples, width=40, mid="p50")


def _mode(rt: Runtime) -> str | None:
    flags = rt.flags()
    return flags.get("mode") if isinstance(flags, dict) else None


def _wait_all(cond: object, hosts: list[Runtime], timeout: float) -> float:
    """Poll every 2 ms until ``cond(rt)`` holds on every host; the moment it did."""
    deadline = time.monotonic() + timeout
    while True:
        if all(cond(rt) for rt in hosts):  # type: ignore[operator]
            return time.monotonic()
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.002)


def _recover(redis: RedisServer, hosts: list[Runtime], cli: list[str], cfg: list[str]) -> None:
    """A restarted Redis (no persistence) lost the switch: the hosts stay DEGRADED (a
    version going backwards) until an operator sets it again, above what they applied."""
    _wait_all(
        lambda rt: (
            b"bench:host:" + rt.root.name.encode()
            in redis.command("KEYS", "autoheal:fleet:bench:host:*")
        ),
        hosts,
        30,
    )
    subprocess.run(
        [*cli, "run", "--reason", "redis restarted", *cfg], check=True, capture_output=True
    )
    _wait_all(lambda rt: _mode(rt) == "NORMAL", hosts, 30)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--hosts", type=int, default=3)
    ap.add_argument("--stale-after", type=float, default=1.0)
    ap.add_argument("--poll", type=float, default=0.1)
    ap.add_argument("--lost-rounds", type=int, default=3)
    args = ap.parse_args()
    binary = shutil.which("redis-server")
    if binary is None:
        print("redis-server not found: apt-get install redis-server", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        redis = RedisServer(binary, root / "redis")
        redis.start()
        hosts: list[Runtime] = []
        try:
            for i in range(args.hosts):
                (root / f"h{i}").mkdir()
                rt = Runtime(root / f"h{i}", services=())
                rt.config.write_text(
                    rt.config.read_text()
                    + f"""
[fleet]
redis_url = {toml_str(redis.url)}
name = "bench"
host = "h{i}"
stale_after = "{args.stale_after}s"
poll_interval = "{int(args.poll * 1000)}ms"
"""
                )
                rt.start_daemon(wait_ready=False)
                hosts.append(rt)
            for rt in hosts:
                wait_for(lambda rt=rt: _mode(rt) == "NORMAL", 30, "NORMAL")
            cli = [sys.executable, "-m", "autoheal", "fleet"]
            cfg = ["--config", str(hosts[0].config)]
            halts: list[float] = []
            cli_s: list[float] = []  # the CLI process alone (start-up, CAS, exit)
            after_cli: list[float] = []  # CLI exited -> STOP.TXT on every host
            for i in range(args.rounds):
                t0 = time.monotonic()
                subprocess.run(
                    [*cli, "halt", "--reason", f"bench {i}", *cfg], check=True, capture_output=True
                )
                t_cli = time.monotonic()
                t_all = _wait_all(lambda rt: rt.stop_file.exists(), hosts, 10)
                halts.append(t_all - t0)
                cli_s.append(t_cli - t0)
                after_cli.append(max(0.0, t_all - t_cli))
                subprocess.run(
                    [*cli, "run", "--reason", f"bench {i}", *cfg], check=True, capture_output=True
                )
                _wait_all(lambda rt: not rt.stop_file.exists() and _mode(rt) == "NORMAL", hosts, 10)
            killed: list[float] = []
            hung: list[float] = []
            for _ in range(args.lost_rounds):
                t0 = time.monotonic()
                redis.stop()
                killed.append(_wait_all(lambda rt: _mode(rt) == "DEGRADED", hosts, 30) - t0)
                redis.start()
                _recover(redis, hosts, cli, cfg)
                t0 = time.monotonic()
                redis.pause()
                hung.append(_wait_all(lambda rt: _mode(rt) == "DEGRADED", hosts, 30) - t0)
                redis.resume()
                _wait_all(lambda rt: _mode(rt) == "NORMAL", hosts, 30)
        finally:
            for rt in hosts:
                rt.close()
            redis.stop()
    print(
        f"{args.hosts} hosts, stale_after {args.stale_after} s, poll_interval {args.poll} s, "
        f"{args.rounds} halt rounds, {args.lost_rounds} loss rounds each"
    )
    print(_summary("fleet halt -> STOP.TXT on every host", halts))
    print(_summary("  of which: the CLI process", cli_s))
    print(_summary("  of which: CLI exited -> every STOP.TXT", after_cli))
    print(_summary("redis SIGKILL -> DEGRADED on every host", killed))
    print(_summary("redis SIGSTOP -> DEGRADED on every host", hung))
    ok = p95(halts) < 1.0 and max(killed + hung) < args.stale_after + 1.0
    print("targets (halt p95 < 1 s; lost within stale_after + 1 s):", "met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
