"""The fake exchange as a real subprocess: start on port 0, fault, count, stop.

:class:`ExchangeProcess` is the process (for tests and benchmarks too: blocking
:meth:`~ExchangeProcess.wait_listening`); :class:`ExchangeHarness` is a drill's handle
on it, with the admin API. Drills count what reached the exchange through its
``/admin/stats`` endpoint, never through the trader's own bookkeeping: an order the
trader thinks it did not send but the exchange saw is exactly the bug a drill exists
to catch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx

from autoheal.demo.exchange import API_KEY_ENV, API_PASSPHRASE_ENV, API_SECRET_ENV
from autoheal.drills.errors import ExchangeError
from autoheal.drills.stacks.harness import (
    KILL_WAIT_S,
    PY,
    START_TIMEOUT_S,
    ProcessRoster,
    Spawned,
    await_for,
    child_env,
    wait_for,
)
from autoheal.store.atomic import read_json

__all__ = ["ExchangeHarness", "ExchangeProcess"]

#: The venue dialects' API key and secret, and optionally OKX's passphrase.
Credentials = tuple[str, str] | tuple[str, str, str]
#: How long a drill's exchange may take to listen.
DRILL_START_TIMEOUT_S = 10.0


class ExchangeProcess(Spawned):
    """The fake exchange (``python -m autoheal.demo.exchange``) on a port the OS picks.

    Args:
        directory: where its port file and (default) log go.
        port: its port (0: any free one).
        seed: its price walk's seed.
        runtime_dir: its own runtime directory (``--runtime-dir``).
        port_file: where it publishes ``{"port", "rest_url", ...}`` once it listens.
        log_path: its log (default ``directory/exchange.log``).
        quiet_stdout: discard its stdout (its access log), keep stderr.
        roster: where it is recorded.
        credentials: the venue dialects' API key and secret, and OKX's passphrase if
            given, handed over in its environment (never on its command line).
    """

    def __init__(
        self,
        directory: Path,
        *,
        port: int = 0,
        seed: int | None = None,
        runtime_dir: Path | None = None,
        port_file: Path | None = None,
        log_path: Path | None = None,
        quiet_stdout: bool = False,
        roster: ProcessRoster | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.port_file = port_file if port_file is not None else directory / "exchange.port.json"
        self.port_file.unlink(missing_ok=True)
        argv = [PY, "-m", "autoheal.demo.exchange", "--port", str(port)]
        argv += ["--port-file", str(self.port_file)]
        if seed is not None:
            argv += ["--seed", str(seed)]
        if runtime_dir is not None:
            argv += ["--runtime-dir", str(runtime_dir)]
        log = log_path if log_path is not None else directory / "exchange.log"
        env = None
        if credentials is not None:
            names = (API_KEY_ENV, API_SECRET_ENV, API_PASSPHRASE_ENV)
            env = child_env(dict(zip(names, credentials, strict=False)))
        super().__init__(argv, log, roster=roster, quiet_stdout=quiet_stdout, env=env)

    def listening(self) -> dict[str, Any] | None:
        """Its port document once it listens, else ``None``.

        Raises:
            ExchangeError: it exited.
        """
        doc = read_json(self.port_file).doc
        if isinstance(doc, dict) and isinstance(doc.get("port"), int):
            return doc
        if not self.alive():
            raise ExchangeError(
                f"the fake exchange exited with {self.returncode} before it listened; "
                f"see {self.log_path}:\n{self.log_tail()}"
            )
        return None

    def wait_listening(self, timeout_s: float = START_TIMEOUT_S) -> dict[str, Any]:
        """Block until it listens; returns its port document.

        Raises:
            ExchangeError: it exited, or did not listen within ``timeout_s`` (then it is
                stopped).
        """
        try:
            return wait_for(self.listening, timeout_s, "the fake exchange to listen")
        except TimeoutError as exc:
            self.stop(KILL_WAIT_S)
            raise ExchangeError(f"the fake exchange did not listen within {timeout_s:g}s") from exc

    async def await_listening(self, timeout_s: float = START_TIMEOUT_S) -> dict[str, Any]:
        """:meth:`wait_listening` for async code."""
        try:
            return await await_for(self.listening, timeout_s, "the fake exchange to listen")
        except TimeoutError as exc:
            await anyio.to_thread.run_sync(self.stop, KILL_WAIT_S)
            raise ExchangeError(f"the fake exchange did not listen within {timeout_s:g}s") from exc


class ExchangeHarness:
    """One fake-exchange process in ``directory``.

    Args:
        directory: where its port file, stats file and log go.
        seed: the price walk's seed (logged with the drill for replay).
        credentials: the venue dialects' API key and secret, and OKX's passphrase if
            given (none: their private calls are refused; no passphrase: OKX's are).
    """

    def __init__(
        self,
        directory: Path,
        *,
        seed: int = 1,
        roster: ProcessRoster | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        self.directory = directory
        self.credentials = credentials
        self.seed = seed
        self.url = ""
        self.pid = 0
        self.roster = roster
        self._proc: ExchangeProcess | None = None
        self._admin: httpx.AsyncClient | None = None
        self.log_path = directory / "exchange.log"

    async def start(self) -> ExchangeHarness:
        """Start the process and wait (with a deadline) until its port file appears.

        Raises:
            ExchangeError: it exited or did not listen within the deadline.
        """
        self._proc = proc = ExchangeProcess(
            self.directory,
            seed=self.seed,
            log_path=self.log_path,
            quiet_stdout=True,
            roster=self.roster,
            credentials=self.credentials,
        )
        doc = await proc.await_listening(DRILL_START_TIMEOUT_S)
        self.url = str(doc["rest_url"])
        self.pid = proc.pid
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

    async def set_feed(self, **plan: Any) -> dict[str, Any]:
        """``POST /admin/feed``: ``freeze``, ``skip``, ``quiet`` (none: a healthy stream);
        returns the exchange's feed document."""
        if self._admin is None:
            raise ExchangeError("exchange not started")
        response = await self._admin.post("/admin/feed", json=plan)
        response.raise_for_status()
        feed: dict[str, Any] = response.json()["feed"]
        return feed

    async def clear_fault(self) -> str:
        """Remove any fault; returns the mode the exchange reports afterwards."""
        await self.set_fault("none")
        return str((await self.stats())["fault"]["mode"])

    async def stop(self) -> int | None:
        """SIGTERM, wait up to 5 s, then SIGKILL; returns the exit status."""
        if self._admin is not None:
            await self._admin.aclose()
            self._admin = None
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        return await anyio.to_thread.run_sync(proc.stop, KILL_WAIT_S)
