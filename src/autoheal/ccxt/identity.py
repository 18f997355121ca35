"""Which orders are this runtime's: a client order id that carries its prefix.

The guard names an order by its signature (or the caller's idempotency key,
:mod:`autoheal.guard.order_identity`). On the wire it becomes ``prefix + signature``,
cut to :data:`MAX_LEN` characters, letters and digits only: the strictest venue's
rule (OKX's ``clOrdId``: up to 32 alphanumerics; Binance allows 36 and ``.:/_-``).
The prefix is how a kill tells this runtime's orders from a person's order placed by
hand at the venue, which it must leave alone.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["DEFAULT_PREFIX", "MAX_LEN", "check_prefix", "client_order_id", "is_own"]

DEFAULT_PREFIX = "ah"
MAX_LEN = 32
_ALNUM = re.compile(r"^[A-Za-z0-9]+$")


def check_prefix(prefix: str) -> str:
    """``prefix`` if usable (2 to 8 letters or digits), else ``ValueError`` saying why."""
    if not isinstance(prefix, str) or not 2 <= len(prefix) <= 8 or not _ALNUM.match(prefix):
        raise ValueError(f"client order id prefix must be 2 to 8 letters or digits, got {prefix!r}")
    return prefix


def client_order_id(prefix: str, name: str) -> str:
    """The wire id of the order the guard calls ``name`` (its signature, or a key).

    A name of letters and digits is kept, cut to fit (a signature's 32 hex digits keep
    at least 24: still unique); any other name (a bot's own ``"grid-7"``) is replaced by
    its SHA-256 in hex, so the same name always gives the same id.
    """
    check_prefix(prefix)
    room = MAX_LEN - len(prefix)
    if not _ALNUM.match(name):
        name = hashlib.sha256(name.encode()).hexdigest()
    return prefix + name[:room]


def is_own(order: Mapping[str, Any], prefix: str) -> bool:
    """Whether a ccxt order document (``clientOrderId``) is this runtime's."""
    cid = order.get("clientOrderId")
    return isinstance(cid, str) and cid.startswith(prefix) and len(cid) > len(prefix)
