"""The fleet agent against a real ``redis-server``: a wrong password, a TLS error, Sentinel,
the lazy import."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pytest

from autoheal.drills.stacks.redis import RedisServer, SentinelServer, free_port
from autoheal.drills.stacks.simple import Runtime, toml_str, wait_for
from tests.sysdeps import require_binary

SECRET = "s3cr3t-Pa55word"
WRONG = "not-the-Pa55word"


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_fleet_wrong_password_is_one_clear_line_and_fails_closed(tmp_path: Path) -> None:
    server = RedisServer(
        require_binary("redis-server", "redis-server"), tmp_path / "redis", password=SECRET
    )
    server.start()
    (tmp_path / "h").mkdir()
    rt: Runtime | None = None
    try:
        rt = Runtime(tmp_path / "h", services=(), env={"FLEET_PW": WRONG})
        rt.config.write_text(
            rt.config.read_text()
            + f"""
[fleet]
redis_url = {toml_str(f"redis://:{{secret}}@127.0.0.1:{server.port}/0")}
secret_env = "FLEET_PW"
name = "desk"
host = "h"
stale_after = "1s"
poll_interval = "100ms"
"""
        )
        rt.start_daemon(wait_ready=False)
        wait_for(lambda: (rt.flags() or {}).get("mode") == "DEGRADED", 15, "DEGRADED")
        wait_for(lambda: "fleet_auth_failed" in rt.log_text(), 5, "the auth failure line")
        log = rt.log_text()
        failures = [ln for ln in log.splitlines() if "fleet_link_failed" in ln]
        # One line for the auth failure, not one per poll. On a busy host the first
        # connect may time out before Redis answers: that is a different problem, said
        # once on its own line (the log says each change of problem, once).
        auth = [ln for ln in failures if "fleet_auth_failed" in ln]
        assert len(auth) == 1, failures
        assert all("problem=fleet_timeout" in ln for ln in failures if ln not in auth), failures
        assert len(failures) <= 2, failures
        assert WRONG not in log and SECRET not in log
        assert not rt.stop_file.exists()
        assert "fleet_lost" in (rt.flags() or {}).get("reason", "")
    finally:
        if rt is not None:
            rt.close()
        server.stop()


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_fleet_through_a_sentinel_url(tmp_path: Path) -> None:
    binary = require_binary("redis-server", "redis-server")
    master = RedisServer(binary, tmp_path / "master")
    sentinel = SentinelServer(binary, tmp_path / "sentinel", master)
    rt: Runtime | None = None
    master.start()
    try:
        sentinel.start()
        (tmp_path / "h").mkdir()
        rt = Runtime(tmp_path / "h", services=())
        url = f"redis+sentinel://127.0.0.1:{sentinel.port}/mymaster/0"
        rt.config.write_text(
            rt.config.read_text()
            + f"""
[fleet]
redis_url = {toml_str(url)}
name = "desk"
host = "h"
stale_after = "1s"
poll_interval = "100ms"
"""
        )
        rt.start_daemon(wait_ready=False)
        wait_for(lambda: (rt.flags() or {}).get("mode") == "NORMAL", 15, "NORMAL")
        done = rt.cli("fleet", "halt", "--reason", "through sentinel")
        assert done.returncode == 0, done.stdout + done.stderr
        wait_for(rt.stop_file.exists, 5, "STOP.TXT through the sentinel's master")
        assert b"HALT" in master.command("GET", "autoheal:fleet:desk:switch")
    finally:
        if rt is not None:
            rt.close()
        sentinel.stop()
        master.stop()


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_unreachable_at_start_is_lost_at_once_and_removing_fleet_ends_it(tmp_path: Path) -> None:
    from autoheal.drills.stacks.redis import free_port

    rt = Runtime(tmp_path, services=())
    plain = rt.config.read_text()
    try:
        rt.config.write_text(
            plain
            + f"""
[fleet]
redis_url = "redis://127.0.0.1:{free_port()}/0"
name = "desk"
stale_after = "30s"
poll_interval = "100ms"
"""
        )
        rt.start_daemon(wait_ready=False)
        # Nothing listens there: the first read fails and, just started, the host
        # knows nothing of the switch: DEGRADED at once, not after 30 s.
        wait_for(lambda: (rt.flags() or {}).get("mode") == "DEGRADED", 10, "DEGRADED")
        rt.stop_daemon()
        assert (rt.flags() or {}).get("mode") == "DEGRADED"  # persisted, fail closed
        rt.config.write_text(plain)  # the operator removes [fleet]
        rt.start_daemon(wait_ready=False)
        wait_for(lambda: (rt.flags() or {}).get("mode") == "NORMAL", 10, "NORMAL")
    finally:
        rt.close()


def test_no_fleet_table_never_imports_redis(tmp_path: Path) -> None:
    rt = Runtime(tmp_path, services=())
    code = (
        "import sys; from autoheal.config import load_config; "
        "from autoheal.daemon.loop import Daemon; "
        f"Daemon(load_config({str(rt.config)!r})); "
        "import autoheal.cli; "
        "print(any(m == 'redis' or m.startswith('redis.') for m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "False"


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_fleet_tls_error_is_one_clear_line_and_fails_closed(tmp_path: Path) -> None:
    """A ``rediss://`` server whose certificate this host does not trust (self-signed).

    ``stale_after`` 4 s gives each call a 1 s socket timeout (the default's): at 250 ms a
    TLS handshake on a loaded machine can time out first and be reported as a timeout.
    """
    openssl = require_binary("openssl", "openssl")
    folder = tmp_path / "redis"
    folder.mkdir()
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(folder / "key.pem"),
         "-out", str(folder / "cert.pem")],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    server = RedisServer(require_binary("redis-server", "redis-server"), folder)
    tls_port = free_port()
    server.extra_args = [
        "--tls-port", str(tls_port), "--tls-cert-file", str(folder / "cert.pem"),
        "--tls-key-file", str(folder / "key.pem"), "--tls-auth-clients", "no",
    ]  # fmt: skip
    server.start()
    (tmp_path / "h").mkdir()
    rt: Runtime | None = None
    try:
        rt = Runtime(tmp_path / "h", services=())
        rt.config.write_text(
            rt.config.read_text()
            + f"""
[fleet]
redis_url = {toml_str(f"rediss://127.0.0.1:{tls_port}/0")}
name = "desk"
host = "h"
stale_after = "4s"
poll_interval = "100ms"
"""
        )
        rt.start_daemon(wait_ready=False)
        wait_for(lambda: (rt.flags() or {}).get("mode") == "DEGRADED", 15, "DEGRADED")
        wait_for(lambda: "fleet_tls_failed" in rt.log_text(), 5, "the TLS failure line")
        failures = [ln for ln in rt.log_text().splitlines() if "fleet_link_failed" in ln]
        # One line when the problem changes, not one per poll. On a busy machine the
        # first handshake can time out before the certificate is refused: then a
        # fleet_timeout line comes first, and the TLS line after it.
        problems = [ln.split("problem=", 1)[1].split()[0] for ln in failures]
        assert all(a != b for a, b in itertools.pairwise(problems)), failures
        assert "fleet_tls_failed" in problems, failures
        assert set(problems) <= {"fleet_tls_failed", "fleet_timeout"}, failures
        assert not rt.stop_file.exists()
    finally:
        if rt is not None:
            rt.close()
        server.stop()
