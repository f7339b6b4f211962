#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rds_pg_stats_info
short_description: Report the slowest statements, cache hit ratio, connection use and vacuum risks of RDS PostgreSQL
version_added: "0.1.0"
description:
  - Connects to an RDS or Aurora PostgreSQL database and reads C(pg_stat_statements) and the statistics views.
  - Returns the top statements by total execution time, by mean execution time and by calls (query text, calls,
    total, mean, max and standard deviation of the execution time in milliseconds, rows), the cache hit ratio, the
    connections in use against C(max_connections), the age of the oldest transaction ID and the transactions open
    longer than O(long_running_seconds).
  - Each figure outside its limit becomes a finding with a one-line advice. Optionally writes the same as a report
    (JSON, Markdown and JUnit XML) to O(report_dir), returned as RV(report) with the paths in RV(report_files).
  - Every option is checked before the first call.
  - Read-only; runs the same in check mode.
author:
  - dbre.rds maintainers (@dbre-rds)
options:
  db_instance_identifier:
    description:
      - The RDS instance (or Aurora instance) to report on; its endpoint is read with C(DescribeDBInstances).
      - Not needed when O(login_host) and O(login_port) are given.
      - O(login_user) is always needed.
    type: str
  limit:
    description:
      - How many statements each top list holds, from 1 to 1000.
    type: int
    default: 10
  max_query_length:
    description:
      - Query texts longer than this are cut, so a result stays readable. At least 20.
    type: int
    default: 2000
  cache_hit_ratio_min:
    description:
      - Cache hit ratio (share of block reads served from C(shared_buffers), 0 to 1) below which a finding is raised.
    type: float
    default: 0.99
  connection_use_max:
    description:
      - Share of C(max_connections) in use above which a finding is raised.
    type: float
    default: 0.8
  xid_age_max:
    description:
      - Age of the oldest unfrozen transaction ID (C(age(datfrozenxid))) above which a finding is raised.
    type: int
    default: 1000000000
  long_running_seconds:
    description:
      - Transactions open longer than this many seconds are listed and raise a finding.
    type: int
    default: 300
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
  - "IAM actions: C(rds:DescribeDBInstances) when O(db_instance_identifier) is given; C(rds-db:connect) with
    O(iam_auth=true)."
  - The login needs to read other sessions' statements; on RDS the master user can (it is a member of
    C(rds_superuser), which holds C(pg_read_all_stats)); other logins need C(pg_monitor).
  - C(pg_stat_statements) must be in C(shared_preload_libraries) (it is by default on RDS) and created in
    O(login_db); otherwise the top lists are empty and a finding says which of the two is missing.
requirements:
  - psycopg2
seealso:
  - module: community.postgresql.postgresql_info
  - module: community.postgresql.postgresql_ext
  - module: dbre.rds.rds_param_tune
"""

EXAMPLES = r"""
- name: Report on an RDS instance, connecting to the endpoint that RDS describes
  dbre.rds.rds_pg_stats_info:
    db_instance_identifier: orders-db
    login_user: postgres
    login_password: "{{ orders_db_password }}"
    login_db: orders
    report_dir: /var/tmp/pg-stats
  register: stats

- name: Show the slowest statement by total time and the advice
  ansible.builtin.debug:
    msg:
      - "{{ stats.top_statements.total_time[0].query }} ({{ stats.top_statements.total_time[0].total_exec_time_ms }} ms)"
      - "{{ stats.findings | map(attribute='advice') | list }}"

- name: Report through IAM authentication, five statements per list
  dbre.rds.rds_pg_stats_info:
    db_instance_identifier: orders-db
    login_user: monitoring
    iam_auth: true
    limit: 5
  check_mode: true
"""

RETURN = r"""
top_statements:
  description: The top statements from C(pg_stat_statements), one list per ordering.
  returned: always
  type: dict
  contains:
    total_time:
      description: By total execution time, slowest first. Each item has queryid, database, user, query, calls,
        total_exec_time_ms, mean_exec_time_ms, max_exec_time_ms, stddev_exec_time_ms, rows, shared_blks_hit and
        shared_blks_read.
      type: list
      elements: dict
      sample: [{"query": "SELECT pg_sleep($1)", "calls": 20, "total_exec_time_ms": 1012.5, "mean_exec_time_ms": 50.6}]
    mean_time:
      description: By mean execution time, slowest first; items as in RV(top_statements.total_time).
      type: list
      elements: dict
    calls:
      description: By number of calls, most first; items as in RV(top_statements.total_time).
      type: list
      elements: dict
pg_stat_statements:
  description: Whether the extension is preloaded and created in the database, and its version.
  returned: always
  type: dict
  sample: {"preloaded": true, "installed": true, "version": "1.10"}
cache_hit_ratio:
  description: Share of block reads served from C(shared_buffers) over all databases, 0 to 1; null before any read.
  returned: always
  type: float
  sample: 0.9987
connections:
  description: Client connections in use against C(max_connections).
  returned: always
  type: dict
  sample: {"used": 12, "max_connections": 112, "reserved_connections": 5, "available_to_users": 107, "ratio": 0.107}
oldest_xid:
  description: The database with the oldest unfrozen transaction ID and its age.
  returned: always
  type: dict
  sample: {"database": "orders", "age": 1234567}
long_running_transactions:
  description: Sessions whose transaction has been open longer than O(long_running_seconds), oldest first.
  returned: always
  type: list
  elements: dict
  sample: [{"pid": 4242, "user": "app", "database": "orders", "state": "idle in transaction", "seconds": 912.4}]
findings:
  description: Each figure outside its limit, with severity (info, warning, critical), observed value, threshold and a
    one-line advice.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "low_cache_hit_ratio", "severity": "warning", "observed": 0.93, "threshold": 0.99,
            "advice": "Only 93.00% of block reads came from shared_buffers: ..."}]
server_version:
  description: The server's C(server_version_num).
  returned: always
  type: int
  sample: 150005
report:
  description:
    - The report itself, as written to the files; the same shape as the drills' reports (title, kind C(pg_stats),
      target, started_at, finished_at, passed, failure, objectives, timeline, measurements, details).
  returned: when O(report_dir) is set
  type: dict
  sample: {"kind": "pg_stats", "target": "orders-db", "passed": true, "measurements": {"cache_hit_ratio": 0.998}}
report_files:
  description:
    - Paths of the written report files by format (json, md, xml).
    - Called C(report) before 0.2.0; C(report) now means the report itself in every module's return value.
  returned: when O(report_dir) is set
  type: dict
  sample: {"json": "/var/tmp/pg-stats/pg_stats-orders-db-20250101T000000Z.json"}
"""

try:
    import psycopg2
except ImportError:
    pass  # handled by connector_for

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import rds_client
from ansible_collections.dbre.rds.plugins.module_utils.clock import utc_iso
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import report_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import report_name_problems
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import DrillRuntime
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import connection_problems
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import connector_for
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import db_connection_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import endpoint_of
from ansible_collections.dbre.rds.plugins.module_utils import pg_stats
from ansible_collections.dbre.rds.plugins.module_utils import rds_resources

SQL_SETTINGS = (
    "SELECT current_setting('server_version_num')::int, current_setting('max_connections')::int, "
    "current_setting('superuser_reserved_connections')::int, "
    "coalesce(current_setting('rds.rds_superuser_reserved_connections', true), '0')::int, "
    "current_setting('shared_preload_libraries')"
)
SQL_EXTENSION = "SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements'"
SQL_CACHE = "SELECT coalesce(sum(blks_hit), 0), coalesce(sum(blks_read), 0) FROM pg_stat_database"
SQL_CONNECTIONS = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
SQL_OLDEST_XID = "SELECT datname, age(datfrozenxid) FROM pg_database ORDER BY 2 DESC LIMIT 1"
SQL_LONG_RUNNING = (
    "SELECT pid, usename, datname, state, xact_start, extract(epoch FROM clock_timestamp() - xact_start), "
    "left(query, %s) FROM pg_stat_activity "
    "WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid() AND clock_timestamp() - xact_start > %s * interval '1 s' "
    "ORDER BY xact_start"
)


def instance_endpoint(module, identifier):
    """(host, port) of the instance that RDS describes."""
    client = rds_client(module)
    instance = rds_resources.describe_or_fail(module, client, rds_resources.INSTANCE, identifier)
    return endpoint_of(instance), client


def collect(cursor, params):
    """Read every figure with one connection; plain queries, no branching beyond what the server version needs."""
    cursor.execute(SQL_SETTINGS)
    version, max_connections, reserved, rds_reserved, preload = cursor.fetchone()
    cursor.execute(SQL_EXTENSION)
    extension = cursor.fetchone()
    stats = dict(
        server_version=version,
        pg_stat_statements=dict(
            preloaded="pg_stat_statements" in [lib.strip() for lib in (preload or "").split(",")],
            installed=extension is not None,
            version=extension[0] if extension else None,
        ),
        top_statements={key: [] for key in pg_stats.ORDERINGS},
    )
    if stats["pg_stat_statements"]["installed"] and stats["pg_stat_statements"]["preloaded"]:
        for key in pg_stats.ORDERINGS:
            cursor.execute(pg_stats.statements_sql(version, key, params["limit"]))
            stats["top_statements"][key] = pg_stats.statement_rows(cursor.fetchall(), params["max_query_length"])
    cursor.execute(SQL_CACHE)
    stats["cache_hit_ratio"] = pg_stats.cache_hit_ratio(*cursor.fetchone())
    cursor.execute(SQL_CONNECTIONS)
    stats["connections"] = pg_stats.connection_use(cursor.fetchone()[0], max_connections, reserved + rds_reserved)
    cursor.execute(SQL_OLDEST_XID)
    database, age = cursor.fetchone()
    stats["oldest_xid"] = dict(database=database, age=int(age))
    cursor.execute(SQL_LONG_RUNNING, (params["max_query_length"], params["long_running_seconds"]))
    stats["long_running_transactions"] = [
        dict(pid=row[0], user=row[1], database=row[2], state=row[3], xact_start=utc_iso(row[4]),
             seconds=round(float(row[5]), 3), query=row[6])
        for row in cursor.fetchall()
    ]
    return stats


def build_report(runtime, stats, findings, objectives):
    return runtime.report(
        passed=all(item["held"] for item in objectives),
        objectives=objectives,
        timeline=[],
        measurements=dict(
            cache_hit_ratio=stats["cache_hit_ratio"],
            connections_used=stats["connections"]["used"],
            max_connections=stats["connections"]["max_connections"],
            oldest_xid_age=stats["oldest_xid"]["age"],
            long_running_transactions=len(stats["long_running_transactions"]),
            duration_seconds=round(runtime.clock.elapsed(), 3),
        ),
        details=dict(findings=findings, top_statements=stats["top_statements"],
                     pg_stat_statements=stats["pg_stat_statements"]),
    )


def main():
    argument_spec = dict(
        db_instance_identifier=dict(type="str"),
        limit=dict(type="int", default=10),
        max_query_length=dict(type="int", default=2000),
        cache_hit_ratio_min=dict(type="float", default=0.99),
        connection_use_max=dict(type="float", default=0.8),
        xid_age_max=dict(type="int", default=1000000000),
        long_running_seconds=dict(type="int", default=300),
    )
    argument_spec.update(db_connection_argument_spec())
    argument_spec.update(report_argument_spec())
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_one_of=[("db_instance_identifier", "login_host")],
    )
    params = module.params
    problems = pg_stats.option_problems(params) + connection_problems(params) + report_name_problems(
        params["report_name"])
    if problems:
        module.fail_json(msg="Invalid options: " + "; ".join(problems))

    endpoint, rds = (None, None), None
    if params["db_instance_identifier"]:
        endpoint, rds = instance_endpoint(module, params["db_instance_identifier"])
    elif params["iam_auth"]:
        rds = rds_client(module)
    connector = connector_for(module, params, endpoint=endpoint, rds=rds)
    target = params["db_instance_identifier"] or connector.target
    runtime = DrillRuntime(module, "pg_stats", target, f"PostgreSQL statistics of {target}")

    try:
        conn = connector.connect()
        try:
            with conn.cursor() as cursor:
                stats = collect(cursor, params)
        finally:
            conn.close()
    except psycopg2.Error as e:
        module.fail_json(msg=f"Failed to read the statistics of {connector.target}: {str(e).strip()}; check the "
                             "login, that it may read pg_stat_activity (pg_monitor) and that the endpoint is reachable")

    limits = dict(cache_hit_ratio_min=params["cache_hit_ratio_min"], connection_use_max=params["connection_use_max"],
                  xid_age_max=params["xid_age_max"], long_running_seconds=params["long_running_seconds"])
    findings = pg_stats.findings(stats, limits)
    result = dict(changed=False, findings=findings, **stats)
    if params["report_dir"]:
        runtime.write(build_report(runtime, stats, findings, pg_stats.objectives(stats, limits)), result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
