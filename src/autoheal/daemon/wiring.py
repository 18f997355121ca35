"""From the validated config to what the core and the shell need: policy, specs, probes.

Kept apart from the loop so that the CLI's direct mode (no daemon running) builds
exactly the same policy and process specs as the daemon.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from autoheal.config import Config, ProbeConfig, ServiceConfig, secret_envs
from autoheal.core.judgement import FailureWindow
from autoheal.core.policy import ComponentSpec, Policy
from autoheal.procs import ServiceSpec
from autoheal.store import layout

if TYPE_CHECKING:
    from autoheal.probes import HeartbeatFiles
    from autoheal.probes.proctree import ProcessTree
    from autoheal.probes.result import Probe

PROCESS_PROBE = "process"


def external_dependencies(config: Config, name: str) -> tuple[str, ...]:
    """External dependencies a service needs, also through other services (no cycles)."""
    found: list[str] = []
    seen: set[str] = set()
    stack = [name]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        for dep in config.services[current].depends_on:
            if dep in config.dependencies:
                if dep not in found:
                    found.append(dep)
            elif dep in config.services:
                stack.append(dep)
    return tuple(found)


def component_probes(service: ServiceConfig) -> tuple[str, ...]:
    """Every service has the process probe, whether or not the config names it."""
    return (PROCESS_PROBE, *(p.name for p in service.probes if p.kind != "process"))


def build_policy(config: Config) -> Policy:
    heal = config.policy  # the core's HealPolicy, validated by the config
    return Policy(
        components={
            name: ComponentSpec(
                name,
                component_probes(svc),
                external_dependencies(config, name),
                svc.required,
                heal,
                windows=failure_windows(svc.probes),
                failsafe_exit_codes=frozenset(svc.failsafe_exit_codes),
                restart_exit_codes=frozenset(svc.restart_exit_codes),
                debug_on_retry=svc.debug_environment is not None,
            )
            for name, svc in config.services.items()
        },
        dependencies={
            name: tuple(p.name for p in dep.probes) for name, dep in config.dependencies.items()
        },
        failures_before_degraded=config.policy.failures_before_restart,
        dependency_windows={
            name: windows
            for name, dep in config.dependencies.items()
            if (windows := failure_windows(dep.probes))
        },
    )


def failure_windows(probes: tuple[ProbeConfig, ...]) -> dict[str, FailureWindow]:
    """The probes judged K of N (``failures`` within ``within``), by name."""
    return {
        p.name: FailureWindow(p.failures, p.within)
        for p in probes
        if p.failures is not None and p.within is not None
    }


def logs_dir(config: Config) -> Path:
    return config.paths.runtime_dir / layout.LOGS_DIR


def service_spec(
    config: Config, svc: ServiceConfig, *, keep_out: frozenset[str] = frozenset()
) -> ServiceSpec:
    """How to start ``svc``; ``keep_out``: more variables to withhold (see reload)."""
    return ServiceSpec(
        name=svc.name,
        argv=tuple(svc.argv),
        cwd=svc.cwd,
        pidfile=svc.pidfile,
        log_file=logs_dir(config) / f"{svc.name}.log",
        # The guard library finds the kill switch through these (DESIGN.md §3, §7); the
        # daemon's own paths win over a service's env of the same name.
        env={
            **svc.env,
            "AUTOHEAL_RUNTIME_DIR": str(config.paths.runtime_dir),
            "AUTOHEAL_STOP_FILE": str(config.paths.stop_file),
        },
        # Every secret the daemon reads from its environment (webhooks, the fleet's
        # Redis, the status page's token): its services must not inherit them.
        env_remove=frozenset(secret_envs(config)) | keep_out,
        stop_signal=int(svc.stop_signal),
        stop_timeout=svc.stop_timeout,
        lock_files=tuple(svc.lock_files),
        log_max_bytes=svc.log_max_bytes,
        log_backups=svc.log_backups,
    )


def start_order(config: Config) -> list[str]:
    """Services in dependency order (those depended upon first)."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order or name in visiting:
            return
        visiting.add(name)
        for dep in config.services[name].depends_on:
            if dep in config.services:
                visit(dep)
        order.append(name)

    for name in config.services:
        visit(name)
    return order


def stop_waves(config: Config) -> list[list[str]]:
    """The services in waves to stop at shutdown: each wave once nothing left depends on it.

    A service is stopped only after every service that depends on it; the services of
    one wave do not depend on each other and are stopped together (500 sequential
    stops took about 10 s).
    """
    users: dict[str, set[str]] = {name: set() for name in config.services}
    for name, svc in config.services.items():
        for dep in svc.depends_on:
            if dep in users:
                users[dep].add(name)
    waves: list[list[str]] = []
    left = set(config.services)
    while left:
        wave = sorted(n for n in left if not users[n] & left)
        if not wave:  # a dependency cycle (config validation refuses it): one by one
            wave = [next(n for n in reversed(start_order(config)) if n in left)]
        waves.append(wave)
        left -= set(wave)
    return waves


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """One configured probe and whose it is."""

    target: str
    config: ProbeConfig


def probe_targets(config: Config) -> list[ProbeTarget]:
    out = [
        ProbeTarget(name, p)
        for name, svc in config.services.items()
        for p in svc.probes
        if p.kind != "process"
    ]
    out += [ProbeTarget(name, p) for name, dep in config.dependencies.items() for p in dep.probes]
    return out


def make_probe(
    pc: ProbeConfig,
    *,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
    files: HeartbeatFiles | None = None,
    pid_of: Callable[[], int | None] | None = None,
    env_remove: frozenset[str] | None = None,
    tree: ProcessTree | None = None,
) -> Probe:
    """Build the probe object for a probe config (imports lazily: httpx is heavy).

    ``clock`` and ``wall`` are the daemon's (monotonic and unix seconds); ``files`` is
    the daemon's ``HeartbeatFiles``: its heartbeat probes share the reads. A
    ``resource`` probe needs ``pid_of``, its service's live PID (the daemon's process
    table); an ``exec`` probe needs ``env_remove``, the variables its command must not
    inherit (:func:`exec_env_remove`): no default, so no caller forgets the secrets.
    ``tree`` is shared by the daemon's resource probes (one walk of ``/proc`` serves all).
    """
    if pc.kind in SYSTEM_KINDS:
        return _system_probe(pc, clock=clock, pid_of=pid_of, env_remove=env_remove, tree=tree)
    if pc.kind in ("heartbeat", "ws_freshness", "feed_lag") and (
        pc.path is None or pc.max_age is None
    ):
        raise ValueError(f"{pc.kind} probe {pc.name!r} needs a path and a max_age")
    if pc.kind in ("http", "http_json") and pc.url is None:
        raise ValueError(f"{pc.kind} probe {pc.name!r} needs a url")
    if pc.kind == "http_json" and pc.url is not None and pc.pointer is not None:
        from autoheal.probes import HttpJsonProbe

        return HttpJsonProbe(
            pc.url,
            pc.pointer,
            pc.timeout,
            max_age=pc.max_age,
            equals=pc.equals,
            unit=pc.unit,
            expect_status=tuple(pc.expect_status),
            auth=pc.auth,
            auth_env=pc.auth_env,
            wall=wall,
            clock=clock,
        )
    if pc.kind == "heartbeat" and pc.path is not None and pc.max_age is not None:
        from autoheal.probes import HeartbeatProbe

        return HeartbeatProbe(pc.path, pc.max_age, wall=wall, clock=clock, files=files)
    if pc.kind == "ws_freshness" and pc.path is not None and pc.max_age is not None:
        from autoheal.probes import FieldFreshnessProbe

        return FieldFreshnessProbe(
            pc.path,
            pc.field or "ws_last_msg_ts",
            max_age=pc.max_age,
            wall=wall,
            clock=clock,
            files=files,
        )
    if pc.kind == "feed_lag" and pc.path is not None and pc.max_age is not None:
        from autoheal.probes.feed_lag import FeedLagProbe

        return FeedLagProbe(
            pc.path,
            pc.max_age,
            symbols=pc.symbols,
            max_gaps=pc.max_gaps,
            wall=wall,
            clock=clock,
            files=files,
        )
    if pc.kind == "http" and pc.url is not None:
        from autoheal.probes import HttpProbe

        return HttpProbe(
            pc.url,
            pc.timeout,
            expect_status=tuple(pc.expect_status),
            latency_p95=pc.latency_p95,
            window=pc.window,
            clock=clock,
        )
    raise ValueError(f"no probe for kind {pc.kind!r}")


#: The probe kinds of issue 23 built by :func:`_system_probe`.
SYSTEM_KINDS = ("exec", "tcp", "resource")


def exec_env_remove(config: Config) -> frozenset[str]:
    """What an exec probe's command must not inherit: every secret the daemon reads."""
    return frozenset(secret_envs(config))


def _system_probe(
    pc: ProbeConfig,
    *,
    clock: Callable[[], float],
    pid_of: Callable[[], int | None] | None,
    env_remove: frozenset[str] | None,
    tree: ProcessTree | None,
) -> Probe:
    if pc.kind == "exec":
        if env_remove is None:
            raise ValueError(f"exec probe {pc.name!r} needs env_remove (exec_env_remove)")
        from autoheal.probes.exec import ExecProbe

        return ExecProbe(pc.argv, pc.timeout, env_remove=env_remove, clock=clock)
    if pc.kind == "tcp":
        if pc.host is None or pc.port is None:
            raise ValueError(f"tcp probe {pc.name!r} needs a host and a port")
        from autoheal.probes.tcp import TcpProbe

        return TcpProbe(pc.host, pc.port, pc.timeout, clock=clock)
    if pid_of is None:
        raise ValueError(f"resource probe {pc.name!r} needs pid_of (its service's PID)")
    from autoheal.core.resources import ResourceLimits
    from autoheal.probes.resource import ResourceProbe

    limits = ResourceLimits(pc.max_rss, pc.max_cpu_percent, pc.max_fds, pc.max_threads)
    return ResourceProbe(pid_of, limits, tree=tree, clock=clock)
