"""Prometheus metrics of one node, in a per-process (per-Node) registry served on GET /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LAT = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
ROLES = ("follower", "pre-candidate", "candidate", "leader")


class Metrics:
    def __init__(self, node_id: str) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.term = Gauge("raftkv_term", "current Raft term", registry=r)
        self.role = Gauge("raftkv_role", "1 for the role this node is in", ["role"], registry=r)
        self.leader = Gauge("raftkv_leader", "1 for the leader this node knows (none = no leader)", ["leader"],
                            registry=r)
        self.commit = Gauge("raftkv_commit_index", "commit index", registry=r)
        self.applied = Gauge("raftkv_applied_index", "applied index", registry=r)
        self.elections = Counter("raftkv_elections_started", "elections this node started (candidate)",
                                 registry=r)
        self.elections_won = Counter("raftkv_elections_won", "elections this node won", registry=r)
        self.leader_changes = Counter("raftkv_leader_changes", "changes of the known leader", registry=r)
        self.proposals = Counter("raftkv_proposals", "entries proposed by this node", registry=r)
        self.append_latency = Histogram("raftkv_wal_append_seconds", "time to persist one Ready (write+fsync)",
                                        buckets=_LAT, registry=r)
        self.fsync_latency = Histogram("raftkv_wal_fsync_seconds", "time of one WAL write+fdatasync",
                                       buckets=_LAT, registry=r)
        self.batch_entries = Histogram("raftkv_wal_batch_entries", "entries per persisted batch",
                                       buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024), registry=r)
        self.read_index_latency = Histogram("raftkv_read_index_seconds", "ReadIndex round latency",
                                            buckets=_LAT, registry=r)
        self.snapshots = Counter("raftkv_snapshots", "snapshots made or installed", ["kind"], registry=r)
        self.snapshot_bytes = Gauge("raftkv_snapshot_bytes", "size of the last snapshot file", registry=r)
        self.wal_bytes = Counter("raftkv_wal_bytes_written", "bytes appended to the WAL", registry=r)
        self.peer_up = Gauge("raftkv_peer_connected", "1 when the outbound connection to a peer is up", ["peer"],
                             registry=r)
        self.peer_dropped = Counter("raftkv_peer_messages_dropped", "messages dropped (peer down or queue full)",
                                    ["peer"], registry=r)
        self.peer_rejected = Counter("raftkv_peer_connections_rejected", "inbound peer connections closed for a "
                                     "protocol violation", registry=r)
        self.peer_auth_failures = Counter("raftkv_peer_auth_failures", "inbound peer connections closed because "
                                          "a frame failed authentication (wrong secret, forged, replayed)",
                                          registry=r)
        self.client_refused = Counter("raftkv_client_connections_refused", "client connections closed on arrival "
                                      "because the connection cap was reached", registry=r)
        self.requests = Counter("raftkv_requests", "client requests by operation and outcome", ["op", "outcome"],
                                registry=r)
        self.request_latency = Histogram("raftkv_request_seconds", "client request latency", ["op"],
                                         buckets=_LAT, registry=r)
        self.replayed_writes = Counter("raftkv_replayed_writes", "session writes answered from the session table "
                                       "(a retry of a write already applied: not applied again)", registry=r)
        self.info = Gauge("raftkv_node_info", "constant 1, labelled with the node id", ["id"], registry=r)
        self.info.labels(id=node_id).set(1)
        self.failpoint = Gauge("raftkv_failpoint_enabled", "1 for each failpoint (a planted bug, test labs only) "
                               "this node was started with", ["name"], registry=r)
        self._leader_label: str | None = None

    def set_role(self, role: str) -> None:
        for r in ROLES:
            self.role.labels(role=r).set(1 if r == role else 0)

    def set_leader(self, leader: str | None) -> None:
        if self._leader_label is not None:
            self.leader.labels(leader=self._leader_label).set(0)
        self._leader_label = leader or "none"
        self.leader.labels(leader=self._leader_label).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
