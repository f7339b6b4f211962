# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restore drill's overhead beside the same steps written as a playbook of amazon.aws and community.postgresql.

One source with 100 rows and a manual snapshot (then 20 more rows). Each approach restores that snapshot, checks that
exactly 100 rows came back, and deletes the restored instance:

- ``dbre.rds.rds_restore_drill`` in one task;
- a playbook: ``amazon.aws.rds_instance`` (``creation_source: snapshot``, ``wait: true``),
  ``community.postgresql.postgresql_query``, ``ansible.builtin.assert``, then ``amazon.aws.rds_instance``
  ``state: absent`` in ``always:``.

RTO is from the start of the restore call (the lab's call log) to validated: the module reports its own; for the
playbook it is the time the query task finished. The lab's own restore time is from the start of the restore call to
the moment an observer polling the lab every 0.1 s first saw the instance available. Overhead = RTO minus that.
API calls are the lab's call log for the run, minus the observer's own describes.

    .venv/bin/python benchmarks/restore_drill.py [--restore-seconds 30] [--lab-url URL]

Without --lab-url (or LAB_URL) a private lab is started and stopped.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import shlex
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.lab.__main__ import lab_env, start_daemon, stop_daemon  # noqa: E402
from tests.lab.control import LabControl  # noqa: E402

PASSWORD = "bench-Secret-1"
SOURCE = "bench-src"
SNAPSHOT = "bench-src-snap"

OURS = """---
- name: Restore drill with dbre.rds
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Restore, check and clean up in one task
      dbre.rds.rds_restore_drill:
        db_instance_identifier: {source}
        restore_from: snapshot
        snapshot_identifier: {snapshot}
        target_identifier: {target}
        login_password: "{{{{ bench_password }}}}"
        poll_interval: 1
        checks:
          - name: rows at snapshot
            sql: SELECT count(*) FROM orders
            expect:
              equals: 100
      register: bench_drill

    - name: Keep the result for the benchmark
      ansible.builtin.copy:
        content: "{{{{ bench_drill | to_json }}}}"
        dest: "{{{{ bench_out }}}}"
        mode: "0600"
"""

AMAZON = """---
- name: Restore drill as amazon.aws and community.postgresql tasks
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Restore, check, delete
      block:
        - name: Restore the snapshot
          amazon.aws.rds_instance:
            db_instance_identifier: {target}
            creation_source: snapshot
            db_snapshot_identifier: {snapshot}
            engine: postgres
            db_instance_class: db.t3.micro
            multi_az: false
            publicly_accessible: false
            deletion_protection: false
            tags:
              purpose: restore-drill
            wait: true
          register: bench_restored

        - name: Count the rows
          community.postgresql.postgresql_query:
            login_host: "{{{{ bench_restored.endpoint.address }}}}"
            login_port: "{{{{ bench_restored.endpoint.port }}}}"
            login_user: app
            login_password: "{{{{ bench_password }}}}"
            login_db: postgres
            query: SELECT count(*) AS n FROM orders
          register: bench_counted

        - name: Record when validation finished
          ansible.builtin.set_fact:
            bench_validated_at: "{{{{ now(utc=true).isoformat() }}}}"

        - name: Exactly the snapshot's rows
          ansible.builtin.assert:
            that:
              - bench_counted.query_result[0].n == 100
      always:
        - name: Delete the restored instance
          amazon.aws.rds_instance:
            db_instance_identifier: {target}
            state: absent
            skip_final_snapshot: true
            wait: true

    - name: Keep the result for the benchmark
      ansible.builtin.copy:
        content: "{{{{ {{'validated_at': bench_validated_at, 'rows': bench_counted.query_result[0].n}} | to_json }}}}"
        dest: "{{{{ bench_out }}}}"
        mode: "0600"
"""


class Observer(threading.Thread):
    """Polls the lab every 0.1 s and records when ``identifier`` is first seen available."""

    def __init__(self, rds, identifier):
        super().__init__(daemon=True)
        self.rds, self.identifier = rds, identifier
        self.available_at, self.calls = None, 0
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set() and self.available_at is None:
            self.calls += 1
            try:
                found = self.rds.describe_db_instances(DBInstanceIdentifier=self.identifier)["DBInstances"]
                if found and found[0]["DBInstanceStatus"] == "available":
                    self.available_at = time.time()
            except self.rds.exceptions.DBInstanceNotFoundFault:
                pass
            self._halt.wait(0.1)

    def stop(self):
        self._halt.set()
        self.join(timeout=5)


def rds_client(url):
    import boto3
    return boto3.client("rds", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def prepare_source(rds):
    import psycopg2

    rds.create_db_instance(DBInstanceIdentifier=SOURCE, Engine="postgres", DBInstanceClass="db.t3.micro",
                           MasterUsername="app", MasterUserPassword=PASSWORD, AllocatedStorage=20,
                           BackupRetentionPeriod=1)
    described = wait_for(lambda: rds.describe_db_instances(DBInstanceIdentifier=SOURCE)["DBInstances"][0],
                         lambda d: d["DBInstanceStatus"] == "available")
    conn = psycopg2.connect(host=described["Endpoint"]["Address"], port=described["Endpoint"]["Port"], user="app",
                            password=PASSWORD, dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute("CREATE TABLE orders (id serial PRIMARY KEY, created_at timestamptz DEFAULT clock_timestamp())")
        cursor.execute("INSERT INTO orders (created_at) SELECT clock_timestamp() FROM generate_series(1, 100)")
        rds.create_db_snapshot(DBInstanceIdentifier=SOURCE, DBSnapshotIdentifier=SNAPSHOT)
        wait_for(lambda: rds.describe_db_snapshots(DBSnapshotIdentifier=SNAPSHOT)["DBSnapshots"][0],
                 lambda s: s["Status"] == "available")
        cursor.execute("INSERT INTO orders (created_at) SELECT clock_timestamp() FROM generate_series(1, 20)")
    conn.close()


def wait_for(fetch, done, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fetch()
        if done(value):
            return value
        time.sleep(0.2)
    raise RuntimeError("the lab did not get there in time")


def run(name, playbook_text, target, url, control, rds, workdir):
    playbook = workdir / f"{target}.yml"
    out = workdir / f"{target}.json"
    playbook.write_text(playbook_text.format(source=SOURCE, snapshot=SNAPSHOT, target=target))
    env = dict(os.environ, **lab_env(url), ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build"),
               ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_NOCOLOR="1")
    command = [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), str(playbook), "-i", "localhost,",
               "-c", "local", "-e", f"bench_out={out}", "-e", f"bench_password={PASSWORD}"]
    print("$ " + shlex.join(command).replace(PASSWORD, "***"), flush=True)
    control.clear_calls()
    observer = Observer(rds, target)
    observer.start()
    started = time.monotonic()
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    wall = time.monotonic() - started
    observer.stop()
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-2000:])
        raise SystemExit(f"{name} failed")
    result = json.loads(out.read_text())
    calls = control.calls(service="rds")
    restore = next(c for c in calls if c["action"].startswith("Restore"))
    restore_started = restore["epoch"] - restore["seconds"]
    if "rto_seconds" in result:
        rto = result["rto_seconds"]
    else:
        validated = datetime.datetime.fromisoformat(result["validated_at"]).replace(tzinfo=datetime.timezone.utc)
        rto = validated.timestamp() - restore_started
    lab_restore = observer.available_at - restore_started
    return {"name": name, "rto": rto, "lab_restore": lab_restore, "overhead": rto - lab_restore, "wall": wall,
            "calls": len(calls) - observer.calls}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restore-seconds", type=float, default=30.0,
                        help="seconds the lab keeps a restored instance in creating")
    parser.add_argument("--lab-url", default=os.environ.get("LAB_URL"))
    args = parser.parse_args()
    print("$ " + shlex.join([".venv/bin/python", "benchmarks/restore_drill.py"] + sys.argv[1:]), flush=True)
    state_dir, process = None, None
    url = args.lab_url
    if not url:
        state_dir = pathlib.Path(tempfile.mkdtemp(prefix="dbre-rds-bench-"))
        os.chmod(state_dir, 0o755)
        process, info = start_daemon(state_dir, fidelity=True, parent_pid=os.getpid())
        url = info["url"]
    control = LabControl(url)
    try:
        control.reset()
        rds = rds_client(url)
        prepare_source(rds)
        control.set_timing(restore=args.restore_seconds)
        with tempfile.TemporaryDirectory(prefix="dbre-rds-bench-") as tmp:
            workdir = pathlib.Path(tmp)
            rows = [run("dbre.rds.rds_restore_drill", OURS, "bench-ours", url, control, rds, workdir),
                    run("amazon.aws + community.postgresql playbook", AMAZON, "bench-amazon", url, control, rds,
                        workdir)]
        print()
        print(f"Restore of a 100-row snapshot, lab restore time set to {args.restore_seconds:g} s in creating")
        header = f"{'approach':<44} {'RTO s':>8} {'lab restore s':>14} {'overhead s':>11} {'wall s':>8} {'API calls':>10}"
        print(header)
        print("-" * len(header))
        for row in rows:
            print(f"{row['name']:<44} {row['rto']:>8.2f} {row['lab_restore']:>14.2f} {row['overhead']:>11.2f} "
                  f"{row['wall']:>8.2f} {row['calls']:>10}")
    finally:
        if args.lab_url:
            control.reset()
        else:
            stop_daemon(state_dir, process.pid if process else None)
            import shutil
            shutil.rmtree(state_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
