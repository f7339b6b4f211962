#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rds_snapshot_retention
short_description: Retention of manual RDS and Aurora snapshots, with copies in a DR region
version_added: "0.2.0"
description:
  - Applies a retention policy to the manual snapshots of the selected DB instances and Aurora clusters. A manual
    snapshot is deleted only when it is older than O(retention_days) and no rule keeps it; every snapshot kept says
    why in RV(kept).
  - "A snapshot is kept, and the first of these reasons is reported, when it carries the O(keep_tag) (C(keep_tag)),
    it is among the newest O(keep_last) available snapshots of its source (C(newest)), its status is not
    C(available) (C(not_available)), a copy of it is in progress in O(copy_to_region) (C(being_copied)), a running
    restore drill restores it (C(restore_drill): a resource tagged C(dbre:drill-id) names it in its
    C(dbre:drill-snapshot) tag, or a drill of its source that names no snapshot is running), its source is in a
    blue/green deployment that is not finished (C(blue_green)), it is shared with another account (C(shared), read
    with C(DescribeDBSnapshotAttributes)), or it is younger than O(retention_days) (C(retention))."
  - Only manual snapshots of the selected sources are ever deleted, never automated snapshots, snapshots shared
    with this account by another one, or snapshots of resources outside the selection.
  - Deletions run O(batch_size) at a time (each C(DeleteDBSnapshot) sent once, surviving throttling and lost answers
    without ever being repeated blindly), and each batch is confirmed by a describe before the next. When a deletion
    fails the run stops there and fails, listing what was deleted (RV(deleted)), what failed and why
    (RV(not_deleted)) and what was not attempted (RV(remaining)); running it again continues.
  - The plan is made once, but just before each deletion the snapshot is described again with its tags and its
    sharing (and the running restore drills are read again once per batch); a snapshot that now carries the keep
    tag, is not available, is restored by a running drill, is shared, or (a DR copy) no longer carries this module's
    tags is kept with the reason C(changed_since_plan) instead of being deleted.
  - With O(copy_to_region), the newest O(copy_keep_last) snapshots the run keeps of each source are copied to that
    region (encrypted with O(copy_kms_key_id)), once each, and this module's older copies there are deleted once
    newer ones are available. Copies carry the tags C(dbre:managed-by), C(dbre:copy-of) (the source snapshot's ARN),
    C(dbre:copy-source) (the source's ARN) and C(dbre:copy-source-created), plus the source snapshot's own tags;
    snapshots in that region this module did not make are never touched.
  - Every option, the KMS key of the DR region and every planned copy are checked before the first change. Check
    mode reads everything and returns what a run would delete and copy, with the reason for each snapshot kept.
  - Running it twice changes nothing the second time.
author:
  - dbre.rds maintainers (@dbre-rds)
options:
  db_instance_identifiers:
    description:
      - The RDS DB instances whose manual snapshots the policy covers. Aurora members are refused (give their cluster
        in O(db_cluster_identifiers)).
      - Exactly one of O(db_instance_identifiers), O(db_cluster_identifiers), O(tags) and O(all) is required.
    type: list
    elements: str
  db_cluster_identifiers:
    description:
      - The Aurora DB clusters whose manual cluster snapshots the policy covers.
    type: list
    elements: str
  tags:
    description:
      - Select every standalone DB instance and every DB cluster carrying all these resource tags (a dict).
      - Selecting nothing is not an error; RV(selected) is then empty.
    type: dict
  all:
    description:
      - V(true) selects every standalone DB instance and every DB cluster of the region.
    type: bool
  retention_days:
    description:
      - Manual snapshots older than this many days may be deleted (when no other rule keeps them). At least 1; V(0)
        is refused since it would make every snapshot deletable at once.
    type: int
    required: true
  keep_last:
    description:
      - The newest this many available manual snapshots of each source are always kept, whatever their age, so a
        source never loses its last snapshot to the age rule. V(0) lets age alone decide.
    type: int
    default: 1
  keep_tag:
    description:
      - Snapshots carrying this tag (key and value) are never deleted, in the source region or the DR region.
      - When omitted, C(Permanent=true).
    type: dict
    suboptions:
      key:
        description: The tag key. Must not be empty.
        type: str
        default: Permanent
      value:
        description: The tag value; compared exactly.
        type: str
        default: "true"
  copy_to_region:
    description:
      - An AWS region other than the module's region where the newest O(copy_keep_last) kept snapshots of each source
        are copied, for disaster recovery.
      - Cannot be used with O(endpoint_url), because the clients of O(copy_to_region) would keep that endpoint, which
        serves only the module's region (for example a VPC interface endpoint).
    type: str
  copy_kms_key_id:
    description:
      - KMS key (key id, key ARN or C(alias/<name>)) of O(copy_to_region) that encrypts the copies. Required when a
        snapshot to copy is encrypted (a KMS key cannot be used outside its region); with it, unencrypted snapshots
        are encrypted by the copy too.
      - Checked to exist and be enabled in O(copy_to_region) before any change.
    type: str
  copy_keep_last:
    description:
      - How many of this module's copies of each source stay in O(copy_to_region); older ones are deleted once the
        newer ones are available.
    type: int
    default: 1
  batch_size:
    description:
      - How many C(DeleteDBSnapshot) calls are sent before the module describes the snapshots to confirm them and
        goes on (1 to 100).
    type: int
    default: 20
  wait:
    description:
      - Wait for the copies started by this run to become available (up to O(wait_timeout)), then delete this
        module's older copies in the same run.
      - With V(false) the copies are started and the older ones are deleted by a later run, once the new ones are
        available (cross-region copies of large snapshots can take hours).
    type: bool
    default: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
  - dbre.rds.wait
  - dbre.rds.report
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - "IAM actions: C(rds:DescribeDBInstances), C(rds:DescribeDBClusters), C(rds:DescribeDBSnapshots),
    C(rds:DescribeDBClusterSnapshots), C(rds:DescribeDBSnapshotAttributes),
    C(rds:DescribeDBClusterSnapshotAttributes), C(rds:DescribeBlueGreenDeployments), C(rds:DeleteDBSnapshot),
    C(rds:DeleteDBClusterSnapshot); with O(copy_to_region) also C(rds:CopyDBSnapshot), C(rds:CopyDBClusterSnapshot),
    C(rds:AddTagsToResource) and C(kms:DescribeKey), C(kms:CreateGrant) on O(copy_kms_key_id)."
  - When C(DescribeBlueGreenDeployments) is refused (any AWS error), the module fails before any change (allow
    C(rds:DescribeBlueGreenDeployments)). Only when botocore is too old to know the call does it go on, with a
    warning, keeping every snapshot of the selected sources (C(blue_green)).
  - Only copies in progress in O(copy_to_region) are seen; a copy to any other region does not keep its source.
  - Check mode writes no report files.
seealso:
  - module: amazon.aws.rds_instance_snapshot
  - module: amazon.aws.rds_cluster_snapshot
  - module: amazon.aws.rds_snapshot_info
  - module: dbre.rds.rds_restore_drill
  - name: Copying a DB snapshot
    description: Cross-region copies, KMS keys and their limits.
    link: https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_CopySnapshot.html
"""

EXAMPLES = r"""
- name: Keep 30 days of manual snapshots of two instances (the newest one always, Permanent=true forever)
  dbre.rds.rds_snapshot_retention:
    db_instance_identifiers: [orders-db, billing-db]
    retention_days: 30

- name: See what would be deleted and copied, and why every other snapshot stays
  dbre.rds.rds_snapshot_retention:
    tags:
      backup: daily
    retention_days: 14
    keep_last: 3
  check_mode: true
  register: retention_plan

- name: Show the snapshots that would go
  ansible.builtin.debug:
    msg: >-
      {{ retention_plan.deleted | map(attribute='identifier') | list }}
      ({{ retention_plan.storage_freed_gib }} GiB)

- name: Aurora clusters, copies of the newest two snapshots in the DR region, a report for the audit trail
  dbre.rds.rds_snapshot_retention:
    db_cluster_identifiers: [payments]
    retention_days: 35
    keep_tag:
      key: legal-hold
      value: "yes"
    copy_to_region: us-west-2
    copy_kms_key_id: alias/dr-snapshots
    copy_keep_last: 2
    report_dir: /var/log/dbre/retention
"""

RETURN = r"""
selected:
  description: The instances and clusters the policy covered.
  returned: always
  type: list
  elements: dict
  sample: [{"kind": "instance", "identifier": "orders-db"}]
deleted:
  description:
    - The snapshots deleted (in check mode, that a run would delete), oldest first, each with C(identifier), C(arn),
      C(kind), C(source), C(region), C(status), C(snapshot_create_time), C(age_days), C(allocated_storage) (GiB),
      C(encrypted) and C(reason).
    - DR copies deleted in O(copy_to_region) are listed too, with that region.
  returned: always
  type: list
  elements: dict
kept:
  description:
    - Every manual snapshot of the selected sources (and every DR copy of this module) that stays, with
      C(reason_code) (V(keep_tag), V(newest), V(not_available), V(being_copied), V(restore_drill), V(blue_green),
      V(shared), V(retention), V(changed_since_plan)) and C(reason) in words.
    - V(changed_since_plan) is a snapshot the plan would delete that, described again just before its deletion, now
      carries the keep tag, is no longer this module's DR copy, is not available, is restored by a running drill or
      is shared.
  returned: always
  type: list
  elements: dict
  sample: [{"identifier": "orders-2026-11-01", "reason_code": "keep_tag", "reason": "tagged Permanent=true"}]
copied:
  description:
    - The copies started in O(copy_to_region) (in check mode, that a run would start), each with
      C(source_identifier), C(source_arn), C(target_identifier), C(region), C(kind), C(source),
      C(snapshot_create_time), C(allocated_storage), C(encrypted) (of the source) and C(tags).
  returned: always
  type: list
  elements: dict
not_deleted:
  description: When a deletion failed, the snapshot and the error (C(error)); empty otherwise.
  returned: always
  type: list
  elements: dict
not_copied:
  description: When a copy could not be started, the copy and the error (C(error)); empty otherwise.
  returned: always
  type: list
  elements: dict
remaining:
  description: When a deletion failed, the snapshots that were to be deleted and were not attempted.
  returned: always
  type: list
  elements: dict
storage_freed_gib:
  description: Sum of the C(AllocatedStorage) of the deleted snapshots (in check mode, of those a run would delete).
  returned: always
  type: int
  sample: 340
ignored:
  description: Snapshots listed with a source but owned by another account, never touched.
  returned: always
  type: list
  elements: dict
report:
  description: The run as a report (title, times, measurements, details), the same as the files.
  returned: when report_dir is set and not in check mode
  type: dict
report_files:
  description: Paths of the report as C(json), C(md) and C(xml) (JUnit).
  returned: when report_dir is set and not in check mode
  type: dict
"""

import datetime

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.dbre.rds.plugins.module_utils import rds_resources
from ansible_collections.dbre.rds.plugins.module_utils import snapshot_retention as sr
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import CallNotConfirmed
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import aws_client
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import call_once
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import once_client
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import rds_client
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import report_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import report_name_problems
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import DrillRuntime
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import aws_errors
from ansible_collections.dbre.rds.plugins.module_utils.module_warnings import warn
from ansible_collections.dbre.rds.plugins.module_utils.waiting import WaitFailed
from ansible_collections.dbre.rds.plugins.module_utils.waiting import WaitTimeout
from ansible_collections.dbre.rds.plugins.module_utils.waiting import wait_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.waiting import wait_until

SELECTORS = ("db_instance_identifiers", "db_cluster_identifiers", "tags", "all")


def _unknown_operation_errors():
    """What a botocore too old to know an operation raises for it (the method or its model is missing)."""
    try:
        return (AttributeError, botocore.exceptions.OperationNotPageableError)
    except NameError:
        return (AttributeError,)


_UNKNOWN_OPERATION = _unknown_operation_errors()


def regional_clients(module, region):
    """(rds client with retries, rds client for call_once, kms client) in ``region``."""
    return (rds_client(module, region=region), once_client(module, region=region),
            aws_client(module, "kms", region=region))


# ------------------------------------------------------------------------------------------------------------ read

def check_copy_key(module, kms, key_id, region):
    """The ARN of ``key_id`` in ``region``; the module fails when it does not exist there or is not enabled."""
    if str(key_id).startswith("arn:") and str(key_id).split(":")[3:4] != [region]:
        module.fail_json(msg=f"copy_kms_key_id {key_id} is a key of another region: give a KMS key of {region}, "
                             "where the copies are made")
    try:
        metadata = kms.describe_key(KeyId=key_id, aws_retry=True)["KeyMetadata"]
    except is_boto3_error_code(["NotFoundException", "NotFound", "InvalidArnException"]):
        module.fail_json(msg=f"copy_kms_key_id {key_id} does not exist in {region}: give a key id, key ARN or "
                             f"alias/<name> of a KMS key of {region}")
    except aws_errors() as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Describing the KMS key {key_id} in {region} failed: allow kms:DescribeKey on it")
    if metadata.get("KeyState", "Enabled") != "Enabled" or metadata.get("Enabled") is False:
        module.fail_json(msg=f"copy_kms_key_id {key_id} in {region} is {metadata.get('KeyState')}, not Enabled: "
                             "enable it or give another key")
    return metadata["Arn"]


def select_sources(module, client, params):
    """[{"kind", "identifier", "arn"}] of the selection; fails naming every identifier that does not exist."""
    found, problems = [], []
    try:
        for option, kind in (("db_instance_identifiers", rds_resources.INSTANCE),
                             ("db_cluster_identifiers", rds_resources.CLUSTER)):
            for identifier in params.get(option) or []:
                described = rds_resources.describe(client, kind, identifier)
                if described is None:
                    what = "DB cluster" if kind == rds_resources.CLUSTER else "DB instance"
                    problems.append(f"{what} {identifier} does not exist in {module.region}: check the identifier "
                                    "and the region")
                    continue
                if kind == rds_resources.INSTANCE:
                    problem = rds_resources.standalone_instance_problem(identifier, described,
                                                                        "db_instance_identifiers item")
                    if problem:
                        problems.append(problem)
                        continue
                found.append((kind, described))
        for kind in (rds_resources.INSTANCE, rds_resources.CLUSTER):
            if params.get("tags"):
                found += [(kind, d) for d in rds_resources.describe_matching_tags(client, kind, params["tags"])]
            elif params.get("all"):
                found += [(kind, d) for d in rds_resources.describe_every(client, kind)]
    except aws_errors() as e:
        module.fail_json_aws(e, msg="Reading the instances and clusters to select failed: allow "
                                    "rds:DescribeDBInstances and rds:DescribeDBClusters and check the region")
    if problems:
        module.fail_json(msg="Invalid selection for rds_snapshot_retention: " + "; ".join(problems), changed=False)
    sources = []
    for kind, described in found:
        identifier = described.get("DBClusterIdentifier") if kind == rds_resources.CLUSTER \
            else described["DBInstanceIdentifier"]
        sources.append({"kind": kind, "identifier": identifier, "arn": rds_resources.arn_of(described)})
    return sources


def read_snapshots(module, client, sources, region):
    """Each source with its manual snapshots (``snapshots``), as the plan wants them."""
    try:
        return [dict(source, snapshots=rds_resources.describe_snapshots(client, source["kind"], source["identifier"],
                                                                        "manual"))
                for source in sources]
    except aws_errors() as e:
        module.fail_json_aws(e, msg=f"Describing the manual snapshots in {region} failed: allow "
                                    "rds:DescribeDBSnapshots and rds:DescribeDBClusterSnapshots")


def read_in_use(module, client, sources):
    """((drill uses, drills naming no snapshot), blue/green uses) of the region."""
    try:
        drills = []
        for kind in (rds_resources.INSTANCE, rds_resources.CLUSTER):
            drills += rds_resources.describe_tagged(client, kind, sr.DRILL_ID_TAG)
    except aws_errors() as e:
        module.fail_json_aws(e, msg="Looking for running restore drills failed: allow rds:DescribeDBInstances and "
                                    "rds:DescribeDBClusters")
    source_arns = [s["arn"] for s in sources]
    try:
        blue_green = sr.blue_green_uses(rds_resources.describe_blue_green_deployments(client), source_arns)
    except _UNKNOWN_OPERATION as e:
        # A botocore too old to know the call: nothing tells which source is in a deployment, so every snapshot stays.
        why = f"this botocore does not know DescribeBlueGreenDeployments ({type(e).__name__})"
        warn(module, f"Could not describe the blue/green deployments: {why}; no snapshot of the selected sources is "
                     "deleted in this run: upgrade botocore (and boto3)")
        blue_green = sr.blue_green_unknown(source_arns, why)
    except aws_errors() as e:
        module.fail_json_aws(e, msg="Describing the blue/green deployments failed, so it is unknown which sources "
                                    "one holds; nothing was changed: allow rds:DescribeBlueGreenDeployments")
    return (sr.drill_uses(drills), sr.drills_without_snapshot(drills)), blue_green


def read_sharing(module, client, entries):
    """{snapshot ARN: [accounts]} of the snapshots the plan would delete."""
    shared = {}
    for entry in entries:
        try:
            attributes = rds_resources.describe_snapshot_attributes(client, entry["kind"], entry["identifier"])
        except aws_errors() as e:
            module.fail_json_aws(e, msg=f"Reading who snapshot {entry['identifier']} is shared with failed: allow "
                                        "rds:DescribeDBSnapshotAttributes (rds:DescribeDBClusterSnapshotAttributes)")
        shared[entry["arn"]] = sr.shared_accounts(attributes)
    return shared


def read_dr_snapshots(module, client, sources, region):
    """{source ARN: [manual snapshots of that source identifier in the DR region]}."""
    try:
        return {s["arn"]: rds_resources.describe_snapshots(client, s["kind"], s["identifier"], "manual")
                for s in sources}
    except aws_errors() as e:
        module.fail_json_aws(e, msg=f"Describing the snapshots in {region} failed: allow rds:DescribeDBSnapshots "
                                    f"and rds:DescribeDBClusterSnapshots in {region}")


def plan_run(module, rds, sources, params, now, dr=None):
    """The retention plan of the source region and the copy plan of the DR region, with every problem."""
    region, copy_region = module.region, params["copy_to_region"]
    keep_tag = params["keep_tag"]
    (drills, drill_sources), blue_green = read_in_use(module, rds, sources)
    dr_snapshots = read_dr_snapshots(module, dr, sources, copy_region) if dr is not None else {}
    copying = {}
    for snapshots in dr_snapshots.values():
        copying.update(sr.copies_in_progress(snapshots, copy_region))
    options = dict(now=now, retention_days=params["retention_days"], keep_last=params["keep_last"],
                   keep_tag=keep_tag, region=region, drills=drills, drill_sources=drill_sources,
                   blue_green=blue_green, copying=copying)
    plan = sr.plan_retention(sources, shared={}, **options)
    if plan["check_sharing"]:
        plan = sr.plan_retention(sources, shared=read_sharing(module, rds, plan["check_sharing"]), **options)
    dr_plan = {"copy": [], "delete": [], "keep": [], "conflicts": []}
    if dr is not None:
        kept_ids = {(e["source"], e["identifier"]) for e in plan["keep"]}
        for source in sources:
            kept = [s for s in source["snapshots"] if (source["identifier"], sr.snapshot_id(s)) in kept_ids]
            one = sr.plan_copies(source, kept, dr_snapshots[source["arn"]], copy_keep_last=params["copy_keep_last"],
                                 region=copy_region, keep_tag=keep_tag, now=now, assume_copies_done=params["wait"])
            for key in dr_plan:
                dr_plan[key] += one[key]
    return plan, dr_plan


# ------------------------------------------------------------------------------------------------------------- act

def _gone(client, entry):
    """What shows a deletion took effect (the snapshot is gone or deleting), or None."""
    described = rds_resources.describe_snapshot(client, entry["kind"], entry["identifier"])
    if described is None:
        return "snapshot gone"
    return "status deleting" if described.get("Status") == "deleting" else None


def read_drills(client):
    """(drill uses, drills naming no snapshot) of the running restore drills the client's region holds."""
    drills = []
    for kind in (rds_resources.INSTANCE, rds_resources.CLUSTER):
        drills += rds_resources.describe_tagged(client, kind, sr.DRILL_ID_TAG)
    return sr.drill_uses(drills), sr.drills_without_snapshot(drills)


def recheck(client, entry, keep_tag, drills, copy_source_arn=None):
    """Why ``entry`` must now be kept, from the snapshot, its tags and its sharing read again (None: it may go)."""
    described = rds_resources.describe_snapshot(client, entry["kind"], entry["identifier"])
    options = dict(keep_tag=keep_tag, drills=drills[0], drill_sources=drills[1], copy_source_arn=copy_source_arn)
    why = sr.recheck_reason(entry, described, **options)
    if why is None:
        attributes = rds_resources.describe_snapshot_attributes(client, entry["kind"], entry["identifier"])
        why = sr.recheck_reason(entry, described, shared=sr.shared_accounts(attributes), **options)
    return why


def delete_in_batches(client, once, entries, batch_size, outcome, keep_tag=None, copy_sources=None):
    """Delete ``entries`` ``batch_size`` at a time, each call sent once, each batch confirmed by describes.

    With ``keep_tag``, the running drills are read again once per batch and each snapshot is described again (with
    its tags and sharing) just before its deletion; one that must now stay goes to ``outcome["kept"]`` with reason
    code ``changed_since_plan``. ``copy_sources`` ({source identifier: source ARN}) marks ``entries`` as DR copies
    that must still carry this module's tags.

    Adds to ``outcome["deleted"]``; at the first failure adds ``not_deleted`` (with the error) and ``remaining`` (not
    attempted) and returns the exception; None when every deletion went through.
    """
    queue = list(entries)
    for batch in sr.batches(entries, batch_size):
        sent, error = [], None
        drills = None
        for entry in batch:
            queue.remove(entry)
            cluster = entry["kind"] == rds_resources.CLUSTER
            operation = "delete_db_cluster_snapshot" if cluster else "delete_db_snapshot"
            request = {"DBClusterSnapshotIdentifier" if cluster else "DBSnapshotIdentifier": entry["identifier"]}
            try:
                if keep_tag is not None:
                    drills = drills if drills is not None else read_drills(client)
                    copy_source_arn = copy_sources.get(entry["source"], "") if copy_sources is not None else None
                    why = recheck(client, entry, keep_tag, drills, copy_source_arn)
                    if why is not None:
                        outcome.setdefault("kept", []).append(dict(entry, reason_code="changed_since_plan",
                                                                   reason=f"changed since the plan: {why}"))
                        continue
                call_once(once, operation, request, lambda entry=entry: _gone(client, entry))
            except (CallNotConfirmed,) + aws_errors() as e:
                outcome["not_deleted"].append(dict(entry, error=_error_text(e)))
                error = e
                break
            sent.append(entry)
        error = _confirm(client, sent, outcome) or error
        if error is not None:
            outcome["remaining"] += queue
            return error
    return None


def _confirm(client, sent, outcome):
    """Describe each snapshot whose deletion was answered: gone or deleting is deleted; anything else is not."""
    error = None
    for entry in sent:
        try:
            seen = _gone(client, entry)
        except aws_errors() as e:
            seen, error = None, e
        if seen:
            outcome["deleted"].append(entry)
        else:
            outcome["not_deleted"].append(dict(entry, error="still described after its deletion was answered"))
            error = error or RuntimeError(f"snapshot {entry['identifier']} is still there after its deletion")
    return error


def _error_text(exc):
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code')}: {error.get('Message')}"
    return str(exc)


def start_copies(dr, dr_once, copies, source_region, kms_key_arn, outcome):
    """Start every copy once; returns the exception of the first one that failed (None when all started)."""
    for copy in copies:
        cluster = copy["kind"] == rds_resources.CLUSTER
        operation = "copy_db_cluster_snapshot" if cluster else "copy_db_snapshot"

        def took_effect(copy=copy):
            found = rds_resources.describe_snapshot(dr, copy["kind"], copy["target_identifier"])
            return f"{copy['target_identifier']} exists" if found else None

        try:
            call_once(dr_once, operation, sr.copy_request(copy, source_region, kms_key_arn), took_effect)
        except (CallNotConfirmed,) + aws_errors() as e:
            outcome["not_copied"].append(dict(copy, error=_error_text(e)))
            return e
        outcome["copied"].append(copy)
    return None


def wait_for_copies(module, dr, copies):
    def fetch():
        return {c["target_identifier"]: rds_resources.status_of(
            rds_resources.describe_snapshot(dr, c["kind"], c["target_identifier"])) for c in copies}

    wait_until(fetch, lambda statuses: all(s == "available" for s in statuses.values()),
               timeout=module.params["wait_timeout"], interval=module.params["poll_interval"],
               phase=f"waiting for the copies in {module.params['copy_to_region']}",
               state_of=lambda statuses: ",".join(f"{k}={v}" for k, v in sorted(statuses.items())),
               failed=lambda statuses: any(s in ("gone", "failed") for s in statuses.values()))


# ---------------------------------------------------------------------------------------------------------- result

def build_result(module, sources, plan, dr_plan, outcome, check_mode):
    deleted = outcome["deleted"] if not check_mode else plan["delete"] + dr_plan["delete"]
    copied = outcome["copied"] if not check_mode else dr_plan["copy"]
    return dict(
        changed=bool(deleted or copied or outcome["not_deleted"] or outcome["not_copied"]) if not check_mode
        else bool(deleted or copied),
        selected=[{"kind": s["kind"], "identifier": s["identifier"]} for s in sources],
        deleted=deleted,
        kept=plan["keep"] + dr_plan["keep"] + outcome.get("kept", []),
        copied=copied,
        not_deleted=outcome["not_deleted"],
        not_copied=outcome["not_copied"],
        remaining=outcome["remaining"],
        ignored=plan["ignored"],
        storage_freed_gib=sr.storage_gib(deleted),
    )


def write_report(module, runtime, result, failure):
    if not module.params.get("report_dir") or module.check_mode:
        return result
    measurements = dict(deleted=len(result["deleted"]), kept=len(result["kept"]), copied=len(result["copied"]),
                        not_deleted=len(result["not_deleted"]), remaining=len(result["remaining"]),
                        storage_freed_gib=result["storage_freed_gib"],
                        duration_seconds=round(runtime.clock.elapsed(), 3))
    objectives = [{"name": "every planned deletion done", "objective": 0, "observed": len(result["not_deleted"]) +
                   len(result["remaining"]), "unit": "snapshots left", "held": not result["not_deleted"]
                   and not result["remaining"]},
                  {"name": "every planned copy started", "objective": 0, "observed": len(result["not_copied"]),
                   "unit": "copies", "held": not result["not_copied"]}]
    details = {key: result[key] for key in ("selected", "deleted", "kept", "copied", "not_deleted", "not_copied",
                                            "remaining", "ignored")}
    report = runtime.report(passed=failure is None, objectives=objectives, measurements=measurements,
                            timeline=[], details=details, failure=failure)
    return runtime.write(report, result)


def main():
    argument_spec = dict(
        db_instance_identifiers=dict(type="list", elements="str"),
        db_cluster_identifiers=dict(type="list", elements="str"),
        tags=dict(type="dict"),
        all=dict(type="bool"),
        retention_days=dict(type="int", required=True),
        keep_last=dict(type="int", default=1),
        keep_tag=dict(type="dict", apply_defaults=True, options=dict(
            key=dict(type="str", default="Permanent", no_log=False),
            value=dict(type="str", default="true"),
        )),
        copy_to_region=dict(type="str"),
        copy_kms_key_id=dict(type="str", no_log=False),
        copy_keep_last=dict(type="int", default=1),
        batch_size=dict(type="int", default=20),
        wait=dict(type="bool", default=True),
    )
    argument_spec.update(wait_argument_spec())
    argument_spec.update(report_argument_spec())
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True,
                              mutually_exclusive=[SELECTORS], required_one_of=[SELECTORS])
    params = module.params
    problems = sr.option_problems(params, module.region) + report_name_problems(params["report_name"])
    if problems:
        module.fail_json(msg="Invalid options for rds_snapshot_retention: " + "; ".join(problems), changed=False)
    region, copy_region = module.region, params["copy_to_region"]
    rds, once = rds_client(module), once_client(module)
    dr = dr_once = kms_key_arn = None
    if copy_region:
        dr, dr_once, kms = regional_clients(module, copy_region)
        if params["copy_kms_key_id"]:
            kms_key_arn = check_copy_key(module, kms, params["copy_kms_key_id"], copy_region)
    runtime = DrillRuntime(module, "snapshot_retention", region, f"Snapshot retention in {region}",
                           watch_parent=False)
    now = datetime.datetime.now(datetime.timezone.utc)

    sources = read_snapshots(module, rds, select_sources(module, rds, params), region)
    plan, dr_plan = plan_run(module, rds, sources, params, now, dr)
    problems = dr_plan["conflicts"] + sr.copy_key_problems(dr_plan["copy"], kms_key_arn, copy_region)
    if problems:
        module.fail_json(msg="rds_snapshot_retention refused before any change: " + "; ".join(problems),
                         changed=False)

    outcome = dict(deleted=[], not_deleted=[], remaining=[], copied=[], not_copied=[], kept=[])
    failure, error = None, None
    if not module.check_mode:
        error = start_copies(dr, dr_once, dr_plan["copy"], region, kms_key_arn, outcome) if dr_plan["copy"] else None
        if error is not None:
            failure = (f"Copying snapshot {outcome['not_copied'][0]['source_identifier']} to {copy_region} failed "
                       f"after {len(outcome['copied'])} copies started; nothing was deleted: fix the cause (key "
                       "grants, quotas) and run again")
        if failure is None:
            error = delete_in_batches(rds, once, plan["delete"], params["batch_size"], outcome,
                                      keep_tag=params["keep_tag"])
            if error is not None:
                failed = outcome["not_deleted"][0]
                failure = (f"Deleting snapshot {failed['identifier']} of {failed['source']} failed "
                           f"({failed['error']}) after {len(outcome['deleted'])} of {len(plan['delete'])} deletions: "
                           f"the deleted ones are listed in deleted, {len(outcome['remaining'])} were not attempted "
                           "(remaining); fix the cause and run the module again to continue")
        if failure is None and dr is not None:
            dr_delete = dr_plan["delete"]
            if params["wait"] and outcome["copied"]:
                try:
                    wait_for_copies(module, dr, outcome["copied"])
                except (WaitTimeout, WaitFailed) as e:
                    warn(module, f"{e}: the older copies in {copy_region} are left for the next run")
                    dr_delete = []
                except aws_errors() as e:
                    module.fail_json_aws(e, msg=f"Waiting for the copies in {copy_region} failed: the copies were "
                                                "started and nothing is lost; run again later",
                                         **build_result(module, sources, plan, dr_plan, outcome, False))
            error = delete_in_batches(dr, dr_once, dr_delete, params["batch_size"], outcome,
                                      keep_tag=params["keep_tag"],
                                      copy_sources={s["identifier"]: s["arn"] for s in sources})
            if error is not None:
                failed = outcome["not_deleted"][0]
                failure = (f"Deleting the old DR copy {failed['identifier']} in {copy_region} failed "
                           f"({failed['error']}): fix the cause and run the module again to continue")
    result = build_result(module, sources, plan, dr_plan, outcome, module.check_mode)
    write_report(module, runtime, result, failure)
    if failure is not None:
        if isinstance(error, botocore.exceptions.ClientError):
            module.fail_json_aws(error, msg=failure, **result)
        module.fail_json(msg=failure, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
