"""What the three demo programs share: stderr logging and a clean exit on SIGTERM/SIGINT.

A supervisor stops a service with SIGTERM and expects exit status 0 after a
tidy shutdown. The signal is received in its own task (anyio's signal
receiver), which only cancels the program's task group: no work happens in a
signal handler, and ``finally`` blocks run as the cancellation unwinds.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Awaitable, Callable

import anyio

__all__ = ["configure_logging", "run_program"]


def configure_logging(name: str, *, verbose: bool = False) -> logging.Logger:
    """Log one line per event to stderr, prefixed with the program's name and PID."""
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if verbose else logging.INFO,
        format=f"%(asctime)s {name}[%(process)d] %(levelname)s %(message)s",
    )
    # Library chatter (httpx request lines, websockets frames) is not a notable event.
    for noisy in ("httpx", "httpcore", "websockets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return logging.getLogger(f"autoheal.demo.{name}")


async def _run_until_signal(main: Callable[[], Awaitable[int]], log: logging.Logger) -> int:
    code = 0
    async with anyio.create_task_group() as tg:

        async def watch_signals() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for signum in signals:
                    log.info("shutdown signal=%s", signal.Signals(signum).name)
                    tg.cancel_scope.cancel()
                    return

        async def body() -> None:
            nonlocal code
            code = await main()
            tg.cancel_scope.cancel()

        tg.start_soon(watch_signals)
        tg.start_soon(body)
    return code


def run_program(main: Callable[[], Awaitable[int]], log: logging.Logger) -> int:
    """Run ``main`` on asyncio until it returns or a stop signal arrives.

    Returns:
        ``main``'s exit code, or 0 after SIGTERM/SIGINT.
    """
    code = anyio.run(_run_until_signal, main, log, backend="asyncio")
    log.info("exited code=%d", code)
    return code
