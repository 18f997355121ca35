"""A durable command with no daemon running: the CLI executes it directly, once.

``autoheal.cli.main`` runs in this process (in worker threads where two race). With no
daemon holding the runtime's lock, the CLI claims the command and runs it through the
daemon's own interpreter (:mod:`autoheal.daemon.direct`), which builds the daemon's
real process control: so the services here are real processes (a small Python
feeder that writes its heartbeat and, on SIGTERM, a line to ``feeder.sigterm``), and
the test can see that the new one really runs. Moved down from
``tests/e2e/test_control_plane.py`` (issue 19): nothing here needs ``autoheal run``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from autoheal.config import Config, load_config
from autoheal.drills.stacks.harness import ProcessRoster
from autoheal.drills.stacks.simple import write_config
from autoheal.store.lock import lock_holder
from tests.daemon.commands_support import (
    FOUR_EVENTS,
    Ran,
    cli,
    command,
    events,
    kinds,
    only_command,
    os_user,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(60),
    # The direct mode leaves the service it started running on purpose (the next daemon
    # adopts it by its pidfile); the real CLI exits then, here its Popen is collected.
    pytest.mark.filterwarnings(r"ignore:subprocess \d+ is still running:ResourceWarning"),
]

DEADLINE_S = 10.0


@pytest.fixture
def config(tmp_path: Path) -> Iterator[Config]:
    """The simple stack's config (runtime ``rt``, one real feeder); whatever feeder the
    test started is killed at the end, by identity."""
    loaded = load_config(write_config(tmp_path))
    roster = ProcessRoster()
    yield loaded
    roster.add_pidfile(loaded.paths.runtime_dir / "feeder.pid", "feeder")
    for pid in _seen.pop(loaded.paths.runtime_dir, ()):
        roster.add(pid, "feeder")
    roster.reap()


#: Every feeder PID a test saw, by runtime directory, for the fixture to reap.
_seen: dict[Path, list[int]] = {}


def pidfile(config: Config) -> int | None:
    try:
        pid = int((config.paths.runtime_dir / "feeder.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    _seen.setdefault(config.paths.runtime_dir, []).append(pid)
    return pid


def alive(pid: int | None) -> bool:
    try:
        return pid is not None and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def sigterms(config: Config) -> int:
    """How many feeder processes were sent SIGTERM (each one writes a line)."""
    try:
        return len((config.paths.runtime_dir / "feeder.sigterm").read_text().splitlines())
    except FileNotFoundError:
        return 0


def started_feeder(config: Config) -> int:
    """Start the feeder with no daemon (a restart of what does not run yet, executed
    directly, as every command is then); its PID."""
    started = cli(config, "restart", "feeder", "--reason", "first")
    assert started.code == 0, started
    pid = pidfile(config)
    assert pid is not None and alive(pid)
    assert lock_holder(config.paths.runtime_dir) is None  # nothing keeps running a daemon
    heartbeat_of(config, pid)  # up: it handles SIGTERM from now on
    return pid


def heartbeat_of(config: Config, pid: int) -> None:
    """Wait until the feeder's heartbeat is written by process ``pid``."""
    path = config.paths.runtime_dir / "feeder.heartbeat.json"
    deadline = time.monotonic() + DEADLINE_S
    while True:
        try:
            if f'"pid": {pid},' in path.read_text():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"no heartbeat of feeder {pid}")
        time.sleep(0.02)


def test_with_no_daemon_the_cli_restarts_directly(config: Config) -> None:
    """It says so, stops the old process (once, with SIGTERM), starts a new one that really
    runs, answers with its PID and audits the four events under the operator's name."""
    old = started_feeder(config)

    done = cli(config, "restart", "feeder", "--reason", "no daemon")

    assert done.code == 0, done
    assert "no daemon" in done.err
    new = pidfile(config)
    assert new is not None and new != old
    assert alive(new) and not alive(old)
    assert f'"pid": {new}' in done.out
    heartbeat_of(config, new)
    assert sigterms(config) == 1
    cid = events(config, kind="restart.started")[-1].command_id
    assert cid is not None and command(config, cid).payload == {"reason": "no daemon"}
    assert kinds(config, command_id=cid) == FOUR_EVENTS
    assert {e.actor for e in events(config, command_id=cid)} == {os_user()}


def test_two_clis_racing_with_no_daemon_execute_once(config: Config) -> None:
    """Both exit 0 (one as the ``duplicate``, which waits for the other's result); one
    row for the key, one SIGTERM, four events, and the new process replaces the old."""
    old = started_feeder(config)
    both = threading.Barrier(2)

    def racer() -> Ran:
        both.wait(timeout=DEADLINE_S)
        return cli(config, "restart", "feeder", "--idempotency-key", "race")

    with ThreadPoolExecutor(2) as pool:
        results = [f.result(timeout=30) for f in [pool.submit(racer), pool.submit(racer)]]

    assert [r.code for r in results] == [0, 0], results
    assert sum("duplicate" in r.out for r in results) == 1, results
    assert sigterms(config) == 1
    cid = only_command(config, "race").id
    assert kinds(config, command_id=cid) == FOUR_EVENTS
    assert len(kinds(config, kind="restart.started")) == 2  # the first start, then one
    new = pidfile(config)
    assert new is not None and new != old and alive(new) and not alive(old)
