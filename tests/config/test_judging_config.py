"""K of N, exit-code rules and debug on retry in the config (issue 23): what they
resolve to, the policy they build, each mistake at its dotted key (also through
``autoheal check-config``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from autoheal.config import ConfigError, load_config
from autoheal.core.judgement import FailureWindow
from autoheal.daemon.wiring import build_policy
from tests.config.test_load import write

pytestmark = [pytest.mark.timeout(60)]

SERVICE = 'environment = "paper"\n[services.feeder]\nargv = ["{python}", "-c", "pass"]\n'
PROBE = '[[services.feeder.probes]]\nkind = "heartbeat"\nmax_age = "5s"\n'
DEP = (
    '[dependencies.ex]\n[[dependencies.ex.probes]]\nkind = "http"\n'
    'url = "http://127.0.0.1:1/"\nfailures = 3\nwithin = 5\n'
)


def test_the_fields_resolve_and_build_the_core_policy(tmp_path: Path) -> None:
    text = (
        SERVICE
        + "failsafe_exit_codes = [78, 64]\nrestart_exit_codes = [0]\n"
        + 'debug_environment = { LOG_LEVEL = "DEBUG", WHERE = "{runtime_dir}" }\n'
        + PROBE
        + "failures = 2\nwithin = 4\n"
        + DEP
    )
    cfg = load_config(write(tmp_path, text))
    svc = cfg.services["feeder"]
    assert (svc.probes[0].failures, svc.probes[0].within) == (2, 4)
    assert (svc.failsafe_exit_codes, svc.restart_exit_codes) == ((78, 64), (0,))
    assert svc.debug_environment == {"LOG_LEVEL": "DEBUG", "WHERE": str(cfg.paths.runtime_dir)}
    policy = build_policy(cfg)
    spec = policy.components["feeder"]
    assert spec.windows == {"heartbeat": FailureWindow(2, 4)}
    assert (spec.failsafe_exit_codes, spec.restart_exit_codes) == (frozenset({78, 64}), {0})
    assert spec.debug_on_retry
    assert policy.dependency_windows == {"ex": {"http": FailureWindow(3, 5)}}


def test_absent_fields_keep_todays_rules(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, SERVICE + PROBE))
    svc = cfg.services["feeder"]
    assert (svc.probes[0].failures, svc.probes[0].within) == (None, None)
    assert (svc.failsafe_exit_codes, svc.restart_exit_codes, svc.debug_environment) == (
        (),
        (),
        None,
    )
    spec = build_policy(cfg).components["feeder"]
    assert spec.windows == {} and not spec.debug_on_retry
    assert not spec.failsafe_exit_codes and not spec.restart_exit_codes


def test_failures_alone_means_that_many_in_a_row(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, SERVICE + PROBE + "failures = 3\n"))
    assert (cfg.services["feeder"].probes[0].failures, cfg.services["feeder"].probes[0].within) == (
        3,
        3,
    )
    # An empty debug_environment still turns debug on retry on (the marker variable alone).
    cfg = load_config(write(tmp_path, SERVICE + "debug_environment = {}\n"))
    assert cfg.services["feeder"].debug_environment == {}
    assert build_policy(cfg).components["feeder"].debug_on_retry


P0 = "services.feeder.probes[0]"
BAD = [
    (
        "within_below",
        PROBE + "failures = 3\nwithin = 2\n",
        f"{P0}.within",
        "must be at least failures (3)",
    ),
    ("failures_zero", PROBE + "failures = 0\nwithin = 2\n", f"{P0}.failures", "must be at least 1"),
    ("within_alone", PROBE + "within = 4\n", f"{P0}.failures", "required with within"),
    ("within_huge", PROBE + "failures = 1\nwithin = 101\n", f"{P0}.within", "must be at most 100"),
    (
        "process_probe",
        '[[services.feeder.probes]]\nkind = "process"\nfailures = 2\n',
        f"{P0}.failures",
        "not used by a 'process' probe",
    ),
    ("within_type", PROBE + 'failures = 1\nwithin = "4"\n', f"{P0}.within", "expected integer"),
]
SVC_BAD = [
    (
        "code_range",
        "failsafe_exit_codes = [78, 256]\n",
        "services.feeder.failsafe_exit_codes[1]",
        "between 0 and 255, got 256",
    ),
    (
        "code_negative",
        "restart_exit_codes = [-1]\n",
        "services.feeder.restart_exit_codes[0]",
        "between 0 and 255",
    ),
    (
        "code_twice",
        "failsafe_exit_codes = [78, 78]\n",
        "services.feeder.failsafe_exit_codes[1]",
        "lists 78 twice",
    ),
    (
        "code_in_both",
        "failsafe_exit_codes = [78]\nrestart_exit_codes = [0, 78]\n",
        "services.feeder.restart_exit_codes[1]",
        "78 is also in failsafe_exit_codes",
    ),
    (
        "debug_value",
        "debug_environment = { LOG_LEVEL = 10 }\n",
        "services.feeder.debug_environment.LOG_LEVEL",
        "expected string, got integer",
    ),
    (
        "debug_name",
        'debug_environment = { "1BAD" = "x" }\n',
        "services.feeder.debug_environment",
        "not a valid environment variable name",
    ),
    (
        "debug_ours",
        'debug_environment = { AUTOHEAL_DEBUG_INVOCATION = "0" }\n',
        "services.feeder.debug_environment.AUTOHEAL_DEBUG_INVOCATION",
        "set by autoheal itself",
    ),
]


@pytest.mark.parametrize(("text", "key", "problem"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_a_wrong_window_is_named_at_its_key(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, SERVICE + text))
    assert info.value.key == key
    assert problem in info.value.problem


@pytest.mark.parametrize(
    ("text", "key", "problem"), [c[1:] for c in SVC_BAD], ids=[c[0] for c in SVC_BAD]
)
def test_a_wrong_service_rule_is_named_at_its_key(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, SERVICE + text))
    assert info.value.key == key
    assert problem in info.value.problem


def test_check_config_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, SERVICE + PROBE + "failures = 3\nwithin = 2\n")
    out = subprocess.run(
        [sys.executable, "-m", "autoheal", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 2
    assert f"{P0}.within: must be at least failures (3)" in out.stderr
