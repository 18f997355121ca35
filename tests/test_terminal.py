"""The one terminal sanitiser (issue 18 A10): nothing a terminal obeys gets through, and
printable text passes unchanged."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import orjson
from hypothesis import given
from hypothesis import strategies as st

import autoheal.terminal
from autoheal.terminal import clean, clean_json, clean_lines
from tests.terminal_text import HOSTILE, obeyed

#: Characters a terminal shows as they are: no controls, format, separators or surrogates.
_PRINTABLE = st.characters(
    blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"),
)
#: Words of printable characters joined by single spaces: what a clean field looks like.
_PRINTABLE_TEXT = st.lists(st.text(_PRINTABLE, min_size=1), min_size=1).map(" ".join)
_ANY_VALUE = st.one_of(
    st.text(), st.none(), st.integers(), st.floats(), st.binary(), st.lists(st.text())
)


@given(_ANY_VALUE)
def test_clean_leaves_nothing_for_a_terminal_to_obey(value: object) -> None:
    text = clean(value)
    assert obeyed(text) == []
    assert "\n" not in text
    assert text == text.strip() and text


@given(_PRINTABLE_TEXT)
def test_clean_keeps_printable_text_unchanged(text: str) -> None:
    assert clean(text) == text


@given(st.text())
def test_clean_is_idempotent(text: str) -> None:
    assert clean(clean(text)) == clean(text)


def test_clean_shows_what_was_there_and_folds_lines() -> None:
    assert clean("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert clean("x\x9b31my\x7f") == "x\\x9b31my\\x7f"
    assert clean("evil\u202etxt.exe\u2066") == "evil\\u202etxt.exe\\u2066"
    assert clean("tag\U000e0041") == "tag\\U000e0041"
    assert clean("line one\r\nline  two\t ") == "line one line two"
    assert clean("café 東京 ✓") == "café 東京 ✓"
    assert clean(None) == "-" and clean(" \n ") == "-" and clean("", empty="") == ""
    assert clean(3) == "3"


@given(st.text())
def test_clean_lines_keeps_only_newlines(text: str) -> None:
    cleaned = clean_lines(text)
    assert obeyed(cleaned) == []
    assert cleaned.count("\n") == text.count("\n")


def test_clean_lines_keeps_indentation() -> None:
    assert clean_lines("Traceback:\n  File x\x1b[2J\r\n\tboom") == (
        "Traceback:\n  File x\\x1b[2J \n boom"
    )


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(_JSON)
def test_clean_json_is_the_same_json_with_nothing_to_obey(doc: object) -> None:
    for text in (
        orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode(),
        json.dumps(doc, ensure_ascii=False),
        json.dumps(doc, ensure_ascii=False, indent=2),
    ):
        cleaned = clean_json(text)
        assert obeyed(cleaned) == []
        assert json.loads(cleaned) == doc
        assert orjson.loads(cleaned) == doc


def test_clean_json_escapes_what_orjson_writes_raw() -> None:
    raw = orjson.dumps({"reason": HOSTILE}).decode()
    assert obeyed(raw) != []  # DEL, C1 and the bidi characters: orjson leaves them raw
    cleaned = clean_json(raw)
    assert obeyed(cleaned) == []
    assert "\\u202e" in cleaned and "\\u007f" in cleaned
    assert json.loads(cleaned) == {"reason": HOSTILE}


def test_terminal_module_is_a_leaf_that_imports_nothing() -> None:
    # Every layer imports it, and `autoheal status` at start-up: it must cost nothing.
    tree = ast.parse(Path(autoheal.terminal.__file__).read_text())
    imported = [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]
    assert [ast.unparse(node) for node in imported] == ["from __future__ import annotations"]
