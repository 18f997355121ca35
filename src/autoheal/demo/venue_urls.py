"""Point a ccxt exchange at the demo venue: every API URL's scheme and host replaced.

ccxt keeps an exchange's endpoints in ``exchange.urls['api']`` (a string, or a dict of
strings keyed by API family: ``fapiPrivate``, ``sapi``, ``public``...), and lets a
user replace them. Every one is pointed at the demo exchange, not only those the
dialect serves: a call to a family the demo does not speak is then a loud 404 on
loopback, never a request to the real venue. ccxt itself is not imported here.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["loopback_urls"]

_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]*://[^/]+", re.IGNORECASE)


def loopback_urls(api: Any, base: str) -> Any:
    """``api`` (ccxt's ``urls['api']``) with every URL's origin replaced by ``base``.

    Raises:
        ValueError: a value that is not a URL (nothing is half-replaced).
    """
    base = base.rstrip("/")
    if isinstance(api, str):
        if not _ORIGIN.match(api):
            raise ValueError(f"not a URL: {api!r}")
        return _ORIGIN.sub(base, api, count=1)
    if isinstance(api, dict):
        return {key: loopback_urls(value, base) for key, value in api.items()}
    raise ValueError(f"not a URL or a table of URLs: {type(api).__name__}")
