# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbre.rds.rds_capacity_info on the lab: pool sizes against the connections PostgreSQL really gives, and its cost.

Part 1, pools. One db.t4g.medium whose parameter group sets max_connections 60 (the lab runs the group's value). For
each fleet shape, rds_capacity_info (with the master login: max_connections and the reserved slots read from the
database) gives each fleet's pool; then one thread per application instance opens its pool at the same time as an
ordinary login, holding every connection until all have tried, for

- the seed's formula (max_connections / instances per fleet, normal fleet size),
- this module's pool_max at the normal fleet size, and
- this module's pool_max during a deploy (surge_percent 100: every fleet doubled),

and the connections obtained and refused ("too many clients" / "remaining connection slots are reserved") are
counted. Part 2, cost. One call for 1, 10 and 50 instances, each with 14 days of CloudWatch history for seven
metrics (loaded through the lab's control API, one point an hour): the AWS calls by operation (the module's
api_calls, checked against the lab's call log) and the module's wall time. The 10 and 50 instances beyond the first
are created with engine mysql, which the lab runs no database for (50 PostgreSQL servers would not fit a small
machine); the module's reads do not depend on the engine.

    .venv/bin/python benchmarks/capacity.py [--instances 1 10 50] [--lab-url URL]

Without --lab-url (or LAB_URL) a private lab is started and stopped.

One run on 2026-11-30, on a 2-core machine shared with other jobs (load average 9 to 11, so wall times are several
times a quiet machine's):

    Pools on db.t4g.medium, max_connections 60 (the group's), reserved 3, headroom 10 %, surge 100 %
    fleet shape                fleet    seed pool module pool | sizing                 asked obtained refused
    --------------------------------------------------------------------------------------------------------------
    3 x 30 threads             web             20        2..8 |
                                                              | seed formula              60       57       3
                                                              | module, normal fleet      24       24       0
                                                              | module, during deploy     48       48       0
    6 x 8 workers              workers         10        1..4 |
                                                              | seed formula              60       57       3
                                                              | module, normal fleet      24       24       0
                                                              | module, during deploy     48       48       0
    2 x 20 + 4 x 4 (+ proxy)   web             30        2..8 |
    2 x 20 + 4 x 4 (+ proxy)   jobs            15        1..2 |
    2 x 20 + 4 x 4 (+ proxy)   api              6       4..16 | (through RDS Proxy: no database connections)
                                                              | seed formula             120       57      63
                                                              | module, normal fleet      24       24       0
                                                              | module, during deploy     48       48       0

    Cost of one call (lookback 14 days, 7 metrics of one point an hour per instance)
    instances API calls  by operation                                                 lab log  wall s
    ----------------------------------------------------------------------------------------------------
            1         7  DescribeDBInstances 1, DescribeDBParameters 4, GetMetricData 2       7     8.5
           10        17  DescribeDBInstances 10, DescribeDBParameters 5, GetMetricData 2      17    16.0
           50        58  DescribeDBInstances 50, DescribeDBParameters 5, GetMetricData 3      58    22.8

The seed's formula asks for every slot of max_connections, and PostgreSQL refuses what the 3 reserved slots hold back
(more with several fleets, each sized as if alone); the module's pools fit even with every fleet doubled. The calls
grow by one DescribeDBInstances per instance; DescribeDBParameters is read once per parameter group (each page counts:
the lab's groups list about 4 pages), and GetMetricData once per 45 instances plus one for the last hour's connections.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time
import types

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.capacity_support import PASSWORD  # noqa: E402
from tests.integration.capacity_support import create_app_login  # noqa: E402
from tests.integration.capacity_support import create_capacity_instance  # noqa: E402
from tests.integration.capacity_support import open_pools  # noqa: E402
from tests.integration.capacity_support import run_module_tasks  # noqa: E402
from tests.lab.__main__ import lab_env, start_daemon, stop_daemon  # noqa: E402
from tests.lab.control import LabControl  # noqa: E402

SHAPES = {
    "3 x 30 threads": [dict(name="web", instances=3, threads=30)],
    "6 x 8 workers": [dict(name="workers", instances=6, threads=8)],
    "2 x 20 + 4 x 4 (+ proxy)": [dict(name="web", instances=2, threads=20), dict(name="jobs", instances=4, threads=4),
                                 dict(name="api", instances=10, threads=16, through_proxy=True)],
}
METRICS = ("CPUUtilization", "FreeableMemory", "DatabaseConnections", "ReadIOPS", "WriteIOPS", "ReadThroughput",
           "FreeStorageSpace")


class BenchLab(types.SimpleNamespace):
    def client(self, service="rds", region="us-east-1"):
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint_url, region_name=region, aws_access_key_id="testing",
                            aws_secret_access_key="testing")


def pools(lab, workdir):
    instance = create_capacity_instance(lab, "bench-cap-db")
    create_app_login(instance)
    address, port = instance["Endpoint"]["Address"], instance["Endpoint"]["Port"]
    login = dict(login_user="dbadmin", login_password=PASSWORD, login_db="postgres")
    results = run_module_tasks(lab, workdir, "rds_capacity_info", {
        name: dict(db_instance_identifiers=["bench-cap-db"], lookback_days=1, app_fleets=fleets, **login)
        for name, fleets in SHAPES.items()})
    print("\nPools on db.t4g.medium, max_connections 60 (the group's), reserved 3, headroom 10 %, surge 100 %")
    print(f"{'fleet shape':26} {'fleet':8} {'seed pool':>9} {'module pool':>11} | {'sizing':22} {'asked':>5} "
          f"{'obtained':>8} {'refused':>7}")
    print("-" * 110)
    for name in SHAPES:
        result = results[name]
        if result.get("failed"):
            print(f"{name}: {result.get('msg')}")
            continue
        plan = result["instances"][0]["pools"]
        direct = [f for f in plan["fleets"] if not f["through_proxy"]]
        for fleet in plan["fleets"]:
            print(f"{name:26} {fleet['name']:8} {fleet['naive_pool_size']:>9} "
                  f"{str(fleet['pool_min']) + '..' + str(fleet['pool_max']):>11} |"
                  + (" (through RDS Proxy: no database connections)" if fleet["through_proxy"] else ""))
        for label, sizes in (
                ("seed formula", [f["naive_pool_size"] for f in direct for _unused in range(f["instances"])]),
                ("module, normal fleet", [f["pool_max"] for f in direct for _unused in range(f["instances"])]),
                ("module, during deploy", [f["pool_max"] for f in direct for _unused in range(f["peak_instances"])])):
            opened, refused, other = open_pools(address, port, sizes)
            print(f"{'':26} {'':8} {'':>9} {'':>11} | {label:22} {sum(sizes):>5} {opened:>8} {len(refused):>7}"
                  + (f"  other errors: {other[:1]}" if other else ""))


def cost(lab, control, workdir, counts):
    rds = lab.client()
    made = ["bench-cap-db"]
    now = time.time()
    print(f"\nCost of one call (lookback 14 days, {len(METRICS)} metrics of one point an hour per instance)")
    print(f"{'instances':>9} {'API calls':>9}  {'by operation':60} {'lab log':>7} {'wall s':>7}")
    print("-" * 100)
    for count in counts:
        while len(made) < count:
            identifier = f"bench-cap-{len(made):02d}"
            rds.create_db_instance(DBInstanceIdentifier=identifier, DBInstanceClass="db.r6g.large", Engine="mysql",
                                   AllocatedStorage=100, StorageType="gp3", MasterUsername="admin",
                                   MasterUserPassword=PASSWORD)
            made.append(identifier)
        for identifier in made[:count]:
            for metric in METRICS:
                control.load_metric_history(identifier, metric, spec=dict(
                    pattern="daily", low=10, high=60, days=14, period=3600, end=now))
        control.clear_calls()
        started = time.monotonic()
        result = run_module_tasks(lab, workdir, "rds_capacity_info", {
            "cost": dict(db_instance_identifiers=made[:count], lookback_days=14)})["cost"]
        wall = time.monotonic() - started
        if result.get("failed"):
            print(f"{count:>9}: {result.get('msg')}")
            continue
        logged = [c for c in control.calls() if "rds_capacity_info" in str(c.get("user_agent", ""))]
        calls = result["api_calls"]
        ops = ", ".join(f"{k} {v}" for k, v in sorted(calls.items()))
        print(f"{count:>9} {sum(calls.values()):>9}  {ops:60} {len(logged):>7} {wall:>7.1f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--lab-url", default=os.environ.get("LAB_URL"))
    args = parser.parse_args()
    state_dir, process = None, None
    url = args.lab_url
    if not url:
        state_dir = pathlib.Path(tempfile.mkdtemp(prefix="dbre-bench-lab-"))
        process, info = start_daemon(state_dir, parent_pid=os.getpid())
        url = info["url"]
    try:
        control = LabControl(url)
        control.reset()
        lab = BenchLab(endpoint_url=url, env=lab_env(url), control=control)
        with tempfile.TemporaryDirectory(prefix="dbre-bench-") as scratch:
            pools(lab, pathlib.Path(scratch))
            cost(lab, control, pathlib.Path(scratch), sorted(args.instances))
        control.reset()
    finally:
        if state_dir is not None:
            stop_daemon(state_dir, process.pid if process else None)


if __name__ == "__main__":
    main()
