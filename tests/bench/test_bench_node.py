"""`socp bench dm` against a real node: the instrument works end to end.

Short and small on purpose (a few seconds in CI); no assertion on speed.
"""

from __future__ import annotations

import pytest

from socp.bench.active import ActiveOptions, run_active
from socp.bench.connect import ConnectOptions, run_connect
from socp.bench.dm import DmOptions, run_dm
from socp.bench.files import FilesOptions, run_files
from socp.bench.keys import KeyPool
from socp.bench.presence import PresenceOptions, run_presence
from socp.bench.public import PublicOptions, run_public
from socp.bench.targets import Target
from socp.config import NodeConfig
from support.nodes import start_node

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def node(keys, tmp_path_factory):
    running = start_node(tmp_path_factory.mktemp("bench") / "node", keys[0], verifiers=1)
    yield running
    running.stop()


def target_of(node) -> Target:
    return Target(urls=(node.url,), data_dirs=(str(node.data_dir),), server_keys=(node.pubkey,))


def test_dm_bench_reports_every_number_and_loses_nothing(node, keys):
    options = DmOptions(users=4, duration_s=1.5, rate=20.0, drain_s=5.0, capacity_s=0.5, progress=False)
    result = run_dm(target_of(node), options, keys=KeyPool((keys[0],)))

    assert result.sent == 30 and result.prepared == 30
    assert result.deliveries == result.sent
    assert result.lost == 0 and result.duplicated == 0 and result.unexpected == 0
    assert result.errors == {}
    assert result.throughput_per_s > 0
    assert set(result.latency_ms) == {"p50", "p90", "p99", "max"}
    assert 0 < result.latency_ms["p50"] <= result.latency_ms["max"]
    # The sample was decrypted, and both signatures (content, node) verified.
    assert result.sample_checked == 20 and result.sample_failed == 0
    assert result.sign_capacity_per_s > 0 and result.throughput_over_sign_capacity > 0
    roles = {row["role"] for row in result.processes}
    assert {"gateway", "router", "verifier", "store"} <= roles
    assert all(row["peak_rss_mib"] > 0 for row in result.processes)
    # The load generator's own CPU is measured over the same phase (it shares the cores).
    assert result.client_cpu_s is not None and result.client_cpu_s > 0


def test_public_bench_sees_one_node_signature_per_message(node, keys):
    options = PublicOptions(members=3, duration_s=1.0, rate=10.0, drain_s=5.0, capacity_s=0.5, progress=False)
    result = run_public(target_of(node), options, keys=KeyPool((keys[0],)))

    assert result.sent == 10
    assert result.deliveries == 30 and result.lost == 0 and result.duplicated == 0
    assert result.sample_failed == 0 and result.sample_checked > 0
    assert result.extra["signatures_per_message"] == 1.0


def test_files_bench_carries_a_whole_file_and_checks_its_bytes(node, keys):
    options = FilesOptions(pairs=1, size_mb=0.05, duration_s=20.0, rate=100.0, drain_s=5.0, capacity_s=0.5,
                           progress=False)
    result = run_files(target_of(node), options, keys=KeyPool((keys[0],)))

    chunks = -(-50_000 // 446)     # FILE_START, the chunks, FILE_END
    assert result.sent == chunks + 2 and result.deliveries == result.sent
    assert result.lost == 0 and result.duplicated == 0 and result.errors == {}
    assert result.extra["chunks_delivered"] == f"{chunks} of {chunks}"
    assert result.extra["MB_per_s"] > 0
    # Sampled chunks were decrypted and compared with the bytes that were sent.
    assert result.sample_checked > 0 and result.sample_failed == 0


def test_connect_bench_holds_every_connection_and_measures_server_memory(node, keys):
    options = ConnectOptions(users=30, concurrency=10, hold_s=0.5, progress=False)
    result = run_connect(target_of(node), options, keys=KeyPool((keys[0],)))

    assert result.extra["hellos_admitted"] == 30 and result.extra["refused"] == {}
    assert result.extra["still_open_after_hold"] == 30
    assert result.extra["hellos_per_s"] > 0
    assert "server_KiB_per_connection" in result.extra and result.extra["server_rss_held_MiB"] > 0


def test_presence_bench_fills_the_node_table_from_simulated_servers(node, keys):
    options = PresenceOptions(users=60, timeout_s=30.0, progress=False)
    result = run_presence(target_of(node), options, server_keys=KeyPool((keys[1], keys[2])),
                          user_keys=KeyPool((keys[3],)))

    assert result.notes == []
    # Every advertised user (and the bench's own listing user) is in the node's table.
    assert result.users == 120
    assert result.extra["users_counted_by_list"] == result.extra["users_expected"] >= 121
    assert result.extra["join_to_complete_table_s"] > 0
    # A node at ease takes every advert the first time: nothing refused, nothing sent again.
    assert result.extra["errors_from_node"] == {} and result.extra["adverts_resent"] == 0
    assert result.extra["list_answer_payload_bytes"] > 0 and result.extra["list_truncated"] is False
    assert "node_bytes_per_known_user" in result.extra


def test_active_bench_accounts_for_every_dm_and_reports_its_fields(node, keys):
    # 20 users on 4 source addresses, each sending one DM every 2 s for 3 s.
    options = ActiveOptions(users=20, rate=10.0, duration_s=3.0, drain_s=5.0, per_source=5, capacity_s=0.5,
                            progress=False)
    result = run_active(target_of(node), options, keys=KeyPool((keys[0], keys[1])))

    assert result.extra["users_asked"] == result.extra["users_connected"] == result.users == 20
    assert result.extra["connections_refused"] == {} and result.extra["connect_s"] > 0
    assert result.extra["dms_offered"] == result.prepared == result.sent == 30
    # Every DM is delivered or refused by name; none lost, none twice.
    assert result.deliveries + result.refused == result.sent
    assert result.lost == 0 and result.duplicated == 0 and result.unexpected == 0
    assert set(result.latency_ms) == {"p50", "p90", "p99", "max"}
    assert 0 < result.latency_ms["p50"] <= result.latency_ms["p99"] <= result.latency_ms["max"]
    assert result.sample_checked == 20 and result.sample_failed == 0
    # Each delivery is a frame the node signed for its recipient; the senders got ACKs.
    frames = result.extra["node_frames_to_users"]
    assert frames["USER_DELIVER"] == result.deliveries and frames.get("ACK", 0) > 0
    assert result.extra["node_signatures_per_delivered_dm"] >= 1.0
    assert {"gateway", "router", "verifier pool", "machine", "signatures", "bench client"} <= set(
        result.extra["resource_use"])
    assert result.extra["what_limits_it"].startswith(("saturated: ", "nothing saturated ("))
    assert result.extra["p99_target_ms"] > 0 and isinstance(result.extra["p99_within_target"], bool)
    roles = {row["role"] for row in result.processes}
    assert {"gateway", "router", "verifier", "store"} <= roles
    assert all(row["rss_mib"] > 0 for row in result.processes)
    assert result.throughput_over_sign_capacity > 0 and result.extra["open_file_limit"] >= 20


def test_active_bench_reports_users_the_node_refused_and_runs_with_the_rest(node, keys):
    # All from one address: the node takes max_connections_per_address of them.
    per_address = NodeConfig(data_dir=node.data_dir).max_connections_per_address
    options = ActiveOptions(users=per_address + 6, rate=float(per_address), duration_s=1.0, drain_s=5.0,
                            per_source=0, capacity_s=0.5, sample=0, progress=False)
    result = run_active(target_of(node), options, keys=KeyPool((keys[0],)))

    assert result.extra["users_connected"] == per_address
    assert result.extra["connections_refused"] == {"server closed with 1013 too many connections from your address": 6}
    assert result.sent == per_address
    assert result.deliveries + result.refused == result.sent and result.lost == 0
