# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How close is each way of timing a failover to the outage clients really had?

For lab failovers whose PostgreSQL outage is 2, 5 and 10 s, this prints side by side:
  - the true outage (what the lab was told to do, and what it recorded),
  - dbre.rds.rds_failover_test's observed_downtime_seconds (probes every 0.25 s) and its api_failover_seconds,
  - what the usual status poller reports: reboot, then describe_db_instances every 5 s until "available", measured
    for real by a thread that starts at the failover call and polls the lab exactly that way.

Run from the repository root:  .venv/bin/python benchmarks/failover_accuracy.py
It starts its own lab (or uses a running one with LAB_URL and LAB_REUSE=1) and writes benchmarks/output/.
"""

from __future__ import annotations

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
import yaml  # noqa: E402

from tests.lab.__main__ import lab_env  # noqa: E402
from tests.lab.__main__ import benchmark_lab  # noqa: E402
from tests.lab.control import LabControl  # noqa: E402

sys.path.insert(0, str(ROOT / ".build"))
from ansible_collections.dbre.rds.plugins.module_utils.clock import parse_utc  # noqa: E402

OUTAGES = (2.0, 5.0, 10.0)
IDENTIFIER = "bench-failover"
PASSWORD = "bench-pass-1"
POLLER_INTERVAL = 5.0
OUTPUT = ROOT / "benchmarks" / "output"


class StatusPoller(threading.Thread):
    """The usual failover test: after the reboot call, describe every 5 s until the status is available again."""

    def __init__(self, control, rds):
        super().__init__(daemon=True)
        self.control, self.rds = control, rds
        self.reported = None
        self.error = None

    def run(self):
        try:
            deadline = time.monotonic() + 300
            while not self.control.calls(action="RebootDBInstance"):
                if time.monotonic() > deadline:
                    raise TimeoutError("no failover call seen")
                time.sleep(0.02)
            requested = time.monotonic()
            while True:
                time.sleep(POLLER_INTERVAL)
                described = self.rds.describe_db_instances(DBInstanceIdentifier=IDENTIFIER)["DBInstances"][0]
                if described["DBInstanceStatus"] == "available":
                    self.reported = round(time.monotonic() - requested, 3)
                    return
        except Exception as exc:  # pylint: disable=broad-except
            self.error = exc


def playbook(report_dir):
    return [{
        "name": "Failover accuracy benchmark",
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {"name": "Failover drill", "register": "drill", "dbre.rds.rds_failover_test": {
                "db_instance_identifier": IDENTIFIER, "login_user": "master", "login_password": PASSWORD,
                "probe_interval": 0.25, "probe_settle_seconds": 1, "poll_interval": 0.25, "wait_timeout": 120,
                "report_dir": str(report_dir)}},
            {"name": "Save the result", "ansible.builtin.copy": {
                "content": "{{ drill | to_nice_json }}", "dest": str(report_dir / "result.json")}},
        ],
    }]


def wait_available(rds):
    deadline = time.monotonic() + 120
    while True:
        described = rds.describe_db_instances(DBInstanceIdentifier=IDENTIFIER)["DBInstances"][0]
        if described["DBInstanceStatus"] == "available":
            return described
        if time.monotonic() > deadline:
            raise TimeoutError(f"{IDENTIFIER} did not become available")
        time.sleep(0.2)


def run(url):
    env = dict(os.environ, **lab_env(url), ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build"),
               ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_NOCOLOR="1")
    control = LabControl(url)
    rds = boto3.client("rds", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    control.reset()
    rds.create_db_instance(DBInstanceIdentifier=IDENTIFIER, Engine="postgres", DBInstanceClass="db.t3.micro",
                           AllocatedStorage=20, MultiAZ=True, MasterUsername="master", MasterUserPassword=PASSWORD)
    wait_available(rds)
    rows = []
    for outage in OUTAGES:
        control.set_timing(failover=outage)
        control.clear_calls()
        wait_available(rds)
        run_dir = OUTPUT / f"outage-{outage:g}s"
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        play = run_dir / "failover_accuracy.yml"
        play.write_text(yaml.safe_dump(playbook(run_dir), sort_keys=False))
        command = [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), str(play), "-i", "localhost,",
                   "-c", "local"]
        print(f"$ AWS_ENDPOINT_URL={url} ANSIBLE_COLLECTIONS_PATH={ROOT / '.build'} {shlex.join(command)}",
              flush=True)
        poller = StatusPoller(control, rds)
        poller.start()
        done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600,
                              check=False)
        if done.returncode != 0:
            raise RuntimeError(f"the drill failed:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}")
        poller.join(timeout=120)
        if poller.error:
            raise RuntimeError(f"the status poller failed: {poller.error}")
        result = json.loads((run_dir / "result.json").read_text())
        measured = result["measurements"]
        (failover,) = [f for f in control.failover_log() if f["identifier"] == IDENTIFIER][-1:]
        recorded = (parse_utc(failover["completed_at"]) - parse_utc(failover["started_at"])).total_seconds()
        rows.append({
            "lab_outage_seconds": failover["outage_seconds"],
            "lab_recorded_outage_seconds": round(recorded, 3),
            "observed_downtime_seconds": measured["observed_downtime_seconds"],
            "api_failover_seconds": measured["api_failover_seconds"],
            "status_poller_seconds": poller.reported,
            "probes_sent": measured["probes_sent"],
            "lost_writes": measured["lost_writes"],
            "failover_happened": measured["failover_happened"],
        })
    return rows


def print_table(rows):
    header = ("lab outage set s", "lab outage recorded s", "rds_failover_test observed s", "error s",
              "status poll every 5 s", "error s", "module API view s")
    print()
    print(" | ".join(header))
    print(" | ".join("-" * len(h) for h in header))
    for row in rows:
        true = row["lab_recorded_outage_seconds"]
        observed, poller = row["observed_downtime_seconds"], row["status_poller_seconds"]
        cells = (f"{row['lab_outage_seconds']:.1f}", f"{true:.2f}", f"{observed:.2f}", f"{observed - true:+.2f}",
                 f"{poller:.2f}", f"{poller - true:+.2f}", f"{row['api_failover_seconds']:.2f}")
        print(" | ".join(c.rjust(len(h)) for c, h in zip(cells, header)))
    print()
    print("lab outage recorded: from the lab's failover-started mark to completed (PostgreSQL stopped, kept down for")
    print("  the set time, started and ready); errors are against it;")
    print("observed: first failed probe to first successful write after (probes every 0.25 s, client view);")
    print("status poll: reboot, then describe_db_instances every 5 s until available (API view, 5 s resolution);")
    print("module API view: the same status seen by the module's own describe every 0.25 s.")


def main():
    OUTPUT.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with benchmark_lab() as url:
        rows = run(url)
    print_table(rows)
    (OUTPUT / "failover_accuracy.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"results: {OUTPUT / 'failover_accuracy.json'} ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
