# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the database's time goes: top wait events and top SQL by average active sessions (AAS).

Pure functions over what Performance Insights answers (``GetResourceMetrics``, ``DescribeDimensionKeys``, boto3's
shape) or, when Performance Insights is off, over pg_stat_statements and samples of pg_stat_activity: which source
to read, the top lists with each item's share of the database load, the vCPU line and the findings. Nothing here
calls AWS or PostgreSQL; ``rds_performance_insights_info`` reads and this decides.
"""

from __future__ import annotations

import math
import re

from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import identifier_problems

SOURCES = ("auto", "performance_insights", "pg_stat_statements")
PERFORMANCE_INSIGHTS = "performance_insights"
PG_STAT_STATEMENTS = "pg_stat_statements"

LOAD_METRIC = "db.load.avg"
WAIT_EVENT_GROUP = "db.wait_event"
SQL_GROUP = "db.sql_tokenized"
# A wait event's name as PI reports it for PostgreSQL: "<type>:<event>" ("Lock:transactionid"), or "CPU".
CPU = "CPU"
MAX_WINDOW_MINUTES = 731 * 24 * 60
MIN_QUERY_LENGTH = 20
MAX_SAMPLE_SECONDS = 60
# A password literal in a statement (CREATE/ALTER ROLE ... [ENCRYPTED] PASSWORD '...'), quoted ('' inside, E'..'
# escapes) or dollar-quoted, up to its end or to the end of a text cut short inside it.
PASSWORD_LITERAL = re.compile(r"(PASSWORD\s+)(?:E?'(?:[^'\\]|''|\\.)*(?:'|$)|\$(\w*)\$.*?(?:\$\2\$|$))",
                              re.IGNORECASE | re.DOTALL)
REDACTED = "'********'"


def option_problems(params):
    """Problems with rds_performance_insights_info's options, each saying what to change."""
    problems = identifier_problems(params.get("db_instance_identifier"), "db_instance_identifier")
    window = params.get("window_minutes")
    if window is None or window < 1 or window > MAX_WINDOW_MINUTES:
        problems.append(f"window_minutes must be from 1 to {MAX_WINDOW_MINUTES} (731 days, Performance Insights' "
                        f"longest retention), got {window}")
    limit = params.get("limit")
    if limit is None or not 1 <= limit <= 25:
        problems.append(f"limit must be from 1 to 25 (Performance Insights returns at most 25 keys), got {limit}")
    length = params.get("max_query_length")
    if length is None or length < MIN_QUERY_LENGTH:
        problems.append(f"max_query_length must be at least {MIN_QUERY_LENGTH}, got {length}")
    seconds = params.get("sample_seconds")
    if seconds is None or not math.isfinite(seconds) or not 0 <= seconds <= MAX_SAMPLE_SECONDS:
        problems.append(f"sample_seconds must be from 0 to {MAX_SAMPLE_SECONDS}, got {seconds}")
    return problems


def redact(text):
    """A statement's text with its password literals replaced (``PASSWORD '...'`` becomes ``PASSWORD '********'``):
    a role's password caught in flight in pg_stat_activity must not land in the result or the report."""
    if not text:
        return text
    return PASSWORD_LITERAL.sub(lambda m: m.group(1) + REDACTED, text)


def shown(text, max_query_length):
    """A statement as returned: password literals redacted, then cut at ``max_query_length``."""
    text = redact(text)
    if text and len(text) > max_query_length:
        return text[:max_query_length] + "…"
    return text


def choose_source(requested, instance):
    """(source, note, problem): the source to read for a described instance, why, and the refusal when the request
    cannot be met (PI asked for on an instance without it)."""
    enabled = bool(instance.get("PerformanceInsightsEnabled"))
    identifier = instance.get("DBInstanceIdentifier")
    if requested == PERFORMANCE_INSIGHTS and not enabled:
        return None, None, (
            f"Performance Insights is not enabled on {identifier}: enable it (amazon.aws.rds_instance "
            "enable_performance_insights=true, or the rds_monitoring role's rds_monitoring_performance_insights) or "
            "use source=auto or source=pg_stat_statements to read pg_stat_statements instead")
    if requested == PG_STAT_STATEMENTS:
        return PG_STAT_STATEMENTS, "pg_stat_statements was asked for", None
    if enabled:
        return PERFORMANCE_INSIGHTS, "Performance Insights is enabled", None
    return PG_STAT_STATEMENTS, (
        f"Performance Insights is off on {identifier}: the top SQL comes from pg_stat_statements (average active "
        "sessions since its last reset) and the wait events from samples of pg_stat_activity"), None


def average_load(metric_list):
    """Mean of the ``db.load.avg`` data points of a GetResourceMetrics answer (None without any point)."""
    for item in metric_list or []:
        if (item.get("Key") or {}).get("Metric") == LOAD_METRIC and not (item.get("Key") or {}).get("Dimensions"):
            values = [p["Value"] for p in item.get("DataPoints") or [] if p.get("Value") is not None]
            return round(sum(values) / len(values), 4) if values else None
    return None


def _share(part, whole):
    return round(part / whole, 4) if whole else None


def wait_events_from_keys(keys, total_load, limit):
    """Top wait events of a DescribeDimensionKeys answer grouped by ``db.wait_event``, heaviest first."""
    items = []
    for key in keys or []:
        dims = key.get("Dimensions") or {}
        aas = float(key.get("Total") or 0.0)
        items.append(dict(wait_event=dims.get("db.wait_event.name"), wait_event_type=dims.get("db.wait_event.type"),
                          average_active_sessions=round(aas, 4), share_of_load=_share(aas, total_load)))
    items.sort(key=lambda i: -i["average_active_sessions"])
    return items[:limit]


def sql_from_keys(keys, total_load, limit, max_query_length=2000):
    """Top SQL of a DescribeDimensionKeys answer grouped by ``db.sql_tokenized``, heaviest first."""
    items = []
    for key in keys or []:
        dims = key.get("Dimensions") or {}
        aas = float(key.get("Total") or 0.0)
        text = shown(dims.get("db.sql_tokenized.statement") or dims.get("db.sql.statement"), max_query_length)
        items.append(dict(statement=text, id=dims.get("db.sql_tokenized.id") or dims.get("db.sql.id"),
                          average_active_sessions=round(aas, 4), share_of_load=_share(aas, total_load)))
    items.sort(key=lambda i: -i["average_active_sessions"])
    return items[:limit]


def wait_event_name(wait_event_type, wait_event, state="active"):
    """A pg_stat_activity row's wait as PI names it: ``Lock:transactionid``, or ``CPU`` for an active session that
    waits for nothing."""
    if not wait_event_type:
        return CPU
    return f"{wait_event_type}:{wait_event}"


def wait_events_from_samples(samples, limit):
    """Top wait events from samples of pg_stat_activity's active sessions: ``samples`` is a list (one per sample) of
    ``[(wait_event_type, wait_event)]``; the AAS of an event is its session count averaged over the samples."""
    counts = {}
    for sample in samples:
        for event_type, event in sample:
            name = wait_event_name(event_type, event)
            counts.setdefault(name, [event_type or CPU, 0])[1] += 1
    total = sum(len(sample) for sample in samples) / len(samples) if samples else 0.0
    items = [dict(wait_event=name, wait_event_type=event_type,
                  average_active_sessions=round(count / len(samples), 4),
                  share_of_load=_share(count / len(samples), total))
             for name, (event_type, count) in counts.items()]
    items.sort(key=lambda i: (-i["average_active_sessions"], i["wait_event"]))
    return items[:limit], (round(total, 4) if samples else None)


def sql_from_samples_and_statements(samples, statements, seconds_since_reset, limit, max_query_length=2000):
    """Top SQL without PI: statements active in the pg_stat_activity samples first (their AAS over the samples),
    then pg_stat_statements' heaviest by total execution time, whose AAS is the time spent over the seconds since
    pg_stat_statements was reset. ``samples``: list of ``[query text]``; ``statements``: pg_stats.statement_rows.
    Password literals are redacted from every text (:func:`redact`)."""
    items = []
    counts = {}
    for sample in samples:
        for text in sample:
            counts[text] = counts.get(text, 0) + 1
    total = sum(len(sample) for sample in samples) / len(samples) if samples else 0.0
    for text, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        aas = count / len(samples)
        items.append(dict(statement=shown(text, max_query_length), id=None, average_active_sessions=round(aas, 4),
                          share_of_load=_share(aas, total), basis="pg_stat_activity samples"))
    for row in statements or []:
        aas = (row["total_exec_time_ms"] or 0) / 1000.0 / seconds_since_reset if seconds_since_reset else None
        items.append(dict(statement=shown(row["query"], max_query_length), id=row.get("queryid"),
                          average_active_sessions=None if aas is None else round(aas, 4), share_of_load=None,
                          calls=row.get("calls"), total_exec_time_ms=row.get("total_exec_time_ms"),
                          basis="pg_stat_statements since its reset"))
    return items[:limit]


def findings(total_load, vcpus, wait_events):
    """Findings: load above the vCPU line, and the top wait event when it is not CPU and holds a large share."""
    found = []
    if total_load is not None and vcpus and total_load > vcpus:
        found.append(dict(name="load_above_vcpus", severity="warning", observed=total_load, threshold=vcpus,
                          advice=f"Average active sessions {total_load:g} exceed the {vcpus} vCPUs: sessions queue "
                                 "for CPU or wait; look at the top wait event and SQL"))
    if wait_events:
        top = wait_events[0]
        if top["wait_event"] != CPU and (top.get("share_of_load") or 0) >= 0.25:
            advice = f"{top['wait_event']} holds {top['share_of_load']:.0%} of the load"
            if str(top.get("wait_event_type")) == "Lock":
                advice += (": sessions wait for row or transaction locks held by others; find the holder "
                           "(pg_blocking_pids) and shorten its transactions")
            found.append(dict(name="top_wait_event", severity="info", observed=top["wait_event"],
                              threshold=0.25, advice=advice))
    return found
