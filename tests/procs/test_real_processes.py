"""autoheal.procs against real processes, real files and the real kernel (no mocks).

Children are ``sys.executable -S -c ...`` scripts and ``sleep``; every wait is on
a condition with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import anyio
import psutil
import pytest

from autoheal.procs import (
    PIDFD_SUPPORTED,
    PROCESS_MISSING,
    ProcessControl,
    ProcessIdentity,
    ProcessStatus,
    ServiceSpec,
    SpawnError,
    StopOutcome,
    cmdline_matches,
)
from autoheal.procs.identity import ParentMap, collect_descendants

PY = (sys.executable, "-S", "-c")
SLEEP = shutil.which("sleep") or "/bin/sleep"
DEADLINE_S = 10.0

IGNORE_TERM = """
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(sys.argv[1], "w").close()
time.sleep(60)
"""

TREE = f"""
import json, os, subprocess, sys, time
ready, pids = sys.argv[1], sys.argv[2]
same_group = subprocess.Popen([{SLEEP!r}, "60"])
escaped = subprocess.Popen([sys.executable, "-S", "-c", {IGNORE_TERM!r}, ready],
                           start_new_session=True)
while not os.path.exists(ready):
    time.sleep(0.002)
with open(pids + ".tmp", "w") as fh:
    json.dump([same_group.pid, escaped.pid], fh)
os.replace(pids + ".tmp", pids)
time.sleep(60)
"""

SENTINEL = """
import signal, sys, time
path = sys.argv[1]
def record(signum, frame):
    with open(path, "a") as fh:
        fh.write(f"{signum}\\n")
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2,
            signal.SIGCONT):
    signal.signal(sig, record)
open(path + ".ready", "w").close()
while True:
    time.sleep(60)
"""


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make_spec(
    tmp_path: Path, argv: tuple[str, ...], name: str = "svc", **kw: object
) -> ServiceSpec:
    fields: dict[str, object] = {
        "name": name,
        "argv": argv,
        "cwd": tmp_path,
        "pidfile": tmp_path / "run" / f"{name}.pid",
        "log_file": tmp_path / "logs" / f"{name}.log",
        "stop_timeout": 5.0,
    }
    fields.update(kw)
    return ServiceSpec(**fields)  # type: ignore[arg-type]


async def wait_until(predicate: Callable[[], bool], what: str) -> None:
    """Poll a condition until it holds, failing after a generous deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await anyio.sleep(0.005)


def gone(proc: psutil.Process) -> bool:
    """Exited (reaped or zombie) or the PID now names another process."""
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def alive_and_unsignalled(popen: subprocess.Popen[bytes]) -> bool:
    status = psutil.Process(popen.pid).status()
    return popen.poll() is None and status not in (psutil.STATUS_STOPPED, psutil.STATUS_ZOMBIE)


@pytest.fixture
async def pc() -> AsyncIterator[ProcessControl]:
    control = ProcessControl()
    yield control
    for identity in control.owned():  # a failed test must not leak children
        try:
            os.killpg(identity.pid, signal.SIGKILL)
        except OSError:
            pass
        with anyio.fail_after(DEADLINE_S):
            await control.wait_exit(identity)


@pytest.fixture
def unrelated_sleep() -> Iterator[subprocess.Popen[bytes]]:
    """A ``sleep`` the test starts itself: the stand-in for someone else's program."""
    popen = subprocess.Popen([SLEEP, "60"])
    yield popen
    popen.kill()
    popen.wait()


# -- start ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_start_writes_pidfile_and_captures_log(pc: ProcessControl, tmp_path: Path) -> None:
    code = (
        "import os, sys\n"
        "print('out-line', os.getcwd(), os.environ['AUTOHEAL_T'], flush=True)\n"
        "print('err-line', file=sys.stderr, flush=True)\n"
        "print('stdin', repr(sys.stdin.read()), 'own-session', os.getsid(0) == os.getpid())\n"
        "sys.exit(3)\n"
    )
    spec = make_spec(tmp_path, (*PY, code), env={"AUTOHEAL_T": "marker"})
    identity = await pc.start(spec)

    assert spec.pidfile.read_text() == f"{identity.pid}\n"
    assert identity.create_time > 0
    assert identity.cmdline[-1] == code
    with anyio.fail_after(DEADLINE_S):
        assert await pc.wait_exit(identity) == 3
    log = spec.log_file.read_text()
    assert f"out-line {tmp_path} marker" in log
    assert "err-line" in log
    assert "stdin '' own-session True" in log
    assert pc.owned() == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (("/nonexistent/autoheal-prog",), "exec_not_found"),
        (("autoheal-no-such-program-on-path",), "exec_not_found"),
        ((), "invalid_argv"),
        (("sl\x00eep",), "invalid_spec"),
    ],
)
async def test_start_spawn_error(
    pc: ProcessControl, tmp_path: Path, argv: tuple[str, ...], reason: str
) -> None:
    spec = make_spec(tmp_path, argv)
    with pytest.raises(SpawnError) as info:
        await pc.start(spec)
    assert info.value.reason == reason
    assert not spec.pidfile.exists()
    assert pc.owned() == []


@pytest.mark.anyio
async def test_start_spawn_error_missing_cwd_and_not_executable(
    pc: ProcessControl, tmp_path: Path
) -> None:
    with pytest.raises(SpawnError) as info:
        await pc.start(make_spec(tmp_path, (SLEEP, "1"), cwd=tmp_path / "nowhere"))
    assert info.value.reason == "cwd_not_found"

    script = tmp_path / "not-executable.sh"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(SpawnError) as info:
        await pc.start(make_spec(tmp_path, (str(script),)))
    assert info.value.reason == "permission_denied"


# -- wait_exit -----------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("use_pidfd", [True, False], ids=["pidfd", "polling"])
async def test_wait_exit_notices_sigkill_and_reaps(tmp_path: Path, use_pidfd: bool) -> None:
    if use_pidfd and not PIDFD_SUPPORTED:
        pytest.skip("no pidfd on this kernel")
    control = ProcessControl(use_pidfd=use_pidfd)
    identity = await control.start(make_spec(tmp_path, (SLEEP, "60")))
    codes: list[int | None] = []

    async def waiter() -> None:
        codes.append(await control.wait_exit(identity))

    with anyio.fail_after(DEADLINE_S):
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.sleep(0)
            os.kill(identity.pid, signal.SIGKILL)

    assert codes == [-signal.SIGKILL]
    assert await control.status(identity) is ProcessStatus.EXITED
    assert control.owned() == []
    # Reaped: no zombie of ours is left under that PID.
    assert not psutil.pid_exists(identity.pid) or psutil.Process(identity.pid).ppid() != os.getpid()
    assert await control.wait_exit(identity) == -signal.SIGKILL  # late callers get the code


@pytest.mark.anyio
async def test_wait_exit_adopted_process(
    pc: ProcessControl, tmp_path: Path, unrelated_sleep: subprocess.Popen[bytes]
) -> None:
    spec = make_spec(tmp_path, (SLEEP, "60"))
    spec.pidfile.parent.mkdir()
    spec.pidfile.write_text(f"{unrelated_sleep.pid}\n")
    adopted = await pc.adopt(spec)
    assert adopted.identity is not None

    unrelated_sleep.kill()  # exits, stays a zombie of the test until reaped below
    with anyio.fail_after(DEADLINE_S):
        assert await pc.wait_exit(adopted.identity) is None
    unrelated_sleep.wait()


# -- stop ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_stop_with_term(pc: ProcessControl, tmp_path: Path) -> None:
    spec = make_spec(tmp_path, (*PY, "import time; time.sleep(60)"))
    identity = await pc.start(spec)
    with anyio.fail_after(DEADLINE_S):
        result = await pc.stop(identity, spec)
    assert result.outcome is StopOutcome.EXITED
    assert result.exit_code == -signal.SIGTERM
    assert result.killed == 0
    assert await pc.status(identity) is ProcessStatus.EXITED


@pytest.mark.anyio
@pytest.mark.slow
async def test_stop_escalates_to_sigkill_for_term_ignorer(
    pc: ProcessControl, tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    spec = make_spec(tmp_path, (*PY, IGNORE_TERM, str(ready)), stop_timeout=0.2)
    identity = await pc.start(spec)
    await wait_until(ready.exists, "the SIGTERM handler")
    with anyio.fail_after(DEADLINE_S):
        result = await pc.stop(identity, spec)
    assert result.outcome is StopOutcome.KILLED
    assert result.exit_code == -signal.SIGKILL
    assert result.killed >= 1
    assert result.elapsed_s >= 0.2


@pytest.mark.anyio
@pytest.mark.slow
async def test_one_shared_proc_walk_finds_the_same_tree_as_psutil(
    pc: ProcessControl, tmp_path: Path
) -> None:
    # issue 14: the stops of a shutdown share one /proc walk (ParentMap); what it finds
    # must be exactly what psutil's walk of every process finds.
    ready, pids_file = tmp_path / "ready", tmp_path / "pids.json"
    spec = make_spec(tmp_path, (*PY, TREE, str(ready), str(pids_file)), stop_timeout=0.3)
    identity = await pc.start(spec)
    await wait_until(pids_file.exists, "the grandchildren")
    main = psutil.Process(identity.pid)
    tree = ParentMap(max_age_s=60.0)
    shared = {p.pid for p in collect_descendants(main, tree)}
    assert shared == {p.pid for p in collect_descendants(main)}
    assert set(json.loads(pids_file.read_text())) <= shared
    with anyio.fail_after(DEADLINE_S):
        await pc.stop(identity, spec)


@pytest.mark.anyio
@pytest.mark.slow
async def test_stop_kills_the_whole_tree(pc: ProcessControl, tmp_path: Path) -> None:
    ready, pids_file = tmp_path / "ready", tmp_path / "pids.json"
    spec = make_spec(tmp_path, (*PY, TREE, str(ready), str(pids_file)), stop_timeout=0.3)
    identity = await pc.start(spec)
    await wait_until(pids_file.exists, "the grandchildren")
    grandchildren = [psutil.Process(pid) for pid in json.loads(pids_file.read_text())]
    assert all(not gone(proc) for proc in grandchildren)

    with anyio.fail_after(DEADLINE_S):
        result = await pc.stop(identity, spec)
    # The parent dies of SIGTERM; the grandchild that left the group and ignores
    # SIGTERM is found through the tree collected before signalling, and killed.
    assert result.outcome is StopOutcome.EXITED
    assert result.exit_code == -signal.SIGTERM
    assert result.killed >= 1
    await wait_until(lambda: all(gone(proc) for proc in grandchildren), "grandchildren gone")


@pytest.mark.anyio
async def test_stop_wakes_a_stopped_process_so_it_handles_term(
    pc: ProcessControl, tmp_path: Path
) -> None:
    spec = make_spec(tmp_path, (SLEEP, "60"))
    identity = await pc.start(spec)
    os.kill(identity.pid, signal.SIGSTOP)  # hung, as in the SIGSTOP drill
    await wait_until(
        lambda: psutil.Process(identity.pid).status() == psutil.STATUS_STOPPED, "stopped"
    )
    assert await pc.status(identity) is ProcessStatus.RUNNING  # alive, merely hung
    with anyio.fail_after(DEADLINE_S):  # far below stop_timeout: no SIGKILL needed
        result = await pc.stop(identity, spec)
    assert result.outcome is StopOutcome.EXITED
    assert result.exit_code == -signal.SIGTERM


@pytest.mark.anyio
async def test_stop_refuses_a_reused_pid(
    pc: ProcessControl, tmp_path: Path, unrelated_sleep: subprocess.Popen[bytes]
) -> None:
    real = psutil.Process(unrelated_sleep.pid).create_time()
    stale = ProcessIdentity(unrelated_sleep.pid, real - 100.0, (SLEEP, "60"))
    result = await pc.stop(stale, make_spec(tmp_path, (SLEEP, "60")))
    assert result.outcome is StopOutcome.NOT_OURS
    assert not await pc.is_ours(stale)
    assert alive_and_unsignalled(unrelated_sleep)


@pytest.mark.anyio
async def test_stop_already_gone_reaps_and_reports_code(pc: ProcessControl, tmp_path: Path) -> None:
    spec = make_spec(tmp_path, (*PY, "raise SystemExit(7)"))
    identity = await pc.start(spec)
    # Not reaped yet: it lingers as our zombie until stop() finds it gone.
    await wait_until(lambda: psutil.Process(identity.pid).status() == psutil.STATUS_ZOMBIE, "exit")
    result = await pc.stop(identity, spec)
    assert result.outcome is StopOutcome.ALREADY_GONE
    assert result.exit_code == 7
    assert pc.owned() == []


# -- adopt ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_adopt_never_signals_a_pid_that_belongs_to_another_program(
    pc: ProcessControl, tmp_path: Path, unrelated_sleep: subprocess.Popen[bytes]
) -> None:
    """Issue 3, Must show: a pidfile pointing at an unrelated live ``sleep``."""
    spec = make_spec(tmp_path, (*PY, "import time; time.sleep(60)"), name="feeder")
    spec.pidfile.parent.mkdir()
    spec.pidfile.write_text(f"{unrelated_sleep.pid}\n")

    result = await pc.adopt(spec)
    assert not result.ok
    assert result.reason == PROCESS_MISSING
    assert result.detail == f"pid {unrelated_sleep.pid} belongs to another program"
    # What the daemon does next: clean the stale pidfile and start its own feeder.
    assert await pc.clean_stale(spec) == (spec.pidfile,)
    identity = await pc.start(spec)
    await pc.stop(identity, spec)
    assert alive_and_unsignalled(unrelated_sleep)


@pytest.mark.anyio
async def test_adopt_rejected_program_receives_no_signal(
    pc: ProcessControl, tmp_path: Path
) -> None:
    record = tmp_path / "signals"
    other = subprocess.Popen([*PY, SENTINEL, str(record)])
    try:
        await wait_until(Path(f"{record}.ready").exists, "the sentinel")
        lock = tmp_path / "x.lock"
        spec = make_spec(tmp_path, (*PY, "import time; time.sleep(60)"), lock_files=(lock,))
        spec.pidfile.parent.mkdir()
        spec.pidfile.write_text(f"{other.pid}\n")
        assert (await pc.adopt(spec)).reason == PROCESS_MISSING
        await pc.clean_stale(spec)
        assert other.poll() is None
        assert not record.exists()
    finally:
        other.kill()
        other.wait()


@pytest.mark.anyio
async def test_adopt_proves_a_service_started_by_a_previous_daemon(tmp_path: Path) -> None:
    previous, current = ProcessControl(), ProcessControl()
    spec = make_spec(tmp_path, (*PY, "import time; time.sleep(60)"))
    started = await previous.start(spec)
    try:
        adopted = await current.adopt(spec)
        assert adopted.ok and adopted.identity is not None
        assert adopted.identity.pid == started.pid
        assert adopted.identity.create_time == started.create_time
        assert await current.is_ours(adopted.identity)

        with anyio.fail_after(DEADLINE_S):
            result = await current.stop(adopted.identity, spec)
        assert result.outcome is StopOutcome.EXITED
        assert result.exit_code is None  # not our child: only its parent learns the code
    finally:
        with anyio.fail_after(DEADLINE_S):
            if await previous.status(started) is ProcessStatus.RUNNING:
                os.kill(started.pid, signal.SIGKILL)
            assert await previous.wait_exit(started) == -signal.SIGTERM


@pytest.mark.anyio
async def test_adopt_reports_missing_for_bad_pidfiles(pc: ProcessControl, tmp_path: Path) -> None:
    spec = make_spec(tmp_path, (SLEEP, "60"))
    assert (await pc.adopt(spec)).detail.startswith("no valid pidfile")
    spec.pidfile.parent.mkdir()
    for garbage in ("", "abc\n", "-5\n", "0\n", "1" * 100, "\x00\xff"):
        spec.pidfile.write_text(garbage)
        result = await pc.adopt(spec)
        assert result.reason == PROCESS_MISSING, garbage
    finished = subprocess.Popen([SLEEP, "0"])
    finished.wait()
    spec.pidfile.write_text(f"{finished.pid}\n")
    assert (await pc.adopt(spec)).reason == PROCESS_MISSING
    spec.pidfile.write_text(f"{os.getpid()}\n")
    assert (await pc.adopt(spec)).detail == f"pid {os.getpid()} is the supervisor itself"


@pytest.mark.anyio
async def test_adopt_with_expected_cmdline(
    pc: ProcessControl, tmp_path: Path, unrelated_sleep: subprocess.Popen[bytes]
) -> None:
    spec = make_spec(tmp_path, ("sleep", "60"))  # bare name: resolved through PATH
    spec.pidfile.parent.mkdir()
    spec.pidfile.write_text(f"{unrelated_sleep.pid}\n")
    assert (await pc.adopt(spec)).ok
    assert not (await pc.adopt(spec, ("sleep", "61"))).ok


RESOLVED_PY = os.path.realpath(sys.executable)


@pytest.mark.parametrize(
    ("expected", "actual", "ok"),
    [
        (("sleep", "60"), ("sleep", "60"), True),
        (("sleep", "60"), (SLEEP, "60"), True),
        ((sys.executable, "-m", "demo.feeder"), (RESOLVED_PY, "-m", "demo.feeder"), True),
        (("./feeder.py", "--x"), ("/usr/bin/python3", "./feeder.py", "--x"), True),
        (("./feeder.py", "--x"), ("/usr/bin/python3", "-u", "./feeder.py", "--x"), True),
        (("./feeder.py",), ("a", "b", "c", "./feeder.py"), False),
        ((sys.executable, "feeder.py"), (sys.executable, "trader.py"), False),
        (("sleep", "60"), (sys.executable, "feeder.py"), False),
        ((sys.executable, "x"), (SLEEP, "x"), False),
        (("sleep", "60"), ("sleep",), False),
        (("sleep", "60"), (), False),
        ((), ("sleep", "60"), False),
    ],
)
def test_cmdline_matches(
    tmp_path: Path, expected: tuple[str, ...], actual: tuple[str, ...], ok: bool
) -> None:
    assert cmdline_matches(expected, actual, tmp_path) is ok


# -- status --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_status_vocabulary(
    pc: ProcessControl, tmp_path: Path, unrelated_sleep: subprocess.Popen[bytes]
) -> None:
    identity = await pc.start(make_spec(tmp_path, (SLEEP, "60")))
    assert await pc.status(identity) is ProcessStatus.RUNNING
    assert await pc.is_ours(identity)
    os.kill(identity.pid, signal.SIGKILL)
    await pc.wait_exit(identity)
    assert await pc.status(identity) is ProcessStatus.EXITED
    assert not await pc.is_ours(identity)

    other = psutil.Process(unrelated_sleep.pid)
    reused = ProcessIdentity(other.pid, other.create_time() - 50.0, ())
    assert await pc.status(reused) is ProcessStatus.NOT_OURS
    unrelated_sleep.kill()
    adopted_like = ProcessIdentity(other.pid, other.create_time(), ())
    await wait_until(lambda: other.status() == psutil.STATUS_ZOMBIE, "a zombie")
    assert await pc.status(adopted_like) is ProcessStatus.ZOMBIE
    unrelated_sleep.wait()
    assert await pc.status(adopted_like) is ProcessStatus.MISSING


# -- stale files ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_clean_stale_removes_only_what_the_spec_names(
    pc: ProcessControl, tmp_path: Path
) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("keep")
    link, plain, a_dir = tmp_path / "link.lock", tmp_path / "svc.lock", tmp_path / "dir.lock"
    link.symlink_to(precious)
    plain.write_text("12345678\n")  # a PID that is not a process of ours
    a_dir.mkdir()
    neighbour = tmp_path / "other.lock"
    neighbour.write_text("")
    spec = make_spec(tmp_path, (SLEEP, "60"), lock_files=(plain, link, a_dir, tmp_path / "no.lock"))
    spec.pidfile.parent.mkdir()
    spec.pidfile.write_text("999999999\n")

    removed = await pc.clean_stale(spec)

    assert removed == (plain, link, spec.pidfile)
    assert precious.read_text() == "keep"
    assert a_dir.is_dir() and neighbour.exists()
    assert await pc.clean_stale(spec) == ()


@pytest.mark.anyio
async def test_clean_stale_keeps_files_of_a_live_service(
    pc: ProcessControl, tmp_path: Path
) -> None:
    lock = tmp_path / "svc.lock"
    spec = make_spec(tmp_path, (SLEEP, "60"), lock_files=(lock,))
    identity = await pc.start(spec)
    lock.write_text("")
    assert await pc.clean_stale(spec) == ()  # our own child runs
    assert await ProcessControl().clean_stale(spec) == ()  # a new daemon: the pidfile proves it
    await pc.stop(identity, spec)
    assert await pc.clean_stale(spec) == (lock, spec.pidfile)


@pytest.mark.anyio
async def test_clean_stale_keeps_locks_someone_holds(pc: ProcessControl, tmp_path: Path) -> None:
    flocked, posix_locked = tmp_path / "flock.lock", tmp_path / "posix.lock"
    flocked.write_text("")
    posix_locked.write_text("")
    ready = tmp_path / "ready"
    holder = subprocess.Popen(
        [
            *PY,
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR)\n"
            "fcntl.lockf(fd, fcntl.LOCK_EX)\n"
            "open(sys.argv[2], 'w').close()\n"
            "time.sleep(60)\n",
            str(posix_locked),
            str(ready),
        ]
    )
    try:
        with open(flocked, "rb") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)  # another open file description: it conflicts
            await wait_until(ready.exists, "the POSIX lock holder")
            spec = make_spec(tmp_path, (SLEEP, "60"), lock_files=(flocked, posix_locked))
            assert await pc.clean_stale(spec) == ()
        holder.kill()
        holder.wait()
        assert await pc.clean_stale(spec) == (flocked, posix_locked)
    finally:
        holder.kill()
        holder.wait()


# -- logs ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_log_rotation_at_start(pc: ProcessControl, tmp_path: Path) -> None:
    spec = make_spec(tmp_path, (*PY, "print('new run')"), log_max_bytes=100, log_backups=2)
    log = spec.log_file
    log.parent.mkdir()
    log.write_text("old" * 100)
    Path(f"{log}.1").write_text("older")
    Path(f"{log}.2").write_text("oldest")

    with anyio.fail_after(DEADLINE_S):
        await pc.wait_exit(await pc.start(spec))

    assert log.read_text() == "new run\n"
    assert Path(f"{log}.1").read_text() == "old" * 100
    assert Path(f"{log}.2").read_text() == "older"
    assert not Path(f"{log}.3").exists()

    with anyio.fail_after(DEADLINE_S):  # under the limit: appended, not rotated
        await pc.wait_exit(await pc.start(spec))
    assert log.read_text() == "new run\nnew run\n"


@pytest.mark.anyio
async def test_rotate_logs_while_the_child_writes(pc: ProcessControl, tmp_path: Path) -> None:
    go = tmp_path / "go"
    code = (
        "import os, sys, time\n"
        "print('x' * 50, flush=True)\n"
        "while not os.path.exists(sys.argv[1]):\n"
        "    time.sleep(0.002)\n"
        "print('after', flush=True)\n"
    )
    spec = make_spec(tmp_path, (*PY, code, str(go)), log_max_bytes=10, log_backups=1)
    identity = await pc.start(spec)
    await wait_until(lambda: spec.log_file.stat().st_size > 10, "the first line")

    assert await pc.rotate_logs(spec)
    go.touch()
    with anyio.fail_after(DEADLINE_S):
        assert await pc.wait_exit(identity) == 0
    assert Path(f"{spec.log_file}.1").read_text() == "x" * 50 + "\n"
    # O_APPEND: the child's next write lands at the start of the truncated file, no hole.
    assert spec.log_file.read_bytes() == b"after\n"
    assert not await pc.rotate_logs(spec)
