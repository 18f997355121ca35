"""The judging drills of issue 23 on their small stack (``daemon_template``): each passes
as shipped, and FAILS under its documented mutation, naming the criteria that broke.

* ``flapping_probe``: the probe back on the consecutive rule (``vars.window = ""``)
  never restarts the 1-0-1-0 service.
* ``config_error_exit``: the exit-code rule removed (``vars.exit_rules = ""``): the
  service is restarted three times and the failsafe names ``max_restarts_exceeded``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from autoheal.drills import Status, load_catalog
from tests.drills.mutants import run, violated

pytestmark = [pytest.mark.slow]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("drill", ["flapping_probe", "config_error_exit"])
def test_the_judging_drills_pass_as_shipped(tmp_path: Path, drill: str) -> None:
    assert load_catalog()[drill].default
    result = run(tmp_path, drill)
    assert result.status is Status.PASSED, (result.failed_criteria, result.details.get("error"))


@pytest.mark.timeout(60)
def test_flapping_probe_on_the_consecutive_rule_is_never_restarted(tmp_path: Path) -> None:
    result = run(tmp_path, "flapping_probe", vars={"window": ""})
    bad = violated(result)
    # Whether DOR holds at the very end depends on the phase of the flap (either way).
    assert {"event:restarted", "event:dor_back", "one_restart"} <= bad
    assert bad <= {"event:restarted", "event:dor_back", "one_restart", "dor_at_end"}
    observed = {c.name: c.observed for c in result.failed_criteria}
    assert observed["event:restarted"] == "never observed"
    assert observed["one_restart"] == "0"
    assert "flapping" in result.details.get("events_after_fault_s", {})  # it did flap


@pytest.mark.timeout(60)
def test_config_error_exit_without_the_rule_restarts_and_fails(tmp_path: Path) -> None:
    result = run(tmp_path, "config_error_exit", vars={"exit_rules": ""})
    assert violated(result) == {
        "zero_restarts",
        "reason_names_the_code",
        "stop_file_names_the_code",
        "journal_names_the_code",
    }
    observed = {c.name: c.observed for c in result.failed_criteria}
    assert observed["zero_restarts"] == "3"
    assert "max_restarts_exceeded" in observed["reason_names_the_code"]
