"""Each freqtrade test starts its own demo exchange and dry-run bot (port 0 / a free port,
in ``tmp_path``) and stops both; each is skipped where freqtrade is not installed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from autoheal.drills.stacks.exchange import ExchangeHarness
from autoheal.drills.stacks.freqtrade import BotSettings, FreqtradeHarness, freqtrade_missing

#: Why the tests here cannot run (freqtrade not installed), else None.
MISSING = freqtrade_missing()
needs_freqtrade = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def running_bot(
    directory: Path, settings: BotSettings | None = None
) -> AsyncIterator[tuple[ExchangeHarness, FreqtradeHarness]]:
    """The demo exchange, then a bot on it; both stopped on the way out, whatever happened."""
    venue = await ExchangeHarness(directory / "ex").start()
    try:
        bot = FreqtradeHarness(directory / "bot", venue.url, settings)
        await bot.start()
        try:
            yield venue, bot
        finally:
            await bot.stop()
    finally:
        await venue.stop()
