#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rds_failover_test
short_description: Force an RDS failover and measure what clients actually see
version_added: "0.1.0"
description:
  - An imperative drill, not a state to converge to. Every real run forces a failover and reports V(changed=true).
  - Forces a failover of a Multi-AZ DB instance (C(RebootDBInstance) with C(ForceFailover)) or of an Aurora or Multi-AZ
    DB cluster (C(FailoverDBCluster), optionally to O(target_db_instance_identifier)).
  - Before anything changes it checks that the target exists and is C(available), that a DB instance really is Multi-AZ,
    that nothing is pending unless O(allow_pending_modifications=true), that a cluster has a reader to fail over to and
    that none of the CloudWatch alarms named in O(abort_if_alarms) is in C(ALARM). A failed check fails the task and
    nothing is called. In check mode the module runs these checks (and a test connection when it would probe) and
    returns the plan only.
  - When DB credentials are given, a probe loop writes a numbered row (or runs C(SELECT 1)) against the writer endpoint
    (or, with O(probe_endpoint), through an RDS Proxy endpoint in front of it) every O(probe_interval) seconds,
    from before the failover until writes have succeeded again for O(probe_settle_seconds). It measures the outage
    as clients see it, counts writes refused because the endpoint had become read-only, and afterwards checks that
    every write the server acknowledged is still there.
  - The probe table is the drill's own. It is created for the drill and never reused, since a table of that name
    that the module did not create is refused before any change. It is marked with a comment that carries the
    drill's id, its process and the end it announces. It is dropped in every outcome, also when the task is interrupted
    (SIGTERM, SIGINT, SIGHUP, or the end of the process that started the module), and only while it still carries
    that marker. A probe table left by a drill that was killed (SIGKILL, a lost host) is dropped by the next drill
    against the same database once its process is gone or its announced end has passed.
  - The failover is requested exactly once. A throttled request is sent again with backoff; when the answer is lost
    (a read timeout, a dropped connection, a 5xx), the module first looks for the failover (the RDS event, the
    status, the writer having moved) and sends the request again only when RDS shows none.
    RV(measurements.failover_request) tells how it went.
  - The result and the optional report (JSON, Markdown with a timeline and a verdict table, JUnit XML) hold the
    measurements with UTC timestamps and durations in seconds, and the verdict against O(max_downtime_seconds) and
    O(max_lost_writes).
  - Works with C(async)/C(poll); O(progress_log) gets one line per phase, for C(tail -f).
author:
  - dbre.rds maintainers (@dbre-rds)
options:
  db_instance_identifier:
    description:
      - The Multi-AZ DB instance to fail over. Mutually exclusive with O(db_cluster_identifier).
    type: str
  db_cluster_identifier:
    description:
      - The Aurora (or Multi-AZ) DB cluster to fail over. Mutually exclusive with O(db_instance_identifier).
    type: str
  target_db_instance_identifier:
    description:
      - The reader of O(db_cluster_identifier) that should become the writer. Without it RDS picks one.
    type: str
  allow_pending_modifications:
    description:
      - Run the drill even when the target has pending modifications, which the failover applies.
    type: bool
    default: false
  abort_if_alarms:
    description:
      - Names of CloudWatch alarms that must exist and must not be in C(ALARM) for the drill to start, like the stop
        conditions of AWS FIS.
    type: list
    elements: str
    default: []
  probe:
    description:
      - Whether to probe the writer endpoint. When not set, the module probes if O(login_user) and O(login_password)
        (or O(iam_auth=true)) are given.
      - V(true) without credentials is an error.
    type: bool
  probe_endpoint:
    description:
      - Where the probes connect. Without it they connect to the writer endpoint of the instance or cluster.
      - The name of an RDS Proxy (its default endpoint) or of an RDS Proxy endpoint (C(DBProxyEndpointName)) in front
        of the instance or cluster; the probes then connect to that endpoint's address on the proxy's port (5432 for
        C(POSTGRESQL)), so the drill measures what clients of the proxy see. A proxy name is looked up first.
      - Before any change the module checks that the proxy (and the endpoint) exist and are C(available), that the
        proxy is for C(POSTGRESQL), that its target group routes to this instance or cluster and, with
        O(probe_mode=write), that the endpoint is not read-only. Whether the writer moved is still judged on the
        instance or cluster itself.
      - Needs probing; not together with O(login_host) or O(login_port). RV(measurements.probe_endpoint) says which
        path was measured, and the report's title names the proxy endpoint.
    type: str
    version_added: "0.2.0"
  probe_mode:
    description:
      - V(write) inserts a numbered row into O(probe_table) per probe and checks for lost writes afterwards.
      - V(read) runs C(SELECT 1); it measures downtime but cannot see lost writes or a read-only writer.
    type: str
    choices: [write, read]
    default: write
  probe_interval:
    description:
      - Seconds between two probes. It sets the resolution of the measured downtime.
    type: float
    default: 0.25
  probe_timeout:
    description:
      - Seconds a probe waits to connect (libpq's minimum is 2) and for its statement to finish.
      - A probe that still succeeds, but only after longer than this, counts as failed in the downtime (a client with
        this timeout would have given up) and in RV(measurements.probes_stalled). A pooler such as RDS Proxy holds
        queries while its target is away instead of failing them.
    type: int
    default: 2
  probe_settle_seconds:
    description:
      - After RDS reports the failover done, how many seconds probes must succeed without a failure before the drill
        ends.
    type: float
    default: 5.0
  probe_table:
    description:
      - Table the write probes insert into, in the default schema of O(login_db). A plain lower-case identifier.
      - The module creates it and drops it afterwards. When a table of that name exists and is not a probe table
        left by a drill that is gone, the drill is refused before any change, so an application table is never
        written to or dropped.
    type: str
    default: dbre_rds_failover_probe
  max_downtime_seconds:
    description:
      - Objective for the downtime clients observe, in seconds. Needs probing.
      - Without it the downtime is measured and reported but not judged.
    type: float
  max_lost_writes:
    description:
      - Objective for acknowledged writes that are missing after the failover (write probes only).
    type: int
    default: 0
  fail_on_breach:
    description:
      - Fail the task, with the report attached, when the failover did not happen or an objective did not hold.
      - With V(false) the task succeeds and RV(passed) tells the verdict.
    type: bool
    default: true
  progress_log:
    description:
      - File on the managed node to which the module appends one line per phase (UTC time, seconds since start,
        phase), so a person can C(tail -f) a long drill, for example one run with C(async).
    type: path
  wait_timeout:
    description:
      - Bounds the whole drill, from the first probe to the settled writes. When it passes the module fails, names the
        phase that was waiting and writes the report so far.
      - Removing the probe table afterwards may take up to 60 more seconds if the database is unreachable.
      - At most 86400. O(probe_settle_seconds), O(probe_interval) and O(poll_interval) must be below it.
  poll_interval:
    description:
      - Seconds between two describe calls while waiting for RDS to report the failover done.
        RV(measurements.api_failover_seconds) has this resolution.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
  - dbre.rds.wait
  - dbre.rds.db_connection
  - dbre.rds.report
attributes:
  check_mode:
    support: full
    description: Runs the pre-checks and returns the plan; no failover, no probe table.
  diff_mode:
    support: none
    description: A drill changes no configuration to compare.
notes:
  - "IAM actions: C(rds:DescribeDBInstances), C(rds:DescribeDBClusters), C(rds:DescribeEvents),
    C(rds:RebootDBInstance) (Multi-AZ instances), C(rds:FailoverDBCluster) (clusters), C(cloudwatch:DescribeAlarms)
    (with O(abort_if_alarms)), C(rds:DescribeDBProxies), C(rds:DescribeDBProxyEndpoints) and
    C(rds:DescribeDBProxyTargets) (with O(probe_endpoint)), and C(rds-db:connect) on the DB user with
    O(iam_auth=true)."
  - The probes connect from where the module runs (usually the controller or an AWX execution node), so that host
    needs network access to the writer endpoint. Run it where your application runs to measure what it sees.
  - A Multi-AZ DB instance keeps its endpoint name; the module resolves it again on every reconnect, as a client would.
seealso:
  - module: amazon.aws.rds_instance
    description: Create and convert Multi-AZ DB instances (C(multi_az)).
  - module: amazon.aws.rds_cluster
    description: Manage Aurora clusters.
  - module: amazon.aws.rds_instance_info
    description: Read the instance state around a drill.
  - module: amazon.aws.cloudwatch_metric_alarm
    description: The alarms to name in O(abort_if_alarms).
  - module: community.postgresql.postgresql_query
    description: Check application data after a drill.
  - module: dbre.rds.rds_proxy
    description: The RDS Proxy whose endpoint O(probe_endpoint) names.
"""

EXAMPLES = r"""
- name: Check what a failover drill would do (pre-checks only)
  dbre.rds.rds_failover_test:
    db_instance_identifier: orders-prod
    abort_if_alarms: [orders-prod-cpu-high, orders-prod-replica-lag]
  check_mode: true

# From an AWX job template on a monthly schedule (RRULE:FREQ=MONTHLY): the JUnit file in report_dir shows the
# verdict in AWX, and set_stats passes it on to the next node of a workflow.
- name: Monthly failover drill of a Multi-AZ instance, judged on what clients see
  dbre.rds.rds_failover_test:
    db_instance_identifier: orders-prod
    login_user: drill
    login_password: "{{ vault_drill_password }}"
    login_db: orders
    max_downtime_seconds: 120
    max_lost_writes: 0
    abort_if_alarms: [orders-prod-cpu-high]
    report_dir: /var/lib/awx/drills
    progress_log: /var/log/dbre/failover-orders-prod.log
    wait_timeout: 900
  register: failover_drill_result

- name: Pass the verdict to the next job of an AWX workflow
  ansible.builtin.set_stats:
    data:
      failover_passed: "{{ failover_drill_result.passed }}"
      failover_downtime_seconds: "{{ failover_drill_result.measurements.observed_downtime_seconds }}"
      failover_report: "{{ failover_drill_result.report_files.md | default(omit) }}"

- name: Fail an Aurora cluster over to a chosen reader, with an IAM token, in the background
  dbre.rds.rds_failover_test:
    db_cluster_identifier: billing-aurora
    target_db_instance_identifier: billing-aurora-2
    login_user: drill_iam
    iam_auth: true
    ssl_mode: verify-full
    ca_cert: /etc/ssl/rds/global-bundle.pem
    probe_interval: 0.5
    report_dir: /var/lib/dbre/drills
    progress_log: /var/log/dbre/failover-billing.log
  async: 1200
  poll: 10

- name: Measure the same failover as clients of the RDS Proxy in front of the instance see it
  dbre.rds.rds_failover_test:
    db_instance_identifier: orders-prod
    probe_endpoint: orders-prod-proxy
    login_user: drill
    login_password: "{{ vault_drill_password }}"
    ssl_mode: require
    max_downtime_seconds: 30
    report_dir: /var/lib/awx/drills
  register: proxy_drill

- name: Record the result of a drill without failing the play
  dbre.rds.rds_failover_test:
    db_instance_identifier: orders-staging
    login_user: drill
    login_password: "{{ vault_drill_password }}"
    probe_mode: read
    fail_on_breach: false
  register: staging_drill

- name: Show the observed downtime
  ansible.builtin.debug:
    msg: >-
      Clients saw {{ staging_drill.measurements.observed_downtime_seconds }} s of downtime;
      passed: {{ staging_drill.passed }}
"""

RETURN = r"""
passed:
  description:
    - True when the failover happened and every objective held. Null in check mode.
  returned: always
  type: bool
  sample: true
plan:
  description: What the drill does or did.
  returned: always
  type: dict
  contains:
    kind:
      description: V(instance) or V(cluster).
      type: str
      sample: instance
    target:
      description: The instance or cluster identifier.
      type: str
      sample: orders-prod
    action:
      description: The RDS API call, V(reboot_db_instance) or V(failover_db_cluster).
      type: str
      sample: reboot_db_instance
    api_params:
      description: Its parameters.
      type: dict
      sample: {"DBInstanceIdentifier": "orders-prod", "ForceFailover": true}
    writer_before:
      description: The writer instance before the failover.
      type: str
      sample: orders-prod
    az_before:
      description: Availability zone of the writer before the failover.
      type: str
      sample: us-east-1a
    secondary_az_before:
      description: Availability zone of the standby of a Multi-AZ DB instance.
      type: str
      sample: us-east-1b
    requested_writer:
      description: O(target_db_instance_identifier), if given.
      type: str
      sample: null
    expected:
      description: What must change for the failover to count, in words.
      type: str
      sample: the primary of orders-prod moves from us-east-1a to us-east-1b
    probing:
      description:
        - The probed endpoint and mode, and the leftover probe tables of dead drills the drill drops first;
          null without probing.
        - C(probe_endpoint) is the path the probes take, as in RV(measurements.probe_endpoint), and C(path) says it
          in words.
      type: dict
      sample: {"endpoint": "orders-prod.abc.us-east-1.rds.amazonaws.com:5432/orders", "mode": "write", "interval": 0.25,
               "leftover_probe_tables": [], "path": "directly on the writer endpoint of orders-prod
               (orders-prod.abc.us-east-1.rds.amazonaws.com:5432)",
               "probe_endpoint": {"kind": "writer", "name": "orders-prod",
                                  "address": "orders-prod.abc.us-east-1.rds.amazonaws.com", "port": 5432}}
measurements:
  description: Everything the drill measured. Times are ISO 8601 UTC, durations seconds; null when not measured.
  returned: when the drill started (not in check mode)
  type: dict
  contains:
    requested_at:
      description: When the failover call was made.
      type: str
      sample: "2026-11-27T08:00:03.120Z"
    api_available_at:
      description: When a describe call first showed the target available again after the failover.
      type: str
      sample: "2026-11-27T08:01:10.500Z"
    api_failover_seconds:
      description: From RV(measurements.requested_at) to RV(measurements.api_available_at).
      type: float
      sample: 67.38
    failover_started_event_at:
      description: Time of the RDS event saying the failover started.
      type: str
      sample: "2026-11-27T08:00:04.000Z"
    failover_completed_event_at:
      description: Time of the RDS event saying the failover completed.
      type: str
      sample: "2026-11-27T08:01:02.000Z"
    event_failover_seconds:
      description: Between those two events.
      type: float
      sample: 58.0
    first_failed_probe_at:
      description: When the first probe after the request failed.
      type: str
      sample: "2026-11-27T08:00:05.870Z"
    last_failed_probe_at:
      description: When the last failed probe was sent.
      type: str
      sample: "2026-11-27T08:00:41.120Z"
    first_success_after_at:
      description: When the first successful write (read with O(probe_mode=read)) after the last failure completed.
      type: str
      sample: "2026-11-27T08:00:41.400Z"
    observed_downtime_seconds:
      description:
        - The outage clients saw, from the first failed (or stalled, see RV(measurements.probes_stalled)) probe to the
          first successful one after the last failure.
        - 0 when no probe failed; null without probing or when probes never succeeded again.
      type: float
      sample: 35.53
    writer_before:
      description: Writer instance before.
      type: str
      sample: orders-prod
    writer_after:
      description: Writer instance after.
      type: str
      sample: orders-prod
    az_before:
      description: Writer availability zone before.
      type: str
      sample: us-east-1a
    az_after:
      description: Writer availability zone after.
      type: str
      sample: us-east-1b
    failover_happened:
      description: The writer moved, to another AZ (instance) or to another instance, the requested one if given
        (cluster).
      type: bool
      sample: true
    probes_sent:
      description: Probes sent.
      type: int
      sample: 180
    probes_failed:
      description: Probes that failed.
      type: int
      sample: 141
    read_only_errors:
      description: Probes refused because the endpoint was read-only (SQLSTATE 25006).
      type: int
      sample: 0
    probes_stalled:
      description: Probes that succeeded only after more than O(probe_timeout) seconds; they count as failed in
        RV(measurements.observed_downtime_seconds). Null without probing.
      type: int
      sample: 0
    acknowledged_writes:
      description: Write probes the server acknowledged.
      type: int
      sample: 39
    lost_writes:
      description: Acknowledged writes missing afterwards. Null without write probes or when the table could not be
        read.
      type: int
      sample: 0
    lost_write_numbers:
      description: Numbers of the first 50 lost writes.
      type: list
      elements: int
      sample: []
    rows_found:
      description: Rows found in the probe table after the failover. Null when it could not be read.
      type: int
      sample: 39
    unacknowledged_rows_found:
      description: Rows committed whose acknowledgement never reached the client (not a loss).
      type: int
      sample: 0
    probe_mode:
      description: O(probe_mode), or null without probing.
      type: str
      sample: write
    probe_interval:
      description: O(probe_interval), or null without probing.
      type: float
      sample: 0.25
    probe_endpoint:
      description:
        - Which path the probes measured, or null without probing.
        - C(kind) is V(writer) (the writer endpoint of the instance or cluster) or V(proxy) (an RDS Proxy endpoint,
          O(probe_endpoint)); C(name) is the instance or cluster identifier, or the proxy endpoint's name; C(address)
          and C(port) are where the probes connected.
      type: dict
      sample: {"kind": "proxy", "name": "orders-prod-proxy",
               "address": "orders-prod-proxy.proxy-abc.us-east-1.rds.amazonaws.com", "port": 5432}
    probe_table_removed:
      description: Whether the probe table was removed. Null without write probes.
      type: bool
      sample: true
    leftover_probe_tables_removed:
      description: Probe tables of earlier drills that are gone (killed, or past their announced end), dropped before
        this drill created its own, as C(schema.table).
      type: list
      elements: str
      sample: ["public.dbre_rds_failover_probe"]
    failover_request:
      description:
        - How the failover request went. Null when it was not sent.
        - C(attempts) requests sent, C(throttled) of them refused by throttling, C(lost_answers) whose answer never
          came (a read timeout, a 5xx), and C(confirmed_by), V(answer) when RDS answered, else what showed the
          failover had started (an RDS event, the status, the writer having moved).
      type: dict
      sample: {"attempts": 1, "throttled": 0, "lost_answers": 0, "confirmed_by": "answer"}
    duration_seconds:
      description: Length of the whole drill.
      type: float
      sample: 82.4
objectives:
  description: The verdict, one entry per objective.
  returned: when the drill started (not in check mode)
  type: list
  elements: dict
  sample: [{"name": "observed_downtime_seconds", "objective": 120, "observed": 35.53, "unit": "s", "held": true}]
timeline:
  description: Phases, status transitions, RDS events and probe milestones on one time axis.
  returned: when the drill started (not in check mode)
  type: list
  elements: dict
  sample: [{"at": "2026-11-27T08:00:03.120Z", "elapsed_seconds": 1.02, "event": "failover requested"}]
events:
  description: The RDS failover events (describe_events), oldest first, with C(date) in ISO 8601 UTC.
  returned: when the drill started (not in check mode)
  type: list
  elements: dict
  sample: [{"message": "Multi-AZ instance failover started.", "date": "2026-11-27T08:00:04.000Z"}]
report:
  description: The report as written to O(report_dir) (title, verdict, objectives, timeline, measurements, details).
  returned: when the drill started (not in check mode)
  type: dict
report_files:
  description: Paths of the report files, by format (json, md, xml).
  returned: when O(report_dir) is set and the drill started
  type: dict
  sample: {"json": "/var/lib/awx/drills/failover_test-orders-prod-20261127T080002Z.json"}
phase:
  description: On a failure, the phase that was running (on a timeout, the one still waiting).
  returned: on failure
  type: str
  sample: failover to complete
interrupted_by:
  description: The signal that interrupted the drill (the end of the process that started it shows as V(SIGTERM)).
  returned: when the drill was interrupted
  type: str
  sample: SIGTERM
"""


import datetime
import uuid

from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.dbre.rds.plugins.module_utils import failover_drill as drill
from ansible_collections.dbre.rds.plugins.module_utils import rds_resources
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import CallNotConfirmed
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import ONCE_DEFAULT_DEADLINE
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import aws_client
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import call_once
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import once_client
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import rds_client
from ansible_collections.dbre.rds.plugins.module_utils.clock import utc_iso
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import report_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import DrillAborted
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import DrillRuntime
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import aws_errors
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import owner_alive
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import owner_marker
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import connector_for
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import db_connection_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import endpoint_of
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import has_credentials
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import permanent_error
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import with_connection
from ansible_collections.dbre.rds.plugins.module_utils.probing import WriteProbes
from ansible_collections.dbre.rds.plugins.module_utils.probing import drop_marked_table
from ansible_collections.dbre.rds.plugins.module_utils.probing import marked_probe_tables
from ansible_collections.dbre.rds.plugins.module_utils.probing import probe_marker
from ansible_collections.dbre.rds.plugins.module_utils.probing import probe_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.probing import probe_table_state
from ansible_collections.dbre.rds.plugins.module_utils.probing import short_message
from ansible_collections.dbre.rds.plugins.module_utils.waiting import WaitFailed
from ansible_collections.dbre.rds.plugins.module_utils.waiting import WaitTimeout
from ansible_collections.dbre.rds.plugins.module_utils.waiting import wait_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.waiting import wait_until
from ansible_collections.dbre.rds.plugins.module_utils.module_warnings import warn

BASELINE_PROBES = 3
CLEANUP_GRACE_SECONDS = 60
# RDS stamps events with its own clock; allow this much difference from the module's.
EVENT_CLOCK_SKEW_SECONDS = 2
# A probe table's marker announces the end of its drill: wait_timeout, the cleanup grace and this margin later.
MARKER_MARGIN_SECONDS = 600


# ---------------------------------------------------------------------------------------------- thin AWS wrappers

def describe_target(rds, kind, identifier):
    """(described instance or cluster or None, {member identifier: described instance})."""
    if kind == drill.INSTANCE:
        return rds_resources.describe_instance(rds, identifier), {}
    cluster = rds_resources.describe_cluster(rds, identifier)
    return cluster, (rds_resources.describe_cluster_members(rds, identifier) if cluster else {})


def describe_alarms(module, names):
    if not names:
        return []
    cloudwatch = aws_client(module, "cloudwatch")
    found = cloudwatch.describe_alarms(AlarmNames=list(names), aws_retry=True)
    return found.get("MetricAlarms", []) + found.get("CompositeAlarms", [])


def describe_failover_events(rds, plan, since):
    source_type = "db-instance" if plan["kind"] == drill.INSTANCE else "db-cluster"
    return drill.failover_events(rds_resources.events_since(rds, source_type, plan["target"], since), since)


# ----------------------------------------------------------------------------------------------- thin SQL wrappers

def read_probe_tables(connector, table):
    """(the table ``table`` names or None, every marked probe table) through one short connection."""
    conn = connector.connect()
    try:
        return (probe_table_state(conn, table) if table else None), marked_probe_tables(conn)
    finally:
        conn.close()


# ------------------------------------------------------------------------------------------------------ the drill

class FailoverRun:
    """The mutating part of one drill, after the pre-checks: probe setup, failover, settling, and the cleanup.

    Every wait goes through wait_until against one deadline (wait_timeout); the runtime turns whatever stops a step
    (a timeout, an abort, an AWS error, a signal) into a failure and always runs :meth:`cleanup`.
    """

    def __init__(self, module, runtime, rds, plan, connector=None, leftovers=()):
        self.module = module
        self.params = module.params
        self.runtime = runtime
        self.clock = runtime.clock
        self.log = runtime.log
        self.rds = rds
        self.plan = plan
        self.connector = connector
        self.leftovers = list(leftovers)
        self.drill_id = uuid.uuid4().hex[:12]
        self.deadline = self.clock.elapsed() + self.params["wait_timeout"]
        self.probes = None
        self.table_removed = None
        self.leftovers_removed = []
        self.present_rows = None
        self.requested = None
        self.request_outcome = None
        self.transitions = []
        self.final = (None, {})
        self.available = None
        self.events = {"started": None, "completed": None, "events": []}

    @property
    def prober(self):
        """The probe loop once it runs (None before, and without probes)."""
        return self.probes.loop if self.probes is not None else None

    @property
    def writes(self):
        return self.connector is not None and self.params["probe_mode"] == "write"

    def remaining(self):
        return max(0.0, self.deadline - self.clock.elapsed())

    def _wait(self, phase, fetch, done, interval, timeout=None, **kwargs):
        self.log.event(f"waiting for {phase}", phase=phase)
        return wait_until(fetch, done, timeout=self.remaining() if timeout is None else timeout, interval=interval,
                          phase=phase, clock=self.clock, **kwargs)

    # -- steps
    def steps(self):
        if self.connector is not None:
            self.runtime.enter("probe setup")
            self.start_probing()
        self.runtime.enter("failover request")
        self.request_failover()
        self.runtime.enter("failover to complete")
        self.wait_for_failover()
        if self.connector is not None:
            self.runtime.enter("settling")
            self.settle()
        self.runtime.enter("events")
        self.read_events()

    def start_probing(self):
        table = self.params["probe_table"]
        mode = self.params["probe_mode"]
        marker = None
        if mode == "write":
            expires = self.clock.now() + datetime.timedelta(
                seconds=self.params["wait_timeout"] + CLEANUP_GRACE_SECONDS + MARKER_MARGIN_SECONDS)
            marker = probe_marker(self.drill_id, owner_marker(), self.plan["target"], utc_iso(self.clock.now()),
                                  utc_iso(expires))
        # The table stays on the server the endpoint reaches (a Multi-AZ standby, the cluster's shared storage): a
        # table missing there at the end was dropped by someone else, and which rows survived is unknown.
        self.probes = WriteProbes(self.connector, table, self.drill_id, marker, self.clock, mode=mode,
                                  interval=self.params["probe_interval"], timeout=self.params["probe_timeout"],
                                  absent_means_lost=False)
        try:
            if self.leftovers:
                with_connection(self.connector, self.remove_leftovers)
            if mode == "write":
                # Marked first: an interruption right after the CREATE still leads the cleanup to the table, which
                # drops it only if it carries this drill's marker.
                self.probes.create()
                self.log.event(f"probe table {table} created (drill {self.drill_id})", phase="probe setup")
        except Exception as exc:  # pylint: disable=broad-except
            raise DrillAborted("probe setup", f"Setting up the probes on {self.connector.target} failed "
                               f"({short_message(exc)}): check the login options and that probe_table {table} is "
                               "free; no failover was requested", exc)
        self.probes.begin()
        self.runtime.enter("baseline probes")
        self.log.event("waiting for baseline probes", phase="baseline probes")
        try:
            self.probes.wait_baseline(BASELINE_PROBES, timeout=min(self.remaining(), 30))
        except (WaitTimeout, WaitFailed) as exc:
            failed = [s for s in self.prober.samples() if not s["ok"]]
            detail = failed[-1]["message"] if failed else "no answer"
            raise DrillAborted("baseline probes", f"Probing {self.connector.target} failed before the failover "
                               f"({detail}): check the login options and the network; no failover was requested",
                               exc)
        self.log.event(f"baseline: {self.prober.successes()} probes succeeded", phase="baseline probes")

    def remove_leftovers(self, conn):
        """Drop the probe tables of drills that are gone (their marker, re-read under lock, still says so)."""
        for item in self.leftovers:
            try:
                dropped = drop_marked_table(conn, item["schema"], item["table"],
                                            lambda marker, item=item: item["comment"] is not None
                                            and drill.parse_probe_marker(item["comment"]) == marker)
            except Exception as exc:  # pylint: disable=broad-except
                warn(self.module, f"Could not drop the leftover probe table {item['schema']}.{item['table']} "
                     f"({short_message(exc)}); drop it by hand")
                continue
            if dropped:
                name = f"{item['schema']}.{item['table']}"
                self.leftovers_removed.append(name)
                self.log.event(f"leftover probe table {name} removed: {item['reason']}", phase="probe setup")

    def took_effect(self):
        described, members = describe_target(self.rds, self.plan["kind"], self.plan["target"])
        events = describe_failover_events(self.rds, self.plan, self.clock.at(self.requested - EVENT_CLOCK_SKEW_SECONDS))
        return drill.failover_evidence(self.plan, described, members, events)

    def request_failover(self):
        self.requested = self.clock.elapsed()
        self.log.event(f"failover requested ({self.plan['action']})", elapsed=self.requested, phase="failover request")
        try:
            self.request_outcome = call_once(once_client(self.module), self.plan["action"], self.plan["api_params"],
                                             self.took_effect,
                                             deadline_seconds=min(self.remaining(), ONCE_DEFAULT_DEADLINE))
        except CallNotConfirmed as exc:
            self.request_outcome = exc.outcome
            self.requested = None
            raise DrillAborted("failover request", f"Requesting the failover of {self.plan['target']} was not "
                               f"confirmed ({exc}): RDS shows no failover; check the API limits and run the drill "
                               "again", exc.cause)
        except aws_errors() as exc:
            self.requested = None
            raise DrillAborted("failover request", f"Requesting the failover of {self.plan['target']} failed: check "
                               "the error and the target's state; RDS did not start a failover", exc)
        outcome = self.request_outcome
        if outcome["attempts"] > 1 or outcome["confirmed_by"] != "answer":
            self.log.event(f"failover request confirmed by {outcome['confirmed_by']} after {outcome['attempts']} "
                           f"attempt(s), {outcome['throttled']} throttled, {outcome['lost_answers']} lost answer(s)",
                           phase="failover request")

    def wait_for_failover(self):
        seen = set()
        kind = self.plan["kind"]

        def fetch():
            described, members = describe_target(self.rds, kind, self.plan["target"])
            seen.add(drill.resource_status(kind, described))
            return described, members

        def done(value):
            described, members = value
            if drill.resource_status(kind, described) != "available":
                return False
            writer, az = drill.writer_location(kind, described, members)
            return drill.failover_moved(self.plan, writer, az) or bool(seen - {"available"})

        started = self.clock.elapsed()
        try:
            outcome = self._wait("failover to complete", fetch, done, self.params["poll_interval"],
                                 state_of=lambda v: drill.status_label(kind, *v),
                                 failed=lambda v: rds_resources.stops_waiting(v[0]))
        except (WaitTimeout, WaitFailed) as exc:
            self._keep_transitions(exc.transitions, started)
            self.final = exc.last_value or (None, {})
            raise
        self._keep_transitions(outcome.transitions, started)
        self.final = outcome.value
        self.available = self.transitions[-1]["elapsed_seconds"]
        self.log.event("RDS reports the failover done", elapsed=self.available, phase="failover to complete")

    def _keep_transitions(self, transitions, started):
        for item in transitions:
            self.transitions.append(dict(item, elapsed_seconds=round(started + item["elapsed_seconds"], 3)))

    def settle(self):
        settle = self.params["probe_settle_seconds"]
        phase = "writes to settle" if self.params["probe_mode"] == "write" else "reads to settle"
        since = self.clock.elapsed()
        self._wait(phase, lambda: drill.settled_for(self.prober.samples(), self.requested, self.clock.elapsed()),
                   lambda seconds: seconds >= settle, self.params["probe_interval"],
                   state_of=lambda s: "settled" if s >= settle else ("succeeding" if s > 0 else "failing"),
                   permanent=self.probes.permanent_error_since(since))
        self.log.event(f"probes succeeded for {settle:g} s", phase="settling")

    def read_events(self):
        since = self.clock.at(self.requested - EVENT_CLOCK_SKEW_SECONDS)
        try:
            self.events = describe_failover_events(self.rds, self.plan, since)
        except aws_errors() as exc:
            warn(self.module, f"Reading the RDS events of {self.plan['target']} failed: {short_message(exc)}")

    # -- cleanup, whatever happened
    def cleanup(self, failure):
        self.stop_probing()
        if failure is not None and self.requested is not None and not self.events["events"]:
            self.read_events()

    def stop_probing(self):
        """Stop the loop, count the rows and drop the probe table (only if still marked as this drill's), waiting a
        little if the database is still away."""
        if self.prober is not None:
            self.probes.stop()
            self.log.event(f"probing stopped after {len(self.prober.samples())} probes", phase="cleanup")
        if self.probes is None or not self.probes.created:
            return
        table = self.params["probe_table"]
        grace = max(self.remaining(), min(CLEANUP_GRACE_SECONDS, self.params["wait_timeout"]))
        self.present_rows, dropped = self.probes.finish(grace=grace, interval=max(1.0, self.params["probe_interval"]))
        self.table_removed = dropped
        if self.probes.error is not None:
            warn(self.module, f"Could not remove the probe table {table} on {self.connector.target} "
                 f"({self.probes.error}); the next drill drops it, or drop it by hand")
        elif dropped:
            self.log.event(f"probe table {table} removed", phase="cleanup")
        else:
            warn(self.module, f"The probe table {table} on {self.connector.target} no longer carries the marker of "
                 f"drill {self.drill_id}: it was left alone")

    # -- what it saw
    def measurements(self):
        probing = None if self.prober is None else {"mode": self.params["probe_mode"],
                                                    "interval": self.params["probe_interval"],
                                                    "timeout": self.params["probe_timeout"],
                                                    "endpoint": (self.plan["probing"] or {}).get("probe_endpoint")}
        return drill.measure(self.plan, started_at=self.clock.started_at, duration=self.clock.elapsed(),
                             requested=self.requested, available=self.available, final=self.final,
                             events=self.events, samples=self.prober.samples() if self.prober else [],
                             probing=probing, present_rows=self.present_rows, table_removed=self.table_removed,
                             failover_request=self.request_outcome, leftovers_removed=self.leftovers_removed)

    def timeline(self):
        return drill.timeline(started_at=self.clock.started_at, log=self.log.timeline, transitions=self.transitions,
                              events=self.events, samples=self.prober.samples() if self.prober else [],
                              requested=self.requested, stall_seconds=self.params["probe_timeout"])


def snake_events(events):
    return [camel_dict_to_snake_dict(dict(event, Date=utc_iso(event.get("Date")))) for event in events]


# --------------------------------------------------------------------------------------------------------- main

def argument_spec():
    spec = dict(
        db_instance_identifier=dict(type="str"),
        db_cluster_identifier=dict(type="str"),
        target_db_instance_identifier=dict(type="str"),
        allow_pending_modifications=dict(type="bool", default=False),
        abort_if_alarms=dict(type="list", elements="str", default=[]),
        probe=dict(type="bool"),
        probe_endpoint=dict(type="str"),
        probe_mode=dict(type="str", choices=["write", "read"], default="write"),
    )
    spec.update(probe_argument_spec(table="dbre_rds_failover_probe", settle_seconds=5.0))
    spec.update(wait_argument_spec())
    spec.update(db_connection_argument_spec())
    spec.update(report_argument_spec())
    return spec


def read_target(module, rds, kind, identifier):
    """The target, its members and the guardrail alarms, as RDS and CloudWatch describe them."""
    try:
        described, members = describe_target(rds, kind, identifier)
        return described, members, describe_alarms(module, module.params["abort_if_alarms"])
    except aws_errors() as exc:
        module.fail_json_aws(exc, msg=f"Describing {identifier} and its guardrail alarms failed: check the "
                                      "credentials, the region and the IAM permissions in the notes")


def target_problems(params, kind, identifier, described, members, alarms):
    if kind == drill.INSTANCE:
        found = drill.instance_problems(identifier, described, params["allow_pending_modifications"])
    else:
        found = drill.cluster_problems(identifier, described, members, params["target_db_instance_identifier"],
                                       params["allow_pending_modifications"])
    return found + drill.alarm_problems(params["abort_if_alarms"], alarms)


def read_probe_path(module, rds, kind, identifier, described, members):
    """Where the probes connect, ``(path, problems)``: the writer endpoint, or the RDS Proxy endpoint that
    probe_endpoint names (a proxy name first, then an endpoint name), checked against the drilled target."""
    params = module.params
    name = params["probe_endpoint"]
    if name is None:
        return drill.writer_probe_path(identifier, endpoint_of(described), params), []
    try:
        proxy = rds_resources.describe_proxy(rds, name)
        endpoint = None
        if proxy is None:
            endpoint = rds_resources.describe_proxy_endpoint(rds, name)
            if endpoint is not None:
                proxy = rds_resources.describe_proxy(rds, endpoint["DBProxyName"])
        targets = rds_resources.describe_proxy_targets(rds, proxy["DBProxyName"]) if proxy else []
    except aws_errors() as exc:
        module.fail_json_aws(exc, msg=f"Describing the RDS Proxy endpoint {name} (probe_endpoint) failed: check the "
                                      "region and allow rds:DescribeDBProxies, rds:DescribeDBProxyEndpoints and "
                                      "rds:DescribeDBProxyTargets; nothing was changed")
    return drill.proxy_probe_path(name, kind, identifier, proxy, endpoint, targets, list(members),
                                  params["probe_mode"])


def read_probe_state(module, connector):
    """Connect once (the probes' credentials work) and read the probe table name's owner and the leftovers."""
    table = module.params["probe_table"] if module.params["probe_mode"] == "write" else None
    try:
        existing, marked = read_probe_tables(connector, table)
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(msg=f"Connecting to {connector.target} for the probes failed "
                             f"({permanent_error(exc) or short_message(exc)}): check the login options and the "
                             "network; nothing was changed", changed=False)
    alive = {(item["schema"], item["table"]): owner_alive(drill.parse_probe_marker(item["comment"]))
             for item in marked}
    now = datetime.datetime.now(datetime.timezone.utc)
    return drill.probe_table_decision(table, existing, marked, alive, now)


def main():
    module = AnsibleAWSModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        mutually_exclusive=[("db_instance_identifier", "db_cluster_identifier")],
        required_one_of=[("db_instance_identifier", "db_cluster_identifier")],
    )
    params = module.params
    probing, problems = drill.problems(params, has_credentials(params))
    if problems:
        module.fail_json(msg="Invalid options: " + "; ".join(problems), problems=problems, changed=False)
    kind = drill.INSTANCE if params["db_instance_identifier"] else drill.CLUSTER
    identifier = params["db_instance_identifier"] or params["db_cluster_identifier"]
    runtime = DrillRuntime(module, "failover_test", identifier, "Failover drill", params["progress_log"])

    rds = rds_client(module)
    described, members, alarms = read_target(module, rds, kind, identifier)
    problems = target_problems(params, kind, identifier, described, members, alarms)
    path = None
    if probing:
        path, path_problems = read_probe_path(module, rds, kind, identifier, described, members)
        problems += path_problems
    if problems:
        runtime.refuse(problems)
    connector = connector_for(module, params, (path["address"], path["port"]), rds) if probing else None
    probe_info, leftovers = None, []
    if connector is not None:
        problems, leftovers = read_probe_state(module, connector)
        if problems:
            runtime.refuse(problems)
        probe_info = {"endpoint": connector.target, "mode": params["probe_mode"], "interval": params["probe_interval"],
                      "leftover_probe_tables": [f"{item['schema']}.{item['table']}" for item in leftovers],
                      "probe_endpoint": path, "path": drill.describe_probe_path(path)}
    plan = drill.plan_failover(kind, identifier, described, members, params["target_db_instance_identifier"],
                               probe_info)
    if module.check_mode:
        module.exit_json(changed=True, passed=None, plan=plan)

    runtime.log.event("pre-checks passed: " + plan["expected"], phase="pre-checks")
    if probe_info is not None:
        runtime.log.event(f"probing {probe_info['path']}", phase="pre-checks")
    run = FailoverRun(module, runtime, rds, plan, connector, leftovers)
    failure = runtime.act(run.steps, run.cleanup)
    measured = run.measurements()
    objectives, passed = drill.judge(measured, params["max_downtime_seconds"], params["max_lost_writes"],
                                     probing=run.prober is not None, probe_mode=params["probe_mode"])
    events = snake_events(run.events["events"])
    report = drill.build_report(
        identifier=identifier, plan=plan, started_at=utc_iso(runtime.clock.started_at),
        finished_at=utc_iso(runtime.clock.now()), measurements=measured, objectives=objectives, passed=passed,
        timeline=run.timeline(), failure=failure,
        details={"plan": plan, "status_transitions": run.transitions, "events": events, "drill_id": run.drill_id,
                 "phase": None if failure is None else failure.phase,
                 "interrupted_by": runtime.interrupted_by},
    )
    result = dict(changed=run.requested is not None, passed=report["passed"], plan=plan, measurements=measured,
                  objectives=objectives, timeline=report["timeline"], events=events)
    runtime.exit(result, report, failure, breach=None if passed else drill.breach_message(identifier, objectives))


if __name__ == "__main__":
    main()
