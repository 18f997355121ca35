"""Semantic resolution: from the raw schema to a checked :class:`~autoheal.config.Config`.

msgspec has already checked the types; this is everything a type cannot say: allowed
environments and names, defaults that depend on other values (the stop file, pidfiles),
placeholders, and the cross-references between tables (``depends_on``, pidfiles, chaos
proxies).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from autoheal.config._bot_api import resolve_bot_api
from autoheal.config._fleet import resolve_fleet
from autoheal.config._judging import with_exit_rules
from autoheal.config._model import (
    ENVIRONMENTS,
    WEBHOOK_FORMATS,
    ChaosConfig,
    Config,
    DaemonConfig,
    DependencyConfig,
    Paths,
    PolicyConfig,
    ServiceConfig,
    WebhookConfig,
)
from autoheal.config._paths import stop_file_clash
from autoheal.config._probes import resolve_probes
from autoheal.config._schema import (
    RawChaos,
    RawConfig,
    RawDaemon,
    RawDependency,
    RawPolicy,
    RawRisk,
    RawRiskSymbol,
    RawService,
    RawWebhook,
    convert,
    fail,
    type_words,
)
from autoheal.config._values import (
    ENV_NAME,
    NAME,
    Context,
    as_duration,
    as_listen,
    as_path,
    as_signal,
    as_url,
    expand,
    is_loopback_host,
)

if TYPE_CHECKING:
    from autoheal.guard.risk_limits import RiskLimits

#: The daemon's own files use this name (``auto_heal.heartbeat.json``).
_RESERVED_NAMES = frozenset({"auto_heal"})


def resolve(raw: RawConfig, config_file: Path) -> Config:
    """Check ``raw`` and resolve it against the folder of ``config_file``.

    Args:
        raw: the whole file, as parsed by the raw schema.
        config_file: the absolute path of the file; relative paths resolve against its folder.

    Raises:
        Invalid: the first problem found, at its dotted key.
    """
    if raw.environment not in ENVIRONMENTS:
        fail(
            "environment",
            f"unknown environment {raw.environment!r} (expected live, testnet or paper)",
        )
    config_dir = config_file.parent
    values = {
        "python": sys.executable,
        "config_dir": str(config_dir),
        "config_file": str(config_file),
    }
    runtime_dir = as_path(raw.paths.runtime_dir, config_dir, "paths.runtime_dir", values)
    values["runtime_dir"] = str(runtime_dir)
    stop_file = (
        as_path(raw.paths.stop_file, config_dir, "paths.stop_file", values)
        if raw.paths.stop_file is not None
        else runtime_dir.parent / "STOP.TXT"
    )
    values["stop_file"] = str(stop_file)
    ctx = Context(config_dir=config_dir, runtime_dir=runtime_dir, placeholders=values)
    # Validate in the order a reader meets things in the file, so the first error reported
    # is the first one they would find.
    policy = _policy(raw.policy)
    daemon = _daemon(raw.daemon, ctx)
    services: dict[str, ServiceConfig] = {}
    for name, body in raw.services.items():
        _check_name(name, "services")
        raw_svc = convert(body, RawService, f"services.{name}")
        svc = _service(name, raw_svc, ctx)
        services[name] = with_exit_rules(svc, raw_svc, f"services.{name}", ctx)
    dependencies: dict[str, DependencyConfig] = {}
    for name, body in raw.dependencies.items():
        _check_name(name, "dependencies")
        if name in services:
            fail(f"dependencies.{name}", f"name {name!r} is already used by a service")
        raw_dep = convert(body, RawDependency, f"dependencies.{name}")
        dependencies[name] = _dependency(name, raw_dep, ctx)
    _check_depends_on(services, dependencies)
    _check_unique_pidfiles(services)
    config = Config(
        path=config_file,
        config_dir=config_dir,
        environment=raw.environment,
        paths=Paths(runtime_dir=runtime_dir, stop_file=stop_file),
        policy=policy,
        daemon=daemon,
        services=services,
        dependencies=dependencies,
        webhooks=_webhooks(raw.webhooks, ctx),
        chaos=_chaos(raw.chaos, dependencies, ctx),
        fleet=None if raw.fleet is None else resolve_fleet(raw.fleet, ctx.placeholders),
        risk=None if raw.risk is None else _risk(raw.risk),
        bot_api=None
        if raw.bot_api is None
        else resolve_bot_api(raw.bot_api, ctx.placeholders, services),
        compliance_window=_compliance_window(raw.compliance.window),
    )
    # Last: it needs every path the config names (pidfiles, probes, logs, ...).
    clash = stop_file_clash(config)
    if clash is not None:
        fail("paths.stop_file", clash)
    return config


def _compliance_window(value: str | int | float) -> float:
    """``[compliance] window``: a positive duration (a drill's pass older than it is stale)."""
    return as_duration(value, "compliance.window")


def _risk(raw: RawRisk) -> RiskLimits:
    """``[risk]``: msgspec checked the types; ``autoheal.guard.risk_limits`` checks the values.

    Imported here, only for a config with ``[risk]``, and only that light half of
    ``autoheal.guard.risk`` (not the order check, its state files and logging):
    ``autoheal status`` and ``autoheal check-config`` must start fast.
    """
    from autoheal.guard.risk_limits import RiskConfigError, parse_limits

    table = {f: getattr(raw, f) for f in raw.__struct_fields__ if f != "symbols"}
    symbols = {}
    for symbol, body in raw.symbols.items():
        one = convert(body, RawRiskSymbol, f"risk.symbols.{symbol}")
        symbols[symbol] = {f: getattr(one, f) for f in one.__struct_fields__}
    try:
        return parse_limits({**table, "symbols": symbols}, "risk")
    except RiskConfigError as exc:
        fail(exc.key, exc.problem)


def _chaos(raw: RawChaos, dependencies: dict[str, DependencyConfig], ctx: Context) -> ChaosConfig:
    proxies: dict[str, Path] = {}
    for dep, control in raw.proxies.items():
        if dep not in dependencies:
            fail(f"chaos.proxies.{dep}", f"unknown dependency {dep!r}")
        proxies[dep] = as_path(control, ctx.runtime_dir, f"chaos.proxies.{dep}", ctx.placeholders)
    protected = tuple(
        as_path(f, ctx.config_dir, f"chaos.protected_files[{i}]", ctx.placeholders)
        for i, f in enumerate(raw.protected_files)
    )
    return ChaosConfig(proxies=proxies, protected_files=protected)


def _check_name(name: str, table: str) -> None:
    # Names become file names (<name>.pid) and dotted keys, so no dots, slashes or spaces.
    if not NAME.fullmatch(name):
        fail(f"{table}.{name}", "names may hold only letters, digits, '_' and '-'")
    if name in _RESERVED_NAMES:
        fail(f"{table}.{name}", f"{name!r} is reserved for the daemon's own files")


def _policy(raw: RawPolicy) -> PolicyConfig:
    if raw.failures_before_restart < 1:
        fail("policy.failures_before_restart", "must be at least 1")
    if raw.max_restarts < 0:
        fail("policy.max_restarts", "must be 0 or more")
    if not raw.restart_backoff:
        fail("policy.restart_backoff", "must list at least one delay")
    backoff = tuple(
        as_duration(v, f"policy.restart_backoff[{i}]") for i, v in enumerate(raw.restart_backoff)
    )
    for i in range(1, len(backoff)):
        if backoff[i] < backoff[i - 1]:
            fail(f"policy.restart_backoff[{i}]", "delays must not decrease")
    verify_window = as_duration(raw.verify_window, "policy.verify_window")
    if raw.verify_min_uptime is None:
        # The default (2 s) shrinks to fit a shorter window rather than refuse a config
        # that predates the setting; a value given explicitly must fit.
        min_uptime = min(PolicyConfig().verify_min_uptime, verify_window)
    else:
        min_uptime = as_duration(raw.verify_min_uptime, "policy.verify_min_uptime")
        if min_uptime > verify_window:
            fail(
                "policy.verify_min_uptime",
                f"must not exceed policy.verify_window ({verify_window:g}s): "
                "no restart could ever be verified",
            )
    return PolicyConfig(
        failures_before_restart=raw.failures_before_restart,
        restart_backoff=backoff,
        verify_window=verify_window,
        max_restarts=raw.max_restarts,
        stable_reset=as_duration(raw.stable_reset, "policy.stable_reset"),
        verify_min_uptime=min_uptime,
    )


def _daemon(raw: RawDaemon, ctx: Context) -> DaemonConfig:
    listen = as_listen(raw.status_listen, "daemon.status_listen")
    if listen is not None and not is_loopback_host(listen[0]) and not raw.status_listen_public:
        fail(
            "daemon.status_listen",
            f"{listen[0]!r} is not a loopback address: the status page would be reachable "
            "from other machines; set daemon.status_listen_public = true to mean it",
        )
    if raw.status_token_env and not ENV_NAME.fullmatch(raw.status_token_env):
        fail(
            "daemon.status_token_env",
            "must be the name of an environment variable, not the token",
        )
    return DaemonConfig(
        heartbeat_interval=as_duration(raw.heartbeat_interval, "daemon.heartbeat_interval"),
        stop_services_on_exit=raw.stop_services_on_exit,
        status_listen=listen,
        status_listen_public=raw.status_listen_public,
        status_token_env=raw.status_token_env or None,
        log_file=(
            as_path(raw.log_file, ctx.config_dir, "daemon.log_file", ctx.placeholders)
            if raw.log_file
            else None
        ),
        journal_group=_group(raw.journal_group),
    )


def _group(name: str) -> str | None:
    if not name:
        return None
    import grp

    try:
        grp.getgrnam(name)
    except KeyError:
        fail("daemon.journal_group", f"no such group {name!r}")
    return name


def _service(name: str, raw: RawService, ctx: Context) -> ServiceConfig:
    key = f"services.{name}"
    if not raw.argv:
        fail(f"{key}.argv", "must not be empty: give the program and its arguments")
    argv = []
    for i, arg in enumerate(raw.argv):
        if not arg:
            fail(f"{key}.argv[{i}]", "must not be an empty string")
        argv.append(expand(arg, f"{key}.argv[{i}]", ctx.placeholders))
    env = {}
    for var, value in raw.env.items():
        if not ENV_NAME.fullmatch(var):
            fail(f"{key}.env", f"{var!r} is not a valid environment variable name")
        if not isinstance(value, str):
            fail(
                f"{key}.env.{var}",
                f"expected string, got {type_words(type(value).__name__)}",
            )
        env[var] = expand(value, f"{key}.env.{var}", ctx.placeholders)
    for field_name, value in (
        ("log_max_bytes", raw.log_max_bytes),
        ("log_backups", raw.log_backups),
    ):
        if value < 0:
            fail(f"{key}.{field_name}", "must be 0 or more")
    if len(set(raw.depends_on)) != len(raw.depends_on):
        fail(f"{key}.depends_on", "lists a name twice")
    return ServiceConfig(
        name=name,
        argv=tuple(argv),
        cwd=as_path(raw.cwd, ctx.config_dir, f"{key}.cwd", ctx.placeholders),
        env=env,
        stop_signal=as_signal(raw.stop_signal, f"{key}.stop_signal"),
        stop_timeout=as_duration(raw.stop_timeout, f"{key}.stop_timeout"),
        pidfile=as_path(
            raw.pidfile or f"{name}.pid", ctx.runtime_dir, f"{key}.pidfile", ctx.placeholders
        ),
        lock_files=tuple(
            as_path(p, ctx.runtime_dir, f"{key}.lock_files[{i}]", ctx.placeholders)
            for i, p in enumerate(raw.lock_files)
        ),
        depends_on=tuple(raw.depends_on),
        required=raw.required,
        autostart=raw.autostart,
        log_max_bytes=raw.log_max_bytes,
        log_backups=raw.log_backups,
        probes=resolve_probes(raw.probes, name, key, ctx, has_process=True),
    )


def _dependency(name: str, raw: RawDependency, ctx: Context) -> DependencyConfig:
    key = f"dependencies.{name}"
    if not raw.probes:
        fail(f"{key}.probes", "a dependency needs at least one probe")
    return DependencyConfig(
        name=name, probes=resolve_probes(raw.probes, name, key, ctx, has_process=False)
    )


def _webhooks(raws: list[RawWebhook], ctx: Context) -> tuple[WebhookConfig, ...]:
    out: list[WebhookConfig] = []
    for i, raw in enumerate(raws):
        key = f"webhooks[{i}]"
        if not NAME.fullmatch(raw.name):
            fail(f"{key}.name", "names may hold only letters, digits, '_' and '-'")
        if any(w.name == raw.name for w in out):
            fail(f"{key}.name", f"duplicate webhook name {raw.name!r}")
        if raw.format not in WEBHOOK_FORMATS:
            fail(
                f"{key}.format",
                f"unknown format {raw.format!r} (expected {', '.join(WEBHOOK_FORMATS)})",
            )
        if raw.secret_env is not None and not ENV_NAME.fullmatch(raw.secret_env):
            # Do not echo the value: someone may have pasted the secret itself here.
            fail(f"{key}.secret_env", "must be the name of an environment variable, not the secret")
        url = as_url(raw.url, f"{key}.url", ctx.placeholders)
        _check_secret_transport(url, raw.secret_env, f"{key}.url")
        out.append(
            WebhookConfig(
                name=raw.name,
                url=url,
                format=raw.format,
                secret_env=raw.secret_env,
                timeout=as_duration(raw.timeout, f"{key}.timeout"),
            )
        )
    return tuple(out)


def _check_secret_transport(url: str, secret_env: str | None, key: str) -> None:
    """A secret travels only over https, or over plain http to this machine (loopback)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or is_loopback_host(parts.hostname or ""):
        return
    if secret_env is not None or "{secret}" in url or parts.password is not None:
        # Never echo the URL: it may hold the secret itself.
        fail(
            key,
            "a webhook with a secret (secret_env, {secret} or credentials in the URL) "
            "must use https:// unless it goes to a loopback address",
        )


def _check_depends_on(
    services: dict[str, ServiceConfig], dependencies: dict[str, DependencyConfig]
) -> None:
    for name, svc in services.items():
        for other in svc.depends_on:
            if other not in services and other not in dependencies:
                fail(f"services.{name}.depends_on", f"unknown service or dependency {other!r}")
    graph = {name: [d for d in svc.depends_on if d in services] for name, svc in services.items()}
    cycle = _find_cycle(graph)
    if cycle:
        fail(f"services.{cycle[0]}.depends_on", f"dependency cycle: {' -> '.join(cycle)}")


def _find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """Return the first cycle found as ``[a, b, ..., a]`` (declaration order), or ``None``."""
    done: set[str] = set()
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        stack.append(node)
        for nxt in graph[node]:
            if nxt in stack:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in done and (found := visit(nxt)):
                return found
        stack.pop()
        done.add(node)
        return None

    for start in graph:
        if start not in done and (found := visit(start)):
            return found
    return None


def _check_unique_pidfiles(services: dict[str, ServiceConfig]) -> None:
    owners: dict[Path, str] = {}
    for name, svc in services.items():
        if svc.pidfile in owners:
            fail(f"services.{name}.pidfile", f"same file as services.{owners[svc.pidfile]}.pidfile")
        owners[svc.pidfile] = name
