# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The upgrade rehearsal's decisions: target version, options, parameter group, plan, outcome, benchmark, verdict."""

import datetime

import pytest

from ansible_collections.dbre.rds.plugins.module_utils import restore_drill
from ansible_collections.dbre.rds.plugins.module_utils import upgrade_drill as drill

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 30, 7, 0, 0, tzinfo=UTC)


def version(name, targets=(), family=None):
    return {"Engine": "postgres", "EngineVersion": name,
            "DBParameterGroupFamily": family or f"postgres{name.split('.')[0]}",
            "ValidUpgradeTarget": [{"EngineVersion": t, "IsMajorVersionUpgrade": t.split(".")[0] != name.split(".")[0]}
                                   for t in targets]}


VERSIONS = [version("15.5", ["15.7", "15.8", "18.1", "18.6"]), version("15.7", ["15.8", "18.1", "18.6"]),
            version("15.8", ["18.1", "18.6"]), version("18.1", ["18.6"]), version("18.6")]

SOURCE = {"DBInstanceIdentifier": "orders", "Engine": "postgres", "EngineVersion": "15.7", "DbiResourceId": "db-X",
          "DBInstanceClass": "db.t3.micro", "MasterUsername": "app",
          "DBParameterGroups": [{"DBParameterGroupName": "orders-pg15", "ParameterApplyStatus": "in-sync"}],
          "VpcSecurityGroups": [{"VpcSecurityGroupId": "sg-1", "Status": "active"}],
          "DBSubnetGroup": {"DBSubnetGroupName": "private"}}


@pytest.mark.parametrize("target,allow,checks_only,expected", [
    ("18.6", True, False, []),
    ("18", True, False, []),
    ("15.8", False, False, []),
    ("18.6", False, True, []),
    ("18.6", False, False, ["is a major version upgrade: set allow_major_version_upgrade=true"]),
    ("15.5", True, False, ["older than the current version 15.7: RDS cannot downgrade"]),
    ("15.7", True, False, ["is the version the instance already runs"]),
    ("18.99", True, False, ["18.99 is not a version RDS offers", "the 18.x versions offered are 18.1, 18.6"]),
    ("16.1", True, False, ["16.1 is not a version RDS offers", "offered versions: 15.5, 15.7"]),
    ("eighteen", True, False, ["'eighteen' is not a PostgreSQL engine version"]),
    ("18.6.1", True, False, ["is not a PostgreSQL engine version"]),
])
def test_target_problems(target, allow, checks_only, expected):
    problems = drill.target_problems("15.7", target, VERSIONS, allow, checks_only=checks_only)
    if not expected:
        assert problems == []
    else:
        assert len(problems) == 1
        for fragment in expected:
            assert fragment in problems[0]


def test_a_version_that_is_offered_but_not_a_valid_target_is_refused_with_the_targets():
    versions = [version("15.7", ["15.8"]), version("15.8"), version("18.6")]
    problems = drill.target_problems("15.7", "18.6", versions, True)
    assert problems == ["target_engine_version 18.6 is not a valid upgrade target of 15.7: RDS upgrades 15.7 to 15.8; "
                        "upgrade in steps"]


@pytest.mark.parametrize("target,resolved", [("18", "18.6"), ("18.1", "18.1"), ("15", "15.8"), ("17", None),
                                             ("18.2", None)])
def test_resolve_target(target, resolved):
    assert drill.resolve_target(target, [v["EngineVersion"] for v in VERSIONS]) == resolved


def test_target_family_comes_from_the_engine_versions():
    assert drill.target_family(VERSIONS, "18.6") == "postgres18"
    assert drill.target_family([version("18.6", family="custom18")], "18.6") == "custom18"


def params(**overrides):
    base = dict(db_instance_identifier="orders", target_engine_version="18.6", allow_major_version_upgrade=True,
                target_parameter_group=None, create_parameter_group=False, checks_only=False, checks=[],
                benchmark_sql=None, benchmark_runs=5, max_slowdown_percent=None, max_downtime_seconds=None,
                max_upgrade_seconds=None, probe_interval=0.5, probe_timeout=2, target_identifier=None,
                snapshot_identifier=None, db_instance_class=None, ttl_hours=24, tags=None, cleanup="always",
                cleanup_timeout=1800, fail_on_breach=True, progress_log=None, wait_timeout=1800, poll_interval=5.0,
                login_host=None, login_port=None, login_user=None, login_password=None, login_db="postgres",
                ssl_mode="prefer", ca_cert=None, connect_timeout=5, iam_auth=False, report_dir=None,
                report_name=None)
    base.update(overrides)
    return base


@pytest.mark.parametrize("overrides,expected", [
    ({}, None),
    ({"db_instance_identifier": " "}, "db_instance_identifier must not be empty or blank"),
    ({"target_engine_version": "latest"}, "'latest' is not a PostgreSQL engine version"),
    ({"create_parameter_group": True}, "create_parameter_group=true needs target_parameter_group"),
    ({"target_parameter_group": "pg18--x"}, "is not a valid parameter group name"),
    ({"target_parameter_group": "default.postgres18", "create_parameter_group": True}, "is an RDS default group"),
    ({"benchmark_runs": 0}, "benchmark_runs must be between 1 and 1000"),
    ({"max_slowdown_percent": -1, "benchmark_sql": "SELECT 1", "login_password": "x"},
     "max_slowdown_percent must be 0 or more"),
    ({"max_slowdown_percent": 10}, "max_slowdown_percent needs benchmark_sql"),
    ({"benchmark_sql": "  "}, "benchmark_sql must not be blank"),
    ({"benchmark_sql": "SELECT 1"}, "benchmark_sql runs on the rehearsal's copy: give login_password"),
    ({"max_downtime_seconds": 0}, "max_downtime_seconds must be positive"),
    ({"wait_timeout": 0}, "wait_timeout must be greater than 0"),
    ({"ttl_hours": 0}, "ttl_hours must be positive"),
    ({"target_identifier": "orders"}, "target_identifier must differ from the source"),
    ({"snapshot_identifier": "snap_1"}, "'snap_1' is not a valid RDS identifier"),
    ({"checks": [{"name": "a", "sql": "SELECT 1", "expect": {"rows": 1}}]}, "give login_password or iam_auth=true"),
    ({"report_name": "../x"}, "report_name"),
])
def test_option_problems(overrides, expected):
    problems = drill.option_problems(params(**overrides))
    if expected is None:
        assert problems == []
    else:
        assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("given,described,create,action,problem", [
    (None, None, False, "default", None),
    ("pg18", {"DBParameterGroupName": "pg18", "DBParameterGroupFamily": "postgres18"}, False, "use", None),
    ("pg18", None, True, "create", None),
    ("pg18", None, False, "missing", "pg18 does not exist: create it (family postgres18)"),
    ("pg15", {"DBParameterGroupName": "pg15", "DBParameterGroupFamily": "postgres15"}, False, "wrong_family",
     "is of family postgres15, not postgres18"),
])
def test_parameter_group_choice(given, described, create, action, problem):
    choice = drill.parameter_group_choice({"target_parameter_group": given, "create_parameter_group": create},
                                          described, "postgres18")
    assert choice["action"] == action
    assert choice["name"] == (given or "default.postgres18")
    assert (problem in choice["problems"][0]) if problem else choice["problems"] == []


def test_parameter_batches_hold_at_most_twenty():
    batches = drill.parameter_batches({f"p{i:02d}": i for i in range(45)})
    assert [len(b) for b in batches] == [20, 20, 5]
    assert batches[0][0] == {"ParameterName": "p00", "ParameterValue": "0", "ApplyMethod": "pending-reboot"}


def test_plan_names_the_source_only_as_the_snapshot_source():
    group = {"name": "pg18", "action": "create", "problems": []}
    plan = drill.plan_rehearsal(params(tags={"team": "db"}), SOURCE, "18.6", group, NOW, "20261130T070000Z-abcdef12",
                                owner={"host": "h", "pid": 1, "started": "9"})
    assert plan["snapshot"] == "orders-upgrade-drill-20261130070000-abcdef"
    assert plan["target"] == "orders-drill-20261130070000-abcdef"
    assert plan["snapshot_request"]["DBInstanceIdentifier"] == "orders"
    assert plan["restore_operation"] == "restore_db_instance_from_db_snapshot"
    restore = plan["restore_request"]
    assert restore["DBInstanceIdentifier"] == plan["target"] and restore["DBSnapshotIdentifier"] == plan["snapshot"]
    assert restore["DBParameterGroupName"] == "orders-pg15" and restore["MultiAZ"] is False
    assert plan["upgrade_request"] == {"DBInstanceIdentifier": plan["target"], "EngineVersion": "18.6",
                                       "ApplyImmediately": True, "AllowMajorVersionUpgrade": True,
                                       "DBParameterGroupName": "pg18"}
    tagged = {t["Key"]: t["Value"] for t in plan["snapshot_request"]["Tags"]}
    assert tagged["dbre:drill-id"] == "20261130T070000Z-abcdef12" and tagged["team"] == "db"
    assert tagged["dbre:drill-owner"] == "h/1/9" and tagged["dbre:drill-expires"] == "2026-12-01T07:00:00.000Z"
    assert [s["call"] for s in plan["steps"]] == ["CreateDBParameterGroup", "CreateDBSnapshot",
                                                  "RestoreDBInstanceFromDBSnapshot", "ModifyDBInstance",
                                                  "DeleteDBInstance", "DeleteDBSnapshot"]
    # Only the snapshot request names the source.
    named = [s["resource"] for s in plan["steps"]]
    assert "orders" not in named
    assert plan["creates"] == [{"kind": "snapshot", "identifier": plan["snapshot"]},
                               {"kind": "instance", "identifier": plan["target"]}]


def test_a_minor_upgrade_plan_does_not_ask_for_a_major_one():
    plan = drill.plan_rehearsal(params(), SOURCE, "15.8", {"name": "orders-pg15", "action": "use", "problems": []},
                                NOW, "20261130T070000Z-abcdef12")
    assert plan["major"] is False and plan["upgrade_request"]["AllowMajorVersionUpgrade"] is False


FAILED = {"Date": NOW, "Message": "Database instance is in a state that cannot be upgraded: PostgreSQL cannot "
                                  "upgrade a database with prepared transactions"}
STARTED = {"Date": NOW - datetime.timedelta(seconds=5), "Message": "Performing a pre-check for a major version upgrade"}
UNRELATED = {"Date": NOW - datetime.timedelta(seconds=9), "Message": "Restored from snapshot x"}
DONE = {"Date": NOW, "Message": "Database instance upgraded from 15.7 to 18.6 (major version upgrade finished)"}


@pytest.mark.parametrize("described,events,upgraded,failure", [
    ({"EngineVersion": "18.6", "DBInstanceStatus": "available"}, [STARTED, DONE], True, None),
    ({"EngineVersion": "15.7", "DBInstanceStatus": "available"}, [UNRELATED, STARTED, FAILED], False,
     "cannot be upgraded: PostgreSQL cannot upgrade a database with prepared transactions"),
    ({"EngineVersion": "15.7", "DBInstanceStatus": "available"}, [UNRELATED], False, "no event said why"),
])
def test_upgrade_outcome(described, events, upgraded, failure):
    outcome = drill.upgrade_outcome(described, "15.7", "18.6", events)
    assert outcome["upgraded"] is upgraded
    if failure:
        assert failure in outcome["failure"] and "from 15.7 to 18.6 (it runs 15.7)" in outcome["failure"]
    else:
        assert outcome["failure"] is None and outcome["failure_event"] is None
    assert [e["message"] for e in drill.upgrade_events(events)] == [
        e["Message"] for e in events if e is not UNRELATED]


@pytest.mark.parametrize("described,seen,settled", [
    (None, True, False),
    ({"DBInstanceStatus": "upgrading", "EngineVersion": "15.7"}, True, False),
    ({"DBInstanceStatus": "available", "EngineVersion": "15.7", "PendingModifiedValues": {"EngineVersion": "18.6"}},
     False, False),
    ({"DBInstanceStatus": "available", "EngineVersion": "15.7"}, False, False),
    ({"DBInstanceStatus": "available", "EngineVersion": "15.7"}, True, True),
    ({"DBInstanceStatus": "available", "EngineVersion": "18.6"}, False, True),
])
def test_upgrade_settled(described, seen, settled):
    assert drill.upgrade_settled(described, "18.6", seen) is settled


@pytest.mark.parametrize("before,after,limit,slowdown,held", [
    ([0.1, 0.1, 0.3], [0.12, 0.12, 0.5], 25, 20.0, True),
    ([0.1, 0.1, 0.3], [0.12, 0.12, 0.5], 10, 20.0, False),
    ([0.2], [0.1], 0, -50.0, True),
    ([0.1], [], 10, None, False),
    ([0.1], [0.2], None, 100.0, None),
])
def test_benchmark_summary(before, after, limit, slowdown, held):
    summary = drill.benchmark_summary(before, after, limit)
    assert summary["slowdown_percent"] == slowdown and summary["held"] is held
    assert summary["before_runs"] == len(before)


CHECKLIST = [
    {"name": "recent_snapshot", "passed": False, "value": "none", "expected": "< 24 h", "fix": "take a snapshot",
     "blocker": False},
    {"name": "prepared_transactions", "passed": False, "value": 1, "expected": 0,
     "fix": "COMMIT PREPARED or ROLLBACK PREPARED 'tx1'", "blocker": True},
    {"name": "reg_columns", "passed": True, "value": 0, "expected": 0, "fix": None, "blocker": True},
]


def test_verdict_with_a_blocker_names_its_fix_first_then_the_upgrade_failure():
    measured = {"to_version": "18.6", "upgraded": False, "engine_version_after": "15.7", "downtime_seconds": 3.0}
    check = restore_drill.evaluate_check({"name": "rows", "sql": "x", "expect": {"equals": 1}}, [(1,)])
    cleanup = {"mode": "always", "removed": ["a", "b"], "left_behind": [], "kept": []}
    table = drill.objectives(CHECKLIST, measured, [check], [], None, max_downtime_seconds=10, cleanup=cleanup)
    assert [(r["name"], r["held"]) for r in table] == [
        ("checklist: prepared_transactions", False), ("upgraded", False), ("check before: rows", True),
        ("downtime_seconds", True), ("cleanup", True)]
    decision = drill.go_ahead(CHECKLIST, table, "RDS did not upgrade the copy: cannot be upgraded")
    assert decision["go_ahead"] is False
    assert decision["fix_first"][0] == "prepared_transactions: COMMIT PREPARED or ROLLBACK PREPARED 'tx1'"
    assert decision["fix_first"][1] == "RDS did not upgrade the copy: cannot be upgraded"
    assert decision["fix_first"][2].startswith("upgraded did not hold (observed 15.7, objective 18.6)")
    assert decision["advice"] == ["recent_snapshot: take a snapshot"]


def test_a_clean_rehearsal_goes_ahead():
    clean = [dict(c, passed=True) for c in CHECKLIST]
    measured = {"to_version": "18.6", "upgraded": True, "server_version_after": "18.6", "downtime_seconds": 3.0}
    table = drill.objectives(clean, measured, [], [], drill.benchmark_summary([0.1], [0.1], 5),
                             max_downtime_seconds=2, max_upgrade_seconds=60)
    assert [(r["name"], r["held"]) for r in table] == [("upgraded", True), ("benchmark slowdown", True),
                                                       ("downtime_seconds", False), ("upgrade_seconds", False)]
    decision = drill.go_ahead(clean, table)
    assert decision["go_ahead"] is False and len(decision["fix_first"]) == 2
    assert drill.go_ahead(clean, [r for r in table if r["held"]]) == {"go_ahead": True, "fix_first": [],
                                                                      "advice": []}


def test_checklist_only_table():
    assert drill.objectives([dict(c, passed=True) for c in CHECKLIST], {}, [], [], rehearsed=False) == [
        {"name": "checklist", "objective": "no blocker", "observed": "no blocker", "unit": None, "held": True}]
    assert [r["name"] for r in drill.objectives(CHECKLIST, {}, [], [], rehearsed=False)] == [
        "checklist: prepared_transactions"]


def tagged(drill_id, status="available"):
    return {"DBSnapshotIdentifier": "s", "Status": status, "TagList": [{"Key": "dbre:drill-id", "Value": drill_id}]}


@pytest.mark.parametrize("described,confirmed,action", [
    (None, True, "gone"),
    (tagged("d1"), True, "delete"),
    (tagged("d1", "deleting"), True, "wait"),
    (tagged("other"), True, "refuse"),
    (tagged("other"), False, "not_ours"),
    ({"DBSnapshotIdentifier": "s", "Status": "available", "TagList": []}, True, "refuse"),
])
def test_snapshot_cleanup_step(described, confirmed, action):
    step = drill.snapshot_cleanup_step("s", described, "d1", confirmed)
    assert step["action"] == action and step["kind"] == "snapshot"


@pytest.mark.parametrize("before,after,limit,slowdown,held", [
    (1000.0, 800.0, 30, 25.0, True),
    (1000.0, 800.0, 20, 25.0, False),
    (800.0, 1000.0, 0, -20.0, True),
    (1000.0, None, 10, None, False),
])
def test_pgbench_summary(before, after, limit, slowdown, held):
    summary = drill.pgbench_summary(before, after, limit, seconds=5)
    assert summary["slowdown_percent"] == slowdown and summary["held"] is held


def test_pgbench_tps_is_read_from_its_output():
    output = "number of transactions actually processed: 5012\ntps = 2504.123456 (without initial connection time)\n"
    assert drill.pgbench_tps(output) == 2504.123456
    assert drill.pgbench_tps("pgbench: error: connection refused") is None


def test_pgbench_slowdown_is_an_objective():
    measured = {"to_version": "18.6", "upgraded": True, "server_version_after": "18.6"}
    table = drill.objectives([], measured, [], [], pgbench=drill.pgbench_summary(1000.0, 500.0, 10))
    assert table[-1] == {"name": "pgbench slowdown", "objective": 10, "observed": 100.0, "unit": "%", "held": False}


def user_values(**values):
    return [{"ParameterName": k, "ParameterValue": str(v), "Source": "user"} for k, v in values.items()]


DRILL_GROUP = {"DBParameterGroupName": "pg18", "DBParameterGroupFamily": "postgres18",
               "Description": drill.parameter_group_request("pg18", "postgres18", {}, "orders")["Description"]}
PLANNED = {"log_min_duration_statement": "500", "work_mem": "{DBInstanceClassMemory/1024}", "random_page_cost": "1.1"}


@pytest.mark.parametrize("described, parameters, missing", [
    # the first batch went in, the second never did (a refused value, throttling, a killed run): refused, named
    (DRILL_GROUP, user_values(log_min_duration_statement=500), ["random_page_cost", "work_mem"]),
    (DRILL_GROUP, [], ["log_min_duration_statement", "random_page_cost", "work_mem"]),
    # complete; a value a DBA changed since is theirs, not a gap
    (DRILL_GROUP, user_values(log_min_duration_statement=250, work_mem="4MB", random_page_cost="1.1"), []),
    # a group the drill did not make is the user's: used as is
    (dict(DRILL_GROUP, Description="ours"), [], []),
])
def test_a_partly_set_group_the_drill_made_is_refused_on_reuse(described, parameters, missing):
    """M4: a group created by an earlier run that stopped between its ModifyDBParameterGroup batches is not used as
    is (by this rehearsal, then by blue/green and production): the run refuses, naming the values it lacks."""
    assert drill.made_by_drill(described) is (described is DRILL_GROUP)
    problems = drill.unfinished_group_problems("pg18", described, PLANNED, parameters)
    if not missing:
        assert problems == []
        return
    assert len(problems) == 1 and problems[0].startswith("target_parameter_group pg18 was made by rds_upgrade_drill")
    assert f"lacks {len(missing)} of the {len(PLANNED)} values" in problems[0]
    assert ", ".join(missing) in problems[0] and "delete the group" in problems[0]


@pytest.mark.parametrize("snapshot_exists, instance_exists, words", [
    (False, False, []),
    (True, False, ["a DB snapshot named snap-1 already exists: give another snapshot_identifier"]),
    (False, True, ["a DB instance named copy-1 already exists: give another target_identifier"]),
    (True, True, ["snapshot_identifier", "target_identifier"]),
])
def test_names_taken_are_refused_before_the_snapshot(snapshot_exists, instance_exists, words):
    """m1: a user-given name that exists is found before CreateDBSnapshot, not by RDS after it."""
    problems = drill.name_taken_problems({"snapshot": "snap-1", "target": "copy-1"}, snapshot_exists, instance_exists)
    assert len(problems) == len(words)
    for problem, word in zip(problems, words):
        assert word in problem


@pytest.mark.parametrize("target, action, group_sent", [
    ("15.8", "default", None),  # minor, no group given: the copy keeps the source's group (m9)
    ("15.8", "use", "orders-pg15-tuned"),  # minor, a group given: that group
    ("18.6", "default", "default.postgres18"),  # major, no group given: the new family's default group
])
def test_a_minor_rehearsal_keeps_the_copys_group_unless_one_is_given(target, action, group_sent):
    """m9: without target_parameter_group a minor rehearsal must not swap the source's custom group for RDS's
    default, or the before/after benchmark compares parameters, not versions."""
    name = "default.postgres18" if action == "default" and target.startswith("18") else (
        "default.postgres15" if action == "default" else "orders-pg15-tuned")
    plan = drill.plan_rehearsal(params(), SOURCE, target, {"name": name, "action": action, "problems": []},
                                NOW, "20261130T070000Z-abcdef12")
    assert plan["upgrade_request"].get("DBParameterGroupName") == group_sent
