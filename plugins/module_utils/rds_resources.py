# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one way dbre.rds reads RDS: instances, clusters, global clusters, snapshots, RDS Proxies and tags.

Every describe goes through :func:`paginate` (the RDS ``Marker`` protocol, each page retried with the client's
jittered backoff), and a resource that does not exist is ``None``, never an exception and never "the first" item of
an unfiltered list: a describe by identifier asks for that identifier, and a list call always carries a filter.
Status families, the writer and member lookup and the RDS identifier rule are pure functions beside them, so every
module judges a status or a name the same way.
"""

from __future__ import annotations

import re

try:
    from botocore.exceptions import BotoCoreError
    from botocore.exceptions import ClientError
    AWS_ERRORS = (ClientError, BotoCoreError)
except ImportError:
    AWS_ERRORS = ()  # AnsibleAWSModule reports missing botocore

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict

from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import RETRYABLE_RDS_CODES
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import call_once
from ansible_collections.dbre.rds.plugins.module_utils.waiting import wait_until

INSTANCE = "instance"
CLUSTER = "cluster"
# A manual DB snapshot: the third kind of resource the drills create and delete (the upgrade rehearsal's snapshot).
SNAPSHOT = "snapshot"

# ------------------------------------------------------------------------------------------------- status families

AVAILABLE = "available"
# The resource is usable again soon without anyone acting: wait for it.
TRANSITIONAL_STATES = frozenset([
    "backing-up", "configuring-enhanced-monitoring", "configuring-iam-database-auth", "configuring-log-exports",
    "converting-to-vpc", "creating", "maintenance", "modifying", "moving-to-vpc", "rebooting", "renaming",
    "resetting-master-credentials", "starting", "storage-optimization", "upgrading", "failing-over", "promoting",
    "backtracking", "migrating", "preparing-data-migration", "update-iam-db-auth", "cloning-failed",
    "reactivating",  # an RDS Proxy waking up
])
# Nothing good comes from waiting on these: a wait stops at once and a drill refuses to start.
BROKEN_STATES = frozenset([
    "failed", "incompatible-credentials", "incompatible-network", "incompatible-option-group",
    "incompatible-parameters", "incompatible-restore", "inaccessible-encryption-credentials",
    "inaccessible-encryption-credentials-recoverable", "restore-error", "storage-full", "insufficient-capacity",
    "insufficient-resource-limits",  # an RDS Proxy (or proxy endpoint) RDS could not place
])
# The resource is going away or switched off on purpose.
GONE_STATES = frozenset(["deleting", "deleted", "stopped", "stopping", "inaccessible", "suspended", "suspending"])
STATUS_FAMILIES = ("available", "transitional", "broken", "gone", "unknown")


def status_of(described):
    """The status of a described instance, cluster, global cluster or snapshot; ``gone`` for ``None``."""
    if described is None:
        return "gone"
    for key in ("DBInstanceStatus", "Status"):
        if described.get(key):
            return str(described[key]).lower()
    return "unknown"


def status_family(status):
    """One of :data:`STATUS_FAMILIES` for a status string (or a described resource)."""
    if isinstance(status, dict) or status is None:
        status = status_of(status)
    if status == AVAILABLE:
        return "available"
    if status in BROKEN_STATES:
        return "broken"
    if status in GONE_STATES or status == "gone":
        return "gone"
    if status in TRANSITIONAL_STATES:
        return "transitional"
    return "unknown"


def stops_waiting(described):
    """True when waiting for ``available`` is pointless: the resource is broken or going away."""
    return status_family(described) in ("broken", "gone")


# ------------------------------------------------------------------------------------------ members and the writer

def cluster_writer(cluster):
    """Identifier of the cluster's writer instance, or None."""
    for member in (cluster or {}).get("DBClusterMembers") or []:
        if member.get("IsClusterWriter"):
            return member.get("DBInstanceIdentifier")
    return None


def cluster_readers(cluster):
    """Identifiers of the cluster's reader instances, best failover candidate first (lowest promotion tier)."""
    readers = [m for m in (cluster or {}).get("DBClusterMembers") or [] if not m.get("IsClusterWriter")]
    readers.sort(key=lambda m: (m.get("PromotionTier", 1), m.get("DBInstanceIdentifier")))
    return [m.get("DBInstanceIdentifier") for m in readers]


def cluster_member_ids(cluster):
    """Every member instance of the cluster, writer first."""
    writer = cluster_writer(cluster)
    return ([writer] if writer else []) + cluster_readers(cluster)


def global_writer(global_cluster):
    """ARN of the writer cluster of a global cluster, or None."""
    for member in (global_cluster or {}).get("GlobalClusterMembers") or []:
        if member.get("IsWriter"):
            return member.get("DBClusterArn")
    return None


def standalone_instance_problem(identifier, instance, what="db_instance_identifier"):
    """Why an Aurora member instance cannot stand where a standalone instance is needed (None when it can)."""
    cluster_id = (instance or {}).get("DBClusterIdentifier")
    if not cluster_id:
        return None
    return (f"{what} {identifier!r} is a member of the Aurora cluster {cluster_id!r}, not a standalone instance: "
            f"give db_cluster_identifier={cluster_id} instead")


# ------------------------------------------------------------------------------------------------------ identifiers

IDENTIFIER_MAX = 63
_IDENTIFIER = re.compile(r"^[A-Za-z](?!.*--)[A-Za-z0-9-]*(?<!-)$")


def identifier_problems(name, what, maximum=IDENTIFIER_MAX):
    """RDS identifier rules: 1-63 letters, digits and hyphens, a letter first, no trailing or double hyphen."""
    if name is None or not str(name).strip():
        return [f"{what} must not be empty or blank: name exactly one resource"]
    name = str(name)
    problems = []
    if len(name) > maximum:
        problems.append(f"{what} {name!r} is {len(name)} characters long; RDS allows at most {maximum}")
    if not _IDENTIFIER.match(name):
        problems.append(
            f"{what} {name!r} is not a valid RDS identifier: use letters, digits and hyphens, start with a letter, "
            "and do not end with a hyphen or use two hyphens in a row"
        )
    return problems


# -------------------------------------------------------------------------------------------------------------- tags

def tags_dict(tag_list):
    """``[{"Key": k, "Value": v}]`` as ``{k: v}`` (amazon.aws's conversion)."""
    return boto3_tag_list_to_ansible_dict(tag_list or [])


def tag_list(tags):
    """``{k: v}`` as RDS's ``[{"Key": k, "Value": v}]`` (amazon.aws's conversion)."""
    return ansible_dict_to_boto3_tag_list(tags or {})


def arn_of(described):
    for key in ("DBInstanceArn", "DBClusterArn", "DBSnapshotArn", "DBClusterSnapshotArn", "GlobalClusterArn"):
        if described and described.get(key):
            return described[key]
    return None


# --------------------------------------------------------------------------------------------------------------- I/O

NOT_FOUND_CODES = {
    "instance": ("DBInstanceNotFound", "DBInstanceNotFoundFault"),
    "cluster": ("DBClusterNotFoundFault", "DBClusterNotFound"),
    "global": ("GlobalClusterNotFoundFault", "GlobalClusterNotFound"),
    "snapshot": ("DBSnapshotNotFound", "DBSnapshotNotFoundFault"),
    "parameter_group": ("DBParameterGroupNotFound", "DBParameterGroupNotFoundFault"),
    "cluster_snapshot": ("DBClusterSnapshotNotFoundFault", "DBClusterSnapshotNotFound"),
    "proxy": ("DBProxyNotFoundFault", "DBProxyNotFound"),
    "proxy_endpoint": ("DBProxyEndpointNotFoundFault", "DBProxyEndpointNotFound"),
    "proxy_target_group": ("DBProxyNotFoundFault", "DBProxyNotFound", "DBProxyTargetGroupNotFoundFault",
                           "DBProxyTargetGroupNotFound"),
}


def paginate(client, operation, result_key, **params):
    """Every item of a describe call over all its pages (``Marker``), each page retried by the client's decorator."""
    call = getattr(client, operation)
    items, marker = [], None
    while True:
        response = call(aws_retry=True, **(dict(params, Marker=marker) if marker else params))
        container = response
        for key in result_key.split(".")[:-1]:
            container = container.get(key) or {}
        items.extend(container.get(result_key.split(".")[-1]) or [])
        marker = container.get("Marker") or response.get("Marker")
        if not marker:
            return items


def parameter_group_values(client, group_name, names):
    """{name: value} of the parameters ``names`` that a DB parameter group sets (numbers or RDS formulas), every page
    read; the ones it does not set are None. Client errors propagate: the caller names what failed."""
    values = dict.fromkeys(names)
    for parameter in paginate(client, "describe_db_parameters", "Parameters", DBParameterGroupName=group_name):
        if parameter.get("ParameterName") in values:
            values[parameter["ParameterName"]] = parameter.get("ParameterValue")
    return values


def _one(client, operation, result_key, not_found, identifier_key, identifier):
    """The one resource named ``identifier``, or None; a blank identifier is a programming error, never a list."""
    if not identifier or not str(identifier).strip():
        raise ValueError(f"{operation} needs a non-blank {identifier_key}: refusing to describe without a filter")
    try:
        found = paginate(client, operation, result_key, **{identifier_key: identifier})
    except is_boto3_error_code(list(NOT_FOUND_CODES[not_found])):
        return None
    matching = [item for item in found if str(item.get(identifier_key, "")).lower() == str(identifier).lower()]
    return matching[0] if matching else None


def describe_instance(client, identifier, with_tags=False):
    """The DB instance ``identifier`` as DescribeDBInstances shows it, or None."""
    found = _one(client, "describe_db_instances", "DBInstances", "instance", "DBInstanceIdentifier", identifier)
    return _with_tags(client, found) if with_tags else found


def describe_cluster(client, identifier, with_tags=False):
    """The DB cluster ``identifier`` as DescribeDBClusters shows it, or None."""
    found = _one(client, "describe_db_clusters", "DBClusters", "cluster", "DBClusterIdentifier", identifier)
    return _with_tags(client, found) if with_tags else found


def describe_or_fail(module, client, kind, identifier, missing=None):
    """For a module: the instance or cluster ``identifier``, or the module fails saying why it cannot be read or
    that it does not exist (``missing`` overrides that message)."""
    what = "Aurora cluster" if kind == CLUSTER else "DB instance"
    try:
        described = describe(client, kind, identifier)
    except AWS_ERRORS as e:
        action = "rds:DescribeDBClusters" if kind == CLUSTER else "rds:DescribeDBInstances"
        module.fail_json_aws(e, msg=f"Describing the {what} {identifier} failed: check the region and allow {action}")
    if described is None:
        module.fail_json(msg=missing or f"{what} {identifier} does not exist: check the identifier and the region")
    return described


def describe_global_cluster(client, identifier):
    """The global cluster ``identifier`` as DescribeGlobalClusters shows it, or None."""
    return _one(client, "describe_global_clusters", "GlobalClusters", "global", "GlobalClusterIdentifier", identifier)


def describe_cluster_members(client, cluster_identifier):
    """``{identifier: described instance}`` of every instance of the cluster (a filtered describe)."""
    if not cluster_identifier or not str(cluster_identifier).strip():
        raise ValueError("describe_cluster_members needs the cluster's identifier: refusing to list every instance")
    instances = paginate(client, "describe_db_instances", "DBInstances",
                         Filters=[{"Name": "db-cluster-id", "Values": [cluster_identifier]}])
    return {i["DBInstanceIdentifier"]: i for i in instances if i.get("DBClusterIdentifier") == cluster_identifier}


def describe(client, kind, identifier, with_tags=False):
    """An instance (``kind`` instance) or a cluster (``kind`` cluster), or None."""
    if kind == CLUSTER:
        return describe_cluster(client, identifier, with_tags)
    return describe_instance(client, identifier, with_tags)


def describe_snapshots(client, kind, source_identifier, snapshot_type=None):
    """The snapshots of one instance or cluster (never of all of them), newest first."""
    if not source_identifier or not str(source_identifier).strip():
        raise ValueError("describe_snapshots needs the source's identifier: refusing to list every snapshot")
    params = {"SnapshotType": snapshot_type} if snapshot_type else {}
    if kind == CLUSTER:
        found = paginate(client, "describe_db_cluster_snapshots", "DBClusterSnapshots",
                         DBClusterIdentifier=source_identifier, **params)
    else:
        found = paginate(client, "describe_db_snapshots", "DBSnapshots", DBInstanceIdentifier=source_identifier,
                         **params)
    return sorted(found, key=lambda s: str(s.get("SnapshotCreateTime") or ""), reverse=True)


def describe_parameter_group(client, name):
    """The DB parameter group ``name`` as DescribeDBParameterGroups shows it, or None (also for no name: an option
    left empty names no group)."""
    if not name:
        return None
    return _one(client, "describe_db_parameter_groups", "DBParameterGroups", "parameter_group", "DBParameterGroupName",
                name)


def describe_snapshot(client, kind, snapshot_identifier):
    """One snapshot by identifier, or None."""
    if kind == CLUSTER:
        return _one(client, "describe_db_cluster_snapshots", "DBClusterSnapshots", "cluster_snapshot",
                    "DBClusterSnapshotIdentifier", snapshot_identifier)
    return _one(client, "describe_db_snapshots", "DBSnapshots", "snapshot", "DBSnapshotIdentifier",
                snapshot_identifier)


def describe_tagged(client, kind, tag_key, tag_value=None):
    """Instances or clusters that carry the tag ``tag_key`` (with ``tag_value`` when given): a filtered read.

    RDS has no server-side tag filter on these calls, so every page is read and filtered here; the filter is the
    point: a caller never acts on an untagged resource.
    """
    if not tag_key:
        raise ValueError("describe_tagged needs a tag key")
    operation, key = (("describe_db_clusters", "DBClusters") if kind == CLUSTER
                      else ("describe_db_instances", "DBInstances"))
    found = []
    for item in paginate(client, operation, key):
        tags = tags_dict(item.get("TagList"))
        if tag_key in tags and (tag_value is None or tags[tag_key] == tag_value):
            found.append(item)
    return found


def describe_matching_tags(client, kind, tags):
    """Standalone instances (not Aurora members) or clusters carrying every ``{key: value}`` of ``tags``."""
    if not tags:
        raise ValueError("describe_matching_tags needs at least one tag")
    first_key = sorted(tags)[0]
    return [item for item in describe_tagged(client, kind, first_key, str(tags[first_key]))
            if all(tags_dict(item.get("TagList")).get(k) == str(v) for k, v in tags.items())
            and not (kind != CLUSTER and item.get("DBClusterIdentifier"))]


def describe_every(client, kind):
    """Every standalone instance (Aurora members excluded) or every cluster of the region: only for a caller the
    user asked to act on all of them (``all: true``)."""
    if kind == CLUSTER:
        return paginate(client, "describe_db_clusters", "DBClusters")
    return [i for i in paginate(client, "describe_db_instances", "DBInstances") if not i.get("DBClusterIdentifier")]


def describe_snapshot_attributes(client, kind, snapshot_identifier):
    """The attributes (``[{"AttributeName": "restore", "AttributeValues": [accounts]}]``) of one manual snapshot."""
    if kind == CLUSTER:
        response = client.describe_db_cluster_snapshot_attributes(
            DBClusterSnapshotIdentifier=snapshot_identifier, aws_retry=True)
        return (response.get("DBClusterSnapshotAttributesResult") or {}).get("DBClusterSnapshotAttributes") or []
    response = client.describe_db_snapshot_attributes(DBSnapshotIdentifier=snapshot_identifier, aws_retry=True)
    return (response.get("DBSnapshotAttributesResult") or {}).get("DBSnapshotAttributes") or []


def describe_blue_green_deployments(client):
    """Every blue/green deployment of the region (their Source and Target are instance or cluster ARNs)."""
    return paginate(client, "describe_blue_green_deployments", "BlueGreenDeployments")


def blue_green_deployments_of(client, arn):
    """The blue/green deployments whose source or target is ``arn`` (an instance or cluster ARN): two reads filtered
    by ``source`` and by ``target``, merged, never the region's list. Before a switchover the blue is the source;
    after it the instance that took the blue's name is the target and the old blue (``<id>-old1``) the source."""
    found = []
    for name in ("source", "target"):
        found += paginate(client, "describe_blue_green_deployments", "BlueGreenDeployments",
                          Filters=[{"Name": name, "Values": [arn]}])
    return found


def read_tags(client, described):
    """The tags of a described resource as a dict (from its TagList, or ListTagsForResource when it has none)."""
    if described is None:
        return {}
    if "TagList" in described:
        return tags_dict(described["TagList"])
    arn = arn_of(described)
    return tags_dict(client.list_tags_for_resource(ResourceName=arn, aws_retry=True).get("TagList")) if arn else {}


def _with_tags(client, described):
    if described is not None and "TagList" not in described:
        arn = arn_of(described)
        described["TagList"] = client.list_tags_for_resource(ResourceName=arn, aws_retry=True).get("TagList", []) \
            if arn else []
    return described


def describe_resource(client, kind, identifier, with_tags=False):
    """An instance, a cluster or (kind :data:`SNAPSHOT`) a manual DB snapshot, or None."""
    if kind == SNAPSHOT:
        found = describe_snapshot(client, INSTANCE, identifier)
        return _with_tags(client, found) if with_tags else found
    return describe(client, kind, identifier, with_tags)


# RDS refuses a deletion for now while the resource is busy (a backup or modification under way, a snapshot still
# being created): waited out, never taken for a failure.
DELETE_REFUSED_FOR_NOW = RETRYABLE_RDS_CODES + ["InvalidDBSnapshotState"]


def delete_once(once, client, kind, identifier, *, timeout, interval, clock=None):
    """Delete an instance or cluster (no final snapshot, its automated backups with it) or a manual DB snapshot that
    the caller has checked is its own. Sent through call_once with ``once`` (a client without retries): a throttle
    or a lost answer is confirmed by describing it with ``client`` (gone or deleting), never sent again blindly.
    NotFound counts as done; a refusal for now (:data:`DELETE_REFUSED_FOR_NOW`) is waited out within ``timeout``.
    Returns call_once's outcome (``{"confirmed_by": "already gone"}`` for NotFound); raises WaitTimeout, or the
    AWS error of any other refusal."""
    if kind == SNAPSHOT:
        operation, request = "delete_db_snapshot", {"DBSnapshotIdentifier": identifier}
    elif kind == CLUSTER:
        operation, request = "delete_db_cluster", {"DBClusterIdentifier": identifier}
    else:
        operation, request = "delete_db_instance", {"DBInstanceIdentifier": identifier}
    if kind != SNAPSHOT:
        request.update(SkipFinalSnapshot=True, DeleteAutomatedBackups=True)

    def took_effect():
        found = describe_resource(client, kind, identifier)
        return f"{kind} {identifier} {status_of(found)}" if status_of(found) in ("gone", "deleting") else None

    def attempt():
        try:
            return {"outcome": call_once(once, operation, request, took_effect, deadline_seconds=timeout)}
        except is_boto3_error_code(list(NOT_FOUND_CODES[kind])):
            return {"outcome": {"confirmed_by": "already gone"}}
        except is_boto3_error_code(DELETE_REFUSED_FOR_NOW):  # pylint: disable=duplicate-except
            return {"outcome": None}

    return wait_until(attempt, lambda r: r["outcome"] is not None, timeout=timeout, interval=interval,
                      phase=f"{operation} of {identifier} accepted", clock=clock,
                      state_of=lambda r: "accepted" if r["outcome"] else "refused for now").value["outcome"]


def events_since(client, source_type, source_identifier, since):
    """RDS events of one source since ``since`` (a datetime), oldest first."""
    return paginate(client, "describe_events", "Events", SourceIdentifier=source_identifier, SourceType=source_type,
                    StartTime=since)


# ------------------------------------------------------------------------------------------------------ RDS Proxy
# A proxy, its endpoints, its target groups and their targets. RDS Proxy has no port in its API: it listens on the
# engine family's default port whatever the port of its targets.

PROXY_PORTS = {"POSTGRESQL": 5432, "MYSQL": 3306, "SQLSERVER": 1433}
DEFAULT_TARGET_GROUP = "default"


def describe_proxy(client, name):
    """The RDS Proxy ``name`` as DescribeDBProxies shows it, or None."""
    return _one(client, "describe_db_proxies", "DBProxies", "proxy", "DBProxyName", name)


def describe_proxy_endpoint(client, name):
    """The proxy endpoint ``name`` (DBProxyEndpointName) as DescribeDBProxyEndpoints shows it, or None."""
    return _one(client, "describe_db_proxy_endpoints", "DBProxyEndpoints", "proxy_endpoint", "DBProxyEndpointName",
                name)


def _of_proxy(client, operation, result_key, proxy_name, **params):
    """Every item of a per-proxy describe (never of every proxy); ``[]`` when the proxy (or group) is missing."""
    if not proxy_name or not str(proxy_name).strip():
        raise ValueError(f"{operation} needs the proxy's name: refusing to describe every proxy")
    try:
        return paginate(client, operation, result_key, DBProxyName=proxy_name, **params)
    except is_boto3_error_code(list(NOT_FOUND_CODES["proxy_target_group"])):
        return []


def describe_proxy_endpoints(client, proxy_name):
    """The endpoints of the proxy ``proxy_name`` (the default one too where RDS lists it, ``IsDefault``)."""
    found = _of_proxy(client, "describe_db_proxy_endpoints", "DBProxyEndpoints", proxy_name)
    return [item for item in found if str(item.get("DBProxyName", "")).lower() == str(proxy_name).lower()]


def describe_proxy_target_groups(client, proxy_name):
    """The target groups of the proxy ``proxy_name`` (RDS gives each proxy one, named ``default``)."""
    return _of_proxy(client, "describe_db_proxy_target_groups", "TargetGroups", proxy_name)


def describe_proxy_targets(client, proxy_name, target_group=DEFAULT_TARGET_GROUP):
    """The targets registered in a target group of the proxy ``proxy_name``."""
    return _of_proxy(client, "describe_db_proxy_targets", "Targets", proxy_name, TargetGroupName=target_group)


def proxy_port(proxy):
    """The port a proxy listens on: its engine family's default (None for an unknown family)."""
    return PROXY_PORTS.get(str((proxy or {}).get("EngineFamily") or "").upper())


def proxy_fronts(targets, kind, identifier, member_ids=()):
    """True when the proxy targets (DescribeDBProxyTargets) route to the instance or cluster ``identifier``.

    An instance counts when it is an ``RDS_INSTANCE`` target; a cluster when it is the ``TRACKED_CLUSTER`` target,
    or one of its instances (``member_ids``, or a target tracking it) is. Identifiers compare case-insensitively,
    as RDS does.
    """
    wanted = str(identifier or "").lower()
    members = {str(member).lower() for member in member_ids or ()}
    for target in targets or []:
        resource = str(target.get("RdsResourceId") or "").lower()
        tracked = str(target.get("TrackedClusterId") or "").lower()
        if kind == CLUSTER:
            if target.get("Type") == "TRACKED_CLUSTER" and resource == wanted:
                return True
            if target.get("Type") == "RDS_INSTANCE" and (tracked == wanted or resource in members):
                return True
        elif target.get("Type") == "RDS_INSTANCE" and resource == wanted:
            return True
    return False


def proxy_target_names(targets):
    """``["<type> <id>"]`` of the targets, for messages."""
    return [f"{target.get('Type')} {target.get('RdsResourceId')}" for target in targets or []]
