"""The tests' name for :mod:`autoheal.drills.stacks.simple`: a real ``autoheal run`` over
simple services.

It lives in the package since issue 19, beside the drills' other stacks and on their one
subprocess harness, so that the benchmarks share it without importing ``tests``. The
tests keep importing it from here; new code imports it from the package.
"""

from autoheal.drills.stacks.simple import (
    SERVICE_CODE,
    Runtime,
    alive,
    read_doc,
    service_toml,
    toml_str,
    wait_for,
    write_config,
)

__all__ = [
    "SERVICE_CODE",
    "Runtime",
    "alive",
    "read_doc",
    "service_toml",
    "toml_str",
    "wait_for",
    "write_config",
]
