"""The run's trace: one JSON object a line, virtual time only, and its sha256.

Nothing wall-clock, no PID of a real process, no temporary path, no command id (a
uuid4): only what the seed determines. The same seed on the same commit gives the
same bytes, hence the same hash (checked in fresh processes by ``tests/sim/``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import IO, Any

import orjson

__all__ = ["Trace"]


class Trace:
    """Collects events; hashes every line; optionally writes them to a file."""

    def __init__(self, path: Path | None = None) -> None:
        self._hash = hashlib.sha256()
        self._file: IO[bytes] | None = None if path is None else path.open("wb")
        self.events = 0

    def emit(self, event: dict[str, Any]) -> None:
        line = orjson.dumps(event, option=orjson.OPT_SORT_KEYS) + b"\n"
        self._hash.update(line)
        self.events += 1
        if self._file is not None:
            self._file.write(line)

    def close(self) -> str:
        """Close the file; the sha256 of every line written (hex)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        return self._hash.hexdigest()
