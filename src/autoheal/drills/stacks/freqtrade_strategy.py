"""A freqtrade strategy that trades on every bot loop: the drills' and tests' bot.

Not imported by autoheal: :mod:`autoheal.drills.stacks.freqtrade` copies this file into
the bot's ``user_data/strategies`` and freqtrade loads it (it needs freqtrade and
pandas, which autoheal does not).

Each loop it exits the trade it holds and enters another, so that "no new trade opens"
is something a test can watch fail: with ``max_open_trades`` 1 and two pairs, one trade
opens per loop. Entries are signalled on every candle; every trade exits at the next
loop (``custom_exit``); and freqtrade's one-candle lock of a pair after an exit ("Auto
lock", a minute at 1m) is lifted at the start of each loop, through the strategy API
freqtrade documents for it (``unlock_reason``). A refusal of an entry (``stopentry``,
``confirm_trade_entry``, a full slot count) is therefore the only reason a loop opens
nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from freqtrade.strategy import IStrategy
from pandas import DataFrame

from autoheal.guard.freqtrade import AutohealEntryGuard

#: The reason freqtrade gives the lock it puts on a pair after an exit.
AUTO_LOCK = "Auto lock"


class AutohealDemoStrategy(IStrategy):  # type: ignore[misc]  # freqtrade is untyped here
    """Enter on every candle, exit at the next loop."""

    INTERFACE_VERSION = 3
    timeframe = "1m"
    can_short = False
    minimal_roi = {"0": 100.0}  # never by ROI: custom_exit decides
    stoploss = -0.99
    trailing_stop = False
    startup_candle_count = 0
    process_only_new_candles = True
    use_exit_signal = True
    exit_profit_only = False

    def bot_loop_start(self, current_time: datetime, **kwargs: Any) -> None:
        self.unlock_reason(AUTO_LOCK)

    def populate_indicators(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        return dataframe

    def populate_entry_trend(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        dataframe["enter_long"] = 1
        return dataframe

    def populate_exit_trend(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        dataframe["exit_long"] = 0
        return dataframe

    def custom_exit(
        self,
        pair: str,
        trade: Any,
        current_time: datetime,
        current_rate: float,
        current_profit: float,
        **kwargs: Any,
    ) -> str:
        return "autoheal_demo_exit"



class AutohealGuardedStrategy(AutohealEntryGuard, AutohealDemoStrategy):
    """The same strategy, each entry asked of autoheal's trading gate first (the bot runs
    in autoheal's environment in the drills, so the guard is importable)."""
