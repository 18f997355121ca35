"""``autoheal status``'s next-restart lines from real files (issue 23): the countdown
against the command's clock, the attempt of how many, the reason, what a failure then
does and the budget; nothing for a healthy component that used none of it; text from
the file made inert; a malformed outlook costs its line, never the command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from autoheal.cli.status import outlook_text
from autoheal.store.atomic import write_json_atomic

from .test_status import NOW, health_doc, run_status, write_daemon_heartbeat

pytestmark = [pytest.mark.timeout(60)]


@pytest.fixture
def rt(tmp_path: Path) -> Path:
    """A rt folder with a beating daemon (``test_status.py``'s files)."""
    folder = tmp_path / "shared_data"
    folder.mkdir()
    write_daemon_heartbeat(folder, age_s=0.3)
    return folder


def view(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "next": "scheduled", "reason": "heartbeat_stale", "attempt": 2, "attempts": 1,
        "max_restarts": 3, "attempts_left": 2, "restart_at": NOW + 12.44,
        "verify_until": None, "attempts_reset_at": None, "stable_reset_s": 600.0,
        "on_failure": "restart", "on_failure_delay_s": 30.0,
    }  # fmt: skip
    doc.update(overrides)
    return doc


def write_feeder(rt: Path, stage: str, outlook: dict[str, Any]) -> None:
    doc = health_doc(dor=False)
    doc["components"]["feeder"].update(ok=False, stage=stage, outlook=outlook)
    write_json_atomic(rt / "health_v2.json", doc, durable=False)


def test_a_backoff_says_when_which_attempt_why_and_the_budget(rt: Path) -> None:
    write_feeder(rt, "BACKOFF", view())
    code, text = run_status(rt)
    lines = text.splitlines()
    assert code == 1
    head = lines.index("NAME    STAGE    NEXT RESTART")
    assert lines[head - 1] == ""  # a table of its own, under the components
    assert lines[head + 1 :] == [
        "feeder  BACKOFF  restart in 12.4s (attempt 2 of 3, reason heartbeat_stale); "
        "if it fails: restart after 30.0s; budget resets 10m00s after it is healthy"
    ]


@pytest.mark.parametrize(
    ("outlook", "expected"),
    [
        (view(restart_at=NOW - 3), "restart due now (attempt 2 of 3, reason heartbeat_stale)"),
        (
            view(attempt=3, attempts=2, on_failure="failsafe", on_failure_delay_s=None),
            "restart in 12.4s (attempt 3 of 3, the last, reason heartbeat_stale); "
            "if it fails: FAILSAFE (no attempt left); budget resets 10m00s after it is healthy",
        ),
        (
            view(next="verifying", attempt=1, restart_at=None, verify_until=NOW + 80.2,
                 on_failure_delay_s=15.0),
            "verifying the restart (attempt 1 of 3, at most 1m20s more); "
            "if it fails: restart after 15.0s",
        ),
        (
            view(next="healthy", attempt=None, restart_at=None, attempts_reset_at=NOW + 598.0),
            "healthy, no restart due; if it fails: restart after 30.0s; "
            "1 of 3 attempts used, budget resets in 9m58s",
        ),
        (view(next="healthy", attempt=None, attempts=0, restart_at=None), None),
        (
            view(next="failsafe", reason="max_restarts_exceeded", attempt=None, attempts=3,
                 restart_at=None, on_failure=None, on_failure_delay_s=None),
            "no restart while the failsafe holds (reason max_restarts_exceeded); "
            "3 of 3 attempts used",
        ),
        (
            view(next="held", attempt=None, restart_at=None, on_failure=None),
            "no restart: stopped by an operator; 1 of 3 attempts used",
        ),
        (
            view(next="watching", attempt=None, attempts=0, restart_at=None,
                 on_failure_delay_s=0.0),
            "no restart yet: watching its probes (reason heartbeat_stale); "
            "if it fails: restart at once; 0 of 3 attempts used",
        ),
        (view(next="surprise"), None),
    ],
)  # fmt: skip
def test_each_outlook_in_words(outlook: dict[str, Any], expected: str | None) -> None:
    # "1 of 3 attempts used" only when the budget's reset is not shown with it
    line = outlook_text(outlook, NOW)
    if expected is None:
        assert line is None
    else:
        assert line is not None and line.startswith(expected), line


def test_a_healthy_runtime_prints_no_restart_table(rt: Path) -> None:
    doc = health_doc()
    for comp in doc["components"].values():
        comp["outlook"] = view(next="healthy", attempts=0, attempt=None, restart_at=None)
    write_json_atomic(rt / "health_v2.json", doc, durable=False)
    _, text = run_status(rt)
    assert "NEXT RESTART" not in text and text.endswith("http=3ms\n")


def test_text_from_the_file_is_inert_and_bad_types_cost_nothing(rt: Path) -> None:
    write_feeder(rt, "BACKOFF", view(reason="x\x1b]0;pwned\x07\u202eevil", attempt="2"))
    code, text = run_status(rt)
    assert code == 1
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "reason x\\x1b]0;pwned\\x07\\u202eevil" in text
    assert "attempt ? of 3" in text  # a string where a number belongs
    write_feeder(rt, "BACKOFF", "not an object")  # type: ignore[arg-type]
    code, text = run_status(rt)
    assert code == 1 and "NEXT RESTART" not in text


def test_json_counts_the_moments_down_against_the_commands_clock(rt: Path) -> None:
    write_feeder(rt, "BACKOFF", view(attempts_reset_at=NOW - 2.0))
    _, text = run_status(rt, as_json=True)
    shown = orjson.loads(text)["components"]["feeder"]["outlook"]
    assert shown["restart_at"] == NOW + 12.44 and shown["restart_in_s"] == pytest.approx(12.44)
    assert shown["attempts_reset_in_s"] == pytest.approx(-2.0)  # past: the file is old
    assert shown["verify_in_s"] is None
    assert shown["attempts"] == 1 and shown["next"] == "scheduled"
