# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
import pytest

from ansible_collections.dbre.rds.plugins.module_utils import capacity

GIB = 1024 ** 3
MIB = 1024 ** 2
DAY = 86400


def _fleet(name, instances, threads, through_proxy=False, min_pool=None):
    return dict(name=name, instances=instances, threads=threads, through_proxy=through_proxy, min_pool=min_pool)


@pytest.mark.parametrize("superuser, rds, total", [(None, None, 5), (3, 0, 3), (5, 2, 7), (0, 0, 0)])
def test_reserved_slots(superuser, rds, total):
    assert capacity.reserved_slots(superuser, rds)["total"] == total


@pytest.mark.parametrize("max_connections, reserved, headroom, usable, budget", [
    (60, 3, 10, 57, 51),
    (60, 5, 0, 55, 55),
    (5000, 5, 20, 4995, 3996),
    (4, 5, 10, 0, 0),
])
def test_connection_budget(max_connections, reserved, headroom, usable, budget):
    got = capacity.connection_budget(max_connections, reserved, headroom)
    assert (got["usable"], got["budget"]) == (usable, budget)
    assert got["headroom"] == usable - budget


@pytest.mark.parametrize("instances, surge, peak", [(3, 100, 6), (3, 0, 3), (3, 50, 5), (1, 25, 2)])
def test_surge_instances(instances, surge, peak):
    assert capacity.surge_instances(instances, surge) == peak


# (max_connections, reserved, fleets, headroom, surge) -> pool_max per fleet; every plan keeps the surge total in budget
@pytest.mark.parametrize("max_connections, reserved, fleets, headroom, surge, expected", [
    # one fleet, budget-limited: 51 // 6 peak instances = 8
    (60, 3, [_fleet("web", 3, 20)], 10, 100, {"web": 8}),
    # one fleet, thread-limited: never more connections than threads
    (600, 3, [_fleet("web", 3, 10)], 10, 100, {"web": 10}),
    # no surge: 51 // 3
    (60, 3, [_fleet("web", 3, 20)], 10, 0, {"web": 17}),
    # two fleets in proportion to their threads, the leftover handed out
    (60, 3, [_fleet("web", 2, 20), _fleet("jobs", 2, 4)], 10, 100, {"web": 10, "jobs": 2}),
    # a fleet behind RDS Proxy does not take from the direct budget
    (60, 3, [_fleet("web", 3, 20), _fleet("api", 10, 50, through_proxy=True)], 10, 100, {"web": 8, "api": 50}),
])
def test_plan_pools(max_connections, reserved, fleets, headroom, surge, expected):
    plan = capacity.plan_pools(max_connections, reserved, fleets, headroom, surge)
    assert {f["name"]: f["pool_max"] for f in plan["fleets"]} == expected
    assert plan["fits"] and plan["shortfall"] == 0 and plan["problem"] is None and plan["recommendation"] is None
    assert plan["max_connections_needed"] is None
    assert plan["deploy_surge"]["connections"] <= plan["budget"]["budget"]
    assert plan["failover"]["fits"]
    for fleet in plan["fleets"]:
        assert 1 <= fleet["pool_min"] <= fleet["pool_max"]


def test_plan_pools_beats_the_naive_formula_where_it_overcommits():
    plan = capacity.plan_pools(60, 3, [_fleet("web", 3, 30)], 10, 100)
    (web,) = plan["fleets"]
    assert web["naive_pool_size"] == 20 and web["naive_total"] == 60
    assert plan["totals"]["naive_total"] > plan["budget"]["usable"]
    assert not plan["deploy_surge"]["naive_fits"] and plan["deploy_surge"]["fits"]


def test_plan_pools_says_by_how_much_a_fleet_cannot_fit():
    plan = capacity.plan_pools(60, 3, [_fleet("web", 40, 10)], 10, 100)
    assert not plan["fits"]
    assert plan["shortfall"] == 80 - 51
    assert "exceed the budget of 51 by 29" in plan["problem"] and "RDS Proxy" in plan["problem"]
    assert "at least 89 connections" in plan["problem"]
    # A finding, not an error: the plan is whole, every pool its min_pool, and it says what to do.
    assert plan["needed"] == 80 and plan["max_connections_needed"] == 89
    assert plan["recommendation"] in plan["problem"] and "at least 89 connections" in plan["recommendation"]
    assert [(f["pool_min"], f["pool_max"]) for f in plan["fleets"]] == [(1, 1)]
    assert not plan["deploy_surge"]["fits"] and plan["deploy_surge"]["connections"] == 80


def test_plan_pools_min_pool_counts_toward_fitting():
    plan = capacity.plan_pools(100, 5, [_fleet("web", 5, 20, min_pool=10)], 0, 100)
    assert plan["shortfall"] == 5 and not plan["fits"]


def test_proxy_share_is_what_the_direct_fleets_leave():
    plan = capacity.plan_pools(100, 5, [_fleet("web", 2, 5), _fleet("api", 4, 50, through_proxy=True)], 10, 100)
    # budget 85; web 5 x 4 peak = 20; 65 left = 65 % of max_connections
    assert plan["proxy_max_connections_percent"] == 65


@pytest.mark.parametrize("values, share, expected", [
    ([], 0.5, None), ([7], 0.95, 7.0), ([1, 2, 3, 4, 5], 0.5, 3.0), (list(range(101)), 0.95, 95.0),
    ([10, 0], 0.5, 5.0),
])
def test_percentile(values, share, expected):
    assert capacity.percentile(values, share) == expected


def test_sum_series_keeps_common_timestamps():
    assert capacity.sum_series([(1, 1), (2, 2)], [(2, 10), (3, 1)]) == [(2, 12)]


@pytest.mark.parametrize("growth_gib_per_day, free_gib, allocated, max_allocated, full, ceiling", [
    (1.0, 50, 100, None, 50.0, None),
    (2.0, 50, 100, 200, 25.0, 75.0),
    (0.5, 10, 20, None, 20.0, None),
])
def test_storage_forecast_linear(growth_gib_per_day, free_gib, allocated, max_allocated, full, ceiling):
    now = 1_700_000_000
    series = [(now - d * DAY, (free_gib + growth_gib_per_day * d) * GIB) for d in range(14, -1, -1)]
    got = capacity.storage_forecast(series, allocated, max_allocated)
    assert got["growth_gib_per_day"] == pytest.approx(growth_gib_per_day, rel=1e-6)
    assert got["days_until_full"] == pytest.approx(full, rel=0.01)
    assert got["days_until_max_allocated"] == (None if ceiling is None else pytest.approx(ceiling, rel=0.01))
    assert got["days_until_out_of_space"] == pytest.approx(ceiling or full, rel=0.01)


@pytest.mark.parametrize("series", [[], [(1, 5 * GIB)], [(t, 5 * GIB) for t in range(0, 10 * DAY, DAY)],
                                    [(t * DAY, (5 + t) * GIB) for t in range(10)]])
def test_storage_forecast_without_growth_says_nothing(series):
    got = capacity.storage_forecast(series, 20, 100)
    assert got["days_until_full"] is None and got["days_until_max_allocated"] is None


@pytest.mark.parametrize("instance, iops, tput", [
    (dict(StorageType="gp3", AllocatedStorage=100), 3000, 125),
    (dict(StorageType="gp3", AllocatedStorage=100, Iops=6000, StorageThroughput=250), 6000, 250),
    (dict(StorageType="gp3", AllocatedStorage=500), 12000, 500),
    (dict(StorageType="gp2", AllocatedStorage=20), 100, 250),
    (dict(StorageType="gp2", AllocatedStorage=500), 1500, 250),
    (dict(StorageType="io1", AllocatedStorage=100, Iops=10000), 10000, None),
    (dict(StorageType="aurora", Engine="aurora-postgresql"), None, None),
])
def test_storage_baseline(instance, iops, tput):
    got = capacity.storage_baseline(instance)
    assert (got["iops"], got["throughput_mibps"]) == (iops, tput)


@pytest.mark.parametrize("instance_class, step, expected", [
    ("db.r6g.large", 1, "db.r6g.xlarge"), ("db.r6g.large", -1, None), ("db.m5.24xlarge", 1, None),
    ("db.m6g.16xlarge", -1, "db.m6g.12xlarge"), ("db.t3.micro", 1, "db.t3.small"), ("nonsense", 1, None),
])
def test_neighbour_class(instance_class, step, expected):
    assert capacity.neighbour_class(instance_class, step) == expected


QUIET = dict(cpu_p50=35.0, cpu_p95=55.0, freeable_memory_min=6 * GIB, connections_max=40, connections_p50=30,
             iops_p95=900.0, throughput_p95=30 * MIB)
R6G_XL = dict(DBInstanceClass="db.r6g.xlarge", StorageType="gp3", AllocatedStorage=100, Engine="postgres")
R6G_XL_SIZING = dict(memory_bytes=32 * GIB, vcpus=4)


def _names(found):
    return sorted(r["name"] for r in found)


@pytest.mark.parametrize("instance, changes, expected, suggested", [
    (R6G_XL, {}, [], {}),
    (R6G_XL, dict(cpu_p95=93.0), ["cpu_high"], {"cpu_high": "db.r6g.2xlarge"}),
    (R6G_XL, dict(cpu_p95=8.0, cpu_p50=4.0), ["cpu_low"], {"cpu_low": "db.r6g.large"}),
    (R6G_XL, dict(cpu_p95=8.0, freeable_memory_min=1 * GIB), ["memory_low"], {"memory_low": "db.x2g.xlarge"}),
    (dict(R6G_XL, DBInstanceClass="db.m5.xlarge"), {}, ["graviton"], {"graviton": "db.m6g.xlarge"}),
    (dict(R6G_XL, DBInstanceClass="db.m6g.xlarge"), dict(freeable_memory_min=GIB), ["memory_low"],
     {"memory_low": "db.r6g.xlarge"}),
    (R6G_XL, dict(connections_max=95), ["connections_high"], {"connections_high": "rds_proxy"}),
    (R6G_XL, dict(connections_max=60, connections_p50=10), ["connection_churn"], {"connection_churn": "rds_proxy"}),
    (R6G_XL, dict(iops_p95=2900.0), ["iops_high"], {"iops_high": "gp3"}),
    (dict(R6G_XL, StorageType="io1", Iops=10000), {}, ["iops_overprovisioned"], {"iops_overprovisioned": "gp3"}),
    (R6G_XL, dict(throughput_p95=120 * MIB), ["throughput_high"], {"throughput_high": "gp3"}),
    (dict(R6G_XL, StorageType="gp2", AllocatedStorage=1000), {}, ["gp2_to_gp3"], {"gp2_to_gp3": "gp3"}),
    # no data: no advice
    (R6G_XL, dict.fromkeys(QUIET), [], {}),
])
def test_recommendations_fire_on_their_figures_only(instance, changes, expected, suggested):
    figures = dict(QUIET, **changes)
    sizing = R6G_XL_SIZING if instance["DBInstanceClass"].startswith("db.r") else dict(memory_bytes=16 * GIB, vcpus=4)
    found = capacity.recommendations(instance, sizing, figures, max_connections=100)
    assert _names(found) == expected
    for item in found:
        assert item["triggered_by"] and item["advice"]
        if item["name"] in suggested:
            assert item["suggested"] == suggested[item["name"]]


def test_recommendation_thresholds_are_options():
    found = capacity.recommendations(R6G_XL, R6G_XL_SIZING, dict(QUIET, cpu_p95=70.0), 100,
                                     thresholds=dict(cpu_high_p95=60))
    assert _names(found) == ["cpu_high"] and found[0]["triggered_by"]["threshold"] == 60


BASE = dict(db_instance_identifiers=["orders-db"], db_cluster_identifiers=[], lookback_days=14, headroom_percent=10,
            surge_percent=100, app_fleets=[], thresholds={})


@pytest.mark.parametrize("changes, fragment", [
    (dict(db_instance_identifiers=[]), "name at least one instance or cluster"),
    (dict(db_instance_identifiers=["bad_name"]), "not a valid RDS identifier"),
    (dict(db_instance_identifiers=["a-db", "a-db"]), "more than once"),
    (dict(lookback_days=0), "lookback_days must be from 1 to 455"),
    (dict(headroom_percent=100), "headroom_percent"),
    (dict(surge_percent=-1), "surge_percent"),
    (dict(app_fleets=[dict(name="web", instances=0, threads=4)]), "instances must be at least 1"),
    (dict(app_fleets=[dict(name="", instances=1, threads=4)]), "needs a name"),
    (dict(app_fleets=[dict(name="web", instances=1, threads=4, min_pool=5)]), "min_pool must be from 1 to threads"),
    (dict(app_fleets=[dict(name="w", instances=1, threads=1), dict(name="w", instances=1, threads=1)]),
     "names w more than once"),
    (dict(thresholds=dict(cpu_hi=3)), "thresholds.cpu_hi is not a threshold"),
    (dict(thresholds=dict(cpu_high_p95=float("nan"))), "thresholds.cpu_high_p95 must be a finite number"),
    (dict(thresholds=dict(cpu_high_p95=float("inf"))), "thresholds.cpu_high_p95 must be a finite number"),
    (dict(thresholds=dict(cpu_high_p95=-1)), "thresholds.cpu_high_p95 must be a finite number of at least 0"),
    (dict(headroom_percent=float("nan")), "headroom_percent"),
    (dict(surge_percent=float("nan")), "surge_percent"),
])
def test_option_problems(changes, fragment):
    problems = capacity.option_problems(dict(BASE, **changes))
    assert any(fragment in p for p in problems), problems


def test_option_problems_none_for_good_options():
    assert capacity.option_problems(BASE) == []


@pytest.mark.parametrize("lookback, period", [(1, 480), (14, 6060), (455, 196560)])
def test_series_period(lookback, period):
    assert capacity.series_period(lookback) == period and period % 60 == 0


@pytest.mark.parametrize("count, requests", [(1, 1), (45, 1), (46, 2), (50, 2)])
def test_metric_queries_fit_500_per_request(count, requests):
    identifiers = [f"db-{n}" for n in range(count)]
    batches, index = capacity.metric_queries(identifiers, 14, aurora={"db-0"})
    assert len(batches) == requests and all(len(b) <= 500 for b in batches)
    assert ("db-0", "free_storage") not in index.values() and len(index) == count * 11 - 1
    whole = [q for b in batches for q in b if q["MetricStat"]["Stat"] == "p95"]
    assert all(q["MetricStat"]["Period"] == 14 * DAY for q in whole)


def test_figures_from_series_prefers_cloudwatch_percentiles():
    series = dict(cpu_p50=[(0, 30.0)], cpu_p95=[(0, 70.0)], cpu=[(t, float(t)) for t in range(101)],
                  freeable_memory_min=[(0, 2.0 * GIB)], connections_max=[(0, 40.0)],
                  connections=[(t, 10.0) for t in range(5)],
                  read_iops=[(1, 100.0), (2, 200.0)], write_iops=[(1, 50.0), (2, 50.0)])
    got = capacity.figures_from_series(series)
    assert (got["cpu_p50"], got["cpu_p95"], got["cpu_percentile_source"]) == (30.0, 70.0, "cloudwatch")
    assert got["iops_p95"] == pytest.approx(245.0) and got["iops_max"] == 250.0
    assert got["connections_max"] == 40.0 and got["connections_p50"] == 10.0


def test_figures_from_series_falls_back_to_period_averages():
    got = capacity.figures_from_series(dict(cpu=[(t, float(t)) for t in range(101)], cpu_p95=[(0, None)]))
    assert (got["cpu_p50"], got["cpu_p95"], got["cpu_percentile_source"]) == (50.0, 95.0, "period averages")
    empty = capacity.figures_from_series({})
    assert empty["cpu_p95"] is None and empty["cpu_percentile_source"] is None and empty["iops_p95"] is None
