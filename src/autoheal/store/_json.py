"""JSON for the guard's files: orjson when it is installed, the standard library when not.

The guard ships as ``autoheal-guard`` with no dependencies (issue 22), so a bot's
environment need not take orjson. Both paths give the same bytes and the same
strictness for the documents we write (``tests/store/test_json_shim.py`` holds the
fallback to orjson with hypothesis):

- :func:`dumps_line`: compact, keys sorted, newline-terminated UTF-8. Keys must be
  ``str`` (no coercion of ``1`` to ``"1"``), integers fit 64 bits, strings are valid
  UTF-8, containers nest at most 254 deep; NaN and Infinity become ``null`` as orjson
  writes them. Floats are written as orjson 3.13 writes them (``0.00001``, ``1e-7``,
  ``1e+16``). Anything else raises :data:`JSONEncodeError` (a ``TypeError``), before
  any file is touched.
- :func:`loads`: UTF-8 only (no BOM), no ``NaN``/``Infinity`` literals, no number that
  overflows a double, no lone surrogate escape; an integer beyond 64 bits reads as a
  float, as orjson reads it. A bad document raises :data:`JSONDecodeError`.
"""

from __future__ import annotations

import enum
import json
import math
import re
from typing import Any

__all__ = ["BACKEND", "JSONDecodeError", "JSONEncodeError", "dumps_line", "loads"]

#: orjson's own error is a subclass of this one: catching it catches both backends'.
JSONDecodeError = json.JSONDecodeError

_MAX_DEPTH = 254  # orjson's: 254 nested containers encode, 255 raise
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
_encode_str = json.encoder.encode_basestring  # escapes as orjson does (no ASCII-only)


class _StdEncodeError(TypeError):
    """A document the standard-library path refuses, as orjson would."""


def _float_text(value: float) -> str:
    if not math.isfinite(value):
        return "null"
    text = repr(value)
    mantissa, sep, exponent = text.partition("e")
    if not sep:
        return text
    power = int(exponent)
    if power == -5:  # orjson writes 1.5e-05 positionally: 0.000015
        sign, digits = ("-", mantissa[1:]) if mantissa.startswith("-") else ("", mantissa)
        return f"{sign}0.0000{digits.replace('.', '')}"
    return f"{mantissa}e{'+' if power > 0 else '-'}{abs(power)}"


def _encode(value: Any, out: list[str], depth: int) -> None:
    kind = type(value)
    if isinstance(value, str):
        out.append(_encode_str(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif kind is float:
        out.append(_float_text(value))
    elif isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise _StdEncodeError("Integer exceeds 64-bit range")
        out.append(int.__repr__(value))
    elif isinstance(value, dict):
        if depth >= _MAX_DEPTH:
            raise _StdEncodeError("Recursion limit reached")
        if any(type(key) is not str for key in value):
            raise _StdEncodeError("Dict key must be str")
        out.append("{")
        for i, key in enumerate(sorted(value)):
            if i:
                out.append(",")
            out.append(_encode_str(key))
            out.append(":")
            _encode(value[key], out, depth + 1)
        out.append("}")
    elif isinstance(value, list) or kind is tuple:
        if depth >= _MAX_DEPTH:
            raise _StdEncodeError("Recursion limit reached")
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out, depth + 1)
        out.append("]")
    elif isinstance(value, enum.Enum):
        _encode(value.value, out, depth)
    else:
        raise _StdEncodeError(f"Type is not JSON serializable: {kind.__name__}")


def _std_dumps_line(doc: Any) -> bytes:
    out: list[str] = []
    _encode(doc, out, 0)
    out.append("\n")
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError:
        raise _StdEncodeError("str is not valid UTF-8: surrogates not allowed") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_int(text: str) -> int | float:
    value = int(text)
    if _INT_MIN <= value <= _INT_MAX:
        return value
    return _parse_float(text)  # orjson reads a wider integer as a double


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError("number is infinity when parsed as double")
    return value


_decoder = json.JSONDecoder(
    parse_float=_parse_float, parse_int=_parse_int, parse_constant=_refuse_constant
)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_surrogate(v) for v in value)
    return False


def _std_loads(data: bytes | bytearray | memoryview | str) -> Any:
    try:
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        text = raw.decode("utf-8")
    except UnicodeError:
        raise JSONDecodeError("str is not valid UTF-8", "", 0) from None
    if text.startswith("\ufeff"):
        raise JSONDecodeError("UTF-8 byte order mark (BOM) is not supported", text, 0)
    try:
        doc = _decoder.decode(text)
    except JSONDecodeError:
        raise
    except (ValueError, RecursionError) as exc:
        raise JSONDecodeError(str(exc), text, 0) from None
    if _SURROGATE_ESCAPE.search(text) and _has_surrogate(doc):
        raise JSONDecodeError("lone surrogate in string", text, 0)
    return doc


try:
    import orjson as _orjson
except ImportError:  # the guard alone: the standard library, same bytes
    _orjson = None  # type: ignore[assignment]

#: Which path this process takes: ``"orjson"`` or ``"json"``.
BACKEND = "json" if _orjson is None else "orjson"
#: What :func:`dumps_line` raises for a document JSON cannot hold (a ``TypeError``).
JSONEncodeError: type[TypeError] = _StdEncodeError if _orjson is None else _orjson.JSONEncodeError


def dumps_line(doc: Any) -> bytes:
    """``doc`` as compact, key-sorted, newline-terminated JSON in UTF-8."""
    if _orjson is None:
        return _std_dumps_line(doc)
    return _orjson.dumps(doc, option=_orjson.OPT_SORT_KEYS | _orjson.OPT_APPEND_NEWLINE)


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """The document in ``data``; raises :data:`JSONDecodeError` when it is not strict JSON."""
    if _orjson is None:
        return _std_loads(data)
    return _orjson.loads(data)
