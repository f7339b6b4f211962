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
  - O(parameter_groups) tunes a fleet in one run. The engine's parameter metadata is read once per family, the
    class sizing once per class, and the instances that use the groups once, so each further group costs only its
    own reads and changes. Every group is read, planned and checked before the first change to any of them.
  - Every option is checked before the first AWS call (names follow RDS's rules, numbers their ranges, a YAML
    boolean given for a number is refused), and every value before the first change.
author:
  - dbre.rds maintainers (@dbre-rds)
options:
  db_parameter_group_name:
    description:
      - Name of the DB parameter group to tune (RDS PostgreSQL, or the instance-level group of Aurora PostgreSQL).
      - 1 to 255 letters, digits and hyphens, starting with a letter, with no trailing or double hyphen.
      - Exactly one of O(db_parameter_group_name), O(db_cluster_parameter_group_name) and O(parameter_groups) is
        required.
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
      - Exactly one of O(db_instance_class) and O(db_instance_identifier) is required (at the top level or in each
        item of O(parameter_groups)).
    type: str
  db_instance_identifier:
    description:
      - An instance whose class, storage type and IOPS are read to size the recommendation. For a
        V(db.serverless) member, the cluster's maximum capacity is read unless O(max_capacity) is given.
      - The instance's engine must fit the family, an Aurora PostgreSQL member for an C(aurora-postgresql) family
        and an RDS PostgreSQL instance for a C(postgres) one; anything else fails before any change.
    type: str
  max_capacity:
    description:
      - Aurora Serverless v2 maximum capacity in ACUs (0.5 to 256 in steps of 0.5); memory is sized at 2 GiB per
        ACU. Required with O(db_instance_class=db.serverless).
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
      - From 1 to 262143 (PostgreSQL's limit); a boolean is refused.
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
      - A YAML boolean (V(true), V(yes), V(on) unquoted) given for an integer or float parameter is refused, never
        taken as 1.
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
  parameter_groups:
    description:
      - Several groups to tune in one run, each an item with the options below. An item's missing options take the
        value of the top-level option of the same name, so options shared by the fleet are given once.
      - An item always names its own group. An item giving O(parameter_groups[].db_instance_class) or
        O(parameter_groups[].db_instance_identifier) replaces both top-level ones. O(parameter_groups[].overrides)
        are merged over the top-level O(overrides), the item's winning.
      - Mutually exclusive with O(db_parameter_group_name) and O(db_cluster_parameter_group_name). The result lists
        each group's outcome in RV(parameter_groups).
    type: list
    elements: dict
    version_added: "0.2.0"
    suboptions:
      db_parameter_group_name:
        description: Name of a DB parameter group to tune; see O(db_parameter_group_name).
        type: str
      db_cluster_parameter_group_name:
        description: Name of a DB cluster parameter group to tune; see O(db_cluster_parameter_group_name).
        type: str
      family:
        description: See O(family).
        type: str
      description:
        description: See O(description).
        type: str
      tags:
        description: See O(tags).
        type: dict
      db_instance_class:
        description: See O(db_instance_class).
        type: str
      db_instance_identifier:
        description: See O(db_instance_identifier).
        type: str
      max_capacity:
        description: See O(max_capacity).
        type: float
      storage_type:
        description: See O(storage_type).
        type: str
        choices: [gp2, gp3, io1, io2, standard, aurora, aurora-iopt1]
      workload:
        description: See O(workload).
        type: str
        choices: [oltp, web, mixed, analytics]
      max_connections:
        description: See O(max_connections).
        type: int
      value_style:
        description: See O(value_style).
        type: str
        choices: [absolute, formula]
      overrides:
        description: See O(overrides); merged over the top-level O(overrides).
        type: dict
      apply_recommendations:
        description: See O(apply_recommendations).
        type: bool
  sizing_source:
    description:
      - V(auto) asks EC2's C(DescribeInstanceTypes) for the class's memory and vCPUs and falls back to the shipped
        table when that call is denied or does not know the class. V(table) uses only the shipped table.
      - The EC2 call is made once per class in a run, with a 2 s connect and 3 s read timeout and no retry; an EC2
        endpoint that is slow or unreachable costs at most that, then the table decides.
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

- name: Tune a fleet in one run; metadata and sizing are read once and shared
  dbre.rds.rds_param_tune:
    family: postgres15
    db_instance_class: db.r6g.large
    workload: oltp
    overrides:
      log_min_duration_statement: 500ms
    parameter_groups:
      - db_parameter_group_name: orders-pg15
      - db_parameter_group_name: billing-pg15
        db_instance_class: db.r6g.2xlarge
      - db_parameter_group_name: reports-pg15
        workload: analytics
        overrides:
          work_mem: 64MB
  register: fleet_tuning

- name: Say which groups changed
  ansible.builtin.debug:
    msg: "{{ fleet_tuning.parameter_groups | selectattr('changes') | map(attribute='db_parameter_group_name') }}"

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
  returned: when O(parameter_groups) is not given
  type: str
  sample: postgres15
created:
  description: Whether the group was created (in check mode, whether it would be).
  returned: when O(parameter_groups) is not given
  type: bool
  sample: false
sizing:
  description: What the recommendation was sized for and where the figures came from.
  returned: when O(parameter_groups) is not given
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
  returned: when O(parameter_groups) is not given
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
  returned: when O(parameter_groups) is not given
  type: list
  elements: dict
  sample: [{"name": "wal_buffers", "reason": "Aurora's storage layer handles WAL; the parameter is not Aurora's to tune"}]
changes:
  description: The parameters changed (in check mode, that would be), sorted by name.
  returned: when O(parameter_groups) is not given
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
  returned: when O(parameter_groups) is not given
  type: list
  elements: str
  sample: [orders-db]
rebooted:
  description: Identifiers of the DB instances rebooted (in check mode, that would be), in order.
  returned: when O(parameter_groups) is not given
  type: list
  elements: str
  sample: []
reboot_details:
  description: For each reboot, how long the instance took to be available and in sync, and the states it passed.
  returned: when O(parameter_groups) is not given
  type: list
  elements: dict
  sample: [{"db_instance_identifier": "orders-db", "seconds": 1.2, "transitions": []}]
parameter_groups:
  description:
    - With O(parameter_groups), the outcome of each group in the order given, with the keys a single-group run
      returns at the top level (RV(db_parameter_group_name) or RV(db_cluster_parameter_group_name), RV(family),
      RV(created), RV(sizing), RV(recommendations), RV(skipped_parameters), RV(changes), RV(pending_reboot),
      RV(rebooted), RV(reboot_details)).
    - An instance that uses several of the groups is rebooted at most once and listed under the first.
  returned: when O(parameter_groups) is given
  type: list
  elements: dict
  sample: [{"db_parameter_group_name": "orders-pg15", "family": "postgres15", "created": false, "changes": [],
            "pending_reboot": [], "rebooted": [], "reboot_details": [], "sizing": {}, "recommendations": [],
            "skipped_parameters": []}]
"""

try:
    from botocore.exceptions import BotoCoreError
    from botocore.exceptions import ClientError
    AWS_ERRORS = (ClientError, BotoCoreError)
except ImportError:
    AWS_ERRORS = ()  # AnsibleAWSModule reports the missing botocore

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.dbre.rds.plugins.module_utils import instance_classes
from ansible_collections.dbre.rds.plugins.module_utils import param_tuning
from ansible_collections.dbre.rds.plugins.module_utils import rds_resources
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import rds_client
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import single_attempt_client
from ansible_collections.dbre.rds.plugins.module_utils.waiting import WaitFailed
from ansible_collections.dbre.rds.plugins.module_utils.waiting import WaitTimeout
from ansible_collections.dbre.rds.plugins.module_utils.waiting import wait_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.waiting import wait_until
from ansible_collections.dbre.rds.plugins.module_utils.module_warnings import warn


# Instance states from which waiting cannot end in a reboot.
CANNOT_REBOOT = ("stopped", "stopping", "failed", "missing", "incompatible-parameters", "incompatible-restore",
                 "storage-full", "inaccessible-encryption-credentials")
# The EC2 sizing is an optional refinement of the shipped table: one short attempt, never a retry storm.
# The EC2 sizing is a refinement of the class table: one short attempt, never slower than the table it falls back to.
EC2_SIZING_TIMEOUTS = dict(connect_timeout=2, read_timeout=3)
GROUP_NOT_FOUND = ["DBParameterGroupNotFound", "DBClusterParameterGroupNotFound", "DBParameterGroupNotFoundFault",
                   "DBClusterParameterGroupNotFoundFault"]


class Target:
    """The group being tuned: the API names differ between instance-level and cluster-level groups."""

    def __init__(self, request):
        self.cluster = bool(request["db_cluster_parameter_group_name"])
        self.name = request["db_cluster_parameter_group_name"] or request["db_parameter_group_name"]
        self.kind = "DB cluster parameter group" if self.cluster else "DB parameter group"
        self.name_key = "DBClusterParameterGroupName" if self.cluster else "DBParameterGroupName"
        self.return_key = "db_cluster_parameter_group_name" if self.cluster else "db_parameter_group_name"

    def __str__(self):
        return f"{self.kind} {self.name}"


def describe_group(client, target):
    """The group as DescribeDB(Cluster)ParameterGroups shows it, or None when it does not exist."""
    operation, key = (("describe_db_cluster_parameter_groups", "DBClusterParameterGroups") if target.cluster
                      else ("describe_db_parameter_groups", "DBParameterGroups"))
    try:
        groups = rds_resources.paginate(client, operation, key, **{target.name_key: target.name})
    except is_boto3_error_code(GROUP_NOT_FOUND):
        return None
    return groups[0] if groups else None


class RunReads:
    """What one run reads once and shares between its groups: engine defaults per family, sizing per class, the
    instances named for sizing and the instances that use the groups."""

    def __init__(self, module, client):
        self.module, self.client = module, client
        self.shared_families = set()
        self._defaults, self._sizing, self._instances, self._users, self._ec2 = {}, {}, {}, {}, None
        self._ec2_answers = True

    def engine_defaults(self, cluster, family):
        if (cluster, family) not in self._defaults:
            operation = "describe_engine_default_cluster_parameters" if cluster \
                else "describe_engine_default_parameters"
            self._defaults[(cluster, family)] = rds_resources.paginate(
                self.client, operation, "EngineDefaults.Parameters", DBParameterGroupFamily=family)
        return self._defaults[(cluster, family)]

    def parameters(self, target, exists, family):
        """The group's parameters (metadata and values); the engine defaults of ``family`` for a group not yet made."""
        if not exists:
            return self.engine_defaults(target.cluster, family)
        operation = "describe_db_cluster_parameters" if target.cluster else "describe_db_parameters"
        if (target.cluster, family) not in self.shared_families:
            return rds_resources.paginate(self.client, operation, "Parameters", **{target.name_key: target.name})
        own = rds_resources.paginate(self.client, operation, "Parameters", Source="user",
                                     **{target.name_key: target.name})
        return param_tuning.group_parameters(self.engine_defaults(target.cluster, family), own)

    def instance(self, identifier):
        if identifier not in self._instances:
            self._instances[identifier] = rds_resources.describe_instance(self.client, identifier)
        return self._instances[identifier]

    def sizing(self, instance_class):
        """Sizing of a class, looked up once per run; raises ValueError for a class nobody knows."""
        if instance_class not in self._sizing:
            self._sizing[instance_class] = self.ec2_sizing(instance_class) \
                or instance_classes.sizing_from_table(instance_class)
        return self._sizing[instance_class]

    def ec2_sizing(self, instance_class):
        """Sizing from EC2's instance type data, or None when the caller may not read it, EC2 does not answer in
        time or does not know the class."""
        instance_type = instance_classes.ec2_instance_type(instance_class)
        if self.module.params["sizing_source"] != "auto" or instance_type is None or not self._ec2_answers:
            return None
        try:
            if self._ec2 is None:
                self._ec2 = single_attempt_client(self.module, "ec2", **EC2_SIZING_TIMEOUTS)
            found = self._ec2.describe_instance_types(InstanceTypes=[instance_type])
        except is_boto3_error_code("InvalidInstanceType"):
            return None  # EC2 does not know this class: the table decides, and EC2 is still asked about others
        except AWS_ERRORS:  # pylint: disable=duplicate-except
            # AccessDenied / UnauthorizedOperation / no EC2 endpoint / timeout: the table decides for the whole run.
            self._ec2_answers = False
            return None
        types = found.get("InstanceTypes") or []
        return instance_classes.sizing_from_instance_type(instance_class, types[0]) if types else None

    def users(self, target, family):
        """Instances using the group, from one filtered listing per engine for the whole run."""
        engine = "aurora-postgresql" if param_tuning.is_aurora_family(family) else "postgres"
        key = ("cluster" if target.cluster else "instance", engine)
        if key not in self._users:
            operation, result_key = (("describe_db_clusters", "DBClusters") if target.cluster
                                     else ("describe_db_instances", "DBInstances"))
            self._users[key] = rds_resources.paginate(self.client, operation, result_key,
                                                      Filters=[{"Name": "engine", "Values": [engine]}])
        listing = self._users[key]
        return param_tuning.group_users(target.name, target.cluster, instances=listing, clusters=listing)


def serverless_capacity(client, instance):
    cluster = rds_resources.describe_cluster(client, instance.get("DBClusterIdentifier")) \
        if instance.get("DBClusterIdentifier") else None
    return ((cluster or {}).get("ServerlessV2ScalingConfiguration") or {}).get("MaxCapacity")


def size_for(module, reads, request, family, where):
    """Sizing, storage type and IOPS from the request or the instance named by db_instance_identifier."""
    aurora = param_tuning.is_aurora_family(family)
    instance_class, max_capacity, storage, iops = request["db_instance_class"], request["max_capacity"], None, None
    identifier = request["db_instance_identifier"]
    if identifier:
        instance = reads.instance(identifier)
        if instance is None:
            module.fail_json(msg=f"Reading the size of DB instance {identifier}: no such instance; give an existing "
                                 "db_instance_identifier or db_instance_class.")
        problem = param_tuning.instance_problem(identifier, instance, family, where)
        if problem:
            module.fail_json(msg=f"Checking {problem}")
        instance_class = instance["DBInstanceClass"]
        storage, iops = instance.get("StorageType"), instance.get("Iops")
        if instance_class == instance_classes.SERVERLESS_CLASS and max_capacity is None:
            max_capacity = serverless_capacity(reads.client, instance)
    storage = request["storage_type"] or (storage if storage in param_tuning.STORAGE_TYPES else None) \
        or ("aurora" if aurora else "gp3")
    try:
        if instance_class == instance_classes.SERVERLESS_CLASS:
            sizing = instance_classes.sizing_for_serverless(max_capacity)
        else:
            sizing = reads.sizing(instance_class)
    except ValueError as exc:
        module.fail_json(msg=f"Sizing the recommendation for {instance_class}{where}: {exc}")
    if request["max_capacity"] is not None and instance_class != instance_classes.SERVERLESS_CLASS:
        warn(module, f"max_capacity{where} is ignored: {instance_class} is not {instance_classes.SERVERLESS_CLASS}.")
    return sizing, storage, iops


def resolve_family(module, target, group, request):
    given = request["family"]
    if group is None and not given:
        module.fail_json(msg=f"Reading {target}: it does not exist; give family (for example postgres15 or "
                             "aurora-postgresql15) to create it, or the name of an existing group.")
    family = group.get("DBParameterGroupFamily") if group else given
    if group and given and given != family:
        module.fail_json(msg=f"Checking {target}: its family is {family}, not {given}; drop family or give {family}.")
    problem = param_tuning.family_problem(family)
    if problem:
        module.fail_json(msg=f"Checking {target}: {problem}")
    return family


def plan_group(module, reads, target, group, family, request, where):
    """Everything one group needs decided before the first change: sizing, recommendation, values, the plan."""
    aurora = param_tuning.is_aurora_family(family)
    sizing, storage, iops = size_for(module, reads, request, family, where)
    parameters = reads.parameters(target, group is not None, family)
    metadata = {p["ParameterName"]: p for p in parameters}
    current = {p["ParameterName"]: p.get("ParameterValue") for p in parameters}
    recommendations, skipped = param_tuning.recommend(
        sizing, request["workload"], request["value_style"], max_connections=request["max_connections"],
        storage_type=storage, aurora=aurora, current_preload_libraries=current.get("shared_preload_libraries"),
        iops=iops)
    recommendations = param_tuning.in_group_units(recommendations, metadata)
    managed = recommendations if request["apply_recommendations"] else []
    desired, _sources, not_offered, problems = param_tuning.desired_values(managed, request["overrides"], metadata)
    sizing = dict(sizing, storage_type=storage, iops=iops, workload=request["workload"],
                  value_style=request["value_style"])
    sizing.pop("memory_bytes", None)
    return {
        "target": target, "request": request, "family": family, "created": group is None, "problems": problems,
        "changes": param_tuning.plan_parameter_changes(desired, current, metadata) if not problems else [],
        "diff": param_tuning.parameter_diff(desired, current), "sizing": sizing,
        "recommendations": param_tuning.annotate_recommendations(recommendations, metadata),
        "skipped_parameters": skipped + not_offered,
    }


def apply_state(client, target, identifier):
    """The instance's status and the group's apply status on it, as one comparable record."""
    instance = rds_resources.describe_instance(client, identifier) or {}
    apply_status = None
    if target.cluster:
        cluster_id = instance.get("DBClusterIdentifier")
        cluster = rds_resources.describe_cluster(client, cluster_id) if cluster_id else None
        for member in (cluster or {}).get("DBClusterMembers") or []:
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
        except AWS_ERRORS as e:
            module.fail_json_aws(e, msg=f"Rebooting {identifier} for {target}: check its state and the caller's "
                                        "rds:RebootDBInstance permission", rebooted=rebooted, changes=changes)
        rebooted.append(identifier)
        pending.remove(identifier)
    return rebooted, details, pending


def create_group(client, target, family, request):
    call = client.create_db_cluster_parameter_group if target.cluster else client.create_db_parameter_group
    extra = {"Tags": rds_resources.tag_list(request["tags"])} if request["tags"] else {}
    call(aws_retry=True, DBParameterGroupFamily=family, Description=request["description"],
         **{target.name_key: target.name}, **extra)


def modify_group(client, target, batch):
    call = client.modify_db_cluster_parameter_group if target.cluster else client.modify_db_parameter_group
    call(aws_retry=True, Parameters=batch, **{target.name_key: target.name})


def fail_on_problems(module, what, problems, nothing="nothing was called or changed", name_one=False):
    """Fail with every problem; ``name_one``: a single problem is the whole message ("Checking <problem>")."""
    if problems:
        module.fail_json(msg=f"Checking {problems[0]}" if name_one and len(problems) == 1 else
                         f"Checking {what} found {len(problems)} problem(s); {nothing}: {' | '.join(problems)}",
                         problems=problems)


def group_result(plan, pending, rebooted, reboot_details):
    result = {plan["target"].return_key: plan["target"].name}
    result.update((key, plan[key]) for key in ("family", "created", "sizing", "recommendations",
                                               "skipped_parameters", "changes"))
    result.update(pending_reboot=pending, rebooted=rebooted, reboot_details=reboot_details)
    return result


def main():
    group_options = dict(
        db_parameter_group_name=dict(type="str"),
        db_cluster_parameter_group_name=dict(type="str"),
        family=dict(type="str"),
        description=dict(type="str"),
        tags=dict(type="dict"),
        db_instance_class=dict(type="str"),
        db_instance_identifier=dict(type="str"),
        max_capacity=dict(type="float"),
        storage_type=dict(type="str", choices=list(param_tuning.STORAGE_TYPES)),
        workload=dict(type="str", choices=list(param_tuning.WORKLOADS)),
        max_connections=dict(type="int"),
        value_style=dict(type="str", choices=list(param_tuning.VALUE_STYLES)),
        overrides=dict(type="dict"),
        apply_recommendations=dict(type="bool"),
    )
    argument_spec = dict(
        group_options,
        description=dict(type="str", default="Tuned by dbre.rds.rds_param_tune"),
        workload=dict(type="str", choices=list(param_tuning.WORKLOADS), default="oltp"),
        value_style=dict(type="str", choices=list(param_tuning.VALUE_STYLES), default="absolute"),
        overrides=dict(type="dict", default={}),
        apply_recommendations=dict(type="bool", default=True),
        parameter_groups=dict(type="list", elements="dict", options=group_options,
                              mutually_exclusive=[["db_parameter_group_name", "db_cluster_parameter_group_name"],
                                                  ["db_instance_class", "db_instance_identifier"]],
                              required_one_of=[["db_parameter_group_name", "db_cluster_parameter_group_name"]]),
        reboot=dict(type="str", choices=["never", "if_pending"], default="never"),
        reboot_force_failover=dict(type="bool", default=False),
        sizing_source=dict(type="str", choices=["auto", "table"], default="auto"),
        **wait_argument_spec(),
    )
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_one_of=[["db_parameter_group_name", "db_cluster_parameter_group_name", "parameter_groups"]],
        mutually_exclusive=[["db_parameter_group_name", "db_cluster_parameter_group_name", "parameter_groups"],
                            ["db_instance_class", "db_instance_identifier"]],
    )
    params = module.params
    fleet = bool(params["parameter_groups"])
    requests = param_tuning.group_requests(params)
    wheres = [f" of parameter_groups[{index}]" if fleet else "" for index in range(len(requests))]
    problems = [p for request, where in zip(requests, wheres) for p in param_tuning.option_problems(request, where)]
    problems += param_tuning.duplicate_group_problems(requests)
    if params["wait_timeout"] < 1 or params["poll_interval"] <= 0:
        problems.append("wait_timeout and poll_interval: give a wait_timeout of at least 1 second and a positive "
                        "poll_interval.")
    fail_on_problems(module, "the options", problems, name_one=True)
    if params["reboot_force_failover"] and params["reboot"] != "if_pending":
        warn(module, "reboot_force_failover is ignored without reboot=if_pending: this run reboots nothing.")

    client = rds_client(module)
    reads = RunReads(module, client)
    targets = [Target(request) for request in requests]
    try:
        groups = [describe_group(client, target) for target in targets]
        families = [resolve_family(module, *read) for read in zip(targets, groups, requests)]
        reads.shared_families = param_tuning.shared_default_families(
            (target.cluster, family, group is not None) for target, group, family in zip(targets, groups, families))
        plans = [plan_group(module, reads, *read) for read in zip(targets, groups, families, requests, wheres)]
    except AWS_ERRORS as e:
        what = str(targets[0]) if len(targets) == 1 else f"{len(targets)} parameter groups"
        module.fail_json_aws(e, msg=f"Reading {what} and the sizing inputs: check the names and the caller's "
                                    "rds:Describe* permissions")
    if fleet:
        fail_on_problems(module, f"the values for {len(plans)} groups",
                         [f"{plan['target']}: {p}" for plan in plans for p in plan["problems"]], "nothing was changed")
    else:
        fail_on_problems(module, f"the values for {plans[0]['target']}", plans[0]["problems"], "nothing was changed")

    for plan in plans:
        target = plan["target"]
        try:
            if not module.check_mode:
                if plan["created"]:
                    create_group(client, target, plan["family"], plan["request"])
                for batch in param_tuning.modify_batches(plan["changes"]):
                    modify_group(client, target, batch)
        except AWS_ERRORS as e:
            module.fail_json_aws(e, msg=f"Applying {len(plan['changes'])} change(s) to {target}: check the caller's "
                                        "rds:Create*/Modify* permissions; RDS applies each call of up to 20 whole or "
                                        "not at all, so rerun to finish", changes=plan["changes"])

    results, rebooted_in_run = [], set()
    for plan in plans:
        target = plan["target"]
        try:
            users = reads.users(target, plan["family"]) if not plan["created"] else []
        except AWS_ERRORS as e:
            module.fail_json_aws(e, msg=f"Reading the instances that use {target}: check the caller's "
                                        "rds:DescribeDBInstances and rds:DescribeDBClusters permissions",
                                 changes=plan["changes"])
        static_change = param_tuning.needs_reboot(plan["changes"])
        pending = sorted(user["id"] for user in users
                         if (user["waits"] or static_change) and user["id"] not in rebooted_in_run)
        multi_az = {user["id"]: user["multi_az"] for user in users}
        rebooted, reboot_details = [], []
        if params["reboot"] == "if_pending" and pending:
            if module.check_mode:
                rebooted, pending = list(pending), []
            else:
                rebooted, reboot_details, pending = reboot_in_turn(module, client, target, pending, multi_az,
                                                                   plan["changes"])
            rebooted_in_run.update(rebooted)
        results.append(group_result(plan, pending, rebooted, reboot_details))

    changed = any(plan["created"] or plan["changes"] for plan in plans) or any(r["rebooted"] for r in results)
    if fleet:
        result = dict(changed=changed, parameter_groups=results)
        if module._diff:
            result["diff"] = [dict(plan["diff"], before_header=str(plan["target"]), after_header=str(plan["target"]))
                              for plan in plans]
    else:
        result = dict(results[0], changed=changed)
        if module._diff:
            result["diff"] = plans[0]["diff"]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
