# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""CloudWatch ``AWS/RDS`` metrics computed from each instance's real PostgreSQL, and canned metric histories.

Publisher: one thread (``lab-metrics``, started with the lab, stopped at its shutdown) calls every registered sampler
every ``metrics`` seconds (timing key, lab time; 0 pauses it) and puts the datapoints it returns into moto's CloudWatch
backend of each datapoint's region. ``register_sampler(name, fn)``: ``fn(now_epoch) -> list[Datapoint]``. This module
registers ``rds_instances``, which samples every DB instance (Aurora cluster instances included) whose status runs
PostgreSQL, with one admin connection per instance and tick (unrecorded by pg_stat_statements and the server log):

- ``DatabaseConnections``: client backends in ``pg_stat_activity`` (the lab's own ``lab_admin`` sessions excluded)
- ``FreeStorageSpace``: AllocatedStorage (GiB) less every database's size and the WAL directory's (not for Aurora)
- ``TransactionLogsDiskUsage``: the WAL directory's size (not for Aurora)
- ``CPUUtilization``: CPU time of the instance's PostgreSQL processes (the postmaster of ``postmaster.pid``, its
  children and its reaped children, from ``/proc/<pid>/stat``) over the tick's wall time and the class's vCPUs
- ``FreeableMemory``: the class's memory less ``shared_buffers`` and the private resident memory of those processes
  (an approximation: RDS's figure also counts the OS and its page cache)
- ``ReadIOPS`` / ``ReadThroughput``: blocks read (``pg_stat_database.blks_read``) per second, times 8 KiB;
  ``WriteIOPS`` / ``WriteThroughput``: buffers written (``pg_stat_bgwriter`` checkpoints, cleaner, backends) plus WAL
  writes (``pg_stat_wal.wal_write``) per second, bytes from buffers times 8 KiB plus ``wal_bytes``; on PostgreSQL 17
  and later the relation writes (and on 18 the WAL writes) come from ``pg_stat_io``, where those counters moved.
  These come from the second tick on (they are rates).

CloudWatch answers (moto 5.2.5 lacks them): ``GetMetricStatistics`` with ``ExtendedStatistics`` (``pNN``),
``GetMetricData`` with ``Stat: pNN``, periods aligned on ``StartTime``, a metric matched on its full dimension set (as
AWS does; moto matched any metric having the asked dimensions), timestamps in the past accepted, and AWS's limit of
1,440 datapoints per ``GetMetricStatistics`` call. Percentiles are
nearest-rank over the raw values of the period (CloudWatch's own estimate is close to that for small samples).

``load_history`` (control route ``load_metric_history``) loads timestamped datapoints of one metric (given, or a
``daily`` / ``linear`` / ``constant`` pattern) so that modules reading 14 days of history see them.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

import psycopg2
from moto.cloudwatch.exceptions import InvalidParameterCombination, InvalidParameterValue
from moto.cloudwatch.models import (
    CloudWatchBackend, Dimension, MetricAggregatedDatum, MetricDatum, cloudwatch_backends,
)
from moto.cloudwatch.responses import CloudWatchResponse
from moto.core.responses import ActionResult
from moto.rds.models import rds_backends

from tests.lab import parameter_metadata as meta
from tests.lab import state
from tests.lab.fidelity._support import replace, serving_pg
from tests.lab.postgres import ADMIN_USER

LOG = logging.getLogger("tests.lab.metrics")
ACCOUNT = "123456789012"
NAMESPACE = "AWS/RDS"
BLOCK_SIZE = 8192
GIB = 1024 ** 3
# A status in which RDS runs no database process, so publishes no instance metric.
SILENT_STATUSES = frozenset(("creating", "deleting", "stopped", "stopping", "starting", "failed",
                             "inaccessible-encryption-credentials", "incompatible-restore", "incompatible-network",
                             "restore-error"))
UNITS = {"CPUUtilization": "Percent", "DatabaseConnections": "Count", "FreeStorageSpace": "Bytes",
         "FreeableMemory": "Bytes", "TransactionLogsDiskUsage": "Bytes", "ReadIOPS": "Count/Second",
         "WriteIOPS": "Count/Second", "ReadThroughput": "Bytes/Second", "WriteThroughput": "Bytes/Second",
         "ReplicaLag": "Seconds", "AuroraReplicaLag": "Milliseconds", "AuroraGlobalDBReplicationLag": "Milliseconds",
         "AuroraGlobalDBRPOLag": "Milliseconds", "SwapUsage": "Bytes", "VolumeBytesUsed": "Bytes"}
MAX_HISTORY_POINTS = 200_000
MAX_STATISTICS_DATAPOINTS = 1440   # GetMetricStatistics answers at most this many periods
LIVE_RETENTION = 6 * 3600   # live points older than this are dropped (loaded histories are kept)
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


# --- the publisher API ---------------------------------------------------------------------------------------------

@dataclass
class Datapoint:
    """One CloudWatch datapoint: ``dimensions`` {name: value}; ``timestamp`` epoch seconds (None: the tick's time)."""

    region: str
    namespace: str
    metric: str
    dimensions: dict = field(default_factory=dict)
    value: float = 0.0
    unit: str = "None"
    timestamp: float | None = None

    def series(self) -> tuple:
        return series_key(self.region, self.namespace, self.metric, self.dimensions)


def series_key(region: str, namespace: str, metric: str, dimensions: dict) -> tuple:
    return (region, namespace, metric, tuple(sorted((str(k), str(v)) for k, v in dimensions.items())))


_SAMPLERS: dict[str, Callable[[float], list]] = {}
_EXCLUSIVE: dict[tuple, int] = {}    # series loaded as history -> generation: live points of it are dropped
_PUBLISHER: list = [None]


def register_sampler(name: str, fn: Callable[[float], list]) -> None:
    """Call ``fn(now_epoch)`` on every publisher tick; it returns the Datapoints to publish (registering a name again
    replaces its sampler). A sampler that raises is logged once, until it succeeds again, and the others still run."""
    _SAMPLERS[name] = fn


def unregister_sampler(name: str) -> None:
    _SAMPLERS.pop(name, None)


class LabDatum(MetricDatum):
    """A datapoint put by the lab: ``live`` (a sampler's) or loaded history. The points of one series share its
    dimensions (a history holds thousands), so MetricDatum's attributes are set here rather than rebuilt."""

    def __init__(self, point: Datapoint, series: tuple, dimensions: list, epoch: float, live: bool):
        # pylint: disable=super-init-not-called
        self.namespace, self.name, self.unit = point.namespace, point.metric, point.unit or "None"
        self.dimensions = dimensions
        self.value = float(point.value)
        self.epoch = epoch
        self.live = live
        self.series = series
        self.dimension_key = series[3]

    @property
    def timestamp(self) -> datetime:
        return _naive_utc(self.epoch)


def _naive_utc(epoch: float) -> datetime:
    """moto keeps metric timestamps as naive UTC datetimes."""
    return datetime.fromtimestamp(epoch, timezone.utc).replace(tzinfo=None)


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)


def _epoch(value: datetime) -> float:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def put_points(points: list, now: float | None = None, *, live: bool = True, generation: int | None = None) -> int:
    """Put Datapoints into the CloudWatch backends of their regions; returns how many were put. Live points of a
    series loaded as exclusive history, and points computed before a lab reset (``generation``), are dropped."""
    lab = state.current()
    now = time.time() if now is None else now
    with lab.lock:
        if generation is not None and generation != lab.generation:
            return 0
        by_region: dict[str, list] = {}
        shapes: dict[int, tuple] = {}    # id(dimensions) -> (series key, moto Dimensions) for points sharing them
        for point in points:
            shape = shapes.get(id(point.dimensions))
            if shape is None or shape[0][:3] != (point.region, point.namespace, point.metric):
                series = point.series()
                shape = shapes[id(point.dimensions)] = (series, [Dimension(k, v) for k, v in series[3]])
            if live and _EXCLUSIVE.get(shape[0]) == lab.generation:
                continue
            value = float(point.value)
            if math.isnan(value) or math.isinf(value):
                continue
            epoch = point.timestamp if point.timestamp is not None else now
            by_region.setdefault(point.region, []).append(LabDatum(point, shape[0], shape[1], epoch, live))
        for region, data in by_region.items():
            cloudwatch_backends[ACCOUNT][region].metric_data.extend(data)
        return sum(len(data) for data in by_region.values())


def prune_live(before: float) -> None:
    """Drop the live points older than ``before`` (epoch): the lab keeps hours of them, not CloudWatch's 15 days."""
    with state.current().lock:
        for backend in list(dict.values(cloudwatch_backends.get(ACCOUNT) or {})):
            if any(getattr(d, "live", False) and d.epoch < before for d in backend.metric_data):
                backend.metric_data = [d for d in backend.metric_data
                                       if not (getattr(d, "live", False) and d.epoch < before)]


class Publisher:
    """The thread that runs every sampler every ``metrics`` seconds (read again at each tick)."""

    def __init__(self, lab: state.LabState):
        self.lab = lab
        self.ticks = 0
        self._pruned_at = time.time()
        self._stop = threading.Event()
        self._failing: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="lab-metrics", daemon=True)

    def start(self) -> Publisher:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(0.1):
            interval = self.lab.timing.seconds("metrics")
            if interval <= 0 or time.monotonic() - last < interval:
                continue
            last = time.monotonic()
            try:
                self.tick()
            except Exception:  # never let the thread die: the next tick tries again
                LOG.exception("metrics tick failed")

    def tick(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        generation = self.lab.generation
        points: list = []
        for name, sampler in list(_SAMPLERS.items()):
            try:
                points.extend(sampler(now) or [])
            except Exception:
                if name not in self._failing:
                    LOG.warning("metrics sampler %s failed (not logged again until it succeeds)", name, exc_info=True)
                    self._failing.add(name)
                continue
            self._failing.discard(name)
        self.ticks += 1
        if now - self._pruned_at > 60:
            self._pruned_at = now
            prune_live(now - LIVE_RETENTION)
        return put_points(points, now, generation=generation)


# --- the instances' sampler ----------------------------------------------------------------------------------------

_SAMPLE_SQL = """
SELECT (SELECT count(*) FROM pg_stat_activity
         WHERE backend_type = 'client backend' AND usename IS DISTINCT FROM %(admin)s),
       (SELECT sum(pg_database_size(oid)) FROM pg_database),
       (SELECT coalesce(sum(size), 0) FROM pg_ls_waldir()),
       (SELECT sum(blks_read) FROM pg_stat_database),
       {buffers_written},
       {wal_writes},
       (SELECT wal_bytes FROM pg_stat_wal),
       pg_size_bytes(current_setting('shared_buffers'))
"""
# The write counters moved between majors: 17 dropped pg_stat_bgwriter's buffers_checkpoint/buffers_backend (pg_stat_io
# counts every process's relation writes), 18 dropped pg_stat_wal.wal_write (pg_stat_io's 'wal' object).
_BUFFERS_WRITTEN = {15: "(SELECT buffers_checkpoint + buffers_clean + buffers_backend FROM pg_stat_bgwriter)",
                    17: "(SELECT coalesce(sum(writes), 0) FROM pg_stat_io WHERE object = 'relation')"}
_WAL_WRITES = {15: "(SELECT wal_write FROM pg_stat_wal)",
               18: "(SELECT coalesce(sum(writes), 0) FROM pg_stat_io WHERE object = 'wal')"}


def sample_sql(server_version: int) -> str:
    """The sampler's query for a server of ``server_version`` (``server_version_num``, e.g. 150013 or 180006)."""
    major = server_version // 10000

    def pick(choices: dict) -> str:
        return choices[max(m for m in choices if m <= major)] if major >= min(choices) else choices[min(choices)]

    return _SAMPLE_SQL.format(buffers_written=pick(_BUFFERS_WRITTEN), wal_writes=pick(_WAL_WRITES))


# The sampler's session leaves no trace in pg_stat_statements or the server log (RDS's monitoring is not the
# customer's workload).
_QUIET = ("-c pg_stat_statements.track=none -c log_statement=none -c log_min_duration_statement=-1 "
          "-c log_duration=off")
_PREVIOUS: dict[tuple, dict] = {}    # (region, identifier, PgCluster name) -> counters of the last tick


def _sample_query(pg) -> tuple:
    conn = psycopg2.connect(host=str(pg.socket_dir), port=pg.port, user=ADMIN_USER, dbname="postgres",
                            connect_timeout=3, application_name="lab_metrics", options=_QUIET)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sample_sql(conn.server_version), {"admin": ADMIN_USER})
            return cur.fetchone()
    finally:
        conn.close()


def _running_instances():
    """(region, DB instance, PgCluster) of every instance whose status runs its PostgreSQL."""
    for region, backend in list(dict.items(rds_backends.get(ACCOUNT) or {})):
        for database in list(backend.databases.values()):
            try:
                if database.status in SILENT_STATUSES:
                    continue
                pg = serving_pg(database)
                if pg is None or not pg.is_running():
                    continue
            except Exception:  # an instance half created or being deleted: next tick
                continue
            yield region, database, pg


def _stat(pid: int) -> tuple[int, int] | None:
    """(ppid, CPU ticks of the process and of its reaped children) from /proc/<pid>/stat; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read().decode("ascii", "replace")
        fields = text[text.rfind(")") + 2:].split()
        return int(fields[1]), sum(int(value) for value in fields[11:15])
    except (OSError, IndexError, ValueError):
        return None


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as handle:
            return [int(child) for child in handle.read().split()]
    except FileNotFoundError:  # a kernel without CONFIG_PROC_CHILDREN: look at every process
        return [int(entry) for entry in os.listdir("/proc")
                if entry.isdigit() and (_stat(int(entry)) or (None,))[0] == pid]
    except (OSError, ValueError):
        return []


def _postmaster_pid(pg) -> int | None:
    try:
        return int((pg.data_dir / "postmaster.pid").read_text().split("\n", 1)[0].strip())
    except (OSError, ValueError):
        return None


def _private_rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            fields = handle.read().split()
        return max(0, int(fields[1]) - int(fields[2])) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


def _processes(pg) -> tuple[int | None, list[int], int]:
    """(postmaster pid, its processes, their CPU ticks: own, live children's and reaped children's)."""
    pid = _postmaster_pid(pg)
    postmaster = _stat(pid) if pid else None
    if postmaster is None:
        return None, [], 0
    members, ticks = [pid], postmaster[1]
    for child in _children(pid):
        stat = _stat(child)
        if stat is not None:  # a child gone meanwhile is in the postmaster's reaped ticks next time
            members.append(child)
            ticks += stat[1]
    return pid, members, ticks


def sample_instance(region: str, database, pg, now: float) -> list[Datapoint]:
    """The AWS/RDS datapoints of one DB instance (see the module docstring)."""
    identifier = database.db_instance_identifier
    dims = {"DBInstanceIdentifier": identifier}
    (connections, databases_size, wal_size, blks_read, buffers_written, wal_write, wal_bytes,
     shared_buffers) = _sample_query(pg)
    sizing = meta.class_sizing(database.db_instance_class)
    vcpus = sizing.get("vcpus") or 2
    postmaster, members, cpu_ticks = _processes(pg)
    used = int(databases_size or 0) + int(wal_size or 0)

    def point(metric: str, value: float) -> Datapoint:
        return Datapoint(region, NAMESPACE, metric, dims, float(value), UNITS[metric], now)

    points = [point("DatabaseConnections", connections or 0)]
    if not getattr(database, "db_cluster_identifier", None):
        allocated = int(getattr(database, "allocated_storage", 0) or 0) * GIB
        points.append(point("FreeStorageSpace", max(0, allocated - used)))
        points.append(point("TransactionLogsDiskUsage", int(wal_size or 0)))
    if members:
        private = sum(_private_rss(m) for m in members)
        points.append(point("FreeableMemory", max(0, int(sizing["memory_bytes"]) - int(shared_buffers) - private)))
    counters = {"at": now, "postmaster": postmaster, "cpu": cpu_ticks, "read": int(blks_read or 0),
                "written": int(buffers_written or 0), "wal_write": int(wal_write or 0),
                "wal_bytes": int(wal_bytes or 0)}
    key = (region, identifier.lower(), pg.name)
    previous = _PREVIOUS.get(key)
    _PREVIOUS[key] = counters
    if previous is None or now <= previous["at"]:
        return points
    elapsed = now - previous["at"]
    if postmaster is not None and postmaster == previous["postmaster"] and cpu_ticks >= previous["cpu"]:
        busy = (cpu_ticks - previous["cpu"]) / _CLK_TCK
        points.append(point("CPUUtilization", min(100.0, 100.0 * busy / (elapsed * vcpus))))
    deltas = {name: counters[name] - previous[name] for name in ("read", "written", "wal_write", "wal_bytes")}
    if min(deltas.values()) >= 0:  # counters went back: statistics reset or a restored cluster; next tick
        points.append(point("ReadIOPS", deltas["read"] / elapsed))
        points.append(point("ReadThroughput", deltas["read"] * BLOCK_SIZE / elapsed))
        points.append(point("WriteIOPS", (deltas["written"] + deltas["wal_write"]) / elapsed))
        points.append(point("WriteThroughput", (deltas["written"] * BLOCK_SIZE + deltas["wal_bytes"]) / elapsed))
    return points


def sample_instances(now: float) -> list[Datapoint]:
    """The sampler of every running DB instance; an instance that cannot answer (rebooting) is skipped quietly."""
    points: list[Datapoint] = []
    seen = set()
    for region, database, pg in _running_instances():
        seen.add((region, database.db_instance_identifier.lower(), pg.name))
        try:
            points.extend(sample_instance(region, database, pg, now))
        except Exception as exc:  # PostgreSQL restarting or going away: RDS has a gap in its metrics too
            LOG.debug("no metrics from %s this tick: %s", database.db_instance_identifier, exc)
    for key in [key for key in _PREVIOUS if key not in seen]:
        del _PREVIOUS[key]
    return points


# --- CloudWatch reads: percentiles, periods on StartTime, exact dimensions ------------------------------------------

def _percentile(stat: str) -> float | None:
    if len(stat) > 1 and stat[0] in "pP":
        try:
            value = float(stat[1:])
        except ValueError:
            return None
        if 0 <= value <= 100:
            return value
    return None


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile of ``values`` (not empty)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(share / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def statistic(data: list, stat: str) -> float | None:
    """One statistic (SampleCount, Sum, Average, Minimum, Maximum or pNN) of a period's datums."""
    singles = [d.value for d in data if isinstance(d, MetricDatum)]
    sets = [d for d in data if isinstance(d, MetricAggregatedDatum)]
    count = len(singles) + sum(s.sample_count for s in sets)
    if not count:
        return None
    if stat == "SampleCount":
        return float(count)
    if stat == "Sum":
        return sum(singles) + sum(s.sum for s in sets)
    if stat == "Average":
        return (sum(singles) + sum(s.sum for s in sets)) / count
    if stat == "Minimum":
        return min(singles + [s.min for s in sets])
    if stat == "Maximum":
        return max(singles + [s.max for s in sets])
    share = _percentile(stat)
    if share is not None and singles:
        return percentile(singles, share)
    return None  # a percentile of statistic sets only: CloudWatch has none either


def _dimension_key(dimensions) -> tuple:
    pairs = []
    for d in dimensions or []:
        if isinstance(d, dict):
            pairs.append((str(d.get("Name")), str(d.get("Value"))))
        else:
            pairs.append((str(d.name), str(d.value)))
    return tuple(sorted(pairs))


def _window(backend, start: float, end: float) -> dict[tuple, list]:
    """Every datum of the backend from ``start`` to ``end`` by (namespace, metric, dimension key), oldest first: one
    pass over the data for all the queries of a call."""
    series: dict[tuple, list] = {}
    for datum in backend.get_all_metrics():
        epoch = getattr(datum, "epoch", None)
        if epoch is None:
            epoch = _epoch(datum.timestamp)
        if start <= epoch < end:
            key = getattr(datum, "dimension_key", None)
            if key is None:
                key = _dimension_key(datum.dimensions)
            series.setdefault((datum.namespace, datum.name, key), []).append((epoch, datum))
    for data in series.values():
        data.sort(key=lambda item: item[0])
    return series


def _series_data(window: dict, namespace: str, name: str, dimensions, unit: str | None) -> list:
    data = window.get((namespace, name, _dimension_key(dimensions)), [])
    return [(epoch, datum) for epoch, datum in data if datum.unit == unit] if unit else data


def _periods(data: list, start: float, period: int) -> dict[int, list]:
    buckets: dict[int, list] = {}
    for epoch, datum in data:
        buckets.setdefault(int((epoch - start) // period), []).append(datum)
    return buckets


def _check_stats(stats: list[str]) -> None:
    for stat in stats:
        if stat not in ("SampleCount", "Sum", "Average", "Minimum", "Maximum") and _percentile(stat) is None:
            raise InvalidParameterValue(f"The lab does not serve the statistic {stat!r}: use SampleCount, Sum, "
                                        "Average, Minimum, Maximum or a percentile pNN")


def get_metric_statistics(self, namespace, metric_name, start_time, end_time, period, stats, dimensions, unit=None,
                          extended_statistics=None):
    start, end = int(_epoch(start_time)), int(_epoch(end_time))
    if start >= end:
        raise InvalidParameterValue("The parameter StartTime must be less than the parameter EndTime.")
    extended = list(extended_statistics or [])
    for stat in extended:
        if _percentile(stat) is None:
            raise InvalidParameterValue(f"The lab serves percentiles pNN as ExtendedStatistics, not {stat!r}")
    _check_stats(list(stats or []))
    period = int(period)
    if period <= 0:
        raise InvalidParameterValue("The parameter Period must be greater than 0.")
    asked = math.ceil((end - start) / period)
    if asked > MAX_STATISTICS_DATAPOINTS:
        raise InvalidParameterCombination(
            f"You have requested up to {asked:,} datapoints, which exceeds the limit of "
            f"{MAX_STATISTICS_DATAPOINTS:,}. You may reduce the datapoints requested by increasing Period, or "
            "decreasing the time range.")
    datapoints = []
    series = _series_data(_window(self, start, end), namespace, metric_name, dimensions, unit)
    for index, bucket in sorted(_periods(series, start, period).items()):
        point = {"Timestamp": _utc(start + index * period), "Unit": bucket[-1].unit or "None"}
        for stat in stats or []:
            point[stat] = statistic(bucket, stat)
        if extended:
            values = {stat: statistic(bucket, stat) for stat in extended}
            point["ExtendedStatistics"] = {k: v for k, v in values.items() if v is not None}
        datapoints.append(point)
    return datapoints


def _metric_stat_result(window: dict, query: dict, start: float, scan_by: str) -> dict:
    metric_stat = query["MetricStat"]
    metric = metric_stat["Metric"]
    stat, period = metric_stat["Stat"], int(metric_stat["Period"])
    _check_stats([stat])
    data = _series_data(window, metric["Namespace"], metric["MetricName"], metric.get("Dimensions", []),
                        metric_stat.get("Unit"))
    values, timestamps = [], []
    for index, bucket in sorted(_periods(data, start, period).items()):
        value = statistic(bucket, stat)
        if value is not None:
            values.append(value)
            timestamps.append(_utc(start + index * period))
    if scan_by == "TimestampDescending":
        values.reverse()
        timestamps.reverse()
    return {"id": query["Id"], "label": query.get("Label") or f"{metric['MetricName']} {stat}", "values": values,
            "timestamps": timestamps, "status_code": "Complete"}


def _get_metric_data(original):
    def get_metric_data(self, queries, start_time, end_time, scan_by="TimestampAscending"):
        start, end = int(_epoch(start_time)), int(_epoch(end_time))
        stat_queries = [q for q in queries if "MetricStat" in q]
        others = [q for q in queries if "MetricStat" not in q]
        if start >= end or not stat_queries:
            return original(self, queries, start_time, end_time, scan_by)
        window = _window(self, start, end)
        results = [_metric_stat_result(window, q, start, scan_by) for q in stat_queries]
        returned = [r for r, q in zip(results, stat_queries) if q.get("ReturnData", True)]
        if others:
            # Expressions: moto's own code, over these results (math) or all data (insights).
            from moto.cloudwatch.models import parse_expression
            for query in others:
                if query["Expression"].startswith("SELECT"):
                    returned.extend(original(self, [query], start_time, end_time, scan_by))
                else:
                    values, timestamps = parse_expression(query["Expression"], results)
                    returned.append({"id": query["Id"], "label": query.get("Label") or query["Id"],
                                     "values": values, "timestamps": timestamps, "status_code": "Complete"})
        return returned
    return get_metric_data


def _get_metric_statistics_response(self):
    statistics = self._get_param("Statistics", [])
    extended = self._get_param("ExtendedStatistics", [])
    if not statistics and not extended:
        raise InvalidParameterCombination("Must specify either Statistics or ExtendedStatistics")
    metric_name = self._get_param("MetricName")
    datapoints = self.cloudwatch_backend.get_metric_statistics(
        self._get_param("Namespace"), metric_name, self._get_param("StartTime"), self._get_param("EndTime"),
        self._get_int_param("Period"), statistics, self._get_param("Dimensions", []), unit=self._get_param("Unit"),
        extended_statistics=extended)
    return ActionResult({"Label": metric_name, "Datapoints": datapoints})


# --- canned histories ----------------------------------------------------------------------------------------------

def _to_epoch(value) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return _epoch(parsed)


def generate(spec: dict, now: float) -> list[tuple[float, float]]:
    """(epoch, value) pairs of a pattern: ``daily`` (low, high, peak_hour UTC, noise share of the swing, seed),
    ``linear`` (start: the value at the first point, per_day) or ``constant`` (value); over ``days`` (default 14),
    one point every ``period`` seconds (default 300), the last one at ``end`` (default now)."""
    pattern = spec.get("pattern")
    days = float(spec.get("days", 14))
    period = float(spec.get("period", 300))
    if days <= 0 or period <= 0:
        raise ValueError("days and period must be positive")
    end = _to_epoch(spec["end"]) if spec.get("end") is not None else now
    count = int(days * 86400 // period)
    if count > MAX_HISTORY_POINTS:
        raise ValueError(f"{count} points asked; at most {MAX_HISTORY_POINTS} per load (raise period)")
    first = end - (count - 1) * period
    times = [first + i * period for i in range(count)]
    if pattern == "daily":
        low, high = float(spec["low"]), float(spec["high"])
        peak = float(spec.get("peak_hour", 14))
        noise = float(spec.get("noise", 0)) * (high - low)
        rng = random.Random(spec.get("seed", 17))
        values = []
        for epoch in times:
            hour = (epoch % 86400) / 3600.0
            value = low + (high - low) * (1 + math.cos(2 * math.pi * (hour - peak) / 24)) / 2
            values.append(min(high, max(low, value + rng.uniform(-noise, noise))) if noise else value)
    elif pattern == "linear":
        start, per_day = float(spec["start"]), float(spec["per_day"])
        values = [start + per_day * (epoch - first) / 86400 for epoch in times]
    elif pattern == "constant":
        values = [float(spec["value"])] * count
    else:
        raise ValueError(f"unknown pattern {pattern!r}: daily, linear or constant")
    return list(zip(times, values))


def load_history(lab: state.LabState, payload: dict) -> dict:
    """Put a metric history (control route ``load_metric_history``; see ``LabControl.load_metric_history``)."""
    identifier, metric = payload.get("identifier"), payload.get("metric")
    if not metric:
        raise ValueError("metric is required")
    region = payload.get("region") or "us-east-1"
    namespace = payload.get("namespace") or NAMESPACE
    dimensions = payload.get("dimensions")
    if dimensions is None:
        if not identifier:
            raise ValueError("identifier (or dimensions) is required")
        kind = payload.get("kind") or "db"
        if kind not in ("db", "cluster"):
            raise ValueError(f"kind must be db or cluster, not {kind!r}")
        dimensions = {"DBInstanceIdentifier" if kind == "db" else "DBClusterIdentifier": identifier}
    unit = payload.get("unit") or UNITS.get(metric, "None")
    now = time.time()
    if payload.get("points") is not None:
        pairs = []
        for item in payload["points"]:
            at, value = (item["timestamp"], item["value"]) if isinstance(item, dict) else item
            pairs.append((_to_epoch(at), float(value)))
    elif payload.get("spec"):
        pairs = generate(dict(payload["spec"]), now)
    else:
        raise ValueError("points or spec is required")
    if len(pairs) > MAX_HISTORY_POINTS:
        raise ValueError(f"{len(pairs)} points; at most {MAX_HISTORY_POINTS} per load")
    if any(at > now + 60 for at, _value in pairs):
        raise ValueError("a history point is in the future")
    key = series_key(region, namespace, metric, dimensions)
    with lab.lock:
        backend = cloudwatch_backends[ACCOUNT][region]
        if payload.get("replace", True):
            backend.metric_data = [d for d in backend.metric_data
                                   if not (isinstance(d, LabDatum) and d.series == key)]
        for stale in [k for k, generation in _EXCLUSIVE.items() if generation != lab.generation]:
            del _EXCLUSIVE[stale]
        if payload.get("exclusive", True):
            _EXCLUSIVE[key] = lab.generation
        else:
            _EXCLUSIVE.pop(key, None)
        shared = {str(k): str(v) for k, v in dimensions.items()}
        put = put_points([Datapoint(region, namespace, metric, shared, value, unit, at) for at, value in pairs], now,
                         live=False)
    times = [at for at, _value in pairs]
    return {"region": region, "namespace": namespace, "metric": metric, "dimensions": dimensions, "unit": unit,
            "points": put, "first": _naive_utc(min(times)).isoformat() + "Z" if times else None,
            "last": _naive_utc(max(times)).isoformat() + "Z" if times else None}


# --- the patch -----------------------------------------------------------------------------------------------------

def _stopping_publisher(original):
    def shutdown(self):
        publisher = _PUBLISHER[0]
        if publisher is not None:
            publisher.stop()
            _PUBLISHER[0] = None
        return original(self)
    return shutdown


def rds_metrics() -> None:
    """AWS/RDS metrics from each instance's PostgreSQL, published every ``metrics`` seconds; CloudWatch statistics
    with percentiles; canned histories (control route ``load_metric_history``)."""
    replace(CloudWatchBackend, "get_metric_statistics", get_metric_statistics)
    replace(CloudWatchBackend, "get_metric_data", _get_metric_data(CloudWatchBackend.get_metric_data))
    replace(CloudWatchResponse, "get_metric_statistics", _get_metric_statistics_response)
    replace(state.LabState, "shutdown", _stopping_publisher(state.LabState.shutdown))
    register_sampler("rds_instances", sample_instances)
    if state._CURRENT is not None and _PUBLISHER[0] is None:
        _PUBLISHER[0] = Publisher(state.current()).start()
