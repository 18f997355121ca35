"""Scoped halts (RTS 6 Art. 12: withdraw all orders *or any subset*): what they mean.

A *scope* is ``kind=value`` pairs joined by ``,`` in the fixed order strategy,
symbol, venue, side (``symbol=BTCUSDT``, ``strategy=grid,symbol=BTCUSDT,side=buy``);
``all`` is the whole runtime. Symbols are normalised as the guard does
(``btc/usdt`` -> ``BTCUSDT``), sides lower-cased, strategy and venue kept as given.

The halts live in ``global_flags.json`` under ``scoped_halts`` (and in the daemon's
record ``scoped_halts.json`` beside it, so that a flags document without the key
clears nothing): ``{"symbol=BTCUSDT": {"reason": str, "since": unix_s, "set_by": str}}``.
What a value *means*, failing closed (:func:`parse_halts`):

* no key (``None``): no scoped halt;
* not an object, or an entry whose *key* is not a scope: garbage, and we cannot
  tell which orders it meant to stop, so every order is halted (``garbage``);
* a scope key whose *entry* is not a well-formed object: that scope is halted all
  the same (its reason says the entry is unreadable);
* the key ``all``: every order is halted.

An order matches a scope when every kind the scope names equals the order's; a kind
the order does not give (``strategy=None``) matches (fail closed: an order that
does not say which strategy placed it may be that strategy's). Pure and stdlib only.

Each order carries its strategy in its client order id (:func:`strategy_tag`,
:func:`tagged_name`, :func:`strategy_tag_of`), so a kill of a strategy's scope
can tell its orders at the venue from the others'.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from autoheal.guard._symbols import normalize_symbol

__all__ = [
    "ALL",
    "KINDS",
    "SCOPED_HALT",
    "SCOPED_HALTS_KEY",
    "Halt",
    "HaltsView",
    "Scope",
    "ScopeError",
    "halted_scope",
    "merge_views",
    "own_order_in_scope",
    "parse_halts",
    "parse_scope",
    "scope_symbol",
    "strategy_tag",
    "strategy_tag_of",
    "tagged_name",
]

#: The reason token of an order refused inside a halted scope (``scoped_halt:<scope>``).
SCOPED_HALT = "scoped_halt"
#: The key of ``global_flags.json`` (and of the daemon's record) that holds them.
SCOPED_HALTS_KEY = "scoped_halts"
ALL = "all"
#: The kinds, in the fixed order of a scope string.
KINDS = ("strategy", "symbol", "venue", "side")
_SIDES = frozenset({"buy", "sell"})
_VALUE = re.compile(r"^[A-Za-z0-9._:/-]{1,64}$")
#: How much of a garbage detail or reason is kept (a file must not flood a log).
_DETAIL = 200


class ScopeError(ValueError):
    """A scope string that does not parse; the message says which part and why."""


@dataclass(frozen=True, slots=True, order=True)
class Scope:
    """One scope; all ``None``: the whole runtime (``all``)."""

    strategy: str | None = None
    symbol: str | None = None
    venue: str | None = None
    side: str | None = None

    def __str__(self) -> str:
        parts = [f"{k}={v}" for k, v in zip(KINDS, self._values(), strict=True) if v is not None]
        return ",".join(parts) or ALL

    def _values(self) -> tuple[str | None, ...]:
        return (self.strategy, self.symbol, self.venue, self.side)

    @property
    def is_all(self) -> bool:
        return all(v is None for v in self._values())

    def matches(
        self,
        *,
        strategy: str | None = None,
        symbol: str | None = None,
        venue: str | None = None,
        side: str | None = None,
    ) -> bool:
        """Whether an order with these fields is inside the scope (a field not given matches)."""
        return _within(self, _given(strategy, symbol, venue, side))


def _given(
    strategy: str | None, symbol: str | None, venue: str | None, side: str | None
) -> tuple[str | None, str | None, str | None, str | None]:
    """An order's fields as scopes compare them (normalised once per order)."""
    return (
        strategy,
        None if symbol is None else scope_symbol(symbol),
        venue,
        None if side is None else side.strip().lower(),
    )


def _within(scope: Scope, given: tuple[str | None, ...]) -> bool:
    """Every kind the scope names equals the order's, or the order does not give it."""
    for want, have in zip(scope._values(), given, strict=True):
        if want is not None and have is not None and want != have:
            return False
    return True


@functools.lru_cache(maxsize=1024)
def scope_symbol(symbol: str) -> str:
    """A symbol as scopes compare it: the guard's normalisation of what comes before a
    ccxt settle suffix (``BTC/USDT:USDT``, ``btc/usdt`` and ``BTCUSDT`` are ``BTCUSDT``).

    A venue's own market id that says more (OKX's ``BTC-USDT-SWAP``) stays distinct:
    name the scope as the orders' market ids read.
    """
    return normalize_symbol(str(symbol).split(":", 1)[0])


def parse_scope(text: str) -> Scope:
    """``"symbol=btc/usdt"`` -> ``Scope(symbol="BTCUSDT")``; ``"all"`` -> ``Scope()``.

    The kinds may come in any order (the string form puts them in the fixed one);
    each at most once.

    Raises:
        ScopeError: empty, an unknown kind, a repeated kind, a bad value.
    """
    if not isinstance(text, str) or not text.strip():
        raise ScopeError("a scope is kind=value[,kind=value...] or 'all', got an empty one")
    if text.strip() == ALL:
        return Scope()
    values: dict[str, str] = {}
    for part in text.split(","):
        kind, eq, value = part.strip().partition("=")
        kind, value = kind.strip(), value.strip()
        if not eq or kind not in KINDS:
            raise ScopeError(f"{part.strip()!r}: a scope part is one of {', '.join(KINDS)}=VALUE")
        if kind in values:
            raise ScopeError(f"{kind} named twice in scope {text!r}")
        if not _VALUE.match(value):
            raise ScopeError(f"{kind}={value!r}: 1 to 64 letters, digits or ._:/-")
        if kind == "symbol":
            value = scope_symbol(value)
            if not value:
                raise ScopeError(f"symbol in {text!r} has no letters or digits")
        if kind == "side":
            value = value.lower()
            if value not in _SIDES:
                raise ScopeError(f"side={value!r}: buy or sell")
        values[kind] = value
    return Scope(**values)


@dataclass(frozen=True, slots=True)
class Halt:
    """One scoped halt: why, since when (unix s), who set it."""

    reason: str
    since: float | None = None
    set_by: str = ""

    def to_doc(self) -> dict[str, Any]:
        return {"reason": self.reason, "since": self.since, "set_by": self.set_by}


@dataclass(frozen=True, slots=True)
class HaltsView:
    """What a ``scoped_halts`` value means: the halted scopes, or ``garbage`` (halt all)."""

    halts: Mapping[Scope, Halt] = field(default_factory=dict)
    #: Non-empty: the value could not be read as scopes; every order is halted.
    garbage: str = ""
    #: (name, scope) in name order, made once: the gate's hot path only compares.
    ordered: tuple[tuple[str, Scope], ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        named = sorted((str(scope), scope) for scope in self.halts)
        object.__setattr__(self, "ordered", tuple(named))

    @property
    def halts_all(self) -> bool:
        return bool(self.garbage) or any(s.is_all for s in self.halts)

    def by_name(self) -> dict[str, Halt]:
        """The halts keyed by their scope string, in a stable order."""
        return {name: self.halts[scope] for name, scope in self.ordered}


def _entry(value: object) -> Halt:
    """An entry's meaning; an unreadable one still halts its scope."""
    if not isinstance(value, Mapping):
        return Halt(f"entry unreadable ({type(value).__name__}): halted")
    reason, since, set_by = value.get("reason"), value.get("since"), value.get("set_by")
    ok_since = since is None or (not isinstance(since, bool) and isinstance(since, int | float))
    if not isinstance(reason, str) or not isinstance(set_by, str) or not ok_since:
        return Halt("entry unreadable (reason, since or set_by): halted")
    return Halt(reason[:_DETAIL], None if since is None else float(since), set_by[:_DETAIL])


def parse_halts(value: object) -> HaltsView:
    """What a ``scoped_halts`` value means (see the module docstring): never a pass on garbage.

    Args:
        value: the key's value as parsed from JSON; ``None`` when the key is absent.
    """
    if value is None:
        return HaltsView()
    if not isinstance(value, Mapping):
        return HaltsView(garbage=f"scoped_halts is a {type(value).__name__}, not an object")
    halts: dict[Scope, Halt] = {}
    for key, entry in value.items():
        try:
            scope = parse_scope(key)
        except ScopeError as exc:
            return HaltsView(garbage=f"scoped_halts key {str(key)[:64]!r}: {exc}"[:_DETAIL])
        halts[scope] = _entry(entry)
    return HaltsView(halts)


def merge_views(*views: HaltsView) -> HaltsView:
    """The union of several sources (the flags' key, the daemon's record): only tightens."""
    halts: dict[Scope, Halt] = {}
    garbage = ""
    for view in views:
        garbage = garbage or view.garbage
        for scope, halt in view.halts.items():
            halts.setdefault(scope, halt)
    return HaltsView(halts, garbage)


def halted_scope(
    view: HaltsView,
    *,
    strategy: str | None = None,
    symbol: str | None = None,
    venue: str | None = None,
    side: str | None = None,
) -> str | None:
    """The scope (its string) that halts an order with these fields, or None.

    Garbage halts every order (named ``all``); else the first matching scope in
    string order, so the answer is stable.
    """
    if view.garbage:
        return ALL
    if not view.ordered:
        return None
    given = _given(strategy, symbol, venue, side)
    for name, scope in view.ordered:
        if _within(scope, given):
            return name
    return None


# ------------------------------------------------------------------ the strategy in an id

#: Marks a name that carries a strategy tag: ``S<len><tag><name>`` (letters and digits
#: only: the strictest venue's client-id rule, :mod:`autoheal.ccxt.identity`).
_TAG_MARK = "S"
_TAG_MAX = 8
_ALNUM = re.compile(r"^[A-Za-z0-9]+$")


def strategy_tag(strategy: str) -> str:
    """The strategy as it goes into a client order id: itself when 1 to 8 letters or
    digits, else the first 8 hex digits of its SHA-256 (the same name, the same tag)."""
    if _ALNUM.match(strategy) and len(strategy) <= _TAG_MAX:
        return strategy
    return hashlib.sha256(strategy.encode()).hexdigest()[:_TAG_MAX]


def tagged_name(name: str, strategy: str | None) -> str:
    """An order's name (its signature or key) with its strategy's tag in front.

    ``None``: the name unchanged (an order with no strategy keeps today's id). A name
    that is not letters and digits is hashed (as :func:`~autoheal.ccxt.identity.client_order_id`
    would), so the tag is never hashed away with it.
    """
    if strategy is None:
        return name
    if not _ALNUM.match(name):
        name = hashlib.sha256(name.encode()).hexdigest()
    tag = strategy_tag(strategy)
    return f"{_TAG_MARK}{len(tag)}{tag}{name}"


def strategy_tag_of(client_id: str, prefix: str) -> str | None:
    """The strategy tag inside a client order id made with ``prefix``; None when untagged."""
    if not client_id.startswith(prefix):
        return None
    rest = client_id[len(prefix) :]
    if len(rest) < 3 or rest[0] != _TAG_MARK or not rest[1].isdigit():
        return None
    n = int(rest[1])
    if not 1 <= n <= _TAG_MAX or len(rest) < 2 + n:
        return None
    return rest[2 : 2 + n]


def own_order_in_scope(
    scope: Scope,
    *,
    client_id: str,
    prefix: str,
    symbol: str | None,
    venue: str | None,
    side: str | None,
) -> bool:
    """Whether one of this runtime's orders at the venue is inside ``scope`` (to cancel it).

    Its strategy is read from its client id; an order whose id carries no strategy
    (placed with none) counts as inside a strategy's scope, as the gate counts it:
    a kill that cancels one order too many is the safe way to be wrong.
    """
    if scope.strategy is not None:
        tag = strategy_tag_of(client_id, prefix)
        if tag is not None and tag != strategy_tag(scope.strategy):
            return False
    return Scope(None, scope.symbol, scope.venue, scope.side).matches(
        symbol=symbol, venue=venue, side=side
    )
