"""Fixtures of the ccxt tests: each test starts its own demo venue on port 0 and stops it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from autoheal.drills.stacks.exchange import ExchangeHarness
from tests.ccxt.venue import KEY, SECRET


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # ccxt's async support is asyncio's (aiohttp)


@pytest.fixture
def venue(tmp_path: Path) -> Iterator[ExchangeHarness]:
    harness = ExchangeHarness(tmp_path / "ex", credentials=(KEY, SECRET))
    anyio.run(harness.start)
    try:
        yield harness
    finally:
        anyio.run(harness.stop)
