#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rds_dr_drill
short_description: Rehearse, switch over or fail over to the DR region of an RDS or Aurora PostgreSQL database
version_added: "0.2.0"
description:
  - Runs a disaster recovery drill in one task and measures what it costs in time (RTO) and in data (RPO), as clients
    see it, against objectives.
  - O(mode=rehearsal) (the default, safe for production) creates a temporary cross-region read replica of a DB
    instance in O(dr_region), waits until it has caught up, promotes it, runs the SQL O(checks) on the promoted copy,
    measures the RTO (from the promotion request until the copy accepts a write) and the lag before it, and always
    deletes the replica (also after a failed check, a timeout or an interrupt). No mutating call targets the
    production primary or its real DR replica; the primary is named only as the source of the new replica.
  - O(mode=switchover) moves the writer of an Aurora Global Database to a secondary region with
    C(SwitchoverGlobalCluster) (planned, no data loss) and, with O(switch_back=true), back again. Write probes
    against the global writer (they follow whichever cluster is the writer) measure the write downtime clients see,
    the acknowledged writes lost (must be 0) and the time until the old primary is a healthy secondary.
  - O(mode=failover) is a real disaster or a drill that accepts data loss. It promotes the DR read replica
    (O(dr_instance_identifier), C(PromoteReadReplica)) or fails the global database over with
    C(FailoverGlobalCluster) and C(AllowDataLoss). The RPO is the acknowledged probe writes missing on the new writer
    (count and time span), with the replication lag read just before; the RTO is the time until clients can write at
    the new endpoint. The probes move to the new writer with the request, as clients told of a disaster do.
  - A global failover works when the writer's region does not answer. The writer cluster that cannot be read is a
    warning, not a refusal (then without write probes and without lost-write counting), the global cluster's and
    the writer's status are not required to be available, and C(FailoverGlobalCluster) and every describe that
    follows it go to the target's region. The global cluster itself is read in the module's region, so run a failover
    with O(region) set to a region that answers, such as the target's.
  - With O(dns_record) and O(hosted_zone_id) (switchover and failover) the module points a CNAME at the new writer's
    endpoint and waits until Route 53 reports it C(INSYNC); that time is part of the RTO. With O(notify_topic_arn) it
    publishes the verdict to an SNS topic.
  - Pre-checks list every problem before anything changes, among them unknown identifiers, a DR copy in the
    primary's region, a mode the topology cannot do, a DR copy that is not available, replication lag above
    O(max_lag_seconds), CloudWatch alarms of O(abort_if_alarms) in ALARM, a hosted zone or SNS topic that does not
    exist, a probe table the module does not own. Check mode runs them and returns the plan.
  - This module is imperative, like a drill; a real run reports RV(ignore:changed=true). Mutating calls (create,
    promote, switchover, failover, delete) are sent once; on a throttle or a lost answer the module first checks
    whether the call took effect.
  - The rehearsal's replica carries the tags C(dbre:drill-id), C(dbre:drill-expires), C(dbre:drill-started) and
    C(dbre:drill-owner) like M(dbre.rds.rds_restore_drill)'s resources, and cleanup deletes it only while it carries
    this drill's id, so M(dbre.rds.rds_restore_drill) with O(dbre.rds.rds_restore_drill#module:state=sweep) removes
    what a killed run left behind.
author:
  - dbre.rds maintainers (@dbre-rds)
options:
  mode:
    description:
      - V(rehearsal) promotes a temporary cross-region copy and deletes it; nothing that existed before changes.
      - V(switchover) switches an Aurora Global Database's writer to the secondary region without data loss.
      - V(failover) promotes the DR copy at once, accepting the loss of what it had not replayed.
    type: str
    default: rehearsal
    choices: [rehearsal, switchover, failover]
  db_instance_identifier:
    description:
      - The production primary DB instance, in the module's region. Needed for O(mode=rehearsal); with
        O(mode=failover) the probes write to it until the DR replica is promoted.
      - Mutually exclusive with O(global_cluster_identifier).
    type: str
  dr_region:
    description:
      - The DR region. With O(mode=rehearsal), where the temporary replica is created; with
        O(dr_instance_identifier), the region of that replica. Must differ from the module's region.
    type: str
  dr_instance_identifier:
    description:
      - The real cross-region DR read replica of O(db_instance_identifier), in O(dr_region).
      - O(mode=failover) promotes it. O(mode=rehearsal) never changes it; it only reads its state and lag for the
        pre-checks.
    type: str
  global_cluster_identifier:
    description:
      - The Aurora Global Database to switch over or fail over.
    type: str
  target_db_cluster_identifier:
    description:
      - The secondary cluster (identifier or ARN) that becomes the writer. Defaults to the global database's only
        secondary.
    type: str
  switch_back:
    description:
      - With O(mode=switchover), switch back to the original primary once the switchover is measured, and measure
        that too.
    type: bool
    default: false
  replica_identifier:
    description:
      - With O(mode=rehearsal), the identifier of the temporary replica. Defaults to the primary's identifier,
        C(-dr-drill-), the UTC start time and six hex digits of the drill id.
      - When an instance of that name exists in O(dr_region), the rehearsal uses it instead of creating one, but only
        if a dbre.rds drill created it (it carries the C(dbre:drill-id) tag), that drill is dead (its
        C(dbre:drill-expires) is past, or its C(dbre:drill-owner) process is gone on this host), it replicates the
        primary and it is available. It is then re-tagged with this drill's id, expiry and owner
        (C(AddTagsToResource), sent once) before it is promoted, and deleted only while it carries this drill's id.
        Any other existing instance of that name, a live drill's replica included, is refused.
    type: str
  db_instance_class:
    description:
      - With O(mode=rehearsal), the class of the temporary replica. Defaults to the primary's.
    type: str
  db_subnet_group_name:
    description:
      - With O(mode=rehearsal), the DB subnet group in O(dr_region) of the temporary replica (a region without a
        default VPC needs one).
      - Defaults to the subnet group of the real DR replica (O(dr_instance_identifier)) when it is named, so the
        drill's SQL reaches the copy as it reaches the real replica; else RDS's default.
    type: str
  vpc_security_group_ids:
    description:
      - With O(mode=rehearsal), the VPC security groups (C(sg-...) ids in O(dr_region)) of the temporary replica.
      - Defaults to the active security groups of the real DR replica (O(dr_instance_identifier)) when it is named;
        else RDS's default.
    type: list
    elements: str
  ttl_hours:
    description:
      - Hours after the start at which the rehearsal's replica counts as expired (tag C(dbre:drill-expires)).
    type: int
    default: 24
  tags:
    description:
      - More tags for the rehearsal's replica, besides the drill tags.
    type: dict
  max_lag_seconds:
    description:
      - Pre-check on the DR copy's replication lag now, in seconds (from SQL with credentials, else CloudWatch's
        C(ReplicaLag) or C(AuroraGlobalDBReplicationLag)). An unknown lag refuses all but O(mode=failover).
      - Raise it for a failover that is meant to lose data.
    type: float
    default: 60.0
  abort_if_alarms:
    description:
      - CloudWatch alarms (in the module's region) that must exist and must not be in C(ALARM) for the drill to
        start, as in M(dbre.rds.rds_failover_test).
    type: list
    elements: str
    default: []
  max_rto_seconds:
    description:
      - Recovery time objective. RV(rto_seconds) above it fails the verdict.
      - This and the other C(max_*) objectives must be finite and not negative (V(nan) and V(inf) are refused).
    type: float
  max_rpo_seconds:
    description:
      - Recovery point objective (switchover and failover). RV(rpo_seconds), the time span of the lost acknowledged
        writes, above it fails the verdict. When set, a failover is judged by it instead of O(max_lost_writes).
    type: float
  probe:
    description:
      - Whether to write probes to the writer during a switchover or failover. When not set, the module probes if
        O(login_password) or O(iam_auth=true) is given. A rehearsal never writes to the primary.
    type: bool
  probe_interval:
    description:
      - Seconds between two probe writes, and between two looks at whether the new writer accepts a write. It sets
        the resolution of the RTO and of the downtime.
    type: float
    default: 0.25
  probe_timeout:
    description:
      - Seconds a probe waits to connect and for its statement.
    type: int
    default: 2
  probe_settle_seconds:
    description:
      - After the new writer accepts writes, how many seconds the probes must succeed before the drill goes on.
    type: float
    default: 2.0
  probe_baseline_seconds:
    description:
      - Seconds the probes write before the switchover or failover is requested, after the probe table exists, so
        the DR copy has the table and the writes before the request can be counted.
    type: float
    default: 1.0
  probe_table:
    description:
      - Table the write probes insert into, created (marked with the drill's id) and dropped by the drill. A table of
        that name the module did not create is refused before any change.
    type: str
    default: dbre_rds_dr_probe
  max_downtime_seconds:
    description:
      - Objective for the write downtime the probes observe, in seconds.
    type: float
  max_lost_writes:
    description:
      - Objective for acknowledged writes missing on the new writer. Always 0 with O(mode=switchover).
    type: int
    default: 0
  dns_record:
    description:
      - A DNS name (in O(hosted_zone_id)) that clients use for the writer; after a switchover or failover it is
        pointed (CNAME, C(UPSERT)) at the new writer's endpoint, and after O(switch_back) back again.
      - It must be a name inside the zone, not the zone apex (Route 53 refuses a CNAME there); the pre-checks
        refuse the apex before any change.
    type: str
  hosted_zone_id:
    description:
      - The Route 53 hosted zone of O(dns_record).
    type: str
  dns_ttl:
    description:
      - TTL in seconds of the CNAME the module writes.
    type: int
    default: 60
  notify_topic_arn:
    description:
      - SNS topic to which the verdict (subject and a text summary) is published at the end, passed or failed.
    type: str
  fail_on_breach:
    description:
      - Fail the task when the verdict is failed. The result and the report are attached either way.
    type: bool
    default: true
  cleanup_timeout:
    description:
      - Seconds cleanup waits for the rehearsal's replica to be deleted. Separate from O(wait_timeout).
    type: int
    default: 1800
  progress_log:
    description:
      - File on the managed node to which the drill appends one line per phase, for C(tail -f).
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
    description: Runs every pre-check and returns the plan (RV(plan)) with no mutating call.
    support: full
  diff_mode:
    description: Not supported; a drill is not a change of configuration.
    support: none
notes:
  - O(checks) run on the promoted copy (rehearsal) or on the new writer (switchover and failover), as in
    M(dbre.rds.rds_restore_drill).
  - O(login_host) and O(login_port) are not used; the drill connects to each endpoint RDS reports (the primary, the
    DR copy, each member cluster of a global database). O(login_user) defaults to the master user name.
  - Without credentials (O(login_password) or O(iam_auth=true)) the drill cannot probe or run checks; the RTO then
    ends when RDS reports the new writer, at O(poll_interval) resolution.
  - O(wait_timeout) bounds the drill from its first change; O(cleanup_timeout) the cleanup.
  - "IAM actions: C(rds:DescribeDBInstances), C(rds:DescribeDBClusters), C(rds:DescribeGlobalClusters),
    C(rds:ListTagsForResource), C(cloudwatch:DescribeAlarms), C(cloudwatch:GetMetricStatistics); for a rehearsal
    C(rds:CreateDBInstanceReadReplica), C(rds:AddTagsToResource), C(rds:PromoteReadReplica), C(rds:DeleteDBInstance);
    for a failover C(rds:PromoteReadReplica) or C(rds:FailoverGlobalCluster); for a switchover
    C(rds:SwitchoverGlobalCluster); with O(dns_record) C(route53:GetHostedZone), C(route53:ChangeResourceRecordSets),
    C(route53:GetChange); with O(notify_topic_arn) C(sns:GetTopicAttributes), C(sns:Publish)."
seealso:
  - module: dbre.rds.rds_failover_test
  - module: dbre.rds.rds_restore_drill
  - module: amazon.aws.rds_instance
  - module: amazon.aws.rds_global_cluster_info
  - module: amazon.aws.route53
"""

EXAMPLES = r"""
- name: Monthly DR rehearsal of an instance with a cross-region replica (production is not changed)
  dbre.rds.rds_dr_drill:
    db_instance_identifier: orders-prod
    dr_region: us-west-2
    dr_instance_identifier: orders-prod-dr
    login_user: drill
    login_password: "{{ orders_drill_password }}"
    checks:
      - name: orders present
        sql: SELECT count(*) FROM orders
        expect:
          min: 1
    max_rto_seconds: 900
    report_dir: /var/lib/dbre/reports
  register: orders_dr_rehearsal

- name: Show the measured RTO
  ansible.builtin.debug:
    msg: "Promotion took {{ orders_dr_rehearsal.rto_seconds }} s (lag before {{
      orders_dr_rehearsal.measurements.lag_seconds_before }} s)"

- name: See what a global switchover would do, with every pre-check (no change)
  dbre.rds.rds_dr_drill:
    mode: switchover
    global_cluster_identifier: payments-global
    switch_back: true
  check_mode: true

- name: Planned region switch of the global database with writes running, and back
  dbre.rds.rds_dr_drill:
    mode: switchover
    global_cluster_identifier: payments-global
    switch_back: true
    login_user: drill
    login_password: "{{ payments_drill_password }}"
    max_downtime_seconds: 60
    abort_if_alarms:
      - payments-replication-lag

- name: Region failover accepting data loss, DNS cutover and a notification
  dbre.rds.rds_dr_drill:
    mode: failover
    global_cluster_identifier: payments-global
    max_lag_seconds: 600
    login_user: drill
    login_password: "{{ payments_drill_password }}"
    dns_record: db.payments.internal
    hosted_zone_id: Z0123456789ABCDEFGHIJ
    notify_topic_arn: arn:aws:sns:us-east-1:123456789012:dbre-dr
    max_rto_seconds: 300
    max_rpo_seconds: 5
"""

RETURN = r"""
passed:
  description: The verdict; null in check mode.
  returned: when the pre-checks passed
  type: bool
  sample: true
verdict:
  description: V(passed), V(failed), or V(planned) in check mode.
  returned: when the pre-checks passed
  type: str
  sample: passed
failure:
  description: What failed first (an error, a timeout naming its phase, or the objectives that did not hold).
  returned: when not in check mode
  type: str
  sample: "rto_seconds did not hold (observed 912.4, objective 900)"
mode:
  description: The value of O(mode).
  returned: when the pre-checks passed
  type: str
  sample: rehearsal
drill_id:
  description: The drill's id (tag C(dbre:drill-id) of the rehearsal's replica, marker of the probe table).
  returned: when the pre-checks passed
  type: str
  sample: 20261130T033000Z-5f3a9c1e
plan:
  description: What the drill calls, in order, and on what.
  returned: when the pre-checks passed
  type: dict
  contains:
    steps:
      description: Each mutating call, C(call), C(region), C(names) and C(why).
      type: list
      elements: dict
    replica:
      description: The rehearsal's replica identifier.
      type: str
    replica_request:
      description: The C(CreateDBInstanceReadReplica) parameters of a rehearsal.
      type: dict
    writer_before:
      description: The writer before the drill (C(identifier), C(region)).
      type: dict
    dr_target:
      description: What becomes the writer (C(identifier), C(region)).
      type: dict
  sample: {"steps": [{"call": "SwitchoverGlobalCluster", "region": "us-east-1", "names": "payments-global",
           "why": "writer payments-east (us-east-1) -> payments-west (us-west-2)"}]}
lag_seconds:
  description: In check mode and when refused, the DR copy's replication lag read by the pre-checks.
  returned: in check mode or when refused
  type: float
  sample: 0.4
lag_source:
  description: Where the lag came from (V(sql) or V(cloudwatch)); null when unknown.
  returned: in check mode
  type: str
  sample: sql
rto_seconds:
  description: Seconds from the promotion, switchover or failover request until the new writer accepted a write
    (and, with O(dns_record), the record was in sync).
  returned: when not in check mode
  type: float
  sample: 4.75
rpo_seconds:
  description: Time span in seconds of the acknowledged writes missing on the new writer (0 when none); null
    without probes.
  returned: when not in check mode
  type: float
  sample: 1.5
lost_writes:
  description: Acknowledged probe writes missing on the new writer; null without probes.
  returned: when not in check mode
  type: int
  sample: 0
measurements:
  description: Every figure of the drill; times ISO 8601 UTC, durations in seconds.
  returned: when not in check mode
  type: dict
  contains:
    rto_seconds:
      description: As RV(rto_seconds).
      type: float
    rpo_seconds:
      description: As RV(rpo_seconds).
      type: float
    lag_seconds_before:
      description: The DR copy's replication lag just before the request (a rehearsal's at promotion).
      type: float
    lag_source:
      description: V(sql) or V(cloudwatch).
      type: str
    requested_at:
      description: When the promotion, switchover or failover was requested.
      type: str
    writable_at:
      description: When the new writer first accepted a write.
      type: str
    api_available_seconds:
      description: Seconds from a promotion request until RDS showed the instance available and no longer a replica.
      type: float
    replica_available_seconds:
      description: Rehearsal, seconds from the create request until the replica was available.
      type: float
    writer_switched_seconds:
      description: Seconds from the request until the global cluster was available again with the new writer (the
        old primary rebuilt as a secondary included).
      type: float
    old_primary_secondary_seconds:
      description: Switchover, seconds from the request until the old primary was a healthy (read-only) secondary.
      type: float
    switch_back_rto_seconds:
      description: With O(switch_back), seconds from the switch-back request until the original writer accepted a
        write again.
      type: float
    switch_back:
      description: With O(switch_back), V(done) or V(not done).
      type: str
    dns_change_seconds:
      description: Seconds until the DNS change was C(INSYNC).
      type: float
    observed_downtime_seconds:
      description: The write downtime the probes saw after the request.
      type: float
    acknowledged_writes:
      description: Probe writes the servers acknowledged.
      type: int
    lost_writes:
      description: As RV(lost_writes).
      type: int
    lost_write_numbers:
      description: The sequence numbers of the lost writes (at most 50).
      type: list
      elements: int
    lost_span_seconds:
      description: From the first lost write's send to the last lost write's acknowledgement.
      type: float
    lost_first_sent_at:
      description: When the first lost write was sent.
      type: str
    lost_last_acknowledged_at:
      description: When the last lost write was acknowledged.
      type: str
    probes_sent:
      description: Probe writes sent.
      type: int
    probes_failed:
      description: Probe writes that failed.
      type: int
    duration_seconds:
      description: The whole drill, cleanup included.
      type: float
  sample: {"rto_seconds": 4.75, "lag_seconds_before": 0.0, "lost_writes": 0}
checks:
  description: Result of each check (C(name), C(sql), C(expect), C(observed), C(passed), C(message)).
  returned: when not in check mode
  type: list
  elements: dict
objectives:
  description: The verdict table (C(name), C(objective), C(observed), C(unit), C(held)).
  returned: when not in check mode
  type: list
  elements: dict
writer:
  description: The writer before and after the drill (C(identifier), C(region)).
  returned: when not in check mode
  type: dict
  sample: {"before": {"identifier": "pay-east", "region": "us-east-1"},
           "after": {"identifier": "pay-west", "region": "us-west-2"}}
dns:
  description: The DNS cutover (C(record), C(value), C(ttl), C(change_id), C(status), C(seconds)); null without one.
  returned: when not in check mode
  type: dict
notification:
  description: The SNS publication (C(topic_arn), C(message_id), C(subject)); null without O(notify_topic_arn).
  returned: when not in check mode
  type: dict
cleanup:
  description: What cleanup deleted (C(removed)), could not delete (C(left_behind)) and why (C(steps)).
  returned: when not in check mode
  type: dict
calls:
  description: The mutating calls the drill made, in order, with their parameters and how each was confirmed.
  returned: when not in check mode
  type: list
  elements: dict
phases:
  description: Timed phases on the drill's clock.
  returned: when not in check mode
  type: list
  elements: dict
report:
  description: The drill report (the shared report writer's shape), the same that O(report_dir) receives.
  returned: when not in check mode
  type: dict
report_files:
  description: Paths written under O(report_dir) (C(json), C(md), C(xml)).
  returned: when O(report_dir) is set and not in check mode
  type: dict
phase:
  description: The phase in which the drill stopped.
  returned: when the drill failed
  type: str
  sample: promoted copy writable
interrupted_by:
  description: The signal that stopped the drill; cleanup still ran.
  returned: when a signal interrupted the drill
  type: str
problems:
  description: Every problem the option checks or pre-checks found, when the drill was refused before any change.
  returned: when refused
  type: list
  elements: str
"""

import datetime
import uuid

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.dbre.rds.plugins.module_utils import dr_drill as drill
from ansible_collections.dbre.rds.plugins.module_utils import failover_drill
from ansible_collections.dbre.rds.plugins.module_utils import restore_drill
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import CallNotConfirmed
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import aws_client
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import call_once
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import once_client
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import rds_client
from ansible_collections.dbre.rds.plugins.module_utils.clock import utc_iso
from ansible_collections.dbre.rds.plugins.module_utils.cloudwatch_lag import cloudwatch_lag as read_cloudwatch_lag
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import report_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import DrillAborted
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import DrillFailure
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import DrillRuntime
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import aws_errors
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import owner_alive
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import owner_marker
from ansible_collections.dbre.rds.plugins.module_utils.module_warnings import warn
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import connector_for
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import db_connection_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import endpoint_of
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import permanent_error
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import with_connection
from ansible_collections.dbre.rds.plugins.module_utils.probing import FollowingConnector
from ansible_collections.dbre.rds.plugins.module_utils.probing import WriteProbes
from ansible_collections.dbre.rds.plugins.module_utils.probing import drop_marked_table
from ansible_collections.dbre.rds.plugins.module_utils.probing import drop_probe_table
from ansible_collections.dbre.rds.plugins.module_utils.probing import marked_probe_tables
from ansible_collections.dbre.rds.plugins.module_utils.probing import parse_probe_marker
from ansible_collections.dbre.rds.plugins.module_utils.probing import probe_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.probing import probe_marker
from ansible_collections.dbre.rds.plugins.module_utils.probing import probe_table_state
from ansible_collections.dbre.rds.plugins.module_utils.probing import short_message
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import INSTANCE
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import delete_once
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import describe_cluster
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import describe_global_cluster
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import describe_instance
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import status_of
from ansible_collections.dbre.rds.plugins.module_utils.waiting import WaitFailed
from ansible_collections.dbre.rds.plugins.module_utils.waiting import WaitTimeout
from ansible_collections.dbre.rds.plugins.module_utils.waiting import wait_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.waiting import wait_until

BASELINE_PROBES = 3
# Replication is caught up when the replica has replayed what the primary had written when asked, or lags this little.
CAUGHT_UP_SECONDS = 1.0
CLEANUP_GRACE_SECONDS = 60
MARKER_MARGIN_SECONDS = 600

# A standby's lag behind the primary's position read just before (``%s``): 0 once it has replayed that far.
LAG_SQL = ("SELECT CASE WHEN NOT pg_is_in_recovery() OR pg_last_wal_replay_lsn() >= %s::pg_lsn THEN 0 "
           "ELSE EXTRACT(EPOCH FROM clock_timestamp() - coalesce(pg_last_xact_replay_timestamp(), "
           "clock_timestamp())) END")
# Only a server out of recovery hands out a transaction id: the write test costs no row.
WRITABLE_SQL = "SELECT txid_current()"


# ---------------------------------------------------------------------------------------------- thin AWS wrappers

def describe_alarms(module, names):
    if not names:
        return []
    found = aws_client(module, "cloudwatch").describe_alarms(AlarmNames=list(names), aws_retry=True)
    return found.get("MetricAlarms", []) + found.get("CompositeAlarms", [])


def hosted_zone(module, zone_id):
    if not zone_id:
        return None
    try:
        return aws_client(module, "route53").get_hosted_zone(Id=zone_id, aws_retry=True)["HostedZone"]
    except is_boto3_error_code(["NoSuchHostedZone", "InvalidInput"]):
        return None


def topic_problems(module, topic_arn):
    if not topic_arn:
        return []
    try:
        aws_client(module, "sns", region=drill.region_of_arn(topic_arn)).get_topic_attributes(
            TopicArn=topic_arn, aws_retry=True)
    except is_boto3_error_code(["NotFound", "NotFoundException", "InvalidParameter"]):
        return [f"no SNS topic {topic_arn} exists: check notify_topic_arn"]
    return []


def cloudwatch_lag(module, kind, region, dimensions):
    """The latest recent lag datapoint (seconds), or None (cloudwatch_lag.latest_seconds says what is recent)."""
    return read_cloudwatch_lag(aws_client(module, "cloudwatch", region=region), kind, dimensions)


# ---------------------------------------------------------------------------------------------- thin SQL wrappers

def fetch_one(conn, sql, params=None):
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def sql_lag(primary, replica):
    """Seconds the replica's replay is behind the primary's current WAL position (0 when caught up)."""
    position = with_connection(primary, lambda conn: fetch_one(conn, "SELECT pg_current_wal_lsn()::text")[0])
    return round(float(with_connection(replica, lambda conn: fetch_one(conn, LAG_SQL, (position,))[0])), 3)


def writable(connector, timeout):
    """None when the server accepts a write now, else why not (first line of the error)."""
    try:
        with_connection(connector, lambda conn: fetch_one(conn, WRITABLE_SQL), connect_timeout=timeout)
        return None
    except Exception as exc:  # pylint: disable=broad-except
        return short_message(exc)


def in_recovery(connector, timeout):
    try:
        return with_connection(connector, lambda conn: fetch_one(conn, "SELECT pg_is_in_recovery()")[0],
                               connect_timeout=timeout)
    except Exception:  # pylint: disable=broad-except
        return None


def query(conn, sql):
    import psycopg2

    try:
        with conn.cursor() as cursor:
            cursor.execute(sql)
            return (cursor.fetchall() if cursor.description else []), None
    except psycopg2.Error as exc:
        return None, (str(exc).strip().splitlines() or [repr(exc)])[0]


# ------------------------------------------------------------------------------------------------------ the read

class Topology:
    """What the drill acts on, read before any change: the primary and its DR copy, their regions and endpoints."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.mode = self.params["mode"]
        self.region = module.region
        self.dr_region = self.params["dr_region"]
        self.clients = {}
        self.source = self.dr_replica = self.global_cluster = self.drill_replica = None
        self.writer = self.target = None
        self.clusters = {}
        self.zone = None
        self.lag = {"seconds": None, "source": None}
        self.problems = []

    def rds(self, region=None):
        region = region or self.region
        if region not in self.clients:
            self.clients[region] = rds_client(self.module, region=region)
        return self.clients[region]

    @property
    def is_global(self):
        return bool(self.params["global_cluster_identifier"])

    @property
    def target_name(self):
        return self.params["global_cluster_identifier"] or self.params["db_instance_identifier"] \
            or self.params["dr_instance_identifier"]

    def protected(self):
        """Identifiers no cleanup may delete and no mutating call may target, except the drill's own steps."""
        names = {self.params["db_instance_identifier"], self.params["dr_instance_identifier"]}
        names |= {m["identifier"] for m in drill.global_members(self.global_cluster)}
        for replica in (self.source or {}).get("ReadReplicaDBInstanceIdentifiers") or []:
            names.add(drill.name_of_arn(replica))
        if self.drill_replica is not None:
            # A replica made for drills (checked by its tag before any change) is the rehearsal's to delete.
            names.discard(self.drill_replica["DBInstanceIdentifier"])
        return {n for n in names if n}

    def read(self):
        params = self.params
        if self.is_global:
            gid = params["global_cluster_identifier"]
            self.global_cluster = describe_global_cluster(self.rds(), gid)
            for member in drill.global_members(self.global_cluster):
                try:
                    self.clusters[member["arn"]] = describe_cluster(self.rds(member["region"]), member["identifier"])
                except aws_errors() as exc:
                    if not (self.mode == "failover" and member["writer"]):
                        raise
                    # The disaster a failover is for: the writer's region does not answer. Warn and go on.
                    self.clusters[member["arn"]] = None
                    warn(self.module, f"Reading the writer cluster {member['identifier']} in {member['region']} "
                                      f"failed ({short_message(exc)}); the failover goes on without it")
            self.problems += drill.global_problems(params, self.global_cluster, self.clusters, self.region)
            members = drill.global_members(self.global_cluster)
            self.writer = next((m for m in members if m["writer"]), None)
            self.target = drill.choose_target(members, params["target_db_cluster_identifier"])
        else:
            if params["db_instance_identifier"]:
                self.source = describe_instance(self.rds(), params["db_instance_identifier"])
            if params["dr_instance_identifier"]:
                self.dr_replica = describe_instance(self.rds(self.dr_region), params["dr_instance_identifier"])
            self.problems += drill.instance_problems(params, self.source, self.dr_replica, self.region,
                                                     self.dr_region)
            if self.mode == "rehearsal" and params["replica_identifier"]:
                self.drill_replica = describe_instance(self.rds(self.dr_region), params["replica_identifier"],
                                                       with_tags=True)
                owner = restore_drill.owner_from_tag(
                    restore_drill.tags_of(self.drill_replica or {}).get(restore_drill.DRILL_OWNER_TAG))
                self.problems += drill.drill_replica_problems(
                    params["replica_identifier"], self.drill_replica, self.source, self.dr_region,
                    now=utc_iso(datetime.datetime.now(datetime.timezone.utc)), alive=owner_alive(owner))
        self.problems += failover_drill.alarm_problems(params["abort_if_alarms"],
                                                       describe_alarms(self.module, params["abort_if_alarms"]))
        self.zone = hosted_zone(self.module, params["hosted_zone_id"])
        self.problems += drill.hosted_zone_problems(params["hosted_zone_id"], self.zone)
        self.problems += drill.dns_name_problems(params["dns_record"], self.zone)
        self.problems += topic_problems(self.module, params["notify_topic_arn"])

    # -- endpoints and connections
    def login_params(self):
        params = dict(self.params)
        # Each endpoint of the drill is the one RDS reports: one login_host would point every connection at one server.
        params["login_host"] = params["login_port"] = None
        described = self.source or self.dr_replica or self.cluster(self.writer) or self.cluster(self.target) or {}
        params["login_user"] = params["login_user"] or described.get("MasterUsername")
        return params

    def connector(self, described, region=None):
        return connector_for(self.module, self.login_params(), endpoint_of(described), self.rds(region))

    def cluster(self, member):
        return self.clusters.get(member["arn"]) if member else None

    def member_connector(self, member):
        """None when the member could not be read (a failover's unreachable writer region)."""
        if self.cluster(member) is None:
            return None
        return self.connector(self.cluster(member), member["region"])

    def primary_and_copy(self):
        """(primary connector, DR copy connector or None) for the lag reading."""
        if self.is_global:
            if self.writer is None or self.target is None:
                return None, None
            return self.member_connector(self.writer), self.member_connector(self.target)
        primary = self.connector(self.source) if self.source else None
        copy = self.connector(self.dr_replica, self.dr_region) if self.dr_replica else None
        return primary, copy

    def read_lag(self, credentials):
        """The DR copy's lag now: from SQL (exact) with credentials, else from CloudWatch."""
        primary, copy = self.primary_and_copy() if credentials else (None, None)
        if primary is not None and copy is not None:
            try:
                self.lag = {"seconds": sql_lag(primary, copy), "source": "sql"}
                return
            except Exception as exc:  # pylint: disable=broad-except
                warn(self.module, f"Reading the replication lag with SQL failed ({short_message(exc)}); using "
                                  "CloudWatch")
        if self.is_global and self.target is not None and self.writer is not None:
            seconds = cloudwatch_lag(self.module, "global", self.target["region"], {
                "DBClusterIdentifier": self.target["identifier"], "SourceRegion": self.writer["region"]})
        elif self.dr_replica is not None:
            seconds = cloudwatch_lag(self.module, INSTANCE, self.dr_region,
                                     {"DBInstanceIdentifier": self.params["dr_instance_identifier"]})
        else:
            return
        self.lag = {"seconds": seconds, "source": "cloudwatch" if seconds is not None else None}


def global_state(global_cluster):
    """A global cluster's status and writer, as one state for the transitions."""
    writer = next((m for m in drill.global_members(global_cluster) if m["writer"]), None)
    return f"{status_of(global_cluster)}, writer {writer['identifier'] if writer else 'none'}"


# ------------------------------------------------------------------------------------------------------ the drill

class DrRun:
    """The mutating part of one DR drill after the pre-checks; the runtime turns whatever stops a step into a failure
    and always runs :meth:`cleanup` (the rehearsal's replica is deleted, the probe table dropped)."""

    def __init__(self, module, runtime, topology, plan, probing):
        self.module = module
        self.params = module.params
        self.runtime = runtime
        self.clock = runtime.clock
        self.log = runtime.log
        self.topo = topology
        self.plan = plan
        self.drill_id = plan["drill_id"]
        self.deadline = self.clock.elapsed() + self.params["wait_timeout"]
        self.probing = probing
        self.probes = None
        self.created = []
        self.calls = []
        self.checks = []
        self.measured = {"mode": self.params["mode"], "lag_seconds_before": topology.lag["seconds"],
                         "lag_source": topology.lag["source"], "requested_at": None, "writable_at": None,
                         "rto_seconds": None, "probing": bool(probing)}
        self.requested = None
        self.back_writable = None
        self.present = None
        self.writer_after = None
        self.dns = None
        self.cleanup_result = {"removed": [], "left_behind": [], "steps": []}

    # -- helpers
    def remaining(self):
        return max(0.0, self.deadline - self.clock.elapsed())

    def wait(self, phase, fetch, done, interval=None, **kwargs):
        self.runtime.enter(phase)
        return wait_until(fetch, done, timeout=self.remaining(), interval=interval or self.params["poll_interval"],
                          phase=phase, clock=self.clock, **kwargs)

    def once(self, region, operation, request, took_effect, phase, what):
        """A mutating call sent exactly once (checked, never resent blindly), recorded for the result."""
        entry = {"call": operation, "region": region, "parameters": {k: v for k, v in request.items() if k != "Tags"}}
        self.calls.append(entry)
        try:
            outcome = call_once(once_client(self.module, region=region), operation, request, took_effect,
                                deadline_seconds=min(max(self.remaining(), 1.0), 300.0))
        except CallNotConfirmed as exc:
            entry["outcome"] = "not confirmed"
            raise DrillAborted(phase, f"{what}: {exc}: check the RDS console", cause=exc.cause)
        except aws_errors() as exc:
            entry["outcome"] = "refused"
            raise DrillAborted(phase, f"{what}: {exc}", cause=exc)
        entry["outcome"] = outcome["confirmed_by"]
        entry["attempts"] = outcome["attempts"]
        return outcome

    def credentials(self):
        return bool(self.params["login_password"] or self.params["iam_auth"])

    def elapsed_iso(self, elapsed):
        return utc_iso(self.clock.at(elapsed))

    # -- the steps of each mode
    def steps(self):
        if self.params["mode"] == "rehearsal":
            self.rehearse()
        elif self.topo.is_global:
            self.switch_global()
        else:
            self.promote_dr_replica()

    # rehearsal -----------------------------------------------------------------------------------------------
    def rehearse(self):
        topo, plan = self.topo, self.plan
        replica, region = plan["replica"], topo.dr_region
        started = self.clock.elapsed()
        if plan["replica_request"] is None:
            # A dead drill's replica (checked before any change): re-tagged as this drill's own, once, before it is
            # promoted, so cleanup deletes it only under this drill's id (confirmed: the tags show it).
            self.runtime.enter("create replica", f"add_tags_to_resource -> {replica} in {region} (reused)", timed=True)
            self.created.append({"identifier": replica, "region": region, "confirmed": False})
            self.once(region, "add_tags_to_resource", plan["retag"], lambda: self.ours(replica, region),
                      "create replica", f"Tagging the reused drill replica {replica} with this drill's id")
            self.created[-1]["confirmed"] = True
            self.log.finish("create replica")
        else:
            self.runtime.enter("create replica", f"create_db_instance_read_replica -> {replica} in {region}",
                               timed=True)
            self.created.append({"identifier": replica, "region": region, "confirmed": False})
            self.once(region, "create_db_instance_read_replica", plan["replica_request"],
                      lambda: self.ours(replica, region), "create replica", f"Creating the drill replica {replica}")
            self.created[-1]["confirmed"] = True
            self.log.finish("create replica")
        described = self.wait_instance(replica, region, "replica available",
                                       lambda d: status_of(d) == "available")
        self.measured["replica_available_seconds"] = round(self.clock.elapsed() - started, 3)
        replica_conn = topo.connector(described, region)
        primary_conn = topo.connector(topo.source)
        if self.credentials():
            outcome = self.wait("replica caught up", lambda: self.lag_now(primary_conn, replica_conn),
                                lambda lag: lag is not None and lag <= CAUGHT_UP_SECONDS,
                                interval=min(self.params["poll_interval"], 1.0),
                                state_of=lambda lag: "caught up" if lag is not None and lag <= CAUGHT_UP_SECONDS
                                else "behind")
            self.measured["lag_seconds_before"] = outcome.value
            self.measured["lag_source"] = "sql"
        self.promote_instance(replica, region, replica_conn, "promote replica",
                              f"Promoting the drill replica {replica}")
        self.writer_after = {"identifier": replica, "region": region}
        if self.params["checks"]:
            self.run_checks(replica_conn)

    def lag_now(self, primary, replica):
        try:
            return sql_lag(primary, replica)
        except Exception:  # pylint: disable=broad-except
            return None

    def ours(self, identifier, region):
        found = describe_instance(self.topo.rds(region), identifier, with_tags=True)
        if found is not None and restore_drill.tags_of(found).get(restore_drill.DRILL_ID_TAG) == self.drill_id:
            return f"{identifier} exists ({status_of(found)}) with {restore_drill.DRILL_ID_TAG}={self.drill_id}"
        return None

    def wait_instance(self, identifier, region, phase, done):
        rds = self.topo.rds(region)
        try:
            outcome = self.wait(phase, lambda: describe_instance(rds, identifier), done, state_of=status_of,
                                failed=lambda d: status_of(d) in ("failed", "incompatible-restore", "gone",
                                                                  "storage-full", "deleting"))
        except (WaitTimeout, WaitFailed) as exc:
            self.log.transitions(f"instance {identifier}", exc.transitions)
            raise
        self.log.transitions(f"instance {identifier}", outcome.transitions)
        return outcome.value

    def promote_instance(self, identifier, region, connector, phase, what):
        """PromoteReadReplica once, then wait until the instance accepts a write (SQL) or, without credentials,
        until RDS shows it available and no longer a replica. Sets requested/writable and the RTO."""
        rds = self.topo.rds(region)

        def promoted():
            found = describe_instance(rds, identifier)
            if found is not None and (status_of(found) != "available"
                                      or not found.get("ReadReplicaSourceDBInstanceIdentifier")):
                return f"{identifier} is {status_of(found)}, replica of " \
                       f"{found.get('ReadReplicaSourceDBInstanceIdentifier') or 'nothing'}"
            return None

        self.runtime.enter(phase, f"promote_read_replica -> {identifier}", timed=True)
        self.mark_requested()
        self.once(region, "promote_read_replica", {"DBInstanceIdentifier": identifier}, promoted, phase, what)
        self.log.finish(phase)

        def fetch():
            # The write first, timed when it succeeds: a describe before it would add its latency to the RTO.
            why = writable(connector, self.params["probe_timeout"]) if self.credentials() else None
            if why is None and self.credentials():
                return {"api": None, "error": None, "status": "writable", "at": self.clock.elapsed()}
            described = describe_instance(rds, identifier)
            api = status_of(described) == "available" and not (described or {}).get(
                "ReadReplicaSourceDBInstanceIdentifier")
            if api and "api_available_seconds" not in self.measured:
                self.measured["api_available_seconds"] = round(self.clock.elapsed() - self.requested, 3)
            return {"api": api, "error": why, "status": status_of(described), "at": self.clock.elapsed()}

        done = (lambda v: v["error"] is None) if self.credentials() else (lambda v: v["api"])
        outcome = self.wait("promoted copy writable", fetch, done, interval=self.params["probe_interval"],
                            state_of=lambda v: "writable" if done(v) else v["status"])
        self.mark_writable(outcome.value["at"])
        # The promotion goes on after the first write (RDS's first backup of the new instance): wait for its end
        # before checking and, in a rehearsal, deleting the copy.
        self.wait_instance(identifier, region, "promotion complete", lambda d: status_of(d) == "available" and not (
            d or {}).get("ReadReplicaSourceDBInstanceIdentifier"))
        self.measured.setdefault("api_available_seconds", round(self.clock.elapsed() - self.requested, 3))

    def mark_requested(self):
        self.requested = self.clock.elapsed()
        self.measured["requested_at"] = self.elapsed_iso(self.requested)

    def mark_writable(self, writable_at=None):
        writable_at = self.clock.elapsed() if writable_at is None else writable_at
        self.measured["writable_at"] = self.elapsed_iso(writable_at)
        self.measured["rto_seconds"] = drill.rto_seconds(self.requested, writable_at)
        self.log.event(f"new writer accepts writes: RTO {self.measured['rto_seconds']:.2f} s", phase="measure")

    # instance failover ----------------------------------------------------------------------------------------
    def promote_dr_replica(self):
        topo = self.topo
        identifier, region = self.params["dr_instance_identifier"], topo.dr_region
        new_writer = topo.connector(topo.dr_replica, region)
        if self.probing:
            self.start_probes(topo.connector(topo.source) if topo.source else None)
        self.lag_before_request(topo.connector(topo.source) if topo.source else None, new_writer)
        if self.probes is not None:
            self.probes.connector.retarget(new_writer)  # clients are sent to the DR region with the request
        self.promote_instance(identifier, region, new_writer, "promote DR replica",
                              f"Promoting the DR replica {identifier}")
        described = describe_instance(topo.rds(region), identifier)
        self.writer_after = {"identifier": identifier, "region": region}
        self.cutover(endpoint_of(described)[0])
        self.settle()
        if self.params["checks"]:
            self.run_checks(new_writer)

    # global switchover / failover ------------------------------------------------------------------------------
    def switch_global(self):
        topo = self.topo
        if self.probing:
            self.start_probes(topo.member_connector(topo.writer))
        failover = self.params["mode"] == "failover"
        self.lag_before_request(topo.member_connector(topo.writer), topo.member_connector(topo.target))
        self.switch(topo.writer, topo.target, failover=failover, phase="switchover" if not failover else "failover")
        self.writer_after = {"identifier": topo.target["identifier"], "region": topo.target["region"]}
        self.settle()
        if self.params["checks"]:
            self.run_checks(topo.member_connector(topo.target))
        if self.params["mode"] == "switchover":
            self.wait_secondary(topo.writer, "old primary a healthy secondary", "old_primary_secondary_seconds")
            if self.params["switch_back"]:
                self.measured["switch_back"] = "not done"
                back_started = self.clock.elapsed()
                self.switch(topo.target, topo.writer, failover=False, phase="switch back", first=False)
                self.measured["switch_back_rto_seconds"] = round(self.back_writable - back_started, 3)
                self.writer_after = {"identifier": topo.writer["identifier"], "region": topo.writer["region"]}
                self.settle()
                self.wait_secondary(topo.target, "secondary again after switch back",
                                    "secondary_again_seconds", since=back_started)
                self.measured["switch_back"] = "done"

    def switch(self, old, new, failover, phase, first=True):
        """Switchover (or failover with data loss) of the global cluster from ``old`` to ``new``; probes follow the
        writer (a failover sends them to ``new`` at the request, as clients told of a disaster)."""
        topo, gid = self.topo, self.params["global_cluster_identifier"]
        # A failover is sent to, and followed in, the target's region: the writer's region may be the one lost.
        region = new["region"] if failover else topo.region
        rds = topo.rds(region)
        new_conn = topo.member_connector(new)
        operation = "failover_global_cluster" if failover else "switchover_global_cluster"
        request = {"GlobalClusterIdentifier": gid, "TargetDbClusterIdentifier": new["arn"]}
        if failover:
            request["AllowDataLoss"] = True

        def took_effect():
            found = describe_global_cluster(rds, gid)
            state = (found or {}).get("FailoverState") or {}
            if drill.switched(found, new["arn"]) or state.get("Status"):
                return f"{gid} {status_of(found)}, failover state {state.get('Status') or 'done'}"
            return None

        self.runtime.enter(phase, f"{operation} {gid} -> {new['identifier']} ({new['region']})", timed=True)
        requested = self.clock.elapsed()
        if first:
            self.mark_requested()
        if failover and self.probes is not None:
            self.probes.connector.retarget(new_conn)
        self.once(region, operation, request, took_effect, phase,
                  f"{'Failing over' if failover else 'Switching over'} the global cluster {gid}")
        self.log.finish(phase)

        looked = {"at": None, "global": None}

        def describe_now():
            # RDS is asked every poll_interval; the new writer's PostgreSQL every probe_interval.
            if looked["at"] is None or self.clock.elapsed() - looked["at"] >= self.params["poll_interval"]:
                looked["at"], looked["global"] = self.clock.elapsed(), describe_global_cluster(rds, gid)
                writer = next((m for m in drill.global_members(looked["global"]) if m["writer"]), None)
                if writer is not None and writer["arn"] == new["arn"] and self.probes is not None:
                    self.probes.connector.retarget(new_conn)
            return looked["global"]

        if self.credentials():
            def fetch():
                return {"global": describe_now(), "error": writable(new_conn, self.params["probe_timeout"])}

            self.wait(f"{new['identifier']} writable", fetch, lambda v: v["error"] is None,
                      interval=self.params["probe_interval"],
                      state_of=lambda v: "writable" if v["error"] is None else global_state(v["global"]))
            if self.probes is not None:
                self.probes.connector.retarget(new_conn)
            self.became_writable(new, first)
        looked["at"] = None
        outcome = self.wait(f"{phase} to complete", describe_now, lambda g: drill.switched(g, new["arn"]),
                            interval=self.params["poll_interval"], state_of=global_state)
        self.log.transitions(f"global cluster {gid}", outcome.transitions)
        key = "writer_switched_seconds" if first else "switch_back_writer_switched_seconds"
        self.measured[key] = round(self.clock.elapsed() - requested, 3)
        if not self.credentials():
            self.became_writable(new, first)

    def became_writable(self, new, first):
        """The new writer takes writes: the RTO ends once clients can reach it, the DNS record included."""
        if first:
            self.mark_writable()
        described = describe_cluster(self.topo.rds(new["region"]), new["identifier"])
        self.cutover(endpoint_of(described)[0], "dns" if first else "dns_switch_back")
        if not first:
            self.back_writable = self.clock.elapsed()

    def wait_secondary(self, member, phase, key, since=None):
        topo, gid = self.topo, self.params["global_cluster_identifier"]
        conn = topo.member_connector(member) if self.credentials() else None
        since = self.requested if since is None else since

        def fetch():
            found = describe_global_cluster(topo.rds(), gid)
            cluster = describe_cluster(topo.rds(member["region"]), member["identifier"])
            healthy = drill.healthy_secondary(found, member["arn"], cluster)
            if healthy and conn is not None:
                healthy = in_recovery(conn, self.params["probe_timeout"]) is True
            return healthy

        self.wait(phase, fetch, bool, state_of=lambda h: "healthy secondary" if h else "not yet")
        self.measured[key] = round(self.clock.elapsed() - since, 3)

    # shared steps ------------------------------------------------------------------------------------------------
    def start_probes(self, connector):
        if connector is None:
            return
        table = self.params["probe_table"]
        expires = self.clock.now() + datetime.timedelta(seconds=self.params["wait_timeout"] + CLEANUP_GRACE_SECONDS
                                                        + MARKER_MARGIN_SECONDS)
        marker = probe_marker(self.drill_id, owner_marker(), self.topo.target_name, utc_iso(self.clock.now()),
                              utc_iso(expires))
        self.runtime.enter("probe setup", f"probe table {table} on {connector.target}")
        self.probes = WriteProbes(FollowingConnector(connector), table, self.drill_id, marker, self.clock,
                                  interval=self.params["probe_interval"], timeout=self.params["probe_timeout"])
        try:
            self.probes.start(baseline=BASELINE_PROBES, timeout=min(self.remaining(), 30.0))
        except (WaitTimeout, WaitFailed) as exc:
            raise DrillAborted("probe setup", f"Probing {connector.target} failed before any change "
                               f"({self.probes.last_permanent_error() or exc}): check the login options", exc)
        except Exception as exc:  # pylint: disable=broad-except
            raise DrillAborted("probe setup", f"Creating the probe table {table} on {connector.target} failed "
                               f"({short_message(exc)}): check the login options and that probe_table is free; "
                               "nothing was changed", exc)
        baseline = self.params["probe_baseline_seconds"]
        if baseline:
            since = self.clock.elapsed()
            self.wait("probe baseline", lambda: self.clock.elapsed() - since, lambda s: s >= baseline,
                      interval=self.params["probe_interval"], state_of=lambda s: "done" if s >= baseline else "writing",
                      permanent=self.probes.last_permanent_error)
        self.log.event(f"baseline: {self.probes.loop.successes()} probe writes succeeded", phase="probe setup")

    def lag_before_request(self, primary, copy):
        """The DR copy's lag just before the request (what a failover will lose, in time)."""
        if not self.credentials() or primary is None or copy is None:
            return
        lag = self.lag_now(primary, copy)
        if lag is not None:
            self.measured["lag_seconds_before"], self.measured["lag_source"] = lag, "sql"
            self.log.event(f"replication lag of the DR copy before the request: {lag:.2f} s", phase="measure")

    def settle(self):
        if self.probes is None:
            return
        settle, since = self.params["probe_settle_seconds"], self.clock.elapsed()
        self.wait("writes to settle", lambda: failover_drill.settled_for(self.probes.samples(), self.requested,
                                                                         self.clock.elapsed()),
                  lambda seconds: seconds >= settle, interval=self.params["probe_interval"],
                  state_of=lambda s: "settled" if s >= settle else ("succeeding" if s > 0 else "failing"),
                  permanent=self.probes.permanent_error_since(since))

    def cutover(self, address, key="dns"):
        """UPSERT the CNAME to the new writer and wait until Route 53 has it in sync: part of the RTO."""
        record = self.params["dns_record"]
        if not record or not address:
            return
        self.runtime.enter("dns cutover", f"{record} -> {address}", timed=True)
        started = self.clock.elapsed()
        route53 = aws_client(self.module, "route53")
        batch = drill.dns_change_batch(record, address, self.params["dns_ttl"],
                                       f"dbre.rds DR {self.params['mode']} drill {self.drill_id}")
        self.calls.append({"call": "change_resource_record_sets", "region": "global",
                           "parameters": {"HostedZoneId": self.params["hosted_zone_id"], "ChangeBatch": batch}})
        change = route53.change_resource_record_sets(HostedZoneId=self.params["hosted_zone_id"], ChangeBatch=batch,
                                                     aws_retry=True)["ChangeInfo"]
        outcome = self.wait("dns change in sync", lambda: route53.get_change(Id=change["Id"], aws_retry=True)
                            ["ChangeInfo"], lambda c: c.get("Status") == "INSYNC",
                            interval=min(self.params["poll_interval"], 2.0), state_of=lambda c: c.get("Status"))
        self.log.finish("dns cutover")
        seconds = round(self.clock.elapsed() - started, 3)
        self.measured[f"{key}_change_seconds"] = seconds
        if key == "dns":
            self.dns = {"record": record, "value": address, "ttl": self.params["dns_ttl"], "change_id": change["Id"],
                        "status": outcome.value.get("Status"), "seconds": seconds}
            in_sync = self.clock.elapsed()
            # Clients reach the new writer through the record: the RTO ends when both are true.
            if self.requested is not None:
                self.measured["rto_seconds"] = max(self.measured["rto_seconds"] or 0.0,
                                                   drill.rto_seconds(self.requested, in_sync))

    def run_checks(self, connector):
        self.runtime.enter("validation", timed=True)
        try:
            conn = connector.connect()
        except Exception as exc:  # pylint: disable=broad-except
            raise DrillAborted("validation", f"Connecting to {connector.target} for the checks failed "
                               f"({short_message(exc)}): check login_user, login_password or iam_auth, and login_db")
        try:
            for check in self.params["checks"]:
                rows, error = query(conn, check["sql"])
                outcome = restore_drill.evaluate_check(check, rows, error)
                self.checks.append(outcome)
                self.log.event(f"check {check['name']}: {'passed' if outcome['passed'] else outcome['message']}",
                               phase="validation")
        finally:
            conn.close()
        self.log.finish("validation", "ok" if all(c["passed"] for c in self.checks) else "failed")

    # -- cleanup, whatever happened
    def cleanup(self, failure):
        self.log.close_open("failed" if failure else "ok")
        self.runtime.enter("cleanup", timed=True)
        self.finish_probes()
        self.delete_created()
        self.log.finish("cleanup", "ok" if not self.cleanup_result["left_behind"] else "failed")

    def finish_probes(self):
        if self.probes is None:
            return
        topo = self.topo
        grace = max(self.remaining(), min(CLEANUP_GRACE_SECONDS, self.params["wait_timeout"]))
        present, dropped = self.probes.finish(grace=grace, interval=max(0.5, self.params["probe_interval"]))
        self.measured["probe_table_removed"] = dropped
        self.present = present
        if self.params["mode"] == "failover" and not topo.is_global and topo.source is not None:
            # The old primary of an instance failover kept its copy of the table: drop it too when it answers.
            try:
                with_connection(topo.connector(topo.source), lambda conn: drop_probe_table(
                    conn, self.params["probe_table"], self.drill_id), timeout=self.params["probe_timeout"])
            except Exception as exc:  # pylint: disable=broad-except
                warn(self.module, f"The probe table {self.params['probe_table']} on the old primary could not be "
                                  f"dropped ({short_message(exc)}); the next drill drops it, or drop it by hand")
        if dropped is False:
            warn(self.module, f"The probe table {self.params['probe_table']} could not be removed "
                              f"({self.probes.error or 'it no longer carries this drill marker'}); the next drill "
                              "drops it, or drop it by hand")

    def delete_created(self):
        if not self.created:
            return
        protected = self.topo.protected()
        described = {c["identifier"]: describe_instance(self.topo.rds(c["region"]), c["identifier"], with_tags=True)
                     for c in self.created}
        steps = drill.cleanup_plan(self.created, described, self.drill_id, protected)
        self.cleanup_result["steps"] = steps
        for step in steps:
            identifier, region = step["identifier"], step["region"]
            if step["action"] in ("gone", "not_ours"):
                continue
            if step["action"] == "refuse":
                self.cleanup_result["left_behind"].append(identifier)
                self.log.event(f"left {identifier}: {step['reason']}", phase="cleanup")
                continue
            try:
                if step["action"] == "delete":
                    self.delete_copy(identifier, region)
                rds = self.topo.rds(region)
                outcome = wait_until(lambda: describe_instance(rds, identifier), lambda d: d is None,
                                     timeout=self.params["cleanup_timeout"], interval=self.params["poll_interval"],
                                     phase=f"instance {identifier} deleted", state_of=status_of, clock=self.clock)
                self.log.transitions(f"instance {identifier}", outcome.transitions)
            except aws_errors() + (CallNotConfirmed, WaitTimeout, WaitFailed) as exc:
                step["reason"] = f"{identifier} could not be deleted: {exc}"
                self.cleanup_result["left_behind"].append(identifier)
                self.log.event(step["reason"], phase="cleanup")
                continue
            self.cleanup_result["removed"].append(identifier)
            self.log.event(f"removed {identifier} ({region})", phase="cleanup")

    def delete_copy(self, identifier, region):
        # Still modifying after the promotion, RDS refuses the delete for now: rds_resources.delete_once waits.
        self.calls.append({"call": "delete_db_instance", "region": region, "parameters": {
            "DBInstanceIdentifier": identifier, "SkipFinalSnapshot": True, "DeleteAutomatedBackups": True}})
        delete_once(once_client(self.module, region=region), self.topo.rds(region), INSTANCE, identifier,
                    timeout=self.params["cleanup_timeout"], interval=self.params["poll_interval"], clock=self.clock)
        self.log.event(f"delete requested: {identifier} ({region})", phase="cleanup")

    # -- what it saw
    def measurements(self):
        measured = dict(self.measured)
        if self.probes is not None:
            samples = self.probes.samples()
            lost = drill.writes_lost(samples, self.present)
            downtime = failover_drill.measure_downtime(samples, self.requested, self.params["probe_timeout"])
            counts = failover_drill.probe_counts(samples, self.params["probe_timeout"])
            measured.update(lost_writes=lost["lost_writes"], lost_write_numbers=lost["lost_write_numbers"],
                            lost_span_seconds=lost["lost_span_seconds"],
                            acknowledged_writes=lost["acknowledged_writes"], rows_found=lost["rows_found"],
                            rpo_seconds=drill.rpo_seconds(lost),
                            observed_downtime_seconds=downtime["observed_downtime_seconds"],
                            probes_sent=counts["probes_sent"], probes_failed=counts["probes_failed"],
                            read_only_errors=counts["read_only_errors"])
            if lost["lost_first_sent"] is not None:
                measured["lost_first_sent_at"] = self.elapsed_iso(lost["lost_first_sent"])
                measured["lost_last_acknowledged_at"] = self.elapsed_iso(lost["lost_last_acknowledged"])
        measured["duration_seconds"] = round(self.clock.elapsed(), 3)
        return measured


# --------------------------------------------------------------------------------------------------------- main

def argument_spec():
    spec = dict(
        mode=dict(type="str", default="rehearsal", choices=list(drill.MODES)),
        db_instance_identifier=dict(type="str"),
        dr_region=dict(type="str"),
        dr_instance_identifier=dict(type="str"),
        global_cluster_identifier=dict(type="str"),
        target_db_cluster_identifier=dict(type="str"),
        switch_back=dict(type="bool", default=False),
        replica_identifier=dict(type="str"),
        db_instance_class=dict(type="str"),
        db_subnet_group_name=dict(type="str"),
        vpc_security_group_ids=dict(type="list", elements="str"),
        ttl_hours=dict(type="int", default=24),
        tags=dict(type="dict"),
        max_lag_seconds=dict(type="float", default=60.0),
        abort_if_alarms=dict(type="list", elements="str", default=[]),
        max_rto_seconds=dict(type="float"),
        max_rpo_seconds=dict(type="float"),
        checks=restore_drill.checks_argument_spec(),
        probe=dict(type="bool"),
        dns_record=dict(type="str"),
        hosted_zone_id=dict(type="str"),
        dns_ttl=dict(type="int", default=60),
        notify_topic_arn=dict(type="str"),
        cleanup_timeout=dict(type="int", default=1800),
    )
    spec.update(probe_argument_spec(table="dbre_rds_dr_probe", settle_seconds=2.0))
    spec["probe_baseline_seconds"] = dict(type="float", default=1.0)
    spec.update(wait_argument_spec())
    spec.update(db_connection_argument_spec())
    spec.update(report_argument_spec())
    return spec


def option_problems(module):
    params = module.params
    found = drill.problems(params, module.region)
    credentials = bool(params["login_password"] or params["iam_auth"])
    if params["probe"] and not credentials:
        found.append("probe=true needs login_password or iam_auth=true: the probes write to the database")
    if params["checks"] and not credentials:
        found.append("checks need login_password or iam_auth=true to connect to the new writer")
    return found


def probe_table_problems(module, topo, runtime):
    """Refuse when probe_table names a table this drill may not use (read-only, also in check mode); in a real run
    drop the leftovers of dead drills first. None when a failover must go on without probes (the primary does not
    answer)."""
    connector = topo.member_connector(topo.writer) if topo.is_global else topo.connector(topo.source)
    table = module.params["probe_table"]
    if connector is None:
        warn(module, f"the writer {topo.writer['identifier']} could not be read; the failover goes on without write "
                     "probes, so lost writes are not counted")
        return None
    try:
        conn = connector.connect()
    except Exception as exc:  # pylint: disable=broad-except
        problem = (f"connecting to the primary {connector.target} for the probes failed ({short_message(exc)}): "
                   "check the login options and the network")
        if module.params["mode"] == "failover" and not permanent_error(exc):
            # A disaster may have taken the primary: fail over without probes rather than not at all.
            warn(module, f"{problem}; the failover goes on without write probes, so lost writes are not counted")
            return None
        return [problem]
    try:
        existing, marked = probe_table_state(conn, table), marked_probe_tables(conn)
        alive = {(i["schema"], i["table"]): owner_alive(parse_probe_marker(i["comment"])) for i in marked}
        found, leftovers = failover_drill.probe_table_decision(table, existing, marked, alive,
                                                               datetime.datetime.now(datetime.timezone.utc))
        if not found and not module.check_mode:
            for item in leftovers:
                if drop_marked_table(conn, item["schema"], item["table"],
                                     lambda marker, item=item: parse_probe_marker(item["comment"]) == marker):
                    runtime.log.event(f"leftover probe table {item['schema']}.{item['table']} removed: "
                                      f"{item['reason']}", phase="pre-checks")
        return found
    finally:
        conn.close()


def build_plan(module, topo, runtime):
    params = module.params
    started = runtime.clock.started_at
    drill_id = f"{started.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"
    plan = {"drill_id": drill_id, "mode": params["mode"], "replica": None, "replica_request": None}
    dns = {"record": params["dns_record"], "ttl": params["dns_ttl"]} if params["dns_record"] else None
    if params["mode"] == "rehearsal":
        replica = params["replica_identifier"] or drill.default_replica_identifier(
            params["db_instance_identifier"], started, drill_id[-6:])
        tags = restore_drill.drill_tags(drill_id, started, params["ttl_hours"], params["tags"], owner=owner_marker())
        plan["replica"] = replica
        if topo.drill_replica is None:
            plan["replica_request"] = drill.replica_request(topo.source, replica, topo.region, tags,
                                                            params["db_instance_class"],
                                                            drill.replica_placement(params, topo.dr_replica))
        else:
            plan["retag"] = drill.reuse_tag_request(topo.drill_replica, tags)
    plan["steps"] = drill.plan_steps(
        params["mode"], source=params["db_instance_identifier"], replica=plan["replica"], dr_region=topo.dr_region,
        region=topo.region, global_id=params["global_cluster_identifier"], writer=topo.writer, target=topo.target,
        switch_back=params["switch_back"], dns=dns, notify=params["notify_topic_arn"],
        dr_instance=params["dr_instance_identifier"], reuse=topo.drill_replica is not None)
    plan["writer_before"] = ({"identifier": topo.writer["identifier"], "region": topo.writer["region"]}
                             if topo.writer else {"identifier": params["db_instance_identifier"],
                                                  "region": topo.region})
    plan["dr_target"] = ({"identifier": topo.target["identifier"], "region": topo.target["region"]}
                         if topo.target else {"identifier": plan["replica"] or params["dr_instance_identifier"],
                                              "region": topo.dr_region})
    return plan


def notify(module, run, report):
    topic = module.params["notify_topic_arn"]
    if not topic:
        return None
    subject, message = drill.notification(report, module.params["mode"])
    try:
        sent = aws_client(module, "sns", region=drill.region_of_arn(topic)).publish(
            TopicArn=topic, Subject=subject, Message=message, aws_retry=True)
    except aws_errors() as exc:
        warn(module, f"Publishing the verdict to {topic} failed: {short_message(exc)}")
        return {"topic_arn": topic, "message_id": None, "error": short_message(exc)}
    run.log.event(f"verdict published to {topic}", phase="notify")
    return {"topic_arn": topic, "message_id": sent.get("MessageId"), "subject": subject}


def main():
    module = AnsibleAWSModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    found = option_problems(module)
    if found:
        module.fail_json(msg="Invalid DR drill options: " + "; ".join(found), problems=found, changed=False)
    topo = Topology(module)
    title = f"{params['mode'].capitalize()} DR drill of {topo.target_name}"
    runtime = DrillRuntime(module, "dr_drill", topo.target_name, title,
                           progress_log=None if module.check_mode else params["progress_log"])
    credentials = bool(params["login_password"] or params["iam_auth"])
    probing = params["mode"] != "rehearsal" and (params["probe"] if params["probe"] is not None else credentials)
    try:
        topo.read()
        if not topo.problems:
            topo.read_lag(credentials)
    except aws_errors() as exc:
        module.fail_json_aws(exc, msg=f"Reading the DR topology of {topo.target_name} failed: check the identifiers, "
                                      "the regions and the describe permissions in the notes; nothing was changed")
    problems = list(topo.problems)
    if not problems:
        what = f"the DR copy of {topo.target_name}"
        if params["mode"] != "rehearsal" or topo.dr_replica is not None:
            problems += drill.lag_problems(params["mode"], topo.lag["seconds"], params["max_lag_seconds"], what)
    # Probes write to the primary: without db_instance_identifier an instance failover has none to write to.
    probing = probing and (topo.is_global or topo.source is not None)
    if not problems and probing:
        found = probe_table_problems(module, topo, runtime)
        probing = found is not None
        problems += found or []
    if problems:
        runtime.refuse(problems, lag_seconds=topo.lag["seconds"])
    plan = build_plan(module, topo, runtime)
    if module.check_mode:
        module.exit_json(changed=True, passed=None, verdict="planned", mode=params["mode"], drill_id=plan["drill_id"],
                         plan=plan, lag_seconds=topo.lag["seconds"], lag_source=topo.lag["source"])
    runtime.log.event("pre-checks passed: " + ", ".join(s["call"] for s in plan["steps"]), phase="pre-checks")
    run = DrRun(module, runtime, topo, plan, probing)
    failure = runtime.act(run.steps, run.cleanup)
    measured = run.measurements()
    objectives = drill.objectives(params["mode"], measured, run.checks, params, run.cleanup_result)
    verdict = restore_drill.first_failure(objectives, failure.message if failure else None)
    runtime.log.event("drill passed" if verdict is None else f"drill failed: {verdict}", phase="verdict")
    details = {"plan": plan, "calls": run.calls, "checks": run.checks, "cleanup": run.cleanup_result,
               "writer_before": plan["writer_before"], "writer_after": run.writer_after, "dns": run.dns,
               "phases": runtime.log.phases}
    report = runtime.report(passed=verdict is None, objectives=objectives, measurements=measured, details=details,
                            failure=verdict)
    notification = notify(module, runtime, report)
    report["details"]["notification"] = notification
    result = dict(changed=bool(run.calls), passed=verdict is None, verdict="passed" if verdict is None else "failed",
                  failure=verdict, mode=params["mode"], drill_id=plan["drill_id"], plan=plan,
                  rto_seconds=measured.get("rto_seconds"), rpo_seconds=measured.get("rpo_seconds"),
                  lost_writes=measured.get("lost_writes"), measurements=measured, checks=run.checks,
                  objectives=objectives, writer={"before": plan["writer_before"], "after": run.writer_after},
                  dns=run.dns, notification=notification, cleanup=run.cleanup_result, calls=run.calls,
                  phases=runtime.log.phases)
    breach = None
    if run.cleanup_result["left_behind"]:
        failure = DrillFailure(f"DR drill of {topo.target_name} left behind: "
                               f"{', '.join(run.cleanup_result['left_behind'])}: delete them by hand (see "
                               "cleanup.steps for why)", "cleanup", interrupted=bool(failure and failure.interrupted))
    elif verdict is not None and failure is None:
        breach = f"DR {params['mode']} drill of {topo.target_name} failed: {verdict}"
    runtime.exit(result, report, failure, breach)


if __name__ == "__main__":
    main()
