"""Every environment variable the daemon reads a secret from, named in one place.

The daemon's services inherit its environment; a secret there is a secret every
trading process holds: the fleet's Redis password lets any of them write the fleet
switch of every host, the status page's token lets any of them press its failsafe
button. So the wiring (:func:`autoheal.daemon.wiring.service_spec`) removes every
variable listed here from each service's environment (DESIGN.md §3).

A config key that names a secret's variable must be added to :func:`secret_envs`:
``tests/daemon/test_service_env.py`` walks the raw schema and fails on any
``*_env`` (or ``secret``, ``token``, ``password``) field this function does not cover.
"""

from __future__ import annotations

from autoheal.config._model import Config

__all__ = ["TELEGRAM_CHAT_ID_SUFFIX", "secret_envs", "telegram_chat_id_env"]

#: A Telegram webhook's chat id is read from ``<secret_env>_CHAT_ID``.
TELEGRAM_CHAT_ID_SUFFIX = "_CHAT_ID"


def telegram_chat_id_env(secret_env: str) -> str:
    """The variable a Telegram webhook reads its chat id from."""
    return secret_env + TELEGRAM_CHAT_ID_SUFFIX


def secret_envs(config: Config) -> dict[str, str]:
    """Each environment variable the daemon reads a secret from, and the key naming it.

    Returns:
        e.g. ``{"AUTOHEAL_REDIS_PASSWORD": "fleet.secret_env",
        "HOOK_TOKEN": "webhooks[0].secret_env",
        "FREQTRADE_API_AUTH": "services.freqtrade.probes[1].auth_env"}``.
    """
    found: dict[str, str] = {}
    owners = [("services", n, s.probes) for n, s in config.services.items()]
    owners += [("dependencies", n, d.probes) for n, d in config.dependencies.items()]
    for table, name, probes in owners:
        for i, probe in enumerate(probes):
            if probe.auth_env:
                found.setdefault(probe.auth_env, f"{table}.{name}.probes[{i}].auth_env")
    for i, hook in enumerate(config.webhooks):
        if hook.secret_env:
            found[hook.secret_env] = f"webhooks[{i}].secret_env"
            if hook.format == "telegram":
                chat = f"webhooks[{i}].secret_env + {TELEGRAM_CHAT_ID_SUFFIX}"
                found[telegram_chat_id_env(hook.secret_env)] = chat
    if config.fleet is not None and config.fleet.secret_env:
        found[config.fleet.secret_env] = "fleet.secret_env"
    if config.bot_api is not None and config.bot_api.auth_env:
        found[config.bot_api.auth_env] = "bot_api.auth_env"
    if config.daemon.status_token_env:
        found[config.daemon.status_token_env] = "daemon.status_token_env"
    return found
