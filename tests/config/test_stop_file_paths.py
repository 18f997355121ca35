"""``check-config`` and ``run`` refuse a stop file that could never be written (issue 9, 1).

Each case is a real file-system condition: a missing folder, a plain file where the
folder should be, and a read-only bind of the folder where the machine allows one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autoheal.drills.stacks.simple import write_config
from tests.cli.test_check_config import assert_one_clear_error


def config_with_stop_file(tmp_path: Path, stop_file: Path) -> Path:
    config = write_config(tmp_path)
    text = config.read_text().replace(str(tmp_path / "STOP.TXT"), str(stop_file))
    config.write_text(text)
    return config


def autoheal(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autoheal", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.parametrize("command", ["check-config", "run"])
def test_a_missing_stop_file_folder_is_refused_naming_the_key(tmp_path: Path, command: str) -> None:
    config = config_with_stop_file(tmp_path, tmp_path / "nowhere" / "STOP.TXT")
    result = autoheal(command, "--config", str(config))
    assert_one_clear_error(result, config, "paths.stop_file")
    assert "does not exist" in result.stderr
    assert not (tmp_path / "rt").exists()  # run refused before touching anything


@pytest.mark.slow
def test_a_plain_file_where_the_folder_should_be_is_refused(tmp_path: Path) -> None:
    (tmp_path / "halt").write_text("not a folder")
    config = config_with_stop_file(tmp_path, tmp_path / "halt" / "STOP.TXT")
    result = autoheal("check-config", "--config", str(config))
    assert_one_clear_error(result, config, "paths.stop_file")
    assert "is not a folder" in result.stderr


@pytest.mark.slow
def test_a_read_only_stop_file_folder_is_refused(tmp_path: Path) -> None:
    """EROFS, as under systemd when ReadWritePaths misses the stop file's folder."""
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare (util-linux) for a private read-only bind mount")
    halt = tmp_path / "halt"
    halt.mkdir()
    config = config_with_stop_file(tmp_path, halt / "STOP.TXT")
    script = (
        f"mount --bind {halt} {halt} && mount -o remount,bind,ro {halt} && "
        f"exec {sys.executable} -m autoheal check-config --config {config}"
    )
    probe = subprocess.run(
        [unshare, "--mount", "--propagation", "private", "sh", "-c", "true"],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"unshare --mount is not allowed here: {probe.stderr.decode().strip()}")
    result = subprocess.run(
        [unshare, "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert_one_clear_error(result, config, "paths.stop_file")
    assert "not writable" in result.stderr


def test_a_writable_folder_passes(tmp_path: Path) -> None:
    from autoheal.config import load_config
    from autoheal.config._paths import stop_file_problem

    assert stop_file_problem(load_config(write_config(tmp_path))) is None
    missing = config_with_stop_file(tmp_path, tmp_path / "a" / "STOP.TXT")
    assert "does not exist" in (stop_file_problem(load_config(missing)) or "")
