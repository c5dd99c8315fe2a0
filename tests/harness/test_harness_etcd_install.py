"""etcd's setup installs Debian's etcd-server through the backend where the binary is missing
(workloads.etcd_db.ensure_etcd), and says what apt said when it cannot."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from harness.protocols import ExecResult
from workloads.etcd_db import ETCD, ETCD_PACKAGE, EtcdDBError, ensure_etcd


class FakeHost:
    """Answers `test -x` from `installed`; an apt-get install succeeds (and installs) only when `mirror`."""

    def __init__(self, *, installed: bool, mirror: bool) -> None:
        self.installed, self.mirror = installed, mirror
        self.calls: list[tuple[str, ...]] = []

    async def exec(self, argv: Sequence[str], *, check: bool = True, timeout: float | None = 30.0,
                   stdin: bytes | None = None) -> ExecResult:
        argv = tuple(argv)
        self.calls.append(argv)
        if argv[:2] == ("test", "-x"):
            return ExecResult(argv, 0 if self.installed and argv[2] == ETCD else 1, "", "")
        if "apt-get" in argv:
            assert timeout is not None and timeout >= 60, "an install gets more than the default 30 s"
            if self.mirror:
                self.installed = True
                return ExecResult(argv, 0, "Setting up etcd-server ...\n", "")
            return ExecResult(argv, 100, "", "E: Unable to locate package etcd-server\n")
        raise AssertionError(f"unexpected command {argv}")


async def test_a_host_with_etcd_is_left_alone() -> None:
    host = FakeHost(installed=True, mirror=False)
    await ensure_etcd(host, "n1")  # type: ignore[arg-type]
    assert host.calls == [("test", "-x", ETCD)]


async def test_a_host_without_etcd_gets_debians_package() -> None:
    host = FakeHost(installed=False, mirror=True)
    await ensure_etcd(host, "n1")  # type: ignore[arg-type]
    installs = [c for c in host.calls if "apt-get" in c]
    assert len(installs) == 1 and installs[0][-1] == ETCD_PACKAGE and "-y" in installs[0]
    assert host.installed


async def test_a_failed_install_names_the_node_the_package_and_what_apt_said() -> None:
    host = FakeHost(installed=False, mirror=False)
    with pytest.raises(EtcdDBError, match=r"n3: /usr/bin/etcd is missing .*etcd-server.*exit 100.*Unable to locate"):
        await ensure_etcd(host, "n3")  # type: ignore[arg-type]
