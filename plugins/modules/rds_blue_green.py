#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rds_blue_green
short_description: Create, switch over and delete an RDS for PostgreSQL blue/green deployment, measuring the switchover
version_added: "0.3.0"
description:
  - Manages the RDS blue/green deployment of one RDS for PostgreSQL DB instance (the blue) as a declaration, in three
    states that a playbook runs in turn.
  - O(state=present) creates the deployment (C(CreateBlueGreenDeployment)) with the target engine version, parameter
    group and instance class, and waits until the deployment and its green instance are C(AVAILABLE) and the green's
    C(ReplicaLag) is at most O(max_lag_seconds).
  - O(state=switched_over) switches over (C(SwitchoverBlueGreenDeployment) with O(switchover_timeout)) while write
    probes, as in M(dbre.rds.rds_failover_test), insert a numbered row every O(probe_interval) seconds through the
    instance's endpoint and follow it to the former green. It reports the write downtime clients saw, the
    acknowledged writes missing afterwards (0 expected) and the time the API took, against objectives, and writes the
    drill report (O(report_dir)). This state is a drill; it is imperative and reports RV(ignore:changed=true) when it
    switches over.
  - O(state=absent) deletes the deployment. Before the switchover it deletes the green instance too
    (O(delete_target)). After the switchover, with O(delete_old_blue=true), it deletes the old blue instance after a
    final snapshot, and only the instance that the deployment's switchover details name as the old blue
    (C(SourceMember) of a completed switchover), never the instance that now carries the name. Since names (and ARNs)
    move, that instance must also be proven to be the blue the deployment was made from, with its C(DbiResourceId)
    equal to the one recorded on the deployment at creation (tag C(dbre:blue-dbi-resource-id)) and its
    C(InstanceCreateTime) before the deployment's C(CreateTime). Otherwise the run is refused and nothing is deleted.
  - Pre-checks list every problem before anything changes. Before creating, the blue must be an available
    PostgreSQL instance whose parameter group has C(rds.logical_replication=1) (RDS needs it), the target version
    must be a later version RDS offers and a valid upgrade target (no downgrade), the target parameter group must
    exist in the target's family, and, with login options, the database must have none of the blockers of the
    pre-upgrade checklist (prepared transactions, C(reg*) columns, logical replication slots, extension versions the
    target lacks, ...). Before the switchover the deployment must be C(AVAILABLE) and the green's lag at most
    O(max_lag_seconds).
  - A deployment is found by the instance it is about, through filtered describe calls (C(source), C(target)), never
    by position. Once the switchover is done, or when the instance already runs the target (the target options tell
    it, so give them to every state), O(state=present) and O(state=switched_over) change nothing, so the whole
    sequence can run again unchanged.
  - PostgreSQL logical replication does not carry DDL, so the probe table must exist before the green is made. With
    login options, O(state=present) creates it on the blue (marked as this deployment's probe table) just before
    C(CreateBlueGreenDeployment), and the switchover drops it on the former green afterwards.
  - Only DB instances (not Aurora clusters) are supported.
author:
  - dbre.rds maintainers (@dbre-rds)
options:
  db_instance_identifier:
    description:
      - The instance the deployment is about. Before the switchover it is the blue; afterwards, the former green that
        took its name.
    type: str
    required: true
  blue_green_deployment_name:
    description:
      - Name of the deployment (1 to 60 letters, digits and hyphens). Defaults to C(<db_instance_identifier>-blue-green)
        for a new deployment; an existing deployment of the instance is found whatever its name unless this is given.
      - Without it, O(state=absent) deletes only a deployment this collection made (tagged C(dbre:managed-by=dbre.rds)
        at creation, or under the default name) and refuses any other, naming it.
    type: str
  state:
    description:
      - V(present) creates the deployment and waits until green is in sync.
      - V(switched_over) switches over with write probes running.
      - V(absent) deletes the deployment (and, on request, the old blue instance).
    type: str
    choices: [present, switched_over, absent]
    default: present
  target_engine_version:
    description:
      - The green's engine version, for example V(18.6). A major upgrade needs no other consent here.
    type: str
  target_db_parameter_group_name:
    description:
      - The green's DB parameter group, of the target version's family. RDS uses the family's default group when it
        is omitted on a major upgrade.
    type: str
  target_db_instance_class:
    description:
      - The green's instance class.
    type: str
  max_lag_seconds:
    description:
      - Green is in sync when its C(ReplicaLag) (CloudWatch) is at most this. O(state=present) waits for it and
        O(state=switched_over) refuses above it.
    type: float
    default: 10.0
  switchover_timeout:
    description:
      - C(SwitchoverTimeout) in seconds (30 to 3600); RDS rolls the switchover back when it takes longer.
    type: int
    default: 300
  delete_target:
    description:
      - With O(state=absent) before the switchover, also delete the green instance (C(DeleteTarget)). RDS ignores it
        after the switchover.
      - Refused on a C(SWITCHOVER_FAILED) deployment, since part of its green may carry production. Check it, then
        give V(false).
    type: bool
    default: true
  delete_old_blue:
    description:
      - With O(state=absent) after the switchover, delete the old blue instance after a final snapshot. Its
        automated backups are kept (they expire with their retention period), the point-in-time restore of the days
        before the deployment.
      - The old blue is deleted before the deployment, which is what names it, so when its delete fails a rerun finds
        it again.
      - The old blue is the fast way back after the switchover. Delete it after a soak, not in the same run.
      - Refused, deleting nothing, when the instance under the old blue's name is not proven to be the blue the
        deployment was made from (a later deployment's old blue takes the same name C(<id>-old1)). It must have the
        C(DbiResourceId) recorded on the deployment at creation (tag C(dbre:blue-dbi-resource-id)) and have been
        created before the deployment.
    type: bool
    default: false
  final_snapshot_identifier:
    description:
      - Name of the old blue's final snapshot. Refused when a snapshot of that name exists.
      - Defaults to C(<old blue identifier>-final), or, when a snapshot of that name exists (the old blue of an
        earlier upgrade had the same name), C(<old blue identifier>-final-<UTC timestamp>) (C(%Y%m%d%H%M%S)).
    type: str
  tags:
    description:
      - Tags of a new deployment, as a dict. The tag C(dbre:managed-by=dbre.rds) is always added, and
        C(dbre:blue-dbi-resource-id) with the blue's C(DbiResourceId), which later proves which instance is the old
        blue.
    type: dict
  wait:
    description:
      - Wait until the deployment is ready and in sync (V(present)) or gone (V(absent)). The switchover is always
        awaited.
    type: bool
    default: true
  probe:
    description:
      - Run write probes during the switchover (and create their table with O(state=present)). Defaults to true when
        O(login_password) or O(iam_auth) is given.
      - Without them the lost writes are not measured, and a switchover is reported with RV(passed=false) and
        RV(verdict=not_measured), never as passed.
    type: bool
  probe_interval:
    description:
      - Seconds between two write probes; the resolution of the measured downtime.
    type: float
    default: 0.25
  probe_timeout:
    description:
      - Seconds a probe waits to connect (libpq's minimum is 2) and for its insert.
    type: int
    default: 2
  probe_settle_seconds:
    description:
      - After the switchover is complete, how many seconds the probes must succeed without a failure before the
        drill ends.
    type: float
    default: 2.0
  probe_table:
    description:
      - The probe table, in the default schema of O(login_db). A plain lower-case identifier. A table of that name
        that is not this deployment's probe table is never written to or dropped; the run is refused instead.
    type: str
    default: dbre_rds_blue_green_probe
  max_downtime_seconds:
    description:
      - Objective for the write downtime clients observe during the switchover. Without it the downtime is reported,
        not judged.
    type: float
  max_lost_writes:
    description:
      - Objective for acknowledged writes missing after the switchover.
    type: int
    default: 0
  fail_on_breach:
    description:
      - Fail the task, with the report attached, when the switchover breached an objective.
    type: bool
    default: true
  progress_log:
    description:
      - File on the managed node to which the switchover appends one line per phase, for C(tail -f).
    type: path
  extension_versions:
    description:
      - "The versions the target engine version supports, by extension name (RDS's table of extension versions), for
        example C({postgis: ['3.5.2'], hstore: ['1.8']}), for the pre-upgrade checklist's C(extension_versions)
        blocker. For each extension named, this replaces what the checklist knows from the community PostgreSQL
        builds."
    type: dict
    default: {}
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
  - dbre.rds.wait
  - dbre.rds.db_connection
  - dbre.rds.report
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - "IAM actions: C(rds:DescribeDBInstances), C(rds:DescribeBlueGreenDeployments), C(rds:DescribeDBEngineVersions),
    C(rds:DescribeDBParameterGroups), C(rds:DescribeDBParameters), C(rds:DescribeDBSnapshots),
    C(cloudwatch:GetMetricStatistics), C(rds:CreateBlueGreenDeployment), C(rds:SwitchoverBlueGreenDeployment),
    C(rds:DeleteBlueGreenDeployment), C(rds:DeleteDBInstance) (O(delete_old_blue)), C(rds:AddTagsToResource)
    for O(tags), and C(rds:DescribeEvents) (when the answer to the switchover request is lost)."
  - Mutating calls are sent once; on a throttle or a lost answer the module first checks whether the call took
    effect. For the switchover that is the deployment's status and its events since the request (C(Switchover
    started), C(Switchover canceled)), so a switchover that RDS started and already rolled back is never sent again.
    When the events cannot be read either, the run stops without sending it again.
  - The green's lag is its newest C(ReplicaLag) datapoint whose minute ended at most 2 minutes ago; an older one
    does not count (the green's replication may have stopped since), and no recent datapoint is "no recent lag",
    never in sync.
seealso:
  - module: dbre.rds.rds_upgrade_drill
  - module: dbre.rds.rds_failover_test
  - module: amazon.aws.rds_instance
  - name: Using Amazon RDS Blue/Green Deployments for database updates
    description: How RDS builds the green, keeps it in sync and switches over.
    link: https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/blue-green-deployments.html
"""

EXAMPLES = r"""
- name: See what a blue/green deployment to PostgreSQL 18 would do
  dbre.rds.rds_blue_green:
    db_instance_identifier: orders-prod
    target_engine_version: "18.6"
    target_db_parameter_group_name: orders-pg18
    login_user: dbre
    login_password: "{{ vault_dbre_password }}"
    region: us-east-1
  check_mode: true
  register: planned

- name: Create the green and wait until it is in sync
  dbre.rds.rds_blue_green:
    db_instance_identifier: orders-prod
    target_engine_version: "18.6"
    target_db_parameter_group_name: orders-pg18
    max_lag_seconds: 5
    login_user: dbre
    login_password: "{{ vault_dbre_password }}"
    region: us-east-1

- name: Switch over with write probes running
  dbre.rds.rds_blue_green:
    db_instance_identifier: orders-prod
    state: switched_over
    target_engine_version: "18.6"
    max_downtime_seconds: 60
    login_user: dbre
    login_password: "{{ vault_dbre_password }}"
    report_dir: /var/lib/dbre/reports
    region: us-east-1
  register: switchover

- name: Show what clients saw
  ansible.builtin.debug:
    msg: "{{ switchover.measurements.write_downtime_seconds }} s without writes, {{ switchover.lost_writes }} lost"

- name: Delete the deployment and the old blue, after a final snapshot
  dbre.rds.rds_blue_green:
    db_instance_identifier: orders-prod
    state: absent
    delete_old_blue: true
    region: us-east-1
"""

RETURN = r"""
blue_green_deployment:
  description:
    - The deployment as C(DescribeBlueGreenDeployments) shows it after the run, keys in snake_case. Empty when there
      is none (in check mode, before it is created).
  returned: always
  type: dict
  sample: {blue_green_deployment_identifier: bgd-0123456789abcdef, blue_green_deployment_name: orders-prod-blue-green,
           source: "arn:aws:rds:us-east-1:123456789012:db:orders-prod", status: AVAILABLE,
           target: "arn:aws:rds:us-east-1:123456789012:db:orders-prod-green-abcdef"}
green:
  description: The green instances (C(DescribeDBInstances), snake_case) of the deployment.
  returned: always
  type: list
  elements: dict
actions:
  description: The RDS calls that change something the run made (in check mode, would make), in order.
  returned: always
  type: list
  elements: str
  sample: [CreateBlueGreenDeployment]
note:
  description: Why nothing had to be done, when so.
  returned: when nothing had to be done
  type: str
lag_seconds:
  description: The green instances' latest recent C(ReplicaLag), by identifier (null without a datapoint whose minute
    ended in the last 2 minutes).
  returned: when the deployment is ready or was waited for
  type: dict
  sample: {orders-prod-green-abcdef: 0.0}
checks:
  description: The pre-upgrade checklist's checks run on the blue before creating (see M(dbre.rds.rds_upgrade_drill)).
  returned: when the module created a deployment with login options
  type: list
  elements: dict
old_blue:
  description: The old blue instance deleted (or, in check mode, to be deleted) and its final snapshot.
  returned: with O(delete_old_blue=true) after the switchover
  type: dict
  sample: {db_instance_identifier: orders-prod-old1, final_snapshot_identifier: orders-prod-old1-final}
waited:
  description: Seconds spent waiting for RDS, and the states seen on the way.
  returned: when the module waited
  type: dict
passed:
  description:
    - Whether the switchover happened and every objective held, lost writes included. False without write probes,
      since the lost writes were not measured (RV(verdict) is V(not_measured)), never assumed to be 0.
  returned: when the module switched over
  type: bool
verdict:
  description:
    - V(passed); V(failed) (a failure or a breached objective); or V(not_measured) when the switchover held what was
      measured but ran without write probes, so the lost writes objective was not measured. V(not_measured) is not a
      breach (the task does not fail on it) but is not a pass either.
  returned: when the module switched over
  type: str
  sample: passed
lost_writes:
  description: Acknowledged probe writes missing on the former green after the switchover (0 expected).
  returned: when the module switched over
  type: int
measurements:
  description: What the switchover drill measured.
  returned: when the module switched over
  type: dict
  contains:
    switched_over:
      description: Whether the deployment reached C(SWITCHOVER_COMPLETED).
      type: bool
    requested_at:
      description: When C(SwitchoverBlueGreenDeployment) was sent (UTC, ISO 8601).
      type: str
    completed_at:
      description: When the module first saw C(SWITCHOVER_COMPLETED).
      type: str
    api_switchover_seconds:
      description: From the request until RDS reported the switchover complete (resolution O(poll_interval)).
      type: float
    write_downtime_seconds:
      description: From the first failed write probe to the end of the first successful one after the last failure.
      type: float
    lost_writes:
      description: Acknowledged probe writes missing afterwards.
      type: int
    lost_write_numbers:
      description: The numbers of the first 50 lost probe writes.
      type: list
      elements: int
    acknowledged_writes:
      description: Probe writes the server acknowledged.
      type: int
    rows_found:
      description: Probe rows found on the former green afterwards.
      type: int
    probes_sent:
      description: Probes sent.
      type: int
    probes_failed:
      description: Probes that failed.
      type: int
    read_only_errors:
      description: Probes refused as read-only (SQLSTATE 25006).
      type: int
    probe_table_removed:
      description: Whether the probe table was dropped on the former green.
      type: bool
    duration_seconds:
      description: The drill's duration.
      type: float
objectives:
  description: The objectives judged (C(switched_over), C(lost_writes), C(write_downtime_seconds)).
  returned: when the module switched over
  type: list
  elements: dict
report:
  description: The drill report (dbre.rds's shared format).
  returned: when the module switched over
  type: dict
report_files:
  description: Paths of the report files (json, md, xml) under O(report_dir).
  returned: when the module switched over and O(report_dir) is set
  type: dict
"""

import datetime

try:
    from botocore.exceptions import BotoCoreError
    from botocore.exceptions import ClientError
    AWS_ERRORS = (ClientError, BotoCoreError)
except ImportError:
    AWS_ERRORS = ()  # AnsibleAWSModule reports the missing botocore

from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.dbre.rds.plugins.module_utils import blue_green as bg
from ansible_collections.dbre.rds.plugins.module_utils import failover_drill
from ansible_collections.dbre.rds.plugins.module_utils import rds_resources
from ansible_collections.dbre.rds.plugins.module_utils import upgrade_checklist
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import CallNotConfirmed
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import aws_client
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import call_once
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import once_client
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import rds_client
from ansible_collections.dbre.rds.plugins.module_utils.clock import DrillClock
from ansible_collections.dbre.rds.plugins.module_utils.clock import utc_iso
from ansible_collections.dbre.rds.plugins.module_utils.cloudwatch_lag import cloudwatch_lag
from ansible_collections.dbre.rds.plugins.module_utils.dr_drill import writes_lost
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import report_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import report_name_problems
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import DrillAborted
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import DrillRuntime
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import aws_errors
from ansible_collections.dbre.rds.plugins.module_utils.module_warnings import warn
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import connection_problems
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import connector_for
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import db_connection_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import endpoint_of
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import with_connection
from ansible_collections.dbre.rds.plugins.module_utils.probing import FollowingConnector
from ansible_collections.dbre.rds.plugins.module_utils.probing import WriteProbes
from ansible_collections.dbre.rds.plugins.module_utils.probing import create_probe_table
from ansible_collections.dbre.rds.plugins.module_utils.probing import drop_probe_table
from ansible_collections.dbre.rds.plugins.module_utils.probing import parse_probe_marker
from ansible_collections.dbre.rds.plugins.module_utils.probing import probe_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.probing import probe_marker
from ansible_collections.dbre.rds.plugins.module_utils.probing import probe_table_state
from ansible_collections.dbre.rds.plugins.module_utils.probing import short_message
from ansible_collections.dbre.rds.plugins.module_utils.waiting import WaitFailed
from ansible_collections.dbre.rds.plugins.module_utils.waiting import WaitTimeout
from ansible_collections.dbre.rds.plugins.module_utils.waiting import wait_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.waiting import wait_until

BASELINE_PROBES = 3
# The probe table lives as long as the deployment, across runs: its marker names no process (no sweep takes it for a
# dead drill's) and announces an end this far away.
PROBE_TABLE_DAYS = 30
DEPLOYMENT_NOT_FOUND = ["BlueGreenDeploymentNotFoundFault", "BlueGreenDeploymentNotFound"]
# The switchover's events are read from this long before the request: RDS dates them by its clock, not ours.
EVENT_CLOCK_SKEW_SECONDS = 60


# ---------------------------------------------------------------------------------------------- thin AWS wrappers

def describe_deployment(client, deployment_id):
    try:
        found = rds_resources.paginate(client, "describe_blue_green_deployments", "BlueGreenDeployments",
                                       BlueGreenDeploymentIdentifier=deployment_id)
    except is_boto3_error_code(DEPLOYMENT_NOT_FOUND):
        return None
    return next((d for d in found if d.get("BlueGreenDeploymentIdentifier") == deployment_id), None)


def describe_deployment_named(client, name):
    found = rds_resources.paginate(client, "describe_blue_green_deployments", "BlueGreenDeployments",
                                   Filters=[{"Name": "blue-green-deployment-name", "Values": [name]}])
    return next((d for d in found if d.get("BlueGreenDeploymentName") == name), None)


def engine_versions(client, engine, version):
    if not version:
        return []
    return rds_resources.paginate(client, "describe_db_engine_versions", "DBEngineVersions", Engine=engine,
                                  EngineVersion=version)


def replica_lag(module, identifier):
    """The green's latest recent ReplicaLag datapoint (seconds), or None (cloudwatch_lag)."""
    return cloudwatch_lag(aws_client(module, "cloudwatch"), "instance", {"DBInstanceIdentifier": identifier})


# ------------------------------------------------------------------------------------------------------ the read

class World:
    """What the run acts on, read before any change."""

    def __init__(self, module, client):
        self.module, self.client, self.params = module, client, module.params
        self.identifier = self.params["db_instance_identifier"]
        self.instance = None
        self.deployment = None
        self.greens = {}
        self.old_blue = None
        self.final_snapshot = None
        self.problems = []

    def read(self):
        self.instance = rds_resources.describe_instance(self.client, self.identifier)
        if self.instance is None:
            return
        arn = self.instance["DBInstanceArn"]
        found = rds_resources.blue_green_deployments_of(self.client, arn)
        self.deployment, self.problems = bg.choose_deployment(found, arn, self.identifier,
                                                              self.params["blue_green_deployment_name"])
        self.read_greens()
        if bg.switched_over(self.deployment):
            sources = {source: rds_resources.describe_instance(self.client, bg.name_of_arn(source))
                       for source, _target, _status in bg.members(self.deployment) if source}
            self.old_blue, found = bg.old_blue(self.deployment, arn, sources)
            if self.params["delete_old_blue"]:
                self.problems += found

    def read_greens(self):
        if bg.switched_over(self.deployment):
            self.greens = {}
            return
        self.greens = {bg.name_of_arn(arn): rds_resources.describe_instance(self.client, bg.name_of_arn(arn))
                       for arn in bg.green_arns(self.deployment)}

    def lags(self):
        return {green: replica_lag(self.module, green) for green in self.greens}

    def old_blue_now(self):
        """The old blue as described after a switchover this run made (None when it cannot be told)."""
        arn = (self.instance or {}).get("DBInstanceArn")
        for source, _target, _status in bg.members(self.deployment):
            if not source or source == arn or bg.name_of_arn(source) == self.identifier:
                continue
            described = rds_resources.describe_instance(self.client, bg.name_of_arn(source))
            if described is not None:
                return described
        return None

    def green_problems(self):
        """An existing green that is not what the options ask for (state=present)."""
        problems = []
        for green, described in self.greens.items():
            differs = bg.green_mismatches(described or {}, self.params) if described else []
            if differs:
                problems.append(f"the deployment {self.deployment.get('BlueGreenDeploymentName')} exists with the "
                                f"green {green} at " + ", ".join(differs) + ": delete it (state=absent) to make "
                                "another")
        return problems

    def green_result(self):
        return [camel_dict_to_snake_dict(g) for g in self.greens.values() if g]


def credentials(params):
    return bool(params["login_password"] or params["iam_auth"])


def probing_wanted(params):
    return params["probe"] if params["probe"] is not None else credentials(params)


def login_params(params, described):
    login = dict(params)
    login["login_user"] = login["login_user"] or (described or {}).get("MasterUsername")
    return login


def connector(module, client, described):
    return connector_for(module, login_params(module.params, described), endpoint_of(described), client)


def probe_drill_id(deployment_name):
    return f"blue-green-{deployment_name}"


# ------------------------------------------------------------------------------------------------- pre-checks

def create_problems(module, client, world, name):
    """Everything that would make CreateBlueGreenDeployment fail or the upgrade stop, read before any change."""
    params, identifier, instance = module.params, world.identifier, world.instance
    problems = bg.instance_problems(identifier, instance)
    if problems:
        return problems, None, []
    engine, current, target = instance["Engine"], instance["EngineVersion"], params["target_engine_version"]
    rows = engine_versions(client, engine, current)
    if target and target != current:
        rows += engine_versions(client, engine, target)
    problems += bg.target_version_problems(current, target, rows)
    family = bg.target_family(rows, current, target)
    group = params["target_db_parameter_group_name"]
    problems += bg.parameter_group_problems(group, rds_resources.describe_parameter_group(client, group), family)
    blue_group = bg.parameter_group_of(instance)
    value = rds_resources.parameter_group_values(client, blue_group, [bg.LOGICAL_REPLICATION])[bg.LOGICAL_REPLICATION]
    problems += bg.logical_replication_problems(identifier, blue_group, value)
    taken = describe_deployment_named(client, name)
    if taken is not None:
        problems.append(f"the deployment name {name} is taken by {taken.get('BlueGreenDeploymentIdentifier')} "
                        f"(source {taken.get('Source')}): give another blue_green_deployment_name")
    checks = []
    if not problems and credentials(params):
        checks, found = database_checks(module, client, instance, target or current)
        problems += found
    elif not credentials(params):
        warn(module, f"the blockers inside {identifier}'s databases were not checked (no login_password or "
                     "iam_auth): give login options to check them before the deployment")
    return problems, family, checks


def database_checks(module, client, instance, version):
    """The pre-upgrade checklist's database checks on the blue, and its blockers as problems."""
    blue = connector(module, client, instance)

    def connect(dbname):
        return blue.connect(dbname=dbname)

    try:
        facts = upgrade_checklist.database_facts(connect, bg.major_of(version), login_db=module.params["login_db"])
        # The AWS side (versions, parameter groups) is checked above with RDS's rules for a blue/green deployment.
        checks = [check for check in upgrade_checklist.evaluate({"database": facts}, module.params)
                  if check["name"] in upgrade_checklist.DATABASE_CHECKS]
    except Exception as exc:  # pylint: disable=broad-except
        return [], [f"checking {instance['DBInstanceIdentifier']}'s databases for upgrade blockers failed "
                    f"({short_message(exc)}): check the login options"]
    return checks, bg.blocker_problems(instance["DBInstanceIdentifier"], checks)


def probe_table_problems(module, client, world, drill_id):
    """``(problems, exists)``: a probe table of that name must be absent or this deployment's own."""
    table = module.params["probe_table"]
    try:
        state = with_connection(connector(module, client, world.instance),
                                lambda conn: probe_table_state(conn, table))
    except Exception as exc:  # pylint: disable=broad-except
        return [f"connecting to {world.identifier} for the write probes failed ({short_message(exc)}): check the "
                "login options, or set probe=false"], False
    if state is None:
        return [], False
    marker = parse_probe_marker(state["comment"])
    if marker is None or marker.get("drill_id") != drill_id:
        owner = f"drill {marker.get('drill_id')}" if marker else "no dbre.rds drill (it has no probe marker)"
        return [f"probe_table {state['schema']}.{state['table']} exists on {world.identifier} and belongs to {owner}: "
                "choose another probe_table; the module never writes to or drops a table it does not own"], True
    return [], True


def switchover_problems(module, world):
    """Lag and readiness, just before the switchover."""
    problems = []
    for green, described in world.greens.items():
        if rds_resources.status_of(described) != "available":
            problems.append(f"the green {green} is {rds_resources.status_of(described)}, not available: wait")
    lags = world.lags()
    problems += bg.lag_problems(list(world.greens), lags, module.params["max_lag_seconds"])
    return problems, lags


# ------------------------------------------------------------------------------------------------------- acting

class ProbeTableFailed(Exception):
    """The probe table could not be made on blue (before any AWS change)."""


class SwitchoverUnconfirmed(Exception):
    """The answer to the switchover request was lost and reading whether it took effect failed too."""


class Applier:
    """Carries out the declarative states (present, absent), remembering what was done for the messages."""

    def __init__(self, module, client, world):
        self.module, self.client, self.world, self.params = module, client, world, module.params
        self.clock = DrillClock()
        self.actions = []
        self.changes = []  # besides the AWS calls: the probe table on blue
        self.waited = 0.0
        self.transitions = []

    def done(self):
        return ", ".join(self.actions + self.changes) or "none"

    def remaining(self):
        return max(0.0, self.params["wait_timeout"] - self.clock.elapsed())

    def _wait(self, phase, fetch, done, state_of, failed=None):
        outcome = wait_until(fetch, done, timeout=self.remaining(), interval=self.params["poll_interval"],
                             phase=phase, state_of=state_of, failed=failed, clock=self.clock)
        self.waited += outcome.seconds
        self.transitions += outcome.transitions
        return outcome.value

    def create(self, name, drill_id, make_probe_table):
        world = self.world
        if make_probe_table:
            marker = probe_marker(drill_id, {}, world.identifier, utc_iso(self.clock.now()),
                                  utc_iso(self.clock.now() + datetime.timedelta(days=PROBE_TABLE_DAYS)))
            try:
                with_connection(connector(self.module, self.client, world.instance),
                                lambda conn: create_probe_table(conn, self.params["probe_table"], marker))
            except Exception as exc:  # pylint: disable=broad-except
                raise ProbeTableFailed(short_message(exc)) from exc
        request = bg.create_request(name, world.instance["DBInstanceArn"], self.params, self.params["tags"],
                                    world.instance.get("DbiResourceId"))
        try:
            answered = call_once(once_client(self.module), "create_blue_green_deployment", request,
                                 lambda: describe_deployment_named(self.client, name) and f"deployment {name} exists",
                                 deadline_seconds=max(1.0, min(self.remaining(), 300.0)))
        except CallNotConfirmed:
            if make_probe_table:
                self.changes.append(f"probe table {self.params['probe_table']} created on {world.identifier} (kept: "
                                    "the deployment may exist, and its green needs the table)")
            raise
        except AWS_ERRORS:
            if make_probe_table:
                self.changes.append(self.drop_probe_table_after_refusal(drill_id))
            raise
        self.actions.append(bg.ACTIONS["create"])
        # The answer names the deployment; when it was lost, the describe that confirmed the call does.
        world.deployment = ((answered["response"] or {}).get("BlueGreenDeployment")
                            or describe_deployment_named(self.client, name))

    def drop_probe_table_after_refusal(self, drill_id):
        """RDS refused the deployment: the probe table this run made on blue just before has no use; what was done."""
        table, identifier = self.params["probe_table"], self.world.identifier
        try:
            with_connection(connector(self.module, self.client, self.world.instance),
                            lambda conn: drop_probe_table(conn, table, drill_id))
        except Exception as exc:  # pylint: disable=broad-except
            return (f"probe table {table} created on {identifier} and not dropped ({short_message(exc)}): drop it by "
                    "hand")
        return f"probe table {table} created on {identifier} and dropped again"

    def wait_ready(self):
        """Until the deployment and its greens are available and every green's lag is at most max_lag_seconds."""
        world, deployment_id = self.world, self.world.deployment["BlueGreenDeploymentIdentifier"]

        def fetch():
            world.deployment = describe_deployment(self.client, deployment_id)
            world.read_greens()
            ready = bg.is_ready(world.deployment) and world.greens and all(
                rds_resources.status_of(g) == "available" for g in world.greens.values())
            lags = world.lags() if ready else {}
            return {"deployment": world.deployment, "ready": ready, "lags": lags}

        def in_sync(value):
            return value["ready"] and not bg.lag_problems(list(value["lags"]), value["lags"],
                                                          self.params["max_lag_seconds"])

        def state(value):
            if not value["ready"]:
                return bg.state_of(value["deployment"])
            return "in sync" if in_sync(value) else "AVAILABLE, lag " + ", ".join(
                f"{k}={v}" for k, v in sorted(value["lags"].items()))

        value = self._wait(f"blue/green deployment of {world.identifier} to be available and in sync", fetch,
                           in_sync, state, failed=lambda v: v["deployment"] is None or bg.has_failed(v["deployment"]))
        return value["lags"]

    def absent(self, plan):
        world = self.world
        deployment = world.deployment
        deployment_id = deployment["BlueGreenDeploymentIdentifier"]
        request = {"BlueGreenDeploymentIdentifier": deployment_id}
        if not bg.switched_over(deployment):
            request["DeleteTarget"] = self.params["delete_target"]
        # The old blue first: the deployment is what names it, so a failed delete is found again by a rerun.
        if bg.ACTIONS["delete_old_blue"] in plan["actions"]:
            self.delete_old_blue()
        try:
            call_once(once_client(self.module), "delete_blue_green_deployment", request,
                      lambda: bg.state_of(describe_deployment(self.client, deployment_id)) in ("gone", bg.DELETING),
                      deadline_seconds=max(1.0, min(self.remaining(), 300.0)))
        except is_boto3_error_code(DEPLOYMENT_NOT_FOUND):
            pass
        self.actions.append(bg.ACTIONS["delete"])
        if self.params["wait"]:
            self._wait(f"blue/green deployment {deployment.get('BlueGreenDeploymentName')} to be deleted",
                       lambda: describe_deployment(self.client, deployment_id), lambda d: d is None, bg.state_of)

    def delete_old_blue(self):
        old = self.world.old_blue
        request = bg.delete_old_blue_request(old, self.world.final_snapshot)

        def took_effect():
            status = rds_resources.status_of(rds_resources.describe_instance(self.client, old))
            return status in ("gone", "deleting") and f"{old} {status}"

        try:
            call_once(once_client(self.module), "delete_db_instance", request, took_effect,
                      deadline_seconds=max(1.0, min(self.remaining(), 300.0)))
        except is_boto3_error_code(list(rds_resources.NOT_FOUND_CODES["instance"])):
            return
        self.actions.append(bg.ACTIONS["delete_old_blue"])
        if self.params["wait"]:
            self._wait(f"old blue {old} to be deleted", lambda: rds_resources.describe_instance(self.client, old),
                       lambda found: found is None, rds_resources.status_of)


def choose_final_snapshot(client, world):
    """The old blue's final snapshot name (world.final_snapshot): the first candidate no snapshot has; problems."""
    candidates = bg.final_snapshot_candidates(world.old_blue, world.params["final_snapshot_identifier"],
                                              datetime.datetime.now(datetime.timezone.utc))
    existing = set()
    for name in candidates:
        if rds_resources.describe_snapshot(client, rds_resources.INSTANCE, name) is None:
            break
        existing.add(name)
    world.final_snapshot, problems = bg.choose_final_snapshot(candidates, existing)
    return problems


# ------------------------------------------------------------------------------------------------ the switchover

class Switchover:
    """The switchover drill: write probes through the instance's endpoint, the request, the wait, the settle."""

    def __init__(self, module, client, runtime, world, probing):
        self.module, self.client, self.runtime, self.world = module, client, runtime, world
        self.params = module.params
        self.clock = runtime.clock
        self.deadline = self.clock.elapsed() + self.params["wait_timeout"]
        self.probing = probing
        self.probes = None
        self.present = None
        self.requested = None
        self.calls = []
        self.measured = {"switched_over": False, "requested_at": None, "completed_at": None,
                         "api_switchover_seconds": None}
        self.new_instance = None

    def remaining(self):
        return max(0.0, self.deadline - self.clock.elapsed())

    def wait(self, phase, fetch, done, interval=None, **kwargs):
        self.runtime.enter(phase)
        return wait_until(fetch, done, timeout=self.remaining(), interval=interval or self.params["poll_interval"],
                          phase=phase, clock=self.clock, **kwargs)

    def steps(self):
        if self.probing:
            self.start_probes()
        self.switch()
        if self.probes is not None:
            settle, since = self.params["probe_settle_seconds"], self.clock.elapsed()
            self.wait("writes to settle", lambda: failover_drill.settled_for(self.probes.samples(), self.requested,
                                                                             self.clock.elapsed()),
                      lambda seconds: seconds >= settle, interval=self.params["probe_interval"],
                      state_of=lambda s: "settled" if s >= settle else ("succeeding" if s > 0 else "failing"),
                      permanent=self.probes.permanent_error_since(since))

    def start_probes(self):
        world, table = self.world, self.params["probe_table"]
        name = world.deployment["BlueGreenDeploymentName"]
        blue = connector(self.module, self.client, world.instance)
        self.runtime.enter("probe setup", f"probes into {table} on {blue.target}")
        self.probes = WriteProbes(FollowingConnector(blue), table, probe_drill_id(name), None, self.clock,
                                  interval=self.params["probe_interval"], timeout=self.params["probe_timeout"],
                                  wait=wait_until)
        # The table was made before the green (state=present), so it replicates: adopt it instead of creating it.
        self.probes.created = self.probes.confirmed = True
        self.probes.begin()
        try:
            self.probes.wait_baseline(BASELINE_PROBES, timeout=min(self.remaining(), 30.0))
        except (WaitTimeout, WaitFailed) as exc:
            raise DrillAborted("probe setup", f"Probing {blue.target} failed before any change "
                               f"({self.probes.last_permanent_error() or exc}): check the login options", exc)
        self.runtime.log.event(f"baseline: {self.probes.loop.successes()} probe writes succeeded", phase="probe setup")

    def follow(self):
        """Clients resolve the name again: the probes go where the instance's endpoint now points."""
        described = rds_resources.describe_instance(self.client, self.world.identifier)
        if described is not None and self.probes is not None:
            self.probes.connector.retarget(connector(self.module, self.client, described))
        return described

    def switch(self):
        world = self.world
        deployment_id = world.deployment["BlueGreenDeploymentIdentifier"]
        request = {"BlueGreenDeploymentIdentifier": deployment_id,
                   "SwitchoverTimeout": self.params["switchover_timeout"]}

        def took_effect():
            """The status, else the deployment's events since the request: RDS may have rolled a switchover back
            to AVAILABLE before this reads it. Without either read, nothing is sent again."""
            since = self.clock.at(self.requested) - datetime.timedelta(seconds=EVENT_CLOCK_SKEW_SECONDS)
            try:
                found = bg.switchover_status_evidence(describe_deployment(self.client, deployment_id))
                return found or bg.switchover_event_evidence(
                    rds_resources.events_since(self.client, bg.EVENT_SOURCE_TYPE, deployment_id, since), since)
            except aws_errors() as exc:
                raise SwitchoverUnconfirmed(f"reading its status and events failed ({exc})") from exc

        self.runtime.enter("switchover", f"SwitchoverBlueGreenDeployment {deployment_id}", timed=True)
        self.requested = self.clock.elapsed()
        self.measured["requested_at"] = utc_iso(self.clock.at(self.requested))
        self.calls.append({"call": "switchover_blue_green_deployment", "parameters": request})
        try:
            answered = call_once(once_client(self.module), "switchover_blue_green_deployment", request, took_effect,
                                 deadline_seconds=max(1.0, min(self.remaining(), 300.0)))
        except CallNotConfirmed as exc:
            raise DrillAborted("switchover", f"Switching over {deployment_id}: {exc}: check the RDS console",
                               cause=exc.cause)
        except SwitchoverUnconfirmed as exc:
            raise DrillAborted("switchover", f"Switching over {deployment_id}: the answer to the request was lost and "
                               f"{exc}; it was not sent again: check the deployment's status and events in the RDS "
                               "console before running again", cause=exc.__cause__)
        except aws_errors() as exc:
            raise DrillAborted("switchover", f"Switching over {deployment_id} was refused: {exc}", cause=exc)

        # RDS answers with the deployment in progress, and a lost answer is confirmed only by a switchover that
        # started: from then on, AVAILABLE again means rolled back.
        answer = ((answered["response"] or {}).get("BlueGreenDeployment") or {}).get("Status")
        seen = {"in_progress": answer == bg.SWITCHOVER_IN_PROGRESS or answered["confirmed_by"] != "answer"}
        if answered["confirmed_by"] != "answer":
            self.runtime.log.event(f"the answer was lost; RDS shows the request was received: "
                                   f"{answered['confirmed_by']}", phase="switchover")

        def fetch():
            found = describe_deployment(self.client, deployment_id)
            seen["in_progress"] = seen["in_progress"] or (found or {}).get("Status") == bg.SWITCHOVER_IN_PROGRESS
            self.follow()
            return found

        outcome = self.wait("switchover to complete", fetch, bg.switched_over, state_of=bg.state_of,
                            failed=lambda d: bg.switchover_stopped(d, seen["in_progress"]))
        self.runtime.log.transitions(f"deployment {deployment_id}", outcome.transitions)
        self.runtime.log.finish("switchover")
        completed = self.clock.elapsed()
        world.deployment = outcome.value
        self.new_instance = self.follow()
        self.measured.update(switched_over=True, completed_at=utc_iso(self.clock.at(completed)),
                             api_switchover_seconds=round(completed - self.requested, 3))

    def cleanup(self, failure):
        self.runtime.log.close_open("failed" if failure else "ok")
        if self.probes is None:
            return
        self.runtime.enter("cleanup")
        new = self.new_instance or rds_resources.describe_instance(self.client, self.world.identifier)
        present, dropped = self.probes.finish(connector=connector(self.module, self.client, new),
                                              grace=min(60.0, max(self.remaining(), 10.0)),
                                              interval=max(0.5, self.params["probe_interval"]))
        self.measured["probe_table_removed"] = dropped
        self.present = present
        old = self.world.old_blue_now()
        if old is not None:
            try:
                with_connection(connector(self.module, self.client, old),
                                lambda conn: drop_probe_table(conn, self.params["probe_table"], self.probes.drill_id),
                                connect_timeout=self.params["probe_timeout"])
            except Exception as exc:  # pylint: disable=broad-except
                self.runtime.log.event(f"the probe table on the old blue stays ({short_message(exc)}); it goes with "
                                       "the old blue", phase="cleanup")

    def measurements(self):
        measured = dict(self.measured)
        if self.probes is not None:
            samples = self.probes.samples()
            lost = writes_lost(samples, self.present)
            downtime = failover_drill.measure_downtime(samples, self.requested, self.params["probe_timeout"])
            counts = failover_drill.probe_counts(samples, self.params["probe_timeout"])
            measured.update(write_downtime_seconds=downtime["observed_downtime_seconds"],
                            lost_writes=lost["lost_writes"], lost_write_numbers=lost["lost_write_numbers"],
                            acknowledged_writes=lost["acknowledged_writes"], rows_found=lost["rows_found"],
                            probes_sent=counts["probes_sent"], probes_failed=counts["probes_failed"],
                            read_only_errors=counts["read_only_errors"])
        measured["duration_seconds"] = round(self.clock.elapsed(), 3)
        return measured


def switch_over(module, client, world, plan):
    params = module.params
    identifier = world.identifier
    runtime = DrillRuntime(module, "blue_green", identifier, f"Blue/green switchover of {identifier}",
                           progress_log=params["progress_log"])
    probing = probing_wanted(params)
    if probing:
        found, exists = probe_table_problems(module, client, world, probe_drill_id(
            world.deployment["BlueGreenDeploymentName"]))
        if found:
            runtime.refuse(found, actions=[])
        if not exists:
            warn(module, f"the probe table {params['probe_table']} was not made before the green (run state=present "
                         "with login options to make it): switching over without write probes")
            probing = False
    runtime.log.event("pre-checks passed", phase="pre-checks")
    run = Switchover(module, client, runtime, world, probing)
    failure = runtime.act(run.steps, run.cleanup)
    measured = run.measurements()
    found = bg.objectives(measured, params, probing)
    verdict = bg.breach(identifier, found)
    outcome = bg.verdict(found, failure is not None)
    if outcome == "not_measured":
        warn(module, f"the switchover of {identifier} ran without write probes: lost writes were not measured, so it "
                     "is reported as not passed (verdict not_measured); give the login options to measure them")
    details = {"calls": run.calls, "deployment": camel_dict_to_snake_dict(world.deployment or {}),
               "phases": runtime.log.phases, "verdict": outcome}
    report = runtime.report(passed=outcome == "passed", objectives=found, measurements=measured,
                            details=details, failure=str(failure) if failure else verdict)
    result = dict(changed=bool(run.calls), actions=[bg.ACTIONS["switchover"]] if run.calls else [],
                  passed=report["passed"], verdict=outcome, lost_writes=measured.get("lost_writes"),
                  measurements=measured,
                  objectives=found, blue_green_deployment=camel_dict_to_snake_dict(world.deployment or {}),
                  green=[])
    runtime.exit(result, report, failure, verdict)


# --------------------------------------------------------------------------------------------------------- main

def argument_spec():
    spec = dict(
        db_instance_identifier=dict(type="str", required=True),
        blue_green_deployment_name=dict(type="str"),
        state=dict(type="str", choices=list(bg.STATES), default="present"),
        target_engine_version=dict(type="str"),
        target_db_parameter_group_name=dict(type="str"),
        target_db_instance_class=dict(type="str"),
        max_lag_seconds=dict(type="float", default=10.0),
        switchover_timeout=dict(type="int", default=300),
        delete_target=dict(type="bool", default=True),
        delete_old_blue=dict(type="bool", default=False),
        final_snapshot_identifier=dict(type="str"),
        tags=dict(type="dict"),
        wait=dict(type="bool", default=True),
        probe=dict(type="bool"),
        extension_versions=dict(type="dict", default={}),
    )
    spec.update(probe_argument_spec(table="dbre_rds_blue_green_probe", settle_seconds=2.0))
    spec.update(wait_argument_spec())
    spec.update(db_connection_argument_spec())
    spec.update(report_argument_spec())
    return spec


def result_of(world, **extra):
    return dict(blue_green_deployment=camel_dict_to_snake_dict(world.deployment or {}), green=world.green_result(),
                **extra)


def pre_checks(module, client, world, plan, name):
    """The problems found before any change (read-only, also in check mode), the figures read on the way for the
    result, and whether a probe table of this deployment exists on blue already."""
    params, identifier = module.params, world.identifier
    problems, extra, table_exists = [], {}, False
    if params["state"] == "present" and world.deployment is not None:
        problems += world.green_problems()
    try:
        if not problems and bg.ACTIONS["create"] in plan["actions"]:
            problems, _family, checks = create_problems(module, client, world, name)
            if checks:
                extra["checks"] = checks
            if not problems and probing_wanted(params):
                # A table this deployment's name marks is one an earlier run made before its create failed: reused.
                problems, table_exists = probe_table_problems(module, client, world, probe_drill_id(name))
        elif not problems and bg.ACTIONS["switchover"] in plan["actions"]:
            problems, extra["lag_seconds"] = switchover_problems(module, world)
        elif not problems and world.old_blue and params["delete_old_blue"]:
            problems = choose_final_snapshot(client, world)
    except AWS_ERRORS as e:
        module.fail_json_aws(e, msg=f"Checking the blue/green deployment of {identifier} failed: allow the describe "
                                    "calls in the notes (and cloudwatch:GetMetricStatistics); nothing was changed")
    return problems, extra, table_exists


def main():
    module = AnsibleAWSModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    identifier = params["db_instance_identifier"]
    problems = bg.option_problems(params) + connection_problems(params) + report_name_problems(params["report_name"])
    if problems:
        module.fail_json(msg=f"Invalid options for the blue/green deployment of {identifier}; nothing was changed: "
                             + "; ".join(problems), problems=problems)
    client = rds_client(module)
    world = World(module, client)
    try:
        world.read()
    except AWS_ERRORS as e:
        module.fail_json_aws(e, msg=f"Reading {identifier} and its blue/green deployments failed: check the region "
                                    "and allow rds:DescribeDBInstances and rds:DescribeBlueGreenDeployments; nothing "
                                    "was changed")
    state = params["state"]
    if world.instance is None and state != "absent":
        world.problems.append(f"DB instance {identifier} does not exist: check db_instance_identifier and the region")
    plan = bg.plan(state, world.deployment, world.instance, params, world.old_blue)
    problems = world.problems + plan["problems"]
    name = params["blue_green_deployment_name"] or bg.default_deployment_name(identifier)
    found, extra, table_exists = pre_checks(module, client, world, plan, name) if not problems else ([], {}, False)
    problems += found
    if problems:
        module.fail_json(msg=f"The blue/green deployment of {identifier} was refused; nothing was changed: "
                             + "; ".join(problems), problems=problems, changed=False, **result_of(world))

    if plan["note"]:
        extra["note"] = plan["note"]
    if world.old_blue and params["delete_old_blue"] and state == "absent":
        extra["old_blue"] = {"db_instance_identifier": world.old_blue,
                             "final_snapshot_identifier": world.final_snapshot}
    if module.check_mode:
        module.exit_json(changed=plan["changed"], actions=plan["actions"], **result_of(world, **extra))
    if state == "switched_over" and plan["changed"]:
        switch_over(module, client, world, plan)

    applier = Applier(module, client, world)
    try:
        if state == "present":
            if plan["changed"]:
                applier.create(name, probe_drill_id(name), probing_wanted(params) and not table_exists)
            if params["wait"] and world.deployment is not None and not bg.switched_over(world.deployment):
                extra["lag_seconds"] = applier.wait_ready()
        elif state == "absent" and plan["changed"]:
            applier.absent(plan)
            if not bg.switched_over(world.deployment) and probing_wanted(params) and world.instance is not None:
                drop_blue_probe_table(module, client, world)
    except (WaitTimeout, WaitFailed) as e:
        module.fail_json(msg=f"Waiting for the blue/green deployment of {identifier} (changes made before: "
                             f"{applier.done()}): {e}; check it in the RDS console, then run again",
                         actions=applier.actions, **result_of(world))
    except CallNotConfirmed as e:
        module.fail_json(msg=f"Changing the blue/green deployment of {identifier} (changes made before: "
                             f"{applier.done()}): {e}; check it in the RDS console, then run again",
                         actions=applier.actions, **result_of(world))
    except AWS_ERRORS as e:
        module.fail_json_aws(e, msg=f"Changing the blue/green deployment of {identifier} (changes made before the "
                                    f"failure: {applier.done()}): check the error and the IAM permissions in the "
                                    "notes, then run again", actions=applier.actions, **result_of(world))
    except ProbeTableFailed as e:
        module.fail_json(msg=f"Creating the probe table {params['probe_table']} on {identifier} failed ({e}); "
                             "nothing was changed: check the login options or set probe=false", actions=[],
                         **result_of(world))
    if applier.transitions:
        extra["waited"] = dict(seconds=round(applier.waited, 3), transitions=applier.transitions)
    if state == "absent" and world.deployment is not None and plan["changed"]:
        world.deployment = describe_deployment(client, world.deployment["BlueGreenDeploymentIdentifier"])
        world.read_greens()
    module.exit_json(changed=plan["changed"], actions=applier.actions, **result_of(world, **extra))


def drop_blue_probe_table(module, client, world):
    """A deployment deleted before its switchover leaves its probe table on blue: drop it if it is still ours."""
    name = world.deployment["BlueGreenDeploymentName"]
    try:
        with_connection(connector(module, client, world.instance),
                        lambda conn: drop_probe_table(conn, module.params["probe_table"], probe_drill_id(name)))
    except Exception as exc:  # pylint: disable=broad-except
        warn(module, f"the probe table {module.params['probe_table']} on {world.identifier} could not be dropped "
                     f"({short_message(exc)}): drop it by hand")


if __name__ == "__main__":
    main()
