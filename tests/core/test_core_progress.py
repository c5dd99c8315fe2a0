"""raftkv.core.progress: the per-follower replication state machine."""

from __future__ import annotations

from raftkv.core.progress import Progress, ProgressState


def make(next_index: int = 10, match: int = 0, window: int = 3) -> Progress:
    return Progress(next_index=next_index, match=match, max_inflight=window)


def test_probe_sends_one_message_then_pauses_until_an_answer() -> None:
    pr = make()
    assert pr.state is ProgressState.PROBE and not pr.paused
    pr.sent_append(12, 3)
    assert pr.paused and pr.next == 10  # probing does not move next optimistically
    assert pr.maybe_update(12)
    assert not pr.paused and pr.match == 12 and pr.next == 13


def test_replicate_streams_optimistically_up_to_the_window() -> None:
    pr = make(match=9)
    pr.become_replicate()
    for last in (11, 13, 15):
        assert not pr.paused
        pr.sent_append(last, 2)
    assert pr.paused and pr.next == 16 and list(pr.inflight) == [11, 13, 15]
    assert pr.maybe_update(13)
    pr.free_up_to(13)
    assert not pr.paused and list(pr.inflight) == [15]


def test_an_empty_append_does_not_use_the_window() -> None:
    pr = make(match=9)
    pr.become_replicate()
    pr.sent_append(9, 0)
    assert not pr.inflight and pr.next == 10


def test_stale_ack_is_not_news() -> None:
    pr = make(match=5, next_index=8)
    assert not pr.maybe_update(4)
    assert pr.match == 5


def test_probe_rejection_backs_up_to_the_hint_but_not_below_match() -> None:
    pr = make(next_index=20, match=3)
    pr.sent_append(19, 0)
    assert pr.maybe_decrease_to(19, next_hint=12)
    assert pr.next == 12 and not pr.paused
    pr.sent_append(11, 0)
    assert pr.maybe_decrease_to(11, next_hint=1)
    assert pr.next == 4  # match + 1


def test_stale_probe_rejection_is_ignored() -> None:
    pr = make(next_index=20)
    assert not pr.maybe_decrease_to(25, next_hint=5)  # not the index we last probed
    assert pr.next == 20


def test_replicate_rejection_falls_back_to_probing_from_match() -> None:
    pr = make(match=9)
    pr.become_replicate()
    pr.sent_append(15, 6)
    assert not pr.maybe_decrease_to(8, next_hint=2)  # below match: stale
    assert pr.maybe_decrease_to(12, next_hint=11)
    assert pr.state is ProgressState.PROBE and pr.next == 10 and not pr.inflight


def test_snapshot_state_pauses_and_probes_after_it() -> None:
    pr = make(next_index=3, match=0)
    pr.become_snapshot(50)
    assert pr.paused and pr.pending_snapshot == 50
    pr.become_probe()
    assert pr.state is ProgressState.PROBE and pr.next == 51 and pr.pending_snapshot == 0
