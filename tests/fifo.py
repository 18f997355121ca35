"""Calls that must not block on a FIFO: run them with a deadline, release them if they do.

A reader that opens a FIFO blocks until a writer comes. :func:`returns_within` runs
the call in a thread; if it is still blocked after the deadline, the FIFO is opened
for writing and closed (the reader then sees end-of-file) so that a failing test
never leaves a thread stuck for the rest of the session, and the test fails.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def returns_within(fn: Callable[[], T], fifo: Path, timeout_s: float = 3.0) -> T:
    """``fn()``'s result; fails if it is still blocked (on ``fifo``) after ``timeout_s``."""
    out: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        for _ in range(100):  # every reader blocked in open() gets its end-of-file
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                break
            thread.join(0.05)
            if not thread.is_alive():
                break
        raise AssertionError(f"blocked on the FIFO {fifo.name} for {timeout_s} s")
    if errors:
        raise errors[0]
    return out[0]
