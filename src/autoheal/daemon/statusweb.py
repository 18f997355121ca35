"""The operator's window, wired in (DESIGN.md §8): ``/metrics``, ``/status``, the page.

The server itself is :mod:`autoheal.web`; here the daemon hands it plain values:
the health document (:class:`~autoheal.daemon.persist.Persist`: the one the file
holds, so the page and the file cannot disagree), the risk panel
(:class:`~autoheal.daemon.risk_files.RiskFiles`, also ``/status``'s ``risk``), the
journal's recent events, and
:class:`StatusDoor`, through which the page's buttons queue the same durable
commands as the CLI (journaled as ``web:<address>``).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from anyio.abc import TaskGroup

from autoheal.config import Config
from autoheal.core.commands import CommandType
from autoheal.daemon.persist import Persist
from autoheal.daemon.risk_files import RiskFiles
from autoheal.store import commands as queue
from autoheal.store import layout
from autoheal.store.atomic import write_json_atomic
from autoheal.store.journal import Journal
from autoheal.web.metrics import Metrics

__all__ = ["StatusDoor", "make_metrics", "serve"]

log = logging.getLogger("autoheal")


class StatusDoor:
    """The page's way into the daemon: recent events out, operator commands in.

    Args:
        journal: the daemon's journal (events, the command queue).
        poke: wakes the command queue (a command was submitted).
        config: the config in force.
    """

    def __init__(
        self, journal: Journal, *, poke: Callable[[], None], config: Callable[[], Config]
    ) -> None:
        self._journal = journal
        self._poke = poke
        self._config = config

    def recent_events(self, limit: int = 10) -> list[dict[str, Any]]:
        """The last journal events, newest first, as one line each."""
        out = []
        for event in reversed(self._journal.events(limit=limit)):
            data = event.data or {}
            detail = data.get("message") or (
                f"{data['from']}->{data['to']}" if "from" in data and "to" in data else ""
            )
            what = " ".join(str(x) for x in (event.component, event.reason, detail) if x)
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(event.ts))
            out.append({"when": when, "kind": event.kind, "what": what})
        return out

    def submit(self, kind: str, target: str, reason: str, actor: str) -> str:
        """Queue an operator command, as the CLI does; returns its id.

        A breaker reset is the guard's durable path (``autoheal breaker reset --all``):
        submitted, claimed and run under the guard's file lock, on its own journal
        connection; the page runs it in a worker thread.
        """
        if kind == CommandType.BREAKER_RESET:
            from autoheal.guard.breaker_reset import ALL, submit_reset

            runtime_dir = self._config().paths.runtime_dir
            command = submit_reset(runtime_dir, [ALL], reason=reason, user=actor, timeout=5.0)
            return str(command.id)
        submitted = queue.submit(self._journal, kind, target, {"reason": reason}, actor)
        self._poke()
        return submitted.command.id


def make_metrics(config: Config, persist: Persist) -> Metrics | None:
    """The ``/metrics`` registry when the status server is configured, else None."""
    if config.daemon.status_listen is None:
        return None
    return Metrics(persist.health_doc)


async def serve(
    tg: TaskGroup,
    config: Config,
    *,
    persist: Persist,
    metrics: Metrics,
    door: StatusDoor,
) -> None:
    """Start the status server in ``tg``; its address goes to ``status_endpoint.json``."""
    listen = config.daemon.status_listen
    if listen is None:
        return
    from autoheal.core.admission import budget_for_fds
    from autoheal.core.liveness import stale_after_s
    from autoheal.web.connections import fd_soft_limit
    from autoheal.web.metrics import serve_status
    from autoheal.web.statuspage import StatusPage

    # The server's connections are sized from the descriptor limit, leaving the
    # supervisor enough to spawn, journal and write the kill switch (issue 18 A2).
    budget = budget_for_fds(fd_soft_limit(), len(config.services))
    log.info(
        "status_connections max=%d fd_soft_limit=%s",
        budget.limits.max_connections,
        budget.soft_limit if budget.soft_limit is not None else "unlimited",
    )
    if budget.short:
        log.warning(
            "fd_limit_low soft=%s needed=%d; raise it (LimitNOFILE= in the unit)",
            budget.soft_limit,
            budget.needed,
        )
    token_env = config.daemon.status_token_env
    token = os.environ.get(token_env) if token_env else None
    if token_env and not token:
        log.error("status_token_missing env=%s; the status page stays read-only", token_env)
    # The money side: the guard's files, read bounded, cached and fail-soft.
    risk = RiskFiles(lambda: config, clock=time.monotonic, wall=time.time)
    page = StatusPage(
        persist.latest_health,
        door.recent_events,
        stale_after_s=stale_after_s(config.daemon.heartbeat_interval),
        token=token or None,
        submit=door.submit,
        risk=risk.view,
    )

    def status_doc() -> dict[str, Any]:
        """``/status``: the health document with the risk panel's document as ``risk``."""
        return {**persist.health_doc(), "risk": risk.view()}

    port = await tg.start(
        functools.partial(serve_status, page=page, limits=budget.limits),
        listen[0],
        listen[1],
        metrics,
        status_doc,
    )
    write_json_atomic(
        config.paths.runtime_dir / layout.STATUS_ENDPOINT,
        {"host": listen[0], "port": port},
        durable=False,
    )
    log.info("status_endpoint listening=%s:%s", listen[0], port)
