#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rds_restore_drill
short_description: Prove that an RDS or Aurora PostgreSQL backup restores, with its data, RTO and RPO
version_added: "0.1.0"
description:
  - Runs a whole restore drill in one task. It picks a recovery point of the source (the latest or a random snapshot,
    a named snapshot, or a point in time), restores it to a new, tagged instance (or an Aurora cluster plus one
    instance) that keeps the source's subnet group, VPC security groups, parameter group and option group, waits until
    it is available, validates the data with SQL checks, measures the RTO and RPO against objectives, and deletes what
    it created.
  - This module is imperative, like a drill. Every real run restores and deletes resources, so it reports
    RV(ignore:changed=true) each time; use O(state=sweep) to remove what a killed run left behind.
  - The source is never modified. Only describe and list calls name it; a point-in-time restore names the source by
    its resource id.
  - The source is exactly one resource. An empty or blank identifier, or one that matches nothing, fails before any
    change; an Aurora member instance given as O(db_instance_identifier) is refused with the cluster to give instead.
  - Cleanup runs in every outcome (failed validation, timeout, an error, and SIGTERM, SIGINT or SIGHUP, or the end of
    the process that started the module) unless O(cleanup) says otherwise. It deletes only resources this drill
    created, checked by identifier and by the C(dbre:drill-id) tag, with C(SkipFinalSnapshot) and
    C(DeleteAutomatedBackups), and waits until they are gone. When cleanup fails the task fails and names each
    resource left behind.
  - Restore, create and delete calls are sent once. On a throttle, a 5xx or a lost answer the module first describes
    the target, and sends the call again only when it did not take effect (RV(restore_request.outcome)).
  - Every resource a drill creates carries the tags C(dbre:drill-id), C(dbre:drill-expires), C(dbre:drill-started)
    and C(dbre:drill-owner) (host, process id and process start of the drill), so O(state=sweep) can find what a
    killed drill left behind.
  - Works with C(async) and C(poll); O(progress_log) receives one line per phase so a user can C(tail -f) it.
author:
  - dbre.rds maintainers (@dbre-rds)
options:
  state:
    description:
      - V(present) runs a drill.
      - V(sweep) deletes drill resources (DB instances, clusters and manual DB snapshots tagged C(dbre:drill-id) and
        C(dbre:drill-expires), and nothing else, such as the snapshot a killed M(dbre.rds.rds_upgrade_drill) left)
        whose drill's process is gone (C(dbre:drill-owner) names a process of this host that no longer runs), whose
        C(dbre:drill-expires) has passed, or that are older than O(sweep_older_than). A drill whose process still runs
        on this host is never swept. It needs no source.
    type: str
    default: present
    choices: [present, sweep]
  db_instance_identifier:
    description:
      - The source DB instance. Mutually exclusive with O(db_cluster_identifier).
    type: str
  db_cluster_identifier:
    description:
      - The source Aurora DB cluster. The drill restores the cluster, then creates one instance in it, since a
        restored cluster has none.
    type: str
  restore_from:
    description:
      - V(latest_snapshot) restores the newest available snapshot of type O(snapshot_type).
      - V(snapshot) restores O(snapshot_identifier).
      - V(point_in_time) restores to O(restore_time), or to the latest restorable time with
        O(use_latest_restorable_time=true).
      - V(random_snapshot) restores a snapshot chosen at random among those of type O(snapshot_type) created within
        O(selection_window_days), as AWS Backup restore testing's random selection does.
    type: str
    default: latest_snapshot
    choices: [latest_snapshot, snapshot, point_in_time, random_snapshot]
  snapshot_type:
    description:
      - Which snapshots V(latest_snapshot) and V(random_snapshot) choose from.
    type: str
    default: any
    choices: [automated, manual, any]
  snapshot_identifier:
    description:
      - Identifier or ARN of the snapshot (cluster snapshot for Aurora) of the source to restore, with
        O(restore_from=snapshot).
    type: str
  restore_time:
    description:
      - The point in time to restore to, ISO 8601 (for example V(2026-11-27T07:30:00Z)); without a zone it means UTC.
      - Must lie between the source's earliest and latest restorable times.
    type: str
  use_latest_restorable_time:
    description:
      - With O(restore_from=point_in_time), restore to the latest restorable time instead of O(restore_time).
    type: bool
    default: false
  selection_window_days:
    description:
      - Only snapshots created in the last this many days (1 to 365) are candidates for V(latest_snapshot) and
        V(random_snapshot). Without it every available snapshot is a candidate.
    type: int
  random_seed:
    description:
      - Seed for the random choice of V(random_snapshot), to repeat a drill exactly.
    type: int
  target_identifier:
    description:
      - Identifier of the restored instance (of the restored cluster for Aurora; its instance gets C(-writer) added).
      - Defaults to the source's identifier, C(-drill-), the UTC start time (C(YYYYmmddHHMMSS)) and six random hex
        digits from the drill id, so two drills of one source started in the same second do not collide.
    type: str
  db_instance_class:
    description:
      - Instance class of the restored instance. Defaults to the source's (the writer's, for Aurora).
    type: str
  ttl_hours:
    description:
      - Hours after the drill's start at which its resources count as expired (tag C(dbre:drill-expires)) for
        O(state=sweep). Greater than 0 and at most 8760 (a year).
    type: int
    default: 24
  tags:
    description:
      - More tags for every resource the drill creates, besides C(dbre:drill-id) and C(dbre:drill-expires).
    type: dict
  freshness_sql:
    description:
      - A query returning the newest timestamp in the data (for example C(SELECT max(created_at) FROM orders)). The
        drill reports it as RV(measurements.data_freshness), with its age and its lag behind the recovery point.
    type: str
  max_rto_seconds:
    description:
      - Recovery time objective. RV(rto_seconds) above it fails the verdict.
    type: float
  max_rpo_seconds:
    description:
      - Recovery point objective. RV(rpo_seconds) above it fails the verdict.
    type: float
  fail_on_breach:
    description:
      - Fail the task when the verdict is failed (a check, an objective, or the restore itself). The result and the
        report are attached either way.
      - When cleanup leaves something behind, or the drill cannot run at all, the task fails regardless.
    type: bool
    default: true
  cleanup:
    description:
      - V(always) deletes what the drill created in every outcome; V(on_success) keeps it for investigation when the
        verdict is failed (a later O(state=sweep) removes it after O(ttl_hours)); V(never) keeps it.
    type: str
    default: always
    choices: [always, on_success, never]
  cleanup_timeout:
    description:
      - Seconds cleanup waits for each deleted resource to be gone. Separate from O(wait_timeout), so a restore that
        used up its time is still cleaned up. Greater than 0 and at most 86400.
    type: int
    default: 1800
  sweep_older_than:
    description:
      - With O(state=sweep), also delete drill resources whose drill started more than this many hours ago (tag
        C(dbre:drill-started), else the creation time), even before they expire, for drills run on another host
        whose process the sweep cannot see.
    type: float
  progress_log:
    description:
      - Path of a file on the managed node to which the drill appends one line per phase and status change, for
        C(tail -f) while the task runs (with C(async) and C(poll) too).
    type: path
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
  - dbre.rds.wait
  - dbre.rds.db_connection
  - dbre.rds.report
  - dbre.rds.data_checks
attributes:
  check_mode:
    description: Describes the source, selects the recovery point and returns what would be created, with no
      mutating call.
    support: full
  diff_mode:
    description: Not supported; a drill creates and deletes resources rather than changing one.
    support: none
notes:
  - O(checks) run against the restored database.
  - O(wait_timeout) (at most 86400) covers the waiting after the restore request, until the restored database
    accepts a connection; O(cleanup_timeout) covers cleanup. RV(rto_seconds) still counts from the moment the request
    was sent.
  - O(login_user) defaults to the source's master user name. Checks and O(freshness_sql) need O(login_password) or
    O(iam_auth=true); without checks the drill measures the restore only and warns.
  - "IAM actions: C(rds:DescribeDBInstances), C(rds:DescribeDBClusters), C(rds:DescribeDBSnapshots),
    C(rds:DescribeDBClusterSnapshots), C(rds:DescribeDBInstanceAutomatedBackups), C(rds:ListTagsForResource),
    C(rds:RestoreDBInstanceFromDBSnapshot),
    C(rds:RestoreDBInstanceToPointInTime), C(rds:RestoreDBClusterFromSnapshot), C(rds:RestoreDBClusterToPointInTime),
    C(rds:CreateDBInstance), C(rds:AddTagsToResource), C(rds:DeleteDBInstance), C(rds:DeleteDBCluster), and
    C(rds-db:connect) with O(iam_auth=true). Restrict the delete actions with a condition on the
    C(dbre:drill-id) tag (C(aws:ResourceTag/dbre:drill-id))."
seealso:
  - module: amazon.aws.rds_instance_snapshot
  - module: amazon.aws.rds_snapshot_info
  - module: amazon.aws.rds_instance
  - module: amazon.aws.rds_cluster
  - module: community.postgresql.postgresql_query
  - name: AWS Backup restore testing
    description: The managed service this drill does in one task, with the validation included.
    link: https://docs.aws.amazon.com/aws-backup/latest/devguide/restore-testing.html
"""

EXAMPLES = r"""
- name: Restore the latest snapshot, check the data and the objectives, clean up
  dbre.rds.rds_restore_drill:
    db_instance_identifier: orders-prod
    login_password: "{{ orders_master_password }}"
    login_db: orders
    checks:
      - name: orders present
        sql: SELECT count(*) FROM orders
        expect:
          min: 1000000
      - name: schema version
        sql: SELECT version FROM schema_migrations ORDER BY version DESC LIMIT 1
        expect:
          equals: "20261101"
    freshness_sql: SELECT max(created_at) FROM orders
    max_rto_seconds: 1800
    max_rpo_seconds: 86400
    report_dir: /var/lib/dbre/reports
  register: orders_restore_drill

- name: Show the measured RTO and RPO
  ansible.builtin.debug:
    msg: "RTO {{ orders_restore_drill.rto_seconds }} s, RPO {{ orders_restore_drill.rpo_seconds }} s"

- name: See which snapshot a drill would restore and what it would create (no change)
  dbre.rds.rds_restore_drill:
    db_instance_identifier: orders-prod
    restore_from: random_snapshot
    snapshot_type: automated
    selection_window_days: 7
  check_mode: true

- name: Monthly drill from AWX, in the background, with a progress log and a JUnit report for the job
  dbre.rds.rds_restore_drill:
    db_instance_identifier: "{{ restore_drill_source }}"
    restore_from: point_in_time
    use_latest_restorable_time: true
    login_user: drill_reader
    iam_auth: true
    checks:
      - name: accounts readable
        sql: SELECT 1 FROM accounts LIMIT 1
        expect:
          rows: 1
    max_rto_seconds: "{{ restore_drill_max_rto_seconds | default(3600) }}"
    fail_on_breach: true
    progress_log: /tmp/restore_drill.log
    report_dir: "{{ restore_drill_report_dir | default('/tmp/restore-drill-reports') }}"
  async: 7200
  poll: 30

- name: Aurora cluster drill from a named cluster snapshot
  dbre.rds.rds_restore_drill:
    db_cluster_identifier: payments-aurora
    restore_from: snapshot
    snapshot_identifier: payments-before-migration
    login_password: "{{ payments_master_password }}"
    checks:
      - name: ledger balanced
        sql: SELECT sum(amount) FROM ledger
        expect:
          equals: 0

- name: Remove what killed drills left behind (their process is gone, or dbre:drill-expires has passed)
  dbre.rds.rds_restore_drill:
    state: sweep

- name: Remove drill resources older than two days, from drills run on other hosts too
  dbre.rds.rds_restore_drill:
    state: sweep
    sweep_older_than: 48
"""

RETURN = r"""
passed:
  description: The verdict. True when the restore became available, every check passed, every objective held and
    cleanup left nothing behind.
  returned: when O(state=present)
  type: bool
  sample: true
verdict:
  description: V(passed), V(failed), or V(planned) in check mode.
  returned: when O(state=present)
  type: str
  sample: passed
failure:
  description: What failed first (timeout, error, or the objectives that did not hold); null when it passed.
  returned: when O(state=present)
  type: str
  sample: "check: row count did not hold (observed 120, objective equals 100)"
drill_id:
  description: The value of the C(dbre:drill-id) tag on every resource the drill created.
  returned: when O(state=present)
  type: str
  sample: 20261127T073500Z-5f3a9c1e
source:
  description: The source's identifier and whether it is an Aurora cluster.
  returned: when O(state=present)
  type: dict
  sample: {"identifier": "orders-prod", "cluster": false}
target:
  description: Identifiers the drill creates (C(instance), and C(cluster) for Aurora).
  returned: when O(state=present)
  type: dict
  sample: {"instance": "orders-prod-drill-20261127073500-5f3a9c", "cluster": null}
recovery_point:
  description: The recovery point restored.
  returned: when O(state=present)
  type: dict
  contains:
    type:
      description: V(snapshot) or V(point_in_time).
      type: str
    selection:
      description: How it was chosen (the value of O(restore_from)).
      type: str
    snapshot_identifier:
      description: The snapshot restored.
      type: str
    snapshot_create_time:
      description: When that snapshot was created (ISO 8601 UTC).
      type: str
    restore_time:
      description: The requested point in time (ISO 8601 UTC).
      type: str
    use_latest_restorable_time:
      description: Whether the restore asked for the latest restorable time.
      type: bool
    time:
      description: The recovery point's time, from which RV(rpo_seconds) is measured.
      type: str
    candidates:
      description: How many snapshots were candidates.
      type: int
  sample: {"type": "snapshot", "selection": "latest_snapshot",
           "snapshot_identifier": "rds:orders-prod-2026-11-27-03-10",
           "snapshot_create_time": "2026-11-27T03:10:12.000Z", "time": "2026-11-27T03:10:12.000Z", "candidates": 7}
restore_request:
  description: The restore call made (or that would be made in check mode), with its parameters and how it went.
  returned: when O(state=present)
  type: dict
  contains:
    operation:
      description: The boto3 operation.
      type: str
    parameters:
      description: Its parameters.
      type: dict
    outcome:
      description: How the call went; null in check mode or when it was never sent.
      type: dict
      contains:
        attempts:
          description: Times the call was sent.
          type: int
        throttled:
          description: Attempts refused by throttling (sent again after the target was checked).
          type: int
        lost_answers:
          description: Attempts whose answer was lost (a read timeout, a dropped connection or a 5xx).
          type: int
        confirmed_by:
          description: V(answer) when AWS answered, else what showed that the call took effect (the target exists
            with this drill's tag).
          type: str
  sample: {"operation": "restore_db_instance_from_db_snapshot", "parameters": {"DBInstanceIdentifier": "x",
           "MultiAZ": false, "PubliclyAccessible": false, "DeletionProtection": false}}
instance_request:
  description: For Aurora, the C(create_db_instance) call adding the instance to the restored cluster, with its
    RV(restore_request.outcome) shaped outcome.
  returned: when O(db_cluster_identifier) is given
  type: dict
  sample: {"operation": "create_db_instance", "parameters": {"DBInstanceIdentifier": "x-writer"}}
would_create:
  description: In check mode, the resources a real run would create (and delete again).
  returned: in check mode
  type: list
  elements: dict
  sample: [{"kind": "instance", "identifier": "orders-prod-drill-20261127073500-5f3a9c"}]
rto_seconds:
  description: Seconds from the restore request to a validated database, on the drill's clock. Null when it never
    got there.
  returned: when O(state=present) and not in check mode
  type: float
  sample: 412.7
rpo_seconds:
  description: Seconds from the recovery point to the drill's start.
  returned: when O(state=present)
  type: float
  sample: 15780.2
checks:
  description: Result of each check.
  returned: when O(state=present) and not in check mode
  type: list
  elements: dict
  contains:
    name:
      description: The check's name.
      type: str
    sql:
      description: The query.
      type: str
    expect:
      description: The expectation, as text.
      type: str
    observed:
      description: The value observed (or row count for C(rows)).
      type: raw
    passed:
      description: Whether it held.
      type: bool
    message:
      description: Why it failed; null when it passed.
      type: str
measurements:
  description: Every figure of the drill. Times are ISO 8601 UTC, durations seconds.
  returned: when O(state=present) and not in check mode
  type: dict
  contains:
    rto_seconds:
      description: As RV(rto_seconds).
      type: float
    rpo_seconds:
      description: As RV(rpo_seconds).
      type: float
    recovery_point_time:
      description: The recovery point's time.
      type: str
    restore_requested_at:
      description: When the restore call was sent.
      type: str
    available_at:
      description: When the restored resource was first seen available.
      type: str
    validated_at:
      description: When the checks had finished.
      type: str
    restore_wait_seconds:
      description: Seconds from the restore request until it was seen available.
      type: float
    data_freshness:
      description: The newest timestamp O(freshness_sql) returned.
      type: str
    data_age_seconds:
      description: Seconds from RV(measurements.data_freshness) to the drill's start.
      type: float
    data_lag_behind_recovery_point_seconds:
      description: Seconds from RV(measurements.data_freshness) to the recovery point.
      type: float
    duration_seconds:
      description: The whole drill, cleanup included.
      type: float
    final_status:
      description: The last status seen of the restored instance.
      type: str
  sample: {"rto_seconds": 412.7, "rpo_seconds": 15780.2, "restore_wait_seconds": 398.1}
phases:
  description: Phase timings on the drill's clock (select, restore_request, wait_available, validation, cleanup; and
    create_instance for Aurora).
  returned: when O(state=present)
  type: list
  elements: dict
  sample: [{"name": "wait_available", "started_at": "2026-11-27T07:35:02.100Z",
            "finished_at": "2026-11-27T07:41:40.200Z", "seconds": 398.1, "outcome": "ok"}]
transitions:
  description: Status transitions of each restored resource, with times.
  returned: when O(state=present) and not in check mode
  type: dict
  sample: {"instance": [{"state": "creating", "at": "2026-11-27T07:35:02.300Z", "elapsed_seconds": 0.2},
                        {"state": "available", "at": "2026-11-27T07:41:40.200Z", "elapsed_seconds": 398.1}]}
cleanup:
  description: What cleanup did.
  returned: when O(state=present) and not in check mode
  type: dict
  contains:
    mode:
      description: The value of O(cleanup).
      type: str
    removed:
      description: Identifiers deleted and confirmed gone.
      type: list
      elements: str
    left_behind:
      description: Identifiers cleanup could not remove, each with the reason in RV(cleanup.steps).
      type: list
      elements: str
    kept:
      description: Identifiers kept on purpose (O(cleanup=never) or O(cleanup=on_success) after a failure).
      type: list
      elements: str
    steps:
      description: Each resource, the action taken and why.
      type: list
      elements: dict
report:
  description: The drill report (the shape of the shared report writer), the same that O(report_dir) receives.
  returned: when O(state=present) and not in check mode
  type: dict
report_files:
  description: Paths written under O(report_dir) (C(json), C(md), C(xml)).
  returned: when O(report_dir) is set and not in check mode
  type: dict
  sample: {"json": "/tmp/r/restore_drill-x-20261127T073500Z.json", "md": "/tmp/r/x.md", "xml": "/tmp/r/x.xml"}
interrupted_by:
  description: The signal (C(SIGTERM), C(SIGINT), C(SIGHUP)) that stopped the drill; cleanup still ran.
  returned: when a signal interrupted the drill
  type: str
  sample: SIGTERM
phase:
  description: The phase in which the drill stopped.
  returned: when the drill failed
  type: str
  sample: wait_available
problems:
  description: Every problem found in the options, when they were refused before any AWS call.
  returned: on invalid options
  type: list
  elements: str
removed:
  description: With O(state=sweep), the resources deleted (in check mode, that would be deleted), each with the
    reason (C(reason)).
  returned: when O(state=sweep)
  type: list
  elements: dict
  sample: [{"kind": "instance", "identifier": "orders-prod-drill-20261120073500", "drill_id": "x",
            "expires": "2026-11-21T07:35:00.000Z", "reason": "expired at 2026-11-21T07:35:00.000Z"}]
left_alone:
  description: With O(state=sweep), drill resources left alone and why (not expired, drill still running,
    protected, members).
  returned: when O(state=sweep)
  type: list
  elements: dict
  sample: [{"kind": "instance", "identifier": "orders-prod-drill-20261127073500", "reason": "not expired until x"}]
left_behind:
  description: With O(state=sweep), expired drill resources that could not be removed.
  returned: when O(state=sweep)
  type: list
  elements: str
  sample: []
"""

import random
import uuid

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.dbre.rds.plugins.module_utils import restore_drill as drill
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import CallNotConfirmed
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import call_once
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import once_client
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import rds_client
from ansible_collections.dbre.rds.plugins.module_utils.clock import DrillClock
from ansible_collections.dbre.rds.plugins.module_utils.clock import utc_iso
from ansible_collections.dbre.rds.plugins.module_utils.drill_log import DrillLog
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import report_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import DrillAborted
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import DrillFailure
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import DrillRuntime
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import aws_errors
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import owner_alive
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import owner_marker
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import connector_for
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import db_connection_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import endpoint_of
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import permanent_error
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import BROKEN_STATES
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import CLUSTER
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import INSTANCE
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import cluster_writer
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import describe
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import describe_cluster
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import describe_instance
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import delete_once
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import describe_resource
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import describe_snapshots
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import describe_tagged
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import paginate
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import standalone_instance_problem
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import status_of
from ansible_collections.dbre.rds.plugins.module_utils.waiting import WaitFailed
from ansible_collections.dbre.rds.plugins.module_utils.waiting import WaitTimeout
from ansible_collections.dbre.rds.plugins.module_utils.waiting import wait_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.waiting import wait_until
from ansible_collections.dbre.rds.plugins.module_utils.module_warnings import warn

# ---------------------------------------------------------------------------------------------------------- AWS I/O


def automated_backups(rds, identifier):
    """The instance's automated backups (their RestoreWindow); empty where the API is not available."""
    try:
        return paginate(rds, "describe_db_instance_automated_backups", "DBInstanceAutomatedBackups",
                        DBInstanceIdentifier=identifier)
    except is_boto3_error_code(["DBInstanceAutomatedBackupNotFound", "DBInstanceAutomatedBackupNotFoundFault",
                                "InvalidAction", "NotImplemented"]):
        return []


def ours(rds, kind, identifier, drill_id):
    """What shows that a create call of this drill took effect: the resource exists with this drill's tag."""
    found = describe(rds, kind, identifier, with_tags=True)
    if found is not None and drill.tags_of(found).get(drill.DRILL_ID_TAG) == drill_id:
        return f"{kind} {identifier} exists ({status_of(found)}) with {drill.DRILL_ID_TAG}={drill_id}"
    return None


def create_once(rds, once, kind, identifier, operation, request, drill_id, phase, what):
    """Send a restore or create call exactly once (throttles and lost answers are checked, not resent blindly)."""
    try:
        outcome = call_once(once, operation, request, lambda: ours(rds, kind, identifier, drill_id))
    except CallNotConfirmed as exc:
        raise DrillAborted(phase, f"{what}: {exc}: check the RDS console for {identifier}", cause=exc.cause)
    except aws_errors() as exc:
        raise DrillAborted(phase, f"{what}: {exc}", cause=exc)
    outcome.pop("response", None)
    return outcome


# ---------------------------------------------------------------------------------------------------------- the source


def read_source(module, rds, runtime):
    """The one source named by the options (instance or cluster), its writer for Aurora, and what selection needs:
    its snapshots, or its restorable window. Refused before any change when it does not exist or is the wrong kind."""
    params = module.params
    cluster_id = params["db_cluster_identifier"]
    source_id = runtime.target
    restore_from = params["restore_from"]
    writer, snapshots, backups = None, [], []
    try:
        if cluster_id:
            source = describe_cluster(rds, cluster_id)
            writer_id = cluster_writer(source)
            writer = describe_instance(rds, writer_id) if writer_id else None
        else:
            source = describe_instance(rds, source_id)
        if source is not None and restore_from != "point_in_time":
            snapshots = describe_snapshots(rds, CLUSTER if cluster_id else INSTANCE, source_id)
        if source is not None and restore_from == "point_in_time" and not cluster_id:
            backups = automated_backups(rds, source_id)
    except aws_errors() as e:
        module.fail_json_aws(e, msg=f"Describing the drill's source {source_id}: check the identifier, region and "
                                    "the describe permissions")
    if source is None:
        kind = "DB cluster" if cluster_id else "DB instance"
        runtime.refuse([f"describing the drill's source: no {kind} {source_id!r} exists in this region; check the "
                        "identifier and region"])
    problem = None if cluster_id else standalone_instance_problem(source_id, source)
    if problem:
        runtime.refuse([problem])
    protected = {source_id} | {m["DBInstanceIdentifier"] for m in source.get("DBClusterMembers") or []}
    return {"id": source_id, "cluster": bool(cluster_id), "described": source, "writer": writer,
            "snapshots": snapshots, "protected": protected,
            "window": drill.restorable_window(source, backups, runtime.clock.now())}


# ---------------------------------------------------------------------------------------------------------- the drill


def wait_for_status(module, rds, kind, identifier, log, deadline, phase, label):
    """Wait (through the shared helper) until the resource is available, within what is left of ``wait_timeout``."""
    try:
        outcome = wait_until(lambda: describe(rds, kind, identifier), lambda d: status_of(d) == "available",
                             timeout=max(0.0, deadline - log.clock.elapsed()), interval=module.params["poll_interval"],
                             phase=phase, state_of=status_of, failed=lambda d: status_of(d) in BROKEN_STATES,
                             clock=log.clock)
    except (WaitTimeout, WaitFailed) as exc:
        log.transitions(label, exc.transitions)
        raise
    log.transitions(label, outcome.transitions)
    return outcome


def connect(module, connector, log, deadline):
    """A first connection, retried within the time left while the database still refuses; not on bad credentials."""
    import psycopg2

    def attempt():
        try:
            return {"conn": connector.connect(), "error": None, "exc": None}
        except psycopg2.Error as exc:
            return {"conn": None, "error": str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc),
                    "exc": exc}

    outcome = wait_until(attempt, lambda r: r["conn"] is not None, timeout=max(0.0, deadline - log.clock.elapsed()),
                         interval=min(module.params["poll_interval"], 1.0), phase="connection to the restored database",
                         state_of=lambda r: "connected" if r["conn"] else "refused",
                         permanent=lambda r: permanent_error(r["exc"]), clock=log.clock)
    return outcome.value["conn"]


def query(conn, sql, one=False):
    """Rows of one query, or (None, the database's first line of error)."""
    import psycopg2

    try:
        with conn.cursor() as cursor:
            cursor.execute(sql)
            if one:
                return cursor.fetchone(), None
            return (cursor.fetchall() if cursor.description else []), None
    except psycopg2.Error as exc:
        return None, (str(exc).strip().splitlines() or [repr(exc)])[0]


def validate(module, rds, source, plan, described, log, result):
    """Run the checks and the freshness query on the restored database; fill ``result``. A query that fails is a
    failed check (the measurements so far are kept), not an error of the drill."""
    params = dict(module.params)
    params["login_user"] = params["login_user"] or source["described"].get("MasterUsername")
    connector = connector_for(module, params, endpoint=endpoint_of(described), rds=rds)
    try:
        conn = connect(module, connector, log, result["deadline"])
    except WaitFailed as exc:
        raise DrillAborted("validation", f"Connecting to the restored database {connector.target} as "
                                         f"{params['login_user']}: {getattr(exc, 'reason', None) or exc.last_value['error']}: check login_user, "
                                         "login_password or iam_auth, and login_db")
    log.event(phase="validation", message=f"connected to {connector.target}")
    try:
        for check in params["checks"]:
            rows, error = query(conn, check["sql"])
            outcome = drill.evaluate_check(check, rows, error)
            result["checks"].append(outcome)
            log.event(phase="validation",
                      message=f"check {check['name']}: {'passed' if outcome['passed'] else outcome['message']}")
        if params["freshness_sql"]:
            row, error = query(conn, params["freshness_sql"], one=True)
            try:
                measured = None if error else drill.freshness_measurements(
                    row[0] if row else None, plan["point"]["time"], log.clock.started_at)
            except ValueError as exc:
                error = str(exc)
            if error:
                result["checks"].append(drill.evaluate_check(
                    {"name": "freshness_sql", "sql": params["freshness_sql"], "expect": {"regex": "timestamp"}},
                    None, error))
                log.event(phase="validation", message=f"freshness_sql failed: {error}")
            else:
                result["measurements"].update(measured)
                log.event(phase="validation", message=f"data freshness {measured['data_freshness']}")
    finally:
        conn.close()


def run_drill(module, rds, once, runtime, source, plan, result):
    """Restore, wait, validate. Raises on timeout or error; ``result`` holds whatever was measured by then."""
    params, log = module.params, runtime.log
    measured = result["measurements"]
    main_kind = CLUSTER if source["cluster"] else INSTANCE
    runtime.enter("restore_request", f"{plan['operation']} -> {plan['target'][main_kind]}", timed=True)
    requested = log.clock.elapsed()
    measured["restore_requested_at"] = utc_iso(log.clock.at(requested))
    # Recorded before the call: if the answer is lost the resource may still exist, and cleanup checks its tags.
    result["created"].append({"kind": main_kind, "identifier": plan["target"][main_kind], "confirmed": False})
    result["restore_outcome"] = create_once(rds, once, main_kind, plan["target"][main_kind], plan["operation"],
                                            plan["request"], plan["drill_id"], "restore_request",
                                            f"Requesting the restore {plan['target'][main_kind]}")
    result["created"][-1]["confirmed"] = True
    # wait_timeout bounds the waiting that follows the request, through validation's first connection.
    sent = result["restore_outcome"]
    finished = log.finish("restore_request", message=f"restore_request ok after {sent['attempts']} attempt(s), "
                                                     f"confirmed by {sent['confirmed_by']}")
    result["deadline"] = finished + params["wait_timeout"]
    runtime.enter("wait_available", timed=True)
    try:
        if source["cluster"]:
            outcome = wait_for_status(module, rds, CLUSTER, plan["target"]["cluster"], log, result["deadline"],
                                      "restored cluster available", "cluster " + plan["target"]["cluster"])
            result["transitions"]["cluster"] = outcome.transitions
            runtime.enter("create_instance", f"create_db_instance -> {plan['target']['instance']}", timed=True)
            result["created"].append({"kind": INSTANCE, "identifier": plan["target"]["instance"], "confirmed": False})
            result["instance_outcome"] = create_once(rds, once, INSTANCE, plan["target"]["instance"],
                                                     "create_db_instance", plan["instance_request"], plan["drill_id"],
                                                     "create_instance", f"Adding instance {plan['target']['instance']}")
            result["created"][-1]["confirmed"] = True
            log.finish("create_instance")
            runtime.phase = "wait_available"
        outcome = wait_for_status(module, rds, INSTANCE, plan["target"]["instance"], log, result["deadline"],
                                  "restored instance available", "instance " + plan["target"]["instance"])
    except (WaitTimeout, WaitFailed) as exc:
        result["transitions"]["instance" if "instance" in exc.phase else "cluster"] = exc.transitions
        measured["final_status"] = status_of(exc.last_value)
        raise
    result["transitions"]["instance"] = outcome.transitions
    measured["final_status"] = status_of(outcome.value)
    measured["available"] = True
    available = log.finish("wait_available")
    measured["available_at"] = utc_iso(log.clock.at(available))
    measured["restore_wait_seconds"] = round(available - requested, 3)
    described = describe_cluster(rds, plan["target"]["cluster"]) if source["cluster"] else outcome.value
    runtime.enter("validation", timed=True)
    if params["checks"] or params["freshness_sql"]:
        validate(module, rds, source, plan, described, log, result)
    validated = log.finish("validation", "ok" if all(c["passed"] for c in result["checks"]) else "failed")
    measured["validated_at"] = utc_iso(log.clock.at(validated))
    measured["rto_seconds"] = drill.rto_seconds(requested, validated)


# ---------------------------------------------------------------------------------------------------------- cleanup


def wait_gone(module, rds, kind, identifier, log):
    outcome = wait_until(lambda: describe_resource(rds, kind, identifier), lambda d: d is None,
                         timeout=module.params["cleanup_timeout"], interval=module.params["poll_interval"],
                         phase=f"{kind} {identifier} deleted", state_of=status_of, clock=log.clock)
    log.transitions(f"{kind} {identifier}", outcome.transitions)


def remove(module, rds, once, steps, log):
    """Delete each step's resource (once) and wait until gone; (removed, left_behind)."""
    removed, left = [], []
    for step in steps:
        kind, identifier = step["kind"], step["identifier"]
        if step["action"] in ("gone", "not_ours"):
            continue
        if step["action"] == "refuse":
            left.append(identifier)
            log.event(phase="cleanup", message=f"left {kind} {identifier}: {step['reason']}")
            continue
        try:
            if step["action"] == "delete":
                delete_once(once, rds, kind, identifier, timeout=module.params["cleanup_timeout"],
                            interval=module.params["poll_interval"], clock=log.clock)
                log.event(phase="cleanup", message=f"delete requested: {kind} {identifier}")
            wait_gone(module, rds, kind, identifier, log)
        except aws_errors() + (CallNotConfirmed, WaitTimeout) as exc:
            step["reason"] = f"{kind} {identifier} could not be deleted: {exc}"
            left.append(identifier)
            log.event(phase="cleanup", message=step["reason"])
            continue
        removed.append(identifier)
        log.event(phase="cleanup", message=f"removed {kind} {identifier}")
    return removed, left


def clean_up(module, rds, once, runtime, source, plan, result, failure):
    """Delete what this drill created (cleanup=always), or keep it (never; on_success after a failed verdict)."""
    mode, log = module.params["cleanup"], runtime.log
    log.close_open("failed" if failure else "ok")
    passed = failure is None and all(row["held"] for row in drill.objectives(
        result["measurements"], result["checks"], module.params["max_rto_seconds"], module.params["max_rpo_seconds"]))
    created = result["created"]
    cleanup = result["cleanup"] = {"mode": mode, "removed": [], "left_behind": [], "kept": [], "steps": []}
    if not created:
        return
    if mode == "never" or (mode == "on_success" and not passed):
        cleanup["kept"] = [c["identifier"] for c in created]
        expires = plan["tags"][drill.DRILL_EXPIRES_TAG]
        log.event(phase="cleanup", message=f"kept for investigation until {expires}: " + ", ".join(cleanup["kept"]))
        return
    runtime.enter("cleanup", timed=True)
    try:
        described = {(c["kind"], c["identifier"]): describe(rds, c["kind"], c["identifier"], with_tags=True)
                     for c in created}
        cleanup["steps"] = drill.cleanup_plan(created, described, plan["drill_id"], source["protected"])
        cleanup["removed"], cleanup["left_behind"] = remove(module, rds, once, cleanup["steps"], runtime.log)
    except aws_errors() as exc:
        done = set(cleanup["removed"])
        cleanup["left_behind"] = [c["identifier"] for c in created if c["identifier"] not in done]
        cleanup["error"] = str(exc)
    log.finish("cleanup", "ok" if not cleanup["left_behind"] else "failed")


# ---------------------------------------------------------------------------------------------------------- sweep


def sweep(module, rds):
    """Delete drill resources (both drill tags, nothing else: instances, clusters and manual DB snapshots) whose
    drill's process is gone, whose TTL passed, or that are older than sweep_older_than."""
    params = module.params
    clock = DrillClock()
    log = DrillLog(clock, "rds_restore_drill", "sweep", None if module.check_mode else params["progress_log"])
    try:
        instances = describe_tagged(rds, INSTANCE, drill.DRILL_ID_TAG)
        clusters = describe_tagged(rds, CLUSTER, drill.DRILL_ID_TAG)
        snapshots = [s for s in paginate(rds, "describe_db_snapshots", "DBSnapshots", SnapshotType="manual")
                     if drill.DRILL_ID_TAG in drill.tags_of(s)]
    except aws_errors() as e:
        module.fail_json_aws(e, msg="Listing DB instances, clusters and manual snapshots to sweep drill resources: "
                                    "check the describe permissions and region")
    selection = drill.sweep_selection(instances, clusters, clock.now(), alive=owner_alive,
                                      older_than_hours=params["sweep_older_than"], snapshots=snapshots)
    result = {"changed": bool(selection["delete"]), "removed": selection["delete"], "left_alone": selection["skip"],
              "left_behind": []}
    if module.check_mode or not selection["delete"]:
        module.exit_json(**result)
    steps = [{"kind": d["kind"], "identifier": d["identifier"], "action": "delete", "reason": d["reason"]}
             for d in selection["delete"]]
    removed, left = remove(module, rds, once_client(module), steps, log)
    result["removed"] = [d for d in selection["delete"] if d["identifier"] in removed]
    result["left_behind"] = left
    if left:
        module.fail_json(msg="Sweeping drill resources left behind: " + ", ".join(left)
                             + ": delete them by hand or run the sweep again", **result)
    module.exit_json(**result)


# ---------------------------------------------------------------------------------------------------------- judge


def summaries(plan, result):
    """The restore (and create) requests as returned: parameters, and how each call went (call_once's outcome)."""
    restore = drill.request_summary(plan["operation"], plan["request"])
    restore["outcome"] = result.get("restore_outcome")
    instance = None
    if plan["instance_request"]:
        instance = drill.request_summary("create_db_instance", plan["instance_request"])
        instance["outcome"] = result.get("instance_outcome")
    return restore, instance


def judge(module, runtime, source, plan, result, failure):
    """Verdict, report and the task's result; (result, report, failure, breach) for runtime.exit."""
    params, log = module.params, runtime.log
    measured, cleanup = result["measurements"], result["cleanup"]
    table = drill.objectives(measured, result["checks"], params["max_rto_seconds"], params["max_rpo_seconds"],
                             cleanup)
    verdict = drill.first_failure(table, failure.message if failure else None)
    log.event(phase="verdict", message="drill passed" if verdict is None else f"drill failed: {verdict}")
    measured["duration_seconds"] = round(log.clock.elapsed(), 3)
    measurements = {k: v for k, v in measured.items() if k != "available"}
    restore, instance = summaries(plan, result)
    report = runtime.report(passed=verdict is None, objectives=table, measurements=measurements, failure=verdict,
                            details={"drill_id": plan["drill_id"], "source": source["id"],
                                     "recovery_point": plan["point"], "restore_request": restore,
                                     "instance_request": instance, "checks": result["checks"],
                                     "phases": log.phases, "transitions": result["transitions"],
                                     "cleanup": cleanup})
    output = dict(changed=True, passed=verdict is None, verdict="passed" if verdict is None else "failed",
                  failure=verdict, drill_id=plan["drill_id"],
                  source={"identifier": source["id"], "cluster": source["cluster"]}, target=plan["target"],
                  recovery_point=plan["point"], restore_request=restore, rto_seconds=measured.get("rto_seconds"),
                  rpo_seconds=measured.get("rpo_seconds"), checks=result["checks"], measurements=measurements,
                  phases=log.phases, transitions=result["transitions"], cleanup=cleanup)
    if instance:
        output["instance_request"] = instance
    summary = drill.cleanup_summary(cleanup)
    breach = None
    if cleanup and cleanup["left_behind"]:
        failure = DrillFailure(f"Restore drill of {source['id']} left behind: {', '.join(cleanup['left_behind'])}: "
                               "delete them by hand (see cleanup.steps for why) or run state=sweep", "cleanup",
                               interrupted=bool(failure and failure.interrupted))
    elif failure is not None:
        failure.message = f"{failure.message} ({summary})"
    elif verdict is not None:
        breach = f"Restore drill of {source['id']} failed: {verdict} ({summary})"
    return output, report, failure, breach


# ---------------------------------------------------------------------------------------------------------- main


def argument_spec():
    spec = dict(
        state=dict(type="str", default="present", choices=["present", "sweep"]),
        db_instance_identifier=dict(type="str"),
        db_cluster_identifier=dict(type="str"),
        restore_from=dict(type="str", default="latest_snapshot", choices=list(drill.RESTORE_FROM)),
        snapshot_type=dict(type="str", default="any", choices=list(drill.SNAPSHOT_TYPES)),
        snapshot_identifier=dict(type="str"),
        restore_time=dict(type="str"),
        use_latest_restorable_time=dict(type="bool", default=False),
        selection_window_days=dict(type="int"),
        random_seed=dict(type="int"),
        target_identifier=dict(type="str"),
        db_instance_class=dict(type="str"),
        ttl_hours=dict(type="int", default=24),
        tags=dict(type="dict"),
        checks=drill.checks_argument_spec(),
        freshness_sql=dict(type="str"),
        max_rto_seconds=dict(type="float"),
        max_rpo_seconds=dict(type="float"),
        fail_on_breach=dict(type="bool", default=True),
        cleanup=dict(type="str", default="always", choices=list(drill.CLEANUP_MODES)),
        cleanup_timeout=dict(type="int", default=1800),
        sweep_older_than=dict(type="float"),
        progress_log=dict(type="path"),
    )
    spec.update(wait_argument_spec())
    spec.update(db_connection_argument_spec())
    spec.update(report_argument_spec())
    return spec


def main():
    module = AnsibleAWSModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("db_instance_identifier", "db_cluster_identifier")],
        required_if=[("state", "present", ("db_instance_identifier", "db_cluster_identifier"), True),
                     ("restore_from", "snapshot", ("snapshot_identifier",))],
        supports_check_mode=True,
    )
    params = module.params
    problems = drill.problems(params)
    if problems:
        module.fail_json(msg="Invalid restore drill options: " + "; ".join(problems), problems=problems)
    rds = rds_client(module)
    if params["state"] == "sweep":
        sweep(module, rds)

    source_id = params["db_cluster_identifier"] or params["db_instance_identifier"]
    runtime = DrillRuntime(module, "restore_drill", source_id, f"Restore drill of {source_id}",
                           progress_log=None if module.check_mode else params["progress_log"])
    source = read_source(module, rds, runtime)
    started_at = runtime.clock.started_at
    drill_id = f"{started_at.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"
    runtime.enter("select", timed=True)
    try:
        plan = drill.plan_drill(params, source, started_at, drill_id, random.Random(params["random_seed"]),
                                owner=owner_marker())
    except drill.SelectionError as exc:
        runtime.refuse([f"selecting the recovery point of {source['id']}: {exc}"])
    point = plan["point"]
    runtime.log.finish("select", message=f"recovery point {point['snapshot_identifier'] or point['time']}")
    rpo = drill.rpo_seconds(plan["point"]["time"], started_at)
    if module.check_mode:
        restore, instance = summaries(plan, {})
        module.exit_json(changed=True, verdict="planned", drill_id=drill_id, source={"identifier": source["id"],
                         "cluster": source["cluster"]}, target=plan["target"], recovery_point=plan["point"],
                         rpo_seconds=rpo, restore_request=restore, would_create=plan["creates"],
                         phases=runtime.log.phases, **({"instance_request": instance} if instance else {}))
    if not (params["checks"] or params["freshness_sql"]):
        warn(module, "No checks and no freshness_sql: the drill proves the restore completes, not that the data "
                     "is there")

    result = {"created": [], "checks": [], "transitions": {}, "cleanup": None,
              "measurements": {"rpo_seconds": rpo, "recovery_point_time": plan["point"]["time"], "rto_seconds": None,
                               "final_status": None, "available": False}}
    once = once_client(module)
    failure = runtime.act(lambda: run_drill(module, rds, once, runtime, source, plan, result),
                          lambda failure: clean_up(module, rds, once, runtime, source, plan, result, failure))
    runtime.exit(*judge(module, runtime, source, plan, result, failure))


if __name__ == "__main__":
    main()
