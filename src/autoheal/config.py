"""The TOML configuration: parsed, validated and resolved into frozen, typed objects.

Two layers, kept apart on purpose:

* the **raw schema** (``_Raw*`` msgspec Structs) mirrors the TOML file exactly: strict
  types, ``forbid_unknown_fields``, defaults as the user would write them. msgspec
  reports *where* a value is wrong; :func:`_from_msgspec` turns its ``$.a.b[0]`` paths
  into the dotted keys an operator can find in the file (``services.feeder.argv``).
* the **resolved objects** (:class:`Config` and friends, frozen msgspec Structs) are what
  the rest of autoheal uses: durations are float seconds, paths are absolute, the
  placeholders ``{python}``, ``{config_dir}``, ``{runtime_dir}`` and ``{stop_file}`` are
  expanded, signals are numbers, and cross-references (``depends_on``) are checked.

Every problem becomes one :class:`ConfigError` naming the file, the key and what is
wrong, so ``autoheal check-config`` can print one line and exit 2, never a traceback.
Error messages never echo webhook URLs, env values or secret names' values: they may
hold credentials.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import tomllib
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import msgspec
from msgspec.structs import replace

from autoheal.core.durations import parse_duration

__all__ = [
    "ENVIRONMENTS",
    "PROBE_KINDS",
    "WEBHOOK_FORMATS",
    "Config",
    "ConfigError",
    "DaemonConfig",
    "DependencyConfig",
    "Paths",
    "PolicyConfig",
    "ProbeConfig",
    "ServiceConfig",
    "WebhookConfig",
    "load_config",
    "summary",
]

ENVIRONMENTS = ("live", "testnet", "paper")
PROBE_KINDS = ("process", "heartbeat", "ws_freshness", "http")
WEBHOOK_FORMATS = ("generic", "slack", "telegram")

#: A config file is a few kilobytes; anything this big is the wrong file.
MAX_CONFIG_BYTES = 1024 * 1024


class ConfigError(Exception):
    """The configuration cannot be used; one problem, located precisely.

    Attributes:
        file: the config file as the caller named it.
        key: dotted key such as ``services.feeder.stop_timeout``, or ``""`` for the whole file.
        problem: what is wrong, in words.
    """

    def __init__(self, file: str, key: str, problem: str) -> None:
        super().__init__(file, key, problem)  # args as given, so the error pickles
        self.file = file
        self.key = key
        self.problem = problem

    def __str__(self) -> str:
        if self.key:
            return f"{self.file}: {self.key}: {self.problem}"
        return f"{self.file}: {self.problem}"


# --------------------------------------------------------------------------- resolved objects


class _Frozen(msgspec.Struct, frozen=True, kw_only=True):
    """Immutable value objects; msgspec Structs are created ~10x faster than dataclasses."""


class Paths(_Frozen, frozen=True):
    """Where the runtime files live. Both absolute."""

    runtime_dir: Path
    stop_file: Path


class PolicyConfig(_Frozen, frozen=True):
    """Healing policy (DESIGN.md §2); durations in seconds."""

    failures_before_restart: int = 2
    restart_backoff: tuple[float, ...] = (15.0, 30.0, 60.0, 120.0, 300.0)
    verify_window: float = 90.0
    max_restarts: int = 3
    stable_reset: float = 600.0


class DaemonConfig(_Frozen, frozen=True):
    """Settings of the daemon itself; ``status_listen`` is ``(host, port)`` or ``None`` (off)."""

    heartbeat_interval: float = 1.0
    stop_services_on_exit: bool = True
    status_listen: tuple[str, int] | None = None
    log_file: Path | None = None


class ProbeConfig(_Frozen, frozen=True):
    """One health probe.

    ``max_age``, ``path``, ``field``, ``url`` and ``latency_p95`` are ``None`` when ``kind``
    does not use them; ``expect_status`` and ``window`` keep their defaults (http only).
    """

    kind: str
    name: str
    interval: float
    timeout: float
    max_age: float | None = None
    path: Path | None = None
    field: str | None = None
    url: str | None = None
    expect_status: tuple[int, ...] = (200,)
    latency_p95: float | None = None
    window: int = 20


class ServiceConfig(_Frozen, frozen=True):
    """A supervised process; ``stop_signal`` is a :class:`signal.Signals` (an int)."""

    name: str
    argv: tuple[str, ...]
    cwd: Path
    env: dict[str, str]
    stop_signal: int
    stop_timeout: float
    pidfile: Path
    lock_files: tuple[Path, ...]
    depends_on: tuple[str, ...]
    required: bool
    autostart: bool
    log_max_bytes: int
    log_backups: int
    probes: tuple[ProbeConfig, ...]


class DependencyConfig(_Frozen, frozen=True):
    """Something outside autoheal's control (an exchange API): probed, never restarted."""

    name: str
    probes: tuple[ProbeConfig, ...]


class WebhookConfig(_Frozen, frozen=True):
    """Where FAILSAFE notices go; ``secret_env`` names an env var, never holds the secret."""

    name: str
    url: str
    format: str
    secret_env: str | None
    timeout: float


class ChaosConfig(_Frozen, frozen=True):
    """Fault injection: the fault proxy in front of each dependency, and what must not change.

    ``proxies`` maps a dependency to the file where its fault proxy wrote its control port.
    """

    proxies: dict[str, Path] = {}
    protected_files: tuple[Path, ...] = ()


class Config(_Frozen, frozen=True):
    """The whole, validated configuration."""

    path: Path
    config_dir: Path
    environment: str
    paths: Paths
    policy: PolicyConfig
    daemon: DaemonConfig
    services: dict[str, ServiceConfig]
    dependencies: dict[str, DependencyConfig]
    webhooks: tuple[WebhookConfig, ...]
    chaos: ChaosConfig = ChaosConfig()


# --------------------------------------------------------------------------- raw TOML schema

_Duration = str | int | float  # msgspec refuses bool here, as parse_duration does


class _Raw(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


class _RawPaths(_Raw, frozen=True):
    runtime_dir: str = "shared_data"
    stop_file: str | None = None


class _RawPolicy(_Raw, frozen=True):
    failures_before_restart: int = 2
    restart_backoff: list[_Duration] = msgspec.field(
        default_factory=lambda: ["15s", "30s", "60s", "120s", "300s"]
    )
    verify_window: _Duration = "90s"
    max_restarts: int = 3
    stable_reset: _Duration = "10m"


class _RawDaemon(_Raw, frozen=True):
    heartbeat_interval: _Duration = "1s"
    stop_services_on_exit: bool = True
    status_listen: str = ""
    log_file: str = ""


class _RawProbe(_Raw, frozen=True):
    kind: str
    name: str | None = None
    interval: _Duration = "1s"
    timeout: _Duration = "1s"
    max_age: _Duration | None = None
    path: str | None = None
    field: str | None = None
    url: str | None = None
    expect_status: list[int] | None = None
    latency_p95: _Duration | None = None
    window: int | None = None


class _RawService(_Raw, frozen=True):
    argv: list[str]
    cwd: str = "."
    env: dict[str, Any] = {}  # values checked by hand: msgspec's path would hide the env key
    stop_signal: str = "SIGTERM"
    stop_timeout: _Duration = "10s"
    pidfile: str | None = None
    lock_files: list[str] = []
    depends_on: list[str] = []
    required: bool = True
    autostart: bool = True
    log_max_bytes: int = 1024 * 1024
    log_backups: int = 3
    probes: list[_RawProbe] = []


class _RawDependency(_Raw, frozen=True):
    probes: list[_RawProbe] = []


class _RawWebhook(_Raw, frozen=True):
    name: str
    url: str
    format: str = "generic"
    secret_env: str | None = None
    timeout: _Duration = "5s"


class _RawChaos(_Raw, frozen=True):
    proxies: dict[str, str] = {}
    protected_files: list[str] = []


class _RawConfig(_Raw, frozen=True):
    environment: str
    paths: _RawPaths = msgspec.field(default_factory=_RawPaths)
    policy: _RawPolicy = msgspec.field(default_factory=_RawPolicy)
    daemon: _RawDaemon = msgspec.field(default_factory=_RawDaemon)
    # Tables of named tables are converted one entry at a time: msgspec writes a dict
    # key as ``[...]`` in its error paths, and the operator needs to see the name.
    services: dict[str, Any] = {}
    dependencies: dict[str, Any] = {}
    webhooks: list[_RawWebhook] = []
    chaos: _RawChaos = msgspec.field(default_factory=_RawChaos)


_KNOWN_FIELDS = sorted(
    {
        f
        for t in (
            _RawConfig,
            _RawPaths,
            _RawPolicy,
            _RawDaemon,
            _RawProbe,
            _RawService,
            _RawDependency,
            _RawWebhook,
            _RawChaos,
        )
        for f in t.__struct_fields__
    }
)

# --------------------------------------------------------------------------- loading


class _Invalid(Exception):
    """Internal: a problem at a key; :func:`load_config` adds the file name."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(key, problem)
        self.key = key
        self.problem = problem


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read, validate and resolve a config file.

    Args:
        path: the TOML file; relative paths inside it resolve against its folder.

    Returns:
        The resolved :class:`Config`.

    Raises:
        ConfigError: the file is missing, unreadable, not TOML, or not a valid config.
    """
    file = os.fspath(path)
    try:
        return _load(file)
    except _Invalid as exc:
        raise ConfigError(file, exc.key, exc.problem) from None


def _load(file: str) -> Config:
    try:
        with open(file, "rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise _Invalid("", "file not found") from None
    except IsADirectoryError:
        raise _Invalid("", "is a directory, not a file") from None
    except OSError as exc:
        raise _Invalid("", f"cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise _Invalid("", f"file is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Invalid("", f"not UTF-8 text (bad byte at offset {exc.start})") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _Invalid("", f"invalid TOML: {exc}") from None  # keeps "(at line N, column M)"
    raw: _RawConfig = _convert(doc, _RawConfig, "")
    return _resolve(raw, Path(os.path.abspath(file)))


def _convert(obj: Any, typ: Any, prefix: str) -> Any:
    try:
        return msgspec.convert(obj, typ)
    except msgspec.ValidationError as exc:
        raise _from_msgspec(str(exc), prefix) from None


_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_TYPE_WORDS = {
    "object": "table",
    "array": "array",
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "null": "nothing",
    "datetime": "date-time",
    "list": "array",
    "dict": "table",
}


def _from_msgspec(text: str, prefix: str) -> _Invalid:
    """Turn ``Expected `int`, got `str` - at `$.policy.max_restarts``` into a key and words."""
    match = _AT.match(text)
    msg, path = (match["msg"], match["path"] or "") if match else (text, "")
    key = _join(prefix, path.lstrip("."))
    if found := re.fullmatch(r"Object contains unknown field `(.+)`", msg):
        import difflib

        name = found[1]
        hint = difflib.get_close_matches(name, _KNOWN_FIELDS, n=1)
        return _Invalid(
            _join(key, name), "unknown field" + (f" (did you mean '{hint[0]}'?)" if hint else "")
        )
    if found := re.fullmatch(r"Object missing required field `(.+)`", msg):
        return _Invalid(_join(key, found[1]), "required field missing")
    if found := re.fullmatch(r"Expected `(.+)`, got `(.+)`", msg):
        return _Invalid(key, f"expected {_type_words(found[1])}, got {_type_words(found[2])}")
    return _Invalid(key, msg.replace("`", "'"))


def _type_words(spec: str) -> str:
    parts = [p.strip() for p in spec.split("|") if p.strip() != "null"]
    if sorted(parts) == ["float", "int", "str"]:
        return "a duration ('15s', '1500ms', '5m') or a number of seconds"
    return " or ".join(_TYPE_WORDS.get(p, p) for p in parts) or "nothing"


def _join(prefix: str, path: str) -> str:
    if not prefix or not path:
        return prefix or path
    return prefix + path if path.startswith("[") else f"{prefix}.{path}"


def _fail(key: str, problem: str) -> NoReturn:
    raise _Invalid(key, problem)


# --------------------------------------------------------------------------- resolution

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: The daemon's own files use this name (``auto_heal.heartbeat.json``).
_RESERVED_NAMES = frozenset({"auto_heal"})
#: Probe fields each kind may set, besides kind, name, interval and timeout.
_PROBE_FIELDS = {
    "process": frozenset(),
    "heartbeat": frozenset({"max_age", "path"}),
    "ws_freshness": frozenset({"max_age", "path", "field"}),
    "http": frozenset({"url", "expect_status", "latency_p95", "window"}),
}


class _Context(_Frozen, frozen=True):
    config_dir: Path
    runtime_dir: Path
    placeholders: dict[str, str]


def _resolve(raw: _RawConfig, config_file: Path) -> Config:
    if raw.environment not in ENVIRONMENTS:
        _fail(
            "environment",
            f"unknown environment {raw.environment!r} (expected live, testnet or paper)",
        )
    config_dir = config_file.parent
    values = {"python": sys.executable, "config_dir": str(config_dir)}
    runtime_dir = _path(raw.paths.runtime_dir, config_dir, "paths.runtime_dir", values)
    values["runtime_dir"] = str(runtime_dir)
    stop_file = (
        _path(raw.paths.stop_file, config_dir, "paths.stop_file", values)
        if raw.paths.stop_file is not None
        else runtime_dir.parent / "STOP.TXT"
    )
    values["stop_file"] = str(stop_file)
    ctx = _Context(config_dir=config_dir, runtime_dir=runtime_dir, placeholders=values)
    # Validate in the order a reader meets things in the file, so the first error reported
    # is the first one they would find.
    policy = _policy(raw.policy)
    daemon = _daemon(raw.daemon, ctx)
    services: dict[str, ServiceConfig] = {}
    for name, body in raw.services.items():
        _check_name(name, "services")
        services[name] = _service(name, _convert(body, _RawService, f"services.{name}"), ctx)
    dependencies: dict[str, DependencyConfig] = {}
    for name, body in raw.dependencies.items():
        _check_name(name, "dependencies")
        if name in services:
            _fail(f"dependencies.{name}", f"name {name!r} is already used by a service")
        raw_dep = _convert(body, _RawDependency, f"dependencies.{name}")
        dependencies[name] = _dependency(name, raw_dep, ctx)
    _check_depends_on(services, dependencies)
    _check_unique_pidfiles(services)
    return Config(
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
    )


def _chaos(raw: _RawChaos, dependencies: dict[str, DependencyConfig], ctx: _Context) -> ChaosConfig:
    proxies: dict[str, Path] = {}
    for dep, control in raw.proxies.items():
        if dep not in dependencies:
            _fail(f"chaos.proxies.{dep}", f"unknown dependency {dep!r}")
        proxies[dep] = _path(control, ctx.runtime_dir, f"chaos.proxies.{dep}", ctx.placeholders)
    protected = tuple(
        _path(f, ctx.config_dir, f"chaos.protected_files[{i}]", ctx.placeholders)
        for i, f in enumerate(raw.protected_files)
    )
    return ChaosConfig(proxies=proxies, protected_files=protected)


def _check_name(name: str, table: str) -> None:
    # Names become file names (<name>.pid) and dotted keys, so no dots, slashes or spaces.
    if not _NAME.fullmatch(name):
        _fail(f"{table}.{name}", "names may hold only letters, digits, '_' and '-'")
    if name in _RESERVED_NAMES:
        _fail(f"{table}.{name}", f"{name!r} is reserved for the daemon's own files")


def _policy(raw: _RawPolicy) -> PolicyConfig:
    if raw.failures_before_restart < 1:
        _fail("policy.failures_before_restart", "must be at least 1")
    if raw.max_restarts < 0:
        _fail("policy.max_restarts", "must be 0 or more")
    if not raw.restart_backoff:
        _fail("policy.restart_backoff", "must list at least one delay")
    backoff = tuple(
        _duration(v, f"policy.restart_backoff[{i}]") for i, v in enumerate(raw.restart_backoff)
    )
    for i in range(1, len(backoff)):
        if backoff[i] < backoff[i - 1]:
            _fail(f"policy.restart_backoff[{i}]", "delays must not decrease")
    return PolicyConfig(
        failures_before_restart=raw.failures_before_restart,
        restart_backoff=backoff,
        verify_window=_duration(raw.verify_window, "policy.verify_window", positive=True),
        max_restarts=raw.max_restarts,
        stable_reset=_duration(raw.stable_reset, "policy.stable_reset", positive=True),
    )


def _daemon(raw: _RawDaemon, ctx: _Context) -> DaemonConfig:
    return DaemonConfig(
        heartbeat_interval=_duration(
            raw.heartbeat_interval, "daemon.heartbeat_interval", positive=True
        ),
        stop_services_on_exit=raw.stop_services_on_exit,
        status_listen=_listen(raw.status_listen, "daemon.status_listen"),
        log_file=(
            _path(raw.log_file, ctx.config_dir, "daemon.log_file", ctx.placeholders)
            if raw.log_file
            else None
        ),
    )


def _service(name: str, raw: _RawService, ctx: _Context) -> ServiceConfig:
    key = f"services.{name}"
    if not raw.argv:
        _fail(f"{key}.argv", "must not be empty: give the program and its arguments")
    argv = []
    for i, arg in enumerate(raw.argv):
        if not arg:
            _fail(f"{key}.argv[{i}]", "must not be an empty string")
        argv.append(_expand(arg, f"{key}.argv[{i}]", ctx.placeholders))
    env = {}
    for var, value in raw.env.items():
        if not _ENV_NAME.fullmatch(var):
            _fail(f"{key}.env", f"{var!r} is not a valid environment variable name")
        if not isinstance(value, str):
            _fail(
                f"{key}.env.{var}",
                f"expected string, got {_type_words(type(value).__name__)}",
            )
        env[var] = _expand(value, f"{key}.env.{var}", ctx.placeholders)
    for field_name, value in (
        ("log_max_bytes", raw.log_max_bytes),
        ("log_backups", raw.log_backups),
    ):
        if value < 0:
            _fail(f"{key}.{field_name}", "must be 0 or more")
    if len(set(raw.depends_on)) != len(raw.depends_on):
        _fail(f"{key}.depends_on", "lists a name twice")
    return ServiceConfig(
        name=name,
        argv=tuple(argv),
        cwd=_path(raw.cwd, ctx.config_dir, f"{key}.cwd", ctx.placeholders),
        env=env,
        stop_signal=_signal(raw.stop_signal, f"{key}.stop_signal"),
        stop_timeout=_duration(raw.stop_timeout, f"{key}.stop_timeout"),
        pidfile=_path(
            raw.pidfile or f"{name}.pid", ctx.runtime_dir, f"{key}.pidfile", ctx.placeholders
        ),
        lock_files=tuple(
            _path(p, ctx.runtime_dir, f"{key}.lock_files[{i}]", ctx.placeholders)
            for i, p in enumerate(raw.lock_files)
        ),
        depends_on=tuple(raw.depends_on),
        required=raw.required,
        autostart=raw.autostart,
        log_max_bytes=raw.log_max_bytes,
        log_backups=raw.log_backups,
        probes=_probes(raw.probes, name, key, ctx, has_process=True),
    )


def _dependency(name: str, raw: _RawDependency, ctx: _Context) -> DependencyConfig:
    key = f"dependencies.{name}"
    if not raw.probes:
        _fail(f"{key}.probes", "a dependency needs at least one probe")
    return DependencyConfig(
        name=name, probes=_probes(raw.probes, name, key, ctx, has_process=False)
    )


def _probes(
    raws: list[_RawProbe], owner: str, owner_key: str, ctx: _Context, *, has_process: bool
) -> tuple[ProbeConfig, ...]:
    seen: dict[str, int] = {}
    out = []
    for i, raw in enumerate(raws):
        key = f"{owner_key}.probes[{i}]"
        probe = _probe(raw, owner, key, ctx, has_process=has_process)
        if probe.name in seen:
            _fail(
                f"{key}.name",
                f"duplicate probe name {probe.name!r} (also probes[{seen[probe.name]}])",
            )
        seen[probe.name] = i
        out.append(probe)
    return tuple(out)


def _probe(
    raw: _RawProbe, owner: str, key: str, ctx: _Context, *, has_process: bool
) -> ProbeConfig:
    if raw.kind not in _PROBE_FIELDS:
        _fail(f"{key}.kind", f"unknown probe kind {raw.kind!r} (expected {', '.join(PROBE_KINDS)})")
    if raw.kind == "process" and not has_process:
        _fail(f"{key}.kind", "a dependency has no process; use heartbeat, ws_freshness or http")
    allowed = _PROBE_FIELDS[raw.kind]
    for optional in ("max_age", "path", "field", "url", "expect_status", "latency_p95", "window"):
        if getattr(raw, optional) is not None and optional not in allowed:
            _fail(f"{key}.{optional}", f"not used by a {raw.kind!r} probe")
    name = raw.name if raw.name is not None else raw.kind
    if not _NAME.fullmatch(name):
        _fail(f"{key}.name", "names may hold only letters, digits, '_' and '-'")
    probe = ProbeConfig(
        kind=raw.kind,
        name=name,
        interval=_duration(raw.interval, f"{key}.interval", positive=True),
        timeout=_duration(raw.timeout, f"{key}.timeout", positive=True),
    )
    if raw.kind in ("heartbeat", "ws_freshness"):
        if raw.max_age is None:
            _fail(f"{key}.max_age", f"required for a {raw.kind!r} probe")
        field = None
        if raw.kind == "ws_freshness":
            field = raw.field if raw.field is not None else "ws_last_msg_ts"
            if not field:
                _fail(f"{key}.field", "must not be empty")
        return replace(
            probe,
            max_age=_duration(raw.max_age, f"{key}.max_age", positive=True),
            path=_path(
                raw.path or f"{owner}.heartbeat.json",
                ctx.runtime_dir,
                f"{key}.path",
                ctx.placeholders,
            ),
            field=field,
        )
    if raw.kind == "http":
        if raw.url is None:
            _fail(f"{key}.url", "required for an 'http' probe")
        status = tuple(raw.expect_status) if raw.expect_status is not None else (200,)
        if not status or any(not 100 <= s <= 599 for s in status):
            _fail(f"{key}.expect_status", "must list HTTP status codes between 100 and 599")
        if raw.window is not None and raw.window < 1:
            _fail(f"{key}.window", "must be at least 1")
        return replace(
            probe,
            url=_url(raw.url, f"{key}.url", ctx.placeholders),
            expect_status=status,
            latency_p95=(
                None
                if raw.latency_p95 is None
                else _duration(raw.latency_p95, f"{key}.latency_p95", positive=True)
            ),
            window=raw.window if raw.window is not None else 20,
        )
    return probe


def _webhooks(raws: list[_RawWebhook], ctx: _Context) -> tuple[WebhookConfig, ...]:
    out: list[WebhookConfig] = []
    for i, raw in enumerate(raws):
        key = f"webhooks[{i}]"
        if not _NAME.fullmatch(raw.name):
            _fail(f"{key}.name", "names may hold only letters, digits, '_' and '-'")
        if any(w.name == raw.name for w in out):
            _fail(f"{key}.name", f"duplicate webhook name {raw.name!r}")
        if raw.format not in WEBHOOK_FORMATS:
            _fail(
                f"{key}.format",
                f"unknown format {raw.format!r} (expected {', '.join(WEBHOOK_FORMATS)})",
            )
        if raw.secret_env is not None and not _ENV_NAME.fullmatch(raw.secret_env):
            # Do not echo the value: someone may have pasted the secret itself here.
            _fail(
                f"{key}.secret_env", "must be the name of an environment variable, not the secret"
            )
        out.append(
            WebhookConfig(
                name=raw.name,
                url=_url(raw.url, f"{key}.url", ctx.placeholders),
                format=raw.format,
                secret_env=raw.secret_env,
                timeout=_duration(raw.timeout, f"{key}.timeout", positive=True),
            )
        )
    return tuple(out)


def _check_depends_on(
    services: dict[str, ServiceConfig], dependencies: dict[str, DependencyConfig]
) -> None:
    for name, svc in services.items():
        for other in svc.depends_on:
            if other not in services and other not in dependencies:
                _fail(f"services.{name}.depends_on", f"unknown service or dependency {other!r}")
    graph = {name: [d for d in svc.depends_on if d in services] for name, svc in services.items()}
    cycle = _find_cycle(graph)
    if cycle:
        _fail(f"services.{cycle[0]}.depends_on", f"dependency cycle: {' -> '.join(cycle)}")


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
            _fail(
                f"services.{name}.pidfile", f"same file as services.{owners[svc.pidfile]}.pidfile"
            )
        owners[svc.pidfile] = name


def _duration(value: str | int | float, key: str, *, positive: bool = False) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        _fail(key, str(exc))
    if positive and seconds == 0:
        _fail(key, "must be greater than zero")
    return seconds


def _expand(text: str, key: str, values: dict[str, str]) -> str:
    """Expand ``{name}`` placeholders; ``{{`` and ``}}`` stand for literal braces."""

    def one(match: re.Match[str]) -> str:
        token = match[0]
        if token in ("{{", "}}"):
            return token[0]
        if match[1] not in values:
            known = ", ".join("{" + k + "}" for k in values)
            _fail(key, f"unknown placeholder {token} (known here: {known})")
        return values[match[1]]

    return _PLACEHOLDER.sub(one, text)


def _path(text: str, base: Path, key: str, values: dict[str, str]) -> Path:
    if not text:
        _fail(key, "must not be empty")
    path = Path(_expand(text, key, values)).expanduser()
    # normpath, not resolve(): keep the operator's symlinks, just drop the "..".
    return Path(os.path.normpath(path if path.is_absolute() else base / path))


def _url(text: str, key: str, values: dict[str, str]) -> str:
    url = _expand(text, key, values)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        _fail(key, "not a valid URL")  # never echo it: webhook URLs often embed tokens
    if parts.scheme not in ("http", "https") or not parts.hostname:
        _fail(key, "must be an http:// or https:// URL with a host")
    return url


def _signal(name: str, key: str) -> int:
    upper = name.upper()
    candidate = upper if upper.startswith("SIG") else "SIG" + upper
    try:
        return signal.Signals[candidate]
    except KeyError:
        _fail(key, f"unknown signal {name!r} (e.g. SIGTERM, SIGINT, SIGQUIT)")


def _listen(text: str, key: str) -> tuple[str, int] | None:
    if not text:
        return None
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        _fail(key, f"expected 'host:port' such as '127.0.0.1:9108', got {text!r}")
    return host, int(port)


# --------------------------------------------------------------------------- summary


def summary(config: Config) -> str:
    """One line for ``autoheal check-config``.

    Returns:
        e.g. ``config OK: 3 services (exchange, feeder, trader), 1 dependency (exchange_rest),
        7 probes, environment=paper, runtime_dir=/abs/shared_data``.
    """
    probes = sum(len(s.probes) for s in config.services.values()) + sum(
        len(d.probes) for d in config.dependencies.values()
    )
    return (
        f"config OK: {_count(config.services, 'service', 'services')}, "
        f"{_count(config.dependencies, 'dependency', 'dependencies')}, "
        f"{probes} {'probe' if probes == 1 else 'probes'}, "
        f"environment={config.environment}, runtime_dir={config.paths.runtime_dir}"
    )


def _count(names: dict[str, Any], one: str, many: str) -> str:
    word = one if len(names) == 1 else many
    listed = f" ({', '.join(sorted(names))})" if names else ""
    return f"{len(names)} {word}{listed}"
