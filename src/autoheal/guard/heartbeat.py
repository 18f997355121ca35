"""The heartbeat file a component writes and the daemon's heartbeat probe reads.

``<runtime_dir>/<name>.heartbeat.json`` =
``{"component": name, "pid": ..., "ts": <unix seconds>, "seq": n, ...extras}``.
``ts`` is wall time because another process (the daemon) compares it with its own
clock; ``seq`` lets a reader notice a writer that is alive but stuck repeating.

A market-data feeder also reports what its data says (:meth:`Heartbeat.feed_event`):
each beat then carries a ``feed`` section, per symbol the newest exchange event time
and the sequence gaps (:mod:`autoheal.guard.feed`), which the daemon's ``feed_lag``
probe judges: a loop that beats proves nothing about the data it serves.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autoheal.guard.feed import FeedTracker, SymbolFeed
from autoheal.guard.kill_switch import PathArg, runtime_dir_from_env
from autoheal.store.atomic import write_json_atomic

__all__ = ["Heartbeat", "heartbeat_path"]

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_RESERVED = frozenset({"component", "pid", "ts", "seq"})


def heartbeat_path(runtime_dir: Path, name: str) -> Path:
    """Where component ``name`` writes its heartbeat."""
    return Path(runtime_dir) / f"{name}.heartbeat.json"


class Heartbeat:
    """Writes one component's heartbeat, atomically, each time :meth:`beat` is called.

    Args:
        runtime_dir: the shared runtime directory (must exist); default
            ``AUTOHEAL_RUNTIME_DIR``.
        name: the component name, e.g. ``feeder`` (letters, digits, ``_.-``).
        time_fn: wall-clock seconds for ``ts``; tests pass a fake.

    Raises:
        ValueError: a name that would escape the directory or is empty; no runtime dir.
    """

    def __init__(
        self,
        runtime_dir: PathArg | None = None,
        name: str = "",
        *,
        time_fn: Callable[[], float] = time.time,
    ) -> None:
        if not _NAME.match(name) or name in (".", ".."):
            raise ValueError(f"invalid component name {name!r}")
        self.name = name
        self.path = heartbeat_path(runtime_dir_from_env(runtime_dir, what="Heartbeat"), name)
        self.seq = 0
        self._time_fn = time_fn
        self.feed = FeedTracker(time_fn=time_fn)

    def feed_event(
        self,
        symbol: str,
        exchange_ts: float,
        seq: int | None = None,
        *,
        received_ts: float | None = None,
    ) -> SymbolFeed:
        """Record one market-data message; the next :meth:`beat` writes the ``feed`` section.

        Cheap (no I/O): call it for every message. See :meth:`FeedTracker.saw` for the
        arguments and :mod:`autoheal.guard.feed` for what the section holds.
        """
        return self.feed.saw(symbol, exchange_ts, seq, received_ts=received_ts)

    def feed_resync(self, symbol: str | None = None) -> None:
        """After a reconnect or a fresh snapshot: the next sequence number of ``symbol``
        (default: every symbol) starts afresh. See :meth:`FeedTracker.resync`."""
        self.feed.resync(symbol)

    def beat(self, **extras: Any) -> dict[str, Any]:
        """Write the next heartbeat; ``extras`` (e.g. ``ws_last_msg_ts=...``) are added to it.

        Returns:
            The document written.

        Raises:
            ValueError: an extra would overwrite a reserved field.
            OSError: the write failed (the previous heartbeat stays in place).
        """
        clash = set(_RESERVED.intersection(extras))
        if self.feed.symbols and "feed" in extras:
            clash.add("feed")
        if clash:
            raise ValueError(f"reserved heartbeat fields: {sorted(clash)}")
        self.seq += 1
        if self.feed.symbols:
            extras = {**extras, "feed": self.feed.to_doc()}
        doc = {
            **extras,
            "component": self.name,
            "pid": os.getpid(),
            "ts": self._time_fn(),
            "seq": self.seq,
        }
        # durable=False: a heartbeat is rewritten every second and only matters while the
        # host is up; after a power cut a stale or missing heartbeat is the right answer
        # anyway, and two fsyncs a second would be real I/O for nothing. The rename
        # still keeps readers from ever seeing a torn file.
        write_json_atomic(self.path, doc, durable=False)
        return doc
