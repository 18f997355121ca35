"""The one rule for the numbers the risk checks use (``autoheal.guard.risk_numbers``)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from autoheal.guard.risk_numbers import amount_problem, is_amount, signed_problem, total_problem
from tests.guard.test_guard_risk_numbers import BAD_AMOUNTS


# -- amounts -------------------------------------------------------------------------------
@pytest.mark.parametrize("value", BAD_AMOUNTS)
def test_amount_problem_names_every_bad_number(value):
    assert not is_amount(value)
    assert amount_problem(value)


@pytest.mark.parametrize("value", [D("0.00000001"), D(65000), D("1E-30"), D("1E+30")])
def test_amount_problem_accepts_real_amounts(value):
    assert is_amount(value) and amount_problem(value) is None


def test_signed_problem_accepts_zero_and_shorts_only():
    assert signed_problem(D(0)) is None and signed_problem(D("-2.5")) is None
    for bad in (D("NaN"), D("-Infinity"), D("1E+999999"), D("-1E+999999999999"), 0.0):
        assert signed_problem(bad)


def test_total_problem_bounds_running_totals_without_overflowing():
    assert total_problem(D("-1E+99")) is None
    for bad in (D("NaN"), D("1E+101"), D("-1E+999999999999"), "5"):
        assert total_problem(bad)
