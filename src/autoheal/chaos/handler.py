"""Chaos mode: real faults, injected by the daemon on command, that end by themselves.

Only with ``autoheal run --chaos`` and never in a ``live`` environment. Faults are
real: SIGKILL or SIGSTOP of a process the daemon can prove is its own, invalid
JSON written over a file of the runtime directory (the original kept for
rollback), latency or a cut through the loopback fault proxy that sits in front
of a dependency. The daemon owns every timer, so a fault ends when its duration
runs out even if the CLI that asked for it died; ``chaos heal`` undoes them all.
Every action is journaled (``chaos_action``, ``chaos_ended``).

The daemon never imports this module: ``autoheal run --chaos`` hands
:class:`ChaosHandler` in as the daemon's :class:`~autoheal.daemon.injector.FaultInjector`.
Chaos stops for good (every fault healed, every later fault refused, exit 3 at the
CLI) when a protected file changes (``chaos_aborted``), or when a hot reload makes
the environment ``live`` (``chaos_disabled``).

``chaos corrupt`` never touches the files the kill switch and the audit trail live
in, whatever ``[chaos] protected_files`` says: the journal (and its ``-wal``,
``-shm``), ``autoheal_state.json``, ``global_flags.json``, the stop file, the
order ledger (``runtime/order_sigs.json``) and the daemon's lock.
"""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from autoheal.config import Config
from autoheal.core.durations import parse_duration
from autoheal.store import layout
from autoheal.store.atomic import write_bytes_atomic

if TYPE_CHECKING:
    from autoheal.daemon.commands import PendingCommand
    from autoheal.daemon.injector import InjectorPorts

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


def protected_runtime_files(config: Config) -> dict[Path, str]:
    """The files ``chaos corrupt`` refuses by default, each with what it is.

    A corrupted journal, state file, flags file or stop file would not be a drill of
    the runtime but damage to the kill switch and the audit trail themselves.
    """
    rt = config.paths.runtime_dir
    journal = rt / layout.JOURNAL
    found = {
        journal: "the journal",
        rt / layout.STATE: "the daemon's state file",
        rt / layout.FLAGS: "the kill switch's flags",
        config.paths.stop_file: "the kill switch's stop file",
        rt / layout.ORDER_LEDGER: "the order ledger",
        rt / layout.LOCK: "the daemon's lock",
    }
    for suffix in layout.JOURNAL_SIDE_SUFFIXES:
        found[journal.with_name(journal.name + suffix)] = "the journal"
    return found


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

    def __init__(self, ports: InjectorPorts) -> None:
        self.ports = ports
        self.active: dict[tuple[str, str], _Fault] = {}
        #: ``(reason token, message)`` once chaos is stopped for good; ``chaos heal`` still runs.
        self.refusal: tuple[str, str] | None = None
        self._tg: TaskGroup | None = None

    def start(self, tg: TaskGroup) -> None:
        """Capture the blast-radius baseline and watch it; without one, refuse every fault."""
        self._tg = tg
        if self.ports.config().environment == "live":  # the CLI refused already; belt and braces
            self.refusal = ("chaos_disabled", 'environment = "live": fault injection is refused')
            return
        try:
            protected = establish_stop_conditions(self.ports.config().chaos.protected_files)
        except ChaosError as exc:  # checked by the CLI; changed since
            self.refusal = ("chaos_disabled", str(exc))
            log.error("chaos_disabled reason=%s", exc)
        else:
            tg.start_soon(self.guard, protected)

    async def guard(self, protected: Any) -> None:
        """Blast radius: a protected file changed -> heal every fault, accept no more."""
        from autoheal.chaos.blast import watch

        violations = await watch(protected, lambda _found: None, interval=0.5)
        changed = "; ".join(str(v) for v in violations)
        self.refusal = ("chaos_aborted", f"chaos stopped: a protected file changed ({changed})")
        log.error("chaos_aborted protected_changed=%s; healing every fault", changed)
        self.ports.journal_event(
            "chaos_aborted",
            reason="protected_changed",
            data={"violations": [v.to_doc() for v in violations]},
        )
        await self.heal_all()

    async def disable(self, reason: str, message: str) -> None:
        """Stop chaos for good: refuse every later fault, heal the active ones, journal it."""
        already = self.refusal is not None
        self.refusal = ("chaos_disabled", message)
        healed = await self.heal_all()
        if already and not healed:
            return
        log.error("chaos_disabled reason=%s healed=%s", reason, healed)
        self.ports.journal_event(
            "chaos_disabled", reason=reason, data={"message": message, "healed": healed}
        )

    # -- entry from the command bridge (sync, in the loop); work happens in a task

    def __call__(self, pending: PendingCommand) -> None:
        if self.refusal is not None and pending.command.type != "chaos_heal":
            reason, message = self.refusal
            self.ports.fail(pending, reason, message, True)
            return
        if self._tg is None:
            self.ports.fail(pending, "chaos_not_ready", "chaos is not started yet", False)
            return
        self._tg.start_soon(self._run, pending)

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
            # A protected target is a safety gate (exit 3), not a fault that failed.
            refused = reason == "protected"
            self.ports.fail(pending, reason, str(exc), refused)
            return
        self.ports.journal_event(
            "chaos_action",
            component=target or None,
            reason=kind,
            actor=command.requested_by,
            data=result,
        )
        log.warning("chaos_action kind=%s target=%s %s", kind, target or "-", result)
        self.ports.succeed(pending, result)

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
        services = self.ports.services
        if name not in services:
            raise ChaosError("unknown_component", f"unknown service {name!r}")
        identity = services.identity(name)
        if identity is None or not await services.control.is_ours(identity):
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
            if await self.ports.services.control.is_ours(identity):
                os.kill(identity.pid, signal.SIGCONT)

        self._arm("stall", name, duration_s, undo)
        return {"fault": "stall", "component": name, "pid": identity.pid, "for_s": duration_s}

    def _runtime_file(self, name: str) -> Path:
        runtime_dir, config = self.ports.runtime_dir, self.ports.config()
        if not name:
            raise ChaosError(
                "invalid_argument", "corrupt needs a file name in the runtime directory"
            )
        path = Path(os.path.normpath(runtime_dir / name))
        if path.parent != runtime_dir and runtime_dir not in path.parents:
            raise ChaosError("outside_runtime_dir", f"{name} is outside {runtime_dir}")
        if path in config.chaos.protected_files:
            raise ChaosError("protected", f"{path} is protected (chaos.protected_files)")
        builtin = protected_runtime_files(config)
        # Through a symlink too: compare where both sides really lead.
        real = {p.resolve(): what for p, what in builtin.items()}
        what = builtin.get(path) or real.get(path.resolve())
        if what is not None:
            raise ChaosError("protected", f"{path} is {what}, protected: chaos never corrupts it")
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
        control = self.ports.config().chaos.proxies.get(dep)
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
        if self._tg is not None:  # always set: faults are injected only after start()
            self._tg.start_soon(self._expire, key, scope, duration_s)

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
        self.ports.journal_event(
            "chaos_ended", component=fault.target, reason=fault.kind, data={"why": why}
        )

    async def heal_all(self) -> list[str]:
        """Undo every active fault; returns what was healed (``kind:target``)."""
        healed = []
        for key in list(self.active):
            fault = self.active.get(key)
            if fault is not None:
                fault.scope.cancel()
                healed.append(f"{key[0]}:{key[1]}")
                await self._end(key, "healed")
        return healed
