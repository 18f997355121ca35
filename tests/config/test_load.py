"""Config loading: defaults, path resolution, placeholders, and one precise error per bad input."""

from __future__ import annotations

import pickle
import signal
import sys
from pathlib import Path

import pytest

from autoheal.config import (
    Config,
    ConfigError,
    DaemonConfig,
    PolicyConfig,
    load_config,
    summary,
)

REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "config" / "autoheal.toml"

MINIMAL = """
environment = "paper"
[services.feeder]
argv = ["{python}", "-c", "pass"]
[[services.feeder.probes]]
kind = "process"
"""

TWO_SERVICES = """
environment = "paper"
[services.feeder]
argv = ["x"]
depends_on = ["exchange_rest"]
[services.trader]
argv = ["x"]
depends_on = ["feeder", "exchange_rest"]
[dependencies.exchange_rest]
[[dependencies.exchange_rest.probes]]
kind = "http"
url = "http://127.0.0.1:1/api/ping"
"""

# (id, TOML text, the key the error must name, a fragment of the problem)
BAD_CONFIGS: list[tuple[str, str, str, str]] = [
    (
        "unknown_key",
        'environment = "paper"\n[services.feeder]\nagrv = ["x"]\n',
        "services.feeder.agrv",
        "unknown field (did you mean 'argv'?)",
    ),
    (
        "unknown_policy_key",
        'environment = "paper"\n[policy]\nmax_restart = 3\n',
        "policy.max_restart",
        "unknown field",
    ),
    (
        "wrong_type_int",
        'environment = "paper"\n[policy]\nmax_restarts = "3"\n',
        "policy.max_restarts",
        "expected integer, got string",
    ),
    (
        "wrong_type_argv",
        'environment = "paper"\n[services.feeder]\nargv = "python -m x"\n',
        "services.feeder.argv",
        "expected array, got string",
    ),
    (
        "wrong_type_argv_item",
        'environment = "paper"\n[services.feeder]\nargv = ["python", 3]\n',
        "services.feeder.argv[1]",
        "expected string, got integer",
    ),
    (
        "wrong_type_service",
        'environment = "paper"\n[services]\nfeeder = 3\n',
        "services.feeder",
        "expected table, got integer",
    ),
    (
        "bool_duration",
        'environment = "paper"\n[services.feeder]\nargv = ["x"]\nstop_timeout = true\n',
        "services.feeder.stop_timeout",
        "got boolean",
    ),
    (
        "negative_duration",
        'environment = "paper"\n[services.feeder]\nargv = ["x"]\nstop_timeout = "-5s"\n',
        "services.feeder.stop_timeout",
        "negative duration",
    ),
    (
        "negative_number_duration",
        'environment = "paper"\n[policy]\nverify_window = -1\n',
        "policy.verify_window",
        "negative duration",
    ),
    (
        "garbage_duration",
        'environment = "paper"\n[policy]\nverify_window = "soon"\n',
        "policy.verify_window",
        "invalid duration 'soon'",
    ),
    (
        "zero_interval",
        'environment = "paper"\n[services.feeder]\nargv = ["x"]\n'
        '[[services.feeder.probes]]\nkind = "process"\ninterval = 0\n',
        "services.feeder.probes[0].interval",
        "greater than zero",
    ),
    (
        "decreasing_backoff",
        'environment = "paper"\n[policy]\nrestart_backoff = ["30s", "15s"]\n',
        "policy.restart_backoff[1]",
        "must not decrease",
    ),
    (
        "empty_backoff",
        'environment = "paper"\n[policy]\nrestart_backoff = []\n',
        "policy.restart_backoff",
        "at least one",
    ),
    (
        "zero_failures",
        'environment = "paper"\n[policy]\nfailures_before_restart = 0\n',
        "policy.failures_before_restart",
        "at least 1",
    ),
    (
        "empty_argv",
        'environment = "paper"\n[services.feeder]\nargv = []\n',
        "services.feeder.argv",
        "must not be empty",
    ),
    (
        "empty_argv_item",
        'environment = "paper"\n[services.feeder]\nargv = ["x", ""]\n',
        "services.feeder.argv[1]",
        "empty string",
    ),
    (
        "missing_argv",
        'environment = "paper"\n[services.feeder]\ncwd = "."\n',
        "services.feeder.argv",
        "required field missing",
    ),
    (
        "unknown_depends_on",
        'environment = "paper"\n[services.trader]\nargv = ["x"]\ndepends_on = ["exchnage"]\n',
        "services.trader.depends_on",
        "unknown service or dependency 'exchnage'",
    ),
    (
        "cycle",
        'environment = "paper"\n[services.feeder]\nargv = ["x"]\ndepends_on = ["trader"]\n'
        '[services.trader]\nargv = ["x"]\ndepends_on = ["feeder"]\n',
        "services.feeder.depends_on",
        "dependency cycle: feeder -> trader -> feeder",
    ),
    (
        "long_cycle",
        'environment = "paper"\n[services.a]\nargv = ["x"]\n'
        '[services.b]\nargv = ["x"]\ndepends_on = ["c"]\n'
        '[services.c]\nargv = ["x"]\ndepends_on = ["d", "a"]\n'
        '[services.d]\nargv = ["x"]\ndepends_on = ["b"]\n',
        "services.b.depends_on",
        "dependency cycle: b -> c -> d -> b",
    ),
    (
        "self_cycle",
        'environment = "paper"\n[services.feeder]\nargv = ["x"]\ndepends_on = ["feeder"]\n',
        "services.feeder.depends_on",
        "dependency cycle: feeder -> feeder",
    ),
    (
        "duplicate_probe_name",
        'environment = "paper"\n[services.feeder]\nargv = ["x"]\n'
        '[[services.feeder.probes]]\nkind = "process"\n'
        '[[services.feeder.probes]]\nkind = "heartbeat"\nname = "process"\nmax_age = "5s"\n',
        "services.feeder.probes[1].name",
        "duplicate probe name 'process'",
    ),
    (
        "missing_max_age",
        'environment = "paper"\n[services.feeder]\nargv = ["x"]\n'
        '[[services.feeder.probes]]\nkind = "process"\n'
        '[[services.feeder.probes]]\nkind = "heartbeat"\n',
        "services.feeder.probes[1].max_age",
        "required for a 'heartbeat' probe",
    ),
    (
        "missing_url",
        'environment = "paper"\n[dependencies.exchange_rest]\n'
        '[[dependencies.exchange_rest.probes]]\nkind = "http"\n',
        "dependencies.exchange_rest.probes[0].url",
        "required for an 'http' probe",
    ),
    (
        "bad_url_scheme",
        'environment = "paper"\n[dependencies.ex]\n'
        '[[dependencies.ex.probes]]\nkind = "http"\nurl = "ftp://host/x"\n',
        "dependencies.ex.probes[0].url",
        "http:// or https://",
    ),
    (
        "field_for_other_kind",
        'environment = "paper"\n[services.feeder]\nargv = ["x"]\n'
        '[[services.feeder.probes]]\nkind = "process"\nurl = "http://x/"\n',
        "services.feeder.probes[0].url",
        "not used by a 'process' probe",
    ),
    (
        "unknown_probe_kind",
        'environment = "paper"\n[services.feeder]\nargv = ["x"]\n'
        '[[services.feeder.probes]]\nkind = "smtp"\n',
        "services.feeder.probes[0].kind",
        "unknown probe kind 'smtp'",
    ),
    (
        "process_probe_on_dependency",
        'environment = "paper"\n[dependencies.ex]\n[[dependencies.ex.probes]]\nkind = "process"\n',
        "dependencies.ex.probes[0].kind",
        "has no process",
    ),
    (
        "dependency_without_probes",
        'environment = "paper"\n[dependencies.ex]\n',
        "dependencies.ex.probes",
        "at least one probe",
    ),
    (
        "name_clash",
        'environment = "paper"\n[services.exchange]\nargv = ["x"]\n'
        '[dependencies.exchange]\n[[dependencies.exchange.probes]]\nkind = "http"\n'
        'url = "http://127.0.0.1:1/"\n',
        "dependencies.exchange",
        "already used by a service",
    ),
    (
        "bad_service_name",
        'environment = "paper"\n[services."feed er"]\nargv = ["x"]\n',
        "services.feed er",
        "only letters, digits",
    ),
    (
        "unknown_environment",
        'environment = "prod"\n',
        "environment",
        "unknown environment 'prod'",
    ),
    (
        "missing_environment",
        '[paths]\nruntime_dir = "rt"\n',
        "environment",
        "required field missing",
    ),
    (
        "unknown_signal",
        'environment = "paper"\n[services.feeder]\nargv = ["x"]\nstop_signal = "SIGFOO"\n',
        "services.feeder.stop_signal",
        "unknown signal 'SIGFOO'",
    ),
    (
        "env_value_not_string",
        'environment = "paper"\n[services.feeder]\nargv = ["x"]\nenv = { PORT = 8080 }\n',
        "services.feeder.env.PORT",
        "expected string, got integer",
    ),
    (
        "unknown_placeholder",
        'environment = "paper"\n[services.feeder]\nargv = ["{pyhton}", "-m", "x"]\n',
        "services.feeder.argv[0]",
        "unknown placeholder {pyhton}",
    ),
    (
        "bad_status_listen",
        'environment = "paper"\n[daemon]\nstatus_listen = "localhost"\n',
        "daemon.status_listen",
        "host:port",
    ),
    (
        "bad_webhook_format",
        'environment = "paper"\n[[webhooks]]\nname = "ops"\nurl = "https://h/x"\nformat = "irc"\n',
        "webhooks[0].format",
        "unknown format 'irc'",
    ),
    (
        "invalid_toml",
        'environment = "paper"\n[services.feeder\nargv = ["x"]\n',
        "",
        "invalid TOML",
    ),
]


def write(tmp_path: Path, text: str, name: str = "autoheal.toml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "key", "problem"), [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS]
)
def test_load_config_names_the_key_of_each_bad_input(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    assert (err.file, err.key) == (str(path), key)
    assert problem in err.problem
    expected = f"{path}: {key}: {err.problem}" if key else f"{path}: {err.problem}"
    assert str(err) == expected


def test_invalid_toml_keeps_the_line_number(tmp_path: Path) -> None:
    path = write(tmp_path, 'environment = "paper"\n\n[services.feeder\n')
    with pytest.raises(ConfigError, match=r"invalid TOML: .*\(at line 3, column \d+\)"):
        load_config(path)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert (info.value.file, info.value.key, info.value.problem) == (
        str(path),
        "",
        "file not found",
    )
    assert str(info.value) == f"{path}: file not found"


def test_directory_and_binary_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(binary)


def test_webhook_errors_never_echo_secrets(tmp_path: Path) -> None:
    secret = "xoxb-12345-SECRET"
    text = (
        'environment = "paper"\n[[webhooks]]\nname = "ops"\nurl = "https://h/x"\n'
        f'secret_env = "{secret}"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert info.value.key == "webhooks[0].secret_env"
    assert secret not in str(info.value)
    text = f'environment = "paper"\n[[webhooks]]\nname = "ops"\nurl = "ftp://{secret}@h/"\n'
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert info.value.key == "webhooks[0].url"
    assert secret not in str(info.value)


def test_minimal_config_gets_the_documented_defaults(tmp_path: Path) -> None:
    path = write(tmp_path / "conf", MINIMAL)
    cfg = load_config(path)
    conf = tmp_path / "conf"
    assert cfg.path == path
    assert cfg.config_dir == conf
    assert cfg.environment == "paper"
    assert cfg.paths.runtime_dir == conf / "shared_data"
    assert cfg.paths.stop_file == conf / "STOP.TXT"
    assert cfg.policy == PolicyConfig(
        failures_before_restart=2,
        restart_backoff=(15.0, 30.0, 60.0, 120.0, 300.0),
        verify_window=90.0,
        max_restarts=3,
        stable_reset=600.0,
    )
    assert cfg.daemon == DaemonConfig(
        heartbeat_interval=1.0, stop_services_on_exit=True, status_listen=None, log_file=None
    )
    assert cfg.dependencies == {}
    assert cfg.webhooks == ()
    feeder = cfg.services["feeder"]
    assert feeder.argv == (sys.executable, "-c", "pass")
    assert feeder.cwd == conf
    assert feeder.env == {}
    assert feeder.stop_signal == signal.SIGTERM
    assert feeder.stop_timeout == 10.0
    assert feeder.pidfile == conf / "shared_data" / "feeder.pid"
    assert feeder.lock_files == ()
    assert feeder.depends_on == ()
    assert (feeder.required, feeder.autostart) == (True, True)
    assert (feeder.log_max_bytes, feeder.log_backups) == (1048576, 3)
    (probe,) = feeder.probes
    assert (probe.kind, probe.name, probe.interval, probe.timeout) == (
        "process",
        "process",
        1.0,
        1.0,
    )
    assert (probe.max_age, probe.path, probe.url) == (None, None, None)


def test_probe_defaults_per_kind(tmp_path: Path) -> None:
    text = MINIMAL + (
        '[[services.feeder.probes]]\nkind = "heartbeat"\nmax_age = "15s"\n'
        '[[services.feeder.probes]]\nkind = "ws_freshness"\nmax_age = 60\n'
        '[dependencies.ex]\n[[dependencies.ex.probes]]\nkind = "http"\nurl = "http://127.0.0.1:1/"\n'
    )
    cfg = load_config(write(tmp_path, text))
    runtime = tmp_path / "shared_data"
    _, hb, ws = cfg.services["feeder"].probes
    assert (hb.name, hb.max_age, hb.path, hb.field) == (
        "heartbeat",
        15.0,
        runtime / "feeder.heartbeat.json",
        None,
    )
    assert (ws.name, ws.max_age, ws.path, ws.field) == (
        "ws_freshness",
        60.0,
        runtime / "feeder.heartbeat.json",
        "ws_last_msg_ts",
    )
    (http,) = cfg.dependencies["ex"].probes
    assert (http.url, http.expect_status, http.latency_p95, http.window) == (
        "http://127.0.0.1:1/",
        (200,),
        None,
        20,
    )


def test_relative_paths_resolve_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = """
environment = "testnet"
[paths]
runtime_dir = "../rt"
stop_file = "../STOP.TXT"
[daemon]
log_file = "logs/daemon.log"
[services.feeder]
argv = ["x"]
cwd = "work"
pidfile = "pids/f.pid"
lock_files = ["f.lock", "/var/lock/abs.lock"]
[[services.feeder.probes]]
kind = "heartbeat"
max_age = "5s"
path = "hb/feeder.json"
"""
    write(tmp_path / "etc" / "conf", text)
    # Load through a relative path from elsewhere: the cwd must not matter.
    monkeypatch.chdir(tmp_path / "etc")
    cfg = load_config("conf/autoheal.toml")
    conf = tmp_path / "etc" / "conf"
    runtime = tmp_path / "etc" / "rt"
    assert cfg.path == conf / "autoheal.toml"
    assert cfg.paths.runtime_dir == runtime
    assert cfg.paths.stop_file == tmp_path / "etc" / "STOP.TXT"
    assert cfg.daemon.log_file == conf / "logs" / "daemon.log"
    feeder = cfg.services["feeder"]
    assert feeder.cwd == conf / "work"
    assert feeder.pidfile == runtime / "pids" / "f.pid"
    assert feeder.lock_files == (runtime / "f.lock", Path("/var/lock/abs.lock"))
    assert feeder.probes[0].path == runtime / "hb" / "feeder.json"
    assert all(p.is_absolute() for p in (cfg.paths.runtime_dir, cfg.paths.stop_file, feeder.cwd))


def test_placeholders_expand_in_argv_env_cwd_and_url(tmp_path: Path) -> None:
    text = """
environment = "paper"
[paths]
runtime_dir = "rt"
stop_file = "halt/STOP.TXT"
[services.trader]
argv = ["{python}", "-m", "t", "--rt", "{runtime_dir}", "--stop={stop_file}", "{{literal}}"]
cwd = "{config_dir}/work"
env = { CONF = "{config_dir}", JSON = '{"a": 1}' }
[dependencies.ex]
[[dependencies.ex.probes]]
kind = "http"
url = "http://127.0.0.1:1/{runtime_dir}"
"""
    cfg = load_config(write(tmp_path, text))
    trader = cfg.services["trader"]
    assert trader.argv == (
        sys.executable,
        "-m",
        "t",
        "--rt",
        str(tmp_path / "rt"),
        f"--stop={tmp_path / 'halt' / 'STOP.TXT'}",
        "{literal}",
    )
    assert trader.cwd == tmp_path / "work"
    assert trader.env == {"CONF": str(tmp_path), "JSON": '{"a": 1}'}
    assert cfg.dependencies["ex"].probes[0].url == f"http://127.0.0.1:1/{tmp_path / 'rt'}"


def test_durations_signals_and_listen_are_normalised(tmp_path: Path) -> None:
    text = """
environment = "live"
[policy]
restart_backoff = [1, "1500ms", "1m30s", 90.5]
verify_window = "2.5s"
stable_reset = "1h"
[daemon]
heartbeat_interval = "250ms"
status_listen = "[::1]:9108"
[services.a]
argv = ["x"]
stop_signal = "int"
stop_timeout = 0
[services.b]
argv = ["x"]
stop_signal = "SIGQUIT"
"""
    cfg = load_config(write(tmp_path, text))
    assert cfg.policy.restart_backoff == (1.0, 1.5, 90.0, 90.5)
    assert (cfg.policy.verify_window, cfg.policy.stable_reset) == (2.5, 3600.0)
    assert cfg.daemon.heartbeat_interval == 0.25
    assert cfg.daemon.status_listen == ("::1", 9108)
    assert cfg.services["a"].stop_signal == signal.SIGINT
    assert cfg.services["a"].stop_timeout == 0.0
    assert cfg.services["b"].stop_signal == signal.SIGQUIT


def test_depends_on_may_name_services_and_dependencies(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, TWO_SERVICES))
    assert cfg.services["trader"].depends_on == ("feeder", "exchange_rest")
    assert summary(cfg) == (
        "config OK: 2 services (feeder, trader), 1 dependency (exchange_rest), 1 probe, "
        f"environment=paper, runtime_dir={tmp_path / 'shared_data'}"
    )


def test_summary_of_the_bundled_config() -> None:
    cfg = load_config(BUNDLED)
    assert summary(cfg) == (
        "config OK: 4 services (exchange, exchange_proxy, feeder, trader), "
        "1 dependency (exchange_rest), "
        f"8 probes, environment=paper, runtime_dir={REPO / 'shared_data'}"
    )


def test_bundled_config_has_the_runbook_settings() -> None:
    cfg = load_config(BUNDLED)
    assert cfg.paths.stop_file == REPO / "STOP.TXT"
    assert cfg.policy == PolicyConfig()  # the runbook's values are the defaults
    assert cfg.services["feeder"].depends_on == ("exchange_rest",)
    assert cfg.services["trader"].depends_on == ("exchange_rest",)
    feeder = {p.kind: p for p in cfg.services["feeder"].probes}
    assert (feeder["heartbeat"].max_age, feeder["ws_freshness"].max_age) == (15.0, 60.0)
    assert (feeder["feed_lag"].max_age, feeder["feed_lag"].max_gaps) == (10.0, 0)
    assert [p.kind for p in cfg.services["trader"].probes] == ["process", "heartbeat"]
    (ping,) = cfg.dependencies["exchange_rest"].probes
    assert (ping.kind, ping.url, ping.latency_p95) == (
        "http",
        "http://127.0.0.1:8766/api/ping",  # through the fault proxy
        1.5,
    )
    assert cfg.services["trader"].argv[-2:] == ("--stop-file", str(REPO / "STOP.TXT"))


def test_summary_counts_singular_and_zero(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL))
    assert summary(cfg).startswith("config OK: 1 service (feeder), 0 dependencies, 1 probe, ")


def test_config_objects_are_frozen(tmp_path: Path) -> None:
    cfg: Config = load_config(write(tmp_path, MINIMAL))
    with pytest.raises(AttributeError):
        cfg.environment = "live"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        cfg.services["feeder"].argv = ()  # type: ignore[misc]


def test_config_error_formats_with_and_without_key() -> None:
    assert str(ConfigError("a.toml", "policy.max_restarts", "must be 0 or more")) == (
        "a.toml: policy.max_restarts: must be 0 or more"
    )
    assert str(ConfigError("a.toml", "", "file not found")) == "a.toml: file not found"


def test_config_error_survives_pickling() -> None:
    err = pickle.loads(pickle.dumps(ConfigError("a.toml", "environment", "required field missing")))
    assert (err.file, err.key, err.problem) == ("a.toml", "environment", "required field missing")
    assert str(err) == "a.toml: environment: required field missing"


def test_journal_group_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, MINIMAL + '\n[daemon]\njournal_group = "no-such-group-x"\n'))
    assert info.value.key == "daemon.journal_group"
    import grp
    import os

    own = grp.getgrgid(os.getgid()).gr_name
    cfg = load_config(write(tmp_path, MINIMAL + f'\n[daemon]\njournal_group = "{own}"\n'))
    assert cfg.daemon.journal_group == own


def test_chaos_section_resolves_paths_and_checks_dependencies(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, MINIMAL + '\n[chaos]\nproxies = { nope = "p.control" }\n'))
    assert info.value.key == "chaos.proxies.nope"
    cfg = load_config(write(tmp_path, MINIMAL + '\n[chaos]\nprotected_files = ["keep.json"]\n'))
    assert cfg.chaos.protected_files == (tmp_path / "keep.json",)
