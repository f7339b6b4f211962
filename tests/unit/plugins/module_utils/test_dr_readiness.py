# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The DR readiness decisions, table-driven: a healthy topology passes every check, and each broken one fails exactly
its check with a fix, while the checks that cannot apply are listed as not applicable, with a reason."""

import copy
import datetime

import pytest

from ansible_collections.dbre.rds.plugins.module_utils import dr_readiness as dr

NOW = datetime.datetime(2026, 11, 30, 3, 0, 0, tzinfo=datetime.timezone.utc)
EAST, WEST = "us-east-1", "us-west-2"
ACCOUNT = "123456789012"
WEST_KEY = f"arn:aws:kms:{WEST}:{ACCOUNT}:key/1111-2222"
EAST_KEY = f"arn:aws:kms:{EAST}:{ACCOUNT}:key/3333-4444"
LIMITS = dict(dr.DEFAULT_LIMITS, max_lag_seconds=5.0, rpo_objective_seconds=60.0)


def ago(seconds):
    return NOW - datetime.timedelta(seconds=seconds)


def arn(region, kind, name):
    return f"arn:aws:rds:{region}:{ACCOUNT}:{kind}:{name}"


def alarm(name, metric, dimension, value, threshold=5.0, actions=True):
    return {"AlarmName": name, "MetricName": metric, "Namespace": "AWS/RDS", "Threshold": threshold,
            "ComparisonOperator": "GreaterThanThreshold",
            "Dimensions": [{"Name": dimension, "Value": value}], "ActionsEnabled": True,
            "AlarmActions": [f"arn:aws:sns:{EAST}:{ACCOUNT}:dba"] if actions else []}


def healthy_instance():
    """orders (us-east-1) with the cross-region replica orders-dr and a snapshot copy in us-west-2."""
    primary = {"DBInstanceIdentifier": "orders", "DBInstanceArn": arn(EAST, "db", "orders"),
               "DBInstanceStatus": "available", "DBInstanceClass": "db.r6g.large", "StorageEncrypted": True,
               "KmsKeyId": EAST_KEY, "DeletionProtection": True, "BackupRetentionPeriod": 7,
               "LatestRestorableTime": ago(60),
               "ReadReplicaDBInstanceIdentifiers": [arn(WEST, "db", "orders-dr")]}
    replica = {"DBInstanceIdentifier": "orders-dr", "DBInstanceArn": arn(WEST, "db", "orders-dr"),
               "DBInstanceStatus": "available", "DBInstanceClass": "db.r6g.large", "StorageEncrypted": True,
               "KmsKeyId": WEST_KEY, "DeletionProtection": True}
    snapshot = {"DBSnapshotIdentifier": "orders-copy", "DBSnapshotArn": arn(WEST, "snapshot", "orders-copy"),
                "Status": "available", "Encrypted": True, "KmsKeyId": WEST_KEY,
                "SnapshotCreateTime": ago(600), "OriginalSnapshotCreateTime": ago(3 * 3600)}
    return {
        "kind": dr.INSTANCE, "primary": primary, "primary_region": EAST, "primary_members": {}, "dr_region": WEST,
        "replicas": [{"region": WEST, "described": replica}], "secondaries": [], "automated_backups": [],
        "snapshot_copies": [snapshot], "same_region_copies": [], "other_region_copies": [],
        "kms_keys": {WEST_KEY: {"Arn": WEST_KEY, "KeyState": "Enabled", "Enabled": True}},
        "lags": {"orders-dr": {"now": 0.4, "max": 1.2, "datapoints": 30}},
        "primary_alarms": [alarm("orders-cpu", "CPUUtilization", "DBInstanceIdentifier", "orders", 90)],
        "dr_alarms": [alarm("orders-dr-lag", "ReplicaLag", "DBInstanceIdentifier", "orders-dr", 5)],
        "parameters": {"primary": {"work_mem": "8192"}, "copies": {"orders-dr": {"work_mem": "8192"}}},
        "parameter_groups": {"primary": "orders-pg", "copies": {"orders-dr": "orders-pg-west"}},
    }


def healthy_global():
    """The Aurora cluster ledger (us-east-1), writer of the global database ledger-global, secondary ledger-west."""
    primary = {"DBClusterIdentifier": "ledger", "DBClusterArn": arn(EAST, "cluster", "ledger"), "Status": "available",
               "StorageEncrypted": True, "KmsKeyId": EAST_KEY, "DeletionProtection": True,
               "BackupRetentionPeriod": 14, "LatestRestorableTime": ago(120),
               "DBClusterMembers": [{"DBInstanceIdentifier": "ledger-1", "IsClusterWriter": True}]}
    secondary = {"DBClusterIdentifier": "ledger-west", "DBClusterArn": arn(WEST, "cluster", "ledger-west"),
                 "Status": "available", "StorageEncrypted": True, "KmsKeyId": WEST_KEY, "DeletionProtection": True,
                 "LatestRestorableTime": ago(300)}
    return {
        "kind": dr.CLUSTER, "primary": primary, "primary_region": EAST,
        "primary_members": {"ledger-1": {"DBInstanceIdentifier": "ledger-1", "DBInstanceClass": "db.r6g.xlarge"}},
        "dr_region": WEST, "replicas": [], "automated_backups": [], "snapshot_copies": [],
        "secondaries": [{"region": WEST, "described": secondary,
                         "members": {"ledger-west-1": {"DBInstanceClass": "db.r6g.xlarge"}}}],
        "global_cluster": {"GlobalClusterIdentifier": "ledger-global"},
        "same_region_copies": [], "other_region_copies": [],
        "kms_keys": {WEST_KEY: {"Arn": WEST_KEY, "KeyState": "Enabled"}},
        "lags": {"ledger-west": {"now": 0.2, "max": 0.9, "datapoints": 12}},
        "primary_alarms": [alarm("ledger-cpu", "CPUUtilization", "DBInstanceIdentifier", "ledger-1", 90)],
        "dr_alarms": [alarm("ledger-west-lag", "AuroraGlobalDBReplicationLag", "DBClusterIdentifier", "ledger-west",
                            5000)],
        "parameters": {"primary": {}, "copies": {"ledger-west": {}}},
        "parameter_groups": {"primary": "default.aurora-postgresql15", "copies": {}},
    }


def by_name(result):
    return {c["name"]: c for c in result["checks"]}


@pytest.mark.parametrize("facts", [healthy_instance(), healthy_global()], ids=["instance", "global"])
def test_a_healthy_setup_passes_every_check(facts):
    result = dr.evaluate(facts, LIMITS, NOW)
    assert result["passed"], [c for c in result["checks"] if not c["passed"]]
    assert [c["name"] for c in result["checks"]] == list(dr.CHECK_NAMES)
    assert result["not_applicable"] == []
    assert all(c["fix"] is None for c in result["checks"])


def test_the_instance_strategy_and_its_estimates():
    result = dr.evaluate(healthy_instance(), LIMITS, NOW)
    assert result["estimate"]["strategy"] == "cross_region_read_replica"
    assert result["estimate"]["rto_seconds"] == 600
    assert result["estimate"]["rpo_seconds"] == 1.2  # the replica's recent maximum lag
    assert result["estimate"]["best_copy"] == "orders-dr"
    checks = by_name(result)
    assert checks["dr_backups"]["measured"] == 3.0  # the copy's data is 3 hours old (original creation time)
    assert checks["dr_copy"]["measured"] == ["read_replica orders-dr (us-west-2)",
                                             "snapshot_copy orders-copy (us-west-2)"]


def test_the_global_strategy_uses_the_secondary():
    result = dr.evaluate(healthy_global(), LIMITS, NOW)
    assert result["estimate"]["strategy"] == "aurora_global_database"
    assert result["estimate"]["rto_seconds"] == 60
    assert by_name(result)["instance_class_parity"]["measured"] == {"ledger-west": ["db.r6g.xlarge"]}


def _no_copy(f):
    f.update(replicas=[], snapshot_copies=[], kms_keys={}, lags={}, dr_alarms=[])
    f["primary"]["ReadReplicaDBInstanceIdentifiers"] = []


def _lagging(f):
    f["lags"]["orders-dr"] = {"now": 42.0, "max": 42.0, "datapoints": 30}


def _unencrypted(f):
    f["primary"].update(StorageEncrypted=False, KmsKeyId=None)
    f["replicas"][0]["described"].update(StorageEncrypted=False, KmsKeyId=None)
    f["snapshot_copies"][0].update(Encrypted=False, KmsKeyId=None)


def _no_lag_alarm(f):
    f["dr_alarms"] = []


def _one_day(f):
    f["primary"]["BackupRetentionPeriod"] = 1


BROKEN = [
    # (id, change, the one failing check, fragments of its fix, checks not applicable)
    ("no_dr_copy", _no_copy, "dr_copy", ["create a cross-region read replica of orders in us-west-2"],
     {"dr_copies_available", "replication_lag", "dr_backups", "dr_kms_key", "instance_class_parity",
      "parameter_group_parity", "lag_alarm", "rto", "rpo"}),
    ("lag_above_limit", _lagging, "replication_lag", ["orders-dr lags 42.0 s now"], set()),
    ("unencrypted", _unencrypted, "encryption", ["orders is not encrypted", "read_replica orders-dr (us-west-2)"],
     {"dr_kms_key"}),
    ("no_lag_alarm", _no_lag_alarm, "lag_alarm", ["no CloudWatch alarm on ReplicaLag of orders-dr in us-west-2"],
     set()),
    ("one_day_retention", _one_day, "backup_retention", ["at least 7 days", "BackupRetentionPeriod=7"], set()),
    ("replica_behind_objective", lambda f: f["lags"].update({"orders-dr": {"now": 1, "max": 4.5, "datapoints": 3}}),
     None, [], set()),
    # A stopped replica leaves the snapshot copy as the strategy in use: hours, so RTO and RPO fail with it.
    ("replica_stopped", lambda f: f["replicas"][0]["described"].update(DBInstanceStatus="stopped"),
     ["dr_copies_available", "rto", "rpo"], ["orders-dr (us-west-2) is stopped"], set()),
    ("no_lag_datapoints", lambda f: f["lags"].pop("orders-dr"), "replication_lag",
     ["published no ReplicaLag in the last 60 minutes"], {"rpo"}),
    # ReplicaLag -1: replication is not running, so the replica's RPO is unknown (never 0).
    ("replication_broken", lambda f: f["lags"].update({"orders-dr": {"now": -1.0, "max": 0.0, "datapoints": 3}}),
     "replication_lag", ["replication is not running"], {"rpo"}),
    ("lag_stopped_publishing", lambda f: f["lags"].update({"orders-dr": {
        "now": 0.2, "max": 0.4, "datapoints": 20, "latest_at": dr.utc_iso(ago(1800))}}),
     "replication_lag", ["the newest ReplicaLag of orders-dr in us-west-2 is 1800.0 s old",
                         "stopped publishing its lag"], set()),
    ("old_restorable_time", lambda f: f["primary"].update(LatestRestorableTime=ago(3600)), "latest_restorable_time",
     ["3600.0 s old"], set()),
    ("no_restorable_time", lambda f: f["primary"].pop("LatestRestorableTime"), "latest_restorable_time",
     ["enable automated backups"], set()),
    ("old_snapshot_copy", lambda f: f["snapshot_copies"][0].update(OriginalSnapshotCreateTime=ago(48 * 3600)),
     "dr_backups", ["48.0 hours old"], set()),
    ("no_dr_backup", lambda f: f.update(snapshot_copies=[]), "dr_backups", ["a replica replays a DROP TABLE too"],
     set()),
    ("key_of_other_region", lambda f: f["replicas"][0]["described"].update(KmsKeyId=EAST_KEY) or f["kms_keys"].update(
        {EAST_KEY: {"Arn": EAST_KEY, "KeyState": "Enabled"}}), "dr_kms_key", ["uses the KMS key", "of us-east-1"],
     set()),
    ("key_pending_deletion", lambda f: f["kms_keys"][WEST_KEY].update(KeyState="PendingDeletion"), "dr_kms_key",
     ["is PendingDeletion"], set()),
    ("key_not_describable", lambda f: f["kms_keys"].clear(), "dr_kms_key", ["cannot be described in us-west-2"],
     set()),
    ("replica_unprotected", lambda f: f["replicas"][0]["described"].update(DeletionProtection=False),
     "deletion_protection", ["orders-dr", "DeletionProtection=true"], set()),
    ("smaller_replica", lambda f: f["replicas"][0]["described"].update(DBInstanceClass="db.t3.micro"),
     "instance_class_parity", ["runs db.t3.micro: modify it to db.r6g.large"], set()),
    ("parameter_differs", lambda f: f["parameters"]["copies"]["orders-dr"].update(work_mem="4096"),
     "parameter_group_parity", ["differs from the primary's group orders-pg in work_mem"], set()),
    ("parameter_only_on_primary", lambda f: f["parameters"]["primary"].update(random_page_cost="1.1"),
     "parameter_group_parity", ["random_page_cost"], set()),
    ("lag_alarm_too_lax", lambda f: f["dr_alarms"][0].update(Threshold=600), "lag_alarm",
     ["threshold above 5.0 s"], set()),
    ("lag_alarm_in_primary_region_only", lambda f: (f["primary_alarms"].extend(f["dr_alarms"]), f.update(
        dr_alarms=[])), "lag_alarm", ["no CloudWatch alarm on ReplicaLag"], set()),
    ("lag_alarm_without_action", lambda f: f["dr_alarms"][0].update(AlarmActions=[]), "lag_alarm",
     ["have no enabled action"], set()),
    # An alarm that fires when the lag falls below the threshold never warns of a lagging replica.
    ("lag_alarm_on_falling_lag", lambda f: f["dr_alarms"][0].update(ComparisonOperator="LessThanThreshold"),
     "lag_alarm", ["do not fire on a rising lag", "ComparisonOperator GreaterThanThreshold"], set()),
    ("no_primary_alarm", lambda f: f.update(primary_alarms=[]), "primary_alarm",
     ["no CloudWatch alarm with actions watches orders in us-east-1"], set()),
    ("primary_alarm_on_another_instance", lambda f: f["primary_alarms"][0]["Dimensions"][0].update(Value="other"),
     "primary_alarm", ["watches orders"], set()),
    ("primary_down", lambda f: f["primary"].update(DBInstanceStatus="storage-full"), "primary_available",
     ["it is storage-full"], set()),
]


@pytest.mark.parametrize("case_id, change, failing, fix_fragments, not_applicable", BROKEN,
                         ids=[b[0] for b in BROKEN])
def test_each_broken_setup_fails_exactly_its_check(case_id, change, failing, fix_fragments, not_applicable):
    facts = healthy_instance()
    change(facts)
    result = dr.evaluate(facts, LIMITS, NOW)
    failed = [c for c in result["checks"] if not c["passed"]]
    expected = failing if isinstance(failing, list) else [failing] if failing else []
    assert [c["name"] for c in failed] == expected, case_id
    for check in failed[:1]:
        for fragment in fix_fragments:
            assert fragment in check["fix"], (fragment, check["fix"])
    assert {s["name"] for s in result["not_applicable"]} == not_applicable
    assert {c["name"] for c in result["checks"]} | not_applicable == set(dr.CHECK_NAMES)
    assert result["failed_checks"] == [c["name"] for c in failed]
    assert result["passed"] is (failing is None)


def test_a_same_region_replica_is_no_dr_copy_and_the_fix_says_why():
    facts = healthy_instance()
    _no_copy(facts)
    facts["same_region_copies"] = ["orders-ro"]
    check = by_name(dr.evaluate(facts, LIMITS, NOW))["dr_copy"]
    assert not check["passed"]
    assert "orders-ro live(s) in us-east-1, the primary's region" in check["fix"]


def test_a_drill_replica_is_no_dr_copy():
    assert dr.is_drill_copy({"TagList": [{"Key": "dbre:drill-id", "Value": "d1"}]})
    assert not dr.is_drill_copy({"TagList": [{"Key": "team", "Value": "dba"}]}) and not dr.is_drill_copy(None)
    facts = healthy_instance()
    _no_copy(facts)
    facts["drill_copies"] = ["orders-dr-drill-20261130"]
    check = by_name(dr.evaluate(facts, LIMITS, NOW))["dr_copy"]
    assert not check["passed"] and "orders-dr-drill-20261130 (tagged dbre:drill-id) go(es) away" in check["fix"]


def test_only_backups_skip_the_standby_checks_and_estimate_hours():
    facts = healthy_instance()
    facts.update(replicas=[], lags={}, dr_alarms=[])
    result = dr.evaluate(facts, LIMITS, NOW)
    checks = by_name(result)
    assert result["estimate"]["strategy"] == "cross_region_snapshot_copies"
    assert checks["rto"]["measured"] == 14400 and not checks["rto"]["passed"]
    assert checks["rpo"]["measured"] == 3 * 3600.0 and not checks["rpo"]["passed"]
    assert "add a cross-region read replica" in checks["rto"]["fix"]
    assert {s["name"] for s in result["not_applicable"]} == {
        "replication_lag", "instance_class_parity", "parameter_group_parity", "lag_alarm"}


def test_replicated_automated_backups_count_as_a_dr_copy():
    facts = healthy_instance()
    facts.update(replicas=[], lags={}, dr_alarms=[], snapshot_copies=[], automated_backups=[{
        "DBInstanceIdentifier": "orders", "Status": "replicating", "Encrypted": True, "KmsKeyId": WEST_KEY,
        "RestoreWindow": {"EarliestTime": ago(86400), "LatestTime": ago(420)}}])
    result = dr.evaluate(facts, dict(LIMITS, rpo_objective_seconds=900), NOW)
    assert result["estimate"]["strategy"] == "cross_region_automated_backups"
    assert result["estimate"]["rpo_seconds"] == 420.0
    assert by_name(result)["rpo"]["passed"] and by_name(result)["dr_backups"]["passed"]


@pytest.mark.parametrize("change, failing", [
    (lambda f: f["secondaries"][0]["members"].clear(), ["instance_class_parity"]),
    (lambda f: f["lags"].update({"ledger-west": {"now": 9.0, "max": 9.0, "datapoints": 2}}), ["replication_lag"]),
    (lambda f: f["dr_alarms"][0].update(Threshold=9000), ["lag_alarm"]),  # milliseconds: 9 s > 5 s
    (lambda f: f["primary_alarms"][0]["Dimensions"][0].update(Name="DBClusterIdentifier", Value="ledger"), []),
    (lambda f: f["primary"].update(DeletionProtection=False), ["deletion_protection"]),
], ids=["headless_secondary", "lagging_secondary", "alarm_in_milliseconds", "alarm_on_the_cluster",
        "cluster_unprotected"])
def test_global_database_checks(change, failing):
    facts = healthy_global()
    change(facts)
    result = dr.evaluate(facts, LIMITS, NOW)
    assert result["failed_checks"] == failing


def test_the_best_strategy_is_chosen_among_usable_copies():
    copies = [{"kind": dr.SNAPSHOT_COPY, "usable": True}, {"kind": dr.READ_REPLICA, "usable": False},
              {"kind": dr.AUTOMATED_BACKUPS, "usable": True}]
    assert dr.strategy_in_use(copies) == "cross_region_automated_backups"
    assert dr.strategy_in_use([{"kind": dr.READ_REPLICA, "usable": False}]) == "cross_region_read_replica"
    assert dr.strategy_in_use([]) is None


@pytest.mark.parametrize("primary, refs", [
    ({"ReadReplicaDBInstanceIdentifiers": ["ro-1", arn(WEST, "db", "dr-1")]},
     [{"identifier": "ro-1", "region": EAST, "arn": None},
      {"identifier": "dr-1", "region": WEST, "arn": arn(WEST, "db", "dr-1")}]),
    ({}, []),
])
def test_replica_refs_take_the_region_from_the_arn(primary, refs):
    assert dr.replica_refs(primary, EAST) == refs


@pytest.mark.parametrize("snapshot, region", [
    ({"SourceDBSnapshotIdentifier": arn(EAST, "snapshot", "rds:orders-2026-11-29"), "SourceRegion": EAST}, EAST),
    ({"SourceDBClusterSnapshotArn": arn(EAST, "cluster-snapshot", "ledger-1")}, EAST),
    ({"SourceRegion": EAST}, EAST),
    # a snapshot taken in the DR region (of a same-named instance there) is no copy of the primary
    ({"DBSnapshotIdentifier": "orders-local"}, None),
    ({"SourceRegion": WEST}, WEST),
])
def test_copied_from_region(snapshot, region):
    assert dr.copied_from_region(snapshot) == region


def test_global_members():
    writer, secondaries = dr.global_members({"GlobalClusterMembers": [
        {"DBClusterArn": arn(WEST, "cluster", "b"), "IsWriter": False},
        {"DBClusterArn": arn(EAST, "cluster", "a"), "IsWriter": True}]})
    assert writer == {"arn": arn(EAST, "cluster", "a"), "identifier": "a", "region": EAST}
    assert secondaries == [{"arn": arn(WEST, "cluster", "b"), "identifier": "b", "region": WEST}]


@pytest.mark.parametrize("named, candidates, expected, problem", [
    (None, [EAST, WEST], WEST, None),
    (None, [EAST], None, None),
    ("eu-west-1", [WEST], "eu-west-1", None),
    (EAST, [WEST], None, "dr_region us-east-1 is the region of the primary"),
])
def test_choose_dr_region(named, candidates, expected, problem):
    region, found = dr.choose_dr_region(EAST, candidates, named)
    assert region == expected
    assert (found is None) if problem is None else problem in found


@pytest.mark.parametrize("params, fragments", [
    ({"db_instance_identifier": "orders"}, []),
    ({"db_instance_identifier": " "}, ["db_instance_identifier must not be empty or blank"]),
    ({"db_cluster_identifier": "ledger_prod"}, ["'ledger_prod' is not a valid RDS identifier"]),
    ({"db_instance_identifier": "o", "rto_objective_seconds": -5}, ["rto_objective_seconds must be positive, got -5"]),
    ({"db_instance_identifier": "o", "rpo_objective_seconds": 0}, ["rpo_objective_seconds must be positive"]),
    ({"db_instance_identifier": "o", "max_lag_seconds": -1}, ["max_lag_seconds must be positive"]),
    ({"db_instance_identifier": "o", "max_lag_seconds": float("nan")}, ["max_lag_seconds must be positive, got nan"]),
    ({"db_instance_identifier": "o", "rto_objective_seconds": float("inf")},
     ["rto_objective_seconds must be positive, got inf"]),
    ({"db_instance_identifier": "o", "lookback_minutes": 0}, ["lookback_minutes must be between 1 and 1440"]),
    ({"db_instance_identifier": "o", "lookback_minutes": 2000}, ["lookback_minutes must be between 1 and 1440"]),
    ({"db_instance_identifier": "o", "min_backup_retention_days": 36}, ["between 1 and 35"]),
    ({"db_instance_identifier": "o", "dr_region": "west"}, ["dr_region 'west' is not an AWS region name"]),
    ({"db_instance_identifier": "o", "dr_region": "us-gov-west-1"}, []),
    ({"db_instance_identifier": "o", "report_name": "../x"}, ["report_name"]),
])
def test_option_problems(params, fragments):
    found = dr.option_problems(params)
    assert len(found) == len(fragments), found
    for fragment, problem in zip(fragments, found):
        assert fragment in problem


def test_limits_take_the_defaults_for_what_is_not_given():
    limits = dr.limits_from({"max_lag_seconds": 10, "rto_objective_seconds": None})
    assert limits["max_lag_seconds"] == 10
    assert limits["rto_objective_seconds"] == dr.DEFAULT_LIMITS["rto_objective_seconds"]


def test_lag_series_converts_milliseconds_and_summarises():
    series = dr.lag_series([{"Timestamp": ago(60), "Maximum": 3000.0}, {"Timestamp": ago(120), "Maximum": 9000.0},
                            {"Timestamp": ago(0), "Maximum": 500.0}], unit_seconds=0.001)
    assert [point[1] for point in series] == [9.0, 3.0, 0.5]
    assert dr.lag_summary(series) == {"now": 0.5, "max": 9.0, "datapoints": 3, "latest_at": "2026-11-30T03:00:00.000Z"}
    assert dr.lag_summary([]) == {"now": None, "max": None, "datapoints": 0, "latest_at": None}


def test_parameter_differences_name_each_side():
    assert dr.parameter_differences({"a": "1", "b": "2"}, {"a": "1", "c": "3"}) == {
        "b": {"primary": "2", "dr": None}, "c": {"primary": None, "dr": "3"}}
    assert dr.parameter_values([{"ParameterName": "a", "ParameterValue": "1"}, {"ParameterName": "b"}]) == {"a": "1"}


def test_report_rows_and_measurements():
    result = dr.evaluate(healthy_instance(), LIMITS, NOW)
    rows = dr.objectives(result["checks"])
    assert len(rows) == len(dr.CHECK_NAMES) and all(r["held"] for r in rows)
    lag = [r for r in rows if r["name"] == "replication_lag"][0]
    assert lag == {"name": "replication_lag", "objective": 5.0, "observed": 1.2, "unit": "seconds", "held": True}
    figures = dr.measurements(result["checks"], result["estimate"])
    assert figures["estimated_rto_seconds"] == 600 and figures["replication_lag_seconds"] == 1.2


def test_a_restorable_time_a_little_ahead_of_this_clock_is_zero_old():
    facts = healthy_instance()
    facts["primary"]["LatestRestorableTime"] = NOW + datetime.timedelta(seconds=2)
    facts["snapshot_copies"][0]["OriginalSnapshotCreateTime"] = NOW + datetime.timedelta(seconds=1)
    checks = by_name(dr.evaluate(facts, LIMITS, NOW))
    assert checks["latest_restorable_time"]["measured"] == 0.0 and checks["dr_backups"]["measured"] == 0.0


def test_the_facts_are_not_changed():
    facts = healthy_instance()
    before = copy.deepcopy(facts)
    dr.evaluate(facts, LIMITS, NOW)
    assert facts == before
