#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rds_param_tune
short_description: Tune an RDS or Aurora PostgreSQL parameter group for the instance class and workload
version_added: "0.1.0"
description:
  - Recommends PostgreSQL settings for an instance class and a workload, following PGTune's published formulas
    adjusted for the memory RDS keeps for itself, and applies them to a DB parameter group (RDS PostgreSQL, or the
    instance-level group of Aurora PostgreSQL) or a DB cluster parameter group (Aurora PostgreSQL).
  - Values are written in each parameter's own unit, read from the engine's parameter metadata. C(shared_buffers),
    C(effective_cache_size) and C(wal_buffers) count 8kB pages, C(work_mem) and C(maintenance_work_mem) kB,
    C(min_wal_size) and C(max_wal_size) MB. Human values in O(overrides) such as V(256MB) or V(5min) are converted,
    never taken as bytes.
  - Every value (recommended or overridden) is checked against the group's metadata before the first change (the
    parameter exists, is modifiable, has the right data type and lies within its allowed values). One bad value fails
    the run with every problem listed and nothing modified.
  - Only parameters whose value differs are modified, at most 20 per call, with C(immediate) for dynamic and
    C(pending-reboot) for static parameters. With O(reboot=if_pending) the instances that use the group and wait for a
    reboot are rebooted one at a time, each awaited until available and in sync.
  - The group is created when it does not exist and O(family) is given.
author:
  - dbre.rds maintainers (@dbre-rds)
options:
  db_parameter_group_name:
    description:
      - Name of the DB parameter group to tune (RDS PostgreSQL, or the instance-level group of Aurora PostgreSQL).
      - Exactly one of O(db_parameter_group_name) and O(db_cluster_parameter_group_name) is required.
    type: str
  db_cluster_parameter_group_name:
    description:
      - Name of the DB cluster parameter group to tune (Aurora PostgreSQL cluster-level parameters).
    type: str
  family:
    description:
      - Parameter group family, for example V(postgres15) or V(aurora-postgresql15).
      - Needed to create a group that does not exist; for an existing group it must match the group's family.
    type: str
  description:
    description:
      - Description of a group this module creates. Ignored for an existing group.
    type: str
    default: Tuned by dbre.rds.rds_param_tune
  tags:
    description:
      - Tags of a group this module creates. Ignored for an existing group.
    type: dict
  db_instance_class:
    description:
      - The DB instance class to size for, for example V(db.r6g.large), or V(db.serverless) with O(max_capacity).
      - Memory and vCPUs come from EC2's C(DescribeInstanceTypes) when the caller may read it (see
        O(sizing_source)), else from a table shipped with the collection covering t3, t4g, m5, m6g, m6i, m7g, r5,
        r6g, r6i, r7g and x2g. An unknown class fails and names the closest known ones.
      - Exactly one of O(db_instance_class) and O(db_instance_identifier) is required.
    type: str
  db_instance_identifier:
    description:
      - An instance whose class, storage type and IOPS are read to size the recommendation. For a
        V(db.serverless) member, the cluster's maximum capacity is read unless O(max_capacity) is given.
    type: str
  max_capacity:
    description:
      - Aurora Serverless v2 maximum capacity in ACUs; memory is sized at 2 GiB per ACU.
    type: float
  storage_type:
    description:
      - Storage the instance uses; sets C(random_page_cost) and C(effective_io_concurrency).
      - Defaults to the instance's storage type with O(db_instance_identifier), V(aurora) for Aurora families and
        V(gp3) otherwise.
    type: str
    choices: [gp2, gp3, io1, io2, standard, aurora, aurora-iopt1]
  workload:
    description:
      - The kind of work the database does. V(analytics) is PGTune's data warehouse profile.
    type: str
    choices: [oltp, web, mixed, analytics]
    default: oltp
  max_connections:
    description:
      - The connections to plan for. Defaults to PGTune's number for the workload (web 200, oltp 300, mixed 100,
        analytics 40), capped by RDS's own rule C(LEAST({DBInstanceClassMemory/9531392},5000)).
    type: int
  value_style:
    description:
      - V(absolute) writes numbers computed for the class. V(formula) writes RDS formulas such as
        C({DBInstanceClassMemory/32768}) for memory and vCPU derived settings, so the group stays right when the
        class changes; settings with no formula form stay absolute.
    type: str
    choices: [absolute, formula]
    default: absolute
  overrides:
    description:
      - Parameter values that win over the recommendation, as a dict of name to value. Any modifiable parameter of
        the family may be given.
      - Memory and time values may carry a unit (V(256MB), V(1GB), V(5min), V(500ms)); they are converted to the
        parameter's own unit from the engine metadata. Booleans may be V(true)/V(false) or V(on)/V(off). RDS
        formulas are accepted for integer parameters.
    type: dict
    default: {}
  apply_recommendations:
    description:
      - V(false) manages only the parameters in O(overrides); the recommendation is still computed and returned in
        RV(recommendations), but nothing else in the group changes. Useful to set one parameter (for example
        C(shared_preload_libraries)) with the unit conversion and validation of this module.
    type: bool
    default: true
  reboot:
    description:
      - V(never) leaves instances in C(pending-reboot) and reports them in RV(pending_reboot).
      - V(if_pending) reboots the instances that use the group and wait for a reboot, one at a time, each awaited
        until available with the group in sync.
    type: str
    choices: [never, if_pending]
    default: never
  reboot_force_failover:
    description:
      - Reboot Multi-AZ instances with a failover (C(ForceFailover)) so the standby takes over during the reboot.
        Ignored for single-AZ instances.
    type: bool
    default: false
  sizing_source:
    description:
      - V(auto) asks EC2's C(DescribeInstanceTypes) for the class's memory and vCPUs and falls back to the shipped
        table when that call is denied or does not know the class. V(table) uses only the shipped table.
    type: str
    choices: [auto, table]
    default: auto
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
  - dbre.rds.wait
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
notes:
  - "IAM actions: C(rds:DescribeDBParameterGroups), C(rds:DescribeDBParameters),
    C(rds:DescribeEngineDefaultParameters), C(rds:CreateDBParameterGroup), C(rds:ModifyDBParameterGroup) (or the
    C(DBClusterParameterGroup) equivalents for cluster groups), C(rds:DescribeDBInstances), C(rds:DescribeDBClusters),
    C(rds:RebootDBInstance) with O(reboot=if_pending), C(rds:AddTagsToResource) with O(tags), and optionally
    C(ec2:DescribeInstanceTypes)."
  - Absolute values assume RDS keeps a tenth of the class's memory for the OS and its agents; AWS publishes no exact
    figure. O(value_style=formula) leaves that to RDS's C(DBInstanceClassMemory).
  - On Aurora, C(shared_buffers) (Aurora's own default of about 75 % suits it) and the WAL and checkpoint settings
    (Aurora's storage handles them) are left alone and listed in RV(skipped_parameters).
  - A new instance should not use a group modified in the last five minutes as its default (RDS's advice).
seealso:
  - module: amazon.aws.rds_instance_param_group
  - module: amazon.aws.rds_cluster_param_group
  - module: amazon.aws.rds_instance
  - module: community.postgresql.postgresql_info
  - name: PGTune
    description: The formulas this module follows.
    link: https://pgtune.leopard.in.ua/
  - name: Specifying DB parameters (RDS formulas)
    description: DBInstanceClassMemory, DBInstanceVCPU and the GREATEST, LEAST, SUM and IF functions.
    link: https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_ParamValuesRef.html
"""

EXAMPLES = r"""
- name: Tune the group of an OLTP database on db.r6g.large (creates the group when missing)
  dbre.rds.rds_param_tune:
    db_parameter_group_name: orders-pg15
    family: postgres15
    db_instance_class: db.r6g.large
    workload: oltp

- name: Preview the plan for the class of a running instance, with the before/after of every managed parameter
  dbre.rds.rds_param_tune:
    db_parameter_group_name: orders-pg15
    db_instance_identifier: orders-db
    workload: web
  check_mode: true
  diff: true
  register: orders_plan

- name: Show the recommendation and why
  ansible.builtin.debug:
    msg: "{{ item.name }} = {{ item.value }} {{ item.unit | default('', true) }}: {{ item.rationale }}"
  loop: "{{ orders_plan.recommendations }}"

- name: Formulas that follow the class, with human-unit overrides, rebooting what waits for static changes
  dbre.rds.rds_param_tune:
    db_parameter_group_name: orders-pg15
    db_instance_identifier: orders-db
    value_style: formula
    overrides:
      work_mem: 32MB
      checkpoint_timeout: 15min
      log_min_duration_statement: 250ms
    reboot: if_pending
    reboot_force_failover: true
    wait_timeout: 1200
  register: orders_tuning

- name: Say which instances still wait for a reboot
  ansible.builtin.debug:
    msg: "Pending reboot: {{ orders_tuning.pending_reboot | join(', ') }}"
  when: orders_tuning.pending_reboot | length > 0

- name: Tune an Aurora Serverless v2 cluster-level group for analytics at 64 ACUs
  dbre.rds.rds_param_tune:
    db_cluster_parameter_group_name: reports-apg15
    family: aurora-postgresql15
    db_instance_class: db.serverless
    max_capacity: 64
    workload: analytics
"""

RETURN = r"""
db_parameter_group_name:
  description: The DB parameter group tuned.
  returned: when O(db_parameter_group_name) is given
  type: str
  sample: orders-pg15
db_cluster_parameter_group_name:
  description: The DB cluster parameter group tuned.
  returned: when O(db_cluster_parameter_group_name) is given
  type: str
  sample: reports-apg15
family:
  description: The group's parameter group family.
  returned: always
  type: str
  sample: postgres15
created:
  description: Whether the group was created (in check mode, whether it would be).
  returned: always
  type: bool
  sample: false
sizing:
  description: What the recommendation was sized for and where the figures came from.
  returned: always
  type: dict
  contains:
    instance_class:
      description: The DB instance class.
      type: str
      sample: db.t4g.micro
    memory_gib:
      description: Nominal memory of the class in GiB.
      type: float
      sample: 1
    vcpus:
      description: vCPUs of the class; null for Aurora Serverless v2.
      type: int
      sample: 2
    source:
      description: Where memory and vCPUs came from (V(ec2:DescribeInstanceTypes), V(table) or the ACUs).
      type: str
      sample: ec2:DescribeInstanceTypes
    storage_type:
      description: Storage type the I/O settings were chosen for.
      type: str
      sample: gp3
    iops:
      description: Provisioned IOPS of the instance, when known.
      type: int
      sample: 3000
    workload:
      description: The workload profile.
      type: str
      sample: oltp
    value_style:
      description: V(absolute) or V(formula).
      type: str
      sample: absolute
recommendations:
  description: The recommended settings, before overrides, with the rule that produced each.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Parameter name.
      type: str
      sample: shared_buffers
    value:
      description: The value as RDS takes it, in the parameter's own unit, or an RDS formula.
      type: str
      sample: "29491"
    unit:
      description: The parameter's unit from the engine metadata (V(8kB), V(kB), V(MB), V(s), V(ms)); null when
        unitless.
      type: str
      sample: 8kB
    apply_type:
      description: V(static) or V(dynamic), from the engine metadata; null when the engine has no such parameter.
      type: str
      sample: static
    rationale:
      description: Which rule produced the value.
      type: str
      sample: "PGTune: RAM/4 (943718 kB, ...), in 8kB pages."
skipped_parameters:
  description: Recommended settings left to the engine, with the reason (Aurora-managed, or absent or not modifiable in
    this family).
  returned: always
  type: list
  elements: dict
  sample: [{"name": "wal_buffers", "reason": "Aurora's storage layer handles WAL; the parameter is not Aurora's to tune"}]
changes:
  description: The parameters changed (in check mode, that would be), sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Parameter name.
      type: str
      sample: work_mem
    before:
      description: The group's value before; null when it had none.
      type: str
      sample: null
    after:
      description: The value set.
      type: str
      sample: "2164"
    apply_method:
      description: V(immediate) for dynamic parameters, V(pending-reboot) for static ones.
      type: str
      sample: immediate
pending_reboot:
  description: Identifiers of the DB instances using the group that still need a reboot for static values to take
    effect when the module returns (in check mode, that would need one).
  returned: always
  type: list
  elements: str
  sample: [orders-db]
rebooted:
  description: Identifiers of the DB instances rebooted (in check mode, that would be), in order.
  returned: always
  type: list
  elements: str
  sample: []
reboot_details:
  description: For each reboot, how long the instance took to be available and in sync, and the states it passed.
  returned: always
  type: list
  elements: dict
  sample: [{"db_instance_identifier": "orders-db", "seconds": 1.2, "transitions": []}]
"""

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list

from ansible_collections.dbre.rds.plugins.module_utils import instance_classes
from ansible_collections.dbre.rds.plugins.module_utils import param_tuning
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import aws_client
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import rds_client
from ansible_collections.dbre.rds.plugins.module_utils.waiting import WaitFailed
from ansible_collections.dbre.rds.plugins.module_utils.waiting import WaitTimeout
from ansible_collections.dbre.rds.plugins.module_utils.waiting import wait_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.waiting import wait_until


# Instance states from which waiting cannot end in a reboot.
CANNOT_REBOOT = ("stopped", "stopping", "failed", "missing", "incompatible-parameters", "incompatible-restore",
                 "storage-full", "inaccessible-encryption-credentials")


class Target:
    """The group being tuned: the API names differ between instance-level and cluster-level groups."""

    def __init__(self, params):
        self.cluster = bool(params["db_cluster_parameter_group_name"])
        self.name = params["db_cluster_parameter_group_name"] or params["db_parameter_group_name"]
        self.kind = "DB cluster parameter group" if self.cluster else "DB parameter group"
        self.name_key = "DBClusterParameterGroupName" if self.cluster else "DBParameterGroupName"
        self.return_key = "db_cluster_parameter_group_name" if self.cluster else "db_parameter_group_name"

    def __str__(self):
        return f"{self.kind} {self.name}"


def _pages(call, result_path, **kwargs):
    """Every item of a paginated describe call (the RDS Marker protocol), each page retried."""
    items, marker = [], None
    while True:
        response = call(aws_retry=True, **(dict(kwargs, Marker=marker) if marker else kwargs))
        container = response
        for key in result_path[:-1]:
            container = container.get(key) or {}
        items.extend(container.get(result_path[-1]) or [])
        marker = container.get("Marker") or response.get("Marker")
        if not marker:
            return items


def describe_group(client, target):
    """The group as DescribeDB(Cluster)ParameterGroups shows it, or None when it does not exist."""
    try:
        if target.cluster:
            groups = client.describe_db_cluster_parameter_groups(aws_retry=True, **{target.name_key: target.name})
            groups = groups.get("DBClusterParameterGroups") or []
        else:
            groups = client.describe_db_parameter_groups(aws_retry=True, **{target.name_key: target.name})
            groups = groups.get("DBParameterGroups") or []
    except is_boto3_error_code(["DBParameterGroupNotFound", "DBClusterParameterGroupNotFound",
                                "DBParameterGroupNotFoundFault", "DBClusterParameterGroupNotFoundFault"]):
        return None
    return groups[0] if groups else None


def read_parameters(client, target, exists, family):
    """The group's parameters (metadata and values); the engine defaults of ``family`` for a group not yet made."""
    if exists and target.cluster:
        return _pages(client.describe_db_cluster_parameters, ["Parameters"], DBClusterParameterGroupName=target.name)
    if exists:
        return _pages(client.describe_db_parameters, ["Parameters"], DBParameterGroupName=target.name)
    call = client.describe_engine_default_cluster_parameters if target.cluster \
        else client.describe_engine_default_parameters
    return _pages(call, ["EngineDefaults", "Parameters"], DBParameterGroupFamily=family)


def describe_instance(client, identifier):
    try:
        found = client.describe_db_instances(aws_retry=True, DBInstanceIdentifier=identifier)["DBInstances"]
    except is_boto3_error_code("DBInstanceNotFound"):
        return None
    return found[0] if found else None


def serverless_capacity(client, instance):
    cluster_id = instance.get("DBClusterIdentifier")
    if not cluster_id:
        return None
    clusters = client.describe_db_clusters(aws_retry=True, DBClusterIdentifier=cluster_id).get("DBClusters") or []
    scaling = (clusters[0].get("ServerlessV2ScalingConfiguration") or {}) if clusters else {}
    return scaling.get("MaxCapacity")


def ec2_sizing(module, instance_class):
    """Sizing from EC2's instance type data, or None when the caller may not read it or EC2 does not know the class."""
    instance_type = instance_classes.ec2_instance_type(instance_class)
    if module.params["sizing_source"] != "auto" or instance_type is None:
        return None
    try:
        found = aws_client(module, "ec2").describe_instance_types(aws_retry=True, InstanceTypes=[instance_type])
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError):
        # AccessDenied / UnauthorizedOperation / InvalidInstanceType / no EC2 endpoint: the table decides.
        return None
    types = found.get("InstanceTypes") or []
    return instance_classes.sizing_from_instance_type(instance_class, types[0]) if types else None


def size_for(module, client, aurora):
    """Sizing, storage type and IOPS from the options or the instance named by db_instance_identifier."""
    params = module.params
    instance_class, max_capacity, storage, iops = params["db_instance_class"], params["max_capacity"], None, None
    if params["db_instance_identifier"]:
        instance = describe_instance(client, params["db_instance_identifier"])
        if instance is None:
            module.fail_json(msg=f"Reading the size of DB instance {params['db_instance_identifier']}: no such "
                                 "instance; give an existing db_instance_identifier or db_instance_class.")
        instance_class = instance["DBInstanceClass"]
        storage, iops = instance.get("StorageType"), instance.get("Iops")
        if instance_class == instance_classes.SERVERLESS_CLASS and max_capacity is None:
            max_capacity = serverless_capacity(client, instance)
    storage = params["storage_type"] or (storage if storage in param_tuning.STORAGE_TYPES else None) \
        or ("aurora" if aurora else "gp3")
    try:
        if instance_class == instance_classes.SERVERLESS_CLASS:
            sizing = instance_classes.sizing_for_serverless(max_capacity)
        else:
            sizing = ec2_sizing(module, instance_class) or instance_classes.sizing_from_table(instance_class)
    except ValueError as exc:
        module.fail_json(msg=f"Sizing the recommendation for {instance_class}: {exc}")
    return sizing, storage, iops


def instances_using(client, target):
    """[{"id", "waits" (for a reboot), "multi_az"}] for the instances that use the group."""
    found = []
    if target.cluster:
        for cluster in _pages(client.describe_db_clusters, ["DBClusters"]):
            if str(cluster.get("DBClusterParameterGroup", "")).lower() != target.name.lower():
                continue
            for member in cluster.get("DBClusterMembers") or []:
                found.append({"id": member["DBInstanceIdentifier"],
                              "waits": member.get("DBClusterParameterGroupStatus") == "pending-reboot",
                              "multi_az": False})
        return found
    for instance in _pages(client.describe_db_instances, ["DBInstances"]):
        for group in instance.get("DBParameterGroups") or []:
            if str(group.get("DBParameterGroupName", "")).lower() == target.name.lower():
                found.append({"id": instance["DBInstanceIdentifier"],
                              "waits": group.get("ParameterApplyStatus") == "pending-reboot",
                              "multi_az": bool(instance.get("MultiAZ"))})
    return found


def apply_state(client, target, identifier):
    """The instance's status and the group's apply status on it, as one comparable record."""
    instance = describe_instance(client, identifier) or {}
    apply_status = None
    if target.cluster:
        cluster_id = instance.get("DBClusterIdentifier")
        clusters = client.describe_db_clusters(aws_retry=True, DBClusterIdentifier=cluster_id)["DBClusters"] \
            if cluster_id else []
        for member in (clusters[0].get("DBClusterMembers") or []) if clusters else []:
            if member["DBInstanceIdentifier"] == identifier:
                apply_status = member.get("DBClusterParameterGroupStatus")
    else:
        for group in instance.get("DBParameterGroups") or []:
            if str(group.get("DBParameterGroupName", "")).lower() == target.name.lower():
                apply_status = group.get("ParameterApplyStatus")
    return {"status": instance.get("DBInstanceStatus", "missing"), "apply_status": apply_status}


def reboot_one(module, client, target, identifier, multi_az):
    """Reboot one instance and wait until it is available with the group in sync."""
    params = module.params
    timing = dict(timeout=params["wait_timeout"], interval=params["poll_interval"])

    def fetch():
        return apply_state(client, target, identifier)

    def state_of(value):
        return f"{value['status']}/{value['apply_status']}"

    # RDS shows "applying" for a moment after a modify; a reboot before it ends may miss the new static values.
    wait_until(fetch, lambda v: v["status"] == "available" and v["apply_status"] != "applying",
               phase=f"{identifier} to be available with the parameter changes applied", state_of=state_of,
               failed=lambda v: v["status"] in CANNOT_REBOOT, **timing)
    request = {"DBInstanceIdentifier": identifier}
    if params["reboot_force_failover"] and multi_az:
        request["ForceFailover"] = True
    client.reboot_db_instance(aws_retry=True, **request)
    outcome = wait_until(fetch, lambda v: v["status"] == "available" and v["apply_status"] == "in-sync",
                         phase=f"{identifier} to come back available and in sync after its reboot",
                         state_of=state_of, failed=lambda v: v["status"] in CANNOT_REBOOT, **timing)
    return {"db_instance_identifier": identifier, "seconds": round(outcome.seconds, 3),
            "transitions": outcome.transitions}


def reboot_in_turn(module, client, target, pending, multi_az, changes):
    """Reboot the waiting instances one at a time; returns (rebooted, reboot details, still pending)."""
    rebooted, details, pending = [], [], list(pending)
    for identifier in list(pending):
        try:
            details.append(reboot_one(module, client, target, identifier, multi_az.get(identifier)))
        except (WaitTimeout, WaitFailed) as e:
            module.fail_json(msg=f"Rebooting {identifier} for {target}: {e}; check the instance's events",
                             rebooted=rebooted, changes=changes, pending_reboot=pending)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            module.fail_json_aws(e, msg=f"Rebooting {identifier} for {target}: check its state and the caller's "
                                        "rds:RebootDBInstance permission", rebooted=rebooted, changes=changes)
        rebooted.append(identifier)
        pending.remove(identifier)
    return rebooted, details, pending


def create_group(client, target, family, params):
    request = {target.name_key: target.name, "DBParameterGroupFamily": family, "Description": params["description"]}
    if params["tags"]:
        request["Tags"] = ansible_dict_to_boto3_tag_list(params["tags"])
    if target.cluster:
        client.create_db_cluster_parameter_group(aws_retry=True, **request)
    else:
        client.create_db_parameter_group(aws_retry=True, **request)


def modify_group(client, target, batch):
    if target.cluster:
        client.modify_db_cluster_parameter_group(aws_retry=True, DBClusterParameterGroupName=target.name,
                                                 Parameters=batch)
    else:
        client.modify_db_parameter_group(aws_retry=True, DBParameterGroupName=target.name, Parameters=batch)


def resolve_family(module, target, group):
    given = module.params["family"]
    if group is None and not given:
        module.fail_json(msg=f"Reading {target}: it does not exist; give family (for example postgres15 or "
                             "aurora-postgresql15) to create it, or the name of an existing group.")
    if target.name.lower().startswith("default."):
        module.fail_json(msg=f"Checking {target}: RDS default groups cannot be modified; give the name of your own "
                             "group (with family to create it) and attach it to the instances.")
    family = group.get("DBParameterGroupFamily") if group else given
    if group and given and given != family:
        module.fail_json(msg=f"Checking {target}: its family is {family}, not {given}; drop family or give {family}.")
    problem = param_tuning.family_problem(family)
    if problem:
        module.fail_json(msg=f"Checking {target}: {problem}")
    return family


def main():
    argument_spec = dict(
        db_parameter_group_name=dict(type="str"),
        db_cluster_parameter_group_name=dict(type="str"),
        family=dict(type="str"),
        description=dict(type="str", default="Tuned by dbre.rds.rds_param_tune"),
        tags=dict(type="dict"),
        db_instance_class=dict(type="str"),
        db_instance_identifier=dict(type="str"),
        max_capacity=dict(type="float"),
        storage_type=dict(type="str", choices=list(param_tuning.STORAGE_TYPES)),
        workload=dict(type="str", choices=list(param_tuning.WORKLOADS), default="oltp"),
        max_connections=dict(type="int"),
        value_style=dict(type="str", choices=list(param_tuning.VALUE_STYLES), default="absolute"),
        overrides=dict(type="dict", default={}),
        apply_recommendations=dict(type="bool", default=True),
        reboot=dict(type="str", choices=["never", "if_pending"], default="never"),
        reboot_force_failover=dict(type="bool", default=False),
        sizing_source=dict(type="str", choices=["auto", "table"], default="auto"),
        **wait_argument_spec(),
    )
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_one_of=[["db_parameter_group_name", "db_cluster_parameter_group_name"],
                         ["db_instance_class", "db_instance_identifier"]],
        mutually_exclusive=[["db_parameter_group_name", "db_cluster_parameter_group_name"],
                            ["db_instance_class", "db_instance_identifier"]],
        required_if=[["db_instance_class", instance_classes.SERVERLESS_CLASS, ["max_capacity"]]],
    )
    params = module.params
    if params["max_connections"] is not None and params["max_connections"] < 1:
        module.fail_json(msg="Checking max_connections: it must be at least 1.")
    client = rds_client(module)
    target = Target(params)

    try:
        group = describe_group(client, target)
        family = resolve_family(module, target, group)
        aurora = param_tuning.is_aurora_family(family)
        sizing, storage, iops = size_for(module, client, aurora)
        parameters = read_parameters(client, target, group is not None, family)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        module.fail_json_aws(e, msg=f"Reading {target} and the sizing inputs: check the names and the caller's "
                                    "rds:Describe* permissions")
    metadata = {p["ParameterName"]: p for p in parameters}
    current = {p["ParameterName"]: p.get("ParameterValue") for p in parameters}

    recommendations, skipped = param_tuning.recommend(
        sizing, params["workload"], params["value_style"], max_connections=params["max_connections"],
        storage_type=storage, aurora=aurora, current_preload_libraries=current.get("shared_preload_libraries"),
        iops=iops)
    recommendations = param_tuning.in_group_units(recommendations, metadata)
    managed = recommendations if params["apply_recommendations"] else []
    desired, _sources, not_offered, problems = param_tuning.desired_values(managed, params["overrides"], metadata)
    if problems:
        module.fail_json(msg=f"Checking the values for {target} found {len(problems)} problem(s); nothing was "
                             f"changed: {' | '.join(problems)}", problems=problems)
    changes = param_tuning.plan_parameter_changes(desired, current, metadata)
    created = group is None

    try:
        if not module.check_mode:
            if created:
                create_group(client, target, family, params)
            for batch in param_tuning.modify_batches(changes):
                modify_group(client, target, batch)
        users = instances_using(client, target) if not created else []
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        module.fail_json_aws(e, msg=f"Applying {len(changes)} change(s) to {target}: check the caller's "
                                    "rds:Create*/Modify* permissions; RDS applies each call of up to 20 whole or not "
                                    "at all, so rerun to finish", changes=changes)
    static_change = param_tuning.needs_reboot(changes)
    pending = sorted(user["id"] for user in users if user["waits"] or static_change)
    multi_az = {user["id"]: user["multi_az"] for user in users}

    rebooted, reboot_details = [], []
    if params["reboot"] == "if_pending" and pending:
        if module.check_mode:
            rebooted, pending = list(pending), []
        else:
            rebooted, reboot_details, pending = reboot_in_turn(module, client, target, pending, multi_az, changes)

    result = dict(
        changed=bool(created or changes or rebooted),
        family=family,
        created=created,
        sizing=dict(sizing, storage_type=storage, iops=iops, workload=params["workload"],
                    value_style=params["value_style"]),
        recommendations=param_tuning.annotate_recommendations(recommendations, metadata),
        skipped_parameters=skipped + not_offered,
        changes=changes,
        pending_reboot=pending,
        rebooted=rebooted,
        reboot_details=reboot_details,
    )
    result[target.return_key] = target.name
    result["sizing"].pop("memory_bytes", None)
    if module._diff:
        result["diff"] = param_tuning.parameter_diff(desired, current)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
