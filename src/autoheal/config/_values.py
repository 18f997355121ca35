"""Single values of the config file: names, placeholders, durations, paths, URLs, signals.

Each helper turns one raw TOML value into its resolved form, or calls
:func:`~autoheal.config._schema.fail` with the dotted key it was given. None of them
echoes a URL or an env value in its error: those may hold credentials.
"""

from __future__ import annotations

import ipaddress
import os
import re
import signal
from pathlib import Path
from urllib.parse import urlsplit

from autoheal.config._model import Frozen
from autoheal.config._schema import fail
from autoheal.core.durations import format_duration, parse_duration

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Context(Frozen, frozen=True):
    """What relative paths and placeholders resolve against while one file is resolved."""

    config_dir: Path
    runtime_dir: Path
    placeholders: dict[str, str]


_MS, _MINUTE, _HOUR, _DAY = 0.001, 60.0, 3600.0, 86400.0

#: Every duration of the config file, by its field's name: (shortest, longest) seconds.
#: One table, so no duration escapes a bound: a zero where zero means nothing (an
#: interval, a timeout) is refused, and so is a value so large that a deadline
#: computed from it overflows or never comes (``heartbeat_interval = 1e308``).
DURATION_BOUNDS: dict[str, tuple[float, float]] = {
    "restart_backoff": (0.0, _DAY),  # 0: restart at once
    "verify_window": (_MS, _DAY),
    "verify_min_uptime": (0.0, _DAY),
    "stable_reset": (_MS, 7 * _DAY),
    "heartbeat_interval": (_MS, _HOUR),
    "stop_timeout": (0.0, _HOUR),  # 0: no grace, straight to SIGKILL
    "interval": (_MS, _HOUR),  # a probe's
    "timeout": (_MS, 10 * _MINUTE),  # a probe's, a webhook's
    "max_age": (_MS, _DAY),
    "latency_p95": (_MS, 10 * _MINUTE),
    "stale_after": (_MS, _HOUR),
    "poll_interval": (_MS, _HOUR),
    "retry_max": (_MS, _HOUR),  # the bot API's longest wait between tries
    "window": (_MS, 7 * _DAY),  # [compliance]: how old a drill's pass may be
}


def as_duration(value: str | int | float, key: str) -> float:
    """Seconds from ``'15s'``, ``'1500ms'``, ``'5m'`` or a number, within the key's bounds.

    The bounds come from :data:`DURATION_BOUNDS` by the key's last part
    (``services.feeder.probes[0].interval`` → ``interval``).

    Raises:
        Invalid: not a duration, or outside its bounds.
        KeyError: a key with no bounds (a bug: add it to the table).
    """
    shortest, longest = DURATION_BOUNDS[_field(key)]
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        fail(key, str(exc))
    if seconds < shortest:
        if seconds == 0:
            fail(key, "must be greater than zero")
        fail(key, f"must be at least {format_duration(shortest)}, got {seconds:g}s")
    if seconds > longest:
        fail(key, f"must be at most {format_duration(longest)}, got {seconds:g}s")
    return seconds


def _field(key: str) -> str:
    """``policy.restart_backoff[2]`` → ``restart_backoff``."""
    return key.rpartition(".")[2].partition("[")[0]


def expand(text: str, key: str, values: dict[str, str]) -> str:
    """Expand ``{name}`` placeholders; ``{{`` and ``}}`` stand for literal braces."""

    def one(match: re.Match[str]) -> str:
        token = match[0]
        if token in ("{{", "}}"):
            return token[0]
        if match[1] not in values:
            known = ", ".join("{" + k + "}" for k in values)
            fail(key, f"unknown placeholder {token} (known here: {known})")
        return values[match[1]]

    return _PLACEHOLDER.sub(one, text)


def as_path(text: str, base: Path, key: str, values: dict[str, str]) -> Path:
    """An absolute path: placeholders expanded, ``~`` expanded, relative ones under ``base``."""
    if not text:
        fail(key, "must not be empty")
    path = Path(expand(text, key, values)).expanduser()
    # normpath, not resolve(): keep the operator's symlinks, just drop the "..".
    return Path(os.path.normpath(path if path.is_absolute() else base / path))


def as_url(text: str, key: str, values: dict[str, str]) -> str:
    """An ``http(s)://`` URL with a host, placeholders expanded."""
    url = expand(text, key, values)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        fail(key, "not a valid URL")  # never echo it: webhook URLs often embed tokens
    if parts.scheme not in ("http", "https") or not parts.hostname:
        fail(key, "must be an http:// or https:// URL with a host")
    return url


def as_signal(name: str, key: str) -> int:
    """A signal number from ``SIGTERM``, ``term`` or ``TERM``."""
    upper = name.upper()
    candidate = upper if upper.startswith("SIG") else "SIG" + upper
    try:
        return signal.Signals[candidate]
    except KeyError:
        fail(key, f"unknown signal {name!r} (e.g. SIGTERM, SIGINT, SIGQUIT)")


def as_listen(text: str, key: str) -> tuple[str, int] | None:
    """``(host, port)`` from ``'host:port'`` or ``'[::1]:port'``; ``None`` for ``''`` (off)."""
    if not text:
        return None
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        fail(key, f"expected 'host:port' such as '127.0.0.1:9108', got {text!r}")
    return host, int(port)


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (an IP literal or ``localhost``) can only be reached from this machine.

    Any other name counts as remote: what it resolves to may change after the check.
    """
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
