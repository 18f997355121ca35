"""``[bot_api]``: the bot's own API and which of its calls each mode makes.

The URL is checked without being echoed (it may hold a token); credentials live in an
environment variable (``auth_env``) and travel only over TLS or loopback, as the
fleet's do.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from urllib.parse import urlsplit

from autoheal.config._model import BotApiConfig
from autoheal.config._schema import RawBotApi, fail
from autoheal.config._values import ENV_NAME, NAME, as_duration, as_url, is_loopback_host
from autoheal.core.bot_api import MODES, BotCall, BotTable, InEffect
from autoheal.core.json_pointer import PointerError, parse_pointer

AUTH = ("none", "basic", "bearer")
#: The modes a table may name: NORMAL is where everything autoheal did is undone.
TABLE_MODES = MODES[1:]


def resolve_bot_api(
    raw: RawBotApi, placeholders: dict[str, str], services: Collection[str]
) -> BotApiConfig:
    """Check ``[bot_api]``.

    Raises:
        Invalid: the first problem, at its dotted key.
    """
    url = as_url(raw.url, "bot_api.url", placeholders).rstrip("/")
    parts = urlsplit(url)
    if parts.username or parts.password:
        fail("bot_api.url", "holds credentials: name their variable in bot_api.auth_env")
    if raw.service is not None and raw.service not in services:
        fail("bot_api.service", f"no service named {raw.service[:40]!r}")
    if raw.auth not in AUTH:
        fail("bot_api.auth", f"expected one of {', '.join(AUTH)}, got {raw.auth[:20]!r}")
    if raw.auth == "none":
        if raw.auth_env is not None:
            fail("bot_api.auth_env", "set bot_api.auth to 'basic' or 'bearer' to use it")
    else:
        if raw.auth_env is None:
            fail("bot_api.auth_env", f"required with auth = {raw.auth!r}")
        if not ENV_NAME.fullmatch(raw.auth_env):
            fail("bot_api.auth_env", "must be the name of an environment variable, not the secret")
        if parts.scheme != "https" and not is_loopback_host(parts.hostname or ""):
            fail(
                "bot_api.url",
                "credentials travel only over TLS (https://) unless the bot is on a "
                "loopback address",
            )
    calls: dict[str, BotCall] = {}
    for name, call in raw.calls.items():
        key = f"bot_api.calls.{name}"
        if not NAME.fullmatch(name):
            fail(key, "names may hold only letters, digits, '_' and '-'")
        check = call.in_effect
        paths = (("post", call.post), ("undo", call.undo))
        for field, path in (*paths, ("in_effect.get", None if check is None else check.get)):
            if path is not None and not path.startswith("/"):
                fail(
                    f"{key}.{field}", f"a path under bot_api.url, starting with '/': {path[:40]!r}"
                )
        in_effect = None
        if check is not None:
            try:
                parse_pointer(check.pointer)
            except PointerError as exc:
                fail(f"{key}.in_effect.pointer", str(exc))
            if not check.one_of:
                fail(f"{key}.in_effect.one_of", "names no value")
            if any(isinstance(v, float) and not math.isfinite(v) for v in check.one_of):
                fail(f"{key}.in_effect.one_of", "holds a number that is not finite")
            in_effect = InEffect(check.get, check.pointer, tuple(check.one_of))
        calls[name] = BotCall(name, call.post, call.undo, in_effect)
    modes: dict[str, tuple[str, ...]] = {}
    for mode, names in raw.modes.items():
        key = f"bot_api.modes.{mode}"
        if mode not in TABLE_MODES:
            fail(
                key,
                f"not a mode; expected one of {', '.join(TABLE_MODES)} (in NORMAL, "
                "autoheal undoes what it did)",
            )
        for name in names:
            if name not in calls:
                known = ", ".join(calls) or "none defined"
                fail(key, f"unknown call {name!r} (bot_api.calls: {known})")
        if len(set(names)) != len(names):
            fail(key, "names a call twice")
        modes[mode] = tuple(names)
    if not modes:
        fail("bot_api.modes", "names no mode: the table would never call the bot")
    return BotApiConfig(
        url=url,
        service=raw.service,
        auth=raw.auth,
        auth_env=raw.auth_env,
        timeout=as_duration(raw.timeout, "bot_api.timeout"),
        retry_max=as_duration(raw.retry_max, "bot_api.retry_max"),
        table=BotTable(calls=calls, modes=modes),
    )
