"""RFC 6901 JSON pointers (issue 22): the RFC's own examples, the errors, and a round trip."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoheal.core.json_pointer import (
    MISSING,
    PointerError,
    escape_token,
    parse_pointer,
    resolve,
)

pytestmark = [pytest.mark.timeout(60)]

#: RFC 6901 section 5's document.
RFC_DOC = {
    "foo": ["bar", "baz"],
    "": 0,
    "a/b": 1,
    "c%d": 2,
    "e^f": 3,
    "g|h": 4,
    "i\\j": 5,
    'k"l': 6,
    " ": 7,
    "m~n": 8,
}


@pytest.mark.parametrize(
    ("pointer", "expected"),
    [
        ("", RFC_DOC),
        ("/foo", ["bar", "baz"]),
        ("/foo/0", "bar"),
        ("/", 0),
        ("/a~1b", 1),
        ("/c%d", 2),
        ("/e^f", 3),
        ("/g|h", 4),
        ("/i\\j", 5),
        ('/k"l', 6),
        ("/ ", 7),
        ("/m~0n", 8),
    ],
)
def test_resolve_the_rfc_examples(pointer: str, expected: object) -> None:
    assert resolve(RFC_DOC, parse_pointer(pointer)) == expected


def test_unescape_order_is_tilde_one_first() -> None:
    # "~01" is the key "~1", never "/"
    assert parse_pointer("/~01") == ("~1",)
    assert resolve({"~1": "x", "/": "y"}, parse_pointer("/~01")) == "x"


@pytest.mark.parametrize(
    "pointer",
    [
        "/foo/2",  # past the end
        "/foo/-",  # the element after the last
        "/foo/01",  # a leading zero is no index
        "/foo/+1",
        "/foo/ 1",
        "/foo/1e0",
        "/foo/" + "9" * 5000,  # int() would refuse it: still just missing
        "/nope",
        "/foo/0/deeper",  # into a string
        "/a~1b/x",  # into a number
        "/FOO",  # keys are case-sensitive
    ],
)
def test_resolve_what_is_not_there_is_missing(pointer: str) -> None:
    assert resolve(RFC_DOC, parse_pointer(pointer)) is MISSING


def test_null_is_a_value_not_missing() -> None:
    assert resolve({"a": None}, parse_pointer("/a")) is None
    assert resolve({"a": None}, parse_pointer("/a/b")) is MISSING


@pytest.mark.parametrize(
    ("pointer", "words"),
    [
        ("last_process_ts", "starts with '/'"),
        ("#/last_process_ts", "starts with '/'"),  # the URI fragment form
        ("/a~2b", "'~' must be followed by 0 or 1"),
        ("/a~", "'~' must be followed by 0 or 1"),
    ],
)
def test_parse_refuses_what_is_not_a_pointer(pointer: str, words: str) -> None:
    with pytest.raises(PointerError, match=words):
        parse_pointer(pointer)


# ------------------------------------------------------------------- round trip

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_docs = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@st.composite
def doc_and_path(draw: st.DrawFn) -> tuple[object, list[str], object]:
    """A document, a path of keys/indices that exists in it, and the value there."""
    doc = draw(json_docs)
    node: object = doc
    path: list[str] = []
    while isinstance(node, dict | list) and node and draw(st.booleans()):
        if isinstance(node, dict):
            key = draw(st.sampled_from(sorted(node)))
            path.append(key)
            node = node[key]
        else:
            index = draw(st.integers(0, len(node) - 1))
            path.append(str(index))
            node = node[index]
    return doc, path, node


@given(doc_and_path())
def test_round_trip_a_pointer_built_into_a_document_resolves_to_its_value(
    case: tuple[object, list[str], object],
) -> None:
    doc, path, value = case
    pointer = "".join("/" + escape_token(token) for token in path)
    tokens = parse_pointer(pointer)
    assert list(tokens) == path
    assert resolve(doc, tokens) is value


@given(st.lists(st.text(), max_size=6))
def test_escape_then_parse_gives_back_the_keys(keys: list[str]) -> None:
    assert list(parse_pointer("".join("/" + escape_token(k) for k in keys))) == keys


@given(st.text())
def test_parse_never_raises_anything_but_pointer_error(text: str) -> None:
    try:
        tokens = parse_pointer(text)
    except PointerError:
        assert text == "" or not text.startswith("/") or "~" in text
    else:
        assert resolve({}, tokens) is MISSING or tokens == ()
