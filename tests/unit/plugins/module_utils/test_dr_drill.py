# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The DR drill's decisions: options per mode, topology pre-checks, lag, DNS, the plan, lost writes and the verdict."""

import datetime

import pytest

from ansible_collections.dbre.rds.plugins.module_utils import dr_drill as drill
from ansible_collections.dbre.rds.plugins.module_utils.restore_drill import DRILL_ID_TAG

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 30, 3, 30, 0, tzinfo=UTC)
ACCOUNT = "123456789012"


def arn(region, kind, name):
    return f"arn:aws:rds:{region}:{ACCOUNT}:{kind}:{name}"


def params(**given):
    base = {"mode": "rehearsal", "db_instance_identifier": "orders", "dr_region": "us-west-2", "wait_timeout": 1800,
            "poll_interval": 5.0, "cleanup_timeout": 1800, "probe_interval": 0.25, "probe_timeout": 2,
            "probe_settle_seconds": 2.0, "probe_table": "dbre_rds_dr_probe", "max_lag_seconds": 60.0,
            "max_lost_writes": 0, "ttl_hours": 24, "dns_ttl": 60, "checks": [], "ssl_mode": "prefer",
            "connect_timeout": 5}
    base.update(given)
    return base


def glob(mode="switchover", **given):
    base = {"mode": mode, "db_instance_identifier": None, "dr_region": None, "global_cluster_identifier": "pay"}
    base.update(given)
    return params(**base)


@pytest.mark.parametrize("given, fragments", [
    (params(), []),
    (glob(), []),
    (glob("failover", max_lag_seconds=600), []),
    (params(mode="failover", db_instance_identifier=None, dr_instance_identifier="orders-dr"), []),
    (params(dr_region="us-east-1"), ["dr_region us-east-1 is the primary's region", "does not survive"]),
    (params(dr_region=None), ["mode=rehearsal needs dr_region"]),
    (params(db_instance_identifier=None), ["mode=rehearsal needs db_instance_identifier"]),
    (params(mode="switchover"), ["mode=switchover needs global_cluster_identifier"]),
    (params(mode="failover", dr_region="us-west-2"), ["mode=failover needs global_cluster_identifier, or "
                                                      "dr_instance_identifier"]),
    (params(mode="failover", dr_instance_identifier="orders-dr", dr_region=None),
     ["dr_instance_identifier needs dr_region"]),
    (glob(db_instance_identifier="orders"), ["mutually exclusive"]),
    (params(switch_back=True), ["switch_back applies to mode=switchover"]),
    (glob(replica_identifier="x-drill"), ["replica_identifier applies to mode=rehearsal"]),
    (params(target_db_cluster_identifier="pay-west"), ["target_db_cluster_identifier applies to mode=switchover"]),
    (params(max_rto_seconds=-1), ["max_rto_seconds must be finite and not negative"]),
    (params(max_rpo_seconds=-0.5), ["max_rpo_seconds must be finite and not negative"]),
    (params(max_lag_seconds=-3), ["max_lag_seconds must be finite and not negative"]),
    # NaN compares False with everything: it must not pass as "not negative" (every verdict row silently not held)
    (params(max_rto_seconds=float("nan")), ["max_rto_seconds must be finite and not negative, got nan"]),
    (params(max_lag_seconds=float("inf")), ["max_lag_seconds must be finite and not negative, got inf"]),
    (glob("failover", max_rpo_seconds=float("-inf")), ["max_rpo_seconds must be finite"]),
    (params(wait_timeout=float("nan")), ["wait_timeout must be greater than 0"]),
    (params(poll_interval=float("inf")), ["poll_interval must be greater than 0"]),
    (params(probe_settle_seconds=float("nan")), ["probe_settle_seconds must be finite and not negative"]),
    (params(wait_timeout=0), ["wait_timeout must be greater than 0"]),
    (params(poll_interval=0), ["poll_interval must be greater than 0"]),
    (params(probe_table="Bad Table"), ["probe_table 'Bad Table'"]),
    (glob(max_lost_writes=3), ["max_lost_writes must be 0 with mode=switchover"]),
    (params(db_instance_identifier="orders_prod"), ["'orders_prod' is not a valid RDS identifier"]),
    (glob(dns_record="db.example.internal"), ["dns_record and hosted_zone_id go together"]),
    (params(dns_record="db.example.internal", hosted_zone_id="Z1"), ["a rehearsal never moves production DNS"]),
    (glob(dns_record="db.example.internal", hosted_zone_id="Z1", dns_ttl=-1), ["dns_ttl must be between 0"]),
    (glob(notify_topic_arn="dr-topic"), ["is not an SNS topic ARN"]),
    (params(checks=[{"name": "a", "sql": "SELECT 1", "expect": {}}]), ["check 'a': expect needs one of"]),
    (params(checks=[{"name": "a", "sql": "SELECT 1", "expect": {"rows": 1}}] * 2), ["checks must have unique"]),
    (glob(target_db_cluster_identifier="arn:aws:rds:us-west-2"), ["is not a cluster ARN"]),
    (params(report_name="../x"), ["report_name"]),
    (params(db_subnet_group_name="dr-private", vpc_security_group_ids=["sg-0a1b", "sg-2c3d"]), []),
    (glob(db_subnet_group_name="dr-private"), ["db_subnet_group_name applies to mode=rehearsal"]),
    (glob("failover", vpc_security_group_ids=["sg-0a1b"]), ["vpc_security_group_ids applies to mode=rehearsal"]),
    (params(vpc_security_group_ids=["default"]), ["'default' is not a security group id"]),
    (params(db_subnet_group_name=" "), ["db_subnet_group_name ' ' must be the name of a DB subnet group"]),
])
def test_option_problems(given, fragments):
    found = drill.problems(given, region="us-east-1")
    if not fragments:
        assert found == []
    for fragment in fragments:
        assert any(fragment in problem for problem in found), (fragment, found)


def instance(identifier, status="available", region="us-east-1", **extra):
    return dict({"DBInstanceIdentifier": identifier, "DBInstanceStatus": status, "DBInstanceClass": "db.t3.micro",
                 "DBInstanceArn": arn(region, "db", identifier)}, **extra)


PRIMARY = instance("orders", MultiAZ=True)
DR = instance("orders-dr", region="us-west-2", ReadReplicaSourceDBInstanceIdentifier=arn("us-east-1", "db", "orders"))


@pytest.mark.parametrize("given, source, replica, fragments", [
    (params(), PRIMARY, None, []),
    (params(dr_instance_identifier="orders-dr"), PRIMARY, DR, []),
    (params(), None, None, ["no DB instance 'orders' exists in us-east-1"]),
    (params(), instance("orders", "modifying"), None, ["the primary orders is modifying, not available"]),
    (params(), instance("orders", DBClusterIdentifier="aur"), None, ["member of the Aurora cluster 'aur'"]),
    (params(), instance("orders", ReadReplicaSourceDBInstanceIdentifier="x"), None, ["is itself a read replica"]),
    (params(dr_instance_identifier="orders-dr"), PRIMARY, None, ["no DB instance 'orders-dr' exists in us-west-2"]),
    (params(dr_instance_identifier="orders-dr"), PRIMARY, instance("orders-dr", region="us-west-2"),
     ["is not a read replica of orders"]),
    (params(dr_instance_identifier="orders-dr"), PRIMARY, dict(DR, DBInstanceStatus="storage-full"),
     ["the DR replica orders-dr is storage-full"]),
    (params(mode="failover", db_instance_identifier=None, dr_instance_identifier="orders-dr"), None,
     instance("orders-dr", region="us-west-2"), ["is not a read replica: nothing to fail over to"]),
])
def test_instance_problems(given, source, replica, fragments):
    found = drill.instance_problems(given, source, replica, "us-east-1", "us-west-2")
    assert bool(found) == bool(fragments), found
    for fragment in fragments:
        assert any(fragment in problem for problem in found), (fragment, found)


EAST, WEST = arn("us-east-1", "cluster", "pay-east"), arn("us-west-2", "cluster", "pay-west")
EAST2 = arn("us-east-1", "cluster", "pay-east-b")


def global_cluster(members, status="available", **extra):
    return dict({"GlobalClusterIdentifier": "pay", "Status": status,
                 "GlobalClusterMembers": [{"DBClusterArn": a, "IsWriter": w} for a, w in members]}, **extra)


def clusters(*arns, status="available"):
    return {a: {"DBClusterArn": a, "Status": status} for a in arns}


@pytest.mark.parametrize("given, described, described_clusters, fragments", [
    (glob(), global_cluster([(EAST, True), (WEST, False)]), clusters(EAST, WEST), []),
    (glob(target_db_cluster_identifier="pay-west"), global_cluster([(EAST, True), (WEST, False)]),
     clusters(EAST, WEST), []),
    (glob(target_db_cluster_identifier=WEST), global_cluster([(EAST, True), (WEST, False)]), clusters(EAST, WEST), []),
    (glob(), None, {}, ["no global cluster 'pay' exists"]),
    (glob(), global_cluster([(EAST, True)]), clusters(EAST), ["has no secondary cluster", "mode=switchover"]),
    (glob(), global_cluster([(EAST, True), (EAST2, False)]), clusters(EAST, EAST2),
     ["is in the writer's region (us-east-1)", "same-region DR target"]),
    (glob(target_db_cluster_identifier="pay-north"), global_cluster([(EAST, True), (WEST, False)]),
     clusters(EAST, WEST), ["pay-north is not a member of the global cluster pay"]),
    (glob(target_db_cluster_identifier="pay-east"), global_cluster([(EAST, True), (WEST, False)]),
     clusters(EAST, WEST), ["is the writer already"]),
    (glob(), global_cluster([(EAST, True), (WEST, False), (arn("eu-west-1", "cluster", "pay-eu"), False)]),
     clusters(EAST, WEST, arn("eu-west-1", "cluster", "pay-eu")), ["has 2 secondaries"]),
    (glob(), global_cluster([(EAST, True), (WEST, False)], status="failing-over"), clusters(EAST, WEST),
     ["is failing-over, not available"]),
    (glob(), global_cluster([(EAST, True), (WEST, False)]), {EAST: {"Status": "available"}},
     ["pay-west of pay cannot be found in us-west-2"]),
    (glob(), global_cluster([(EAST, True), (WEST, False)]), clusters(EAST, WEST, status="modifying"),
     ["pay-east (us-east-1) is modifying", "pay-west (us-west-2) is modifying"]),
    # a failover does not need the (lost) primary region to be available
    (glob("failover"), global_cluster([(EAST, True), (WEST, False)]),
     dict(clusters(WEST), **{EAST: {"Status": "inaccessible"}}), []),
    # ... nor its writer cluster to answer at all (its region is the one lost), nor the global cluster's status
    (glob("failover"), global_cluster([(EAST, True), (WEST, False)]), dict(clusters(WEST), **{EAST: None}), []),
    (glob("failover"), global_cluster([(EAST, True), (WEST, False)], status="modifying"),
     dict(clusters(WEST), **{EAST: None}), []),
    # a switchover needs both
    (glob(), global_cluster([(EAST, True), (WEST, False)]), dict(clusters(WEST), **{EAST: None}),
     ["pay-east of pay cannot be found in us-east-1"]),
    # the failover's target must still be there and available
    (glob("failover"), global_cluster([(EAST, True), (WEST, False)]), dict(clusters(EAST), **{WEST: None}),
     ["pay-west of pay cannot be found in us-west-2"]),
    (glob("failover"), global_cluster([(EAST, True), (WEST, False)]),
     dict(clusters(EAST), **{WEST: {"Status": "modifying"}}), ["pay-west (us-west-2) is modifying"]),
])
def test_global_problems(given, described, described_clusters, fragments):
    found = drill.global_problems(given, described, described_clusters, "us-east-1")
    assert bool(found) == bool(fragments), found
    for fragment in fragments:
        assert any(fragment in problem for problem in found), (fragment, found)


@pytest.mark.parametrize("mode, lag, limit, fragment", [
    ("rehearsal", 3.0, 60, None),
    ("rehearsal", 61.0, 60, "is 61.0 s, above max_lag_seconds=60"),
    ("switchover", None, 60, "is unknown"),
    ("failover", None, 60, None),
    ("failover", 900.0, 600, "above max_lag_seconds=600"),
    ("failover", 900.0, None, None),
])
def test_lag_problems(mode, lag, limit, fragment):
    found = drill.lag_problems(mode, lag, limit, "the DR copy")
    assert (found == []) if fragment is None else (fragment in found[0])


@pytest.mark.parametrize("zone_id, zone, record, fragment", [
    ("Z1", {"Id": "/hostedzone/Z1", "Name": "example.internal."}, "db.example.internal", None),
    ("Z1", None, "db.example.internal", "no Route 53 hosted zone 'Z1' exists"),
    ("Z1", {"Id": "/hostedzone/Z1", "Name": "example.internal."}, "db.other.internal", "not inside the hosted zone"),
    ("Z1", {"Id": "/hostedzone/Z1", "Name": "example.internal."}, "Example.Internal.",
     "is the apex of the hosted zone example.internal: a CNAME cannot be the zone apex"),
    ("Z1", {"Id": "/hostedzone/Z1", "Name": "example.internal."}, "xexample.internal", "not inside the hosted zone"),
])
def test_dns_problems(zone_id, zone, record, fragment):
    found = drill.hosted_zone_problems(zone_id, zone) + drill.dns_name_problems(record, zone)
    assert (found == []) if fragment is None else any(fragment in p for p in found)


def test_replica_request_never_names_the_primary_as_target_and_is_tagged():
    request = drill.replica_request(PRIMARY, "orders-dr-drill-20261130033000", "us-east-1",
                                    {DRILL_ID_TAG: "d1", "team": "dbre"})
    assert request["DBInstanceIdentifier"] == "orders-dr-drill-20261130033000"
    assert request["SourceDBInstanceIdentifier"] == PRIMARY["DBInstanceArn"]
    assert request["SourceRegion"] == "us-east-1"
    assert request["MultiAZ"] is False and request["DeletionProtection"] is False
    assert {"Key": DRILL_ID_TAG, "Value": "d1"} in request["Tags"]
    assert "KmsKeyId" not in request
    assert drill.replica_request(dict(PRIMARY, KmsKeyId="k"), "x", "us-east-1", {})["KmsKeyId"] == "alias/aws/rds"


DR_PLACED = dict(DR, DBSubnetGroup={"DBSubnetGroupName": "dr-private"}, VpcSecurityGroups=[
    {"VpcSecurityGroupId": "sg-dr", "Status": "active"}, {"VpcSecurityGroupId": "sg-old", "Status": "inactive"}])


@pytest.mark.parametrize("given, dr_replica, placement", [
    # the real DR replica's subnet group and active security groups by default
    (params(), DR_PLACED, {"DBSubnetGroupName": "dr-private", "VpcSecurityGroupIds": ["sg-dr"]}),
    # the options win, each on its own
    (params(db_subnet_group_name="drill-net"), DR_PLACED,
     {"DBSubnetGroupName": "drill-net", "VpcSecurityGroupIds": ["sg-dr"]}),
    (params(vpc_security_group_ids=["sg-drill"]), DR_PLACED,
     {"DBSubnetGroupName": "dr-private", "VpcSecurityGroupIds": ["sg-drill"]}),
    (params(db_subnet_group_name="drill-net", vpc_security_group_ids=["sg-a", "sg-b"]), None,
     {"DBSubnetGroupName": "drill-net", "VpcSecurityGroupIds": ["sg-a", "sg-b"]}),
    # no DR replica named and no option: RDS's default
    (params(), None, {}),
])
def test_replica_placement(given, dr_replica, placement):
    assert drill.replica_placement(given, dr_replica) == placement
    request = drill.replica_request(PRIMARY, "r", "us-east-1", {}, placement=placement)
    assert {k: request[k] for k in ("DBSubnetGroupName", "VpcSecurityGroupIds") if k in request} == placement


def test_default_replica_identifier_fits_and_is_unique_per_suffix():
    name = drill.default_replica_identifier("o" * 63, NOW, "abc123")
    assert len(name) <= 63 and name.endswith("-dr-drill-20261130033000-abc123")
    assert drill.default_replica_identifier("Orders", NOW) == "orders-dr-drill-20261130033000"


@pytest.mark.parametrize("mode, kwargs, calls", [
    ("rehearsal", {"source": "orders", "replica": "r", "dr_region": "us-west-2"},
     ["CreateDBInstanceReadReplica", "PromoteReadReplica", "DeleteDBInstance"]),
    ("switchover", {"switch_back": True}, ["SwitchoverGlobalCluster", "SwitchoverGlobalCluster"]),
    ("switchover", {"switch_back": True, "dns": {"record": "db.x", "ttl": 60}},
     ["SwitchoverGlobalCluster", "ChangeResourceRecordSets", "SwitchoverGlobalCluster"]),
    ("failover", {"dns": {"record": "db.x", "ttl": 60}, "notify": "arn:aws:sns:us-east-1:1:t"},
     ["FailoverGlobalCluster", "ChangeResourceRecordSets", "Publish"]),
    ("failover", {"global_id": None, "dr_instance": "orders-dr", "dr_region": "us-west-2"}, ["PromoteReadReplica"]),
    ("rehearsal", {"source": "orders", "replica": "r", "dr_region": "us-west-2", "reuse": True},
     ["AddTagsToResource", "PromoteReadReplica", "DeleteDBInstance"]),
])
def test_plan_steps(mode, kwargs, calls):
    base = {"global_id": "pay", "writer": {"identifier": "pay-east", "region": "us-east-1"},
            "target": {"identifier": "pay-west", "region": "us-west-2"}, "region": "us-east-1"}
    base.update(kwargs)
    assert [step["call"] for step in drill.plan_steps(mode, **base)] == calls


def test_a_global_failover_is_sent_to_the_target_region():
    steps = drill.plan_steps("failover", global_id="pay", region="us-east-1",
                             writer={"identifier": "pay-east", "region": "us-east-1"},
                             target={"identifier": "pay-west", "region": "us-west-2"})
    assert [(s["call"], s["region"]) for s in steps] == [("FailoverGlobalCluster", "us-west-2")]


def sample(seq, ok=True, sent=None):
    sent = seq * 0.25 if sent is None else sent
    return {"seq": seq, "sent": sent, "done": sent + 0.01, "ok": ok}


@pytest.mark.parametrize("samples, present, lost, numbers, span", [
    ([sample(i) for i in range(1, 6)], [1, 2, 3, 4, 5], 0, [], 0.0),
    # writes 3..5 acknowledged by the old writer, never replayed on the new one
    ([sample(i) for i in range(1, 6)] + [sample(6, ok=False), sample(7)], [1, 2, 7], 3, [3, 4, 5], 0.51),
    # an unacknowledged row that made it is not a loss; a failed write missing is not either
    ([sample(1), sample(2, ok=False), sample(3)], [1, 2, 3], 0, [], 0.0),
    ([sample(1), sample(2)], None, None, [], None),
])
def test_writes_lost(samples, present, lost, numbers, span):
    found = drill.writes_lost(samples, present)
    assert found["lost_writes"] == lost
    assert found["lost_write_numbers"] == numbers
    assert found["lost_span_seconds"] == span
    assert drill.rpo_seconds(found) == span


@pytest.mark.parametrize("requested, writable, rto", [(1.0, 3.5, 2.5), (None, 3.0, None), (2.0, None, None)])
def test_rto_seconds(requested, writable, rto):
    assert drill.rto_seconds(requested, writable) == rto


@pytest.mark.parametrize("described, target, done", [
    (global_cluster([(EAST, False), (WEST, True)]), WEST, True),
    (global_cluster([(EAST, True), (WEST, False)]), WEST, False),
    (global_cluster([(EAST, False), (WEST, True)], status="switching-over"), WEST, False),
    (global_cluster([(EAST, False), (WEST, True)], FailoverState={"Status": "failing-over"}), WEST, False),
])
def test_switched(described, target, done):
    assert drill.switched(described, target) is done


def test_healthy_secondary():
    described = global_cluster([(EAST, False), (WEST, True)])
    assert drill.healthy_secondary(described, EAST, {"Status": "available"})
    assert not drill.healthy_secondary(described, EAST, {"Status": "modifying"})
    assert not drill.healthy_secondary(described, WEST, {"Status": "available"})


def check(name, passed):
    return {"name": name, "expect": "rows 1", "observed": 1 if passed else 0, "passed": passed,
            "message": None if passed else "no"}


@pytest.mark.parametrize("mode, measured, checks, given, failed", [
    ("rehearsal", {"writable_at": "t", "rto_seconds": 10.0}, [check("a", True)], {"max_rto_seconds": 60}, []),
    ("rehearsal", {"writable_at": "t", "rto_seconds": 90.0}, [check("a", False)], {"max_rto_seconds": 60},
     ["check: a", "rto_seconds"]),
    ("rehearsal", {"writable_at": None}, [], {}, ["new writer accepts writes"]),
    ("switchover", {"writable_at": "t", "probing": True, "lost_writes": 0, "switch_back": "done"}, [], {}, []),
    ("switchover", {"writable_at": "t", "probing": True, "lost_writes": 2, "switch_back": "not done"}, [], {},
     ["lost_writes", "switched back"]),
    # a failover judged by its RPO does not also demand zero lost writes
    ("failover", {"writable_at": "t", "probing": True, "lost_writes": 4, "rpo_seconds": 1.0}, [],
     {"max_rpo_seconds": 5, "max_lost_writes": 0}, []),
    ("failover", {"writable_at": "t", "probing": True, "lost_writes": 4, "rpo_seconds": 9.0}, [],
     {"max_rpo_seconds": 5}, ["rpo_seconds"]),
    ("failover", {"writable_at": "t", "probing": True, "lost_writes": 4, "observed_downtime_seconds": 30.0}, [],
     {"max_lost_writes": 10, "max_downtime_seconds": 20}, ["observed_downtime_seconds"]),
])
def test_objectives(mode, measured, checks, given, failed):
    table = drill.objectives(mode, measured, checks, given)
    assert sorted(row["name"] for row in table if not row["held"]) == sorted(failed)


def test_objectives_cleanup_left_behind_fails():
    table = drill.objectives("rehearsal", {"writable_at": "t"}, [], {},
                             {"steps": [{}], "left_behind": ["orders-dr-drill-x"]})
    assert [row["name"] for row in table if not row["held"]] == ["cleanup"]


def tagged(identifier, drill_id, status="available", **extra):
    return dict(instance(identifier, status, "us-west-2"), TagList=[{"Key": DRILL_ID_TAG, "Value": drill_id}],
                **extra)


@pytest.mark.parametrize("created, described, action", [
    ({"identifier": "r", "confirmed": True}, {"r": tagged("r", "d1")}, "delete"),
    ({"identifier": "r", "confirmed": True}, {"r": None}, "gone"),
    ({"identifier": "r", "confirmed": False}, {"r": tagged("r", "other")}, "not_ours"),
    ({"identifier": "r", "confirmed": True}, {"r": tagged("r", "other")}, "refuse"),
    ({"identifier": "orders-dr", "confirmed": True}, {"orders-dr": tagged("orders-dr", "d1")}, "refuse"),
    ({"identifier": "r", "confirmed": True}, {"r": tagged("r", "d1", DeletionProtection=True)}, "refuse"),
    ({"identifier": "r", "confirmed": True}, {"r": tagged("r", "d1", "deleting")}, "wait"),
])
def test_cleanup_plan(created, described, action):
    steps = drill.cleanup_plan([dict(created, region="us-west-2")], described, "d1", {"orders", "orders-dr"})
    assert [step["action"] for step in steps] == [action]


def test_notification_names_verdict_and_objectives():
    report = {"title": "DR failover of pay", "target": "pay", "passed": False, "failure": "rpo_seconds did not hold",
              "started_at": "a", "finished_at": "b", "measurements": {"rpo_seconds": 9.0, "lost_writes": 4},
              "objectives": [{"name": "rpo_seconds", "observed": 9.0, "objective": 5, "held": False}]}
    subject, message = drill.notification(report, "failover")
    assert subject == "DR failover of pay: FAILED"
    assert "rpo_seconds: observed 9.0, objective 5 (NOT held)" in message and "lost_writes: 4" in message


def test_dns_change_batch():
    batch = drill.dns_change_batch("db.example.internal", "pay-west.cluster.example", 30, "dbre.rds DR failover")
    change = batch["Changes"][0]
    assert change["Action"] == "UPSERT"
    assert change["ResourceRecordSet"] == {"Name": "db.example.internal", "Type": "CNAME", "TTL": 30,
                                           "ResourceRecords": [{"Value": "pay-west.cluster.example"}]}


OWNER_TAG = "dbre:drill-owner"
EXPIRES_TAG = "dbre:drill-expires"


def drill_tagged(drill_id="old", expires="2026-11-30T05:00:00Z", owner="host/4242/99", **extra):
    tags = [{"Key": DRILL_ID_TAG, "Value": drill_id}, {"Key": EXPIRES_TAG, "Value": expires}]
    if owner:
        tags.append({"Key": OWNER_TAG, "Value": owner})
    return dict(DR, TagList=tags, **extra)


NOW_ISO = "2026-11-30T03:30:00Z"


@pytest.mark.parametrize("described, alive, fragment", [
    (None, None, None),
    # a dead drill's replica: expired, or its owner process gone
    (drill_tagged(expires="2026-11-30T03:00:00Z"), True, None),
    (drill_tagged(), False, None),
    # a live (or unknown) drill's replica is refused, naming the owner and the expiry
    (drill_tagged(), True, "belongs to drill old, whose owner host/4242/99 is alive and which expires "
                           "2026-11-30T05:00:00Z"),
    (drill_tagged(owner=None), None, "whose owner unknown is not known to be gone"),
    (dict(DR, TagList=[{"Key": DRILL_ID_TAG, "Value": "old"}]), False, None),
    (dict(DR, TagList=[{"Key": DRILL_ID_TAG, "Value": "old"}]), None, "which expires never (no expiry tag)"),
    (DR, None, "carries no dbre:drill-id tag: it was not created for drills"),
    (drill_tagged(ReadReplicaSourceDBInstanceIdentifier="x"), False, "is not a read replica of orders"),
    (drill_tagged(DBInstanceStatus="modifying"), False, "is modifying, not available"),
])
def test_drill_replica_problems(described, alive, fragment):
    found = drill.drill_replica_problems("orders-dr", described, PRIMARY, "us-west-2", now=NOW_ISO, alive=alive)
    assert (found == []) if fragment is None else any(fragment in p for p in found), found


def test_reuse_tag_request_makes_the_replica_this_drills_own():
    request = drill.reuse_tag_request(DR, {DRILL_ID_TAG: "new", EXPIRES_TAG: "2026-12-01T03:30:00Z"})
    assert request == {"ResourceName": DR["DBInstanceArn"], "Tags": [
        {"Key": EXPIRES_TAG, "Value": "2026-12-01T03:30:00Z"}, {"Key": DRILL_ID_TAG, "Value": "new"}]}


def test_a_reused_drill_replica_is_deleted_only_under_this_drills_id():
    # re-tagged with this drill's id (AddTagsToResource before the promotion): deleted
    created = [{"identifier": "r", "region": "us-west-2", "confirmed": True}]
    assert [s["action"] for s in drill.cleanup_plan(created, {"r": tagged("r", "new")}, "new", {"orders"})] \
        == ["delete"]
    # still the old drill's (the re-tag never confirmed): never deleted under the old id
    unconfirmed = [dict(created[0], confirmed=False, drill_id="old")]
    assert [s["action"] for s in drill.cleanup_plan(unconfirmed, {"r": tagged("r", "old")}, "new", {"orders"})] \
        == ["not_ours"]
    assert [s["action"] for s in drill.cleanup_plan(created, {"r": tagged("r", "old")}, "new", {"orders"})] \
        == ["refuse"]
