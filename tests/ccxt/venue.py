"""The demo venue for the ccxt tests: one exchange process, ccxt's own classes pointed at it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ccxt.async_support as ccxt
import httpx

from autoheal.demo.venue_urls import loopback_urls
from autoheal.store.flags import Flags, write_flags

KEY = "demo" + "k" * 60
SECRET = "demo" + "s" * 60
BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"


def binance(url: str) -> Any:
    """ccxt's unmodified ``binanceusdm``, on the demo venue."""
    exchange = ccxt.binanceusdm({"apiKey": KEY, "secret": SECRET})
    exchange.urls["api"] = loopback_urls(exchange.urls["api"], url)
    return exchange


def runtime(path: Path, flags: Flags | None = None) -> tuple[Path, Path]:
    """A runtime directory as the daemon keeps it, and its stop file's path."""
    path.mkdir(parents=True, exist_ok=True)
    write_flags(path, flags or Flags())
    return path, path / "STOP.TXT"


async def stats(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=5.0) as client:
        doc: dict[str, Any] = (await client.get("/admin/stats")).raise_for_status().json()
        return doc


async def fault(url: str, mode: str, path: str, count: int | None = 1) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=5.0) as client:
        body = {"mode": mode, "paths": [path], "count": count}
        (await client.post("/admin/fault", json=body)).raise_for_status()
