"""``unknown_outcome_never_resent`` for real (fake exchange process, the demo trader's order
path), and the mutations under which it must report FAILED."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest

from autoheal.drills import DrillResult, Status, load_catalog, run_one

pytestmark = pytest.mark.slow
DRILL = "unknown_outcome_never_resent"


def run(tmp_path: Path, **params: Any) -> DrillResult:
    scenario = load_catalog()[DRILL].with_params(**params)
    return anyio.run(partial(run_one, scenario, tmp_path / DRILL))


def failed(result: DrillResult) -> dict[str, str]:
    assert result.status is Status.FAILED, (result.status, result.details.get("error"))
    return {c.name: c.observed for c in result.failed_criteria}


def test_accepted_then_cut_is_reconciled_and_exactly_one_order_exists(tmp_path: Path) -> None:
    result = run(tmp_path)
    assert result.status is Status.PASSED, [(c.name, c.observed) for c in result.failed_criteria]
    assert result.gates_fired == ("order_outcome_unknown",)
    assert len(result.details["client_order_id"]) == 32  # the order's signature


def test_mutation_blind_resend_reaches_the_exchange_twice(tmp_path: Path) -> None:
    bad = failed(run(tmp_path, reconcile=False))
    # The exchange recognised the signature as client order id (still one order), but a
    # second request went out, unasked; nobody looked the order up.
    assert set(bad) == {"order_requests_at_exchange", "lookups_at_exchange", "log"}
    assert bad["order_requests_at_exchange"] == "2" and bad["lookups_at_exchange"] == "0"


def test_mutation_random_client_order_ids_fill_the_order_twice(tmp_path: Path) -> None:
    bad = failed(run(tmp_path, client_order_id="random"))
    assert bad["orders_at_exchange"] == "2" and bad["order_requests_at_exchange"] == "2"
    assert bad["bought_at_exchange"] == "0.002"
    assert bad["trader_position_matches_exchange"] == "false"
