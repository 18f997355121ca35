"""The feed drills (issue 23): feed_frozen and feed_sequence_gap pass, and each turns FAILED
under its documented mutation, naming what broke.

Both run a real ``autoheal run --chaos`` on the small feeder-only stack
(``scenarios/feed_demo.toml.in``): a few seconds each. The mutations are data
(``Scenario.with_params``): a feed_lag probe whose ``max_age`` or ``max_gaps`` is out of
reach, as a config that cannot see the failure would be.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from autoheal.drills import Status, load_catalog
from tests.drills.mutants import run, violated

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

FEED_DRILLS = ("feed_frozen", "feed_sequence_gap")


def test_feed_drills_are_daemon_drills_in_the_default_set() -> None:
    catalog = load_catalog()
    for name in FEED_DRILLS:
        assert catalog[name].kind == "daemon" and catalog[name].default, name
        assert catalog[name].params["config"] == "feed_demo.toml.in"


@pytest.mark.parametrize("drill", FEED_DRILLS)
def test_feed_drill_passes_with_the_feeder_restarted(tmp_path: Path, drill: str) -> None:
    result = run(tmp_path, drill)
    assert result.status is Status.PASSED, (result.failed_criteria, result.details.get("error"))
    assert result.time_to_detect_s is not None and result.time_to_recover_s is not None
    assert result.details["daemon_exit"] == 0


def test_feed_frozen_max_age_out_of_reach_fails_detection_and_restart(tmp_path: Path) -> None:
    scenario_vars = dict(load_catalog()["feed_frozen"].params["vars"])
    bad = violated(run(tmp_path, "feed_frozen", vars={**scenario_vars, "feed_max_age": "1h"}))
    assert {
        "event:detected",
        "event:failing",
        "event:restarted",
        "event:dor_back",
        "restarted",
        "others_not_alarmed_at_detect",
        "heartbeat_fresh_at_detect",
    } <= bad
    assert "no_failsafe" not in bad and "daemon_survived" not in bad


def test_feed_sequence_gap_tolerated_without_end_fails_detection_and_restart(
    tmp_path: Path,
) -> None:
    scenario_vars = dict(load_catalog()["feed_sequence_gap"].params["vars"])
    bad = violated(
        run(tmp_path, "feed_sequence_gap", vars={**scenario_vars, "feed_max_gaps": 1000000})
    )
    assert {
        "event:detected",
        "event:failing",
        "event:restarted",
        "event:dor_back",
        "one_restart",
    } <= bad
    assert "no_failsafe" not in bad and "daemon_survived" not in bad
