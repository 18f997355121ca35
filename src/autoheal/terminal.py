"""What may reach an operator's terminal: text from outside, made inert and still readable.

Whatever autoheal prints that it did not write itself -- a reason given to a
command or through the status page, a journal row, a component or breaker key, a
probe's error text, a host name read from Redis, a drill's title from a TOML file
-- can hold characters that a terminal obeys instead of showing: ``\\x1b[2J``
clears the screen, ``\\x1b]0;...\\x07`` retitles the window, a carriage return
writes over the start of the line, and the bidi overrides and isolates
(U+202A-202E, U+2066-2069) make ``evil`` read as ``live``. The journal, the files
and Redis can be written by anyone with access, so the defence is at output, in
this one module, which every command uses for every such value (issue 18 A10).
Input is kept as given: the journal is an audit record, and a check at the CLI
would miss every other writer.

* :func:`clean` -- one field on one line. Each run of whitespace (a newline, a
  tab, a no-break space, U+2028) becomes one space, so a newline in a reason
  cannot forge a second event line.
* :func:`clean_lines` -- text whose newlines are meant (a traceback): ``\\n``
  stays, any other whitespace becomes a space.
* :func:`clean_json` -- JSON text for a terminal: still the same valid JSON.

In all three, every other character that :meth:`str.isprintable` rejects -- the C0
and C1 controls, DEL, the format characters (Cf: bidi controls, zero-width and
tag characters, the soft hyphen), surrogates, private-use and unassigned code
points -- is shown as its Python escape: ``\\x1b``, ``\\u202e``, ``\\U000e0041``.
An operator can read what was there; the terminal obeys none of it. Printable
text, non-ASCII letters included, passes unchanged.

A leaf beside :mod:`autoheal.store.layout`: pure, and it imports nothing, so any
layer (the journal's event formatter, the drills' report, the daemon's log format,
the CLI) can use it, and ``autoheal status`` pays nothing at start-up for it
(``tests/test_terminal.py`` keeps it so).
"""

from __future__ import annotations

__all__ = ["clean", "clean_json", "clean_lines"]


def _escape(ch: str) -> str:
    """The visible, inert spelling of one character: ``\\x1b``, ``\\u202e``, ``\\U000e0041``."""
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _inert(text: str) -> str:
    """``text`` with every non-printable character escaped (whitespace already handled)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def clean(value: object, *, empty: str = "-") -> str:
    """One value from outside as one line a terminal only shows.

    Args:
        value: anything; ``None`` counts as nothing, other values go through ``str``.
        empty: what to show for nothing (``None``, or only whitespace).

    Returns:
        The text with whitespace runs folded to one space, ends stripped, and every
        other non-printable character escaped.
    """
    if value is None:
        return empty
    text = value if isinstance(value, str) else str(value)
    if not text.isprintable() or "  " in text or text[:1] == " " or text[-1:] == " ":
        text = " ".join(text.split())
    return _inert(text) or empty


def clean_lines(value: object) -> str:
    """Text from outside whose line breaks are meant: each ``\\n`` stays a line break.

    Spaces stay as they are (indentation reads), any other whitespace (a tab, a
    carriage return that would write over the line) becomes one space, and every other
    non-printable character is escaped as by :func:`clean`.
    """
    text = value if isinstance(value, str) else str(value)
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if not line.isprintable():
            lines[i] = _inert("".join(" " if ch.isspace() else ch for ch in line))
    return "\n".join(lines)


def clean_json(text: str) -> str:
    """JSON text with every non-printable character (but ``\\n``) as a ``\\uXXXX`` escape.

    Encoders escape the C0 controls but may write DEL, C1 controls and bidi
    characters raw (orjson does; JSON allows it). Outside strings, JSON text holds
    only printable ASCII and whitespace, and its encoders write no whitespace but
    spaces and newlines, so every character replaced here is inside a string, where
    the escape means the same character: the document decodes to the same value.
    """
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if not line.isprintable():
            lines[i] = "".join(ch if ch.isprintable() else _json_escape(ch) for ch in line)
    return "\n".join(lines)


def _json_escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # a UTF-16 surrogate pair, the only way JSON spells an astral character
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
