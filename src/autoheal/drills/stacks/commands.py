"""The durable commands a drill sends a daemon, as an operator's CLI would.

A drill does not start a second interpreter for ``autoheal chaos kill feeder`` or
``autoheal stop trader``: it queues the same command in the daemon's journal (checksum,
expiry, requester ``autoheal-drill``; the daemon journals its ``chaos_action`` or
``<command>.succeeded`` as for any other) and waits for the result, so the fault lands
within one queue poll of the drill's time zero. Works for any daemon on that runtime
directory: the drill's own (:class:`~autoheal.drills.stacks.demo.DaemonHarness`) or a
target's (``--target CONFIG``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import orjson

from autoheal.drills.errors import ChaosCommandError
from autoheal.store import commands as queue
from autoheal.store.journal import Journal

__all__ = ["REQUESTER", "queue_chaos", "queue_command"]

#: Who the journal says asked.
REQUESTER = "autoheal-drill"


async def queue_command(
    runtime_dir: Path,
    command: str,
    target: str,
    payload: dict[str, Any],
    *,
    timeout_s: float,
    ttl: float = 60.0,
) -> queue.Command:
    """Queue ``command`` for ``target`` in the journal of ``runtime_dir`` and wait for it.

    Returns:
        The command in whatever status it has when it finished or ``timeout_s`` passed
        (``pending`` or ``claimed`` then: check ``status``).
    """

    def submit_and_wait() -> queue.Command:
        with Journal.open(runtime_dir) as journal:
            submitted = queue.submit(journal, command, target, payload, REQUESTER, ttl=ttl)
            return queue.wait_result(journal, submitted.command.id, timeout_s)

    return await anyio.to_thread.run_sync(submit_and_wait)


async def queue_chaos(
    runtime_dir: Path,
    fault: str,
    target: str = "",
    *,
    timeout_s: float = 20.0,
    calls: list[dict[str, Any]] | None = None,
    **payload: Any,
) -> dict[str, Any]:
    """Queue ``chaos_<fault>`` in the journal of ``runtime_dir`` and wait for the result.

    Args:
        runtime_dir: the daemon's ``paths.runtime_dir``.
        fault: ``kill``, ``stall``, ``latency``, ``netcut``, ``corrupt`` or ``heal``.
        target: the component, dependency or file.
        timeout_s: how long to wait for the daemon's result.
        calls: a list to append a record of this call to (for the report).
        payload: ``duration`` (``"3s"``), ``ms``, ``mode``.

    Returns:
        The daemon's result document.

    Raises:
        ChaosCommandError: the daemon refused or failed it, or did not answer in time.
    """
    started = time.monotonic()
    command = await queue_command(
        runtime_dir,
        f"chaos_{fault}",
        target,
        {"reason": "drill", **payload},
        timeout_s=timeout_s,
        ttl=max(60.0, 2 * timeout_s),
    )
    if calls is not None:
        calls.append(
            {
                "fault": fault,
                "target": target,
                **payload,
                "status": command.status,
                "took_s": round(time.monotonic() - started, 3),
            }
        )
    if command.status != "succeeded":
        raise ChaosCommandError(
            f"chaos {fault} {target}: {command.status} {orjson.dumps(command.result).decode()}"
        )
    return dict(command.result)
