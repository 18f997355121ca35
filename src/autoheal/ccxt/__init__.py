"""autoheal.ccxt: a ccxt bot made safe by wrapping its exchange (``pip install autoheal[ccxt]``).

The bot keeps its ccxt code. :class:`GuardedExchange` wraps its (``ccxt.async_support``)
exchange so that every ``create_order`` passes the guard first, and its kill cancels
only this runtime's own orders and verifies they are gone;
:class:`CcxtCountdownPort` arms the venue's own dead man's switch for
:class:`~autoheal.guard.deadman.DeadmanSwitch`::

    import ccxt.async_support as ccxt
    from autoheal.ccxt import GuardedExchange

    exchange = GuardedExchange(ccxt.binanceusdm({...}), symbols=["BTC/USDT:USDT"])
    await exchange.create_order("BTC/USDT:USDT", "limit", "buy", 0.01, 60000.0)

Nothing here imports ccxt: the exchange object is the caller's, and ccxt's exceptions
are classified by class name (:mod:`autoheal.guard.classify`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autoheal.ccxt.countdown import CcxtCountdownPort, CountdownUnsupportedError
    from autoheal.ccxt.guarded import (
        GuardedExchange,
        KillIncompleteError,
        KillReport,
        OrderRefusedError,
    )
    from autoheal.ccxt.identity import client_order_id, is_own

_EXPORTS = {
    "CcxtCountdownPort": "autoheal.ccxt.countdown",
    "CountdownUnsupportedError": "autoheal.ccxt.countdown",
    "GuardedExchange": "autoheal.ccxt.guarded",
    "KillIncompleteError": "autoheal.ccxt.guarded",
    "KillReport": "autoheal.ccxt.guarded",
    "OrderRefusedError": "autoheal.ccxt.guarded",
    "client_order_id": "autoheal.ccxt.identity",
    "is_own": "autoheal.ccxt.identity",
}

__all__ = [
    "CcxtCountdownPort",
    "CountdownUnsupportedError",
    "GuardedExchange",
    "KillIncompleteError",
    "KillReport",
    "OrderRefusedError",
    "client_order_id",
    "is_own",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'autoheal.ccxt' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
