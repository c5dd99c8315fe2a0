"""Remove everything the lab made under one prefix, and nothing else (`harness clean`, and every teardown).

Order matters (FAULTS.md): the prefix's FUSE file systems (the disk nemesis's layers) are aborted first, so that no
process waits in state D on a paused layer, then processes (they pin namespaces), then the root-side veths (deleting them is
synchronous, while `ip netns del` returns before the kernel has destroyed the namespace and its veth would linger
and block re-creation under the same name), then the bridge and the namespaces, then firewall objects, cgroups,
the FUSE mounts (lazily unmounted), work directories and the state file.

Only names owned by the prefix (``<prefix>-*`` / ``<prefix>_*``) are touched; processes are killed only when they
are in one of the prefix's namespaces or recorded in its state file with the same start time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

from harness.labstate import LabState, PrefixLock, check_prefix, owns, state_dir, work_root
from harness.procs import ProcId, identify, kill_exact, wait_gone

log = logging.getLogger("harness.clean")

CGROUP_ROOTS = (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup"))


def _run(argv: list[str], *, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=30)


def _have(tool: str) -> bool:
    return shutil.which(tool) is not None


def namespaces(prefix: str) -> list[str]:
    if not _have("ip"):
        return []
    out = _run(["ip", "netns", "list"]).stdout
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return sorted(n for n in names if owns(prefix, n))


def links(prefix: str) -> list[str]:
    """Root-namespace links of the prefix, veth ports before the bridge."""
    if not _have("ip"):
        return []
    out = _run(["ip", "-o", "link", "show"]).stdout
    found = []
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            name = parts[1].strip().split("@", 1)[0]
            if owns(prefix, name):
                found.append(name)
    return sorted(found, key=lambda n: (n.endswith("-br"), n))


def iptables_chains(prefix: str) -> dict[str, list[str]]:
    """table -> chains of the prefix in the root namespace's iptables."""
    chains: dict[str, list[str]] = {}
    if not _have("iptables"):
        return chains
    for table in ("filter", "nat", "mangle", "raw"):
        res = _run(["iptables", "-w", "-t", table, "-S"])
        if res.returncode != 0:
            continue
        mine = [ln.split()[1] for ln in res.stdout.splitlines() if ln.startswith("-N ") and owns(prefix, ln.split()[1])]
        if mine:
            chains[table] = mine
    return chains


def nft_tables(prefix: str) -> list[tuple[str, str]]:
    """(family, name) of the prefix's nftables tables in the root namespace."""
    if not _have("nft"):
        return []
    res = _run(["nft", "-j", "list", "tables"])
    if res.returncode != 0:
        return []
    try:
        items = json.loads(res.stdout).get("nftables", [])
    except ValueError:
        return []
    return [(t["table"]["family"], t["table"]["name"]) for t in items
            if "table" in t and owns(prefix, t["table"]["name"])]


FUSE_CONNECTIONS = Path("/sys/fs/fuse/connections")


def fuse_mounts(prefix: str) -> list[tuple[str, int]]:
    """(mount point, device minor) of the FUSE file systems whose source name the prefix owns (the disk layer
    names its mounts ``<prefix>-disk-<node>``), deepest first."""
    found = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) >= 5 and len(tail) >= 2 and tail[0].startswith("fuse") and owns(prefix, tail[1]):
            point = fields[4].encode().decode("unicode_escape")  # mountinfo escapes spaces as \040
            found.append((point, int(fields[2].split(":")[1])))
    return sorted(found, key=lambda m: -len(m[0]))


def abort_fuse(prefix: str) -> list[str]:
    """Abort the prefix's FUSE connections: every request a layer holds (a paused disk) fails at once, so its
    callers can die. Killing the layer's daemon does the same; this also works when the daemon itself hangs."""
    done = []
    for point, minor in fuse_mounts(prefix):
        abort = FUSE_CONNECTIONS / str(minor) / "abort"
        try:
            abort.write_text("1")
            done.append(f"aborted FUSE connection of {point}")
        except OSError:
            continue  # no fusectl here: killing the daemon below aborts it as well
    return done


def cgroups(prefix: str) -> list[Path]:
    found: list[Path] = []
    for root in CGROUP_ROOTS:
        if (root / "cgroup.procs").exists():
            try:
                found += [p for p in root.iterdir() if p.is_dir() and owns(prefix, p.name)]
            except OSError:
                continue
    return found


def leftovers(prefix: str, *, holding_lock: bool = False) -> list[str]:
    """Everything of the prefix that still exists, as readable strings (empty = clean). ``holding_lock``: the
    caller holds the prefix's lock (a backend's setup), so the state dir that holds only that lock is its own, not
    a leftover."""
    check_prefix(prefix)
    out = [f"namespace {n}" for n in namespaces(prefix)]
    out += [f"link {n}" for n in links(prefix)]
    out += [f"iptables chain {t}/{c}" for t, cs in iptables_chains(prefix).items() for c in cs]
    out += [f"nft table {f} {n}" for f, n in nft_tables(prefix)]
    out += [f"cgroup {p}" for p in cgroups(prefix)]
    out += [f"fuse mount {point}" for point, _ in fuse_mounts(prefix)]
    st = LabState.load(prefix)
    if st is not None:
        out += [f"process {p.pid}" for p in st.pids if identify(p.pid) == p]
        if st.work_dir and Path(st.work_dir).exists():
            out.append(f"work dir {st.work_dir}")
    if work_root(prefix).exists():
        out.append(f"work root {work_root(prefix)}")
    d = state_dir(prefix)
    if d.exists():
        try:
            ours = holding_lock and set(os.listdir(d)) <= {"lock"}
        except OSError:
            ours = False
        if not ours:
            out.append(f"state dir {d}")
    return out


def _remove_cgroup(path: Path) -> None:
    for child in sorted((p for p in path.iterdir() if p.is_dir()), reverse=True):
        _remove_cgroup(child)
    with contextlib.suppress(OSError):
        (path / "cgroup.freeze").write_text("0")
    with contextlib.suppress(OSError):
        (path / "cgroup.kill").write_text("1")
    for _ in range(200):  # a killed group empties within milliseconds; bounded wait
        try:
            path.rmdir()
            return
        except OSError:
            time.sleep(0.005)
    path.rmdir()


def clean(prefix: str, *, lock: PrefixLock | None = None, force: bool = False,
          extra_pids: list[ProcId] | None = None) -> list[str]:
    """Remove the prefix's leftovers; return what was removed. Raises PrefixBusy when a live controller holds the
    prefix, unless ``lock`` is that controller's own held lock (teardown) or ``force``.

    Never raises for a single object that cannot be removed: it logs it and goes on (a partial clean is better
    than none); `leftovers()` tells what remains.
    """
    check_prefix(prefix)
    own_lock = None
    if lock is None or not lock.held:
        own_lock = PrefixLock(prefix)
        try:
            own_lock.acquire()
        except Exception:
            if not force:
                raise
            own_lock = None
    done: list[str] = []
    try:
        done += abort_fuse(prefix)
        st = LabState.load(prefix)
        victims: list[ProcId] = list(extra_pids or [])
        if st is not None:
            victims += st.pids
        for ns in namespaces(prefix):
            for pid_s in _run(["ip", "netns", "pids", ns]).stdout.split():
                p = identify(int(pid_s))
                if p is not None:
                    victims.append(p)
        killed = [p for p in dict.fromkeys(victims) if p.pid != os.getpid() and kill_exact(p, signal.SIGKILL)]
        done += [f"killed process {p.pid}" for p in killed]
        for p in wait_gone(killed, 5.0):
            log.warning("process %d survived SIGKILL for 5 s (state D?)", p.pid)
        for link in links(prefix):
            if _run(["ip", "link", "del", link]).returncode == 0:
                done.append(f"deleted link {link}")
        for ns in namespaces(prefix):
            res = _run(["ip", "netns", "del", ns])
            if res.returncode == 0:
                done.append(f"deleted namespace {ns}")
            else:
                log.warning("ip netns del %s: %s", ns, res.stderr.strip())
        for table, chains in iptables_chains(prefix).items():
            rules = _run(["iptables", "-w", "-t", table, "-S"]).stdout.splitlines()
            for rule in rules:
                words = shlex.split(rule)
                if words[:1] == ["-A"] and "-j" in words and words[words.index("-j") + 1] in chains \
                        and not owns(prefix, words[1]):
                    _run(["iptables", "-w", "-t", table, "-D", *words[1:]])
            for c in chains:
                _run(["iptables", "-w", "-t", table, "-F", c])
            for c in chains:
                if _run(["iptables", "-w", "-t", table, "-X", c]).returncode == 0:
                    done.append(f"deleted iptables chain {table}/{c}")
        for family, name in nft_tables(prefix):
            if _run(["nft", "delete", "table", family, name]).returncode == 0:
                done.append(f"deleted nft table {family} {name}")
        for cg in cgroups(prefix):
            try:
                _remove_cgroup(cg)
                done.append(f"removed cgroup {cg}")
            except OSError as e:
                log.warning("cgroup %s: %s", cg, e)
        for point, _ in fuse_mounts(prefix):
            res = _run(["umount", "-l", point])
            if res.returncode == 0:
                done.append(f"unmounted {point}")
            else:
                log.warning("umount -l %s: %s", point, res.stderr.strip())
        if st is not None:
            if st.work_dir and Path(st.work_dir).exists():
                shutil.rmtree(st.work_dir, ignore_errors=True)
                done.append(f"removed work dir {st.work_dir}")
            st.remove()
        root = work_root(prefix)
        if root.exists():
            shutil.rmtree(root, ignore_errors=True)
            done.append(f"removed {root}")
    finally:
        if own_lock is not None:
            own_lock.release(remove=True)
    return done
