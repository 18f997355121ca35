"""Sends the bot-API calls that ``[bot_api]`` maps autoheal's modes to.

:mod:`autoheal.core.bot_api` decides which requests a mode needs and what an answer
means; this task sends them in order. A request that does not come back OK is
journaled (``bot_api_call``), raised as the alert ``bot_api_failed``, logged at ERROR,
and tried again after a backoff (0.5 s doubling up to ``bot_api.retry_max``; a 429's
``Retry-After`` when longer). A failed call does not hold up the next call; a failed
undo holds up every older undo. A failure never changes the mode, the kill switch or
anything else.

What autoheal did is kept in ``bot_api_ledger.json`` (the runtime directory), so a
restarted daemon still undoes only its own calls. When the bot's own service is
(re)started (``bot_api.service``), the bot forgot its API state: every call in force
is sent again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import anyio
import httpx

from autoheal.config import BotApiConfig, Config
from autoheal.core.actions import ClearAlert, RaiseAlert
from autoheal.core.bot_api import (
    InEffect,
    Ledger,
    Outcome,
    Step,
    forgotten,
    ledger_from_doc,
    ledger_to_doc,
    plan,
    settle,
    tidy,
)
from autoheal.core.json_pointer import MISSING, parse_pointer, resolve
from autoheal.daemon.clock import Clock
from autoheal.daemon.effects import Effects
from autoheal.guard.classify import classify, classify_status, retry_after_s
from autoheal.probes.authorization import CredentialUnusable, authorization
from autoheal.probes.json_field import judge_equals
from autoheal.store.atomic import read_json, write_json_atomic

__all__ = ["ALERT", "LEDGER_FILE", "BotApi", "auth_header"]

log = logging.getLogger("autoheal")

LEDGER_FILE = "bot_api_ledger.json"
ALERT = "bot_api_failed"
_FIRST_RETRY_S = 0.5
#: After a failure nobody planned for (a bug): try again this much later.
_SURPRISE_RETRY_S = 5.0
#: Plans sent in one round at most (a tighten, then a loosen; more if the mode moves).
_MAX_PLANS = 8


def auth_header(bot: BotApiConfig, env: Mapping[str, str]) -> str | None:
    """The ``Authorization`` header's value, or None with no auth.

    Raises:
        CredentialUnusable: the variable is unset or unusable (its name, never a value,
            in the message).
    """
    if bot.auth == "none" or bot.auth_env is None:
        return None
    return authorization(bot.auth, bot.auth_env, env)


class BotApi:
    """The sender (see the module docstring).

    Args:
        config: the config in force (read each round: a reload applies at once).
        clock: the daemon's clock.
        effects: the journal and the alerts.
        runtime_dir: where the ledger is kept.
        env: where credentials are read (the daemon's environment).
    """

    def __init__(
        self,
        config: Callable[[], Config],
        *,
        clock: Clock,
        effects: Effects,
        runtime_dir: Path,
        env: Mapping[str, str] = os.environ,
    ) -> None:
        self._config = config
        self._clock = clock
        self._effects = effects
        self._path = runtime_dir / LEDGER_FILE
        self._env = env
        self._mode = "NORMAL"
        self._wake = anyio.Event()
        self._failures = 0
        self._alerted = False
        self._unsaved = False
        self.ledger = self._load()

    # ------------------------------------------------------------------ what it hears

    def observe(self, mode: str) -> None:
        """The runtime's mode now (``autoheal.core.bot_api.bot_mode``); cheap, any time."""
        if mode != self._mode:
            self._mode = mode
            self._failures = 0  # a new mode is tried at once
            self._wake.set()

    def restarted(self, service: str) -> None:
        """A service was (re)started: when it is the bot, its API state is gone."""
        bot = self._config().bot_api
        if bot is not None and bot.service == service and self.ledger != Ledger():
            self.ledger = forgotten(self.ledger)
            self._save()
            self._wake.set()

    # ------------------------------------------------------------------ the task

    async def run(self) -> None:
        """Send what each mode needs, until cancelled. Nothing here may take the daemon
        down: a surprise is logged, alerted and tried again later."""
        async with httpx.AsyncClient(follow_redirects=False) as client:
            while True:
                try:
                    delay = await self._round(client)
                except Exception as exc:
                    log.exception("bot_api_round_failed error=%s", type(exc).__name__)
                    delay = _SURPRISE_RETRY_S
                    self._alerted = True
                    detail = (
                        f"the bot-API sender failed ({type(exc).__name__}); retry in {delay:g}s"
                    )
                    self._effects.execute(RaiseAlert(ALERT, "bot_api", detail))
                with self._clock.move_on_at(self._clock.now() + delay):
                    await self._wake.wait()
                self._wake = anyio.Event()

    async def _round(self, client: httpx.AsyncClient) -> float:
        """Send plans until none is left; returns how long to wait before the next round
        (unless woken): a failure's backoff, else an hour."""
        bot = self._config().bot_api
        if bot is None:
            return 3600.0
        if self._unsaved:
            self._save()
        for _ in range(_MAX_PLANS):  # bounded: each plan shrinks what is left to send
            self.ledger = tidy(bot.table, self._mode, self.ledger)
            steps = plan(bot.table, self._mode, self.ledger)
            if not steps:
                break
            failed: float | None = None
            for step in steps:
                mode = self._mode
                outcome, reason, wait_s = await self._send(client, bot, step)
                self.ledger = settle(self.ledger, step, outcome)
                self._save()
                self._journal(step, mode, outcome, reason)
                if outcome not in (Outcome.OK, Outcome.IN_EFFECT):
                    self._failures += 1
                    backoff = min(bot.retry_max, _FIRST_RETRY_S * 2.0 ** (self._failures - 1))
                    failed = max(backoff, min(wait_s or 0.0, bot.retry_max))
                    self._alert(step, mode, reason, failed)
                    if step.undo:
                        break  # undoing stops here: the older undos wait for this one
                    continue  # a failed call does not hold up the next: each tightens
                if mode != self._mode:
                    break  # the mode moved while this was in flight: plan again
            if failed is not None:
                return failed
        else:
            return _FIRST_RETRY_S  # the mode kept moving: the rest in a moment
        self._failures = 0
        self._recovered()
        return 3600.0

    async def _send(
        self, client: httpx.AsyncClient, bot: BotApiConfig, step: Step
    ) -> tuple[Outcome, str, float | None]:
        """POST one request: ``(outcome, reason token, server's Retry-After)``."""
        headers = {"User-Agent": "autoheal"}
        try:
            auth = auth_header(bot, self._env)
        except CredentialUnusable:
            return Outcome.NOT_SENT, "auth_env_missing", None
        if auth is not None:
            headers["Authorization"] = auth
        check = None if step.undo else bot.table.calls[step.call].in_effect
        if check is not None:
            seen = await self._in_effect(client, bot, check, headers)
            if seen is True:
                return Outcome.IN_EFFECT, "in_effect", None
            if seen is not False:  # the bot could not say: try again later, send nothing
                return Outcome.NOT_SENT, seen, None
        try:
            response = await client.post(bot.url + step.path, headers=headers, timeout=bot.timeout)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol) as exc:
            return Outcome.NOT_SENT, classify(exc).reason, None
        except httpx.HTTPError as exc:  # it may have been read: a timeout, a reset
            return Outcome.UNKNOWN, classify(exc).reason, None
        if response.is_success:
            return Outcome.OK, "ok", None
        reason = classify_status(response.status_code).reason
        wait = retry_after_s(httpx.HTTPStatusError("", request=response.request, response=response))
        if response.status_code >= 500:
            return Outcome.UNKNOWN, reason, wait
        return Outcome.NOT_SENT, reason, wait

    async def _in_effect(
        self, client: httpx.AsyncClient, bot: BotApiConfig, check: InEffect, headers: dict[str, str]
    ) -> bool | str:
        """Whether the bot already does what the call asks; a reason token when it
        cannot say (the call is then not sent: sending it could make an operator's
        own pause look like autoheal's)."""
        try:
            response = await client.get(bot.url + check.get, headers=headers, timeout=bot.timeout)
        except httpx.HTTPError as exc:
            return classify(exc).reason
        if not response.is_success:
            return classify_status(response.status_code).reason
        try:
            doc = response.json()
        except ValueError:
            return "json_invalid"
        value = resolve(doc, parse_pointer(check.pointer))
        if value is MISSING:
            return "json_field_missing"
        return any(judge_equals(value, one, where=check.pointer).ok for one in check.one_of)

    # ------------------------------------------------------------------ the record

    def _load(self) -> Ledger:
        read = read_json(self._path)
        if read.reason is None:
            ledger, problem = ledger_from_doc(read.doc)
        elif read.reason == "missing":
            return Ledger()
        else:
            ledger, problem = Ledger(), f"{read.reason} {read.detail}".strip()
        if problem:
            detail = f"{LEDGER_FILE} unreadable ({problem}): nothing autoheal paused is undone"
            log.error("bot_api_ledger_unreadable detail=%s", detail)
            self._effects.execute(RaiseAlert("bot_api_ledger_unreadable", LEDGER_FILE, detail))
        return ledger

    def _save(self) -> None:
        try:
            write_json_atomic(self._path, ledger_to_doc(self.ledger))
        except OSError as exc:
            # Held in memory; the next round writes it again. Lost only if the daemon
            # dies first: then what autoheal did is not undone (never more).
            self._unsaved = True
            log.error("bot_api_ledger_write_failed error=%s", exc)
        else:
            self._unsaved = False

    def _journal(self, step: Step, mode: str, outcome: Outcome, reason: str) -> None:
        level = logging.INFO if outcome in (Outcome.OK, Outcome.IN_EFFECT) else logging.ERROR
        log.log(
            level,
            "bot_api_call call=%s undo=%s path=%s mode=%s outcome=%s reason=%s",
            step.call,
            step.undo,
            step.path,
            mode,
            outcome.value,
            reason,
        )
        self._effects.journal_event(
            "bot_api_call",
            reason=reason,
            data={
                "call": step.call,
                "undo": step.undo,
                "path": step.path,
                "mode": mode,
                "outcome": outcome.value,
            },
        )

    def _alert(self, step: Step, mode: str, reason: str, retry_in: float) -> None:
        what = "undo of " + step.call if step.undo else step.call
        detail = f"{what} ({step.path}) for {mode} failed: {reason}; retry in {retry_in:.1f}s" + (
            "" if step.undo else "; the bot may still be trading as before"
        )
        self._alerted = True
        self._effects.execute(RaiseAlert(ALERT, "bot_api", detail))

    def _recovered(self) -> None:
        if self._alerted:
            self._alerted = False
            self._effects.execute(ClearAlert(ALERT, "bot_api", f"in {self._mode}: every call sent"))
