"""Small, pure statistics for probe windows: nearest-rank percentiles.

Latency thresholds in the runbook ("p95 over 1.5 s") are judged on a short
sliding window of samples (about 20). On so few samples interpolating
percentiles invent values nobody measured; the *nearest-rank* method always
returns one of the samples, so the number in ``health_v2.json`` is a latency
that really happened. Definition (NIST / Wikipedia "nearest-rank method"):
for ``0 < q <= 100`` the q-th percentile of ``N`` sorted samples is the one at
1-based rank ``ceil(q / 100 * N)``; ``q == 0`` gives the minimum.

The rank is computed with exact rationals, so ``p95`` of 20 samples is the
19th, never the 20th because ``0.95 * 20`` rounded up in binary floating point.

Stdlib only; no clock, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from fractions import Fraction

__all__ = ["nearest_rank", "p95", "percentile"]


def nearest_rank(q: float, n: int) -> int:
    """Return the 1-based nearest rank of the ``q``-th percentile among ``n`` samples.

    Args:
        q: the percentile, ``0 <= q <= 100``; a float is read as its shortest decimal
            form (``99.9`` means exactly 99.9).
        n: the number of samples, at least 1.

    Returns:
        The rank, between 1 and ``n``.

    Raises:
        ValueError: ``q`` is outside ``[0, 100]`` or not finite, or ``n < 1``.
    """
    if n < 1:
        raise ValueError(f"need at least one sample, got n={n}")
    if isinstance(q, float) and not math.isfinite(q):
        raise ValueError(f"percentile must be finite, got {q!r}")
    exact_q = Fraction(repr(q)) if isinstance(q, float) else Fraction(q)
    if not 0 <= exact_q <= 100:
        raise ValueError(f"percentile must be within [0, 100], got {q!r}")
    return max(1, math.ceil(exact_q * n / 100))


def percentile(samples: Iterable[float], q: float) -> float:
    """Return the nearest-rank ``q``-th percentile of ``samples``.

    Args:
        samples: measured values, in any order; not modified.
        q: the percentile, ``0 <= q <= 100``.

    Returns:
        One of the samples: the smallest value such that at least ``q`` % of the
        samples are less than or equal to it.

    Raises:
        ValueError: no samples, a NaN sample (it has no place in an order), or a bad ``q``.
    """
    ordered = sorted(samples)
    if not ordered:
        raise ValueError("percentile of no samples")
    if any(math.isnan(x) for x in ordered):
        raise ValueError("NaN sample has no rank")
    return ordered[nearest_rank(q, len(ordered)) - 1]


def p95(samples: Iterable[float]) -> float:
    """Return the nearest-rank 95th percentile of ``samples`` (see :func:`percentile`)."""
    return percentile(samples, 95)
