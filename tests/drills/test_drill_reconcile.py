"""``reconcile_unknown_order`` for real (fake exchange process, the demo trader's order
path and its reconciliation), and the mutations under which it must report FAILED."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoheal.drills import Status
from tests.drills.mutants import run, violated

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]
DRILL = "reconcile_unknown_order"


def test_an_order_behind_the_guards_back_is_reported_within_one_period(tmp_path: Path) -> None:
    result = run(tmp_path, DRILL)
    assert result.status is Status.PASSED, [(c.name, c.observed) for c in result.failed_criteria]
    assert result.details["manual_order"]["client_order_id"] == "manual-by-hand-1"


def test_mutation_period_out_of_reach_is_not_reported_in_time(tmp_path: Path) -> None:
    bad = violated(run(tmp_path, DRILL, period_s=3600.0))
    # No pass after the first: nothing reported, nothing cleared; nothing adopted either.
    assert bad == {
        "event:reported",
        "unknown_at_venue",
        "alert_reasons",
        "reported_order_fields",
        "log",
        "event:cleared",
        "alert_cleared_after_cancel",
    }


def test_mutation_adopting_the_venues_orders_reports_nothing(tmp_path: Path) -> None:
    bad = violated(run(tmp_path, DRILL, adopt=True))
    assert bad == {
        "event:reported",
        "unknown_at_venue",
        "adopted_into_ledger",
        "alert_reasons",
        "reported_order_fields",
        "log",
    }
