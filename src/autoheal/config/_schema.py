"""The raw TOML schema, and how a problem in it is reported at a dotted key.

The ``Raw*`` msgspec Structs mirror the TOML file exactly: strict types,
``forbid_unknown_fields``, defaults as the user would write them. msgspec reports
*where* a value is wrong; :func:`convert` turns its ``$.a.b[0]`` paths into the dotted
keys an operator can find in the file (``services.feeder.argv``).

Every problem found while loading is raised as :class:`Invalid` (a key and words);
:func:`autoheal.config.load_config` adds the file name and turns it into a
:class:`~autoheal.config.ConfigError`.
"""

from __future__ import annotations

import re
from typing import Any, NoReturn

import msgspec

from autoheal.core.policy import HealPolicy

Duration = str | int | float  # msgspec refuses bool here, as parse_duration does
#: The healing policy's defaults (the runbook's numbers) have one home: the core.
_HEAL = HealPolicy()


class Invalid(Exception):
    """Internal: a problem at a key; :func:`autoheal.config.load_config` adds the file name."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(key, problem)
        self.key = key
        self.problem = problem


def fail(key: str, problem: str) -> NoReturn:
    """Raise :class:`Invalid` for ``key``; a function so checks read as one line each."""
    raise Invalid(key, problem)


class _Raw(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


class RawPaths(_Raw, frozen=True):
    runtime_dir: str = "shared_data"
    stop_file: str | None = None


class RawPolicy(_Raw, frozen=True):
    # The defaults are the core's (core.policy.HealPolicy), in seconds.
    failures_before_restart: int = _HEAL.failures_before_restart
    restart_backoff: list[Duration] = msgspec.field(
        default_factory=lambda: list(_HEAL.restart_backoff)
    )
    verify_window: Duration = _HEAL.verify_window
    max_restarts: int = _HEAL.max_restarts
    stable_reset: Duration = _HEAL.stable_reset
    verify_min_uptime: Duration | None = None  # the core's, or verify_window when shorter


class RawDaemon(_Raw, frozen=True):
    heartbeat_interval: Duration = "1s"
    stop_services_on_exit: bool = True
    status_listen: str = ""
    status_listen_public: bool = False
    status_token_env: str = ""
    log_file: str = ""
    journal_group: str = ""


class RawProbe(_Raw, frozen=True):
    kind: str
    name: str | None = None
    interval: Duration = "1s"
    timeout: Duration = "1s"
    max_age: Duration | None = None
    path: str | None = None
    field: str | None = None
    url: str | None = None
    expect_status: list[int] | None = None
    latency_p95: Duration | None = None
    window: int | None = None
    pointer: str | None = None
    equals: str | int | float | bool | None = None
    unit: str | None = None
    auth: str | None = None
    auth_env: str | None = None
    # K of N (issue 23): ``failures`` failed checks within the last ``within``
    failures: int | None = None
    within: int | None = None
    symbols: list[str] | None = None
    max_gaps: int | None = None
    # issue 23: exec, tcp, resource (checked in config/_system_probes.py)
    argv: list[str] | None = None
    address: str | None = None
    max_rss: int | str | None = None
    max_cpu_percent: int | float | None = None
    max_fds: int | None = None
    max_threads: int | None = None


class RawService(_Raw, frozen=True):
    argv: list[str]
    cwd: str = "."
    env: dict[str, Any] = {}  # values checked by hand: msgspec's path would hide the env key
    stop_signal: str = "SIGTERM"
    stop_timeout: Duration = "10s"
    pidfile: str | None = None
    lock_files: list[str] = []
    depends_on: list[str] = []
    required: bool = True
    autostart: bool = True
    log_max_bytes: int = 1024 * 1024
    log_backups: int = 3
    probes: list[RawProbe] = []
    # exit-code rules and debug on retry (issue 23); checked in config._judging
    failsafe_exit_codes: list[int] = []
    restart_exit_codes: list[int] = []
    debug_environment: dict[str, Any] | None = None


class RawDependency(_Raw, frozen=True):
    probes: list[RawProbe] = []


class RawWebhook(_Raw, frozen=True):
    name: str
    url: str
    format: str = "generic"
    secret_env: str | None = None
    timeout: Duration = "5s"


class RawChaos(_Raw, frozen=True):
    proxies: dict[str, str] = {}
    protected_files: list[str] = []


Number = int | float  # a limit; Decimal-exact through its shortest repr (0.1 is 0.1)


class RawRiskSymbol(_Raw, frozen=True):
    """``[risk.symbols.<SYMBOL>]``: per-symbol overrides of the ``[risk]`` defaults."""

    max_order_qty: Number | None = None
    max_order_notional: Number | None = None
    max_position: Number | None = None
    price_collar_pct: Number | None = None


class RawRisk(RawRiskSymbol, frozen=True):
    """``[risk]``: pre-trade limits; the values are checked by ``autoheal.guard.risk``."""

    max_live_notional_total: Number | None = None
    max_orders_per_second: int | None = None
    max_daily_loss: Number | None = None
    max_drawdown: Number | None = None
    max_drawdown_pct: Number | None = None
    loss_breach_reads: int | None = None
    max_submits_per_s: int | None = None
    max_modifies_per_s: int | None = None
    max_cancels_per_s: int | None = None
    collar_window_pct: Number | None = None
    collar_window_s: Number | None = None
    max_repeated_executions: int | None = None
    repeated_execution_window_s: Number | None = None
    symbols: dict[str, Any] = {}  # converted one symbol at a time, so errors name it


class RawFleet(_Raw, frozen=True):
    redis_url: str
    name: str
    host: str = ""
    secret_env: str | None = None
    stale_after: Duration = "5s"
    on_lost: str = "degrade"
    poll_interval: Duration = "500ms"


class RawInEffect(_Raw, frozen=True):
    get: str
    pointer: str
    one_of: list[str | int | float | bool]


class RawBotCall(_Raw, frozen=True):
    post: str
    undo: str | None = None
    in_effect: RawInEffect | None = None


class RawBotApi(_Raw, frozen=True):
    """``[bot_api]``: calls on the bot's own API when the mode changes (issue 22)."""

    url: str
    service: str | None = None
    auth: str = "none"
    auth_env: str | None = None
    timeout: Duration = "2s"
    retry_max: Duration = "30s"
    calls: dict[str, RawBotCall] = {}
    modes: dict[str, list[str]] = {}


class RawCompliance(_Raw, frozen=True):
    """``[compliance]``: how old a drill's pass may be for ``autoheal compliance`` (issue 24)."""

    window: Duration = "24h"


class RawConfig(_Raw, frozen=True):
    environment: str
    paths: RawPaths = msgspec.field(default_factory=RawPaths)
    policy: RawPolicy = msgspec.field(default_factory=RawPolicy)
    daemon: RawDaemon = msgspec.field(default_factory=RawDaemon)
    # Tables of named tables are converted one entry at a time: msgspec writes a dict
    # key as ``[...]`` in its error paths, and the operator needs to see the name.
    services: dict[str, Any] = {}
    dependencies: dict[str, Any] = {}
    webhooks: list[RawWebhook] = []
    chaos: RawChaos = msgspec.field(default_factory=RawChaos)
    fleet: RawFleet | None = None
    risk: RawRisk | None = None
    bot_api: RawBotApi | None = None
    compliance: RawCompliance = msgspec.field(default_factory=RawCompliance)


_KNOWN_FIELDS = sorted(
    {
        f
        for t in (
            RawConfig,
            RawPaths,
            RawPolicy,
            RawDaemon,
            RawProbe,
            RawService,
            RawDependency,
            RawWebhook,
            RawChaos,
            RawFleet,
            RawRisk,
            RawBotApi,
            RawBotCall,
            RawInEffect,
            RawCompliance,
        )
        for f in t.__struct_fields__
    }
)


def convert(obj: Any, typ: Any, prefix: str) -> Any:
    """Convert decoded TOML to a ``Raw*`` Struct.

    Args:
        obj: the decoded TOML (a table or a value).
        typ: the ``Raw*`` type to build.
        prefix: the dotted key of ``obj`` in the file, prepended to msgspec's path.

    Raises:
        Invalid: msgspec refused ``obj``; the key names the offending field.
    """
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


def _from_msgspec(text: str, prefix: str) -> Invalid:
    """Turn ``Expected `int`, got `str` - at `$.policy.max_restarts``` into a key and words."""
    match = _AT.match(text)
    msg, path = (match["msg"], match["path"] or "") if match else (text, "")
    key = _join(prefix, path.lstrip("."))
    if found := re.fullmatch(r"Object contains unknown field `(.+)`", msg):
        import difflib

        name = found[1]
        hint = difflib.get_close_matches(name, _KNOWN_FIELDS, n=1)
        return Invalid(
            _join(key, name), "unknown field" + (f" (did you mean '{hint[0]}'?)" if hint else "")
        )
    if found := re.fullmatch(r"Object missing required field `(.+)`", msg):
        return Invalid(_join(key, found[1]), "required field missing")
    if found := re.fullmatch(r"Expected `(.+)`, got `(.+)`", msg):
        return Invalid(key, f"expected {type_words(found[1])}, got {type_words(found[2])}")
    return Invalid(key, msg.replace("`", "'"))


def type_words(spec: str) -> str:
    """Say a msgspec or Python type spec (``str | int``) in TOML words (``string or integer``)."""
    parts = [p.strip() for p in spec.split("|") if p.strip() != "null"]
    if sorted(parts) == ["float", "int", "str"]:
        return "a duration ('15s', '1500ms', '5m') or a number of seconds"
    return " or ".join(_TYPE_WORDS.get(p, p) for p in parts) or "nothing"


def _join(prefix: str, path: str) -> str:
    if not prefix or not path:
        return prefix or path
    return prefix + path if path.startswith("[") else f"{prefix}.{path}"
