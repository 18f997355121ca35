"""Reading a config file, and the one-line summary ``autoheal check-config`` prints.

The file is read whole (bounded), decoded, parsed as TOML, converted to the raw schema
and resolved; every failure on the way becomes one :class:`~autoheal.config.ConfigError`
naming the file, so the CLI prints one line and exits 2, never a traceback.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from autoheal.config._model import Config, ConfigError
from autoheal.config._resolve import resolve
from autoheal.config._schema import Invalid, RawConfig, convert

#: A config file is a few kilobytes; anything this big is the wrong file.
MAX_CONFIG_BYTES = 1024 * 1024


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
    except Invalid as exc:
        raise ConfigError(file, exc.key, exc.problem) from None


def _load(file: str) -> Config:
    try:
        with open(file, "rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise Invalid("", "file not found") from None
    except IsADirectoryError:
        raise Invalid("", "is a directory, not a file") from None
    except OSError as exc:
        raise Invalid("", f"cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise Invalid("", f"file is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid("", f"not UTF-8 text (bad byte at offset {exc.start})") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise Invalid("", f"invalid TOML: {exc}") from None  # keeps "(at line N, column M)"
    raw: RawConfig = convert(doc, RawConfig, "")
    return resolve(raw, Path(os.path.abspath(file)))


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
