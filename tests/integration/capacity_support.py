# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the capacity tests and benchmarks/capacity.py share: an instance whose parameter group sets a small
max_connections (the lab runs the group's value), so a proof by connection opens few connections."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import threading

import psycopg2

ROOT = pathlib.Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(pathlib.Path(sys.executable).parent / "ansible-playbook")

PASSWORD = "Capacity-Lab-1"
MAX_CONNECTIONS = 60
INSTANCE_CLASS = "db.t4g.medium"
APP_USER, APP_PASSWORD = "app_fleet", "App-Fleet-Lab-1"
# PostgreSQL's refusals when the slots are gone (the second when only the reserved slots are left).
EXHAUSTED = ("too many clients", "remaining connection slots are reserved")


def create_capacity_instance(lab, identifier, group=None, max_connections=MAX_CONNECTIONS, wait=True, **extra):
    """Create ``identifier`` (PostgreSQL 15, gp3) on a group ``<identifier>-pg15`` with ``max_connections``;
    returns the described instance once available (or None with ``wait=False``)."""
    rds = lab.client("rds")
    group = group or f"{identifier}-pg15"
    existing = rds.describe_db_parameter_groups()["DBParameterGroups"]
    if group not in [g["DBParameterGroupName"] for g in existing]:
        rds.create_db_parameter_group(DBParameterGroupName=group, DBParameterGroupFamily="postgres15",
                                      Description="a small max_connections for proofs by connection")
        rds.modify_db_parameter_group(DBParameterGroupName=group, Parameters=[
            {"ParameterName": "max_connections", "ParameterValue": str(max_connections),
             "ApplyMethod": "pending-reboot"}])
    params = dict(DBInstanceIdentifier=identifier, DBInstanceClass=INSTANCE_CLASS, AllocatedStorage=100,
                  StorageType="gp3", Engine="postgres", EngineVersion="15.5", MasterUsername="dbadmin",
                  MasterUserPassword=PASSWORD, DBParameterGroupName=group)
    params.update(extra)
    rds.create_db_instance(**params)
    if not wait:
        return None
    rds.get_waiter("db_instance_available").wait(DBInstanceIdentifier=identifier,
                                                 WaiterConfig={"Delay": 1, "MaxAttempts": 300})
    return rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]


def run_module_tasks(lab, tmp_path, module, calls, extra_tasks=()):
    """Run ``dbre.rds.<module>`` once per ``{name: args}`` (then ``extra_tasks``) in one playbook: one ansible
    start-up for all, results through the json callback, failures kept; returns {task name: result}."""
    tasks = [{"name": name, f"dbre.rds.{module}": args, "ignore_errors": True} for name, args in calls.items()]
    tasks += list(extra_tasks)
    playbook = tmp_path / f"{module}.yml"
    playbook.write_text(json.dumps([{"name": module, "hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    env = dict(os.environ)
    env.update(lab.env)
    env.update(ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build"), ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               ANSIBLE_NOCOLOR="1", ANSIBLE_DEPRECATION_WARNINGS="0", ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    result = subprocess.run([ANSIBLE_PLAYBOOK, str(playbook), "-i", "localhost,", "-c", "local"], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    ran = json.loads(result.stdout[result.stdout.index("{"):])["plays"][0]["tasks"]
    return {task["task"]["name"]: task["hosts"]["localhost"] for task in ran}


def create_app_login(instance):
    """The applications' login: an ordinary role (not rds_superuser), which the reserved slots do not serve."""
    conn = psycopg2.connect(host=instance["Endpoint"]["Address"], port=instance["Endpoint"]["Port"],
                            user="dbadmin", password=PASSWORD, dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {APP_USER} LOGIN PASSWORD '{APP_PASSWORD}'")
    conn.close()


def open_pools(address, port, pools):
    """One thread per application instance (``pools``: each instance's pool size) opens its pool as the
    application's login, all at the same time and held until every thread is done; returns (opened, refusals,
    other errors)."""
    opened, refused, other = [], [], []
    lock, done = threading.Lock(), threading.Barrier(len(pools) + 1)

    def app_instance(pool_size):
        mine = []
        try:
            for _unused in range(pool_size):
                try:
                    mine.append(psycopg2.connect(host=address, port=port, user=APP_USER, password=APP_PASSWORD,
                                                 dbname="postgres", connect_timeout=10))
                except psycopg2.OperationalError as exc:
                    text = str(exc)
                    with lock:
                        (refused if any(words in text for words in EXHAUSTED) else other).append(text.strip())
            with lock:
                opened.extend(mine)
        finally:
            done.wait(timeout=60)

    threads = [threading.Thread(target=app_instance, args=(size,)) for size in pools]
    for thread in threads:
        thread.start()
    done.wait(timeout=60)
    for thread in threads:
        thread.join(timeout=60)
    count = len(opened)
    for conn in opened:
        conn.close()
    return count, refused, other
