"""Normalising symbols and sides, shared by the breaker, idempotency and the inventory gate."""

from __future__ import annotations

__all__ = ["RISK_REDUCING_ACTIONS", "normalize_action", "normalize_symbol"]

#: Actions that can only shrink exposure; an open breaker lets them through.
RISK_REDUCING_ACTIONS = frozenset({"sell", "cancel", "close"})
_KNOWN_ACTIONS = frozenset({"buy"}) | RISK_REDUCING_ACTIONS


def normalize_symbol(symbol: str) -> str:
    """``"btc/usdt"``, ``"BTC-USDT"`` and ``"BTCUSDT"`` are one market: ``"BTCUSDT"``."""
    return "".join(ch for ch in str(symbol).upper() if ch.isalnum())


def normalize_action(action: str) -> str | None:
    """Lower-case a known action (``buy``, ``sell``, ``cancel``, ``close``); ``None`` if unknown."""
    if not isinstance(action, str):
        return None
    lowered = action.strip().lower()
    return lowered if lowered in _KNOWN_ACTIONS else None
