# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decisions of the DR drill (rds_dr_drill), as pure functions: options, pre-checks, the plan, RPO/RTO and the verdict.

Three modes:

- ``rehearsal``: a temporary cross-region read replica of a DB instance is created, caught up, promoted, checked and
  deleted; nothing that exists before the drill is changed;
- ``switchover``: an Aurora Global Database's writer moves to a secondary region without data loss (and back);
- ``failover``: the DR copy (a cross-region replica, or a global database's secondary) is promoted at once,
  accepting the loss of what it had not replayed; the loss is counted from acknowledged probe writes.
"""

from __future__ import annotations

import math

from ansible_collections.dbre.rds.plugins.module_utils.clock import parse_utc
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import report_name_problems
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import connection_problems
from ansible_collections.dbre.rds.plugins.module_utils.probing import valid_table_name
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import IDENTIFIER_MAX
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import identifier_problems
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import status_of
from ansible_collections.dbre.rds.plugins.module_utils.restore_drill import DRILL_EXPIRES_TAG
from ansible_collections.dbre.rds.plugins.module_utils.restore_drill import DRILL_ID_TAG
from ansible_collections.dbre.rds.plugins.module_utils.restore_drill import DRILL_OWNER_TAG
from ansible_collections.dbre.rds.plugins.module_utils.restore_drill import expect_problems
from ansible_collections.dbre.rds.plugins.module_utils.restore_drill import is_expired
from ansible_collections.dbre.rds.plugins.module_utils.restore_drill import tags_of

MODES = ("rehearsal", "switchover", "failover")
TIMEOUT_SECONDS_MAX = 24 * 3600
POLL_INTERVAL_MAX = 300
TTL_HOURS_MAX = 24 * 365
DNS_TTL_MAX = 604800
REPLICA_SUFFIX = "-dr-drill-"


# --------------------------------------------------------------------------------------------------------- options

def _bounded(params, key, maximum, unit, why):
    value = params.get(key)
    if value is None:
        return []
    if not math.isfinite(value) or value <= 0 or value > maximum:
        return [f"{key} must be greater than 0 and at most {maximum} {unit}, got {value}: {why}"]
    return []


def _not_negative(params, key, what):
    value = params.get(key)
    if value is not None and not (math.isfinite(value) and value >= 0):
        return [f"{key} must be finite and not negative, got {value}: it is {what}"]
    return []


def _identifier(params, key):
    value = params.get(key)
    if value is None:
        return []
    return identifier_problems(value, key)


def _cluster_reference(value, key):
    """A secondary cluster may be named by identifier or by ARN."""
    if value is None or str(value).startswith("arn:"):
        return [] if value is None or len(str(value).split(":")) >= 7 else [f"{key} {value!r} is not a cluster ARN"]
    return identifier_problems(value, key)


def _given(params, key):
    value = params.get(key)
    return value is not None and value != [] and value is not False


def mode_option_problems(params, region):
    """What the mode needs and what it cannot take, in the options alone (the topology is checked later)."""
    mode = params.get("mode") or "rehearsal"
    found = []
    global_id, instance_id = params.get("global_cluster_identifier"), params.get("db_instance_identifier")
    dr_region, dr_instance = params.get("dr_region"), params.get("dr_instance_identifier")
    if global_id is not None and instance_id is not None:
        found.append("db_instance_identifier and global_cluster_identifier are mutually exclusive: drill either a DB "
                     "instance with a cross-region replica or an Aurora Global Database")
    if mode == "rehearsal":
        if instance_id is None:
            found.append("mode=rehearsal needs db_instance_identifier (the production primary) and dr_region: a "
                         "rehearsal of an Aurora Global Database is mode=switchover with switch_back=true")
        if dr_region is None:
            found.append("mode=rehearsal needs dr_region, the region of the temporary replica")
    elif mode == "switchover":
        if global_id is None:
            found.append("mode=switchover needs global_cluster_identifier: a planned switchover without data loss "
                         "exists for Aurora Global Database only; for a DB instance use mode=rehearsal or "
                         "mode=failover")
    elif mode == "failover":
        if global_id is None and dr_instance is None:
            found.append("mode=failover needs global_cluster_identifier, or dr_instance_identifier (the DR read "
                         "replica to promote) with dr_region")
        if dr_instance is not None and dr_region is None:
            found.append("dr_instance_identifier needs dr_region, the region of that replica")
    for key, modes in (("switch_back", ("switchover",)), ("replica_identifier", ("rehearsal",)),
                       ("db_instance_class", ("rehearsal",)), ("db_subnet_group_name", ("rehearsal",)),
                       ("vpc_security_group_ids", ("rehearsal",)),
                       ("target_db_cluster_identifier", ("switchover", "failover"))):
        if _given(params, key) and mode not in modes:
            found.append(f"{key} applies to mode={' or mode='.join(modes)}, not mode={mode}")
    if _given(params, "target_db_cluster_identifier") and global_id is None:
        found.append("target_db_cluster_identifier names a secondary of a global database: give "
                     "global_cluster_identifier too")
    if dr_region is not None and region is not None and dr_region == region:
        found.append(f"dr_region {dr_region} is the primary's region ({region}): a DR copy in the same region does not "
                     "survive a regional outage; give another region")
    if dr_instance is not None and instance_id is not None and dr_instance == instance_id and dr_region == region:
        found.append("dr_instance_identifier names the primary itself: give the DR replica")
    if mode == "rehearsal" and _given(params, "dns_record"):
        found.append("dns_record applies to mode=switchover or mode=failover: a rehearsal never moves production DNS")
    return found


def dns_option_problems(params):
    found = []
    record, zone = params.get("dns_record"), params.get("hosted_zone_id")
    if (record is None) != (zone is None):
        found.append("dns_record and hosted_zone_id go together: the record is changed in that hosted zone")
    if record is not None and (not str(record).strip() or " " in str(record)):
        found.append(f"dns_record {record!r} must be a DNS name such as db.example.internal")
    ttl = params.get("dns_ttl")
    if ttl is not None and (ttl < 0 or ttl > DNS_TTL_MAX):
        found.append(f"dns_ttl must be between 0 and {DNS_TTL_MAX} seconds, got {ttl}")
    topic = params.get("notify_topic_arn")
    if topic is not None and not (str(topic).startswith("arn:") and len(str(topic).split(":")) == 6):
        found.append(f"notify_topic_arn {topic!r} is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)")
    return found


def problems(params, region=None):
    """Every problem with the options, found before any AWS call (the one place options are judged)."""
    found = []
    for key in ("db_instance_identifier", "dr_instance_identifier", "global_cluster_identifier",
                "replica_identifier"):
        found += _identifier(params, key)
    found += _cluster_reference(params.get("target_db_cluster_identifier"), "target_db_cluster_identifier")
    found += mode_option_problems(params, region)
    for key, what in (("max_rto_seconds", "a recovery time objective"), ("max_rpo_seconds", "a recovery point "
                      "objective"), ("max_lag_seconds", "the replication lag a drill may start with"),
                      ("max_downtime_seconds", "the write downtime clients may see"),
                      ("max_lost_writes", "the number of acknowledged writes that may be lost")):
        found += _not_negative(params, key, what)
    found += _bounded(params, "wait_timeout", TIMEOUT_SECONDS_MAX, "seconds", "it bounds each wait of the drill")
    found += _bounded(params, "cleanup_timeout", TIMEOUT_SECONDS_MAX, "seconds", "it bounds the cleanup")
    found += _bounded(params, "poll_interval", POLL_INTERVAL_MAX, "seconds", "it is the time between looks")
    found += _bounded(params, "probe_interval", 60, "seconds", "it is the time between probe writes")
    found += _bounded(params, "probe_timeout", 60, "seconds", "it bounds one probe write")
    found += _bounded(params, "ttl_hours", TTL_HOURS_MAX, "hours", "the drill's resources expire after it")
    for key in ("probe_settle_seconds", "probe_baseline_seconds"):
        if params.get(key) is not None and not (math.isfinite(params[key]) and params[key] >= 0):
            found.append(f"{key} must be finite and not negative, got {params[key]}")
    subnet_group = params.get("db_subnet_group_name")
    if subnet_group is not None and (not str(subnet_group).strip() or " " in str(subnet_group)):
        found.append(f"db_subnet_group_name {subnet_group!r} must be the name of a DB subnet group in dr_region")
    for group in params.get("vpc_security_group_ids") or []:
        if not str(group).startswith("sg-") or " " in str(group):
            found.append(f"vpc_security_group_ids: {group!r} is not a security group id (sg-...) of dr_region")
    if params.get("probe_table") is not None and not valid_table_name(params["probe_table"]):
        found.append(f"probe_table {params['probe_table']!r} must be a plain lower-case identifier")
    if params.get("mode") == "switchover" and (params.get("max_lost_writes") or 0) > 0:
        found.append("max_lost_writes must be 0 with mode=switchover: a planned switchover loses no acknowledged "
                     "write; a drill that accepts loss is mode=failover")
    names = [check.get("name") for check in params.get("checks") or []]
    if len(names) != len(set(names)):
        found.append("checks must have unique names")
    for check in params.get("checks") or []:
        found += expect_problems(check.get("name"), check.get("expect") or {})
    found += dns_option_problems(params)
    found += report_name_problems(params.get("report_name"))
    found += connection_problems(params)
    return found


# ---------------------------------------------------------------------------------------------------- topology

def region_of_arn(arn):
    parts = str(arn or "").split(":")
    return parts[3] if len(parts) >= 6 and parts[0] == "arn" else None


def name_of_arn(arn):
    return str(arn or "").rsplit(":", maxsplit=1)[-1] or None


def default_replica_identifier(source, started_at, suffix=None):
    """``<source>-dr-drill-<YYYYmmddHHMMSS>[-<suffix>]``, the source shortened so the name fits."""
    stamp = parse_utc(started_at).strftime("%Y%m%d%H%M%S")
    tail = REPLICA_SUFFIX + stamp + (f"-{suffix}" if suffix else "")
    return (source.strip()[:IDENTIFIER_MAX - len(tail)].rstrip("-") + tail).lower()


def replica_of(replica, source):
    """True when the described ``replica`` replicates the described ``source`` (by identifier or ARN)."""
    wanted = {str(source.get("DBInstanceIdentifier") or "").lower(), str(source.get("DBInstanceArn") or "").lower()}
    return str((replica or {}).get("ReadReplicaSourceDBInstanceIdentifier") or "").lower() in wanted - {""}


def instance_problems(params, source, dr_replica, region, dr_region):
    """Pre-checks of a drill of a DB instance: the primary, and the real DR replica when one is named."""
    mode, found = params.get("mode") or "rehearsal", []
    source_id, dr_id = params.get("db_instance_identifier"), params.get("dr_instance_identifier")
    if source_id is not None:
        if source is None:
            found.append(f"no DB instance {source_id!r} exists in {region}: check db_instance_identifier and region")
        elif source.get("DBClusterIdentifier"):
            found.append(f"db_instance_identifier {source_id!r} is a member of the Aurora cluster "
                         f"{source['DBClusterIdentifier']!r}: drill its global database (global_cluster_identifier)")
        elif source.get("ReadReplicaSourceDBInstanceIdentifier"):
            found.append(f"db_instance_identifier {source_id!r} is itself a read replica (of "
                         f"{source['ReadReplicaSourceDBInstanceIdentifier']}): name the production primary")
        elif mode == "rehearsal" and status_of(source) != "available":
            found.append(f"the primary {source_id} is {status_of(source)}, not available: a replica can only be "
                         "created from an available instance; wait until it is available")
    if dr_id is not None:
        if dr_replica is None:
            found.append(f"no DB instance {dr_id!r} exists in {dr_region}: check dr_instance_identifier and dr_region")
        else:
            if source is not None and not replica_of(dr_replica, source):
                found.append(f"dr_instance_identifier {dr_id} is not a read replica of {source_id} (its source is "
                             f"{dr_replica.get('ReadReplicaSourceDBInstanceIdentifier') or 'none'})")
            elif source is None and not dr_replica.get("ReadReplicaSourceDBInstanceIdentifier"):
                found.append(f"dr_instance_identifier {dr_id} is not a read replica: nothing to fail over to")
            if status_of(dr_replica) != "available":
                found.append(f"the DR replica {dr_id} is {status_of(dr_replica)}, not available: wait until it is "
                             "available")
    return found


def drill_replica_problems(identifier, described, source, dr_region, now=None, alive=None):
    """A rehearsal may reuse a replica named by replica_identifier only when a dbre.rds drill created it (it carries
    the drill id tag), that drill is dead (its ``dbre:drill-expires`` is past, or ``alive``, what
    drill_runtime.owner_alive says of its ``dbre:drill-owner``, is False), it replicates the primary and it is
    available; a name that does not exist is created. A live (or unknown) drill's replica is never taken: the
    rehearsal promotes and deletes it."""
    if described is None:
        return []
    tags = tags_of(described)
    drill_id = tags.get(DRILL_ID_TAG)
    if not drill_id:
        return [f"replica_identifier {identifier} exists in {dr_region} and carries no {DRILL_ID_TAG} tag: it was not "
                "created for drills, and a rehearsal promotes and deletes its replica; name another or leave it out"]
    found = []
    expired = is_expired(tags, now) if now is not None else None
    if expired is not True and alive is not False:
        owner = tags.get(DRILL_OWNER_TAG) or "unknown"
        state = "alive" if alive else "not known to be gone (another host, or no marker)"
        found.append(f"the drill replica {identifier} belongs to drill {drill_id}, whose owner {owner} is {state} and "
                     f"which expires {tags.get(DRILL_EXPIRES_TAG) or 'never (no expiry tag)'}: another run may be "
                     "using it; wait until that drill has ended or expired, or name another replica_identifier")
    if source is not None and not replica_of(described, source):
        found.append(f"the drill replica {identifier} is not a read replica of {source.get('DBInstanceIdentifier')}")
    if status_of(described) != "available":
        found.append(f"the drill replica {identifier} is {status_of(described)}, not available")
    return found


def reuse_tag_request(described, tags):
    """AddTagsToResource that makes a dead drill's replica this drill's own (its id, expiry and owner) before it is
    promoted: cleanup then deletes it only under this drill's id."""
    return {"ResourceName": described["DBInstanceArn"],
            "Tags": [{"Key": k, "Value": str(v)} for k, v in sorted(tags.items())]}


def global_members(global_cluster):
    """``[{"arn", "identifier", "region", "writer"}]`` of a described global cluster, writer first."""
    members = []
    for member in (global_cluster or {}).get("GlobalClusterMembers") or []:
        arn = member.get("DBClusterArn")
        members.append({"arn": arn, "identifier": name_of_arn(arn), "region": region_of_arn(arn),
                        "writer": bool(member.get("IsWriter"))})
    return sorted(members, key=lambda m: (not m["writer"], m["arn"] or ""))


def choose_target(members, wanted=None):
    """The secondary to switch or fail over to: ``wanted`` (identifier or ARN), else the only secondary."""
    secondaries = [m for m in members if not m["writer"]]
    if wanted:
        key = "arn" if str(wanted).startswith("arn:") else "identifier"
        return next((m for m in members if str(m[key]).lower() == str(wanted).lower()), None)
    return secondaries[0] if len(secondaries) == 1 else None


def global_problems(params, global_cluster, clusters, region):
    """Pre-checks of a global database drill; ``clusters`` maps member ARN to the described cluster (None: gone, or
    its region did not answer). A failover does not need the writer member nor the global cluster to be available:
    its region may be the one lost."""
    gid, mode = params.get("global_cluster_identifier"), params.get("mode")
    if global_cluster is None:
        return [f"no global cluster {gid!r} exists: check global_cluster_identifier"]
    found = []
    members = global_members(global_cluster)
    writer = next((m for m in members if m["writer"]), None)
    secondaries = [m for m in members if not m["writer"]]
    if writer is None:
        found.append(f"the global cluster {gid} has no writer cluster: it cannot be drilled")
    if not secondaries:
        found.append(f"the global cluster {gid} has no secondary cluster: mode={mode} needs a secondary region to "
                     "move the writer to; add one (rds_provision DR declarations) first")
    wanted = params.get("target_db_cluster_identifier")
    target = choose_target(members, wanted)
    if target is None and wanted:
        found.append(f"target_db_cluster_identifier {wanted} is not a member of the global cluster {gid} (members: "
                     + ", ".join(m["identifier"] for m in members) + ")")
    elif target is None and not secondaries:
        return found
    elif target is None:
        found.append(f"the global cluster {gid} has {len(secondaries)} secondaries (" + ", ".join(
            m["identifier"] for m in secondaries) + "): name one with target_db_cluster_identifier")
    elif target["writer"]:
        found.append(f"target_db_cluster_identifier {wanted} is the writer already: name a secondary")
    elif writer is not None and target["region"] == writer["region"]:
        found.append(f"the secondary {target['identifier']} is in the writer's region ({writer['region']}): a "
                     "same-region DR target does not survive a regional outage")
    status = status_of(global_cluster)
    # A failover is for a disaster: the writer's region may not answer, and the global cluster then shows it.
    if status != "available" and mode != "failover":
        found.append(f"the global cluster {gid} is {status}, not available: wait until an earlier switchover or "
                     "failover has finished")
    for member in members:
        described = clusters.get(member["arn"])
        if mode == "failover" and member["writer"]:
            continue
        if described is None:
            found.append(f"the member cluster {member['identifier']} of {gid} cannot be found in {member['region']}")
        elif status_of(described) != "available" and (mode != "failover" or member is target):
            found.append(f"the member cluster {member['identifier']} ({member['region']}) is {status_of(described)}, "
                         "not available; wait until it is available")
    return found


def lag_problems(mode, lag_seconds, max_lag_seconds, what):
    """The DR copy's replication lag against ``max_lag_seconds``; unknown lag blocks all but a failover."""
    if max_lag_seconds is None:
        return []
    if lag_seconds is None:
        if mode == "failover":
            return []
        return [f"the replication lag of {what} is unknown (no recent ReplicaLag datapoint and no SQL reading): cannot "
                f"check max_lag_seconds={max_lag_seconds:g}; check the replica or give login credentials"]
    if lag_seconds > max_lag_seconds:
        return [f"the replication lag of {what} is {lag_seconds:.1f} s, above max_lag_seconds={max_lag_seconds:g}: "
                "wait until it has caught up or raise max_lag_seconds"]
    return []


def hosted_zone_problems(zone_id, zone):
    if zone_id is None:
        return []
    if zone is None:
        return [f"no Route 53 hosted zone {zone_id!r} exists: check hosted_zone_id"]
    return []


def dns_name_problems(record, zone):
    """The record must lie inside the hosted zone, below its apex (a CNAME cannot be the apex)."""
    if record is None or zone is None:
        return []
    zone_name = str(zone.get("Name") or "").rstrip(".").lower()
    name = str(record).rstrip(".").lower()
    if zone_name and name == zone_name:
        return [f"dns_record {record} is the apex of the hosted zone {zone_name}: a CNAME cannot be the zone apex "
                f"(Route 53 refuses it, after the promotion); name a record inside the zone, like db.{zone_name}"]
    if zone_name and not name.endswith("." + zone_name):
        return [f"dns_record {record} is not inside the hosted zone {zone_name}: name a record of that zone"]
    return []


# ---------------------------------------------------------------------------------------------------------- plan

def replica_placement(params, dr_replica):
    """Where the rehearsal's replica goes in the DR region: ``db_subnet_group_name`` and ``vpc_security_group_ids``
    when given, else those of the real DR replica (``dr_instance_identifier``) when one is named, so the drill's SQL
    reaches the copy as it reaches the real one; nothing (RDS's default) otherwise."""
    placement = {}
    subnet_group = params.get("db_subnet_group_name") or ((dr_replica or {}).get("DBSubnetGroup") or {}).get(
        "DBSubnetGroupName")
    if subnet_group:
        placement["DBSubnetGroupName"] = subnet_group
    groups = params.get("vpc_security_group_ids") or [
        g["VpcSecurityGroupId"] for g in (dr_replica or {}).get("VpcSecurityGroups") or []
        if g.get("VpcSecurityGroupId") and g.get("Status") != "inactive"]
    if groups:
        placement["VpcSecurityGroupIds"] = list(groups)
    return placement


def replica_request(source, identifier, source_region, tags, db_instance_class=None, placement=None):
    """CreateDBInstanceReadReplica in the DR region for a rehearsal replica (never Multi-AZ, never protected), in the
    subnet group and security groups of ``placement`` (:func:`replica_placement`)."""
    request = {
        "DBInstanceIdentifier": identifier,
        "SourceDBInstanceIdentifier": source["DBInstanceArn"],
        "SourceRegion": source_region,
        "DBInstanceClass": db_instance_class or source.get("DBInstanceClass"),
        "MultiAZ": False,
        "PubliclyAccessible": False,
        "DeletionProtection": False,
        "Tags": [{"Key": k, "Value": str(v)} for k, v in sorted(tags.items())],
    }
    request.update(placement or {})
    if source.get("KmsKeyId"):
        request["KmsKeyId"] = "alias/aws/rds"  # a cross-region encrypted replica needs a key of the DR region
    return request


def dns_change_batch(record, value, ttl, comment):
    return {"Comment": comment[:256], "Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
        "Name": record, "Type": "CNAME", "TTL": int(ttl), "ResourceRecords": [{"Value": value}]}}]}


def plan_steps(mode, *, source=None, replica=None, dr_region=None, region=None, global_id=None, writer=None,
               target=None, switch_back=False, dns=None, notify=None, dr_instance=None, reuse=False):
    """What the drill will call, in order (check mode returns it): ``[{"call", "region", "names"}]``; ``reuse``: the
    rehearsal promotes an existing drill replica instead of creating one."""
    steps = []
    if mode == "rehearsal":
        if reuse:
            steps.append({"call": "AddTagsToResource", "region": dr_region, "names": replica,
                          "why": "a dead drill's replica becomes this drill's (its drill id, expiry and owner)"})
        else:
            steps.append({"call": "CreateDBInstanceReadReplica", "region": dr_region, "names": replica,
                          "why": f"temporary replica of {source}"})
        steps += [{"call": "PromoteReadReplica", "region": dr_region, "names": replica,
                   "why": "promote the temporary replica (RTO: request until it accepts writes)"},
                  {"call": "DeleteDBInstance", "region": dr_region, "names": replica,
                   "why": "cleanup: always, also after a failed check or an interrupt"}]
    elif mode == "switchover":
        steps.append({"call": "SwitchoverGlobalCluster", "region": region, "names": global_id,
                      "why": f"writer {writer['identifier']} ({writer['region']}) -> {target['identifier']} "
                             f"({target['region']})"})
        if switch_back:
            steps.append({"call": "SwitchoverGlobalCluster", "region": region, "names": global_id,
                          "why": f"switch back to {writer['identifier']} ({writer['region']})"})
    elif global_id:
        # Sent to the target's region: the writer's region (maybe the module's) may be the one lost.
        steps.append({"call": "FailoverGlobalCluster", "region": target["region"], "names": global_id,
                      "why": f"AllowDataLoss=true: {target['identifier']} ({target['region']}) becomes the writer"})
    else:
        steps.append({"call": "PromoteReadReplica", "region": dr_region, "names": dr_instance,
                      "why": "the DR replica becomes a standalone writer; unreplayed writes are lost"})
    if dns:
        steps.insert(len(steps) - (1 if mode == "switchover" and switch_back else 0),
                     {"call": "ChangeResourceRecordSets", "region": "global", "names": dns["record"],
                      "why": f"CNAME to the new writer's endpoint (TTL {dns['ttl']})"})
    if notify:
        steps.append({"call": "Publish", "region": region_of_arn(notify), "names": notify, "why": "the verdict"})
    return steps


# --------------------------------------------------------------------------------------------------- measuring

def rto_seconds(requested_elapsed, writable_elapsed):
    if requested_elapsed is None or writable_elapsed is None:
        return None
    return round(max(0.0, writable_elapsed - requested_elapsed), 3)


def writes_lost(samples, present, limit=50):
    """Acknowledged probe writes missing on the new writer: count, numbers and the time span they cover.

    ``samples`` are ProbeLoop samples (``seq``, ``sent``, ``done``, ``ok``); ``present`` the ``seq`` values found on
    the new writer (None: the table could not be read). The span runs from the first lost write's send to the last
    lost write's acknowledgement, on the drill clock: the window of data the failover lost.
    """
    acknowledged = {s["seq"]: s for s in samples if s["ok"]}
    if present is None:
        return {"acknowledged_writes": len(acknowledged), "rows_found": None, "lost_writes": None,
                "lost_write_numbers": [], "lost_span_seconds": None, "lost_first_sent": None,
                "lost_last_acknowledged": None}
    present = set(present)
    lost = sorted(set(acknowledged) - present)
    span = first = last = None
    if lost:
        first = acknowledged[lost[0]]["sent"]
        last = acknowledged[lost[-1]]["done"]
        span = round(max(0.0, last - first), 3)
    return {"acknowledged_writes": len(acknowledged), "rows_found": len(present), "lost_writes": len(lost),
            "lost_write_numbers": lost[:limit], "lost_span_seconds": 0.0 if not lost else span,
            "lost_first_sent": first, "lost_last_acknowledged": last}


def rpo_seconds(lost):
    """The RPO a failover showed: the time span of the acknowledged writes it lost (0 when none)."""
    if lost.get("lost_writes") is None:
        return None
    return lost["lost_span_seconds"] or 0.0


def healthy_secondary(global_cluster, cluster_arn, described_cluster):
    """True when ``cluster_arn`` is a non-writer member of the global cluster and its cluster is available."""
    for member in global_members(global_cluster):
        if member["arn"] == cluster_arn:
            return not member["writer"] and status_of(described_cluster) == "available"
    return False


def switched(global_cluster, target_arn):
    """True when the global cluster is available again with ``target_arn`` as its writer."""
    writer = next((m for m in global_members(global_cluster) if m["writer"]), None)
    in_progress = (global_cluster or {}).get("FailoverState") or {}
    return writer is not None and writer["arn"] == target_arn and status_of(global_cluster) == "available" \
        and not in_progress.get("Status")


# ---------------------------------------------------------------------------------------------------------- verdict

def objectives(mode, measured, checks, params, cleanup=None):
    """The verdict table: promotion/switch done, checks, RTO, RPO, lost writes, downtime, cleanup."""
    table = [{"name": "new writer accepts writes", "objective": "writable", "observed": measured.get("writable_at")
              or "never", "unit": None, "held": measured.get("writable_at") is not None}]
    for check in checks:
        table.append({"name": f"check: {check['name']}", "objective": check["expect"],
                      "observed": check["observed"] if check["message"] is None or check["observed"] is not None
                      else check["message"], "unit": None, "held": bool(check["passed"])})
    if params.get("max_rto_seconds") is not None:
        rto = measured.get("rto_seconds")
        table.append({"name": "rto_seconds", "objective": params["max_rto_seconds"], "observed": rto, "unit": "s",
                      "held": rto is not None and rto <= params["max_rto_seconds"]})
    if params.get("max_rpo_seconds") is not None and mode != "rehearsal":
        rpo = measured.get("rpo_seconds")
        table.append({"name": "rpo_seconds", "objective": params["max_rpo_seconds"], "observed": rpo, "unit": "s",
                      "held": rpo is not None and rpo <= params["max_rpo_seconds"]})
    if measured.get("probing") and mode != "rehearsal":
        lost = measured.get("lost_writes")
        limit = 0 if mode == "switchover" else params.get("max_lost_writes")
        if limit is not None and (mode == "switchover" or params.get("max_rpo_seconds") is None):
            table.append({"name": "lost_writes", "objective": limit, "observed": lost, "unit": "writes",
                          "held": lost is not None and lost <= limit})
        if params.get("max_downtime_seconds") is not None:
            down = measured.get("observed_downtime_seconds")
            table.append({"name": "observed_downtime_seconds", "objective": params["max_downtime_seconds"],
                          "observed": down, "unit": "s", "held": down is not None
                          and down <= params["max_downtime_seconds"]})
    if mode == "switchover" and measured.get("switch_back") is not None:
        table.append({"name": "switched back", "objective": "original writer", "observed": measured["switch_back"],
                      "unit": None, "held": measured["switch_back"] == "done"})
    if cleanup is not None and (cleanup.get("steps") or cleanup.get("left_behind")):
        left = cleanup.get("left_behind") or []
        table.append({"name": "cleanup", "objective": "nothing left behind",
                      "observed": "left behind: " + ", ".join(left) if left else "all removed", "unit": None,
                      "held": not left})
    return table


def cleanup_plan(created, described, drill_id, protected):
    """What cleanup deletes: only what this drill created and still carries its drill id; never a protected
    identifier (the primary, the real DR replica). Steps as rds_restore_drill's cleanup_plan."""
    protected = {str(p).lower() for p in protected if p}
    steps = []
    for item in created:
        identifier = item["identifier"]
        current = described.get(identifier)
        owner = drill_id  # a reused drill replica was re-tagged with this drill's id before it was promoted
        step = {"kind": "instance", "identifier": identifier, "region": item.get("region"), "action": "delete",
                "reason": None}
        if identifier.lower() in protected:
            step.update(action="refuse", reason=f"{identifier} is the primary or the real DR replica")
        elif current is None:
            step.update(action="gone", reason="already gone")
        elif tags_of(current).get(DRILL_ID_TAG) != owner and not item.get("confirmed", True):
            step.update(action="not_ours", reason=f"{identifier} existed already and does not carry "
                                                  f"{DRILL_ID_TAG}={owner}")
        elif tags_of(current).get(DRILL_ID_TAG) != owner:
            step.update(action="refuse", reason=f"{identifier} does not carry {DRILL_ID_TAG}={owner}")
        elif current.get("DeletionProtection"):
            step.update(action="refuse", reason=f"{identifier} has deletion protection on")
        elif status_of(current) == "deleting":
            step.update(action="wait", reason="already deleting")
        steps.append(step)
    return steps


def notification(report, mode):
    """SNS subject (at most 100 characters) and message of the verdict."""
    verdict = "PASSED" if report.get("passed") else "FAILED"
    subject = f"DR {mode} of {report.get('target')}: {verdict}"[:100]
    lines = [f"{report.get('title')}: {verdict}", f"started {report.get('started_at')}, finished "
             f"{report.get('finished_at')}"]
    if report.get("failure"):
        lines.append(f"failure: {report['failure']}")
    for row in report.get("objectives") or []:
        lines.append(f"- {row['name']}: observed {row['observed']}, objective {row['objective']}"
                     f" ({'held' if row['held'] else 'NOT held'})")
    measured = report.get("measurements") or {}
    for key in ("rto_seconds", "rpo_seconds", "lost_writes", "lag_seconds_before", "observed_downtime_seconds"):
        if measured.get(key) is not None:
            lines.append(f"{key}: {measured[key]}")
    return subject, "\n".join(lines)
