"""Log lines that a terminal only shows: the daemon's, and those of a command run in-process.

A log message quotes what came from outside -- an operator's reason in a FAILSAFE
notice, a spawn error naming a service's program, a probe's exception -- and
``autoheal run`` logs to stderr, a terminal when started by hand. So each message is
folded to one line by :func:`autoheal.terminal.clean` (a newline in a reason
cannot forge a log line) and a traceback keeps its lines but nothing else a terminal
would obey (:func:`~autoheal.terminal.clean_lines`).

The commands that execute daemon code themselves (``restart`` with no daemon running,
``drill``, ``check``) configure no logging; Python then prints their warnings through
:data:`logging.lastResort`, which :func:`clean_last_resort` replaces with a cleaning one.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from autoheal.terminal import clean, clean_lines

__all__ = ["CleanFormatter", "clean_last_resort"]


class CleanFormatter(logging.Formatter):
    """A :class:`logging.Formatter` whose message is one clean line and traceback clean lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = clean(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        return clean_lines(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return clean_lines(super().formatStack(stack_info))

    def format(self, record: logging.LogRecord) -> str:
        # Another handler's formatter may have cached the raw traceback on the record.
        cached, record.exc_text = record.exc_text, None
        try:
            return super().format(record)
        finally:
            record.exc_text = cached


class _LastResort(logging.StreamHandler):  # type: ignore[type-arg]
    """:data:`logging.lastResort` with a :class:`CleanFormatter`: warnings and worse, to
    whatever ``sys.stderr`` is when the record comes (as the stock one does)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setLevel(logging.WARNING)
        self.setFormatter(CleanFormatter())

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass  # always sys.stderr, looked up at each record


def clean_last_resort() -> None:
    """Make the handler Python falls back on (no logging configured) a cleaning one."""
    if not isinstance(logging.lastResort, _LastResort):
        logging.lastResort = _LastResort()
