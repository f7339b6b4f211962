# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A major upgrade from PostgreSQL 15.7 to 18.6: which blockers each checklist finds before the upgrade, against what
really stops the upgrade, and the rehearsal's measured upgrade time against the lab's own pg_upgrade time.

One lab, one instance ``bench-upg`` (backups on, a manual snapshot, a parameter group with max_prepared_transactions
and rds.logical_replication so every blocker can be seeded). Each case seeds one thing with SQL as the master user:

  clean          nothing but a regclass column (pg_upgrade keeps pg_class OIDs: no blocker)
  prepared       a prepared transaction
  regproc        a regproc column
  slot           a logical replication slot
  aclitem        an aclitem column (its on-disk format changed in PostgreSQL 16)
  extension      pgcrypto 1.3 (the lab's PostgreSQL 18 is built without it; extension_versions: {pgcrypto: []} says
                 so to the checklist: RDS's own 18 ships pgcrypto, the lab's does not)

For each case, side by side:
  - "lab": the truth. ModifyDBInstance(EngineVersion=18.6, AllowMajorVersionUpgrade) on the seeded instance; the
    lab's upgrade runs RDS's pre-checks and the real pg_upgrade --check and, on a blocker, leaves the instance on 15.7
    (LabControl.upgrade_log(): ok and the blockers). The clean case is not upgraded in place: the rehearsal upgrades a
    copy of it.
  - "checklist": dbre.rds.rds_upgrade_drill with checks_only (every run a task of one ansible-playbook): the failed
    blocker checks.
  - "seed's checklist": a model of the seed's, which read only what DescribeDBInstances shows (status, backups,
    Multi-AZ) and had "application tested" and "no deprecated features" hard-coded to "manual": it can find no
    blocker inside the database, and says so by answering "manual".

Then the rehearsal (rds_upgrade_drill, the clean data): its measured upgrade time (request until the copy is available
on 18.6) and outage (its connection probes) against the lab's own record of that upgrade: pg_upgrade's run time,
the server's outage (down_at to up_at) and the whole upgrade (request to finish).

Run from the repository root:  .venv/bin/python benchmarks/upgrade_drill.py
It starts its own lab (or uses a running one with LAB_URL and LAB_REUSE=1) and writes benchmarks/output/.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
import psycopg2  # noqa: E402
import yaml  # noqa: E402

from tests.lab.__main__ import lab_env  # noqa: E402
from tests.lab.__main__ import benchmark_lab  # noqa: E402
from tests.lab.control import LabControl  # noqa: E402

REGION = "us-east-1"
INSTANCE, SOURCE_GROUP, TARGET_GROUP = "bench-upg", "bench-upg-pg15", "bench-upg-pg18"
FROM_VERSION, TO_VERSION = "15.7", "18.6"
USER, PASSWORD = "master", "bench-pass-1"
OUTPUT = ROOT / "benchmarks" / "output"
CHECKLIST_ARGS = {"db_instance_identifier": INSTANCE, "target_engine_version": TO_VERSION, "checks_only": True,
                  "target_parameter_group": TARGET_GROUP, "login_user": USER, "login_password": PASSWORD,
                  "login_db": "app", "extension_versions": {"pgcrypto": []}, "fail_on_breach": False,
                  "region": REGION}
REHEARSAL_ARGS = dict(CHECKLIST_ARGS, checks_only=False, allow_major_version_upgrade=True, probe_interval=0.25,
                      checks=[{"name": "orders", "sql": "SELECT count(*) FROM bench_orders",
                               "expect": {"equals": 1000}}],
                      wait_timeout=900, poll_interval=0.5)

# name: (SQL that seeds it, SQL that removes it)
CASES = {
    "clean": (["CREATE TABLE bench_targets (id int PRIMARY KEY, target regclass)",
               "INSERT INTO bench_targets VALUES (1, 'pg_class'::regclass)"], []),
    "prepared": (["BEGIN", "CREATE TABLE bench_prepared (id int)", "PREPARE TRANSACTION 'bench_tx'"],
                 ["ROLLBACK PREPARED 'bench_tx'"]),
    "regproc": (["CREATE TABLE bench_jobs (id int, handler regproc)", "INSERT INTO bench_jobs VALUES (1, 'now')"],
                ["DROP TABLE bench_jobs"]),
    "slot": (["SELECT pg_create_logical_replication_slot('bench_slot', 'pgoutput')"],
             ["SELECT pg_drop_replication_slot('bench_slot')"]),
    "aclitem": (["CREATE TABLE bench_acl (id int, acl aclitem[])",
                 "INSERT INTO bench_acl SELECT 1, relacl FROM pg_class WHERE relacl IS NOT NULL LIMIT 1"],
                ["DROP TABLE bench_acl"]),
    "extension": (["CREATE EXTENSION pgcrypto"], ["DROP EXTENSION pgcrypto"]),
}
SEEDED = [name for name in CASES if name != "clean"]


def client(url, service="rds"):
    return boto3.client(service, endpoint_url=url, region_name=REGION, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def wait_available(rds, identifier, timeout=600):
    deadline = time.monotonic() + timeout
    while True:
        described = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
        if described["DBInstanceStatus"] == "available":
            return described
        if time.monotonic() > deadline:
            raise TimeoutError(f"{identifier} did not become available")
        time.sleep(0.2)


def setup(url):
    rds = client(url)
    rds.create_db_parameter_group(DBParameterGroupName=SOURCE_GROUP, DBParameterGroupFamily="postgres15",
                                  Description="upgrade benchmark source")
    rds.modify_db_parameter_group(DBParameterGroupName=SOURCE_GROUP, Parameters=[
        {"ParameterName": "max_prepared_transactions", "ParameterValue": "10", "ApplyMethod": "pending-reboot"},
        {"ParameterName": "rds.logical_replication", "ParameterValue": "1", "ApplyMethod": "pending-reboot"}])
    rds.create_db_parameter_group(DBParameterGroupName=TARGET_GROUP, DBParameterGroupFamily="postgres18",
                                  Description="upgrade benchmark target")
    rds.modify_db_parameter_group(DBParameterGroupName=TARGET_GROUP, Parameters=[
        {"ParameterName": "max_prepared_transactions", "ParameterValue": "10", "ApplyMethod": "pending-reboot"},
        {"ParameterName": "rds.logical_replication", "ParameterValue": "1", "ApplyMethod": "pending-reboot"}])
    rds.create_db_instance(DBInstanceIdentifier=INSTANCE, Engine="postgres", EngineVersion=FROM_VERSION,
                           DBInstanceClass="db.t3.micro", AllocatedStorage=20, MasterUsername=USER,
                           MasterUserPassword=PASSWORD, BackupRetentionPeriod=7, DBName="app",
                           DBParameterGroupName=SOURCE_GROUP)
    described = wait_available(rds, INSTANCE)
    rds.create_db_snapshot(DBInstanceIdentifier=INSTANCE, DBSnapshotIdentifier=f"{INSTANCE}-before")
    run_sql(described, ["CREATE TABLE bench_orders AS SELECT g AS id, g * 1.5 AS amount "
                        "FROM generate_series(1, 1000) g"])
    deadline = time.monotonic() + 60
    while rds.describe_db_snapshots(DBSnapshotIdentifier=f"{INSTANCE}-before")["DBSnapshots"][0]["Status"] \
            != "available":
        if time.monotonic() > deadline:
            raise TimeoutError("the manual snapshot did not become available")
        time.sleep(0.2)
    return described


def connect(described):
    conn = psycopg2.connect(host=described["Endpoint"]["Address"], port=described["Endpoint"]["Port"], user=USER,
                            password=PASSWORD, dbname="app", connect_timeout=5)
    conn.autocommit = True
    return conn


def run_sql(described, statements):
    conn = connect(described)
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


def seed_checklist(described):
    """A model of the seed's checklist: DescribeDBInstances' fields, and two lines hard-coded to "manual"."""
    return [
        {"name": "instance available", "result": "pass" if described["DBInstanceStatus"] == "available" else "fail"},
        {"name": "backups enabled", "result": "pass" if described.get("BackupRetentionPeriod") else "fail"},
        {"name": "multi-AZ", "result": "pass" if described.get("MultiAZ") else "fail"},
        {"name": "application tested", "result": "manual"},
        {"name": "no deprecated features", "result": "manual"},
    ]


def upgrade_in_place(url, control):
    """The lab's truth for a seeded case: a real upgrade attempt of the instance; a blocker leaves it on 15.7."""
    rds = client(url)
    before = len(control.upgrade_log())
    rds.modify_db_instance(DBInstanceIdentifier=INSTANCE, EngineVersion=TO_VERSION, AllowMajorVersionUpgrade=True,
                           DBParameterGroupName=TARGET_GROUP, ApplyImmediately=True)
    time.sleep(0.5)
    described = wait_available(rds, INSTANCE)
    deadline = time.monotonic() + 120
    while True:
        log = control.upgrade_log()
        if len(log) > before and log[-1].get("ok") is not None:
            entry = log[-1]
            break
        if time.monotonic() > deadline:
            raise TimeoutError("the lab recorded no finished upgrade")
        time.sleep(0.2)
    if entry["ok"]:
        raise RuntimeError(f"the seeded instance was upgraded (no blocker found by the lab): {entry}")
    assert described["EngineVersion"] == FROM_VERSION, described["EngineVersion"]
    return {"blocked": True, "blockers": sorted({b["check"] for b in entry.get("blockers") or []}),
            "messages": [b.get("message") for b in entry.get("blockers") or []],
            "check_seconds": entry.get("check_seconds")}


def playbook_run(url, control, described, run_dir):
    """One ansible-playbook: the checklist on each case in turn, then the rehearsal on the clean data. Between two
    tasks the playbook waits (a ``when`` lookup) while this process attempts the upgrade of the case just checked and
    seeds the next. Returns ({name: module result}, {name: lab truth})."""
    tasks, truth = [], {}
    names = list(CASES) + ["rehearsal"]
    for index, name in enumerate(names):
        args = REHEARSAL_ARGS if name == "rehearsal" else CHECKLIST_ARGS
        task = {"name": f"run {name}", "dbre.rds.rds_upgrade_drill": args, "register": f"result_{index}"}
        if index:
            ready, go = run_dir / f"ready-{index}", run_dir / f"go-{index}"
            wait = f"touch {ready}; for i in $(seq 12000); do test -e {go} && echo seeded && exit 0; sleep 0.05; done"
            task["when"] = f"lookup('ansible.builtin.pipe', {wait!r}) == 'seeded'"
        tasks.append(task)
        tasks.append({"name": f"keep {name}", "ansible.builtin.copy": {
            "content": f"{{{{ result_{index} | to_nice_json }}}}", "dest": str(run_dir / f"{name}.json"),
            "mode": "0600"}})
    playbook = run_dir / "upgrade_drill.yml"
    playbook.write_text(yaml.safe_dump([{"name": "Upgrade checklist benchmark", "hosts": "localhost",
                                         "gather_facts": False, "tasks": tasks}], sort_keys=False))
    env = dict(os.environ, **lab_env(url), ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build"),
               ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_NOCOLOR="1")
    command = [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), str(playbook), "-i", "localhost,",
               "-c", "local"]
    print(f"$ {' '.join(command)}", flush=True)
    run_sql(described, CASES["clean"][0])
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    try:
        for index, name in enumerate(names[1:], start=1):
            deadline = time.monotonic() + 600
            while not (run_dir / f"ready-{index}").exists():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the playbook did not reach {name}:\n{(process.stdout.read() or '')[-4000:]}")
                time.sleep(0.1)
            checked = names[index - 1]
            if checked != "clean":
                truth[checked] = upgrade_in_place(url, control)
                run_sql(described, CASES[checked][1])
            if name != "rehearsal":
                run_sql(described, CASES[name][0])
            print(f"  {checked}: checked{' and upgrade attempted' if checked != 'clean' else ''}", flush=True)
            (run_dir / f"go-{index}").touch()
        output, _errors = process.communicate(timeout=1800)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the playbook failed:\n{output[-4000:]}")
    return {name: json.loads((run_dir / f"{name}.json").read_text()) for name in names}, truth


def rehearsal_truth(control, rehearsal):
    """The lab's record of the rehearsal's upgrade (the copy's), by the copy's identifier."""
    target = rehearsal["plan"]["target"]
    (entry,) = [e for e in control.upgrade_log() if e["identifier"] == target][-1:]
    outage = None if entry.get("down_at") is None or entry.get("up_at") is None else entry["up_at"] - entry["down_at"]
    return {"copy": target, "ok": entry["ok"], "pg_upgrade_seconds": entry.get("pg_upgrade_seconds"),
            "check_seconds": entry.get("check_seconds"), "outage_seconds": outage,
            "total_seconds": entry["finished_at"] - entry["requested_at"]}


def run(url):
    control = LabControl(url)
    control.reset()
    described = setup(url)
    run_dir = OUTPUT / "upgrade_drill"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    results, truth = playbook_run(url, control, described, run_dir)
    rows = {}
    for name in CASES:
        result = results[name]
        lab = truth.get(name) or {"blocked": not results["rehearsal"]["upgrade"]["upgraded"], "blockers": [],
                                  "messages": [], "check_seconds": None}
        rows[name] = {"lab": lab, "checklist": result["blockers"],
                      "checklist_fixes": [f for f in result["fix_first"] if f.split(":", 1)[0] in result["blockers"]],
                      "seed": seed_checklist(described)}
    rehearsal = results["rehearsal"]
    measured = rehearsal.get("measurements") or {}
    return {"cases": rows,
            "rehearsal": {"passed": rehearsal["passed"], "upgrade_seconds": measured.get("upgrade_seconds"),
                          "downtime_seconds": measured.get("downtime_seconds"),
                          "server_version_after": measured.get("server_version_after"),
                          "lab": rehearsal_truth(control, rehearsal)}}


def print_table(report):
    header = ("case", "lab: upgrade", "lab: blockers", "checklist: blockers", "seed's checklist: failed")
    widths = (10, 12, 34, 22, 38)
    print()
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths)))
    print(" | ".join("-" * w for w in widths))
    found = missed = false_alarms = seed_found = 0
    clean_seed = report["cases"]["clean"]["seed"]
    for name, row in report["cases"].items():
        lab, checklist = row["lab"], row["checklist"]
        seed = row["seed"]
        failed = [item["name"] for item in seed if item["result"] == "fail"]
        manual = [item["name"] for item in seed if item["result"] == "manual"]
        # The seed's checklist reads DescribeDBInstances only: what it fails is the instance's settings (Single-AZ
        # here), the same on every case. It found a blocker only if it answered differently than on clean data.
        sees_it = seed != clean_seed
        seed_text = f"{', '.join(failed) or 'nothing'}; {len(manual)} manual"
        cells = (name, "blocked" if lab["blocked"] else "upgraded", ", ".join(lab["blockers"]) or "-",
                 ", ".join(checklist) or "-", seed_text)
        print(" | ".join(str(c).ljust(w) for c, w in zip(cells, widths)))
        if lab["blocked"]:
            found += bool(checklist)
            missed += not checklist
            seed_found += sees_it
        else:
            false_alarms += bool(checklist)
    blocked = sum(1 for row in report["cases"].values() if row["lab"]["blocked"])
    print()
    print(f"blocked upgrades the checklist found before starting: {found} of {blocked} (missed {missed}, "
          f"false alarms on upgradable data {false_alarms}); the seed's checklist: {seed_found} of {blocked} (the "
          "same answer as on clean data every time), its two most important lines 'manual'")
    for name, row in report["cases"].items():
        for fix in row["checklist_fixes"]:
            print(f"  {name}: {fix}")
    rehearsal = report["rehearsal"]
    lab = rehearsal["lab"]
    print()
    header = ("measure", "seconds")
    print(" | ".join(header))
    print(" | ".join("-" * len(h) for h in header))
    for label, value in (
            ("rehearsal: upgrade (request to available on 18.6)", rehearsal["upgrade_seconds"]),
            ("rehearsal: outage its probes saw", rehearsal["downtime_seconds"]),
            ("lab: whole upgrade (request to finished)", lab["total_seconds"]),
            ("lab: pre-checks and pg_upgrade --check", lab["check_seconds"]),
            ("lab: pg_upgrade run", lab["pg_upgrade_seconds"]),
            ("lab: server down (shutdown to restarted)", lab["outage_seconds"])):
        print(f"{label} | {'-' if value is None else f'{value:.2f}'}")
    print(f"rehearsal passed: {rehearsal['passed']}, copy {lab['copy']} reported {rehearsal['server_version_after']}")
    if rehearsal["upgrade_seconds"] is not None:
        print(f"the rehearsal's upgrade time is {rehearsal['upgrade_seconds'] - lab['total_seconds']:+.2f} s from the "
              "lab's whole upgrade (the rehearsal: ModifyDBInstance until DescribeDBInstances shows the copy available "
              "on the new version; the lab: its upgrade job's start to end)")
    holds = missed == 0 and false_alarms == 0 and rehearsal["passed"] and lab["ok"]
    if rehearsal["downtime_seconds"] is not None and lab["outage_seconds"] is not None:
        covered = rehearsal["downtime_seconds"] + 0.5 >= lab["outage_seconds"]
        print(f"target: the rehearsal's outage covers the lab's server outage (within one probe interval): "
              f"{'holds' if covered else 'does NOT hold'}")
        holds = holds and covered
    print(f"target: every blocked upgrade found before it starts, no false alarm: "
          f"{'holds' if missed == 0 and false_alarms == 0 else 'does NOT hold'}")
    return holds


def main():
    OUTPUT.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with benchmark_lab() as url:
        report = run(url)
    holds = print_table(report)
    (OUTPUT / "upgrade_drill.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"results: {OUTPUT / 'upgrade_drill.json'} ({time.monotonic() - started:.0f} s)")
    return 0 if holds else 1


if __name__ == "__main__":
    sys.exit(main())
