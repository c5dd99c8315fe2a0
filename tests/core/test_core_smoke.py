from core_cluster import Cluster


def test_smoke() -> None:
    c = Cluster(3)
    leader = c.wait_leader()
    for i in range(20):
        c.propose(f"v{i}".encode())
    c.tick(3)
    for n in c.ids:
        assert [d for _, d in c.nodes[n].applied] == [f"v{i}".encode() for i in range(20)], c.status()
