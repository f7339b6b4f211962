#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rds_alarm_thresholds_info
short_description: CloudWatch alarm definitions whose thresholds fit each RDS instance
version_added: "0.1.0"
description:
  - Reads each DB instance (class, storage, engine, replica or Aurora role) and the C(max_connections) it runs with,
    and returns the CloudWatch alarms that fit it, as options for M(amazon.aws.cloudwatch_metric_alarm).
  - Thresholds are derived, not copied. C(DatabaseConnections) is a share of the C(max_connections) the database
    runs with; C(FreeStorageSpace) a share of the allocated storage; C(FreeableMemory) a share of the class's memory;
    C(DBLoad) a number of sessions per vCPU.
  - The C(max_connections) comes from the database itself (C(SHOW max_connections)) when a login is given
    (O(login_user) with O(login_password) or O(iam_auth=true)) and the connection succeeds. Otherwise it is the DB
    parameter group's number or formula (else RDS's default C(LEAST({DBInstanceClassMemory/9531392},5000)),
    evaluated with the class's memory), but only while the instance's C(ParameterApplyStatus) is C(in-sync).
  - A value that waits for a reboot is not what the database runs with, so it is reported as pending
    (RV(instances[].max_connections_pending)) and not used. RV(instances[].max_connections_source) says which source
    was used.
  - Every option is checked before the first call; a failed connection is a warning, not an error.
  - Alarms for metrics the instance publishes only in some configurations are added only then, C(CPUCreditBalance)
    for burstable classes, C(BurstBalance) for gp2 volumes under 1,000 GiB, C(ReplicaLag) for read replicas,
    C(AuroraReplicaLag) for Aurora readers and C(DBLoad) for Aurora; the others come back with C(state=absent) so a
    caller can remove them.
  - Memory and vCPUs come from the class table shipped with the collection (the one M(dbre.rds.rds_param_tune) uses).
  - Read-only.
author:
  - dbre.rds maintainers (@dbre-rds)
options:
  db_instance_identifiers:
    description:
      - The DB instances (RDS or Aurora) to plan alarms for, each named once.
      - With O(login_user), each is reached at the endpoint that RDS describes for it; O(login_host) is for a
        single instance only.
    type: list
    elements: str
    required: true
  alarms:
    description:
      - Per-alarm overrides of the defaults, keyed by alarm name (V(cpu_utilization), V(freeable_memory),
        V(free_storage_space), V(database_connections), V(read_latency), V(write_latency), V(disk_queue_depth),
        V(replica_lag), V(burst_balance), V(cpu_credit_balance), V(maximum_used_transaction_ids),
        V(aurora_replica_lag), V(db_load)).
      - Each value is a dict with any of C(enabled), C(threshold) (absolute, in the metric's unit), C(share) (0 to 1,
        for the derived ones), C(minimum), C(per_vcpu), C(period), C(evaluation_periods), C(datapoints_to_alarm),
        C(statistic), C(treat_missing_data). An absolute C(threshold) replaces a derived one.
    type: dict
    default: {}
  alarm_name_prefix:
    description:
      - Alarm names are C(<prefix><instance>-<alarm name with dashes>).
    type: str
    default: rds-
  alarm_actions:
    description:
      - ARNs (usually one SNS topic) set as alarm and OK actions of every alarm.
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
  - dbre.rds.db_connection
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - "IAM actions: C(rds:DescribeDBInstances), C(rds:DescribeDBClusters) (Aurora members), C(rds:DescribeDBParameters);
    C(rds-db:connect) with O(iam_auth=true)."
  - Reading the running C(max_connections) needs only a login to O(login_db); any role may read it. Without a login
    the module needs no psycopg2 and works from the parameter group alone.
requirements:
  - psycopg2, only to read the running max_connections (with O(login_user))
seealso:
  - module: amazon.aws.cloudwatch_metric_alarm
  - module: dbre.rds.rds_param_tune
  - module: dbre.rds.rds_event_subscription
  - module: dbre.rds.rds_pg_stats_info
"""

EXAMPLES = r"""
- name: Plan alarms for two instances, connections at 85 % and no latency alarms
  dbre.rds.rds_alarm_thresholds_info:
    db_instance_identifiers: [orders-db, orders-db-replica]
    alarm_actions: ["{{ topic.sns_arn }}"]
    alarms:
      database_connections: {share: 0.85}
      read_latency: {enabled: false}
      write_latency: {enabled: false}
  register: planned

- name: Follow the max_connections the database runs with, read through a monitoring login
  dbre.rds.rds_alarm_thresholds_info:
    db_instance_identifiers: [orders-db]
    login_user: monitoring
    login_password: "{{ monitoring_password }}"
  register: planned_running

- name: Show where max_connections came from and what waits for a reboot
  ansible.builtin.debug:
    msg: >-
      {{ planned_running.instances[0].max_connections }} from {{ planned_running.instances[0].max_connections_source }},
      pending {{ planned_running.instances[0].max_connections_pending }}

- name: Create or remove each alarm
  amazon.aws.cloudwatch_metric_alarm:
    name: "{{ item.name }}"
    state: "{{ item.state }}"
    metric_name: "{{ item.metric_name | default(omit) }}"
    namespace: "{{ item.namespace | default(omit) }}"
    statistic: "{{ item.statistic | default(omit) }}"
    comparison: "{{ item.comparison | default(omit) }}"
    threshold: "{{ item.threshold | default(omit) }}"
    unit: "{{ item.unit | default(omit) }}"
    period: "{{ item.period | default(omit) }}"
    evaluation_periods: "{{ item.evaluation_periods | default(omit) }}"
    dimensions: "{{ item.dimensions | default(omit) }}"
    alarm_actions: "{{ item.alarm_actions | default(omit) }}"
  loop: "{{ planned.alarms }}"
  loop_control:
    label: "{{ item.name }}"
"""

RETURN = r"""
alarms:
  description:
    - Every alarm of every instance. C(state=present) ones carry the options of M(amazon.aws.cloudwatch_metric_alarm)
      (name, metric_name, namespace, statistic, comparison, threshold, unit, period, evaluation_periods,
      datapoints_to_alarm, treat_missing_data, dimensions, description, alarm_actions, ok_actions) plus C(key);
      C(state=absent) ones carry name, key and reason.
  returned: always
  type: list
  elements: dict
  sample: [{"key": "database_connections", "name": "rds-orders-db-database-connections", "state": "present",
            "metric_name": "DatabaseConnections", "comparison": "GreaterThanThreshold", "threshold": 89.0}]
instances:
  description:
    - What the thresholds of each instance were derived from, with its parameter group, the libraries that group
      preloads (C(pg_stat_statements_preloaded)) and its endpoint (C(endpoint_address), C(endpoint_port)).
  returned: always
  type: list
  elements: dict
  contains:
    max_connections:
      description: The max_connections the C(DatabaseConnections) alarm is a share of; null when unknown.
      type: int
      sample: 128
    max_connections_source:
      description:
        - Where RV(instances[].max_connections) came from. V(running-value) is C(SHOW max_connections) on the
          database; V(parameter-group), V(parameter-group-formula) and V(rds-default-formula) are the parameter
          group's number, its formula or RDS's default formula, used only while the group is C(in-sync);
          V(unknown) when neither could be used.
      type: str
      sample: running-value
    max_connections_parameter_group:
      description: The parameter group's max_connections (formulas evaluated with the class's memory).
      type: int
      sample: 300
    max_connections_pending:
      description: The parameter group's max_connections when it waits for a reboot and differs from what the
        database runs with (or the running value is unknown); null otherwise.
      type: int
      sample: 300
    max_connections_reason:
      description: Why max_connections is unknown; null when it is known.
      type: str
    parameter_apply_status:
      description: The instance's C(ParameterApplyStatus) for its DB parameter group, for example C(in-sync) or
        C(pending-reboot).
      type: str
      sample: in-sync
  sample: [{"db_instance_identifier": "orders-db", "db_instance_class": "db.t4g.micro", "memory_gib": 1, "vcpus": 2,
            "allocated_gib": 20, "storage_type": "gp3", "max_connections": 112,
            "max_connections_source": "rds-default-formula", "max_connections_parameter_group": 112,
            "max_connections_pending": null, "max_connections_reason": null, "parameter_apply_status": "in-sync",
            "burstable": true, "db_parameter_group_name": "default.postgres15",
            "shared_preload_libraries": ["pg_stat_statements"], "pg_stat_statements_preloaded": true,
            "endpoint_address": "orders-db.abc.us-east-1.rds.amazonaws.com", "endpoint_port": 5432}]
"""

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

try:
    import psycopg2
except ImportError:
    pass  # only needed with a login; checked by connector_for

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.dbre.rds.plugins.module_utils.alarm_thresholds import decide_max_connections
from ansible_collections.dbre.rds.plugins.module_utils.alarm_thresholds import instance_facts
from ansible_collections.dbre.rds.plugins.module_utils.alarm_thresholds import is_aurora
from ansible_collections.dbre.rds.plugins.module_utils.alarm_thresholds import merge_alarm_settings
from ansible_collections.dbre.rds.plugins.module_utils.alarm_thresholds import option_problems
from ansible_collections.dbre.rds.plugins.module_utils.alarm_thresholds import plan_alarms
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import rds_client
from ansible_collections.dbre.rds.plugins.module_utils.instance_classes import UnknownInstanceClass
from ansible_collections.dbre.rds.plugins.module_utils.instance_classes import sizing_for_serverless
from ansible_collections.dbre.rds.plugins.module_utils.instance_classes import sizing_from_table
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import connection_problems
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import connector_for
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import db_connection_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import endpoint_of
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import has_credentials
from ansible_collections.dbre.rds.plugins.module_utils import rds_resources
from ansible_collections.dbre.rds.plugins.module_utils.module_warnings import warn

SQL_MAX_CONNECTIONS = "SELECT current_setting('max_connections')::int"


def parameter_values(module, client, group_name, names):
    """{name: value} of the parameters ``names`` that the group sets (numbers or RDS formulas); missing ones are None."""
    try:
        return rds_resources.parameter_group_values(client, group_name, names)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        module.fail_json_aws(e, msg=f"Failed to read {', '.join(names)} of DB parameter group {group_name}: allow "
                                    "rds:DescribeDBParameters")
    return None


def running_max_connections(module, client, identifier, instance):
    """max_connections as the database runs with it, or None when no login was given or the connection failed."""
    params = module.params
    if not has_credentials(params):
        return None
    connector = connector_for(module, params, endpoint=endpoint_of(instance), rds=client)
    try:
        conn = connector.connect()
        try:
            with conn.cursor() as cursor:
                cursor.execute(SQL_MAX_CONNECTIONS)
                return int(cursor.fetchone()[0])
        finally:
            conn.close()
    except psycopg2.Error as e:
        warn(module, f"Could not read the running max_connections of {identifier} at {connector.target} "
                     f"({str(e).strip()}); the parameter group's value is used only if it is in-sync.")
    return None


def class_sizing(instance, cluster):
    if instance.get("DBInstanceClass") == "db.serverless":
        capacity = ((cluster or {}).get("ServerlessV2ScalingConfiguration") or {}).get("MaxCapacity")
        return sizing_for_serverless(capacity)
    return sizing_from_table(instance.get("DBInstanceClass"))


def plan_instance(module, client, identifier, settings):
    instance = rds_resources.describe_or_fail(module, client, rds_resources.INSTANCE, identifier)
    cluster, writer = None, None
    if is_aurora(instance) and instance.get("DBClusterIdentifier"):
        cluster = rds_resources.describe_or_fail(
            module, client, rds_resources.CLUSTER, instance["DBClusterIdentifier"],
            missing=f"Aurora cluster {instance['DBClusterIdentifier']} of {identifier} does not exist any more: run "
                    "again once the instance is deleted or attached")
        writer = rds_resources.cluster_writer(cluster) == identifier
    try:
        sizing = class_sizing(instance, cluster)
    except (UnknownInstanceClass, ValueError) as e:
        module.fail_json(msg=f"Cannot size the alarms of {identifier}: {e}")
    groups = instance.get("DBParameterGroups") or []
    group_name = groups[0]["DBParameterGroupName"] if groups else None
    apply_status = groups[0].get("ParameterApplyStatus") if groups else None
    values = dict(max_connections=None, shared_preload_libraries=None)
    if group_name:
        values = parameter_values(module, client, group_name, list(values))
    running = running_max_connections(module, client, identifier, instance)
    value = values["max_connections"]
    try:
        decision = decide_max_connections(running, value, apply_status, sizing["memory_bytes"], sizing["vcpus"] or 2)
    except ValueError as e:
        module.fail_json(msg=f"Cannot read max_connections {value!r} of {identifier}'s parameter group: {e}; set "
                             "alarms.database_connections.threshold")
    if decision["max_connections_pending"] is not None:
        follows = (f"the running value {decision['max_connections']}." if decision["max_connections"] is not None
                   else "no number until it is applied or the running value can be read.")
        warn(module, f"{identifier}: the parameter group {group_name} sets max_connections "
                     f"{decision['max_connections_pending']}, which is not applied yet (ParameterApplyStatus "
                     f"{apply_status}); the DatabaseConnections alarm follows {follows}")
    facts = instance_facts(instance, sizing["memory_gib"], sizing["vcpus"], decision["max_connections"],
                           decision["max_connections_source"], writer)
    endpoint = instance.get("Endpoint") or {}
    libraries = [lib.strip() for lib in str(values["shared_preload_libraries"] or "").split(",") if lib.strip()]
    facts.update(
        max_connections_parameter_group=decision["max_connections_parameter_group"],
        max_connections_pending=decision["max_connections_pending"],
        max_connections_reason=decision["reason"],
        parameter_apply_status=apply_status,
        db_parameter_group_name=group_name,
        shared_preload_libraries=libraries,
        pg_stat_statements_preloaded="pg_stat_statements" in libraries,
        endpoint_address=endpoint.get("Address"),
        endpoint_port=endpoint.get("Port"),
    )
    alarms, problems = plan_alarms(instance, facts, settings, name_prefix=module.params["alarm_name_prefix"],
                                   actions=module.params["alarm_actions"], aurora_writer=writer)
    return facts, alarms, problems


def main():
    argument_spec = dict(
        db_instance_identifiers=dict(type="list", elements="str", required=True),
        alarms=dict(type="dict", default={}),
        alarm_name_prefix=dict(type="str", default="rds-"),
        alarm_actions=dict(type="list", elements="str", default=[]),
    )
    argument_spec.update(db_connection_argument_spec())
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    settings, problems = merge_alarm_settings(module.params["alarms"])
    problems = option_problems(module.params) + connection_problems(module.params) + problems
    if problems:
        module.fail_json(msg="Invalid options: " + "; ".join(problems))
    client = rds_client(module)
    all_alarms, instances = [], []
    for identifier in module.params["db_instance_identifiers"]:
        facts, alarms, problems = plan_instance(module, client, identifier, settings)
        if problems:
            module.fail_json(msg="Cannot derive every alarm threshold: " + "; ".join(problems), instances=instances)
        instances.append(facts)
        all_alarms.extend(alarms)
    module.exit_json(changed=False, alarms=all_alarms, instances=instances)


if __name__ == "__main__":
    main()
