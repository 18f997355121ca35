"""RFC 6901 JSON pointers: parsed once when the config loads, resolved on every check.

In the core because both sides need the same rule: the config refuses a pointer
that cannot parse (``last_process_ts`` without its leading ``/``, a ``~2``), and the
``http_json`` probe resolves the parsed tokens against each decoded body. Pure: a
string in, a tuple out; a document in, a value or :data:`MISSING` out.

The rules, from the RFC:

* ``""`` is the whole document; any other pointer starts with ``/``;
* each ``/``-separated token unescapes ``~1`` to ``/`` and then ``~0`` to ``~`` (in
  that order, so ``~01`` is the key ``~1``); a ``~`` followed by anything else is an error;
* against an array a token must be ``0`` or a decimal without a leading zero; ``-``
  (the element after the last) and an index past the end resolve to nothing;
* against anything that is neither an object nor an array, nothing resolves.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["MISSING", "Missing", "PointerError", "escape_token", "parse_pointer", "resolve"]

_INDEX = re.compile(r"0|[1-9][0-9]*")
_BAD_ESCAPE = re.compile(r"~(?![01])")


class PointerError(ValueError):
    """A string that is not an RFC 6901 JSON pointer; the message says why."""


class Missing:
    """The type of :data:`MISSING`: what a pointer into nothing resolves to."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


#: What :func:`resolve` returns when the pointer leads nowhere (``None`` is JSON's null).
MISSING: Final = Missing()


def parse_pointer(text: str) -> tuple[str, ...]:
    """Split a JSON pointer into its unescaped reference tokens.

    Args:
        text: e.g. ``/last_process_ts``, ``/pairs/0/name``, ``/a~1b`` (the key ``a/b``).

    Returns:
        The tokens, e.g. ``("pairs", "0", "name")``; ``()`` for ``""`` (the whole document).

    Raises:
        PointerError: no leading ``/``, or a ``~`` not followed by ``0`` or ``1``.
    """
    if text == "":
        return ()
    if not text.startswith("/"):
        raise PointerError(f"a JSON pointer starts with '/' (try '/{text}')")
    if _BAD_ESCAPE.search(text):
        raise PointerError("'~' must be followed by 0 or 1 ('~0' is '~', '~1' is '/')")
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in text[1:].split("/"))


def escape_token(key: str) -> str:
    """Escape one object key for a pointer (``~`` to ``~0``, then ``/`` to ``~1``)."""
    return key.replace("~", "~0").replace("/", "~1")


def resolve(doc: object, tokens: tuple[str, ...]) -> object:
    """Follow ``tokens`` into a decoded JSON document.

    Args:
        doc: what a JSON decoder returned (dicts, lists, str, int, float, bool, None).
        tokens: from :func:`parse_pointer`.

    Returns:
        The value found, or :data:`MISSING` when a key or index is not there, or a
        token meets a value that is neither an object nor an array.
    """
    node = doc
    for token in tokens:
        if isinstance(node, dict):
            if token not in node:
                return MISSING
            node = node[token]
        elif isinstance(node, list):
            # The length test first: int() refuses strings of over 4300 digits.
            if len(token) > 18 or not _INDEX.fullmatch(token) or int(token) >= len(node):
                return MISSING
            node = node[int(token)]
        else:
            return MISSING
    return node
