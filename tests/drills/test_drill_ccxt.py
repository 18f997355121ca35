"""The ccxt drills (issue 21) can fail: each, on each venue, under a mutation that models a
real defect, reports FAILED and names what broke. The unmutated drills pass in CI's
``autoheal drill run`` and in ``test_the_ccxt_drills_pass`` below.

Mutations (scenario parameters: data, not code; the ccxt trader's flags behind them are
``--no-deadman``, ``--kill-everything`` and ``--kill-unverified``):

* host dies: ``deadman = false``, the venue's countdown never armed: the book stays.
* STOP.TXT: ``own_only = false``, a kill that cancels a person's order too; and
  ``verify = false`` with a first cancel that fails (503), a kill that never reads back.
* lost answer: ``reconcile = false``, a blind resend (the venue refuses the repeated
  client order id: one order, two requests); ``client_order_id = "random"`` (two orders).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from autoheal.drills import Status
from tests.drills.mutants import run, violated

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


MUTANTS = [
    (
        "ccxt_host_dies_with_resting_orders_{v}",
        {"deadman": False},
        {"countdown_armed_before_fault", "event:book_empty", "open_after", "cancel_reasons"},
    ),
    ("ccxt_stop_cancels_only_own_orders_{v}", {"own_only": False}, {"manual_untouched"}),
    (
        "ccxt_stop_cancels_only_own_orders_{v}",
        {"verify": False, "first_cancel_fault": "http_503"},
        {"event:own_orders_gone", "own_open_after", "kill_verified"},
    ),
    # The venue refuses the resent client order id (a duplicate): one order, but a second
    # request reached it, and the bot got the refusal, not its order.
    (
        "ccxt_unknown_outcome_never_resent_{v}",
        {"reconcile": False},
        {
            "order_requests_at_venue",
            "lookups_at_venue",
            "answers_are_the_booked_order",
            "event:reconciled",
            "ledger_status",
        },
    ),
    (
        "ccxt_unknown_outcome_never_resent_{v}",
        {"client_order_id": "random"},
        {"orders_at_venue", "order_requests_at_venue", "answers_are_the_booked_order"},
    ),
]
CASES = [
    (drill.format(v=v), params, expected)
    for v in ("binance", "okx")
    for drill, params, expected in MUTANTS
]


@pytest.mark.parametrize(
    ("drill", "params", "expected"), CASES, ids=[f"{d}-{'-'.join(p)}" for d, p, _ in CASES]
)
def test_each_mutation_fails_the_drill_naming_what_broke(
    tmp_path: Path, drill: str, params: dict[str, Any], expected: set[str]
) -> None:
    assert violated(run(tmp_path, drill, **params)) == expected


def test_the_stop_drill_passes_with_a_first_cancel_that_fails_too(tmp_path: Path) -> None:
    # The verify mutation's fault, unmutated: the kill reads back, cancels again, verifies.
    result = run(
        tmp_path, "ccxt_stop_cancels_only_own_orders_binance", first_cancel_fault="http_503"
    )
    assert result.status is Status.PASSED, [c.name for c in result.failed_criteria]
