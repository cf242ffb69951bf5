"""`socp bench active`'s pure parts: who sends to whom and when, which DMs are made
for the users that got in, how refusals are worded, and what limits a run."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from socp.bench.active import dm_jobs, refusal_reason
from socp.bench.bottleneck import describe, resource_use
from socp.bench.procstats import ProcessUsage
from socp.bench.schedule import ActiveSchedule
from socp.bench.simulated_users import BenchUser


@given(users=st.integers(2, 300), rounds=st.integers(1, 4))
def test_each_user_sends_and_receives_exactly_once_a_round_and_never_to_itself(users: int, rounds: int) -> None:
    schedule = ActiveSchedule(users, rate=50.0)
    for round_number in range(rounds):
        seqs = range(round_number * users, (round_number + 1) * users)
        senders = Counter(schedule.sender(seq) for seq in seqs)
        recipients = Counter(schedule.recipient(seq) for seq in seqs)
        assert senders == recipients == Counter(range(users))
        assert all(schedule.recipient(seq) != schedule.sender(seq) for seq in seqs)


def test_rounds_change_partners():
    schedule = ActiveSchedule(4, rate=2.0)
    # User 0 writes to 1, then 2, then 3, then 1 again.
    assert [schedule.recipient(seq) for seq in (0, 4, 8, 12)] == [1, 2, 3, 1]


def test_dms_are_due_evenly_and_each_user_sends_once_a_period():
    schedule = ActiveSchedule(2000, rate=200.0)
    assert schedule.period_s == 10.0
    assert schedule.due_s(0) == 0.0 and schedule.due_s(200) == 1.0
    # User 7's DMs: seq 7, 2007, 4007: one period apart.
    own = [seq for seq in range(6000) if schedule.sender(seq) == 7]
    assert [schedule.due_s(seq) for seq in own] == [0.035, 10.035, 20.035]


@pytest.mark.parametrize(("rate", "duration", "expected"), [
    (200.0, 20.0, 4000), (1.0, 2.5, 3), (0.1, 30.0, 3), (10.0, 0.05, 1), (3.0, 0.0, 0)])
def test_count_is_the_dms_due_before_the_end(rate: float, duration: float, expected: int):
    schedule = ActiveSchedule(10, rate)
    assert schedule.count(duration) == expected
    assert all(schedule.due_s(seq) < duration for seq in range(expected))


def test_schedule_refuses_what_cannot_run():
    with pytest.raises(ValueError):
        ActiveSchedule(1, 10.0)
    with pytest.raises(ValueError):
        ActiveSchedule(5, 0.0)


def test_dms_are_made_only_among_the_users_that_got_in():
    users = [BenchUser(index=i, url="ws://127.0.0.1:1", key_index=i % 2, pubkey="") for i in range(10)]
    got_in = [users[i] for i in (1, 4, 6, 9)]
    jobs = dm_jobs(ActiveSchedule(len(got_in), 4.0), got_in, count=8)
    assert len(jobs) == 8
    ids = {user.index: user.user_id for user in got_in}
    for sender, sender_id, sender_key, recipient, recipient_id, recipient_key, _seq in jobs:
        assert sender in ids and recipient in ids and sender != recipient
        assert ids[sender] == sender_id and ids[recipient] == recipient_id
        assert sender_key == users[sender].key_index and recipient_key == users[recipient].key_index
    assert [job[6] for job in jobs] == list(range(8))
    assert Counter(job[0] for job in jobs) == Counter({1: 2, 4: 2, 6: 2, 9: 2})


def test_a_refusal_is_worded_the_same_however_it_was_noticed():
    from_receive_loop = "server closed with 1013 too many connections from your address"
    from_send = ("received 1013 (try again later) too many connections from your address; "
                 "then sent 1013 (try again later) too many connections from your address")
    assert refusal_reason(from_send) == refusal_reason(from_receive_loop) == from_receive_loop
    assert refusal_reason("timed out during opening handshake") == "timed out during opening handshake"


def _usage(role: str, cpu_s: float, node: int = 0, pid: int = 1) -> ProcessUsage:
    return ProcessUsage(node=node, pid=pid, role=role, cpu_s=cpu_s, rss_mib=50.0, peak_rss_mib=50.0)


def test_resource_use_counts_a_single_loop_actor_against_one_core_and_the_pool_per_verifier():
    processes = [_usage("gateway", 9.0), _usage("router", 3.0), _usage("verifier", 4.0, pid=2),
                 _usage("verifier", 6.0, pid=3), _usage("supervisord", 0.1)]
    uses = resource_use(10.0, processes, client_cpu_s=2.0, cores=2, signed_per_s=150.0, sign_capacity_per_s=300.0)
    by_name = {use.resource: use.used for use in uses}
    assert by_name["gateway"] == pytest.approx(0.9)
    assert by_name["verifier pool"] == pytest.approx(0.5)        # 10 s of 2 cores x 10 s
    assert by_name["bench client"] == pytest.approx(0.2)
    assert by_name["machine"] == pytest.approx(24.1 / 20)
    assert by_name["signatures"] == pytest.approx(0.5)
    assert "supervisord" not in by_name
    assert [use.resource for use in uses][:2] == ["machine", "gateway"]
    assert describe(uses).startswith("saturated: machine and gateway (")


def test_nothing_saturated_names_the_busiest_and_two_nodes_are_told_apart():
    processes = [_usage("gateway", 1.0), _usage("gateway", 2.0, node=1, pid=2)]
    uses = resource_use(10.0, processes, client_cpu_s=None, cores=2, signed_per_s=0.0, sign_capacity_per_s=0.0)
    assert [use.resource for use in uses] == ["node 2 gateway", "machine", "node 1 gateway"]
    assert describe(uses).startswith("nothing saturated (node 2 gateway 0.20 of one core")
    assert describe([]) == "not measured"
