# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decisions of the restore drill, as pure functions over boto3-shaped dicts.

Recovery point selection, the target's name and restore request, check evaluation, RTO/RPO and the verdict, the
cleanup plan (only what this drill created) and the sweep of expired drill resources. No boto3, no sockets, no
``AnsibleModule``: the module ``dbre.rds.rds_restore_drill`` does the I/O and asks these functions what to do.
"""

from __future__ import annotations

import datetime
import decimal
import re

from ansible_collections.dbre.rds.plugins.module_utils.clock import parse_utc
from ansible_collections.dbre.rds.plugins.module_utils.clock import utc_iso
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import report_name_problems
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import connection_problems
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import IDENTIFIER_MAX
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import SNAPSHOT
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import identifier_problems
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import tag_list
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import tags_dict

DRILL_ID_TAG = "dbre:drill-id"
DRILL_EXPIRES_TAG = "dbre:drill-expires"
# Who runs the drill (host/pid/process start), so a sweep can tell a drill whose process is gone from a live one.
DRILL_OWNER_TAG = "dbre:drill-owner"
DRILL_STARTED_TAG = "dbre:drill-started"
# The snapshot a drill restores, so that snapshot retention keeps it while the drill runs.
DRILL_SNAPSHOT_TAG = "dbre:drill-snapshot"

RESTORE_FROM = ("latest_snapshot", "snapshot", "point_in_time", "random_snapshot")
SNAPSHOT_TYPES = ("automated", "manual", "any")
CLEANUP_MODES = ("always", "on_success", "never")
EXPECT_KEYS = ("equals", "min", "max", "regex", "rows")

# "-writer" names the instance a cluster drill adds to the restored cluster; the default name leaves room for it.
CLUSTER_INSTANCE_SUFFIX = "-writer"
# Sane bounds: a drill's resources expire within a year; one wait or cleanup lasts at most a day.
TTL_HOURS_MAX = 24 * 365
TIMEOUT_SECONDS_MAX = 24 * 3600
POLL_INTERVAL_MAX = 300


class SelectionError(Exception):
    """No recovery point matches what the user asked for; the message says what exists instead."""


# --------------------------------------------------------------------------------------------------------------------
# Options


def expect_problems(name, expect):
    """What is wrong with one check's ``expect`` (exactly one of equals, regex, rows; or min and/or max)."""
    given = [key for key in EXPECT_KEYS if expect.get(key) is not None]
    if not given:
        return [f"check {name!r}: expect needs one of {', '.join(EXPECT_KEYS)}"]
    if len(given) > 1 and set(given) != {"min", "max"}:
        return [f"check {name!r}: expect takes one of {', '.join(EXPECT_KEYS)} (only min and max combine), "
                f"got {', '.join(given)}"]
    problems = []
    if expect.get("regex") is not None:
        try:
            re.compile(str(expect["regex"]))
        except re.error as exc:
            problems.append(f"check {name!r}: regex {expect['regex']!r} does not compile: {exc}")
    for key in ("min", "max"):
        if expect.get(key) is not None and _number(expect[key]) is None:
            problems.append(f"check {name!r}: expect.{key} must be a number, got {expect[key]!r}")
    if expect.get("min") is not None and expect.get("max") is not None and not problems:
        if _number(expect["min"]) > _number(expect["max"]):
            problems.append(f"check {name!r}: expect.min {expect['min']} is greater than expect.max {expect['max']}")
    if expect.get("rows") is not None and (not isinstance(expect["rows"], int) or expect["rows"] < 0):
        problems.append(f"check {name!r}: expect.rows must be a whole number of rows, got {expect['rows']!r}")
    return problems


def _positive_bounded(params, key, maximum, unit, why):
    value = params.get(key)
    if value is None:
        return []
    if value <= 0 or value > maximum:
        return [f"{key} must be greater than 0 and at most {maximum} {unit}, got {value}: {why}"]
    return []


def problems(params):
    """Every problem with the options of a drill or a sweep, found before any AWS call (empty list: all good).

    The one place where options are judged beyond the argument spec; the module calls nothing else.
    """
    found = []
    found += _positive_bounded(params, "wait_timeout", TIMEOUT_SECONDS_MAX, "seconds",
                               "it bounds the wait for the restored database")
    found += _positive_bounded(params, "cleanup_timeout", TIMEOUT_SECONDS_MAX, "seconds",
                               "it bounds the wait for each deleted resource")
    found += _positive_bounded(params, "poll_interval", POLL_INTERVAL_MAX, "seconds", "it is the time between looks")
    found += report_name_problems(params.get("report_name"))
    if params.get("state", "present") == "sweep":
        found += _positive_bounded(params, "sweep_older_than", TTL_HOURS_MAX, "hours",
                                   "drills started longer ago than this are swept")
        return found
    if params.get("sweep_older_than") is not None:
        found.append("sweep_older_than applies to state=sweep only")
    return found + drill_problems(params) + connection_problems(params)


def drill_problems(params):
    """Problems with the options of a drill (state=present)."""
    problems = []
    if params.get("db_cluster_identifier") is not None:
        source = params["db_cluster_identifier"]
        problems += identifier_problems(source, "db_cluster_identifier")
    else:
        source = params.get("db_instance_identifier")
        problems += identifier_problems(source, "db_instance_identifier")
    source = (source or "").strip()
    restore_from = params.get("restore_from") or "latest_snapshot"
    if restore_from == "point_in_time":
        if bool(params.get("restore_time")) == bool(params.get("use_latest_restorable_time")):
            problems.append("restore_from=point_in_time needs exactly one of restore_time or "
                            "use_latest_restorable_time=true")
        if params.get("restore_time"):
            try:
                parse_utc(params["restore_time"])
            except ValueError:
                problems.append(f"restore_time {params['restore_time']!r} is not an ISO 8601 time "
                                "(for example 2026-11-27T07:30:00Z)")
    elif params.get("restore_time") or params.get("use_latest_restorable_time"):
        problems.append(f"restore_time and use_latest_restorable_time apply to restore_from=point_in_time only, "
                        f"not {restore_from}")
    if restore_from == "snapshot" and not (params.get("snapshot_identifier") or "").strip():
        problems.append("restore_from=snapshot needs snapshot_identifier")
    if restore_from != "snapshot" and params.get("snapshot_identifier"):
        problems.append("snapshot_identifier applies to restore_from=snapshot only")
    window = params.get("selection_window_days")
    if window is not None and not 1 <= window <= 365:
        problems.append(f"selection_window_days must be between 1 and 365, got {window}")
    if params.get("ttl_hours") is not None and params["ttl_hours"] <= 0:
        problems.append("ttl_hours must be positive: it sets when a leftover of this drill may be swept")
    elif params.get("ttl_hours") is not None and params["ttl_hours"] > TTL_HOURS_MAX:
        problems.append(f"ttl_hours must be at most {TTL_HOURS_MAX} (a year), got {params['ttl_hours']}: a drill's "
                        "leftovers should not outlive it by years")
    target = params.get("target_identifier")
    if target is not None:
        problems += identifier_problems(target, "target_identifier")
        if params.get("db_cluster_identifier") and len(target) + len(CLUSTER_INSTANCE_SUFFIX) > IDENTIFIER_MAX:
            problems.append(f"target_identifier {target!r} leaves no room for the instance "
                            f"{target + CLUSTER_INSTANCE_SUFFIX!r} (at most {IDENTIFIER_MAX} characters)")
        if source and target.strip().lower() == source.lower():
            problems.append("target_identifier must differ from the source: a drill never touches its source")
    names = set()
    for check in params.get("checks") or []:
        name = check.get("name")
        if name in names:
            problems.append(f"check names must be unique; {name!r} is used twice")
        names.add(name)
        problems += expect_problems(name, check.get("expect") or {})
    for key in ("max_rto_seconds", "max_rpo_seconds"):
        if params.get(key) is not None and params[key] <= 0:
            problems.append(f"{key} must be positive")
    if (params.get("checks") or params.get("freshness_sql")) and not (params.get("login_password")
                                                                      or params.get("iam_auth")):
        problems.append("checks and freshness_sql connect to the restored database: give login_password or "
                        "iam_auth=true")
    return problems


# --------------------------------------------------------------------------------------------------------------------
# Target naming and tags


def default_target_identifier(source, started_at, cluster=False, suffix=None):
    """``<source>-drill-<YYYYmmddHHMMSS>[-<suffix>]`` (UTC), the source shortened so the name (and a cluster's
    instance) fits. The module passes a random ``suffix`` (from the drill id), so two drills of one source started in
    the same second get different names."""
    stamp = parse_utc(started_at).strftime("%Y%m%d%H%M%S")
    tail = f"-drill-{stamp}" + (f"-{suffix}" if suffix else "")
    room = IDENTIFIER_MAX - len(tail) - (len(CLUSTER_INSTANCE_SUFFIX) if cluster else 0)
    head = source.strip()[:room].rstrip("-")
    return f"{head}{tail}".lower()


def cluster_instance_identifier(target):
    return f"{target}{CLUSTER_INSTANCE_SUFFIX}"


def drill_tags(drill_id, started_at, ttl_hours, extra=None, owner=None):
    """Tags every drill resource carries: its drill id and when a sweep may remove it (plus the user's tags), and,
    with ``owner`` (drill_runtime.owner_marker()), who runs it and since when, so a sweep can tell an orphan."""
    expires = parse_utc(started_at) + datetime.timedelta(hours=ttl_hours)
    tags = dict(extra or {})
    tags[DRILL_ID_TAG] = drill_id
    tags[DRILL_EXPIRES_TAG] = utc_iso(expires)
    if owner is not None:
        tags[DRILL_OWNER_TAG] = owner_tag_value(owner)
        tags[DRILL_STARTED_TAG] = utc_iso(parse_utc(started_at))
    return tags


def owner_tag_value(owner):
    """``<host>/<pid>/<process start>`` (RDS tag values allow letters, digits, spaces and ``_.:/=+-@``)."""
    host = re.sub(r"[^A-Za-z0-9_.:=+@ -]", "_", str(owner.get("host") or "unknown"))[:200]
    return f"{host}/{owner.get('pid')}/{owner.get('started') or '-'}"


def owner_from_tag(value):
    """The owner marker (``{host, pid, started}``) of an owner tag, or None when it does not parse."""
    parts = str(value or "").rsplit("/", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return {"host": parts[0], "pid": int(parts[1]), "started": None if parts[2] == "-" else parts[2]}


def tags_of(described):
    """Tags of a described instance or cluster as a dict (``TagList`` as boto3 returns it)."""
    return tags_dict((described or {}).get("TagList"))


# --------------------------------------------------------------------------------------------------------------------
# Recovery point selection


def snapshot_identifier_of(snapshot):
    return snapshot.get("DBSnapshotIdentifier") or snapshot.get("DBClusterSnapshotIdentifier")


def _snapshot_time(snapshot):
    value = snapshot.get("SnapshotCreateTime")
    return parse_utc(value) if value else None


def _snapshot_point(snapshot, selection, candidates):
    created = _snapshot_time(snapshot)
    return {
        "type": "snapshot",
        "selection": selection,
        "snapshot_identifier": snapshot_identifier_of(snapshot),
        "snapshot_arn": snapshot.get("DBSnapshotArn") or snapshot.get("DBClusterSnapshotArn"),
        "snapshot_type": snapshot.get("SnapshotType"),
        "snapshot_create_time": utc_iso(created),
        "restore_time": None,
        "use_latest_restorable_time": False,
        "time": utc_iso(created),
        "candidates": candidates,
    }


def candidate_snapshots(snapshots, snapshot_type="any", window_days=None, now=None):
    """Available snapshots of the wanted type (and within the window), oldest first."""
    wanted = []
    for snapshot in snapshots:
        if snapshot.get("Status", "available") != "available" or _snapshot_time(snapshot) is None:
            continue
        if snapshot_type != "any" and snapshot.get("SnapshotType") != snapshot_type:
            continue
        if window_days is not None and now is not None:
            if _snapshot_time(snapshot) < parse_utc(now) - datetime.timedelta(days=window_days):
                continue
        wanted.append(snapshot)
    return sorted(wanted, key=lambda s: (_snapshot_time(s), snapshot_identifier_of(s)))


def _no_snapshot_message(source, snapshots, snapshot_type, window_days):
    kind = "" if snapshot_type == "any" else f"{snapshot_type} "
    window = f" created in the last {window_days} days" if window_days else ""
    available = [s for s in snapshots if s.get("Status", "available") == "available" and _snapshot_time(s)]
    if available:
        newest = max(available, key=_snapshot_time)
        seen = (f"; the newest available snapshot is {snapshot_identifier_of(newest)} "
                f"({newest.get('SnapshotType')}, {utc_iso(_snapshot_time(newest))})")
    else:
        seen = "; it has no available snapshot at all"
    return (f"No available {kind}snapshot of {source}{window}{seen}. Take a snapshot, widen selection_window_days "
            "or change snapshot_type")


def select_recovery_point(params, source_id, source, snapshots, now, rng, restorable=None):
    """The recovery point the drill restores, as a dict (``type``, ``time`` and the snapshot or restore time).

    ``source`` is the described instance or cluster, ``restorable`` its :func:`restorable_window` (computed from
    ``source`` alone when not given), ``snapshots`` its described snapshots, ``now`` the drill's start, ``rng`` a
    ``random.Random`` (injectable, for ``random_snapshot``).
    Raises :class:`SelectionError` with a message that says what exists instead.
    """
    restore_from = params.get("restore_from") or "latest_snapshot"
    snapshot_type = params.get("snapshot_type") or "any"
    window = params.get("selection_window_days")
    if restore_from == "snapshot":
        wanted = params["snapshot_identifier"]
        for snapshot in snapshots:
            if wanted in (snapshot_identifier_of(snapshot), snapshot.get("DBSnapshotArn"),
                          snapshot.get("DBClusterSnapshotArn")):
                if snapshot.get("Status", "available") != "available":
                    raise SelectionError(f"Snapshot {wanted} of {source_id} is {snapshot.get('Status')}, not "
                                         "available: wait for it or pick another one")
                return _snapshot_point(snapshot, "snapshot", 1)
        raise SelectionError(f"Snapshot {wanted} of {source_id} not found: list the snapshots of {source_id} and "
                             "use one of their identifiers")
    if restore_from in ("latest_snapshot", "random_snapshot"):
        candidates = candidate_snapshots(snapshots, snapshot_type, window, now)
        if not candidates:
            raise SelectionError(_no_snapshot_message(source_id, snapshots, snapshot_type, window))
        chosen = candidates[-1] if restore_from == "latest_snapshot" else rng.choice(candidates)
        return _snapshot_point(chosen, restore_from, len(candidates))
    return _point_in_time(params, source_id, source, restorable)


def restorable_window(source, automated_backups=(), now=None):
    """``{earliest, latest, earliest_from}`` of a described instance or cluster (datetimes or None).

    A cluster says both ends. An instance has no EarliestRestorableTime: it comes from its automated backups'
    ``RestoreWindow`` (describe_db_instance_automated_backups), else from the retention period counted back from
    ``now`` (never before the instance was created).
    """
    latest = parse_utc(source["LatestRestorableTime"]) if source.get("LatestRestorableTime") else None
    if source.get("EarliestRestorableTime"):
        return {"earliest": parse_utc(source["EarliestRestorableTime"]), "latest": latest,
                "earliest_from": "EarliestRestorableTime"}
    earliest = [parse_utc(b["RestoreWindow"]["EarliestTime"]) for b in automated_backups or []
                if (b.get("RestoreWindow") or {}).get("EarliestTime")]
    if earliest:
        return {"earliest": min(earliest), "latest": latest, "earliest_from": "RestoreWindow"}
    retention = source.get("BackupRetentionPeriod")
    if retention and now is not None:
        since = parse_utc(now) - datetime.timedelta(days=int(retention))
        created = source.get("InstanceCreateTime") or source.get("ClusterCreateTime")
        if created:
            since = max(since, parse_utc(created))
        return {"earliest": since, "latest": latest, "earliest_from": "BackupRetentionPeriod"}
    return {"earliest": None, "latest": latest, "earliest_from": None}


def _point_in_time(params, source_id, source, window=None):
    window = window or restorable_window(source)
    earliest, latest = window["earliest"], window["latest"]
    if not latest:
        raise SelectionError(f"{source_id} has no LatestRestorableTime: automated backups are off "
                             "(BackupRetentionPeriod 0) or not yet taken, so it cannot be restored to a point in time")
    point = {"type": "point_in_time", "selection": "point_in_time", "snapshot_identifier": None,
             "snapshot_arn": None, "snapshot_type": None, "snapshot_create_time": None,
             "earliest_restorable_time": utc_iso(earliest) if earliest else None,
             "latest_restorable_time": utc_iso(latest), "candidates": None}
    if params.get("use_latest_restorable_time"):
        # The instant restored is at least this recent; RDS picks it when the restore starts.
        point.update(restore_time=None, use_latest_restorable_time=True, time=utc_iso(latest))
        return point
    wanted = parse_utc(params["restore_time"])
    if earliest and wanted < earliest:
        raise SelectionError(f"restore_time {utc_iso(wanted)} is before the earliest restorable time of {source_id} "
                             f"({utc_iso(earliest)}): pick a later time")
    if wanted > latest:
        raise SelectionError(f"restore_time {utc_iso(wanted)} is after the latest restorable time of {source_id} "
                             f"({utc_iso(latest)}): pick an earlier time or use_latest_restorable_time=true")
    point.update(restore_time=utc_iso(wanted), use_latest_restorable_time=False, time=utc_iso(wanted))
    return point


# --------------------------------------------------------------------------------------------------------------------
# Restore requests


def _group_names(items, key):
    return [item[key] for item in items or [] if item.get(key) and item.get("Status", "active") != "inactive"]


def _instance_settings(instance):
    """The source instance's placement and groups, which a restore would otherwise replace with defaults."""
    settings = {}
    subnet_group = (instance.get("DBSubnetGroup") or {}).get("DBSubnetGroupName")
    if subnet_group:
        settings["DBSubnetGroupName"] = subnet_group
    security_groups = _group_names(instance.get("VpcSecurityGroups"), "VpcSecurityGroupId")
    if security_groups:
        settings["VpcSecurityGroupIds"] = security_groups
    parameter_groups = _group_names(instance.get("DBParameterGroups"), "DBParameterGroupName")
    if parameter_groups:
        settings["DBParameterGroupName"] = parameter_groups[0]
    return settings


def _option_group(instance):
    groups = [g["OptionGroupName"] for g in instance.get("OptionGroupMemberships") or [] if g.get("OptionGroupName")]
    # default:* option groups are what RDS picks anyway; naming one explicitly can be refused across versions.
    groups = [g for g in groups if not g.startswith("default:")]
    return groups[0] if groups else None


def instance_restore_request(source, point, target, tags, db_instance_class=None):
    """(API operation, keyword arguments) restoring an instance drill. The source is named by resource id only."""
    request = {
        "DBInstanceClass": db_instance_class or source.get("DBInstanceClass"),
        "MultiAZ": False,
        "PubliclyAccessible": False,
        "DeletionProtection": False,
        "CopyTagsToSnapshot": False,
        "EnableIAMDatabaseAuthentication": bool(source.get("IAMDatabaseAuthenticationEnabled")),
        "Tags": tag_list(tags),
    }
    request.update(_instance_settings(source))
    option_group = _option_group(source)
    if option_group:
        request["OptionGroupName"] = option_group
    if point["type"] == "snapshot":
        request.update(DBInstanceIdentifier=target, DBSnapshotIdentifier=point["snapshot_identifier"])
        return "restore_db_instance_from_db_snapshot", request
    request.update(TargetDBInstanceIdentifier=target, SourceDbiResourceId=source["DbiResourceId"])
    if point["use_latest_restorable_time"]:
        request["UseLatestRestorableTime"] = True
    else:
        request["RestoreTime"] = parse_utc(point["restore_time"])
    return "restore_db_instance_to_point_in_time", request


def cluster_restore_request(source, point, target, tags):
    """(API operation, keyword arguments) restoring the cluster of an Aurora drill (it has no instance yet)."""
    request = {
        "DBClusterIdentifier": target,
        "DeletionProtection": False,
        "CopyTagsToSnapshot": False,
        "EnableIAMDatabaseAuthentication": bool(source.get("IAMDatabaseAuthenticationEnabled")),
        "Tags": tag_list(tags),
    }
    if source.get("DBSubnetGroup"):
        request["DBSubnetGroupName"] = source["DBSubnetGroup"]
    security_groups = _group_names(source.get("VpcSecurityGroups"), "VpcSecurityGroupId")
    if security_groups:
        request["VpcSecurityGroupIds"] = security_groups
    if source.get("DBClusterParameterGroup"):
        request["DBClusterParameterGroupName"] = source["DBClusterParameterGroup"]
    if point["type"] == "snapshot":
        request.update(SnapshotIdentifier=point["snapshot_identifier"], Engine=source["Engine"])
        if source.get("EngineVersion"):
            request["EngineVersion"] = source["EngineVersion"]
        return "restore_db_cluster_from_snapshot", request
    request.update(SourceDbClusterResourceId=source["DbClusterResourceId"], RestoreType="full-copy")
    if point["use_latest_restorable_time"]:
        request["UseLatestRestorableTime"] = True
    else:
        request["RestoreToTime"] = parse_utc(point["restore_time"])
    return "restore_db_cluster_to_point_in_time", request


def cluster_instance_request(source_cluster, writer, target, tags, db_instance_class=None):
    """``create_db_instance`` arguments for the one instance a restored cluster needs, shaped like its writer."""
    writer = writer or {}
    request = {
        "DBInstanceIdentifier": cluster_instance_identifier(target),
        "DBClusterIdentifier": target,
        "Engine": source_cluster["Engine"],
        "DBInstanceClass": db_instance_class or writer.get("DBInstanceClass"),
        "PubliclyAccessible": False,
        "Tags": tag_list(tags),
    }
    parameter_groups = _group_names(writer.get("DBParameterGroups"), "DBParameterGroupName")
    if parameter_groups:
        request["DBParameterGroupName"] = parameter_groups[0]
    return request


def request_summary(operation, request):
    """The restore request as returned to the user: JSON-safe, times in ISO 8601."""
    summary = {}
    for key, value in request.items():
        if isinstance(value, datetime.datetime):
            value = utc_iso(value)
        summary[key] = value
    return {"operation": operation, "parameters": summary}


# --------------------------------------------------------------------------------------------------------------------
# Validation


def _number(value):
    if isinstance(value, bool) or value is None:
        return None
    try:
        return decimal.Decimal(str(value))
    except (decimal.InvalidOperation, ValueError):
        return None


def json_value(value):
    """A value from PostgreSQL as it appears in results and reports."""
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime.datetime):
        return utc_iso(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def describe_expect(expect):
    parts = []
    for key in EXPECT_KEYS:
        if expect.get(key) is not None:
            parts.append(f"{key} {expect[key]}")
    return ", ".join(parts)


def checks_argument_spec():
    """The ``checks`` option of the drills, documented by the ``dbre.rds.data_checks`` doc fragment."""
    return dict(type="list", elements="dict", default=[], options=dict(
        name=dict(type="str", required=True),
        sql=dict(type="str", required=True),
        expect=dict(type="dict", required=True, options=dict(
            equals=dict(type="raw"), min=dict(type="raw"), max=dict(type="raw"), regex=dict(type="str"),
            rows=dict(type="int"))),
    ))


def evaluate_check(check, rows, error=None):
    """One check's result: ``{name, sql, expect, observed, passed, message}``.

    ``rows`` are the rows the SQL returned (sequences), ``error`` the database error if it failed. ``rows`` compares
    the row count; the other expectations compare the first column of the first row.
    """
    name, expect = check["name"], check.get("expect") or {}
    result = {"name": name, "sql": check["sql"], "expect": describe_expect(expect), "observed": None,
              "passed": False, "message": None}
    if error is not None:
        result["message"] = f"check {name} failed to run: {error}"
        return result
    rows = list(rows or [])
    if expect.get("rows") is not None:
        result["observed"] = len(rows)
        result["passed"] = len(rows) == expect["rows"]
        if not result["passed"]:
            result["message"] = f"check {name}: returned {len(rows)} rows, expected {expect['rows']}"
        return result
    if not rows or not len(rows[0]):
        result["message"] = f"check {name}: returned no rows, expected a value ({result['expect']})"
        return result
    value = rows[0][0]
    result["observed"] = json_value(value)
    passed, why = _compare(value, expect)
    result["passed"] = passed
    if not passed:
        result["message"] = f"check {name}: observed {result['observed']!r}, expected {result['expect']}{why}"
    return result


def _compare(value, expect):
    if expect.get("equals") is not None:
        wanted = expect["equals"]
        if isinstance(wanted, bool) or isinstance(value, bool):
            return (isinstance(value, bool) and value == bool(wanted)) or str(value) == str(wanted), ""
        observed_number, wanted_number = _number(value), _number(wanted)
        if observed_number is not None and wanted_number is not None and not isinstance(value, str):
            return observed_number == wanted_number, ""
        return json_value(value) == wanted or str(json_value(value)) == str(wanted), ""
    if expect.get("regex") is not None:
        return re.search(str(expect["regex"]), str(json_value(value))) is not None, ""
    observed_number = _number(value)
    if observed_number is None:
        return False, " (not a number)"
    if expect.get("min") is not None and observed_number < _number(expect["min"]):
        return False, ""
    if expect.get("max") is not None and observed_number > _number(expect["max"]):
        return False, ""
    return True, ""


def freshness_measurements(value, recovery_point_time, started_at):
    """The data's own freshness: its newest timestamp, its age at the drill's start and its lag behind the point."""
    if value is None:
        return {"data_freshness": None, "data_age_seconds": None, "data_lag_behind_recovery_point_seconds": None}
    if isinstance(value, str):
        value = parse_utc(value)
    if not isinstance(value, datetime.datetime):
        raise ValueError(f"freshness_sql must return a timestamp, got {value!r}")
    freshness = parse_utc(value)
    measured = {
        "data_freshness": utc_iso(freshness),
        "data_age_seconds": round((parse_utc(started_at) - freshness).total_seconds(), 3),
        "data_lag_behind_recovery_point_seconds": None,
    }
    if recovery_point_time:
        measured["data_lag_behind_recovery_point_seconds"] = round(
            (parse_utc(recovery_point_time) - freshness).total_seconds(), 3)
    return measured


# --------------------------------------------------------------------------------------------------------------------
# Measurements and verdict


def rpo_seconds(recovery_point_time, started_at):
    """Seconds from the recovery point to the drill's start: the data a restore now would lose at least.

    A recovery point after the start (the latest restorable time, read during the drill) loses nothing: 0.
    """
    if not recovery_point_time:
        return None
    return max(0.0, round((parse_utc(started_at) - parse_utc(recovery_point_time)).total_seconds(), 3))


def rto_seconds(requested_elapsed, validated_elapsed):
    """Seconds from the restore request to a validated database (``None`` when it never got there)."""
    if requested_elapsed is None or validated_elapsed is None:
        return None
    return round(validated_elapsed - requested_elapsed, 3)


def objectives(measured, checks, max_rto_seconds=None, max_rpo_seconds=None, cleanup=None):
    """The verdict table: restore, each check, RTO and RPO against their objectives, cleanup."""
    table = [{"name": "restored and available", "objective": "available", "observed": measured.get("final_status"),
              "unit": None, "held": bool(measured.get("available"))}]
    for check in checks:
        table.append({"name": f"check: {check['name']}", "objective": check["expect"], "observed": check["observed"]
                      if check["message"] is None or check["observed"] is not None else check["message"],
                      "unit": None, "held": bool(check["passed"])})
    if max_rto_seconds is not None:
        rto = measured.get("rto_seconds")
        table.append({"name": "rto_seconds", "objective": max_rto_seconds, "observed": rto, "unit": "s",
                      "held": rto is not None and rto <= max_rto_seconds})
    if max_rpo_seconds is not None:
        rpo = measured.get("rpo_seconds")
        table.append({"name": "rpo_seconds", "objective": max_rpo_seconds, "observed": rpo, "unit": "s",
                      "held": rpo is not None and rpo <= max_rpo_seconds})
    row = cleanup_objective(cleanup)
    return table + ([row] if row else [])


def cleanup_objective(cleanup):
    """The verdict row of a drill's cleanup (``restore_drill.cleanup_plan``'s outcome): nothing left behind, what was
    kept on purpose named; None when the drill was told never to clean up or did not get that far."""
    if cleanup is None or cleanup.get("mode") == "never":
        return None
    left = cleanup.get("left_behind") or []
    return {"name": "cleanup", "objective": "nothing left behind",
            "observed": "left behind: " + ", ".join(left) if left else
            ("kept: " + ", ".join(cleanup["kept"]) if cleanup.get("kept") else "all removed"),
            "unit": None, "held": not left}


def first_failure(table, failure=None):
    """The message a user reads first: the exception or timeout, else each objective that did not hold."""
    if failure:
        return failure
    broken = [row for row in table if not row["held"]]
    if not broken:
        return None
    return "; ".join(f"{row['name']} did not hold (observed {row['observed']}, objective {row['objective']})"
                     for row in broken)


def cleanup_summary(cleanup):
    """One sentence on what cleanup did, for the task's message."""
    if not cleanup:
        return "nothing was created, so nothing to clean up"
    parts = []
    if cleanup.get("removed"):
        parts.append("removed " + ", ".join(cleanup["removed"]))
    if cleanup.get("kept"):
        parts.append(f"kept (cleanup={cleanup['mode']}) " + ", ".join(cleanup["kept"]))
    if cleanup.get("left_behind"):
        parts.append("LEFT BEHIND " + ", ".join(cleanup["left_behind"]))
    return "cleanup " + ("; ".join(parts) if parts else "had nothing to remove")


# --------------------------------------------------------------------------------------------------------------------
# Cleanup and sweep


def cleanup_plan(created, described, drill_id, protected):
    """What cleanup deletes, in order (instances before their cluster), and what it refuses to touch and why.

    ``created`` lists ``{"kind": "instance"|"cluster", "identifier", "confirmed"}`` that this drill's own calls
    created (``confirmed`` false while the create call has not answered: a resource of that name without this drill's
    tag is then someone else's, left alone and not counted as left behind);
    ``described`` maps ``(kind, identifier)`` to the resource as described now (``None``: already gone);
    ``protected`` holds the identifiers never to delete (the source and its members).
    Each step: ``{kind, identifier, action: "delete"|"wait"|"gone"|"not_ours"|"refuse", reason}``; "refuse" leaves a
    resource behind, "not_ours" does not.
    """
    protected = {p.lower() for p in protected if p}
    steps = []
    for item in sorted(created, key=lambda c: 0 if c["kind"] == "instance" else 1):
        kind, identifier = item["kind"], item["identifier"]
        current = described.get((kind, identifier))
        step = {"kind": kind, "identifier": identifier, "action": "delete", "reason": None}
        if identifier.lower() in protected:
            step.update(action="refuse", reason=f"{identifier} is the drill's source")
        elif current is None:
            step.update(action="gone", reason="already gone")
        elif tags_of(current).get(DRILL_ID_TAG) != drill_id and not item.get("confirmed", True):
            step.update(action="not_ours", reason=f"{identifier} existed already: the create call failed and it does "
                                                  f"not carry {DRILL_ID_TAG}={drill_id}")
        elif tags_of(current).get(DRILL_ID_TAG) != drill_id:
            step.update(action="refuse", reason=f"{identifier} does not carry {DRILL_ID_TAG}={drill_id}")
        elif current.get("DeletionProtection"):
            step.update(action="refuse", reason=f"{identifier} has deletion protection on")
        elif str(current.get("DBInstanceStatus") or current.get("Status") or "") == "deleting":
            step.update(action="wait", reason="already deleting")
        steps.append(step)
    return steps


def is_expired(tags, now):
    """True when the drill tags say the resource's time is up; False when not yet, None when unreadable."""
    value = tags.get(DRILL_EXPIRES_TAG)
    if not value:
        return None
    try:
        return parse_utc(value) <= parse_utc(now)
    except ValueError:
        return None


def drill_started(resource, tags):
    """When the drill that made ``resource`` started: its started tag, else the resource's creation time."""
    for value in (tags.get(DRILL_STARTED_TAG), resource.get("InstanceCreateTime"), resource.get("ClusterCreateTime"),
                  resource.get("SnapshotCreateTime")):
        if value:
            try:
                return parse_utc(value)
            except ValueError:
                continue
    return None


def sweep_reason(resource, tags, now, alive=None, older_than_hours=None):
    """(delete?, why) for one drill resource: its drill's process is gone, its TTL passed, or it is older than
    ``older_than_hours``; a drill whose process still runs on this host is never swept.

    ``alive(marker)`` is drill_runtime.owner_alive: True, False or None (unknown: another host, no owner tag).
    """
    owner = owner_from_tag(tags.get(DRILL_OWNER_TAG)) if tags.get(DRILL_OWNER_TAG) else None
    state = alive(owner) if (alive is not None and owner is not None) else None
    if state is True:
        return False, f"its drill is still running (pid {owner['pid']} on {owner['host']})"
    if state is False:
        return True, f"its drill's process is gone (pid {owner['pid']} on {owner['host']})"
    expired = is_expired(tags, now)
    if expired:
        return True, f"expired at {tags[DRILL_EXPIRES_TAG]}"
    if older_than_hours is not None:
        started = drill_started(resource, tags)
        if started is not None and started <= parse_utc(now) - datetime.timedelta(hours=older_than_hours):
            return True, f"its drill started at {utc_iso(started)}, more than {older_than_hours} hours ago"
    if expired is None:
        return False, f"{DRILL_EXPIRES_TAG}={tags[DRILL_EXPIRES_TAG]!r} is not an ISO 8601 time"
    return False, f"not expired until {tags[DRILL_EXPIRES_TAG]}"


_SWEEP_KEYS = {"instance": "DBInstanceIdentifier", "cluster": "DBClusterIdentifier", SNAPSHOT: "DBSnapshotIdentifier"}


def sweep_selection(instances, clusters, now, protected=(), alive=None, older_than_hours=None, snapshots=()):
    """Drill resources to delete (instances first, then clusters, then manual DB snapshots) and the drill resources
    left alone, with reasons.

    A resource is a drill resource only when it carries both ``dbre:drill-id`` and ``dbre:drill-expires``: nothing
    else is ever selected. See :func:`sweep_reason` for when one is deleted. ``snapshots`` are described manual DB
    snapshots (with their ``TagList``), e.g. what a killed rds_upgrade_drill left; a snapshot is left alone while it
    is not ``available`` (RDS refuses to delete it) or while a drill instance that is not swept was restored from it.
    Returns ``{"delete": [{kind, identifier, drill_id, expires, reason}], "skip": [{kind, identifier, reason}]}``.
    """
    protected = {p.lower() for p in protected if p}
    delete, skip = [], []
    deleted_instances = set()
    restored_from = {}
    for kind, resources in (("instance", instances), ("cluster", clusters), (SNAPSHOT, snapshots)):
        for resource in resources:
            identifier = resource.get(_SWEEP_KEYS[kind])
            tags = tags_of(resource)
            if DRILL_ID_TAG not in tags or DRILL_EXPIRES_TAG not in tags:
                continue
            entry = {"kind": kind, "identifier": identifier, "drill_id": tags[DRILL_ID_TAG],
                     "expires": tags[DRILL_EXPIRES_TAG]}
            remove, why = sweep_reason(resource, tags, now, alive, older_than_hours)
            reason = None if remove else why
            if identifier.lower() in protected:
                reason = "protected"
            elif reason is None and resource.get("DeletionProtection"):
                reason = "deletion protection is on"
            elif reason is None and kind == "cluster":
                members = [m["DBInstanceIdentifier"] for m in resource.get("DBClusterMembers") or []]
                others = [m for m in members if m not in deleted_instances]
                if others:
                    reason = "has members that are not swept drill instances: " + ", ".join(sorted(others))
            elif reason is None and kind == SNAPSHOT:
                reason = _snapshot_sweep_refusal(resource, identifier, tags, restored_from)
            if reason:
                skip.append({"kind": kind, "identifier": identifier, "reason": reason})
                if kind == "instance" and tags.get(DRILL_SNAPSHOT_TAG):
                    restored_from.setdefault(tags[DRILL_SNAPSHOT_TAG], identifier)
                continue
            entry["reason"] = why
            delete.append(entry)
            if kind == "instance":
                deleted_instances.add(identifier)
    return {"delete": delete, "skip": skip}


def _snapshot_sweep_refusal(snapshot, identifier, tags, restored_from):
    """Why an expired drill snapshot is kept, or None: a drill names its own snapshot in its DRILL_SNAPSHOT_TAG (a
    user's CopyDBSnapshot with CopyTags carries the original's name there: never the drill's to delete), RDS deletes
    only an available manual snapshot, and a drill instance left alone may still be restoring from it."""
    if tags.get(DRILL_SNAPSHOT_TAG) != identifier:
        return (f"its {DRILL_SNAPSHOT_TAG} tag names {tags.get(DRILL_SNAPSHOT_TAG) or 'nothing'}, not itself: a copy "
                "or a snapshot no drill made; delete it yourself if it is not needed")
    if snapshot.get("SnapshotType") not in (None, "manual"):
        return f"a {snapshot['SnapshotType']} snapshot: RDS removes it with its instance"
    status = snapshot.get("Status")
    if status not in (None, "available"):
        return f"the snapshot is {status}: run the sweep again once it is available"
    if identifier in restored_from:
        return f"the drill instance {restored_from[identifier]} (left alone) was restored from it"
    return None


# --------------------------------------------------------------------------------------------------------------------
# The plan


def plan_drill(params, source, started_at, drill_id, rng, owner=None):
    """Everything the drill will do, decided before the first mutating call.

    ``source`` is ``{"id", "cluster", "described", "writer", "snapshots", "window"}`` as the module read it; ``owner``
    the drill_runtime.owner_marker() tagged on what the drill creates. Raises :class:`SelectionError` (nothing to
    restore) with what exists instead.
    """
    point = select_recovery_point(params, source["id"], source["described"], source["snapshots"], started_at, rng,
                                  restorable=source.get("window"))
    target = params.get("target_identifier") or default_target_identifier(
        source["id"], started_at, cluster=source["cluster"], suffix=drill_id.rsplit("-", 1)[-1][:6])
    tags = drill_tags(drill_id, started_at, params.get("ttl_hours") or 24, params.get("tags"), owner=owner)
    if point.get("snapshot_identifier"):
        tags[DRILL_SNAPSHOT_TAG] = point["snapshot_identifier"]
    plan = {"drill_id": drill_id, "point": point, "tags": tags, "instance_request": None}
    if source["cluster"]:
        plan["operation"], plan["request"] = cluster_restore_request(source["described"], point, target, tags)
        plan["instance_request"] = cluster_instance_request(source["described"], source["writer"], target, tags,
                                                            params.get("db_instance_class"))
        if not plan["instance_request"]["DBInstanceClass"]:
            raise SelectionError(f"{source['id']} has no writer instance to copy the instance class from: set "
                                 "db_instance_class")
        plan["target"] = {"cluster": target, "instance": plan["instance_request"]["DBInstanceIdentifier"]}
    else:
        plan["operation"], plan["request"] = instance_restore_request(source["described"], point, target, tags,
                                                                      params.get("db_instance_class"))
        plan["target"] = {"cluster": None, "instance": target}
    plan["creates"] = [{"kind": kind, "identifier": plan["target"][kind]} for kind in ("cluster", "instance")
                       if plan["target"][kind]]
    return plan
