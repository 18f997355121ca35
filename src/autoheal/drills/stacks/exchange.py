"""The fake exchange as a real subprocess for a drill: start on port 0, fault, count, stop.

Drills count what reached the exchange through its ``/admin/stats`` endpoint, never
through the trader's own bookkeeping: an order the trader thinks it did not send but
the exchange saw is exactly the bug a drill exists to catch.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx

from autoheal.drills.errors import ExchangeError
from autoheal.store.atomic import read_json

__all__ = ["ExchangeHarness"]

START_TIMEOUT_S = 10.0


class ExchangeHarness:
    """One fake-exchange process in ``directory``.

    Args:
        directory: where its port file, stats file and log go.
        seed: the price walk's seed (logged with the drill for replay).
    """

    def __init__(self, directory: Path, *, seed: int = 1) -> None:
        self.directory = directory
        self.seed = seed
        self.url = ""
        self.pid = 0
        self._popen: subprocess.Popen[bytes] | None = None
        self._admin: httpx.AsyncClient | None = None
        self.log_path = directory / "exchange.log"

    async def start(self) -> ExchangeHarness:
        """Start the process and wait (with a deadline) until its port file appears.

        Raises:
            ExchangeError: it exited or did not listen within the deadline.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        port_file = self.directory / "exchange.port.json"
        argv = [sys.executable, "-m", "autoheal.demo.exchange", "--port", "0",
                "--port-file", str(port_file), "--seed", str(self.seed)]
        with open(self.log_path, "wb") as log:
            self._popen = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + START_TIMEOUT_S
        while (doc := read_json(port_file).doc) is None:
            if self._popen.poll() is not None:
                raise ExchangeError(f"exchange exited with {self._popen.returncode}; "
                                    f"see {self.log_path}")
            if time.monotonic() > deadline:
                await self.stop()
                raise ExchangeError(f"exchange did not listen within {START_TIMEOUT_S}s")
            await anyio.sleep(0.02)
        self.url = str(doc["rest_url"])
        self.pid = self._popen.pid
        self._admin = httpx.AsyncClient(base_url=self.url, timeout=5.0)
        return self

    def client(self, *, timeout_s: float = 2.0) -> httpx.AsyncClient:
        """A new client for trading calls (the caller closes it)."""
        return httpx.AsyncClient(base_url=self.url, timeout=httpx.Timeout(timeout_s))

    async def stats(self) -> dict[str, Any]:
        """The exchange's ``/admin/stats`` document."""
        if self._admin is None:
            raise ExchangeError("exchange not started")
        response = await self._admin.get("/admin/stats")
        response.raise_for_status()
        doc: dict[str, Any] = response.json()
        return doc

    async def calls(self, *routes: str) -> int:
        """Requests the exchange received on ``routes`` (``"POST /api/orders"``); all if none."""
        counted = (await self.stats()).get("calls", {})
        if not routes:
            return sum(int(v) for v in counted.values())
        return sum(int(counted.get(r, 0)) for r in routes)

    async def orders(self) -> int:
        """Orders the exchange created (a repeated client order id is not a new order)."""
        return int((await self.stats())["orders_placed"])

    async def set_fault(self, mode: str, **plan: Any) -> None:
        """``POST /admin/fault``: ``mode`` plus ``paths``, ``count``, ``retry_after``."""
        if self._admin is None:
            raise ExchangeError("exchange not started")
        response = await self._admin.post("/admin/fault", json={"mode": mode, **plan})
        response.raise_for_status()

    async def clear_fault(self) -> str:
        """Remove any fault; returns the mode the exchange reports afterwards."""
        await self.set_fault("none")
        return str((await self.stats())["fault"]["mode"])

    async def stop(self) -> int | None:
        """SIGTERM, wait up to 5 s, then SIGKILL; returns the exit status."""
        if self._admin is not None:
            await self._admin.aclose()
            self._admin = None
        popen, self._popen = self._popen, None
        if popen is None:
            return None
        if popen.poll() is None:
            popen.send_signal(signal.SIGTERM)
        try:
            return await anyio.to_thread.run_sync(popen.wait, 5.0)
        except subprocess.TimeoutExpired:
            popen.kill()
            return await anyio.to_thread.run_sync(popen.wait)
