"""`autoheal check-config` as an operator runs it: a real subprocess, exit codes, one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from autoheal.cli import main
from tests.config.test_load import BAD_CONFIGS, BUNDLED, REPO

#: The bad inputs issue 2 lists; each runs as a real subprocess (~0.3 s apiece).
#: The rest of BAD_CONFIGS goes through ``main([...])`` in-process, which is the same code.
SUBPROCESS_CASES = {
    "unknown_key",
    "wrong_type_int",
    "negative_duration",
    "empty_argv",
    "unknown_depends_on",
    "cycle",
    "invalid_toml",
}


def check_config(config: Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autoheal", "check-config", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd,
        check=False,
    )


def assert_one_clear_error(result: subprocess.CompletedProcess[str], file: Path, key: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"autoheal: config error: {file}: ")
    if key:
        assert f": {key}: " in lines[0]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("text", "key"),
    [(c[1], c[2]) for c in BAD_CONFIGS if c[0] in SUBPROCESS_CASES],
    ids=[c[0] for c in BAD_CONFIGS if c[0] in SUBPROCESS_CASES],
)
def test_check_config_exits_2_naming_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "autoheal.toml"
    path.write_text(text, encoding="utf-8")
    assert_one_clear_error(check_config(path), path, key)


@pytest.mark.parametrize(
    ("text", "key"), [(c[1], c[2]) for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS]
)
def test_check_config_main_exits_2_naming_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, key: str
) -> None:
    path = tmp_path / "autoheal.toml"
    path.write_text(text, encoding="utf-8")
    code = main(["check-config", "--config", str(path)])
    out, err = capsys.readouterr()
    result = subprocess.CompletedProcess(["main"], code, out, err)
    assert_one_clear_error(result, path, key)


@pytest.mark.slow
def test_check_config_missing_file_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "missing.toml"
    result = check_config(path)
    assert_one_clear_error(result, path, "")
    assert "file not found" in result.stderr


@pytest.mark.slow
def test_check_config_invalid_toml_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "autoheal.toml"
    path.write_text('environment = "paper"\n\n\nthis is not toml\n', encoding="utf-8")
    result = check_config(path)
    assert_one_clear_error(result, path, "")
    assert "(at line 4, column" in result.stderr


@pytest.mark.slow
def test_check_config_bundled_config_exits_0_with_summary(tmp_path: Path) -> None:
    result = check_config(BUNDLED, cwd=tmp_path)  # the cwd must not change the answer
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "config OK: 4 services (exchange, exchange_proxy, feeder, trader), "
        "1 dependency (exchange_rest), "
        f"8 probes, environment=paper, runtime_dir={REPO / 'shared_data'}\n"
    )
    assert "Traceback" not in result.stderr
