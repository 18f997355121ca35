"""The health document is whole after a power loss (the simulated disk's bug
``document_empty_after_power_loss``, issue 20).

``health_v2.json`` is rewritten every second without fsync. Its first write took a
fresh name; the state's next durable write fsynced the folder, which made the name
durable but not its bytes: a power loss left an empty file, which ``autoheal
status`` and the page read as garbage until the daemon wrote again. The first write
is durable now. Real files, behind the simulator's ledger of what a power loss keeps
(``autoheal.sim.disk``: ext4's rules).
"""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from autoheal.core import initial_state
from autoheal.daemon.files import HEALTH_FILENAME, save_state, write_health
from autoheal.sim.disk import DiskFaults, simulated_disk
from tests.core.conftest import make_policy

pytestmark = pytest.mark.timeout(30)


def test_the_first_health_document_survives_a_power_loss_whole(tmp_path: Path) -> None:
    faults = DiskFaults(random.Random(1), lambda: 0.0)
    with simulated_disk(tmp_path, faults) as disk:
        assert write_health(tmp_path, {"schema": 2, "dor": False})
        # The state's durable write fsyncs the folder.
        assert save_state(tmp_path, initial_state(make_policy()), to_wall=0.0, now_wall=1.0)
        assert write_health(tmp_path, {"schema": 2, "dor": True})  # over it: not synced
        disk.power_loss()
    doc = orjson.loads((tmp_path / HEALTH_FILENAME).read_bytes())
    assert doc["schema"] == 2  # whole: the first (durable) one, or the second
