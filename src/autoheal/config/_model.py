"""The resolved configuration: frozen, typed value objects the rest of autoheal uses.

Everything here is already checked and normalised: durations are float seconds, paths
are absolute, placeholders are expanded, signals are numbers. Nothing in this module
parses or validates; that is :mod:`autoheal.config._resolve`'s job, so these classes
stay plain data that any module can import cheaply.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from autoheal.core.bot_api import BotTable
from autoheal.core.policy import HealPolicy

if TYPE_CHECKING:  # a value, never decoded here; built by autoheal.guard.risk_limits
    from autoheal.guard.risk_limits import RiskLimits

ENVIRONMENTS = ("live", "testnet", "paper")
PROBE_KINDS = (
    "process",
    "heartbeat",
    "ws_freshness",
    "http",
    "http_json",
    "feed_lag",
    "exec",
    "tcp",
    "resource",
)
WEBHOOK_FORMATS = ("generic", "slack", "telegram", "alertmanager")


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


class Frozen(msgspec.Struct, frozen=True, kw_only=True):
    """Immutable value objects; msgspec Structs are created ~10x faster than dataclasses."""


class Paths(Frozen, frozen=True):
    """Where the runtime files live. Both absolute."""

    runtime_dir: Path
    stop_file: Path


#: Healing policy (DESIGN.md §2), durations in seconds: the core's own, with its
#: defaults (the runbook's numbers) and its checks; one home, no field-by-field copy.
PolicyConfig = HealPolicy


class DaemonConfig(Frozen, frozen=True):
    """Settings of the daemon itself; ``status_listen`` is ``(host, port)`` or ``None`` (off).

    ``status_listen_public`` is the operator's explicit consent to a status page on a
    non-loopback address (it shows the runtime's state to anyone who can reach it).
    """

    heartbeat_interval: float = 1.0
    stop_services_on_exit: bool = True
    status_listen: tuple[str, int] | None = None
    status_listen_public: bool = False
    #: Environment variable holding the status page's operator token; None: read-only page.
    status_token_env: str | None = None
    log_file: Path | None = None
    #: Group allowed to read the journal (file mode 0660); None keeps it 0600.
    journal_group: str | None = None


class ProbeConfig(Frozen, frozen=True):
    """One health probe.

    ``max_age``, ``path``, ``field``, ``url`` and ``latency_p95`` are ``None`` when ``kind``
    does not use them; ``expect_status`` and ``window`` keep their defaults (http only).
    An ``http_json`` probe has a ``url``, a ``pointer`` (RFC 6901), exactly one of
    ``max_age`` and ``equals``, a ``unit`` for a numeric timestamp (``"s"`` or ``"ms"``)
    and optionally ``auth`` (``"basic"`` or ``"bearer"``) with ``auth_env``: the name of
    the variable holding the credential, never the credential.
    A ``feed_lag`` probe has a ``path`` and a ``max_age`` (of the exchange timestamps),
    the ``symbols`` it judges (empty: all in the file) and ``max_gaps``.
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
    pointer: str | None = None
    equals: str | int | float | bool | None = None
    unit: str = "s"
    auth: str | None = None
    auth_env: str | None = None
    #: K of N (``config._judging``): None, None is the consecutive rule.
    failures: int | None = None
    within: int | None = None
    symbols: tuple[str, ...] = ()
    max_gaps: int = 0
    # exec, tcp and resource probes (issue 23; config/_system_probes.py): an ``exec`` probe
    # has ``argv``; a ``tcp`` probe ``host`` and ``port`` (from ``address``); a
    # ``resource`` probe at least one of the limits (``max_rss`` in bytes).
    argv: tuple[str, ...] = ()
    host: str | None = None
    port: int | None = None
    max_rss: int | None = None
    max_cpu_percent: float | None = None
    max_fds: int | None = None
    max_threads: int | None = None


class ServiceConfig(Frozen, frozen=True):
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
    #: Exit-code rules (``core.exit_rules``) and debug on retry (``config._judging``);
    #: ``debug_environment`` None: off; a mapping (even empty): on.
    failsafe_exit_codes: tuple[int, ...] = ()
    restart_exit_codes: tuple[int, ...] = ()
    debug_environment: dict[str, str] | None = None


class DependencyConfig(Frozen, frozen=True):
    """Something outside autoheal's control (an exchange API): probed, never restarted."""

    name: str
    probes: tuple[ProbeConfig, ...]


class WebhookConfig(Frozen, frozen=True):
    """Where FAILSAFE notices go; ``secret_env`` names an env var, never holds the secret."""

    name: str
    url: str
    format: str
    secret_env: str | None
    timeout: float


class ChaosConfig(Frozen, frozen=True):
    """Fault injection: the fault proxy in front of each dependency, and what must not change.

    ``proxies`` maps a dependency to the file where its fault proxy wrote its control port.
    """

    proxies: dict[str, Path] = {}
    protected_files: tuple[Path, ...] = ()


class FleetConfig(Frozen, frozen=True):
    """``[fleet]``: the fleet switch and host summaries in Redis (docs/fleet.md).

    ``redis_url`` may hold ``{secret}``, replaced at connect time by the value of the
    environment variable ``secret_env``; the URL itself never holds a password, and is
    never logged whole.
    """

    redis_url: str
    name: str
    host: str
    secret_env: str | None
    stale_after: float
    on_lost: str
    poll_interval: float


class BotApiConfig(Frozen, frozen=True):
    """``[bot_api]``: the bot's own API, called when autoheal's mode changes
    (:mod:`autoheal.core.bot_api`; docs/integrations/freqtrade.md).

    ``auth_env`` names the variable that holds ``user:password`` (``auth = "basic"``) or
    the token (``"bearer"``); it is read when a call is sent, never logged, and never
    passed to a service.
    """

    url: str
    service: str | None
    """The service that is the bot: when it (re)starts, every call in force is sent again."""
    auth: str
    auth_env: str | None
    timeout: float
    retry_max: float
    table: BotTable


class Config(Frozen, frozen=True):
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
    fleet: FleetConfig | None = None
    #: ``[risk]``: pre-trade limits (:mod:`autoheal.guard.risk`); ``None`` when absent.
    risk: RiskLimits | None = None
    bot_api: BotApiConfig | None = None
    #: ``[compliance] window``: how old a drill's pass may be, in seconds (default 24 h).
    compliance_window: float = 86_400.0
