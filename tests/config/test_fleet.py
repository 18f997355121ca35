"""``[fleet]`` in the config: defaults, and one precise error per mistake, no secret echoed."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from autoheal.config import ConfigError, load_config


def write(tmp_path: Path, fleet: str) -> Path:
    path = tmp_path / "autoheal.toml"
    path.write_text(f'environment = "paper"\n[fleet]\n{fleet}\n')
    return path


def test_fleet_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, 'redis_url = "redis://127.0.0.1:6379/0"\nname = "desk"'))
    fleet = cfg.fleet
    assert fleet is not None
    assert (fleet.host, fleet.stale_after, fleet.on_lost, fleet.poll_interval) == (
        socket.gethostname(),
        5.0,
        "degrade",
        0.5,
    )


def test_no_fleet_table_is_none(tmp_path: Path) -> None:
    path = tmp_path / "autoheal.toml"
    path.write_text('environment = "paper"\n')
    assert load_config(path).fleet is None


def test_fleet_secret_placeholder_kept_for_connect_time(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            'redis_url = "rediss://:{secret}@redis.example.com:6380/0"\n'
            'secret_env = "PW"\nname = "desk"\nhost = "bot-1"\non_lost = "halt"',
        )
    )
    assert cfg.fleet is not None and "{secret}" in cfg.fleet.redis_url


@pytest.mark.parametrize(
    "body,key,words",
    [
        ('redis_url = "redis://:hunter2@127.0.0.1/0"\nname = "d"', "fleet.redis_url", "password"),
        (
            'redis_url = "redis://:{secret}@redis.example.com/0"\nsecret_env = "PW"\nname = "d"',
            "fleet.redis_url",
            "TLS",
        ),
        ('redis_url = "redis://:{secret}@127.0.0.1/0"\nname = "d"', "fleet.secret_env", "required"),
        ('redis_url = "http://127.0.0.1/0"\nname = "d"', "fleet.redis_url", "redis://"),
        ('redis_url = "redis://127.0.0.1/0"\nname = "d e"', "fleet.name", "letters"),
        ('redis_url = "redis://127.0.0.1/0"\nname = "d"\non_lost = "ignore"', "fleet.on_lost", ""),
        (
            'redis_url = "redis://127.0.0.1/0"\nname = "d"\nstale_after = "1s"\n'
            'poll_interval = "1s"',
            "fleet.poll_interval",
            "shorter",
        ),
        ('redis_url = "redis://127.0.0.1/0"\nname = "d"\nstale_afer = 1', "fleet.stale_afer", ""),
        ('name = "d"', "fleet.redis_url", "required"),
        ('redis_url = "redis://127.0.0.1:99999/0"\nname = "d"', "fleet.redis_url", "65535"),
        (
            'redis_url = "redis+sentinel://10.0.0.1:26379,10.0.0.2:26x79/mymaster"\nname = "d"',
            "fleet.redis_url",
            "sentinel '10.0.0.2:26x79'",
        ),
        (
            'redis_url = "redis+sentinel://10.0.0.1:26379,:26379/mymaster"\nname = "d"',
            "fleet.redis_url",
            "sentinel ':26379'",
        ),
    ],
)
def test_fleet_errors_name_the_key(tmp_path: Path, body: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, body))
    assert info.value.key == key
    assert words in info.value.problem
    assert "hunter2" not in str(info.value)


def test_a_sentinel_deployment_of_three_is_a_valid_url(tmp_path: Path) -> None:
    """Every real Sentinel deployment names three or more; check-config refused them all."""
    url = "redis+sentinel://10.0.0.1:26379,10.0.0.2:26379,[::1]:26379/mymaster/0"
    cfg = load_config(write(tmp_path, f'redis_url = "{url}"\nname = "desk"'))
    assert cfg.fleet is not None and cfg.fleet.redis_url == url
    from autoheal.daemon.fleet import _sentinel_parts

    sentinels, service, db, _, tls = _sentinel_parts(url)
    assert sentinels == [("10.0.0.1", 26379), ("10.0.0.2", 26379), ("::1", 26379)]
    assert (service, db, tls) == ("mymaster", 0, False)
