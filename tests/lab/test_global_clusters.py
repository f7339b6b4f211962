# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Aurora Global Database across us-east-1 and us-west-2: the secondary cluster's PostgreSQL is a hot standby of the
primary's writer; DescribeGlobalClusters answers alike from both regions; SwitchoverGlobalCluster loses no write and
FailoverGlobalCluster(AllowDataLoss) loses exactly the writes the secondary had not replayed, as the lab's
replication log counts them; lag metrics reach CloudWatch in the secondary's region; RemoveFromGlobalCluster promotes.

One global database for the whole file (module fixture); the tests run in order and hand the topology on.
"""

import itertools
import threading
import time
from datetime import datetime, timedelta, timezone

import psycopg2
import pytest
from botocore.exceptions import ClientError

from tests.lab.clients import MASTER_PASSWORD, MASTER_USER, connect, query, wait_cluster

pytestmark = pytest.mark.lab

GLOBAL, EAST, WEST = "glob", "glob-east", "glob-west"
ENGINE = dict(Engine="aurora-postgresql", EngineVersion="15.4")
_PROBE_IDS = itertools.count(-1, -1)  # rows written to check a cluster is writable


@pytest.fixture(scope="module")
def topology(lab):
    lab.control.reset()
    if lab.fidelity:
        lab.control.set_timing(metrics=0.5)
    east, west = lab.client(), lab.client(region="us-west-2")
    primary = east.create_db_cluster(DBClusterIdentifier=EAST, MasterUsername=MASTER_USER,
                                     MasterUserPassword=MASTER_PASSWORD, DatabaseName="app", **ENGINE)["DBCluster"]
    east.create_db_instance(DBInstanceIdentifier="glob-east-1", DBClusterIdentifier=EAST,
                            DBInstanceClass="db.r6g.large", Engine="aurora-postgresql")
    primary = wait_cluster(east, EAST)
    east.create_global_cluster(GlobalClusterIdentifier=GLOBAL, SourceDBClusterIdentifier=primary["DBClusterArn"],
                               Tags=[{"Key": "team", "Value": "dbre"}])
    west.create_db_cluster(DBClusterIdentifier=WEST, GlobalClusterIdentifier=GLOBAL, **ENGINE)
    west.create_db_instance(DBInstanceIdentifier="glob-west-1", DBClusterIdentifier=WEST,
                            DBInstanceClass="db.r6g.large", Engine="aurora-postgresql")
    secondary = wait_cluster(west, WEST)
    yield {"lab": lab, "rds": {"us-east-1": east, "us-west-2": west},
           "clusters": {EAST: primary, WEST: secondary}, "arn": {EAST: primary["DBClusterArn"],
                                                                 WEST: secondary["DBClusterArn"]}}
    lab.control.reset()


def _count(cluster, minimum=None, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        conn = connect(cluster["Endpoint"], cluster["Port"])
        try:
            count = query(conn, "SELECT count(*) FROM orders")[0][0]
        finally:
            conn.close()
        if minimum is None or count >= minimum or time.monotonic() > deadline:
            return count
        time.sleep(0.05)


def _write_error(cluster):
    conn = connect(cluster["Endpoint"], cluster["Port"])
    try:
        query(conn, "INSERT INTO orders VALUES (%s)", (next(_PROBE_IDS),))
    except psycopg2.Error as error:
        return error.pgcode
    finally:
        conn.close()
    return None


def _insert(cluster, ids):
    conn = connect(cluster["Endpoint"], cluster["Port"])
    try:
        for number in ids:
            query(conn, "INSERT INTO orders VALUES (%s)", (number,))
    finally:
        conn.close()


def _writers(rds):
    members = rds.describe_global_clusters(GlobalClusterIdentifier=GLOBAL)["GlobalClusters"][0]["GlobalClusterMembers"]
    return {member["DBClusterArn"]: member["IsWriter"] for member in members}


def _wait_global(rds, status="available", timeout=60.0):
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        current = rds.describe_global_clusters(GlobalClusterIdentifier=GLOBAL)["GlobalClusters"][0]
        if not seen or seen[-1] != current["Status"]:
            seen.append(current["Status"])
        if current["Status"] == status:
            return current, seen
        assert time.monotonic() < deadline, f"global cluster not {status}; seen {seen}"
        time.sleep(0.05)


def _messages(rds, identifier):
    events = rds.describe_events(SourceType="db-cluster", SourceIdentifier=identifier,
                                 StartTime=datetime.now(timezone.utc) - timedelta(minutes=5))["Events"]
    return [event["Message"] for event in events]


def test_secondary_is_a_read_only_standby_described_from_both_regions(topology):
    east, west = topology["rds"]["us-east-1"], topology["rds"]["us-west-2"]
    arn = topology["arn"]
    for rds in (east, west):
        described = rds.describe_global_clusters(GlobalClusterIdentifier=GLOBAL)["GlobalClusters"][0]
        assert {m["DBClusterArn"]: m["IsWriter"] for m in described["GlobalClusterMembers"]} == {
            arn[EAST]: True, arn[WEST]: False}
        assert {"Key": "team", "Value": "dbre"} in described["TagList"]
        with pytest.raises(ClientError) as error:
            rds.describe_global_clusters(GlobalClusterIdentifier="no-such-global")
        assert error.value.response["Error"]["Code"] == "GlobalClusterNotFoundFault"
    global_arn = described["GlobalClusterArn"]
    assert described["GlobalClusterMembers"][0]["Readers"] == [arn[WEST]]
    west.add_tags_to_resource(ResourceName=global_arn, Tags=[{"Key": "tier", "Value": "gold"}])
    east.remove_tags_from_resource(ResourceName=global_arn, TagKeys=["team"])
    assert east.list_tags_for_resource(ResourceName=global_arn)["TagList"] == [{"Key": "tier", "Value": "gold"}]
    secondary = west.describe_db_clusters(DBClusterIdentifier=WEST)["DBClusters"][0]
    assert [m["IsClusterWriter"] for m in secondary["DBClusterMembers"]] == [False]
    assert secondary["MasterUsername"] == MASTER_USER and secondary["DatabaseName"] == "app"
    assert secondary["GlobalClusterIdentifier"] == GLOBAL
    assert secondary["Port"] != topology["clusters"][EAST]["Port"]
    conn = connect(topology["clusters"][EAST]["Endpoint"], topology["clusters"][EAST]["Port"])
    query(conn, "CREATE TABLE orders (id int PRIMARY KEY)")  # the later tests of this file use it
    query(conn, "INSERT INTO orders SELECT generate_series(1, 100)")
    conn.close()
    _insert(topology["clusters"][EAST], range(101, 151))
    assert _count(topology["clusters"][WEST], 150) == 150, "the primary's writes reach the other region"
    assert _write_error(topology["clusters"][WEST]) == "25006"


def test_replication_lag_metrics_in_the_secondary_region(topology):
    lab = topology["lab"]
    lab.control.delay_replay(WEST, 30, region="us-west-2", kind="cluster")
    since = datetime.now(timezone.utc)
    try:
        _insert(topology["clusters"][EAST], range(151, 161))
        cloudwatch = lab.client("cloudwatch", region="us-west-2")
        dimensions = [{"Name": "DBClusterIdentifier", "Value": WEST}, {"Name": "SourceRegion", "Value": "us-east-1"}]
        deadline, lag, rpo = time.monotonic() + 15, [], []
        while time.monotonic() < deadline and not (lag and max(lag) >= 1000):
            time.sleep(0.25)
            end = datetime.now(timezone.utc) + timedelta(seconds=5)
            lag = [p["Maximum"] for p in cloudwatch.get_metric_statistics(
                Namespace="AWS/RDS", MetricName="AuroraGlobalDBReplicationLag", Dimensions=dimensions,
                StartTime=since, EndTime=end, Period=1, Statistics=["Maximum"])["Datapoints"]]
            rpo = [p["Maximum"] for p in cloudwatch.get_metric_statistics(
                Namespace="AWS/RDS", MetricName="AuroraGlobalDBRPOLag", Dimensions=dimensions,
                StartTime=since, EndTime=end, Period=1, Statistics=["Maximum"])["Datapoints"]]
        assert lag and max(lag) >= 1000, f"a delayed replay shows as replication lag (ms): {lag}"
        assert rpo and min(rpo) < 1000, f"the WAL still arrives: the RPO lag stays small (ms): {rpo}"
    finally:
        lab.control.delay_replay(WEST, 0, region="us-west-2", kind="cluster")
    assert _count(topology["clusters"][WEST], 160) == 160


def test_switchover_moves_the_writer_without_losing_a_write(topology):
    lab, east, west = topology["lab"], topology["rds"]["us-east-1"], topology["rds"]["us-west-2"]
    primary, secondary = topology["clusters"][EAST], topology["clusters"][WEST]
    acknowledged, stop = [], threading.Event()

    def write():
        number = 1000
        while not stop.is_set():
            try:
                conn = connect(primary["Endpoint"], primary["Port"], timeout=1)
                try:
                    while not stop.is_set():
                        query(conn, "INSERT INTO orders VALUES (%s)", (number,))
                        acknowledged.append(number)
                        number += 1
                        time.sleep(0.01)
                finally:
                    conn.close()
            except psycopg2.Error:
                number += 1  # the write in flight may or may not have committed: never reuse its id
                time.sleep(0.05)

    lab.control.delay_replay(WEST, 2, region="us-west-2", kind="cluster")
    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while len(acknowledged) < 20:  # writes run when the switchover is asked for
        assert time.monotonic() < deadline, "the primary took no writes"
        time.sleep(0.05)
    requested = time.time()
    answer = west.switchover_global_cluster(GlobalClusterIdentifier=GLOBAL,
                                            TargetDbClusterIdentifier=topology["arn"][WEST])["GlobalCluster"]
    assert answer["Status"] == "switching-over"
    assert answer["FailoverState"]["ToDbClusterArn"] == topology["arn"][WEST]
    assert answer["FailoverState"]["IsDataLossAllowed"] is False
    described, seen = _wait_global(east)
    stop.set()
    thread.join(10)
    assert "switching-over" in seen
    assert _writers(east) == {topology["arn"][EAST]: False, topology["arn"][WEST]: True}
    assert len(acknowledged) >= 20

    conn = connect(secondary["Endpoint"], secondary["Port"])
    present = {row[0] for row in query(conn, "SELECT id FROM orders WHERE id >= 1000")}
    conn.close()
    assert set(acknowledged) <= present, "a switchover loses no acknowledged write"
    assert _write_error(secondary) is None, "the new primary accepts writes"
    assert _count(primary, 161 + len(present)) >= 161 + len(present), "the old primary follows the new one"
    assert _write_error(primary) == "25006"
    old_members = east.describe_db_clusters(DBClusterIdentifier=EAST)["DBClusters"][0]["DBClusterMembers"]
    assert [m["IsClusterWriter"] for m in old_members] == [False]

    entry = [e for e in lab.control.replication_log() if e["kind"] == "global_switchover"][-1]
    assert entry["identifier"] == WEST and entry["region"] == "us-west-2"
    assert entry["lost_total"] == 0
    assert requested <= entry["requested_at"] <= entry["writable_at"]
    assert "Global switchover to DB cluster glob-west in Region us-west-2 completed." in _messages(west, WEST)
    assert "Global switchover to DB cluster glob-west in Region us-west-2 completed." in _messages(east, EAST)


def test_failover_with_data_loss_loses_exactly_the_unreplayed_writes(topology):
    lab, east, west = topology["lab"], topology["rds"]["us-east-1"], topology["rds"]["us-west-2"]
    primary, secondary = topology["clusters"][WEST], topology["clusters"][EAST]  # after the switchover
    before = _count(primary)
    assert _count(secondary, before) == before
    lab.control.pause_replay(EAST, region="us-east-1", kind="cluster")
    _insert(primary, range(5000, 5025))
    with pytest.raises(ClientError) as error:
        east.failover_global_cluster(GlobalClusterIdentifier=GLOBAL, TargetDbClusterIdentifier=topology["arn"][EAST],
                                     AllowDataLoss=True, Switchover=True)
    assert error.value.response["Error"]["Code"] == "InvalidParameterCombination"
    answer = east.failover_global_cluster(GlobalClusterIdentifier=GLOBAL,
                                          TargetDbClusterIdentifier=topology["arn"][EAST],
                                          AllowDataLoss=True)["GlobalCluster"]
    assert answer["Status"] == "failing-over" and answer["FailoverState"]["IsDataLossAllowed"] is True
    _unused, seen = _wait_global(west)
    assert "failing-over" in seen
    assert _writers(west) == {topology["arn"][EAST]: True, topology["arn"][WEST]: False}
    entry = [e for e in lab.control.replication_log() if e["kind"] == "global_failover"][-1]
    assert entry["identifier"] == EAST and entry["region"] == "us-east-1"
    assert entry["lost_total"] == 25 and entry["lost_rows"].get("public.orders") == 25
    assert _count(secondary) == before, "the new primary holds what it had replayed, no more"
    assert _write_error(secondary) is None
    assert _count(primary, before + 1) == before + 1, "the old primary is rebuilt from the new one (its 25 gone)"
    assert _write_error(primary) == "25006"
    assert "Global failover to DB cluster glob-east in Region us-east-1 completed." in _messages(east, EAST)

    # Without AllowDataLoss, FailoverGlobalCluster is a switchover: back to us-west-2, nothing lost.
    west.failover_global_cluster(GlobalClusterIdentifier=GLOBAL, TargetDbClusterIdentifier=topology["arn"][WEST])
    _wait_global(west)
    assert _writers(west) == {topology["arn"][EAST]: False, topology["arn"][WEST]: True}
    entry = lab.control.replication_log()[-1]
    assert entry["kind"] == "global_switchover" and entry["lost_total"] == 0


def test_remove_from_global_cluster_promotes_the_secondary(topology):
    east, west = topology["rds"]["us-east-1"], topology["rds"]["us-west-2"]
    with pytest.raises(ClientError) as error:
        east.delete_global_cluster(GlobalClusterIdentifier=GLOBAL)
    assert error.value.response["Error"]["Code"] == "InvalidGlobalClusterStateFault"
    with pytest.raises(ClientError) as error:
        west.delete_db_cluster(DBClusterIdentifier=WEST, SkipFinalSnapshot=True)
    assert error.value.response["Error"]["Code"] == "InvalidDBClusterStateFault"
    with pytest.raises(ClientError) as error:
        west.remove_from_global_cluster(GlobalClusterIdentifier=GLOBAL, DbClusterIdentifier=topology["arn"][WEST])
    assert error.value.response["Error"]["Code"] == "InvalidGlobalClusterStateFault", "the writer goes last"
    west.remove_from_global_cluster(GlobalClusterIdentifier=GLOBAL, DbClusterIdentifier=topology["arn"][EAST])
    wait_cluster(east, EAST)
    members = _writers(west)
    assert members == {topology["arn"][WEST]: True}
    assert _write_error(topology["clusters"][EAST]) is None, "a removed secondary is a standalone writable cluster"
    assert "GlobalClusterIdentifier" not in east.describe_db_clusters(DBClusterIdentifier=EAST)["DBClusters"][0] or \
        not east.describe_db_clusters(DBClusterIdentifier=EAST)["DBClusters"][0]["GlobalClusterIdentifier"]
    west.remove_from_global_cluster(GlobalClusterIdentifier=GLOBAL, DbClusterIdentifier=topology["arn"][WEST])
    protected = west.modify_global_cluster(GlobalClusterIdentifier=GLOBAL, DeletionProtection=True)["GlobalCluster"]
    assert protected["DeletionProtection"] is True and protected["GlobalClusterMembers"] == []
    with pytest.raises(ClientError) as error:
        east.delete_global_cluster(GlobalClusterIdentifier=GLOBAL)
    assert error.value.response["Error"]["Code"] == "InvalidGlobalClusterStateFault"
    assert "protected" in error.value.response["Error"]["Message"]
    east.modify_global_cluster(GlobalClusterIdentifier=GLOBAL, DeletionProtection=False)
    east.delete_global_cluster(GlobalClusterIdentifier=GLOBAL)
    assert east.describe_global_clusters()["GlobalClusters"] == []
