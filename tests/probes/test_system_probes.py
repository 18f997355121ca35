"""The exec, tcp and resource probes against real things: child processes, loopback
sockets on port 0, a real process tree. Every wait is bounded."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import anyio
import psutil
import pytest

from autoheal.core import reasons as R
from autoheal.core.resources import ResourceLimits
from autoheal.probes import ProbeRunner
from autoheal.probes.exec import ExecProbe, first_line
from autoheal.probes.proctree import ProcessTree
from autoheal.probes.resource import ResourceProbe
from autoheal.probes.tcp import TcpProbe

pytestmark = [pytest.mark.timeout(60), pytest.mark.slow]

PY = sys.executable


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _py(code: str) -> list[str]:
    return [PY, "-c", code]


# --------------------------------------------------------------------------- exec


@pytest.mark.anyio
async def test_exec_exit_zero_is_healthy() -> None:
    r = await ExecProbe(_py("pass"), 10.0, env_remove=()).check()
    assert (r.ok, r.reason, r.threshold) == (True, "", 10.0)
    assert r.value is not None and r.value > 0


@pytest.mark.anyio
async def test_exec_nonzero_exit_fails_with_code_and_first_stderr_line() -> None:
    said = "'\\n  disk \\x1b[31mfull\\x07 on /var\\nmore\\n'"
    code = f"import sys; sys.stderr.write({said}); sys.exit(3)"
    r = await ExecProbe(_py(code), 10.0, env_remove=()).check()
    assert (r.ok, r.reason, r.value) == (False, R.EXEC_FAILED, 3.0)
    # The escape and bell are gone: nothing a terminal would obey reaches a log line.
    assert r.detail == "exit code 3: disk [31mfull on /var"


@pytest.mark.anyio
async def test_exec_a_program_that_cannot_start_fails(tmp_path: Path) -> None:
    r = await ExecProbe([str(tmp_path / "missing")], 5.0, env_remove=()).check()
    assert (r.ok, r.reason) == (False, R.EXEC_FAILED)
    assert "cannot start" in r.detail


@pytest.mark.anyio
async def test_exec_large_stderr_never_blocks_the_child() -> None:
    code = "import sys; sys.stderr.write('x' * 1_000_000); sys.exit(1)"
    r = await ExecProbe(_py(code), 20.0, env_remove=()).check()
    assert (r.ok, r.reason) == (False, R.EXEC_FAILED)
    assert len(r.detail) < 300


@pytest.mark.anyio
async def test_exec_timeout_kills_the_process_group_and_reaps(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    # The command starts a grandchild in its group; both must die at the timeout.
    code = (
        "import os, subprocess, sys, time\n"
        f"g = subprocess.Popen([{PY!r}, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{g.pid}}')\n"
        "time.sleep(60)\n"
    )
    probe = ExecProbe(_py(code), 1.5, env_remove=())
    r = await probe.check()
    assert (r.ok, r.reason) == (False, R.EXEC_TIMEOUT)
    child, grandchild = (int(p) for p in pids.read_text().split())
    with anyio.fail_after(10):
        while psutil.pid_exists(grandchild) and psutil.Process(grandchild).status() != "zombie":
            await anyio.sleep(0.05)
    # Our own child is reaped: no zombie of it is left behind.
    assert not psutil.pid_exists(child) or psutil.Process(child).ppid() != os.getpid()


@pytest.mark.anyio
async def test_exec_runner_timeout_says_exec_timeout_and_reaps() -> None:
    probe = ExecProbe(_py("import time; time.sleep(60)"), 30.0, env_remove=())
    before = {p.pid for p in psutil.Process().children()}
    got = []
    runner = ProbeRunner(probe, got.append, interval=60.0, timeout=0.5)
    r = await runner.check_once()
    assert (r.ok, r.reason) == (False, R.EXEC_TIMEOUT)
    left = {p.pid for p in psutil.Process().children()} - before
    assert not left


@pytest.mark.anyio
async def test_exec_child_never_sees_the_daemons_secrets(tmp_path: Path) -> None:
    out = tmp_path / "env"
    code = f"import os; open({str(out)!r}, 'w').write(repr(sorted(os.environ)))"
    environ = {"PATH": os.environ["PATH"], "HOOK_TOKEN": "s3cret", "KEEP": "1"}
    r = await ExecProbe(_py(code), 10.0, env_remove={"HOOK_TOKEN"}, environ=environ).check()
    assert r.ok
    names = out.read_text()
    assert "HOOK_TOKEN" not in names and "'KEEP'" in names


def test_first_line_skips_blank_lines_and_caps() -> None:
    assert first_line(b"\n \n\tboom\x00\x1b: \xff\n") == "boom: \ufffd"
    assert first_line(b"a" * 500, limit=10) == "a" * 10
    assert first_line(b"") == ""


# --------------------------------------------------------------------------- tcp


@pytest.mark.anyio
async def test_tcp_connect_to_a_listener_is_ok_with_connect_time() -> None:
    async with await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0) as lst:
        port = lst.extra(anyio.abc.SocketAttribute.local_port)
        r = await TcpProbe("127.0.0.1", port, 5.0).check()
    assert (r.ok, r.reason, r.threshold) == (True, "", 5.0)
    assert r.value is not None and 0 <= r.value < 5.0


@pytest.mark.anyio
async def test_tcp_closed_port_is_conn_refused() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    r = await TcpProbe("127.0.0.1", port, 5.0).check()
    assert (r.ok, r.reason) == (False, R.CONN_REFUSED)
    assert f"127.0.0.1:{port}" in r.detail


@pytest.mark.anyio
async def test_tcp_full_backlog_is_conn_timeout() -> None:
    # A listener that never accepts, with its backlog filled: the kernel drops new SYNs.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):
            c = socket.socket()
            c.setblocking(False)
            try:
                c.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            fillers.append(c)
        r = await TcpProbe("127.0.0.1", port, 0.5).check()
    finally:
        for c in fillers:
            c.close()
        srv.close()
    assert (r.ok, r.reason) == (False, R.CONN_TIMEOUT)


# --------------------------------------------------------------------------- resource

GROW = """
import sys, time
blocks = []
open(sys.argv[1], 'w').write('up')
while True:
    if len(blocks) < 60:
        blocks.append(bytearray(1024 * 1024))  # touched: zero pages are counted once written
        for i in range(0, len(blocks[-1]), 4096):
            blocks[-1][i] = 1
    time.sleep(0.01)
"""


async def _wait_file(path: Path) -> None:
    with anyio.fail_after(20):
        while not path.exists():
            await anyio.sleep(0.02)


@pytest.mark.anyio
async def test_resource_rss_of_a_growing_tree_crosses_its_limit(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    proc = await anyio.open_process([PY, "-c", GROW, str(ready)])
    try:
        await _wait_file(ready)
        probe = ResourceProbe(lambda: proc.pid, ResourceLimits(max_rss=40 * 1024 * 1024))
        with anyio.fail_after(30):
            while (r := await probe.check()).ok:
                await anyio.sleep(0.05)
        assert (r.reason, r.threshold) == (R.RSS_HIGH, 40 * 1024 * 1024)
        assert r.value is not None and r.value > r.threshold
        assert "rss" in r.detail
    finally:
        proc.kill()
        await proc.aclose()  # reaped, and its pipes closed (else a ResourceWarning later)


@pytest.mark.anyio
async def test_resource_counts_the_whole_tree_threads_and_fds(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    code = (
        "import subprocess, sys, threading, time\n"
        f"c = subprocess.Popen([{PY!r}, '-c', 'import time; time.sleep(60)'])\n"
        "for _ in range(5): threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
        "open(sys.argv[1], 'w').write(str(c.pid))\n"
        "time.sleep(60)\n"
    )
    proc = await anyio.open_process([PY, "-c", code, str(ready)])
    try:
        await _wait_file(ready)
        limits = ResourceLimits(max_threads=3, max_fds=100_000)
        r = await ResourceProbe(lambda: proc.pid, limits).check()
        assert (r.ok, r.reason, r.threshold) == (False, R.THREADS_HIGH, 3.0)
        assert r.value is not None and r.value >= 7  # 6 in the parent, 1 in the child
        assert "(2 proc)" in r.detail
        ok = await ResourceProbe(lambda: proc.pid, ResourceLimits(max_fds=100_000)).check()
        assert ok.ok and ok.value is not None and ok.value >= 6  # 3 std each at least
    finally:
        for child in psutil.Process(proc.pid).children(recursive=True):
            child.kill()
        proc.kill()
        await proc.aclose()  # reaped, and its pipes closed (else a ResourceWarning later)


@pytest.mark.anyio
async def test_resource_cpu_is_judged_from_the_second_check_on() -> None:
    proc = await anyio.open_process([PY, "-c", "while True: pass"])
    try:
        # The daemon's clock (anyio's) can only be read on the event loop.
        limits = ResourceLimits(max_cpu_percent=1.0)
        probe = ResourceProbe(lambda: proc.pid, limits, clock=anyio.current_time)
        first = await probe.check()
        assert first.ok  # one sample: no CPU % yet, and an unknown is no evidence
        with anyio.fail_after(20):
            while (r := await probe.check()).ok:
                await anyio.sleep(0.2)
        assert (r.reason, r.threshold) == (R.CPU_HIGH, 1.0)
    finally:
        proc.kill()
        await proc.aclose()  # reaped, and its pipes closed (else a ResourceWarning later)


@pytest.mark.anyio
async def test_resource_without_a_process_says_process_missing(tmp_path: Path) -> None:
    r = await ResourceProbe(lambda: None, ResourceLimits(max_rss=1)).check()
    assert (r.ok, r.reason, r.value) == (False, R.PROCESS_MISSING, None)
    proc = await anyio.open_process([PY, "-c", "pass"])
    await proc.aclose()
    gone = await ResourceProbe(lambda: proc.pid, ResourceLimits(max_rss=1)).check()
    assert (gone.ok, gone.reason) == (False, R.PROCESS_MISSING)


# --------------------------------------------------------------------------- process tree


@pytest.mark.anyio
async def test_process_tree_finds_what_psutil_finds(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    leaf = tmp_path / "leaf.py"
    leaf.write_text("import time\ntime.sleep(60)\n")
    middle = tmp_path / "middle.py"
    middle.write_text(
        f"import subprocess, time\nsubprocess.Popen([{PY!r}, {str(leaf)!r}])\ntime.sleep(60)\n"
    )
    code = (
        "import subprocess, sys, time\n"
        f"subprocess.Popen([{PY!r}, {str(middle)!r}])\n"
        "time.sleep(1); open(sys.argv[1], 'w').write('up'); time.sleep(60)\n"
    )
    proc = await anyio.open_process([PY, "-c", code, str(ready)])
    try:
        await _wait_file(ready)
        expected = {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
        assert len(expected) == 2
        assert set(ProcessTree().descendants(proc.pid)) == expected
    finally:
        for child in psutil.Process(proc.pid).children(recursive=True):
            child.kill()
        proc.kill()
        await proc.aclose()  # reaped, and its pipes closed (else a ResourceWarning later)


def _fake_proc(root: Path, parents: dict[int, int], *, children_files: bool) -> None:
    for pid, ppid in parents.items():
        task = root / str(pid) / "task" / str(pid)
        task.mkdir(parents=True)
        (root / str(pid) / "stat").write_text(f"{pid} (a (b) c) S {ppid} 1 1 0\n")
        if children_files:
            kids = [str(k) for k, v in parents.items() if v == pid]
            (task / "children").write_text(" ".join(kids) + (" " if kids else ""))


def test_process_tree_shares_one_walk_within_its_ttl(tmp_path: Path) -> None:
    _fake_proc(tmp_path, {10: 1, 11: 10, 12: 11, 13: 10, 20: 1}, children_files=False)
    now = [100.0]
    tree = ProcessTree(ttl=1.0, clock=lambda: now[0], proc=str(tmp_path))
    assert sorted(tree.descendants(10)) == [11, 12, 13]
    assert tree.descendants(20) == []
    assert tree.walks == 1  # the second probe used the first one's walk
    now[0] += 1.5
    tree.descendants(10)
    assert tree.walks == 2


def test_process_tree_reads_children_files_when_the_kernel_has_them(tmp_path: Path) -> None:
    _fake_proc(tmp_path, {10: 1, 11: 10, 12: 11, 13: 10, 20: 1}, children_files=True)
    tree = ProcessTree(proc=str(tmp_path))
    assert sorted(tree.descendants(10)) == [11, 12, 13]
    assert tree.descendants(99) == []  # gone: nothing, and no walk
    assert tree.walks == 0


@pytest.mark.anyio
async def test_tcp_by_name_goes_through_the_resolver() -> None:
    async with await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0) as lst:
        port = lst.extra(anyio.abc.SocketAttribute.local_port)
        ok = await TcpProbe("localhost", port, 5.0).check()
    assert (ok.ok, ok.reason) == (True, "")
    # Every address of the name refused (::1 and 127.0.0.1 alike): refused, not an error.
    refused = await TcpProbe("localhost", port, 5.0).check()
    assert (refused.ok, refused.reason) == (False, R.CONN_REFUSED)
