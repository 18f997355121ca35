"""Hypothesis profiles for the whole suite (issue 9, defect 10).

* ``dev`` (the default): Hypothesis's defaults, random exploration; a failure is
  saved in ``.hypothesis/`` and replayed first next time.
* ``ci``: derandomized (the examples are a function of the test, so a seed can't
  fail a submission that passed before), a fixed ``max_examples``, no deadline
  (shared CI machines are slow), no example database, and ``print_blob`` so a
  failure can be replayed with ``@reproduce_failure``.

Both skip Hypothesis's "explain" phase: on Python < 3.12 it traces every line of a
failing example many times over, which took a failing stateful run past the test
timeout before it could report anything.

The profile comes from ``HYPOTHESIS_PROFILE``; without it, ``ci`` when ``CI`` is set
(as CI services do), else ``dev``. ``--hypothesis-profile`` still overrides both.
"""

from __future__ import annotations

import os

from hypothesis import Phase, settings

_PHASES = (Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink)

settings.register_profile("dev", phases=_PHASES)
settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=100,
    deadline=None,
    print_blob=True,
    database=None,
    phases=_PHASES,
)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)
