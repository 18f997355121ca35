"""The guard's JSON without orjson: the same bytes and the same refusals as orjson's.

``autoheal.store._json`` takes orjson when it is installed (it is here); its
standard-library path, the one a guard-only environment takes, is held to orjson
itself: what orjson writes, it writes byte for byte; what orjson refuses to write or
read, it refuses.
"""

from __future__ import annotations

import enum
import math

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoheal.store import _json

pytestmark = [pytest.mark.timeout(120)]

ORJSON_LINE = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE

texts = st.text(st.characters(codec="utf-8"), max_size=12)
ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [1e-5, 1.5e-5, -6.4e-5, 1e-6, 1e-9, 1e-10, 1e15, 1e16, 1e22, -0.0, 5e-324]
)
scalars = st.none() | st.booleans() | ints | floats | texts
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(texts, inner, max_size=4)
    ),
    max_leaves=20,
)


def orjson_outcome(call, *args):
    try:
        return "ok", call(*args)
    except (TypeError, ValueError):
        return "refused", None


@settings(max_examples=400)
@given(documents)
def test_the_fallback_writes_orjsons_bytes(doc):
    assert _json._std_dumps_line(doc) == orjson.dumps(doc, option=ORJSON_LINE)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_float_is_written_as_orjson_writes_it(value):
    assert _json._float_text(value).encode() == orjson.dumps(value)


@pytest.mark.parametrize(
    "doc",
    [
        2**64,
        -(2**63) - 1,
        {1: "int key"},
        {True: "bool key"},
        {None: "null key"},
        {"k": "\ud800"},
        {"\udfff": 1},
        b"bytes",
        {1.5},
        object(),
        [[]] * 0 + [[[[]]]],  # fine: a control for the refusals around it
    ],
)
def test_the_fallback_refuses_what_orjson_refuses(doc):
    want = orjson_outcome(orjson.dumps, doc)[0]
    try:
        _json._std_dumps_line(doc)
        got = "ok"
    except TypeError:
        got = "refused"
    assert got == want


@pytest.mark.parametrize(("depth", "ok"), [(254, True), (255, False)])
def test_nesting_is_limited_where_orjsons_is(depth, ok):
    doc: list = []
    inner = doc
    for _ in range(depth - 1):
        inner.append([])
        inner = inner[0]
    assert orjson_outcome(orjson.dumps, doc)[0] == ("ok" if ok else "refused")
    if ok:
        assert _json._std_dumps_line(doc) == orjson.dumps(doc, option=ORJSON_LINE)
    else:
        with pytest.raises(TypeError, match="Recursion"):
            _json._std_dumps_line(doc)


def test_enums_and_str_int_subclasses_are_written_by_value():
    class Mode(enum.StrEnum):
        NORMAL = "NORMAL"

    class Level(enum.IntEnum):
        HIGH = 3

    class Plain(enum.Enum):
        A = "a"

    doc = {"mode": Mode.NORMAL, "level": Level.HIGH, "plain": Plain.A}
    assert _json._std_dumps_line(doc) == orjson.dumps(doc, option=ORJSON_LINE)
    assert _json._std_dumps_line(doc) == b'{"level":3,"mode":"NORMAL","plain":"a"}\n'


@settings(max_examples=400)
@given(documents)
def test_the_fallback_reads_what_orjson_reads(doc):
    data = orjson.dumps(doc)
    got = _json._std_loads(data)
    want = orjson.loads(data)
    assert repr(got) == repr(want)  # repr: NaN-free here, and -0.0 is not 0.0


json_ish = st.lists(
    st.sampled_from(
        [
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            '"a"',
            '"\\ud800"',
            '"\\udc00"',
            '"\\ud83d\\ude00"',
            '"\\\\ud800"',
            "1",
            "-0",
            "1e400",
            "-1e400",
            "18446744073709551616",
            "18446744073709551615",
            "-9223372036854775809",
            "1.5E-5",
            "NaN",
            "Infinity",
            "-Infinity",
            "true",
            "null",
            " ",
            "\n",
            "\x01",
            '"\x01"',
            "\ufeff",
            "01",
        ]
    ),
    max_size=8,
).map("".join)


@settings(max_examples=600)
@given(json_ish | st.binary(max_size=12))
def test_the_fallback_refuses_to_read_what_orjson_refuses(text):
    data = text.encode("utf-8") if isinstance(text, str) else text
    want, value = orjson_outcome(orjson.loads, data)
    try:
        got, mine = "ok", _json._std_loads(data)
    except _json.JSONDecodeError:
        got, mine = "refused", None
    assert got == want, data
    if got == "ok":
        assert repr(mine) == repr(value)


@pytest.mark.parametrize(
    "data",
    [b"NaN", b"[Infinity]", b"-Infinity", b"1e400", b'"\\ud800"', b"\xef\xbb\xbf{}", b"\xff"],
)
def test_strictness_examples(data):
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(data)
    with pytest.raises(_json.JSONDecodeError):
        _json._std_loads(data)


def test_a_wide_integer_reads_as_a_double_as_in_orjson():
    assert _json._std_loads(b"18446744073709551616") == orjson.loads(b"18446744073709551616")
    assert isinstance(_json._std_loads(b"18446744073709551616"), float)


def test_this_environment_takes_orjson_and_its_errors_are_the_shared_ones():
    assert _json.BACKEND == "orjson"
    assert issubclass(orjson.JSONDecodeError, _json.JSONDecodeError)
    with pytest.raises(TypeError):
        _json.dumps_line({1: 2})
    assert _json.dumps_line({"b": math.inf, "a": 1}) == b'{"a":1,"b":null}\n'
