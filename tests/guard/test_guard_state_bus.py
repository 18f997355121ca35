"""StateBus: backup on corruption with an alert, rejected invalid writes, SIGKILL mid-write."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import orjson
import pytest

from autoheal.guard import StateBus, StateBusValidationError
from autoheal.store.atomic import read_json

from .conftest import wait_for


def _alert(tmp_path):
    return orjson.loads((tmp_path / "alerts" / "state_bus_invalid.json").read_bytes())


def test_state_bus_missing_file_gives_defaults_without_alert(tmp_path):
    read = StateBus(tmp_path).read()
    assert read.source == "defaults"
    assert read.doc["schema_version"] == 1
    assert not (tmp_path / "alerts").exists()


def test_state_bus_corrupt_file_returns_backup_and_alerts(tmp_path):
    bus = StateBus(tmp_path, time_fn=lambda: 100.0)
    written = bus.write({"schema_version": 1, "mode": "NORMAL", "positions": {"BTCUSDT": 0.5}})
    (tmp_path / "state_bus.json").write_text("{ invalid json")  # by hand, as the runbook does
    read = bus.read()
    assert read.source == "backup"
    assert read.doc == written
    alert = _alert(tmp_path)
    assert (alert["alert"], alert["event"], alert["reason"], alert["fallback"]) == (
        "state_bus_invalid",
        "read_corrupt",
        "invalid",
        "backup",
    )


def test_state_bus_corrupt_file_and_backup_give_defaults(tmp_path):
    (tmp_path / "state_bus.json").write_text("{ invalid json")
    (tmp_path / "state_bus.json.bak").write_text('{"schema_version": "x"}')
    read = StateBus(tmp_path).read()
    assert read.source == "defaults"
    assert _alert(tmp_path)["fallback"] == "defaults"


@pytest.mark.parametrize(
    "doc",
    [
        {"schema_version": 2},
        {"schema_version": 1, "positions": []},
        {"schema_version": 1, "mode": True},
        {"schema_version": 1, "typo_field": 1},
        {"mode": "NORMAL"},
    ],
)
def test_state_bus_invalid_write_is_rejected_and_nothing_changes(tmp_path, doc):
    bus = StateBus(tmp_path)
    bus.write({"schema_version": 1, "mode": "DEGRADED"})
    before = (tmp_path / "state_bus.json").read_bytes()
    with pytest.raises(StateBusValidationError) as info:
        bus.write(doc)
    assert info.value.reason == "state_bus_invalid"
    assert info.value.problems
    assert (tmp_path / "state_bus.json").read_bytes() == before
    assert _alert(tmp_path)["event"] == "write_rejected"


def test_state_bus_update_and_repair(tmp_path):
    bus = StateBus(tmp_path)
    (tmp_path / "state_bus.json").write_text("garbage")
    bus.update(note="repaired")  # read falls back to defaults, write repairs the file
    assert read_json(tmp_path / "state_bus.json").doc["note"] == "repaired"
    assert bus.read().source == "primary"
    assert bus.clear_alert() is True
    assert bus.clear_alert() is False


_WRITER = textwrap.dedent(
    """
    import sys
    from autoheal.guard import StateBus
    bus = StateBus(sys.argv[1])
    big = {f"SYM{i}": {"qty": i, "pad": "x" * 200} for i in range(2000)}
    n = 0
    while True:
        n += 1
        bus.write({"schema_version": 1, "signals": big, "note": str(n)})
        if n == 3:
            print("writing", flush=True)
    """
)


@pytest.mark.slow
def test_state_bus_sigkilled_writer_leaves_a_valid_document(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "writing"  # it is in its write loop now
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    for name in ("state_bus.json", "state_bus.json.bak"):
        result = read_json(tmp_path / name)
        assert result.ok, (name, result.reason)
        assert int(result.doc["note"]) >= 3
    read = StateBus(tmp_path).read()
    assert read.source == "primary"
    assert not (tmp_path / "alerts").exists()
    wait_for(lambda: proc.returncode is not None, what="writer reaped")
