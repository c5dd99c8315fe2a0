"""Faults for the lab (harness's Nemesis protocol), registered as `partition`, `kill` and `pause`
(nemesis.specs, entry points in pyproject.toml).

- `nemesis.grudge`: partitions as plain data (node -> nodes whose traffic it drops), built by pure functions;
- `nemesis.targets`: which nodes a process fault hits, a pure function of the nodes, an rng and the leader;
- `nemesis.partition`: grudges applied as iptables rules in a chain the lab owns on each host (`<prefix>-partition`);
- `nemesis.process`: kill -9 / restart and SIGSTOP / SIGCONT, through the DB's Process capability only.

Every choice is drawn from the rng the engine hands each nemesis (a child of the run's seed).
"""
