"""A loopback TCP fault proxy (toxiproxy-like) placed between the runtime and its exchange.

This module is the proxy's public face and its command line; the work is split by
responsibility:

* :mod:`autoheal.chaos.faults`: the :class:`Fault` values (``latency``, ``blackhole``,
  ``refuse``, ``reset``, ``bandwidth``) and what each one does;
* :mod:`autoheal.chaos.fault_proxy`: :class:`FaultProxy`, which pipes loopback
  connections to the upstream and applies the active fault per chunk;
* :mod:`autoheal.chaos.proxy_control`: :class:`ProxyControlServer`, which lets another
  process set, clear and read faults through JSON lines on a loopback TCP port, and its
  clients :func:`acontrol` and :func:`control`.

``python -m autoheal.chaos.proxy`` runs a proxy and its control port as a process of
its own (:func:`main`). Import the names below from here.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio

from autoheal.chaos.fault_proxy import FaultProxy
from autoheal.chaos.faults import Fault, bandwidth, blackhole, latency, refuse, reset
from autoheal.chaos.proxy_control import ProxyControlServer, acontrol, control
from autoheal.store.atomic import write_bytes_atomic

__all__ = [
    "Fault",
    "FaultProxy",
    "ProxyControlServer",
    "acontrol",
    "bandwidth",
    "blackhole",
    "control",
    "latency",
    "main",
    "refuse",
    "reset",
]

logger = logging.getLogger(__name__)


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the command line of ``python -m autoheal.chaos.proxy`` (exits 2 on bad usage)."""
    parser = argparse.ArgumentParser(
        prog="python -m autoheal.chaos.proxy", description="Loopback TCP fault proxy."
    )
    parser.add_argument("--listen", type=_host_port, default=("127.0.0.1", 0))
    parser.add_argument("--upstream", type=_host_port, required=True)
    parser.add_argument("--control", type=_host_port, default=("127.0.0.1", 0))
    parser.add_argument("--port-file", type=Path, help="write the bound proxy port here")
    parser.add_argument("--control-port-file", type=Path, help="write the control port here")
    parser.add_argument("--seed", type=int, default=None, help="seed for latency jitter")
    args = parser.parse_args(argv)
    if args.control[0] not in ("127.0.0.1", "::1", "localhost"):
        parser.error("--control must be a loopback address: the control port can cut the network")
    return args


async def _run(args: argparse.Namespace) -> None:
    proxy = FaultProxy(
        *args.upstream, listen_host=args.listen[0], listen_port=args.listen[1], seed=args.seed
    )
    server = ProxyControlServer(proxy, host=args.control[0], port=args.control[1])
    async with anyio.create_task_group() as tg:
        port = await tg.start(proxy.serve)
        control_port = await tg.start(server.serve)
        # Listen for signals before publishing the ports: whoever reads them may stop us at once.
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            for path, value in ((args.port_file, port), (args.control_port_file, control_port)):
                if path is not None:
                    write_bytes_atomic(path, f"{value}\n".encode())
            logger.info("proxy on %s -> %s:%s, control %s", port, *args.upstream, control_port)
            async for _ in signals:
                break
        tg.cancel_scope.cancel()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the proxy and its control port until SIGTERM or SIGINT; returns the exit code."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        anyio.run(_run, args)
    except OSError as exc:
        print(f"autoheal.chaos.proxy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
