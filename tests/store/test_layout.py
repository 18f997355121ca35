"""The runtime contract's file names live in one module (``autoheal.store.layout``).

A quoted runtime file name anywhere else in the package is a second source of truth
that can drift from the docs and the other readers; this test finds one.
"""

from __future__ import annotations

import re
from pathlib import Path

from autoheal.store import layout as runtime_files

LAYOUT = Path(runtime_files.__file__)
SRC = LAYOUT.parent.parent  # src/autoheal
NAMES = [
    runtime_files.FLAGS,
    runtime_files.RISK_LATCH,
    runtime_files.HEALTH,
    runtime_files.STATE,
    runtime_files.DAEMON_HEARTBEAT,
    runtime_files.JOURNAL,
    runtime_files.LOCK,
    runtime_files.NOTIFICATIONS,
    runtime_files.STATUS_ENDPOINT,
    "order_sigs.json",
    runtime_files.BREAKERS,
    runtime_files.POSITIONS,
    runtime_files.STATE_BUS,
    runtime_files.RISK_PNL,
]


def test_no_module_spells_a_runtime_file_name_itself() -> None:
    pattern = re.compile("|".join(rf"[\"']{re.escape(n)}[\"']" for n in NAMES))
    offenders = [
        f"{path.relative_to(SRC)}:{number}: {line.strip()}"
        for path in sorted(SRC.rglob("*.py"))
        # The core imports only the standard library; it names files only in messages.
        if path != LAYOUT and path.parent.name != "core"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []
