"""The network faults the loopback fault proxy can inject, as plain frozen values.

A :class:`Fault` is what an operator, a drill or the control port asks for; the proxy
(:class:`autoheal.chaos.fault_proxy.FaultProxy`) reads it per chunk. What each kind does:

* ``latency``: each chunk waits ``ms`` (+/- ``jitter_ms``). ``ms`` is the added
  *round-trip* time: ``direction="both"`` puts half on each way, ``"upstream"``
  or ``"downstream"`` all of it on one way. An operator asking 2000 ms sees
  requests take 2 s longer.
* ``blackhole``: connections are accepted and never answered; data is read and
  dropped; new connections never reach the upstream.
* ``refuse`` / ``reset``: new connections are closed at once with RST
  (SO_LINGER 0) and live ones are reset.
* ``bandwidth``: each direction of each connection is paced to ``bytes_per_s``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["DIRECTIONS", "KINDS", "Fault", "bandwidth", "blackhole", "latency", "refuse", "reset"]

KINDS = ("latency", "blackhole", "refuse", "reset", "bandwidth")
DIRECTIONS = ("both", "upstream", "downstream")


@dataclass(frozen=True)
class Fault:
    """One network fault; build it with :func:`latency`, :func:`blackhole`, ... .

    Raises:
        ValueError: an unknown kind or direction, or a negative or missing amount.
    """

    kind: str
    ms: float = 0.0
    jitter_ms: float = 0.0
    direction: str = "both"
    bytes_per_s: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {KINDS}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {self.direction!r}; expected one of {DIRECTIONS}")
        if min(self.ms, self.jitter_ms, self.bytes_per_s) < 0:
            raise ValueError("fault amounts must not be negative")
        if self.kind == "bandwidth" and self.bytes_per_s <= 0:
            raise ValueError("a bandwidth fault needs bytes_per_s > 0")

    def applies_to(self, direction: str) -> bool:
        """Whether this fault acts on ``direction`` (``upstream`` or ``downstream``)."""
        return self.direction in ("both", direction)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form used by the control port and the status document."""
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: Any) -> Fault:
        """Parse the JSON form; raises ``ValueError`` on anything malformed."""
        if not isinstance(doc, dict) or not isinstance(doc.get("kind"), str):
            raise ValueError("a fault must be an object with a string 'kind'")
        unknown = set(doc) - {"kind", "ms", "jitter_ms", "direction", "bytes_per_s"}
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        for key in ("ms", "jitter_ms", "bytes_per_s"):
            value = doc.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"fault field {key!r} must be a number")
        return cls(**doc)


def latency(ms: float, jitter_ms: float = 0.0, direction: str = "both") -> Fault:
    """Add ``ms`` of round-trip latency (see the module docstring for ``direction``)."""
    return Fault("latency", ms=ms, jitter_ms=jitter_ms, direction=direction)


def blackhole() -> Fault:
    """Accept connections and never answer them."""
    return Fault("blackhole")


def refuse() -> Fault:
    """Close new connections at once with RST; reset live ones."""
    return Fault("refuse")


def reset() -> Fault:
    """Reset live connections and every new one (RST)."""
    return Fault("reset")


def bandwidth(bytes_per_s: float, direction: str = "both") -> Fault:
    """Pace each direction of each connection to ``bytes_per_s``."""
    return Fault("bandwidth", bytes_per_s=bytes_per_s, direction=direction)
