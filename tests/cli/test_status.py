"""``autoheal status`` on real files in tmp_path, in the documented format (docs/files.md)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from autoheal.cli.status import status_command
from autoheal.core.liveness import stale_after_s
from autoheal.store.atomic import write_bytes_atomic, write_json_atomic
from autoheal.store.flags import Flags, write_flags, write_stop_file

NOW = 1_795_000_000.0


def health_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema": 2,
        "ts": NOW - 0.4,
        "dor": True,
        "stage": "OBSERVE",
        "failsafe": False,
        "degraded": False,
        "mode": "NORMAL",
        "failing_components": [],
        "daemon": {"pid": 4242, "started_at": NOW - 1000, "loop_lag_s": 0.0004},
        "components": {
            "feeder": {
                "ok": True, "stage": "OBSERVE", "reason": "", "pid": 5151, "restarts": 2,
                "attempts": 0, "max_restarts": 3, "held": False, "required": True,
                "probes": {
                    "process": {"ok": True, "reason": "", "value": None, "threshold": None},
                    "heartbeat": {"ok": True, "reason": "", "value": 0.41, "threshold": 15.0},
                },
            },
            "trader": {
                "ok": True, "stage": "OBSERVE", "reason": "", "pid": 6161, "restarts": 0,
                "probes": {"process": {"ok": True, "reason": "", "value": None}},
            },
        },
        "dependencies": {
            "exchange_rest": {
                "ok": True, "reason": "",
                "probes": {"http": {"ok": True, "reason": "", "value": 0.003, "threshold": 1.5}},
            }
        },
    }  # fmt: skip
    doc.update(overrides)
    return doc


@pytest.fixture
def runtime(tmp_path: Path) -> Path:
    rt = tmp_path / "shared_data"
    rt.mkdir()
    write_json_atomic(rt / "health_v2.json", health_doc(), durable=False)
    write_daemon_heartbeat(rt, age_s=0.3)
    return rt


def write_daemon_heartbeat(rt: Path, *, age_s: float) -> None:
    doc = {"component": "auto_heal", "pid": 4242, "ts": NOW - age_s, "seq": 17}
    write_json_atomic(rt / "auto_heal.heartbeat.json", doc, durable=False)


def run_status(rt: Path, *, as_json: bool = False, **kw: Any) -> tuple[int, str]:
    out = io.StringIO()
    code = status_command(
        rt, rt.parent / "STOP.TXT", as_json=as_json, out=out, now=lambda: NOW, **kw
    )
    return code, out.getvalue()


def test_status_healthy_exits_0_with_headline_and_rows(runtime: Path) -> None:
    code, text = run_status(runtime)
    lines = text.splitlines()
    assert code == 0
    assert lines[0] == "DOR true  mode=NORMAL  failsafe=off  degraded=no"
    assert lines[1] == "daemon pid 4242 heartbeat 0.3s ago"
    assert "STOP.TXT absent" in lines
    feeder = next(line for line in lines if line.startswith("feeder"))
    assert feeder.split() == ["feeder", "OBSERVE", "ok", "-", "5151", "2", "410ms"]
    dep = next(line for line in lines if line.startswith("exchange_rest"))
    assert "dependency" in dep and "http=3ms" in dep
    # Columns are aligned: every row's STAGE column starts at the same offset.
    header = next(line for line in lines if line.startswith("NAME"))
    assert feeder.index("OBSERVE") == header.index("STAGE") == dep.index("dependency")


def test_status_dor_false_exits_1_and_shows_failing_component(runtime: Path) -> None:
    doc = health_doc(dor=False, stage="RESTART", failing_components=["feeder"])
    doc["components"]["feeder"].update(ok=False, stage="RESTART", reason="process_exited")
    write_json_atomic(runtime / "health_v2.json", doc, durable=False)
    code, text = run_status(runtime)
    assert code == 1
    assert text.startswith("DOR false ")
    feeder = next(line for line in text.splitlines() if line.startswith("feeder"))
    assert feeder.split()[:4] == ["feeder", "RESTART", "FAIL", "process_exited"]


def test_status_stale_daemon_heartbeat_exits_1_and_says_stale(runtime: Path) -> None:
    write_daemon_heartbeat(runtime, age_s=12.0)
    code, text = run_status(runtime)
    assert code == 1
    assert "daemon heartbeat STALE (12.0s old): the daemon may be down" in text


def test_status_stale_limit_follows_heartbeat_interval(runtime: Path) -> None:
    write_daemon_heartbeat(runtime, age_s=8.0)
    assert stale_after_s(0.2) == 5.0 and stale_after_s(2.0) == 10.0
    assert run_status(runtime, heartbeat_interval_s=2.0)[0] == 0
    assert run_status(runtime, heartbeat_interval_s=1.0)[0] == 1


def test_status_missing_daemon_heartbeat_says_so(runtime: Path) -> None:
    (runtime / "auto_heal.heartbeat.json").unlink()
    code, text = run_status(runtime)
    assert code == 1
    assert "daemon heartbeat MISSING: is autoheal run running?" in text


def test_status_old_health_doc_of_the_beating_daemon_is_current(runtime: Path) -> None:
    # The daemon rewrites health_v2.json when what it says changes: an old one is current
    # while the daemon that wrote it beats.
    write_json_atomic(runtime / "health_v2.json", health_doc(ts=NOW - 600), durable=False)
    code, text = run_status(runtime)
    assert code == 0
    assert "STALE" not in text


def test_status_health_doc_of_another_daemon_is_stale_exits_1(runtime: Path) -> None:
    doc = health_doc(ts=NOW - 60)
    doc["daemon"] = {**doc["daemon"], "pid": 4141}  # a daemon before the one beating now
    write_json_atomic(runtime / "health_v2.json", doc, durable=False)
    code, text = run_status(runtime)
    assert code == 1
    assert "health_v2.json STALE (written by another daemon than pid 4242, 60.0s ago)" in text


def test_status_health_doc_of_a_daemon_not_beating_is_stale(runtime: Path) -> None:
    write_daemon_heartbeat(runtime, age_s=30.0)
    write_json_atomic(runtime / "health_v2.json", health_doc(ts=NOW - 60), durable=False)
    code, text = run_status(runtime)
    assert code == 1
    assert "health_v2.json STALE (written 60.0s ago; daemon not beating)" in text


def test_status_missing_health_file_exits_1_plainly(runtime: Path) -> None:
    (runtime / "health_v2.json").unlink()
    code, text = run_status(runtime)
    assert code == 1
    assert text.startswith("DOR false ")
    assert "health_v2.json MISSING" in text
    assert "Traceback" not in text


@pytest.mark.parametrize(
    "content",
    [b'{"dor": tr', b"\x00\xff\xfe binary", b"[1, 2, 3]", b""],
    ids=["truncated", "binary", "not_object", "empty"],
)
def test_status_corrupt_health_file_exits_1_without_traceback(
    runtime: Path, content: bytes
) -> None:
    write_bytes_atomic(runtime / "health_v2.json", content, durable=False)
    code, text = run_status(runtime)
    assert code == 1
    assert "health_v2.json UNREADABLE" in text
    assert "Traceback" not in text


def test_status_wrongly_typed_fields_do_not_crash(runtime: Path) -> None:
    doc = health_doc(ts="yesterday", components={"feeder": "oops", "x": {"probes": [1]}})
    doc["dependencies"] = ["not", "a", "dict"]
    write_json_atomic(runtime / "health_v2.json", doc, durable=False)
    code, text = run_status(runtime)
    assert code == 1
    assert "has no numeric ts" in text
    assert any(line.startswith("feeder") for line in text.splitlines())


def test_status_failsafe_and_stop_file_are_shown(runtime: Path) -> None:
    flags = Flags(True, "SIGNAL_READ_ONLY", "max_restarts_exceeded", NOW - 5, "autoheal")
    write_flags(runtime, flags)
    write_stop_file(runtime.parent / "STOP.TXT", "max_restarts_exceeded", now=NOW - 5)
    write_json_atomic(
        runtime / "health_v2.json", health_doc(dor=False, failsafe=True), durable=False
    )
    code, text = run_status(runtime)
    lines = text.splitlines()
    assert code == 1
    assert lines[0] == (
        "DOR false  mode=SIGNAL_READ_ONLY  "
        "failsafe=ON (max_restarts_exceeded, set by autoheal)  degraded=no"
    )
    stop_line = next(line for line in lines if line.startswith("STOP.TXT present"))
    assert "STOP set_by=autoheal reason=max_restarts_exceeded" in stop_line


def test_status_invalid_flags_file_is_reported_not_raised(runtime: Path) -> None:
    write_bytes_atomic(runtime / "global_flags.json", b"garbage{", durable=False)
    code, text = run_status(runtime)
    assert code == 0  # DOR and freshness decide the exit code; the line says what is wrong
    assert text.splitlines()[0].startswith("DOR true  mode=UNKNOWN  failsafe=UNKNOWN (global_flags")


def test_status_escape_sequences_from_files_are_neutralised(runtime: Path) -> None:
    doc = health_doc()
    doc["components"]["feeder"]["reason"] = "bad\x1b[2Jreason"
    write_json_atomic(runtime / "health_v2.json", doc, durable=False)
    _, text = run_status(runtime)
    # shown as the escape it is, the same in every command (autoheal.terminal)
    assert "\x1b" not in text and "bad\\x1b[2Jreason" in text


def test_status_json_parses_and_carries_extras(runtime: Path) -> None:
    write_daemon_heartbeat(runtime, age_s=1.5)
    code, text = run_status(runtime, as_json=True)
    data = orjson.loads(text)
    assert code == 0
    assert data["dor"] is True and data["components"]["feeder"]["restarts"] == 2
    assert data["daemon_heartbeat_age_s"] == pytest.approx(1.5)
    assert data["daemon_stale"] is False
    assert data["stop_file_present"] is False
    assert data["flags"]["mode"] == "NORMAL"
    assert data["exit_code"] == 0


def test_status_json_with_missing_files_still_one_object(tmp_path: Path) -> None:
    code, text = run_status(tmp_path, as_json=True)
    data = orjson.loads(text)
    assert code == 1
    assert data["health_error"] == "missing"
    assert data["daemon_heartbeat_age_s"] is None and data["daemon_stale"] is True


def test_status_imports_no_heavy_modules() -> None:
    code = (
        "import sys, autoheal.cli.status\n"
        "heavy = {'anyio', 'httpx', 'psutil', 'prometheus_client', 'autoheal.core'}\n"
        "print(sorted(heavy & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=10
    )
    assert result.stdout.strip() == "[]"


def test_status_cli_reads_a_runtime_dir_while_the_config_is_broken(tmp_path: Path) -> None:
    import time as _time

    rt = tmp_path / "shared_data"
    rt.mkdir()
    now = _time.time()
    write_json_atomic(rt / "health_v2.json", health_doc(ts=now))
    write_json_atomic(
        rt / "auto_heal.heartbeat.json",
        {"component": "auto_heal", "pid": 4242, "ts": now, "seq": 1},
    )
    broken = tmp_path / "autoheal.toml"
    broken.write_text("environment = \n")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "autoheal", "status", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    refused = cli("--config", str(broken))
    assert refused.returncode == 2
    assert "--runtime-dir" in refused.stderr
    assert "Traceback" not in refused.stderr
    done = cli("--runtime-dir", str(rt))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("DOR true")
