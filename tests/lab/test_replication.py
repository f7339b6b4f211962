# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read replicas of DB instances are real PostgreSQL standbys, same region and across regions: read-only, lagging
honestly (ReplicaLag in CloudWatch, replay faults), promoted for real with the unreplayed writes lost and counted,
and deleted with their replication slot. One identifier in two regions never shares a PostgreSQL."""

import time
from datetime import datetime, timedelta, timezone

import psycopg2
import pytest
from botocore.exceptions import ClientError

from tests.lab.clients import connect_instance, create_postgres, describe_instance, query, wait_instance

pytestmark = pytest.mark.lab
WEST = "us-west-2"


def _count(instance) -> int:
    conn = connect_instance(instance)
    try:
        return query(conn, "SELECT count(*) FROM orders")[0][0]
    finally:
        conn.close()


def _messages(rds, identifier: str) -> list[str]:
    events = rds.describe_events(SourceType="db-instance", SourceIdentifier=identifier,
                                 StartTime=datetime.now(timezone.utc) - timedelta(minutes=10))["Events"]
    return [e["Message"] for e in events]


def _wait_for(predicate, timeout: float = 15, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return value
        time.sleep(interval)


@pytest.fixture(scope="module")
def replicas(lab):
    """Source "orders" (us-east-1) with 100 rows; replicas "orders-r1" and "orders-r2" (us-east-1) and "orders"
    (us-west-2, same identifier as its source, made from the source's ARN)."""
    lab.control.reset()
    rds, rds_west = lab.client(), lab.client("rds", region=WEST)
    if lab.fidelity:
        lab.control.set_timing(replica=1.0, promote=0.5, metrics=0.5)
    source = create_postgres(rds, "orders", DBInstanceClass="db.t3.small")
    conn = connect_instance(source)
    query(conn, "CREATE TABLE orders (id serial PRIMARY KEY, note text)")
    query(conn, "INSERT INTO orders (note) SELECT 'seed' FROM generate_series(1, 100)")
    same = rds.create_db_instance_read_replica(DBInstanceIdentifier="orders-r1",
                                               SourceDBInstanceIdentifier="orders")["DBInstance"]
    rds.create_db_instance_read_replica(DBInstanceIdentifier="orders-r2", SourceDBInstanceIdentifier="orders")
    cross = rds_west.create_db_instance_read_replica(DBInstanceIdentifier="orders", DBInstanceClass="db.t3.micro",
                                                     SourceDBInstanceIdentifier=source["DBInstanceArn"],
                                                     SourceRegion="us-east-1")["DBInstance"]
    first_seen = (describe_instance(rds, "orders-r1")["DBInstanceStatus"],
                  describe_instance(rds_west, "orders")["DBInstanceStatus"])
    yield {"lab": lab, "rds": rds, "rds_west": rds_west, "source": source, "conn": conn, "first_seen": first_seen,
           "answers": (same, cross), "r1": wait_instance(rds, "orders-r1", "available", timeout=60),
           "dr": wait_instance(rds_west, "orders", "available", timeout=60),
           "r2": wait_instance(rds, "orders-r2", "available", timeout=60)}
    conn.close()
    lab.control.reset()


def test_replicas_are_read_only_standbys_in_their_own_region(replicas):
    rds, rds_west, source, conn = replicas["rds"], replicas["rds_west"], replicas["source"], replicas["conn"]
    r1, dr = replicas["r1"], replicas["dr"]
    for answer in replicas["answers"]:
        assert answer["DBInstanceStatus"] == "creating"
    assert replicas["first_seen"] == ("creating", "creating")

    # Each its own endpoint; the cross-region one lives in us-west-2 only (its identifier is the source's).
    ports = {source["Endpoint"]["Port"], r1["Endpoint"]["Port"], dr["Endpoint"]["Port"]}
    assert len(ports | {replicas["r2"]["Endpoint"]["Port"]}) == 4
    assert dr["DBInstanceArn"].split(":")[3] == WEST and dr["AvailabilityZone"].startswith(WEST)
    east = {i["DBInstanceIdentifier"] for i in rds.describe_db_instances()["DBInstances"]}
    assert east == {"orders", "orders-r1", "orders-r2"}
    assert [i["DBInstanceIdentifier"] for i in rds_west.describe_db_instances()["DBInstances"]] == ["orders"]
    primary = describe_instance(rds, "orders")
    assert sorted(primary["ReadReplicaDBInstanceIdentifiers"]) == sorted(["orders-r1", "orders-r2",
                                                                          dr["DBInstanceArn"]])
    assert "ReadReplicaSourceDBInstanceIdentifier" not in primary
    assert r1["ReadReplicaSourceDBInstanceIdentifier"] == "orders"
    assert dr["ReadReplicaSourceDBInstanceIdentifier"] == source["DBInstanceArn"]
    assert dr["StatusInfos"] == [{"StatusType": "read replication", "Normal": True, "Status": "replicating"}]
    assert dr["BackupRetentionPeriod"] == 0 and dr["MultiAZ"] is False

    # Real standbys: the source's rows, then its new ones; writes refused as on a hot standby.
    assert _count(r1) == _count(dr) == 100
    query(conn, "INSERT INTO orders (note) VALUES ('streamed')")
    assert _wait_for(lambda: _count(r1) == 101 and _count(dr) == 101)
    for replica in (r1, dr):
        replica_conn = connect_instance(replica)
        with pytest.raises(psycopg2.Error) as refused:
            query(replica_conn, "INSERT INTO orders (note) VALUES ('nope')")
        assert refused.value.pgcode == "25006"  # read_only_sql_transaction
        replica_conn.close()

    # Events in the replica's region; none of them in the source's. The smaller class's max_connections would stop a
    # hot standby of the source: the lab raises it to the source's and says so.
    west_messages = _messages(rds_west, "orders")
    assert "Replication for the Read Replica resumed." in west_messages
    assert dr["DBInstanceClass"] == "db.t3.micro"
    assert any(m.startswith("Lab: max_connections requested") for m in west_messages)
    assert "Replication for the Read Replica resumed." not in _messages(rds, "orders")
    assert "Replication for the Read Replica resumed." in _messages(rds, "orders-r1")

    # Only a replica can be promoted; an instance with replicas cannot be stopped; an unencrypted source has no
    # encrypted replica.
    for call in (rds.promote_read_replica, rds.stop_db_instance):
        with pytest.raises(ClientError) as refused_call:
            call(DBInstanceIdentifier="orders")
        assert refused_call.value.response["Error"]["Code"] == "InvalidDBInstanceState"
    key = replicas["lab"].client("kms", region=WEST).create_key(Description="dr")["KeyMetadata"]["Arn"]
    with pytest.raises(ClientError) as encrypted:
        rds_west.create_db_instance_read_replica(DBInstanceIdentifier="orders-enc", KmsKeyId=key,
                                                 SourceDBInstanceIdentifier=source["DBInstanceArn"],
                                                 SourceRegion="us-east-1")
    assert encrypted.value.response["Error"]["Code"] == "InvalidParameterCombination"


def test_paused_replay_lags_honestly_and_replica_lag_reaches_cloudwatch(replicas):
    lab, conn, r1, dr = replicas["lab"], replicas["conn"], replicas["r1"], replicas["dr"]
    control = lab.control
    status = control.pause_replay("orders", region=WEST)
    assert status["paused"] is True
    rows_at_pause = _count(dr)
    started = time.monotonic()
    while time.monotonic() - started < 2.5:
        query(conn, "INSERT INTO orders (note) VALUES ('during pause')")
        time.sleep(0.1)
    # The source moved on; the paused replica did not, and knows how far behind it is. The other replica follows.
    assert _count(dr) == rows_at_pause
    lagging = control.replication_status("orders", region=WEST)
    assert lagging["lag_seconds"] >= 2.0 and lagging["lag_bytes"] > 0
    assert _wait_for(lambda: control.replication_status("orders-r1")["lag_seconds"] == 0)
    assert _count(r1) == _count(replicas["source"])

    cloudwatch = lab.client("cloudwatch", region=WEST)

    def lag_points():
        return cloudwatch.get_metric_statistics(
            Namespace="AWS/RDS", MetricName="ReplicaLag", Dimensions=[{"Name": "DBInstanceIdentifier",
                                                                       "Value": "orders"}],
            StartTime=datetime.now(timezone.utc) - timedelta(minutes=5),
            EndTime=datetime.now(timezone.utc) + timedelta(minutes=1), Period=60, Statistics=["Maximum"])["Datapoints"]
    points = _wait_for(lambda: [p for p in lag_points() if p["Maximum"] >= 2.0], timeout=10)
    assert points and points[0]["Unit"] == "Seconds"
    east = lab.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/RDS", MetricName="ReplicaLag", Dimensions=[{"Name": "DBInstanceIdentifier",
                                                                   "Value": "orders-r1"}],
        StartTime=datetime.now(timezone.utc) - timedelta(minutes=5),
        EndTime=datetime.now(timezone.utc) + timedelta(minutes=1), Period=60, Statistics=["Minimum"])["Datapoints"]
    assert east and min(p["Minimum"] for p in east) < 1.0

    # A delayed replica applies each commit only after the delay.
    control.delay_replay("orders-r1", 2)
    expected = _count(replicas["source"]) + 1
    inserted = time.monotonic()
    query(conn, "INSERT INTO orders (note) VALUES ('delayed')")
    assert _wait_for(lambda: _count(r1) == expected, timeout=15, interval=0.05)
    assert time.monotonic() - inserted >= 1.95
    control.resume_replay("orders-r1")
    assert control.replication_status("orders-r1")["replay_delay"] == 0


def test_promotion_loses_exactly_the_unreplayed_writes(replicas):
    lab, rds, rds_west, conn, dr = (replicas[k] for k in ("lab", "rds", "rds_west", "conn", "dr"))
    # Still paused since the previous test: the writes made since then are not on the replica.
    replica_rows, source_rows = _count(dr), _count(replicas["source"])
    assert source_rows > replica_rows
    requested = time.time()
    answer = rds_west.promote_read_replica(DBInstanceIdentifier="orders", BackupRetentionPeriod=7)["DBInstance"]
    assert answer["DBInstanceStatus"] == "modifying"
    promoted = wait_instance(rds_west, "orders", "available", timeout=60)
    assert "modifying" in promoted["_seen"]
    assert "ReadReplicaSourceDBInstanceIdentifier" not in promoted and "StatusInfos" not in promoted
    assert promoted["BackupRetentionPeriod"] == 7
    assert describe_instance(rds, "orders")["ReadReplicaDBInstanceIdentifiers"] == ["orders-r1", "orders-r2"]
    assert "Promoted Read Replica to a stand-alone database instance" in _messages(rds_west, "orders")

    # Writable, with exactly the rows it had replayed, and no longer following the source.
    promoted_conn = connect_instance(promoted)
    assert query(promoted_conn, "SELECT count(*) FROM orders")[0][0] == replica_rows
    query(promoted_conn, "INSERT INTO orders (note) VALUES ('written in the DR region')")
    promoted_conn.close()
    query(conn, "INSERT INTO orders (note) VALUES ('not replicated any more')")
    time.sleep(0.3)
    assert _count(promoted) == replica_rows + 1

    entry = lab.control.replication_log()[-1]
    assert entry["kind"] == "promote" and entry["identifier"] == "orders" and entry["region"] == WEST
    assert requested - 1 <= entry["requested_at"] <= entry["writable_at"] <= time.time()
    assert entry["writable_at"] - entry["requested_at"] >= 0.5  # the promote duration
    assert entry["lag_seconds_at_request"] >= 2.0
    # The lab counted the lost writes from real rows: all that the source had beyond the replayed ones when the
    # replica stopped following (just after the request), none of what the source took once it was promoted.
    assert entry["requested_at"] <= entry["stopped_following_at"] <= entry["writable_at"]
    assert entry["lost_rows"] == {"public.orders": source_rows - replica_rows}
    assert entry["lost_total"] == source_rows - replica_rows


def test_deleting_a_replica_stops_its_standby_and_drops_its_slot(replicas):
    rds, conn, r2 = replicas["rds"], replicas["conn"], replicas["r2"]
    slots = [row[0] for row in query(conn, "SELECT slot_name FROM pg_replication_slots ORDER BY 1")]
    assert len(slots) == 2 and "orders_r1" in slots[0] and "orders_r2" in slots[1]  # the promoted one's is gone
    rds.delete_db_instance(DBInstanceIdentifier="orders-r2", SkipFinalSnapshot=True)
    assert _wait_for(lambda: query(conn, "SELECT count(*) FROM pg_replication_slots")[0][0] == 1, timeout=10)
    with pytest.raises(psycopg2.OperationalError):
        connect_instance(r2, timeout=2)
    assert _wait_for(lambda: describe_instance(rds, "orders")["ReadReplicaDBInstanceIdentifiers"] == ["orders-r1"])


def test_deleting_the_source_promotes_its_replicas(replicas):
    rds = replicas["rds"]
    rows = _count(replicas["r1"])
    replicas["conn"].close()
    rds.delete_db_instance(DBInstanceIdentifier="orders", SkipFinalSnapshot=True)

    def standalone():
        instance = describe_instance(rds, "orders-r1")
        return instance if "ReadReplicaSourceDBInstanceIdentifier" not in instance else None

    promoted = _wait_for(standalone, timeout=30)
    assert promoted and wait_instance(rds, "orders-r1", "available", timeout=30)
    conn = connect_instance(promoted)
    query(conn, "INSERT INTO orders (note) VALUES ('stand-alone now')")
    assert query(conn, "SELECT count(*) FROM orders")[0][0] == rows + 1
    conn.close()
    entry = replicas["lab"].control.replication_log()[-1]
    assert entry["identifier"] == "orders-r1" and entry["lost_total"] is None  # nothing left to count against


def test_keys_and_slots_of_standbys():
    """No lab needed: the PostgreSQL keys of one identifier in two regions differ (us-east-1's stay as they were),
    slot names are valid PostgreSQL names, a standby gets at least its source's hot-standby settings."""
    from tests.lab.fidelity._support import cluster_key, instance_key
    from tests.lab.postgres import PgCluster, standby_slot_name

    assert instance_key("Orders", "us-east-1") == "db:orders"
    assert instance_key("orders", "us-west-2") == "db:orders@us-west-2"
    assert cluster_key("ledger", "us-west-2") == "cluster:ledger@us-west-2" != cluster_key("ledger")
    assert standby_slot_name("db-orders-r1-12") == "standby_db_orders_r1_12"
    assert len(standby_slot_name("db-" + "x" * 80)) == 63
    settings, raised = PgCluster._at_least({"max_connections": "112", "work_mem": "4096"}, None,
                                           {"max_connections": "225", "max_wal_senders": "10"})
    assert settings == {"work_mem": "4096", "max_connections": "225", "max_wal_senders": "10"}
    assert raised == {"max_connections": "112", "max_wal_senders": None}
    unchanged, lines = PgCluster._at_least(None, "max_connections = '500'\n", {"max_connections": "225",
                                                                               "max_worker_processes": "8"})
    assert unchanged is None and lines == {"max_worker_processes": "8"}
