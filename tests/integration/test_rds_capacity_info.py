# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rds_capacity_info against the lab: pool sizes proven by opening the connections for real.

One instance (db.t4g.medium on a parameter group with max_connections 60, so the proof opens few connections) is
created once for the file. The module runs once per fleet shape in one playbook (with the master login, so it reads
max_connections and the reserved slots from PostgreSQL); then, for each shape, one thread per application instance
of the deploy surge opens the recommended maximum pool as an ordinary login at the same time, and every connection
must succeed, while the seed's sizing (max_connections / instances, per fleet) is refused by PostgreSQL.

Two more instances (a hot db.m5.large on gp2, a cold db.r5.xlarge on io1) and the first one get canned 14-day
CloudWatch histories (the lab's load_metric_history); one call without a login reads all three: every right-sizing
rule fires on the history made for it and none on the quiet one, and the linear storage line gives days until full
within 5 %.
"""

import time

import pytest

from tests.integration.bad_inputs import mutating_calls
from tests.integration.capacity_support import MAX_CONNECTIONS
from tests.integration.capacity_support import PASSWORD
from tests.integration.capacity_support import create_app_login
from tests.integration.capacity_support import open_pools
from tests.integration.capacity_support import create_capacity_instance
from tests.integration.capacity_support import run_module_tasks

INSTANCE = "it-cap-db"
HOT, COLD = "it-cap-hot", "it-cap-cold"
GIB, MIB = 1024 ** 3, 1024 ** 2

SHAPES = {
    "few_big": [dict(name="web", instances=3, threads=30)],
    "many_small": [dict(name="workers", instances=6, threads=8)],
    "mixed": [dict(name="web", instances=2, threads=20), dict(name="jobs", instances=4, threads=4),
              dict(name="api", instances=10, threads=16, through_proxy=True)],
}


# max_connections 60 - 5 reserved (RDS's defaults without a login) = 55, less 10 % headroom = 49; 40 instances
# doubled during a deploy need 80 connections at one per instance: 31 short, max_connections 91 needed.
TOO_MANY = dict(name="web", instances=40, threads=10)


def run_capacity(lab, tmp_path, calls):
    return run_module_tasks(lab, tmp_path, "rds_capacity_info", calls)


def daily(low, high, noise=0.1, seed=17):
    return dict(pattern="daily", low=low, high=high, noise=noise, seed=seed, days=14, period=900)


def constant(value):
    return dict(pattern="constant", value=value, days=14, period=900)


# Canned 14-day histories (lab.control.load_metric_history; the lab's live samples of these series stop).
# QUIET (on the db.t4g.medium, gp3): moderate everything, no rule may fire. HOT (db.m5.large, gp2 100 GiB,
# autoscaling to 200 GiB): CPU, memory, connections, IOPS and throughput past every limit, storage growing 2 GiB a
# day. COLD (db.r5.xlarge, io1 10,000 IOPS): idle CPU, a tenth of the IOPS used, connections in bursts.
STORAGE_START_GIB, STORAGE_PER_DAY_GIB = 80, -2
HISTORIES = {
    INSTANCE: dict(CPUUtilization=daily(25, 55), FreeableMemory=constant(2 * GIB),
                   DatabaseConnections=daily(10, 30), ReadIOPS=daily(100, 600), WriteIOPS=daily(100, 600),
                   ReadThroughput=daily(5 * MIB, 20 * MIB), WriteThroughput=daily(5 * MIB, 20 * MIB),
                   FreeStorageSpace=constant(90 * GIB)),
    HOT: dict(CPUUtilization=daily(40, 97), FreeableMemory=constant(0.3 * GIB),
              DatabaseConnections=daily(300, 760), ReadIOPS=daily(200, 2000), WriteIOPS=daily(200, 1500),
              ReadThroughput=daily(50 * MIB, 200 * MIB), WriteThroughput=daily(20 * MIB, 100 * MIB),
              FreeStorageSpace=dict(pattern="linear", start=STORAGE_START_GIB * GIB,
                                    per_day=STORAGE_PER_DAY_GIB * GIB, days=14, period=900)),
    COLD: dict(CPUUtilization=daily(2, 10), FreeableMemory=constant(20 * GIB),
               ReadIOPS=daily(100, 500), WriteIOPS=daily(100, 500),
               ReadThroughput=daily(MIB, 5 * MIB), WriteThroughput=daily(MIB, 5 * MIB),
               FreeStorageSpace=constant(150 * GIB)),
}
# The rules each loaded history is made to trigger.
EXPECTED_RULES = {
    INSTANCE: [],
    HOT: ["connections_high", "cpu_high", "gp2_to_gp3", "graviton", "iops_high", "memory_low", "throughput_high"],
    COLD: ["connection_churn", "cpu_low", "graviton", "iops_overprovisioned"],
}


def load_histories(lab):
    for identifier, metrics in HISTORIES.items():
        for metric, spec in metrics.items():
            lab.control.load_metric_history(identifier, metric, spec=spec)
    # COLD's connections: 5 most of the time, a burst of 60 once an hour.
    now = time.time()
    points = [(now - i * 300, 60 if i % 12 == 0 else 5) for i in range(14 * 288)]
    lab.control.load_metric_history(COLD, "DatabaseConnections", points=points)
    return now


@pytest.fixture(scope="module")
def capacity(lab, tmp_path_factory):
    lab.control.reset()
    common = dict(MasterUsername="dbadmin", MasterUserPassword=PASSWORD, Engine="postgres", EngineVersion="15.5")
    rds = lab.client("rds")
    rds.create_db_instance(DBInstanceIdentifier=HOT, DBInstanceClass="db.m5.large", AllocatedStorage=100,
                           StorageType="gp2", MaxAllocatedStorage=200, **common)
    rds.create_db_instance(DBInstanceIdentifier=COLD, DBInstanceClass="db.r5.xlarge", AllocatedStorage=200,
                           StorageType="io1", Iops=10000, **common)
    create_capacity_instance(lab, INSTANCE, wait=False)
    for identifier in (INSTANCE, HOT, COLD):
        rds.get_waiter("db_instance_available").wait(DBInstanceIdentifier=identifier,
                                                     WaiterConfig={"Delay": 1, "MaxAttempts": 300})
    instance = rds.describe_db_instances(DBInstanceIdentifier=INSTANCE)["DBInstances"][0]
    loaded_at = load_histories(lab)
    create_app_login(instance)
    common = dict(db_instance_identifiers=[INSTANCE], lookback_days=1, login_user="dbadmin", login_password=PASSWORD,
                  login_db="postgres", headroom_percent=10, surge_percent=100)
    calls = {name: dict(common, app_fleets=fleets) for name, fleets in SHAPES.items()}
    report_dir = tmp_path_factory.mktemp("reports")
    # Without a login: the budget from the parameter groups, and the right-sizing of all three in one call.
    calls["sizing"] = dict(db_instance_identifiers=[INSTANCE, HOT, COLD], lookback_days=14, report_dir=str(report_dir),
                           report_name="capacity", app_fleets=SHAPES["few_big"])
    # A fleet that cannot fit at all (without a login): a finding with the shortfall, not a failure.
    calls["cannot_fit"] = dict(db_instance_identifiers=[INSTANCE], lookback_days=1, report_dir=str(report_dir),
                               report_name="cannot-fit", app_fleets=[TOO_MANY])
    since = time.time()
    results = run_capacity(lab, tmp_path_factory.mktemp("capacity"), calls)
    yield dict(instance=instance, results=results, report_dir=report_dir, loaded_at=loaded_at,
               mutating=mutating_calls(lab, since))
    lab.control.reset()


def test_budget_read_from_postgres(capacity):
    result = capacity["results"]["few_big"]
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False
    (item,) = result["instances"]
    conn = item["connections"]
    assert conn["max_connections"] == MAX_CONNECTIONS and conn["max_connections_source"] == "running-value"
    # The lab's PostgreSQL reserves superuser_reserved_connections (3); it has no rds.rds_superuser_reserved_*.
    assert conn["reserved"] == dict(superuser_reserved_connections=3, rds_superuser_reserved_connections=0, total=3)
    assert (conn["usable"], conn["budget"]) == (57, 51)
    assert conn["now"] is not None and conn["now_source"] == "database"
    assert item["instance_class"] == "db.t4g.medium" and item["vcpus"] == 2


def test_without_a_login_the_group_and_rds_defaults_are_used(capacity):
    result = capacity["results"]["sizing"]
    assert not result.get("failed"), result.get("msg")
    conn = result["instances"][0]["connections"]
    assert conn["max_connections"] == MAX_CONNECTIONS and conn["max_connections_source"] == "parameter-group"
    # RDS's defaults: 3 + 2 reserved, so the plan is more careful than with the server's own figures.
    assert conn["reserved"]["total"] == 5 and conn["budget"] == 49


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_recommended_pools_connect_and_naive_ones_are_refused(capacity, shape):
    result = capacity["results"][shape]
    assert not result.get("failed"), result.get("msg")
    pools = result["instances"][0]["pools"]
    endpoint = capacity["instance"]["Endpoint"]
    direct = [f for f in pools["fleets"] if not f["through_proxy"]]
    assert pools["deploy_surge"]["fits"] and pools["failover"]["fits"]
    # Every direct fleet at its deploy peak, each instance with its recommended maximum pool, all at once.
    peak = sum(f["peak_instances"] * f["pool_max"] for f in direct)
    assert peak == pools["deploy_surge"]["connections"] <= pools["budget"]["budget"]
    opened, refused, other = open_pools(endpoint["Address"], endpoint["Port"],
                                        [f["pool_max"] for f in direct for _unused in range(f["peak_instances"])])
    assert other == [] and refused == []
    assert opened == peak

    # The seed's sizing for the same fleets, in normal operation (no deploy): PostgreSQL refuses some.
    naive_total = sum(f["instances"] * f["naive_pool_size"] for f in direct)
    assert naive_total == pools["totals"]["naive_total"] > pools["budget"]["usable"]
    opened, refused, other = open_pools(endpoint["Address"], endpoint["Port"],
                                        [f["naive_pool_size"] for f in direct for _unused in range(f["instances"])])
    assert other == []
    assert refused, f"the naive sizing ({naive_total} connections) should exhaust {MAX_CONNECTIONS} slots"
    assert opened <= pools["budget"]["usable"] and opened + len(refused) == naive_total


def test_proxied_fleet_takes_nothing_from_the_budget(capacity):
    pools = capacity["results"]["mixed"]["instances"][0]["pools"]
    api = next(f for f in pools["fleets"] if f["name"] == "api")
    assert api["through_proxy"] and api["database_connections"] == 0 and api["pool_max"] == 16
    left = pools["budget"]["budget"] - pools["deploy_surge"]["connections"]
    assert pools["proxy_max_connections_percent"] == left * 100 // MAX_CONNECTIONS


def _sizing(capacity):
    result = capacity["results"]["sizing"]
    assert not result.get("failed"), result.get("msg")
    return {item["db_instance_identifier"]: item for item in result["instances"]}


@pytest.mark.parametrize("identifier", [INSTANCE, HOT, COLD])
def test_each_rule_fires_on_its_history_and_none_on_a_quiet_one(capacity, identifier):
    item = _sizing(capacity)[identifier]
    assert sorted(r["name"] for r in item["recommendations"]) == EXPECTED_RULES[identifier], item["metrics"]
    for rec in item["recommendations"]:
        assert rec["triggered_by"] and rec["advice"] and rec["suggested"]
    assert item["metrics"]["cpu_percentile_source"] == "cloudwatch"


def test_recommendations_carry_the_numbers_that_triggered_them(capacity):
    hot = {r["name"]: r for r in _sizing(capacity)[HOT]["recommendations"]}
    assert hot["cpu_high"]["suggested"] == "db.m5.xlarge" and hot["cpu_high"]["triggered_by"]["cpu_p95"] > 80
    assert hot["memory_low"]["suggested"] == "db.r5.large"
    assert hot["memory_low"]["triggered_by"]["freeable_memory_min_bytes"] == int(0.3 * GIB)
    assert hot["graviton"]["suggested"] == "db.m6g.large"
    assert hot["connections_high"]["triggered_by"]["connections_max"] >= 700
    assert hot["iops_high"]["triggered_by"]["baseline_iops"] == 300
    cold = {r["name"]: r for r in _sizing(capacity)[COLD]["recommendations"]}
    assert cold["cpu_low"]["suggested"] == "db.r5.large"
    assert cold["connection_churn"]["triggered_by"]["connections_max"] == 60
    assert cold["iops_overprovisioned"]["triggered_by"]["provisioned_iops"] == 10000


def test_linear_growth_gives_days_until_full_within_five_percent(capacity):
    forecast = _sizing(capacity)[HOT]["storage"]["forecast"]
    free_now_gib = STORAGE_START_GIB + STORAGE_PER_DAY_GIB * (14 * 86400 - 900) / 86400
    expected_full = free_now_gib / -STORAGE_PER_DAY_GIB
    expected_ceiling = (200 - (100 - free_now_gib)) / -STORAGE_PER_DAY_GIB
    assert forecast["growth_gib_per_day"] == pytest.approx(-STORAGE_PER_DAY_GIB, rel=0.05)
    assert forecast["days_until_full"] == pytest.approx(expected_full, rel=0.05)
    assert forecast["days_until_max_allocated"] == pytest.approx(expected_ceiling, rel=0.05)
    assert forecast["days_until_out_of_space"] == forecast["days_until_max_allocated"]
    quiet = _sizing(capacity)[INSTANCE]["storage"]["forecast"]
    assert quiet["days_until_full"] is None and quiet["growth_gib_per_day"] == 0


def test_report_is_written_and_readable(capacity):
    result = capacity["results"]["sizing"]
    assert result["api_calls"]["GetMetricData"] == 2  # the lookback, and the last hour's connections
    markdown = (capacity["report_dir"] / "capacity.md").read_text()
    (line,) = [row for row in markdown.splitlines() if row.startswith("| it-cap-hot recommendations |")]
    assert sorted(line.strip("| ").split(" | ")[1].split(", ")) == EXPECTED_RULES[HOT]
    assert "| it-cap-db pool web | 2..8 per instance (naive 20) |" in markdown
    assert "| it-cap-hot days until out of space |" in markdown


def test_a_fleet_that_cannot_fit_is_a_finding_that_says_by_how_much(capacity):
    result = capacity["results"]["cannot_fit"]
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False and capacity["mutating"] == []
    pools = result["instances"][0]["pools"]
    assert pools["fits"] is False and pools["budget"]["budget"] == 49
    assert (pools["needed"], pools["shortfall"], pools["max_connections_needed"]) == (80, 31, 91)
    assert "exceed the budget of 49 by 31" in pools["problem"]
    assert "RDS Proxy" in pools["recommendation"] and "at least 91 connections" in pools["recommendation"]
    (web,) = pools["fleets"]
    assert (web["pool_min"], web["pool_max"], web["database_connections_during_deploy"]) == (1, 1, 80)
    assert any("exceed the budget of 49 by 31" in w for w in result.get("warnings") or [])
    # The report: a failed objective saying by how much, and the shortfall and what to do in its figures.
    report = result["report"]
    (objective,) = report["objectives"]
    assert report["passed"] is False and objective["held"] is False
    assert (objective["objective"], objective["observed"]) == (49, 80) and "short by 31" in objective["name"]
    markdown = (capacity["report_dir"] / "cannot-fit.md").read_text()
    assert "| it-cap-db pools shortfall | 31 connections over the budget of 49 (needs 80) |" in markdown
    assert "at least 91 connections" in markdown and "short by 31 connections" in markdown
    junit = (capacity["report_dir"] / "cannot-fit.xml").read_text()
    assert "short by 31" in junit and "<failure" in junit
