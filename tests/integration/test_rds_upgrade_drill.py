# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbre.rds.rds_upgrade_drill against the lab: a real pg_upgrade from PostgreSQL 15 to 18 on a copy of the source.

One lab for the file and one set of sources, made at once (module fixture): ``orders`` (PostgreSQL 15.7, 100 rows,
parameter group ``orders-pg15`` of family postgres15 with a custom value), ``orders-blocked`` (the same data and a
``regproc`` column: pg_upgrade cannot carry regproc values, RDS's precheck stops on it) and the Aurora cluster ``aur``
(member ``aur-1``). In order:

- bad inputs are refused before any change, naming the problem and the fix (tests/integration/bad_inputs.py: every
  case a task of one playbook; only reads in the call log; the lab holds exactly what it held before);
- then ONE ansible-playbook run with two hosts, ``clean`` and ``blocked``, each task running for both at once:
  first the plan in check mode (``clean``) and the checklist alone (``blocked``), then both rehearsals side by side;
- the rehearsal on clean data passes: the copy reports version 18 after the upgrade, the checks pass on both sides,
  the timings are in the report (and agree with the lab's own pg_upgrade log), check mode made no mutating call;
- on ``orders-blocked`` the checklist names the blocker and its fix, the rehearsal reports the reason RDS gave for not
  upgrading the copy, and cleans up all the same;
- every mutating call of the run belongs to one of the two drills (it names that drill's own snapshot or copy, or
  its source only as the source of the drill's snapshot), both sources are exactly as they were, nothing is left;
- last task of the run: dbre.rds.rds_restore_drill's ``state: sweep`` removes the manual snapshot a killed upgrade
  drill left (drill tags, its owner process gone) and keeps a drill snapshot whose owner it cannot check and which has
  not expired, and a snapshot without the drill tags.
"""

import datetime
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import psycopg2
import pytest
import yaml

from tests.integration.bad_inputs import assert_all_refused
from tests.integration.bad_inputs import module_env
from tests.lab.clients import MASTER_PASSWORD, MASTER_USER, wait_cluster, wait_instance

ROOT = pathlib.Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(pathlib.Path(sys.executable).parent / "ansible-playbook")
MODULE = "dbre.rds.rds_upgrade_drill"
MUTATING_RDS = ("Create", "Delete", "Promote", "Modify", "Reboot", "Failover", "Switchover", "Restore", "Remove",
                "Start", "Stop", "Add", "Copy", "Reset")
CREDENTIALS = {"login_user": MASTER_USER, "login_password": MASTER_PASSWORD, "login_db": "app"}
CHECKS = [{"name": "orders", "sql": "SELECT count(*) FROM orders", "expect": {"equals": 100}},
          {"name": "total", "sql": "SELECT sum(amount) FROM orders", "expect": {"equals": 5050}}]
SOURCES = ("orders", "orders-blocked")
RESTORE_DRILL = "dbre.rds.rds_restore_drill"
# Manual snapshots of orders-blocked made before the run: what a killed upgrade drill left (its owner process is gone:
# this pid with another start time), a drill snapshot of a drill on another host that has not expired, a user's own.
KILLED, ELSEWHERE, USERS = "orders-blocked-upgrade-killed", "orders-blocked-upgrade-elsewhere", "orders-blocked-keep"


def connect(instance):
    conn = psycopg2.connect(host=instance["Endpoint"]["Address"], port=instance["Endpoint"]["Port"],
                            user=MASTER_USER, password=MASTER_PASSWORD, dbname="app", connect_timeout=5)
    conn.autocommit = True
    return conn


def fingerprint(rds, identifier):
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


def epoch(iso):
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@pytest.fixture(scope="module")
def sources(lab):
    """orders, orders-blocked and aur/aur-1, created at once and waited for together."""
    lab.control.reset()
    rds = lab.client("rds")
    rds.create_db_parameter_group(DBParameterGroupName="orders-pg15", DBParameterGroupFamily="postgres15",
                                  Description="orders on 15")
    rds.modify_db_parameter_group(DBParameterGroupName="orders-pg15", Parameters=[
        {"ParameterName": "log_min_duration_statement", "ParameterValue": "500", "ApplyMethod": "immediate"}])
    for identifier in SOURCES:
        rds.create_db_instance(DBInstanceIdentifier=identifier, Engine="postgres", EngineVersion="15.7",
                               DBInstanceClass="db.t3.micro", MasterUsername=MASTER_USER,
                               MasterUserPassword=MASTER_PASSWORD, DBName="app", AllocatedStorage=20,
                               BackupRetentionPeriod=1, DBParameterGroupName="orders-pg15")
    rds.create_db_cluster(DBClusterIdentifier="aur", Engine="aurora-postgresql", MasterUsername=MASTER_USER,
                          MasterUserPassword=MASTER_PASSWORD, BackupRetentionPeriod=1)
    rds.create_db_instance(DBInstanceIdentifier="aur-1", DBClusterIdentifier="aur", Engine="aurora-postgresql",
                           DBInstanceClass="db.r6g.large")
    described = {}
    for identifier in SOURCES:
        described[identifier] = wait_instance(rds, identifier, "available", timeout=120)
        conn = connect(described[identifier])
        with conn.cursor() as cursor:
            cursor.execute("CREATE TABLE orders (id int PRIMARY KEY, amount int NOT NULL); "
                           "INSERT INTO orders SELECT i, i FROM generate_series(1, 100) AS i")
            if identifier == "orders-blocked":
                # pg_upgrade cannot carry regproc values (OIDs it does not preserve): RDS's precheck stops on it.
                cursor.execute("CREATE TABLE drill_blocker (fn regproc); INSERT INTO drill_blocker VALUES ('now')")
        conn.close()
    wait_instance(rds, "aur-1", "available", timeout=120)
    wait_cluster(rds, "aur", "available", timeout=120)
    yield {"lab": lab, "rds": rds, "described": described}
    lab.control.reset()


# ----------------------------------------------------------------------------------------------------- bad inputs


def bad_input_cases():
    def drill(**args):
        return dict({"db_instance_identifier": "orders", "target_engine_version": "18.6",
                     "allow_major_version_upgrade": True, "poll_interval": 0.2}, **args)

    return [
        # the source
        {"id": "unknown_instance", "args": drill(db_instance_identifier="orderz"),
         "expect": ["no DB instance 'orderz' exists", "check the identifier and region"]},
        {"id": "aurora_member", "args": drill(db_instance_identifier="aur-1"),
         "expect": ["member of the Aurora cluster 'aur'"]},
        # the target version
        {"id": "invalid_target_version", "args": drill(target_engine_version="eighteen"),
         "expect": ["'eighteen' is not a PostgreSQL engine version"]},
        {"id": "target_not_offered", "args": drill(target_engine_version="18.99"),
         "expect": ["18.99 is not a version RDS offers", "the 18.x versions offered are"]},
        {"id": "downgrade", "args": drill(target_engine_version="15.5"),
         "expect": ["older than the current version 15.7", "cannot downgrade"]},
        {"id": "same_version", "args": drill(target_engine_version="15.7"),
         "expect": ["is the version the instance already runs"]},
        {"id": "major_without_consent", "args": drill(allow_major_version_upgrade=False),
         "expect": ["is a major version upgrade", "allow_major_version_upgrade=true"]},
        {"id": "major_without_consent_check_mode", "args": drill(allow_major_version_upgrade=False),
         "check_mode": True, "expect": ["allow_major_version_upgrade=true"]},
        # the parameter group (orders-pg18 does not exist yet: the rehearsal below creates it)
        {"id": "group_missing", "args": drill(target_parameter_group="orders-pg18"),
         "expect": ["orders-pg18 does not exist", "create_parameter_group=true"]},
        {"id": "group_of_old_family", "args": drill(target_parameter_group="orders-pg15"),
         "expect": ["orders-pg15 is of family postgres15, not postgres18"]},
        # options (the others are unit-tested: test_upgrade_drill.py::test_option_problems) and the login
        {"id": "checks_without_credentials",
         "args": drill(checks=[{"name": "rows", "sql": "SELECT 1", "expect": {"rows": 1}}]),
         "expect": ["Invalid upgrade drill options", "give login_password or iam_auth=true"]},
        {"id": "wrong_password", "args": drill(login_password="not-the-password", login_db="postgres"),
         "expect": ["reading the source database orders for the checklist failed", "password authentication failed"]},
    ]


def run_cases_at_once(lab, module, cases, play_vars=None):
    """bad_inputs.run_module_cases, with every case a host of one play so that they all run at once (forks): the
    same results ({id: {"failed", "msg"}}) and the run's stdout for assert_all_refused's rules."""
    play = {"name": "Bad inputs", "hosts": "all", "connection": "local", "gather_facts": False,
            "vars": dict(play_vars or {}),
            "tasks": [{"name": f"case: {module}", module: {}, "args": "{{ case_args }}",
                       "check_mode": "{{ case_check }}", "ignore_errors": True}]}
    inventory = {"all": {"hosts": {c["id"]: {"case_args": c.get("args") or {}, "case_check": bool(c.get("check_mode")),
                                             "ansible_python_interpreter": sys.executable} for c in cases}}}
    with tempfile.TemporaryDirectory(prefix="dbre-bad-inputs-") as tmp:
        (pathlib.Path(tmp) / "play.yml").write_text(yaml.safe_dump([play], sort_keys=False))
        (pathlib.Path(tmp) / "hosts.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
        done = subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(pathlib.Path(tmp) / "hosts.yml"),
                               str(pathlib.Path(tmp) / "play.yml")], env=module_env(lab, {"ANSIBLE_FORKS": "12"}),
                              cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    try:
        hosts = json.loads(done.stdout)["plays"][0]["tasks"][0]["hosts"]
        return {case: {"failed": bool(r.get("failed")), "msg": str(r.get("msg") or "")}
                for case, r in hosts.items()}, done.stdout
    except (ValueError, KeyError, IndexError):
        raise AssertionError(f"no results in the playbook output:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}") \
            from None


def test_bad_inputs_are_refused_before_any_change(sources):
    lab, rds = sources["lab"], sources["rds"]
    results = assert_all_refused(lab, run_cases_at_once, MODULE, bad_input_cases(), secrets=(MASTER_PASSWORD,))
    assert sorted(i["DBInstanceIdentifier"] for i in rds.describe_db_instances()["DBInstances"]) == \
        ["aur-1", "orders", "orders-blocked"]
    assert rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"] == []
    assert all(not r["msg"].startswith("Unexpected") for r in results.values())


# ----------------------------------------------------------------------------------------------------- rehearsals


def rehearsal(source, **args):
    return dict({"db_instance_identifier": source, "target_engine_version": "18", "allow_major_version_upgrade": True,
                 "checks": CHECKS, "poll_interval": 0.2, "probe_interval": 0.1, "wait_timeout": 120,
                 "cleanup_timeout": 60}, **CREDENTIALS, **args)


def run_two_hosts(lab, hosts, tasks):
    """One ansible-playbook run; ``hosts`` {name: {task key: module args}}; ``tasks`` [(task key, module)]; every task
    runs at once for the hosts that have its key (``check_mode`` per host with ``<key>_check``); a failed task (the
    blocked rehearsal) keeps its ``failed`` result and its host goes on to the next task.
    Returns ({task key: {host: result}}, {task key: (start, end)})."""
    play = {"name": "Upgrade drills", "hosts": "all", "connection": "local", "gather_facts": False,
            "tasks": [{"name": key, module: {}, "args": "{{ %s }}" % key, "when": f"{key} is defined",
                       "check_mode": "{{ %s_check | default(false) }}" % key, "ignore_errors": True}
                      for key, module in tasks]}
    inventory = {"all": {"hosts": {name: dict(vars_, ansible_python_interpreter=sys.executable)
                                   for name, vars_ in hosts.items()}}}
    with tempfile.TemporaryDirectory(prefix="dbre-upgrade-drill-") as tmp:
        (pathlib.Path(tmp) / "play.yml").write_text(yaml.safe_dump([play], sort_keys=False))
        (pathlib.Path(tmp) / "hosts.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
        done = subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(pathlib.Path(tmp) / "hosts.yml"),
                               str(pathlib.Path(tmp) / "play.yml")], env=module_env(lab), cwd=ROOT,
                              capture_output=True, text=True, timeout=600, check=False)
    try:
        played = json.loads(done.stdout)["plays"][0]["tasks"]
        results = {t["task"]["name"]: t["hosts"] for t in played}
        windows = {t["task"]["name"]: (epoch(t["task"]["duration"]["start"]), epoch(t["task"]["duration"]["end"]))
                   for t in played}
        assert set(results) == {key for key, _module in tasks}
    except (ValueError, KeyError, IndexError, AssertionError):
        raise AssertionError(f"no module results in the output:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}") \
            from None
    return results, windows


@pytest.fixture(scope="module")
def rehearsals(sources, tmp_path_factory):
    """Both rehearsals (and, before them, check mode and the checklist alone) in one ansible-playbook run."""
    lab, rds = sources["lab"], sources["rds"]
    report_dir = tmp_path_factory.mktemp("upgrade-reports")
    # As the drill tags its snapshot: dbre:drill-snapshot names the snapshot itself (a copy would name the original).
    killed_drill = [{"Key": "dbre:drill-id", "Value": "20261130T060000Z-killed00"},
                    {"Key": "dbre:drill-snapshot", "Value": KILLED},
                    {"Key": "dbre:drill-expires", "Value": "2099-01-01T00:00:00.000Z"},
                    {"Key": "dbre:drill-owner", "Value": f"{os.uname().nodename}/{os.getpid()}/1"}]
    elsewhere = [{"Key": "dbre:drill-id", "Value": "20261130T060000Z-other000"},
                 {"Key": "dbre:drill-snapshot", "Value": ELSEWHERE},
                 {"Key": "dbre:drill-expires", "Value": "2099-01-01T00:00:00.000Z"},
                 {"Key": "dbre:drill-owner", "Value": "another-host/1/1"}]
    for identifier, tags in ((KILLED, killed_drill), (ELSEWHERE, elsewhere), (USERS, [])):
        rds.create_db_snapshot(DBSnapshotIdentifier=identifier, DBInstanceIdentifier="orders-blocked", Tags=tags)
    for identifier in (KILLED, ELSEWHERE, USERS):
        wait_snapshot(rds, identifier)
    before = {s: fingerprint(rds, s) for s in SOURCES}
    group = {"target_parameter_group": "orders-pg18", "create_parameter_group": True}
    benchmark = "SELECT count(*) FROM orders WHERE amount > 50"
    hosts = {
        "clean": {"first": rehearsal("orders", benchmark_sql=benchmark, **group), "first_check": True,
                  "rehearse": rehearsal("orders", benchmark_sql=benchmark, benchmark_runs=3, pgbench_seconds=1,
                                        max_downtime_seconds=120, report_dir=str(report_dir), **group),
                  "sweep": {"state": "sweep", "poll_interval": 0.2, "cleanup_timeout": 60}},
        "blocked": {"first": rehearsal("orders-blocked", checks_only=True, fail_on_breach=False,
                                       allow_major_version_upgrade=False),
                    "rehearse": rehearsal("orders-blocked")},
    }
    since = time.time()
    results, windows = run_two_hosts(lab, hosts, [("first", MODULE), ("rehearse", MODULE), ("sweep", RESTORE_DRILL)])
    calls = [c for c in lab.control.calls(since=since, service="rds")
             if str(c.get("action", "")).startswith(MUTATING_RDS)]
    drills = [c for c in calls if c["epoch"] < windows["sweep"][0]]
    return {"lab": lab, "rds": rds, "before": before, "results": results, "windows": windows, "calls": drills,
            "sweep_calls": [c for c in calls if c["epoch"] >= windows["sweep"][0]],
            "by_drill": attribute_calls(drills, {"clean": results["rehearse"]["clean"],
                                                 "blocked": results["rehearse"]["blocked"]})}


def wait_snapshot(rds, identifier, timeout=120):
    deadline = time.monotonic() + timeout
    while rds.describe_db_snapshots(DBSnapshotIdentifier=identifier)["DBSnapshots"][0]["Status"] != "available":
        assert time.monotonic() < deadline, f"the snapshot {identifier} did not become available"
        time.sleep(0.2)


def attribute_calls(calls, drills):
    """{drill: its mutating calls}; a call that belongs to no drill fails: every mutating call names one drill's own
    snapshot or copy, its own target parameter group, or its source only as the source of that drill's snapshot."""
    by_drill = {name: [] for name in drills}
    for call in calls:
        params = call["params"]
        named = {v for k, v in params.items()
                 if k in ("DBInstanceIdentifier", "DBSnapshotIdentifier", "TargetDBInstanceIdentifier", "ResourceName")}
        owners = []
        for name, result in drills.items():
            plan, source = result["plan"], result["source"]["identifier"]
            if call["action"] in ("CreateDBParameterGroup", "ModifyDBParameterGroup"):
                # The target family's group the user asked for: kept for production, never the source's own group.
                if params["DBParameterGroupName"] == plan["parameter_group"]["name"] and \
                        plan["parameter_group"].get("action") == "create":
                    owners.append(name)
            elif call["action"] == "CreateDBSnapshot":
                if params["DBSnapshotIdentifier"] == plan["snapshot"] and params["DBInstanceIdentifier"] == source:
                    owners.append(name)
            elif named and named <= {plan["snapshot"], plan["target"]} and \
                    not any(s in named or any(str(v).endswith(f":db:{s}") for v in named) for s in SOURCES):
                owners.append(name)
        assert len(owners) == 1, f"a mutating call of no drill (or of both): {call}"
        by_drill[owners[0]].append(call)
    return by_drill


def assert_sources_untouched(rehearsed):
    for source in SOURCES:
        assert fingerprint(rehearsed["rds"], source) == rehearsed["before"][source], f"{source} is exactly as it was"


def test_a_clean_rehearsal_upgrades_a_copy_to_18_and_leaves_the_source_alone(rehearsals):
    lab, rds = rehearsals["lab"], rehearsals["rds"]
    planned, result = rehearsals["results"]["first"]["clean"], rehearsals["results"]["rehearse"]["clean"]
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
    first_end = rehearsals["windows"]["first"][1]
    assert [c for c in rehearsals["calls"] if c["epoch"] <= first_end] == [], \
        "check mode (and the checklist alone) make no mutating call"

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

    calls = rehearsals["by_drill"]["clean"]
    assert sorted({c["action"] for c in calls}) == ["CreateDBParameterGroup", "CreateDBSnapshot", "DeleteDBInstance",
                                                    "DeleteDBSnapshot", "ModifyDBInstance", "ModifyDBParameterGroup",
                                                    "RestoreDBInstanceFromDBSnapshot"]
    assert_sources_untouched(rehearsals)
    assert leftovers(rds) == (["aur-1", "orders", "orders-blocked"], sorted([ELSEWHERE, USERS])), \
        "nothing left behind"
    assert sorted(result["cleanup"]["removed"]) == sorted([result["plan"]["snapshot"], result["plan"]["target"]])
    report = json.loads(pathlib.Path(result["report_files"]["json"]).read_text())
    assert report["kind"] == "upgrade_drill" and report["passed"] is True
    assert report["measurements"]["upgrade_seconds"] == measured["upgrade_seconds"]
    assert report["details"]["go_ahead"] is True


def test_a_seeded_blocker_is_named_and_the_failed_upgrade_still_cleans_up(rehearsals):
    rds = rehearsals["rds"]
    checklist, result = rehearsals["results"]["first"]["blocked"], rehearsals["results"]["rehearse"]["blocked"]
    assert checklist.get("failed") is not True, checklist.get("msg")
    assert checklist["blockers"] == ["reg_columns"], checklist["checklist"]
    # A checklist alone is never a passed upgrade drill in the drill history: its report has a kind of its own.
    assert checklist["report"]["kind"] == "upgrade_checklist", checklist["report"]
    assert checklist["go_ahead"] is False and checklist["fix_first"][0].startswith("reg_columns: ")
    assert "drill_blocker" in checklist["fix_first"][0]

    assert result.get("failed") is True and result["passed"] is False
    assert result["upgrade"]["upgraded"] is False
    assert "cannot be upgraded" in result["upgrade"]["failure_event"], result["upgrade"]
    assert result["fix_first"][0] == checklist["fix_first"][0]
    assert result["upgrade"]["failure_event"] in result["fix_first"][1]
    assert result["checks"]["after"] == [] and [c["passed"] for c in result["checks"]["before"]] == [True, True]
    assert result["measurements"]["engine_version_after"] == "15.7"
    calls = rehearsals["by_drill"]["blocked"]
    assert {"CreateDBSnapshot", "RestoreDBInstanceFromDBSnapshot", "ModifyDBInstance", "DeleteDBInstance",
            "DeleteDBSnapshot"} <= {c["action"] for c in calls}, calls
    assert_sources_untouched(rehearsals)
    assert leftovers(rds) == (["aur-1", "orders", "orders-blocked"], sorted([ELSEWHERE, USERS])), \
        "the failed rehearsal cleaned up"


def test_the_sweep_removes_the_snapshot_a_killed_drill_left_and_nothing_else(rehearsals):
    swept = rehearsals["results"]["sweep"]["clean"]
    assert swept.get("failed") is not True, swept.get("msg")
    assert swept["changed"] is True and swept["left_behind"] == []
    assert [(r["kind"], r["identifier"]) for r in swept["removed"]] == [("snapshot", KILLED)], swept["removed"]
    assert swept["removed"][0]["reason"].startswith("its drill's process is gone"), swept["removed"]
    assert [(s["kind"], s["identifier"]) for s in swept["left_alone"]] == [("snapshot", ELSEWHERE)], swept
    assert swept["left_alone"][0]["reason"].startswith("not expired until")
    assert [(c["action"], c["params"].get("DBSnapshotIdentifier")) for c in rehearsals["sweep_calls"]] == \
        [("DeleteDBSnapshot", KILLED)], rehearsals["sweep_calls"]
    assert rehearsals["results"]["sweep"]["blocked"].get("skipped") is True
    assert leftovers(rehearsals["rds"])[1] == sorted([ELSEWHERE, USERS])
