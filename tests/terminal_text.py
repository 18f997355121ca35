"""Hostile text for the terminal-output tests (issue 18 A10), and the check on what was printed.

``HOSTILE`` holds what a terminal obeys instead of showing: a screen clear and a
window retitle (ESC sequences), BEL, a carriage return and a newline that would forge
a line starting ``FORGED``, a bidi override and isolate, the C1 CSI, DEL and NUL.
``HOSTILE_ARG`` is the same without NUL, which no command line can carry.
"""

from __future__ import annotations

HOSTILE = "evil\x1b[2J\x1b]0;pwned\x07\r\nFORGED\u202etxt.exe\u2066\x9b31m\x7f\x00end"
HOSTILE_ARG = HOSTILE.replace("\x00", "")
#: Words of ``HOSTILE`` that must still be readable after cleaning.
VISIBLE = ("evil", "pwned", "FORGED", "end")


def obeyed(text: str) -> list[str]:
    """Every character in ``text`` that a terminal would act on: all that is not printable
    (C0 and C1 controls, DEL, bidi and other format characters), except the newline."""
    return sorted({repr(ch) for ch in text if ch != "\n" and not ch.isprintable()})


def assert_clean(text: str, *, shows: tuple[str, ...] = ()) -> None:
    """Nothing in ``text`` for a terminal to obey, no forged line, and ``shows`` visible."""
    bad = obeyed(text)
    assert bad == [], f"printed {bad} raw in {text!r}"
    forged = [line for line in text.splitlines() if line.startswith("FORGED")]
    assert forged == [], f"a newline from outside started a line: {forged!r}"
    for word in shows:
        assert word in text, f"{word!r} is no longer readable in {text!r}"
