"""The simulated disk's ledger: what a power loss keeps, and the faults it raises."""

from __future__ import annotations

import errno
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoheal.sim.disk import DiskFaults, FaultWindow, Ledger, simulated_disk
from autoheal.store import atomic
from autoheal.store.atomic import create_bytes_atomic, write_bytes_atomic

pytestmark = pytest.mark.timeout(30)


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def jump(self, s: float) -> None:
        self.t += s


@pytest.fixture
def clock() -> _Clock:
    return _Clock()


@pytest.fixture
def faults(clock: _Clock) -> DiskFaults:
    f = DiskFaults(random.Random(1), clock.now)
    f.jump = clock.jump
    return f


@pytest.fixture
def disk(tmp_path: Path, faults: DiskFaults) -> Iterator[Ledger]:
    with simulated_disk(tmp_path, faults) as ledger:
        yield ledger


def test_a_durable_write_survives_a_power_loss(tmp_path: Path, disk: Ledger) -> None:
    path = tmp_path / "state.json"
    write_bytes_atomic(path, b"one")
    assert disk.pending() == []
    assert disk.power_loss() == []
    assert path.read_bytes() == b"one"


def test_a_rename_without_fsync_dir_is_lost(tmp_path: Path, disk: Ledger) -> None:
    path = tmp_path / "state.json"
    write_bytes_atomic(path, b"old")
    write_bytes_atomic(path, b"new", durable=False)  # fsync of neither file nor folder
    assert path.read_bytes() == b"new"
    assert disk.pending() == [str(path)]
    assert disk.power_loss() == [str(path)]
    assert path.read_bytes() == b"old"


def test_a_fresh_name_never_made_durable_disappears(tmp_path: Path, disk: Ledger) -> None:
    path = tmp_path / "health.json"
    write_bytes_atomic(path, b"doc", durable=False)
    disk.power_loss()
    assert not path.exists()


def test_an_fsynced_file_renamed_without_fsync_dir_is_lost(
    tmp_path: Path, disk: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "flags.json"
    write_bytes_atomic(path, b"old")
    # The file is fsynced, the rename is not: the name still shows the old file.
    monkeypatch.setattr(atomic, "fsync_dir", lambda _d: None)
    write_bytes_atomic(path, b"new")
    disk.power_loss()
    assert path.read_bytes() == b"old"


def test_an_unsynced_file_renamed_over_a_name_then_made_durable(
    tmp_path: Path, disk: Ledger
) -> None:
    # health (durable=False) renamed over the old one; the state's fsync of the folder
    # makes that rename durable: the name shows the bytes of the rename (auto_da_alloc).
    health, state = tmp_path / "health.json", tmp_path / "state.json"
    write_bytes_atomic(health, b"h1")
    write_bytes_atomic(health, b"h2", durable=False)
    write_bytes_atomic(state, b"s1")
    disk.power_loss()
    assert health.read_bytes() == b"h2"
    assert state.read_bytes() == b"s1"


def test_an_unsynced_file_on_a_fresh_name_made_durable_comes_back_empty(
    tmp_path: Path, disk: Ledger
) -> None:
    beat, state = tmp_path / "beat.json", tmp_path / "state.json"
    write_bytes_atomic(beat, b"b1", durable=False)
    write_bytes_atomic(state, b"s1")  # fsyncs the folder: the name of beat is durable
    disk.power_loss()
    assert beat.read_bytes() == b""


def test_a_hand_edit_stands(tmp_path: Path, disk: Ledger) -> None:
    path = tmp_path / "flags.json"
    write_bytes_atomic(path, b"daemon")
    write_bytes_atomic(path, b"pending", durable=False)
    path.write_bytes(b"operator")  # behind the proxy: taken as durable
    disk.power_loss()
    assert path.read_bytes() == b"operator"


def test_a_create_is_durable_and_an_unlink_behind_the_back_stands(
    tmp_path: Path, disk: Ledger
) -> None:
    stop = tmp_path / "STOP.TXT"
    assert create_bytes_atomic(stop, b"halt\n")
    assert disk.durable_bytes(stop) == b"halt\n"
    stop.unlink()
    disk.power_loss()
    assert not stop.exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no temp file left either


@pytest.mark.parametrize(
    ("kind", "code"), [("enospc", errno.ENOSPC), ("eio", errno.EIO), ("erofs", errno.EROFS)]
)
def test_a_fault_raises_its_errno_and_leaves_the_old_content(
    tmp_path: Path, disk: Ledger, faults: DiskFaults, kind: str, code: int
) -> None:
    path = tmp_path / "state.json"
    write_bytes_atomic(path, b"old")
    faults.open(FaultWindow(kind, until=10.0, rate=1.0))
    with pytest.raises(OSError) as info:
        write_bytes_atomic(path, b"new")
    assert info.value.errno == code
    assert path.read_bytes() == b"old"
    assert disk.durable_bytes(path) == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]  # temp removed
    assert faults.struck == {kind: 1}


def test_enotdir_on_open_for_writing(tmp_path: Path, disk: Ledger, faults: DiskFaults) -> None:
    faults.open(FaultWindow("enotdir", until=10.0, rate=1.0))
    with pytest.raises(NotADirectoryError):
        write_bytes_atomic(tmp_path / "x.json", b"x")


def test_a_window_ends_and_reads_are_never_struck(
    tmp_path: Path, disk: Ledger, faults: DiskFaults, clock: _Clock
) -> None:
    path = tmp_path / "state.json"
    write_bytes_atomic(path, b"old")
    faults.open(FaultWindow("erofs", until=5.0, rate=1.0))
    assert atomic.read_regular(path, 100) == b"old"
    clock.t = 5.0
    write_bytes_atomic(path, b"new")
    assert path.read_bytes() == b"new"


def test_latency_jumps_the_clock_inside_the_write(
    tmp_path: Path, disk: Ledger, faults: DiskFaults, clock: _Clock
) -> None:
    faults.open(FaultWindow("latency", until=100.0, rate=1.0, latency_s=(2.0, 2.0)))
    write_bytes_atomic(tmp_path / "state.json", b"x")
    # The write, the file's fsync and the folder's fsync stalled 2 s each.
    assert clock.t == 6.0


def test_outside_the_root_nothing_is_tracked(tmp_path: Path, faults: DiskFaults) -> None:
    inside, outside = tmp_path / "in", tmp_path / "out"
    inside.mkdir()
    outside.mkdir()
    with simulated_disk(inside, faults) as ledger:
        faults.open(FaultWindow("enospc", until=10.0, rate=1.0))
        write_bytes_atomic(outside / "f", b"x", durable=False)
        assert ledger.pending() == []
    assert (outside / "f").read_bytes() == b"x"
    assert vars(atomic)["os"] is os  # put back


def test_exempt_names_are_never_struck(tmp_path: Path, disk: Ledger, faults: DiskFaults) -> None:
    faults.exempt = ("feeder.heartbeat.json",)
    faults.open(FaultWindow("enospc", until=10.0, rate=1.0))
    write_bytes_atomic(tmp_path / "feeder.heartbeat.json", b"beat", durable=False)
    with pytest.raises(OSError):
        write_bytes_atomic(tmp_path / "state.json", b"x")


def test_a_partial_rate_strikes_some_calls_the_same_way_each_time(tmp_path: Path) -> None:
    def outcomes() -> list[bool]:
        clock = _Clock()
        faults = DiskFaults(random.Random(5), clock.now)
        out = []
        with simulated_disk(tmp_path, faults):
            faults.open(FaultWindow("eio", until=10.0, rate=0.5))
            for _ in range(20):
                try:
                    write_bytes_atomic(tmp_path / "s.json", b"x")
                    out.append(True)
                except OSError:
                    out.append(False)
        return out

    first = outcomes()
    assert first == outcomes()
    assert 0 < sum(first) < 20


def test_faults_off_keeps_the_grace_of_a_write_fault_that_just_ended(
    tmp_path: Path, clock: _Clock
) -> None:
    """Seed 1009: a failsafe's STOP.TXT refused by EIO is retried on a backoff of up to
    RETRY_CAP_S; the liveness phase switching the faults off must not call it invisible
    before that retry has come."""
    from autoheal.sim.disk_acts import GRACE_S, sim_disk

    with sim_disk(tmp_path, random.Random(3), clock.now, clock.jump) as sim:
        sim.fault({"kind": "eio", "s": 50.0, "rate": 0.5}, now=0.0)
        clock.t = 20.0
        sim.quiet(clock.t)
        assert sim.faults.active() == []
        assert sim.excused(20.0 + GRACE_S - 1.0)  # the retry may still be waiting
        assert not sim.excused(20.0 + GRACE_S + 1.0)  # then the files must show it
        sim.quiet(200.0)  # quiet again, long after: nothing left to excuse
        assert not sim.excused(200.0)
