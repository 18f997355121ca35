"""Alert files: one shape, written and cleared by one function, never raising."""

from __future__ import annotations

from pathlib import Path

from autoheal.store.alerts import alert_path, clear_alert, read_alerts, write_alert


def test_write_read_clear(tmp_path: Path) -> None:
    assert write_alert(tmp_path, "stop_file_write_failed", ts=1.0, errno="EROFS") is None
    assert read_alerts(tmp_path) == {
        "stop_file_write_failed": {"alert": "stop_file_write_failed", "ts": 1.0, "errno": "EROFS"}
    }
    assert clear_alert(tmp_path, "stop_file_write_failed")
    assert not clear_alert(tmp_path, "stop_file_write_failed")
    assert read_alerts(tmp_path) == {}


def test_a_failed_write_is_returned_not_raised(tmp_path: Path) -> None:
    (tmp_path / "alerts").write_text("a plain file where the folder should be")
    err = write_alert(tmp_path, "x", ts=1.0)
    assert isinstance(err, OSError)


def test_an_unreadable_alert_is_reported(tmp_path: Path) -> None:
    alert_path(tmp_path, "x").parent.mkdir()
    alert_path(tmp_path, "x").write_bytes(b"\x00garbage")
    assert read_alerts(tmp_path)["x"]["unreadable"] == "invalid"
