"""The quiet-market false-alarm run (issue 23): a feed that does not move must not alarm.

A quiet market (no trades, every book unchanged) still has a live feed: the exchange's
own snapshots and heartbeats carry a fresh exchange time. The ``feed_lag`` probe judges
that time, not "did the book change", so it must stay quiet. This run proves it on real
processes for ``--minutes`` of real time (default 10):

* the demo exchange with ``--quiet-market`` (prices never move; events keep their
  exchange time and sequence numbers advancing), on a port the OS picks;
* ``autoheal run`` supervising the demo feeder against it, with a ``feed_lag`` probe
  (``--max-age``, default 1 s: ten exchange ticks), besides its process and heartbeat
  probes;
* at the end, from the daemon's journal: every ``probe_changed`` of that probe to a
  failure after the feed first named every symbol (a false alarm: nothing was frozen
  and no number skipped; before that, start-up's ``feed_missing`` is listed apart), the feeder's
  restarts, and from the feeder's heartbeat that the prices never moved while the
  exchange times did.

It prints one JSON document and exits 0 when there was no false alarm. Mostly idle:
run it with ``nice -n 19``. Not a CI test; ``tests/demo/test_quiet_market.py`` runs
the same check for a few seconds.

Usage: ``nice -n 19 .venv/bin/python benchmarks/quiet_market.py [--minutes 10] [--max-age 1s]``
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from autoheal.drills.stacks.harness import PY, autoheal_argv

__all__ = ["main", "run"]

CONFIG = """\
environment = "paper"

[paths]
runtime_dir = "shared_data"
stop_file = "STOP.TXT"

[policy]
failures_before_restart = 2

[daemon]
heartbeat_interval = "1s"

[services.feeder]
argv = ["{{python}}", "-m", "autoheal.demo.feeder", "--exchange", "{exchange}",
        "--runtime-dir", "{{runtime_dir}}", "--heartbeat-interval", "0.2"]
stop_timeout = "2s"

[[services.feeder.probes]]
kind = "process"

[[services.feeder.probes]]
kind = "heartbeat"
interval = "500ms"
max_age = "5s"

[[services.feeder.probes]]
kind = "feed_lag"
name = "feed"
interval = "{interval}"
max_age = "{max_age}"
"""


def _wait_for(path: Path, timeout_s: float) -> dict[str, Any]:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            doc = json.loads(path.read_text())
            if isinstance(doc, dict):
                return doc
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{path} did not appear within {timeout_s:g} s")


def _stop(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> int | None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


def _events(config: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        autoheal_argv("events", "--json", "--since", "24h", config=config),
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def run(directory: Path, *, minutes: float, max_age: str, interval: str) -> dict[str, Any]:
    """Run the exchange, the daemon and its feeder for ``minutes``; count false alarms."""
    port_file = directory / "exchange.port.json"
    with open(directory / "exchange.log", "wb") as log:
        exchange = subprocess.Popen(
            [
                PY,
                "-m",
                "autoheal.demo.exchange",
                "--port",
                "0",
                "--port-file",
                str(port_file),
                "--quiet-market",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    daemon: subprocess.Popen[bytes] | None = None
    try:
        url = _wait_for(port_file, 20.0)["rest_url"]
        config = directory / "autoheal.toml"
        config.write_text(CONFIG.format(exchange=url, max_age=max_age, interval=interval))
        with open(directory / "daemon.log", "wb") as log:
            daemon = subprocess.Popen(
                autoheal_argv("run", config=config), stdout=subprocess.DEVNULL, stderr=log
            )
        heartbeat = directory / "shared_data" / "feeder.heartbeat.json"
        first = _wait_for_feed(heartbeat, 30.0)
        # Measured from here: before the feeder's first message every symbol is rightly
        # feed_missing (start-up, counted apart), not a false alarm of a quiet market.
        measured_from = time.time()
        started = time.monotonic()
        time.sleep(minutes * 60.0)
        elapsed = time.monotonic() - started
        last = json.loads(heartbeat.read_text())
        alive = daemon.poll() is None
    finally:
        if daemon is not None:
            _stop(daemon)
        _stop(exchange)
    events = _events(config)
    failed = [
        e
        for e in events
        if e.get("kind") == "probe_changed"
        and (e.get("data") or {}).get("probe") == "feed"
        and not (e.get("data") or {}).get("ok")
    ]
    alarms = [e for e in failed if float(e.get("ts", 0)) >= measured_from]
    startup = sorted({str(e.get("reason")) for e in failed if e not in alarms})
    restarts = [
        e
        for e in events
        if e.get("kind") == "stage_transition"
        and e.get("component") == "feeder"
        and "RESTART" in json.dumps(e)
    ]
    feed0, feed1 = first["feed"], last["feed"]
    return {
        "minutes": round(elapsed / 60.0, 2),
        "max_age": max_age,
        "probe_interval": interval,
        "feed_lag_false_alarms": len(alarms),
        "alarms": alarms[:10],
        "startup_failures_before_first_feed": startup,
        "feeder_restarts": len(restarts),
        "daemon_alive_at_end": alive,
        "symbols": sorted(feed1),
        "exchange_ts_advanced_s": {
            s: round(feed1[s]["exchange_ts"] - feed0[s]["exchange_ts"], 1) for s in feed1
        },
        "messages": {s: feed1[s]["messages"] for s in feed1},
        "gaps": {s: feed1[s]["gaps"] for s in feed1},
        "prices_moved": _prices_moved(directory / "shared_data" / "prices.json"),
    }


def _wait_for_feed(path: Path, timeout_s: float) -> dict[str, Any]:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        doc = _wait_for(path, timeout_s)
        if len(doc.get("feed", {})) >= 3:
            return doc
        time.sleep(0.1)
    raise TimeoutError("the feeder never reported every symbol")


def _prices_moved(path: Path) -> bool:
    prices = json.loads(path.read_text())["prices"]
    start = {"BTCUSDT": 60000.0, "ETHUSDT": 3000.0, "SOLUSDT": 150.0}
    return {s: p["price"] for s, p in prices.items()} != start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--max-age", default="1s", help="the feed_lag probe's max_age")
    parser.add_argument("--interval", default="200ms", help="the feed_lag probe's interval")
    parser.add_argument("--keep", action="store_true", help="keep the run's directory")
    args = parser.parse_args(argv)
    directory = Path(tempfile.mkdtemp(prefix="autoheal-quiet-"))
    result = run(directory, minutes=args.minutes, max_age=args.max_age, interval=args.interval)
    result["directory"] = str(directory) if args.keep else None
    print(json.dumps(result, indent=2, sort_keys=True))
    if not args.keep:
        import shutil

        shutil.rmtree(directory, ignore_errors=True)
    return 0 if result["feed_lag_false_alarms"] == 0 and not result["prices_moved"] else 1


if __name__ == "__main__":
    sys.exit(main())
