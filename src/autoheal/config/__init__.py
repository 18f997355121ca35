"""The TOML configuration: parsed, validated and resolved into frozen, typed objects.

Two layers, kept apart on purpose:

* the **raw schema** (``Raw*`` msgspec Structs in :mod:`._schema`) mirrors the TOML file
  exactly: strict types, ``forbid_unknown_fields``, defaults as the user would write them.
  msgspec reports *where* a value is wrong; ``_schema`` turns its ``$.a.b[0]`` paths into
  the dotted keys an operator can find in the file (``services.feeder.argv``).
* the **resolved objects** (:class:`Config` and friends, frozen msgspec Structs in
  :mod:`._model`) are what the rest of autoheal uses: durations are float seconds, paths
  are absolute, the placeholders ``{python}``, ``{config_dir}``, ``{runtime_dir}`` and
  ``{stop_file}`` are expanded, signals are numbers, and cross-references (``depends_on``)
  are checked. :mod:`._resolve` (with :mod:`._values` and :mod:`._probes`) gets from one
  to the other; :mod:`._load` reads the file and drives it.

Every problem becomes one :class:`ConfigError` naming the file, the key and what is
wrong, so ``autoheal check-config`` can print one line and exit 2, never a traceback.
Error messages never echo webhook URLs, env values or secret names' values: they may
hold credentials. Import from this package, never from its private modules.
"""

from __future__ import annotations

from autoheal.config._judging import DEBUG_INVOCATION
from autoheal.config._load import MAX_CONFIG_BYTES, load_config, summary
from autoheal.config._model import (
    ENVIRONMENTS,
    PROBE_KINDS,
    WEBHOOK_FORMATS,
    BotApiConfig,
    ChaosConfig,
    Config,
    ConfigError,
    DaemonConfig,
    DependencyConfig,
    FleetConfig,
    Paths,
    PolicyConfig,
    ProbeConfig,
    ServiceConfig,
    WebhookConfig,
)
from autoheal.config._secrets import secret_envs, telegram_chat_id_env
from autoheal.config._values import is_loopback_host

__all__ = [
    "DEBUG_INVOCATION",
    "ENVIRONMENTS",
    "MAX_CONFIG_BYTES",
    "PROBE_KINDS",
    "WEBHOOK_FORMATS",
    "BotApiConfig",
    "ChaosConfig",
    "Config",
    "ConfigError",
    "DaemonConfig",
    "DependencyConfig",
    "FleetConfig",
    "Paths",
    "PolicyConfig",
    "ProbeConfig",
    "ServiceConfig",
    "WebhookConfig",
    "is_loopback_host",
    "load_config",
    "secret_envs",
    "summary",
    "telegram_chat_id_env",
]
