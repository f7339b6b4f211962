# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbre.rds.rds_blue_green against the lab, in one playbook, as a user runs it: check mode of the creation, creation
(green in sync), the same again in a real run and in check mode, a switchover with write probes running, the same
again, check mode of the removal, removal with the old blue, removal again, and the creation and the switchover once
more (the instance now runs the target: nothing to do). The lab's call log shows which runs made mutating calls; the
lab's own switchover log, instances and snapshots are the truth the module's figures are held to.

Before the playbook, on the same blue (a blocker seeded, removed afterwards) and an instance without logical
replication, the bad inputs of tests/integration/test_bad_inputs_blue_green.py: one lab setup for both.

The deployment is a major upgrade, 15.7 -> 18.6: the lab's green is a real PostgreSQL 18 fed by logical replication.
"""

import json

import psycopg2
import pytest
import yaml

from tests.integration import test_bad_inputs_blue_green as bad_inputs
from tests.integration.test_rds_provision import run_playbook
from tests.lab.clients import MASTER_PASSWORD, MASTER_USER, connect, query, wait_instance

pytestmark = pytest.mark.lab

READ_ONLY = ("Describe", "List", "Get")
BLUE, GROUP, TARGET, PLAIN = "bg-shop", "bg-logical15", "18.6", "bg-plain"
PROBE_TABLE = "dbre_rds_blue_green_probe"
STEPS = ["plan create", "create", "create again", "plan create again", "plan switchover", "switch", "switch again",
         "plan removal", "remove", "remove again", "create once more", "switch once more"]


def step(name, state="present", check=False, **extra):
    args = dict(db_instance_identifier=BLUE, state=state, target_engine_version=TARGET, poll_interval=0.25,
                max_lag_seconds=5, login_user=MASTER_USER, login_password=MASTER_PASSWORD, login_db="app",
                wait_timeout=300, **extra)
    task = {"name": name, "dbre.rds.rds_blue_green": args, "register": name.replace(" ", "_")}
    if check:
        task["check_mode"] = True
    return task


@pytest.fixture(scope="module")
def runs(lab, tmp_path_factory):
    lab.control.reset()
    lab.control.set_timing(metrics=0.5)
    rds = lab.client("rds")
    rds.create_db_parameter_group(DBParameterGroupName=GROUP, DBParameterGroupFamily="postgres15",
                                  Description="logical replication for blue/green")
    rds.modify_db_parameter_group(DBParameterGroupName=GROUP, Parameters=[
        {"ParameterName": "rds.logical_replication", "ParameterValue": "1", "ApplyMethod": "pending-reboot"}])
    # Both at once (the lab makes their servers side by side): the blue, and an instance without logical replication
    # that only the bad inputs use.
    for identifier, extra in ((BLUE, {"DBParameterGroupName": GROUP}), (PLAIN, {})):
        rds.create_db_instance(DBInstanceIdentifier=identifier, Engine="postgres", EngineVersion="15.7",
                               DBInstanceClass="db.t3.micro", MasterUsername=MASTER_USER,
                               MasterUserPassword=MASTER_PASSWORD, DBName="app", AllocatedStorage=20, **extra)
    blue, _plain = (wait_instance(rds, identifier, "available", timeout=180) for identifier in (BLUE, PLAIN))
    # The bad inputs first, on this blue with a blocker seeded (tests/integration/test_bad_inputs_blue_green.py); the
    # blocker is removed before the deployment. A failure is kept for test_bad_inputs_are_refused_before_any_change.
    conn = connect(blue["Endpoint"]["Address"], blue["Endpoint"]["Port"])
    try:
        query(conn, bad_inputs.SEED_BLOCKER)
        try:
            refused = bad_inputs.refuse_bad_inputs(lab, BLUE, PLAIN, GROUP, blue["EngineVersion"])
        except AssertionError as exc:
            refused = exc
        query(conn, bad_inputs.REMOVE_BLOCKER)
    finally:
        conn.close()
    folder = tmp_path_factory.mktemp("blue_green")
    tasks = [step("plan create", check=True),
             step("create", tags={"team": "dbre"}),
             step("create again"),
             step("plan create again", check=True),
             step("plan switchover", state="switched_over", check=True),
             step("switch", state="switched_over", probe_interval=0.1, report_dir=str(folder / "reports"),
                  max_downtime_seconds=60),
             step("switch again", state="switched_over"),
             step("plan removal", state="absent", delete_old_blue=True, check=True),
             step("remove", state="absent", delete_old_blue=True),
             step("remove again", state="absent", delete_old_blue=True),
             step("create once more"),
             step("switch once more", state="switched_over")]
    # After each step, the time (set_fact runs on the controller, costs no module run), so that the lab's call log
    # can be split into each step's calls.
    play = [{"name": "rds_blue_green", "hosts": "localhost", "gather_facts": False, "tasks": [
        item for task in tasks for item in (task, {
            "name": f"mark after {task['name']}",
            "ansible.builtin.set_fact": {f"done_{task['register']}": "{{ now().timestamp() }}"}})] + [
        {"name": "Write the results", "ansible.builtin.copy": {
            "dest": str(folder / "results.json"), "mode": "0600",
            "content": "{{ {%s} | to_json }}" % ", ".join(
                f"'{name}': {name.replace(' ', '_')}, '{name} done': done_{name.replace(' ', '_')}"
                for name in STEPS)}}]}]
    playbook = folder / "play.yml"
    playbook.write_text(yaml.safe_dump(play, sort_keys=False))
    lab.control.clear_calls()
    result = run_playbook(lab, playbook)
    assert result.returncode == 0, "the playbook failed; see the output above"
    results = json.loads((folder / "results.json").read_text())
    calls, started = lab.control.calls(), 0.0
    for name in STEPS:
        done = float(results[f"{name} done"])
        results[f"{name} calls"] = [c for c in calls if started <= c["epoch"] < done]
        started = done
    results["bad inputs"] = refused
    yield results, blue
    lab.control.reset()


def mutating(calls):
    return [call["action"] for call in calls if call.get("service", "rds") == "rds"
            and not call["action"].startswith(READ_ONLY)]


def test_bad_inputs_are_refused_before_any_change(runs):
    results, _blue = runs
    refused = results["bad inputs"]
    if isinstance(refused, AssertionError):
        raise refused
    answers, deployments = refused
    assert all("nothing was changed" in r["msg"] for r in answers.values())
    assert deployments == []


def test_each_run_makes_only_the_calls_its_plan_names(runs):
    results, _blue = runs
    made = {name: mutating(results[f"{name} calls"]) for name in STEPS}
    assert sum(len(results[f"{name} calls"]) for name in STEPS) > 0
    assert made["create"] == ["CreateBlueGreenDeployment"]
    assert made["switch"] == ["SwitchoverBlueGreenDeployment"]
    # The old blue before the deployment that names it (a failed delete is found again by a rerun), with a final
    # snapshot and its automated backups kept (the point-in-time restore of the days before the deployment).
    assert made["remove"] == ["DeleteDBInstance", "DeleteBlueGreenDeployment"]
    deleted = [c["params"] for c in results["remove calls"] if c["action"] == "DeleteDBInstance"]
    assert [(p.get("DeleteAutomatedBackups"), p.get("SkipFinalSnapshot")) for p in deleted] in (
        [("false", "false")], [(False, False)])
    for name in ("plan create", "create again", "plan create again", "plan switchover", "switch again",
                 "plan removal", "remove again", "create once more", "switch once more"):
        assert made[name] == [], name
    assert results["plan create"]["changed"] and results["plan create"]["actions"] == ["CreateBlueGreenDeployment"]
    assert results["plan switchover"]["actions"] == ["SwitchoverBlueGreenDeployment"]
    assert results["plan removal"]["actions"] == ["DeleteDBInstance", "DeleteBlueGreenDeployment"]
    assert results["plan removal"]["old_blue"] == {
        "db_instance_identifier": f"{BLUE}-old1", "final_snapshot_identifier": f"{BLUE}-old1-final"}
    for name in ("create again", "plan create again", "switch again", "remove again", "create once more",
                 "switch once more"):
        assert results[name]["changed"] is False and results[name]["actions"] == [], name
    assert "already runs the target" in results["create once more"]["note"]
    assert "already runs the target" in results["switch once more"]["note"]


def test_green_is_created_in_sync_with_the_target(runs):
    results, blue = runs
    created = results["create"]
    deployment = created["blue_green_deployment"]
    assert deployment["status"] == "AVAILABLE" and deployment["source"] == blue["DBInstanceArn"]
    assert deployment["blue_green_deployment_name"] == f"{BLUE}-blue-green"
    (green,) = created["green"]
    assert green["db_instance_identifier"].startswith(f"{BLUE}-green-") and green["engine_version"] == TARGET
    assert green["db_instance_status"] == "available"
    assert list(created["lag_seconds"]) == [green["db_instance_identifier"]]
    assert 0 <= created["lag_seconds"][green["db_instance_identifier"]] <= 5
    assert {c["name"] for c in created["checks"]} >= {"prepared_transactions", "reg_columns", "logical_slots"}
    assert all(c["passed"] for c in created["checks"] if c["blocker"])
    assert created["waited"]["transitions"][-1]["state"] == "in sync"
    assert results["create again"]["blue_green_deployment"]["blue_green_deployment_identifier"] == \
        deployment["blue_green_deployment_identifier"]


def test_the_switchover_loses_no_acknowledged_write_and_reports_what_clients_saw(lab, runs):
    results, _blue = runs
    switch = results["switch"]
    measured = switch["measurements"]
    assert switch["changed"] is True and switch["passed"] is True and switch.get("failed") is not True
    assert switch["lost_writes"] == 0 and measured["lost_writes"] == 0
    assert measured["acknowledged_writes"] > 0 and measured["rows_found"] >= measured["acknowledged_writes"]
    assert measured["switched_over"] is True and measured["api_switchover_seconds"] > 0
    assert measured["probe_table_removed"] is True
    # The lab's own account of the switchover: the same deployment, nothing lost, and clients saw the gap it made.
    (entry,) = [e for e in lab.control.blue_green_log() if e["name"] == f"{BLUE}-blue-green"]
    assert entry["ok"] is True and entry["lost_total"] == 0
    gap = entry["switched_at"] - entry["writes_stopped_at"]
    assert measured["write_downtime_seconds"] is not None and measured["write_downtime_seconds"] >= gap - 0.25
    assert measured["write_downtime_seconds"] <= measured["api_switchover_seconds"] + 5
    assert switch["blue_green_deployment"]["status"] == "SWITCHOVER_COMPLETED"
    objectives = {o["name"]: o["held"] for o in switch["objectives"]}
    assert objectives == {"switched_over": True, "lost_writes": True, "write_downtime_seconds": True}
    report = json.loads(open(switch["report_files"]["json"], encoding="utf-8").read())
    assert report["passed"] is True and report["measurements"]["lost_writes"] == 0
    assert "has switched over" in results["switch again"]["note"]


def test_the_old_blue_is_deleted_after_a_final_snapshot_and_nothing_else(lab, runs):
    results, blue = runs
    rds = lab.client("rds")
    assert rds.describe_blue_green_deployments()["BlueGreenDeployments"] == []
    names = {i["DBInstanceIdentifier"]: i for i in rds.describe_db_instances()["DBInstances"]}
    assert f"{BLUE}-old1" not in names and not any(n.startswith(f"{BLUE}-green-") for n in names)
    now = names[BLUE]
    assert now["EngineVersion"] == TARGET and now["DbiResourceId"] != blue["DbiResourceId"]
    snapshot = rds.describe_db_snapshots(DBSnapshotIdentifier=f"{BLUE}-old1-final")["DBSnapshots"][0]
    assert snapshot["DBInstanceIdentifier"] == f"{BLUE}-old1"
    # The former green, now called bg-shop, took writes and kept no probe table.
    with psycopg2.connect(host=now["Endpoint"]["Address"], port=now["Endpoint"]["Port"], user=MASTER_USER,
                          password=MASTER_PASSWORD, dbname="app", connect_timeout=5) as conn:
        with conn.cursor() as cursor:
            cursor.execute("SELECT to_regclass(%s) IS NULL, pg_is_in_recovery(), current_setting('"
                           "default_transaction_read_only'), current_setting('server_version_num')::int / 10000",
                           (PROBE_TABLE,))
            assert cursor.fetchone() == (True, False, "off", 18)
    assert results["remove"]["blue_green_deployment"] == {}
