"""Config refuses to expose secrets or the status page by accident (issue 9, defect 9).

Each case runs ``autoheal check-config`` as an operator would: exit 2, one line
naming the file and the key, and never the secret.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from autoheal.cli import main
from autoheal.config import load_config

SECRET = "s3cr3t-token-value"

BASE = 'environment = "paper"\n'


def _check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "autoheal.toml"
    path.write_text(text, encoding="utf-8")
    code = main(["check-config", "--config", str(path)])
    out = capsys.readouterr()
    return code, out.out + out.err


def _hook(url: str, *, secret_env: str | None = "HOOK_TOKEN") -> str:
    text = f'{BASE}[[webhooks]]\nname = "ops"\nurl = "{url}"\n'
    return text + (f'secret_env = "{secret_env}"\n' if secret_env else "")


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/notify",
        "http://10.1.2.3:8080/notify",
        "http://[2001:db8::1]/notify",
        "http://0.0.0.0:9000/notify",
    ],
)
def test_secret_webhook_over_plain_http_to_non_loopback_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    code, output = _check(tmp_path, _hook(url), capsys)
    assert code == 2, output
    assert "webhooks[0].url" in output
    assert "https" in output
    assert len(output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("url", "secret_env"),
    [
        # Telegram's token in the path ("{{" is a literal brace in the config)
        ("http://api.telegram.example/bot{{secret}}/sendMessage", "HOOK_TOKEN"),
        (f"http://ops:{SECRET}@hooks.example.com/notify", None),  # credentials in the URL
    ],
    ids=["secret_placeholder", "userinfo"],
)
def test_secret_in_a_plain_http_url_is_a_config_error_and_not_echoed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str, secret_env: str | None
) -> None:
    code, output = _check(tmp_path, _hook(url, secret_env=secret_env), capsys)
    assert code == 2, output
    assert "webhooks[0].url" in output
    assert "https" in output
    assert SECRET not in output


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/notify",
        "http://127.0.0.1:8080/notify",
        "http://127.8.9.10/notify",
        "http://localhost:8080/notify",
        "http://[::1]:8080/notify",
    ],
)
def test_secret_webhook_over_https_or_to_loopback_is_allowed(tmp_path: Path, url: str) -> None:
    path = tmp_path / "autoheal.toml"
    path.write_text(_hook(url), encoding="utf-8")
    assert load_config(path).webhooks[0].url == url


def test_plain_http_webhook_without_a_secret_is_allowed(tmp_path: Path) -> None:
    path = tmp_path / "autoheal.toml"
    path.write_text(_hook("http://hooks.example.com/notify", secret_env=None), encoding="utf-8")
    assert load_config(path).webhooks[0].secret_env is None


@pytest.mark.parametrize("listen", ["0.0.0.0:9108", "10.0.0.5:9108", "[::]:9108", "myhost:9108"])
def test_status_listen_non_loopback_needs_opt_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], listen: str
) -> None:
    text = f'{BASE}[daemon]\nstatus_listen = "{listen}"\n'
    code, output = _check(tmp_path, text, capsys)
    assert code == 2, output
    assert "daemon.status_listen" in output
    assert "status_listen_public" in output
    code, output = _check(tmp_path, text + "status_listen_public = true\n", capsys)
    assert code == 0, output


@pytest.mark.parametrize("listen", ["127.0.0.1:0", "localhost:9108", "[::1]:9108"])
def test_status_listen_on_loopback_needs_no_opt_in(tmp_path: Path, listen: str) -> None:
    path = tmp_path / "autoheal.toml"
    path.write_text(f'{BASE}[daemon]\nstatus_listen = "{listen}"\n', encoding="utf-8")
    cfg = load_config(path)
    assert cfg.daemon.status_listen is not None
    assert cfg.daemon.status_listen_public is False


@pytest.mark.parametrize(
    ("url", "secret_env"),
    [
        ("http://hooks.example.com/notify", "HOOK_TOKEN"),
        ("http://api.telegram.example/bot{secret}/sendMessage", "HOOK_TOKEN"),
        (f"http://ops:{SECRET}@hooks.example.com/notify", None),
    ],
)
def test_sender_never_renders_a_secret_for_plain_http_to_a_remote_host(
    url: str, secret_env: str | None
) -> None:
    # The last line behind config validation (a WebhookSpec built by other code).
    from autoheal.daemon.notify import Notification, WebhookError, WebhookSpec, render_request

    n = Notification("failsafe", "feeder", "max_restarts_exceeded", "", 0.0)
    spec = WebhookSpec(name="ops", url=url, format="telegram", secret_env=secret_env)
    with pytest.raises(WebhookError) as info:
        render_request(spec, n, {"HOOK_TOKEN": SECRET, "HOOK_TOKEN_CHAT_ID": "1"})
    assert info.value.reason == "insecure_url"
    local = WebhookSpec(name="ops", url="http://127.0.0.1:1/x", secret_env="HOOK_TOKEN")
    assert render_request(local, n, {"HOOK_TOKEN": SECRET}).headers["authorization"].endswith(
        SECRET
    )
