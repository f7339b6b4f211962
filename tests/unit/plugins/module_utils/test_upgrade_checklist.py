# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pre-upgrade checklist's decisions, table-driven: clean facts pass every check, and each blocker or risk fails
exactly its check, with the fix to run."""

import copy
import datetime

import pytest

from ansible_collections.dbre.rds.plugins.module_utils import extension_versions
from ansible_collections.dbre.rds.plugins.module_utils import param_tuning
from ansible_collections.dbre.rds.plugins.module_utils import upgrade_checklist as checklist

NOW = datetime.datetime(2026, 11, 30, 3, 0, 0, tzinfo=datetime.timezone.utc)  # a Monday
GIB = 1024 ** 3


def ago(**kwargs):
    return NOW - datetime.timedelta(**kwargs)


def param(name, value=None, modifiable=True, data_type="integer", allowed=None, description=""):
    item = {"ParameterName": name, "IsModifiable": modifiable, "DataType": data_type, "Description": description}
    if value is not None:
        item["ParameterValue"] = value
    if allowed:
        item["AllowedValues"] = allowed
    return item


def read_result(**instance_changes):
    instance = {
        "DBInstanceIdentifier": "app", "DBInstanceStatus": "available", "Engine": "postgres",
        "EngineVersion": "15.10", "DBParameterGroups": [{"DBParameterGroupName": "app-pg15"}],
        "BackupRetentionPeriod": 7, "LatestRestorableTime": ago(seconds=120),
        "PreferredMaintenanceWindow": "sun:05:00-sun:05:30", "PendingModifiedValues": {}, "MultiAZ": True,
        "AllocatedStorage": 100,
    }
    instance.update(instance_changes)
    return {
        "instance": instance,
        "current_engine_versions": [{"EngineVersion": "15.10", "DBParameterGroupFamily": "postgres15",
                                     "ValidUpgradeTarget": [
                                         {"EngineVersion": "15.12", "IsMajorVersionUpgrade": False},
                                         {"EngineVersion": "16.6", "IsMajorVersionUpgrade": True},
                                         {"EngineVersion": "18.6", "IsMajorVersionUpgrade": True}]}],
        "target_engine_versions": [{"EngineVersion": "18.6", "DBParameterGroupFamily": "postgres18"}],
        "current_parameters": [param("work_mem", "4096"), param("rds.logical_replication", "0"),
                               param("shared_buffers", "{DBInstanceClassMemory/32768}")],
        "current_defaults": [param("work_mem", "4096"), param("rds.logical_replication", "0"),
                             param("shared_buffers", "{DBInstanceClassMemory/32768}")],
        "target_defaults": [param("work_mem"), param("rds.logical_replication"), param("shared_buffers")],
        "target_parameter_group": None,
        "snapshots": [{"DBSnapshotIdentifier": "rds:app-2026-11-30", "Status": "available", "SnapshotType": "automated",
                       "SnapshotCreateTime": ago(hours=2)},
                      {"DBSnapshotIdentifier": "old", "Status": "available", "SnapshotType": "manual",
                       "SnapshotCreateTime": ago(days=30)}],
        "free_storage_datapoints": [{"Timestamp": ago(minutes=2), "Minimum": 60.0 * GIB},
                                    {"Timestamp": ago(minutes=1), "Minimum": 50.0 * GIB}],
    }


def clean_database():
    return {
        "target_major": "18", "server_version": "15.10", "source_major": "15",
        "databases": [{"name": "app", "allows_connections": True, "size_bytes": 10 * GIB},
                      {"name": "postgres", "allows_connections": True, "size_bytes": 8000000},
                      {"name": "rdsadmin", "allows_connections": True, "size_bytes": None},
                      {"name": "template0", "allows_connections": False, "size_bytes": 7000000}],
        "refusing_connections": [], "unreadable": [], "prepared_transactions": [], "logical_slots": [],
        "transactions": [{"pid": 10, "database": "app", "user": "app", "application_name": "web", "state": "active",
                          "xact_start": "2026-11-30T02:59:58.000Z", "age_seconds": 2.0}],
        "typed_columns": [],
        "extensions": [{"database": "app", "name": "plpgsql", "version": "1.0", "update_targets": []},
                       {"database": "app", "name": "hstore", "version": "1.8", "update_targets": []},
                       {"database": "app", "name": "pg_stat_statements", "version": "1.10", "update_targets": []}],
        "total_size_bytes": 10 * GIB + 8000000,
    }


def facts(read=None, database="clean", target="18.6", group=None):
    aws = checklist.aws_facts(read or read_result(), target, NOW, target_parameter_group=group)
    return {"aws": aws, "database": clean_database() if database == "clean" else database}


def failed(checks):
    return [c["name"] for c in checks if not c["passed"]]


def by_name(checks, name):
    return [c for c in checks if c["name"] == name][0]


OPTIONS = checklist.options_from({})


def test_clean_instance_passes_every_check_in_order():
    checks = checklist.evaluate(facts(), OPTIONS)
    assert [c["name"] for c in checks] == list(checklist.CHECK_NAMES)
    assert failed(checks) == []
    assert all(c["fix"] is None for c in checks)
    assert checklist.summary(checks) == {"passed": True, "ready": True, "failed_checks": [], "blockers": [],
                                         "warnings": []}


def _seed(database, **changes):
    for key, value in changes.items():
        database[key] = value
    return database


REG_COLUMN = {"database": "app", "schema": "public", "relation": "jobs", "relkind": "r", "column": "handler",
              "type": "regproc", "root": "regproc"}
ACL_COLUMN = {"database": "app", "schema": "public", "relation": "grants", "relkind": "r", "column": "acl",
              "type": "aclitem[]", "root": "aclitem"}
ROW_COLUMN = {"database": "app", "schema": "audit", "relation": "snap", "relkind": "r", "column": "cls",
              "type": "pg_class", "root": "system_composite:pg_class"}
# PostgreSQL 18's pg_upgrade (check_for_not_null_inheritance, sources up to 17): a child nullable where its parent
# is NOT NULL
NULLABLE_CHILD = {"database": "app", "schema": "sales", "relation": "orders_2024", "column": "customer_id",
                  "parent_schema": "sales", "parent": "orders"}

# Each blocker seeded alone: (id, change to the database facts, the one failing check, words in its fix)
DATABASE_BLOCKERS = [
    ("prepared", dict(prepared_transactions=[{"gid": "tx'1", "database": "app", "owner": "app",
                                              "prepared": "2026-11-30T02:00:00.000Z", "age_seconds": 3600.0}]),
     "prepared_transactions", ["in database app: COMMIT PREPARED 'tx''1';", "ROLLBACK PREPARED 'tx''1';"]),
    ("regproc", dict(typed_columns=[REG_COLUMN]), "reg_columns",
     ['ALTER TABLE "public"."jobs" ALTER COLUMN "handler" TYPE text USING "handler"::text;']),
    ("slot", dict(logical_slots=[{"slot_name": "cdc", "plugin": "pgoutput", "database": "app", "active": False,
                                  "temporary": False}]),
     "logical_slots", ["SELECT pg_drop_replication_slot('cdc');"]),
    ("aclitem", dict(typed_columns=[ACL_COLUMN]), "removed_data_types",
     ['ALTER TABLE "public"."grants" ALTER COLUMN "acl" TYPE text', "aclitem changed in PostgreSQL 16"]),
    ("catalog row type", dict(typed_columns=[ROW_COLUMN]), "removed_data_types",
     ["pg_class is a system catalog's row type"]),
    ("extension removed", dict(extensions=[{"database": "app", "name": "adminpack", "version": "2.1",
                                            "update_targets": []}]),
     "extension_versions", ['in database app: PostgreSQL 18 does not ship adminpack', 'DROP EXTENSION "adminpack";']),
    ("not null inheritance", dict(not_null_inheritance=[NULLABLE_CHILD]), "not_null_inheritance",
     ['in database app: ALTER TABLE "sales"."orders_2024" ALTER COLUMN "customer_id" SET NOT NULL;',
      "sales.orders.customer_id is NOT NULL", "NULLs"]),
    ("refusing database", dict(refusing_connections=["archive"]), "database_connections",
     ['ALTER DATABASE "archive" WITH ALLOW_CONNECTIONS true;']),
    ("unreadable", dict(unreadable=[{"database": "secret", "error": "permission denied for database secret"}]),
     "databases_inspected", ["cannot inspect secret (permission denied for database secret)"]),
    ("long transaction", dict(transactions=[{"pid": 42, "database": "app", "user": "etl", "application_name": None,
                                             "state": "idle in transaction", "xact_start": "2026-11-30T01:00:00.000Z",
                                             "age_seconds": 7200.0}]),
     "long_transactions", ["SELECT pg_terminate_backend(42);", "7200.0 s"]),
]


@pytest.mark.parametrize("change, name, words", [case[1:] for case in DATABASE_BLOCKERS],
                         ids=[case[0] for case in DATABASE_BLOCKERS])
def test_each_database_blocker_fails_exactly_its_check(change, name, words):
    checks = checklist.evaluate(facts(database=_seed(clean_database(), **change)), OPTIONS)
    assert failed(checks) == [name]
    check = by_name(checks, name)
    for word in words:
        assert word in check["fix"]
    assert check["blocker"] is (name in checklist.BLOCKER_CHECKS)
    summary = checklist.summary(checks)
    assert summary["ready"] is (name not in checklist.BLOCKER_CHECKS)
    assert not summary["passed"]


def test_regclass_regrole_and_regtype_columns_are_no_blocker():
    # pg_upgrade keeps pg_class, pg_authid and pg_type OIDs: these types are not searched for, so the pass never
    # reports them; a column the pass did report under another root is judged by its root only.
    assert "regclass" not in checklist.typed_column_names("15", "18")
    assert {"regrole", "regtype"}.isdisjoint(checklist.typed_column_names("15", "18"))
    column = dict(REG_COLUMN, type="regclass", root="regclass")
    checks = checklist.evaluate(facts(database=_seed(clean_database(), typed_columns=[column])), OPTIONS)
    assert failed(checks) == []


def test_removed_types_only_across_the_major_that_changed_them():
    assert "aclitem" in checklist.typed_column_names("15", "18")
    assert "aclitem" not in checklist.typed_column_names("16", "18")
    assert "abstime" not in checklist.typed_column_names("15", "18")
    assert "abstime" in checklist.typed_column_names("11", "13")
    database = _seed(clean_database(), source_major="16", typed_columns=[ACL_COLUMN])
    assert failed(checklist.evaluate(facts(database=database), OPTIONS)) == []


def test_a_column_found_under_two_roots_is_listed_once_with_both_reasons():
    both = [dict(ROW_COLUMN, root="aclitem"), ROW_COLUMN]
    check = by_name(checklist.evaluate(facts(database=_seed(clean_database(), typed_columns=both)), OPTIONS),
                    "removed_data_types")
    assert check["value"] == ["app:audit.snap.cls (pg_class)"]
    assert "aclitem changed" in check["detail"]["columns"][0]["reason"]
    assert "row type" in check["detail"]["columns"][0]["reason"]


def test_an_index_on_a_reg_expression_is_reported_without_an_alter_table():
    index = dict(REG_COLUMN, relation="jobs_handler_idx", relkind="i")
    check = by_name(checklist.evaluate(facts(database=_seed(clean_database(), typed_columns=[index])), OPTIONS),
                    "reg_columns")
    assert not check["passed"] and "ALTER TABLE" not in check["fix"]


# ------------------------------------------------------------------------------------------------ extensions

@pytest.mark.parametrize("extension, extra, expected_fix, update_to", [
    ({"database": "app", "name": "postgis", "version": "3.1.4", "update_targets": ["3.2.0", "3.4.3", "3.5.2"]},
     {"postgis": ["3.4.3", "3.5.2", "3.6.0"]},
     "in database app: ALTER EXTENSION \"postgis\" UPDATE TO '3.5.2';", "3.5.2"),
    ({"database": "app", "name": "postgis", "version": "3.1.4", "update_targets": ["3.2.0"]},
     {"postgis": ["3.5.2"]}, "cannot be updated here to a version PostgreSQL 18 ships (3.5.2)", None),
    ({"database": "app", "name": "adminpack", "version": "2.1", "update_targets": []}, {},
     'DROP EXTENSION "adminpack";', None),
    ({"database": "app", "name": "postgis", "version": "3.5.2", "update_targets": []}, {"postgis": "3.5.2"},
     None, None),
    ({"database": "app", "name": "hstore", "version": "1.4", "update_targets": ["1.5"]}, {}, None, None),
    ({"database": "app", "name": "hstore", "version": "1.4", "update_targets": ["1.5", "1.6", "1.7", "1.8"]},
     {"hstore": ["1.8"]}, "in database app: ALTER EXTENSION \"hstore\" UPDATE TO '1.8';", "1.8"),
    ({"database": "app", "name": "pgcrypto", "version": "1.3", "update_targets": []}, {}, None, None),
    ({"database": "app", "name": "uuid-ossp", "version": "1.1", "update_targets": []}, {}, None, None),
], ids=["update to newest shipped", "no reachable shipped version", "removed in 17", "added by the option",
        "old version still shipped", "the option narrows to what RDS supports", "pgcrypto (not built by the wheel)",
        "uuid-ossp"])
def test_extension_problem(extension, extra, expected_fix, update_to):
    problem = checklist.extension_problem(extension, checklist.target_extension_versions("18", extra), "18")
    if expected_fix is None:
        assert problem is None
    else:
        assert expected_fix in problem["fix"]
        assert problem["update_to"] == update_to


def test_extension_version_the_target_lacks_fails_with_its_update():
    database = _seed(clean_database(), extensions=[
        {"database": "app", "name": "postgis", "version": "3.1.4", "update_targets": ["3.4.3"]}])
    options = checklist.options_from({"extension_versions": {"postgis": ["3.4.3", "3.5.2"]}})
    checks = checklist.evaluate(facts(database=database), options)
    assert failed(checks) == ["extension_versions"]
    assert by_name(checks, "extension_versions")["fix"] == \
        "in database app: ALTER EXTENSION \"postgis\" UPDATE TO '3.4.3';"
    # Without the option the checklist does not know postgis: it cannot tell an update, it says what RDS lacks.
    unknown = by_name(checklist.evaluate(facts(database=database), OPTIONS), "extension_versions")
    assert "does not ship postgis" in unknown["fix"]


def test_generated_extension_data_reflects_the_majors():
    e15, e18 = extension_versions.EXTENSION_VERSIONS["15"], extension_versions.EXTENSION_VERSIONS["18"]
    assert "adminpack" in e15 and "adminpack" not in e18  # removed in PostgreSQL 17
    assert "1.10" in e15["pg_stat_statements"] and "1.12" in e18["pg_stat_statements"]
    assert extension_versions.DEFAULT_VERSIONS["18"]["plpgsql"] == "1.0"
    assert list(e18["amcheck"]) == sorted(e18["amcheck"], key=checklist.version_key)
    assert "python -m tests.lab.extension_catalog" in extension_versions.__doc__


# ------------------------------------------------------------------------------------------------ the AWS side

def test_aws_facts_from_describe_results():
    aws = checklist.aws_facts(read_result(), "18.6", NOW.isoformat())
    assert aws["restorable_age_seconds"] == 120.0
    assert aws["snapshot_age_hours"] == 2.0 and aws["newest_snapshot"] == "rds:app-2026-11-30"
    assert aws["free_storage_bytes"] == 50.0 * GIB  # the newest datapoint
    assert aws["next_maintenance"] == "2026-12-06T05:00:00.000Z"
    assert aws["target_family"] == "postgres18" and aws["current_family"] == "postgres15"
    assert aws["current_non_default"] == {}
    assert [t["version"] for t in aws["valid_targets"]] == ["15.12", "16.6", "18.6"]


@pytest.mark.parametrize("window, expected", [
    ("sun:05:00-sun:05:30", "2026-12-06T05:00:00.000Z"),
    ("mon:02:00-mon:02:30", "2026-12-07T02:00:00.000Z"),  # just passed: next week
    ("mon:04:00-mon:04:30", "2026-11-30T04:00:00.000Z"),
    ("Tue:23:30-Wed:00:00", "2026-12-01T23:30:00.000Z"),
    (None, None), ("nonsense", None),
])
def test_next_window_start(window, expected):
    assert checklist.utc_iso(checklist.next_window_start(window, NOW)) == expected


# Each AWS-side problem alone: (id, change to the describe results, options, failing check, words in its fix, blocker)
AWS_PROBLEMS = [
    ("not available", dict(instance=dict(DBInstanceStatus="modifying")), {}, "instance_available",
     ["it is modifying"], True),
    ("no backups", dict(instance=dict(BackupRetentionPeriod=0)), {}, "recent_backup",
     ["BackupRetentionPeriod >= 1"], False),
    ("stale restorable time", dict(instance=dict(LatestRestorableTime=ago(hours=1))), {}, "recent_backup",
     ["3600.0 s old"], False),
    ("old snapshots", dict(snapshots=[{"DBSnapshotIdentifier": "old", "Status": "available",
                                       "SnapshotCreateTime": ago(days=3)}]), {}, "recent_snapshot",
     ["CreateDBSnapshot", "72.0 hours old"], False),
    ("no snapshot", dict(snapshots=[]), {}, "recent_snapshot", ["take a manual snapshot of app"], False),
    ("pending change", dict(instance=dict(PendingModifiedValues={"DBInstanceClass": "db.r6g.large"})), {},
     "maintenance_window", ["DBInstanceClass"], False),
    ("single az required", dict(instance=dict(MultiAZ=False)), {"require_multi_az": True}, "multi_az",
     ["MultiAZ=true"], False),
    ("storage low", dict(free_storage_datapoints=[{"Timestamp": ago(minutes=1), "Minimum": 5.0 * GIB}]), {},
     "free_storage", ["5.0 % of 100 GiB free"], False),
    ("custom values lost", dict(current_parameters=[param("work_mem", "65536"), param("rds.logical_replication", "1")]),
     {}, "target_parameter_group", ["default.postgres18", "rds.logical_replication, work_mem"], False),
]


def _apply(read, change):
    read = copy.deepcopy(read)
    for key, value in change.items():
        if key == "instance":
            read["instance"].update(value)
        else:
            read[key] = value
    return read


@pytest.mark.parametrize("change, options, name, words, blocker", [case[1:] for case in AWS_PROBLEMS],
                         ids=[case[0] for case in AWS_PROBLEMS])
def test_each_aws_problem_fails_exactly_its_check(change, options, name, words, blocker):
    checks = checklist.evaluate(facts(read=_apply(read_result(), change)), checklist.options_from(options))
    assert failed(checks) == [name]
    check = by_name(checks, name)
    for word in words:
        assert word in check["fix"]
    assert check["blocker"] is blocker


def test_single_az_passes_unless_required():
    checks = checklist.evaluate(facts(read=_apply(read_result(), dict(instance=dict(MultiAZ=False)))), OPTIONS)
    check = by_name(checks, "multi_az")
    assert check["passed"] and check["value"] is False and check["expected"] == "not required"


def test_free_storage_falls_back_to_allocated_less_databases():
    read = _apply(read_result(), dict(free_storage_datapoints=[], instance=dict(AllocatedStorage=11)))
    check = by_name(checklist.evaluate(facts(read=read), OPTIONS), "free_storage")
    assert check["detail"]["source"] == "allocated less databases"
    assert check["value"] == pytest.approx(100 * (GIB - 8000000) / (11 * GIB), abs=0.01)
    assert check["passed"] is False


@pytest.mark.parametrize("target, words", [
    ("15.10", ["already runs 15.10"]),
    ("14.9", ["older than 15.10", "RDS does not downgrade"]),
    ("19.1", ["RDS offers no postgres 19.1"]),
    ("16.2", ["16.6 of the same major are"]),
    ("17.4", ["cannot upgrade to 17.4 directly: upgrade first to 18.6"]),
])
def test_invalid_targets_say_what_to_pick(target, words):
    read = read_result()
    if target in ("19.1", "14.9"):
        read["target_engine_versions"] = [] if target == "19.1" else [{"EngineVersion": target,
                                                                       "DBParameterGroupFamily": "postgres14"}]
    elif target != "15.10":
        read["target_engine_versions"] = [{"EngineVersion": target,
                                           "DBParameterGroupFamily": f"postgres{target.split('.')[0]}"}]
    checks = checklist.evaluate(facts(read=read, target=target), OPTIONS)
    check = by_name(checks, "valid_upgrade_target")
    assert not check["passed"] and check["blocker"]
    for word in words:
        assert word in check["fix"]


@pytest.mark.parametrize("group, described, create, passed, blocker, words", [
    ("app-pg18", {"DBParameterGroupName": "app-pg18", "DBParameterGroupFamily": "postgres18"}, False, True, True,
     []),
    ("app-pg15", {"DBParameterGroupName": "app-pg15", "DBParameterGroupFamily": "postgres15"}, False, False, True,
     ["app-pg15 is of family postgres15", "give a group of family postgres18"]),
    ("app-pg18", None, False, False, True, ["no parameter group app-pg18", "create_parameter_group: true"]),
    ("app-pg18", None, True, True, True, []),
    (None, None, True, True, True, []),
], ids=["right family", "wrong family", "missing", "missing, to be created", "created under a derived name"])
def test_target_parameter_group(group, described, create, passed, blocker, words):
    read = dict(read_result(), target_parameter_group=described)
    options = checklist.options_from({"target_parameter_group": group, "create_parameter_group": create})
    check = by_name(checklist.evaluate(facts(read=read, group=group), options), "target_parameter_group")
    assert check["passed"] is passed and check["blocker"] is blocker
    for word in words:
        assert word in check["fix"]


# ------------------------------------------------------------------------------------------------ no login

def test_without_database_facts_the_database_checks_fail_as_not_checked():
    checks = checklist.evaluate(facts(database=None), OPTIONS)
    assert failed(checks) == list(checklist.DATABASE_CHECKS)
    for name in checklist.DATABASE_CHECKS:
        assert "give login_user" in by_name(checks, name)["fix"]
        assert by_name(checks, name)["detail"]["not_checked"]


def test_database_facts_alone_give_the_database_checks_only():
    database = _seed(clean_database(), logical_slots=[{"slot_name": "cdc", "plugin": "pgoutput", "database": "app",
                                                       "active": True, "temporary": False}])
    checks = checklist.evaluate({"database": database}, {})
    assert [c["name"] for c in checks] == list(checklist.DATABASE_CHECKS)
    assert failed(checks) == ["logical_slots"]


def test_fixes_list_blockers_first_and_objectives_rows():
    database = _seed(clean_database(), typed_columns=[REG_COLUMN],
                     transactions=[{"pid": 7, "database": "app", "user": "u", "application_name": "a",
                                    "state": "active", "xact_start": None, "age_seconds": 9999.0}])
    read = _apply(read_result(), dict(snapshots=[]))
    checks = checklist.evaluate(facts(read=read, database=database), OPTIONS)
    assert [f["name"] for f in checklist.fixes(checks)] == ["reg_columns", "recent_snapshot", "long_transactions"]
    rows = {row["name"]: row for row in checklist.objectives(checks)}
    assert rows["reg_columns"]["held"] is False and "jobs.handler" in rows["reg_columns"]["observed"]
    assert rows["long_transactions"] == {"name": "long_transactions", "objective": 300.0, "observed": 9999.0,
                                         "unit": "seconds", "held": False}


# ------------------------------------------------------------------------------------------------ options

@pytest.mark.parametrize("params, words", [
    ({"max_backup_age_hours": 0}, "max_backup_age_hours must be positive"),
    ({"max_transaction_age_seconds": float("nan")}, "max_transaction_age_seconds must be positive"),
    ({"min_free_storage_percent": 120}, "between 0 and 100"),
    ({"extension_versions": {"postgis": [""]}}, "extension_versions.postgis must list"),
    ({"extension_versions": {"postgis": [{"v": 1}]}}, "extension_versions.postgis must list"),
])
def test_option_problems(params, words):
    assert any(words in problem for problem in checklist.option_problems(params))


def test_an_empty_list_says_the_target_does_not_ship_the_extension():
    assert checklist.option_problems({"extension_versions": {"pgcrypto": []}}) == []
    offered = checklist.target_extension_versions("18", {"pgcrypto": []})
    problem = checklist.extension_problem({"database": "app", "name": "pgcrypto", "version": "1.3",
                                           "update_targets": []}, offered, "18")
    assert 'DROP EXTENSION "pgcrypto";' in problem["fix"] and "does not ship pgcrypto" in problem["fix"]


def test_defaults_have_no_problems_and_match_the_argument_spec():
    spec = checklist.checklist_argument_spec()
    defaults = {key: value["default"] for key, value in spec.items()}
    assert checklist.option_problems(defaults) == []
    assert defaults == checklist.DEFAULT_OPTIONS


@pytest.mark.parametrize("version, major", [("15.10", "15"), ("18.6", "18"), ("9.6.24", "9.6"), ("16", "16"),
                                            ("x", None), (None, None)])
def test_major_of(version, major):
    assert checklist.major_of(version) == major


# ------------------------------------------------------------------------------------------------ parameter group plan

def test_target_parameter_group_plan_carries_drops_and_tunes():
    current = {"work_mem": "65536", "rds.logical_replication": "1", "vacuum_defer_cleanup_age": "100",
               "old_static": "1", "random_page_cost": "2", "bad_enum": "maybe"}
    defaults = {"work_mem": "4096", "rds.logical_replication": "0", "vacuum_defer_cleanup_age": "0",
                "old_static": "0", "random_page_cost": "4", "bad_enum": "off"}
    target = {"work_mem": param("work_mem", description="(kB) Sets the maximum memory"),
              "rds.logical_replication": param("rds.logical_replication", data_type="boolean", allowed="0,1"),
              "old_static": param("old_static", modifiable=False),
              "random_page_cost": param("random_page_cost", data_type="float"),
              "bad_enum": param("bad_enum", data_type="string", allowed="on,off"),
              "shared_buffers": param("shared_buffers", description="(8kB) Sets the number of shared memory buffers"),
              "max_connections": param("max_connections")}
    tuned = [{"name": "shared_buffers", "value": "131072", "unit": "8kB", "rationale": "r"},
             {"name": "random_page_cost", "value": "1.1", "unit": None, "rationale": "r"},
             {"name": "max_connections", "value": "300", "unit": None, "rationale": "r"},
             {"name": "not_in_18", "value": "1", "unit": None, "rationale": "r"}]
    plan = checklist.target_parameter_group_plan(current, defaults, target, tuned)
    assert plan["carried"] == [{"name": "random_page_cost", "value": "2"},
                               {"name": "rds.logical_replication", "value": "1"},
                               {"name": "work_mem", "value": "65536"}]
    dropped = {d["name"]: d["reason"] for d in plan["dropped"]}
    assert set(dropped) == {"vacuum_defer_cleanup_age", "old_static", "bad_enum"}
    assert dropped["vacuum_defer_cleanup_age"] == "the target family has no such parameter"
    assert "not let it be modified" in dropped["old_static"]
    assert dropped["bad_enum"].startswith("the target family refuses it")
    assert plan["values"] == {"max_connections": "300", "random_page_cost": "2", "rds.logical_replication": "1",
                              "shared_buffers": "131072", "work_mem": "65536"}  # carried wins over tuned
    assert {t["name"] for t in plan["tuned"]} == {"max_connections", "shared_buffers"}
    assert [s["name"] for s in plan["skipped"]] == ["not_in_18"]


def test_target_parameter_group_plan_with_param_tune_rules():
    sizing = {"instance_class": "db.r6g.large", "memory_bytes": 16 * GIB, "memory_gib": 16, "vcpus": 2,
              "source": "table"}
    tuned, _skipped = param_tuning.recommend(sizing)
    metadata = {item["name"]: param(item["name"], data_type="string") for item in tuned}
    plan = checklist.target_parameter_group_plan({}, {}, metadata, tuned)
    assert plan["carried"] == [] and plan["dropped"] == []
    assert plan["values"]["shared_preload_libraries"] == "pg_stat_statements"
    assert set(plan["values"]) == {item["name"] for item in tuned}


# ------------------------------------------------------------------------------------------------ the SQL pass

class FakeCursor:
    def __init__(self, conn):
        self.conn = conn
        self.rows = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, sql, params=None):
        self.conn.executed.append(sql)
        for marker, rows in self.conn.answers.items():
            if marker in sql:
                if isinstance(rows, Exception):
                    raise rows
                self.rows = rows
                return
        raise AssertionError(f"unexpected SQL: {sql[:80]}")

    def fetchall(self):
        return self.rows


class FakeConnection:
    def __init__(self, database, answers):
        self.database, self.answers, self.executed, self.closed, self.autocommit = database, answers, [], False, False

    def cursor(self):
        return FakeCursor(self)

    def close(self):
        self.closed = True


def test_database_facts_reads_cluster_facts_once_and_each_database():
    prepared_at = ago(hours=1)
    cluster = {
        "server_version_num": [(150010, "15.10 (Debian)")],
        "FROM pg_catalog.pg_database": [("app", True, 10 * GIB), ("archive", False, 5), ("postgres", True, 9),
                                        ("rdsadmin", True, None), ("template0", False, 7), ("template1", True, 7)],
        "pg_prepared_xacts": [("g1", "app", "app", prepared_at, 3600.0)],
        "pg_replication_slots": [("cdc", "pgoutput", "app", False, False)],
        "pg_stat_activity": [(7, "app", "etl", "job", "idle in transaction", ago(minutes=10), 600.0)],
    }
    per_database = {"WITH RECURSIVE": [("public", "jobs", "r", "handler", "regproc", "regproc")],
                    "pg_extension_update_paths": [("hstore", "1.4", ["1.8", "1.10", "1.5"])],
                    "pg_inherits": [("sales", "orders_2024", "customer_id", "sales", "orders")]}
    opened = []

    def connect(database):
        if database == "template1":
            raise RuntimeError('FATAL:  permission denied for database "template1"\nDETAIL: x')
        conn = FakeConnection(database, cluster if not opened else per_database)
        opened.append(conn)
        return conn

    found = checklist.database_facts(connect, "18", login_db="postgres")
    assert [c.database for c in opened] == ["postgres", "app", "postgres"]
    assert all(c.closed and c.autocommit for c in opened)
    assert found["source_major"] == "15" and found["server_version"] == "15.10"
    assert found["refusing_connections"] == ["archive"]
    assert found["unreadable"] == [{"database": "template1",
                                    "error": 'FATAL:  permission denied for database "template1"'}]
    assert found["prepared_transactions"][0]["prepared"] == checklist.utc_iso(prepared_at)
    assert found["logical_slots"] == [{"slot_name": "cdc", "plugin": "pgoutput", "database": "app", "active": False,
                                       "temporary": False}]
    assert found["transactions"][0]["age_seconds"] == 600.0
    assert [c["database"] for c in found["typed_columns"]] == ["app", "postgres"]
    assert found["extensions"][0]["update_targets"] == ["1.5", "1.8", "1.10"]
    assert found["not_null_inheritance"] == [dict(NULLABLE_CHILD, database=name) for name in ("app", "postgres")]
    assert found["total_size_bytes"] == 10 * GIB + 5 + 9 + 7 + 7
    checks = checklist.evaluate({"aws": checklist.aws_facts(read_result(), "18.6", NOW), "database": found}, OPTIONS)
    assert set(failed(checks)) == {"databases_inspected", "database_connections", "prepared_transactions",
                                   "reg_columns", "logical_slots", "not_null_inheritance", "long_transactions"}


def test_a_database_that_fails_its_queries_is_unreadable_and_closed():
    cluster = {"server_version_num": [(150010, "15.10")],
               "FROM pg_catalog.pg_database": [("postgres", True, 9)], "pg_prepared_xacts": [],
               "pg_replication_slots": [], "pg_stat_activity": []}
    opened = []

    def connect(database):
        conn = FakeConnection(database, cluster if not opened else {"WITH RECURSIVE": RuntimeError("canceled")})
        opened.append(conn)
        return conn

    found = checklist.database_facts(connect, "18")
    assert found["unreadable"] == [{"database": "postgres", "error": "canceled"}]
    assert all(c.closed for c in opened)


@pytest.mark.parametrize("source, target, applies", [
    ("15", "18", True), ("16", "18", True), ("17", "18", True), ("17", "19", True),
    ("18", "19", False), ("15", "17", False), ("15", "16", False),
])
def test_not_null_inheritance_only_from_17_or_older_to_18_or_newer(source, target, applies):
    """M11: pg_upgrade of PostgreSQL 18 checks it for sources up to 17; the SQL pass runs it only then."""
    assert checklist.not_null_check_applies(source, target) is applies
    database = _seed(clean_database(), source_major=source, target_major=target,
                     not_null_inheritance=[NULLABLE_CHILD])
    check = by_name(checklist.evaluate({"database": database}, OPTIONS), "not_null_inheritance")
    assert check["passed"] is not applies and check["blocker"] is True
    assert check["value"] == (["app:sales.orders_2024.customer_id"] if applies else [])


def test_the_not_null_pass_is_skipped_where_it_does_not_apply():
    cluster = {"server_version_num": [(180001, "18.1")], "FROM pg_catalog.pg_database": [("app", True, 9)],
               "pg_prepared_xacts": [], "pg_replication_slots": [], "pg_stat_activity": []}
    per_database = {"WITH RECURSIVE": [], "pg_extension_update_paths": []}  # pg_inherits would be unexpected SQL
    opened = []

    def connect(database):
        conn = FakeConnection(database, cluster if not opened else per_database)
        opened.append(conn)
        return conn

    found = checklist.database_facts(connect, "19")
    assert found["unreadable"] == [] and found["not_null_inheritance"] == []
