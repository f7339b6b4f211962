# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Encrypting an instance while an application writes: what clients see, and what survives.

Three ways, on the same data (``--rows`` rows in one table, loaded into a fresh source for each way), with the same
client writing one row every ``--interval`` seconds through the instance's endpoint from before the start to after
the end:

- ``rds_encrypt_instance cutover=snapshot``: the module (writes stopped, final snapshot, encrypted copy, restore,
  checks, swap by rename);
- ``rds_encrypt_instance cutover=logical``: the module (publication, snapshot, encrypted copy and restore while
  writes go on, the copy reloaded and caught up by a subscription, then a short write stop for the last of the
  catch-up, the sequences, checks and the swap); its source has rds.logical_replication=1;
- the seed's procedure: "snapshot, copy encrypted, restore, point the applications to it" (here: the same renames,
  so the endpoint stays), with no word on the writes made meanwhile.

For each: the write downtime the client saw (first failed write to the first successful one after the last failure),
the writes the server acknowledged during the run, how many of them the encrypted instance holds afterwards, and the
wall time.

    .venv/bin/python benchmarks/encrypt_cutover.py [--rows 100000] [--interval 0.05] [--lab-url URL]

Without --lab-url (or LAB_URL) a private lab is started and stopped.
"""

from __future__ import annotations

import argparse
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


class Writer:
    """The application: one numbered row per interval through a fixed endpoint, reconnecting after an error."""

    def __init__(self, endpoint, interval):
        self.endpoint, self.interval = endpoint, interval
        self.samples = []  # (sent, done, ok, seq)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import psycopg2

        conn, seq = None, 0
        while not self._stop.is_set():
            seq += 1
            sent = time.monotonic()
            try:
                if conn is None:
                    conn = psycopg2.connect(host=self.endpoint[0], port=self.endpoint[1], user="master",
                                            password=PASSWORD, dbname="shop", connect_timeout=2)
                    conn.autocommit = True
                with conn.cursor() as cursor:
                    cursor.execute("INSERT INTO app_writes (seq) VALUES (%s)", (seq,))
                self.samples.append((sent, time.monotonic(), True, seq))
            except psycopg2.Error:
                self.samples.append((sent, time.monotonic(), False, seq))
                if conn is not None:
                    conn.close()
                conn = None
            self._stop.wait(self.interval)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join(10)

    def downtime(self):
        failures = [s for s in self.samples if not s[2]]
        if not failures:
            return 0.0
        after = next((s for s in self.samples if s[2] and s[0] > failures[-1][0]), None)
        return None if after is None else after[1] - failures[0][0]

    def acknowledged(self):
        return [s[3] for s in self.samples if s[2]]


def clients(url):
    import boto3

    kwargs = dict(endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                  aws_secret_access_key="testing")
    return boto3.client("rds", **kwargs), boto3.client("kms", **kwargs)


def wait_for(fetch, done, timeout=300):
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"still {value} after {timeout}s")
        time.sleep(0.1)


def instance(rds, identifier):
    found = rds.describe_db_instances(Filters=[{"Name": "db-instance-id", "Values": [identifier]}])["DBInstances"]
    return found[0] if found else None


def available(rds, identifier):
    return wait_for(lambda: instance(rds, identifier), lambda d: d and d["DBInstanceStatus"] == "available")


def logical_group(rds):
    """A parameter group with rds.logical_replication=1, as cutover=logical needs on the source."""
    rds.create_db_parameter_group(DBParameterGroupName="bench-logical", DBParameterGroupFamily="postgres15",
                                  Description="logical replication")
    rds.modify_db_parameter_group(DBParameterGroupName="bench-logical", Parameters=[
        {"ParameterName": "rds.logical_replication", "ParameterValue": "1", "ApplyMethod": "pending-reboot"}])
    return "bench-logical"


def prepare(rds, identifier, rows, group=None):
    import psycopg2

    extra = {"DBParameterGroupName": group} if group else {}
    rds.create_db_instance(DBInstanceIdentifier=identifier, Engine="postgres", DBInstanceClass="db.t3.micro",
                           MasterUsername="master", MasterUserPassword=PASSWORD, DBName="shop", AllocatedStorage=20,
                           **extra)
    described = available(rds, identifier)
    endpoint = (described["Endpoint"]["Address"], described["Endpoint"]["Port"])
    conn = psycopg2.connect(host=endpoint[0], port=endpoint[1], user="master", password=PASSWORD, dbname="shop")
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute("CREATE TABLE orders (id int PRIMARY KEY, note text)")
        cursor.execute("INSERT INTO orders SELECT g, repeat('x', 100) FROM generate_series(1, %s) g", (rows,))
        cursor.execute("CREATE TABLE app_writes (seq int PRIMARY KEY)")
    conn.close()
    return endpoint


def rows_found(endpoint):
    import psycopg2

    conn = psycopg2.connect(host=endpoint[0], port=endpoint[1], user="master", password=PASSWORD, dbname="shop")
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT seq FROM app_writes")
            return {row[0] for row in cursor.fetchall()}
    finally:
        conn.close()


def with_module(url, identifier, key_id, cutover="snapshot"):
    args = {"db_instance_identifier": identifier, "kms_key_id": key_id, "login_password": PASSWORD, "cutover": cutover,
            "login_db": "shop", "poll_interval": 0.2, "probe": False, "wait_timeout": 600,
            "compare_row_counts": ["orders"]}
    env = dict(os.environ, **lab_env(url), ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build"),
               ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_STDOUT_CALLBACK="json")
    done = subprocess.run([str(pathlib.Path(sys.executable).parent / "ansible"), "localhost", "-i", "localhost,",
                           "-c", "local", "-m", "dbre.rds.rds_encrypt_instance", "-a", json.dumps(args)],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    result = json.loads(done.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    if result.get("failed"):
        raise RuntimeError(result.get("msg"))
    return result


def by_hand(rds, identifier, key_id):
    """The seed's procedure: snapshot, encrypted copy, restore, then rename so the endpoint points at the copy."""
    final, copy, new, old = f"{identifier}-final", f"{identifier}-enc-snap", f"{identifier}-enc", f"{identifier}-old"
    rds.create_db_snapshot(DBInstanceIdentifier=identifier, DBSnapshotIdentifier=final)

    def snapshot(name):
        return rds.describe_db_snapshots(DBSnapshotIdentifier=name)["DBSnapshots"][0]

    wait_for(lambda: snapshot(final)["Status"], lambda s: s == "available")
    rds.copy_db_snapshot(SourceDBSnapshotIdentifier=final, TargetDBSnapshotIdentifier=copy, KmsKeyId=key_id)
    wait_for(lambda: snapshot(copy)["Status"], lambda s: s == "available")
    rds.restore_db_instance_from_db_snapshot(DBInstanceIdentifier=new, DBSnapshotIdentifier=copy)
    available(rds, new)
    rds.modify_db_instance(DBInstanceIdentifier=identifier, NewDBInstanceIdentifier=old, ApplyImmediately=True)
    available(rds, old)
    rds.modify_db_instance(DBInstanceIdentifier=new, NewDBInstanceIdentifier=identifier, ApplyImmediately=True)
    available(rds, identifier)


def measure(name, rds, identifier, rows, interval, encrypt, group=None):
    endpoint = prepare(rds, identifier, rows, group)
    writer = Writer(endpoint, interval)
    writer.start()
    time.sleep(1.0)
    started = time.monotonic()
    outcome = encrypt(identifier)
    wall = time.monotonic() - started
    time.sleep(1.0)
    writer.stop()
    final = instance(rds, identifier)
    acknowledged = writer.acknowledged()
    present = rows_found(endpoint)
    return {"name": name, "encrypted": bool(final["StorageEncrypted"]), "downtime": writer.downtime(),
            "written": len(acknowledged), "found": len(set(acknowledged) & present),
            "lost": len(set(acknowledged) - present), "wall": wall,
            "phases": ((outcome or {}).get("measurements") or {}).get("phases") or []}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100000, help="rows of the source's table")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between two client writes")
    parser.add_argument("--lab-url", default=os.environ.get("LAB_URL"))
    args = parser.parse_args()
    print("$ " + shlex.join([".venv/bin/python", "benchmarks/encrypt_cutover.py"] + sys.argv[1:]), flush=True)
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
        rds, kms = clients(url)
        key = kms.create_key(Description="benchmark")["KeyMetadata"]
        results = [
            measure("rds_encrypt_instance cutover=snapshot", rds, "bench-module", args.rows, args.interval,
                    lambda identifier: with_module(url, identifier, key["KeyId"])),
            measure("rds_encrypt_instance cutover=logical", rds, "bench-logical", args.rows, args.interval,
                    lambda identifier: with_module(url, identifier, key["KeyId"], "logical"), logical_group(rds)),
            measure("by hand: snapshot, copy, restore, rename", rds, "bench-hand", args.rows, args.interval,
                    lambda identifier: by_hand(rds, identifier, key["KeyId"])),
        ]
        print()
        print(f"Encrypting an instance of {args.rows} rows while a client writes every {args.interval:g} s")
        header = (f"{'approach':<42} {'encrypted':>9} {'write downtime s':>17} {'writes acked':>13} "
                  f"{'found after':>12} {'lost':>6} {'wall s':>8}")
        print(header)
        print("-" * len(header))
        for row in results:
            downtime = "never back" if row["downtime"] is None else f"{row['downtime']:.2f}"
            print(f"{row['name']:<42} {str(row['encrypted']):>9} {downtime:>17} {row['written']:>13} "
                  f"{row['found']:>12} {row['lost']:>6} {row['wall']:>8.2f}")
        for row in results[:2]:
            print()
            print(f"Phases of {row['name']} (seconds)")
            for phase in row["phases"]:
                print(f"  {phase['name']:<28} {phase['seconds']:>8.2f}")
    finally:
        if args.lab_url:
            control.reset()
        else:
            stop_daemon(state_dir, process.pid if process else None)
            import shutil
            shutil.rmtree(state_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
