# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Aurora Global Database: option checks, the comparable state of a global cluster, and the plan from current to
desired for dbre.rds.rds_global_cluster.

Pure functions over boto3-shaped dicts (DescribeGlobalClusters, DescribeDBClusters); the module does the calls. The
module creates a global cluster from an existing Aurora PostgreSQL cluster (its first member, the writer), keeps its
tags and deletion protection, and deletes only a global cluster that carries the marker tag, after detaching its
members (they keep running as standalone clusters).
"""

from __future__ import annotations

import re

from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import identifier_problems

ENGINE = "aurora-postgresql"
# The tag the module puts on every global cluster it creates; it deletes nothing that lacks it.
MANAGED_TAG_KEY = "dbre:managed-by"
MANAGED_TAG_VALUE = "rds_global_cluster"
MANAGED_TAGS = {MANAGED_TAG_KEY: MANAGED_TAG_VALUE}
# DescribeGlobalClusters statuses the module waits through (anything else but "available" is a failure).
TRANSITIONAL_STATES = frozenset(["creating", "modifying", "upgrading", "failing-over", "switching-over",
                                 "deleting", "renaming", "migrating"])
_CLUSTER_ARN = re.compile(r"^arn:aws[a-z-]*:rds:([a-z0-9-]+):(\d{12}):cluster:([A-Za-z0-9-]+)$")


# ---------------------------------------------------------------------------------------------------------- options

def tag_problems(tags):
    problems = []
    for key, value in (tags or {}).items():
        if not str(key).strip() or len(str(key)) > 128:
            problems.append(f"tag key {key!r} must be 1 to 128 characters")
        elif str(key).lower().startswith("aws:"):
            problems.append(f"tag key {key!r}: the aws: prefix is reserved for AWS")
        if value is None or len(str(value)) > 256:
            problems.append(f"tag {key!r} needs a value of at most 256 characters (an empty string is fine)")
        elif key == MANAGED_TAG_KEY and value != MANAGED_TAG_VALUE:
            problems.append(f"tag {MANAGED_TAG_KEY} is the marker of what dbre.rds.rds_global_cluster manages: its "
                            f"value is {MANAGED_TAG_VALUE} (give that to adopt a global cluster you own) or leave "
                            "the tag out")
    return problems


def parse_cluster_arn(value):
    """``(region, identifier)`` of a DB cluster ARN, or ``(None, value)`` for a plain identifier."""
    found = _CLUSTER_ARN.match(str(value or ""))
    return (found.group(1), found.group(3)) if found else (None, value)


def option_problems(params, region=None):
    """Every problem with the options alone, each naming the option and the fix (empty when they are fine)."""
    problems = identifier_problems(params.get("global_cluster_identifier"), "global_cluster_identifier")
    source = params.get("source_db_cluster_identifier")
    if source is not None:
        source_region, identifier = parse_cluster_arn(source)
        if str(source).startswith("arn:") and source_region is None:
            problems.append(f"source_db_cluster_identifier {source!r} is not a DB cluster ARN "
                            "(arn:aws:rds:<region>:<account>:cluster:<id>): give the ARN or the identifier")
        else:
            problems += identifier_problems(identifier, "source_db_cluster_identifier")
        if source_region and region and source_region != region:
            problems.append(f"source_db_cluster_identifier {source} is in {source_region}, not in the module's "
                            f"region {region}: a global cluster is created from its primary's region, so set "
                            f"region: {source_region}")
    problems += tag_problems(params.get("tags"))
    for key in ("wait_timeout", "poll_interval"):
        value = params.get(key)
        if value is not None and value <= 0:
            problems.append(f"{key} must be above 0, got {value}")
    return problems


def source_problems(identifier, source, global_cluster_identifier, region=None):
    """Why the cluster ``source`` (DescribeDBClusters, None when missing) cannot start the global cluster."""
    where = f" in {region}" if region else ""
    if source is None:
        return [f"source_db_cluster_identifier {identifier} does not exist{where}: give an existing Aurora "
                "PostgreSQL cluster of the module's region"]
    problems = []
    if source.get("Engine") != ENGINE:
        problems.append(f"source_db_cluster_identifier {identifier} runs {source.get('Engine')!r}; this collection "
                        f"builds global databases of {ENGINE} only")
    member_of = source.get("GlobalClusterIdentifier") or ""
    # moto (and some API versions) gives the global cluster's ARN here, AWS its identifier.
    member_of = member_of.rsplit(":", 1)[-1]
    if member_of and member_of.lower() != str(global_cluster_identifier).lower():
        problems.append(f"source_db_cluster_identifier {identifier} is already a member of the global cluster "
                        f"{member_of}; a cluster belongs to one global cluster at most: detach it first or name "
                        f"{member_of}")
    return problems


def is_managed(tags):
    """Whether tags (a dict) carry the marker of what this module created (or what its owner adopted)."""
    return (tags or {}).get(MANAGED_TAG_KEY) == MANAGED_TAG_VALUE


def unmanaged_message(identifier):
    return (f"global cluster {identifier} was not created by dbre.rds.rds_global_cluster (no {MANAGED_TAG_KEY} tag); "
            f"add the tag ({MANAGED_TAG_KEY}={MANAGED_TAG_VALUE}) if it is yours, then run again")


# ------------------------------------------------------------------------------------------------------------ state

def member_arns(global_cluster):
    """ARNs of the global cluster's member clusters, the writer first."""
    members = (global_cluster or {}).get("GlobalClusterMembers") or []
    return ([m["DBClusterArn"] for m in members if m.get("IsWriter")]
            + [m["DBClusterArn"] for m in members if not m.get("IsWriter")])


def current_state(global_cluster, tags=None):
    """What the module compares of an existing global cluster (None when there is none)."""
    if global_cluster is None:
        return None
    return {
        "global_cluster_identifier": global_cluster.get("GlobalClusterIdentifier"),
        "status": global_cluster.get("Status"),
        "engine": global_cluster.get("Engine"),
        "engine_version": global_cluster.get("EngineVersion"),
        "storage_encrypted": global_cluster.get("StorageEncrypted"),
        "deletion_protection": bool(global_cluster.get("DeletionProtection")),
        "members": member_arns(global_cluster),
        "tags": dict(tags or {}),
        # Set while a switchover or failover runs (FailoverState.Status, for example "switching-over").
        "failover_state": ((global_cluster.get("FailoverState") or {}).get("Status") or None),
    }


def desired_state(params, source_arn=None):
    """The declaration from the options (``None`` values leave that part as it is); None for state=absent."""
    if params.get("state") == "absent":
        return None
    return {
        "global_cluster_identifier": params["global_cluster_identifier"],
        "source_arn": source_arn,
        "deletion_protection": params.get("deletion_protection"),
        "tags": None if params.get("tags") is None else dict(params["tags"]),
    }


def _tag_changes(current, desired, purge):
    add = {k: v for k, v in desired.items() if current.get(k) != v}
    remove = sorted(k for k in current if k not in desired and k != MANAGED_TAG_KEY) if purge else []
    return add, remove


def plan_global_cluster(desired, current, purge_tags=True):
    """The calls from ``current`` (:func:`current_state`) to ``desired`` (:func:`desired_state`).

    Returns ``{action, changed, problems, create, modify, add_tags, remove_tags, detach, delete, before, after}``:
    ``action`` is ``create``, ``update``, ``delete`` or ``none``; ``detach`` lists member ARNs to remove before the
    deletion (writer last, so the writer stays a global writer for as long as the database is global).
    """
    result = dict(action="none", changed=False, problems=[], create=None, modify={}, add_tags={}, remove_tags=[],
                  detach=[], delete=False, before=current, after=current)
    if desired is None:
        if current is None:
            return result
        if not is_managed(current["tags"]):
            result["problems"].append(unmanaged_message(current["global_cluster_identifier"]))
            return result
        if current["deletion_protection"]:
            result["problems"].append(
                f"global cluster {current['global_cluster_identifier']} has deletion protection on: run with "
                "state=present and deletion_protection=false first, then remove it")
            return result
        # RemoveFromGlobalCluster during a switchover or failover can leave two writers or none.
        if current["status"] != "available" or current.get("failover_state"):
            busy = current["status"] if current["status"] != "available" else current["failover_state"]
            result["problems"].append(
                f"global cluster {current['global_cluster_identifier']} is {busy} (a switchover or failover is in "
                "progress, or the global cluster is changing): wait until it is available with no failover state, "
                "then remove it")
            return result
        members = current["members"]
        result.update(action="delete", changed=True, detach=members[1:] + members[:1], delete=True, after=None)
        return result
    identifier = desired["global_cluster_identifier"]
    if current is None:
        if not desired["source_arn"]:
            result["problems"].append(f"global cluster {identifier} does not exist and source_db_cluster_identifier "
                                      "is not given: name the Aurora cluster it starts from")
            return result
        tags = dict(desired["tags"] or {}, **MANAGED_TAGS)
        create = {"GlobalClusterIdentifier": identifier, "SourceDBClusterIdentifier": desired["source_arn"],
                  "Tags": dict(sorted(tags.items()))}
        if desired["deletion_protection"] is not None:
            create["DeletionProtection"] = desired["deletion_protection"]
        after = {"global_cluster_identifier": identifier, "status": "available", "engine": ENGINE,
                 "engine_version": None, "storage_encrypted": None,
                 "deletion_protection": bool(desired["deletion_protection"]), "members": [desired["source_arn"]],
                 "tags": tags}
        result.update(action="create", changed=True, create=create, after=after)
        return result
    if desired["source_arn"] and desired["source_arn"] not in current["members"]:
        result["problems"].append(
            f"global cluster {identifier} exists without the cluster {desired['source_arn']} (its members: "
            f"{', '.join(current['members']) or 'none'}): a cluster joins a global cluster with "
            "amazon.aws.rds_cluster's global_cluster_identifier, not through this module; name the right source or "
            "leave it out")
        return result
    modify = {}
    if desired["deletion_protection"] is not None and desired["deletion_protection"] != current["deletion_protection"]:
        modify["DeletionProtection"] = desired["deletion_protection"]
    # The marker is never removed; an existing global cluster without it is adopted only when tags name it.
    wanted = current["tags"] if desired["tags"] is None else desired["tags"]
    add, remove = _tag_changes(current["tags"], wanted, purge_tags and desired["tags"] is not None)
    after = dict(current, deletion_protection=modify.get("DeletionProtection", current["deletion_protection"]),
                 tags={k: v for k, v in dict(current["tags"], **add).items() if k not in remove})
    changed = bool(modify or add or remove)
    result.update(action="update" if changed else "none", changed=changed, modify=modify, add_tags=add,
                  remove_tags=remove, after=after)
    return result


def planned_actions(plan):
    """The mutating RDS calls of a plan, in order."""
    actions = []
    if plan["create"]:
        actions.append("CreateGlobalCluster")
    if plan["modify"]:
        actions.append("ModifyGlobalCluster")
    if plan["add_tags"]:
        actions.append("AddTagsToResource")
    if plan["remove_tags"]:
        actions.append("RemoveTagsFromResource")
    actions += ["RemoveFromGlobalCluster"] * len(plan["detach"])
    if plan["delete"]:
        actions.append("DeleteGlobalCluster")
    return actions


def is_ready(global_cluster, source_arn=None):
    """Available, and with the source cluster among its members when one is named."""
    if not global_cluster or global_cluster.get("Status") != "available":
        return False
    return not source_arn or source_arn in member_arns(global_cluster)


def has_failed(global_cluster):
    """A status from which waiting cannot lead to "available"."""
    status = (global_cluster or {}).get("Status")
    return bool(status) and status != "available" and status not in TRANSITIONAL_STATES


def state_of(global_cluster):
    if not global_cluster:
        return "absent"
    return f"{global_cluster.get('Status')}, {len(member_arns(global_cluster))} member(s)"
