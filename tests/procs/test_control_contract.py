"""One contract, two implementations: the real ProcessControl and FakeProcessControl.

Every test here runs against both (the "verified fakes" of STYLE.md §7): the real
control with real ``sys.executable -S -c`` children, real signals and real files;
the fake in memory, with the same real files. A small adapter per implementation
makes "the process dies" happen (real: SIGKILL; fake: ``fake.exit``). When a test
here fails for one implementation only, the fake has drifted from the real thing,
and shell tests built on the fake would prove nothing.

A short fake-only section at the end covers the fake's test controls.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from autoheal.procs import (
    PROCESS_MISSING,
    ProcessControl,
    ProcessIdentity,
    ProcessStatus,
    ServiceSpec,
    SpawnError,
    StopOutcome,
)
from autoheal.testing import FAKE_PID_BASE, FakeProcessControl

pytestmark = pytest.mark.anyio

SLEEPER = (sys.executable, "-S", "-c", "import time; time.sleep(60)")
DEADLINE_S = 5.0
#: Above PID_MAX_LIMIT: no real process, and no fake one either (the fake starts there
#: but this test never starts that many).
UNKNOWN_PID = FAKE_PID_BASE + 999_999


@dataclass
class Impl:
    """The control under test plus how to make one of its processes die."""

    kind: str
    control: ProcessControl | FakeProcessControl

    def kill(self, identity: ProcessIdentity) -> None:
        if isinstance(self.control, FakeProcessControl):
            self.control.exit(identity.pid, -signal.SIGKILL)
        else:
            os.kill(identity.pid, signal.SIGKILL)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["real", "fake"])
async def impl(request: pytest.FixtureRequest) -> AsyncIterator[Impl]:
    control = ProcessControl() if request.param == "real" else FakeProcessControl()
    under_test = Impl(str(request.param), control)
    yield under_test
    for identity in control.owned():  # a failed test must not leak children
        if isinstance(control, ProcessControl):
            try:
                os.killpg(identity.pid, signal.SIGKILL)
            except OSError:
                pass
        else:
            control.exit(identity.pid, -signal.SIGKILL)
        with anyio.fail_after(DEADLINE_S):
            await control.wait_exit(identity)


def make_spec(tmp_path: Path, argv: tuple[str, ...] = SLEEPER, **kw: object) -> ServiceSpec:
    fields: dict[str, object] = {
        "name": "svc",
        "argv": argv,
        "cwd": tmp_path,
        "pidfile": tmp_path / "run" / "svc.pid",
        "log_file": tmp_path / "logs" / "svc.log",
        "stop_timeout": 5.0,
    }
    fields.update(kw)
    return ServiceSpec(**fields)


# -- start and watch ----------------------------------------------------------------------


async def test_start_writes_pidfile_and_identity_is_ours(impl: Impl, tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    identity = await impl.control.start(spec)
    assert spec.pidfile.read_text() == f"{identity.pid}\n"
    assert spec.log_file.exists()
    assert identity.cmdline == spec.argv
    assert await impl.control.is_ours(identity)
    assert await impl.control.status(identity) is ProcessStatus.RUNNING
    assert identity in impl.control.owned()


async def test_wait_exit_sees_a_death(impl: Impl, tmp_path: Path) -> None:
    identity = await impl.control.start(make_spec(tmp_path))
    codes: list[int | None] = []

    async def waiter() -> None:
        codes.append(await impl.control.wait_exit(identity))

    with anyio.fail_after(DEADLINE_S):
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.sleep(0)  # let the waiter block first: the exit must wake it
            impl.kill(identity)
    assert codes == [-signal.SIGKILL]
    assert await impl.control.status(identity) is ProcessStatus.EXITED
    assert not await impl.control.is_ours(identity)
    assert identity not in impl.control.owned()
    # A late caller still learns the code.
    assert await impl.control.wait_exit(identity) == -signal.SIGKILL


async def test_wait_exit_of_an_unknown_process_returns_at_once(impl: Impl) -> None:
    stranger = ProcessIdentity(UNKNOWN_PID, 1.0, ("nobody",))
    with anyio.fail_after(DEADLINE_S):
        assert await impl.control.wait_exit(stranger) is None
    assert await impl.control.status(stranger) is ProcessStatus.MISSING


async def test_a_reused_pid_is_not_ours_and_never_stopped(impl: Impl, tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    identity = await impl.control.start(spec)
    # Same PID, another start time: what a recycled PID looks like.
    impostor = ProcessIdentity(identity.pid, identity.create_time + 1000.0, identity.cmdline)
    assert await impl.control.status(impostor) is ProcessStatus.NOT_OURS
    assert not await impl.control.is_ours(impostor)
    with anyio.fail_after(DEADLINE_S):
        assert await impl.control.wait_exit(impostor) is None
    assert (await impl.control.stop(impostor, spec)).outcome is StopOutcome.NOT_OURS
    assert await impl.control.is_ours(identity)  # nothing was signalled


# -- stop -----------------------------------------------------------------------------------


async def test_stop_ends_a_running_process(impl: Impl, tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    identity = await impl.control.start(spec)
    with anyio.fail_after(DEADLINE_S):
        result = await impl.control.stop(identity, spec)
    assert result.outcome is StopOutcome.EXITED
    assert result.exit_code == -signal.SIGTERM
    assert result.killed == 0
    assert await impl.control.status(identity) in (ProcessStatus.EXITED, ProcessStatus.MISSING)
    assert not await impl.control.is_ours(identity)
    again = await impl.control.stop(identity, spec)
    assert again.outcome is StopOutcome.ALREADY_GONE


async def test_stop_of_an_exited_process_is_already_gone_with_its_code(
    impl: Impl, tmp_path: Path
) -> None:
    spec = make_spec(tmp_path)
    identity = await impl.control.start(spec)
    impl.kill(identity)
    with anyio.fail_after(DEADLINE_S):
        assert await impl.control.wait_exit(identity) == -signal.SIGKILL
        result = await impl.control.stop(identity, spec)
    assert result.outcome is StopOutcome.ALREADY_GONE
    assert result.exit_code == -signal.SIGKILL


# -- adopt ----------------------------------------------------------------------------------


async def test_adopt_proves_our_own_process_by_pidfile(impl: Impl, tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    started = await impl.control.start(spec)
    adopted = await impl.control.adopt(spec)
    assert adopted.ok and adopted.reason is None
    assert adopted.identity is not None
    assert (adopted.identity.pid, adopted.identity.create_time) == (
        started.pid,
        started.create_time,
    )
    assert await impl.control.is_ours(adopted.identity)


@pytest.mark.parametrize(
    "content", [None, "", "abc\n", "-5\n", "0\n", "1" * 100, "\x00\xff", f"{UNKNOWN_PID}\n"]
)
async def test_adopt_of_garbage_or_unknown_pid_is_process_missing(
    impl: Impl, tmp_path: Path, content: str | None
) -> None:
    spec = make_spec(tmp_path)
    if content is not None:
        spec.pidfile.parent.mkdir()
        spec.pidfile.write_text(content)
    result = await impl.control.adopt(spec)
    assert result.identity is None
    assert result.reason == PROCESS_MISSING
    assert result.detail


async def test_adopt_of_a_process_running_another_program_is_process_missing(
    impl: Impl, tmp_path: Path
) -> None:
    spec = make_spec(tmp_path)
    await impl.control.start(spec)
    other = make_spec(tmp_path, (sys.executable, "-S", "-c", "print('another program')"))
    result = await impl.control.adopt(other)
    assert result.reason == PROCESS_MISSING
    assert "another program" in result.detail


async def test_adopt_after_the_process_died_is_process_missing(impl: Impl, tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    identity = await impl.control.start(spec)
    impl.kill(identity)
    with anyio.fail_after(DEADLINE_S):
        await impl.control.wait_exit(identity)  # reaped: the PID is free again
    assert (await impl.control.adopt(spec)).reason == PROCESS_MISSING


# -- spawn errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "cwd", "reason"),
    [
        (("{tmp}/no-such-program",), "{tmp}", "exec_not_found"),
        (SLEEPER, "{tmp}/no-such-dir", "cwd_not_found"),
        ((), "{tmp}", "invalid_argv"),
    ],
)
async def test_start_failure_raises_spawn_error_and_starts_nothing(
    impl: Impl, tmp_path: Path, argv: tuple[str, ...], cwd: str, reason: str
) -> None:
    spec = make_spec(
        tmp_path,
        tuple(a.format(tmp=tmp_path) for a in argv),
        cwd=Path(cwd.format(tmp=tmp_path)),
    )
    with pytest.raises(SpawnError) as caught:
        await impl.control.start(spec)
    assert caught.value.reason == reason
    assert not spec.pidfile.exists()
    assert impl.control.owned() == []


# -- clean_stale and rotate_logs ------------------------------------------------------------


async def test_clean_stale_removes_a_stale_pidfile_and_lock_file(
    impl: Impl, tmp_path: Path
) -> None:
    lock = tmp_path / "run" / "svc.lock"
    keep = tmp_path / "run" / "unrelated.lock"
    spec = make_spec(tmp_path, lock_files=(lock,))
    spec.pidfile.parent.mkdir()
    spec.pidfile.write_text(f"{UNKNOWN_PID}\n")
    lock.write_text("stale\n")
    keep.write_text("not named by the spec\n")
    removed = await impl.control.clean_stale(spec)
    assert removed == (lock, spec.pidfile)
    assert not lock.exists() and not spec.pidfile.exists()
    assert keep.exists()
    assert await impl.control.clean_stale(spec) == ()


async def test_clean_stale_keeps_the_files_of_a_running_service(impl: Impl, tmp_path: Path) -> None:
    lock = tmp_path / "run" / "svc.lock"
    spec = make_spec(tmp_path, lock_files=(lock,))
    identity = await impl.control.start(spec)
    lock.write_text("held\n")
    assert await impl.control.clean_stale(spec) == ()
    assert lock.exists() and spec.pidfile.exists()
    impl.kill(identity)
    with anyio.fail_after(DEADLINE_S):
        await impl.control.wait_exit(identity)
    assert await impl.control.clean_stale(spec) == (lock, spec.pidfile)


async def test_rotate_logs_leaves_a_small_log_alone(impl: Impl, tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    await impl.control.start(spec)
    assert await impl.control.rotate_logs(spec) is False


# -- the fake's own controls (fake only) ----------------------------------------------------


async def test_fake_set_failing_crash_on_start_and_ignore_stop(tmp_path: Path) -> None:
    fake = FakeProcessControl()
    spec = make_spec(tmp_path, ("feeder-binary",))
    fake.set_failing("feeder-binary")
    with pytest.raises(SpawnError) as caught:
        await fake.start(spec)
    assert caught.value.reason == "exec_not_found"
    assert fake.started == []
    fake.clear_failing("feeder-binary")

    fake.set_crash_on_start("svc", 3)
    crashed = await fake.start(spec)
    assert await fake.wait_exit(crashed) == 3
    assert not fake.running("svc")
    fake.set_crash_on_start("svc", None)

    fake.set_ignore_stop("svc")
    identity = await fake.start(spec)
    assert fake.running("svc") and fake.current("svc") == identity
    result = await fake.stop(identity, spec)
    assert (result.outcome, result.exit_code, result.killed) == (StopOutcome.KILLED, -9, 1)
    assert fake.started == ["svc", "svc"]
    assert fake.stops == ["svc"]
    assert identity.pid > crashed.pid >= FAKE_PID_BASE
    with pytest.raises(LookupError):
        fake.exit("svc")


async def test_fake_reuse_pid_gives_a_dead_pid_to_another_program(tmp_path: Path) -> None:
    """What a stale pidfile meets once the kernel has recycled its PID (issue 20's sim)."""
    fake = FakeProcessControl()
    spec = make_spec(tmp_path)
    identity = await fake.start(spec)
    with pytest.raises(LookupError):
        fake.reuse_pid(identity.pid)  # still ours, still running
    fake.exit(identity.pid)
    other = fake.reuse_pid(identity.pid)
    assert other.pid == identity.pid and other.cmdline != identity.cmdline
    assert spec.pidfile.read_text() == f"{identity.pid}\n"  # the stale pidfile names it
    assert await fake.status(identity) is ProcessStatus.NOT_OURS
    assert (await fake.stop(identity, spec)).outcome is StopOutcome.NOT_OURS
    adopted = await fake.adopt(spec)
    assert adopted.identity is None and "another program" in adopted.detail
    assert fake.alive(other.pid) and not fake.running("svc")
    assert fake.owned() == []  # not our child
