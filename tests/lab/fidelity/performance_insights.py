# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Performance Insights: the ``pi`` service (moto 5.2.5 has none), fed by the real PostgreSQL of each instance.

Sampling: every ``pi_sample`` seconds (timing key, default 1: once a second as on AWS) one thread reads
``pg_stat_activity`` of every DB instance with Performance Insights enabled (one lab_admin connection per instance,
kept open), and records its active client sessions: state ``active`` (running or waiting) or ``fastpath function
call``; idle sessions, ``idle in transaction`` sessions (a lock holder waiting for its client), the lab's own
``lab_admin`` sessions and background workers are not load, as on RDS. Each session is recorded with the dimensions
PI has for RDS PostgreSQL:

- ``db.wait_event`` (``db.wait_event.name`` "<type>:<event>", e.g. ``Lock:transactionid``, ``IO:DataFileRead``;
  ``CPU`` when the session waits for nothing; ``db.wait_event.type``) and ``db.wait_event_type``
  (``db.wait_event_type.name``: ``Lock``, ``LWLock``, ``IO``, ``Timeout``, ..., ``CPU``);
- ``db.sql`` (``db.sql.id``: SHA-1 of the statement text; ``db.sql.db_id``: "pi-" and a number from it;
  ``db.sql.statement``, the first 500 bytes, GetDimensionKeyDetails gives the whole text; ``db.sql.tokenized_id``);
- ``db.sql_tokenized`` (``db.sql_tokenized.id``: SHA-1 of database and queryid; ``db.sql_tokenized.db_id``: the
  queryid (``pg_stat_activity.query_id``), "pi-..." without one; ``db.sql_tokenized.statement``: the digest as
  pg_stat_statements has it (``$1`` for constants) once the extension is installed in the session's database and the
  statement has run, else the lab's own digest (constants as ``?``));
- ``db.user`` (``db.user.id`` the role's OID, ``db.user.name``), ``db.host`` (``db.host.id``/``db.host.name``:
  client address, ``local`` over the unix socket), ``db.application`` (``db.application.name``) and ``db``
  (``db.name``).

Samples are kept for the lab's run (at most MAX_TICKS per instance, statements at most MAX_STATEMENTS) and dropped
with the instance; a tick in which the PostgreSQL could not be read records nothing (a gap, as on AWS).

API: GetResourceMetrics, DescribeDimensionKeys, GetDimensionKeyDetails, ListAvailableResourceDimensions and
ListAvailableResourceMetrics, over JSON 1.1 (``X-Amz-Target: PerformanceInsightsv20180227.<Action>``, what boto3
sends: botocore prefers json among the model's protocols) and smithy RPC v2 CBOR (``/service/.../operation/...``).
``Identifier`` is the instance's ``DbiResourceId``; an instance without Performance Insights (or none with that id in
the region) gets NotAuthorizedException, as AWS answers. Metrics: ``db.load`` and ``db.sampledload`` (the same in
the lab: every sample is kept) with the statistics ``avg`` (average active sessions), ``max``, ``min`` and ``sum`` per
period; a period with no sample of the instance has no data point.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import re
import struct
import threading
import time
import uuid
from collections import deque
from datetime import datetime, timezone

import psycopg2

from tests.lab.fidelity._support import lab, serving_pg

LOG = logging.getLogger("tests.lab")

SERVICE = "pi"
TARGET_PREFIX = "PerformanceInsightsv20180227"
MAX_TICKS = 4 * 3600          # samples kept per instance (4 hours at one a second)
MAX_STATEMENTS = 20000        # distinct statements kept per instance
STATEMENT_BYTES = 500         # DescribeDimensionKeys / GetResourceMetrics return the first 500 bytes of a statement
PERIODS = (1, 60, 300, 3600, 86400)
STATISTICS = ("avg", "max", "min", "sum")
METRICS = {"db.load": "The number of active sessions for the DB engine (average active sessions).",
           "db.sampledload": "The number of active sessions for the DB engine, from the sampled sessions."}
DEFAULT_LIMIT = 10
MAX_LIMIT = 25

# Dimension groups of RDS PostgreSQL and their dimensions (the first one identifies a key of the group).
GROUPS = {
    "db.wait_event": ("db.wait_event.name", "db.wait_event.type"),
    "db.wait_event_type": ("db.wait_event_type.name",),
    "db.sql": ("db.sql.id", "db.sql.db_id", "db.sql.statement", "db.sql.tokenized_id"),
    "db.sql_tokenized": ("db.sql_tokenized.id", "db.sql_tokenized.db_id", "db.sql_tokenized.statement"),
    "db.user": ("db.user.id", "db.user.name"),
    "db.host": ("db.host.id", "db.host.name"),
    "db.application": ("db.application.name",),
    "db": ("db.name",),
}
DIMENSIONS = {dimension: group for group, dimensions in GROUPS.items() for dimension in dimensions}

_SAMPLE_SQL = """
SELECT wait_event_type, wait_event, query, query_id, usename, usesysid::text, host(client_addr), client_hostname,
       application_name, datname
  FROM pg_stat_activity
 WHERE backend_type = 'client backend' AND state IN ('active', 'fastpath function call')
   AND pid <> pg_backend_pid() AND usename IS DISTINCT FROM %s
"""


class PiError(Exception):
    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _invalid(message: str) -> PiError:
    return PiError("InvalidArgumentException", message)


# --- samples ---------------------------------------------------------------------------------------------------

class Session:
    """One active session in one sample: its dimension values (``values``) by dimension name."""

    __slots__ = ("values",)

    def __init__(self, values: dict):
        self.values = values


class InstanceSamples:
    """The samples of one PI-enabled instance: (epoch, sessions) ticks and the full text of its statements."""

    def __init__(self, resource_id: str, account: str, region: str):
        self.resource_id, self.account, self.region = resource_id, account, region
        self.ticks: deque = deque(maxlen=MAX_TICKS)
        self.statements: dict[str, str] = {}    # db.sql.id -> full text
        self.digests: dict[str, dict] = {}      # db.sql_tokenized.id -> text, query_id, datname, pgss
        self.next_lookup: dict[str, float] = {}  # database -> when pg_stat_statements may be read again
        self.database = None                    # the moto DBInstance, as of the last tick
        self.lock = threading.Lock()

    def window(self, start: float, end: float) -> list[tuple[float, tuple]]:
        with self.lock:
            return [tick for tick in self.ticks if start <= tick[0] < end]


class Sampler:
    """The sampling thread and the samples of every instance (by DbiResourceId)."""

    def __init__(self):
        self.instances: dict[str, InstanceSamples] = {}
        self._connections: dict[str, tuple] = {}   # resource id -> (pg, connection)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._sessions_interned: dict[tuple, Session] = {}

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lab-performance-insights", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                interval = lab().timing.seconds("pi_sample")
            except (RuntimeError, KeyError):  # no lab in this process (yet)
                interval = 0.0
            if interval <= 0:
                time.sleep(0.5)
                continue
            started = time.monotonic()
            try:
                self.tick(time.time())
            except Exception:  # never let the sampler die: the next tick tries again
                LOG.exception("Performance Insights sampling failed")
            time.sleep(max(0.05, interval - (time.monotonic() - started)))

    def get(self, resource_id: str) -> InstanceSamples | None:
        with self._lock:
            return self.instances.get(resource_id)

    def tick(self, now: float) -> None:
        """Sample every PI-enabled instance once; forget instances that are gone."""
        seen = set()
        for account, region, database in _pi_instances():
            resource_id = database.dbi_resource_id
            seen.add(resource_id)
            with self._lock:
                samples = self.instances.get(resource_id)
                if samples is None or (samples.account, samples.region) != (account, region):
                    samples = self.instances[resource_id] = InstanceSamples(resource_id, account, region)
            samples.database = database
            sessions = self._sample(resource_id, database, samples)
            if sessions is not None:
                with samples.lock:
                    samples.ticks.append((now, tuple(sessions)))
        with self._lock:
            for resource_id in [r for r in self.instances if r not in seen]:
                del self.instances[resource_id]
            for resource_id in [r for r in self._connections if r not in seen]:
                _close(self._connections.pop(resource_id)[1])
            if len(self._sessions_interned) > 100000:
                self._sessions_interned.clear()

    def _connection(self, resource_id: str, pg):
        held = self._connections.get(resource_id)
        if held is not None and held[0] is pg and not held[1].closed:
            return held[1]
        if held is not None:
            _close(held[1])
        conn = psycopg2.connect(host=str(pg.socket_dir), port=pg.port, user=_admin_user(), dbname="postgres",
                                connect_timeout=2, application_name="lab_performance_insights")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SET statement_timeout = 2000")
        self._connections[resource_id] = (pg, conn)
        return conn

    def _sample(self, resource_id: str, database, samples: InstanceSamples) -> list[Session] | None:
        pg = serving_pg(database)
        if pg is None:
            return None
        try:
            conn = self._connection(resource_id, pg)
            with conn.cursor() as cur:
                cur.execute(_SAMPLE_SQL, (_admin_user(),))
                rows = cur.fetchall()
        except psycopg2.Error:  # restarting, failing over, stopped: no sample this tick
            held = self._connections.pop(resource_id, None)
            if held is not None:
                _close(held[1])
            return None
        sessions = [self._session(samples, row) for row in rows]
        with samples.lock:
            digests = {s.values["db.sql_tokenized.id"] for s in sessions}
            pending = [samples.digests[d] for d in digests if d in samples.digests and not samples.digests[d]["pgss"]]
        if pending:
            self.resolve(pg, samples, pending)  # one query per database and tick at most
        return sessions

    def _session(self, samples: InstanceSamples, row) -> Session:
        wait_type, wait_event, query, query_id, user, user_id, address, hostname, application, datname = row
        query = query or ""
        sql_id = _sha1(query)
        tokenized_id, db_id = self._digest(samples, datname, query_id, query)
        with samples.lock:
            if sql_id not in samples.statements and len(samples.statements) < MAX_STATEMENTS:
                samples.statements[sql_id] = query
        host = hostname or address or "local"
        values = {
            "db.wait_event.name": f"{wait_type}:{wait_event}" if wait_type else "CPU",
            "db.wait_event.type": wait_type or "CPU",
            "db.wait_event_type.name": wait_type or "CPU",
            "db.sql.id": sql_id,
            "db.sql.db_id": f"pi-{int(sql_id[:12], 16)}",
            "db.sql.statement": _truncate(query),
            "db.sql.tokenized_id": tokenized_id,
            "db.sql_tokenized.id": tokenized_id,
            "db.sql_tokenized.db_id": db_id,
            "db.user.id": user_id or "",
            "db.user.name": user or "",
            "db.host.id": host,
            "db.host.name": host,
            "db.application.name": application or "",
            "db.name": datname or "",
        }
        key = tuple(values.values())
        session = self._sessions_interned.get(key)
        if session is None:
            session = self._sessions_interned[key] = Session(values)
        return session

    @staticmethod
    def _digest(samples: InstanceSamples, datname, query_id, query: str) -> tuple[str, str]:
        """(db.sql_tokenized.id, db.sql_tokenized.db_id) of a statement; its text is kept in ``samples.digests``."""
        if query_id is not None:
            tokenized_id, db_id = _sha1(f"{datname}:{query_id}"), str(query_id)
        else:
            tokenized_id = _sha1(tokenize(query))
            db_id = f"pi-{int(tokenized_id[:12], 16)}"
        with samples.lock:
            if tokenized_id not in samples.digests and len(samples.digests) < MAX_STATEMENTS:
                samples.digests[tokenized_id] = {"text": tokenize(query), "query_id": query_id, "datname": datname,
                                                 "pgss": False}
        return tokenized_id, db_id

    @staticmethod
    def resolve(pg, samples: InstanceSamples, entries: list[dict], force: bool = False) -> None:
        """Replace the lab's digests by pg_stat_statements' where it has their queryid (one short lab_admin session in
        the statement's database). pg_stat_statements shows a statement once it has run (not while it waits): the
        sampler looks at most every 2 s per database, every 30 s where the extension is not installed; an answer
        (``force``) looks again at once."""
        now = time.monotonic()
        by_database: dict[str, list[dict]] = {}
        for entry in entries:
            if not entry["pgss"] and entry["query_id"] is not None and entry["datname"]:
                by_database.setdefault(entry["datname"], []).append(entry)
        for datname, pending in by_database.items():
            if not force and samples.next_lookup.get(datname, 0.0) > now:
                continue
            try:
                rows = dict(pg.admin_query("SELECT queryid, query FROM pg_stat_statements WHERE queryid = ANY(%s)",
                                           ([entry["query_id"] for entry in pending],), db=datname))
            except psycopg2.Error:  # not installed in that database (or the server is restarting)
                rows, wait = {}, 30.0
            else:
                wait = 2.0
            samples.next_lookup[datname] = now + wait
            for entry in pending:
                if entry["query_id"] in rows:
                    entry["text"], entry["pgss"] = rows[entry["query_id"]], True

    def refresh(self, samples: InstanceSamples) -> None:
        """Before an answer: digests still pending get another look in pg_stat_statements."""
        pg = serving_pg(samples.database) if samples.database is not None else None
        if pg is None:
            return
        with samples.lock:
            pending = [entry for entry in samples.digests.values() if not entry["pgss"]]
        if pending:
            self.resolve(pg, samples, pending, force=True)


def _admin_user() -> str:
    from tests.lab.postgres import ADMIN_USER
    return ADMIN_USER


def _close(conn) -> None:
    try:
        conn.close()
    except Exception:  # already gone
        pass


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "replace")).hexdigest().upper()


def _truncate(text: str) -> str:
    data = text.encode("utf-8")
    if len(data) <= STATEMENT_BYTES:
        return text
    return data[:STATEMENT_BYTES].decode("utf-8", "ignore")


_TOKENS = re.compile(r"'(?:[^']|'')*'|\$\d+|\b\d+(?:\.\d+)?\b")


def tokenize(query: str) -> str:
    """The lab's digest of a statement without pg_stat_statements: constants as ``?``, whitespace collapsed."""
    return " ".join(_TOKENS.sub("?", query).split())


def _pi_instances():
    """(account, region, DBInstance) of every instance with Performance Insights enabled and a PostgreSQL engine."""
    from moto.rds.models import rds_backends
    for account_id, account in list(rds_backends.items()):
        for region, backend in list(account.items()):
            for database in list(backend.databases.values()):
                if database.__dict__.get("enable_performance_insights") and "postgres" in (database.engine or ""):
                    yield account_id, region, database


SAMPLER = Sampler()


# --- the API ---------------------------------------------------------------------------------------------------

def _epoch(value, name: str) -> float:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    raise _invalid(f"{name} is not a valid timestamp")


def _when(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)


def _required(params: dict, *names: str) -> None:
    missing = [name for name in names if params.get(name) in (None, "", [])]
    if missing:
        raise _invalid(f"Missing required parameter(s): {', '.join(missing)}")


def _instance(params: dict, region: str) -> InstanceSamples:
    _required(params, "ServiceType", "Identifier")
    service_type, identifier = params["ServiceType"], params["Identifier"]
    if service_type not in ("RDS", "DOCDB"):
        raise _invalid(f"ServiceType {service_type} is not valid: use RDS or DOCDB")
    # moto decides (the sampler's last tick may predate a create, a delete or a modify of Performance Insights).
    database = next((d for _unused, r, d in _pi_instances() if r == region and d.dbi_resource_id == identifier), None)
    if database is None or service_type != "RDS":
        raise PiError("NotAuthorizedException", f"The resource {identifier} for service type {service_type} is "
                                                f"not authorized for this account")
    samples = SAMPLER.get(identifier)
    if samples is None or samples.region != region:
        samples = InstanceSamples(identifier, "", region)
    return samples


def _window(params: dict) -> tuple[float, float, int]:
    _required(params, "StartTime", "EndTime")
    start, end = _epoch(params["StartTime"], "StartTime"), _epoch(params["EndTime"], "EndTime")
    if start >= end:
        raise _invalid("StartTime must be before EndTime")
    period = params.get("PeriodInSeconds")
    if period is None:
        # As AWS: a period giving no more than about 100-200 data points.
        period = next((p for p in PERIODS if (end - start) / p <= 200), PERIODS[-1])
    elif period not in PERIODS:
        raise _invalid(f"PeriodInSeconds must be one of {', '.join(str(p) for p in PERIODS)}")
    return math.floor(start / period) * period, math.ceil(end / period) * period, int(period)


def _metric(name: str) -> tuple[str, str]:
    base, _unused, statistic = (name or "").rpartition(".")
    if base not in METRICS:
        raise _invalid(f"The specified metric is not a known metric: {name}")
    if statistic not in STATISTICS:
        raise _invalid(f"The specified statistic is not a known statistic: {name}")
    return base, statistic


def _group(spec, what: str = "GroupBy") -> tuple[str, tuple, int] | None:
    """(group, dimensions returned, limit) of a DimensionGroup."""
    if spec is None:
        return None
    if not isinstance(spec, dict) or not spec.get("Group"):
        raise _invalid(f"{what} needs a Group")
    group = spec["Group"]
    if group not in GROUPS:
        raise _invalid(f"This group is not a known group: {group} is not valid for current resource")
    dimensions = tuple(spec.get("Dimensions") or GROUPS[group])
    for dimension in dimensions:
        if dimension not in GROUPS[group]:
            raise _invalid(f"The dimension {dimension} is not in the group {group}")
    limit = spec.get("Limit", DEFAULT_LIMIT)
    if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise _invalid(f"{what}.Limit must be between 1 and {MAX_LIMIT}")
    return group, dimensions, limit


def _filter(spec, *groups) -> dict:
    spec = spec or {}
    allowed = [g for g in groups if g]
    for dimension in spec:
        if dimension not in DIMENSIONS:
            raise _invalid(f"The filter dimension {dimension} is not a known dimension")
        if allowed and DIMENSIONS[dimension] not in allowed:
            raise _invalid(f"The filter dimension {dimension} is not in the GroupBy or PartitionBy group "
                           f"({', '.join(allowed)})")
    return dict(spec)


def _value(session: Session, dimension: str, samples: InstanceSamples) -> str:
    if dimension == "db.sql_tokenized.statement":  # the digest's text may improve once pg_stat_statements has it
        entry = samples.digests.get(session.values["db.sql_tokenized.id"])
        return _truncate(entry["text"]) if entry else ""
    return session.values.get(dimension, "")


def _matches(session: Session, filters: dict, samples: InstanceSamples) -> bool:
    return all(_value(session, dimension, samples) == value for dimension, value in filters.items())


def _key(session: Session, group: str) -> tuple:
    return tuple(session.values[dimension] for dimension in GROUPS[group][:1])  # the group's id dimension


def _dimensions(session: Session, dimensions: tuple, samples: InstanceSamples) -> dict:
    values = {dimension: _value(session, dimension, samples) for dimension in dimensions}
    return {dimension: value for dimension, value in values.items() if value != ""}


def _aggregate(ticks, key_of, statistic: str) -> tuple[dict, dict]:
    """({key: the statistic of its active sessions per tick}, {key: sessions counted}) in one pass over the ticks;
    ``key_of(session)`` is None for a session left out."""
    sums: dict = {}
    maxima: dict = {}
    minima: dict = {}
    present: dict = {}
    for _unused, sessions in ticks:
        counts: dict = {}
        for session in sessions:
            key = key_of(session)
            if key is not None:
                counts[key] = counts.get(key, 0) + 1
        for key, count in counts.items():
            sums[key] = sums.get(key, 0) + count
            maxima[key] = max(maxima.get(key, 0), count)
            minima[key] = min(minima.get(key, count), count)
            present[key] = present.get(key, 0) + 1
    values = {}
    for key, total in sums.items():
        if statistic == "avg":
            values[key] = total / len(ticks)
        elif statistic == "sum":
            values[key] = float(total)
        elif statistic == "max":
            values[key] = float(maxima[key])
        else:  # min: a tick without the key counts 0
            values[key] = float(minima[key]) if present[key] == len(ticks) else 0.0
    return values, sums


def _ranked(values: dict, counts: dict) -> list:
    """Keys by their statistic, then by sessions counted, most load first."""
    return sorted(values, key=lambda key: (-values[key], -counts[key], key))


def _periods(ticks, start: float, period: int) -> list[tuple[float, list]]:
    """[(period start, ticks in it)] of the periods that have ticks."""
    buckets: dict[int, list] = {}
    for tick in ticks:
        buckets.setdefault(int((tick[0] - start) // period), []).append(tick)
    return [(start + index * period, buckets[index]) for index in sorted(buckets)]


def _examples(ticks, group: str) -> dict:
    """{key of the group: a session of it}."""
    return {_key(session, group): session for _unused, sessions in ticks for session in sessions}


def get_resource_metrics(params: dict, region: str) -> dict:
    samples = _instance(params, region)
    start, end, period = _window(params)
    SAMPLER.refresh(samples)
    queries = params.get("MetricQueries")
    if not isinstance(queries, list) or not 1 <= len(queries) <= 15:
        raise _invalid("MetricQueries must hold 1 to 15 queries")
    alignment = params.get("PeriodAlignment") or "END_TIME"
    if alignment not in ("END_TIME", "START_TIME"):
        raise _invalid("PeriodAlignment must be END_TIME or START_TIME")
    ticks = samples.window(start, end)
    periods = _periods(ticks, start, period)
    offset = period if alignment == "END_TIME" else 0
    metric_list = []
    for query in queries:
        _required(query, "Metric")
        _unused, statistic = _metric(query["Metric"])
        group = _group(query.get("GroupBy"))
        filters = _filter(query.get("Filter"), group[0] if group else None)

        total_key = functools.partial(_total_key, filters, samples)
        per_period = [(p, _aggregate(bucket, total_key, statistic)[0]) for p, bucket in periods]
        metric_list.append({"Key": {"Metric": query["Metric"]},
                            "DataPoints": [{"Timestamp": _when(p + offset), "Value": values.get((), 0.0)}
                                           for p, values in per_period]})
        if not group:
            continue
        name, dimensions, limit = group

        group_key = functools.partial(_group_key, filters, samples, name)
        top = _ranked(*_aggregate(ticks, group_key, "sum"))[:limit]
        examples = _examples(ticks, name)
        per_period = [(p, _aggregate(bucket, group_key, statistic)[0]) for p, bucket in periods]
        for key in top:
            metric_list.append({
                "Key": {"Metric": query["Metric"], "Dimensions": _dimensions(examples[key], dimensions, samples)},
                "DataPoints": [{"Timestamp": _when(p + offset), "Value": values.get(key, 0.0)}
                               for p, values in per_period]})
    return {"AlignedStartTime": _when(start), "AlignedEndTime": _when(end), "Identifier": samples.resource_id,
            "MetricList": metric_list}


def _total_key(filters, samples, session):
    return () if _matches(session, filters, samples) else None


def _group_key(filters, samples, name, session):
    return _key(session, name) if _matches(session, filters, samples) else None


def _page(params: dict, items: list) -> tuple[list, str | None]:
    size = params.get("MaxResults") or DEFAULT_LIMIT
    if not isinstance(size, int) or not 0 <= size <= MAX_LIMIT:
        raise _invalid(f"MaxResults must be between 0 and {MAX_LIMIT}")
    offset = 0
    token = params.get("NextToken")
    if token:
        match = re.fullmatch(r"lab-offset-(\d+)", str(token))
        if not match:
            raise _invalid("The NextToken is not valid")
        offset = int(match.group(1))
    rest = items[offset + size:]
    return items[offset:offset + size], f"lab-offset-{offset + size}" if rest else None


def describe_dimension_keys(params: dict, region: str) -> dict:
    samples = _instance(params, region)
    start, end, _unused = _window(params)
    SAMPLER.refresh(samples)
    _required(params, "Metric", "GroupBy")
    _unused, statistic = _metric(params["Metric"])
    name, dimensions, limit = _group(params["GroupBy"])
    partition = _group(params.get("PartitionBy"), "PartitionBy")
    if params.get("AdditionalMetrics"):
        raise _invalid("The lab's Performance Insights serves no AdditionalMetrics (db.sql_tokenized.stats.*)")
    filters = _filter(params.get("Filter"), name, partition[0] if partition else None)
    ticks = samples.window(start, end)

    def group_key(session):
        return _key(session, name) if _matches(session, filters, samples) else None

    totals, counts = _aggregate(ticks, group_key, statistic)
    keys = _ranked(totals, counts)[:limit]
    examples = _examples(ticks, name)
    partition_keys, partitions, partition_examples = [], {}, {}
    if partition:
        def partition_key(session):
            return _key(session, partition[0]) if _matches(session, filters, samples) else None

        def both_keys(session):
            return (_key(session, name), _key(session, partition[0])) if _matches(session, filters, samples) else None

        partition_keys = _ranked(*_aggregate(ticks, partition_key, statistic))[:partition[2]]
        partitions = _aggregate(ticks, both_keys, statistic)[0]
        partition_examples = _examples(ticks, partition[0])
    described = []
    for key in keys:
        entry = {"Dimensions": _dimensions(examples[key], dimensions, samples), "Total": totals[key]}
        if partition:
            entry["Partitions"] = [partitions.get((key, pkey), 0.0) for pkey in partition_keys]
        described.append(entry)
    page, token = _page(params, described)
    result = {"AlignedStartTime": _when(start), "AlignedEndTime": _when(end), "Keys": page}
    if partition:
        result["PartitionKeys"] = [{"Dimensions": _dimensions(partition_examples[pkey], partition[1], samples)}
                                   for pkey in partition_keys]
    if token:
        result["NextToken"] = token
    return result


def get_dimension_key_details(params: dict, region: str) -> dict:
    samples = _instance(params, region)
    _required(params, "Group", "GroupIdentifier")
    if params["Group"] != "db.sql":
        raise _invalid(f"The group {params['Group']} is not supported: RDS has the details of db.sql")
    requested = params.get("RequestedDimensions") or ["db.sql.statement"]
    for dimension in requested:
        if dimension != "db.sql.statement":
            raise _invalid(f"The dimension {dimension} is not available: request db.sql.statement")
    with samples.lock:
        text = samples.statements.get(params["GroupIdentifier"])
    if text is None:
        raise _invalid(f"No SQL statement with db.sql.id {params['GroupIdentifier']} in the samples of "
                       f"{samples.resource_id}")
    return {"Dimensions": [{"Dimension": "db.sql.statement", "Value": text, "Status": "AVAILABLE"}]}


def list_available_resource_dimensions(params: dict, region: str) -> dict:
    _instance(params, region)
    metrics = params.get("Metrics") or []
    if not metrics:
        raise _invalid("Missing required parameter(s): Metrics")
    for metric in metrics:
        if metric not in METRICS:
            raise _invalid(f"The specified metric is not a known metric: {metric}")
    groups = [{"Group": group, "Dimensions": [{"Identifier": d} for d in dims]} for group, dims in GROUPS.items()]
    return {"MetricDimensions": [{"Metric": metric, "Groups": groups} for metric in metrics]}


def list_available_resource_metrics(params: dict, region: str) -> dict:
    _instance(params, region)
    types = params.get("MetricTypes") or []
    if not types:
        raise _invalid("Missing required parameter(s): MetricTypes")
    metrics = [{"Metric": name, "Description": text, "Unit": "Sessions"} for name, text in METRICS.items()]
    page, token = _page(params, metrics if "db" in types else [])
    return dict({"Metrics": page}, **({"NextToken": token} if token else {}))


ACTIONS = {
    "GetResourceMetrics": get_resource_metrics,
    "DescribeDimensionKeys": describe_dimension_keys,
    "GetDimensionKeyDetails": get_dimension_key_details,
    "ListAvailableResourceDimensions": list_available_resource_dimensions,
    "ListAvailableResourceMetrics": list_available_resource_metrics,
}


# --- wire protocols --------------------------------------------------------------------------------------------

_CREDENTIAL_REGION = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/")


def _cbor_head(major: int, number: int) -> bytes:
    if number < 24:
        return bytes([major << 5 | number])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if number < 1 << (8 * size):
            return bytes([major << 5 | info]) + number.to_bytes(size, "big")
    raise ValueError("integer too large for CBOR")


def cbor_dumps(value) -> bytes:
    """CBOR of what the PI answers hold: maps, lists, strings, numbers, booleans and timestamps (tag 1)."""
    if value is None:
        return b"\xf6"
    if value is True:
        return b"\xf5"
    if value is False:
        return b"\xf4"
    if isinstance(value, datetime):
        return b"\xc1" + cbor_dumps(float(value.timestamp()))
    if isinstance(value, int):
        return _cbor_head(0, value) if value >= 0 else _cbor_head(1, -1 - value)
    if isinstance(value, float):
        return b"\xfb" + struct.pack(">d", value)
    if isinstance(value, str):
        data = value.encode("utf-8")
        return _cbor_head(3, len(data)) + data
    if isinstance(value, (bytes, bytearray)):
        return _cbor_head(2, len(value)) + bytes(value)
    if isinstance(value, (list, tuple)):
        return _cbor_head(4, len(value)) + b"".join(cbor_dumps(item) for item in value)
    if isinstance(value, dict):
        return _cbor_head(5, len(value)) + b"".join(cbor_dumps(k) + cbor_dumps(v) for k, v in value.items())
    raise TypeError(f"no CBOR for {type(value).__name__}")


def cbor_loads(body: bytes):
    """A CBOR request body, decoded by botocore's own CBOR reader (timestamps come back as datetimes)."""
    from botocore.parsers import RpcV2CBORParser
    parser = RpcV2CBORParser()
    return parser.parse_data_item(parser.get_peekable_stream_from_bytes(body)) if body else {}


def _json_default(value):
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(f"no JSON for {type(value).__name__}")


def handle(environ, body: bytes, start_response):
    """WSGI-style handler of one ``pi`` request (the lab's server routes the ``pi`` signing name here)."""
    target = environ.get("HTTP_X_AMZ_TARGET") or ""
    path = environ.get("PATH_INFO", "") or ""
    cbor = not target
    if target:
        action = target.rsplit(".", 1)[-1] if target.startswith(TARGET_PREFIX + ".") else ""
    else:
        prefix = f"/service/{TARGET_PREFIX}/operation/"
        action = path[len(prefix):].strip("/") if path.startswith(prefix) else ""
    match = _CREDENTIAL_REGION.search(environ.get("HTTP_AUTHORIZATION", "") or "")
    region = match.group(1) if match else "us-east-1"
    try:
        try:
            params = (cbor_loads(body) if cbor else json.loads(body or b"{}")) or {}
        except Exception:
            raise PiError("SerializationException", "The request body could not be read") from None
        if not isinstance(params, dict):
            raise PiError("SerializationException", "The request body is not a structure")
        if action not in ACTIONS:
            raise PiError("UnknownOperationException", f"The lab's Performance Insights has no operation {action!r}")
        status, result = 200, ACTIONS[action](params, region)
    except PiError as exc:
        status, result = exc.status, {"__type": exc.code, "message": exc.message}
    request_id = str(uuid.uuid4())
    headers = [("x-amzn-RequestId", request_id)]
    if cbor:
        payload = cbor_dumps(result)
        headers += [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")]
    else:
        payload = json.dumps(result, default=_json_default).encode()
        headers.append(("Content-Type", "application/x-amz-json-1.1"))
    if status != 200:
        headers.append(("x-amzn-ErrorType", result["__type"]))
    headers.append(("Content-Length", str(len(payload))))
    start_response(f"{status} {'OK' if status == 200 else 'Bad Request'}", headers)
    return [payload]


def performance_insights_api() -> None:
    """The ``pi`` service: GetResourceMetrics, DescribeDimensionKeys, GetDimensionKeyDetails and the two list
    actions, from samples of pg_stat_activity taken once a second on every PI-enabled instance."""
    from tests.lab import server
    server.LAB_SERVICES[SERVICE] = handle
    SAMPLER.start()
