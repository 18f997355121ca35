"""``[policy] verify_min_uptime`` (issue 9, defect 11): default, explicit, and refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoheal.config import ConfigError, load_config
from autoheal.daemon.wiring import build_policy


def _load(tmp_path: Path, policy: str):
    path = tmp_path / "autoheal.toml"
    path.write_text(
        f'environment = "paper"\n[policy]\n{policy}\n[services.feeder]\nargv = ["x"]\n',
        encoding="utf-8",
    )
    return load_config(path)


def test_config_verify_min_uptime_defaults_to_2s_and_reaches_the_core(tmp_path: Path) -> None:
    cfg = _load(tmp_path, "")
    assert cfg.policy.verify_min_uptime == 2.0
    assert build_policy(cfg).components["feeder"].heal.verify_min_uptime == 2.0


def test_config_verify_min_uptime_explicit(tmp_path: Path) -> None:
    cfg = _load(tmp_path, 'verify_window = "3s"\nverify_min_uptime = "500ms"')
    assert build_policy(cfg).components["feeder"].heal.verify_min_uptime == 0.5


def test_config_verify_min_uptime_default_fits_a_short_window(tmp_path: Path) -> None:
    """A config written before the setting, with a 300 ms window, still loads."""
    cfg = _load(tmp_path, 'verify_window = "300ms"')
    assert cfg.policy.verify_min_uptime == 0.3
    assert build_policy(cfg).components["feeder"].heal.verify_min_uptime == 0.3


def test_config_verify_min_uptime_longer_than_the_window_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, 'verify_window = "1s"\nverify_min_uptime = "2s"')
    assert info.value.key == "policy.verify_min_uptime"
    assert "must not exceed policy.verify_window" in str(info.value)


def test_config_verify_min_uptime_negative_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, 'verify_min_uptime = "-1s"')
    assert info.value.key == "policy.verify_min_uptime"
