"""Services never inherit a secret the daemon reads (issue 9, defect 9; issue 18 A8).

A real child, started from the real config through the daemon's own wiring, writes
its environment to a file. Every kind is covered (webhooks of each format, the
Telegram chat id, Alertmanager, the fleet's Redis password, the status page's token),
and a walk over the raw schema fails when a new secret-naming key is not in the rule
(``autoheal.config.secret_envs``). The daemon itself, its logs and files: see
``tests/e2e/test_secrets.py``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import msgspec
import pytest

from autoheal.config import _schema, load_config, secret_envs
from autoheal.daemon import wiring
from autoheal.daemon.reload import ReloadPlan, plan_reload
from autoheal.procs.spawn import spawn

DUMP_ENV = "import json, os, sys; open(sys.argv[1], 'w').write(json.dumps(dict(os.environ)))"


def _config(tmp_path: Path, service_env: str = "") -> Path:
    argv = json.dumps([sys.executable, "-c", DUMP_ENV, str(tmp_path / "env.json")])
    text = (
        'environment = "paper"\n[paths]\nruntime_dir = "rt"\n'
        f"[services.dumper]\nargv = {argv}\n{service_env}"
        '[[webhooks]]\nname = "ops"\nurl = "https://hooks.example.com/x"\n'
        'secret_env = "HOOK_TOKEN"\n'
        '[[webhooks]]\nname = "chat"\nurl = "https://chat.example.com/bot{{secret}}/send"\n'
        'format = "telegram"\nsecret_env = "CHAT_TOKEN"\n'
    )
    path = tmp_path / "autoheal.toml"
    path.write_text(text)
    return path


def _child_env(tmp_path: Path, cfg_path: Path) -> dict[str, str]:
    cfg = load_config(cfg_path)
    popen, _identity = spawn(wiring.service_spec(cfg, cfg.services["dumper"]))
    assert popen.wait(timeout=20) == 0
    env: dict[str, str] = json.loads((tmp_path / "env.json").read_text())
    return env


def test_services_do_not_inherit_webhook_secret_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "hook-secret")
    monkeypatch.setenv("CHAT_TOKEN", "chat-secret")
    monkeypatch.setenv("UNRELATED_SETTING", "kept")
    env = _child_env(tmp_path, _config(tmp_path))
    assert "HOOK_TOKEN" not in env
    assert "CHAT_TOKEN" not in env
    assert "hook-secret" not in json.dumps(env) and "chat-secret" not in json.dumps(env)
    assert env["UNRELATED_SETTING"] == "kept"  # everything else is still inherited


def test_a_secret_name_set_in_the_services_own_env_table_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Written into the service's own env table, it is the operator's explicit choice.
    monkeypatch.setenv("HOOK_TOKEN", "hook-secret")
    env = _child_env(tmp_path, _config(tmp_path, 'env = { HOOK_TOKEN = "for-the-bot" }\n'))
    assert env["HOOK_TOKEN"] == "for-the-bot"


# ---------------------------------------------------------------------- every kind (issue 18 A8)

#: Each config key that names a secret's variable, and TOML that sets it to ``VAR``.
#: A new such key in the schema fails ``test_every_secret_env_key_of_the_schema_is_covered``
#: until it is added to ``autoheal.config._secrets.secret_envs`` and here.
BOT_API = (
    '[bot_api]\nurl = "http://127.0.0.1:8080/api/v1"\nauth = "basic"\nauth_env = "VAR"\n'
    'modes = { FAILSAFE = ["stop"] }\n[bot_api.calls.stop]\npost = "/stop"\n'
)
SECRET_KEYS = {
    ("RawWebhook", "secret_env"): (
        '[[webhooks]]\nname = "ops"\nurl = "https://hooks.example.com/x"\nsecret_env = "VAR"\n'
    ),
    ("RawFleet", "secret_env"): (
        '[fleet]\nredis_url = "redis://:{secret}@127.0.0.1:6379/0"\nname = "desk"\n'
        'host = "h"\nsecret_env = "VAR"\n'
    ),
    ("RawDaemon", "status_token_env"): '[daemon]\nstatus_token_env = "VAR"\n',
    # ``auth`` names the kind of credentials; ``auth_env`` the variable that holds them.
    ("RawBotApi", "auth"): BOT_API,
    ("RawBotApi", "auth_env"): BOT_API,
    # issue 22: an http_json probe's credential; ``auth`` (basic or bearer) comes with it.
    ("RawProbe", "auth_env"): (
        '[[services.dumper.probes]]\nkind = "http_json"\nurl = "http://127.0.0.1:1/health"\n'
        'pointer = "/last_process_ts"\nmax_age = "1m"\nauth = "basic"\nauth_env = "VAR"\n'
    ),
}
SECRET_KEYS[("RawProbe", "auth")] = SECRET_KEYS[("RawProbe", "auth_env")]

#: Every kind of secret, as the config names it: (TOML, the variables it makes secret).
KINDS = {
    "webhook_generic": (SECRET_KEYS[("RawWebhook", "secret_env")], ("VAR",)),
    "webhook_slack": (
        '[[webhooks]]\nname = "s"\nurl = "https://hooks.slack.example/x"\nformat = "slack"\n'
        'secret_env = "VAR"\n',
        ("VAR",),
    ),
    "webhook_telegram": (
        '[[webhooks]]\nname = "t"\nurl = "https://api.telegram.example/bot{{secret}}/send"\n'
        'format = "telegram"\nsecret_env = "VAR"\n',
        ("VAR", "VAR_CHAT_ID"),
    ),
    "alertmanager": (
        '[[webhooks]]\nname = "am"\nurl = "https://alertmanager.example/api/v2/alerts"\n'
        'format = "alertmanager"\nsecret_env = "VAR"\n',
        ("VAR",),
    ),
    "fleet_redis_password": (SECRET_KEYS[("RawFleet", "secret_env")], ("VAR",)),
    "status_page_token": (SECRET_KEYS[("RawDaemon", "status_token_env")], ("VAR",)),
    "bot_api_credentials": (BOT_API, ("VAR",)),
    "http_json_auth": (SECRET_KEYS[("RawProbe", "auth_env")], ("VAR",)),
    "http_json_dependency_bearer": (
        '[dependencies.bot]\n[[dependencies.bot.probes]]\nkind = "http_json"\n'
        'url = "http://127.0.0.1:1/s"\npointer = "/state"\nequals = "running"\n'
        'auth = "bearer"\nauth_env = "VAR"\n',
        ("VAR",),
    ),
}

SECRETISH = re.compile(r"(_env$|secret|token|password|passwd|credential|auth)")


def _schema_secret_fields() -> set[tuple[str, str]]:
    """Every field of the raw schema whose name says it holds or names a secret."""
    structs = [
        cls
        for cls in vars(_schema).values()
        if isinstance(cls, type) and issubclass(cls, msgspec.Struct)
    ]
    return {
        (cls.__name__, field)
        for cls in structs
        for field in cls.__struct_fields__
        if SECRETISH.search(field)
    }


def _kind_config(tmp_path: Path, body: str, var: str) -> Path:
    argv = json.dumps([sys.executable, "-c", DUMP_ENV, str(tmp_path / "env.json")])
    path = tmp_path / "autoheal.toml"
    path.write_text(
        'environment = "paper"\n[paths]\nruntime_dir = "rt"\n'
        f"[services.dumper]\nargv = {argv}\n" + body.replace("VAR", var)
    )
    return path


def test_every_secret_env_key_of_the_schema_is_covered(tmp_path: Path) -> None:
    found = _schema_secret_fields()
    assert found == set(SECRET_KEYS), (
        "a config key names (or holds) a secret: add it to autoheal.config._secrets."
        f"secret_envs and to SECRET_KEYS: {sorted(found ^ set(SECRET_KEYS))}"
    )
    for (struct, field), body in SECRET_KEYS.items():
        cfg = load_config(_kind_config(tmp_path, body, "SOME_SECRET"))
        assert "SOME_SECRET" in secret_envs(cfg), (struct, field)


@pytest.mark.parametrize("kind", list(KINDS), ids=list(KINDS))
def test_services_inherit_no_secret_of_any_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    body, names = KINDS[kind]
    var = f"AH_TEST_{kind.upper()}"
    secret_vars = [n.replace("VAR", var) for n in names]
    for n in secret_vars:
        monkeypatch.setenv(n, f"value-of-{n.lower()}")
    monkeypatch.setenv("UNRELATED_SETTING", "kept")
    cfg_path = _kind_config(tmp_path, body, var)
    env = _child_env(tmp_path, cfg_path)
    assert [n for n in secret_vars if n in env] == []
    assert [n for n in secret_vars if f"value-of-{n.lower()}" in json.dumps(env)] == []
    assert env["UNRELATED_SETTING"] == "kept"
    assert set(secret_vars) <= set(secret_envs(load_config(cfg_path)))


def test_a_reload_that_drops_a_secret_key_still_withholds_it(tmp_path: Path) -> None:
    # The daemon's own environment still holds the password the running config read.
    path = _kind_config(tmp_path, KINDS["fleet_redis_password"][0], "FLEET_PW")
    old = load_config(path)
    old_specs = {n: wiring.service_spec(old, s) for n, s in old.services.items()}
    assert "FLEET_PW" in old_specs["dumper"].env_remove
    _kind_config(tmp_path, "", "FLEET_PW")  # the same file, without [fleet]
    plan = plan_reload(old, old_specs)
    assert isinstance(plan, ReloadPlan)
    assert "FLEET_PW" in plan.specs["dumper"].env_remove
