"""Free text on the command line that is not UTF-8 is a usage error, never a traceback
(issue 18 A9).

``autoheal failsafe enter --reason $'\\xff\\xfe'`` reaches Python as lone surrogates,
which the command checksum (orjson), the journal (SQLite) and a terminal all refuse:
it printed a traceback. Now every free-text argument (reasons, idempotency keys,
names, durations) is checked where argv is parsed: exit 2, one line naming the
argument, and nothing queued or journaled. Paths are not text: any bytes a Linux
path can hold still work.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from autoheal.cli import main, text_problem

BAD = os.fsdecode(b"\xff\xfe")  # what Python makes of those argv bytes: '\udcff\udcfe'

#: Every command with a free-text argument, the bad text in each place it can go.
CASES = {
    "failsafe_enter_reason": ["failsafe", "enter", "--reason", BAD],
    "failsafe_clear_reason": ["failsafe", "clear", "--reason", BAD],
    "failsafe_reduce_only_reason": ["failsafe", "reduce-only", "--reason", BAD],
    "failsafe_idempotency_key": ["failsafe", "enter", "--reason", "ok", "--idempotency-key", BAD],
    "restart_reason": ["restart", "svc", "--reason", BAD],
    "restart_idempotency_key": ["restart", "svc", "--idempotency-key", BAD],
    "stop_name": ["stop", BAD],
    "start_reason": ["start", "svc", "--reason", BAD],
    "breaker_reset_reason": ["breaker", "reset", "BTC", "--reason", BAD],
    "breaker_reset_key": ["breaker", "reset", BAD, "--reason", "ok"],
    "breaker_idempotency_key": ["breaker", "reset", "BTC", "--reason", "ok",
                                "--idempotency-key", BAD],
    "fleet_halt_reason": ["fleet", "halt", "--reason", BAD],
    "fleet_run_reason": ["fleet", "run", "--reason", BAD],
    "chaos_target": ["chaos", "kill", BAD],
    "chaos_for": ["chaos", "stall", "svc", "--for", BAD],
    "events_component": ["events", "--component", BAD],
    "events_since": ["events", "--since", BAD],
    "metrics_since": ["metrics", "--since", BAD],
    "drill_names": ["drill", "run", "kill_feeder", BAD],
    "drill_wait": ["drill", "run", "--wait", BAD, "kill_feeder"],
}  # fmt: skip


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "autoheal.toml"
    path.write_text(
        f'environment = "paper"\n[paths]\nruntime_dir = "{tmp_path}/rt"\n'
        f'stop_file = "{tmp_path}/STOP.TXT"\n'
        '[services.svc]\nargv = ["sleep", "100"]\nautostart = false\n'
        '[fleet]\nredis_url = "redis://127.0.0.1:1/0"\nname = "desk"\nhost = "h"\n'
    )
    return path


@pytest.mark.parametrize("argv", list(CASES.values()), ids=list(CASES))
def test_free_text_that_is_not_utf8_is_refused_with_exit_2(
    config: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--config", str(config)])
    assert exit_info.value.code == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.count("\n") == 1
    assert out.err.startswith("autoheal: usage error: argument ")
    assert "not valid UTF-8 text (byte 0xff at position 0)" in out.err
    assert not (config.parent / "rt").exists()  # nothing queued, journaled or created


@pytest.mark.slow
def test_bytes_argv_through_a_real_process_is_one_line_and_exit_2(config: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "autoheal", "failsafe", "enter", "--reason", b"\xff\xfe",
         "--config", str(config)],
        capture_output=True,
        timeout=30,
        check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert b"Traceback" not in result.stderr
    assert result.stderr == (
        b"autoheal: usage error: argument --reason: not valid UTF-8 text "
        b"(byte 0xff at position 0)\n"
    )
    assert not (config.parent / "rt").exists()


def test_a_path_may_hold_any_bytes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / os.fsdecode(b"caf\xe9")  # a Latin-1 folder name: not UTF-8
    folder.mkdir()
    config = folder / "autoheal.toml"
    config.write_text(f'environment = "paper"\n[paths]\nruntime_dir = "{tmp_path}/rt"\n')
    assert main(["check-config", "--config", str(config)]) == 0
    assert "config OK" in capsys.readouterr().out


def test_text_problem_names_the_byte_and_accepts_any_real_text() -> None:
    assert text_problem("ok, déjà vu ✓") is None
    assert text_problem("ab" + os.fsdecode(b"\x80")) == (
        "not valid UTF-8 text (byte 0x80 at position 2)"
    )
    assert text_problem("\ud800") == "not valid UTF-8 text (U+D800 at position 0)"
