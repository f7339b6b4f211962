# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What clients see of a failover directly and through RDS Proxy, side by side with the lab's true outage.

One lab, one Multi-AZ instance, one proxy in front of it (RequireTLS, IAM auth: the proxy client signs an RDS IAM
token and checks the certificate with verify-full). For failovers whose PostgreSQL outage is 2, 5 and 10 s, two write
probes of plugins/module_utils/probing.py (every 0.25 s, 2 s timeouts, one connection each, reconnecting after an
error, as rds_failover_test probes) run at the same time, one on the instance's endpoint and one on the proxy's.

The lab's ``dns_propagation`` is set to 5 s (DNS below): the RDS endpoint's DNS record has a 5 s TTL, so after a
failover a direct client resolves the old primary for at least that long after the new writer is up (longer when a
resolver, the OS or the runtime caches beyond the TTL), while RDS Proxy tracks the writer itself. The lab's endpoint
refuses TCP logins that long; the proxy's PgBouncer reaches the new writer over its unix socket at once.

For each path this prints:
  - the client-observed downtime: the longest time a write waited or failed, i.e. the longer of the longest gap
    between two acknowledged writes less the probe interval and the longest single acknowledged write (through the
    proxy no write fails: they wait in the pool),
  - failed probes, the longest single write, and the failover drill's downtime (failover_drill.measure_downtime
    with stall_seconds = the probe timeout, as rds_failover_test measures: first failed or stalled probe to the
    first good write after the last one),
and the lab's truth for each path: the PostgreSQL outage (pg_stopped_at to pg_ready_at, what the proxy path can
see at best) and the endpoint outage (pg_stopped_at to endpoint_ready_at: PostgreSQL outage + dns_propagation).

Run from the repository root:  .venv/bin/python benchmarks/proxy_failover.py
It starts its own lab (or uses a running one with LAB_URL and LAB_REUSE=1) and writes benchmarks/output/.
"""

from __future__ import annotations

import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402

from tests.lab.__main__ import benchmark_lab  # noqa: E402
from tests.lab.control import LabControl  # noqa: E402

sys.path.insert(0, str(ROOT / ".build"))
from ansible_collections.dbre.rds.plugins.module_utils.clock import DrillClock  # noqa: E402
from ansible_collections.dbre.rds.plugins.module_utils.clock import parse_utc  # noqa: E402
from ansible_collections.dbre.rds.plugins.module_utils.failover_drill import measure_downtime  # noqa: E402
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import Connector  # noqa: E402
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import iam_token_signer  # noqa: E402
from ansible_collections.dbre.rds.plugins.module_utils.probing import ProbeLoop  # noqa: E402

OUTAGES = (2.0, 5.0, 10.0)
IDENTIFIER = "bench-proxy"
PROXY = "bench-proxy-front"
USER, PASSWORD = "master", "bench-pass-1"
INTERVAL, TIMEOUT = 0.25, 2
DNS = 5.0  # dns_propagation: the RDS endpoint's DNS TTL (5 s) that direct clients wait out after a failover
OUTPUT = ROOT / "benchmarks" / "output"


def wait_status(describe, status="available", timeout=120):
    deadline = time.monotonic() + timeout
    while True:
        described = describe()
        if described.get("DBInstanceStatus", described.get("Status")) == status:
            return described
        if time.monotonic() > deadline:
            raise TimeoutError(f"not {status} after {timeout} s")
        time.sleep(0.2)


def setup(url):
    kwargs = dict(endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                  aws_secret_access_key="testing")
    rds, secrets, ec2 = (boto3.client(s, **kwargs) for s in ("rds", "secretsmanager", "ec2"))
    rds.create_db_instance(DBInstanceIdentifier=IDENTIFIER, Engine="postgres", DBInstanceClass="db.t3.micro",
                           AllocatedStorage=20, MultiAZ=True, MasterUsername=USER, MasterUserPassword=PASSWORD)
    instance = wait_status(lambda: rds.describe_db_instances(DBInstanceIdentifier=IDENTIFIER)["DBInstances"][0])
    secret = secrets.create_secret(Name=f"{IDENTIFIER}/master", SecretString=json.dumps(
        {"username": USER, "password": PASSWORD}))["ARN"]
    subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"] if s["DefaultForAz"]][:2]
    rds.create_db_proxy(DBProxyName=PROXY, EngineFamily="POSTGRESQL", RoleArn="arn:aws:iam::123456789012:role/bench",
                        VpcSubnetIds=subnets, RequireTLS=True,
                        Auth=[{"AuthScheme": "SECRETS", "SecretArn": secret, "IAMAuth": "REQUIRED"}])
    proxy = wait_status(lambda: rds.describe_db_proxies(DBProxyName=PROXY)["DBProxies"][0])
    rds.register_db_proxy_targets(DBProxyName=PROXY, DBInstanceIdentifiers=[IDENTIFIER])
    return rds, instance, proxy


def connectors(rds, instance, proxy, ca_cert):
    common = {"login_user": USER, "login_db": "postgres", "ssl_mode": "verify-full", "ca_cert": ca_cert}
    direct = Connector(dict(common, login_password=PASSWORD),
                       endpoint=(instance["Endpoint"]["Address"], instance["Endpoint"]["Port"]))
    through_proxy = Connector(dict(common, iam_auth=True), endpoint=(proxy["Endpoint"], 5432),
                              token_signer=iam_token_signer(rds, "us-east-1"))
    return {"direct": direct, "proxy": through_proxy}


def stalls(samples, since):
    """Longest wait for one acknowledged write, and longest gap between two acknowledged writes (seconds)."""
    window = [s for s in samples if s["sent"] >= since - 1.0]
    acked = [s for s in window if s["ok"]]
    longest_wait = max((s["done"] - s["sent"] for s in acked), default=None)
    gaps = [b["done"] - a["done"] for a, b in zip(acked, acked[1:])]
    return round(longest_wait, 3) if longest_wait is not None else None, round(max(gaps, default=0.0), 3)


def waited_or_failed(longest_wait, longest_gap):
    """The longest time a write waited or failed: the longest gap between acknowledgements less the probe
    interval (the time no write got through), or the longest single write, whichever is longer."""
    return round(max(longest_gap - INTERVAL, longest_wait or 0.0), 3)


def _between(failover, start, end):
    return round((parse_utc(failover[end]) - parse_utc(failover[start])).total_seconds(), 3)


def one_failover(rds, control, paths, outage):
    control.set_timing(failover=outage)
    wait_status(lambda: rds.describe_db_instances(DBInstanceIdentifier=IDENTIFIER)["DBInstances"][0])
    clock = DrillClock()
    setup_conn = paths["direct"].connect()
    with setup_conn.cursor() as cursor:
        for name in paths:
            cursor.execute(f"DROP TABLE IF EXISTS bench_{name}")
            cursor.execute(f"CREATE TABLE bench_{name} (seq bigint, written_at timestamptz DEFAULT clock_timestamp())")
    setup_conn.close()
    probes = {name: ProbeLoop(connector, interval=INTERVAL, timeout=TIMEOUT, table=f"bench_{name}", clock=clock)
              for name, connector in paths.items()}
    for probe in probes.values():
        probe.start()
    time.sleep(3)
    requested = clock.elapsed()
    rds.reboot_db_instance(DBInstanceIdentifier=IDENTIFIER, ForceFailover=True)
    control.wait_jobs(timeout=outage + 60)
    time.sleep(3)
    for probe in probes.values():
        probe.stop()
    (failover,) = [f for f in control.failover_log() if f["identifier"] == IDENTIFIER][-1:]
    row = {"lab_outage_seconds": failover["outage_seconds"],
           "dns_propagation_seconds": control.timing()["durations"]["dns_propagation"],
           "lab_recorded_outage_seconds": _between(failover, "started_at", "completed_at"),
           "postgres_down_seconds": _between(failover, "pg_stopped_at", "pg_ready_at"),
           "endpoint_down_seconds": _between(failover, "pg_stopped_at", "endpoint_ready_at"),
           "proxy_paused": failover.get("proxies_paused", {}).get(PROXY),
           "proxy_resumed_after_pg_ready_seconds": round((parse_utc(failover["proxies_resumed_at"][PROXY])
                                                          - parse_utc(failover["pg_ready_at"])).total_seconds(), 3)}
    for name, probe in probes.items():
        samples = probe.samples()
        measured = measure_downtime(samples, requested, stall_seconds=TIMEOUT)
        longest_wait, longest_gap = stalls(samples, requested)
        row[name] = {"waited_or_failed_seconds": waited_or_failed(longest_wait, longest_gap),
                     "drill_downtime_seconds": measured["observed_downtime_seconds"],
                     "probes_sent": len(samples), "probes_failed": sum(1 for s in samples if not s["ok"]),
                     "longest_write_wait_seconds": longest_wait, "longest_gap_between_acks_seconds": longest_gap}
    return row


def run(url):
    control = LabControl(url)
    control.reset()
    control.set_timing(dns_propagation=DNS)
    print(f"dns_propagation = {DNS:g} s: the RDS endpoint's DNS TTL; after a failover a direct client resolves the old"
          " primary at least that long (longer with caches beyond the TTL); RDS Proxy tracks the new writer itself.")
    rds, instance, proxy = setup(url)
    paths = connectors(rds, instance, proxy, control.ca_cert())
    return [one_failover(rds, control, paths, outage) for outage in OUTAGES]


def print_table(rows):
    header = ("outage set s", "dns s", "lab: PostgreSQL down s", "lab: endpoint down s",
              "direct: waited or failed s", "failed", "drill s",
              "proxy: waited or failed s", "failed", "longest write s", "drill s")
    print()
    print(" | ".join(header))
    print(" | ".join("-" * len(h) for h in header))
    for row in rows:
        direct, proxy = row["direct"], row["proxy"]
        cells = (f"{row['lab_outage_seconds']:.1f}", f"{row['dns_propagation_seconds']:.1f}",
                 f"{row['postgres_down_seconds']:.2f}", f"{row['endpoint_down_seconds']:.2f}",
                 _seconds(direct["waited_or_failed_seconds"]), f"{direct['probes_failed']}",
                 _seconds(direct["drill_downtime_seconds"]),
                 _seconds(proxy["waited_or_failed_seconds"]), f"{proxy['probes_failed']}",
                 _seconds(proxy["longest_write_wait_seconds"]), _seconds(proxy["drill_downtime_seconds"]))
        print(" | ".join(c.rjust(len(h)) for c, h in zip(cells, header)))
    print()
    print("lab: PostgreSQL down: pg_stopped_at to pg_ready_at (the truth for the proxy path); endpoint down:")
    print("pg_stopped_at to endpoint_ready_at, PostgreSQL down + dns_propagation (the truth for direct clients);")
    print("waited or failed: the longest time a write waited or failed (longest gap between acknowledged writes")
    print("less the 0.25 s probe interval, or the longest single write); failed: probes that got an error;")
    print("drill: failover_drill.measure_downtime with stall_seconds = the 2 s probe timeout (rds_failover_test's).")


def _seconds(value):
    return "-" if value is None else f"{value:.2f}"


def main():
    OUTPUT.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with benchmark_lab() as url:
        rows = run(url)
    print_table(rows)
    (OUTPUT / "proxy_failover.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"results: {OUTPUT / 'proxy_failover.json'} ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
