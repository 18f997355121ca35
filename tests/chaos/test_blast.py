"""The blast-radius guard: real files, a real child process, and a drill aborted by it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import anyio
import pytest

from autoheal.chaos.blast import ProtectedSet, Violation, watch
from autoheal.drills import Status, run_drills
from autoheal.drills.catalog import SCENARIO_DIR


def changes(violations: list[Violation]) -> set[str]:
    return {v.change for v in violations}


def test_blast_unchanged_files_are_no_violation(tmp_path: Path) -> None:
    f = tmp_path / "a.json"
    f.write_text("{}")
    guard = ProtectedSet(files=[f, tmp_path / "absent"]).capture()
    assert guard.check() == []


def test_blast_content_change_names_sha_and_mtime(tmp_path: Path) -> None:
    f = tmp_path / "a.json"
    f.write_text("{}")
    guard = ProtectedSet(files=[f]).capture()
    f.write_text('{"x": 1}')
    os.utime(f, ns=(1, 1))  # a different mtime even on coarse-grained filesystems
    found = guard.check()
    assert changes(found) == {"sha256", "mtime"}
    assert all(v.target == str(f) and v.kind == "file" for v in found)


def test_blast_touch_only_is_an_mtime_violation(tmp_path: Path) -> None:
    f = tmp_path / "a.json"
    f.write_text("{}")
    guard = ProtectedSet(files=[f]).capture()
    os.utime(f, ns=(5, 5))
    assert changes(guard.check()) == {"mtime"}


def test_blast_deleted_and_created_files(tmp_path: Path) -> None:
    present, absent = tmp_path / "present", tmp_path / "STOP.TXT"
    present.write_text("x")
    guard = ProtectedSet(files=[present, absent]).capture()
    present.unlink()
    absent.write_text("halt")
    found = {v.target: v.change for v in guard.check()}
    assert found == {str(present): "deleted", str(absent): "created"}


def test_blast_process_gone_is_a_violation(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        guard = ProtectedSet(processes=[child.pid]).capture()
        assert guard.check() == []
        child.kill()
        child.wait()
        found = guard.check()
        assert [(v.kind, v.target, v.change) for v in found] == [
            ("process", f"pid={child.pid}", "gone")]
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()


def test_blast_watch_reports_within_a_second(tmp_path: Path) -> None:
    f = tmp_path / "flags.json"
    f.write_text("{}")
    guard = ProtectedSet(files=[f]).capture()
    seen: list[Violation] = []

    async def main() -> float:
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch, guard, seen.extend, 0.1)
            await anyio.sleep(0)
            f.write_text("changed")
            t0 = time.monotonic()
            with anyio.fail_after(1.0):
                while not seen:
                    await anyio.sleep(0.01)
            return time.monotonic() - t0

    assert anyio.run(main) < 1.0
    assert "sha256" in changes(seen)


def test_blast_watch_rejects_slow_intervals() -> None:
    with pytest.raises(ValueError, match="interval"):
        anyio.run(watch, ProtectedSet(), print, 2.0)


@pytest.mark.slow
def test_blast_protected_file_touched_during_drill_aborts_it(tmp_path: Path) -> None:
    """A breaker drill with a 30 s cooldown; the operator's file changes mid-drill."""
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    text = (SCENARIO_DIR / "breaker_trip.toml").read_text()
    text = text.replace('name = "breaker_trip"', 'name = "breaker_slow"')
    text = text.replace("cooldown_s = 120.0", "cooldown_s = 3000.0")
    (scenarios / "breaker_slow.toml").write_text(text)
    protected = tmp_path / "operator_positions.json"
    protected.write_text('{"BTCUSDT": 1.0}')
    work = tmp_path / "work"
    touched: list[float] = []

    def operator() -> None:
        # Wait until the drill is mid-run (its breaker file exists: failures are in).
        deadline = time.monotonic() + 15
        breaker_file = work / "01-breaker_slow" / "circuit_breaker.json"
        while not breaker_file.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        protected.write_text('{"BTCUSDT": 0.0}')
        touched.append(time.monotonic())

    thread = threading.Thread(target=operator)
    thread.start()
    try:
        report = run_drills(["breaker_slow"], work_dir=work, scenario_dirs=[scenarios],
                            protect=ProtectedSet(files=[protected]), progress=lambda _: None)
    finally:
        thread.join()
    ended = time.monotonic()
    (result,) = report.results
    assert result.status is Status.ABORTED
    assert any(str(protected) in v and "sha256" in v for v in result.violations)
    # Stopped within a second of the change (plus the rollback's exchange shutdown),
    # not after the 30 s cooldown.
    assert ended - touched[0] < 1.5
    assert result.duration_s < 10
    assert "clear_exchange_fault: none" in result.details["rollback"]
    assert any(r.startswith("stop_exchange") for r in result.details["rollback"])
