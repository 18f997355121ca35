"""Durations as people write them in a config file: ``"15s"``, ``"1500ms"``, ``"1m30s"``, ``2.5``.

A duration is a string of one or more ``<number><unit>`` parts, units in decreasing
order and each at most once (``1h``, ``5m``, ``1m30s``, ``2.5s``, ``1500ms``), or a
bare number of seconds (``15``, ``"0.25"``, ``2.5``). The result is always a finite,
non-negative ``float`` of seconds.

Everything that is not such a duration raises ``ValueError`` with a message that
shows the accepted forms, including the traps: ``True`` (a ``bool`` is an ``int`` in
Python, but ``stop_timeout = true`` is a mistake, not one second), negatives,
``inf``/``nan``, an empty string, and values too large for a float.

:func:`format_duration` is the inverse: ``parse_duration(format_duration(x)) == x``
for every finite ``x >= 0``, and the text is the short form a human would write.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

__all__ = ["format_duration", "parse_duration"]

#: Seconds per unit, largest first: the order the parts of a compound duration must follow.
_UNITS: dict[str, float] = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}

_NUMBER = r"\d+(?:\.\d+)?"
# ``ms`` must be tried before ``m`` so that "1500ms" is not read as "1500m" + "s".
_PART = re.compile(rf"({_NUMBER})(ms|h|m|s)")
_BARE = re.compile(rf"{_NUMBER}")

_FORMS = "expected seconds as a number or a string such as '15s', '1500ms', '5m', '1h', '1m30s'"


def parse_duration(value: str | int | float) -> float:
    """Turn a config duration into seconds.

    Args:
        value: ``"15s"``, ``"1500ms"``, ``"5m"``, ``"1h"``, ``"2.5s"``, ``"1m30s"``, a bare
            number string, or an ``int``/``float`` number of seconds.

    Returns:
        The duration in seconds, finite and ``>= 0``.

    Raises:
        ValueError: for anything else (wrong type, ``bool``, empty, negative, garbage,
            ``inf``/``nan``, too large); the message names the bad value and the forms.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{_FORMS}, got {type(value).__name__} {value!r}")
    if isinstance(value, str):
        return _parse_text(value)
    try:
        seconds = float(value)
    except OverflowError:
        raise ValueError(f"duration {value!r} is too large") from None
    return _checked(seconds, value)


def format_duration(seconds: float) -> str:
    """Render seconds as the short text a human would write, e.g. ``1.5s``, ``250ms``, ``5m``.

    Args:
        seconds: a finite number ``>= 0``.

    Returns:
        Text that :func:`parse_duration` turns back into exactly ``seconds``.

    Raises:
        ValueError: ``seconds`` is negative, infinite, NaN or a ``bool``.
    """
    if isinstance(seconds, bool):
        raise ValueError(f"cannot format {seconds!r} as a duration")
    seconds = _checked(float(seconds), seconds)
    for candidate in _candidates(seconds):
        try:
            if _parse_text(candidate) == seconds:
                return candidate
        except ValueError:  # e.g. hours * 3600 overflowing near the float maximum
            continue
    return f"{_plain(seconds)}s"  # always exact: float(shortest repr) round-trips


def _parse_text(text: str) -> float:
    stripped = text.strip()
    if not stripped:
        raise ValueError(f"empty duration; {_FORMS}")
    if stripped.startswith("-"):
        raise ValueError(f"negative duration {text!r}; durations must be >= 0")
    if _BARE.fullmatch(stripped):
        return _checked(float(stripped), text)
    total = 0.0
    pos = 0
    seen: list[str] = []
    order = list(_UNITS)
    while pos < len(stripped):
        match = _PART.match(stripped, pos)
        if match is None:
            raise ValueError(f"invalid duration {text!r}; {_FORMS}")
        number, unit = match.groups()
        if seen and order.index(unit) <= order.index(seen[-1]):
            raise ValueError(
                f"invalid duration {text!r}: units must go from largest to smallest, "
                "each at most once (e.g. '1h30m', '1m30s')"
            )
        seen.append(unit)
        # Divide for milliseconds: 1500 / 1000 is exact where 1500 * 0.001 is not.
        part = float(number) / 1000.0 if unit == "ms" else float(number) * _UNITS[unit]
        total += part
        pos = match.end()
    return _checked(total, text)


def _checked(seconds: float, original: object) -> float:
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"duration {original!r} is not a finite number of seconds")
    if seconds < 0:
        raise ValueError(f"negative duration {original!r}; durations must be >= 0")
    return seconds + 0.0  # turns -0.0 into 0.0


def _candidates(seconds: float) -> list[str]:
    """Human-friendly spellings, best first; the caller keeps the first that round-trips."""
    out: list[str] = []
    if seconds.is_integer() and seconds > 0:
        whole = int(seconds)
        hours, rest = divmod(whole, 3600)
        minutes, secs = divmod(rest, 60)
        text = "".join(
            f"{amount}{unit}"
            for amount, unit in ((hours, "h"), (minutes, "m"), (secs, "s"))
            if amount
        )
        out.append(text)
    elif 0 < seconds < 1:
        out.append(f"{_plain(seconds * 1000.0)}ms")
    return out


def _plain(number: float) -> str:
    """Shortest round-tripping decimal, never in exponent notation (``1e-05`` -> ``0.00001``)."""
    text = format(Decimal(repr(number)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"
