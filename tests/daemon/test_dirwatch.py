"""The kill switch's inotify watch, on real files: what it hears, and what it must not."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from autoheal.daemon import dirwatch
from autoheal.store.atomic import write_json_atomic

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not dirwatch.AVAILABLE, reason="inotify is Linux only"),
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Heard:
    """Collects the batches; ``wait`` returns the names heard until one of ``names`` came."""

    def __init__(self) -> None:
        self.batches: list[set[str]] = []
        self.started = anyio.Event()
        self._changed = anyio.Event()

    def __call__(self, names: set[str]) -> None:
        self.batches.append(names)
        self._changed.set()

    async def wait(self, *names: str) -> set[str]:
        with anyio.fail_after(5):
            while True:
                heard = set().union(*self.batches)
                if heard & set(names):
                    return heard
                self._changed = anyio.Event()
                await self._changed.wait()


def folders(tmp_path: Path) -> tuple[Path, Path]:
    runtime = tmp_path / "shared_data"
    runtime.mkdir()
    write_json_atomic(runtime / "global_flags.json", {"mode": "NORMAL"}, durable=False)
    (runtime / "journal.sqlite-wal").write_bytes(b"")
    return runtime, tmp_path


async def test_replacement_edit_and_wal_append_are_heard_heartbeats_are_not(
    tmp_path: Path,
) -> None:
    runtime, stop_dir = folders(tmp_path)
    files = [runtime / "global_flags.json", runtime / "journal.sqlite-wal"]
    heard = Heard()
    async with anyio.create_task_group() as tg:
        tg.start_soon(
            lambda: dirwatch.watch({stop_dir}, files, heard, on_started=heard.started.set)
        )
        await heard.started.wait()
        # A component's heartbeat, rewritten in the runtime folder: no event at all.
        write_json_atomic(runtime / "feeder.heartbeat.json", {"ts": 1.0}, durable=False)
        write_json_atomic(runtime / "global_flags.json", {"mode": "HALT"}, durable=False)
        assert "feeder.heartbeat.json" not in await heard.wait("global_flags.json")
        heard.batches.clear()
        # The watch followed the name to the new file: an edit in place is heard too.
        with open(runtime / "global_flags.json", "w") as fh:
            fh.write('{"mode": "REDUCE_ONLY"}')
        await heard.wait("global_flags.json")
        heard.batches.clear()
        # A CLI appends a command to the journal: SQLite keeps its WAL open, no close.
        fd = os.open(runtime / "journal.sqlite-wal", os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, b"frame")
            await heard.wait("journal.sqlite-wal")
        finally:
            os.close(fd)
        tg.cancel_scope.cancel()


async def test_stop_file_created_and_removed_by_hand_is_heard(tmp_path: Path) -> None:
    runtime, stop_dir = folders(tmp_path)
    heard = Heard()
    async with anyio.create_task_group() as tg:
        tg.start_soon(
            lambda: dirwatch.watch(
                {stop_dir}, [runtime / "global_flags.json"], heard, on_started=heard.started.set
            )
        )
        await heard.started.wait()
        (stop_dir / "STOP.TXT").touch()  # a create and a close, no rename
        await heard.wait("STOP.TXT")
        heard.batches.clear()
        (stop_dir / "STOP.TXT").unlink()
        await heard.wait("STOP.TXT")
        tg.cancel_scope.cancel()


async def test_removed_flags_file_ends_the_watch_after_saying_so(tmp_path: Path) -> None:
    runtime, stop_dir = folders(tmp_path)
    flags = runtime / "global_flags.json"
    heard = Heard()
    with anyio.fail_after(5), pytest.raises(dirwatch.WatchLost, match=r"global_flags\.json"):
        await dirwatch.watch({stop_dir}, [flags], heard, on_started=flags.unlink)
    assert "global_flags.json" in set().union(*heard.batches)


async def test_removed_stop_file_folder_ends_the_watch(tmp_path: Path) -> None:
    runtime, _ = folders(tmp_path)
    stop_dir = tmp_path / "stop"
    stop_dir.mkdir()
    heard = Heard()
    with anyio.fail_after(5), pytest.raises(dirwatch.WatchLost, match="went away"):
        await dirwatch.watch(
            {stop_dir}, [runtime / "global_flags.json"], heard, on_started=stop_dir.rmdir
        )
    assert dirwatch.OVERFLOW in set().union(*heard.batches)


async def test_a_missing_folder_cannot_be_watched(tmp_path: Path) -> None:
    runtime, _ = folders(tmp_path)
    with anyio.fail_after(5), pytest.raises(OSError):
        await dirwatch.watch({tmp_path / "nowhere"}, [runtime / "global_flags.json"], set)


async def test_kill_switch_does_not_claim_to_watch_when_the_stop_folder_is_a_file(
    tmp_path: Path,
) -> None:
    # With STOP.TXT's folder replaced by a plain file nothing could hear STOP.TXT appear:
    # the watch must say it is not watching (then every beat reads the files).
    from autoheal.daemon.clock import LoopClock
    from autoheal.daemon.watch import DirectoryWatch

    runtime, _ = folders(tmp_path)
    not_a_folder = tmp_path / "stop"
    not_a_folder.write_text("a file where the stop file's folder should be")
    said: list[bool] = []
    told = anyio.Event()

    def on_watching(watching: bool) -> None:
        said.append(watching)
        told.set()

    watch = DirectoryWatch(
        folders=[not_a_folder],
        files=[runtime / "global_flags.json", runtime / "journal.sqlite-wal"],
        clock=LoopClock(),
        on_watching=on_watching,
    )
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch.run)
            await told.wait()
            tg.cancel_scope.cancel()
    assert said == [False]
    assert not watch.watching


async def test_every_subscriber_looks_once_the_watch_is_in_place(tmp_path: Path) -> None:
    # An edit made after the daemon's start-up read but before inotify watched would
    # otherwise wait for the heartbeat's safety-net read (every 10th beat).
    from autoheal.daemon.clock import LoopClock
    from autoheal.daemon.watch import DirectoryWatch

    runtime, stop_dir = folders(tmp_path)
    looked: list[tuple[str, bool]] = []
    both = anyio.Event()
    watch = DirectoryWatch(
        folders=[stop_dir],
        files=[runtime / "global_flags.json", runtime / "journal.sqlite-wal"],
        clock=LoopClock(),
    )

    def subscriber(name: str) -> Callable[[], None]:
        def look() -> None:
            looked.append((name, watch.watching))
            if len(looked) == 2:
                both.set()

        return look

    watch.subscribe({"global_flags.json"}, subscriber("kill switch"))
    watch.subscribe({"journal.sqlite-wal"}, subscriber("commands"))
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch.run)
            await both.wait()
            tg.cancel_scope.cancel()
    # Nothing changed on disk: both looked because the watch started, and it was watching.
    assert looked == [("kill switch", True), ("commands", True)]
