"""The kill switch by an operator's hand, against a real daemon.

An operator who creates ``STOP.TXT`` puts the runtime in failsafe within a second
(``global_flags.json`` and ``health_v2.json`` say so, set_by ``operator``); removing it
or writing ``{"failsafe_active": false}`` clears it, journaled either way. Garbage in
``global_flags.json`` raises ``alerts/flags_invalid.json`` while the daemon keeps
running and keeps its state.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoheal.drills.stacks.simple import Runtime, read_doc, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

NOTICE_S = 1.0  # "within a second"


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    with Runtime(tmp_path) as runtime:
        runtime.start_daemon()
        yield runtime


def in_failsafe(rt: Runtime) -> bool:
    flags, health = rt.flags() or {}, rt.health() or {}
    return (
        flags.get("failsafe_active") is True
        and flags.get("set_by") == "operator"
        and health.get("failsafe") is True
    )


def cleared(rt: Runtime) -> bool:
    flags, health = rt.flags() or {}, rt.health() or {}
    return (
        flags.get("failsafe_active") is False
        and flags.get("mode") == "NORMAL"
        and health.get("failsafe") is False
        and not rt.stop_file.exists()
    )


def kill_switch_reasons(rt: Runtime) -> list[str | None]:
    return [e.reason for e in rt.events(kind="operator_kill_switch")]


def create_stop_by_hand(rt: Runtime) -> float:
    """Write STOP.TXT as an operator would (``echo > STOP.TXT``); returns when."""
    started = time.monotonic()
    rt.stop_file.write_text("halt, I am looking at something\n")
    wait_for(lambda: in_failsafe(rt), NOTICE_S, "failsafe within a second of STOP.TXT")
    return time.monotonic() - started


def test_stop_file_by_hand_enters_and_its_removal_clears(rt: Runtime) -> None:
    pid = rt.healthy_pid("feeder")

    create_stop_by_hand(rt)
    assert (rt.flags() or {}).get("mode") == "SIGNAL_READ_ONLY"
    assert rt.stop_file.exists()

    rt.stop_file.unlink()
    wait_for(lambda: cleared(rt), NOTICE_S, "cleared within a second of STOP.TXT removed")

    assert kill_switch_reasons(rt) == ["stop_file_created", "stop_file_removed"]
    assert rt.daemon is not None and rt.daemon.poll() is None
    assert rt.healthy_pid("feeder") == pid  # the kill switch halts orders, not processes


def test_flags_written_by_hand_clear_the_failsafe(rt: Runtime) -> None:
    create_stop_by_hand(rt)

    (rt.runtime_dir / "global_flags.json").write_text('{"failsafe_active": false}')

    wait_for(lambda: cleared(rt), NOTICE_S, "cleared within a second of the flags edit")
    assert kill_switch_reasons(rt) == ["stop_file_created", "flags_cleared"]
    assert {e.actor for e in rt.events(kind="operator_kill_switch")} == {"operator"}
    assert rt.daemon is not None and rt.daemon.poll() is None


def test_garbage_flags_raise_an_alert_and_change_nothing(rt: Runtime) -> None:
    before = rt.health() or {}
    pid = rt.healthy_pid("feeder")
    flags_path = rt.runtime_dir / "global_flags.json"
    alert_path = rt.runtime_dir / "alerts" / "flags_invalid.json"

    # Replaced in one step: written in place, the daemon may first read it empty (a
    # different reason, so a second alert), which is not what this test is about.
    tmp = flags_path.with_name(".garbage")
    tmp.write_bytes(b"\x00\xffnot json at all {")
    tmp.replace(flags_path)

    alert = wait_for(lambda: read_doc(alert_path), 2 * NOTICE_S, "alerts/flags_invalid.json")
    assert alert["alert"] == "flags_invalid"
    assert alert["file"] == "global_flags.json"
    # It keeps running and keeps writing its (unchanged) state.
    seen = (rt.health() or {}).get("ts", 0)
    wait_for(lambda: (rt.health() or {}).get("ts", 0) > seen, 2, "a fresh health_v2.json")
    after = rt.health() or {}
    assert rt.daemon is not None and rt.daemon.poll() is None
    for key in ("dor", "failsafe", "mode", "stage", "degraded"):
        assert after[key] == before[key], key
    assert after["failsafe"] is False
    assert after["components"]["feeder"]["stage"] == "OBSERVE"
    assert rt.healthy_pid("feeder") == pid
    assert not rt.stop_file.exists()
    assert [e.reason for e in rt.events(kind="alert")] == ["flags_invalid"]
    assert "Traceback" not in rt.log_text()

    # Valid again: the alert goes away.
    flags_path.write_text('{"failsafe_active": false}')
    wait_for(lambda: not alert_path.exists(), 2 * NOTICE_S, "the alert to clear")
    assert (rt.health() or {}).get("failsafe") is False
