"""``kind = "exec" | "tcp" | "resource"`` in the config (issue 23): what each resolves to,
each mistake at its dotted key, and the probes ``make_probe`` builds from them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autoheal.config import ConfigError, load_config
from autoheal.config._schema import Invalid
from autoheal.config._system_probes import as_size
from autoheal.daemon.wiring import make_probe
from autoheal.probes.exec import ExecProbe
from autoheal.probes.resource import ResourceProbe
from autoheal.probes.tcp import TcpProbe
from tests.config.test_load import REPO, write

pytestmark = [pytest.mark.timeout(60)]

HEAD = 'environment = "paper"\n[services.svc]\nargv = ["{python}", "-c", "pass"]\n'


def probe_toml(body: str, owner: str = "services.svc") -> str:
    return f"[[{owner}.probes]]\n{body}\n"


def load(tmp_path: Path, body: str, owner: str = "services.svc") -> object:
    text = HEAD + ("[dependencies.ex]\n" if owner.startswith("dep") else "")
    return load_config(write(tmp_path, text + probe_toml(body, owner)))


def test_exec_probe_resolves_argv_with_placeholders(tmp_path: Path) -> None:
    cfg = load(tmp_path, 'kind = "exec"\nargv = ["{python}", "-c", "pass"]\ninterval = "10s"')
    (p,) = cfg.services["svc"].probes  # type: ignore[attr-defined]
    assert (p.kind, p.name, p.argv, p.interval) == (
        "exec",
        "exec",
        (sys.executable, "-c", "pass"),
        10.0,
    )


def test_exec_probe_program_on_path_is_accepted(tmp_path: Path) -> None:
    assert shutil.which("true") is not None
    cfg = load(tmp_path, 'kind = "exec"\nargv = ["true"]')
    assert cfg.services["svc"].probes[0].argv == ("true",)  # type: ignore[attr-defined]


def test_tcp_probe_resolves_address(tmp_path: Path) -> None:
    cfg = load(
        tmp_path, 'kind = "tcp"\naddress = "127.0.0.1:5432"\ntimeout = "2s"', "dependencies.ex"
    )
    (p,) = cfg.dependencies["ex"].probes  # type: ignore[attr-defined]
    assert (p.kind, p.host, p.port, p.timeout) == ("tcp", "127.0.0.1", 5432, 2.0)


def test_resource_probe_resolves_sizes_and_limits(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        'kind = "resource"\nmax_rss = "512MiB"\nmax_cpu_percent = 150\nmax_fds = 900\n'
        "max_threads = 64",
    )
    (p,) = cfg.services["svc"].probes  # type: ignore[attr-defined]
    assert (p.max_rss, p.max_cpu_percent, p.max_fds, p.max_threads) == (
        512 * 1024 * 1024,
        150.0,
        900,
        64,
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (4096, 4096),
        ("1GiB", 1 << 30),
        ("1.5 GiB", 3 << 29),
        ("500MB", 500_000_000),
        ("64kib", 65536),
        ("100", 100),
        ("100B", 100),
    ],
)
def test_as_size(value: int | str, expected: int) -> None:
    assert as_size(value, "k") == expected


@pytest.mark.parametrize("value", ["", "lots", "5 MiBs", "-1MiB", 0, "0MiB", "2PiB", 1 << 60])
def test_as_size_refuses(value: int | str) -> None:
    with pytest.raises(Invalid) as err:
        as_size(value, "services.svc.probes[0].max_rss")
    assert err.value.key == "services.svc.probes[0].max_rss"


BAD = [
    (
        "exec_no_argv",
        'kind = "exec"',
        "services.svc.probes[0].argv",
        "required for an 'exec' probe",
    ),
    (
        "exec_empty_argv",
        'kind = "exec"\nargv = []',
        "services.svc.probes[0].argv",
        "must not be empty",
    ),
    (
        "exec_shell_string",
        'kind = "exec"\nargv = "true && false"',
        "services.svc.probes[0].argv",
        "expected array, got string",
    ),
    (
        "exec_empty_item",
        'kind = "exec"\nargv = ["true", ""]',
        "services.svc.probes[0].argv[1]",
        "must not be an empty string",
    ),
    (
        "exec_relative_path",
        'kind = "exec"\nargv = ["./check.sh"]',
        "services.svc.probes[0].argv[0]",
        "must be absolute",
    ),
    (
        "exec_not_on_path",
        'kind = "exec"\nargv = ["no-such-program-xyz"]',
        "services.svc.probes[0].argv[0]",
        "not found on PATH",
    ),
    (
        "exec_address",
        'kind = "exec"\nargv = ["true"]\naddress = "127.0.0.1:1"',
        "services.svc.probes[0].address",
        "not used by a 'exec' probe",
    ),
    ("tcp_no_address", 'kind = "tcp"', "services.svc.probes[0].address", "required for a 'tcp'"),
    (
        "tcp_bad_address",
        'kind = "tcp"\naddress = "localhost"',
        "services.svc.probes[0].address",
        "expected 'host:port'",
    ),
    (
        "tcp_port_zero",
        'kind = "tcp"\naddress = "127.0.0.1:0"',
        "services.svc.probes[0].address",
        "port 0",
    ),
    (
        "tcp_max_rss",
        'kind = "tcp"\naddress = "127.0.0.1:1"\nmax_rss = 5',
        "services.svc.probes[0].max_rss",
        "not used by a 'tcp' probe",
    ),
    ("resource_no_limit", 'kind = "resource"', "services.svc.probes[0].max_rss", "at least one of"),
    (
        "resource_bad_size",
        'kind = "resource"\nmax_rss = "big"',
        "services.svc.probes[0].max_rss",
        "expected a size",
    ),
    (
        "resource_cpu_zero",
        'kind = "resource"\nmax_cpu_percent = 0',
        "services.svc.probes[0].max_cpu_percent",
        "positive",
    ),
    (
        "resource_fds_zero",
        'kind = "resource"\nmax_fds = 0',
        "services.svc.probes[0].max_fds",
        "at least 1",
    ),
    (
        "resource_threads_type",
        'kind = "resource"\nmax_threads = "8"',
        "services.svc.probes[0].max_threads",
        "expected integer, got string",
    ),
    (
        "resource_argv",
        'kind = "resource"\nmax_fds = 5\nargv = ["true"]',
        "services.svc.probes[0].argv",
        "not used by a 'resource' probe",
    ),
]


@pytest.mark.parametrize(("body", "key", "problem"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_system_probe_mistakes_name_their_key(
    tmp_path: Path, body: str, key: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, body)
    assert err.value.key == key
    assert problem in err.value.problem


def test_a_dependency_may_not_have_a_resource_probe(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, 'kind = "resource"\nmax_rss = "1GiB"', "dependencies.ex")
    assert err.value.key == "dependencies.ex.probes[0].kind"
    assert "a dependency has no process" in err.value.problem


def test_make_probe_builds_each_kind(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            HEAD
            + probe_toml('kind = "exec"\nargv = ["true"]')
            + probe_toml('kind = "tcp"\naddress = "127.0.0.1:9"')
            + probe_toml('kind = "resource"\nmax_threads = 9'),
        )
    )
    exec_pc, tcp_pc, res_pc = cfg.services["svc"].probes
    assert isinstance(make_probe(exec_pc, env_remove=frozenset()), ExecProbe)
    assert isinstance(make_probe(tcp_pc), TcpProbe)
    assert isinstance(make_probe(res_pc, pid_of=lambda: None), ResourceProbe)
    # No default for what an exec command must not inherit, nor for a resource probe's PID.
    with pytest.raises(ValueError, match="env_remove"):
        make_probe(exec_pc)
    with pytest.raises(ValueError, match="pid_of"):
        make_probe(res_pc)


def test_check_config_reports_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + probe_toml('kind = "exec"\nargv = ["no-such-program-xyz"]'))
    out = subprocess.run(
        [sys.executable, "-m", "autoheal", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    assert out.returncode == 2
    assert (
        "services.svc.probes[0].argv[0]: 'no-such-program-xyz' is not found on PATH" in out.stderr
    )
