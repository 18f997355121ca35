"""``paths.stop_file`` must be a file of its own (issue 18 A9).

``STOP.TXT`` is written on every failsafe and deleted by every clear. A stop file
that is the journal (or its ``-wal``/``-shm``), the flags, the state, a pidfile, a
heartbeat, the lock, the config itself, or that lies in a folder the daemon owns,
passed ``check-config``: the daemon then started halted ("STOP.TXT present"), and
``autoheal failsafe clear`` deleted the journal. Now every command that loads the
config refuses it (exit 2, one line naming the file, the key and the problem), and
``check-config``/``run`` also refuse a folder there and a clash through a symlink.
The list of runtime files comes from ``autoheal.store.layout``, its one home.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from autoheal.cli import main
from autoheal.config import ConfigError, load_config
from autoheal.store import layout as runtime_files
from tests.cli.test_check_config import assert_one_clear_error


def write(tmp_path: Path, stop_file: str, extra: str = "") -> Path:
    path = tmp_path / "autoheal.toml"
    path.write_text(
        f"""environment = "paper"
[paths]
runtime_dir = "{tmp_path}/rt"
stop_file = "{stop_file}"
[daemon]
log_file = "{tmp_path}/daemon.log"
[services.feeder]
argv = ["sleep", "100"]
autostart = false
lock_files = ["feeder.lock"]
[[services.feeder.probes]]
kind = "heartbeat"
path = "beats/feeder.json"
max_age = "5s"
[services.trader]
argv = ["sleep", "100"]
autostart = false
pidfile = "pids/trader.pid"
{extra}"""
    )
    return path


#: The stop file as the operator might have written it, and words of what it is.
CLASHES = {
    "journal": ("{rt}/journal.sqlite3", "the journal"),
    "journal_wal": ("{rt}/journal.sqlite3-wal", "the journal"),
    "journal_shm": ("{rt}/journal.sqlite3-shm", "the journal"),
    "flags": ("{rt}/global_flags.json", "flags"),
    "state": ("{rt}/autoheal_state.json", "state file"),
    "health": ("{rt}/health_v2.json", "health"),
    "notifications": ("{rt}/notifications.log", "notifications"),
    "daemon_heartbeat": ("{rt}/auto_heal.heartbeat.json", "daemon's heartbeat"),
    "lock": ("{rt}/autoheal.lock", "lock"),
    "default_pidfile": ("{rt}/feeder.pid", "feeder.pidfile"),
    "heartbeat": ("{rt}/trader.heartbeat.json", "trader's heartbeat"),
    "configured_pidfile": ("{rt}/pids/trader.pid", "services.trader.pidfile"),
    "lock_file": ("{rt}/feeder.lock", "services.feeder.lock_files[0]"),
    "probe_file": ("{rt}/beats/feeder.json", "heartbeat probe"),
    "order_ledger": ("{rt}/runtime/order_sigs.json", "guard's runtime folder"),
    "breakers": ("{rt}/circuit_breaker.json", "circuit breakers"),
    "alerts_dir": ("{rt}/alerts/STOP.TXT", "alerts folder"),
    "logs_dir": ("{rt}/logs/STOP.TXT", "logs folder"),
    "runtime_dir_itself": ("{rt}", "paths.runtime_dir"),
    "parent_of_runtime_dir": ("{tmp}", "paths.runtime_dir"),
    "daemon_log": ("{tmp}/daemon.log", "daemon.log_file"),
    "config_itself": ("{tmp}/autoheal.toml", "the config file itself"),
    "spelled_with_dotdot": ("{rt}/logs/../journal.sqlite3", "the journal"),
}


@pytest.mark.parametrize("case", list(CLASHES), ids=list(CLASHES))
def test_a_stop_file_that_is_a_runtime_file_is_a_config_error(tmp_path: Path, case: str) -> None:
    template, words = CLASHES[case]
    stop = template.format(rt=tmp_path / "rt", tmp=tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, stop))
    assert info.value.key == "paths.stop_file"
    assert words in info.value.problem


def test_every_runtime_file_and_folder_is_refused(tmp_path: Path) -> None:
    """Whatever runtime_files lists (it grows), the stop file may not be it."""
    rt = tmp_path / "rt"
    paths = [*runtime_files.owned_files(rt, ["feeder", "trader"])]
    paths += [folder / "STOP.TXT" for folder in runtime_files.owned_folders(rt)]
    accepted = []
    for path in paths:
        try:
            load_config(write(tmp_path, str(path)))
        except ConfigError as err:
            assert err.key == "paths.stop_file"
        else:
            accepted.append(path)
    assert accepted == []


@pytest.mark.parametrize("where", ["{tmp}/STOP.TXT", "{rt}/STOP.TXT", "{rt}/halt/STOP.TXT"])
def test_a_stop_file_of_its_own_is_fine(tmp_path: Path, where: str) -> None:
    stop = where.format(rt=tmp_path / "rt", tmp=tmp_path)
    assert load_config(write(tmp_path, stop)).paths.stop_file == Path(stop)


def test_failsafe_clear_never_deletes_the_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write(tmp_path, f"{tmp_path}/rt/journal.sqlite3")
    journal = tmp_path / "rt" / "journal.sqlite3"
    journal.parent.mkdir()
    journal.write_bytes(b"SQLite format 3\x00 the audit trail")
    assert main(["failsafe", "clear", "--reason", "x", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"autoheal: config error: {config}: paths.stop_file: ")
    assert journal.read_bytes() == b"SQLite format 3\x00 the audit trail"


def test_check_config_refuses_a_folder_and_a_clash_through_a_symlink(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "rt" / "halt").mkdir(parents=True)
    config = write(tmp_path, f"{tmp_path}/rt/halt")
    assert main(["check-config", "--config", str(config)]) == 2
    assert "is a folder" in capsys.readouterr().err

    (tmp_path / "link").symlink_to(tmp_path / "rt")  # the same folder, spelled otherwise
    config = write(tmp_path, f"{tmp_path}/link/global_flags.json")
    load_config(config)  # as written, it stands alone...
    assert main(["check-config", "--config", str(config)]) == 2  # ...not on this machine
    err = capsys.readouterr().err
    assert "paths.stop_file" in err and "flags" in err


@pytest.mark.slow
@pytest.mark.parametrize("command", ["check-config", "run"])
def test_check_config_and_run_refuse_with_one_clear_line(tmp_path: Path, command: str) -> None:
    config = write(tmp_path, f"{tmp_path}/rt/journal.sqlite3")
    (tmp_path / "rt").mkdir()  # its folder exists and is writable: only the clash is wrong
    result = subprocess.run(
        [sys.executable, "-m", "autoheal", command, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert_one_clear_error(result, config, "paths.stop_file")
    assert "is the journal" in result.stderr
    assert list((tmp_path / "rt").iterdir()) == []  # run refused before touching anything
