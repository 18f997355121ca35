"""HeartbeatFiles: a heartbeat is parsed once per version, and every new version is read."""

from __future__ import annotations

import os
from pathlib import Path

from autoheal.probes import FieldFreshnessProbe, HeartbeatFiles, HeartbeatProbe
from autoheal.store.atomic import write_json_atomic

MAX = 64 * 1024


def test_an_unchanged_file_is_not_parsed_again(tmp_path: Path) -> None:
    path = tmp_path / "feeder.heartbeat.json"
    write_json_atomic(path, {"ts": 100.0, "ws_last_msg_ts": 99.0}, durable=False)
    files = HeartbeatFiles()
    first = files.read(path, max_bytes=MAX)
    assert first.doc == {"ts": 100.0, "ws_last_msg_ts": 99.0}
    assert files.read(path, max_bytes=MAX) is first  # the same object: one parse


def test_every_new_version_is_read(tmp_path: Path) -> None:
    path = tmp_path / "feeder.heartbeat.json"
    files = HeartbeatFiles()
    write_json_atomic(path, {"ts": 100.0}, durable=False)
    assert files.read(path, max_bytes=MAX).doc == {"ts": 100.0}
    # Replaced atomically (a new inode), as writers do.
    write_json_atomic(path, {"ts": 101.0}, durable=False)
    assert files.read(path, max_bytes=MAX).doc == {"ts": 101.0}
    # Rewritten in place with the same size, and its mtime put back: the ctime still moves.
    st = os.stat(path)
    with open(path, "r+b") as fh:
        data = fh.read()
        fh.seek(0)
        fh.write(data.replace(b"101.0", b"102.0"))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_size == st.st_size
    assert files.read(path, max_bytes=MAX).doc == {"ts": 102.0}
    # Gone, then garbage: each says so, nothing old is served.
    path.unlink()
    assert files.read(path, max_bytes=MAX).reason == "missing"
    path.write_bytes(b"\x00\xff garbage")
    assert files.read(path, max_bytes=MAX).reason == "invalid"


def test_probes_sharing_the_files_judge_their_own_field(tmp_path: Path) -> None:
    path = tmp_path / "feeder.heartbeat.json"
    write_json_atomic(path, {"ts": 100.0, "ws_last_msg_ts": 90.0}, durable=False)
    files = HeartbeatFiles()
    now = lambda: 101.0  # noqa: E731
    alive = HeartbeatProbe(path, 5.0, wall=now, clock=now, files=files)
    data = FieldFreshnessProbe(path, max_age=5.0, wall=now, clock=now, files=files)
    assert alive.check_inline is not None and data.check_inline is not None
    assert alive.check_inline().ok
    stale = data.check_inline()
    assert not stale.ok and stale.reason == "ws_stale" and stale.value == 11.0


def test_a_probe_reading_in_a_thread_offers_no_inline_check(tmp_path: Path) -> None:
    probe = HeartbeatProbe(tmp_path / "x.heartbeat.json", 5.0, in_thread=True)
    assert probe.check_inline is None
