# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbre.rds.rds_dr_drill against the lab: real standbys in us-west-2, measured against the lab's own truth.

One lab and one topology for the file (module fixture), the tests in order:

- ``orders`` (us-east-1, Multi-AZ, 100 rows) with its real cross-region DR replica ``orders-dr`` (us-west-2);
- the Aurora Global Database ``pay``: writer cluster ``pay-east`` (us-east-1), secondary ``pay-west`` (us-west-2).

A rehearsal passes with its checks on the promoted copy, touches neither ``orders`` nor ``orders-dr`` (the lab's call
log) and leaves nothing behind, also after a failed check. A switchover with writes running loses none and comes
back. A failover with replay paused on the secondary reports exactly the writes the lab's replication log dropped.
"""

import datetime
import json
import os
import pathlib
import subprocess
import sys
import threading
import time

import psycopg2
import pytest

from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import owner_marker
from ansible_collections.dbre.rds.plugins.module_utils.restore_drill import owner_tag_value
from tests.lab.clients import MASTER_PASSWORD, MASTER_USER, create_postgres, wait_cluster, wait_instance

ROOT = pathlib.Path(__file__).resolve().parents[2]
ANSIBLE = str(pathlib.Path(sys.executable).parent / "ansible")
MODULE = "dbre.rds.rds_dr_drill"
MUTATING_RDS = ("Create", "Delete", "Promote", "Modify", "Reboot", "Failover", "Switchover", "Restore", "Remove",
                "Start", "Stop", "Add")
PROBE_TABLE = "dbre_rds_dr_probe"
CREDENTIALS = {"login_user": MASTER_USER, "login_password": MASTER_PASSWORD, "login_db": "app"}


def module_env(lab):
    env = dict(os.environ)
    env.update(lab.env)
    env.update(ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build"), ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_NOCOLOR="1")
    return env


def command(args, check=False):
    return [ANSIBLE, "localhost", "-i", "localhost,", "-c", "local", "-m", MODULE, "-a", json.dumps(args)] + \
        (["--check"] if check else [])


def parse(stdout, stderr):
    try:
        return json.loads(stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError):
        raise AssertionError(f"no module result in the output:\n{stdout[-3000:]}\n{stderr[-3000:]}") from None


def run(lab, args, check=False):
    done = subprocess.run(command(args, check), env=module_env(lab), cwd=ROOT, capture_output=True, text=True,
                          timeout=240, check=False)
    return parse(done.stdout, done.stderr)


def start(lab, args):
    return subprocess.Popen(command(args), env=module_env(lab), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def connect(endpoint, port):
    conn = psycopg2.connect(host=endpoint, port=port, user=MASTER_USER, password=MASTER_PASSWORD, dbname="app",
                            connect_timeout=5)
    conn.autocommit = True
    return conn


def sql(endpoint, port, statement):
    conn = connect(endpoint, port)
    try:
        with conn.cursor() as cursor:
            cursor.execute(statement)
            return cursor.fetchall() if cursor.description else None
    finally:
        conn.close()


def mutating(lab, since):
    return [c for c in lab.control.calls(since=since, service="rds")
            if str(c.get("action", "")).startswith(MUTATING_RDS)]


def instances(rds):
    return sorted(i["DBInstanceIdentifier"] for i in rds.describe_db_instances()["DBInstances"])


def writer_of(rds, global_id):
    members = rds.describe_global_clusters(GlobalClusterIdentifier=global_id)["GlobalClusters"][0]
    return next(m["DBClusterArn"].split(":")[-1] for m in members["GlobalClusterMembers"] if m["IsWriter"])


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def topology(lab):
    lab.control.reset()
    lab.control.set_timing(replica=0.3, promote=0.3)
    east, west = lab.client("rds"), lab.client("rds", region="us-west-2")
    orders = create_postgres(east, "orders", MultiAZ=True, BackupRetentionPeriod=1)
    sql(orders["Endpoint"]["Address"], orders["Endpoint"]["Port"],
        "CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders SELECT generate_series(1, 100)")
    west.create_db_instance_read_replica(DBInstanceIdentifier="orders-dr", SourceRegion="us-east-1",
                                         SourceDBInstanceIdentifier=orders["DBInstanceArn"])
    engine = dict(Engine="aurora-postgresql", EngineVersion="15.4")
    pay = east.create_db_cluster(DBClusterIdentifier="pay-east", MasterUsername=MASTER_USER,
                                 MasterUserPassword=MASTER_PASSWORD, DatabaseName="app", **engine)["DBCluster"]
    east.create_db_instance(DBInstanceIdentifier="pay-east-1", DBClusterIdentifier="pay-east",
                            DBInstanceClass="db.r6g.large", Engine="aurora-postgresql")
    pay = wait_cluster(east, "pay-east")
    sql(pay["Endpoint"], pay["Port"], "CREATE TABLE ledger (id int PRIMARY KEY); "
                                      "INSERT INTO ledger SELECT generate_series(1, 50)")
    east.create_global_cluster(GlobalClusterIdentifier="pay", SourceDBClusterIdentifier=pay["DBClusterArn"])
    west.create_db_cluster(DBClusterIdentifier="pay-west", GlobalClusterIdentifier="pay", **engine)
    west.create_db_instance(DBInstanceIdentifier="pay-west-1", DBClusterIdentifier="pay-west",
                            DBInstanceClass="db.r6g.large", Engine="aurora-postgresql")
    wait_instance(west, "orders-dr", "available")
    secondary = wait_cluster(west, "pay-west")
    zone = lab.client("route53").create_hosted_zone(Name="example.internal", CallerReference="dr-drill")
    sns, sqs = lab.client("sns"), lab.client("sqs")
    topic = sns.create_topic(Name="dbre-dr")["TopicArn"]
    queue = sqs.create_queue(QueueName="dbre-dr-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    yield {"lab": lab, "east": east, "west": west, "orders": orders, "pay": pay, "pay_west": secondary,
           "zone": zone["HostedZone"]["Id"].split("/")[-1], "topic": topic, "queue": queue, "sqs": sqs}
    lab.control.reset()


def rehearsal(**args):
    return dict({"db_instance_identifier": "orders", "dr_region": "us-west-2", "dr_instance_identifier": "orders-dr",
                 "poll_interval": 0.2, "probe_interval": 0.1, "wait_timeout": 120, "cleanup_timeout": 60},
                **CREDENTIALS, **args)


def test_rehearsal_promotes_a_temporary_copy_and_touches_nothing_else(topology, tmp_path):
    lab, east, west = topology["lab"], topology["east"], topology["west"]
    since = time.time()
    planned = run(lab, rehearsal(), check=True)
    assert planned.get("verdict") == "planned", planned
    assert [s["call"] for s in planned["plan"]["steps"]] == ["CreateDBInstanceReadReplica", "PromoteReadReplica",
                                                             "DeleteDBInstance"]
    replica = planned["plan"]["replica"]
    assert replica.startswith("orders-dr-drill-") and planned["plan"]["replica_request"]["SourceRegion"] == "us-east-1"
    assert mutating(lab, since) == [], "check mode makes no mutating call"
    # The copy goes where the real DR replica is: its security groups (and subnet group, when it has one).
    dr = west.describe_db_instances(DBInstanceIdentifier="orders-dr")["DBInstances"][0]
    dr_groups = [g["VpcSecurityGroupId"] for g in dr["VpcSecurityGroups"]]
    assert dr_groups and planned["plan"]["replica_request"]["VpcSecurityGroupIds"] == dr_groups, planned["plan"]
    assert planned["plan"]["replica_request"].get("DBSubnetGroupName") == (dr.get("DBSubnetGroup") or {}).get(
        "DBSubnetGroupName")

    since = time.time()
    checks = [{"name": "orders replicated", "sql": "SELECT count(*) FROM orders", "expect": {"equals": 100}},
              {"name": "writable", "sql": "SELECT NOT pg_is_in_recovery()", "expect": {"equals": True}}]
    result = run(lab, rehearsal(checks=checks, max_rto_seconds=60, report_dir=str(tmp_path)))
    assert result.get("passed") is True, result.get("msg") or result.get("failure")
    assert [c["passed"] for c in result["checks"]] == [True, True]
    measured = result["measurements"]
    assert measured["lag_source"] == "sql" and measured["lag_seconds_before"] <= 1.0
    assert 0 < result["rto_seconds"] < 60 and measured["writable_at"] >= measured["requested_at"]
    replica = result["plan"]["replica"]
    # The lab's truth: the promotion it performed, and when its PostgreSQL took writes.
    truth = [e for e in lab.control.replication_log() if e["kind"] == "promote" and e["identifier"] == replica]
    assert len(truth) == 1 and truth[0]["region"] == "us-west-2", lab.control.replication_log()
    assert result["rto_seconds"] >= truth[0]["writable_at"] - truth[0]["requested_at"] - 0.1

    calls = mutating(lab, since)
    assert sorted({c["action"] for c in calls}) == ["CreateDBInstanceReadReplica", "DeleteDBInstance",
                                                    "PromoteReadReplica"]
    create = next(c for c in calls if c["action"] == "CreateDBInstanceReadReplica")
    assert sorted(v for k, v in create["params"].items() if k.startswith("VpcSecurityGroupIds.")) == sorted(dr_groups)
    assert {c["params"].get("DBInstanceIdentifier") for c in calls} == {replica}, \
        "every mutating call targets the drill's own replica, never orders or orders-dr"
    assert instances(west) == ["orders-dr", "pay-west-1"], "nothing left behind in the DR region"
    assert instances(east) == ["orders", "pay-east-1"]
    dr = west.describe_db_instances(DBInstanceIdentifier="orders-dr")["DBInstances"][0]
    assert dr["DBInstanceStatus"] == "available" and dr["ReadReplicaSourceDBInstanceIdentifier"]
    assert sorted(pathlib.Path(p).suffix for p in result["report_files"].values()) == [".json", ".md", ".xml"]
    report = json.loads(pathlib.Path(result["report_files"]["json"]).read_text())
    assert report["kind"] == "dr_drill" and report["passed"] is True


def test_rehearsal_with_a_failed_check_still_deletes_its_copy(topology):
    """A standing replica an earlier drill made for drills (it carries dbre:drill-id) is used instead of a new one only
    when that drill is dead; it is re-tagged as this drill's before the promotion; a failed check fails the drill,
    and the copy is deleted all the same."""
    lab, west = topology["lab"], topology["west"]
    # A live drill's replica: its owner is this (running) test process, and it expires in an hour.
    live_owner = owner_tag_value(owner_marker())
    expires = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    standing = west.create_db_instance_read_replica(
        DBInstanceIdentifier="orders-drill-standing", SourceRegion="us-east-1",
        SourceDBInstanceIdentifier=topology["orders"]["DBInstanceArn"],
        Tags=[{"Key": "dbre:drill-id", "Value": "standing-1"}, {"Key": "dbre:drill-expires", "Value": expires},
              {"Key": "dbre:drill-owner", "Value": live_owner}])["DBInstance"]
    wait_instance(west, "orders-drill-standing", "available")
    since = time.time()
    checks = [{"name": "too many orders", "sql": "SELECT count(*) FROM orders", "expect": {"equals": 999}}]
    args = rehearsal(checks=checks, dr_instance_identifier=None, replica_identifier="orders-drill-standing")
    refused = run(lab, args)
    assert refused.get("failed") is True, refused
    assert f"belongs to drill standing-1, whose owner {live_owner} is alive and which expires {expires}" \
        in refused["msg"], refused["msg"]
    assert mutating(lab, since) == [], "a live drill's replica is neither re-tagged, promoted nor deleted"
    assert "orders-drill-standing" in instances(west)

    # The same replica once its drill has expired: reused, re-tagged with this drill's id, promoted and deleted.
    west.add_tags_to_resource(ResourceName=standing["DBInstanceArn"],
                              Tags=[{"Key": "dbre:drill-expires", "Value": "2020-01-01T00:00:00Z"}])
    since = time.time()
    result = run(lab, args)
    assert result.get("failed") is True and result["passed"] is False
    assert "check: too many orders did not hold (observed 100" in result["msg"]
    assert [s["call"] for s in result["plan"]["steps"]] == ["AddTagsToResource", "PromoteReadReplica",
                                                            "DeleteDBInstance"]
    assert result["cleanup"]["removed"] == ["orders-drill-standing"] and not result["cleanup"]["left_behind"]
    calls = mutating(lab, since)
    assert [c["action"] for c in calls if c["action"] != "DeleteDBInstance"] == \
        ["AddTagsToResource", "PromoteReadReplica"], calls
    tagged = calls[0]["params"]
    assert tagged["ResourceName"] == standing["DBInstanceArn"], tagged
    tags = {tagged[k]: tagged[k[:-len("Key")] + "Value"] for k in tagged if k.startswith("Tags.") and k.endswith("Key")}
    assert tags["dbre:drill-id"] == result["drill_id"] and tags["dbre:drill-expires"] > expires, tagged
    assert sorted({c["action"] for c in calls}) == ["AddTagsToResource", "DeleteDBInstance", "PromoteReadReplica"]
    assert instances(west) == ["orders-dr", "pay-west-1"]


def test_global_switchover_with_writes_loses_nothing_and_switches_back(topology):
    lab, east = topology["lab"], topology["east"]
    # Check mode runs the probe-table pre-check too: a table the module did not create is refused, as in a real run.
    since = time.time()
    refused = run(lab, dict({"mode": "switchover", "global_cluster_identifier": "pay", "probe_table": "ledger"},
                            **CREDENTIALS), check=True)
    assert refused.get("failed") is True and "probe_table ledger names an existing table (public.ledger)" \
        in refused["msg"], refused
    assert mutating(lab, since) == []
    since = time.time()
    result = run(lab, dict({"mode": "switchover", "global_cluster_identifier": "pay", "switch_back": True,
                            "poll_interval": 0.2, "probe_interval": 0.1, "probe_settle_seconds": 0.5,
                            "wait_timeout": 120, "checks": [{"name": "ledger", "sql": "SELECT count(*) FROM ledger",
                                                             "expect": {"equals": 50}}]}, **CREDENTIALS))
    assert result.get("passed") is True, result.get("msg") or result.get("failure")
    measured = result["measurements"]
    assert result["lost_writes"] == 0 and measured["acknowledged_writes"] > 10
    assert measured["rows_found"] >= measured["acknowledged_writes"]
    assert measured["switch_back"] == "done" and measured["old_primary_secondary_seconds"] > 0
    assert measured["switch_back_rto_seconds"] > 0 and result["checks"][0]["passed"]
    switches = [e for e in lab.control.replication_log() if e["kind"] == "global_switchover"
                and e["requested_at"] >= since]
    assert [(e["identifier"], e["region"], e["lost_total"]) for e in switches] == [
        ("pay-west", "us-west-2", 0), ("pay-east", "us-east-1", 0)], "the writer went to us-west-2 and came back"
    assert result["writer"]["after"] == {"identifier": "pay-east", "region": "us-east-1"}
    assert writer_of(east, "pay") == "pay-east"
    assert sorted({c["action"] for c in mutating(lab, since)}) == ["SwitchoverGlobalCluster"]
    pay = topology["pay"]
    assert sql(pay["Endpoint"], pay["Port"], f"SELECT to_regclass('{PROBE_TABLE}') IS NULL") == [(True,)]


def test_global_failover_reports_exactly_the_writes_the_lab_dropped(topology):
    lab, east, west = topology["lab"], topology["east"], topology["west"]
    secondary = topology["pay_west"]
    since = time.time()
    drill = start(lab, dict({"mode": "failover", "global_cluster_identifier": "pay", "max_lag_seconds": 600,
                             "poll_interval": 0.2, "probe_interval": 0.1, "probe_settle_seconds": 0.5,
                             "probe_baseline_seconds": 4.0, "wait_timeout": 120,
                             "dns_record": "db.example.internal", "hosted_zone_id": topology["zone"], "dns_ttl": 30,
                             "notify_topic_arn": topology["topic"]}, **CREDENTIALS))
    paused = {}

    def pause_once_replicating():
        # The probe table and its first rows have reached the secondary: from now on it replays nothing.
        def rows():
            try:
                return sql(secondary["Endpoint"], secondary["Port"], f"SELECT count(*) FROM {PROBE_TABLE}")[0][0]
            except psycopg2.Error:
                return 0
        paused["rows"] = wait_for(lambda: rows() >= 5, 20, "probe rows on the secondary")
        lab.control.pause_replay("pay-west", region="us-west-2", kind="cluster")
        paused["at"] = time.time()

    pauser = threading.Thread(target=pause_once_replicating)
    pauser.start()
    stdout, stderr = drill.communicate(timeout=240)
    pauser.join(30)
    result = parse(stdout, stderr)
    assert "at" in paused, "replay was paused during the drill"
    truth = [e for e in lab.control.replication_log() if e["kind"] == "global_failover" and e["requested_at"] >= since]
    assert len(truth) == 1 and truth[0]["identifier"] == "pay-west" and truth[0]["region"] == "us-west-2"
    dropped = truth[0]["lost_rows"].get(f"public.{PROBE_TABLE}", 0)
    measured = result["measurements"]
    assert dropped > 0, truth
    assert result["lost_writes"] == dropped == truth[0]["lost_total"], (measured, truth)
    assert measured["lost_span_seconds"] > 0 and result["rpo_seconds"] == measured["lost_span_seconds"]
    assert measured["lag_seconds_before"] > 0, "the paused replay showed as lag before the request"
    # The module saw the new writer take writes when the lab made it writable: not before the lab's own reading
    # (taken after pg_promote returned, through a new connection: 0.25 s of slack), within one probe interval
    # (+0.5 s) after it. Its RTO also holds the DNS change.
    writable_at = datetime.datetime.fromisoformat(measured["writable_at"].replace("Z", "+00:00")).timestamp()
    assert truth[0]["writable_at"] - 0.25 <= writable_at <= truth[0]["writable_at"] + 0.1 + 0.5, (writable_at, truth)
    lab_rto = truth[0]["writable_at"] - truth[0]["requested_at"]
    assert lab_rto - 0.1 <= measured["rto_seconds"], (measured["rto_seconds"], lab_rto)
    assert measured["rto_seconds"] >= measured["dns_change_seconds"] > 0
    assert result.get("passed") is False and "lost_writes did not hold" in result["failure"], \
        "max_lost_writes 0 (the default) judges the loss"
    assert writer_of(east, "pay") == "pay-west"
    # DNS cutover to the new writer's endpoint, in sync, and the verdict on the topic.
    records = lab.client("route53").list_resource_record_sets(HostedZoneId=topology["zone"])["ResourceRecordSets"]
    cname = [r for r in records if r["Type"] == "CNAME" and r["Name"].rstrip(".") == "db.example.internal"]
    assert cname and cname[0]["ResourceRecords"] == [{"Value": secondary["Endpoint"]}] and cname[0]["TTL"] == 30
    assert result["dns"]["status"] == "INSYNC"
    messages = topology["sqs"].receive_message(QueueUrl=topology["queue"], WaitTimeSeconds=1)["Messages"]
    body = json.loads(messages[0]["Body"])
    assert body["Subject"] == "DR failover of pay: FAILED" and "lost_writes" in body["Message"]
    assert sorted({c["action"] for c in mutating(lab, since)}) == ["FailoverGlobalCluster"]
    assert west.describe_db_clusters(DBClusterIdentifier="pay-west")["DBClusters"][0]["Status"] == "available"
