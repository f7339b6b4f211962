# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decisions of the DR readiness check, as pure functions over boto3-shaped dicts.

The module ``dbre.rds.rds_dr_readiness_info`` reads the topology (the primary, its cross-region read replicas or the
secondary clusters of its global database, replicated automated backups and snapshot copies in the DR region),
CloudWatch lag series and alarms, KMS keys and parameter values, and hands them here as one ``facts`` dict. These
functions say which DR copies there are, which strategy is in use and what it is expected to cost (RTO/RPO), and
judge every check of a monthly DR readiness test: name, passed, measured value, objective and the fix. A check that
cannot apply (no DR copy, or only backups) is not failed a second time: it is listed as not applicable, with the
reason.
"""

from __future__ import annotations

import math
import re

from ansible_collections.dbre.rds.plugins.module_utils.clock import parse_utc
from ansible_collections.dbre.rds.plugins.module_utils.clock import utc_iso
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import check_rows
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import report_name_problems
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import identifier_problems
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import tags_dict
from ansible_collections.dbre.rds.plugins.module_utils.restore_drill import DRILL_ID_TAG

INSTANCE = "instance"
CLUSTER = "cluster"

READ_REPLICA = "read_replica"
GLOBAL_SECONDARY = "global_secondary"
AUTOMATED_BACKUPS = "automated_backups"
SNAPSHOT_COPY = "snapshot_copy"
STANDBY_KINDS = (READ_REPLICA, GLOBAL_SECONDARY)
BACKUP_KINDS = (AUTOMATED_BACKUPS, SNAPSHOT_COPY)

NAMESPACE = "AWS/RDS"
# The lag metric each standby publishes, its dimension and the unit CloudWatch gives it in (seconds per unit).
LAG_METRICS = {
    READ_REPLICA: {"metric": "ReplicaLag", "dimension": "DBInstanceIdentifier", "unit_seconds": 1.0},
    GLOBAL_SECONDARY: {"metric": "AuroraGlobalDBReplicationLag", "dimension": "DBClusterIdentifier",
                       "unit_seconds": 0.001},
}
RESOURCE_DIMENSIONS = ("DBInstanceIdentifier", "DBClusterIdentifier")
# A lag alarm fires when the lag rises: any other comparison never warns of a lagging standby.
RISING_COMPARISONS = ("GreaterThanThreshold", "GreaterThanOrEqualToThreshold")

# Every check, in report order, with what it asks.
CHECKS = (
    ("primary_available", "The primary is available."),
    ("dr_copy", "At least one copy (replica, secondary cluster, replicated backups or snapshot copy) lives in a "
                "region other than the primary's."),
    ("dr_copies_available", "Every DR copy is usable (available, or replicating for automated backups)."),
    ("replication_lag", "The lag of every standby, now and at its recent maximum, is within max_lag_seconds."),
    ("backup_retention", "The primary keeps automated backups at least min_backup_retention_days."),
    ("latest_restorable_time", "The primary's latest restorable time is recent (max_restorable_age_seconds)."),
    ("dr_backups", "A restorable backup (replicated automated backups, a snapshot copy, a secondary's own backups) "
                   "in the DR region is recent (max_dr_backup_age_hours)."),
    ("encryption", "The primary and every DR copy are encrypted at rest."),
    ("dr_kms_key", "The KMS key of every encrypted DR copy lives in the DR region and is enabled."),
    ("deletion_protection", "The primary and every standby have deletion protection."),
    ("instance_class_parity", "Every standby runs the primary's instance class."),
    ("parameter_group_parity", "Every standby's parameter group sets the same values as the primary's."),
    ("lag_alarm", "A CloudWatch alarm with actions, in the DR region, watches each standby's lag at or below "
                  "max_lag_seconds."),
    ("primary_alarm", "At least one CloudWatch alarm with actions watches the primary."),
    ("rto", "The strategy's estimated RTO is within rto_objective_seconds."),
    ("rpo", "The strategy's estimated RPO is within rpo_objective_seconds."),
)
CHECK_NAMES = tuple(check[0] for check in CHECKS)

# The strategy matrix: best first. RTO figures are the AWS-documented ones (sources in ``source``); RPO is measured
# (the lag of the best standby, or the age of the newest restorable point in the DR region).
STRATEGIES = {
    "aurora_global_database": {
        "rank": 1, "rto_seconds": 60,
        "rto_basis": "managed failover of an Aurora global database: RTO typically under a minute",
        "rpo_basis": "AuroraGlobalDBReplicationLag of the best secondary (replication typically under a second)",
        "source": "Amazon Aurora User Guide, 'Using Amazon Aurora Global Database' (recovery from an unplanned "
                  "outage: RPO typically 1 second, RTO typically under 1 minute)",
    },
    "cross_region_read_replica": {
        "rank": 2, "rto_seconds": 600,
        "rto_basis": "promotion of a cross-region read replica: several minutes (10 minutes assumed), longer for a "
                     "large replica, plus the DNS cutover",
        "rpo_basis": "ReplicaLag of the best replica (asynchronous replication: what it had not replayed is lost)",
        "source": "Amazon RDS User Guide, 'Promoting a read replica to be a standalone DB instance' (promotion takes "
                  "several minutes or longer depending on the size of the replica) and 'Working with DB instance "
                  "read replicas' (asynchronous replication, ReplicaLag)",
    },
    "cross_region_automated_backups": {
        "rank": 3, "rto_seconds": 14400,
        "rto_basis": "point-in-time restore in the DR region: hours (4 hours assumed) by the backup-and-restore "
                     "strategy",
        "rpo_basis": "age of the latest restorable time of the replicated automated backups",
        "source": "Amazon RDS User Guide, 'Replicating automated backups to another AWS Region'; AWS whitepaper "
                  "'Disaster Recovery of Workloads on AWS: Recovery in the Cloud' (backup and restore: RPO and RTO "
                  "in hours)",
    },
    "cross_region_snapshot_copies": {
        "rank": 4, "rto_seconds": 14400,
        "rto_basis": "restore of the newest snapshot copy in the DR region: hours (4 hours assumed) by the "
                     "backup-and-restore strategy",
        "rpo_basis": "age of the newest snapshot copy in the DR region",
        "source": "Amazon RDS User Guide, 'Copying a DB snapshot' (cross-Region copies); AWS whitepaper 'Disaster "
                  "Recovery of Workloads on AWS: Recovery in the Cloud' (backup and restore: RPO and RTO in hours)",
    },
}
STRATEGY_OF_KIND = {GLOBAL_SECONDARY: "aurora_global_database", READ_REPLICA: "cross_region_read_replica",
                    AUTOMATED_BACKUPS: "cross_region_automated_backups", SNAPSHOT_COPY: "cross_region_snapshot_copies"}

DEFAULT_LIMITS = {
    "max_lag_seconds": 30.0,
    "lookback_minutes": 60,
    "min_backup_retention_days": 7,
    "max_restorable_age_seconds": 600.0,
    "max_dr_backup_age_hours": 25.0,
    "rto_objective_seconds": 3600.0,
    "rpo_objective_seconds": 300.0,
}
LOOKBACK_MINUTES_MAX = 1440
# RDS publishes the lag every minute and CloudWatch shows it within a few: a newest point older than this is no "now".
STALE_LAG_SECONDS = 600
RETENTION_DAYS_MAX = 35
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d+$")
_ARN = re.compile(r"^arn:aws[a-z-]*:[a-z0-9-]+:(?P<region>[a-z0-9-]*):(?P<account>\d*):(?P<resource>.+)$")


# --------------------------------------------------------------------------------------------------------------------
# Options

def option_problems(params):
    """Every problem with the options, found before any AWS call (empty list: all good)."""
    found = []
    targets = [key for key in ("db_instance_identifier", "db_cluster_identifier", "global_cluster_identifier")
               if params.get(key) is not None]
    for key in targets:
        found += identifier_problems(params[key], key, maximum=255 if key == "global_cluster_identifier" else 63)
    region = params.get("dr_region")
    if region is not None and not _REGION.match(str(region)):
        found.append(f"dr_region {region!r} is not an AWS region name (like us-west-2): name the region of the DR "
                     "copy, or leave it out to take it from the topology")
    for key in ("max_lag_seconds", "max_restorable_age_seconds", "max_dr_backup_age_hours", "rto_objective_seconds",
                "rpo_objective_seconds"):
        value = params.get(key)
        if value is not None and not (math.isfinite(value) and value > 0):
            found.append(f"{key} must be positive, got {value}: it is the objective a check is held to")
    lookback = params.get("lookback_minutes")
    if lookback is not None and not 1 <= lookback <= LOOKBACK_MINUTES_MAX:
        found.append(f"lookback_minutes must be between 1 and {LOOKBACK_MINUTES_MAX} (a day), got {lookback}: it is "
                     "how far back the lag's recent maximum is read")
    retention = params.get("min_backup_retention_days")
    if retention is not None and not 1 <= retention <= RETENTION_DAYS_MAX:
        found.append(f"min_backup_retention_days must be between 1 and {RETENTION_DAYS_MAX} (RDS's range), got "
                     f"{retention}")
    return found + report_name_problems(params.get("report_name"))


def limits_from(params):
    """The objectives the checks are held to: the options, defaults where not given."""
    return {key: (params.get(key) if params.get(key) is not None else default)
            for key, default in DEFAULT_LIMITS.items()}


# --------------------------------------------------------------------------------------------------------------------
# Topology

def parse_arn(arn):
    """``{"region", "account", "resource"}`` of an ARN, or None for anything else (a plain identifier)."""
    match = _ARN.match(str(arn or ""))
    return match.groupdict() if match else None


def region_of(arn):
    """The region an ARN names, or None."""
    parsed = parse_arn(arn)
    return parsed["region"] if parsed and parsed["region"] else None


def name_of(arn_or_identifier):
    """The identifier at the end of an RDS ARN (``...:db:name`` / ``...:cluster:name``), or the value itself."""
    parsed = parse_arn(arn_or_identifier)
    if not parsed:
        return arn_or_identifier
    return parsed["resource"].rsplit(":", 1)[-1].rsplit("/", 1)[-1]


def replica_refs(primary, primary_region):
    """``[{"identifier", "region", "arn"}]`` of an instance's read replicas: RDS lists same-region replicas by
    identifier and cross-region ones by ARN (ReadReplicaDBInstanceIdentifiers)."""
    refs = []
    for ref in (primary or {}).get("ReadReplicaDBInstanceIdentifiers") or []:
        region = region_of(ref) or primary_region
        refs.append({"identifier": name_of(ref), "region": region, "arn": ref if parse_arn(ref) else None})
    return refs


def global_members(global_cluster):
    """``(writer, secondaries)`` of a global cluster, each ``{"arn", "identifier", "region"}``."""
    writer, secondaries = None, []
    for member in (global_cluster or {}).get("GlobalClusterMembers") or []:
        ref = {"arn": member.get("DBClusterArn"), "identifier": name_of(member.get("DBClusterArn")),
               "region": region_of(member.get("DBClusterArn"))}
        if member.get("IsWriter"):
            writer = ref
        else:
            secondaries.append(ref)
    return writer, secondaries


def copied_from_region(snapshot):
    """The region a snapshot was copied from (the region of its source snapshot's ARN, else ``SourceRegion``), or
    None for a snapshot taken where it is: a snapshot in the DR region of a same-named instance there is no copy of
    the primary."""
    source_arn = snapshot.get("SourceDBSnapshotIdentifier") or snapshot.get("SourceDBClusterSnapshotArn")
    return region_of(source_arn) or snapshot.get("SourceRegion")


def is_drill_copy(described):
    """A temporary copy a drill made (tagged ``dbre:drill-id``, as rds_restore_drill and rds_dr_drill tag theirs):
    it goes away when the drill ends, so it is no DR copy."""
    return DRILL_ID_TAG in tags_dict((described or {}).get("TagList"))


def choose_dr_region(primary_region, candidate_regions, dr_region=None):
    """``(dr_region, problem)``: the region the user named, or the first region of the topology's copies that is not
    the primary's; a named region equal to the primary's is a problem (a copy there does not survive the region)."""
    if dr_region:
        if dr_region == primary_region:
            return None, (f"dr_region {dr_region} is the region of the primary: a DR copy must live in another "
                          "region to survive the loss of this one; name that region, or leave dr_region out to take "
                          "it from the topology")
        return dr_region, None
    for region in candidate_regions:
        if region and region != primary_region:
            return region, None
    return None, None


# --------------------------------------------------------------------------------------------------------------------
# DR copies

def _time(value):
    return parse_utc(value) if value else None


def dr_copies(facts):
    """Every DR copy in the DR region as one flat shape: kind, identifier, region, status, usable, encrypted,
    kms_key_id, deletion_protection, instance_classes (standbys), restorable_at (the newest restorable point)."""
    region = facts.get("dr_region")
    copies = []
    for item in facts.get("replicas") or []:
        described = item["described"]
        copies.append({
            "kind": READ_REPLICA, "identifier": described.get("DBInstanceIdentifier"), "region": item["region"],
            "arn": described.get("DBInstanceArn"), "status": described.get("DBInstanceStatus"),
            "usable": described.get("DBInstanceStatus") == "available",
            "encrypted": bool(described.get("StorageEncrypted")), "kms_key_id": described.get("KmsKeyId"),
            "deletion_protection": bool(described.get("DeletionProtection")),
            "instance_classes": [described.get("DBInstanceClass")], "restorable_at": None,
        })
    for item in facts.get("secondaries") or []:
        described = item["described"]
        members = item.get("members") or {}
        copies.append({
            "kind": GLOBAL_SECONDARY, "identifier": described.get("DBClusterIdentifier"), "region": item["region"],
            "arn": described.get("DBClusterArn"), "status": described.get("Status"),
            "usable": described.get("Status") == "available",
            "encrypted": bool(described.get("StorageEncrypted")), "kms_key_id": described.get("KmsKeyId"),
            "deletion_protection": bool(described.get("DeletionProtection")),
            "instance_classes": sorted(m.get("DBInstanceClass") for m in members.values()),
            "restorable_at": _time(described.get("LatestRestorableTime")),
        })
    for backup in facts.get("automated_backups") or []:
        window = backup.get("RestoreWindow") or {}
        copies.append({
            "kind": AUTOMATED_BACKUPS, "identifier": backup.get("DBInstanceIdentifier"), "region": region,
            "arn": backup.get("DBInstanceAutomatedBackupsArn"), "status": backup.get("Status"),
            "usable": backup.get("Status") in ("replicating", "active"),
            "encrypted": bool(backup.get("Encrypted")), "kms_key_id": backup.get("KmsKeyId"),
            "deletion_protection": None, "instance_classes": None, "restorable_at": _time(window.get("LatestTime")),
        })
    for snapshot in facts.get("snapshot_copies") or []:
        identifier = snapshot.get("DBSnapshotIdentifier") or snapshot.get("DBClusterSnapshotIdentifier")
        taken = snapshot.get("OriginalSnapshotCreateTime") or snapshot.get("SnapshotCreateTime")
        copies.append({
            "kind": SNAPSHOT_COPY, "identifier": identifier, "region": region,
            "arn": snapshot.get("DBSnapshotArn") or snapshot.get("DBClusterSnapshotArn"),
            "status": snapshot.get("Status"), "usable": snapshot.get("Status") == "available",
            "encrypted": bool(snapshot.get("Encrypted") or snapshot.get("StorageEncrypted")),
            "kms_key_id": snapshot.get("KmsKeyId"), "deletion_protection": None, "instance_classes": None,
            "restorable_at": _time(taken) if snapshot.get("Status") == "available" else None,
        })
    return copies


def standbys(copies):
    return [c for c in copies if c["kind"] in STANDBY_KINDS]


def strategy_in_use(copies):
    """The best strategy the usable DR copies give (the matrix's order), else the best of any copy, else None."""
    usable = [c for c in copies if c["usable"]] or copies
    names = sorted({STRATEGY_OF_KIND[c["kind"]] for c in usable}, key=lambda name: STRATEGIES[name]["rank"])
    return names[0] if names else None


def newest_restorable(copies, kinds=BACKUP_KINDS + (GLOBAL_SECONDARY,)):
    points = [c["restorable_at"] for c in copies if c["kind"] in kinds and c["usable"] and c["restorable_at"]]
    return max(points) if points else None


# --------------------------------------------------------------------------------------------------------------------
# Lag

def lag_series(datapoints, unit_seconds=1.0):
    """CloudWatch datapoints (``Timestamp``, ``Maximum``) as ``[(datetime, seconds)]``, oldest first."""
    series = [(parse_utc(p["Timestamp"]), float(p["Maximum"]) * unit_seconds)
              for p in datapoints or [] if p.get("Maximum") is not None]
    return sorted(series)


def lag_summary(series):
    """``{"now", "max", "datapoints", "latest_at"}``: the latest period's maximum and the maximum over the series in
    seconds, and when the latest period starts (ISO 8601 UTC)."""
    if not series:
        return {"now": None, "max": None, "datapoints": 0, "latest_at": None}
    highest = max(point[1] for point in series)
    return {"now": round(series[-1][1], 3), "max": round(highest, 3), "datapoints": len(series),
            "latest_at": utc_iso(series[-1][0])}


def _replicating(summary):
    """A lag summary that measures replication: datapoints, and no negative one now."""
    summary = summary or {}
    return summary.get("max") is not None and (summary.get("now") is None or summary["now"] >= 0)


def estimate(strategy, copies, lags, now):
    """``{"strategy", "rto_seconds", "rpo_seconds", "rto_basis", "rpo_basis", "source", "best_copy"}``."""
    if strategy is None:
        return None
    spec = STRATEGIES[strategy]
    result = {"strategy": strategy, "rto_seconds": spec["rto_seconds"], "rpo_seconds": None,
              "rto_basis": spec["rto_basis"], "rpo_basis": spec["rpo_basis"], "source": spec["source"],
              "best_copy": None}
    kind = [k for k, name in STRATEGY_OF_KIND.items() if name == strategy][0]
    if kind in STANDBY_KINDS:
        # A negative lag (ReplicaLag -1) means replication is not running: such a copy's RPO is unknown, not 0.
        measured = [(lags[c["identifier"]]["max"], c["identifier"]) for c in copies
                    if c["kind"] == kind and c["usable"] and _replicating(lags.get(c["identifier"]))]
        if measured:
            best = min(measured)
            result["rpo_seconds"], result["best_copy"] = best[0], best[1]
    else:
        points = [(c["restorable_at"], c["identifier"]) for c in copies
                  if c["kind"] == kind and c["usable"] and c["restorable_at"]]
        if points:
            newest = max(points)
            result["rpo_seconds"] = round(max((now - newest[0]).total_seconds(), 0.0), 3)
            result["best_copy"] = newest[1]
    return result


# --------------------------------------------------------------------------------------------------------------------
# Parameters and alarms

def parameter_values(parameters):
    """DescribeDB(Cluster)Parameters items as ``{name: value}`` (only those with a value)."""
    return {p["ParameterName"]: p.get("ParameterValue") for p in parameters or []
            if p.get("ParameterValue") is not None}


def parameter_differences(primary, standby):
    """``{name: {"primary": value, "dr": value}}`` for every parameter whose value differs (None: engine default)."""
    primary, standby = primary or {}, standby or {}
    return {name: {"primary": primary.get(name), "dr": standby.get(name)}
            for name in sorted(set(primary) | set(standby)) if primary.get(name) != standby.get(name)}


def alarms_on(alarms, identifiers, metric_names=None):
    """The metric alarms whose dimensions name one of ``identifiers`` (and, when given, one of ``metric_names``)."""
    wanted = set(identifiers)
    found = []
    for alarm in alarms or []:
        if metric_names and alarm.get("MetricName") not in metric_names:
            continue
        if alarm.get("Namespace") not in (None, NAMESPACE):
            continue
        dimensions = alarm.get("Dimensions") or []
        if any(d.get("Name") in RESOURCE_DIMENSIONS and d.get("Value") in wanted for d in dimensions):
            found.append(alarm)
    return found


def alarm_has_actions(alarm):
    return bool(alarm.get("ActionsEnabled", True)) and bool(alarm.get("AlarmActions"))


# --------------------------------------------------------------------------------------------------------------------
# Checks

def _check(name, passed, measured, objective, unit=None, fix=None, detail=None):
    return {"name": name, "passed": bool(passed), "measured": measured, "objective": objective, "unit": unit,
            "fix": None if passed else fix, "detail": detail}


def _not_applicable(name, reason):
    return {"name": name, "reason": reason}


def _primary_id(facts):
    primary = facts["primary"]
    return primary.get("DBClusterIdentifier") if facts["kind"] == CLUSTER else primary.get("DBInstanceIdentifier")


def _primary_class(facts):
    if facts["kind"] == INSTANCE:
        return facts["primary"].get("DBInstanceClass")
    members = facts.get("primary_members") or {}
    writer = [m for m in facts["primary"].get("DBClusterMembers") or [] if m.get("IsClusterWriter")]
    described = members.get(writer[0]["DBInstanceIdentifier"]) if writer else None
    return (described or {}).get("DBInstanceClass")


def _age_seconds(now, moment):
    """Seconds from ``moment`` to ``now``; a moment a little ahead of this clock (another host's) is 0 old."""
    return None if moment is None else round(max((now - moment).total_seconds(), 0.0), 3)


def _copy_label(copy):
    return f"{copy['kind']} {copy['identifier']} ({copy['region']})"


def _fix_no_copy(facts, pid, region, dr):
    target = dr or "another region"
    if facts.get("global_cluster") or facts["kind"] == CLUSTER:
        return (f"add a secondary cluster in {target} to a global database of {pid} (CreateGlobalCluster with "
                f"SourceDBClusterIdentifier, then CreateDBCluster there with GlobalClusterIdentifier; "
                "dbre.rds.rds_global_cluster), or copy cluster snapshots there (CopyDBClusterSnapshot)")
    return (f"create a cross-region read replica of {pid} in {target} (CreateDBInstanceReadReplica there with "
            f"SourceDBInstanceIdentifier set to the ARN of {pid} in {region}), or replicate its automated backups "
            f"(StartDBInstanceAutomatedBackupsReplication) or copy its snapshots (CopyDBSnapshot) to {target}")


def evaluate(facts, limits, now):
    """The readiness test: ``{"checks", "not_applicable", "passed", "failed_checks", "not_applicable_checks",
    "copies", "estimate"}``. ``facts`` as the module reads them (see ``read_facts`` there), ``limits`` from
    :func:`limits_from`, ``now`` an aware UTC datetime."""
    now = parse_utc(now)
    pid = _primary_id(facts)
    region = facts["primary_region"]
    dr = facts.get("dr_region")
    primary = facts["primary"]
    copies = dr_copies(facts)
    standby_copies = standbys(copies)
    lags = facts.get("lags") or {}
    checks, not_applicable = [], []
    no_copy = "no DR copy in another region (see dr_copy)"
    only_backups = "the DR copies are backups: nothing replicates, so there is no standby to judge"

    status = primary.get("Status") if facts["kind"] == CLUSTER else primary.get("DBInstanceStatus")
    checks.append(_check("primary_available", status == "available", status, "available",
                         fix=f"bring {pid} back to available before relying on it (it is {status})"))

    same_region = facts.get("same_region_copies") or []
    other_regions = facts.get("other_region_copies") or []
    drills = facts.get("drill_copies") or []
    detail = {"same_region_copies": same_region, "copies_in_other_regions": other_regions, "drill_copies": drills}
    fix = _fix_no_copy(facts, pid, region, dr)
    if drills:
        fix = f"{', '.join(drills)} (tagged {DRILL_ID_TAG}) go(es) away with its drill: " + fix
    if same_region:
        fix = (f"{', '.join(same_region)} live(s) in {region}, the primary's region, and would be lost with it: "
               + fix)
    checks.append(_check("dr_copy", bool(copies), [_copy_label(c) for c in copies],
                         f"at least one copy in {dr or 'a region other than ' + region}", fix=fix, detail=detail))

    if not copies:
        for name in ("dr_copies_available", "replication_lag"):
            not_applicable.append(_not_applicable(name, no_copy))
    else:
        unusable = [c for c in copies if not c["usable"]]
        checks.append(_check("dr_copies_available", not unusable,
                             {c["identifier"]: c["status"] for c in copies}, "available (backups: replicating)",
                             fix="; ".join(f"{_copy_label(c)} is {c['status']}: wait for it or recreate it"
                                           for c in unusable)))
        if not standby_copies:
            not_applicable.append(_not_applicable("replication_lag", only_backups))
        else:
            checks.append(_lag_check(standby_copies, lags, limits, now))

    checks.append(_retention_check(facts, pid, limits))
    checks.append(_restorable_check(facts, pid, now, limits))

    if not copies:
        not_applicable.append(_not_applicable("dr_backups", no_copy))
    else:
        checks.append(_dr_backups_check(facts, pid, copies, now, limits))

    checks.append(_encryption_check(facts, pid, copies, dr))
    encrypted = [c for c in copies if c["encrypted"]]
    if not copies:
        not_applicable.append(_not_applicable("dr_kms_key", no_copy))
    elif not encrypted:
        not_applicable.append(_not_applicable("dr_kms_key", "no DR copy is encrypted (see encryption)"))
    else:
        checks.append(_kms_check(encrypted, facts.get("kms_keys") or {}, dr))

    checks.append(_deletion_protection_check(facts, pid, standby_copies))

    if not copies:
        for name in ("instance_class_parity", "parameter_group_parity", "lag_alarm"):
            not_applicable.append(_not_applicable(name, no_copy))
    elif not standby_copies:
        for name in ("instance_class_parity", "parameter_group_parity", "lag_alarm"):
            not_applicable.append(_not_applicable(name, only_backups))
    else:
        checks.append(_class_check(facts, standby_copies))
        checks.append(_parameter_check(facts, standby_copies))
        checks.append(_lag_alarm_check(facts, standby_copies, limits, dr))

    checks.append(_primary_alarm_check(facts, pid, region))

    strategy = strategy_in_use(copies)
    figures = estimate(strategy, copies, lags, now)
    if figures is None:
        not_applicable += [_not_applicable("rto", no_copy), _not_applicable("rpo", no_copy)]
    else:
        rto = figures["rto_seconds"]
        checks.append(_check("rto", rto <= limits["rto_objective_seconds"], rto, limits["rto_objective_seconds"],
                             "seconds", fix=_faster_strategy_fix(strategy, "RTO"),
                             detail={"strategy": strategy, "basis": figures["rto_basis"],
                                     "source": figures["source"]}))
        rpo = figures["rpo_seconds"]
        if rpo is None:
            not_applicable.append(_not_applicable(
                "rpo", "the RPO of this strategy is measured and nothing could be measured (see replication_lag and "
                       "dr_backups)"))
        else:
            checks.append(_check("rpo", rpo <= limits["rpo_objective_seconds"], rpo, limits["rpo_objective_seconds"],
                                 "seconds", fix=_faster_strategy_fix(strategy, "RPO"),
                                 detail={"strategy": strategy, "basis": figures["rpo_basis"],
                                         "best_copy": figures["best_copy"], "source": figures["source"]}))
    order = {name: index for index, name in enumerate(CHECK_NAMES)}
    checks = sorted(checks, key=lambda c: order[c["name"]])
    not_applicable = sorted(not_applicable, key=lambda s: order[s["name"]])
    return dict(summary(checks, not_applicable), checks=checks, not_applicable=not_applicable, copies=copies,
                estimate=figures)


def _lag_check(standby_copies, lags, limits, now):
    limit = limits["max_lag_seconds"]
    per_copy, problems = {}, []
    for copy in standby_copies:
        summary = lags.get(copy["identifier"]) or {"now": None, "max": None, "datapoints": 0, "latest_at": None}
        per_copy[copy["identifier"]] = summary
        metric = LAG_METRICS[copy["kind"]]["metric"]
        latest_age = _age_seconds(now, _time(summary.get("latest_at")))
        if summary["max"] is None:
            problems.append(f"{copy['identifier']} published no {metric} in the last {limits['lookback_minutes']} "
                            f"minutes in {copy['region']}: check that it replicates (status, replication errors in "
                            "its events and log)")
        elif latest_age is not None and latest_age > STALE_LAG_SECONDS:
            problems.append(f"the newest {metric} of {copy['identifier']} in {copy['region']} is {latest_age} s old: "
                            "it stopped publishing its lag, so its lag now is unknown; check that it replicates "
                            "(status, replication errors in its events and log)")
        elif summary["now"] is not None and summary["now"] < 0:
            problems.append(f"{copy['identifier']} reports {metric} {summary['now']}: replication is not running; "
                            "check its events and log")
        elif summary["now"] > limit or summary["max"] > limit:
            problems.append(f"{copy['identifier']} lags {summary['now']} s now, {summary['max']} s at most in the "
                            f"last {limits['lookback_minutes']} minutes: find what holds replay back (long queries "
                            "on the replica, a write burst, an undersized replica or network) and fix it before "
                            "relying on it")
    measured = [s["max"] for s in per_copy.values() if s["max"] is not None]
    return _check("replication_lag", not problems, max(measured) if measured else None, limit, "seconds",
                  fix="; ".join(problems), detail=per_copy)


def _retention_check(facts, pid, limits):
    days = facts["primary"].get("BackupRetentionPeriod") or 0
    minimum = limits["min_backup_retention_days"]
    modify = "ModifyDBCluster" if facts["kind"] == CLUSTER else "ModifyDBInstance"
    return _check("backup_retention", days >= minimum, days, minimum, "days",
                  fix=f"keep automated backups of {pid} at least {minimum} days ({modify} with "
                      f"BackupRetentionPeriod={minimum}; dbre.rds.rds_provision sets it from the inventory)")


def _restorable_check(facts, pid, now, limits):
    latest = _time(facts["primary"].get("LatestRestorableTime"))
    age = _age_seconds(now, latest)
    limit = limits["max_restorable_age_seconds"]
    if latest is None:
        fix = (f"{pid} has no latest restorable time: enable automated backups (BackupRetentionPeriod >= 1) so that "
               "point-in-time restore works")
    else:
        fix = (f"the latest restorable time of {pid} is {age} s old; RDS uploads transaction logs every 5 minutes, "
               "so an older one means log uploads are failing: check the instance's events and open a case")
    return _check("latest_restorable_time", age is not None and age <= limit, age, limit, "seconds", fix=fix,
                  detail={"latest_restorable_time": utc_iso(latest)})


def _dr_backups_check(facts, pid, copies, now, limits):
    limit_hours = limits["max_dr_backup_age_hours"]
    newest = newest_restorable(copies)
    age = _age_seconds(now, newest)
    dr = facts.get("dr_region")
    if facts["kind"] == CLUSTER:
        how = f"copy cluster snapshots of {pid} to {dr} on a schedule (CopyDBClusterSnapshot)"
    else:
        how = (f"replicate the automated backups of {pid} to {dr} (StartDBInstanceAutomatedBackupsReplication) or "
               f"copy its snapshots there on a schedule (CopyDBSnapshot; dbre.rds.rds_snapshot_retention)")
    fix = (f"no restorable backup of {pid} in {dr}: a replica replays a DROP TABLE too; {how}" if newest is None
           else f"the newest restorable backup of {pid} in {dr} is {round(age / 3600, 2)} hours old: {how}")
    detail = {c["identifier"]: {"kind": c["kind"], "restorable_at": utc_iso(c["restorable_at"])}
              for c in copies if c["kind"] != READ_REPLICA}
    return _check("dr_backups", age is not None and age <= limit_hours * 3600,
                  None if age is None else round(age / 3600, 3), limit_hours, "hours", fix=fix, detail=detail)


def _encryption_check(facts, pid, copies, dr):
    primary_encrypted = bool(facts["primary"].get("StorageEncrypted"))
    measured = {pid: primary_encrypted}
    measured.update({c["identifier"]: c["encrypted"] for c in copies})
    problems = []
    if not primary_encrypted:
        problems.append(f"{pid} is not encrypted: encrypt it (dbre.rds.rds_encrypt_instance: snapshot, encrypted "
                        "copy, restore, cutover)")
    plain = [c for c in copies if not c["encrypted"]]
    if plain:
        problems.append(f"{', '.join(_copy_label(c) for c in plain)} not encrypted: recreate from an encrypted "
                        f"source with a KMS key of {dr} (KmsKeyId)")
    return _check("encryption", not problems, measured, "every copy encrypted", fix="; ".join(problems))


def _kms_check(encrypted, keys, dr):
    measured, problems = {}, []
    for copy in encrypted:
        key = copy["kms_key_id"]
        meta = keys.get(key) if key else None
        key_region = region_of((meta or {}).get("Arn") or key)
        state = (meta or {}).get("KeyState") or ("Enabled" if (meta or {}).get("Enabled") else None)
        measured[copy["identifier"]] = {"kms_key_id": key, "region": key_region, "state": state}
        if meta is None:
            problems.append(f"the KMS key {key} of {copy['identifier']} cannot be described in {dr}: it must be a "
                            f"key of {dr} that RDS may use")
        elif key_region and key_region != dr:
            problems.append(f"{copy['identifier']} uses the KMS key {key} of {key_region}, not of {dr}")
        elif state != "Enabled":
            problems.append(f"the KMS key {key} of {copy['identifier']} is {state}: enable it (or cancel its "
                            "deletion), or nothing can be restored from this copy")
    return _check("dr_kms_key", not problems, measured, f"an enabled key of {dr}", fix="; ".join(problems))


def _deletion_protection_check(facts, pid, standby_copies):
    measured = {pid: bool(facts["primary"].get("DeletionProtection"))}
    measured.update({c["identifier"]: c["deletion_protection"] for c in standby_copies})
    unprotected = [name for name, on in measured.items() if not on]
    modify = "ModifyDBCluster" if facts["kind"] == CLUSTER else "ModifyDBInstance"
    return _check("deletion_protection", not unprotected, measured, True,
                  fix=f"turn deletion protection on for {', '.join(unprotected)} ({modify} with "
                      "DeletionProtection=true)")


def _class_check(facts, standby_copies):
    wanted = _primary_class(facts)
    measured = {c["identifier"]: c["instance_classes"] for c in standby_copies}
    problems = []
    for copy in standby_copies:
        classes = copy["instance_classes"] or []
        if not classes:
            problems.append(f"{copy['identifier']} has no instance to promote: add one of class {wanted}")
        elif any(cls != wanted for cls in classes):
            problems.append(f"{copy['identifier']} runs {', '.join(sorted(set(classes)))}: modify it to {wanted} "
                            "so it carries the primary's load after a failover")
    return _check("instance_class_parity", not problems, measured, wanted, fix="; ".join(problems))


def _parameter_check(facts, standby_copies):
    params = facts.get("parameters") or {}
    groups = facts.get("parameter_groups") or {}
    primary_values = params.get("primary") or {}
    measured, problems = {}, []
    for copy in standby_copies:
        differences = parameter_differences(primary_values, (params.get("copies") or {}).get(copy["identifier"]))
        measured[copy["identifier"]] = differences
        if differences:
            problems.append(f"{copy['identifier']} ({(groups.get('copies') or {}).get(copy['identifier'])}) differs "
                            f"from the primary's group {groups.get('primary')} in {', '.join(sorted(differences))}: "
                            "set the same values in its group in the DR region")
    return _check("parameter_group_parity", not problems, measured, "no difference", fix="; ".join(problems),
                  detail={"groups": groups})


def _lag_alarm_check(facts, standby_copies, limits, dr):
    limit = limits["max_lag_seconds"]
    measured, problems = {}, []
    for copy in standby_copies:
        spec = LAG_METRICS[copy["kind"]]
        found = alarms_on(facts.get("dr_alarms"), [copy["identifier"]], [spec["metric"]])
        good = [a["AlarmName"] for a in found if alarm_has_actions(a) and a.get("ComparisonOperator") in
                RISING_COMPARISONS and a.get("Threshold") is not None
                and float(a["Threshold"]) * spec["unit_seconds"] <= limit]
        measured[copy["identifier"]] = {"alarms": [a["AlarmName"] for a in found], "usable": good}
        if good:
            continue
        if not found:
            problems.append(f"no CloudWatch alarm on {spec['metric']} of {copy['identifier']} in {dr}: create one "
                            f"(PutMetricAlarm in {dr}, Namespace AWS/RDS, {spec['dimension']}={copy['identifier']}, "
                            f"threshold at most {limit} s, an SNS topic as alarm action)")
        else:
            names = ", ".join(measured[copy["identifier"]]["alarms"])
            problems.append(f"the alarms on {spec['metric']} of {copy['identifier']} ({names}) "
                            f"have no enabled action, a threshold above {limit} s or do not fire on a rising lag: "
                            "give one an SNS action, a threshold within max_lag_seconds and ComparisonOperator "
                            "GreaterThanThreshold")
    return _check("lag_alarm", not problems, measured, f"an alarm with actions at <= {limit} s in {dr}",
                  fix="; ".join(problems))


def _primary_alarm_check(facts, pid, region):
    identifiers = [pid] + list((facts.get("primary_members") or {}).keys())
    found = alarms_on(facts.get("primary_alarms"), identifiers)
    good = sorted(a["AlarmName"] for a in found if alarm_has_actions(a))
    return _check("primary_alarm", bool(good), good, "at least one alarm with actions",
                  fix=(f"no CloudWatch alarm with actions watches {pid} in {region}: create the ones "
                       "dbre.rds.rds_alarm_thresholds_info plans (amazon.aws.cloudwatch_metric_alarm) with an SNS "
                       "topic as action"),
                  detail={"alarms": sorted(a["AlarmName"] for a in found)})


def _faster_strategy_fix(strategy, what):
    if strategy == "aurora_global_database":
        return (f"the {what} of an Aurora global database is the best AWS offers for a region: if it is not met, "
                "look at the replication lag and the objective")
    if strategy == "cross_region_read_replica":
        return (f"a cross-region read replica does not meet this {what}: bring its lag down, or move to Aurora "
                "with a global database (RTO under a minute)")
    return (f"backups in the DR region do not meet this {what}: add a cross-region read replica (minutes) or an "
            "Aurora global database (under a minute)")


# --------------------------------------------------------------------------------------------------------------------
# Verdict and report

def objectives(checks):
    """The report's objectives table: one row per check."""
    return check_rows(checks)


def summary(checks, not_applicable):
    failed = [c["name"] for c in checks if not c["passed"]]
    return {"passed": not failed, "failed_checks": failed,
            "not_applicable_checks": [s["name"] for s in not_applicable]}


def measurements(checks, figures):
    """Flat figures for the report's measurements table."""
    found = {}
    for check in checks:
        if isinstance(check["measured"], (int, float)) and not isinstance(check["measured"], bool):
            found[f"{check['name']}_{check['unit'] or 'value'}"] = check["measured"]
    if figures:
        found["estimated_rto_seconds"] = figures["rto_seconds"]
        found["estimated_rpo_seconds"] = figures["rpo_seconds"]
    return found
