"""The ``exec``, ``tcp`` and ``resource`` probes' fields (issue 23), checked one by one.

* ``exec``: ``argv``, a list (never a shell string), not empty; its first item an
  absolute path or a name found on the ``PATH`` of whoever loads the config (the
  daemon, ``check-config``), so a typo is found before the first check fails.
* ``tcp``: ``address = "host:port"``, the form of ``daemon.status_listen``.
* ``resource``: at least one of ``max_rss`` (bytes, or ``"512MiB"``), ``max_cpu_percent``
  (100 = one core), ``max_fds``, ``max_threads``. Services only (a dependency has
  no process; :func:`autoheal.config._probes.resolve_probes` says so).
"""

from __future__ import annotations

import math
import re
import shutil
from pathlib import PurePosixPath

from msgspec.structs import replace

from autoheal.config._model import ProbeConfig
from autoheal.config._schema import RawProbe, fail
from autoheal.config._values import Context, as_listen, expand

__all__ = ["SYSTEM_OPTIONAL", "SYSTEM_PROBE_FIELDS", "as_size", "resolve_system_probe"]

_LIMITS = ("max_rss", "max_cpu_percent", "max_fds", "max_threads")
#: Probe fields each new kind may set (merged into the table of every kind).
SYSTEM_PROBE_FIELDS = {
    "exec": frozenset({"argv"}),
    "tcp": frozenset({"address"}),
    "resource": frozenset(_LIMITS),
}
#: Their optional fields, in the order a misplaced one is reported.
SYSTEM_OPTIONAL = ("argv", "address", *_LIMITS)

_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*", re.IGNORECASE)
_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
#: The largest size accepted (1 PiB): more is a typo, and no tree has it.
MAX_SIZE = 1024**5


def as_size(value: int | str, key: str) -> int:
    """Bytes from ``536870912``, ``"512MiB"``, ``"1.5GiB"`` or ``"500MB"`` (1000-based).

    Raises:
        Invalid: not a size, zero, or more than 1 PiB.
    """
    if isinstance(value, bool):
        fail(key, "expected a size such as '512MiB' or a number of bytes, got boolean")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.fullmatch(value)
        if match is None:
            fail(
                key, f"expected a size such as '512MiB', '2GiB' or a number of bytes, got {value!r}"
            )
        size = math.floor(float(match[1]) * _UNITS[(match[2] or "b").lower()])
    if size < 1:
        fail(key, "must be at least 1 byte")
    if size > MAX_SIZE:
        fail(key, "must be at most 1 PiB")
    return size


def resolve_system_probe(raw: RawProbe, probe: ProbeConfig, key: str, ctx: Context) -> ProbeConfig:
    """The fields of an ``exec``, ``tcp`` or ``resource`` probe.

    Raises:
        Invalid: a field is missing or wrong; the key names it.
    """
    if raw.kind == "exec":
        return replace(probe, argv=_argv(raw.argv, f"{key}.argv", ctx))
    if raw.kind == "tcp":
        if raw.address is None:
            fail(
                f"{key}.address", "required for a 'tcp' probe: 'host:port' such as '127.0.0.1:5432'"
            )
        listen = as_listen(raw.address, f"{key}.address")
        if listen is None:
            fail(f"{key}.address", "must not be empty: 'host:port' such as '127.0.0.1:5432'")
        host, port = listen
        if port == 0:
            fail(f"{key}.address", "port 0 is not a port anything listens on")
        return replace(probe, host=host, port=port)
    return _resource(raw, probe, key)


def _argv(argv: list[str] | None, key: str, ctx: Context) -> tuple[str, ...]:
    if argv is None:
        fail(key, "required for an 'exec' probe: the program and its arguments, as a list")
    if not argv:
        fail(key, "must not be empty: give the program and its arguments")
    out = []
    for i, arg in enumerate(argv):
        if not arg:
            fail(f"{key}[{i}]", "must not be an empty string")
        out.append(expand(arg, f"{key}[{i}]", ctx.placeholders))
    program = out[0]
    if "/" in program:
        if not PurePosixPath(program).is_absolute():
            fail(
                f"{key}[0]",
                f"{program!r}: a program path must be absolute (or a name found on PATH)",
            )
    elif shutil.which(program) is None:
        fail(f"{key}[0]", f"{program!r} is not found on PATH; give its absolute path")
    return tuple(out)


def _resource(raw: RawProbe, probe: ProbeConfig, key: str) -> ProbeConfig:
    if all(getattr(raw, name) is None for name in _LIMITS):
        fail(
            f"{key}.max_rss",
            "a 'resource' probe needs at least one of max_rss, "
            "max_cpu_percent, max_fds, max_threads",
        )
    cpu = raw.max_cpu_percent
    if cpu is not None and (not math.isfinite(cpu) or cpu <= 0):
        fail(f"{key}.max_cpu_percent", "must be a positive number (100 is one core)")
    for name in ("max_fds", "max_threads"):
        value = getattr(raw, name)
        if value is not None and value < 1:
            fail(f"{key}.{name}", "must be at least 1")
    return replace(
        probe,
        max_rss=None if raw.max_rss is None else as_size(raw.max_rss, f"{key}.max_rss"),
        max_cpu_percent=None if cpu is None else float(cpu),
        max_fds=raw.max_fds,
        max_threads=raw.max_threads,
    )
