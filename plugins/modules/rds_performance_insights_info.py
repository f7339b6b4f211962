#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rds_performance_insights_info
short_description: Top wait events and top SQL of an RDS PostgreSQL instance by average active sessions
version_added: "0.2.0"
description:
  - Reads where the database's time went over the last O(window_minutes) from Performance Insights (the C(pi) API,
    with the instance's C(DbiResourceId)) - the database load (average active sessions, AAS), the top wait events
    and the top SQL (tokenized), each with its share of the load - and the instance's vCPUs, the line above which
    sessions queue.
  - When Performance Insights is off on the instance and O(source=auto), it says so in RV(source_note) and reads
    PostgreSQL instead - the wait events of the active sessions sampled from C(pg_stat_activity) over
    O(sample_seconds), and the top SQL of those samples followed by C(pg_stat_statements)' heaviest statements,
    whose AAS is their execution time since C(pg_stat_statements) was last reset. This needs a login.
  - O(source=performance_insights) on an instance without Performance Insights is refused with what to do.
  - Every option is checked before the first call. Read-only; runs the same in check mode. With O(report_dir) the
    same is written as a report (JSON, Markdown, JUnit XML).
author:
  - dbre.rds maintainers (@dbre-rds)
options:
  db_instance_identifier:
    description:
      - The DB instance (RDS or Aurora member) to report on.
    type: str
    required: true
  source:
    description:
      - V(auto) reads Performance Insights when it is enabled, else PostgreSQL (and says so).
      - V(performance_insights) reads only Performance Insights and fails when it is off.
      - V(pg_stat_statements) reads only PostgreSQL.
    type: str
    choices: [auto, performance_insights, pg_stat_statements]
    default: auto
  window_minutes:
    description:
      - The window that ends now, in minutes (1 to 1052640, 731 days). Performance Insights keeps 7 days on its
        free tier, longer with a paid retention.
    type: int
    default: 60
  limit:
    description:
      - How many wait events and statements each top list holds, 1 to 25.
    type: int
    default: 10
  max_query_length:
    description:
      - Statement texts longer than this are cut; at least 20.
    type: int
    default: 2000
  sample_seconds:
    description:
      - Without Performance Insights, how long C(pg_stat_activity) is sampled (four samples a second), 0 to 60; 0
        takes one sample. A slow server gives fewer samples within the same time.
    type: float
    default: 5
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
  - "IAM actions: C(rds:DescribeDBInstances), C(pi:GetResourceMetrics) and C(pi:DescribeDimensionKeys) on
    C(arn:aws:pi:<region>:<account>:metrics/rds/<DbiResourceId>); C(rds-db:connect) with O(iam_auth=true)."
  - Without Performance Insights the login needs C(pg_monitor) (the master user has it) to see other sessions'
    queries, and C(pg_stat_statements) created in O(login_db).
requirements:
  - psycopg2, only when PostgreSQL is read
seealso:
  - module: dbre.rds.rds_pg_stats_info
  - module: dbre.rds.rds_capacity_info
  - module: amazon.aws.rds_instance
"""

EXAMPLES = r"""
- name: Top wait events and SQL of the last hour
  dbre.rds.rds_performance_insights_info:
    db_instance_identifier: orders-db
  register: load

- name: Show the heaviest wait event and statement
  ansible.builtin.debug:
    msg: >-
      {{ load.wait_events[0].wait_event }} ({{ (load.wait_events[0].share_of_load * 100) | round(1) }} % of the
      load), SQL {{ load.top_sql[0].statement }}; load {{ load.average_active_sessions }} on {{ load.vcpus }} vCPUs

- name: Fall back to pg_stat_statements where Performance Insights is off, with a report
  dbre.rds.rds_performance_insights_info:
    db_instance_identifier: legacy-db
    login_user: postgres
    login_password: "{{ legacy_db_password }}"
    window_minutes: 30
    report_dir: /var/tmp/pi
  check_mode: true
"""

RETURN = r"""
source:
  description: Where the figures came from, V(performance_insights) or V(pg_stat_statements).
  returned: always
  type: str
  sample: performance_insights
source_note:
  description: Why that source; says so when Performance Insights is off and PostgreSQL was read instead.
  returned: always
  type: str
average_active_sessions:
  description: The database load over the window (average active sessions); with pg_stat_statements, the
    average over the samples of pg_stat_activity.
  returned: always
  type: float
  sample: 2.41
vcpus:
  description: The vCPUs of the instance's class, the line above which sessions queue.
  returned: always
  type: int
  sample: 2
wait_events:
  description: Top wait events, heaviest first; each has wait_event (C(Lock:transactionid), C(CPU), ...),
    wait_event_type, average_active_sessions and share_of_load (0 to 1).
  returned: always
  type: list
  elements: dict
  sample: [{"wait_event": "Lock:transactionid", "wait_event_type": "Lock", "average_active_sessions": 1.9,
            "share_of_load": 0.79}]
top_sql:
  description: Top statements, heaviest first; each has statement, id, average_active_sessions and share_of_load
    (and, from pg_stat_statements, calls, total_exec_time_ms and basis). Password literals in a statement
    (C(PASSWORD '...'), for example an C(ALTER ROLE) caught in flight) are replaced by C('********') here and in the
    report.
  returned: always
  type: list
  elements: dict
findings:
  description: Load above the vCPU line, and a top wait event other than CPU holding a quarter of the load or more,
    each with severity, observed value, threshold and advice.
  returned: always
  type: list
  elements: dict
window:
  description: Start and end of the window (UTC, ISO 8601) and its length in minutes.
  returned: always
  type: dict
report:
  description: The report itself (kind C(performance_insights)), as written to the files.
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
    pass  # only needed for pg_stat_statements; checked by connector_for

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.dbre.rds.plugins.module_utils import performance_insights as pi
from ansible_collections.dbre.rds.plugins.module_utils import pg_stats
from ansible_collections.dbre.rds.plugins.module_utils import rds_resources
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import aws_client
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import rds_client
from ansible_collections.dbre.rds.plugins.module_utils.clock import utc_iso
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import report_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import report_name_problems
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import DrillRuntime
from ansible_collections.dbre.rds.plugins.module_utils.instance_classes import UnknownInstanceClass
from ansible_collections.dbre.rds.plugins.module_utils.instance_classes import sizing_from_table
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import connection_problems
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import connector_for
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import db_connection_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import endpoint_of
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import has_credentials
from ansible_collections.dbre.rds.plugins.module_utils.waiting import WaitTimeout
from ansible_collections.dbre.rds.plugins.module_utils.waiting import wait_until

SQL_ACTIVE = (
    "SELECT wait_event_type, wait_event, left(query, %s) FROM pg_stat_activity "
    "WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
)
SQL_VERSION = "SELECT current_setting('server_version_num')::int"
SQL_RESET = ("SELECT extract(epoch FROM now() - stats_reset) FROM pg_stat_statements_info "
             "WHERE EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')")
SQL_HAS_PGSS = "SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'"
SAMPLES_PER_SECOND = 4


def pi_period(window_minutes):
    """A period Performance Insights accepts (1, 60, 300, 3600 or 86400 s) giving at most a few hundred points."""
    seconds = window_minutes * 60
    for period in (60, 300, 3600):
        if seconds / period <= 300:
            return period
    return 86400


def read_performance_insights(module, instance, start, end):
    """(average load, wait events, top SQL) of the window from the PI API."""
    params = module.params
    client = aws_client(module, "pi")
    common = dict(ServiceType="RDS", Identifier=instance["DbiResourceId"], StartTime=start, EndTime=end)
    resource = instance["DBInstanceIdentifier"]
    try:
        metrics = client.get_resource_metrics(aws_retry=True, MetricQueries=[{"Metric": pi.LOAD_METRIC}],
                                              PeriodInSeconds=pi_period(params["window_minutes"]), **common)
        waits = client.describe_dimension_keys(aws_retry=True, Metric=pi.LOAD_METRIC, GroupBy={
            "Group": pi.WAIT_EVENT_GROUP, "Limit": params["limit"]}, **common)
        sql = client.describe_dimension_keys(aws_retry=True, Metric=pi.LOAD_METRIC, GroupBy={
            "Group": pi.SQL_GROUP, "Limit": params["limit"]}, **common)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        module.fail_json_aws(e, msg=f"Reading Performance Insights of {resource} failed: allow pi:GetResourceMetrics "
                                    "and pi:DescribeDimensionKeys on its metrics, or use source=pg_stat_statements")
    load = pi.average_load(metrics.get("MetricList"))
    if load is None:
        load = round(sum(float(k.get("Total") or 0) for k in waits.get("Keys") or []), 4)
    return (load, pi.wait_events_from_keys(waits.get("Keys"), load, params["limit"]),
            pi.sql_from_keys(sql.get("Keys"), load, params["limit"], params["max_query_length"]))


def sample_activity(cursor, seconds, max_query_length):
    """Samples of pg_stat_activity's active sessions, four a second for ``seconds`` (one when 0), through the one
    polling helper; a slow server gives fewer samples within the same time, never a longer run."""
    samples = []

    def take():
        cursor.execute(SQL_ACTIVE, (max_query_length,))
        samples.append(cursor.fetchall())
        return len(samples)

    count = max(1, int(seconds * SAMPLES_PER_SECOND))
    try:
        wait_until(take, lambda taken: taken >= count, timeout=seconds, interval=1.0 / SAMPLES_PER_SECOND,
                   phase="sampling pg_stat_activity", state_of=lambda taken: "sampling")
    except WaitTimeout:
        pass  # the sampling time is over: the samples taken are the answer
    return samples


def read_postgres(module, client, instance):
    """(average load, wait events, top SQL) from samples of pg_stat_activity and pg_stat_statements."""
    params = module.params
    identifier = instance["DBInstanceIdentifier"]
    if not has_credentials(params):
        module.fail_json(msg=f"Performance Insights is off on {identifier} and reading pg_stat_statements needs a "
                             "login: give login_user with login_password (or iam_auth=true), or enable Performance "
                             "Insights")
    connector = connector_for(module, params, endpoint=endpoint_of(instance), rds=client)
    try:
        conn = connector.connect()
        try:
            with conn.cursor() as cursor:
                samples = sample_activity(cursor, params["sample_seconds"], params["max_query_length"])
                cursor.execute(SQL_VERSION)
                version = cursor.fetchone()[0]
                cursor.execute(SQL_HAS_PGSS)
                statements, since_reset = [], None
                if cursor.fetchone():
                    cursor.execute(pg_stats.statements_sql(version, "total_time", params["limit"]))
                    statements = pg_stats.statement_rows(cursor.fetchall(), params["max_query_length"])
                    if version >= 140000:
                        cursor.execute(SQL_RESET)
                        row = cursor.fetchone()
                        since_reset = float(row[0]) if row and row[0] is not None else None
        finally:
            conn.close()
    except psycopg2.Error as e:
        module.fail_json(msg=f"Reading pg_stat_activity and pg_stat_statements of {identifier} at {connector.target} "
                             f"failed: {str(e).strip()}; check the login, that it holds pg_monitor, and that "
                             "pg_stat_statements is preloaded and created in login_db")
    waits, load = pi.wait_events_from_samples([[(r[0], r[1]) for r in s] for s in samples], params["limit"])
    sql = pi.sql_from_samples_and_statements([[r[2] for r in s] for s in samples], statements, since_reset,
                                             params["limit"], params["max_query_length"])
    return load, waits, sql


def main():
    argument_spec = dict(
        db_instance_identifier=dict(type="str", required=True),
        source=dict(type="str", default="auto", choices=list(pi.SOURCES)),
        window_minutes=dict(type="int", default=60),
        limit=dict(type="int", default=10),
        max_query_length=dict(type="int", default=2000),
        sample_seconds=dict(type="float", default=5),
    )
    argument_spec.update(db_connection_argument_spec())
    argument_spec.update(report_argument_spec())
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    problems = pi.option_problems(params) + connection_problems(params) + report_name_problems(params["report_name"])
    if problems:
        module.fail_json(msg="Invalid options: " + "; ".join(problems))

    identifier = params["db_instance_identifier"]
    client = rds_client(module)
    instance = rds_resources.describe_or_fail(module, client, rds_resources.INSTANCE, identifier)
    source, note, refusal = pi.choose_source(params["source"], instance)
    if refusal:
        module.fail_json(msg=refusal)
    try:
        vcpus = sizing_from_table(instance.get("DBInstanceClass"))["vcpus"]
    except UnknownInstanceClass:
        vcpus = None  # db.serverless or a class the table lacks: no vCPU line
    runtime = DrillRuntime(module, "performance_insights", identifier, f"Database load of {identifier}",
                           watch_parent=False)
    end = datetime.datetime.now(datetime.timezone.utc)
    start = end - datetime.timedelta(minutes=params["window_minutes"])
    if source == pi.PERFORMANCE_INSIGHTS:
        load, waits, sql = read_performance_insights(module, instance, start, end)
    else:
        load, waits, sql = read_postgres(module, client, instance)
    found = pi.findings(load, vcpus, waits)
    result = dict(changed=False, source=source, source_note=note, average_active_sessions=load, vcpus=vcpus,
                  wait_events=waits, top_sql=sql, findings=found,
                  window=dict(start=utc_iso(start), end=utc_iso(end), minutes=params["window_minutes"]))
    if params["report_dir"]:
        objectives = [] if load is None or not vcpus else [dict(
            name="load within the vCPU line", objective=vcpus, observed=load, unit="sessions", held=load <= vcpus)]
        measurements = dict(source=source, average_active_sessions=load, vcpus=vcpus,
                            duration_seconds=round(runtime.clock.elapsed(), 3))
        for rank, item in enumerate(waits, 1):
            measurements[f"wait {rank}: {item['wait_event']}"] = (
                f"{item['average_active_sessions']} AAS ({(item['share_of_load'] or 0):.0%} of load)")
        for rank, item in enumerate(sql, 1):
            aas = item["average_active_sessions"]
            measurements[f"sql {rank}: {(item['statement'] or '')[:80]}"] = f"{aas} AAS" if aas is not None else "-"
        report = runtime.report(passed=all(o["held"] for o in objectives), objectives=objectives, timeline=[],
                                measurements=measurements,
                                details=dict(source_note=note, wait_events=waits, top_sql=sql, findings=found))
        runtime.write(report, result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
