"""The healing policy and the topology the core reasons about, validated and frozen."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from autoheal.core.judgement import FailureWindow


@dataclass(frozen=True, slots=True)
class HealPolicy:
    """How hard to try before pulling the kill switch (DESIGN.md §2, the runbook's numbers).

    ``verify_min_uptime`` is how long a (re)started process must stay up before its
    restart counts as verified, however early its probes pass (supervisord's
    ``startsecs``). It must fit in ``verify_window``, or no restart could verify.
    """

    failures_before_restart: int = 2
    restart_backoff: tuple[float, ...] = (15.0, 30.0, 60.0, 120.0, 300.0)
    verify_window: float = 90.0
    max_restarts: int = 3
    stable_reset: float = 600.0
    verify_min_uptime: float = 2.0

    def __post_init__(self) -> None:
        if self.failures_before_restart < 1:
            raise ValueError("failures_before_restart must be at least 1")
        if not self.restart_backoff:
            raise ValueError("restart_backoff must not be empty")
        if any(d < 0 for d in self.restart_backoff):
            raise ValueError("restart_backoff delays must not be negative")
        if list(self.restart_backoff) != sorted(self.restart_backoff):
            raise ValueError("restart_backoff must not decrease")
        if self.verify_window <= 0:
            raise ValueError("verify_window must be positive")
        if self.verify_min_uptime < 0:
            raise ValueError("verify_min_uptime must not be negative")
        if self.verify_min_uptime > self.verify_window:
            raise ValueError("verify_min_uptime must not exceed verify_window")
        if self.max_restarts < 0:
            raise ValueError("max_restarts must not be negative")
        if self.stable_reset < 0:
            raise ValueError("stable_reset must not be negative")


@dataclass(frozen=True, slots=True)
class ComponentSpec:
    """A supervised component: its probe names and the external dependencies it needs.

    ``windows``: the probes judged K of N (``core.judgement``); the others by the
    consecutive rule. ``failsafe_exit_codes``: an exit with one of them is not
    restarted (FAILSAFE at once); ``restart_exit_codes``: an exit with one of them
    after the process was verified restarts at once, spending no attempt
    (``core.exit_rules``). ``debug_on_retry``: a restart after a failure is marked
    ``debug`` (the shell adds the service's ``debug_environment``).
    """

    name: str
    probes: tuple[str, ...]
    dependencies: tuple[str, ...] = ()
    required: bool = True
    heal: HealPolicy = field(default_factory=HealPolicy)
    windows: Mapping[str, FailureWindow] = field(default_factory=dict)
    failsafe_exit_codes: frozenset[int] = frozenset()
    restart_exit_codes: frozenset[int] = frozenset()
    debug_on_retry: bool = False

    def __post_init__(self) -> None:
        both = self.failsafe_exit_codes & self.restart_exit_codes
        if both:
            raise ValueError(f"exit codes {sorted(both)} both failsafe and restart")
        unknown = [p for p in self.windows if p not in self.probes]
        if unknown:
            raise ValueError(f"component {self.name!r} has windows for unknown probes {unknown}")


@dataclass(frozen=True, slots=True)
class Policy:
    """Everything ``step`` needs besides the state: components, dependencies, thresholds."""

    components: Mapping[str, ComponentSpec]
    dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    failures_before_degraded: int = 2
    #: Dependency probes judged K of N, by dependency then probe (``core.judgement``).
    dependency_windows: Mapping[str, Mapping[str, FailureWindow]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for spec in self.components.values():
            unknown = [d for d in spec.dependencies if d not in self.dependencies]
            if unknown:
                raise ValueError(f"component {spec.name!r} depends on unknown {unknown}")
        if set(self.components) & set(self.dependencies):
            raise ValueError("a component and a dependency share a name")
        if self.failures_before_degraded < 1:
            raise ValueError("failures_before_degraded must be at least 1")
