"""``[bot_api]`` in the config: the recipe's table read back, and one precise error per
mistake, no credential echoed."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoheal.config import ConfigError, load_config
from autoheal.core.bot_api import BotCall, InEffect

CALLS = """
[bot_api.calls.stopentry]
post = "/stopentry"
undo = "/reload_config"
[bot_api.calls.stop]
post = "/stop"
undo = "/start"
"""
MODES = 'modes = { DEGRADED = ["stopentry"], REDUCE_ONLY = ["stopentry"], FAILSAFE = ["stop"] }'


def write(tmp_path: Path, head: str, calls: str = CALLS) -> Path:
    path = tmp_path / "autoheal.toml"
    path.write_text(f'environment = "paper"\n[bot_api]\n{head}\n{calls}')
    return path


def test_the_recipes_table_reads_back(tmp_path: Path) -> None:
    head = 'url = "http://127.0.0.1:8080/api/v1/"\nauth = "basic"\nauth_env = "FT_API"\n' + MODES
    bot = load_config(write(tmp_path, head)).bot_api
    assert bot is not None
    assert (bot.url, bot.auth, bot.auth_env, bot.timeout, bot.retry_max) == (
        "http://127.0.0.1:8080/api/v1",
        "basic",
        "FT_API",
        2.0,
        30.0,
    )
    assert bot.table.calls["stop"] == BotCall("stop", "/stop", "/start")
    assert bot.table.modes == {
        "DEGRADED": ("stopentry",),
        "REDUCE_ONLY": ("stopentry",),
        "FAILSAFE": ("stop",),
    }


LOOPBACK = 'url = "http://127.0.0.1:8080/api/v1"\n'


@pytest.mark.parametrize(
    ("head", "key", "words"),
    [
        (LOOPBACK + 'auth = "basic"\n' + MODES, "bot_api.auth_env", "required"),
        (LOOPBACK + 'auth = "digest"\n' + MODES, "bot_api.auth", "expected one of"),
        (LOOPBACK + 'auth_env = "X"\n' + MODES, "bot_api.auth_env", "basic"),
        (
            LOOPBACK + 'auth = "bearer"\nauth_env = "hunter2:pw"\n' + MODES,
            "bot_api.auth_env",
            "name of an environment variable",
        ),
        (
            'url = "http://bot.example.com:8080/api/v1"\nauth = "basic"\nauth_env = "X"\n' + MODES,
            "bot_api.url",
            "TLS",
        ),
        ('url = "http://u:hunter2@127.0.0.1/api/v1"\n' + MODES, "bot_api.url", "credentials"),
        ('url = "ftp://127.0.0.1/"\n' + MODES, "bot_api.url", "http://"),
        (LOOPBACK + 'modes = { NORMAL = ["stop"] }', "bot_api.modes.NORMAL", "undoes"),
        (LOOPBACK + 'modes = { FAILSAFE = ["halt"] }', "bot_api.modes.FAILSAFE", "'halt'"),
        (LOOPBACK + 'modes = { FAILSAFE = ["stop", "stop"] }', "bot_api.modes.FAILSAFE", "twice"),
        (LOOPBACK, "bot_api.modes", "never call"),
        (LOOPBACK + MODES + '\ntimeout = "0s"', "bot_api.timeout", "greater than zero"),
    ],
)
def test_bot_api_errors_name_the_key(tmp_path: Path, head: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, head))
    assert info.value.key == key
    assert words in info.value.problem
    assert "hunter2" not in str(info.value)


def test_a_path_must_be_under_the_url(tmp_path: Path) -> None:
    calls = '[bot_api.calls.stop]\npost = "stop"\n'
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, LOOPBACK + 'modes = { FAILSAFE = ["stop"] }', calls))
    assert info.value.key == "bot_api.calls.stop.post"


def test_the_recipe_reads_back_with_its_in_effect_checks() -> None:
    recipe = Path(__file__).parents[2] / "config" / "examples" / "freqtrade.toml"
    bot = load_config(recipe).bot_api
    assert bot is not None and bot.service == "freqtrade"
    stopentry, stop = bot.table.calls["stopentry"], bot.table.calls["stop"]
    assert (stopentry.post, stopentry.undo, stop.post, stop.undo) == (
        "/stopentry",
        "/start",
        "/stop",
        "/stopentry",
    )
    assert stopentry.in_effect == InEffect("/show_config", "/state", ("paused", "stopped"))
    assert bot.table.modes["FAILSAFE"] == ("stopentry", "stop")


@pytest.mark.parametrize(
    ("check", "key"),
    [
        ('{ get = "show_config", pointer = "/state", one_of = ["x"] }', "in_effect.get"),
        ('{ get = "/show_config", pointer = "state", one_of = ["x"] }', "in_effect.pointer"),
        ('{ get = "/show_config", pointer = "/state", one_of = [] }', "in_effect.one_of"),
        ('{ get = "/show_config", pointer = "/state", one_of = [nan] }', "in_effect.one_of"),
    ],
)
def test_in_effect_errors_name_the_key(tmp_path: Path, check: str, key: str) -> None:
    calls = f'[bot_api.calls.stop]\npost = "/stop"\nin_effect = {check}\n'
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, LOOPBACK + 'modes = { FAILSAFE = ["stop"] }', calls))
    assert info.value.key == f"bot_api.calls.stop.{key}"
