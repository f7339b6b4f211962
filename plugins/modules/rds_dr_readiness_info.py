#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rds_dr_readiness_info
short_description: Judge whether an RDS instance or an Aurora (global) cluster is ready for a regional disaster
version_added: "0.2.0"
description:
  - The monthly DR readiness test as one read-only task. For a DB instance, an Aurora cluster or an Aurora global
    database, it finds the DR copies in another region and runs every check, each returned with its name, whether it
    passed, the measured value, the objective and, when it failed, the fix.
  - "DR copies are cross-region read replicas (found through C(ReadReplicaDBInstanceIdentifiers), which names them by
    ARN), the secondary clusters of the global database, automated backups replicated to the DR region
    (C(DescribeDBInstanceAutomatedBackups) there) and snapshot copies in the DR region (copied from the primary's
    region; a snapshot taken in the DR region itself is no copy). A copy in the primary's own region is not a DR
    copy: it is named in the fix of the C(dr_copy) check."
  - "The checks: C(primary_available); C(dr_copy) and C(dr_copies_available); C(replication_lag), the lag of every
    standby now and at its maximum over O(lookback_minutes), read from CloudWatch in the standby's region
    (C(ReplicaLag), or C(AuroraGlobalDBReplicationLag) for global databases) against O(max_lag_seconds) (a
    negative lag, replication not running, or a newest datapoint older than 10 minutes fails it);
    C(backup_retention) against O(min_backup_retention_days); C(latest_restorable_time) against
    O(max_restorable_age_seconds); C(dr_backups), the age of the newest restorable backup in the DR region against
    O(max_dr_backup_age_hours); C(encryption) of the primary and every DR copy; C(dr_kms_key), the KMS key of each
    encrypted DR copy is a key of the DR region and enabled; C(deletion_protection) of the primary and the standbys;
    C(instance_class_parity) and C(parameter_group_parity) (the parameter values that differ, not the group names);
    C(lag_alarm), an alarm with actions in the DR region that fires when each standby's lag rises above a threshold
    at or below O(max_lag_seconds);
    C(primary_alarm), at least one alarm with actions on the primary; C(rto) and C(rpo), the estimates of the
    strategy in use against O(rto_objective_seconds) and O(rpo_objective_seconds)."
  - "The strategy in use is the best the usable DR copies give: C(aurora_global_database) (RTO 60 s),
    C(cross_region_read_replica) (RTO 600 s), C(cross_region_automated_backups) and C(cross_region_snapshot_copies)
    (RTO 4 hours); the RTO figures are the ones AWS documents (each estimate returns its C(source)). The RPO is
    measured: the recent maximum lag of the best standby, or the age of the newest restorable backup in the DR
    region. A standby whose replication is not running has no measured RPO: C(rpo) is then not applicable."
  - A check that cannot apply is not failed twice; it is listed in RV(not_applicable) with the reason (for example
    the standby checks when there is no DR copy at all, or when the DR copies are only backups).
  - The module reports; it does not fail when a check fails. Use RV(passed) (or RV(failed_checks)) to fail a play,
    and O(report_dir) for the JSON, Markdown and JUnit XML report of the shared report writer.
  - Every option is checked, and the primary found, before the first CloudWatch or KMS call. The module makes no
    mutating call and runs the same in check mode.
author:
  - dbre.rds maintainers (@dbre-rds)
options:
  db_instance_identifier:
    description:
      - The primary DB instance (not a read replica, not an Aurora member) in the module's region.
      - Exactly one of O(db_instance_identifier), O(db_cluster_identifier) and O(global_cluster_identifier).
    type: str
  db_cluster_identifier:
    description:
      - The primary Aurora DB cluster in the module's region. When it is the writer of a global database, the global
        database's secondary clusters are its DR copies; a secondary cluster is refused (name the global database).
    type: str
  global_cluster_identifier:
    description:
      - The Aurora global database. Its writer cluster is the primary, in whatever region it is; its secondary
        clusters are the DR copies.
    type: str
  dr_region:
    description:
      - The region where the DR copies must be. Defaults to the region of the first cross-region copy the topology
        shows (a read replica or a secondary cluster). Without it, and with no such copy, the C(dr_copy) check
        fails.
      - Must differ from the primary's region; the same region is refused before any other call.
      - Replicated automated backups and snapshot copies are looked for in this region only.
    type: str
  max_lag_seconds:
    description:
      - The most replication lag, in seconds, a standby may have now and at any time in the last O(lookback_minutes);
        also the highest threshold a lag alarm may have.
    type: float
    default: 30
  lookback_minutes:
    description:
      - How far back the lag's recent maximum is read, 1 to 1440 minutes.
    type: int
    default: 60
  min_backup_retention_days:
    description:
      - The fewest days of automated backups the primary must keep, 1 to 35.
    type: int
    default: 7
  max_restorable_age_seconds:
    description:
      - The oldest the primary's latest restorable time may be. RDS uploads transaction logs every five minutes.
    type: float
    default: 600
  max_dr_backup_age_hours:
    description:
      - The oldest the newest restorable backup in the DR region (replicated automated backups, a snapshot copy, a
        secondary cluster's own backups) may be, in hours.
    type: float
    default: 25
  rto_objective_seconds:
    description:
      - The recovery time objective the strategy's estimated RTO is held to.
    type: float
    default: 3600
  rpo_objective_seconds:
    description:
      - The recovery point objective the strategy's estimated (measured) RPO is held to.
    type: float
    default: 300
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
  - dbre.rds.report
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - "IAM actions: C(rds:DescribeDBInstances), C(rds:DescribeDBClusters), C(rds:DescribeGlobalClusters),
    C(rds:DescribeDBInstanceAutomatedBackups), C(rds:DescribeDBSnapshots) or C(rds:DescribeDBClusterSnapshots),
    C(rds:DescribeDBParameters) or C(rds:DescribeDBClusterParameters), C(cloudwatch:GetMetricStatistics),
    C(cloudwatch:DescribeAlarms) and C(kms:DescribeKey), in the primary's region and in the DR region."
  - The DR region's clients keep O(endpoint_url) when it is given; give none (or one that serves every region) when
    the DR region is another region than the module's.
  - The RTO figures are estimates from AWS documentation, not measurements; M(dbre.rds.rds_dr_drill) measures what a
    failover really costs.
seealso:
  - module: dbre.rds.rds_dr_drill
  - module: dbre.rds.rds_alarm_thresholds_info
  - module: dbre.rds.rds_snapshot_retention
  - module: amazon.aws.rds_instance_info
  - module: amazon.aws.rds_global_cluster_info
  - module: amazon.aws.cloudwatch_metric_alarm
"""

EXAMPLES = r"""
- name: Monthly DR readiness test of an instance with a cross-region replica, with a report for CI
  dbre.rds.rds_dr_readiness_info:
    db_instance_identifier: orders
    region: us-east-1
    max_lag_seconds: 10
    rto_objective_seconds: 900
    rpo_objective_seconds: 60
    report_dir: /var/lib/dbre/dr-readiness
  register: readiness

- name: Fail the play on any failed check, naming each with its fix
  ansible.builtin.assert:
    that: readiness.passed
    fail_msg: "{{ readiness.checks | rejectattr('passed') | map(attribute='fix') | list }}"

- name: Check an Aurora global database from any region (check mode changes nothing either)
  dbre.rds.rds_dr_readiness_info:
    global_cluster_identifier: ledger-global
    region: eu-west-1
  check_mode: true
  register: global_readiness

- name: An instance whose DR copies are snapshot copies in us-west-2
  dbre.rds.rds_dr_readiness_info:
    db_instance_identifier: reports
    dr_region: us-west-2
    rto_objective_seconds: 28800
    rpo_objective_seconds: 90000
"""

RETURN = r"""
passed:
  description: Whether every check that applied passed.
  returned: always
  type: bool
  sample: false
failed_checks:
  description: Names of the checks that failed, in report order.
  returned: always
  type: list
  elements: str
  sample: ["lag_alarm"]
checks:
  description:
    - Every check that applied, in report order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The check (C(primary_available), C(dr_copy), C(dr_copies_available), C(replication_lag),
        C(backup_retention), C(latest_restorable_time), C(dr_backups), C(encryption), C(dr_kms_key),
        C(deletion_protection), C(instance_class_parity), C(parameter_group_parity), C(lag_alarm), C(primary_alarm),
        C(rto), C(rpo)).
      type: str
      sample: replication_lag
    passed:
      description: Whether it passed.
      type: bool
      sample: true
    measured:
      description: What was measured (a number in RV(checks[].unit), a list or a dict per resource).
      type: raw
      sample: 1.2
    objective:
      description: What it was held to.
      type: raw
      sample: 30
    unit:
      description: The unit of a numeric measurement and objective, else null.
      type: str
      sample: seconds
    fix:
      description: What to do about it when it failed; null when it passed.
      type: str
      sample: "no CloudWatch alarm on ReplicaLag of orders-dr in us-west-2: create one ..."
    detail:
      description: What the measurement is made of (per copy lag, alarms, parameter groups, sources), or null.
      type: raw
  sample: [{"name": "backup_retention", "passed": false, "measured": 1, "objective": 7, "unit": "days",
            "fix": "keep automated backups of orders at least 7 days ...", "detail": null}]
not_applicable:
  description: The checks that could not apply, each with C(name) and C(reason).
  returned: always
  type: list
  elements: dict
  sample: [{"name": "lag_alarm", "reason": "no DR copy in another region (see dr_copy)"}]
not_applicable_checks:
  description: Names of the checks that did not apply.
  returned: always
  type: list
  elements: str
  sample: []
estimate:
  description:
    - The strategy in use and its estimated RTO and RPO in seconds, with their basis and the AWS documentation the RTO
      figure comes from (C(source)), and the copy the RPO was measured on (C(best_copy)). Null when there is no DR
      copy. C(rpo_seconds) is null when nothing could be measured.
  returned: always
  type: dict
  sample: {"strategy": "cross_region_read_replica", "rto_seconds": 600, "rpo_seconds": 1.2, "best_copy": "orders-dr",
           "rto_basis": "promotion of a cross-region read replica ...", "rpo_basis": "ReplicaLag of the best replica",
           "source": "Amazon RDS User Guide, 'Promoting a read replica to be a standalone DB instance' ..."}
topology:
  description:
    - What was judged. C(kind) (instance or cluster), C(primary) (identifier, region, arn), C(global_cluster) (the
      global database's identifier or null), C(dr_region), C(dr_copies) (kind, identifier, region, arn, status,
      encrypted, kms_key_id), C(same_region_copies) and C(other_region_copies) (copies outside the DR region, not
      judged), C(drill_copies) (temporary replicas of a drill, tagged C(dbre:drill-id), not judged).
  returned: always
  type: dict
  sample: {"kind": "instance", "primary": {"identifier": "orders", "region": "us-east-1"}, "dr_region": "us-west-2",
           "dr_copies": [{"kind": "read_replica", "identifier": "orders-dr", "region": "us-west-2"}]}
report:
  description:
    - The report itself, as written to the files, in the shape of the drills' reports (title, kind C(dr_readiness),
      target, started_at, finished_at, passed, failure, objectives (one per check), timeline, measurements, details
      with checks, not_applicable, estimate and topology).
  returned: when O(report_dir) is set
  type: dict
report_files:
  description: Paths of the written report files by format (json, md, xml).
  returned: when O(report_dir) is set
  type: dict
  sample: {"json": "/var/lib/dbre/dr-readiness/dr_readiness-orders-20261130T030000Z.json"}
"""

import datetime

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import aws_client
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import rds_client
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import report_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import DrillRuntime
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import aws_errors
from ansible_collections.dbre.rds.plugins.module_utils import dr_readiness as dr
from ansible_collections.dbre.rds.plugins.module_utils import rds_resources

# CloudWatch's standard resolution: the lag is read as one-minute maxima.
LAG_PERIOD_SECONDS = 60


class Reader:
    """Thin, branch-free reads for one run: one client per service and region, every failure named."""

    def __init__(self, module):
        self.module = module
        self._clients = {}

    def client(self, service, region):
        key = (service, region)
        if key not in self._clients:
            self._clients[key] = (rds_client(self.module, region=region) if service == "rds"
                                  else aws_client(self.module, service, region=region))
        return self._clients[key]

    def fail(self, error, doing, allow):
        self.module.fail_json_aws(error, msg=f"{doing} failed: check the region and allow {allow}")

    def instance(self, region, identifier):
        found = None
        try:
            found = rds_resources.describe_instance(self.client("rds", region), identifier)
        except aws_errors() as e:
            self.fail(e, f"Describing the DB instance {identifier} in {region}", "rds:DescribeDBInstances")
        return found

    def cluster(self, region, identifier):
        found = None
        try:
            found = rds_resources.describe_cluster(self.client("rds", region), identifier)
        except aws_errors() as e:
            self.fail(e, f"Describing the DB cluster {identifier} in {region}", "rds:DescribeDBClusters")
        return found

    def cluster_members(self, region, identifier):
        found = {}
        try:
            found = rds_resources.describe_cluster_members(self.client("rds", region), identifier)
        except aws_errors() as e:
            self.fail(e, f"Describing the instances of the DB cluster {identifier} in {region}",
                      "rds:DescribeDBInstances")
        return found

    def global_cluster(self, region, identifier):
        found = None
        try:
            found = rds_resources.describe_global_cluster(self.client("rds", region), identifier)
        except aws_errors() as e:
            self.fail(e, f"Describing the global database {identifier}", "rds:DescribeGlobalClusters")
        return found

    def automated_backups(self, region, primary):
        resource_id, found = primary.get("DbiResourceId"), []
        if not resource_id:
            return found
        try:
            found = rds_resources.paginate(self.client("rds", region), "describe_db_instance_automated_backups",
                                           "DBInstanceAutomatedBackups", DbiResourceId=resource_id)
        except is_boto3_error_code(["DBInstanceAutomatedBackupNotFound", "DBInstanceAutomatedBackupNotFoundFault"]):
            found = []
        except aws_errors() as e:  # pylint: disable=duplicate-except
            self.fail(e, f"Describing the replicated automated backups in {region}",
                      "rds:DescribeDBInstanceAutomatedBackups")
        return found

    def snapshot_copies(self, region, kind, identifier):
        found = []
        try:
            found = rds_resources.describe_snapshots(self.client("rds", region), kind, identifier)
        except aws_errors() as e:
            self.fail(e, f"Describing the snapshots of {identifier} in {region}",
                      "rds:DescribeDBClusterSnapshots" if kind == dr.CLUSTER else "rds:DescribeDBSnapshots")
        return found

    def parameters(self, region, kind, group):
        if not group:
            return {}
        operation, key = (("describe_db_cluster_parameters", "DBClusterParameterGroupName") if kind == dr.CLUSTER
                          else ("describe_db_parameters", "DBParameterGroupName"))
        found = []
        try:
            found = rds_resources.paginate(self.client("rds", region), operation, "Parameters",
                                           **{key: group, "Source": "user"})
        except aws_errors() as e:
            self.fail(e, f"Reading the parameter group {group} in {region}",
                      "rds:DescribeDBClusterParameters" if kind == dr.CLUSTER else "rds:DescribeDBParameters")
        return dr.parameter_values(found)

    def kms_key(self, region, key_id):
        """The key's metadata, or None when the DR region does not know it (a key of another region)."""
        found = None
        try:
            found = self.client("kms", region).describe_key(KeyId=key_id, aws_retry=True)["KeyMetadata"]
        except is_boto3_error_code(["NotFoundException", "NotFound", "InvalidArnException"]):
            found = None
        except aws_errors() as e:  # pylint: disable=duplicate-except
            self.fail(e, f"Describing the KMS key {key_id} in {region}", "kms:DescribeKey")
        return found

    def alarms(self, region):
        client, found, token = self.client("cloudwatch", region), [], None
        try:
            while True:
                page = client.describe_alarms(AlarmTypes=["MetricAlarm"], aws_retry=True,
                                              **({"NextToken": token} if token else {}))
                found += page.get("MetricAlarms") or []
                token = page.get("NextToken")
                if not token:
                    break
        except aws_errors() as e:
            self.fail(e, f"Describing the CloudWatch alarms in {region}", "cloudwatch:DescribeAlarms")
        return found

    def lag(self, region, spec, dimensions, start, end):
        response = {}
        try:
            response = self.client("cloudwatch", region).get_metric_statistics(
                Namespace=dr.NAMESPACE, MetricName=spec["metric"], Dimensions=dimensions, StartTime=start,
                EndTime=end, Period=LAG_PERIOD_SECONDS, Statistics=["Maximum"], aws_retry=True)
        except aws_errors() as e:
            self.fail(e, f"Reading {spec['metric']} in {region}", "cloudwatch:GetMetricStatistics")
        return dr.lag_summary(dr.lag_series(response.get("Datapoints"), spec["unit_seconds"]))


def find_primary(module, reader, params):
    """``(kind, primary, region, global_cluster)``; fails with the fix when the target is not a primary."""
    region = module.region
    if params["db_instance_identifier"]:
        identifier = params["db_instance_identifier"]
        primary = reader.instance(region, identifier)
        if primary is None:
            module.fail_json(msg=f"DB instance {identifier} does not exist in {region}: check the identifier and the "
                                 "region")
        problem = rds_resources.standalone_instance_problem(identifier, primary)
        if problem:
            module.fail_json(msg=problem)
        source = primary.get("ReadReplicaSourceDBInstanceIdentifier")
        if source:
            module.fail_json(msg=f"DB instance {identifier} is a read replica of {dr.name_of(source)}: the readiness "
                                 f"test judges a primary and its DR copies; give "
                                 f"db_instance_identifier={dr.name_of(source)} (in its region)")
        return dr.INSTANCE, primary, region, None
    if params["db_cluster_identifier"]:
        identifier = params["db_cluster_identifier"]
        primary = reader.cluster(region, identifier)
        if primary is None:
            module.fail_json(msg=f"DB cluster {identifier} does not exist in {region}: check the identifier and the "
                                 "region")
        global_cluster = None
        if primary.get("GlobalClusterIdentifier"):
            global_cluster = reader.global_cluster(region, primary["GlobalClusterIdentifier"])
            writer = dr.global_members(global_cluster)[0]
            if writer and writer["arn"] != primary.get("DBClusterArn"):
                module.fail_json(msg=f"DB cluster {identifier} is a secondary of the global database "
                                     f"{primary['GlobalClusterIdentifier']} (the writer is {writer['identifier']} in "
                                     f"{writer['region']}): give global_cluster_identifier="
                                     f"{primary['GlobalClusterIdentifier']}")
        return dr.CLUSTER, primary, region, global_cluster
    identifier = params["global_cluster_identifier"]
    global_cluster = reader.global_cluster(region, identifier)
    if global_cluster is None:
        module.fail_json(msg=f"Global database {identifier} does not exist: check the identifier")
    writer = dr.global_members(global_cluster)[0]
    if writer is None:
        module.fail_json(msg=f"Global database {identifier} has no writer cluster: add one (CreateGlobalCluster with "
                             "SourceDBClusterIdentifier) before testing its readiness")
    primary = reader.cluster(writer["region"], writer["identifier"])
    if primary is None:
        module.fail_json(msg=f"The writer {writer['identifier']} of the global database {identifier} cannot be "
                             f"described in {writer['region']}: check that it still exists")
    return dr.CLUSTER, primary, writer["region"], global_cluster


def copy_refs(kind, primary, region, global_cluster):
    """``[{"identifier", "region", "arn"}]`` of the topology's standbys (replicas or secondary clusters)."""
    if kind == dr.INSTANCE:
        return dr.replica_refs(primary, region)
    return dr.global_members(global_cluster)[1]


def read_facts(module, reader, params, kind, primary, region, global_cluster, dr_region, refs, now):
    """Everything the decisions need (the ``facts`` of dr_readiness.evaluate), read with describes only."""
    pid = primary.get("DBClusterIdentifier") if kind == dr.CLUSTER else primary.get("DBInstanceIdentifier")
    facts = {"kind": kind, "primary": primary, "primary_region": region, "dr_region": dr_region,
             "global_cluster": global_cluster, "replicas": [], "secondaries": [], "automated_backups": [],
             "snapshot_copies": [], "same_region_copies": [], "other_region_copies": [], "drill_copies": [],
             "kms_keys": {}, "lags": {},
             "primary_members": reader.cluster_members(region, pid) if kind == dr.CLUSTER else {}}
    for ref in refs:
        if ref["region"] == region:
            facts["same_region_copies"].append(ref["identifier"])
        elif ref["region"] != dr_region:
            facts["other_region_copies"].append({"identifier": ref["identifier"], "region": ref["region"]})
        elif kind == dr.INSTANCE:
            described = reader.instance(dr_region, ref["identifier"])
            if dr.is_drill_copy(described):
                facts["drill_copies"].append(ref["identifier"])
            elif described is not None:
                facts["replicas"].append({"region": dr_region, "described": described})
        else:
            described = reader.cluster(dr_region, ref["identifier"])
            if described is not None:
                facts["secondaries"].append({"region": dr_region, "described": described,
                                             "members": reader.cluster_members(dr_region, ref["identifier"])})
    if dr_region:
        if kind == dr.INSTANCE:
            facts["automated_backups"] = reader.automated_backups(dr_region, primary)
        facts["snapshot_copies"] = [s for s in reader.snapshot_copies(dr_region, kind, pid)
                                    if dr.copied_from_region(s) == region]
    copies = dr.dr_copies(facts)
    for copy in copies:
        if copy["encrypted"] and copy["kms_key_id"] and copy["kms_key_id"] not in facts["kms_keys"]:
            facts["kms_keys"][copy["kms_key_id"]] = reader.kms_key(dr_region, copy["kms_key_id"])
    start = now - datetime.timedelta(minutes=params["lookback_minutes"])
    for copy in dr.standbys(copies):
        spec = dr.LAG_METRICS[copy["kind"]]
        dimensions = [{"Name": spec["dimension"], "Value": copy["identifier"]}]
        if copy["kind"] == dr.GLOBAL_SECONDARY:
            dimensions.append({"Name": "SourceRegion", "Value": region})
        facts["lags"][copy["identifier"]] = reader.lag(copy["region"], spec, dimensions, start, now)
    facts["primary_alarms"] = reader.alarms(region)
    facts["dr_alarms"] = reader.alarms(dr_region) if dr.standbys(copies) else []
    facts["parameters"], facts["parameter_groups"] = read_parameters(reader, kind, facts, copies)
    return facts


def _group_of(kind, described):
    if kind == dr.CLUSTER:
        return described.get("DBClusterParameterGroup")
    groups = described.get("DBParameterGroups") or [{}]
    return groups[0].get("DBParameterGroupName")


def read_parameters(reader, kind, facts, copies):
    """The user-set values of the primary's parameter group and of each standby's, in their regions."""
    described = {c["described"].get("DBInstanceIdentifier") or c["described"].get("DBClusterIdentifier"): c
                 for c in facts["replicas"] + facts["secondaries"]}
    primary_group = _group_of(kind, facts["primary"])
    values = {"primary": reader.parameters(facts["primary_region"], kind, primary_group), "copies": {}}
    groups = {"primary": primary_group, "copies": {}}
    for copy in dr.standbys(copies):
        group = _group_of(kind, described[copy["identifier"]]["described"])
        groups["copies"][copy["identifier"]] = group
        values["copies"][copy["identifier"]] = reader.parameters(copy["region"], kind, group)
    return values, groups


def topology(facts, copies):
    primary = facts["primary"]
    return {
        "kind": facts["kind"],
        "primary": {"identifier": primary.get("DBInstanceIdentifier") if facts["kind"] == dr.INSTANCE
                    else primary.get("DBClusterIdentifier"), "region": facts["primary_region"],
                    "arn": rds_resources.arn_of(primary)},
        "global_cluster": (facts.get("global_cluster") or {}).get("GlobalClusterIdentifier"),
        "dr_region": facts["dr_region"],
        "dr_copies": [{key: c[key] for key in ("kind", "identifier", "region", "arn", "status", "encrypted",
                                               "kms_key_id")} for c in copies],
        "same_region_copies": facts["same_region_copies"],
        "other_region_copies": facts["other_region_copies"],
        "drill_copies": facts["drill_copies"],
    }


def main():
    argument_spec = dict(
        db_instance_identifier=dict(type="str"),
        db_cluster_identifier=dict(type="str"),
        global_cluster_identifier=dict(type="str"),
        dr_region=dict(type="str"),
        max_lag_seconds=dict(type="float", default=30),
        lookback_minutes=dict(type="int", default=60),
        min_backup_retention_days=dict(type="int", default=7),
        max_restorable_age_seconds=dict(type="float", default=600),
        max_dr_backup_age_hours=dict(type="float", default=25),
        rto_objective_seconds=dict(type="float", default=3600),
        rpo_objective_seconds=dict(type="float", default=300),
    )
    argument_spec.update(report_argument_spec())
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_one_of=[("db_instance_identifier", "db_cluster_identifier", "global_cluster_identifier")],
        mutually_exclusive=[("db_instance_identifier", "db_cluster_identifier", "global_cluster_identifier")],
    )
    params = module.params
    problems = dr.option_problems(params)
    if problems:
        module.fail_json(msg="Invalid options: " + "; ".join(problems))
    if not params["global_cluster_identifier"]:  # the primary is in the module's region: refuse before any call
        problem = dr.choose_dr_region(module.region, [], params["dr_region"])[1]
        if problem:
            module.fail_json(msg=problem)

    reader = Reader(module)
    kind, primary, region, global_cluster = find_primary(module, reader, params)
    refs = copy_refs(kind, primary, region, global_cluster)
    dr_region, problem = dr.choose_dr_region(region, [ref["region"] for ref in refs], params["dr_region"])
    if problem:
        module.fail_json(msg=problem)

    target = primary.get("DBInstanceIdentifier") if kind == dr.INSTANCE else primary.get("DBClusterIdentifier")
    runtime = DrillRuntime(module, "dr_readiness", target, f"DR readiness of {target}")
    now = runtime.clock.now()
    facts = read_facts(module, reader, params, kind, primary, region, global_cluster, dr_region, refs, now)
    verdict = dr.evaluate(facts, dr.limits_from(params), now)
    result = dict(changed=False, passed=verdict["passed"], failed_checks=verdict["failed_checks"],
                  checks=verdict["checks"], not_applicable=verdict["not_applicable"],
                  not_applicable_checks=verdict["not_applicable_checks"],
                  estimate=verdict["estimate"], topology=topology(facts, verdict["copies"]))
    if params["report_dir"]:
        report = runtime.report(
            passed=verdict["passed"], objectives=dr.objectives(verdict["checks"]), timeline=[],
            measurements=dict(dr.measurements(verdict["checks"], verdict["estimate"]),
                              duration_seconds=round(runtime.clock.elapsed(), 3)),
            details=dict(checks=verdict["checks"], not_applicable=verdict["not_applicable"],
                         estimate=verdict["estimate"],
                         topology=result["topology"]))
        runtime.write(report, result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
