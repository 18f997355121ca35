"""The trading gate inside a freqtrade strategy: no entry while autoheal says no.

::

    from freqtrade.strategy import IStrategy
    from autoheal.guard.freqtrade import AutohealEntryGuard

    class MyStrategy(AutohealEntryGuard, IStrategy):
        ...

freqtrade asks ``confirm_trade_entry`` right before it places an entry order; the
mixin answers with :class:`~autoheal.guard.gate.TradingGate`'s verdict and logs the
reason token (``autoheal_entry_refused pair=BTC/USDT side=long reason=stop_file_present``).
An entry opens exposure whether it is long or short, so it is asked as a ``buy``: it
is refused under STOP.TXT, a failsafe, REDUCE_ONLY, DEGRADED, an open breaker for the
pair, or a kill switch that cannot be found. Exits are never touched (freqtrade's
``confirm_trade_exit`` stays the strategy's own): a halted bot can still get out.

A strategy that defines its own ``confirm_trade_entry`` keeps it: the gate is asked
first, and the strategy's method only when the gate allows. The mixin wraps whatever
method freqtrade would call when the class is defined, so neither a forgotten
``super()`` nor the mixin placed after ``IStrategy`` can bypass the gate.

The kill switch is found as every guard object finds it
(:mod:`autoheal.guard.kill_switch`): ``autoheal_runtime_dir`` / ``autoheal_stop_file``
on the strategy class when set, else ``AUTOHEAL_RUNTIME_DIR`` / ``AUTOHEAL_STOP_FILE``,
which the daemon sets for the bot it supervises. This module imports neither freqtrade
nor anything outside the standard library and the guard.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, ClassVar

from autoheal.guard.gate import TradingGate

__all__ = ["AutohealEntryGuard"]

log = logging.getLogger("autoheal.guard.freqtrade")

_GUARDED = "_autoheal_guarded"


class AutohealEntryGuard:
    """Mix into a freqtrade strategy, before ``IStrategy`` (see the module docstring)."""

    #: Absolute paths of the kill switch; None: from the daemon's environment.
    autoheal_runtime_dir: ClassVar[str | None] = None
    autoheal_stop_file: ClassVar[str | None] = None

    _autoheal_gate: TradingGate | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Whatever freqtrade will call (the class's own method, or a base's placed
        # before the mixin in the bases) asks the gate first.
        resolved = cls.confirm_trade_entry
        if not getattr(resolved, _GUARDED, False):
            cls.confirm_trade_entry = _gated(resolved)  # type: ignore[method-assign]

    def autoheal_gate(self) -> TradingGate:
        """The gate, made on first use (a strategy is built before the bot runs)."""
        if self._autoheal_gate is None:
            self._autoheal_gate = TradingGate(self.autoheal_runtime_dir, self.autoheal_stop_file)
        return self._autoheal_gate

    def autoheal_entry_allowed(self, pair: str, side: str) -> bool:
        """The gate's verdict for an entry on ``pair`` (``long`` or ``short``), logged."""
        try:
            allowed, reason = self.autoheal_gate().allowed("buy", symbol=pair.partition(":")[0])
        except Exception as exc:  # a gate that cannot answer says no
            allowed, reason = False, f"guard_error {type(exc).__name__}"
        if not allowed:
            log.warning("autoheal_entry_refused pair=%s side=%s reason=%s", pair, side, reason)
        return allowed

    def confirm_trade_entry(  # noqa: PLR0917 - freqtrade's own signature
        self,
        pair: str,
        order_type: str,
        amount: float,
        rate: float,
        time_in_force: str,
        current_time: Any,
        entry_tag: str | None,
        side: str,
        **kwargs: Any,
    ) -> bool:
        if not self.autoheal_entry_allowed(pair, side):
            return False
        parent = getattr(super(), "confirm_trade_entry", None)
        if parent is None:
            return True
        return bool(
            parent(
                pair,
                order_type,
                amount,
                rate,
                time_in_force,
                current_time,
                entry_tag,
                side,
                **kwargs,
            )
        )


setattr(AutohealEntryGuard.confirm_trade_entry, _GUARDED, True)


def _gated(method: Callable[..., Any]) -> Callable[..., Any]:
    """A strategy's own ``confirm_trade_entry``, asked only when the gate allows."""

    @functools.wraps(method)
    def confirm_trade_entry(self: AutohealEntryGuard, pair: str, *args: Any, **kwargs: Any) -> Any:
        side = kwargs.get("side", args[6] if len(args) > 6 else "long")
        if not self.autoheal_entry_allowed(pair, str(side)):
            return False
        return method(self, pair, *args, **kwargs)

    setattr(confirm_trade_entry, _GUARDED, True)
    return confirm_trade_entry
