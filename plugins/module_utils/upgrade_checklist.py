# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pre-upgrade checklist: every blocker RDS's precheck (``pg_upgrade --check``) would stop a major version upgrade
on, found before the upgrade starts, and the safety checks a DBRE wants held first.

Three steps, so that everything that decides is a pure function tested table-driven:

- :func:`database_facts` reads the database side in one pass over every database the login can connect to
  (prepared transactions, columns of the ``reg*`` and removed data types, logical replication slots, installed
  extensions and the versions they can be updated to, databases that refuse connections, open transactions, sizes).
- :func:`read_aws` (a thin reader) and :func:`aws_facts` (pure) turn describe results (the instance, its engine
  version's valid upgrade targets, the parameter groups, snapshots, FreeStorageSpace) into plain facts.
- :func:`evaluate` judges every check: ``{name, passed, value, expected, unit, fix, blocker, detail}``. ``blocker``
  is true when RDS would refuse or fail the upgrade over it; the other checks (backups, window, storage, long
  transactions) are what a careful operator holds before starting. ``fix`` is what to run, never a vague hint.

What ``pg_upgrade --check`` of PostgreSQL 18 stops on, from a PostgreSQL 15 source (the checks for older sources, such
as tables WITH OIDS or postfix operators, cannot match a 15 database): prepared transactions; columns of the reg*
types that name objects by OID (``regcollation``, ``regconfig``, ``regdictionary``, ``regnamespace``, ``regoper``,
``regoperator``, ``regproc``, ``regprocedure``; ``regclass``, ``regrole`` and ``regtype`` are preserved and pass);
columns of a system catalog's row type; ``aclitem`` columns (its format changed in 16); databases other than
template0 that do not allow connections; libraries the new installation lacks (an extension the target does not
ship); inheritance children whose column is nullable where the parent's is NOT NULL (checked by 18's pg_upgrade for
sources up to 17: 18 keeps NOT NULL as an inherited constraint). RDS adds: logical replication slots (PostgreSQL
before 17 does not carry them over) and extension versions the target engine does not support (update them first with
``ALTER EXTENSION ... UPDATE TO``).
"""

from __future__ import annotations

import math
import re
from datetime import timedelta


from ansible_collections.dbre.rds.plugins.module_utils import extension_versions as shipped
from ansible_collections.dbre.rds.plugins.module_utils import param_tuning
from ansible_collections.dbre.rds.plugins.module_utils import rds_resources
from ansible_collections.dbre.rds.plugins.module_utils.clock import parse_utc
from ansible_collections.dbre.rds.plugins.module_utils.clock import utc_iso
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import check_rows

# Every check, in report order: (name, blocker, what it asks). target_parameter_group is a blocker only when RDS
# would refuse the group (wrong family, missing); without a group it warns that custom values would be lost.
CHECKS = (
    ("instance_available", True, "The instance is available (RDS modifies nothing else)."),
    ("valid_upgrade_target", True, "The target version is a valid upgrade target of the current version."),
    ("target_parameter_group", True, "A parameter group of the target family is given or will be created, carrying "
                                     "the current group's custom values."),
    ("recent_backup", False, "Automated backups are on and the latest restorable time is recent "
                             "(max_restorable_age_seconds)."),
    ("recent_snapshot", False, "A snapshot of the instance is at most max_backup_age_hours old."),
    ("maintenance_window", False, "A maintenance window is set and no other modification is pending (it would be "
                                  "applied with the upgrade)."),
    ("multi_az", False, "The instance is Multi-AZ when require_multi_az is set (the standby is upgraded with the "
                        "primary: Multi-AZ does not shorten the upgrade's outage)."),
    ("free_storage", False, "Free storage is at least min_free_storage_percent of the allocated storage."),
    ("databases_inspected", True, "Every database could be inspected (the blockers below are known)."),
    ("database_connections", True, "Every database but template0 allows connections (pg_upgrade connects to each)."),
    ("prepared_transactions", True, "No prepared transaction is open."),
    ("reg_columns", True, "No user column uses a reg* type that pg_upgrade cannot carry."),
    ("logical_slots", True, "No logical replication slot exists."),
    ("removed_data_types", True, "No user column uses a data type the target removed or changed, or a system "
                                 "catalog's row type."),
    ("extension_versions", True, "Every installed extension's version is one the target ships."),
    ("not_null_inheritance", True, "No inheritance child column is nullable where its parent's is NOT NULL "
                                   "(pg_upgrade of 18 or later checks it on sources up to 17)."),
    ("long_transactions", False, "No transaction has been open longer than max_transaction_age_seconds."),
)
CHECK_NAMES = tuple(check[0] for check in CHECKS)
BLOCKER_CHECKS = tuple(check[0] for check in CHECKS if check[1])
DATABASE_CHECKS = ("databases_inspected", "database_connections", "prepared_transactions", "reg_columns",
                   "logical_slots", "removed_data_types", "extension_versions", "not_null_inheritance",
                   "long_transactions")

# pg_upgrade's "Checking for reg* data types in user tables": these reference OIDs that pg_upgrade does not preserve.
REG_TYPES = ("regcollation", "regconfig", "regdictionary", "regnamespace", "regoper", "regoperator", "regproc",
             "regprocedure")
# Data types pg_upgrade refuses in user columns when upgrading across the major that changed them:
# {type: (major that changed it, why)}. A source before that major and a target from it on is blocked.
REMOVED_TYPES = {
    "aclitem": ("16", "the storage format of aclitem changed in PostgreSQL 16"),
    "abstime": ("12", "abstime was removed in PostgreSQL 12"),
    "reltime": ("12", "reltime was removed in PostgreSQL 12"),
    "tinterval": ("12", "tinterval was removed in PostgreSQL 12"),
    "sql_identifier": ("12", "the storage format of information_schema.sql_identifier changed in PostgreSQL 12"),
}
SYSTEM_COMPOSITE = "system_composite:"
# RDS's own database: the master user cannot connect to it and RDS's precheck handles it.
RDS_RESERVED_DATABASES = ("rdsadmin",)
LONG_TRANSACTIONS_LISTED = 100

DEFAULT_OPTIONS = {
    "max_backup_age_hours": 24.0,
    "max_restorable_age_seconds": 600.0,
    "max_transaction_age_seconds": 300.0,
    "min_free_storage_percent": 10.0,
    "require_multi_az": False,
    "extension_versions": {},
}
_VERSION = re.compile(r"^\d+(\.\d+)*$")
_WINDOW = re.compile(r"^(mon|tue|wed|thu|fri|sat|sun):(\d\d):(\d\d)-(mon|tue|wed|thu|fri|sat|sun):(\d\d):(\d\d)$")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


# --------------------------------------------------------------------------------------------------------------------
# Options

def checklist_argument_spec():
    """The checklist's options, shared by dbre.rds.rds_upgrade_drill and dbre.rds.rds_blue_green (documented by the
    ``dbre.rds.upgrade_checklist`` doc fragment)."""
    return dict(
        max_backup_age_hours=dict(type="float", default=DEFAULT_OPTIONS["max_backup_age_hours"]),
        max_restorable_age_seconds=dict(type="float", default=DEFAULT_OPTIONS["max_restorable_age_seconds"]),
        max_transaction_age_seconds=dict(type="float", default=DEFAULT_OPTIONS["max_transaction_age_seconds"]),
        min_free_storage_percent=dict(type="float", default=DEFAULT_OPTIONS["min_free_storage_percent"]),
        require_multi_az=dict(type="bool", default=False),
        extension_versions=dict(type="dict", default={}),
    )


def option_problems(params):
    """Every problem with the checklist's options, found before any AWS call (empty list: all good)."""
    found = []
    for key in ("max_backup_age_hours", "max_restorable_age_seconds", "max_transaction_age_seconds"):
        value = params.get(key)
        if value is not None and not (math.isfinite(value) and value > 0):
            found.append(f"{key} must be positive, got {value}: it is the limit its check is held to")
    percent = params.get("min_free_storage_percent")
    if percent is not None and not (math.isfinite(percent) and 0 <= percent < 100):
        found.append(f"min_free_storage_percent must be between 0 and 100, got {percent}")
    for name, versions in (params.get("extension_versions") or {}).items():
        listed = versions if isinstance(versions, list) else [versions]
        bad = [str(v) for v in listed if not isinstance(v, (str, int, float)) or not str(v).strip()]
        if bad:
            found.append(f"extension_versions.{name} must list the versions the target ships, like "
                         f"{{{name}: ['3.5.2']}} ([] when it does not ship {name})")
    return found


def options_from(params):
    """The checklist's options: the given ones, defaults where not given (other keys pass through)."""
    options = dict(params or {})
    for key, default in DEFAULT_OPTIONS.items():
        if options.get(key) is None:
            options[key] = default
    return options


def major_of(version):
    """The major version of a PostgreSQL version string ("15.4" -> "15", "9.6.24" -> "9.6"), or None."""
    text = str(version or "").strip()
    if not _VERSION.match(text):
        return None
    parts = text.split(".")
    return ".".join(parts[:2]) if parts[0] == "9" else parts[0]


def _major_number(major):
    return tuple(int(p) for p in str(major).split("."))


def version_key(version):
    """Sort key of a version string ("1.10" after "1.9"; letters sort before digits)."""
    return tuple((1, int(part)) if part.isdigit() else (0, part) for part in re.split(r"[.\-]", str(version)))


# --------------------------------------------------------------------------------------------------------------------
# The database side: one SQL pass

SERVER_SQL = "SELECT current_setting('server_version_num')::int, current_setting('server_version')"
DATABASES_SQL = """
SELECT datname, datallowconn,
       CASE WHEN has_database_privilege(datname, 'CONNECT') THEN pg_catalog.pg_database_size(oid) END
FROM pg_catalog.pg_database ORDER BY datname"""
PREPARED_SQL = """
SELECT gid, database, owner, prepared, EXTRACT(EPOCH FROM now() - prepared)
FROM pg_catalog.pg_prepared_xacts ORDER BY prepared"""
SLOTS_SQL = """
SELECT slot_name, plugin, database, active, temporary
FROM pg_catalog.pg_replication_slots WHERE slot_type = 'logical' ORDER BY slot_name"""
TRANSACTIONS_SQL = f"""
SELECT pid, datname, usename, application_name, state, xact_start, EXTRACT(EPOCH FROM now() - xact_start)
FROM pg_catalog.pg_stat_activity
WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid() AND backend_type = 'client backend'
ORDER BY xact_start LIMIT {LONG_TRANSACTIONS_LISTED}"""
# pg_upgrade's own recursive search (check_for_data_types_usage): a column is affected when its type is one of the
# named types or a system catalog's row type, or a domain over, an array of, a composite holding or a range of one.
TYPED_COLUMNS_SQL = """
WITH RECURSIVE oids(oid, root) AS (
    SELECT t.oid, CASE WHEN t.typtype = 'c' THEN 'system_composite:' || pg_catalog.format_type(t.oid, NULL)
                       ELSE t.typname::text END
    FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
    WHERE (n.nspname IN ('pg_catalog', 'information_schema') AND t.typname = ANY(%(names)s) AND t.typtype <> 'c')
       OR (t.typtype = 'c' AND (t.oid < 16384 OR n.nspname = 'information_schema'))
  UNION
    SELECT * FROM (
        WITH x AS (SELECT oid, root FROM oids)
        SELECT t.oid, x.root FROM pg_catalog.pg_type t, x WHERE t.typbasetype = x.oid AND t.typtype = 'd'
        UNION ALL
        SELECT t.oid, x.root FROM pg_catalog.pg_type t, x WHERE t.typelem = x.oid AND t.typtype = 'b'
        UNION ALL
        SELECT t.oid, x.root FROM pg_catalog.pg_type t, pg_catalog.pg_class c, pg_catalog.pg_attribute a, x
        WHERE t.typtype = 'c' AND t.oid = c.reltype AND c.oid = a.attrelid AND NOT a.attisdropped
              AND a.atttypid = x.oid
        UNION ALL
        SELECT t.oid, x.root FROM pg_catalog.pg_type t, pg_catalog.pg_range r, x
        WHERE t.typtype = 'r' AND r.rngtypid = t.oid AND r.rngsubtype = x.oid
    ) AS derived
)
SELECT DISTINCT n.nspname, c.relname, c.relkind, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), o.root
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
JOIN oids o ON o.oid = a.atttypid
WHERE NOT a.attisdropped AND a.attnum > 0 AND c.relkind IN ('r', 'm', 'i')
  AND n.nspname !~ '^pg_temp_' AND n.nspname !~ '^pg_toast_temp_'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1, 2, 4, 6"""
# pg_upgrade of PostgreSQL 18 (check_for_not_null_inheritance, for sources up to 17): a child column nullable where
# the same column of a parent is NOT NULL; 18 keeps NOT NULL as an inherited constraint and the restore would fail.
NOT_NULL_INHERITANCE_SQL = """
SELECT nc.nspname, cc.relname, ac.attname, np.nspname, cp.relname
FROM pg_catalog.pg_inherits i
JOIN pg_catalog.pg_attribute ac ON ac.attrelid = i.inhrelid
JOIN pg_catalog.pg_attribute ap ON ap.attrelid = i.inhparent AND ap.attname = ac.attname
JOIN pg_catalog.pg_class cc ON cc.oid = ac.attrelid
JOIN pg_catalog.pg_namespace nc ON nc.oid = cc.relnamespace
JOIN pg_catalog.pg_class cp ON cp.oid = ap.attrelid
JOIN pg_catalog.pg_namespace np ON np.oid = cp.relnamespace
WHERE ap.attnum > 0 AND ap.attnotnull AND NOT ac.attnotnull
ORDER BY 1, 2, 3, 4, 5"""
NOT_NULL_CHECKED_FROM, NOT_NULL_CHECKED_UP_TO = (18,), (17,)  # target major from which, source major up to which
EXTENSIONS_SQL = """
SELECT e.extname, e.extversion,
       ARRAY(SELECT p.target FROM pg_catalog.pg_extension_update_paths(e.extname) p
             WHERE p.source = e.extversion AND p.path IS NOT NULL)
FROM pg_catalog.pg_extension e ORDER BY e.extname"""


def _rows(conn, sql, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _close(conn):
    try:
        conn.close()
    except Exception:  # pylint: disable=broad-except
        pass


def _first_line(exc):
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]


def _seconds(value):
    return None if value is None else round(float(value), 3)


def typed_column_names(source_major, target_major):
    """The type names the database pass looks for: the reg* types, and the removed types that apply."""
    return list(REG_TYPES) + [name for name in REMOVED_TYPES if _type_applies(name, source_major, target_major)]


def _type_applies(name, source_major, target_major):
    changed = _major_number(REMOVED_TYPES[name][0])
    try:
        return _major_number(source_major) < changed <= _major_number(target_major)
    except (TypeError, ValueError):
        return True


def not_null_check_applies(source_major, target_major):
    """Whether pg_upgrade checks inherited NOT NULL consistency: a target of 18 or later, a source of 17 or older."""
    try:
        return (_major_number(source_major) <= NOT_NULL_CHECKED_UP_TO
                and _major_number(target_major) >= NOT_NULL_CHECKED_FROM)
    except (TypeError, ValueError):
        return True


def database_facts(connect, target_major, login_db="postgres"):
    """The database side of the checklist in one pass. ``connect(dbname)`` returns a DB-API (psycopg2) connection
    as the modules' pg_connection opens it; every connection is closed before returning. Cluster-wide facts are read
    once (through ``login_db``), the per-database ones in every database that allows connections except template0
    and RDS's own; a database the login cannot open is listed under ``unreadable`` with the server's words."""
    facts = {"target_major": str(target_major), "databases": [], "refusing_connections": [], "unreadable": [],
             "prepared_transactions": [], "logical_slots": [], "transactions": [], "typed_columns": [],
             "extensions": [], "not_null_inheritance": []}
    conn = connect(login_db)
    try:
        _autocommit(conn)
        version_num, version = _rows(conn, SERVER_SQL)[0]
        facts["server_version"] = str(version).split()[0]
        facts["source_major"] = major_of(facts["server_version"]) or str(int(version_num) // 10000)
        for name, allow, size in _rows(conn, DATABASES_SQL):
            facts["databases"].append({"name": name, "allows_connections": bool(allow),
                                       "size_bytes": None if size is None else int(size)})
            if not allow and name != "template0":
                facts["refusing_connections"].append(name)
        for gid, database, owner, prepared, age in _rows(conn, PREPARED_SQL):
            facts["prepared_transactions"].append({"gid": gid, "database": database, "owner": owner,
                                                   "prepared": utc_iso(prepared), "age_seconds": _seconds(age)})
        for slot, plugin, database, active, temporary in _rows(conn, SLOTS_SQL):
            facts["logical_slots"].append({"slot_name": slot, "plugin": plugin, "database": database,
                                           "active": bool(active), "temporary": bool(temporary)})
        for pid, database, user, application, state, started, age in _rows(conn, TRANSACTIONS_SQL):
            facts["transactions"].append({"pid": pid, "database": database, "user": user,
                                          "application_name": application, "state": state,
                                          "xact_start": utc_iso(started), "age_seconds": _seconds(age)})
    finally:
        _close(conn)
    names = typed_column_names(facts["source_major"], target_major)
    not_null = not_null_check_applies(facts["source_major"], target_major)
    for database in inspected_databases(facts["databases"]):
        try:
            conn = connect(database)
        except Exception as exc:  # pylint: disable=broad-except
            facts["unreadable"].append({"database": database, "error": _first_line(exc)})
            continue
        try:
            _autocommit(conn)
            for schema, relation, kind, column, column_type, root in _rows(conn, TYPED_COLUMNS_SQL, {"names": names}):
                facts["typed_columns"].append({"database": database, "schema": schema, "relation": relation,
                                               "relkind": kind, "column": column, "type": column_type, "root": root})
            for name, version, reachable in _rows(conn, EXTENSIONS_SQL):
                facts["extensions"].append({"database": database, "name": name, "version": version,
                                            "update_targets": sorted(reachable or [], key=version_key)})
            inconsistent = _rows(conn, NOT_NULL_INHERITANCE_SQL) if not_null else []
            for schema, relation, column, parent_schema, parent in inconsistent:
                facts["not_null_inheritance"].append({"database": database, "schema": schema, "relation": relation,
                                                      "column": column, "parent_schema": parent_schema,
                                                      "parent": parent})
        except Exception as exc:  # pylint: disable=broad-except
            facts["unreadable"].append({"database": database, "error": _first_line(exc)})
        finally:
            _close(conn)
    facts["total_size_bytes"] = sum(d["size_bytes"] or 0 for d in facts["databases"])
    return facts


def _autocommit(conn):
    # A read in autocommit holds no transaction open: the checklist must not show up as a long transaction itself.
    if hasattr(conn, "autocommit"):
        conn.autocommit = True


def inspected_databases(databases):
    """The databases the pass looks inside: those allowing connections, but template0 and RDS's own."""
    return [d["name"] for d in databases if d["allows_connections"] and d["name"] != "template0"
            and d["name"] not in RDS_RESERVED_DATABASES]


# --------------------------------------------------------------------------------------------------------------------
# The AWS side

def read_aws(rds, instance, target_engine_version, target_parameter_group=None, cloudwatch=None, now=None):
    """The describe results :func:`aws_facts` needs, read with the modules' clients (retrying decorators; client
    errors propagate for the module to name). ``instance`` is the described DB instance."""
    engine, current = instance.get("Engine"), instance.get("EngineVersion")
    read = {"instance": instance}
    read["current_engine_versions"] = rds_resources.paginate(
        rds, "describe_db_engine_versions", "DBEngineVersions", Engine=engine, EngineVersion=current)
    read["target_engine_versions"] = rds_resources.paginate(
        rds, "describe_db_engine_versions", "DBEngineVersions", Engine=engine, EngineVersion=target_engine_version)
    group = ((instance.get("DBParameterGroups") or [{}])[0]).get("DBParameterGroupName")
    read["current_parameters"] = rds_resources.paginate(
        rds, "describe_db_parameters", "Parameters", DBParameterGroupName=group) if group else []
    families = [v.get("DBParameterGroupFamily") for v in read["current_engine_versions"]]
    read["current_defaults"] = rds_resources.paginate(
        rds, "describe_engine_default_parameters", "EngineDefaults.Parameters",
        DBParameterGroupFamily=families[0]) if families and families[0] else []
    target_families = [v.get("DBParameterGroupFamily") for v in read["target_engine_versions"]]
    read["target_defaults"] = rds_resources.paginate(
        rds, "describe_engine_default_parameters", "EngineDefaults.Parameters",
        DBParameterGroupFamily=target_families[0]) if target_families and target_families[0] else []
    read["target_parameter_group"] = rds_resources.describe_parameter_group(rds, target_parameter_group)
    read["snapshots"] = rds_resources.describe_snapshots(rds, rds_resources.INSTANCE, instance["DBInstanceIdentifier"])
    read["free_storage_datapoints"] = []
    if cloudwatch is not None and now is not None:
        moment = parse_utc(now)
        response = cloudwatch.get_metric_statistics(
            aws_retry=True, Namespace="AWS/RDS", MetricName="FreeStorageSpace", Statistics=["Minimum"],
            Dimensions=[{"Name": "DBInstanceIdentifier", "Value": instance["DBInstanceIdentifier"]}],
            StartTime=moment - timedelta(minutes=30), EndTime=moment, Period=60)
        read["free_storage_datapoints"] = response.get("Datapoints") or []
    return read


def _values(parameters):
    return {p["ParameterName"]: p.get("ParameterValue") for p in parameters or []
            if p.get("ParameterValue") is not None}


def non_default_values(current_values, current_defaults):
    """``{name: value}`` of the current group's values that differ from its family's engine defaults."""
    return {name: value for name, value in sorted((current_values or {}).items())
            if not param_tuning.same_value(value, (current_defaults or {}).get(name))}


def aws_facts(read, target_engine_version, now, target_parameter_group=None):
    """Plain facts from :func:`read_aws`'s describe results (pure). ``now`` is an aware UTC datetime or ISO text."""
    now = parse_utc(now)
    instance = read.get("instance") or {}
    current_versions = read.get("current_engine_versions") or [{}]
    target_versions = read.get("target_engine_versions") or []
    valid = current_versions[0].get("ValidUpgradeTarget") or []
    latest = instance.get("LatestRestorableTime")
    snapshots = [s for s in read.get("snapshots") or [] if s.get("Status") == "available"
                 and s.get("SnapshotCreateTime")]
    newest = max(snapshots, key=lambda s: parse_utc(s["SnapshotCreateTime"])) if snapshots else None
    points = sorted(read.get("free_storage_datapoints") or [], key=lambda p: parse_utc(p["Timestamp"]))
    groups = instance.get("DBParameterGroups") or [{}]
    return {
        "identifier": instance.get("DBInstanceIdentifier"),
        "status": instance.get("DBInstanceStatus"),
        "engine": instance.get("Engine"),
        "current_version": instance.get("EngineVersion"),
        "target_version": str(target_engine_version),
        "target_exists": bool(target_versions),
        "valid_targets": [{"version": t.get("EngineVersion"), "major": bool(t.get("IsMajorVersionUpgrade"))}
                          for t in valid],
        "current_family": current_versions[0].get("DBParameterGroupFamily"),
        "target_family": target_versions[0].get("DBParameterGroupFamily") if target_versions else None,
        "current_parameter_group": groups[0].get("DBParameterGroupName"),
        "current_non_default": non_default_values(_values(read.get("current_parameters")),
                                                  _values(read.get("current_defaults"))),
        "target_parameter_names": sorted(p["ParameterName"] for p in read.get("target_defaults") or []),
        "target_parameter_group_name": target_parameter_group,
        "target_parameter_group": read.get("target_parameter_group"),
        "backup_retention_days": instance.get("BackupRetentionPeriod") or 0,
        "latest_restorable_time": utc_iso(parse_utc(latest)) if latest else None,
        "restorable_age_seconds": _age(now, latest),
        "newest_snapshot": newest.get("DBSnapshotIdentifier") if newest else None,
        "newest_snapshot_type": newest.get("SnapshotType") if newest else None,
        "snapshot_age_hours": None if newest is None else round(_age(now, newest["SnapshotCreateTime"]) / 3600, 3),
        "maintenance_window": instance.get("PreferredMaintenanceWindow"),
        "next_maintenance": utc_iso(next_window_start(instance.get("PreferredMaintenanceWindow"), now)),
        "pending_modified_values": {k: v for k, v in (instance.get("PendingModifiedValues") or {}).items()
                                    if v not in (None, [], {})},
        "multi_az": bool(instance.get("MultiAZ")),
        "allocated_storage_gib": instance.get("AllocatedStorage"),
        "free_storage_bytes": float(points[-1]["Minimum"]) if points else None,
    }


def _age(now, moment):
    if not moment:
        return None
    return round(max((now - parse_utc(moment)).total_seconds(), 0.0), 3)


def next_window_start(window, now):
    """The next start of a weekly window like ``sun:05:00-sun:05:30`` after ``now`` (UTC), or None."""
    match = _WINDOW.match(str(window or "").lower())
    if not match:
        return None
    now = parse_utc(now)
    day, hour, minute = _DAYS.index(match.group(1)), int(match.group(2)), int(match.group(3))
    start = (now - timedelta(days=now.weekday())).replace(hour=hour, minute=minute, second=0, microsecond=0)
    start += timedelta(days=day)
    return start if start > now else start + timedelta(days=7)


# --------------------------------------------------------------------------------------------------------------------
# The target parameter group

def target_parameter_group_plan(current_values, current_defaults, target_metadata, tuned=None):
    """The values of a new parameter group of the target family: ``{"values", "carried", "dropped", "tuned",
    "skipped"}``.

    ``current_values`` and ``current_defaults`` are ``{name: value}`` of the current group and of its family's engine
    defaults; ``target_metadata`` is ``{name: Parameter item}`` of the target family (DescribeEngineDefaultParameters);
    ``tuned`` the recommendations of ``param_tuning.recommend`` for the instance (rds_param_tune's rules). The current
    group's non-default values that the target family has, lets modify and accepts are carried and win over the
    tuned ones (they are what production runs on); the others are listed under ``dropped`` with the reason.
    """
    target_metadata = target_metadata or {}
    carried, dropped = [], []
    for name, value in non_default_values(current_values, current_defaults).items():
        meta = target_metadata.get(name)
        if meta is None:
            dropped.append({"name": name, "value": value, "reason": "the target family has no such parameter"})
        elif not meta.get("IsModifiable", False):
            dropped.append({"name": name, "value": value, "reason": "RDS does not let it be modified in the target "
                                                                    "family"})
        else:
            problem = param_tuning.value_problem(name, value, meta)
            if problem:
                dropped.append({"name": name, "value": value, "reason": f"the target family refuses it: {problem}"})
            else:
                carried.append({"name": name, "value": value})
    recommendations = param_tuning.in_group_units(list(tuned or []), target_metadata)
    desired, _sources, skipped, problems = param_tuning.desired_values(recommendations, {}, target_metadata)
    carried_names = {item["name"] for item in carried}
    tuned_values = [{"name": name, "value": value} for name, value in sorted(desired.items())
                    if name not in carried_names]
    skipped = skipped + [{"name": p.split(":", 1)[0], "reason": p} for p in problems]
    values = dict(desired)
    values.update({item["name"]: item["value"] for item in carried})
    return {"values": dict(sorted(values.items())), "carried": carried, "dropped": dropped, "tuned": tuned_values,
            "skipped": skipped}


# --------------------------------------------------------------------------------------------------------------------
# Extensions

def target_extension_versions(target_major, given=None):
    """``{extension: [versions]}`` the target major ships (extension_versions.py), with ``given`` (the user's
    ``extension_versions`` option) on top: for each extension it names, the versions the target RDS engine version
    supports (RDS's "extension versions" table), in place of what the community build ships; ``[]`` when it does
    not ship the extension. That is how an extension the lab lacks (PostGIS) is known, and how RDS's narrower list
    (one version per extension) is held."""
    major = str(target_major)
    found = {name: list(versions) for name, versions in (shipped.EXTENSION_VERSIONS.get(major) or {}).items()}
    for name, versions in (shipped.NOT_BUILT_BY_THE_WHEEL.get(major) or {}).items():
        found.setdefault(name, []).extend(versions)
    for name, versions in (given or {}).items():
        listed = versions if isinstance(versions, list) else [versions]
        found[str(name)] = [str(v) for v in listed]
    return {name: sorted(set(versions), key=version_key) for name, versions in found.items()}


def _quote_ident(name):
    return '"' + str(name).replace('"', '""') + '"'


def _quote_literal(value):
    return "'" + str(value).replace("'", "''") + "'"


def extension_problem(extension, target_versions, target_major):
    """None when the target ships the installed version, else ``{database, extension, installed, fix, update_to}``:
    ``update_to`` is the newest version the target ships that ``ALTER EXTENSION ... UPDATE TO`` reaches from the
    installed one here, and ``fix`` the SQL to run (or the DROP EXTENSION when none is reachable)."""
    name, version = extension["name"], extension["version"]
    offered = target_versions.get(name)
    if offered and version in offered:
        return None
    reachable = [v for v in extension.get("update_targets") or [] if offered and v in offered]
    database = extension["database"]
    problem = {"database": database, "extension": name, "installed": version, "target_versions": offered or [],
               "update_to": None}
    if reachable:
        update_to = max(reachable, key=version_key)
        problem["update_to"] = update_to
        problem["fix"] = (f"in database {database}: ALTER EXTENSION {_quote_ident(name)} UPDATE TO "
                          f"{_quote_literal(update_to)};")
    elif not offered:
        problem["fix"] = (f"in database {database}: PostgreSQL {target_major} does not ship {name}: remove what uses "
                          f"it, then DROP EXTENSION {_quote_ident(name)}; (or add the versions the target RDS engine "
                          "supports to extension_versions if it does ship it)")
    else:
        problem["fix"] = (f"in database {database}: {name} {version} cannot be updated here to a version "
                          f"PostgreSQL {target_major} ships ({', '.join(offered)}): upgrade through an intermediate "
                          f"major version, or DROP EXTENSION {_quote_ident(name)}; and recreate it after the upgrade")
    return problem


# --------------------------------------------------------------------------------------------------------------------
# Checks

def _check(name, passed, value, expected, unit=None, fix=None, detail=None, blocker=None):
    default_blocker = name in BLOCKER_CHECKS
    return {"name": name, "passed": bool(passed), "value": value, "expected": expected, "unit": unit,
            "fix": None if passed else fix, "blocker": default_blocker if blocker is None else bool(blocker),
            "detail": detail}


def _not_checked(name, why, fix):
    return _check(name, False, None, "checked", fix=fix, detail={"not_checked": why})


def _relation(column):
    return f"{column['schema']}.{column['relation']}.{column['column']}"


def evaluate(facts, options):
    """Every check of the checklist, in report order (:data:`CHECK_NAMES`).

    ``facts`` is ``{"aws": aws_facts(...), "database": database_facts(...) or None}``; without database facts (no
    credentials) the database checks fail as not checked: nothing says there is no blocker inside. Without the
    ``aws`` key (a caller that judges only the database, like rds_blue_green's pre-check) only the database checks
    are returned. ``options`` from :func:`options_from`, plus ``target_parameter_group`` and
    ``create_parameter_group`` as the module takes them.
    """
    options = options_from(options)
    aws = facts.get("aws")
    database = facts.get("database")
    checks = []
    if aws is not None:
        checks += [_instance_check(aws), _target_check(aws), _parameter_group_check(aws, options),
                   _backup_check(aws, options), _snapshot_check(aws, options), _window_check(aws),
                   _multi_az_check(aws, options), _storage_check(aws, database, options)]
    aws = aws or {}
    if database is None:
        why = "no database login was given"
        fix = ("give login_user and login_password (or iam_auth) so the checklist can look inside the databases "
               "for what pg_upgrade --check stops on")
        checks += [_not_checked(name, why, fix) for name in DATABASE_CHECKS]
    else:
        target_major = major_of(aws.get("target_version")) or database.get("target_major")
        checks += [_inspected_check(database), _connections_check(database), _prepared_check(database),
                   _reg_check(database), _slots_check(database),
                   _removed_types_check(database, database.get("source_major"), target_major),
                   _extensions_check(database, target_major, options),
                   _not_null_check(database, database.get("source_major"), target_major),
                   _transactions_check(database, options)]
    order = {name: index for index, name in enumerate(CHECK_NAMES)}
    return sorted(checks, key=lambda c: order[c["name"]])


def _instance_check(aws):
    status = aws.get("status")
    return _check("instance_available", status == "available", status, "available",
                  fix=f"wait until {aws.get('identifier')} is available (it is {status}) and run the checklist again")


def _target_check(aws):
    current, target = aws.get("current_version"), aws.get("target_version")
    valid = [t["version"] for t in aws.get("valid_targets") or []]
    passed = target in valid
    if target == current:
        fix = f"{aws.get('identifier')} already runs {current}: name a newer target_engine_version"
    elif not aws.get("target_exists"):
        fix = (f"RDS offers no {aws.get('engine')} {target}: pick one of the valid targets of {current}: "
               f"{_targets_text(valid)}")
    elif target_major_below(target, current):
        fix = f"{target} is older than {current}: RDS does not downgrade; pick one of {_targets_text(valid)}"
    else:
        same_major = [v for v in valid if major_of(v) == major_of(target)]
        hops = [v for v in valid if major_of(v) != major_of(current)]
        if same_major:
            fix = (f"{target} is not a valid upgrade target of {current}; {_targets_text(same_major)} of the same "
                   "major are")
        elif hops:
            fix = (f"{current} cannot upgrade to {target} directly: upgrade first to {max(hops, key=version_key)} "
                   f"(a valid target), then to {target}")
        else:
            fix = (f"{current} has no valid major upgrade target: first upgrade to a newer minor "
                   f"({_targets_text(valid)})")
    return _check("valid_upgrade_target", passed, target, f"one of the {len(valid)} valid targets of {current}",
                  fix=fix, detail={"valid_targets": valid})


def target_major_below(target, current):
    try:
        return version_key(target) < version_key(current)
    except TypeError:
        return False


def _targets_text(versions):
    versions = sorted(versions, key=version_key)
    if not versions:
        return "none"
    return ", ".join(versions[-8:]) + (f" (and {len(versions) - 8} older)" if len(versions) > 8 else "")


def _parameter_group_check(aws, options):
    family = aws.get("target_family")
    name = options.get("target_parameter_group")
    create = bool(options.get("create_parameter_group"))
    custom = aws.get("current_non_default") or {}
    carried = [p for p in custom if p in set(aws.get("target_parameter_names") or [])]
    lost = sorted(set(custom) - set(carried))
    detail = {"target_family": family, "current_parameter_group": aws.get("current_parameter_group"),
              "current_non_default": custom, "carried": carried, "not_in_target_family": lost}
    group = aws.get("target_parameter_group")
    if name and group is not None:
        found = group.get("DBParameterGroupFamily")
        return _check("target_parameter_group", found == family, name, f"a group of family {family}",
                      fix=(f"{name} is of family {found}: RDS refuses it for an upgrade to {aws.get('target_version')}"
                           f"; give a group of family {family}, or a new name with create_parameter_group: true"),
                      detail=dict(detail, family=found))
    if name:
        return _check("target_parameter_group", create, name, f"a group of family {family}",
                      fix=(f"no parameter group {name}: create it (create_parameter_group: true makes it of family "
                           f"{family}, tuned, carrying {', '.join(carried) or 'no custom value'}) or name an existing "
                           "one"), detail=detail)
    if create:
        return _check("target_parameter_group", True, None, f"a group of family {family}", detail=detail)
    return _check("target_parameter_group", not custom, f"default.{family}" if family else None,
                  "the current group's custom values carried",
                  fix=(f"without target_parameter_group RDS uses default.{family}, dropping the custom values of "
                       f"{aws.get('current_parameter_group')} ({', '.join(sorted(custom))}): give "
                       "target_parameter_group with create_parameter_group: true to carry them"),
                  detail=detail, blocker=False)


def _backup_check(aws, options):
    limit = options["max_restorable_age_seconds"]
    days, age = aws.get("backup_retention_days") or 0, aws.get("restorable_age_seconds")
    identifier = aws.get("identifier")
    if days < 1:
        fix = (f"turn automated backups on for {identifier} (ModifyDBInstance BackupRetentionPeriod >= 1): RDS then "
               "takes a snapshot before the upgrade and point-in-time restore can undo it")
    elif age is None:
        fix = f"{identifier} has no latest restorable time yet: wait for its first automated backup"
    else:
        fix = (f"the latest restorable time of {identifier} is {age} s old (RDS uploads logs every 5 minutes): check "
               "its events for failing backups before upgrading")
    return _check("recent_backup", days >= 1 and age is not None and age <= limit, age, limit, "seconds", fix=fix,
                  detail={"backup_retention_days": days, "latest_restorable_time": aws.get("latest_restorable_time")})


def _snapshot_check(aws, options):
    limit = options["max_backup_age_hours"]
    age = aws.get("snapshot_age_hours")
    fix = (f"take a manual snapshot of {aws.get('identifier')} (CreateDBSnapshot) before the upgrade: it is the way "
           "back to the old major version" + ("" if age is None else f" (the newest is {age} hours old)"))
    return _check("recent_snapshot", age is not None and age <= limit, age, limit, "hours", fix=fix,
                  detail={"snapshot": aws.get("newest_snapshot"), "type": aws.get("newest_snapshot_type")})


def _window_check(aws):
    window, pending = aws.get("maintenance_window"), aws.get("pending_modified_values") or {}
    if not window:
        fix = (f"set a maintenance window on {aws.get('identifier')} (PreferredMaintenanceWindow) so RDS's own "
               "maintenance does not land in the upgrade")
    else:
        fix = (f"{aws.get('identifier')} has modifications pending ({', '.join(sorted(pending))}): apply them (a "
               "reboot or ApplyImmediately) or revert them before the upgrade, which would apply them too")
    return _check("maintenance_window", bool(window) and not pending, window, "a window, nothing pending", fix=fix,
                  detail={"next_start": aws.get("next_maintenance"), "pending_modified_values": pending})


def _multi_az_check(aws, options):
    required = bool(options.get("require_multi_az"))
    multi_az = bool(aws.get("multi_az"))
    return _check("multi_az", multi_az or not required, multi_az, True if required else "not required",
                  fix=(f"make {aws.get('identifier')} Multi-AZ (ModifyDBInstance MultiAZ=true) well before the "
                       "upgrade, not with it: the standby is upgraded with the primary, so the outage stays the "
                       "same, but the upgraded instance is protected at once"))


def _storage_check(aws, database, options):
    allocated = aws.get("allocated_storage_gib")
    free, source = aws.get("free_storage_bytes"), "FreeStorageSpace"
    if free is None and allocated is not None and database is not None:
        free, source = allocated * 1024 ** 3 - (database.get("total_size_bytes") or 0), "allocated less databases"
    limit = options["min_free_storage_percent"]
    if free is None or not allocated:
        return _check("free_storage", False, None, limit, "percent",
                      fix="free storage is unknown (no FreeStorageSpace datapoint and no database sizes): check "
                          "the instance's FreeStorageSpace in CloudWatch")
    percent = round(100.0 * free / (allocated * 1024 ** 3), 2)
    return _check("free_storage", percent >= limit, percent, limit, "percent",
                  fix=(f"{aws.get('identifier')} has {percent} % of {allocated} GiB free: increase AllocatedStorage "
                       "(ModifyDBInstance) or remove data before the upgrade, which needs room for the new catalog "
                       "and its logs"),
                  detail={"free_bytes": int(free), "source": source, "allocated_gib": allocated})


def _inspected_check(database):
    unreadable = database.get("unreadable") or []
    inspected = inspected_databases(database.get("databases") or [])
    return _check("databases_inspected", not unreadable, sorted(set(inspected) - {u["database"] for u in unreadable}),
                  "every database",
                  fix="; ".join(f"cannot inspect {u['database']} ({u['error']}): grant the login CONNECT on it, or "
                                "check it by hand" for u in unreadable),
                  detail={"unreadable": unreadable})


def _connections_check(database):
    refusing = database.get("refusing_connections") or []
    return _check("database_connections", not refusing, refusing, [],
                  fix="; ".join(f"ALTER DATABASE {_quote_ident(name)} WITH ALLOW_CONNECTIONS true; (or drop it): "
                                "pg_upgrade connects to every database but template0" for name in refusing))


def _prepared_check(database):
    prepared = database.get("prepared_transactions") or []
    fixes = [f"in database {p['database']}: COMMIT PREPARED {_quote_literal(p['gid'])}; or ROLLBACK PREPARED "
             f"{_quote_literal(p['gid'])}; (prepared {p['prepared']} by {p['owner']}; find out which its "
             "coordinator meant)" for p in prepared]
    return _check("prepared_transactions", not prepared, len(prepared), 0, "transactions", fix="; ".join(fixes),
                  detail={"prepared_transactions": prepared})


def _reg_check(database):
    found = [c for c in database.get("typed_columns") or [] if c["root"] in REG_TYPES]
    fixes = [f"in database {c['database']}: ALTER TABLE {_quote_ident(c['schema'])}.{_quote_ident(c['relation'])} "
             f"ALTER COLUMN {_quote_ident(c['column'])} TYPE text USING {_quote_ident(c['column'])}::text; (it is "
             f"{c['type']}: OIDs pg_upgrade does not keep; regclass, regrole and regtype are kept)"
             for c in found if c["relkind"] != "i"]
    return _check("reg_columns", not found, [f"{c['database']}:{_relation(c)} ({c['type']})" for c in found], [],
                  fix="; ".join(fixes) or "drop the indexes on reg* expressions listed", detail={"columns": found})


def _slots_check(database):
    slots = database.get("logical_slots") or []
    fixes = [f"stop the consumer of slot {s['slot_name']} ({s['plugin']}, database {s['database']}) and run "
             f"SELECT pg_drop_replication_slot({_quote_literal(s['slot_name'])}); recreate it after the upgrade"
             for s in slots]
    return _check("logical_slots", not slots, [s["slot_name"] for s in slots], [], fix="; ".join(fixes),
                  detail={"slots": slots})


def _removed_types_check(database, source_major, target_major):
    by_column = {}
    for column in database.get("typed_columns") or []:
        root = column["root"]
        if root.startswith(SYSTEM_COMPOSITE):
            reason = (f"{root[len(SYSTEM_COMPOSITE):]} is a system catalog's row type, whose layout a new major may "
                      "change")
        elif root in REMOVED_TYPES and _type_applies(root, source_major, target_major):
            reason = REMOVED_TYPES[root][1]
        else:
            continue
        key = (column["database"], column["schema"], column["relation"], column["column"])
        if key in by_column:
            by_column[key]["reason"] += f"; {reason}"
        else:
            by_column[key] = dict(column, reason=reason)
    found = list(by_column.values())
    fixes = [f"in database {c['database']}: ALTER TABLE {_quote_ident(c['schema'])}.{_quote_ident(c['relation'])} "
             f"ALTER COLUMN {_quote_ident(c['column'])} TYPE text USING {_quote_ident(c['column'])}::text; "
             f"({c['reason']})" for c in found if c["relkind"] != "i"]
    return _check("removed_data_types", not found, [f"{c['database']}:{_relation(c)} ({c['type']})" for c in found],
                  [], fix="; ".join(fixes) or "drop the indexes listed", detail={"columns": found})


def _not_null_check(database, source_major, target_major):
    applies = not_null_check_applies(source_major, target_major)
    found = (database.get("not_null_inheritance") or []) if applies else []
    fixes = [f"in database {c['database']}: ALTER TABLE {_quote_ident(c['schema'])}.{_quote_ident(c['relation'])} "
             f"ALTER COLUMN {_quote_ident(c['column'])} SET NOT NULL; ({c['parent_schema']}.{c['parent']}."
             f"{c['column']} is NOT NULL and PostgreSQL {target_major} requires its children to be too; the command "
             "scans the table under an ACCESS EXCLUSIVE lock and fails while it holds NULLs: update those first)"
             for c in found]
    return _check("not_null_inheritance", not found, [f"{c['database']}:{_relation(c)}" for c in found], [],
                  fix="; ".join(fixes), detail={"columns": found, "applies": applies})


def _extensions_check(database, target_major, options):
    offered = target_extension_versions(target_major, options.get("extension_versions"))
    problems = [p for p in (extension_problem(e, offered, target_major) for e in database.get("extensions") or [])
                if p]
    return _check("extension_versions", not problems,
                  [f"{p['database']}:{p['extension']} {p['installed']}" for p in problems], [],
                  fix="; ".join(p["fix"] for p in problems),
                  detail={"problems": problems,
                          "installed": [{k: e[k] for k in ("database", "name", "version")}
                                        for e in database.get("extensions") or []]})


def _transactions_check(database, options):
    limit = options["max_transaction_age_seconds"]
    old = [t for t in database.get("transactions") or [] if (t.get("age_seconds") or 0) > limit]
    oldest = max((t["age_seconds"] for t in old), default=None)
    fixes = [f"pid {t['pid']} ({t['user']}@{t['database']}, {t['application_name'] or 'no application_name'}, "
             f"{t['state']}) has been in a transaction for {t['age_seconds']} s: end it (SELECT "
             f"pg_terminate_backend({t['pid']});) or wait; the upgrade's shutdown waits for it" for t in old]
    return _check("long_transactions", not old, oldest, limit, "seconds", fix="; ".join(fixes),
                  detail={"transactions": old})


# --------------------------------------------------------------------------------------------------------------------
# Verdict and report

def summary(checks):
    """``{"passed", "ready", "failed_checks", "blockers", "warnings"}``: ``ready`` when no blocker failed (RDS would
    run the upgrade), ``passed`` when every check held (the checklist says go ahead)."""
    failed = [c["name"] for c in checks if not c["passed"]]
    blockers = [c["name"] for c in checks if not c["passed"] and c["blocker"]]
    return {"passed": not failed, "ready": not blockers, "failed_checks": failed, "blockers": blockers,
            "warnings": [name for name in failed if name not in blockers]}


def fixes(checks):
    """What to fix first: the failed blockers' fixes, then the others', in report order."""
    failed = [c for c in checks if not c["passed"]]
    return [{"name": c["name"], "blocker": c["blocker"], "fix": c["fix"]}
            for c in sorted(failed, key=lambda c: not c["blocker"])]


def objectives(checks):
    """The checks as drill_report objectives rows: ``{name, objective, observed, unit, held}``."""
    return check_rows(checks, objective="expected", observed="value")
