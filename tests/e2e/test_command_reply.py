"""Which action answers an operator's command: the core says, the shell never guesses.

A real ``autoheal run`` over one simple service, driven by the real CLI. The service's
working folder is removed, so every spawn of it fails for real (``cwd_not_found``):
two failed restarts put it in FAILSAFE (components parked, restarted on clear). An
``autoheal failsafe clear`` is then answered by the clear itself (STOP.TXT removed,
flags NORMAL), not by the restart it starts, whose failure is reported on its own
(the journal's ``spawn_failed``, the stage transitions). Before issue 19 the clear
waited for that restart and exited 1 with ``spawn_failed``, although STOP.TXT and the
flags were already cleared.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoheal.drills.stacks.simple import Runtime, toml_str, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

#: A second failed restart enters FAILSAFE; the backoff between them (5 s) is the margin
#: in which the cleared runtime stays cleared while the test looks.
POLICY = """\
[policy]
failures_before_restart = 2
restart_backoff = ["5s"]
verify_window = "3s"
verify_min_uptime = "100ms"
max_restarts = 2
stable_reset = "10m"
"""


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    with Runtime(tmp_path) as runtime:
        work = tmp_path / "work"
        work.mkdir()
        text = runtime.config.read_text()
        policy_at = text.index("[policy]")
        text = text[:policy_at] + POLICY + text[text.index("[daemon]") :]
        text = text.replace(
            'stop_timeout = "2s"\n', f'stop_timeout = "2s"\ncwd = {toml_str(str(work))}\n', 1
        )
        runtime.config.write_text(text)
        yield runtime


def test_failsafe_clear_is_answered_by_the_clear_not_by_a_failing_restart_issue_19(
    rt: Runtime,
) -> None:
    rt.start_daemon()
    pid = rt.healthy_pid("feeder")
    assert pid is not None

    # The feeder cannot start any more: its working folder is gone.
    shutil.rmtree(rt.root / "work")
    os.kill(pid, signal.SIGKILL)
    wait_for(
        lambda: (rt.flags() or {}).get("failsafe_active") is True and rt.stop_file.exists(),
        20,
        "FAILSAFE after two failed restarts",
    )
    wait_for(
        lambda: (
            (rt.health() or {}).get("components", {}).get("feeder", {}).get("stage") == "FAILSAFE"
        ),
        10,
        "the feeder parked in FAILSAFE",
    )
    spawn_failures = len(rt.events(kind="spawn_failed", component="feeder"))
    assert spawn_failures >= 2

    cleared = rt.cli("failsafe", "clear", "--reason", "folder is back (it is not)")

    # The clear's own answer: it succeeded, and what it cleared is cleared.
    assert cleared.returncode == 0, (cleared.stdout, cleared.stderr)
    assert "failsafe_clear succeeded" in cleared.stdout
    assert "spawn_failed" not in cleared.stdout + cleared.stderr
    assert not rt.stop_file.exists()
    flags = rt.flags()
    assert flags["failsafe_active"] is False and flags["mode"] == "NORMAL"
    events = rt.events(kind="failsafe_clear.succeeded")
    assert len(events) == 1 and rt.events(kind="failsafe_clear.failed") == []

    # The restart the clear began failed, and says so on its own.
    (started,) = rt.events(kind="failsafe_clear.started")
    wait_for(
        lambda: len(rt.events(kind="spawn_failed", component="feeder")) > spawn_failures,
        10,
        "the restart's spawn failure in the journal",
    )
    restarts = [
        e
        for e in rt.events(kind="stage_transition", component="feeder")
        if e.id > started.id and (e.data or {}).get("to") == "RESTART"
    ]
    assert [e.reason for e in restarts[:1]] == ["operator"]
