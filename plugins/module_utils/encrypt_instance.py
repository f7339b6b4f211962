# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decisions of rds_encrypt_instance, as pure functions over boto3-shaped dicts.

Option and pre-check problems, the names of what the cutover creates, the settings carried over to the encrypted
instance and the requests that carry them, the write stop, the logical-replication catch-up (``cutover=logical``),
the comparison of checks on both sides, and the verdict.
No boto3, no sockets, no ``AnsibleModule``: the module does the I/O and asks these functions what to do.
"""

from __future__ import annotations

import datetime
import re

from ansible_collections.dbre.rds.plugins.module_utils.clock import parse_utc
from ansible_collections.dbre.rds.plugins.module_utils.clock import utc_iso
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import report_name_problems
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import connection_problems
from ansible_collections.dbre.rds.plugins.module_utils.probing import valid_table_name
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import IDENTIFIER_MAX
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import identifier_problems
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import standalone_instance_problem
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import tag_list
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import tags_dict

CUTOVERS = ("snapshot", "logical")
# Tags on what a cutover creates (the temporary instance, its snapshots), so cleanup deletes only its own.
RUN_ID_TAG = "dbre:encrypt-id"
RUN_OWNER_TAG = "dbre:encrypt-owner"
# Tags on the old, unencrypted instance kept after the swap.
OLD_EXPIRES_TAG = "dbre:encrypt-old-expires"
REPLACED_BY_TAG = "dbre:encrypt-replaced-by"
KEEP_OLD_HOURS_MAX = 24 * 365
TIMEOUT_SECONDS_MAX = 24 * 3600
# The longest suffix the cutover adds to the identifier: "-old-YYYYmmddHHMMSS".
OLD_SUFFIX_LENGTH = len("-old-") + 14
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")
# The default write stop: ALTER DATABASE ... SET this = on, so every new session starts read-only.
WRITE_STOP_SETTING = "default_transaction_read_only"
# What the encrypted instance does NOT get from the source (the plan lists it, so nobody is surprised).
NOT_CARRIED = (
    "the RDS-managed master user secret (ManageMasterUserPassword): it stays with the old instance",
    "associated IAM roles (AssociatedRoles, e.g. s3Import/s3Export)",
    "the CA certificate (CACertificateIdentifier): the new instance gets the region's default",
    "the Performance Insights KMS key (a new one is chosen by RDS)",
    "the network type (NetworkType, IPv4/dual-stack)",
    "the Kerberos / Active Directory domain membership (Domain, DomainIAMRoleName)",
)


# ------------------------------------------------------------------------------------------------------ options

def option_problems(params):
    """Every problem with the options, each saying what to change (empty when they are usable)."""
    problems = identifier_problems(params.get("db_instance_identifier"), "db_instance_identifier",
                                   maximum=IDENTIFIER_MAX - OLD_SUFFIX_LENGTH)
    if not str(params.get("kms_key_id") or "").strip():
        problems.append("kms_key_id must name a KMS key (key id, key ARN, alias name or alias ARN) of the instance's "
                        "region")
    if params.get("cutover") not in CUTOVERS:
        problems.append(f"cutover must be one of {', '.join(CUTOVERS)}, not {params.get('cutover')!r}")
    keep = params.get("keep_old_hours")
    if keep is None or keep < 0 or keep > KEEP_OLD_HOURS_MAX:
        problems.append(f"keep_old_hours must be between 0 and {KEEP_OLD_HOURS_MAX} (hours the old instance is kept "
                        f"stopped before its expiry tag says it may go), not {keep}")
    for key, minimum, maximum in (("wait_timeout", 1, TIMEOUT_SECONDS_MAX), ("poll_interval", 0.01, 300),
                                  ("probe_interval", 0.01, 60), ("probe_timeout", 1, 60),
                                  ("probe_settle_seconds", 0, 3600)):
        value = params.get(key)
        if value is None or value < minimum or value > maximum:
            problems.append(f"{key} must be between {minimum:g} and {maximum:g}, not {value}")
    if params.get("max_lost_writes") is not None and params["max_lost_writes"] < 0:
        problems.append("max_lost_writes must be 0 or more")
    if params.get("max_downtime_seconds") is not None and params["max_downtime_seconds"] < 0:
        problems.append("max_downtime_seconds must be 0 or more")
    if not valid_table_name(params.get("probe_table") or ""):
        problems.append(f"probe_table {params.get('probe_table')!r} must be a plain lower-case identifier")
    if params.get("cutover") == "logical" and params.get("iam_auth"):
        problems.append("cutover=logical needs login_password (not iam_auth) for now: give the master user's "
                        "password")
    if bool(params.get("pre_cutover_sql")) != bool(params.get("post_cutover_sql")):
        problems.append("pre_cutover_sql and post_cutover_sql go together: post_cutover_sql undoes the write stop on "
                        "the encrypted instance (and on the source if the cutover is abandoned)")
    problems.extend(check_problems(params.get("checks") or [], params.get("compare_row_counts") or []))
    if not (params.get("login_password") or params.get("iam_auth")):
        problems.append("login_password (or iam_auth=true) is needed: the module stops writes, validates the copy "
                        "and probes through a database connection")
    problems.extend(connection_problems(params))
    problems.extend(report_name_problems(params.get("report_name")))
    return problems


def check_problems(checks, tables):
    problems, names = [], set()
    for check in checks:
        name = str(check.get("name") or "").strip()
        if not name:
            problems.append("every entry of checks needs a name")
        elif name in names:
            problems.append(f"check name {name!r} is used twice: names must be unique")
        names.add(name)
        if not str(check.get("sql") or "").strip():
            problems.append(f"check {name or '?'} needs sql")
    for table in tables:
        if not _TABLE.match(str(table or "")):
            problems.append(f"compare_row_counts entry {table!r} is not a table name ([schema.]table, plain "
                            "identifiers)")
    return problems


# -------------------------------------------------------------------------------------------------- pre-checks

def instance_problems(identifier, instance):
    """Why this instance cannot be encrypted by this module (empty when it can, or is encrypted already)."""
    if instance is None:
        return [f"no DB instance {identifier!r} exists in this region: check the identifier and the region"]
    problem = standalone_instance_problem(identifier, instance)
    if problem:
        return [problem + " (encrypt an Aurora cluster by restoring its snapshot copy as a new cluster)"]
    if instance.get("StorageEncrypted"):
        return []
    problems = []
    if instance.get("Engine") != "postgres":
        problems.append(f"{identifier} runs {instance.get('Engine')}; this module encrypts RDS for PostgreSQL only")
    status = instance.get("DBInstanceStatus")
    if status != "available":
        problems.append(f"{identifier} is {status}, not available: wait until it is available (start it if it is "
                        "stopped)")
    if instance.get("ReadReplicaDBInstanceIdentifiers"):
        problems.append(f"{identifier} has read replicas ({', '.join(instance['ReadReplicaDBInstanceIdentifiers'])}) "
                        "that would stay with the old instance: remove them first and recreate them afterwards")
    if instance.get("ReadReplicaSourceDBInstanceIdentifier"):
        problems.append(f"{identifier} is a read replica of {instance['ReadReplicaSourceDBInstanceIdentifier']}: "
                        "encrypt the source, or promote this replica first")
    return problems


def key_problems(kms_key_id, key):
    """Why the KMS key cannot encrypt the copy (``key`` is describe_key's KeyMetadata, None when not found)."""
    if key is None:
        return [f"KMS key {kms_key_id!r} does not exist in this region (or this account cannot use it): give a key "
                "id, ARN or alias of an enabled symmetric key"]
    problems = []
    if key.get("KeyState") != "Enabled" or key.get("Enabled") is False:
        problems.append(f"KMS key {kms_key_id!r} is {key.get('KeyState') or 'disabled'}, not Enabled: enable it or "
                        "choose another key")
    if key.get("KeyUsage", "ENCRYPT_DECRYPT") != "ENCRYPT_DECRYPT" or \
            key.get("KeySpec", "SYMMETRIC_DEFAULT") != "SYMMETRIC_DEFAULT":
        problems.append(f"KMS key {kms_key_id!r} is {key.get('KeySpec')} for {key.get('KeyUsage')}: RDS needs a "
                        "symmetric encryption key (SYMMETRIC_DEFAULT, ENCRYPT_DECRYPT)")
    return problems


def name_problems(names, existing):
    """The names the cutover creates must be free: ``existing`` maps each name to True when something has it."""
    return [f"{what} {name} is taken already: an earlier run left it, or another resource has the name; remove or "
            "rename it" for what, name in (("the temporary instance", names["temporary"]),
                                           ("the old instance's name", names["old"]),
                                           ("the final snapshot", names["final_snapshot"]),
                                           ("the encrypted snapshot", names["encrypted_snapshot"]))
            if existing.get(name)]


def logical_problems(identifier, parameter_group, facts):
    """Why the source cannot be caught up by logical replication (empty when it can).

    ``facts`` is what the module read on the source: ``wal_level``, ``can_replicate`` (the login may create the
    run's replication login and grant it rds_replication: CREATEROLE and rds_replication WITH ADMIN OPTION, or a
    superuser), ``without_identity`` (tables whose UPDATE/DELETE a publication would refuse), ``not_writable``
    (tables the login may not TRUNCATE and write on the copy, or not grant SELECT and their schema's USAGE on to the
    replication login), ``other_databases`` (other
    databases with tables of their own: ``{name: count}``).
    """
    problems = []
    if facts.get("wal_level") != "logical":
        if parameter_group and not parameter_group.startswith("default."):
            where = f"in its parameter group {parameter_group}"
        else:
            where = (f"in a custom parameter group (the default group {parameter_group or ''} cannot be changed), "
                     "attach it")
        problems.append(f"cutover=logical needs rds.logical_replication=1 in effect on {identifier}, and its wal_level "
                        f"is {facts.get('wal_level')}: set rds.logical_replication=1 {where} and reboot it (the "
                        "parameter is static), or use cutover=snapshot")
    elif not facts.get("can_replicate"):
        problems.append("cutover=logical needs a login that may create roles and grant rds_replication (CREATEROLE "
                        "and rds_replication WITH ADMIN OPTION, as the master user has) for the run's replication "
                        "login: log in as the master user")
    if facts.get("without_identity"):
        problems.append("tables without a primary key or replica identity would refuse UPDATE and DELETE while they "
                        f"are published: {', '.join(facts['without_identity'])}; add a primary key (or ALTER TABLE "
                        "... REPLICA IDENTITY FULL), or use cutover=snapshot")
    if facts.get("not_writable"):
        problems.append("the login cannot TRUNCATE and write these tables, which the copy reloads, or grant SELECT "
                        "on them (and USAGE on their schema) to the run's replication login: "
                        f"{', '.join(facts['not_writable'])}; log in as their owner or the master user")
    for name, count in sorted((facts.get("other_databases") or {}).items()):
        problems.append(f"database {name} holds {count} table(s) and cutover=logical catches up login_db only: "
                        "use cutover=snapshot, or move them")
    return problems


# ------------------------------------------------------------------------------------------------------- names

def cutover_names(identifier, started_at, suffix):
    """What the cutover creates and the name the old instance takes, from the identifier and the UTC start."""
    stamp = parse_utc(started_at).strftime("%Y%m%d%H%M%S")
    return {
        "target": identifier,
        "temporary": f"{identifier[:IDENTIFIER_MAX - 12]}-enc-{suffix}".lower(),
        "old": f"{identifier}-old-{stamp}".lower(),
        "final_snapshot": f"{identifier}-pre-encrypt-{stamp}".lower()[:255],
        "encrypted_snapshot": f"{identifier}-encrypted-{stamp}".lower()[:255],
    }


def replication_name(run_id):
    """The publication, the subscription and the replication slot of a logical cutover share this name."""
    return f"dbre_encrypt_{run_id}".lower()


def run_tags(run_id, started_at, owner):
    """Tags of everything the cutover creates: cleanup deletes only what carries this run's id."""
    return {RUN_ID_TAG: run_id, RUN_OWNER_TAG: f"{owner.get('host')}/{owner.get('pid')}",
            "dbre:encrypt-started": utc_iso(parse_utc(started_at))}


def old_instance_tags(target, finished_at, keep_old_hours):
    expires = parse_utc(finished_at) + datetime.timedelta(hours=keep_old_hours)
    return {OLD_EXPIRES_TAG: utc_iso(expires), REPLACED_BY_TAG: target}


# --------------------------------------------------------------------------------------------------- settings

def _active(items, key):
    return [item[key] for item in items or [] if item.get(key) and item.get("Status", "active") != "inactive"]


def carried_settings(instance):
    """The settings of the source that the encrypted instance gets, as shown in the plan and compared after."""
    option_groups = [g for g in _active(instance.get("OptionGroupMemberships"), "OptionGroupName")
                     if not g.startswith("default:")]
    return {
        "DBInstanceClass": instance.get("DBInstanceClass"),
        "StorageType": instance.get("StorageType"),
        "AllocatedStorage": instance.get("AllocatedStorage"),
        "Iops": instance.get("Iops"),
        "StorageThroughput": instance.get("StorageThroughput"),
        "MaxAllocatedStorage": instance.get("MaxAllocatedStorage"),
        "MultiAZ": bool(instance.get("MultiAZ")),
        "DBParameterGroupName": (_active(instance.get("DBParameterGroups"), "DBParameterGroupName") or [None])[0],
        "OptionGroupName": option_groups[0] if option_groups else None,
        "DBSubnetGroupName": (instance.get("DBSubnetGroup") or {}).get("DBSubnetGroupName"),
        "VpcSecurityGroupIds": sorted(_active(instance.get("VpcSecurityGroups"), "VpcSecurityGroupId")),
        "PubliclyAccessible": bool(instance.get("PubliclyAccessible")),
        "Port": (instance.get("Endpoint") or {}).get("Port") or instance.get("DbInstancePort") or None,
        "BackupRetentionPeriod": instance.get("BackupRetentionPeriod"),
        "PreferredBackupWindow": instance.get("PreferredBackupWindow"),
        "PreferredMaintenanceWindow": instance.get("PreferredMaintenanceWindow"),
        "MonitoringInterval": instance.get("MonitoringInterval") or 0,
        "MonitoringRoleArn": instance.get("MonitoringRoleArn"),
        "EnablePerformanceInsights": bool(instance.get("PerformanceInsightsEnabled")),
        "AutoMinorVersionUpgrade": instance.get("AutoMinorVersionUpgrade"),
        "EnableIAMDatabaseAuthentication": bool(instance.get("IAMDatabaseAuthenticationEnabled")),
        "EnableCloudwatchLogsExports": sorted(instance.get("EnabledCloudwatchLogsExports") or []),
        "CopyTagsToSnapshot": bool(instance.get("CopyTagsToSnapshot")),
        "DeletionProtection": bool(instance.get("DeletionProtection")),
        "Tags": tags_dict(instance.get("TagList")),
    }


def restore_request(settings, names, run_tags_):
    """RestoreDBInstanceFromDBSnapshot of the encrypted copy under the temporary name, with the source's settings.

    Deletion protection comes after the swap (a failed cutover must be able to delete the temporary instance); the
    port is left to RDS (the endpoint that matters is the one the rename hands over).
    """
    request = {
        "DBInstanceIdentifier": names["temporary"],
        "DBSnapshotIdentifier": names["encrypted_snapshot"],
        "DBInstanceClass": settings["DBInstanceClass"],
        "MultiAZ": settings["MultiAZ"],
        "PubliclyAccessible": settings["PubliclyAccessible"],
        "EnableIAMDatabaseAuthentication": settings["EnableIAMDatabaseAuthentication"],
        "CopyTagsToSnapshot": settings["CopyTagsToSnapshot"],
        "DeletionProtection": False,
        "Tags": tag_list(dict(settings["Tags"], **run_tags_)),
    }
    for key in ("StorageType", "AllocatedStorage", "Iops", "StorageThroughput", "DBParameterGroupName",
                "OptionGroupName", "DBSubnetGroupName", "AutoMinorVersionUpgrade"):
        if settings.get(key) is not None:
            request[key] = settings[key]
    if settings["VpcSecurityGroupIds"]:
        request["VpcSecurityGroupIds"] = list(settings["VpcSecurityGroupIds"])
    if settings["EnableCloudwatchLogsExports"]:
        request["EnableCloudwatchLogsExports"] = list(settings["EnableCloudwatchLogsExports"])
    return request


def after_restore_request(settings, identifier):
    """ModifyDBInstance for what a restore does not take (backups, windows, monitoring, storage autoscaling, PI)."""
    request = {"DBInstanceIdentifier": identifier, "ApplyImmediately": True}
    for key in ("BackupRetentionPeriod", "PreferredBackupWindow", "PreferredMaintenanceWindow", "MaxAllocatedStorage"):
        if settings.get(key) is not None:
            request[key] = settings[key]
    if settings["MonitoringInterval"]:
        request["MonitoringInterval"] = settings["MonitoringInterval"]
        if settings.get("MonitoringRoleArn"):
            request["MonitoringRoleArn"] = settings["MonitoringRoleArn"]
    if settings["EnablePerformanceInsights"]:
        request["EnablePerformanceInsights"] = True
    return request


def settings_differences(source_settings, target_settings, ignore=("Tags", "Port")):
    """``{setting: {"source", "encrypted"}}`` for every carried setting that differs after the cutover."""
    return {key: {"source": value, "encrypted": target_settings.get(key)}
            for key, value in source_settings.items()
            if key not in ignore and value != target_settings.get(key)}


# -------------------------------------------------------------------------------------------------- write stop

def write_stop_plan(databases):
    """Which databases the default write stop switches to read-only, and the problems that prevent it.

    ``databases`` lists ``{"name", "can_alter", "read_only"}``: every connectable database, whether the login may
    ALTER DATABASE it (owner or member of the owner) and whether it is read-only by default already (then it is
    left as it is, and never switched back).
    """
    switch = [db["name"] for db in databases if not db.get("read_only")]
    problems = [f"the login cannot switch database {db['name']} to read-only (it does not own it): give "
                "pre_cutover_sql and post_cutover_sql that stop and restart its writes, or log in as its owner"
                for db in databases if not db.get("read_only") and not db.get("can_alter")]
    return {"databases": switch, "setting": WRITE_STOP_SETTING}, problems


def quote_ident(name):
    return '"' + str(name).replace('"', '""') + '"'


def write_stop_statements(databases):
    return [f"ALTER DATABASE {quote_ident(db)} SET {WRITE_STOP_SETTING} = on" for db in databases]


def write_resume_statements(databases):
    return [f"ALTER DATABASE {quote_ident(db)} RESET {WRITE_STOP_SETTING}" for db in databases]


# -------------------------------------------------------------------------------------------------- logical

def conninfo_value(value):
    """A libpq connection-string value, quoted (single quotes, backslash and quote escaped)."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def subscription_conninfo(host, port, dbname, user, password, ssl_mode):
    """How the encrypted copy reaches the source. TLS when the module's own connections require it (verify-ca and
    verify-full need a CA file on the copy's server, which RDS does not offer: require is the nearest)."""
    sslmode = "require" if ssl_mode in ("require", "verify-ca", "verify-full") else "prefer"
    parts = {"host": host, "port": port, "dbname": dbname, "user": user, "password": password, "sslmode": sslmode,
             "application_name": "dbre_rds_encrypt"}
    return " ".join(f"{key}={conninfo_value(value)}" for key, value in parts.items())


REPLICATION_ROLE_MAX_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1


def replication_role_name(run_id):
    """The login role the copy's subscription uses for this run only: lower case, letters, digits and underscores,
    at most 63 bytes (PostgreSQL's identifier limit)."""
    cleaned = re.sub(r"[^a-z0-9_]", "_", str(run_id).lower())
    return f"dbre_encrypt_{cleaned}"[:REPLICATION_ROLE_MAX_BYTES]


def replication_role_marker(run_id):
    """COMMENT ON ROLE of the run's replication role: the role is dropped only when it still carries it."""
    return f"dbre.rds rds_encrypt_instance run {run_id}"


def quote_literal(value):
    """A SQL string literal (standard_conforming_strings: only the quote is doubled)."""
    return "'" + str(value).replace("'", "''") + "'"


def _schemas_of(tables):
    return sorted({schema for schema, _table in tables})


def replication_role_statements(role, verifier, tables, run_id):
    """Create the run's replication login on the source: its password only as a SCRAM verifier, the right to
    replicate (rds_replication) and to read the published ``tables`` (``(schema, table)`` pairs) for the initial copy,
    and the marker that lets this run, and no other, drop it."""
    quoted = quote_ident(role)
    statements = [f"CREATE ROLE {quoted} LOGIN PASSWORD {quote_literal(verifier)}",
                  f"COMMENT ON ROLE {quoted} IS {quote_literal(replication_role_marker(run_id))}",
                  f"GRANT rds_replication TO {quoted}"]
    statements += [f"GRANT USAGE ON SCHEMA {quote_ident(schema)} TO {quoted}" for schema in _schemas_of(tables)]
    if tables:
        names = ", ".join(f"{quote_ident(schema)}.{quote_ident(table)}" for schema, table in tables)
        statements.append(f"GRANT SELECT ON {names} TO {quoted}")
    return statements


def replication_role_drop(role, found, comment, schemas, run_id):
    """``(statements, problem)`` that remove the run's replication login: nothing when it is absent (``found``
    false), nothing and a problem when its comment is not this run's marker (someone else's role of that name),
    otherwise its grants in the ``schemas`` it was given, then the role."""
    if not found:
        return [], None
    if comment != replication_role_marker(run_id):
        return [], (f"left the role {role}: its comment is {comment!r}, not this run's marker "
                    f"{replication_role_marker(run_id)!r}; drop it by hand if it is a leftover of this module")
    quoted = quote_ident(role)
    statements = []
    for schema in sorted(set(schemas)):
        statements.append(f"REVOKE ALL ON ALL TABLES IN SCHEMA {quote_ident(schema)} FROM {quoted}")
        statements.append(f"REVOKE USAGE ON SCHEMA {quote_ident(schema)} FROM {quoted}")
    statements.append(f"DROP ROLE {quoted}")
    return statements, None


def lsn_value(lsn):
    """A pg_lsn text (``16/B374D848``) as an integer, for comparisons; None stays None."""
    if lsn is None:
        return None
    high, low = str(lsn).split("/")
    return (int(high, 16) << 32) + int(low, 16)


def caught_up(target_lsn, confirmed_lsn):
    """True when the subscription has confirmed everything the source wrote up to ``target_lsn``."""
    confirmed = lsn_value(confirmed_lsn)
    return confirmed is not None and confirmed >= lsn_value(target_lsn)


def tables_synced(states):
    """The copy loaded every published table: pg_subscription_rel's srsubstate is r (ready) or s (synchronised)
    for each (``states`` lists them; an empty list means the subscription has not listed its tables yet)."""
    return bool(states) and all(state in ("r", "s") for state in states)


def truncate_statement(tables):
    """One TRUNCATE for every published table of the copy (foreign keys between them are satisfied together)."""
    return "TRUNCATE " + ", ".join(".".join(quote_ident(part) for part in table) for table in tables)


def setval_statements(sequences):
    """``(sql, params)`` that give the copy's sequences the source's values (logical replication does not carry
    them). ``sequences`` lists ``(schema, name, last_value, is_called)``; a sequence never used stays as it is."""
    statements = []
    for schema, name, last_value, is_called in sequences:
        if last_value is None:
            continue
        statements.append(("SELECT setval(%s, %s, %s)",
                           (f"{quote_ident(schema)}.{quote_ident(name)}", int(last_value), bool(is_called))))
    return statements


# ------------------------------------------------------------------------------------------------------- checks

def row_count_checks(tables):
    """A check per table of compare_row_counts: its row count must be the same on both sides."""
    checks = []
    for table in tables:
        quoted = ".".join(quote_ident(part) for part in str(table).split("."))
        checks.append({"name": f"rows in {table}", "sql": f"SELECT count(*) FROM {quoted}"})
    return checks


def compare_checks(checks, source_rows, target_rows):
    """Each check run on both sides: it passes when both ran and returned the same rows.

    ``source_rows`` / ``target_rows`` map a check's name to ``(rows, error)``.
    """
    results = []
    for check in checks:
        name = check["name"]
        source, source_error = source_rows.get(name, (None, "not run"))
        target, target_error = target_rows.get(name, (None, "not run"))
        result = {"name": name, "sql": check["sql"], "source": _jsonable(source), "encrypted": _jsonable(target),
                  "passed": False, "message": None}
        if source_error or target_error:
            where = "the source" if source_error else "the encrypted instance"
            result["message"] = f"check {name} failed to run on {where}: {source_error or target_error}"
        elif _jsonable(source) != _jsonable(target):
            result["message"] = (f"check {name}: the source returned {_short(source)}, the encrypted instance "
                                 f"{_short(target)}")
        else:
            result["passed"] = True
        results.append(result)
    return results


def _jsonable(rows):
    if rows is None:
        return None
    return [[value if isinstance(value, (int, float, str, bool)) or value is None else str(value) for value in row]
            for row in rows]


def _short(rows, limit=120):
    text = repr(_jsonable(rows))
    return text if len(text) <= limit else text[:limit] + "..."


def failed_checks_message(identifier, results):
    failed = [r["message"] for r in results if not r["passed"]]
    return (f"Validation of the encrypted copy of {identifier} failed, so nothing was swapped: "
            + "; ".join(failed) + "; the source runs on, writable, and what the cutover created was removed")


# ------------------------------------------------------------------------------------------------------ verdict

def objectives(measured, checks, max_downtime_seconds=None, max_lost_writes=0):
    """The objectives in the report's shape: encrypted under the original identifier, checks, writes, downtime."""
    rows = [{"name": "encrypted", "objective": True, "observed": measured.get("encrypted"), "unit": None,
             "held": measured.get("encrypted") is True}]
    for check in checks:
        rows.append({"name": f"check: {check['name']}", "objective": "equal on both sides",
                     "observed": "equal" if check["passed"] else check["message"], "unit": None,
                     "held": check["passed"]})
    if measured.get("probing"):
        lost = measured.get("lost_writes")
        rows.append({"name": "lost_writes", "objective": max_lost_writes, "observed": lost, "unit": None,
                     "held": lost is not None and lost <= max_lost_writes})
        if max_downtime_seconds is not None:
            observed = measured.get("write_downtime_seconds")
            rows.append({"name": "write_downtime_seconds", "objective": max_downtime_seconds, "observed": observed,
                         "unit": "s", "held": observed is not None and observed <= max_downtime_seconds})
    return rows


def breach_message(identifier, rows):
    failed = [f"{r['name']} (observed {r['observed']}, objective {r['objective']})" for r in rows if not r["held"]]
    return f"The encryption cutover of {identifier} missed its objectives: " + "; ".join(failed)


def deletion_decision(found, run_id):
    """Whether a resource this run created may be deleted right now: ``(delete, reason)``. ``found`` is the resource
    as described just before the deletion, with its tags as ``TagList`` (None when it is gone already)."""
    if found is None:
        return False, "it is gone already"
    if tags_dict(found.get("TagList")).get(RUN_ID_TAG) != run_id:
        return False, f"it does not carry {RUN_ID_TAG}={run_id}"
    return True, None


def cleanup_targets(created, described, run_id):
    """Which created resources cleanup deletes: only those that still carry this run's id tag.

    ``created`` lists ``{"kind": "instance"|"snapshot", "identifier"}``; ``described`` maps (kind, identifier) to
    the described resource with its tags (None when gone). Returns (delete, skipped) lists of the same dicts, a
    skipped one with a ``reason``.
    """
    delete, skipped = [], []
    for item in created:
        found = described.get((item["kind"], item["identifier"]))
        if found is None:
            continue
        ok, reason = deletion_decision(found, run_id)
        if ok:
            delete.append(item)
        else:
            skipped.append(dict(item, reason=reason))
    return delete, skipped
