"""The ``[risk]`` table: Decimal limits, per-symbol overrides, and errors that name the key."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from autoheal.cli import main
from autoheal.config import ConfigError, load_config
from tests.config.test_load import BUNDLED

HEAD = 'environment = "paper"\n'

GOOD = HEAD + """
[risk]
max_order_qty = 0.01
max_order_notional = 1000
max_position = 0.05
max_live_notional_total = 5000
price_collar_pct = 2.5
max_orders_per_second = 4
max_daily_loss = 250

[risk.symbols.ETHUSDT]
max_order_qty = 0.5
max_position = 2
"""

# (id, [risk] text, the key the error must name, a fragment of the problem)
BAD_RISK: list[tuple[str, str, str, str]] = [
    ("negative", "[risk]\nmax_order_qty = -1\n", "risk.max_order_qty", "greater than zero"),
    ("zero_notional", "[risk]\nmax_order_notional = 0\n", "risk.max_order_notional",
     "greater than zero"),
    ("zero_collar", "[risk]\nprice_collar_pct = 0.0\n", "risk.price_collar_pct",
     "greater than zero"),
    ("string_limit", '[risk]\nmax_position = "1"\n', "risk.max_position",
     "expected integer or number, got string"),
    ("bool_limit", "[risk]\nmax_daily_loss = true\n", "risk.max_daily_loss",
     "expected integer or number, got boolean"),
    ("float_throttle", "[risk]\nmax_orders_per_second = 1.5\n", "risk.max_orders_per_second",
     "expected integer, got number"),
    ("zero_throttle", "[risk]\nmax_orders_per_second = 0\n", "risk.max_orders_per_second",
     "at least 1"),
    ("nan", "[risk]\nmax_live_notional_total = nan\n", "risk.max_live_notional_total", "finite"),
    # Issue 18 A7: a non-finite or non-positive limit is an error, never "no limit".
    ("inf", "[risk]\nmax_order_notional = inf\n", "risk.max_order_notional", "finite"),
    ("minus_inf", "[risk]\nmax_daily_loss = -inf\n", "risk.max_daily_loss", "finite"),
    ("overflows_to_inf", "[risk]\nmax_daily_loss = 1e400\n", "risk.max_daily_loss", "finite"),
    ("negative_loss", "[risk]\nmax_daily_loss = -500\n", "risk.max_daily_loss",
     "greater than zero"),
    ("zero_loss", "[risk]\nmax_daily_loss = 0\n", "risk.max_daily_loss", "greater than zero"),
    ("minus_zero", "[risk]\nmax_position = -0.0\n", "risk.max_position", "greater than zero"),
    ("huge", "[risk]\nmax_live_notional_total = 1e40\n", "risk.max_live_notional_total",
     "1E+40 is outside 1E-30 to 1E+30 in magnitude"),
    ("tiny", "[risk]\nmax_order_qty = 1e-40\n", "risk.max_order_qty", "is outside"),
    ("symbol_nan", "[risk.symbols.BTCUSDT]\nmax_order_notional = nan\n",
     "risk.symbols.BTCUSDT.max_order_notional", "finite"),
    ("symbol_inf", "[risk.symbols.BTCUSDT]\nprice_collar_pct = inf\n",
     "risk.symbols.BTCUSDT.price_collar_pct", "finite"),
    ("unknown", "[risk]\nmax_order_quantity = 1\n", "risk.max_order_quantity",
     "unknown field (did you mean 'max_order_qty'?)"),
    ("symbol_negative", "[risk.symbols.BTCUSDT]\nmax_position = -0.5\n",
     "risk.symbols.BTCUSDT.max_position", "greater than zero"),
    ("symbol_wrong_type", '[risk.symbols.BTCUSDT]\nmax_order_qty = "lots"\n',
     "risk.symbols.BTCUSDT.max_order_qty", "expected integer or number, got string"),
    ("symbol_global_key", "[risk.symbols.BTCUSDT]\nmax_daily_loss = 5\n",
     "risk.symbols.BTCUSDT.max_daily_loss", "unknown field"),
    ("symbol_not_table", "[risk.symbols]\nBTCUSDT = 5\n", "risk.symbols.BTCUSDT",
     "expected table, got integer"),
    ("risk_not_table", "risk = 5\n", "risk", "expected table, got integer"),
]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "autoheal.toml"
    path.write_text(text)
    return path


def test_risk_table_resolves_to_decimal_limits(tmp_path: Path) -> None:
    risk = load_config(write(tmp_path, GOOD)).risk
    assert risk is not None
    assert risk.default.max_order_qty == Decimal("0.01")
    assert risk.default.price_collar_pct == Decimal("2.5")
    assert risk.max_orders_per_second == 4
    assert risk.max_daily_loss == Decimal(250)
    eth = risk.for_symbol("ETHUSDT")
    assert (eth.max_order_qty, eth.max_position, eth.max_order_notional) == (
        Decimal("0.5"), Decimal(2), Decimal(1000))
    assert risk.for_symbol("BTCUSDT").max_position == Decimal("0.05")


def test_no_risk_table_means_no_limits(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, HEAD)).risk is None


def test_bundled_config_ships_a_risk_table() -> None:
    risk = load_config(BUNDLED).risk
    assert risk is not None
    assert risk.max_daily_loss is not None and risk.max_live_notional_total is not None


@pytest.mark.parametrize(("text", "key", "problem"), [c[1:] for c in BAD_RISK],
                         ids=[c[0] for c in BAD_RISK])
def test_each_bad_risk_value_names_its_key(tmp_path: Path, text: str, key: str,
                                           problem: str) -> None:
    path = write(tmp_path, HEAD + text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert (info.value.file, info.value.key) == (str(path), key)
    assert problem in info.value.problem


def test_check_config_exits_2_naming_the_risk_key(tmp_path: Path, capsys) -> None:
    path = write(tmp_path, HEAD + "[risk.symbols.BTCUSDT]\nmax_position = -0.5\n")
    assert main(["check-config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: risk.symbols.BTCUSDT.max_position: must be greater than zero" in err


@pytest.mark.parametrize(("text", "line"), [
    ("[risk]\nmax_daily_loss = inf\n", "risk.max_daily_loss: must be a finite number"),
    ("[risk]\nmax_daily_loss = -500\n", "risk.max_daily_loss: must be greater than zero"),
    ("[risk.symbols.BTCUSDT]\nmax_order_notional = nan\n",
     "risk.symbols.BTCUSDT.max_order_notional: must be a finite number"),
])
def test_check_config_refuses_non_finite_and_non_positive_limits(
    tmp_path: Path, capsys, text: str, line: str
) -> None:
    path = write(tmp_path, HEAD + text)
    assert main(["check-config", "--config", str(path)]) == 2
    assert f"{path}: {line}" in capsys.readouterr().err


def test_config_file_placeholder_names_this_file(tmp_path: Path) -> None:
    text = '[services.trader]\nargv = ["t", "--risk-config", "{config_file}"]\n'
    path = write(tmp_path, HEAD + text)
    assert load_config(path).services["trader"].argv[-1] == str(path)


@pytest.mark.parametrize(("text", "line"), [
    ("[risk]\nmax_drawdown = 0\n", "risk.max_drawdown: must be greater than zero"),
    ("[risk]\nmax_drawdown_pct = 100\n", "risk.max_drawdown_pct: 100 is a percent of the peak"),
    ("[risk]\nloss_breach_reads = 0\n", "risk.loss_breach_reads: 0 is not 1..1000"),
    ("[risk]\nloss_breach_reads = 2.5\n", "risk.loss_breach_reads: expected int"),
])
def test_check_config_names_each_loss_key(tmp_path: Path, capsys, text: str, line: str) -> None:
    """The issue 24 keys: a precise error naming the key, exit 2."""
    path = write(tmp_path, HEAD + text)
    assert main(["check-config", "--config", str(path)]) == 2
    assert f"{path}: {line}" in capsys.readouterr().err


def test_the_loss_keys_resolve(tmp_path: Path) -> None:
    text = "[risk]\nmax_drawdown = 800\nmax_drawdown_pct = 7.5\nloss_breach_reads = 5\n"
    risk = load_config(write(tmp_path, HEAD + text)).risk
    assert risk is not None
    assert (risk.max_drawdown, risk.max_drawdown_pct, risk.loss_breach_reads) == (
        Decimal(800), Decimal("7.5"), 5)
    default = load_config(write(tmp_path, HEAD + "[risk]\nmax_daily_loss = 5\n")).risk
    assert default is not None and default.loss_breach_reads == 3
