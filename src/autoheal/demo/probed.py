"""A tiny service for the exec, tcp and resource probe drills: it fails on request.

``python -m autoheal.demo.probed --runtime-dir DIR --name NAME [--port PORT]``

While healthy it writes ``ok`` to ``DIR/NAME.state`` (an exec probe reads it) and,
with ``--port``, listens on ``127.0.0.1:PORT`` (a tcp probe connects) and accepts
and closes every connection. Every 50 ms it looks for a fault file, takes it away
(so that the *next* process starts healthy: a restart heals) and turns faulty for
good:

* ``NAME.leak``: allocates (and touches) ``--leak-mib-per-s`` MiB a second, up to
  ``--leak-cap-mib`` (a bounded leak: a drill whose probe misses it must not eat
  the machine);
* ``NAME.wedge``: writes ``wedged`` to its state file (the exec probe fails);
* ``NAME.close``: closes its listener (the tcp probe is refused) and stays alive.

Standard library only, so that its own footprint stays small (about 10 MiB RSS).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import time
from pathlib import Path

__all__ = ["main"]

TICK_S = 0.05
MiB = 1024 * 1024


def _write_state(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.tmp.{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _take(path: Path) -> bool:
    """Remove the fault file; True when it was there (this process turns faulty)."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def _listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(16)
    sock.setblocking(False)
    return sock


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="autoheal.demo.probed")
    p.add_argument("--runtime-dir", required=True, type=Path)
    p.add_argument("--name", default="probed")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--leak-mib-per-s", type=float, default=40.0)
    p.add_argument("--leak-cap-mib", type=float, default=256.0)
    args = p.parse_args(argv)
    rt, name = args.runtime_dir, args.name
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    state = rt / f"{name}.state"
    listener = _listen(args.port) if args.port else None
    _write_state(state, "ok")
    leaking, blocks = False, list[bytearray]()
    per_tick = int(args.leak_mib_per_s * MiB * TICK_S)
    cap = int(args.leak_cap_mib * MiB)
    while True:
        if not leaking and _take(rt / f"{name}.leak"):
            leaking = True
        if _take(rt / f"{name}.wedge"):
            _write_state(state, "wedged")
        if listener is not None and _take(rt / f"{name}.close"):
            listener.close()
            listener = None
        if leaking and len(blocks) * per_tick < cap:
            block = bytearray(per_tick)
            block[::4096] = b"\x01" * len(range(0, per_tick, 4096))  # touch every page
            blocks.append(block)
        while listener is not None:
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                break
            conn.close()
        time.sleep(TICK_S)


if __name__ == "__main__":
    sys.exit(main())
