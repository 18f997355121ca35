"""Process control: spawn, watch, stop and adopt the supervised services.

The daemon uses :class:`ProcessControl` (one per daemon) with a
:class:`ServiceSpec` per service; results are plain data (:class:`StopResult`,
:class:`AdoptResult`, :class:`ProcessStatus`) and the only exception is
:class:`SpawnError`.
"""

from autoheal.procs.control import ProcessControl
from autoheal.procs.errors import ProcsError, SpawnError
from autoheal.procs.exits import PIDFD_SUPPORTED
from autoheal.procs.identity import cmdline_matches
from autoheal.procs.model import (
    PROCESS_MISSING,
    AdoptResult,
    ProcessIdentity,
    ProcessStatus,
    ServiceSpec,
    StopOutcome,
    StopResult,
)
from autoheal.procs.protocol import ProcessControlLike

__all__ = [
    "PIDFD_SUPPORTED",
    "PROCESS_MISSING",
    "AdoptResult",
    "ProcessControl",
    "ProcessControlLike",
    "ProcessIdentity",
    "ProcessStatus",
    "ProcsError",
    "ServiceSpec",
    "SpawnError",
    "StopOutcome",
    "StopResult",
    "cmdline_matches",
]
