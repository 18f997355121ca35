"""``kind = "http_json"`` in the config (issue 22): what it resolves to, each mistake at its key,
its ``auth_env`` among the secrets, and ``check-config`` on the bundled example."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from autoheal.config import ConfigError, load_config, secret_envs
from autoheal.daemon.wiring import make_probe
from autoheal.probes import HttpJsonProbe
from tests.config.test_load import REPO, write

pytestmark = [pytest.mark.timeout(60)]

EXAMPLE = REPO / "config" / "examples" / "freqtrade.toml"

HEAD = 'environment = "paper"\n[dependencies.ft]\n[[dependencies.ft.probes]]\nkind = "http_json"\n'
URL = 'url = "http://127.0.0.1:8080/api/v1/health"\n'
KEY = "dependencies.ft.probes[0]"


def test_http_json_resolves_with_its_defaults(tmp_path: Path) -> None:
    cfg = load_config(
        write(tmp_path, HEAD + URL + 'pointer = "/last_process_ts"\nmax_age = "1m"\n')
    )
    (probe,) = cfg.dependencies["ft"].probes
    assert (probe.kind, probe.name, probe.url, probe.pointer) == (
        "http_json",
        "http_json",
        "http://127.0.0.1:8080/api/v1/health",
        "/last_process_ts",
    )
    assert (probe.max_age, probe.equals, probe.unit, probe.expect_status) == (
        60.0,
        None,
        "s",
        (200,),
    )
    assert (probe.auth, probe.auth_env, probe.interval, probe.timeout) == (None, None, 1.0, 1.0)
    assert secret_envs(cfg) == {}


@pytest.mark.parametrize(
    ("equals", "expected"),
    [('"running"', "running"), ("3", 3), ("2.5", 2.5), ("true", True)],
)
def test_equals_keeps_the_toml_type(tmp_path: Path, equals: str, expected: object) -> None:
    cfg = load_config(write(tmp_path, HEAD + URL + f'pointer = "/state"\nequals = {equals}\n'))
    probe = cfg.dependencies["ft"].probes[0]
    assert probe.equals == expected and type(probe.equals) is type(expected)
    assert probe.max_age is None


def test_auth_env_is_a_secret_kept_from_services(tmp_path: Path) -> None:
    text = (
        'environment = "paper"\n[services.bot]\nargv = ["x"]\n'
        '[[services.bot.probes]]\nkind = "http_json"\n' + URL + 'pointer = "/ts"\nmax_age = 60\n'
        'unit = "ms"\nauth = "basic"\nauth_env = "FT_AUTH"\n'
    )
    cfg = load_config(write(tmp_path, text))
    assert secret_envs(cfg) == {"FT_AUTH": "services.bot.probes[0].auth_env"}
    probe = make_probe(cfg.services["bot"].probes[0])
    assert isinstance(probe, HttpJsonProbe)
    assert (probe.unit, probe.auth, probe.auth_env, probe.max_age) == (
        "ms",
        "basic",
        "FT_AUTH",
        60.0,
    )


# (id, body after HEAD, the key the error names, a fragment of the problem)
BAD = [
    (
        "no_url",
        'pointer = "/ts"\nmax_age = 60\n',
        f"{KEY}.url",
        "required for an 'http_json' probe",
    ),
    ("no_pointer", URL + "max_age = 60\n", f"{KEY}.pointer", "required"),
    (
        "pointer_without_slash",
        URL + 'pointer = "last_process_ts"\nmax_age = 60\n',
        f"{KEY}.pointer",
        "starts with '/' (try '/last_process_ts')",
    ),
    ("pointer_bad_escape", URL + 'pointer = "/a~2"\nmax_age = 60\n', f"{KEY}.pointer", "'~'"),
    (
        "neither_judgement",
        URL + 'pointer = "/ts"\n',
        f"{KEY}.max_age",
        "needs max_age (the field is a timestamp) or equals",
    ),
    (
        "both_judgements",
        URL + 'pointer = "/ts"\nmax_age = 60\nequals = 1\n',
        f"{KEY}.equals",
        "not with max_age",
    ),
    ("equals_nan", URL + 'pointer = "/x"\nequals = nan\n', f"{KEY}.equals", "finite"),
    ("equals_table", URL + 'pointer = "/x"\nequals = {a = 1}\n', f"{KEY}.equals", ""),
    (
        "unit_without_max_age",
        URL + 'pointer = "/x"\nequals = 1\nunit = "ms"\n',
        f"{KEY}.unit",
        "only with max_age",
    ),
    (
        "unit_unknown",
        URL + 'pointer = "/x"\nmax_age = 1\nunit = "us"\n',
        f"{KEY}.unit",
        "unknown unit",
    ),
    (
        "auth_without_auth_env",
        URL + 'pointer = "/x"\nmax_age = 1\nauth = "basic"\n',
        f"{KEY}.auth_env",
        "required with auth = 'basic'",
    ),
    (
        "auth_env_without_auth",
        URL + 'pointer = "/x"\nmax_age = 1\nauth_env = "FT_AUTH"\n',
        f"{KEY}.auth",
        "required with auth_env",
    ),
    (
        "auth_unknown",
        URL + 'pointer = "/x"\nmax_age = 1\nauth = "digest"\nauth_env = "FT_AUTH"\n',
        f"{KEY}.auth",
        "unknown auth 'digest'",
    ),
    (
        "auth_env_holds_the_secret",
        URL + 'pointer = "/x"\nmax_age = 1\nauth = "basic"\nauth_env = "user:hunter2"\n',
        f"{KEY}.auth_env",
        "must be the name of an environment variable",
    ),
    (
        "auth_over_plain_http_to_a_remote_host",
        'url = "http://bot.example.com/api/v1/health"\npointer = "/x"\nmax_age = 1\n'
        'auth = "bearer"\nauth_env = "TOK"\n',
        f"{KEY}.url",
        "https://",
    ),
    (
        "latency_p95_not_used",
        URL + 'pointer = "/x"\nmax_age = 1\nlatency_p95 = "1s"\n',
        f"{KEY}.latency_p95",
        "not used by a 'http_json' probe",
    ),
]


@pytest.mark.parametrize(("body", "key", "problem"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_each_mistake_is_named_at_its_key(
    tmp_path: Path, body: str, key: str, problem: str
) -> None:
    path = write(tmp_path, HEAD + body)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert (info.value.key, info.value.file) == (key, str(path))
    assert problem in info.value.problem
    assert "hunter2" not in str(info.value)


def test_pointer_is_refused_on_other_kinds(tmp_path: Path) -> None:
    text = 'environment = "paper"\n[dependencies.ex]\n[[dependencies.ex.probes]]\nkind = "http"\n'
    path = write(tmp_path, text + URL + 'pointer = "/x"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == "dependencies.ex.probes[0].pointer"


def _check_config(env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    env = {k: v for k, v in os.environ.items() if k != "FREQTRADE_API_AUTH"} | env_extra
    return subprocess.run(
        [sys.executable, "-m", "autoheal", "check-config", "--config", str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        env=env,
        check=False,
    )


@pytest.mark.slow
def test_check_config_accepts_the_freqtrade_example_and_names_a_missing_auth_env() -> None:
    unset = _check_config({})
    assert unset.returncode == 0, unset.stderr
    assert unset.stdout.startswith("config OK: 1 service (freqtrade), 1 dependency (exchange)")
    assert unset.stderr.strip() == (
        "autoheal: note: bot_api.auth_env: FREQTRADE_API_AUTH is not set here; every bot-API "
        "call fails with auth_env_missing unless the daemon's environment sets it"
    )
    set_ = _check_config({"FREQTRADE_API_AUTH": "freqtrader:pw"})
    assert (set_.returncode, set_.stderr) == (0, "")
    assert "pw" not in set_.stdout.replace("paper", "")


def test_operations_doc_lists_every_probe_kind_and_the_json_tokens() -> None:
    from autoheal.config._model import PROBE_KINDS
    from autoheal.core import reasons

    text = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    assert [k for k in PROBE_KINDS if f"| `{k}` |" not in text] == []
    tokens = [
        reasons.JSON_INVALID,
        reasons.JSON_FIELD_MISSING,
        reasons.JSON_FIELD_TYPE,
        reasons.JSON_STALE,
        reasons.JSON_VALUE_MISMATCH,
        reasons.AUTH_ENV_MISSING,
    ]
    assert [t for t in tokens if f"`{t}`" not in text] == []
