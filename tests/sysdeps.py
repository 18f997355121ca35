"""Tests that need a Debian package: skip with the package's name when it is absent.

``.ci/run`` installs every package the tests use and sets
``AUTOHEAL_REQUIRE_SYSTEM_DEPS=1``, which turns each such skip into a failure, so
CI runs all of them while the README's test command still passes on any machine.
"""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRE = os.environ.get("AUTOHEAL_REQUIRE_SYSTEM_DEPS") == "1"


def require_binary(name: str, package: str) -> str:
    """The path of the program ``name``; skip (or fail, in CI) naming ``package``."""
    path = shutil.which(name)
    if path is not None:
        return path
    message = f"{name} not found: install the Debian package {package} (apt-get install {package})"
    if REQUIRE:
        pytest.fail(f"AUTOHEAL_REQUIRE_SYSTEM_DEPS=1 but {message}")
    pytest.skip(message)
