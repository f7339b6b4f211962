# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A regional failover to a cross-region read replica whose replay lags: what really happened, what
dbre.rds.rds_dr_drill reports, and what the usual readiness-check-then-promote script reports, side by side.

One lab, one primary instance in us-east-1 (backups on) and two cross-region read replicas of it in us-west-2, each a
real PostgreSQL hot standby. For each replica in turn, replay is paused on it (LabControl.pause_replay) while writes
continue on the primary for PAUSED seconds, so it falls behind honestly; then it is promoted:

  - "module": dbre.rds.rds_dr_drill mode=failover (ansible-playbook, probes every PROBE_INTERVAL s) promotes the first
    replica. It reports rto_seconds (request until a write is acknowledged at the new writer) and rpo.lost_writes (the
    acknowledged probe writes missing on the new writer); its probes are the only writes on the primary.
  - "naive": the usual script on the second replica, with a writer committing one row every 0.1 s on the primary:
    read ReplicaLag from CloudWatch (latest datapoint) as the RPO, PromoteReadReplica, then DescribeDBInstances every
    NAIVE_POLL s until "available" as the RTO. It cannot see which writes were lost.

The lab's truth for each promotion comes from LabControl.replication_log(): writable_at - requested_at (when the
promoted PostgreSQL accepted writes) and lost_total (rows the primary had that the promoted copy does not, counted from
real rows). Targets: the module's RTO within PROBE_INTERVAL + 0.5 s of the truth, its lost writes equal to the lab's.

Run from the repository root:  .venv/bin/python benchmarks/dr_drill.py
It starts its own lab (or uses a running one with LAB_URL and LAB_REUSE=1) and writes benchmarks/output/.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
import psycopg2  # noqa: E402
import yaml  # noqa: E402

from tests.lab.__main__ import lab_env  # noqa: E402
from tests.lab.__main__ import benchmark_lab  # noqa: E402
from tests.lab.control import LabControl  # noqa: E402

sys.path.insert(0, str(ROOT / ".build"))
from ansible_collections.dbre.rds.plugins.module_utils.clock import parse_utc  # noqa: E402

PRIMARY_REGION, DR_REGION = "us-east-1", "us-west-2"
PRIMARY, MODULE_REPLICA, NAIVE_REPLICA = "bench-dr", "bench-dr-module", "bench-dr-naive"
USER, PASSWORD = "master", "bench-pass-1"
PROBE_INTERVAL = 0.25
PAUSED = 4.0        # seconds of writes the replica does not replay before its promotion
NAIVE_POLL = 5.0    # the usual script's describe interval
PROBE_TABLE = "dbre_rds_dr_probe"
OUTPUT = ROOT / "benchmarks" / "output"


def client(url, service, region):
    return boto3.client(service, endpoint_url=url, region_name=region, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def wait_available(rds, identifier, timeout=180):
    deadline = time.monotonic() + timeout
    while True:
        described = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
        if described["DBInstanceStatus"] == "available":
            return described
        if time.monotonic() > deadline:
            raise TimeoutError(f"{identifier} did not become available")
        time.sleep(0.2)


def setup(url):
    east, west = client(url, "rds", PRIMARY_REGION), client(url, "rds", DR_REGION)
    east.create_db_instance(DBInstanceIdentifier=PRIMARY, Engine="postgres", DBInstanceClass="db.t3.micro",
                            AllocatedStorage=20, MasterUsername=USER, MasterUserPassword=PASSWORD,
                            BackupRetentionPeriod=1, DBName="app")
    primary = wait_available(east, PRIMARY)
    replicas = {}
    for replica in (MODULE_REPLICA, NAIVE_REPLICA):
        west.create_db_instance_read_replica(DBInstanceIdentifier=replica, SourceRegion=PRIMARY_REGION,
                                             SourceDBInstanceIdentifier=primary["DBInstanceArn"],
                                             DBInstanceClass="db.t3.micro")
        replicas[replica] = wait_available(west, replica)
    return primary, replicas


def promotion_truth(control, identifier):
    (entry,) = [e for e in control.replication_log() if e["kind"] == "promote" and e["identifier"] == identifier][-1:]
    return {"promotion_seconds": round(entry["writable_at"] - entry["requested_at"], 3),
            "lab_requested_at": entry["requested_at"], "lab_writable_at": entry["writable_at"],
            "lost_writes": entry["lost_total"], "lost_rows": entry["lost_rows"],
            "lag_seconds_at_request": entry.get("lag_seconds_at_request")}


class PauseWhenProbing(threading.Thread):
    """Pause replay on the replica PAUSE_AFTER s after the drill's probe table reached it (a hot standby is readable),
    so the probe writes of the rest of the drill's baseline are never replayed there."""

    PAUSE_AFTER = 1.0

    def __init__(self, control, endpoint, table):
        super().__init__(daemon=True)
        self.control, self.endpoint, self.table = control, endpoint, table
        self.paused_at, self.error = None, None

    def run(self):
        try:
            connection = psycopg2.connect(host=self.endpoint["Address"], port=self.endpoint["Port"], dbname="app",
                                          user=USER, password=PASSWORD, sslmode="require", connect_timeout=5)
            connection.autocommit = True
            deadline = time.monotonic() + 120
            with connection.cursor() as cursor:
                while time.monotonic() < deadline:
                    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (self.table,))
                    if cursor.fetchone()[0]:
                        break
                    time.sleep(0.05)
            connection.close()
            time.sleep(self.PAUSE_AFTER)
            self.control.pause_replay(MODULE_REPLICA, region=DR_REGION)
            self.paused_at = time.time()
        except Exception as exc:  # pylint: disable=broad-except
            self.error = exc


def module_run(url, control, replica):
    """dbre.rds.rds_dr_drill in failover mode on MODULE_REPLICA, replay paused there during its probe baseline."""
    run_dir = OUTPUT / "dr_drill"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    play = [{"name": "DR failover drill", "hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "Fail over to the DR replica and measure",
         "dbre.rds.rds_dr_drill": {
             "mode": "failover", "region": PRIMARY_REGION, "db_instance_identifier": PRIMARY,
             "dr_region": DR_REGION, "dr_instance_identifier": MODULE_REPLICA,
             "login_user": USER, "login_password": PASSWORD, "login_db": "app",
             "probe_interval": PROBE_INTERVAL, "probe_baseline_seconds": PAUSED + PauseWhenProbing.PAUSE_AFTER,
             "probe_table": PROBE_TABLE, "max_lag_seconds": 3600, "fail_on_breach": False,
             "poll_interval": 0.25, "wait_timeout": 300, "report_dir": str(run_dir)},
         "register": "drill"},
        {"name": "Keep the result",
         "ansible.builtin.copy": {"content": "{{ drill | to_nice_json }}", "dest": str(run_dir / "result.json"),
                                  "mode": "0600"}}]}]
    playbook = run_dir / "dr_drill.yml"
    playbook.write_text(yaml.safe_dump(play, sort_keys=False))
    env = dict(os.environ, **lab_env(url), ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build"),
               ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_NOCOLOR="1")
    command = [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), str(playbook), "-i", "localhost,",
               "-c", "local"]
    print(f"$ AWS_ENDPOINT_URL={url} ANSIBLE_COLLECTIONS_PATH={ROOT / '.build'} {shlex.join(command)}", flush=True)
    pauser = PauseWhenProbing(control, replica["Endpoint"], PROBE_TABLE)
    pauser.start()
    started = time.monotonic()
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    pauser.join(timeout=10)
    if done.returncode != 0:
        raise RuntimeError(f"the drill failed:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}")
    if pauser.paused_at is None:
        raise RuntimeError(f"replay was never paused on {MODULE_REPLICA}: {pauser.error}")
    result = json.loads((run_dir / "result.json").read_text())
    measured = result["measurements"]
    return {"rto_seconds": result["rto_seconds"], "lost_writes": result["lost_writes"],
            "requested_at": parse_utc(measured["requested_at"]).timestamp(),
            "writable_at": parse_utc(measured["writable_at"]).timestamp(),
            "rpo_seconds": result["rpo_seconds"],
            "lag_seconds_before": result["measurements"].get("lag_seconds_before"),
            "acknowledged_writes": result["measurements"].get("acknowledged_writes"),
            "wall_seconds": round(time.monotonic() - started, 1), **promotion_truth(control, MODULE_REPLICA)}


class Writer(threading.Thread):
    """One row every 0.1 s on the primary, as an application would write during the naive promotion."""

    def __init__(self, endpoint):
        super().__init__(daemon=True)
        self.endpoint, self.stopped, self.acknowledged = endpoint, threading.Event(), 0

    def run(self):
        connection = psycopg2.connect(host=self.endpoint["Address"], port=self.endpoint["Port"], dbname="app",
                                      user=USER, password=PASSWORD, sslmode="require", connect_timeout=5)
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE IF NOT EXISTS bench_naive (n bigint)")
            while not self.stopped.is_set():
                try:
                    cursor.execute("INSERT INTO bench_naive VALUES (%s)", (self.acknowledged + 1,))
                    self.acknowledged += 1
                except psycopg2.Error:
                    break
                time.sleep(0.1)
        connection.close()


def naive_run(url, control, primary):
    """The usual script: ReplicaLag from CloudWatch, PromoteReadReplica, describe every NAIVE_POLL s."""
    west, cloudwatch = client(url, "rds", DR_REGION), client(url, "cloudwatch", DR_REGION)
    writer = Writer(primary["Endpoint"])
    writer.start()
    time.sleep(1.0)
    control.pause_replay(NAIVE_REPLICA, region=DR_REGION)
    time.sleep(PAUSED)
    now = datetime.datetime.now(datetime.timezone.utc)
    points = cloudwatch.get_metric_statistics(
        Namespace="AWS/RDS", MetricName="ReplicaLag", StartTime=now - datetime.timedelta(minutes=5), EndTime=now,
        Period=60, Statistics=["Maximum"],
        Dimensions=[{"Name": "DBInstanceIdentifier", "Value": NAIVE_REPLICA}])["Datapoints"]
    lag = max(points, key=lambda p: p["Timestamp"])["Maximum"] if points else None
    started = time.monotonic()
    west.promote_read_replica(DBInstanceIdentifier=NAIVE_REPLICA)
    time.sleep(NAIVE_POLL)
    while west.describe_db_instances(DBInstanceIdentifier=NAIVE_REPLICA)["DBInstances"][0][
            "DBInstanceStatus"] != "available":
        time.sleep(NAIVE_POLL)
    reported = round(time.monotonic() - started, 3)
    writer.stopped.set()
    writer.join(timeout=10)
    return {"rto_seconds": reported, "lost_writes": None, "replica_lag_seconds": lag,
            **promotion_truth(control, NAIVE_REPLICA)}


def run(url):
    control = LabControl(url)
    control.reset()
    primary, replicas = setup(url)
    time.sleep(2.0)  # the replicas catch up and the metrics publisher samples their lag once
    return {"module": module_run(url, control, replicas[MODULE_REPLICA]), "naive": naive_run(url, control, primary)}


def print_table(rows):
    module, naive = rows["module"], rows["naive"]
    header = ("approach", "lab: promotion s", "lab: lost writes", "reported RTO s", "RTO error s",
              "reported RPO", "RPO exact")
    print()
    print(" | ".join(header))
    print(" | ".join("-" * len(h) for h in header))
    lines = [
        ("rds_dr_drill", module["promotion_seconds"], module["lost_rows"], module["rto_seconds"],
         f"{module['lost_writes']} lost writes"),
        (f"lag + promote + poll {NAIVE_POLL:g} s", naive["promotion_seconds"], naive["lost_rows"], naive["rto_seconds"],
         f"ReplicaLag {naive['replica_lag_seconds']} s, lost writes unseen"),
    ]
    for name, truth, lost_rows, reported, rpo in lines:
        lost_total = sum((lost_rows or {}).values())
        exact = "yes" if name == "rds_dr_drill" and module["lost_writes"] == lost_total else "no"
        cells = (name, f"{truth:.2f}", str(lost_total), f"{reported:.2f}", f"{reported - truth:+.2f}", rpo, exact)
        print(" | ".join(c.rjust(len(h)) for c, h in zip(cells, header)))
    print()
    print(f"rds_dr_drill's request reached the lab {module['lab_requested_at'] - module['requested_at']:+.3f} s after "
          f"the module timed it; its first write at the new writer was acknowledged "
          f"{module['writable_at'] - module['lab_writable_at']:+.3f} s after the promoted PostgreSQL accepted writes.")
    rto_holds = abs(module["rto_seconds"] - module["promotion_seconds"]) <= PROBE_INTERVAL + 0.5
    rpo_holds = module["lost_writes"] == sum((module["lost_rows"] or {}).values())
    print(f"target: module RTO within probe_interval + 0.5 s = {PROBE_INTERVAL + 0.5:.2f} s of the lab's promotion: "
          f"{'holds' if rto_holds else 'does NOT hold'}; module lost writes = lab's unreplicated writes: "
          f"{'holds' if rpo_holds else 'does NOT hold'}")
    print("lab: promotion: PromoteReadReplica request until the promoted PostgreSQL accepted writes; lost writes: rows")
    print("  the primary had that the promoted copy does not (LabControl.replication_log());")
    print(f"rds_dr_drill: request until a probe write (every {PROBE_INTERVAL:g} s) is acknowledged at the new writer;")
    print("  lost writes: acknowledged probe writes missing there;")
    print(f"naive: ReplicaLag (CloudWatch, latest) as RPO, PromoteReadReplica, DescribeDBInstances every "
          f"{NAIVE_POLL:g} s until available as RTO.")
    return rto_holds and rpo_holds


def main():
    OUTPUT.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with benchmark_lab() as url:
        rows = run(url)
    holds = print_table(rows)
    (OUTPUT / "dr_drill.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"results: {OUTPUT / 'dr_drill.json'} ({time.monotonic() - started:.0f} s)")
    return 0 if holds else 1


if __name__ == "__main__":
    sys.exit(main())
