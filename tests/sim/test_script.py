"""A run as a script: a seed's own acts replay its run; an act that no longer applies
does nothing."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from autoheal.sim.run import run_seed
from autoheal.sim.script import run_script, script_of_trace

pytestmark = [pytest.mark.timeout(120)]


def test_a_seeds_script_replays_its_trace_line_for_line(tmp_path: Path) -> None:
    seeded, replayed = tmp_path / "seeded.jsonl", tmp_path / "replayed.jsonl"
    out = run_seed(3, 5, trace_path=seeded)
    script = script_of_trace(seeded)
    assert len(script) == out.steps > 10
    again = run_script(script, seed=3, trace_path=replayed)
    # The header says it is a replay; every line after it is the same.
    assert seeded.read_bytes().splitlines()[1:] == replayed.read_bytes().splitlines()[1:]
    assert again.failures == out.failures == []


def test_every_step_line_holds_what_redoes_it(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    run_seed(8, 5, trace_path=path)
    steps = [orjson.loads(x) for x in path.read_bytes().splitlines()[1:]]
    steps = [s for s in steps if "do" in s]
    assert steps and all("gap" in s["do"] and "act" in s["do"] for s in steps)
    for s in steps:
        if s["do"]["act"] == "command":  # the command and its key, not just its outcome
            assert {"key", "type", "target"} <= set(s["do"])


def test_an_act_that_no_longer_applies_does_nothing(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    script = [
        {"gap": 1.0, "act": "daemon_kill", "passes": 0, "down_s": 60.0},
        {"gap": 1.0, "act": "daemon_kill", "passes": 3, "down_s": 0.0},  # already down
        {"gap": 1.0, "act": "crash", "name": "feeder", "code": 1},  # they outlive the daemon
        {"gap": 70.0, "act": "daemon_start"},
        {"gap": 1.0, "act": "daemon_start"},  # already up
    ]
    out = run_script(script, seed=1, trace_path=path)
    acts = [orjson.loads(x)["act"] for x in path.read_bytes().splitlines()[2:7]]
    assert acts[1] == {"act": "daemon_kill", "up": False}
    assert acts[3]["act"] == "daemon_start" and "already_up" not in acts[3]
    assert acts[4] == {"act": "daemon_start", "already_up": True}
    assert out.failures == []
