# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What pg_stat_statements and the statistics views say about a PostgreSQL database, as findings with advice.

Pure functions: the SQL text for the server's version, the findings from the rows ``rds_pg_stats_info`` read, and
the checks of its options.
"""

from __future__ import annotations

from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import identifier_problems

# Orderings of the top-statement lists and the pg_stat_statements column each one sorts by (PostgreSQL 13 and later
# split planning from execution time and renamed total_time to total_exec_time).
ORDERINGS = {"total_time": "total_exec_time", "mean_time": "mean_exec_time", "calls": "calls"}

STATEMENT_FIELDS = ("queryid", "database", "user", "query", "calls", "total_exec_time_ms", "mean_exec_time_ms",
                    "max_exec_time_ms", "stddev_exec_time_ms", "rows", "shared_blks_hit", "shared_blks_read")

DEFAULT_LIMITS = dict(
    cache_hit_ratio_min=0.99,
    connection_use_max=0.80,
    xid_age_max=1_000_000_000,
    long_running_seconds=300,
)

# Wraparound: PostgreSQL refuses new transaction IDs near 2^31 (about 2.1 billion) of age.
XID_WRAPAROUND_LIMIT = 2 ** 31


def statements_sql(server_version_num, order_by, limit):
    """SELECT over pg_stat_statements for the top ``limit`` statements by ``order_by`` (a key of ORDERINGS)."""
    if order_by not in ORDERINGS:
        raise ValueError(f"order_by must be one of {', '.join(ORDERINGS)}")
    modern = int(server_version_num) >= 130000
    total = "s.total_exec_time" if modern else "s.total_time"
    mean = "s.mean_exec_time" if modern else "s.mean_time"
    maxt = "s.max_exec_time" if modern else "s.max_time"
    stddev = "s.stddev_exec_time" if modern else "s.stddev_time"
    column = {"total_time": total, "mean_time": mean, "calls": "s.calls"}[order_by]
    return (
        "SELECT s.queryid, d.datname, r.rolname, s.query, s.calls, "
        f"{total}, {mean}, {maxt}, {stddev}, s.rows, s.shared_blks_hit, s.shared_blks_read "
        "FROM pg_stat_statements s "
        "LEFT JOIN pg_database d ON d.oid = s.dbid "
        "LEFT JOIN pg_roles r ON r.oid = s.userid "
        f"ORDER BY {column} DESC NULLS LAST LIMIT {int(limit)}"
    )


def statement_rows(rows, max_query_length=2000):
    """Rows of :func:`statements_sql` as dicts; times in milliseconds, rounded to the microsecond."""
    result = []
    for row in rows:
        item = dict(zip(STATEMENT_FIELDS, row))
        for key in ("total_exec_time_ms", "mean_exec_time_ms", "max_exec_time_ms", "stddev_exec_time_ms"):
            item[key] = None if item[key] is None else round(float(item[key]), 3)
        for key in ("queryid", "calls", "rows", "shared_blks_hit", "shared_blks_read"):
            item[key] = None if item[key] is None else int(item[key])
        if item["query"] is not None and len(item["query"]) > max_query_length:
            item["query"] = item["query"][:max_query_length] + "…"
        result.append(item)
    return result


def cache_hit_ratio(blks_hit, blks_read):
    """Share of block reads served from shared_buffers, or None before any block was read."""
    hit, read = int(blks_hit or 0), int(blks_read or 0)
    if hit + read == 0:
        return None
    return round(hit / (hit + read), 6)


def connection_use(used, max_connections, reserved=0):
    """Connections in use against max_connections (and against what ordinary users may open)."""
    used, max_connections, reserved = int(used), int(max_connections), int(reserved or 0)
    available = max(max_connections - reserved, 0)
    return dict(
        used=used,
        max_connections=max_connections,
        reserved_connections=reserved,
        available_to_users=available,
        ratio=round(used / max_connections, 6) if max_connections else None,
    )


def _finding(name, severity, observed, threshold, advice):
    return dict(name=name, severity=severity, observed=observed, threshold=threshold, advice=advice)


def findings(stats, limits=None):
    """Findings, each with a one-line advice, from the collected figures.

    ``stats`` holds: pg_stat_statements (dict with installed, preloaded), top_statements (dict of lists),
    cache_hit_ratio, connections (from :func:`connection_use`), oldest_xid (dict with database, age),
    long_running_transactions (list). ``limits`` overrides DEFAULT_LIMITS.
    """
    limits = dict(DEFAULT_LIMITS, **{k: v for k, v in (limits or {}).items() if v is not None})
    result = []
    pss = stats.get("pg_stat_statements") or {}
    if not pss.get("preloaded"):
        result.append(_finding(
            "pg_stat_statements_not_preloaded", "warning", False, True,
            "Add pg_stat_statements to shared_preload_libraries in the instance's parameter group (static: reboot "
            "to apply), for example with dbre.rds.rds_param_tune overrides.",
        ))
    elif not pss.get("installed"):
        result.append(_finding(
            "pg_stat_statements_not_installed", "warning", False, True,
            "Run CREATE EXTENSION pg_stat_statements in this database (community.postgresql.postgresql_ext) to see "
            "which statements use the time.",
        ))

    ratio = stats.get("cache_hit_ratio")
    if ratio is not None and ratio < limits["cache_hit_ratio_min"]:
        result.append(_finding(
            "low_cache_hit_ratio", "warning", ratio, limits["cache_hit_ratio_min"],
            f"Only {ratio:.2%} of block reads came from shared_buffers: look at the statements with the most "
            "shared_blks_read for missing indexes, or move to a class with more memory.",
        ))

    connections = stats.get("connections") or {}
    if connections.get("ratio") is not None and connections["ratio"] > limits["connection_use_max"]:
        result.append(_finding(
            "high_connection_use", "critical" if connections["ratio"] >= 0.95 else "warning", connections["ratio"],
            limits["connection_use_max"],
            f"{connections['used']} of {connections['max_connections']} connections are in use: put a pooler (RDS "
            "Proxy or PgBouncer) in front, or close idle sessions, before raising max_connections.",
        ))

    oldest = stats.get("oldest_xid") or {}
    if oldest.get("age") is not None and oldest["age"] > limits["xid_age_max"]:
        share = oldest["age"] / XID_WRAPAROUND_LIMIT
        result.append(_finding(
            "old_transaction_ids", "critical" if share > 0.75 else "warning", oldest["age"], limits["xid_age_max"],
            f"Database {oldest.get('database')} is {share:.0%} of the way to transaction ID wraparound: find what "
            "blocks autovacuum (long transactions, replication slots, prepared transactions) and VACUUM FREEZE it.",
        ))

    long_running = stats.get("long_running_transactions") or []
    if long_running:
        longest = max(item["seconds"] for item in long_running)
        result.append(_finding(
            "long_running_transactions", "warning", len(long_running), 0,
            f"{len(long_running)} transaction(s) open longer than {limits['long_running_seconds']} s (longest "
            f"{longest:.0f} s): they hold back vacuum; set idle_in_transaction_session_timeout or end them.",
        ))

    top = (stats.get("top_statements") or {}).get("total_time") or []
    total = sum(item.get("total_exec_time_ms") or 0 for item in top)
    if top and total > 0:
        first = top[0]
        share = (first.get("total_exec_time_ms") or 0) / total
        if share >= 0.5 and (first.get("calls") or 0) > 1:
            result.append(_finding(
                "dominant_statement", "info", round(share, 4), 0.5,
                f"One statement ({first.get('calls')} calls, mean {first.get('mean_exec_time_ms')} ms) takes "
                f"{share:.0%} of the execution time of the top statements: start tuning there (EXPLAIN ANALYZE).",
            ))
    return result


def objectives(stats, limits=None):
    """The findings' figures as drill-report objectives (name, objective, observed, unit, held)."""
    limits = dict(DEFAULT_LIMITS, **{k: v for k, v in (limits or {}).items() if v is not None})
    result = []
    ratio = stats.get("cache_hit_ratio")
    result.append(dict(name="cache hit ratio (at least)", objective=limits["cache_hit_ratio_min"], observed=ratio,
                       unit=None, held=ratio is None or ratio >= limits["cache_hit_ratio_min"]))
    connections = stats.get("connections") or {}
    use = connections.get("ratio")
    result.append(dict(name="connection use (at most)", objective=limits["connection_use_max"], observed=use,
                       unit=None, held=use is None or use <= limits["connection_use_max"]))
    age = (stats.get("oldest_xid") or {}).get("age")
    result.append(dict(name="oldest transaction ID age (at most)", objective=limits["xid_age_max"], observed=age,
                       unit=None, held=age is None or age <= limits["xid_age_max"]))
    count = len(stats.get("long_running_transactions") or [])
    result.append(dict(name=f"transactions open longer than {limits['long_running_seconds']} s", objective=0,
                       observed=count, unit=None, held=count == 0))
    return result


def option_problems(params):
    """What is wrong with rds_pg_stats_info's own options (connection and report options are checked by
    pg_connection and drill_report); each message names the fix. Empty when they are valid."""
    problems = []
    identifier = params.get("db_instance_identifier")
    if identifier is not None:
        problems += identifier_problems(identifier, "db_instance_identifier")
    elif not params.get("login_host"):
        problems.append("name the database: db_instance_identifier (its endpoint is described) or login_host")
    if params.get("login_host") is not None and not str(params["login_host"]).strip():
        problems.append("login_host must not be blank: leave it out to connect to the instance's endpoint")
    if not params.get("login_user"):
        problems.append("login_user is required: the login that reads pg_stat_statements (a member of pg_monitor)")
    port = params.get("login_port")
    if port is not None and not 1 <= int(port) <= 65535:
        problems.append(f"login_port must be from 1 to 65535, got {port}")
    limit = params.get("limit")
    if limit is not None and not 1 <= int(limit) <= 1000:
        problems.append(f"limit must be from 1 to 1000 statements per list, got {limit}")
    length = params.get("max_query_length")
    if length is not None and int(length) < 20:
        problems.append(f"max_query_length must be at least 20 characters, got {length}")
    ratio = params.get("cache_hit_ratio_min")
    if ratio is not None and not 0 <= float(ratio) <= 1:
        problems.append(f"cache_hit_ratio_min is a share from 0 to 1 (0.99 for 99 %), got {ratio}")
    use = params.get("connection_use_max")
    if use is not None and not 0 < float(use) <= 1:
        problems.append(f"connection_use_max is a share above 0 and at most 1 (0.8 for 80 %), got {use}")
    age = params.get("xid_age_max")
    if age is not None and not 1 <= int(age) < XID_WRAPAROUND_LIMIT:
        problems.append(f"xid_age_max must be from 1 to {XID_WRAPAROUND_LIMIT - 1} (wraparound), got {age}")
    seconds = params.get("long_running_seconds")
    if seconds is not None and int(seconds) < 1:
        problems.append(f"long_running_seconds must be at least 1, got {seconds}")
    return problems
