# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Aurora reader instances are hot standbys of their cluster's writer: each has its own PostgreSQL and endpoint port,
is read-only (SQLSTATE 25006) and publishes AuroraReplicaLag; failover_db_cluster stays lossless as Aurora's shared
storage is (the old writer stops cleanly, the target reader is promoted, the old writer becomes a reader).

One cluster with three instances for the whole file (module fixture); the tests run in order and hand it on.
"""

import threading
import time
from datetime import datetime, timedelta, timezone

import psycopg2
import pytest

from tests.lab.clients import MASTER_PASSWORD, MASTER_USER, connect, connect_instance, query, wait_cluster

pytestmark = pytest.mark.lab

CLUSTER = "aurr"
MEMBERS = (("aurr-1", 1), ("aurr-2", 2), ("aurr-3", 0))


@pytest.fixture(scope="module")
def aurora(lab):
    lab.control.reset()
    if lab.fidelity:
        lab.control.set_timing(failover=1.0, metrics=0.5)
    rds = lab.client()
    rds.create_db_cluster(DBClusterIdentifier=CLUSTER, Engine="aurora-postgresql", EngineVersion="15.4",
                          MasterUsername=MASTER_USER, MasterUserPassword=MASTER_PASSWORD, DatabaseName="app")
    for name, tier in MEMBERS:
        rds.create_db_instance(DBInstanceIdentifier=name, DBClusterIdentifier=CLUSTER, Engine="aurora-postgresql",
                               DBInstanceClass="db.r6g.large", PromotionTier=tier)
    cluster = wait_cluster(rds, CLUSTER)
    yield {"lab": lab, "rds": rds, "cluster": cluster}
    lab.control.reset()


def _instance(rds, identifier):
    return rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]


def _wait_rows(instance, minimum, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        conn = connect_instance(instance)
        try:
            count = query(conn, "SELECT count(*) FROM orders")[0][0]
        finally:
            conn.close()
        if count >= minimum or time.monotonic() > deadline:
            return count
        time.sleep(0.05)


def _write_fails_read_only(instance):
    conn = connect_instance(instance)
    try:
        with pytest.raises(psycopg2.Error) as error:
            query(conn, "INSERT INTO orders (id) VALUES (-1)")
        return error.value.pgcode
    finally:
        conn.close()


def test_each_reader_is_a_read_only_standby_of_the_writer(aurora):
    rds, cluster = aurora["rds"], aurora["cluster"]
    writer = _instance(rds, "aurr-1")
    readers = [_instance(rds, name) for name in ("aurr-2", "aurr-3")]
    ports = {cluster["Port"], *(r["Endpoint"]["Port"] for r in readers)}
    assert len(ports) == 3, "each reader serves its own PostgreSQL, apart from the writer's"
    assert writer["Endpoint"]["Port"] == cluster["Port"]
    conn = connect(cluster["Endpoint"], cluster["Port"])
    assert query(conn, "SELECT pg_is_in_recovery()")[0][0] is False
    query(conn, "CREATE TABLE orders (id int PRIMARY KEY, at timestamptz DEFAULT now())")  # the later tests use it
    query(conn, "INSERT INTO orders (id) SELECT generate_series(1, 150)")
    conn.close()
    for reader in readers:
        assert _wait_rows(reader, 150) == 150, "the writer's rows reach every reader"
        conn = connect_instance(reader)
        assert query(conn, "SELECT pg_is_in_recovery()")[0][0] is True
        conn.close()
        assert _write_fails_read_only(reader) == "25006"


def test_failover_promotes_the_reader_without_losing_a_write(aurora):
    lab, rds, cluster = aurora["lab"], aurora["rds"], aurora["cluster"]
    acknowledged, stop = [], threading.Event()

    def write():
        next_id = 1000
        while not stop.is_set():
            try:
                conn = connect(cluster["Endpoint"], cluster["Port"], timeout=1)
                try:
                    while not stop.is_set():
                        query(conn, "INSERT INTO orders (id) VALUES (%s)", (next_id,))
                        acknowledged.append(next_id)
                        next_id += 1
                        time.sleep(0.01)
                finally:
                    conn.close()
            except psycopg2.Error:
                next_id += 1  # the write in flight may or may not have committed: never reuse its id
                time.sleep(0.05)

    writer_thread = threading.Thread(target=write, daemon=True)
    writer_thread.start()
    time.sleep(0.3)
    old_reader_port = _instance(rds, "aurr-3")["Endpoint"]["Port"]
    rds.failover_db_cluster(DBClusterIdentifier=CLUSTER, TargetDBInstanceIdentifier="aurr-3")
    assert wait_cluster(rds, CLUSTER, "failing-over", timeout=5)
    described = wait_cluster(rds, CLUSTER, "available", timeout=60)
    time.sleep(0.5)
    stop.set()
    writer_thread.join(10)
    writers = [m["DBInstanceIdentifier"] for m in described["DBClusterMembers"] if m["IsClusterWriter"]]
    assert writers == ["aurr-3"]
    assert len(acknowledged) > 20 and acknowledged[-1] > 1000

    conn = connect(cluster["Endpoint"], cluster["Port"])
    present = {row[0] for row in query(conn, "SELECT id FROM orders WHERE id >= 1000")}
    assert query(conn, "SELECT pg_is_in_recovery()")[0][0] is False
    conn.close()
    assert set(acknowledged) <= present, "a failover of Aurora loses no acknowledged write"

    new_writer, old_writer = _instance(rds, "aurr-3"), _instance(rds, "aurr-1")
    assert new_writer["Endpoint"]["Port"] == cluster["Port"]
    assert old_writer["Endpoint"]["Port"] == old_reader_port, "the old writer serves as a reader on the port freed"
    assert _wait_rows(old_writer, len(present) + 150) >= len(present) + 150
    assert _write_fails_read_only(old_writer) == "25006"
    assert _wait_rows(_instance(rds, "aurr-2"), len(present) + 150) >= len(present) + 150
    assert _write_fails_read_only(_instance(rds, "aurr-2")) == "25006"

    entry = lab.control.failover_log()[-1]
    assert entry["identifier"] == CLUSTER and entry["to_writer"] == "aurr-3"
    assert entry["lost_total"] == 0 and entry["completed_at"]
    events = rds.describe_events(SourceType="db-cluster", SourceIdentifier=CLUSTER,
                                 StartTime=datetime.now(timezone.utc) - timedelta(minutes=5))["Events"]
    messages = [e["Message"] for e in events]
    assert "Started cluster failover to DB instance: aurr-3" in messages
    assert "Completed failover to DB instance: aurr-3" in messages


def test_aurora_replica_lag_reaches_cloudwatch(aurora):
    cloudwatch = aurora["lab"].client("cloudwatch")
    since = datetime.now(timezone.utc)  # after the failover: aurr-3 is the writer from here on
    deadline = time.monotonic() + 10
    datapoints = []
    while time.monotonic() < deadline and not datapoints:
        datapoints = cloudwatch.get_metric_statistics(
            Namespace="AWS/RDS", MetricName="AuroraReplicaLag",
            Dimensions=[{"Name": "DBInstanceIdentifier", "Value": "aurr-2"}], StartTime=since,
            EndTime=datetime.now(timezone.utc) + timedelta(seconds=5), Period=1,
            Statistics=["Maximum", "SampleCount"])["Datapoints"]
        time.sleep(0.25)
    assert datapoints, "AuroraReplicaLag of a reader is published"
    assert all(p["Unit"] == "Milliseconds" and 0 <= p["Maximum"] < 5000 for p in datapoints)
    writer = cloudwatch.get_metric_statistics(
        Namespace="AWS/RDS", MetricName="AuroraReplicaLag",
        Dimensions=[{"Name": "DBInstanceIdentifier", "Value": "aurr-3"}], StartTime=since,
        EndTime=datetime.now(timezone.utc) + timedelta(seconds=5), Period=60, Statistics=["Maximum"])["Datapoints"]
    assert writer == [], "the writer has no replica lag"


def test_deleting_a_reader_removes_its_standby(aurora):
    rds, cluster = aurora["rds"], aurora["cluster"]
    conn = connect(cluster["Endpoint"], cluster["Port"])
    slots = query(conn, "SELECT count(*) FROM pg_replication_slots WHERE slot_type = 'physical' AND active")[0][0]
    assert slots == 2, "one streaming slot per reader on the writer"
    port = _instance(rds, "aurr-2")["Endpoint"]["Port"]
    rds.delete_db_instance(DBInstanceIdentifier="aurr-2")
    deadline = time.monotonic() + 15
    while query(conn, "SELECT count(*) FROM pg_replication_slots WHERE slot_type = 'physical'")[0][0] != 1:
        assert time.monotonic() < deadline, "the deleted reader's slot still holds WAL on the writer"
        time.sleep(0.1)
    conn.close()
    with pytest.raises(psycopg2.OperationalError):
        connect(cluster["Endpoint"], port, timeout=1)
