"""Chaos mode: real faults, injected by the daemon on command, that end by themselves.

Only with ``autoheal run --chaos`` and never in a ``live`` environment. Faults are
real: SIGKILL or SIGSTOP of a process the daemon can prove is its own, invalid
JSON written over a file of the runtime directory (the original kept for
rollback), latency or a cut through the loopback fault proxy that sits in front
of a dependency. The daemon owns every timer, so a fault ends when its duration
runs out even if the CLI that asked for it died; ``chaos heal`` undoes them all.
Every action is journaled (``chaos_action``, ``chaos_ended``).
"""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from autoheal.core.durations import parse_duration
from autoheal.store.atomic import write_bytes_atomic

if TYPE_CHECKING:
    from autoheal.daemon.commands import PendingCommand
    from autoheal.daemon.loop import Daemon

log = logging.getLogger("autoheal")

CORRUPT_BYTES = b"{ invalid json"
DEFAULT_STALL_S = 20.0
DEFAULT_CORRUPT_S = 60.0
DEFAULT_NET_S = 60.0


class ChaosError(Exception):
    """A chaos command that cannot be carried out (reason token in ``reason``)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class _Fault:
    kind: str
    target: str
    scope: anyio.CancelScope
    undo: Any  # async callable


def establish_stop_conditions(protected_files: tuple[Path, ...]) -> Any:
    """Capture the blast-radius guard for chaos mode, or say why it cannot be.

    Returns:
        A captured ``ProtectedSet``.

    Raises:
        ChaosError: a protected file is missing or unreadable: without a baseline
            nobody could tell that a fault touched it, so chaos must not start.
    """
    from autoheal.chaos.blast import ProtectedSet

    for path in protected_files:
        if not path.is_file():
            raise ChaosError("stop_conditions", f"protected file {path} does not exist")
        if not os.access(path, os.R_OK):
            raise ChaosError("stop_conditions", f"protected file {path} is not readable")
    try:
        return ProtectedSet(files=protected_files).capture()
    except OSError as exc:
        raise ChaosError("stop_conditions", f"cannot capture protected files: {exc}") from exc


class ChaosHandler:
    """Executes ``chaos_*`` commands for one daemon."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.active: dict[tuple[str, str], _Fault] = {}
        self.disabled: str | None = None

    async def guard(self, protected: Any) -> None:
        """Blast radius: a protected file changed -> heal every fault, accept no more."""
        from autoheal.chaos.blast import watch

        violations = await watch(protected, lambda _found: None, interval=0.5)
        self.disabled = "; ".join(str(v) for v in violations)
        log.error("chaos_aborted protected_changed=%s; healing every fault", self.disabled)
        self.daemon.journal_event(
            "chaos_aborted",
            reason="protected_changed",
            data={"violations": [v.to_doc() for v in violations]},
        )
        await self.heal_all()

    # -- entry from the command bridge (sync, in the loop); work happens in a task

    def __call__(self, pending: PendingCommand) -> None:
        if self.disabled is not None and pending.command.type != "chaos_heal":
            self.daemon.commands.fail_reason(
                pending,
                "chaos_aborted",
                f"chaos stopped: a protected file changed ({self.disabled})",
                refused=True,
            )
            return
        pending.waits_for_process = True
        assert self.daemon._tg is not None
        self.daemon._tg.start_soon(self._run, pending)

    async def _run(self, pending: PendingCommand) -> None:
        command = pending.command
        kind = command.type.removeprefix("chaos_")
        target = command.target
        payload = command.payload
        try:
            duration = payload.get("duration")
            duration_s = parse_duration(duration) if duration not in (None, "") else None
            result = await self._inject(kind, target, payload, duration_s)
        except (ChaosError, ValueError) as exc:
            reason = getattr(exc, "reason", "invalid_argument")
            log.warning("chaos_refused kind=%s target=%s reason=%s", kind, target, reason)
            self.daemon.commands.fail_reason(pending, reason, str(exc))
            return
        self.daemon.journal_event(
            "chaos_action",
            component=target or None,
            reason=kind,
            actor=command.requested_by,
            data=result,
        )
        log.warning("chaos_action kind=%s target=%s %s", kind, target or "-", result)
        self.daemon.commands.succeed(pending, result)

    async def _inject(
        self, kind: str, target: str, payload: dict[str, Any], duration_s: float | None
    ) -> dict[str, Any]:
        match kind:
            case "kill":
                return await self._signal(target, signal.SIGKILL)
            case "stall":
                return await self._stall(target, duration_s or DEFAULT_STALL_S)
            case "corrupt":
                return await self._corrupt(target, duration_s or DEFAULT_CORRUPT_S)
            case "latency":
                ms = payload.get("ms")
                if not isinstance(ms, int | float) or isinstance(ms, bool) or ms <= 0:
                    raise ChaosError(
                        "invalid_argument", "latency needs --ms with a positive number"
                    )
                fault = {"kind": "latency", "ms": float(ms)}
                return await self._proxy(target, fault, duration_s or DEFAULT_NET_S)
            case "netcut":
                mode = payload.get("mode") or "blackhole"
                if mode not in ("blackhole", "refuse"):
                    raise ChaosError("invalid_argument", "netcut --mode is blackhole or refuse")
                return await self._proxy(target, {"kind": mode}, duration_s or DEFAULT_NET_S)
            case "heal":
                healed = await self.heal_all()
                return {"healed": healed}
        raise ChaosError("unknown_fault", f"unknown chaos fault {kind!r}")

    # -- faults

    async def _owned(self, name: str) -> Any:
        d = self.daemon
        if name not in d.services:
            raise ChaosError("unknown_component", f"unknown service {name!r}")
        identity = d.services.identity(name)
        if identity is None or not await d.services.control.is_ours(identity):
            raise ChaosError("not_running", f"{name} has no running process the daemon owns")
        return identity

    async def _signal(self, name: str, signum: int) -> dict[str, Any]:
        identity = await self._owned(name)
        os.kill(identity.pid, signum)
        return {"fault": "kill", "component": name, "pid": identity.pid}

    async def _stall(self, name: str, duration_s: float) -> dict[str, Any]:
        identity = await self._owned(name)
        os.kill(identity.pid, signal.SIGSTOP)

        async def undo() -> None:
            if await self.daemon.services.control.is_ours(identity):
                os.kill(identity.pid, signal.SIGCONT)

        self._arm("stall", name, duration_s, undo)
        return {"fault": "stall", "component": name, "pid": identity.pid, "for_s": duration_s}

    def _runtime_file(self, name: str) -> Path:
        d = self.daemon
        if not name:
            raise ChaosError(
                "invalid_argument", "corrupt needs a file name in the runtime directory"
            )
        path = Path(os.path.normpath(d.runtime_dir / name))
        if path.parent != d.runtime_dir and d.runtime_dir not in path.parents:
            raise ChaosError("outside_runtime_dir", f"{name} is outside {d.runtime_dir}")
        if path in d.config.chaos.protected_files:
            raise ChaosError("protected", f"{path} is protected (chaos.protected_files)")
        return path

    async def _corrupt(self, name: str, duration_s: float) -> dict[str, Any]:
        path = self._runtime_file(name)
        try:
            original: bytes | None = path.read_bytes()
        except FileNotFoundError:
            original = None
        write_bytes_atomic(path, CORRUPT_BYTES)

        async def undo() -> None:
            try:
                current = path.read_bytes()
            except FileNotFoundError:
                current = None
            if current != CORRUPT_BYTES:
                return  # something wrote a valid document since: leave it
            if original is None:
                path.unlink(missing_ok=True)
            else:
                write_bytes_atomic(path, original)

        self._arm("corrupt", str(path), duration_s, undo)
        return {
            "fault": "corrupt",
            "file": str(path),
            "for_s": duration_s,
            "had_original": original is not None,
        }

    def _control_port(self, dep: str) -> int:
        d = self.daemon
        control = d.config.chaos.proxies.get(dep)
        if control is None:
            raise ChaosError(
                "no_proxy", f"no fault proxy configured for {dep!r} (config [chaos] proxies)"
            )
        try:
            return int(control.read_text().strip())
        except (OSError, ValueError) as exc:
            raise ChaosError(
                "proxy_unreachable", f"fault proxy control file {control}: {exc}"
            ) from exc

    async def _proxy(self, dep: str, fault: dict[str, Any], duration_s: float) -> dict[str, Any]:
        from autoheal.chaos.proxy import acontrol

        port = self._control_port(dep)
        try:
            reply = await acontrol(port, {"op": "set", "fault": fault, "duration_s": duration_s})
        except (OSError, TimeoutError, ValueError) as exc:
            raise ChaosError("proxy_unreachable", f"fault proxy for {dep}: {exc}") from exc
        if not reply.get("ok"):
            raise ChaosError("proxy_refused", str(reply.get("error")))

        async def undo() -> None:
            try:
                await acontrol(port, {"op": "clear"})
            except (OSError, TimeoutError, ValueError) as exc:
                log.error("chaos_heal_failed dependency=%s error=%s", dep, exc)

        self._arm(fault["kind"], dep, duration_s, undo)
        return {"fault": fault["kind"], "dependency": dep, "for_s": duration_s, **fault}

    # -- timers and healing

    def _arm(self, kind: str, target: str, duration_s: float, undo: Any) -> None:
        key = (kind, target)
        old = self.active.pop(key, None)
        if old is not None:
            old.scope.cancel()
        scope = anyio.CancelScope()
        self.active[key] = _Fault(kind, target, scope, undo)
        assert self.daemon._tg is not None
        self.daemon._tg.start_soon(self._expire, key, scope, duration_s)

    async def _expire(
        self, key: tuple[str, str], scope: anyio.CancelScope, duration_s: float
    ) -> None:
        with scope:
            await anyio.sleep(duration_s)
            await self._end(key, "duration_elapsed")

    async def _end(self, key: tuple[str, str], why: str) -> None:
        fault = self.active.pop(key, None)
        if fault is None:
            return
        with anyio.CancelScope(shield=True):
            await fault.undo()
        log.warning("chaos_ended kind=%s target=%s why=%s", fault.kind, fault.target, why)
        self.daemon.journal_event(
            "chaos_ended", component=fault.target, reason=fault.kind, data={"why": why}
        )

    async def heal_all(self) -> list[str]:
        healed = []
        for key in list(self.active):
            fault = self.active.get(key)
            if fault is not None:
                fault.scope.cancel()
                healed.append(f"{key[0]}:{key[1]}")
                await self._end(key, "healed")
        return healed
