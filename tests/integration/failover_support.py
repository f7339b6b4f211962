# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers shared by the rds_failover_test integration tests: lab resources, playbook runs, lab-side checks."""

import json
import os
import pathlib
import subprocess
import sys
import time

import psycopg2
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
PASSWORD = "drill-pass-1"
PROBE_TABLE = "dbre_rds_failover_probe"
FAILOVER_CALLS = ("RebootDBInstance", "FailoverDBCluster")
COMMON = dict(MasterUsername="master", MasterUserPassword=PASSWORD)


def wait_for(predicate, timeout=60.0, interval=0.2, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)


def instance_available(rds, identifier):
    described = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
    return described if described["DBInstanceStatus"] == "available" else None


def cluster_available(rds, identifier):
    described = rds.describe_db_clusters(DBClusterIdentifier=identifier)["DBClusters"][0]
    return described if described["Status"] == "available" else None


def writer_of(rds, identifier):
    members = rds.describe_db_clusters(DBClusterIdentifier=identifier)["DBClusters"][0]["DBClusterMembers"]
    return next(m["DBInstanceIdentifier"] for m in members if m["IsClusterWriter"])


def probe_table_exists(endpoint):
    with psycopg2.connect(host=endpoint["Address"], port=endpoint["Port"], user="master", password=PASSWORD,
                          dbname="postgres", connect_timeout=5) as conn:
        with conn.cursor() as cursor:
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (PROBE_TABLE,))
            return cursor.fetchone()[0]


def sql(endpoint, statement, params=None, fetch=True):
    """Run one statement on the lab's PostgreSQL as the master user; returns the rows (or None)."""
    with psycopg2.connect(host=endpoint["Address"], port=endpoint["Port"], user="master", password=PASSWORD,
                          dbname="postgres", connect_timeout=5) as conn:
        with conn.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall() if fetch else None


def probe_table_marker(endpoint, table=PROBE_TABLE):
    """The comment of the probe table (its drill's marker) or None when the table is absent."""
    rows = sql(endpoint, "SELECT obj_description(to_regclass(%s), 'pg_class'), to_regclass(%s) IS NOT NULL",
               (table, table))
    return rows[0][0] if rows[0][1] else None


def failover_calls(lab):
    return [call for call in lab.control.calls() if call["action"] in FAILOVER_CALLS]


def documented_measurements():
    """The measurement names the module's RETURN documents."""
    source = (ROOT / "plugins" / "modules" / "rds_failover_test.py").read_text()
    start = source.index('RETURN = r"""') + len('RETURN = r"""')
    returned = yaml.safe_load(source[start:source.index('"""', start)])
    return set(returned["measurements"]["contains"])


def create_instance(rds, identifier, multi_az):
    rds.create_db_instance(DBInstanceIdentifier=identifier, Engine="postgres", DBInstanceClass="db.t3.micro",
                           AllocatedStorage=20, MultiAZ=multi_az, AvailabilityZone="us-east-1a", **COMMON)


def create_cluster(rds, identifier, members):
    rds.create_db_cluster(DBClusterIdentifier=identifier, Engine="aurora-postgresql", **COMMON)
    for member in members:
        rds.create_db_instance(DBInstanceIdentifier=member, DBClusterIdentifier=identifier,
                               Engine="aurora-postgresql", DBInstanceClass="db.r6g.large")


def _playbook(lab, tmp_path, tasks):
    """Write ``tasks`` as one localhost play (each registered, errors ignored); return (command, env, results file)."""
    results_file = tmp_path / "results.json"
    play_tasks = []
    names = []
    for index, task in enumerate(tasks):
        task = dict(task)
        if any(key.startswith("dbre.rds.") for key in task):
            task.setdefault("register", f"result_{index}")
            task.setdefault("ignore_errors", True)
            names.append(task["register"])
        play_tasks.append(task)
    play_tasks.append({"name": "Save the results", "ansible.builtin.copy": {
        "content": "{{ [" + ", ".join(names) + "] | to_nice_json }}", "dest": str(results_file)}})
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{"name": "rds_failover_test", "hosts": "localhost", "gather_facts": False,
                                         "tasks": play_tasks}], sort_keys=False))
    env = dict(os.environ)
    env.update(lab.env)
    env.update(ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build"), ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               ANSIBLE_NOCOLOR="1", ANSIBLE_CALLBACK_RESULT_FORMAT="yaml")
    command = [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), str(playbook), "-i", "localhost,",
               "-c", "local", "-e", f"lab_url={lab.control.url}"]
    return command, env, results_file


def start_playbook(lab, tmp_path, tasks):
    """Start the play in the background, as a user would in a terminal: the ansible-playbook process."""
    command, env, _unused = _playbook(lab, tmp_path, tasks)
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_tasks(lab, tmp_path, tasks, background=False):
    """Run ``tasks`` in one localhost play (each registered, errors ignored); return their results in order."""
    command, env, results_file = _playbook(lab, tmp_path, tasks)

    def collect(process_output):
        stdout, stderr, returncode = process_output
        assert returncode == 0, f"playbook failed:\n{stdout[-8000:]}\n{stderr[-3000:]}"
        return json.loads(results_file.read_text())

    if background:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)

        def finish():
            stdout, stderr = process.communicate(timeout=300)
            return collect((stdout, stderr, process.returncode))

        return finish
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    return collect((done.stdout, done.stderr, done.returncode))


def drill(identifier=None, cluster=None, **options):
    args = dict(login_user="master", login_password=PASSWORD, probe_settle_seconds=1, poll_interval=0.5,
                wait_timeout=60)
    args.update(options)
    if identifier:
        args["db_instance_identifier"] = identifier
    if cluster:
        args["db_cluster_identifier"] = cluster
    return {"name": "Failover drill", "dbre.rds.rds_failover_test": args}
