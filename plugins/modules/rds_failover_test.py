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
    every O(probe_interval) seconds, from before the failover until writes have succeeded again for
    O(probe_settle_seconds). It measures the outage as clients see it, counts writes refused because the endpoint had
    become read-only, and afterwards checks that every write the server acknowledged is still there.
  - The probe table is created for the drill and removed in every outcome.
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
      - Table the write probes insert into, in the default schema of O(login_db). It is created (replacing a leftover
        of an interrupted drill) and dropped by the module. A plain lower-case identifier.
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
    (with O(abort_if_alarms)), and C(rds-db:connect) on the DB user with O(iam_auth=true)."
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
      description: The probed endpoint and mode, or null without probing.
      type: dict
      sample: {"endpoint": "orders-prod.abc.us-east-1.rds.amazonaws.com:5432/orders", "mode": "write", "interval": 0.25}
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
        - The outage clients saw, from the first failed probe to the first successful one after the last failure.
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
    probe_table_removed:
      description: Whether the probe table was removed. Null without write probes.
      type: bool
      sample: true
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
  description: On a timeout, the phase that was still waiting.
  returned: on failure
  type: str
  sample: failover to complete
"""


try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.dbre.rds.plugins.module_utils import failover_drill as drill
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import aws_client
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import rds_client
from ansible_collections.dbre.rds.plugins.module_utils.clock import DrillClock
from ansible_collections.dbre.rds.plugins.module_utils.clock import utc_iso
from ansible_collections.dbre.rds.plugins.module_utils.drill_log import DrillLog
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import report_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import report_basename
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import write_report
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import connector_for
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import db_connection_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import endpoint_of
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import has_credentials
from ansible_collections.dbre.rds.plugins.module_utils.probing import ProbeLoop
from ansible_collections.dbre.rds.plugins.module_utils.probing import create_probe_table
from ansible_collections.dbre.rds.plugins.module_utils.probing import drop_probe_table
from ansible_collections.dbre.rds.plugins.module_utils.probing import rows_present
from ansible_collections.dbre.rds.plugins.module_utils.probing import short_message
from ansible_collections.dbre.rds.plugins.module_utils.probing import valid_table_name
from ansible_collections.dbre.rds.plugins.module_utils.waiting import WaitFailed
from ansible_collections.dbre.rds.plugins.module_utils.waiting import WaitTimeout
from ansible_collections.dbre.rds.plugins.module_utils.waiting import wait_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.waiting import wait_until

BASELINE_PROBES = 3
CLEANUP_GRACE_SECONDS = 60
# RDS stamps events with its own clock; allow this much difference from the module's.
EVENT_CLOCK_SKEW_SECONDS = 2
AWS_ERRORS = (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) if "botocore" in globals() else ()


class DrillAborted(Exception):
    """The drill cannot go on; ``phase`` names where, ``cause`` is the original error."""

    def __init__(self, phase, message, cause=None):
        super().__init__(message)
        self.phase = phase
        self.cause = cause


# ---------------------------------------------------------------------------------------------- thin AWS wrappers

def describe_instance(rds, identifier):
    try:
        return rds.describe_db_instances(DBInstanceIdentifier=identifier, aws_retry=True)["DBInstances"][0]
    except rds.exceptions.DBInstanceNotFoundFault:
        return None


def describe_cluster(rds, identifier):
    """(cluster or None, {member identifier: described instance})."""
    try:
        cluster = rds.describe_db_clusters(DBClusterIdentifier=identifier, aws_retry=True)["DBClusters"][0]
    except rds.exceptions.DBClusterNotFoundFault:
        return None, {}
    # A cluster has at most 16 instances: one page.
    instances = rds.describe_db_instances(Filters=[{"Name": "db-cluster-id", "Values": [identifier]}],
                                          aws_retry=True)["DBInstances"]
    return cluster, {instance["DBInstanceIdentifier"]: instance for instance in instances}


def describe_target(rds, kind, identifier):
    if kind == drill.INSTANCE:
        return describe_instance(rds, identifier), {}
    return describe_cluster(rds, identifier)


def describe_alarms(module, names):
    if not names:
        return []
    cloudwatch = aws_client(module, "cloudwatch")
    found = cloudwatch.describe_alarms(AlarmNames=list(names), aws_retry=True)
    return found.get("MetricAlarms", []) + found.get("CompositeAlarms", [])


def request_failover(rds, plan):
    getattr(rds, plan["action"])(**plan["api_params"])


def describe_failover_events(rds, plan, since):
    source_type = "db-instance" if plan["kind"] == drill.INSTANCE else "db-cluster"
    events = rds.describe_events(SourceIdentifier=plan["target"], SourceType=source_type, StartTime=since,
                                 aws_retry=True)["Events"]
    return drill.failover_events(events, since)


# ------------------------------------------------------------------------------------------------------ the drill

class FailoverDrill:
    """Runs one drill after the pre-checks; every wait goes through wait_until against one deadline."""

    def __init__(self, module, rds, plan, clock, log, connector=None):
        self.module = module
        self.params = module.params
        self.rds = rds
        self.plan = plan
        self.clock = clock
        self.log = log
        self.connector = connector
        self.deadline = clock.elapsed() + self.params["wait_timeout"]
        self.prober = None
        self.table_created = False
        self.table_removed = None
        self.present_rows = None
        self.requested = None
        self.transitions = []
        self.final = (None, {})
        self.available = None
        self.events = {"started": None, "completed": None, "events": []}

    def remaining(self):
        return max(0.0, self.deadline - self.clock.elapsed())

    def _wait(self, phase, fetch, done, interval, state_of=None, failed=None, timeout=None):
        self.log.event(f"waiting for {phase}")
        return wait_until(fetch, done, timeout=self.remaining() if timeout is None else timeout, interval=interval,
                          phase=phase, state_of=state_of, failed=failed, clock=self.clock)

    def start_probing(self):
        table = self.params["probe_table"]
        mode = self.params["probe_mode"]
        try:
            conn = self.connector.connect()
            try:
                if mode == "write":
                    create_probe_table(conn, table)
                    self.table_created = True
                    self.log.event(f"probe table {table} created")
            finally:
                conn.close()
        except Exception as exc:  # pylint: disable=broad-except
            raise DrillAborted("probe setup", f"Connecting to {self.connector.target} to set up the probes failed "
                               f"({short_message(exc)}): check the login options; nothing was changed", exc)
        self.prober = ProbeLoop(self.connector, mode=mode, interval=self.params["probe_interval"],
                                timeout=self.params["probe_timeout"], table=table, clock=self.clock)
        self.prober.start()
        try:
            self._wait("baseline probes", self.prober.successes, lambda n: n >= BASELINE_PROBES,
                       self.params["probe_interval"], state_of=lambda n: "ready" if n >= BASELINE_PROBES else "warming up",
                       timeout=min(self.remaining(), 30))
        except WaitTimeout as exc:
            failed = [s for s in self.prober.samples() if not s["ok"]]
            detail = failed[-1]["message"] if failed else "no answer"
            raise DrillAborted("baseline probes", f"Probing {self.connector.target} failed before the failover "
                               f"({detail}): check the login options and the network; nothing was changed", exc)
        self.log.event(f"baseline: {self.prober.successes()} probes succeeded")

    def fail_over(self):
        self.requested = self.clock.elapsed()
        self.log.event(f"failover requested ({self.plan['action']})", elapsed=self.requested)
        try:
            request_failover(self.rds, self.plan)
        except AWS_ERRORS as exc:
            self.requested = None
            raise DrillAborted("failover request", f"Requesting the failover of {self.plan['target']} failed: check "
                               "the error and the target's state; RDS did not start a failover", exc)
        seen = set()

        def fetch():
            described, members = describe_target(self.rds, self.plan["kind"], self.plan["target"])
            seen.add(drill.resource_status(self.plan["kind"], described))
            return described, members

        def done(value):
            described, members = value
            if drill.resource_status(self.plan["kind"], described) != "available":
                return False
            writer, az = drill.writer_location(self.plan["kind"], described, members)
            return drill.failover_moved(self.plan, writer, az) or bool(seen - {"available"})

        started = self.clock.elapsed()
        try:
            outcome = self._wait("failover to complete", fetch, done, self.params["poll_interval"],
                                 state_of=lambda v: drill.status_label(self.plan["kind"], *v),
                                 failed=lambda v: drill.resource_status(self.plan["kind"], v[0]) in drill.BROKEN_STATES)
        except (WaitTimeout, WaitFailed) as exc:
            self._keep_transitions(exc.transitions, started)
            self.final = exc.last_value or (None, {})
            raise
        self._keep_transitions(outcome.transitions, started)
        self.final = outcome.value
        self.available = self.transitions[-1]["elapsed_seconds"]
        self.log.event("RDS reports the failover done", elapsed=self.available)

    def _keep_transitions(self, transitions, started):
        for item in transitions:
            elapsed = round(started + item["elapsed_seconds"], 3)
            self.transitions.append(dict(item, elapsed_seconds=elapsed))

    def settle(self):
        settle = self.params["probe_settle_seconds"]

        def settled(seconds):
            return seconds >= settle

        self._wait("writes to settle" if self.params["probe_mode"] == "write" else "reads to settle",
                   lambda: drill.settled_for(self.prober.samples(), self.requested, self.clock.elapsed()), settled,
                   self.params["probe_interval"],
                   state_of=lambda s: "settled" if s >= settle else ("succeeding" if s > 0 else "failing"))
        self.log.event(f"probes succeeded for {settle:g} s")

    def read_events(self):
        since = self.clock.at(self.requested - EVENT_CLOCK_SKEW_SECONDS)
        try:
            self.events = describe_failover_events(self.rds, self.plan, since)
        except AWS_ERRORS as exc:
            self.module.warn(f"Reading the RDS events of {self.plan['target']} failed: {short_message(exc)}")

    def stop_probing(self):
        """Stop the loop, count the rows and drop the probe table, waiting a little if the database is still away."""
        if self.prober is not None:
            self.prober.stop()
            self.log.event(f"probing stopped after {len(self.prober.samples())} probes")
        if not self.table_created:
            return
        table = self.params["probe_table"]

        def finish():
            try:
                conn = self.connector.connect()
                try:
                    present = rows_present(conn, table)
                    drop_probe_table(conn, table)
                    return present
                finally:
                    conn.close()
            except Exception as exc:  # pylint: disable=broad-except
                return exc

        grace = max(self.remaining(), min(CLEANUP_GRACE_SECONDS, self.params["wait_timeout"]))
        try:
            outcome = wait_until(finish, lambda v: not isinstance(v, Exception), timeout=grace,
                                 interval=max(1.0, self.params["probe_interval"]), phase="probe table removal",
                                 state_of=lambda v: "error" if isinstance(v, Exception) else "removed",
                                 clock=self.clock)
        except WaitTimeout as exc:
            self.table_removed = False
            self.module.warn(f"Could not remove the probe table {table} on {self.connector.target} "
                             f"({short_message(exc.last_value)}); drop it by hand")
            return
        self.present_rows = outcome.value
        self.table_removed = True
        self.log.event(f"probe table {table} removed")

    def measurements(self):
        described, members = self.final
        writer_after, az_after = drill.writer_location(self.plan["kind"], described, members)
        samples = self.prober.samples() if self.prober else []
        at_of = self.at_of
        measured = {
            "requested_at": at_of(self.requested),
            "api_available_at": at_of(self.available),
            "api_failover_seconds": None if self.available is None else round(self.available - self.requested, 3),
            "failover_started_event_at": None,
            "failover_completed_event_at": None,
            "event_failover_seconds": None,
            "writer_before": self.plan["writer_before"],
            "writer_after": writer_after,
            "az_before": self.plan["az_before"],
            "az_after": az_after,
            "failover_happened": self.requested is not None and drill.failover_moved(self.plan, writer_after, az_after),
            "probe_mode": self.params["probe_mode"] if self.prober else None,
            "probe_interval": self.params["probe_interval"] if self.prober else None,
            "probes_sent": None, "probes_failed": None, "read_only_errors": None,
            "first_failed_probe_at": None, "last_failed_probe_at": None, "first_success_after_at": None,
            "observed_downtime_seconds": None,
            "acknowledged_writes": None, "lost_writes": None, "lost_write_numbers": [],
            "unacknowledged_rows_found": None,
            "probe_table_removed": self.table_removed,
            "duration_seconds": round(self.clock.elapsed(), 3),
        }
        for key, event in (("failover_started_event_at", self.events["started"]),
                           ("failover_completed_event_at", self.events["completed"])):
            measured[key] = utc_iso(drill_date(event))
        if self.events["started"] and self.events["completed"]:
            measured["event_failover_seconds"] = round(
                (drill_date(self.events["completed"]) - drill_date(self.events["started"])).total_seconds(), 3)
        if self.prober:
            counts = drill.probe_counts(samples)
            measured.update(probes_sent=counts["probes_sent"], probes_failed=counts["probes_failed"],
                            read_only_errors=counts["read_only_errors"])
            if self.requested is not None:
                downtime = drill.measure_downtime(samples, self.requested)
                measured.update(
                    first_failed_probe_at=at_of(_time(downtime["first_failed_probe"], "sent")),
                    last_failed_probe_at=at_of(_time(downtime["last_failed_probe"], "sent")),
                    first_success_after_at=at_of(_time(downtime["first_success_after"], "done")),
                    observed_downtime_seconds=downtime["observed_downtime_seconds"],
                )
            if self.params["probe_mode"] == "write":
                measured.update(drill.account_writes(drill.acknowledged_writes(samples), self.present_rows))
        return measured

    def at_of(self, elapsed):
        return None if elapsed is None else utc_iso(self.clock.at(elapsed))

    def timeline(self):
        entries = list(self.log.timeline)
        entries += [{"at": t["at"], "elapsed_seconds": t["elapsed_seconds"], "event": f"status: {t['state']}"}
                    for t in self.transitions]
        for event in self.events["events"]:
            moment = drill_date(event)
            entries.append({"at": utc_iso(moment), "elapsed_seconds": round(self.clock.seconds_since_start(moment), 3),
                            "event": f"RDS event: {event.get('Message')}"})
        if self.prober and self.requested is not None:
            entries += drill.probe_timeline(drill.measure_downtime(self.prober.samples(), self.requested), self.at_of)
        return entries


def drill_date(event):
    return None if not event else event.get("Date")


def _time(sample, key):
    return None if sample is None else sample[key]


def snake_events(events):
    result = []
    for event in events:
        item = camel_dict_to_snake_dict(dict(event, Date=utc_iso(event.get("Date"))))
        result.append(item)
    return result


# --------------------------------------------------------------------------------------------------------- main

def argument_spec():
    spec = dict(
        db_instance_identifier=dict(type="str"),
        db_cluster_identifier=dict(type="str"),
        target_db_instance_identifier=dict(type="str"),
        allow_pending_modifications=dict(type="bool", default=False),
        abort_if_alarms=dict(type="list", elements="str", default=[]),
        probe=dict(type="bool"),
        probe_mode=dict(type="str", choices=["write", "read"], default="write"),
        probe_interval=dict(type="float", default=0.25),
        probe_timeout=dict(type="int", default=2),
        probe_settle_seconds=dict(type="float", default=5.0),
        probe_table=dict(type="str", default="dbre_rds_failover_probe"),
        max_downtime_seconds=dict(type="float"),
        max_lost_writes=dict(type="int", default=0),
        fail_on_breach=dict(type="bool", default=True),
        progress_log=dict(type="path"),
    )
    spec.update(wait_argument_spec())
    spec.update(db_connection_argument_spec())
    spec.update(report_argument_spec())
    return spec


def prechecks(module, rds, kind, identifier):
    params = module.params
    try:
        described, members = describe_target(rds, kind, identifier)
        alarms = describe_alarms(module, params["abort_if_alarms"])
    except AWS_ERRORS as exc:
        module.fail_json_aws(exc, msg=f"Describing {identifier} and its guardrail alarms failed: check the "
                                      "credentials, the region and the IAM permissions in the notes")
    if kind == drill.INSTANCE:
        problems = drill.instance_problems(identifier, described, params["allow_pending_modifications"])
    else:
        problems = drill.cluster_problems(identifier, described, members, params["target_db_instance_identifier"],
                                          params["allow_pending_modifications"])
    problems += drill.alarm_problems(params["abort_if_alarms"], alarms)
    if problems:
        module.fail_json(msg="The failover drill was refused before any change: " + "; ".join(problems),
                         problems=problems, changed=False)
    return described, members


def check_connection(module, connector):
    try:
        conn = connector.connect()
        conn.close()
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(msg=f"Connecting to {connector.target} for the probes failed ({short_message(exc)}): check "
                             "the login options and the network")


def finish(module, run, failure=None, phase=None, aws_error=None):
    """Measure, judge, write the report and exit (failing when the drill broke or an objective did not hold)."""
    params = module.params
    measured = run.measurements()
    objectives, passed = drill.judge(measured, params["max_downtime_seconds"], params["max_lost_writes"],
                                     probing=run.prober is not None, probe_mode=params["probe_mode"])
    run.log.event("drill finished: " + ("PASSED" if passed and failure is None else "FAILED"))
    report = drill.build_report(
        identifier=run.plan["target"], plan=run.plan, started_at=utc_iso(run.clock.started_at),
        finished_at=utc_iso(run.clock.now()), measurements=measured, objectives=objectives, passed=passed,
        timeline=run.timeline(), failure=failure,
        details={"plan": run.plan, "status_transitions": run.transitions, "phase": phase,
                 "events": snake_events(run.events["events"])},
    )
    result = dict(changed=run.requested is not None, passed=report["passed"], plan=run.plan, measurements=measured,
                  objectives=objectives, timeline=report["timeline"], events=snake_events(run.events["events"]),
                  report=report)
    if params["report_dir"]:
        basename = params["report_name"] or report_basename("failover_test", run.plan["target"], report["started_at"])
        result["report_files"] = write_report(report, params["report_dir"], basename)
    if aws_error is not None:
        module.fail_json_aws(aws_error, msg=failure, phase=phase, **result)
    if failure:
        module.fail_json(msg=failure, phase=phase, **result)
    if not passed and params["fail_on_breach"]:
        module.fail_json(msg=drill.breach_message(run.plan["target"], objectives), **result)
    module.exit_json(**result)


def main():
    module = AnsibleAWSModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        mutually_exclusive=[("db_instance_identifier", "db_cluster_identifier")],
        required_one_of=[("db_instance_identifier", "db_cluster_identifier")],
    )
    params = module.params
    probing, problem = drill.probing_wanted(params, has_credentials(params))
    problems = drill.option_problems(params) + ([problem] if problem else [])
    if probing and params["probe_mode"] == "write" and not valid_table_name(params["probe_table"]):
        problems.append("probe_table must be a plain lower-case identifier (letters, digits, underscores)")
    if problems:
        module.fail_json(msg="Invalid options: " + "; ".join(problems))
    kind = drill.INSTANCE if params["db_instance_identifier"] else drill.CLUSTER
    identifier = params["db_instance_identifier"] or params["db_cluster_identifier"]

    clock = DrillClock()
    rds = rds_client(module)
    described, members = prechecks(module, rds, kind, identifier)
    connector = connector_for(module, params, endpoint_of(described), rds) if probing else None
    probe_info = None if connector is None else {
        "endpoint": connector.target, "mode": params["probe_mode"], "interval": params["probe_interval"]}
    plan = drill.plan_failover(kind, identifier, described, members, params["target_db_instance_identifier"], probe_info)
    if connector is not None:
        check_connection(module, connector)
    if module.check_mode:
        module.exit_json(changed=True, passed=None, plan=plan)

    log = DrillLog(clock, "rds_failover_test", identifier, params["progress_log"])
    log.event("pre-checks passed: " + plan["expected"])
    run = FailoverDrill(module, rds, plan, clock, log, connector)
    failure = phase = aws_error = None
    try:
        if connector is not None:
            run.start_probing()
        run.fail_over()
        if connector is not None:
            run.settle()
        run.read_events()
    except (WaitTimeout, WaitFailed) as exc:
        failure, phase = f"Failover drill of {identifier}: {exc}; the report so far is attached", exc.phase
        log.event(f"stopped: {exc}")
    except DrillAborted as exc:
        failure, phase = str(exc), exc.phase
        if isinstance(exc.cause, AWS_ERRORS):
            aws_error = exc.cause
        log.event(f"stopped: {failure}")
    except AWS_ERRORS as exc:
        failure, phase, aws_error = (f"Describing {identifier} during the failover drill failed: check the error; the "
                                     "report so far is attached"), "failover to complete", exc
        log.event(f"stopped: {short_message(exc)}")
    finally:
        run.stop_probing()
    if failure and run.requested is not None and not run.events["events"]:
        run.read_events()
    finish(module, run, failure, phase, aws_error)


if __name__ == "__main__":
    main()
