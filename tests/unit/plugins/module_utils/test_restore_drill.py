# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restore drill's decisions: recovery point, request, checks, measurements, verdict, cleanup and sweep."""

import datetime
import decimal
import random

import pytest

from ansible_collections.dbre.rds.plugins.module_utils import restore_drill as drill
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import cluster_writer

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 27, 7, 35, 0, tzinfo=UTC)


def snap(identifier, hours_ago, kind="automated", status="available"):
    return {"DBSnapshotIdentifier": identifier, "SnapshotType": kind, "Status": status,
            "SnapshotCreateTime": NOW - datetime.timedelta(hours=hours_ago),
            "DBSnapshotArn": f"arn:aws:rds:us-east-1:123456789012:snapshot:{identifier}"}


SNAPSHOTS = [
    snap("rds:src-a", 72),
    snap("manual-b", 30, "manual"),
    snap("rds:src-c", 20),
    snap("manual-d", 5, "manual"),
    snap("rds:src-e", 2, status="creating"),
]

SOURCE = {
    "DBInstanceIdentifier": "src",
    "DbiResourceId": "db-ABCDEF",
    "DBInstanceClass": "db.r6g.large",
    "MasterUsername": "app",
    "MultiAZ": True,
    "PubliclyAccessible": True,
    "DeletionProtection": True,
    "IAMDatabaseAuthenticationEnabled": True,
    "DBSubnetGroup": {"DBSubnetGroupName": "private-db"},
    "VpcSecurityGroups": [{"VpcSecurityGroupId": "sg-1", "Status": "active"},
                          {"VpcSecurityGroupId": "sg-old", "Status": "inactive"}],
    "DBParameterGroups": [{"DBParameterGroupName": "tuned-pg15", "ParameterApplyStatus": "in-sync"}],
    "OptionGroupMemberships": [{"OptionGroupName": "default:postgres-15", "Status": "in-sync"}],
    "EarliestRestorableTime": NOW - datetime.timedelta(days=7),
    "LatestRestorableTime": NOW - datetime.timedelta(minutes=5),
}


def params(**overrides):
    base = {"state": "present", "db_instance_identifier": "src", "db_cluster_identifier": None,
            "restore_from": "latest_snapshot", "snapshot_type": "any", "snapshot_identifier": None,
            "restore_time": None, "use_latest_restorable_time": False, "selection_window_days": None,
            "target_identifier": None, "ttl_hours": 24, "checks": [], "max_rto_seconds": None,
            "max_rpo_seconds": None, "login_password": "secret"}
    base.update(overrides)
    return base


# ------------------------------------------------------------------------------------------------ options


@pytest.mark.parametrize("overrides, fragment", [
    ({"restore_from": "point_in_time"}, "exactly one of restore_time or use_latest_restorable_time"),
    ({"restore_from": "point_in_time", "restore_time": "2026-11-27T07:00:00Z", "use_latest_restorable_time": True},
     "exactly one of restore_time"),
    ({"restore_from": "point_in_time", "restore_time": "yesterday"}, "is not an ISO 8601 time"),
    ({"restore_time": "2026-11-27T07:00:00Z"}, "apply to restore_from=point_in_time only"),
    ({"restore_from": "snapshot"}, "needs snapshot_identifier"),
    ({"snapshot_identifier": "x"}, "applies to restore_from=snapshot only"),
    ({"selection_window_days": 0}, "between 1 and 365"),
    ({"selection_window_days": 366}, "between 1 and 365"),
    ({"ttl_hours": 0}, "ttl_hours must be positive"),
    ({"target_identifier": "1abc"}, "not a valid RDS identifier"),
    ({"target_identifier": "abc--def"}, "not a valid RDS identifier"),
    ({"target_identifier": "abc-"}, "not a valid RDS identifier"),
    ({"target_identifier": "a" * 64}, "at most 63"),
    ({"target_identifier": "SRC"}, "must differ from the source"),
    ({"db_instance_identifier": None, "db_cluster_identifier": "c", "target_identifier": "a" * 60},
     "leaves no room for the instance"),
    ({"checks": [{"name": "a", "sql": "x", "expect": {}}]}, "expect needs one of"),
    ({"checks": [{"name": "a", "sql": "x", "expect": {"equals": 1, "rows": 1}}]}, "only min and max combine"),
    ({"checks": [{"name": "a", "sql": "x", "expect": {"regex": "("}}]}, "does not compile"),
    ({"checks": [{"name": "a", "sql": "x", "expect": {"min": "many"}}]}, "expect.min must be a number"),
    ({"checks": [{"name": "a", "sql": "x", "expect": {"min": 5, "max": 1}}]}, "greater than expect.max"),
    ({"checks": [{"name": "a", "sql": "x", "expect": {"rows": -1}}]}, "whole number of rows"),
    ({"checks": [{"name": "a", "sql": "x", "expect": {"rows": 1}}, {"name": "a", "sql": "y", "expect": {"rows": 1}}]},
     "used twice"),
    ({"max_rto_seconds": 0}, "max_rto_seconds must be positive"),
])
def test_option_problems_name_what_to_change(overrides, fragment):
    problems = drill.problems(params(**overrides))
    assert any(fragment in p for p in problems), problems


@pytest.mark.parametrize("overrides", [
    {},
    {"restore_from": "point_in_time", "use_latest_restorable_time": True},
    {"restore_from": "point_in_time", "restore_time": "2026-11-27T07:00:00+01:00"},
    {"restore_from": "snapshot", "snapshot_identifier": "manual-b"},
    {"restore_from": "random_snapshot", "selection_window_days": 7},
    {"target_identifier": "src-drill-1", "checks": [{"name": "a", "sql": "x", "expect": {"min": 1, "max": 9}}]},
    {"state": "sweep", "db_instance_identifier": None, "restore_from": "snapshot"},
])
def test_valid_options_have_no_problems(overrides):
    assert drill.problems(params(**overrides)) == []


# ------------------------------------------------------------------------------------------------ naming and tags


@pytest.mark.parametrize("source, cluster, expected", [
    ("orders-prod", False, "orders-prod-drill-20261127073500"),
    ("Orders-Prod", False, "orders-prod-drill-20261127073500"),
    ("a" * 63, False, "a" * 42 + "-drill-20261127073500"),
    ("a" * 40 + "-b" * 5, True, "a" * 35 + "-drill-20261127073500"),
])
def test_default_target_identifier_fits_rds_rules(source, cluster, expected):
    name = drill.default_target_identifier(source, NOW, cluster=cluster)
    assert name == expected
    assert drill.identifier_problems(name, "target") == []
    if cluster:
        assert drill.identifier_problems(drill.cluster_instance_identifier(name), "instance") == []


def test_drill_tags_carry_id_and_expiry_and_keep_user_tags():
    tags = drill.drill_tags("d-1", NOW, 6, {"team": "dbre", drill.DRILL_ID_TAG: "spoofed"})
    assert tags == {"team": "dbre", "dbre:drill-id": "d-1", "dbre:drill-expires": "2026-11-27T13:35:00.000Z"}


# ------------------------------------------------------------------------------------------------ recovery point


@pytest.mark.parametrize("overrides, chosen", [
    ({}, "manual-d"),
    ({"snapshot_type": "automated"}, "rds:src-c"),
    ({"snapshot_type": "manual"}, "manual-d"),
    ({"restore_from": "snapshot", "snapshot_identifier": "rds:src-a"}, "rds:src-a"),
    ({"restore_from": "snapshot", "snapshot_identifier": "arn:aws:rds:us-east-1:123456789012:snapshot:manual-b"},
     "manual-b"),
])
def test_snapshot_selection(overrides, chosen):
    point = drill.select_recovery_point(params(**overrides), "src", SOURCE, SNAPSHOTS, NOW, random.Random(1))
    assert point["type"] == "snapshot"
    assert point["snapshot_identifier"] == chosen
    assert point["time"] == point["snapshot_create_time"]


def test_latest_snapshot_reports_candidates_and_creation_time():
    point = drill.select_recovery_point(params(snapshot_type="automated"), "src", SOURCE, SNAPSHOTS, NOW, random.Random())
    assert point["candidates"] == 2  # the snapshot still creating is no candidate
    assert point["snapshot_create_time"] == "2026-11-26T11:35:00.000Z"
    assert drill.rpo_seconds(point["time"], NOW) == 20 * 3600


def test_random_snapshot_stays_in_window_and_is_reproducible():
    choose = dict(restore_from="random_snapshot", selection_window_days=2)
    seen = {drill.select_recovery_point(params(**choose), "src", SOURCE, SNAPSHOTS, NOW,
                                        random.Random(seed))["snapshot_identifier"] for seed in range(40)}
    assert seen == {"manual-b", "rds:src-c", "manual-d"}
    first = drill.select_recovery_point(params(**choose), "src", SOURCE, SNAPSHOTS, NOW, random.Random(7))
    again = drill.select_recovery_point(params(**choose), "src", SOURCE, SNAPSHOTS, NOW, random.Random(7))
    assert first == again


@pytest.mark.parametrize("overrides, snapshots, fragment", [
    ({}, [], "has no available snapshot at all"),
    ({"snapshot_type": "manual", "selection_window_days": 1}, SNAPSHOTS[:3],
     "No available manual snapshot of src created in the last 1 days; the newest available snapshot is rds:src-c"),
    ({"restore_from": "snapshot", "snapshot_identifier": "nope"}, SNAPSHOTS, "Snapshot nope of src not found"),
    ({"restore_from": "snapshot", "snapshot_identifier": "rds:src-e"}, SNAPSHOTS, "is creating, not available"),
])
def test_selection_errors_say_what_exists(overrides, snapshots, fragment):
    with pytest.raises(drill.SelectionError, match=fragment):
        drill.select_recovery_point(params(**overrides), "src", SOURCE, snapshots, NOW, random.Random())


def test_point_in_time_uses_requested_time():
    wanted = "2026-11-27T06:00:00Z"
    point = drill.select_recovery_point(params(restore_from="point_in_time", restore_time=wanted), "src", SOURCE, [],
                                        NOW, random.Random())
    assert point["type"] == "point_in_time"
    assert point["restore_time"] == "2026-11-27T06:00:00.000Z" == point["time"]
    assert drill.rpo_seconds(point["time"], NOW) == 5700


def test_point_in_time_latest_uses_latest_restorable_time():
    point = drill.select_recovery_point(params(restore_from="point_in_time", use_latest_restorable_time=True), "src",
                                        SOURCE, [], NOW, random.Random())
    assert point["use_latest_restorable_time"] is True
    assert point["time"] == "2026-11-27T07:30:00.000Z"


@pytest.mark.parametrize("source, wanted, fragment", [
    (SOURCE, "2026-11-01T00:00:00Z", "before the earliest restorable time"),
    (SOURCE, "2026-11-27T07:34:00Z", "after the latest restorable time"),
    ({**SOURCE, "LatestRestorableTime": None}, "2026-11-27T07:00:00Z", "automated backups are off"),
])
def test_point_in_time_outside_window(source, wanted, fragment):
    with pytest.raises(drill.SelectionError, match=fragment):
        drill.select_recovery_point(params(restore_from="point_in_time", restore_time=wanted), "src", source, [], NOW,
                                    random.Random())


# ------------------------------------------------------------------------------------------------ requests


def test_snapshot_restore_request_keeps_source_network_and_groups_and_is_safe():
    point = drill.select_recovery_point(params(), "src", SOURCE, SNAPSHOTS, NOW, random.Random())
    tags = drill.drill_tags("d-1", NOW, 24)
    operation, request = drill.instance_restore_request(SOURCE, point, "src-drill-1", tags)
    assert operation == "restore_db_instance_from_db_snapshot"
    assert request["DBInstanceIdentifier"] == "src-drill-1"
    assert request["DBSnapshotIdentifier"] == "manual-d"
    assert request["DBSubnetGroupName"] == "private-db"
    assert request["VpcSecurityGroupIds"] == ["sg-1"]
    assert request["DBParameterGroupName"] == "tuned-pg15"
    assert "OptionGroupName" not in request  # default:* groups are left to RDS
    assert (request["MultiAZ"], request["PubliclyAccessible"], request["DeletionProtection"]) == (False, False, False)
    assert request["EnableIAMDatabaseAuthentication"] is True
    assert request["DBInstanceClass"] == "db.r6g.large"
    assert {t["Key"] for t in request["Tags"]} == {"dbre:drill-id", "dbre:drill-expires"}
    assert "src" not in request.values()


def test_option_group_and_instance_class_override():
    source = {**SOURCE, "OptionGroupMemberships": [{"OptionGroupName": "pg-audit"}]}
    point = drill.select_recovery_point(params(), "src", source, SNAPSHOTS, NOW, random.Random())
    request = drill.instance_restore_request(source, point, "t", {}, db_instance_class="db.t4g.micro")[1]
    assert request["OptionGroupName"] == "pg-audit"
    assert request["DBInstanceClass"] == "db.t4g.micro"


@pytest.mark.parametrize("choice, key, value", [
    ({"restore_time": "2026-11-27T06:00:00Z"}, "RestoreTime", datetime.datetime(2026, 11, 27, 6, tzinfo=UTC)),
    ({"use_latest_restorable_time": True}, "UseLatestRestorableTime", True),
])
def test_point_in_time_request_names_source_by_resource_id_only(choice, key, value):
    point = drill.select_recovery_point(params(restore_from="point_in_time", **choice), "src", SOURCE, [], NOW,
                                        random.Random())
    operation, request = drill.instance_restore_request(SOURCE, point, "t", {})
    assert operation == "restore_db_instance_to_point_in_time"
    assert request["SourceDbiResourceId"] == "db-ABCDEF"
    assert "SourceDBInstanceIdentifier" not in request
    assert request["TargetDBInstanceIdentifier"] == "t"
    assert request[key] == value


CLUSTER = {"DBClusterIdentifier": "aur", "DbClusterResourceId": "cluster-XYZ", "Engine": "aurora-postgresql",
           "EngineVersion": "15.4", "DBSubnetGroup": "private-db", "DBClusterParameterGroup": "aur-pg15",
           "VpcSecurityGroups": [{"VpcSecurityGroupId": "sg-2", "Status": "active"}],
           "LatestRestorableTime": NOW - datetime.timedelta(minutes=1),
           "DBClusterMembers": [{"DBInstanceIdentifier": "aur-r", "IsClusterWriter": False},
                                {"DBInstanceIdentifier": "aur-w", "IsClusterWriter": True}]}
WRITER = {"DBInstanceIdentifier": "aur-w", "DBInstanceClass": "db.r6g.xlarge",
          "DBParameterGroups": [{"DBParameterGroupName": "aur-inst-pg15"}]}


def test_cluster_requests():
    assert cluster_writer(CLUSTER) == "aur-w"
    point = {"type": "snapshot", "snapshot_identifier": "aur-snap", "snapshot_arn": None}
    operation, request = drill.cluster_restore_request(CLUSTER, point, "aur-drill", {"k": "v"})
    assert operation == "restore_db_cluster_from_snapshot"
    assert request["SnapshotIdentifier"] == "aur-snap"
    assert (request["Engine"], request["EngineVersion"]) == ("aurora-postgresql", "15.4")
    assert request["DBSubnetGroupName"] == "private-db"
    assert request["VpcSecurityGroupIds"] == ["sg-2"]
    assert request["DBClusterParameterGroupName"] == "aur-pg15"
    assert request["DeletionProtection"] is False
    instance = drill.cluster_instance_request(CLUSTER, WRITER, "aur-drill", {"k": "v"})
    assert instance["DBInstanceIdentifier"] == "aur-drill-writer"
    assert instance["DBClusterIdentifier"] == "aur-drill"
    assert instance["DBInstanceClass"] == "db.r6g.xlarge"
    assert instance["DBParameterGroupName"] == "aur-inst-pg15"
    assert instance["PubliclyAccessible"] is False


def test_cluster_point_in_time_names_source_by_resource_id():
    point = drill.select_recovery_point(params(restore_from="point_in_time", use_latest_restorable_time=True), "aur",
                                        CLUSTER, [], NOW, random.Random())
    operation, request = drill.cluster_restore_request(CLUSTER, point, "aur-drill", {})
    assert operation == "restore_db_cluster_to_point_in_time"
    assert request["SourceDbClusterResourceId"] == "cluster-XYZ"
    assert "SourceDBClusterIdentifier" not in request
    assert request["UseLatestRestorableTime"] is True


def test_request_summary_is_json_safe():
    summary = drill.request_summary("op", {"RestoreTime": NOW, "A": 1})
    assert summary == {"operation": "op", "parameters": {"RestoreTime": "2026-11-27T07:35:00.000Z", "A": 1}}


# ------------------------------------------------------------------------------------------------ checks


@pytest.mark.parametrize("expect, rows, passed, observed", [
    ({"equals": 100}, [(100,)], True, 100),
    ({"equals": 100}, [(101,)], False, 101),
    ({"equals": "100"}, [(100,)], True, 100),
    ({"equals": 1.5}, [(decimal.Decimal("1.50"),)], True, 1.5),
    ({"equals": "ok"}, [("ok",)], True, "ok"),
    ({"equals": "007"}, [("7",)], False, "7"),
    ({"equals": True}, [(True,)], True, True),
    ({"equals": False}, [(True,)], False, True),
    ({"min": 10}, [(10,)], True, 10),
    ({"min": 10}, [(9,)], False, 9),
    ({"max": 10}, [(decimal.Decimal("10.0"),)], True, 10),
    ({"max": 10}, [(11,)], False, 11),
    ({"min": 1, "max": 3}, [(2,)], True, 2),
    ({"min": 1}, [("abc",)], False, "abc"),
    ({"min": 1}, [(None,)], False, None),
    ({"regex": "^15\\."}, [("15.8",)], True, "15.8"),
    ({"regex": "^16"}, [("15.8",)], False, "15.8"),
    ({"rows": 2}, [(1,), (2,)], True, 2),
    ({"rows": 0}, [], True, 0),
    ({"rows": 1}, [], False, 0),
    ({"equals": 1}, [], False, None),
])
def test_evaluate_check(expect, rows, passed, observed):
    result = drill.evaluate_check({"name": "c", "sql": "SELECT 1", "expect": expect}, rows)
    assert result["passed"] is passed
    assert result["observed"] == observed
    assert (result["message"] is None) is passed
    if not passed:
        assert result["message"].startswith("check c")


def test_check_with_sql_error_fails_and_says_why():
    result = drill.evaluate_check({"name": "c", "sql": "SELECT nope", "expect": {"rows": 1}}, None,
                                  error='column "nope" does not exist')
    assert result["passed"] is False
    assert result["message"] == 'check c failed to run: column "nope" does not exist'


def test_freshness_measurements():
    fresh = datetime.datetime(2026, 11, 27, 5, 0, 0)  # naive: UTC
    measured = drill.freshness_measurements(fresh, "2026-11-27T06:00:00Z", NOW)
    assert measured == {"data_freshness": "2026-11-27T05:00:00.000Z", "data_age_seconds": 9300.0,
                        "data_lag_behind_recovery_point_seconds": 3600.0}
    assert drill.freshness_measurements(None, None, NOW)["data_freshness"] is None
    with pytest.raises(ValueError):
        drill.freshness_measurements(42, None, NOW)


# ------------------------------------------------------------------------------------------------ verdict


def test_rto_and_rpo():
    assert drill.rto_seconds(2.0, 14.5) == 12.5
    assert drill.rto_seconds(2.0, None) is None
    assert drill.rpo_seconds("2026-11-27T07:34:00Z", NOW) == 60.0
    assert drill.rpo_seconds(None, NOW) is None
    # the latest restorable time, read after the drill started, loses nothing
    assert drill.rpo_seconds("2026-11-27T07:35:00.046Z", NOW) == 0.0


def _check(name, passed, observed=1):
    return {"name": name, "expect": "equals 1", "observed": observed, "passed": passed,
            "message": None if passed else f"check {name}: observed {observed}"}


@pytest.mark.parametrize("measured, checks, rto, rpo, cleanup, held", [
    ({"available": True, "rto_seconds": 10, "rpo_seconds": 5}, [_check("a", True)], 20, 10,
     {"mode": "always", "left_behind": []}, True),
    ({"available": True, "rto_seconds": 30, "rpo_seconds": 5}, [], 20, None, None, False),
    ({"available": True, "rto_seconds": 10, "rpo_seconds": 50}, [], None, 10, None, False),
    ({"available": True, "rto_seconds": 10}, [_check("a", False, 7)], None, None, None, False),
    ({"available": False, "final_status": "creating"}, [], None, None, None, False),
    ({"available": True, "rto_seconds": None}, [], 20, None, None, False),
    ({"available": True}, [], None, None, {"mode": "always", "left_behind": ["x"]}, False),
    ({"available": True}, [], None, None, {"mode": "never", "left_behind": []}, True),
])
def test_objectives_and_verdict(measured, checks, rto, rpo, cleanup, held):
    table = drill.objectives(measured, checks, rto, rpo, cleanup)
    assert all(row["held"] for row in table) is held
    failure = drill.first_failure(table)
    assert (failure is None) is held


def test_failed_check_is_named_in_the_verdict():
    table = drill.objectives({"available": True}, [_check("row count", False, 120)])
    assert "check: row count did not hold (observed 120, objective equals 1)" in drill.first_failure(table)
    assert drill.first_failure(table, "Timed out") == "Timed out"


# ------------------------------------------------------------------------------------------------ cleanup


def tagged(identifier, drill_id="d-1", kind="instance", **extra):
    key = "DBInstanceIdentifier" if kind == "instance" else "DBClusterIdentifier"
    tags = [{"Key": drill.DRILL_ID_TAG, "Value": drill_id}] if drill_id else []
    return {key: identifier, "TagList": tags, **extra}


def test_cleanup_plan_deletes_only_what_the_drill_created_instances_first():
    created = [{"kind": "cluster", "identifier": "t"}, {"kind": "instance", "identifier": "t-writer"}]
    described = {("cluster", "t"): tagged("t", kind="cluster"), ("instance", "t-writer"): tagged("t-writer")}
    steps = drill.cleanup_plan(created, described, "d-1", {"src"})
    assert [(s["identifier"], s["action"]) for s in steps] == [("t-writer", "delete"), ("t", "delete")]


@pytest.mark.parametrize("current, protected, action, fragment", [
    (None, set(), "gone", "already gone"),
    (tagged("t", drill_id="other"), set(), "refuse", "does not carry dbre:drill-id=d-1"),
    (tagged("t", drill_id=None), set(), "refuse", "does not carry"),
    (tagged("t"), {"T"}, "refuse", "is the drill's source"),
    (tagged("t", DeletionProtection=True), set(), "refuse", "deletion protection"),
    (tagged("t", DBInstanceStatus="deleting"), set(), "wait", "already deleting"),
])
def test_cleanup_plan_refuses_what_is_not_provably_ours(current, protected, action, fragment):
    steps = drill.cleanup_plan([{"kind": "instance", "identifier": "t"}], {("instance", "t"): current}, "d-1",
                               protected)
    assert steps[0]["action"] == action
    assert fragment in steps[0]["reason"]


@pytest.mark.parametrize("confirmed, action", [(False, "not_ours"), (True, "refuse")])
def test_cleanup_plan_leaves_a_same_named_resource_alone_when_the_create_failed(confirmed, action):
    steps = drill.cleanup_plan([{"kind": "instance", "identifier": "t", "confirmed": confirmed}],
                               {("instance", "t"): tagged("t", drill_id=None)}, "d-1", set())
    assert steps[0]["action"] == action


def _expiring(identifier, expires, kind="instance", **extra):
    key = "DBInstanceIdentifier" if kind == "instance" else "DBClusterIdentifier"
    tags = [{"Key": drill.DRILL_ID_TAG, "Value": "d"}]
    if expires is not None:
        tags.append({"Key": drill.DRILL_EXPIRES_TAG, "Value": expires})
    return {key: identifier, "TagList": tags, **extra}


def test_sweep_selects_expired_drill_resources_only():
    instances = [
        _expiring("src-drill-old", "2026-11-26T00:00:00Z"),
        _expiring("src-drill-new", "2026-11-28T00:00:00Z"),
        {"DBInstanceIdentifier": "src-drill-lookalike", "TagList": [{"Key": "team", "Value": "x"}]},
        _expiring("src-drill-notag", None),
        _expiring("src-drill-bad", "soon"),
        _expiring("src-drill-protected", "2026-11-26T00:00:00Z", DeletionProtection=True),
        _expiring("aur-drill-writer", "2026-11-26T00:00:00Z"),
    ]
    clusters = [
        _expiring("aur-drill", "2026-11-26T00:00:00Z", kind="cluster",
                  DBClusterMembers=[{"DBInstanceIdentifier": "aur-drill-writer"}]),
        _expiring("aur-drill-2", "2026-11-26T00:00:00Z", kind="cluster",
                  DBClusterMembers=[{"DBInstanceIdentifier": "someone-elses"}]),
    ]
    chosen = drill.sweep_selection(instances, clusters, NOW)
    assert [(d["kind"], d["identifier"]) for d in chosen["delete"]] == [
        ("instance", "src-drill-old"), ("instance", "aur-drill-writer"), ("cluster", "aur-drill")]
    reasons = {s["identifier"]: s["reason"] for s in chosen["skip"]}
    assert set(reasons) == {"src-drill-new", "src-drill-bad", "src-drill-protected", "aur-drill-2"}
    assert reasons["src-drill-new"].startswith("not expired until")
    assert "someone-elses" in reasons["aur-drill-2"]


# ------------------------------------------------------------------------------------------------ one target, bounds


@pytest.mark.parametrize("overrides, fragment", [
    ({"db_instance_identifier": ""}, "db_instance_identifier must not be empty or blank"),
    ({"db_instance_identifier": "  "}, "db_instance_identifier must not be empty or blank"),
    ({"db_instance_identifier": None, "db_cluster_identifier": " "}, "db_cluster_identifier must not be empty"),
    ({"db_instance_identifier": "-src"}, "not a valid RDS identifier"),
    ({"target_identifier": " "}, "target_identifier must not be empty or blank"),
    ({"ttl_hours": 24 * 365 + 1}, "ttl_hours must be at most 8760"),
    ({"wait_timeout": 0}, "wait_timeout must be greater than 0"),
    ({"wait_timeout": 86401}, "at most 86400 seconds"),
    ({"cleanup_timeout": -1}, "cleanup_timeout must be greater than 0"),
    ({"poll_interval": 0}, "poll_interval must be greater than 0"),
    ({"report_name": "../x"}, "report_name '../x' must be a plain file name stem"),
    ({"report_name": "a/b"}, "no '/'"),
    ({"sweep_older_than": 2}, "sweep_older_than applies to state=sweep only"),
    ({"state": "sweep", "sweep_older_than": 0}, "sweep_older_than must be greater than 0"),
    ({"checks": [{"name": "a", "sql": "x", "expect": {"rows": 1}}], "login_password": None},
     "give login_password or iam_auth=true"),
    ({"ssl_mode": "verify-full"}, "needs ca_cert"),
])
def test_problems_cover_identifiers_bounds_reports_and_connections(overrides, fragment):
    found = drill.problems(params(**overrides))
    assert any(fragment in p for p in found), found


def test_problems_list_every_problem_at_once():
    found = drill.problems(params(db_instance_identifier="", ttl_hours=0, wait_timeout=0, report_name="/etc/x"))
    assert len(found) == 4, found


def test_default_target_identifier_with_suffix_differs_per_drill_and_fits():
    first = drill.default_target_identifier("a" * 63, NOW, cluster=True, suffix="abc123")
    second = drill.default_target_identifier("a" * 63, NOW, cluster=True, suffix="def456")
    assert first != second and first.endswith("-drill-20261127073500-abc123")
    assert len(drill.cluster_instance_identifier(first)) <= 63
    assert drill.identifier_problems(drill.cluster_instance_identifier(first), "instance") == []


def test_owner_tags_round_trip_and_are_valid_tag_values():
    owner = {"host": "runner{1}", "pid": 4242, "started": "123456"}
    tags = drill.drill_tags("d-1", NOW, 6, owner=owner)
    assert tags[drill.DRILL_OWNER_TAG] == "runner_1_/4242/123456"
    assert tags[drill.DRILL_STARTED_TAG] == "2026-11-27T07:35:00.000Z"
    owner = {"host": "runner_1_", "pid": 4242, "started": "123456"}
    assert drill.owner_from_tag(tags[drill.DRILL_OWNER_TAG]) == owner
    assert drill.owner_from_tag("garbage") is None
    assert drill.owner_from_tag("h/1/-") == {"host": "h", "pid": 1, "started": None}


# ------------------------------------------------------------------------------------------------ restorable window


def test_instance_window_comes_from_restore_window_else_retention():
    instance = {k: v for k, v in SOURCE.items() if k != "EarliestRestorableTime"}
    backups = [{"RestoreWindow": {"EarliestTime": NOW - datetime.timedelta(days=3)}}]
    window = drill.restorable_window(instance, backups, NOW)
    assert (window["earliest"], window["earliest_from"]) == (NOW - datetime.timedelta(days=3), "RestoreWindow")
    window = drill.restorable_window({**instance, "BackupRetentionPeriod": 2,
                                      "InstanceCreateTime": NOW - datetime.timedelta(days=30)}, [], NOW)
    assert (window["earliest"], window["earliest_from"]) == (NOW - datetime.timedelta(days=2), "BackupRetentionPeriod")
    young = drill.restorable_window({**instance, "BackupRetentionPeriod": 7,
                                     "InstanceCreateTime": NOW - datetime.timedelta(hours=1)}, [], NOW)
    assert young["earliest"] == NOW - datetime.timedelta(hours=1)


def test_point_in_time_before_an_instances_computed_window_is_refused():
    instance = {k: v for k, v in SOURCE.items() if k != "EarliestRestorableTime"}
    window = drill.restorable_window({**instance, "BackupRetentionPeriod": 1}, [], NOW)
    with pytest.raises(drill.SelectionError, match="before the earliest restorable time"):
        drill.select_recovery_point(params(restore_from="point_in_time", restore_time="2026-11-25T07:00:00Z"), "src",
                                    instance, [], NOW, random.Random(), restorable=window)


# ------------------------------------------------------------------------------------------------ plan


def test_plan_names_the_target_with_the_drill_ids_suffix_and_tags_the_owner():
    source = {"id": "src", "cluster": False, "described": SOURCE, "writer": None, "snapshots": SNAPSHOTS}
    owner = {"host": "h", "pid": 7, "started": "99"}
    plan = drill.plan_drill(params(), source, NOW, "20261127T073500Z-0a1b2c3d", random.Random(), owner=owner)
    assert plan["target"] == {"cluster": None, "instance": "src-drill-20261127073500-0a1b2c"}
    tags = {t["Key"]: t["Value"] for t in plan["request"]["Tags"]}
    assert tags[drill.DRILL_OWNER_TAG] == "h/7/99" and tags[drill.DRILL_ID_TAG] == "20261127T073500Z-0a1b2c3d"
    # The snapshot it restores, so that rds_snapshot_retention keeps that snapshot while the drill runs.
    assert plan["point"]["snapshot_identifier"]
    assert tags[drill.DRILL_SNAPSHOT_TAG] == plan["point"]["snapshot_identifier"]
    other = drill.plan_drill(params(), source, NOW, "20261127T073500Z-ffffffff", random.Random(), owner=owner)
    assert other["target"]["instance"] != plan["target"]["instance"]


def test_plan_of_a_cluster_without_writer_needs_an_instance_class():
    source = {"id": "aur", "cluster": True, "described": {**CLUSTER, "DBClusterMembers": []}, "writer": None,
              "snapshots": [{**snap("aur-snap", 1), "DBClusterSnapshotIdentifier": "aur-snap"}]}
    with pytest.raises(drill.SelectionError, match="set db_instance_class"):
        drill.plan_drill(params(db_instance_identifier=None, db_cluster_identifier="aur"), source, NOW, "d-abc",
                         random.Random())


# ------------------------------------------------------------------------------------------------ sweep by owner


def _owned(identifier, owner, expires="2026-11-28T00:00:00Z", started=None, **extra):
    resource = _expiring(identifier, expires, **extra)
    resource["TagList"].append({"Key": drill.DRILL_OWNER_TAG, "Value": owner})
    if started:
        resource["TagList"].append({"Key": drill.DRILL_STARTED_TAG, "Value": started})
    return resource


def test_sweep_removes_drills_whose_process_is_gone_and_never_a_running_one():
    alive = {11: True, 22: False}
    instances = [
        _owned("running", "h/11/1"),
        _owned("orphan", "h/22/1"),
        _owned("running-expired", "h/11/1", expires="2026-11-26T00:00:00Z"),
        _owned("elsewhere", "other/33/1"),
        {"DBInstanceIdentifier": "untagged-orphan", "TagList": [{"Key": drill.DRILL_OWNER_TAG, "Value": "h/22/1"}]},
    ]

    def owner_alive(marker):
        return alive.get(marker["pid"]) if marker["host"] == "h" else None

    chosen = drill.sweep_selection(instances, [], NOW, alive=owner_alive)
    assert [(d["identifier"], d["reason"]) for d in chosen["delete"]] == [
        ("orphan", "its drill's process is gone (pid 22 on h)")]
    reasons = {s["identifier"]: s["reason"] for s in chosen["skip"]}
    assert reasons["running"].startswith("its drill is still running")
    assert reasons["running-expired"].startswith("its drill is still running")
    assert reasons["elsewhere"].startswith("not expired until")
    assert "untagged-orphan" not in reasons


def test_sweep_older_than_removes_old_drills_run_elsewhere():
    instances = [
        _owned("old", "other/1/1", started="2026-11-26T07:00:00Z"),
        _owned("young", "other/1/1", started="2026-11-27T07:00:00Z"),
        _expiring("created-old", "2026-11-28T00:00:00Z", InstanceCreateTime=NOW - datetime.timedelta(hours=30)),
    ]
    chosen = drill.sweep_selection(instances, [], NOW, alive=lambda marker: None, older_than_hours=24)
    assert [d["identifier"] for d in chosen["delete"]] == ["old", "created-old"]
    assert "more than 24 hours ago" in chosen["delete"][0]["reason"]
    assert [s["identifier"] for s in chosen["skip"]] == ["young"]
