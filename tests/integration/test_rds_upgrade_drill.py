# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbre.rds.rds_upgrade_drill against the lab: a real pg_upgrade from PostgreSQL 15 to 18 on a copy of the source.

One lab and one source for the file (module fixture): ``orders`` (PostgreSQL 15.7, 100 rows). In order:

- check mode returns the checklist and the plan and makes no mutating call;
- a rehearsal on clean data passes: the copy reports version 18 after the upgrade, the checks pass on both sides, the
  timings are in the report (and agree with the lab's own pg_upgrade log), nothing is left behind, and no mutating call
  names ``orders`` except as the source of the drill's snapshot, whose settings stay as they were;
- with a ``regproc`` column seeded on ``orders``, the checklist names the blocker and its fix, the rehearsal reports
  the reason RDS gave for not upgrading the copy, and cleans up all the same.
"""

import json
import os
import pathlib
import subprocess
import sys
import time

import psycopg2
import pytest

from tests.lab.clients import MASTER_PASSWORD, MASTER_USER, create_postgres

ROOT = pathlib.Path(__file__).resolve().parents[2]
ANSIBLE = str(pathlib.Path(sys.executable).parent / "ansible")
MODULE = "dbre.rds.rds_upgrade_drill"
MUTATING_RDS = ("Create", "Delete", "Promote", "Modify", "Reboot", "Failover", "Switchover", "Restore", "Remove",
                "Start", "Stop", "Add", "Copy", "Reset")
CREDENTIALS = {"login_user": MASTER_USER, "login_password": MASTER_PASSWORD, "login_db": "app"}
CHECKS = [{"name": "orders", "sql": "SELECT count(*) FROM orders", "expect": {"equals": 100}},
          {"name": "total", "sql": "SELECT sum(amount) FROM orders", "expect": {"equals": 5050}}]


def module_env(lab):
    env = dict(os.environ)
    env.update(lab.env)
    env.update(ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build"), ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_NOCOLOR="1")
    return env


def run(lab, args, check=False):
    command = [ANSIBLE, "localhost", "-i", "localhost,", "-c", "local", "-m", MODULE, "-a", json.dumps(args)]
    done = subprocess.run(command + (["--check"] if check else []), env=module_env(lab), cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    try:
        return json.loads(done.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError):
        raise AssertionError(f"no module result in the output:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}") \
            from None


def connect(instance):
    conn = psycopg2.connect(host=instance["Endpoint"]["Address"], port=instance["Endpoint"]["Port"],
                            user=MASTER_USER, password=MASTER_PASSWORD, dbname="app", connect_timeout=5)
    conn.autocommit = True
    return conn


def mutating(lab, since):
    return [c for c in lab.control.calls(since=since, service="rds")
            if str(c.get("action", "")).startswith(MUTATING_RDS)]


def fingerprint(rds, identifier="orders"):
    """What the drill must never change on the source."""
    found = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
    return {"status": found["DBInstanceStatus"], "version": found["EngineVersion"], "class": found["DBInstanceClass"],
            "groups": [g["DBParameterGroupName"] for g in found["DBParameterGroups"]],
            "multi_az": found["MultiAZ"], "pending": found.get("PendingModifiedValues") or {},
            "tags": rds.list_tags_for_resource(ResourceName=found["DBInstanceArn"])["TagList"]}


def leftovers(rds):
    instances = sorted(i["DBInstanceIdentifier"] for i in rds.describe_db_instances()["DBInstances"])
    manual = sorted(s["DBSnapshotIdentifier"] for s in rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"])
    return instances, manual


def assert_source_untouched(lab, since, result, before):
    """Every mutating call names the drill's own snapshot or copy; the source is named only as the snapshot's source."""
    rds = lab.client("rds")
    calls = mutating(lab, since)
    plan = result["plan"]
    for call in calls:
        params = call["params"]
        named = {v for k, v in params.items() if k in ("DBInstanceIdentifier", "DBSnapshotIdentifier",
                                                        "TargetDBInstanceIdentifier", "ResourceName")}
        if call["action"] in ("CreateDBParameterGroup", "ModifyDBParameterGroup"):
            # The target family's group the user asked for: kept for production, never the source's own group.
            assert params["DBParameterGroupName"] == plan["parameter_group"]["name"] != "orders-pg15", call
            continue
        if call["action"] == "CreateDBSnapshot":
            assert params["DBSnapshotIdentifier"] == plan["snapshot"] and params["DBInstanceIdentifier"] == "orders"
            continue
        assert "orders" not in named and not any(str(v).endswith(":db:orders") for v in named), call
        assert named <= {plan["snapshot"], plan["target"]}, call
    assert fingerprint(rds) == before, "the source is exactly as it was"
    return calls


@pytest.fixture(scope="module")
def source(lab):
    lab.control.reset()
    rds = lab.client("rds")
    rds.create_db_parameter_group(DBParameterGroupName="orders-pg15", DBParameterGroupFamily="postgres15",
                                  Description="orders on 15")
    rds.modify_db_parameter_group(DBParameterGroupName="orders-pg15", Parameters=[
        {"ParameterName": "log_min_duration_statement", "ParameterValue": "500", "ApplyMethod": "immediate"}])
    orders = create_postgres(rds, "orders", BackupRetentionPeriod=1, DBParameterGroupName="orders-pg15")
    conn = connect(orders)
    with conn.cursor() as cursor:
        cursor.execute("CREATE TABLE orders (id int PRIMARY KEY, amount int NOT NULL); "
                       "INSERT INTO orders SELECT i, i FROM generate_series(1, 100) AS i")
    conn.close()
    yield {"lab": lab, "rds": rds, "orders": orders}
    lab.control.reset()


def rehearsal(**args):
    return dict({"db_instance_identifier": "orders", "target_engine_version": "18", "allow_major_version_upgrade": True,
                 "checks": CHECKS, "poll_interval": 0.2, "probe_interval": 0.1, "wait_timeout": 120,
                 "cleanup_timeout": 60}, **CREDENTIALS, **args)


def test_a_clean_rehearsal_upgrades_a_copy_to_18_and_leaves_the_source_alone(source, tmp_path):
    lab, rds = source["lab"], source["rds"]
    before = fingerprint(rds)
    since = time.time()
    group = {"target_parameter_group": "orders-pg18", "create_parameter_group": True}
    planned = run(lab, rehearsal(benchmark_sql="SELECT count(*) FROM orders WHERE amount > 50", **group), check=True)
    assert planned.get("verdict") == "planned", planned.get("msg") or planned
    assert planned["plan"]["to_version"].startswith("18.") and planned["plan"]["major"] is True
    assert planned["plan"]["upgrade_request"]["DBParameterGroupName"] == "orders-pg18"
    assert [s["call"] for s in planned["plan"]["steps"]] == ["CreateDBParameterGroup", "CreateDBSnapshot",
                                                             "RestoreDBInstanceFromDBSnapshot", "ModifyDBInstance",
                                                             "DeleteDBInstance", "DeleteDBSnapshot"]
    # The new group carries the source group's custom value and is tuned by rds_param_tune's rules.
    values = planned["plan"]["parameter_group"]["values"]
    assert values["log_min_duration_statement"] == "500" and "shared_buffers" in values, values
    assert planned["blockers"] == [] and planned["checklist"], planned["checklist"]
    assert mutating(lab, since) == [], "check mode makes no mutating call"

    since = time.time()
    result = run(lab, rehearsal(benchmark_sql="SELECT count(*) FROM orders WHERE amount > 50", benchmark_runs=3,
                                pgbench_seconds=1, max_downtime_seconds=120, report_dir=str(tmp_path), **group))
    assert result.get("passed") is True, result.get("msg") or result.get("failure")
    assert result["go_ahead"] is True and result["fix_first"] == []
    measured = result["measurements"]
    assert measured["server_version_before"].startswith("15.") and measured["server_version_after"].startswith("18.")
    assert result["upgrade"]["upgraded"] is True and result["upgrade"]["engine_version"].startswith("18.")
    assert [c["passed"] for c in result["checks"]["before"]] == [True, True]
    assert [c["passed"] for c in result["checks"]["after"]] == [True, True]
    assert result["benchmark"]["before_runs"] == 3 and result["benchmark"]["after_runs"] == 3
    assert result["benchmark"]["slowdown_percent"] is not None
    assert result["pgbench"]["before_tps"] > 0 and result["pgbench"]["after_tps"] > 0
    assert result["parameter_group"]["created"] is True
    assert [c["name"] for c in result["parameter_group"]["carried"]] == ["log_min_duration_statement"]
    created = rds.describe_db_parameter_groups(DBParameterGroupName="orders-pg18")["DBParameterGroups"][0]
    assert created["DBParameterGroupFamily"] == "postgres18"
    set_values = {p["ParameterName"]: p.get("ParameterValue") for page in rds.get_paginator(
        "describe_db_parameters").paginate(DBParameterGroupName="orders-pg18", Source="user")
        for p in page["Parameters"]}
    assert set_values["log_min_duration_statement"] == "500", set_values
    assert measured["parameter_group_after"] == "orders-pg18"
    for key in ("snapshot_seconds", "restore_seconds", "upgrade_seconds"):
        assert measured[key] > 0, key
    # The lab's truth: its pg_upgrade ran within the upgrade the drill measured, and the server was down meanwhile.
    truth = [e for e in lab.control.upgrade_log() if e["identifier"] == result["plan"]["target"]]
    assert len(truth) == 1 and truth[0]["ok"] is True, lab.control.upgrade_log()
    assert measured["upgrade_seconds"] >= truth[0]["up_at"] - truth[0]["requested_at"] - 0.5
    assert measured["downtime_seconds"] > 0 and measured["probes"]["probes_failed"] > 0
    assert measured["downtime_seconds"] >= (truth[0]["up_at"] - truth[0]["down_at"]) * 0.5

    calls = assert_source_untouched(lab, since, result, before)
    assert sorted({c["action"] for c in calls}) == ["CreateDBParameterGroup", "CreateDBSnapshot", "DeleteDBInstance",
                                                    "DeleteDBSnapshot", "ModifyDBInstance", "ModifyDBParameterGroup",
                                                    "RestoreDBInstanceFromDBSnapshot"]
    assert leftovers(rds) == (["orders"], []), "nothing left behind"
    assert sorted(result["cleanup"]["removed"]) == sorted([result["plan"]["snapshot"], result["plan"]["target"]])
    report = json.loads(pathlib.Path(result["report_files"]["json"]).read_text())
    assert report["kind"] == "upgrade_drill" and report["passed"] is True
    assert report["measurements"]["upgrade_seconds"] == measured["upgrade_seconds"]
    assert report["details"]["go_ahead"] is True


def test_a_seeded_blocker_is_named_and_the_failed_upgrade_still_cleans_up(source):
    lab, rds, orders = source["lab"], source["rds"], source["orders"]
    conn = connect(orders)
    with conn.cursor() as cursor:
        # pg_upgrade cannot carry regproc values (OIDs it does not preserve): RDS's precheck stops on the column.
        cursor.execute("CREATE TABLE drill_blocker (fn regproc); INSERT INTO drill_blocker VALUES ('now')")
    conn.close()
    try:
        before = fingerprint(rds)
        checklist = run(lab, rehearsal(checks_only=True, fail_on_breach=False, allow_major_version_upgrade=False))
        assert checklist.get("failed") is not True, checklist.get("msg")
        assert checklist["blockers"] == ["reg_columns"], checklist["checklist"]
        assert checklist["go_ahead"] is False and checklist["fix_first"][0].startswith("reg_columns: ")
        assert "drill_blocker" in checklist["fix_first"][0]

        since = time.time()
        result = run(lab, rehearsal())
        assert result.get("failed") is True and result["passed"] is False
        assert result["upgrade"]["upgraded"] is False
        assert "cannot be upgraded" in result["upgrade"]["failure_event"], result["upgrade"]
        assert result["fix_first"][0] == checklist["fix_first"][0]
        assert result["upgrade"]["failure_event"] in result["fix_first"][1]
        assert result["checks"]["after"] == [] and [c["passed"] for c in result["checks"]["before"]] == [True, True]
        assert result["measurements"]["engine_version_after"] == "15.7"
        assert assert_source_untouched(lab, since, result, before)
        assert leftovers(rds) == (["orders"], []), "the failed rehearsal cleaned up"
    finally:
        conn = connect(orders)
        with conn.cursor() as cursor:
            cursor.execute("DROP TABLE drill_blocker")
        conn.close()
