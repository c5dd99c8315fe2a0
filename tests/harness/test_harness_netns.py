"""The netns backend and `harness clean` on the real kernel (root): bring-up, isolation from the outside,
per-host TCP settings, real PIDs, teardown, cleaning after a killed controller, touching nothing else."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from harness_testutil import netns_available, subprocess_env

from harness.backends.netns import NetnsBackend, PrerequisiteError, check_prerequisites
from harness.clean import leftovers, links, namespaces
from harness.labstate import LabState, PrefixBusy, PrefixError, check_prefix, owns

pytestmark = [pytest.mark.netns, pytest.mark.skipif(not netns_available(), reason="needs root, ip and iptables")]


def test_prefix_rules() -> None:
    assert check_prefix("rkl") == "rkl"
    for bad in ("", "Rkl", "1ab", "toolongprefix", "a-b"):
        with pytest.raises(PrefixError):
            check_prefix(bad)
    assert owns("rkl", "rkl-n1") and owns("rkl", "rkl_fake")
    assert not owns("rkl", "rkl2-n1") and not owns("rkl", "rklx") and not owns("rkl", "docker0")


async def test_five_hosts_up_reachable_isolated_and_gone(prefix: str, tmp_path: Path) -> None:
    b = NetnsBackend(tmp_path / "work", prefix=prefix)
    t0 = time.monotonic()
    hosts = await b.setup(5)
    up = time.monotonic() - t0
    try:
        assert up < 3.0, f"bring-up took {up:.2f} s"
        assert [h.name for h in hosts] == ["n1", "n2", "n3", "n4", "n5"]
        assert len({h.address for h in hosts}) == 5
        assert namespaces(prefix) == [f"{prefix}-n{i}" for i in range(1, 6)]
        # no route off the machine: only the lab's /24
        routes = (await hosts[0].exec(["ip", "-4", "route"])).stdout
        assert "default" not in routes and routes.strip().startswith(b.subnet + ".0/24")
        unreachable = await hosts[0].exec(["ip", "route", "get", "1.1.1.1"], check=False)
        assert unreachable.returncode != 0 and "unreachable" in unreachable.stderr.lower()
        if Path("/proc/sys/net/ipv4/tcp_rto_max_ms").exists():
            assert (await hosts[2].exec(["cat", "/proc/sys/net/ipv4/tcp_rto_max_ms"])).stdout.strip() == "1000"
        # a daemon in n2, reached from the controller (bridge address) and from n1; its PID is its own
        log = Path(b.log_dir("n2")) / "srv.log"
        script = ("import socket,sys\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
                  f"s.bind(('{hosts[1].address}',7400));s.listen();print('up',flush=True)\n"
                  "while True:\n c,_=s.accept();c.sendall(b'hi');c.close()\n")
        pid = await hosts[1].spawn([sys.executable, "-c", script], log_path=str(log))
        assert await hosts[1].alive(pid)
        deadline = time.monotonic() + 5  # `ip netns exec` execs in place: same PID, new program within ms
        while Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] != sys.executable.encode():
            assert time.monotonic() < deadline, Path(f"/proc/{pid}/cmdline").read_bytes()
            await asyncio.sleep(0.005)
        assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{hosts[1].namespace}").st_ino
        deadline = time.monotonic() + 10
        while "up" not in log.read_text() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection(hosts[1].address, 7400)
        assert await reader.read() == b"hi"
        writer.close()
        probe = f"import socket;c=socket.create_connection(('{hosts[1].address}',7400),timeout=2);print(c.recv(2).decode())"
        assert (await hosts[0].exec([sys.executable, "-c", probe])).stdout.strip() == "hi"
        assert pid in [p.pid for p in LabState.load(prefix).pids]  # type: ignore[union-attr]
        with pytest.raises(Exception, match="not started by this backend"):
            await hosts[1].signal(os.getpid(), __import__("signal").SIGTERM)
    finally:
        t0 = time.monotonic()
        await b.teardown()
        down = time.monotonic() - t0
    assert down < 3.0, f"teardown took {down:.2f} s"
    assert leftovers(prefix) == []
    assert not os.path.exists(f"/proc/{pid}") or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    # idempotent, and the prefix can be set up again at once (the veth-before-namespace order)
    await b.teardown()
    b2 = NetnsBackend(tmp_path / "work2", prefix=prefix)
    await b2.setup(2)
    await b2.teardown()
    assert leftovers(prefix) == []


async def test_a_taken_subnet_is_skipped(prefix: str, tmp_path: Path) -> None:
    from harness.backends.netns import subnet_for

    squatter = f"{prefix}x-d"  # a sibling prefix's link, holding the preferred /24
    subprocess.run(["ip", "link", "add", squatter, "type", "bridge"], check=True)  # no dummy driver here
    try:
        subprocess.run(["ip", "addr", "add", f"{subnet_for(prefix)}.1/24", "dev", squatter], check=True)
        b = NetnsBackend(tmp_path / "w", prefix=prefix)
        hosts = await b.setup(2)
        try:
            assert b.subnet != subnet_for(prefix)
            assert hosts[0].address.startswith(b.subnet + ".")
        finally:
            await b.teardown()
    finally:
        subprocess.run(["ip", "link", "del", squatter], check=False)


async def test_a_second_controller_on_the_same_prefix_is_refused(prefix: str, tmp_path: Path) -> None:
    b = NetnsBackend(tmp_path / "a", prefix=prefix)
    await b.setup(1)
    try:
        with pytest.raises(PrefixBusy, match="is active"):
            await NetnsBackend(tmp_path / "b", prefix=prefix).setup(1)
        assert namespaces(prefix) == [f"{prefix}-n1"]  # the refused one touched nothing
    finally:
        await b.teardown()


def test_missing_prerequisite_says_what_and_how(monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.backends.netns as netns

    monkeypatch.setattr(netns.shutil, "which", lambda tool: None if tool == "iptables" else "/usr/sbin/" + tool)
    with pytest.raises(PrerequisiteError, match="apt-get install -y iptables"):
        check_prerequisites()
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    with pytest.raises(PrerequisiteError, match="must run as root"):
        check_prerequisites()


CONTROLLER = """
import asyncio, sys
from pathlib import Path
from harness.backends.netns import NetnsBackend
async def main():
    b = NetnsBackend(Path(sys.argv[2]), prefix=sys.argv[1])
    hosts = await b.setup(3)
    await hosts[0].spawn(["sleep", "300"], log_path=sys.argv[2] + "/sleep.log")
    subprocess = __import__("subprocess")
    subprocess.run(["iptables", "-w", "-N", sys.argv[1] + "-part"], check=True)
    subprocess.run(["nft", "add", "table", "inet", sys.argv[1] + "_part"], check=True)
    print("ready", flush=True)
    await asyncio.sleep(300)
asyncio.run(main())
"""


def _start_controller(prefix: str, work: Path) -> subprocess.Popen[str]:
    p = subprocess.Popen([sys.executable, "-c", CONTROLLER, prefix, str(work)], stdout=subprocess.PIPE, text=True,
                         env=subprocess_env())
    assert p.stdout is not None
    assert p.stdout.readline().strip() == "ready"
    return p


def test_clean_after_a_killed_controller_removes_exactly_its_things(prefix: str, tmp_path: Path) -> None:
    other = prefix + "x"  # a sibling prefix: its things must survive
    subprocess.run(["ip", "netns", "add", f"{other}-n1"], check=True)
    subprocess.run(["ip", "link", "add", f"{other}-br", "type", "bridge"], check=True)
    try:
        ctl = _start_controller(prefix, tmp_path / "work")
        state = LabState.load(prefix)
        assert state is not None and len(state.pids) == 1
        sleeper = state.pids[0]
        # while the controller lives, clean refuses
        res = subprocess.run([sys.executable, "-m", "harness.cli", "clean", "--prefix", prefix],
                             capture_output=True, text=True, env=subprocess_env())
        assert res.returncode == 3 and "is active" in res.stderr
        ctl.kill()
        ctl.wait()
        left = leftovers(prefix)
        assert f"namespace {prefix}-n1" in left and f"link {prefix}-br" in left
        assert f"iptables chain filter/{prefix}-part" in left and f"nft table inet {prefix}_part" in left
        assert f"process {sleeper.pid}" in left
        res = subprocess.run([sys.executable, "-m", "harness.cli", "clean", "--prefix", prefix],
                             capture_output=True, text=True, env=subprocess_env())
        assert res.returncode == 0, res.stderr
        assert f"killed process {sleeper.pid}" in res.stdout
        assert leftovers(prefix) == []
        assert f"{other}-n1" in namespaces(other) and f"{other}-br" in links(other)
        res = subprocess.run([sys.executable, "-m", "harness.cli", "clean", "--prefix", prefix],
                             capture_output=True, text=True, env=subprocess_env())
        assert res.returncode == 0 and "nothing to clean" in res.stdout
    finally:
        subprocess.run(["ip", "link", "del", f"{other}-br"], check=False)
        subprocess.run(["ip", "netns", "del", f"{other}-n1"], check=False)
