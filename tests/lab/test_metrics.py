# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""CloudWatch AWS/RDS metrics come from each instance's real PostgreSQL (connections, storage, CPU, memory, IOPS), in
the instance's region; canned histories load and aggregate as CloudWatch does, percentiles included.

For the whole file (module fixture): one instance in us-east-1 and an Aurora cluster instance in us-west-2, published
every half second.
"""

import math
import os
import threading
import time
from datetime import datetime, timezone

import psycopg2
import pytest
from botocore.exceptions import ClientError

from tests.lab.clients import (
    MASTER_PASSWORD,
    MASTER_USER,
    connect_instance,
    create_postgres,
    query,
    wait_instance,
)

pytestmark = pytest.mark.lab

TICK = 0.5
GIB = 1024 ** 3


@pytest.fixture(scope="module")
def env(lab):
    lab.control.reset()
    if lab.fidelity:
        lab.control.set_timing(metrics=TICK)
    rds = lab.client()
    instance = create_postgres(rds, "metrics-db", DBInstanceClass="db.t3.micro", AllocatedStorage=20)
    west = lab.client(region="us-west-2")
    west.create_db_cluster(DBClusterIdentifier="metrics-aur", Engine="aurora-postgresql", EngineVersion="15.4",
                           MasterUsername=MASTER_USER, MasterUserPassword=MASTER_PASSWORD)
    west.create_db_instance(DBInstanceIdentifier="metrics-aur-1", DBClusterIdentifier="metrics-aur",
                            Engine="aurora-postgresql", DBInstanceClass="db.r6g.large")
    wait_instance(west, "metrics-aur-1", "available")
    yield {"lab": lab, "cw": lab.client("cloudwatch"), "cw_west": lab.client("cloudwatch", region="us-west-2"),
           "instance": instance}
    lab.control.reset()


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)


def _points(cw, metric: str, identifier: str, since: float, stat: str = "Maximum") -> list[float]:
    """Values of one-second periods since ``since`` (oldest first)."""
    datapoints = cw.get_metric_statistics(
        Namespace="AWS/RDS", MetricName=metric, Dimensions=[{"Name": "DBInstanceIdentifier", "Value": identifier}],
        StartTime=_utc(since), EndTime=_utc(time.time() + 5), Period=1, Statistics=[stat])["Datapoints"]
    return [p[stat] for p in sorted(datapoints, key=lambda p: p["Timestamp"])]


def _wait_value(cw, metric: str, identifier: str, since: float, check, timeout: float = 15.0) -> list[float]:
    """Poll until the values published since ``since`` satisfy ``check``; return them."""
    deadline = time.monotonic() + timeout
    values: list[float] = []
    while time.monotonic() < deadline:
        values = _points(cw, metric, identifier, since)
        if values and check(values):
            return values
        time.sleep(TICK / 2)
    raise AssertionError(f"{metric} of {identifier} since {since}: {values} never satisfied the check")


def test_metrics_published_per_instance_in_its_region(env):
    cw, since = env["cw"], time.time()
    _wait_value(cw, "FreeableMemory", "metrics-db", since, lambda v: len(v) >= 2)
    for metric in ("DatabaseConnections", "FreeStorageSpace", "TransactionLogsDiskUsage", "CPUUtilization",
                   "ReadIOPS", "WriteIOPS", "ReadThroughput", "WriteThroughput"):
        assert _points(cw, metric, "metrics-db", since - 2), metric
    listed = {m["MetricName"] for m in cw.list_metrics(Namespace="AWS/RDS", Dimensions=[
        {"Name": "DBInstanceIdentifier", "Value": "metrics-db"}])["Metrics"]}
    assert {"DatabaseConnections", "CPUUtilization", "FreeableMemory"} <= listed
    # db.t3.micro: 1 GiB of memory; shared_buffers and the backends take some of it.
    memory = _points(cw, "FreeableMemory", "metrics-db", since)[-1]
    assert 0.3 * GIB < memory < 1 * GIB
    cpu = _points(cw, "CPUUtilization", "metrics-db", since - 2)
    assert all(0 <= value <= 100 for value in cpu)
    # The Aurora instance publishes in us-west-2 only (db.r6g.large: 16 GiB), and no FreeStorageSpace (Aurora
    # storage is the cluster volume's).
    aurora = _wait_value(env["cw_west"], "FreeableMemory", "metrics-aur-1", since, lambda v: True)
    assert 12 * GIB < aurora[-1] < 16 * GIB
    assert _points(env["cw_west"], "DatabaseConnections", "metrics-aur-1", since - 2)
    assert _points(env["cw_west"], "FreeStorageSpace", "metrics-aur-1", since - 2) == []
    assert _points(cw, "FreeableMemory", "metrics-aur-1", since - 2) == []
    assert _points(env["cw_west"], "FreeableMemory", "metrics-db", since - 2) == []


def test_connections_follow_the_open_connections(env):
    cw = env["cw"]
    before = time.time()
    baseline = _wait_value(cw, "DatabaseConnections", "metrics-db", before, lambda v: True)[-1]
    connections = [connect_instance(env["instance"]) for _unused in range(6)]
    try:
        opened = time.time()
        _wait_value(cw, "DatabaseConnections", "metrics-db", opened, lambda v: v[-1] >= baseline + 6)
    finally:
        for conn in connections:
            conn.close()
    closed = time.time()
    _wait_value(cw, "DatabaseConnections", "metrics-db", closed, lambda v: v[-1] <= baseline)
    # The lab's sampling is no workload of the customer's: pg_stat_statements has none of it.
    conn = connect_instance(env["instance"])
    try:
        query(conn, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        assert query(conn, "SELECT count(*) FROM pg_stat_statements WHERE query LIKE '%%pg_ls_waldir%%'") == [(0,)]
    finally:
        conn.close()


def test_free_storage_falls_by_what_a_table_takes(env):
    cw = env["cw"]
    start = time.time()
    before = _wait_value(cw, "FreeStorageSpace", "metrics-db", start, lambda v: True)[-1]
    assert 19 * GIB < before < 20 * GIB  # AllocatedStorage 20 GiB less the databases and the WAL
    conn = connect_instance(env["instance"])
    try:
        query(conn, "CREATE TABLE filler AS SELECT i, repeat('x', 200) AS pad FROM generate_series(1, 150000) i")
        size = query(conn, "SELECT pg_total_relation_size('filler')")[0][0]
    finally:
        conn.close()
    assert size > 30 * 1024 * 1024
    written = time.time()
    after = _wait_value(cw, "FreeStorageSpace", "metrics-db", written, lambda v: v[-1] <= before - size)[-1]
    assert before - after >= size  # the table, and the WAL that wrote it
    wal = _points(cw, "TransactionLogsDiskUsage", "metrics-db", written)
    assert wal and wal[-1] >= 16 * 1024 * 1024
    # Tens of MiB of WAL and pages written within a few ticks (once the backend has reported its statistics).
    _wait_value(cw, "WriteThroughput", "metrics-db", start, lambda v: max(v) > 1024 * 1024)


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process of the lab's PostgreSQL, which runs on this machine."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _busy(instance, seconds: float, used: list, errors: list) -> None:
    """Spin one backend for ``seconds``; append the CPU seconds it got."""
    conn = connect_instance(instance)
    try:
        pid = query(conn, "SELECT pg_backend_pid()")[0][0]
        query(conn, f"SET statement_timeout = '{int(seconds * 1000)}ms'")
        before = _cpu_seconds(pid)
        try:
            query(conn, "WITH RECURSIVE t(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM t) SELECT count(*) FROM t")
        except psycopg2.errors.QueryCanceled:
            pass
        used.append(_cpu_seconds(pid) - before)
    except Exception as exc:  # reported by the test
        errors.append(exc)
    finally:
        conn.close()


def test_cpu_rises_under_cpu_heavy_queries(env):
    cw = env["cw"]
    idle = _wait_value(cw, "CPUUtilization", "metrics-db", time.time(), lambda v: len(v) >= 3)
    used, errors = [], []
    workers = [threading.Thread(target=_busy, args=(env["instance"], 3.0, used, errors)) for _unused in range(2)]
    busy_from = time.monotonic(), time.time()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    duration = time.monotonic() - busy_from[0]
    assert not errors and len(used) == 2
    # What the two backends really got of the class's 2 vCPUs (all of it on an idle machine, less on a loaded one).
    expected = 100 * sum(used) / (duration * 2)
    assert expected > 5, used
    time.sleep(TICK * 2)
    busy = _points(cw, "CPUUtilization", "metrics-db", busy_from[1] + TICK)
    assert len(busy) >= 3, busy
    assert max(busy) >= 0.7 * expected, (expected, idle, busy)
    assert max(busy) > sorted(idle)[len(idle) // 2] + expected / 2, (expected, idle, busy)
    assert all(value <= 100 for value in busy)


def _statistics(cw, identifier: str, metric: str, start: datetime, end: datetime, period: int, **extra) -> list:
    datapoints = cw.get_metric_statistics(
        Namespace="AWS/RDS", MetricName=metric, Dimensions=[{"Name": "DBInstanceIdentifier", "Value": identifier}],
        StartTime=start, EndTime=end, Period=period, **extra)["Datapoints"]
    return sorted(datapoints, key=lambda p: p["Timestamp"])


def test_history_loads_and_aggregates_with_percentiles(env):
    cw, control = env["cw"], env["lab"].control
    now = time.time()
    start = math.floor(now / 3600) * 3600 - 14 * 86400
    # Twenty points an hour, values offset + 1..20 in a scrambled order; the offset changes with the hour.
    points = []
    for hour in range(14 * 24):
        offset = (hour % 24) * 2
        for k in range(20):
            points.append((start + hour * 3600 + k * 180, offset + (k * 7) % 20 + 1))
    loaded = control.load_metric_history("hist-db", "CPUUtilization", points=points)
    assert loaded["points"] == 14 * 24 * 20 and loaded["unit"] == "Percent"

    begin, end = _utc(start), _utc(start + 14 * 86400)
    hourly = _statistics(cw, "hist-db", "CPUUtilization", begin, end, 3600,
                         Statistics=["Average", "Maximum", "Minimum", "SampleCount"], ExtendedStatistics=["p50", "p95"])
    assert len(hourly) == 14 * 24
    for hour, datapoint in enumerate(hourly):
        offset = (hour % 24) * 2
        assert datapoint["Timestamp"] == _utc(start + hour * 3600)
        assert datapoint["SampleCount"] == 20
        assert datapoint["Average"] == pytest.approx(offset + 10.5)
        assert (datapoint["Minimum"], datapoint["Maximum"]) == (offset + 1, offset + 20)
        # nearest rank: the 10th and the 19th of 20 sorted values
        assert datapoint["ExtendedStatistics"] == {"p50": offset + 10, "p95": offset + 19}
        assert datapoint["Unit"] == "Percent"
    with pytest.raises(ClientError, match="requested up to 4,032 datapoints, which exceeds the limit"):
        _statistics(cw, "hist-db", "CPUUtilization", begin, end, 300, Statistics=["Average"])  # as on AWS
    daily = _statistics(cw, "hist-db", "CPUUtilization", begin, end, 86400, ExtendedStatistics=["p95", "p99.9"])
    assert len(daily) == 14
    one_day = sorted(value for _at, value in points[:24 * 20])
    expected = {"p95": one_day[math.ceil(0.95 * 480) - 1], "p99.9": one_day[math.ceil(0.999 * 480) - 1]}
    assert expected == {"p95": 58, "p99.9": 66}
    assert all(d["ExtendedStatistics"] == expected for d in daily)

    metric = {"Namespace": "AWS/RDS", "MetricName": "CPUUtilization",
              "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": "hist-db"}]}
    data = cw.get_metric_data(StartTime=begin, EndTime=end, ScanBy="TimestampAscending", MetricDataQueries=[
        {"Id": "p95", "MetricStat": {"Metric": metric, "Period": 3600, "Stat": "p95"}},
        {"Id": "avg", "MetricStat": {"Metric": metric, "Period": 3600, "Stat": "Average"}},
    ])["MetricDataResults"]
    by_id = {result["Id"]: result for result in data}
    assert by_id["p95"]["Values"] == [(hour % 24) * 2 + 19 for hour in range(14 * 24)]
    assert by_id["avg"]["Values"] == pytest.approx([(hour % 24) * 2 + 10.5 for hour in range(14 * 24)])
    assert by_id["p95"]["Timestamps"][0] == begin

    # Patterns: a daily swing between low and high peaking at 14:00 UTC, and a storage line losing 2 GiB a day.
    control.load_metric_history("pattern-db", "CPUUtilization",
                                spec={"pattern": "daily", "days": 14, "low": 10, "high": 80, "period": 300})
    window = _utc(now - 14 * 86400 - 600), _utc(now + 60)
    cpu = _statistics(cw, "pattern-db", "CPUUtilization", *window, 3600,
                      Statistics=["Average", "Maximum", "Minimum"])
    assert len(cpu) in (336, 337)
    assert min(p["Minimum"] for p in cpu) >= 10 and max(p["Maximum"] for p in cpu) <= 80
    peak = max(cpu, key=lambda p: p["Average"])
    assert peak["Maximum"] == pytest.approx(80, abs=0.5) and peak["Timestamp"].astimezone(timezone.utc).hour in (
        13, 14)
    control.load_metric_history("pattern-db", "FreeStorageSpace",
                                spec={"pattern": "linear", "days": 14, "start": 100 * GIB, "per_day": -2 * GIB,
                                      "period": 3600})
    storage = _statistics(cw, "pattern-db", "FreeStorageSpace", *window, 3600, Statistics=["Average"])
    assert len(storage) == 14 * 24 and storage[0]["Average"] == 100 * GIB and storage[0]["Unit"] == "Bytes"
    steps = [(b["Average"] - a["Average"]) * 24 / GIB for a, b in zip(storage, storage[1:])]
    assert all(step == pytest.approx(-2, rel=1e-6) for step in steps)


def test_loaded_history_replaces_the_live_series(env):
    cw, control = env["cw"], env["lab"].control
    now = time.time()
    control.load_metric_history("metrics-db", "DatabaseConnections",
                                points=[(now - 3600 * h, 42) for h in range(1, 49)])
    loaded = time.time()
    conn = connect_instance(env["instance"])
    try:
        time.sleep(TICK * 3)
        # Live CPU goes on; the live connection count is not mixed into the loaded series.
        assert _wait_value(cw, "CPUUtilization", "metrics-db", loaded, lambda v: len(v) >= 2)
        assert _points(cw, "DatabaseConnections", "metrics-db", loaded) == []
    finally:
        conn.close()
    day = _statistics(cw, "metrics-db", "DatabaseConnections", _utc(now - 86400), _utc(now), 3600,
                      Statistics=["Maximum", "SampleCount"])
    assert [(p["Maximum"], p["SampleCount"]) for p in day] == [(42, 1)] * 24
    # A history in another region is that region's only.
    control.load_metric_history("metrics-db", "ReadIOPS", region="us-west-2", points=[(now - 600, 7)])
    west = _statistics(env["cw_west"], "metrics-db", "ReadIOPS", _utc(now - 900), _utc(now), 600,
                       Statistics=["Maximum"])
    assert [p["Maximum"] for p in west] == [7]
    assert _statistics(cw, "metrics-db", "ReadIOPS", _utc(now - 900), _utc(now - 300), 600,
                       Statistics=["Maximum"]) == []
    with pytest.raises(Exception, match="pattern"):
        control.load_metric_history("metrics-db", "CPUUtilization", spec={"pattern": "weekly"})
    with pytest.raises(Exception, match="future"):
        control.load_metric_history("metrics-db", "CPUUtilization", points=[(now + 3600, 1)])
