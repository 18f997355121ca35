"""Services never inherit the daemon's webhook secrets (issue 9, defect 9).

A real child, started from the real config through the daemon's own wiring, writes
its environment to a file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from autoheal.config import load_config
from autoheal.daemon import wiring
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
