"""``/metrics`` latency while the status port is flooded (issue 18 A2/A3; run by hand).

Starts a real daemon (``python -m autoheal run``) over two simple services with a
status port, then scrapes ``/metrics`` (a new connection each time, as Prometheus
does after an error) ``--scrapes`` times in each phase:

1. ``quiet``: nothing else on the port;
2. ``idle flood``: 1000 idle connections (connected, no bytes) held open;
3. ``streams + idle``: 8 ``/events`` streams and 200 idle connections;
4. ``slowloris``: 64 connections trickling a request head one byte every 100 ms.

Each scrape has a 10 s timeout (Prometheus's default scrape timeout); a scrape that
fails or times out is counted, not timed. With ``--fd-limit N`` the daemon runs under
``prlimit --nofile=N:N``. The daemon is checked alive after every phase.

Usage: ``.venv/bin/python benchmarks/status_flood.py [--scrapes 20] [--fd-limit 256]``
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import httpx

from autoheal.core.stats import p95  # one percentile: nearest rank
from autoheal.drills.stacks.simple import Runtime, read_doc, wait_for

SCRAPE_TIMEOUT_S = 10.0


def scrape_all(url: str, scrapes: int) -> tuple[list[float], int]:
    """Latencies of the scrapes that answered 200, and how many did not."""
    times, failed = [], 0
    for _ in range(scrapes):
        start = time.perf_counter()
        try:
            ok = httpx.get(url, timeout=SCRAPE_TIMEOUT_S).status_code == 200
        except httpx.HTTPError:
            ok = False
        if ok:
            times.append(time.perf_counter() - start)
        else:
            failed += 1
    return times, failed


def line(label: str, times: list[float], failed: int) -> str:
    if not times:
        return f"{label:<16} no answer ({failed} failed)"
    ms = [t * 1000 for t in times]
    return (
        f"{label:<16} median {statistics.median(ms):7.1f} ms   p95 {p95(ms):7.1f} ms   "
        f"max {max(ms):7.1f} ms   answered {len(ms)}/{len(ms) + failed}"
    )


@contextmanager
def idle(port: int, count: int) -> Iterator[None]:
    held = [socket.create_connection(("127.0.0.1", port), 5) for _ in range(count)]
    try:
        yield
    finally:
        for s in held:
            s.close()


@contextmanager
def streams_and_idle(port: int, streams: int, count: int) -> Iterator[None]:
    held = []
    for _ in range(streams):
        s = socket.create_connection(("127.0.0.1", port), 5)
        s.sendall(b"GET /events HTTP/1.1\r\nhost: x\r\n\r\n")
        held.append(s)
    with idle(port, count):
        try:
            yield
        finally:
            for s in held:
                s.close()


@contextmanager
def slowloris(port: int, count: int) -> Iterator[None]:
    stop = threading.Event()

    def trickle() -> None:
        socks = []
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port), 5)
            s.sendall(b"GET /metrics HTTP/1.1\r\nx-slow: ")
            socks.append(s)
        while not stop.wait(0.1):
            for i, s in enumerate(socks):
                try:
                    s.sendall(b"a")
                except OSError:  # closed by the server: come back, as an attacker would
                    s.close()
                    socks[i] = socket.create_connection(("127.0.0.1", port), 5)
                    socks[i].sendall(b"GET /metrics HTTP/1.1\r\nx-slow: ")
        for s in socks:
            s.close()

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    time.sleep(0.5)  # let the trickle take its slots (a benchmark, not a test)
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scrapes", type=int, default=20)
    ap.add_argument("--fd-limit", type=int, default=None)
    args = ap.parse_args(argv)
    with (
        tempfile.TemporaryDirectory() as tmp,
        Runtime(Path(tmp), ("feeder", "trader"), status_listen=True) as rt,
    ):
        daemon = rt.start_daemon(fd_limit=args.fd_limit)
        endpoint = wait_for(
            lambda: read_doc(rt.runtime_dir / "status_endpoint.json"), 10, "the status endpoint"
        )
        port = endpoint["port"]
        url = f"http://127.0.0.1:{port}/metrics"
        phases: list[tuple[str, Callable[[], AbstractContextManager[None]]]] = [
            ("quiet", lambda: idle(port, 0)),
            ("idle flood", lambda: idle(port, 1000)),
            ("streams + idle", lambda: streams_and_idle(port, 8, 200)),
            ("slowloris", lambda: slowloris(port, 64)),
        ]
        print(f"fd limit: {args.fd_limit or 'inherited'}; {args.scrapes} scrapes per phase")
        for label, load in phases:
            try:
                with load():
                    times, failed = scrape_all(url, args.scrapes)
            except OSError as exc:
                print(f"{label:<16} load failed: {exc}")
                continue
            print(line(label, times, failed))
            if daemon.poll() is not None:
                print(f"daemon exited {daemon.returncode} during {label!r}")
                return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
