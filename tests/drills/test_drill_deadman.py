"""The dead man's switch drills, for real (fake exchange + demo trader processes), and the
mutations under which each must report FAILED."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest

from autoheal.drills import DrillResult, Status, load_catalog, run_one

pytestmark = pytest.mark.slow

HOST_DIES = "host_dies_with_resting_orders"
STOP_FILE = "stop_file_cancels_resting_orders"


def run(tmp_path: Path, drill: str, **params: Any) -> DrillResult:
    scenario = load_catalog()[drill].with_params(**params)
    return anyio.run(partial(run_one, scenario, tmp_path / drill))


def failed(result: DrillResult) -> dict[str, str]:
    assert result.status is Status.FAILED, (result.status, result.details.get("error"))
    return {c.name: c.observed for c in result.failed_criteria}


def passed(result: DrillResult) -> None:
    assert result.status is Status.PASSED, (
        [(c.name, c.expected, c.observed) for c in result.failed_criteria],
        result.details.get("error"))


def test_both_drills_are_in_the_catalog_and_the_default_run() -> None:
    catalog = load_catalog()
    assert catalog[HOST_DIES].default and catalog[STOP_FILE].default
    assert catalog[HOST_DIES].kind == "deadman_host_dies"
    assert catalog[STOP_FILE].kind == "deadman_stop_file"


def test_host_dies_the_exchange_countdown_empties_the_book(tmp_path: Path) -> None:
    result = run(tmp_path, HOST_DIES)
    passed(result)
    countdown, refresh = result.details["countdown_s"], result.details["refresh_s"]
    assert (countdown, refresh) == pytest.approx((2.0, 0.5))
    events = result.details["events_after_fault_s"]
    # Not before the countdown since the last refresh could have run out; not after one more.
    assert countdown - refresh - 0.1 <= events["book_empty"] - events["trader_killed"]
    assert events["book_empty"] <= countdown + refresh
    assert result.gates_fired == ("exchange_countdown_cancel_all",)
    assert result.details["daemon_pid"] > 0  # supervised by a real autoheal run
    assert "stop_daemon" in result.details["rollback"][0]


def test_host_dies_mutation_countdown_never_armed_leaves_the_orders(tmp_path: Path) -> None:
    bad = failed(run(tmp_path, HOST_DIES, deadman=False))
    assert bad == {"event:book_empty": "never observed", "countdown_armed_before_fault": "false",
                   "open_after": "3", "cancel_reasons": "[]"}


def test_stop_file_cancels_at_once_and_the_trader_places_nothing_more(tmp_path: Path) -> None:
    result = run(tmp_path, STOP_FILE)
    passed(result)
    assert result.details["events_after_fault_s"]["book_empty"] < 0.5  # refresh 0.5 s
    assert result.gates_fired == ("deadman_cancel_all",)


def test_stop_file_mutation_cancel_disabled_leaves_the_orders_to_the_countdown(
        tmp_path: Path) -> None:
    result = run(tmp_path, STOP_FILE, cancel_on_halt=False)
    bad = failed(result)
    assert set(bad) == {"event:book_empty", "cancel_reasons"}
    assert bad["cancel_reasons"] == "['countdown']"  # the exchange's backstop, too late
    assert result.details["events_after_fault_s"]["book_empty"] > 0.75


def test_frozen_trader_variant_the_exchange_countdown_empties_the_book(tmp_path: Path) -> None:
    """SIGSTOP, not SIGKILL: alive but frozen, its switch refreshes nothing."""
    result = run(tmp_path, "host_hangs_with_resting_orders")
    passed(result)
    assert not load_catalog()["host_hangs_with_resting_orders"].default
    assert result.details["events_after_fault_s"]["book_empty"] <= 2.5
    assert result.details["rollback"][0] == "stop_trader: 0"  # thawed, then a clean SIGTERM exit
