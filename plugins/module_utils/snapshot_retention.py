# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decisions of rds_snapshot_retention as pure functions: which manual snapshots go, which stay and why, which are
copied to the DR region and which DR copies go.

Inputs are boto3-shaped dicts (DescribeDBSnapshots / DescribeDBClusterSnapshots items, DescribeBlueGreenDeployments
items, tag lists); outputs are plain dicts. Nothing here calls AWS.

A manual snapshot of a selected source is deleted only when every rule lets it go; the first rule that keeps it is
its reason (``reason_code`` in :data:`KEEP_REASONS`):

1. ``keep_tag``: it carries the keep tag (``Permanent=true`` by default);
2. ``newest``: it is among the newest ``keep_last`` available snapshots of its source;
3. ``not_available``: its status is not ``available`` (being created, copied in, deleted...);
4. ``being_copied``: a copy of it is in progress (in the DR region, or started by this run);
5. ``restore_drill``: a running restore drill restores it (a resource tagged ``dbre:drill-id`` names it in
   ``dbre:drill-snapshot``), or a drill of its source runs without naming its snapshot (every snapshot of the source
   is kept meanwhile);
6. ``blue_green``: its source is in a blue/green deployment that is not finished;
7. ``shared``: it is shared with another account (its ``restore`` attribute lists accounts or ``all``);
8. ``retention``: it is younger than ``retention_days``.

Deletion runs later than the plan (in batches, DR copies after waiting for the new copies), so just before each
deletion the snapshot is described again and :func:`recheck_reason` re-applies the rules that can change meanwhile
(keep tag, this module's own copy, status, restore drill, sharing); one that must now stay is kept with reason code
``changed_since_plan``.
"""

from __future__ import annotations

import datetime
import re

from ansible_collections.dbre.rds.plugins.module_utils.clock import parse_utc
from ansible_collections.dbre.rds.plugins.module_utils.clock import utc_iso
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import CLUSTER
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import identifier_problems
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import tags_dict
from ansible_collections.dbre.rds.plugins.module_utils.restore_drill import DRILL_ID_TAG, DRILL_SNAPSHOT_TAG

MODULE_NAME = "dbre.rds.rds_snapshot_retention"
# Tags of the DR copies this module makes: who made them, of which snapshot of which source, and when that was taken.
MANAGED_BY_TAG = "dbre:managed-by"
COPY_OF_TAG = "dbre:copy-of"
COPY_SOURCE_TAG = "dbre:copy-source"
COPY_SOURCE_CREATED_TAG = "dbre:copy-source-created"
# A restore drill's resources carry DRILL_ID_TAG and name the snapshot they restore in DRILL_SNAPSHOT_TAG (set both on
# your own restores too, to protect their snapshot while they run).
# Blue/green deployments in these states no longer hold their source.
BLUE_GREEN_FINISHED = frozenset(["SWITCHOVER_COMPLETED", "INVALID_CONFIGURATION", "SWITCHOVER_FAILED", "DELETING"])

KEEP_REASONS = ("keep_tag", "newest", "not_available", "being_copied", "restore_drill", "blue_green", "shared",
                "retention", "changed_since_plan")
DEFAULT_KEEP_TAG = {"key": "Permanent", "value": "true"}
MAX_BATCH = 100
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


# --------------------------------------------------------------------------------------------------------- options

def option_problems(params, region=None):
    """Every problem with the options, before any AWS call (the argument spec has checked types and exclusivity)."""
    problems = []
    selectors = [name for name in ("db_instance_identifiers", "db_cluster_identifiers", "tags", "all")
                 if params.get(name) not in (None, False)]
    if len(selectors) != 1:
        problems.append("give exactly one selector of db_instance_identifiers, db_cluster_identifiers, tags and "
                        f"all: true (got {', '.join(selectors) if selectors else 'none'})")
    for option in ("db_instance_identifiers", "db_cluster_identifiers"):
        names = params.get(option)
        if names is None:
            continue
        if not names:
            problems.append(f"{option} is empty: name at least one resource, or use tags or all: true")
        seen = set()
        for name in names:
            problems += identifier_problems(name, f"{option} item")
            if str(name).lower() in seen:
                problems.append(f"{option} names {name} more than once")
            seen.add(str(name).lower())
    if params.get("tags") is not None:
        if not params["tags"]:
            problems.append("tags is empty: give the resource tags to select by, e.g. {backup: daily}")
        elif any(not str(key).strip() for key in params["tags"]):
            problems.append("tags has an empty key: give the resource tags to select by")
    retention = params.get("retention_days")
    if retention is None or isinstance(retention, bool) or int(retention) < 1:
        problems.append(f"retention_days must be at least 1 (got {retention}): 0 would make every snapshot "
                        "deletable at once; use a number of days such as 30")
    keep_last = params.get("keep_last")
    if keep_last is not None and int(keep_last) < 0:
        problems.append(f"keep_last must be 0 or more (got {keep_last})")
    keep_tag = params.get("keep_tag") or {}
    if not str(keep_tag.get("key") or "").strip():
        problems.append("keep_tag.key must not be empty: snapshots carrying this tag are never deleted; use e.g. "
                        "{key: Permanent, value: 'true'}")
    batch = params.get("batch_size")
    if batch is not None and not 1 <= int(batch) <= MAX_BATCH:
        problems.append(f"batch_size must be from 1 to {MAX_BATCH} (got {batch})")
    copy_region = params.get("copy_to_region")
    if copy_region is not None:
        if not _REGION.match(str(copy_region)):
            problems.append(f"copy_to_region {copy_region!r} is not an AWS region name such as us-west-2")
        elif region and str(copy_region) == str(region):
            problems.append(f"copy_to_region {copy_region} is the region the snapshots are in: DR copies go to "
                            "another region")
        copy_keep = params.get("copy_keep_last")
        if copy_keep is not None and int(copy_keep) < 1:
            problems.append(f"copy_keep_last must be at least 1 (got {copy_keep})")
        if params.get("endpoint_url"):
            problems.append(f"copy_to_region cannot be used with endpoint_url {params['endpoint_url']}: the clients "
                            f"of {copy_region} would keep that endpoint, which serves only the snapshots' region; "
                            "drop endpoint_url or run the copies without it")
    elif params.get("copy_kms_key_id"):
        problems.append("copy_kms_key_id needs copy_to_region (the region whose key it is)")
    if params.get("copy_kms_key_id") is not None and not str(params["copy_kms_key_id"]).strip():
        problems.append("copy_kms_key_id must not be blank: give a key id, key ARN or alias of copy_to_region")
    return problems


# ------------------------------------------------------------------------------------------------------ snapshots

def snapshot_id(snapshot):
    return snapshot.get("DBSnapshotIdentifier") or snapshot.get("DBClusterSnapshotIdentifier")


def snapshot_arn(snapshot):
    return snapshot.get("DBSnapshotArn") or snapshot.get("DBClusterSnapshotArn")


def snapshot_source(snapshot):
    return snapshot.get("DBInstanceIdentifier") or snapshot.get("DBClusterIdentifier")


def snapshot_kind(snapshot):
    return CLUSTER if "DBClusterSnapshotIdentifier" in snapshot else "instance"


def created_at(snapshot):
    """When the data was taken: a copy's own SnapshotCreateTime is when it was copied."""
    value = snapshot.get("OriginalSnapshotCreateTime") or snapshot.get("SnapshotCreateTime")
    return parse_utc(value) if value else None


def copied_from(snapshot):
    """ARN of the snapshot this one is a cross-region (or cluster) copy of, or None."""
    return snapshot.get("SourceDBSnapshotIdentifier") or snapshot.get("SourceDBClusterSnapshotArn")


def account_of(arn):
    parts = str(arn or "").split(":")
    return parts[4] if len(parts) > 5 else None


def has_keep_tag(snapshot, keep_tag):
    tags = tags_dict(snapshot.get("TagList"))
    return tags.get(keep_tag["key"]) == str(keep_tag.get("value") if keep_tag.get("value") is not None else "true")


def shared_accounts(attributes):
    """Accounts (or ``all``) a snapshot is shared with, from Describe*SnapshotAttributes' attribute list."""
    accounts = []
    for attribute in attributes or []:
        if attribute.get("AttributeName") == "restore":
            accounts += [str(v) for v in attribute.get("AttributeValues") or []]
    return sorted(set(accounts))


def _age_days(created, now):
    return round((now - created).total_seconds() / 86400.0, 2) if created else None


def _entry(snapshot, source, now, region):
    created = created_at(snapshot)
    return {
        "identifier": snapshot_id(snapshot),
        "arn": snapshot_arn(snapshot),
        "kind": source["kind"],
        "source": source["identifier"],
        "region": region,
        "status": snapshot.get("Status"),
        "snapshot_create_time": utc_iso(created),
        "age_days": _age_days(created, now),
        "allocated_storage": int(snapshot.get("AllocatedStorage") or 0),
        "encrypted": bool(snapshot.get("Encrypted") or snapshot.get("StorageEncrypted")),
    }


# ------------------------------------------------------------------------------------------------- in-use context

def drill_uses(drill_resources):
    """{snapshot identifier or ARN (lower case): "restore drill <id> (<resource>)"} from resources tagged by a drill."""
    uses = {}
    for resource in drill_resources or []:
        tags = tags_dict(resource.get("TagList"))
        drill, snapshot = tags.get(DRILL_ID_TAG), tags.get(DRILL_SNAPSHOT_TAG)
        if not drill or not snapshot:
            continue
        name = resource.get("DBInstanceIdentifier") or resource.get("DBClusterIdentifier")
        uses[snapshot.lower()] = f"restored by the running restore drill {drill} ({name})"
    return uses


def drills_without_snapshot(drill_resources):
    """{source name prefix: reason} for drill resources that do not name their snapshot: the drill's default name is
    ``<source (at most 35 characters)>-drill-<time>-<suffix>``, so every snapshot of that source is kept while it
    runs."""
    uses = {}
    for resource in drill_resources or []:
        tags = tags_dict(resource.get("TagList"))
        name = str(resource.get("DBInstanceIdentifier") or resource.get("DBClusterIdentifier") or "").lower()
        if not tags.get(DRILL_ID_TAG) or tags.get(DRILL_SNAPSHOT_TAG) or "-drill-" not in name:
            continue
        prefix = name.split("-drill-", maxsplit=1)[0]
        uses[prefix] = (f"the restore drill {tags[DRILL_ID_TAG]} ({name}) of its source is running and does not "
                        "name the snapshot it restores")
    return uses


def _drill_of_source(source_identifier, drill_sources):
    source = str(source_identifier).lower()
    for prefix, reason in (drill_sources or {}).items():
        if source == prefix or (len(prefix) >= 30 and source.startswith(prefix)):
            return reason
    return None


def blue_green_uses(deployments, source_arns):
    """{source ARN: "blue/green deployment <id> (<status>)"} for sources in an unfinished deployment."""
    wanted = {str(arn) for arn in source_arns}
    uses = {}
    for deployment in deployments or []:
        status = str(deployment.get("Status") or "")
        if status in BLUE_GREEN_FINISHED:
            continue
        for arn in (deployment.get("Source"), deployment.get("Target")):
            if arn in wanted:
                uses[arn] = (f"its source is in the blue/green deployment "
                             f"{deployment.get('BlueGreenDeploymentIdentifier')} ({status or 'unknown status'})")
    return uses


def blue_green_unknown(source_arns, why):
    """{source ARN: reason} keeping every snapshot of every source when the deployments cannot be read (``why``)."""
    return {str(arn): f"the blue/green deployments could not be read ({why}), so none of its snapshots is deleted"
            for arn in source_arns}


def copies_in_progress(dr_snapshots, region):
    """{source snapshot ARN: "being copied to <region> as <id>"} for copies not yet available."""
    uses = {}
    for snapshot in dr_snapshots or []:
        source = copied_from(snapshot)
        if source and snapshot.get("Status") != "available":
            uses[source] = f"being copied to {region} as {snapshot_id(snapshot)} ({snapshot.get('Status')})"
    return uses


# ------------------------------------------------------------------------------------------------------- retention

def plan_retention(sources, *, now, retention_days, keep_last, keep_tag, region, drills=None, blue_green=None,
                   copying=None, shared=None, drill_sources=None):
    """Decide every manual snapshot of every source.

    ``sources``: [{"kind", "identifier", "arn", "snapshots": [described snapshots]}].
    ``drills`` (from :func:`drill_uses`), ``drill_sources`` (:func:`drills_without_snapshot`), ``blue_green``
    (:func:`blue_green_uses`), ``copying``
    (:func:`copies_in_progress`): the in-use context. ``shared``: {snapshot ARN: [accounts]} for the snapshots whose
    attributes were read; a snapshot that would be deleted and is missing from it is listed in ``check_sharing``.

    Returns {"delete": [entry + reason], "keep": [entry + reason, reason_code], "check_sharing": [entry],
    "ignored": [entry + reason]} with entries ordered oldest first.
    """
    now = parse_utc(now)
    cutoff = now - datetime.timedelta(days=int(retention_days))
    drills, blue_green, copying = drills or {}, blue_green or {}, copying or {}
    plan = {"delete": [], "keep": [], "check_sharing": [], "ignored": []}
    for source in sources:
        source_account = account_of(source.get("arn"))
        mine = []
        for snapshot in source.get("snapshots") or []:
            entry = _entry(snapshot, source, now, region)
            if snapshot.get("SnapshotType", "manual") != "manual":
                continue  # automated (and shared-in or public) snapshots are never this module's business
            if snapshot_source(snapshot) and str(snapshot_source(snapshot)).lower() != source["identifier"].lower():
                continue
            if source_account and account_of(entry["arn"]) not in (None, source_account):
                plan["ignored"].append(dict(entry, reason="owned by another account"))
                continue
            mine.append((snapshot, entry))
        available = sorted([pair for pair in mine if pair[0].get("Status") == "available" and pair[1]["age_days"]
                            is not None], key=lambda pair: (created_at(pair[0]), pair[1]["identifier"]), reverse=True)
        newest = {pair[1]["identifier"] for pair in available[:max(int(keep_last), 0)]}
        for snapshot, entry in mine:
            code, reason = _keep_reason(snapshot, entry, source, newest=newest, keep_last=keep_last, keep_tag=keep_tag,
                                        cutoff=cutoff, retention_days=retention_days, drills=drills,
                                        drill_sources=drill_sources,
                                        blue_green=blue_green, copying=copying, shared=shared)
            if code == "check_sharing":
                plan["check_sharing"].append(entry)
            elif code:
                plan["keep"].append(dict(entry, reason_code=code, reason=reason))
            else:
                plan["delete"].append(dict(entry, reason=reason))
    for key in plan:
        plan[key].sort(key=lambda e: (e["snapshot_create_time"] or "", e["source"], e["identifier"]))
    return plan


def _keep_reason(snapshot, entry, source, *, newest, keep_last, keep_tag, cutoff, retention_days, drills,
                 drill_sources, blue_green, copying, shared):
    """(reason code, reason) of a kept snapshot, ("check_sharing", None) when its sharing must be read first, or
    (None, why it may go)."""
    identifier, arn = entry["identifier"], entry["arn"] or ""
    if has_keep_tag(snapshot, keep_tag):
        return "keep_tag", f"tagged {keep_tag['key']}={keep_tag.get('value')}"
    if identifier in newest:
        return "newest", f"among the newest {keep_last} available snapshot(s) of {source['identifier']}"
    if snapshot.get("Status") != "available":
        return "not_available", f"status is {snapshot.get('Status')}, not available"
    if arn in copying:
        return "being_copied", copying[arn]
    drill = drills.get(identifier.lower()) or drills.get(arn.lower())
    drill = drill or _drill_of_source(source["identifier"], drill_sources)
    if drill:
        return "restore_drill", drill
    if source.get("arn") in blue_green:
        return "blue_green", blue_green[source["arn"]]
    created = created_at(snapshot)
    if created is None or created > cutoff:
        return "retention", f"{entry['age_days']} days old, younger than retention_days {retention_days}"
    if shared is None or arn not in shared:
        return "check_sharing", None
    if shared[arn]:
        return "shared", f"shared with {', '.join(shared[arn])}"
    return None, (f"{entry['age_days']} days old, older than retention_days {retention_days}; not among the newest "
                  f"{keep_last}; no keep tag; not in use")


def recheck_reason(entry, snapshot, *, keep_tag, drills=None, drill_sources=None, shared=None,
                   copy_source_arn=None):
    """Why a snapshot planned for deletion must now be kept, or None when it may still go.

    ``snapshot``: the snapshot described again with its tags just before its deletion (None when it is no longer
    described); ``drills``/``drill_sources``: the running drills read again (:func:`drill_uses`,
    :func:`drills_without_snapshot`); ``shared``: its accounts read again (None: not read yet, not checked);
    ``copy_source_arn``: for a DR copy, the source ARN its tags must still name as this module's copy.
    """
    if snapshot is None:
        return "it is no longer described (deleted or renamed since the plan)"
    if has_keep_tag(snapshot, keep_tag):
        return f"tagged {keep_tag['key']}={keep_tag.get('value')} since the plan"
    if copy_source_arn is not None and not is_our_copy(snapshot, copy_source_arn):
        return f"its tags no longer mark it as this module's DR copy of {entry.get('source')}"
    if snapshot.get("Status") != "available":
        return f"status is now {snapshot.get('Status')}, not available"
    identifier, arn = str(entry.get("identifier") or ""), str(entry.get("arn") or snapshot_arn(snapshot) or "")
    drills = drills or {}
    drill = drills.get(identifier.lower()) or drills.get(arn.lower()) or _drill_of_source(entry.get("source") or "",
                                                                                          drill_sources)
    if drill:
        return f"now {drill}"
    if shared:
        return f"now shared with {', '.join(shared)}"
    return None


def storage_gib(entries):
    return sum(int(e.get("allocated_storage") or 0) for e in entries)


def batches(items, size):
    """``items`` in lists of at most ``size``."""
    size = max(int(size), 1)
    return [items[i:i + size] for i in range(0, len(items), size)]


# --------------------------------------------------------------------------------------------------- DR copies

def copy_target_identifier(source_snapshot_identifier):
    """The DR copy's name: the source snapshot's, made a valid manual snapshot name (``rds:x`` -> ``auto-x``), with
    ``-dr``."""
    name = str(source_snapshot_identifier)
    if name.startswith("rds:"):
        name = "auto-" + name[4:]
    name = re.sub(r"[^A-Za-z0-9-]", "-", name)
    name = re.sub(r"-{2,}", "-", name).strip("-").lower()
    if not name or not name[0].isalpha():
        name = "s-" + name
    return f"{name[:251].rstrip('-')}-dr"


def copy_tags(snapshot, source_arn):
    """Tags of a DR copy: the source snapshot's own, then this module's (which win)."""
    tags = tags_dict(snapshot.get("TagList"))
    tags.update({MANAGED_BY_TAG: MODULE_NAME, COPY_OF_TAG: snapshot_arn(snapshot), COPY_SOURCE_TAG: source_arn,
                 COPY_SOURCE_CREATED_TAG: utc_iso(created_at(snapshot))})
    return tags


def is_our_copy(dr_snapshot, source_arn):
    tags = tags_dict(dr_snapshot.get("TagList"))
    return tags.get(MANAGED_BY_TAG) == MODULE_NAME and tags.get(COPY_SOURCE_TAG) == source_arn


def _copy_source_time(dr_snapshot):
    tags = tags_dict(dr_snapshot.get("TagList"))
    if tags.get(COPY_SOURCE_CREATED_TAG):
        try:
            return parse_utc(tags[COPY_SOURCE_CREATED_TAG])
        except ValueError:
            pass
    return created_at(dr_snapshot)


def plan_copies(source, kept, dr_snapshots, *, copy_keep_last, region, keep_tag, now, assume_copies_done=False):
    """DR copies of one source: what to copy and which of this module's older copies in ``region`` go.

    ``kept``: the source's snapshots this run keeps (described, available ones count); ``dr_snapshots``: the
    source's snapshots in ``region`` (described). The newest ``copy_keep_last`` kept snapshots should have a copy;
    of this module's copies, the newest ``copy_keep_last`` available ones stay and older available ones go, so a copy
    is only deleted once newer ones are usable. ``assume_copies_done`` counts the planned copies as available (check
    mode with waiting, or after the wait).

    Returns {"copy": [{"source_identifier", "source_arn", "target_identifier", "encrypted", "tags", ...}],
    "delete": [entry + reason], "keep": [entry + reason, reason_code], "conflicts": [message]}.
    """
    now = parse_utc(now)
    ours = [s for s in dr_snapshots or [] if is_our_copy(s, source["arn"])]
    by_origin = {tags_dict(s.get("TagList")).get(COPY_OF_TAG): s for s in ours}
    taken = {snapshot_id(s).lower(): s for s in dr_snapshots or []}
    candidates = sorted([s for s in kept if s.get("Status") == "available" and created_at(s)],
                        key=lambda s: (created_at(s), snapshot_id(s)), reverse=True)[:int(copy_keep_last)]
    plan = {"copy": [], "delete": [], "keep": [], "conflicts": []}
    for snapshot in candidates:
        if snapshot_arn(snapshot) in by_origin:
            continue
        target = copy_target_identifier(snapshot_id(snapshot))
        if target in taken:
            plan["conflicts"].append(f"{region} already has a snapshot named {target} that this module did not make "
                                     f"from {snapshot_id(snapshot)}: rename or delete it")
            continue
        plan["copy"].append({
            "source_identifier": snapshot_id(snapshot), "source_arn": snapshot_arn(snapshot),
            "target_identifier": target, "kind": source["kind"], "source": source["identifier"], "region": region,
            "encrypted": bool(snapshot.get("Encrypted") or snapshot.get("StorageEncrypted")),
            "snapshot_create_time": utc_iso(created_at(snapshot)),
            "allocated_storage": int(snapshot.get("AllocatedStorage") or 0),
            "tags": copy_tags(snapshot, source["arn"]),
        })
    ranked = [(_copy_source_time(s), s) for s in ours if s.get("Status") == "available"]
    if assume_copies_done:
        ranked += [(parse_utc(c["snapshot_create_time"]), None) for c in plan["copy"]]
    ranked.sort(key=lambda pair: (pair[0], snapshot_id(pair[1]) if pair[1] else ""), reverse=True)
    staying = {id(pair[1]) for pair in ranked[:int(copy_keep_last)] if pair[1] is not None}
    for snapshot in ours:
        entry = _entry(snapshot, source, now, region)
        if snapshot.get("Status") != "available":
            plan["keep"].append(dict(entry, reason_code="not_available",
                                     reason=f"DR copy, status is {snapshot.get('Status')}, not available"))
        elif has_keep_tag(snapshot, keep_tag):
            plan["keep"].append(dict(entry, reason_code="keep_tag",
                                     reason=f"DR copy tagged {keep_tag['key']}={keep_tag.get('value')}"))
        elif id(snapshot) in staying:
            plan["keep"].append(dict(entry, reason_code="newest",
                                     reason=f"among the newest {copy_keep_last} DR copies of {source['identifier']}"))
        else:
            plan["delete"].append(dict(entry, reason=f"DR copy older than the newest {copy_keep_last} of "
                                                     f"{source['identifier']} in {region}"))
    return plan


def copy_key_problems(copies, kms_key_id, region):
    """Encrypted snapshots need a KMS key of the DR region to be copied there."""
    if kms_key_id:
        return []
    encrypted = sorted(c["source_identifier"] for c in copies if c["encrypted"])
    if not encrypted:
        return []
    return [f"snapshot(s) {', '.join(encrypted)} are encrypted: give copy_kms_key_id, a KMS key of {region} (a key "
            "cannot be used outside its region)"]


def copy_request(copy, source_region, kms_key_id):
    """CopyDBSnapshot / CopyDBClusterSnapshot parameters, sent to the DR region (boto3 signs the PreSignedUrl from
    SourceRegion)."""
    tags = [{"Key": k, "Value": v} for k, v in sorted(copy["tags"].items())]
    if copy["kind"] == CLUSTER:
        request = {"SourceDBClusterSnapshotIdentifier": copy["source_arn"],
                   "TargetDBClusterSnapshotIdentifier": copy["target_identifier"], "Tags": tags}
    else:
        request = {"SourceDBSnapshotIdentifier": copy["source_arn"],
                   "TargetDBSnapshotIdentifier": copy["target_identifier"], "Tags": tags}
    request["SourceRegion"] = source_region
    if kms_key_id:
        request["KmsKeyId"] = kms_key_id
    return request
