"""The daemon's probe runners: one task per configured probe, results turned into observations.

Keeps the last reading of every probe (values and thresholds for ``health_v2.json``),
journals each change of verdict, feeds the metrics, and sends the core an
observation, except for a success on a probe the core already holds as passing:
that changes no decision (``step`` is idempotent there), so the step is skipped.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
from anyio.abc import TaskGroup

from autoheal.config import Config
from autoheal.core import Observation, ProbeFailed, ProbeSucceeded
from autoheal.daemon import wiring
from autoheal.daemon.clock import Clock
from autoheal.daemon.effects import JournalEvent
from autoheal.probes import ProbeRunner
from autoheal.probes.result import Probe, ProbeResult
from autoheal.web.metrics import Metrics

Key = tuple[str, str]  # (target, probe name)


class _Timed:
    """Wraps a probe to time each check, for the latency histogram (value is not latency)."""

    def __init__(self, probe: Probe, clock: Callable[[], float]) -> None:
        self._probe = probe
        self._clock = clock
        self.last_latency: float | None = None
        inline: Callable[[], ProbeResult] | None = getattr(probe, "check_inline", None)
        self.check_inline = None if inline is None else self._timed_inline(inline)

    def _timed_inline(self, inline: Callable[[], ProbeResult]) -> Callable[[], ProbeResult]:
        def check_inline() -> ProbeResult:
            started = self._clock()
            try:
                return inline()
            finally:
                self.last_latency = self._clock() - started

        return check_inline

    async def check(self) -> ProbeResult:
        started = self._clock()
        try:
            return await self._probe.check()
        finally:
            self.last_latency = self._clock() - started

    def __getattr__(self, name: str) -> Any:
        # What the probe has beyond ``check`` (``timed_out``, ``aclose``) as the probe has
        # it: the runner asks ``isinstance(probe, TimeoutAware)``, i.e. ``hasattr``.
        return getattr(self._probe, name)


class Probing:
    """Runs and restarts the probe runners of a config.

    Args:
        observe: sends an observation to the daemon's loop.
        verdict: the core's current verdict for (target, probe): True, False or None.
        journal_event: records a journal event.
        clock: the daemon's clock, shared by probes and runners.
        readings: where the last result of each probe is kept (the health document
            reads it: values and thresholds).
        metrics: the ``/metrics`` registry, when the status server runs.
        pid_of: a service's live PID from the daemon's process table (resource probes).
        env_remove: what exec probes' commands must not inherit (the config's secrets).
    """

    def __init__(
        self,
        *,
        observe: Callable[[Observation], Awaitable[None]],
        verdict: Callable[[str, str], bool | None],
        journal_event: JournalEvent,
        clock: Clock,
        readings: MutableMapping[Key, ProbeResult],
        metrics: Metrics | None = None,
        pid_of: Callable[[str], int | None] = lambda _name: None,
        env_remove: Callable[[], frozenset[str]] = frozenset,
    ) -> None:
        self._pid_of = pid_of
        self._env_remove = env_remove
        self._observe = observe
        self._metrics = metrics
        self._verdict = verdict
        self._journal = journal_event
        self._clock = clock
        self.readings = readings
        self._runners: dict[Key, ProbeRunner] = {}
        self._scopes: dict[Key, anyio.CancelScope] = {}
        self._seen: set[Key] = set()
        from autoheal.probes import HeartbeatFiles

        #: Shared by the heartbeat probes: each write of a file is parsed once.
        self._files = HeartbeatFiles()
        from autoheal.probes.proctree import ProcessTree

        #: Shared by the resource probes: one walk of /proc serves every one due together.
        self._tree = ProcessTree()

    def start(self, tg: TaskGroup, config: Config) -> None:
        for pt in wiring.probe_targets(config):
            tg.start_soon(self._run, pt)

    def restart(self, tg: TaskGroup, config: Config, known_targets: set[str]) -> None:
        """Cancel every runner and start the configured set again (hot reload)."""
        for scope in self._scopes.values():
            scope.cancel()
        self._scopes.clear()
        self._runners.clear()
        for key in [k for k in self.readings if k[0] not in known_targets]:
            del self.readings[key]
        self.start(tg, config)

    def poke(self, target: str) -> None:
        """Check a target's probes now (e.g. right after restarting it)."""
        for (name, _), runner in self._runners.items():
            if name == target:
                runner.poke()

    def all_reported(self) -> bool:
        """Every runner has delivered at least one result (the first full round)."""
        return all(key in self._seen for key in self._runners)

    async def _run(self, pt: wiring.ProbeTarget) -> None:
        key = (pt.target, pt.config.name)
        scope = anyio.CancelScope()
        self._scopes[key] = scope
        clock = self._clock
        made = wiring.make_probe(
            pt.config,
            clock=clock.now,
            wall=clock.wall,
            files=self._files,
            pid_of=functools.partial(self._pid_of, pt.target),
            env_remove=self._env_remove(),
            tree=self._tree,
        )
        probe = _Timed(made, clock.now)

        async def emit(result: ProbeResult) -> None:
            await self._on_result(key, result, probe.last_latency)

        runner = ProbeRunner(
            probe, emit, interval=pt.config.interval, timeout=pt.config.timeout, clock=clock.now
        )
        self._runners[key] = runner
        with scope:
            try:
                await runner.run()
            finally:
                aclose: Callable[[], Awaitable[None]] | None = getattr(made, "aclose", None)
                if aclose is not None:
                    with anyio.CancelScope(shield=True):
                        await aclose()

    async def _on_result(self, key: Key, result: ProbeResult, latency: float | None) -> None:
        target, name = key
        previous = self.readings.get(key)
        self.readings[key] = result
        self._seen.add(key)
        if previous is None or (previous.ok, previous.reason) != (result.ok, result.reason):
            self._journal(
                "probe_changed",
                component=target,
                reason=result.reason or "ok",
                data={"probe": name, "ok": result.ok, "value": result.value},
            )
        if self._metrics is not None:
            self._metrics.observe_probe(target, name, result.ok, result.reason, latency)
        if result.ok and self._verdict(target, name) is True:
            return
        obs: Observation = (
            ProbeSucceeded(target, name) if result.ok else ProbeFailed(target, name, result.reason)
        )
        await self._observe(obs)
