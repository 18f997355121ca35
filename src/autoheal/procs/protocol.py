"""What the daemon needs from process control: the real ``ProcessControl`` and the
in-memory ``autoheal.testing.FakeProcessControl`` both provide it, and one contract
suite (tests/procs/test_control_contract.py) runs against both."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from autoheal.procs.model import (
    AdoptResult,
    ProcessIdentity,
    ProcessStatus,
    ServiceSpec,
    StopResult,
)


class ProcessControlLike(Protocol):
    async def start(self, spec: ServiceSpec) -> ProcessIdentity: ...

    async def wait_exit(self, identity: ProcessIdentity) -> int | None: ...

    async def status(self, identity: ProcessIdentity) -> ProcessStatus: ...

    async def is_ours(self, identity: ProcessIdentity) -> bool: ...

    async def stop(self, identity: ProcessIdentity, spec: ServiceSpec) -> StopResult: ...

    async def adopt(
        self, spec: ServiceSpec, expected_cmdline: tuple[str, ...] | None = None
    ) -> AdoptResult: ...

    async def clean_stale(self, spec: ServiceSpec) -> tuple[Path, ...]: ...

    async def rotate_logs(self, spec: ServiceSpec) -> bool: ...

    def owned(self) -> list[ProcessIdentity]: ...
