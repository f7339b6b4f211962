#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rds_capacity_info
short_description: Connection budgets and pool sizes, right-sizing advice and storage forecasts for RDS PostgreSQL
version_added: "0.2.0"
description:
  - Reads one or many DB instances (or every member of the Aurora clusters named) and answers three capacity
    questions in one call.
  - B(Connection budget.) The C(max_connections) in effect (C(SHOW max_connections) with a login, else the parameter
    group's number or formula, else RDS's default C(LEAST({DBInstanceClassMemory/9531392},5000))), the reserved slots
    (C(superuser_reserved_connections) plus C(rds.rds_superuser_reserved_connections)), the connections now and their
    recent and lookback maximum (CloudWatch C(DatabaseConnections)).
  - B(Pool sizes.) For each fleet in O(app_fleets), the pool size per application instance (minimum and maximum) that
    keeps every fleet's connections below the budget (max_connections less the reserved slots less
    O(headroom_percent)) even while a rolling deploy runs O(surge_percent) more instances, and what a failover does
    (every pool reconnecting at once). The seed's formula, max_connections divided by the instances, is returned
    beside it for comparison. Fleets behind RDS Proxy do not take from the budget; the proxy's share of what the
    direct fleets leave is returned as C(proxy_max_connections_percent). Fleets that cannot fit even with
    O(app_fleets[].min_pool) connections per instance are a finding, not an error; the plan is returned with
    C(fits=false), the C(shortfall) in connections, the C(max_connections_needed) and a C(recommendation), and the
    report's objective for that instance fails. Only an unknown C(max_connections) fails the module.
  - B(Right-sizing.) CPU at the 50th and 95th percentiles, the lowest freeable memory, connections against
    C(max_connections), IOPS and throughput against the storage's baseline (gp3 3,000 IOPS and 125 MiB/s, more from
    400 GiB or when provisioned; gp2 3 IOPS per GiB; io1/io2 as provisioned) over O(lookback_days), and the
    recommendations they trigger (class up or down within the family, memory-optimised, the Graviton equivalent,
    storage type, RDS Proxy for connection pressure or churn), each with the figures and threshold behind it.
  - B(Storage forecast.) Growth per day from C(FreeStorageSpace) (least squares), days until the volume is full and
    until the storage autoscaling ceiling (C(MaxAllocatedStorage)).
  - Every option is checked, and every instance described, before CloudWatch is read. Read-only; runs the same in
    check mode. With O(report_dir) the figures are also written as a report (JSON, Markdown, JUnit XML).
author:
  - dbre.rds maintainers (@dbre-rds)
options:
  db_instance_identifiers:
    description:
      - DB instances to report on (RDS instances or Aurora members), each named once.
    type: list
    elements: str
    default: []
  db_cluster_identifiers:
    description:
      - Aurora clusters to report on; every member is reported, and O(app_fleets) are planned against the writer.
    type: list
    elements: str
    default: []
  lookback_days:
    description:
      - Days of CloudWatch metrics the right-sizing figures and the storage forecast are computed from, 1 to 455.
    type: int
    default: 14
  app_fleets:
    description:
      - The application fleets that connect to each instance named (to the writer of each cluster).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name of the fleet, unique.
        type: str
        required: true
      instances:
        description: Application instances (hosts, pods, tasks) of the fleet in normal operation.
        type: int
        required: true
      threads:
        description:
          - Threads or workers per application instance that may each need a connection at once; a pool never
            needs more.
        type: int
        required: true
        aliases: [workers]
      through_proxy:
        description:
          - Whether the fleet connects through RDS Proxy, which multiplexes its client connections onto its own pool.
        type: bool
        default: false
      min_pool:
        description:
          - The smallest pool per application instance the fleet can run with; the module fails when even this does
            not fit during a deploy.
        type: int
        default: 1
  headroom_percent:
    description:
      - Share (percent) of the usable connections left free for consoles, monitoring, migrations and the unexpected.
    type: float
    default: 10
  surge_percent:
    description:
      - How many more application instances run during a rolling deploy, in percent of the fleet (100 doubles it).
    type: float
    default: 100
  thresholds:
    description:
      - Overrides of the right-sizing thresholds, by name. C(cpu_high_p95) (80), C(cpu_low_p95) (20),
        C(memory_low_share) (0.10 of the class's memory), C(connections_high_share) (0.80),
        C(connection_spike_ratio) (3), C(iops_high_share) (0.80), C(iops_low_share) (0.30, io1/io2),
        C(throughput_high_share) (0.80).
    type: dict
    default: {}
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
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
  - "IAM actions: C(rds:DescribeDBInstances), C(rds:DescribeDBClusters) (with O(db_cluster_identifiers)),
    C(rds:DescribeDBParameters), C(cloudwatch:GetMetricData); C(rds-db:connect) with O(iam_auth=true)."
  - The login (optional) reads C(max_connections), the reserved slots and the client connections from the database
    itself; any role may. Without it the parameter group's values are used while the group is in-sync, with RDS's
    defaults (3 and 2 reserved slots) where the group sets nothing.
  - CloudWatch computes the percentiles; where it returns none the module takes them from the period averages it
    read, and says so in C(cpu_percentile_source) of RV(instances[].metrics).
  - All instances are read with one C(GetMetricData) request per 45 instances (500 queries per request).
requirements:
  - psycopg2, only with O(login_user)
seealso:
  - module: dbre.rds.rds_alarm_thresholds_info
  - module: dbre.rds.rds_performance_insights_info
  - module: dbre.rds.rds_proxy
  - module: amazon.aws.cloudwatch_metric_alarm
"""

EXAMPLES = r"""
- name: Size the pools of two fleets against the orders database
  dbre.rds.rds_capacity_info:
    db_instance_identifiers: [orders-db]
    app_fleets:
      - name: web
        instances: 6
        threads: 16
      - name: jobs
        instances: 2
        workers: 4
      - name: api
        instances: 20
        threads: 32
        through_proxy: true
    headroom_percent: 15
  register: capacity

- name: Show each fleet's pool size
  ansible.builtin.debug:
    msg: "{{ item.name }}: pool {{ item.pool_min }}..{{ item.pool_max }} (naive {{ item.naive_pool_size }})"
  loop: "{{ capacity.instances[0].pools.fleets }}"

- name: Weekly right-sizing report for every member of a cluster, with the running max_connections
  dbre.rds.rds_capacity_info:
    db_cluster_identifiers: [reporting]
    lookback_days: 7
    login_user: monitoring
    iam_auth: true
    report_dir: /var/tmp/capacity
  check_mode: true
"""

RETURN = r"""
instances:
  description: One item per instance, in the order named (cluster members after the instances, writer first).
  returned: always
  type: list
  elements: dict
  contains:
    db_instance_identifier:
      description: The instance.
      type: str
    db_cluster_identifier:
      description: Its Aurora cluster, or null.
      type: str
    instance_class:
      description: Its class, with the class's vCPUs and memory (C(vcpus), C(memory_gib)) beside it.
      type: str
    connections:
      description:
        - The connection budget. C(max_connections) and where it came from (C(max_connections_source)), the
          reserved slots (C(reserved) with both settings), C(usable) (max_connections less reserved), C(headroom),
          C(budget) (what the fleets may hold), C(now) (client connections now, from the database with a login,
          else CloudWatch's latest) with C(now_source), C(recent_max) (CloudWatch, the last hour) and
          C(lookback_max) (over O(lookback_days)).
      type: dict
      sample: {"max_connections": 60, "max_connections_source": "running-value", "reserved": {"total": 3},
               "usable": 57, "headroom": 6, "budget": 51, "now": 4, "recent_max": 12, "lookback_max": 30}
    pools:
      description:
        - The pool plan, null when O(app_fleets) is empty or the instance is an Aurora reader. C(fleets) lists,
          per fleet, C(pool_min) and C(pool_max) per application instance, C(limited_by) (threads or budget),
          C(database_connections) and C(database_connections_during_deploy), and the seed's C(naive_pool_size)
          with its totals. C(deploy_surge) and C(failover) say whether those cases fit, C(totals) sums the fleets,
          and C(proxy_max_connections_percent) is the share of max_connections RDS Proxy may take.
        - C(fits) is false when even O(app_fleets[].min_pool) per application instance at the deploy peak
          (C(needed) connections) exceeds the budget; then C(shortfall) (connections over the budget),
          C(max_connections_needed), C(problem) (what and by how much) and C(recommendation) (what to do) are set,
          else they are 0 or null, and every pool is its C(min_pool).
      type: dict
    metrics:
      description: The figures over O(lookback_days) (cpu_p50, cpu_p95, freeable_memory_min, connections_max,
        connections_p50, iops_p95, iops_max, throughput_p95 in bytes per second, datapoints, cpu_percentile_source);
        null where CloudWatch has no data.
      type: dict
    storage:
      description: The storage's baseline (C(baseline)) and the forecast (C(forecast)) with growth_bytes_per_day,
        growth_gib_per_day, days_until_full, days_until_max_allocated and days_until_out_of_space.
      type: dict
    recommendations:
      description: Right-sizing advice; each item has name, kind (class_up, class_down, memory_optimised, graviton,
        storage_type, rds_proxy), advice, suggested (a class, storage type or C(rds_proxy)) and triggered_by (the
        figures and threshold).
      type: list
      elements: dict
      sample: [{"name": "cpu_high", "kind": "class_up", "suggested": "db.r6g.2xlarge",
                "triggered_by": {"cpu_p95": 93.1, "threshold": 80}}]
api_calls:
  description: The AWS calls the module made, by operation (its cost for many instances).
  returned: always
  type: dict
  sample: {"DescribeDBInstances": 1, "DescribeDBParameters": 1, "GetMetricData": 2}
report:
  description: The report itself (kind C(capacity)), as written to the files.
  returned: when O(report_dir) is set
  type: dict
report_files:
  description: Paths of the written report files by format (json, md, xml).
  returned: when O(report_dir) is set
  type: dict
"""

import datetime

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

try:
    import psycopg2
except ImportError:
    pass  # only needed with a login; checked by connector_for

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.dbre.rds.plugins.module_utils import capacity
from ansible_collections.dbre.rds.plugins.module_utils import rds_resources
from ansible_collections.dbre.rds.plugins.module_utils.alarm_thresholds import decide_max_connections
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import aws_client
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import rds_client
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import report_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import report_name_problems
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import DrillRuntime
from ansible_collections.dbre.rds.plugins.module_utils.instance_classes import UnknownInstanceClass
from ansible_collections.dbre.rds.plugins.module_utils.instance_classes import sizing_for_serverless
from ansible_collections.dbre.rds.plugins.module_utils.instance_classes import sizing_from_table
from ansible_collections.dbre.rds.plugins.module_utils.module_warnings import warn
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import connection_problems
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import connector_for
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import db_connection_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import endpoint_of
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import has_credentials

PARAMETERS = ("max_connections", "superuser_reserved_connections", "rds.rds_superuser_reserved_connections")
SQL_CONNECTIONS = (
    "SELECT current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int, "
    "current_setting('rds.rds_superuser_reserved_connections', true), "
    "(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int"
)
RECENT_SECONDS = 3600


class Calls:
    """Counts the AWS calls of this run by operation (returned as api_calls)."""

    def __init__(self):
        self.counts = {}

    def add(self, operation, count=1):
        self.counts[operation] = self.counts.get(operation, 0) + count

    def counting(self, client):
        """``client`` with every API call (each page of a paginated read) counted under its AWS operation name."""
        return CountingClient(client, self)


class CountingClient:
    def __init__(self, client, calls):
        self._client = client
        self._calls = calls

    def __getattr__(self, name):
        attribute = getattr(self._client, name)
        operation = self._client.meta.method_to_api_mapping.get(name)
        if operation is None or not callable(attribute):
            return attribute  # not an API call (generate_db_auth_token signs locally)

        def call(*args, **kwargs):
            self._calls.add(operation)
            return attribute(*args, **kwargs)

        return call


def describe_targets(module, client):
    """[(identifier, instance, cluster)] of every instance named and every member of every cluster named."""
    params = module.params
    targets = []
    for identifier in params["db_instance_identifiers"]:
        instance = rds_resources.describe_or_fail(module, client, rds_resources.INSTANCE, identifier)
        targets.append((identifier, instance, None))
    for cluster_id in params["db_cluster_identifiers"]:
        cluster = rds_resources.describe_or_fail(module, client, rds_resources.CLUSTER, cluster_id)
        members = rds_resources.describe_cluster_members(client, cluster_id)
        for identifier in rds_resources.cluster_member_ids(cluster):
            if identifier in members and identifier not in [t[0] for t in targets]:
                targets.append((identifier, members[identifier], cluster))
    if not targets:
        module.fail_json(msg="The clusters named have no member instances: name instances or clusters with members")
    return targets


def group_values(module, client, group_name, cache):
    """{parameter: value} of :data:`PARAMETERS` that the group sets (numbers or formulas), read once per group."""
    if group_name in cache:
        return cache[group_name]
    try:
        cache[group_name] = rds_resources.parameter_group_values(client, group_name, PARAMETERS)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        module.fail_json_aws(e, msg=f"Reading the connection parameters of DB parameter group {group_name} failed: "
                                    "allow rds:DescribeDBParameters")
    return cache[group_name]


def read_from_database(module, client, identifier, instance):
    """(max_connections, superuser reserved, rds reserved, client connections) read from the database, or None."""
    params = module.params
    if not has_credentials(params):
        return None
    connector = connector_for(module, params, endpoint=endpoint_of(instance), rds=client)
    try:
        conn = connector.connect()
        try:
            with conn.cursor() as cursor:
                cursor.execute(SQL_CONNECTIONS)
                max_connections, reserved, rds_reserved, used = cursor.fetchone()
        finally:
            conn.close()
    except psycopg2.Error as e:
        warn(module, f"Could not read max_connections of {identifier} at {connector.target} ({str(e).strip()}); "
                     "the parameter group's values are used while it is in-sync.")
        return None
    # A server without RDS's setting (not RDS) reserves nothing beyond PostgreSQL's own slots.
    return int(max_connections), int(reserved), int(rds_reserved or 0), int(used)


def class_sizing(module, identifier, instance, cluster):
    try:
        if instance.get("DBInstanceClass") == "db.serverless":
            scaling = (cluster or {}).get("ServerlessV2ScalingConfiguration") or {}
            return sizing_for_serverless(scaling.get("MaxCapacity"))
        return sizing_from_table(instance.get("DBInstanceClass"))
    except (UnknownInstanceClass, ValueError) as e:
        module.fail_json(msg=f"Cannot size {identifier}: {e}")


def connection_facts(module, client, identifier, instance, sizing, cache):
    """max_connections in effect and the reserved slots, from the database or the parameter group."""
    groups = instance.get("DBParameterGroups") or []
    group_name = groups[0]["DBParameterGroupName"] if groups else None
    apply_status = groups[0].get("ParameterApplyStatus") if groups else None
    values = group_values(module, client, group_name, cache) if group_name else dict.fromkeys(PARAMETERS)
    running = read_from_database(module, client, identifier, instance)
    try:
        decision = decide_max_connections(running[0] if running else None, values["max_connections"], apply_status,
                                          sizing["memory_bytes"], sizing["vcpus"] or 2)
    except ValueError as e:
        module.fail_json(msg=f"Cannot read max_connections {values['max_connections']!r} of {identifier}'s parameter "
                             f"group {group_name}: {e}; give login_user so it is read from the database")
    if running:
        reserved = capacity.reserved_slots(running[1], running[2])
    else:
        numbers = [None if values[name] in (None, "") or not str(values[name]).strip().isdigit() else
                   int(values[name]) for name in PARAMETERS[1:]]
        reserved = capacity.reserved_slots(*numbers)
    return decision, reserved, (running[3] if running else None)


def read_metrics(module, cloudwatch, identifiers, aurora, lookback_days, now):
    """{identifier: {key: [(epoch, value)]}} of every instance over the lookback, and {identifier: [(epoch, value)]}
    of DatabaseConnections (maximum per minute) over the last hour."""
    requests, index = capacity.metric_queries(identifiers, lookback_days, aurora)
    series = {identifier: {} for identifier in identifiers}
    start = now - datetime.timedelta(days=lookback_days)
    recent_queries = [dict(Id=f"r{n}", ReturnData=True, MetricStat=dict(
        Metric=dict(Namespace="AWS/RDS", MetricName="DatabaseConnections",
                    Dimensions=[dict(Name="DBInstanceIdentifier", Value=identifier)]), Period=60, Stat="Maximum"))
        for n, identifier in enumerate(identifiers)]
    recent = {}
    batches = [(queries, start, lambda qid: index[qid]) for queries in requests]
    batches += [(recent_queries[i:i + capacity.MAX_QUERIES_PER_CALL], now - datetime.timedelta(seconds=RECENT_SECONDS),
                 lambda qid: (identifiers[int(qid[1:])], "recent"))
                for i in range(0, len(recent_queries), capacity.MAX_QUERIES_PER_CALL)]
    for queries, begin, owner in batches:
        token = None
        while True:
            request = dict(MetricDataQueries=queries, StartTime=begin, EndTime=now, ScanBy="TimestampAscending")
            if token:
                request["NextToken"] = token
            try:
                response = cloudwatch.get_metric_data(aws_retry=True, **request)
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
                module.fail_json_aws(e, msg=f"Reading the CloudWatch metrics of {', '.join(identifiers[:5])}"
                                            f"{' and others' if len(identifiers) > 5 else ''} failed: allow "
                                            "cloudwatch:GetMetricData")
            for result in response.get("MetricDataResults") or []:
                identifier, key = owner(result["Id"])
                points = [(stamp.timestamp(), value) for stamp, value in
                          zip(result.get("Timestamps") or [], result.get("Values") or [])]
                if key == "recent":
                    recent.setdefault(identifier, []).extend(points)
                else:
                    series[identifier].setdefault(key, []).extend(points)
            token = response.get("NextToken")
            if not token:
                break
    return series, recent


def plan_pools_of(module, identifier, cluster, decision, reserved):
    """The pool plan of the fleets against one instance (None for an Aurora reader or without fleets); fails only
    when max_connections is unknown, before any metric is read. Fleets that cannot fit are a finding: the plan has
    fits false, the shortfall and the recommendation."""
    params = module.params
    writer = cluster is None or rds_resources.cluster_writer(cluster) == identifier
    if not params["app_fleets"] or not writer:
        return None
    if decision["max_connections"] is None:
        module.fail_json(msg=f"Cannot size the pools of {identifier}: {decision['reason']}")
    pools = capacity.plan_pools(decision["max_connections"], reserved["total"], params["app_fleets"],
                                params["headroom_percent"], params["surge_percent"])
    if not pools["fits"]:
        module.warn(f"The fleets cannot connect to {identifier}: {pools['problem']}")
    return pools


def instance_report(module, identifier, instance, cluster, sizing, facts, series, recent):
    """Everything the module returns for one instance (the decisions of module_utils.capacity)."""
    params = module.params
    decision, reserved, used_now, pools = facts
    writer = cluster is None or rds_resources.cluster_writer(cluster) == identifier
    max_connections = decision["max_connections"]
    figures = capacity.figures_from_series(series)
    recent_values = [v for _unused, v in sorted(recent) if v is not None]
    connections = dict(
        max_connections=max_connections, max_connections_source=decision["max_connections_source"],
        max_connections_pending=decision["max_connections_pending"], max_connections_reason=decision["reason"],
        reserved=reserved, usable=None, headroom=None, budget=None,
        now=used_now if used_now is not None else (recent_values[-1] if recent_values else None),
        now_source="database" if used_now is not None else ("cloudwatch" if recent_values else None),
        recent_max=max(recent_values) if recent_values else None, lookback_max=figures["connections_max"],
    )
    if max_connections is not None:
        budget = capacity.connection_budget(max_connections, reserved["total"], params["headroom_percent"])
        connections.update(usable=budget["usable"], headroom=budget["headroom"], budget=budget["budget"])
    free = series.get("free_storage") or []
    storage = dict(baseline=capacity.storage_baseline(instance),
                   forecast=None if instance.get("DBClusterIdentifier") else capacity.storage_forecast(
                       free, instance.get("AllocatedStorage"), instance.get("MaxAllocatedStorage")))
    return dict(
        db_instance_identifier=identifier, db_cluster_identifier=instance.get("DBClusterIdentifier"),
        instance_class=instance.get("DBInstanceClass"), vcpus=sizing["vcpus"], memory_gib=sizing["memory_gib"],
        writer=writer, connections=connections, pools=pools, metrics=figures, storage=storage,
        recommendations=capacity.recommendations(instance, sizing, figures, max_connections, params["thresholds"]),
    )


def measurements_of(items, runtime):
    """A flat, readable table for the report: one row per figure, prefixed by the instance."""
    rows = dict(duration_seconds=round(runtime.clock.elapsed(), 3), instances=len(items))
    for item in items:
        prefix = item["db_instance_identifier"]
        conn = item["connections"]
        rows.update({f"{prefix} max_connections": conn["max_connections"], f"{prefix} budget": conn["budget"],
                     f"{prefix} connections now": conn["now"], f"{prefix} connections max": conn["lookback_max"],
                     f"{prefix} cpu p95 %": item["metrics"]["cpu_p95"],
                     f"{prefix} recommendations": ", ".join(r["name"] for r in item["recommendations"]) or "none"})
        forecast = (item["storage"] or {}).get("forecast") or {}
        if forecast:
            rows[f"{prefix} storage growth GiB/day"] = forecast["growth_gib_per_day"]
            rows[f"{prefix} days until out of space"] = forecast["days_until_out_of_space"]
        pools = item["pools"] or {}
        if pools and not pools["fits"]:
            rows[f"{prefix} pools shortfall"] = (f"{pools['shortfall']} connections over the budget of "
                                                 f"{pools['budget']['budget']} (needs {pools['needed']})")
            rows[f"{prefix} pools recommendation"] = pools["recommendation"]
        for fleet in pools.get("fleets") or []:
            rows[f"{prefix} pool {fleet['name']}"] = (f"{fleet['pool_min']}..{fleet['pool_max']} per instance "
                                                      f"(naive {fleet['naive_pool_size']})")
    return rows


def build_report(runtime, items):
    objectives = []
    for item in items:
        pools = item["pools"]
        if pools:
            short = "" if pools["fits"] else f" (short by {pools['shortfall']} connections)"
            objectives.append(dict(name=f"{item['db_instance_identifier']} pools within budget during a deploy{short}",
                                   objective=pools["budget"]["budget"], observed=pools["deploy_surge"]["connections"],
                                   unit="connections", held=pools["deploy_surge"]["fits"]))
    return runtime.report(passed=all(o["held"] for o in objectives), objectives=objectives, timeline=[],
                          measurements=measurements_of(items, runtime),
                          details=dict(instances=items))


def main():
    argument_spec = dict(
        db_instance_identifiers=dict(type="list", elements="str", default=[]),
        db_cluster_identifiers=dict(type="list", elements="str", default=[]),
        lookback_days=dict(type="int", default=14),
        app_fleets=dict(type="list", elements="dict", default=[], options=dict(
            name=dict(type="str", required=True),
            instances=dict(type="int", required=True),
            threads=dict(type="int", required=True, aliases=["workers"]),
            through_proxy=dict(type="bool", default=False),
            min_pool=dict(type="int", default=1),
        )),
        headroom_percent=dict(type="float", default=10),
        surge_percent=dict(type="float", default=100),
        thresholds=dict(type="dict", default={}),
    )
    argument_spec.update(db_connection_argument_spec())
    argument_spec.update(report_argument_spec())
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    problems = (capacity.option_problems(params) + connection_problems(params)
                + report_name_problems(params["report_name"]))
    if problems:
        module.fail_json(msg="Invalid options: " + "; ".join(problems))

    calls = Calls()
    client = calls.counting(rds_client(module))
    targets = describe_targets(module, client)
    target = ", ".join(t[0] for t in targets[:3]) + (f" and {len(targets) - 3} more" if len(targets) > 3 else "")
    runtime = DrillRuntime(module, "capacity", target, f"Capacity of {target}", watch_parent=False)
    facts, cache = {}, {}
    for identifier, instance, cluster in targets:
        sizing = class_sizing(module, identifier, instance, cluster)
        decision, reserved, used_now = connection_facts(module, client, identifier, instance, sizing, cache)
        pools = plan_pools_of(module, identifier, cluster, decision, reserved)
        facts[identifier] = (sizing, (decision, reserved, used_now, pools))
    aurora = {t[0] for t in targets if t[1].get("DBClusterIdentifier")}
    cloudwatch = calls.counting(aws_client(module, "cloudwatch"))
    series, recent = read_metrics(module, cloudwatch, [t[0] for t in targets], aurora, params["lookback_days"],
                                  datetime.datetime.now(datetime.timezone.utc))
    items = []
    for identifier, instance, cluster in targets:
        sizing, facts_of = facts[identifier]
        items.append(instance_report(module, identifier, instance, cluster, sizing, facts_of, series[identifier],
                                     recent.get(identifier) or []))
    result = dict(changed=False, instances=items, api_calls=calls.counts)
    if params["report_dir"]:
        runtime.write(build_report(runtime, items), result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
