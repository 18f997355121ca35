"""The drill planner, pure: what a drill against a target needs, decided from data alone.

Nothing here reads a file, a clock or a process: every function takes plain values
(a scenario, a target's settings from its config) and returns a plan, a reason or
numbers, so each rule is tested without a daemon
(``tests/drills/test_drill_target_timing.py``). The shell that acts on these answers
is :mod:`autoheal.drills.stacks.target` (a running target) and
:mod:`autoheal.drills.stacks.demo` (the drill's own demo stack).

* Timing (:func:`phase_times`, :func:`target_plan`): by default every fault's length
  and every deadline comes from the target's own settings (:class:`TargetTiming`);
  ``--time-scale X`` plays the runbook's timings times ``X`` instead. A scenario says
  which of its events is which phase in ``params.on_target`` (:data:`PHASES`).
* Scaling (:func:`scaled_policy`): the runbook's healing policy with its durations
  multiplied by a scenario's ``time_scale``, for the drill's own daemon.
* What a target cannot check: :func:`exchange_criteria` (skipped, with
  :data:`EXCHANGE_ONLY` as the reason).

Whether a target can take a drill now (its fault, its daemon, its state) is
:mod:`autoheal.drills.preconditions`, pure too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoheal.core.liveness import stale_after_s
from autoheal.drills.model import Expectation, Scenario

if TYPE_CHECKING:
    from autoheal.chaos.blast import ProtectedSet
    from autoheal.config import Config

__all__ = [
    "BASIS_TARGET",
    "EXCHANGE_ONLY",
    "PHASES",
    "RUNBOOK_POLICY",
    "TARGET_KINDS",
    "DrillTarget",
    "PhaseTimes",
    "ProbeTiming",
    "TargetTiming",
    "default_wait_s",
    "exchange_criteria",
    "phase_times",
    "scaled_policy",
    "target_plan",
]

#: Scenario kinds that run against a target; every other kind keeps its own temp dirs.
TARGET_KINDS = frozenset({"daemon"})
#: Why a criterion is skipped against a target.
EXCHANGE_ONLY = "counts orders at the drill's own exchange: not available against a target"


#: Runbook phases a scenario's events map onto against a target (``params.on_target``).
PHASES = ("detect", "restart", "stale", "fault", "recover")
#: Deadlines are the computed time times this, plus :attr:`TargetTiming.slack_s`.
MARGIN_FACTOR = 1.25
#: A restarted service's own start: interpreter, first heartbeat, first stream message.
STARTUP_S = 3.0
#: A client reconnecting after the network is back (its retry backoff and connect
#: timeout live in its own code, not in autoheal's config).
RECONNECT_S = 10.0
BASIS_TARGET = "from target policy"

#: The runbook's healing policy (seconds, counts); durations are scaled per drill.
RUNBOOK_POLICY: Mapping[str, Any] = {
    "failures_before_restart": 2,
    "restart_backoff": [15, 30, 60, 120, 300],
    "verify_window": 90,
    "max_restarts": 3,
    "stable_reset": 600,
    "verify_min_uptime": 2,
}
_DURATIONS = frozenset({"restart_backoff", "verify_window", "stable_reset", "verify_min_uptime"})


@dataclass(frozen=True, slots=True)
class ProbeTiming:
    """One probe's timing settings (seconds)."""

    kind: str
    interval: float
    timeout: float
    max_age: float | None = None
    latency_p95: float | None = None
    window: int = 20


@dataclass(frozen=True, slots=True)
class TargetTiming:
    """A target's settings that decide how fast it can see and heal a fault (pure data).

    ``probes`` holds every service's and dependency's probes by owner name,
    ``stop_timeout`` every service's grace period, ``depends_on`` each service's
    dependencies.
    """

    failures_before_restart: int = 2
    failures_before_degraded: int = 2
    restart_backoff: tuple[float, ...] = (15.0, 30.0, 60.0, 120.0, 300.0)
    verify_window: float = 90.0
    verify_min_uptime: float = 2.0
    stable_reset: float = 600.0
    heartbeat_interval: float = 1.0
    probes: Mapping[str, tuple[ProbeTiming, ...]] = field(default_factory=dict)
    stop_timeout: Mapping[str, float] = field(default_factory=dict)
    depends_on: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: Config) -> TargetTiming:
        def probes(items: Any) -> tuple[ProbeTiming, ...]:
            return tuple(
                ProbeTiming(p.kind, p.interval, p.timeout, p.max_age, p.latency_p95, p.window)
                for p in items
            )

        pol = cfg.policy
        return cls(
            failures_before_restart=pol.failures_before_restart,
            # The daemon's degraded threshold is its restart threshold (daemon/wiring.py).
            failures_before_degraded=pol.failures_before_restart,
            restart_backoff=tuple(pol.restart_backoff),
            verify_window=pol.verify_window,
            verify_min_uptime=pol.verify_min_uptime,
            stable_reset=pol.stable_reset,
            heartbeat_interval=cfg.daemon.heartbeat_interval,
            probes={
                **{n: probes(s.probes) for n, s in cfg.services.items()},
                **{n: probes(d.probes) for n, d in cfg.dependencies.items()},
            },
            stop_timeout={n: s.stop_timeout for n, s in cfg.services.items()},
            depends_on={n: tuple(s.depends_on) for n, s in cfg.services.items()},
        )

    @property
    def slack_s(self) -> float:
        """Added to every deadline: the health document is written up to a heartbeat
        late, the chaos command waits for the daemon's loop to claim it, the drill polls."""
        return 1.0 + 2 * self.heartbeat_interval

    def probe(self, owner: str, kind: str) -> ProbeTiming | None:
        return next((p for p in self.probes.get(owner, ()) if p.kind == kind), None)


@dataclass(frozen=True, slots=True)
class PhaseTimes:
    """Seconds from the fault, computed from a target's settings (:func:`phase_times`).

    ``raw`` is the expected time of each phase; :meth:`deadline` adds the margin.
    ``fault_for`` is how long the fault lasts (0: it does not end by itself, a kill).
    """

    raw: Mapping[str, float]
    fault_for: float
    slack: float
    why: Mapping[str, str]

    def deadline(self, phase: str) -> float:
        if phase == "fault":
            return self.fault_for
        return self.raw[phase] * MARGIN_FACTOR + self.slack


def phase_times(params: Mapping[str, Any], t: TargetTiming) -> PhaseTimes | str:
    """When each phase of this fault is due on a target with settings ``t`` (pure).

    Returns a :class:`PhaseTimes`, or the reason the target cannot show this fault
    at all (e.g. a latency at or over the REST probe's timeout is a timeout, never
    ``latency_p95_high``).

    The arithmetic, per fault (``q``: a heartbeat for the daemon to claim the chaos
    command, ``h``: a heartbeat for the health document to show a change):

    * ``kill S``: detect = q + process probe interval + h; the first restart of an
      episode is immediate, so restart = detect; recover = restart + 1 s (stop) +
      ``verify_min_uptime`` + S's slowest probe interval + :data:`STARTUP_S` + h.
    * ``stall S``: S's heartbeat goes stale after ``max_age``: detect = q + max_age +
      interval + h; restart = detect + (``failures_before_restart`` - 1) x interval;
      recover = restart + S's ``stop_timeout`` (a stopped process dies by KILL) + the
      start as for a kill. The stall lasts past the restart's deadline.
    * ``netcut D``: D's HTTP probe times out: detect = q + interval +
      ``failures_before_degraded`` x max(timeout, interval) + h; the dependents' streams
      go stale after their ``ws_freshness`` max_age: stale = q + max_age + interval + h.
      The cut lasts past both deadlines; recover = the cut + a timed-out ping in flight
      + an interval + :data:`RECONNECT_S` + the dependents' slowest probe interval + h.
    * ``latency D``: the p95 over ``window`` pings goes over ``latency_p95`` once
      ``k = window - ceil(0.95 x window) + 1`` answers are slow, then takes
      ``failures_before_degraded`` failed checks: detect = q + interval + (k +
      failures - 1) x max(latency, interval) + h. The latency lasts past that deadline;
      recover = its end + one slow answer in flight + ``window`` fast pings + h.
    """
    fault, name = str(params.get("fault", "kill")), str(params.get("target", "feeder"))
    hb = t.heartbeat_interval
    q = h = hb
    raw: dict[str, float] = {}
    why: dict[str, str] = {}
    slack = t.slack_s
    fault_for = 0.0

    def with_margin(seconds: float) -> float:
        return seconds * MARGIN_FACTOR + slack

    def start_up(service: str) -> float:
        slowest = max((p.interval for p in t.probes.get(service, ())), default=1.0)
        return t.verify_min_uptime + slowest + STARTUP_S + h

    if fault == "kill":
        proc = t.probe(name, "process")
        iv = proc.interval if proc else 1.0
        raw["detect"] = raw["restart"] = q + iv + h
        raw["recover"] = raw["restart"] + 1.0 + start_up(name)
        why["detect"] = f"process probe every {iv:g}s"
        why["recover"] = (
            f"immediate first restart, verify_min_uptime "
            f"{t.verify_min_uptime:g}s, start-up {STARTUP_S:g}s"
        )
    elif fault == "stall":
        beat = t.probe(name, "heartbeat")
        if beat is None or beat.max_age is None:
            return f"{name} has no heartbeat probe: a stalled {name} could never be seen"
        raw["detect"] = q + beat.max_age + beat.interval + h
        raw["restart"] = raw["detect"] + (t.failures_before_restart - 1) * beat.interval
        raw["recover"] = raw["restart"] + t.stop_timeout.get(name, 10.0) + start_up(name)
        fault_for = with_margin(raw["restart"])
        why["detect"] = f"heartbeat max_age {beat.max_age:g}s, checked every {beat.interval:g}s"
        why["restart"] = f"failures_before_restart {t.failures_before_restart}"
        why["recover"] = (
            f"stop_timeout {t.stop_timeout.get(name, 10.0):g}s, "
            f"verify_min_uptime {t.verify_min_uptime:g}s"
        )
    elif fault in ("netcut", "latency"):
        http = t.probe(name, "http")
        if http is None:
            return f"dependency {name} has no http probe: its {fault} could never be seen"
        dependents = [s for s, deps in t.depends_on.items() if name in deps]
        dep_iv = max((p.interval for s in dependents for p in t.probes.get(s, ())), default=1.0)
        n = t.failures_before_degraded
        if fault == "netcut":
            raw["detect"] = q + http.interval + n * max(http.timeout, http.interval) + h
            stale = [
                p
                for s in dependents
                for p in t.probes.get(s, ())
                if p.kind == "ws_freshness" and p.max_age is not None
            ]
            raw["stale"] = max(
                (q + (p.max_age or 0.0) + p.interval + h for p in stale), default=raw["detect"]
            )
            fault_for = max(with_margin(raw["detect"]), with_margin(raw["stale"])) + slack
            raw["recover"] = fault_for + http.timeout + http.interval + RECONNECT_S + dep_iv + h
            why["detect"] = f"{n} x timeout {http.timeout:g}s (probe every {http.interval:g}s)"
            why["stale"] = (
                "stream max_age " + ", ".join(f"{p.max_age:g}s" for p in stale)
                if stale
                else "no dependent stream probe"
            )
            why["recover"] = f"reconnect allowance {RECONNECT_S:g}s"
        else:
            latency = float(params.get("latency_ms", 2000)) / 1000.0
            if http.latency_p95 is None:
                return f"dependency {name}'s http probe has no latency_p95 threshold"
            if latency <= http.latency_p95:
                return (
                    f"a latency of {latency:g}s is not over {name}'s latency_p95 "
                    f"({http.latency_p95:g}s): nothing to detect"
                )
            if latency >= http.timeout:
                return (
                    f"{name}'s http probe times out after {http.timeout:g}s, at or under "
                    f"the drill's latency of {latency:g}s: it would see CONN_TIMEOUT, "
                    "never latency_p95_high"
                )
            k = http.window - math.ceil(0.95 * http.window) + 1
            per = max(latency, http.interval)
            raw["detect"] = q + http.interval + (k + n - 1) * per + h
            fault_for = with_margin(raw["detect"]) + slack
            raw["recover"] = fault_for + latency + http.window * http.interval + dep_iv + h
            why["detect"] = (
                f"{k} slow answer(s) put the p95 over {http.window} pings above "
                f"{http.latency_p95:g}s, then {n} failed checks of {per:g}s"
            )
            why["recover"] = f"{http.window} fast pings every {http.interval:g}s"
    else:
        return f"fault {fault!r} has no timing against a target"
    return PhaseTimes(raw, fault_for, slack, why)


def target_plan(
    scenario: Scenario, t: TargetTiming, *, time_scale: float | None = None, wait_s: float = 120.0
) -> tuple[Scenario, dict[str, Any]]:
    """The scenario as it plays against a target, and how its timings were chosen (pure).

    With ``time_scale`` the scenario's runbook timings are scaled by it (``1``: the
    runbook's real timings). Otherwise every ``[[expect]]`` deadline and the fault's
    length come from :func:`phase_times`, through the scenario's ``params.on_target``
    (event -> phase); the returned scenario then has ``time_scale = 1`` and its
    deadlines in seconds. A reason the drill cannot run goes into the returned
    document's ``problem`` (the drill is then ``ERROR`` before any fault).
    """
    params = dict(scenario.params)
    plan: dict[str, Any] = {}
    if time_scale is not None:
        plan["basis"] = "runbook" if time_scale == 1 else f"--time-scale {time_scale:g}"
        observe = float(params.get("observe_for_s", 120.0)) * time_scale
        params["timeout_s"] = wait_s + observe + 60.0
        params["target_timing"] = plan
        return replace(scenario, time_scale=time_scale, params=params), plan
    plan["basis"] = BASIS_TARGET
    times = phase_times(params, t)
    on_target = params.get("on_target")
    if isinstance(times, str):
        plan["problem"] = times
    elif not isinstance(on_target, Mapping):
        plan["problem"] = (
            "the scenario has no params.on_target (event -> phase), so its "
            "deadlines cannot be taken from the target; give --time-scale"
        )
    else:
        expect = []
        deadlines: dict[str, float] = {}
        for e in scenario.expect:
            phase = on_target.get(e.event)
            if (
                phase not in PHASES
                or (phase != "fault" and phase not in times.raw)
                or (phase == "fault" and times.fault_for <= 0)
            ):
                plan["problem"] = (
                    f"params.on_target: event {e.event!r} has no phase this "
                    f"fault can time (phases: {', '.join(sorted(times.raw))})"
                )
                break
            within = times.fault_for if phase == "fault" else times.raw[phase] * MARGIN_FACTOR
            slack = 0.0 if phase == "fault" else times.slack
            expect.append(
                Expectation(e.event, round(within, 3), e.detect, e.recover, round(slack, 3))
            )
            deadlines[e.event] = round(within + slack, 3)
        else:
            recover = max(deadlines.values(), default=10.0)
            params["fault_for_s"] = round(times.fault_for, 3)
            params["observe_for_s"] = round(recover + 5.0, 3)
            plan.update(
                fault_for_s=round(times.fault_for, 3),
                deadlines_s=deadlines,
                expected_s={k: round(v, 3) for k, v in times.raw.items()},
                why=dict(times.why),
            )
            scenario = replace(scenario, expect=tuple(expect))
    observe = float(params.get("observe_for_s", 120.0))
    params["timeout_s"] = wait_s + observe + 60.0
    params["target_timing"] = plan
    return replace(scenario, time_scale=1.0, params=params), plan


def default_wait_s(t: TargetTiming) -> float:
    """How long a drill waits for its preconditions by default: long enough for a restart
    episode to end (a verify window, then ``stable_reset`` of health), at least 2 min."""
    return max(120.0, t.verify_window + t.stable_reset + 30.0)


@dataclass(frozen=True, slots=True)
class DrillTarget:
    """What a drill needs to know about a target config (``--target CONFIG``).

    ``time_scale`` (``--time-scale``) replaces the timings taken from the target's own
    settings (``timing``); ``wait_s`` (``--wait``) bounds the wait for the drill lock
    and the preconditions (``None``: :func:`default_wait_s`).
    """

    config: Path
    environment: str
    runtime_dir: Path
    stop_file: Path
    services: tuple[str, ...]
    dependencies: tuple[str, ...]
    proxies: tuple[str, ...]
    protected_files: tuple[Path, ...]
    max_age_s: float
    timing: TargetTiming = field(default_factory=TargetTiming)
    time_scale: float | None = None
    wait_s: float | None = None

    @classmethod
    def from_config(
        cls, cfg: Config, *, time_scale: float | None = None, wait_s: float | None = None
    ) -> DrillTarget:
        """From a loaded config; health older than 5 heartbeats (at least 5 s) is stale."""
        return cls(
            config=cfg.path,
            environment=cfg.environment,
            runtime_dir=cfg.paths.runtime_dir,
            stop_file=cfg.paths.stop_file,
            services=tuple(cfg.services),
            dependencies=tuple(cfg.dependencies),
            proxies=tuple(cfg.chaos.proxies),
            protected_files=tuple(cfg.chaos.protected_files),
            max_age_s=stale_after_s(cfg.daemon.heartbeat_interval),
            timing=TargetTiming.from_config(cfg),
            time_scale=time_scale,
            wait_s=wait_s,
        )

    @property
    def wait(self) -> float:
        return self.wait_s if self.wait_s is not None else default_wait_s(self.timing)

    def plan(self, scenario: Scenario) -> tuple[Scenario, dict[str, Any]]:
        """:func:`target_plan` with this target's settings, scale and wait."""
        return target_plan(scenario, self.timing, time_scale=self.time_scale, wait_s=self.wait)

    def protect(self) -> ProtectedSet:
        """The blast radius of a daemon drill on this target: its config and its own
        ``chaos.protected_files``, not the runtime files the drill is meant to move
        (``global_flags.json`` goes DEGRADED, ``health_v2.json`` changes with the state).
        Building the set is pure; the guard's capture and checks are its own I/O."""
        from autoheal.chaos.blast import ProtectedSet

        return ProtectedSet(files=[self.config, *self.protected_files])


def exchange_criteria(scenario: Scenario) -> list[str]:
    """The criteria that read the drill's own fake exchange (pure)."""
    return [
        c.name
        for c in scenario.criteria
        if c.observed == "orders_before_fault" or c.observed.startswith("new_orders_after_")
    ]


def scaled_policy(time_scale: float, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The runbook policy with its durations scaled (as ``"<n>s"`` strings), then overrides.

    Args:
        time_scale: drill seconds per runbook second.
        overrides: policy keys to set as given (mutation tests: ``max_restarts = 50``).
    """
    out: dict[str, Any] = {}
    for key, value in RUNBOOK_POLICY.items():
        if key in _DURATIONS:
            values = value if isinstance(value, list) else [value]
            scaled = [f"{float(v) * time_scale:g}s" for v in values]
            out[key] = scaled if isinstance(value, list) else scaled[0]
        else:
            out[key] = value
    out.update(overrides or {})
    return out
