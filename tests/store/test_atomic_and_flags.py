"""The atomic JSON store and the flags file: bad content gives reasons, never exceptions."""

from __future__ import annotations

import os
import resource
import signal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoheal.store.atomic import append_jsonl, read_json, write_json_atomic
from autoheal.store.flags import (
    Flags,
    parse_flags,
    read_flags,
    remove_stop_file,
    stop_file_present,
    write_flags,
    write_stop_file,
)


def test_write_and_read_round_trip(tmp_path: Path) -> None:
    write_json_atomic(tmp_path / "a.json", {"b": 1, "a": [1, 2]})
    assert read_json(tmp_path / "a.json").doc == {"a": [1, 2], "b": 1}
    assert (tmp_path / "a.json").read_bytes() == b'{"a":[1,2],"b":1}\n'


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"ts": 17', "invalid"),
        (b"\x00\xff\xfe binary", "invalid"),
        (b"", "invalid"),
        (b"[1, 2]", "not_object"),
    ],
)
def test_read_json_bad_content_gives_a_reason(tmp_path: Path, content: bytes, reason: str) -> None:
    (tmp_path / "x.json").write_bytes(content)
    result = read_json(tmp_path / "x.json")
    assert result.doc is None
    assert result.reason == reason


def test_read_json_missing_directory_and_oversized(tmp_path: Path) -> None:
    assert read_json(tmp_path / "nope.json").reason == "missing"
    (tmp_path / "d.json").mkdir()
    assert read_json(tmp_path / "d.json").reason == "not_a_regular_file"
    (tmp_path / "big.json").write_bytes(b'{"a": "' + b"x" * 2000 + b'"}')
    assert read_json(tmp_path / "big.json", max_bytes=1000).reason == "too_large"


def test_failed_write_leaves_old_document_and_no_temp(tmp_path: Path) -> None:
    write_json_atomic(tmp_path / "a.json", {"v": 1})
    with pytest.raises(TypeError):
        write_json_atomic(tmp_path / "a.json", {"v": object()})
    assert read_json(tmp_path / "a.json").doc == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_failed_write_when_the_disk_refuses_keeps_old_document(tmp_path: Path) -> None:
    """A full disk, simulated with RLIMIT_FSIZE (EFBIG) in a forked child: works as root too."""
    target = tmp_path / "a.json"
    write_json_atomic(target, {"v": 1})
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 3
        try:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))
            write_json_atomic(target, {"v": "x" * 10_000})
            code = 0
        except OSError:
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 1  # the write raised OSError
    assert read_json(target).doc == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]  # temp file cleaned up


def test_append_jsonl_appends_lines(tmp_path: Path) -> None:
    append_jsonl(tmp_path / "n.log", {"a": 1})
    append_jsonl(tmp_path / "n.log", {"a": 2})
    assert (tmp_path / "n.log").read_text() == '{"a":1}\n{"a":2}\n'


def test_flags_missing_file_means_defaults(tmp_path: Path) -> None:
    read = read_flags(tmp_path)
    assert read.missing
    assert read.flags == Flags()


def test_flags_operator_shorthand_takes_defaults(tmp_path: Path) -> None:
    (tmp_path / "global_flags.json").write_text('{"failsafe_active": false}')
    assert read_flags(tmp_path).flags == Flags()
    (tmp_path / "global_flags.json").write_text('{"failsafe_active": true}')
    assert read_flags(tmp_path).flags == Flags(True, "SIGNAL_READ_ONLY")


@pytest.mark.parametrize(
    "doc",
    [
        {"failsafe_active": "yes"},
        {"mode": "PANIC"},
        {"reason": 5},
        {"since": "yesterday"},
        {"since": True},
    ],
)
def test_flags_wrong_types_are_invalid(tmp_path: Path, doc: dict) -> None:
    read = parse_flags(doc)
    assert read.flags is None
    assert read.reason == "flags_invalid"


def test_flags_garbage_file_is_invalid(tmp_path: Path) -> None:
    (tmp_path / "global_flags.json").write_text("garbage")
    assert read_flags(tmp_path).reason == "flags_invalid"


def test_flags_and_stop_file_round_trip(tmp_path: Path) -> None:
    flags = Flags(True, "SIGNAL_READ_ONLY", "feeder: max_restarts_exceeded", 12.5, "autoheal")
    write_flags(tmp_path, flags)
    assert read_flags(tmp_path).flags == flags
    stop = tmp_path / "STOP.TXT"
    write_stop_file(stop, "why", set_by="alice", now=0)
    assert stop_file_present(stop)
    assert stop.read_text().splitlines()[0] == "1970-01-01T00:00:00Z STOP set_by=alice reason=why"
    assert remove_stop_file(stop)
    assert not stop_file_present(stop)
    assert not remove_stop_file(stop)


@given(st.dictionaries(st.text(max_size=20), st.none() | st.booleans() | st.integers() | st.text()))
def test_parse_flags_never_raises(doc: dict) -> None:
    read = parse_flags(doc)
    assert (read.flags is None) == (read.reason is not None)
