"""Debug on retry with a real child (issue 23): the restart after a failure carries the
service's ``debug_environment`` and ``AUTOHEAL_DEBUG_INVOCATION=1``; the first start and
an operator's restart after verification do not; the values are never logged.

The real Daemon in-process, the real process control, a child that records its
environment at each start and exits 1 at its first; waits are on conditions with a
deadline.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from autoheal.config import load_config
from autoheal.core import OperatorRestarted
from autoheal.daemon.loop import Daemon
from autoheal.store.atomic import read_json

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

DEADLINE_S = 20.0
CHILD = """\
import json, os, sys, time
log, marker = sys.argv[1], sys.argv[2]
keys = ("LOG_LEVEL", "AUTOHEAL_DEBUG_INVOCATION")
with open(log, "a") as f:
    f.write(json.dumps({k: os.environ.get(k) for k in keys}) + "\\n")
if not os.path.exists(marker):
    open(marker, "w").close()
    sys.exit(1)
while True:
    time.sleep(1)
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await anyio.sleep(0.02)


def _starts(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.endswith("}")]


def _stage(runtime: Path) -> str | None:
    doc = read_json(runtime / "health_v2.json").doc or {}
    return doc.get("components", {}).get("svc", {}).get("stage")


async def test_a_restart_after_a_failure_carries_the_debug_environment(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    script, log, marker = tmp_path / "child.py", tmp_path / "starts.log", tmp_path / "crashed"
    script.write_text(CHILD)
    argv = json.dumps([sys.executable, str(script), str(log), str(marker)])
    (tmp_path / "autoheal.toml").write_text(
        'environment = "paper"\n[paths]\nruntime_dir = "rt"\n'
        '[policy]\nrestart_backoff = ["50ms"]\nverify_window = "5s"\n'
        'verify_min_uptime = "200ms"\nmax_restarts = 3\n'
        '[daemon]\nheartbeat_interval = "50ms"\n'
        f'[services.svc]\nargv = {argv}\nstop_timeout = "2s"\n'
        'env = { LOG_LEVEL = "INFO" }\n'
        'debug_environment = { LOG_LEVEL = "DEBUG-secretish-value" }\n'
    )
    config = load_config(tmp_path / "autoheal.toml")
    runtime = config.paths.runtime_dir
    daemon = Daemon(config)
    caplog.set_level("DEBUG")
    async with anyio.create_task_group() as tg:
        interpreter = await tg.start(lambda task_status: daemon.run(task_status=task_status))
        await wait_for(lambda: len(_starts(log)) >= 2, "the restart after the exit")
        await wait_for(lambda: _stage(runtime) == "OBSERVE", "the restart verified")
        assert interpreter.apply(OperatorRestarted("svc", "test", "pytest"))
        await wait_for(lambda: len(_starts(log)) >= 3, "the operator's restart")
        tg.cancel_scope.cancel()
    gc.collect()
    assert _starts(log) == [
        {"LOG_LEVEL": "INFO", "AUTOHEAL_DEBUG_INVOCATION": None},  # the first start
        {"LOG_LEVEL": "DEBUG-secretish-value", "AUTOHEAL_DEBUG_INVOCATION": "1"},  # after exit 1
        {"LOG_LEVEL": "INFO", "AUTOHEAL_DEBUG_INVOCATION": None},  # the operator's, verified
    ]
    logged = caplog.text + "".join(p.read_text() for p in (runtime / "logs").glob("*.log"))
    assert "debug_restart component=svc env=AUTOHEAL_DEBUG_INVOCATION,LOG_LEVEL" in caplog.text
    assert "secretish" not in logged
