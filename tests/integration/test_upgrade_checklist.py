# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pre-upgrade checklist against the lab, through dbre.rds.rds_upgrade_drill with checks_only, as a user runs it:
on a clean database every check passes; with each blocker seeded in turn, exactly that check fails, with the fix to
run (in check mode too).

One instance for the file, converged once: ``chk`` (PostgreSQL 15.7, 7 days of backups: RDS's first automated
snapshot is the recent one) with the parameter group ``chk-pg15`` (max_prepared_transactions=10 so a transaction can
be prepared, rds.logical_replication=1 so a logical slot can be made) and the target group ``chk-pg18``
(postgres18). Each blocker is seeded with SQL as the
master user, the checklist runs, and the blocker is removed as the next is seeded; every run is a task of ONE
ansible-playbook that waits while the test seeds (a module run costs its start-up, a playbook's is paid once).

The blockers: a prepared transaction (checked in check mode); a ``regproc`` column (pg_upgrade refuses the reg* types
whose OIDs it does not keep; a ``regclass`` column, which the issue names, sits in the clean database all along and
passes: pg_upgrade keeps pg_class OIDs, and so does RDS); a logical replication slot; an extension version the target
does not support: hstore 1.4, with ``extension_versions: {hstore: ['1.8']}`` saying what the target RDS engine
supports (PostgreSQL 18 itself still ships every contrib version 15 does, see
plugins/module_utils/extension_versions.py, so RDS's list is what rules it out).
"""

import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

from tests.lab.clients import MASTER_PASSWORD, MASTER_USER, connect_instance, wait_instance

ROOT = pathlib.Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(pathlib.Path(sys.executable).parent / "ansible-playbook")
MODULE = "dbre.rds.rds_upgrade_drill"
USER_AGENT = "dbre.rds/rds_upgrade_drill"
INSTANCE = "chk"
EVERY_CHECK = ["instance_available", "valid_upgrade_target", "target_parameter_group", "recent_backup",
               "recent_snapshot", "maintenance_window", "multi_az", "free_storage", "databases_inspected",
               "database_connections", "prepared_transactions", "reg_columns", "logical_slots", "removed_data_types",
               "extension_versions", "not_null_inheritance", "long_transactions"]
ARGS = dict(db_instance_identifier=INSTANCE, target_engine_version="18.6", checks_only=True,
            target_parameter_group="chk-pg18", login_user=MASTER_USER, login_password=MASTER_PASSWORD,
            login_db="app", extension_versions={"hstore": ["1.8"]}, fail_on_breach=False)
MUTATING = ("Create", "Delete", "Modify", "Restore", "Reboot", "Start", "Stop", "Promote", "Failover", "Add",
            "Remove", "Copy", "Switchover", "Reset")


def module_env(lab):
    env = dict(os.environ)
    env.update(lab.env)
    env.update(ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build"), ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_NOCOLOR="1")
    return env


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(0.1)


def run_with_seeds(lab, runs, tmp):
    """Every run in ONE ansible-playbook: ``runs`` is a list of ``(name, check_mode, seed)``; before a run with a
    ``seed`` the playbook waits (a ``when`` lookup on the controller: no task of its own) while this process calls it
    (it changes the database). Returns ({name: result}, the module's calls to the lab)."""
    tasks = []
    for index, (name, check, seed) in enumerate(runs):
        task = {"name": f"run {name}", MODULE: ARGS, "check_mode": check}
        if seed is not None:
            ready, go = tmp / f"ready-{index}", tmp / f"go-{index}"
            wait = f"touch {ready}; for i in $(seq 2400); do test -e {go} && echo seeded && exit 0; sleep 0.05; done"
            task["when"] = f"lookup('ansible.builtin.pipe', {wait!r}) == 'seeded'"
        tasks.append(task)
    path = tmp / "checklist.yml"
    path.write_text(json.dumps([{"hosts": "localhost", "connection": "local", "gather_facts": False,
                                 "tasks": tasks}]))
    since = time.time()
    process = subprocess.Popen([ANSIBLE_PLAYBOOK, "-i", "localhost,", str(path)], env=module_env(lab), cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for index, (name, _check, seed) in enumerate(runs):
            if seed is not None:
                wait_for(lambda index=index: (tmp / f"ready-{index}").exists() or process.poll() is not None, 120,
                         f"the playbook reaching {name}")
                seed()
                (tmp / f"go-{index}").touch()
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    try:
        found = {task["task"]["name"][4:]: task["hosts"]["localhost"]
                 for task in json.loads(stdout)["plays"][0]["tasks"] if task["task"]["name"].startswith("run ")}
    except (ValueError, KeyError, IndexError):
        raise AssertionError(f"no module result:\n{stdout[-3000:]}\n{stderr[-3000:]}") from None
    assert sorted(found) == sorted(r[0] for r in runs), stdout[-3000:]
    calls = [c for c in lab.control.calls(since=since) if USER_AGENT in str(c.get("user_agent", ""))]
    return found, calls


class Seeds:
    """Each blocker made and removed with SQL as the master user, on the instance's endpoint."""

    def __init__(self, instance):
        self.instance = instance
        self.conn = connect_instance(instance)

    def run(self, *statements):
        with self.conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)

    def prepared_transaction(self):
        # Its own session: a prepared transaction outlives the session that prepared it, as on RDS.
        holder = connect_instance(self.instance)
        with holder.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("CREATE TABLE chk_prepared (id int)")
            cur.execute("PREPARE TRANSACTION 'chk_tx'")
        holder.close()

    def regclass_column(self):
        # In the clean database from the start: pg_upgrade keeps pg_class OIDs, so it is no blocker.
        self.run("CREATE TABLE chk_targets (id int PRIMARY KEY, target regclass)",
                 "INSERT INTO chk_targets VALUES (1, 'pg_class'::regclass)")

    def regproc_column(self):
        self.run("ROLLBACK PREPARED 'chk_tx'",
                 "CREATE TABLE chk_jobs (id int PRIMARY KEY, handler regproc)",
                 "INSERT INTO chk_jobs VALUES (1, 'now'::regproc)")

    def logical_slot(self):
        self.run("DROP TABLE chk_jobs", "SELECT pg_create_logical_replication_slot('chk_slot', 'pgoutput')")

    def old_extension(self):
        self.run("SELECT pg_drop_replication_slot('chk_slot')", "CREATE EXTENSION hstore VERSION '1.4'")

    def nullable_child(self):
        # PostgreSQL 15 lets a child drop the NOT NULL its parent has; 18's pg_upgrade stops on it.
        self.run("DROP EXTENSION hstore", "CREATE TABLE chk_parent (a int NOT NULL)",
                 "CREATE TABLE chk_child () INHERITS (chk_parent)", "ALTER TABLE chk_child ALTER COLUMN a DROP NOT NULL")

    def clean_up(self):
        for statement in ("ROLLBACK PREPARED 'chk_tx'", "DROP TABLE IF EXISTS chk_jobs, chk_targets, chk_prepared",
                          "DROP TABLE IF EXISTS chk_child, chk_parent",
                          "SELECT pg_drop_replication_slot('chk_slot')", "DROP EXTENSION IF EXISTS hstore"):
            try:
                self.run(statement)
            except Exception:  # noqa: BLE001 - what is not seeded any more is fine
                pass
        self.conn.close()


@pytest.fixture(scope="module")
def instance(lab):
    lab.control.reset()
    rds = lab.client("rds")
    rds.create_db_parameter_group(DBParameterGroupName="chk-pg15", DBParameterGroupFamily="postgres15",
                                  Description="checklist source")
    rds.modify_db_parameter_group(DBParameterGroupName="chk-pg15", Parameters=[
        {"ParameterName": "max_prepared_transactions", "ParameterValue": "10", "ApplyMethod": "pending-reboot"},
        {"ParameterName": "rds.logical_replication", "ParameterValue": "1", "ApplyMethod": "pending-reboot"}])
    rds.create_db_parameter_group(DBParameterGroupName="chk-pg18", DBParameterGroupFamily="postgres18",
                                  Description="checklist target")
    rds.create_db_instance(DBInstanceIdentifier=INSTANCE, Engine="postgres", EngineVersion="15.7",
                           DBInstanceClass="db.t3.micro", MasterUsername=MASTER_USER,
                           MasterUserPassword=MASTER_PASSWORD, DBName="app", AllocatedStorage=20,
                           BackupRetentionPeriod=7, DBParameterGroupName="chk-pg15")
    described = wait_instance(rds, INSTANCE, "available", timeout=180)
    yield described
    lab.control.reset()


@pytest.fixture(scope="module")
def runs(lab, instance, tmp_path_factory):
    """The clean database (with a regclass column), then each blocker alone (the first in check mode: a
    checklist runs the same there), in one playbook."""
    seeds = Seeds(instance)
    try:
        seeds.regclass_column()
        results, calls = run_with_seeds(lab, [
            ("clean", False, None),
            ("prepared", True, seeds.prepared_transaction),
            ("regproc", False, seeds.regproc_column),
            ("slot", False, seeds.logical_slot),
            ("extension", False, seeds.old_extension),
            ("not_null", False, seeds.nullable_child),
        ], tmp_path_factory.mktemp("checklist"))
    finally:
        seeds.clean_up()
    return dict(results, calls=calls)


def checks_of(result):
    return {c["name"]: c for c in result["checklist"]}


def failed(result):
    return [c["name"] for c in result["checklist"] if not c["passed"]]


def test_a_clean_database_passes_every_check(runs):
    result = runs["clean"]
    assert result.get("failed") is not True, result.get("msg")
    assert [c["name"] for c in result["checklist"]] == EVERY_CHECK
    assert failed(result) == [], [c for c in result["checklist"] if not c["passed"]]
    assert result["blockers"] == [] and result["go_ahead"] is True
    assert result["changed"] is False
    # The regclass column the clean database holds is no blocker: pg_upgrade keeps pg_class OIDs (RDS upgrades it).
    checks = checks_of(result)
    assert checks["reg_columns"]["passed"] and checks["reg_columns"]["value"] == []
    assert checks["valid_upgrade_target"]["value"] == "18.6"
    assert "18.6" in checks["valid_upgrade_target"]["detail"]["valid_targets"]
    assert checks["target_parameter_group"]["detail"]["target_family"] == "postgres18"
    assert checks["databases_inspected"]["value"] == ["app", "postgres", "template1"]
    installed = {(e["database"], e["name"]): e["version"]
                 for e in checks["extension_versions"]["detail"]["installed"]}
    assert installed[("app", "plpgsql")] == "1.0"
    assert checks["recent_snapshot"]["value"] < 1 and checks["recent_snapshot"]["detail"]["type"] == "automated"


# name of the run: (the one check that fails, words of its fix)
BLOCKERS = {
    "prepared": ("prepared_transactions", ["in database app: COMMIT PREPARED 'chk_tx';",
                                           "ROLLBACK PREPARED 'chk_tx';"]),
    "regproc": ("reg_columns", ['in database app: ALTER TABLE "public"."chk_jobs" ALTER COLUMN "handler" TYPE text '
                                'USING "handler"::text;']),
    "slot": ("logical_slots", ["SELECT pg_drop_replication_slot('chk_slot');"]),
    "extension": ("extension_versions", ["in database app: ALTER EXTENSION \"hstore\" UPDATE TO '1.8';"]),
    "not_null": ("not_null_inheritance", ['in database app: ALTER TABLE "public"."chk_child" ALTER COLUMN "a" SET '
                                          'NOT NULL;']),
}


@pytest.mark.parametrize("name", sorted(BLOCKERS))
def test_each_blocker_fails_exactly_its_check_with_its_fix(runs, name):
    result = runs[name]
    check_name, words = BLOCKERS[name]
    assert result.get("failed") is not True, result.get("msg")
    assert failed(result) == [check_name], [c for c in result["checklist"] if not c["passed"]]
    check = checks_of(result)[check_name]
    assert check["blocker"] is True
    for word in words:
        assert word in check["fix"]
    assert result["blockers"] == [check_name] and result["go_ahead"] is False
    assert result["changed"] is False


def test_the_checklist_only_reads(runs):
    calls = runs["calls"]
    assert calls, "the module made no call the lab recorded"
    mutating = [c["action"] for c in calls if c["action"].startswith(MUTATING)]
    assert mutating == []
