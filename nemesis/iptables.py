"""One iptables chain of the lab's own per host, jumped to from a built-in hook: what the network nemeses share.

A nemesis owns one chain per host (named with the lab's prefix) in one table, jumped to from the top of one
built-in chain (the hook). Its rules are replaced atomically with one ``iptables-restore --noflush`` (declaring a
chain empties it), and removed by deleting exactly the jump(s), the rules and the chain, then reading the rules back
to verify. Nobody else's rules are ever flushed. Everything goes through ``Remote.exec``, so it works on any backend
whose hosts have iptables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.protocols import Remote


class ChainError(RuntimeError):
    """Rules could not be applied on a host (the message names the host and iptables' complaint)."""


def rules_of(chain: str, listing: str) -> list[str]:
    """The lines of an `iptables -S` listing that belong to the chain or jump to it."""
    return [line for line in listing.splitlines() if chain in line.split()]


@dataclass(frozen=True, slots=True)
class OwnedChain:
    """``chain`` in ``table``, jumped to from the top of ``hook``."""

    table: str
    hook: str
    chain: str

    def script(self, rules: Sequence[str], *, add_jump: bool) -> str:
        """The iptables-restore input that makes the chain hold exactly ``rules`` (each an argument string such as
        ``-s 10.77.0.2/32 -j DROP``), adding the jump when ``add_jump``."""
        lines = [f"*{self.table}", f":{self.chain} - [0:0]"]
        if add_jump:
            lines.append(f"-I {self.hook} 1 -j {self.chain}")
        lines += [f"-A {self.chain} {rule}" for rule in rules]
        lines.append("COMMIT")
        return "\n".join(lines) + "\n"

    async def apply(self, host: Remote, rules: Sequence[str], *, add_jump: bool) -> None:
        result = await host.exec(["iptables-restore", "--noflush"], check=False,
                                 stdin=self.script(rules, add_jump=add_jump).encode())
        if result.returncode != 0:
            raise ChainError(f"{host.name}: iptables-restore ({self.table}/{self.chain}) failed: "
                             f"{result.stderr.strip()}")

    async def listing(self, host: Remote) -> list[str]:
        return rules_of(self.chain, (await host.exec(["iptables", "-w", "-t", self.table, "-S"])).stdout)

    async def remove(self, host: Remote) -> list[str]:
        """Remove the jump(s), the rules and the chain on one host; return the rules still naming it (none if
        removed). Raises RemoteError when the host cannot be asked."""
        present = await self.listing(host)
        if present:
            jumps = sum(1 for line in present if line.startswith(f"-A {self.hook} "))
            lines = [f"*{self.table}"] + [f"-D {self.hook} -j {self.chain}"] * jumps
            if f"-N {self.chain}" in present:
                lines += [f"-F {self.chain}", f"-X {self.chain}"]
            lines.append("COMMIT")
            await host.exec(["iptables-restore", "--noflush"], check=False,
                            stdin=("\n".join(lines) + "\n").encode())
            present = await self.listing(host)
        return present
