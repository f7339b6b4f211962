#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rds_upgrade_drill
short_description: Check an RDS PostgreSQL instance for an engine upgrade and rehearse the upgrade on a copy
version_added: "0.3.0"
description:
  - Runs the pre-upgrade checklist of an RDS PostgreSQL DB instance for O(target_engine_version), then rehearses the
    upgrade on a temporary copy and says whether production may go ahead and what to fix first.
  - "The checklist: a recent backup (age of the latest restorable time and of the last snapshot), the maintenance
    window, Multi-AZ, the target is a valid upgrade target of the current version, a parameter group of the target's
    family, and, inside the database (with O(login_password) or O(iam_auth=true)), every blocker C(pg_upgrade --check)
    stops on (prepared transactions, C(reg*) columns, logical replication slots, removed data types, extensions whose
    installed version the target lacks, with the C(ALTER EXTENSION ... UPDATE) to run, inheritance children whose
    column is nullable where the parent's is NOT NULL, from 17 or older to 18 or newer), long-running transactions and
    free storage. Each check has C(passed), the measured value and the fix."
  - "O(checks_only=true), or check mode, runs the checklist alone (describe calls and read-only SQL on the source) and
    returns it with the plan of the rehearsal; nothing is created. Its report has the kind C(upgrade_checklist)
    (C(measurements.rehearsed=false)), never C(upgrade_drill): M(dbre.rds.rds_drill_history_info) does not count it as
    an upgrade drill. Check mode writes no report file."
  - "The rehearsal: a manual snapshot of the source, tagged as the drill's own; a restore of it to a temporary
    instance with the source's subnet group, security groups, parameter group and option group (the restore drill's
    request); the user's SQL O(checks) and the optional O(benchmark_sql) on the copy; C(ModifyDBInstance) of the copy
    to O(target_engine_version) with C(AllowMajorVersionUpgrade) and a parameter group of the target family; the
    upgrade's duration and the outage clients see (connection probes every O(probe_interval) seconds); the version the
    upgraded server reports; the checks and the benchmark again on the new version; then cleanup."
  - When RDS cannot upgrade the copy (a blocker its precheck finds), the copy goes back to available on the old
    version; the drill reports the reason RDS gave (its event), fails the verdict and still cleans up.
  - The source is never modified. It is named only as the source of the manual snapshot (C(CreateDBSnapshot)); every
    other mutating call names the drill's own snapshot or copy.
  - This module is imperative, like a drill. A real rehearsal creates and deletes resources, so it reports
    RV(ignore:changed=true) each time. Create and delete calls are sent once; on a throttle or a lost answer the
    module first checks whether the call took effect.
  - The snapshot and the copy carry the tags C(dbre:drill-id), C(dbre:drill-expires), C(dbre:drill-started) and
    C(dbre:drill-owner) like M(dbre.rds.rds_restore_drill)'s resources; cleanup deletes them only while they carry
    this drill's id, in every outcome (failed check, failed upgrade, timeout, error, SIGTERM, SIGINT or SIGHUP) unless
    O(cleanup) says otherwise. M(dbre.rds.rds_restore_drill) with O(dbre.rds.rds_restore_drill#module:state=sweep)
    removes the copy and the snapshot a killed run left behind.
author:
  - dbre.rds maintainers (@dbre-rds)
options:
  db_instance_identifier:
    description:
      - The source RDS PostgreSQL DB instance (not an Aurora cluster member).
    type: str
    required: true
  target_engine_version:
    description:
      - The engine version to upgrade to, for example V(18.6); a major version alone (V(18)) means its newest
        version RDS offers.
      - Must be a version RDS offers and a valid upgrade target of the source's version (never older).
    type: str
    required: true
  allow_major_version_upgrade:
    description:
      - Consent to a major version upgrade, as RDS's C(AllowMajorVersionUpgrade). A rehearsal (or check mode) of a
        major upgrade is refused without it; O(checks_only=true) does not need it.
    type: bool
    default: false
  target_parameter_group:
    description:
      - The DB parameter group of the target's family the upgraded copy gets (the one production would get).
      - Without it a major upgrade names RDS's default group of the target family (C(default.postgres18)); a minor
        upgrade names no group, so the copy keeps the source's group and the benchmark compares versions only.
    type: str
  create_parameter_group:
    description:
      - Create O(target_parameter_group) when it does not exist, in the target family, tuned by the rules of
        M(dbre.rds.rds_param_tune) for the source's instance class and carrying the source group's non-default values
        that still exist in the new family (RV(parameter_group) lists those that do not).
      - The group is kept after the drill, since it is the group for production's upgrade. An existing group is used as
        is, except one this module made that lacks some of the values it sets (a run that created it failed or was
        stopped between its C(ModifyDBParameterGroup) batches); the rehearsal is then refused before any change,
        naming the missing values (delete the group and run again, or set them); the checklist alone warns.
    type: bool
    default: false
  checks_only:
    description:
      - Run the pre-upgrade checklist only and return it; create nothing.
    type: bool
    default: false
  benchmark_sql:
    description:
      - A query timed O(benchmark_runs) times on the copy before and after the upgrade (after one untimed run on
        each side), so a slowdown on the new version shows up in RV(benchmark).
    type: str
  benchmark_runs:
    description:
      - How many timed runs of O(benchmark_sql) on each version (1 to 1000); the median is compared.
    type: int
    default: 5
  pgbench_seconds:
    description:
      - Also run C(pgbench) (select-only, two clients) for this many seconds (1 to 3600) on the copy before and after
        the upgrade, when the C(pgbench) program is on the managed node's C(PATH); RV(pgbench) compares the
        transactions per second. Its tables (C(pgbench_*), scale 1) are made in O(login_db) of the copy after the
        checks and dropped again before the upgrade, so the checks see the same schema on both sides.
      - Needs O(login_password).
    type: int
  max_slowdown_percent:
    description:
      - How much slower (in percent) O(benchmark_sql) (its median) and C(pgbench) (its transactions per second) may
        run on the new version before the verdict fails.
    type: float
  max_downtime_seconds:
    description:
      - Objective for the outage clients see during the upgrade (RV(measurements.downtime_seconds)).
    type: float
  max_upgrade_seconds:
    description:
      - Objective for the upgrade's duration, from the request until the copy is available on the new version.
    type: float
  probe_interval:
    description:
      - Seconds between two connection probes to the copy while it upgrades; the resolution of the outage measured.
    type: float
    default: 0.5
  probe_timeout:
    description:
      - Seconds a probe waits for the copy to answer.
    type: int
    default: 2
  target_identifier:
    description:
      - Identifier of the temporary copy. Defaults to the source's identifier, C(-drill-), the UTC start time and six
        random hex digits from the drill id.
    type: str
  snapshot_identifier:
    description:
      - Identifier of the drill's manual snapshot of the source. Defaults to the source's identifier,
        C(-upgrade-drill-), the UTC start time and six random hex digits.
    type: str
  db_instance_class:
    description:
      - Instance class of the copy. Defaults to the source's.
    type: str
  ttl_hours:
    description:
      - Hours after the drill's start at which its resources count as expired (tag C(dbre:drill-expires)). Greater
        than 0 and at most 8760.
    type: int
    default: 24
  tags:
    description:
      - More tags for the snapshot and the copy (and a created parameter group).
    type: dict
  cleanup:
    description:
      - V(always) deletes the snapshot and the copy in every outcome; V(on_success) keeps them when the verdict
        failed; V(never) keeps them.
    type: str
    default: always
    choices: [always, on_success, never]
  cleanup_timeout:
    description:
      - Seconds cleanup waits for each deleted resource to be gone. Greater than 0 and at most 86400.
    type: int
    default: 1800
  fail_on_breach:
    description:
      - Fail the task when the verdict is failed (a blocker in the checklist, a failed check or upgrade, a breached
        objective). The result and the report are attached either way. When cleanup leaves something behind the task
        fails regardless.
    type: bool
    default: true
  progress_log:
    description:
      - Path of a file on the managed node to which the drill appends one line per phase, for C(tail -f).
    type: path
  max_backup_age_hours:
    description:
      - The newest snapshot of the instance may be at most this many hours old (check C(recent_snapshot)).
    type: float
    default: 24
  max_restorable_age_seconds:
    description:
      - The latest restorable time may be at most this many seconds old (check C(recent_backup)).
    type: float
    default: 600
  max_transaction_age_seconds:
    description:
      - Transactions open longer than this fail the check C(long_transactions).
    type: float
    default: 300
  min_free_storage_percent:
    description:
      - Free storage must be at least this share of the allocated storage (check C(free_storage)).
    type: float
    default: 10
  require_multi_az:
    description:
      - Fail the check C(multi_az) for a Single-AZ instance.
    type: bool
    default: false
  extension_versions:
    description:
      - "The versions the target engine version supports, by extension name (RDS's table of extension versions), for
        example C({postgis: ['3.5.2'], hstore: ['1.8']}). For each extension named, this replaces what the checklist
        knows from the community PostgreSQL builds; an installed version not listed fails the check
        C(extension_versions) with the C(ALTER EXTENSION ... UPDATE TO) to run."
    type: dict
    default: {}
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
  - dbre.rds.wait
  - dbre.rds.db_connection
  - dbre.rds.report
  - dbre.rds.data_checks
attributes:
  check_mode:
    description: Runs the checklist (describe calls, read-only SQL) and returns the rehearsal's plan, with no
      mutating call.
    support: full
  diff_mode:
    description: Not supported; a drill creates and deletes resources rather than changing one.
    support: none
notes:
  - O(checks) and O(benchmark_sql) run on the copy, before and after its upgrade. The checklist's database checks
    run read-only SQL on the source. O(login_user) defaults to the source's master user name.
  - O(wait_timeout) bounds each wait (the snapshot, the restore, the upgrade) separately; O(cleanup_timeout) bounds
    each deletion.
  - "IAM actions: C(rds:DescribeDBInstances), C(rds:DescribeDBEngineVersions), C(rds:DescribeDBSnapshots),
    C(rds:DescribeDBParameterGroups), C(rds:DescribeDBParameters), C(rds:DescribeEngineDefaultParameters),
    C(rds:DescribeEvents), C(rds:ListTagsForResource), C(cloudwatch:GetMetricStatistics), C(rds:CreateDBSnapshot),
    C(rds:RestoreDBInstanceFromDBSnapshot), C(rds:ModifyDBInstance), C(rds:DeleteDBInstance),
    C(rds:DeleteDBSnapshot), C(rds:AddTagsToResource), C(rds:CreateDBParameterGroup) and
    C(rds:ModifyDBParameterGroup) with O(create_parameter_group=true), and C(rds-db:connect) with O(iam_auth=true).
    Restrict ModifyDBInstance and the delete actions with a condition on the C(dbre:drill-id) tag."
seealso:
  - module: dbre.rds.rds_restore_drill
  - module: dbre.rds.rds_param_tune
  - module: amazon.aws.rds_instance
  - module: amazon.aws.rds_instance_snapshot
  - name: Upgrading the PostgreSQL DB engine for Amazon RDS
    description: What RDS checks and does during a major version upgrade.
    link: https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_UpgradeDBInstance.PostgreSQL.html
"""

EXAMPLES = r"""
- name: Pre-upgrade checklist of orders-prod for PostgreSQL 18 (nothing is created)
  dbre.rds.rds_upgrade_drill:
    db_instance_identifier: orders-prod
    target_engine_version: "18.6"
    checks_only: true
    login_password: "{{ orders_master_password }}"
    fail_on_breach: false
  register: orders_checklist

- name: Show what blocks the upgrade and how to fix it
  ansible.builtin.debug:
    msg: "{{ orders_checklist.fix_first }}"

- name: See the rehearsal's plan (check mode runs the checklist too)
  dbre.rds.rds_upgrade_drill:
    db_instance_identifier: orders-prod
    target_engine_version: "18"
    allow_major_version_upgrade: true
  check_mode: true

- name: Rehearse the upgrade to 18.6 on a copy, with checks and a benchmark on both versions
  dbre.rds.rds_upgrade_drill:
    db_instance_identifier: orders-prod
    target_engine_version: "18.6"
    allow_major_version_upgrade: true
    target_parameter_group: orders-postgres18
    create_parameter_group: true
    login_password: "{{ orders_master_password }}"
    login_db: orders
    checks:
      - name: orders present
        sql: SELECT count(*) FROM orders
        expect:
          min: 1000000
    benchmark_sql: SELECT count(*) FROM orders WHERE created_at > now() - interval '1 day'
    max_slowdown_percent: 20
    max_downtime_seconds: 900
    report_dir: /var/lib/dbre/reports
  register: orders_rehearsal

- name: Stop before production when the rehearsal says so
  ansible.builtin.assert:
    that: orders_rehearsal.go_ahead
    fail_msg: "{{ orders_rehearsal.fix_first | join('; ') }}"
"""

RETURN = r"""
passed:
  description: The verdict. True when the checklist found no blocker and, for a rehearsal, the copy was upgraded,
    every check and objective held and cleanup left nothing behind.
  returned: always
  type: bool
  sample: true
verdict:
  description: V(passed), V(failed), or V(planned) in check mode.
  returned: always
  type: str
  sample: passed
go_ahead:
  description: Whether production may go ahead with the upgrade (no blocker, and for a rehearsal nothing failed).
  returned: always
  type: bool
  sample: false
fix_first:
  description: What to fix before production's upgrade, most important first (the checklist's blockers with their
    fix, the failure RDS reported, then every objective that did not hold).
  returned: always
  type: list
  elements: str
  sample: ["prepared_transactions: COMMIT PREPARED or ROLLBACK PREPARED 'tx1' in orders"]
advice:
  description: Fixes for checks that failed without blocking the upgrade (no recent snapshot, single-AZ, ...).
  returned: always
  type: list
  elements: str
failure:
  description: What failed first; null when the drill passed.
  returned: always
  type: str
checklist:
  description:
    - The pre-upgrade checks, each with C(name), C(passed), C(value) (measured), C(expected), C(unit), C(fix) (what
      to run; null when it passed), C(blocker) (RDS would refuse or fail the upgrade over it) and C(detail) (the rows
      behind the value).
    - C(name) is one of C(instance_available), C(valid_upgrade_target), C(target_parameter_group),
      C(recent_backup), C(recent_snapshot), C(maintenance_window), C(multi_az), C(free_storage),
      C(databases_inspected), C(database_connections), C(prepared_transactions), C(reg_columns), C(logical_slots),
      C(removed_data_types), C(extension_versions), C(not_null_inheritance), C(long_transactions), in that order.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "prepared_transactions", "passed": false, "value": 1, "expected": 0, "blocker": true,
            "fix": "COMMIT PREPARED or ROLLBACK PREPARED 'tx1' in orders"}]
blockers:
  description: The names of the checklist's failed checks that stop an upgrade.
  returned: always
  type: list
  elements: str
  sample: ["prepared_transactions"]
drill_id:
  description: The value of the C(dbre:drill-id) tag on the snapshot and the copy.
  returned: always
  type: str
  sample: 20261130T073500Z-5f3a9c1e
source:
  description: The source's identifier, engine version and parameter group.
  returned: always
  type: dict
  sample: {"identifier": "orders-prod", "engine_version": "15.7", "parameter_group": "orders-postgres15"}
plan:
  description: The rehearsal's plan (steps, requests, identifiers), decided before any change.
  returned: always
  type: dict
  contains:
    from_version:
      description: The source's version.
      type: str
    to_version:
      description: The target version (a major alone resolved to its newest offered version).
      type: str
    major:
      description: Whether it is a major version upgrade.
      type: bool
    snapshot:
      description: The drill's manual snapshot.
      type: str
    target:
      description: The temporary copy.
      type: str
    parameter_group:
      description: The group the upgrade names (C(name)) and what the drill does with it (C(action) V(use),
        V(create) or V(default)).
      type: dict
    steps:
      description: The mutating calls in order, each with the resource it names.
      type: list
      elements: dict
    upgrade_request:
      description: The ModifyDBInstance parameters for the copy.
      type: dict
  sample: {"from_version": "15.7", "to_version": "18.6", "major": true, "snapshot": "orders-upgrade-drill-x",
           "target": "orders-drill-x", "steps": [{"call": "CreateDBSnapshot", "resource": "orders-upgrade-drill-x"}]}
parameter_group:
  description: With O(create_parameter_group=true), the group created (or that would be), its values, the source
    group's values carried into it, and those dropped because the target family lacks them.
  returned: when O(create_parameter_group=true) and the group did not exist
  type: dict
  sample: {"name": "orders-postgres18", "created": true, "values": {"shared_buffers": "{DBInstanceClassMemory/32768}"},
           "carried": ["log_min_duration_statement"], "dropped": ["vacuum_defer_cleanup_age"]}
checks:
  description: The O(checks) on the copy, before (C(before)) and after (C(after)) the upgrade, each as
    M(dbre.rds.rds_restore_drill) returns them.
  returned: when a rehearsal ran
  type: dict
  sample: {"before": [{"name": "orders", "passed": true, "observed": 100}], "after": []}
benchmark:
  description: Median seconds of O(benchmark_sql) on each version, the runs, and the slowdown in percent.
  returned: when O(benchmark_sql) is set and a rehearsal ran
  type: dict
  sample: {"before_median_seconds": 0.012, "after_median_seconds": 0.011, "slowdown_percent": -8.3}
pgbench:
  description: C(pgbench)'s transactions per second on each version (C(before_tps), C(after_tps)) and the slowdown
    in percent; null values when C(pgbench) is not on the C(PATH) (a warning says so).
  returned: when O(pgbench_seconds) is set and a rehearsal ran
  type: dict
  sample: {"seconds": 10, "before_tps": 2504.1, "after_tps": 2611.9, "slowdown_percent": -4.1}
upgrade:
  description: What the upgrade did, C(upgraded), C(engine_version) after, C(status), C(failure) (the reason RDS
    gave, from its event), C(events) (RDS's events about the upgrade of the copy).
  returned: when a rehearsal ran
  type: dict
  sample: {"upgraded": false, "engine_version": "15.7", "failure_event": "Database instance is in a state that cannot
           be upgraded: ..."}
measurements:
  description: Every figure. Times are ISO 8601 UTC, durations seconds.
  returned: when a rehearsal ran
  type: dict
  contains:
    snapshot_seconds:
      description: From the snapshot request until it was available.
      type: float
    restore_seconds:
      description: From the restore request until the copy was available.
      type: float
    rehearsed:
      description: Always true here; a checklist-only report (kind C(upgrade_checklist)) carries C(rehearsed=false).
      type: bool
    upgrade_requested_at:
      description: When ModifyDBInstance was sent.
      type: str
    upgrade_seconds:
      description: From the upgrade request until the copy was available again (on the new version, or the old one
        when the upgrade failed).
      type: float
    downtime_seconds:
      description: The outage the connection probes saw during the upgrade (null without credentials).
      type: float
    server_version_before:
      description: C(server_version) the copy reported before the upgrade.
      type: str
    server_version_after:
      description: C(server_version) the copy reported after it.
      type: str
    engine_version_after:
      description: The copy's engine version as RDS describes it after the upgrade settled.
      type: str
    parameter_group_after:
      description: The copy's parameter group after the upgrade settled.
      type: str
    duration_seconds:
      description: The whole drill, cleanup included.
      type: float
  sample: {"upgrade_seconds": 41.2, "downtime_seconds": 12.5, "server_version_after": "18.6"}
objectives:
  description: The verdict table (name, objective, observed, unit, held).
  returned: always
  type: list
  elements: dict
phases:
  description: Phase timings on the drill's clock.
  returned: always
  type: list
  elements: dict
transitions:
  description: Status transitions of the snapshot and the copy, with times.
  returned: when a rehearsal ran
  type: dict
cleanup:
  description: What cleanup did (C(mode), C(removed), C(left_behind), C(kept), C(steps)).
  returned: when a rehearsal ran
  type: dict
report:
  description: The drill report (the shape of the shared report writer), the same that O(report_dir) receives.
  returned: always
  type: dict
report_files:
  description: Paths written under O(report_dir) (C(json), C(md), C(xml)).
  returned: when O(report_dir) is set, not in check mode
  type: dict
would_create:
  description: In check mode or with O(checks_only=true), what a rehearsal would create (and delete again).
  returned: in check mode or with O(checks_only=true)
  type: list
  elements: dict
  sample: [{"kind": "snapshot", "identifier": "orders-upgrade-drill-x"}, {"kind": "instance", "identifier": "x"}]
problems:
  description: Every problem found in the options or the target version, when they were refused before any change.
  returned: on invalid options
  type: list
  elements: str
phase:
  description: The phase in which the drill stopped.
  returned: when the drill failed
  type: str
interrupted_by:
  description: The signal that stopped the drill; cleanup still ran.
  returned: when a signal interrupted the drill
  type: str
"""

import datetime
import os
import shutil
import statistics
import subprocess
import time
import uuid

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.dbre.rds.plugins.module_utils import failover_drill
from ansible_collections.dbre.rds.plugins.module_utils import instance_classes
from ansible_collections.dbre.rds.plugins.module_utils import param_tuning
from ansible_collections.dbre.rds.plugins.module_utils import restore_drill
from ansible_collections.dbre.rds.plugins.module_utils import upgrade_checklist
from ansible_collections.dbre.rds.plugins.module_utils import upgrade_drill as drill
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import CallNotConfirmed
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import aws_client
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import call_once
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import once_client
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import rds_client
from ansible_collections.dbre.rds.plugins.module_utils.clock import utc_iso
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import report_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import DrillAborted
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import DrillFailure
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import DrillRuntime
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import aws_errors
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import owner_marker
from ansible_collections.dbre.rds.plugins.module_utils.module_warnings import warn
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import connection_params
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import connector_for
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import db_connection_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import endpoint_of
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import permanent_error
from ansible_collections.dbre.rds.plugins.module_utils.probing import ProbeLoop
from ansible_collections.dbre.rds.plugins.module_utils.probing import short_message
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import BROKEN_STATES
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import INSTANCE
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import delete_once
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import describe_instance
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import describe_parameter_group
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import describe_resource
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import describe_snapshot
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import events_since
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import paginate
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import standalone_instance_problem
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import status_of
from ansible_collections.dbre.rds.plugins.module_utils.waiting import WaitFailed
from ansible_collections.dbre.rds.plugins.module_utils.waiting import WaitTimeout
from ansible_collections.dbre.rds.plugins.module_utils.waiting import wait_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.waiting import wait_until

SNAPSHOT_BROKEN = ("failed", "incompatible-restore", "deleting")
# After the upgrade settled, how long the probes go on to see the copy answer again.
PROBE_SETTLE_SECONDS = 1.0

# ---------------------------------------------------------------------------------------------------------- AWS I/O


def every_engine_version(rds, engine):
    """Every version RDS offers of ``engine``, with its ValidUpgradeTarget and parameter group family."""
    return paginate(rds, "describe_db_engine_versions", "DBEngineVersions", Engine=engine)


def query(conn, sql):
    """Rows of one query, or (None, the database's first line of error)."""
    import psycopg2

    try:
        with conn.cursor() as cursor:
            cursor.execute(sql)
            return (cursor.fetchall() if cursor.description else []), None
    except psycopg2.Error as exc:
        return None, (str(exc).strip().splitlines() or [repr(exc)])[0]


# ---------------------------------------------------------------------------------------------------------- the read


def login_params(params, source):
    """The login options, the user defaulting to the source's master user (the copy has the same)."""
    return dict(params, login_user=params["login_user"] or source.get("MasterUsername"))


def read_source(module, rds, runtime):
    """The source, the engine versions that decide the target, and what the checklist reads (upgrade_checklist's
    reader); refused before any change when the source does not exist, is not a PostgreSQL instance, or the target
    cannot be upgraded to."""
    params = module.params
    source_id = params["db_instance_identifier"]
    try:
        source = describe_instance(rds, source_id)
        if source is None:
            runtime.refuse([f"describing the source: no DB instance {source_id!r} exists in this region; check the "
                            "identifier and region"])
        problem = standalone_instance_problem(source_id, source)
        if problem:
            runtime.refuse([problem])
        if source.get("Engine") not in drill.ENGINES:
            runtime.refuse([f"{source_id} runs {source.get('Engine')}: the upgrade drill rehearses RDS PostgreSQL "
                            "(engine postgres) instances"])
        versions = every_engine_version(rds, source["Engine"])
    except aws_errors() as e:
        module.fail_json_aws(e, msg=f"Describing the source {source_id} and its engine versions: check the "
                                    "identifier, region and the describe permissions")
    problems = drill.target_problems(source["EngineVersion"], params["target_engine_version"], versions,
                                     params["allow_major_version_upgrade"], checks_only=params["checks_only"])
    if problems:
        runtime.refuse(problems)
    target = drill.resolve_target(params["target_engine_version"], [v["EngineVersion"] for v in versions])
    family = drill.target_family(versions, target)
    try:
        read = upgrade_checklist.read_aws(rds, source, target, params["target_parameter_group"],
                                          cloudwatch=aws_client(module, "cloudwatch"), now=runtime.clock.now())
    except aws_errors() as e:
        module.fail_json_aws(e, msg=f"Reading what the checklist of {source_id} needs (engine versions, parameter "
                                    "groups and defaults, snapshots, FreeStorageSpace): check the describe "
                                    "permissions in the notes; nothing was changed")
    group = drill.parameter_group_choice(params, read["target_parameter_group"], family)
    if group["action"] == "create":
        group.update(parameter_group_plan(source, read))
    elif group["action"] == "use" and drill.made_by_drill(read["target_parameter_group"]):
        # a group an earlier run made but left partly set is not used as is (here, then by blue/green and production)
        try:
            given = paginate(rds, "describe_db_parameters", "Parameters", DBParameterGroupName=group["name"],
                             Source="user")
        except aws_errors() as e:
            module.fail_json_aws(e, msg=f"Reading the values of the parameter group {group['name']}: check "
                                        "rds:DescribeDBParameters; nothing was changed")
        unfinished = drill.unfinished_group_problems(group["name"], read["target_parameter_group"],
                                                     parameter_group_plan(source, read)["values"], given)
        group["problems"] += unfinished
        for problem in unfinished if params["checks_only"] or module.check_mode else []:
            warn(module, problem)
    if group["problems"] and not (params["checks_only"] or module.check_mode):
        runtime.refuse(group["problems"])
    return {"id": source_id, "described": source, "versions": versions, "target_version": target,
            "family": family, "group": group, "read": read}


def parameter_group_plan(source, read):
    """The values of the group to create: rds_param_tune's rules (RDS formulas, so they fit any class) for the
    source's storage, with the source group's non-default values that the target family still has carried."""
    storage = source.get("StorageType") if source.get("StorageType") in param_tuning.STORAGE_TYPES else "gp3"
    try:
        tuned, _skipped = param_tuning.recommend(instance_classes.sizing_from_table(source["DBInstanceClass"]),
                                                 value_style="formula", storage_type=storage)
    except ValueError:
        tuned = []  # a class the table does not know: the group carries the source's values only
    plan = upgrade_checklist.target_parameter_group_plan(
        parameter_values(read.get("current_parameters")), parameter_values(read.get("current_defaults")),
        {p["ParameterName"]: p for p in read.get("target_defaults") or []}, tuned)
    return {"values": plan["values"], "report": plan}


def parameter_values(parameters):
    return {p["ParameterName"]: p.get("ParameterValue") for p in parameters or [] if p.get("ParameterValue")
            is not None}


def run_checklist(module, rds, runtime, source):
    """The checklist (upgrade_checklist) over what AWS and the source database say; read-only."""
    params = module.params
    runtime.enter("checklist", timed=True)
    described = source["described"]
    facts = {"aws": upgrade_checklist.aws_facts(source["read"], source["target_version"], runtime.clock.now(),
                                                params["target_parameter_group"]),
             "database": None}
    if params["login_password"] or params["iam_auth"]:
        login = login_params(params, described)
        endpoint = endpoint_of(described)

        def connect(dbname):
            return connector_for(module, dict(login, login_db=dbname), endpoint=endpoint, rds=rds).connect()

        try:
            facts["database"] = upgrade_checklist.database_facts(connect, drill.major_of(source["target_version"]),
                                                                 login_db=params["login_db"])
        except Exception as exc:  # pylint: disable=broad-except
            reason = permanent_error(exc) or short_message(exc)
            runtime.refuse([f"reading the source database {source['id']} for the checklist failed ({reason}): check "
                            "login_user, login_password or iam_auth, and login_db"])
    else:
        warn(module, "No login_password and no iam_auth: the checklist cannot look inside the database for what "
                     "pg_upgrade stops on (prepared transactions, reg* columns, logical slots, extensions)")
    checklist = upgrade_checklist.evaluate(facts, params)
    blocking = drill.blockers(checklist)
    runtime.log.finish("checklist", "ok" if not blocking else "failed",
                       message="blockers: " + ", ".join(c["name"] for c in blocking) if blocking else "no blocker")
    return checklist


# ---------------------------------------------------------------------------------------------------------- the run


class Rehearsal:
    """The mutating part: snapshot, restore, checks, upgrade with probes, checks again. The runtime turns whatever
    stops a step into a failure and always runs :meth:`cleanup` (only what this run created)."""

    def __init__(self, module, rds, runtime, source, plan):
        self.module = module
        self.params = module.params
        self.rds = rds
        self.once = once_client(module)
        self.runtime = runtime
        self.clock = runtime.clock
        self.log = runtime.log
        self.source = source
        self.plan = plan
        self.created = []
        self.checks = {"before": [], "after": []}
        self.timings = {"before": [], "after": []}
        self.tps = {"before": None, "after": None}
        self.transitions = {}
        self.upgrade = None
        self.group_result = None
        self.samples = []
        self.measured = {"from_version": plan["from_version"], "to_version": plan["to_version"], "upgraded": False,
                         "rehearsed": True}
        self.cleanup_result = {"mode": self.params["cleanup"], "removed": [], "left_behind": [], "kept": [],
                               "steps": []}

    # -- helpers
    def credentials(self):
        return bool(self.params["login_password"] or self.params["iam_auth"])

    def send(self, operation, request, kind, identifier, phase, what):
        """A create call sent exactly once; the resource is recorded before the call (a lost answer may have made
        it), and confirmed after."""
        self.created.append({"kind": kind, "identifier": identifier, "confirmed": False})
        try:
            outcome = call_once(self.once, operation, request, lambda: self.ours(kind, identifier))
        except CallNotConfirmed as exc:
            raise DrillAborted(phase, f"{what}: {exc}: check the RDS console for {identifier}", cause=exc.cause)
        except aws_errors() as exc:
            raise DrillAborted(phase, f"{what}: {exc}", cause=exc)
        self.created[-1]["confirmed"] = True
        return outcome

    def describe(self, kind, identifier, with_tags=False):
        return describe_resource(self.rds, kind, identifier, with_tags=with_tags)

    def ours(self, kind, identifier):
        found = self.describe(kind, identifier, with_tags=True)
        if found is not None and restore_drill.tags_of(found).get(restore_drill.DRILL_ID_TAG) == self.plan["drill_id"]:
            return f"{kind} {identifier} exists with {restore_drill.DRILL_ID_TAG}={self.plan['drill_id']}"
        return None

    def wait(self, phase, label, fetch, done, failed=None, state_of=status_of):
        try:
            outcome = wait_until(fetch, done, timeout=self.params["wait_timeout"],
                                 interval=self.params["poll_interval"], phase=phase, state_of=state_of,
                                 failed=failed, clock=self.clock)
        except (WaitTimeout, WaitFailed) as exc:
            self.transitions[label] = exc.transitions
            self.log.transitions(label, exc.transitions)
            raise
        self.transitions[label] = outcome.transitions
        self.log.transitions(label, outcome.transitions)
        return outcome.value

    def connector(self, described):
        return connector_for(self.module, login_params(self.params, self.source["described"]),
                             endpoint=endpoint_of(described), rds=self.rds)

    def connect(self, connector):
        """A first connection, retried within wait_timeout while the copy still refuses; not on bad credentials."""
        import psycopg2

        def attempt():
            try:
                return {"conn": connector.connect(), "error": None, "exc": None}
            except psycopg2.Error as exc:
                return {"conn": None, "error": short_message(exc), "exc": exc}

        try:
            outcome = wait_until(attempt, lambda r: r["conn"] is not None, timeout=self.params["wait_timeout"],
                                 interval=min(self.params["poll_interval"], 1.0),
                                 phase=f"connection to the copy {connector.target}",
                                 state_of=lambda r: "connected" if r["conn"] else "refused",
                                 permanent=lambda r: permanent_error(r["exc"]), clock=self.clock)
        except WaitFailed as exc:
            raise DrillAborted(self.runtime.phase, f"Connecting to the copy {connector.target}: "
                                                   f"{getattr(exc, 'reason', None) or exc}: check login_user, "
                                                   "login_password or iam_auth, and login_db")
        return outcome.value["conn"]

    # -- the steps
    def steps(self):
        if self.plan["parameter_group"]["action"] == "create":
            self.create_parameter_group()
        self.snapshot()
        described = self.restore()
        connector = self.connector(described) if self.credentials() else None
        if connector is not None:
            self.validate("before", connector, described)
        self.upgrade_copy(connector)
        if connector is not None and self.upgrade["upgraded"]:
            self.validate("after", connector, described)

    def create_parameter_group(self):
        group = self.plan["parameter_group"]
        self.runtime.enter("parameter group", f"create_db_parameter_group -> {group['name']}", timed=True)
        request = drill.parameter_group_request(group["name"], self.source["family"], self.params["tags"] or {},
                                                self.source["id"])
        try:
            call_once(self.once, "create_db_parameter_group", request,
                      lambda: describe_parameter_group(self.rds, group["name"]) and f"{group['name']} exists")
            for batch in drill.parameter_batches(group.get("values") or {}):
                self.rds.modify_db_parameter_group(DBParameterGroupName=group["name"], Parameters=batch,
                                                   aws_retry=True)
        except (CallNotConfirmed,) + aws_errors() as exc:
            raise DrillAborted("parameter group", f"Creating the parameter group {group['name']}: {exc}: check "
                                                  "rds:CreateDBParameterGroup and rds:ModifyDBParameterGroup; a "
                                                  "group left partly set is refused by the next run until deleted",
                               cause=getattr(exc, "cause", exc))
        self.group_result = dict(group.get("report") or {}, name=group["name"], created=True)
        self.log.finish("parameter group")

    def snapshot(self):
        plan = self.plan
        self.runtime.enter("snapshot", f"create_db_snapshot -> {plan['snapshot']}", timed=True)
        started = self.clock.elapsed()
        self.send("create_db_snapshot", plan["snapshot_request"], drill.SNAPSHOT, plan["snapshot"], "snapshot",
                  f"Creating the manual snapshot {plan['snapshot']} of {self.source['id']}")
        self.wait("snapshot available", f"snapshot {plan['snapshot']}",
                  lambda: describe_snapshot(self.rds, INSTANCE, plan["snapshot"]),
                  lambda s: (s or {}).get("Status") == "available",
                  failed=lambda s: s is None or s.get("Status") in SNAPSHOT_BROKEN,
                  state_of=lambda s: (s or {}).get("Status") or "gone")
        self.measured["snapshot_seconds"] = round(self.clock.elapsed() - started, 3)
        self.log.finish("snapshot")

    def restore(self):
        plan = self.plan
        self.runtime.enter("restore", f"{plan['restore_operation']} -> {plan['target']}", timed=True)
        started = self.clock.elapsed()
        self.send(plan["restore_operation"], plan["restore_request"], INSTANCE, plan["target"], "restore",
                  f"Restoring the snapshot {plan['snapshot']} to {plan['target']}")
        described = self.wait("copy available", f"instance {plan['target']}",
                              lambda: describe_instance(self.rds, plan["target"]),
                              lambda d: status_of(d) == "available", failed=lambda d: status_of(d) in BROKEN_STATES)
        self.measured["restore_seconds"] = round(self.clock.elapsed() - started, 3)
        self.log.finish("restore")
        return described

    def run_sql(self, side, connector):
        conn = self.connect(connector)
        try:
            rows, error = query(conn, "SELECT current_setting('server_version')")
            self.measured[f"server_version_{side}"] = None if error else str(rows[0][0]).split()[0]
            for check in self.params["checks"]:
                rows, error = query(conn, check["sql"])
                outcome = restore_drill.evaluate_check(check, rows, error)
                self.checks[side].append(outcome)
                self.log.event(f"check {side} {check['name']}: {'passed' if outcome['passed'] else outcome['message']}",
                               phase=f"checks {side}")
            if self.params["benchmark_sql"]:
                self.benchmark(side, conn)
        finally:
            conn.close()

    def benchmark(self, side, conn):
        sql = self.params["benchmark_sql"]
        _rows, error = query(conn, sql)  # untimed: caches warm, the plan made
        if error:
            raise DrillAborted(f"checks {side}", f"benchmark_sql failed on the copy ({side} the upgrade): {error}: "
                                                 "fix the query")
        for _run in range(self.params["benchmark_runs"]):
            started = time.monotonic()
            _rows, error = query(conn, sql)
            if error:
                raise DrillAborted(f"checks {side}", f"benchmark_sql failed on the copy ({side} the upgrade): "
                                                     f"{error}")
            self.timings[side].append(time.monotonic() - started)
        self.log.event(f"benchmark {side}: median {statistics.median(self.timings[side]):.6f} s over "
                       f"{len(self.timings[side])} runs", phase=f"checks {side}")

    def pgbench(self, side, described):
        """pgbench select-only on the copy; its tables are made for the run and dropped after it."""
        program = shutil.which("pgbench")
        if program is None:
            if side == "before":
                warn(self.module, "pgbench_seconds is set but pgbench is not on the PATH of the managed node: "
                                  "no pgbench figures")
            return
        kwargs = connection_params(login_params(self.params, self.source["described"]), endpoint_of(described))
        env = dict(os.environ, PGHOST=str(kwargs["host"]), PGPORT=str(kwargs["port"]), PGUSER=str(kwargs["user"]),
                   PGDATABASE=kwargs["dbname"], PGSSLMODE=kwargs["sslmode"], PGPASSWORD=kwargs.get("password", ""),
                   PGCONNECT_TIMEOUT=str(kwargs["connect_timeout"]), PGAPPNAME="dbre.rds pgbench")
        if kwargs.get("sslrootcert"):
            env["PGSSLROOTCERT"] = kwargs["sslrootcert"]
        seconds = self.params["pgbench_seconds"]
        steps = ([program, "-i", "-s", "1", "-q"], [program, "-S", "-n", "-c", "2", "-T", str(seconds)],
                 [program, "-i", "-I", "d"])
        outputs = []
        for command in steps:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 300,
                                  check=False)
            if done.returncode != 0:
                raise DrillAborted(f"checks {side}", f"pgbench failed on the copy ({side} the upgrade): "
                                                     f"{(done.stderr.strip().splitlines() or ['no output'])[-1]}")
            outputs.append(done.stdout)
        self.tps[side] = drill.pgbench_tps(outputs[1])
        self.log.event(f"pgbench {side}: {self.tps[side]} tps over {seconds} s", phase=f"checks {side}")

    def validate(self, side, connector, described):
        self.runtime.enter(f"checks {side}", timed=True)
        self.run_sql(side, connector)
        if self.params["pgbench_seconds"]:
            self.pgbench(side, described)
        failed = [c for c in self.checks[side] if not c["passed"]]
        self.log.finish(f"checks {side}", "ok" if not failed else "failed")

    def upgrade_started(self):
        """What shows that the upgrade request took effect: the copy upgrading, or the new version pending or in."""
        found = describe_instance(self.rds, self.plan["target"])
        pending = ((found or {}).get("PendingModifiedValues") or {}).get("EngineVersion")
        if status_of(found) == "upgrading" or pending or (found or {}).get("EngineVersion") == self.plan["to_version"]:
            return f"{self.plan['target']} is {status_of(found)} (engine {pending or found.get('EngineVersion')})"
        return None

    def upgrade_copy(self, connector):
        plan, target = self.plan, self.plan["target"]
        probes = None
        if connector is not None:
            probes = ProbeLoop(connector, mode="read", interval=self.params["probe_interval"],
                               timeout=self.params["probe_timeout"], clock=self.clock)
            probes.start()
        try:
            self.runtime.enter("upgrade", f"modify_db_instance -> {target} EngineVersion {plan['to_version']}",
                               timed=True)
            requested = self.clock.elapsed()
            since = self.clock.now() - datetime.timedelta(seconds=5)
            self.measured["upgrade_requested_at"] = utc_iso(self.clock.at(requested))
            try:
                sent = call_once(self.once, "modify_db_instance", plan["upgrade_request"], self.upgrade_started)
            except CallNotConfirmed as exc:
                raise DrillAborted("upgrade", f"Upgrading the copy {target}: {exc}: check the RDS console",
                                   cause=exc.cause)
            except aws_errors() as exc:
                raise DrillAborted("upgrade", f"RDS refused to upgrade the copy {target} to {plan['to_version']}: "
                                              f"{exc}", cause=exc)
            # RDS may fail a precheck before the first describe shows "upgrading": the answer's pending version
            # (or a confirmation from the describe) counts as the change the wait looks for.
            answered = ((sent.get("response") or {}).get("DBInstance")) or {}
            seen = {"change": sent["confirmed_by"] != "answer" or status_of(answered) not in ("available", "gone")
                    or bool((answered.get("PendingModifiedValues") or {}).get("EngineVersion"))}

            def fetch():
                found = describe_instance(self.rds, target)
                pending = ((found or {}).get("PendingModifiedValues") or {}).get("EngineVersion")
                if status_of(found) != "available" or pending or \
                        (found or {}).get("EngineVersion") != plan["from_version"]:
                    seen["change"] = True
                return found

            described = self.wait("upgrade settled", f"instance {target} upgrade", fetch,
                                  lambda d: drill.upgrade_settled(d, plan["to_version"], seen["change"]),
                                  failed=lambda d: status_of(d) in BROKEN_STATES)
            settled = self.clock.elapsed()
            self.measured["upgrade_seconds"] = round(settled - requested, 3)
            self.measured["upgrade_settled_at"] = utc_iso(self.clock.at(settled))
            if probes is not None:
                wait_until(probes.samples, lambda s: any(x["ok"] and x["sent"] >= settled for x in s),
                           timeout=max(PROBE_SETTLE_SECONDS, self.params["wait_timeout"] / 10),
                           interval=self.params["probe_interval"], phase="copy answering after the upgrade",
                           clock=self.clock)
            try:
                events = events_since(self.rds, "db-instance", target, since)
            except aws_errors():
                events = []
            self.upgrade = drill.upgrade_outcome(described, plan["from_version"], plan["to_version"], events)
            self.upgrade["events"] = [dict(e, at=utc_iso(e["at"]) if e["at"] else None)
                                      for e in drill.upgrade_events(events)]
            self.measured["upgraded"] = self.upgrade["upgraded"]
            self.measured["engine_version_after"] = self.upgrade["engine_version"]
            groups = [g.get("DBParameterGroupName") for g in (described or {}).get("DBParameterGroups") or []]
            self.measured["parameter_group_after"] = groups[0] if groups else None
            self.log.finish("upgrade", "ok" if self.upgrade["upgraded"] else "failed",
                            message=None if self.upgrade["upgraded"] else self.upgrade["failure"])
        finally:
            if probes is not None:
                probes.stop()
                self.samples = probes.samples()
                downtime = failover_drill.measure_downtime(self.samples)
                self.measured["downtime_seconds"] = downtime["observed_downtime_seconds"]
                self.measured["probes"] = failover_drill.probe_counts(self.samples)

    # -- cleanup
    def delete(self, kind, identifier):
        delete_once(self.once, self.rds, kind, identifier, timeout=self.params["cleanup_timeout"],
                    interval=self.params["poll_interval"], clock=self.clock)

    def remove(self, step):
        kind, identifier = step["kind"], step["identifier"]
        if step["action"] in ("gone", "not_ours"):
            return
        if step["action"] == "refuse":
            self.cleanup_result["left_behind"].append(identifier)
            self.log.event(f"left {kind} {identifier}: {step['reason']}", phase="cleanup")
            return
        try:
            if step["action"] == "delete":
                self.delete(kind, identifier)
                self.log.event(f"delete requested: {kind} {identifier}", phase="cleanup")
            outcome = wait_until(lambda: self.describe(kind, identifier), lambda d: d is None,
                                 timeout=self.params["cleanup_timeout"], interval=self.params["poll_interval"],
                                 phase=f"{kind} {identifier} deleted",
                                 state_of=lambda d: "gone" if d is None else (d.get("Status") or status_of(d)),
                                 clock=self.clock)
            self.log.transitions(f"{kind} {identifier}", outcome.transitions)
        except aws_errors() + (CallNotConfirmed, WaitTimeout) as exc:
            step["reason"] = f"{kind} {identifier} could not be deleted: {exc}"
            self.cleanup_result["left_behind"].append(identifier)
            self.log.event(step["reason"], phase="cleanup")
            return
        self.cleanup_result["removed"].append(identifier)
        self.log.event(f"removed {kind} {identifier}", phase="cleanup")

    def cleanup(self, failure):
        self.log.close_open("failed" if failure else "ok")
        if not self.created:
            return
        mode = self.params["cleanup"]
        passed = failure is None and all(row["held"] for row in self.objectives([], None))
        if mode == "never" or (mode == "on_success" and not passed):
            self.cleanup_result["kept"] = [c["identifier"] for c in self.created]
            self.log.event("kept for investigation: " + ", ".join(self.cleanup_result["kept"]), phase="cleanup")
            return
        self.runtime.enter("cleanup", timed=True)
        instances = [c for c in self.created if c["kind"] == INSTANCE]
        snapshots = [c for c in self.created if c["kind"] == drill.SNAPSHOT]
        try:
            described = {(c["kind"], c["identifier"]): self.describe(c["kind"], c["identifier"], with_tags=True)
                         for c in instances}
            steps = restore_drill.cleanup_plan(instances, described, self.plan["drill_id"], {self.source["id"]})
            for step in steps:
                self.cleanup_result["steps"].append(step)
                self.remove(step)
            for item in snapshots:
                step = drill.snapshot_cleanup_step(item["identifier"],
                                                   self.describe(drill.SNAPSHOT, item["identifier"], True),
                                                   self.plan["drill_id"], item["confirmed"])
                self.cleanup_result["steps"].append(step)
                self.remove(step)
        except aws_errors() as exc:
            done = set(self.cleanup_result["removed"])
            self.cleanup_result["left_behind"] = [c["identifier"] for c in self.created
                                                  if c["identifier"] not in done]
            self.cleanup_result["error"] = str(exc)
        self.log.finish("cleanup", "ok" if not self.cleanup_result["left_behind"] else "failed")

    # -- verdict
    def benchmark_summary(self):
        if not self.params["benchmark_sql"]:
            return None
        return drill.benchmark_summary(self.timings["before"], self.timings["after"],
                                       self.params["max_slowdown_percent"])

    def pgbench_summary(self):
        if not self.params["pgbench_seconds"]:
            return None
        return drill.pgbench_summary(self.tps["before"], self.tps["after"], self.params["max_slowdown_percent"],
                                     self.params["pgbench_seconds"])

    def objectives(self, checklist, cleanup):
        return drill.objectives(checklist, self.measured, self.checks["before"], self.checks["after"],
                                self.benchmark_summary(), self.params["max_downtime_seconds"],
                                self.params["max_upgrade_seconds"], cleanup, pgbench=self.pgbench_summary())


# ---------------------------------------------------------------------------------------------------------- main


def judge(module, runtime, source, plan, checklist, run, failure):
    """Verdict, go-ahead, report and the task's result; (result, report, failure, breach) for runtime.exit."""
    table = run.objectives(checklist, run.cleanup_result)
    upgrade_failure = (run.upgrade or {}).get("failure")
    decision = drill.go_ahead(checklist, table, failure.message if failure else upgrade_failure)
    verdict = restore_drill.first_failure(table, failure.message if failure else upgrade_failure)
    go_ahead = decision["go_ahead"] and verdict is None
    runtime.log.event("drill passed" if verdict is None else f"drill failed: {verdict}", phase="verdict")
    run.measured["duration_seconds"] = round(runtime.clock.elapsed(), 3)
    details = {"checklist": checklist, "plan": plan_summary(plan), "checks": run.checks,
               "benchmark": run.benchmark_summary(), "pgbench": run.pgbench_summary(), "upgrade": run.upgrade,
               "parameter_group": run.group_result, "cleanup": run.cleanup_result, "phases": runtime.log.phases,
               "transitions": run.transitions, "fix_first": decision["fix_first"], "go_ahead": go_ahead}
    report = runtime.report(passed=verdict is None, objectives=table, measurements=run.measured, details=details,
                            failure=verdict)
    result = dict(changed=bool(run.created), passed=verdict is None, verdict="passed" if verdict is None else "failed",
                  failure=verdict, go_ahead=go_ahead, fix_first=decision["fix_first"], advice=decision["advice"],
                  checklist=checklist, blockers=[c["name"] for c in drill.blockers(checklist)],
                  drill_id=plan["drill_id"], source=source_summary(source), plan=plan_summary(plan),
                  checks=run.checks, upgrade=run.upgrade, measurements=run.measured, objectives=table,
                  phases=runtime.log.phases, transitions=run.transitions, cleanup=run.cleanup_result)
    for key in ("benchmark", "pgbench", "parameter_group"):
        if details[key] is not None:
            result[key] = details[key]
    summary = restore_drill.cleanup_summary(run.cleanup_result)
    breach = None
    if run.cleanup_result["left_behind"]:
        failure = DrillFailure(f"Upgrade drill of {source['id']} left behind: "
                               f"{', '.join(run.cleanup_result['left_behind'])}: delete them by hand (see "
                               "cleanup.steps for why)", "cleanup", interrupted=bool(failure and failure.interrupted))
    elif failure is not None:
        failure.message = f"{failure.message} ({summary})"
    elif verdict is not None:
        breach = f"Upgrade drill of {source['id']} to {plan['to_version']} failed: {verdict} ({summary})"
    return result, report, failure, breach


def argument_spec():
    spec = dict(
        db_instance_identifier=dict(type="str", required=True),
        target_engine_version=dict(type="str", required=True),
        allow_major_version_upgrade=dict(type="bool", default=False),
        target_parameter_group=dict(type="str"),
        create_parameter_group=dict(type="bool", default=False),
        checks_only=dict(type="bool", default=False),
        checks=restore_drill.checks_argument_spec(),
        benchmark_sql=dict(type="str"),
        benchmark_runs=dict(type="int", default=5),
        pgbench_seconds=dict(type="int"),
        max_slowdown_percent=dict(type="float"),
        max_downtime_seconds=dict(type="float"),
        max_upgrade_seconds=dict(type="float"),
        probe_interval=dict(type="float", default=0.5),
        probe_timeout=dict(type="int", default=2),
        target_identifier=dict(type="str"),
        snapshot_identifier=dict(type="str"),
        db_instance_class=dict(type="str"),
        ttl_hours=dict(type="int", default=24),
        tags=dict(type="dict"),
        cleanup=dict(type="str", default="always", choices=list(restore_drill.CLEANUP_MODES)),
        cleanup_timeout=dict(type="int", default=1800),
        fail_on_breach=dict(type="bool", default=True),
        progress_log=dict(type="path"),
    )
    spec.update(upgrade_checklist.checklist_argument_spec())
    spec.update(wait_argument_spec())
    spec.update(db_connection_argument_spec())
    spec.update(report_argument_spec())
    return spec


def checklist_exit(module, runtime, source, plan, checklist):
    """checks_only or check mode: the checklist, the plan, the report; fail on a blocker when fail_on_breach."""
    table = drill.objectives(checklist, {}, [], [], rehearsed=False)
    decision = drill.go_ahead(checklist, table)
    # A missing or wrong-family target_parameter_group is the checklist's target_parameter_group blocker here.
    passed = not drill.blockers(checklist)
    verdict = None if passed else "; ".join(decision["fix_first"])
    report = runtime.report(passed=passed, objectives=table, measurements={"rehearsed": False}, failure=verdict,
                            details={"checklist": checklist, "plan": plan_summary(plan),
                                     "target_version": source["target_version"], "phases": runtime.log.phases})
    result = dict(changed=False, passed=passed, verdict="planned" if module.check_mode else
                  ("passed" if passed else "failed"), failure=verdict, go_ahead=passed,
                  fix_first=decision["fix_first"], advice=decision["advice"], checklist=checklist,
                  blockers=[c["name"] for c in drill.blockers(checklist)], drill_id=plan["drill_id"],
                  source=source_summary(source), plan=plan_summary(plan), would_create=plan["creates"],
                  objectives=table, phases=runtime.log.phases)
    breach = None if passed else f"Upgrade checklist of {source['id']} for {source['target_version']}: {verdict}"
    if module.check_mode:
        # check mode writes nothing, no report file either (as the other drills); the report is in the result
        result["report"] = report
        if breach and module.params["fail_on_breach"]:
            module.fail_json(msg=breach, **result)
        module.exit_json(**result)
    runtime.exit(result, report, None, breach)


def refuse_taken_names(module, rds, runtime, plan):
    """The snapshot and the copy the rehearsal creates must not exist yet: refused before CreateDBSnapshot."""
    try:
        problems = drill.name_taken_problems(
            plan, describe_snapshot(rds, INSTANCE, plan["snapshot"]) is not None,
            describe_instance(rds, plan["target"]) is not None)
    except aws_errors() as e:
        module.fail_json_aws(e, msg=f"Describing the snapshot {plan['snapshot']} and the instance {plan['target']} "
                                    "the rehearsal would create: check the describe permissions; nothing was changed")
    if problems:
        runtime.refuse(problems)


def source_summary(source):
    groups = [g["DBParameterGroupName"] for g in source["described"].get("DBParameterGroups") or []]
    return {"identifier": source["id"], "engine_version": source["described"]["EngineVersion"],
            "parameter_group": groups[0] if groups else None}


def plan_summary(plan):
    return {k: v for k, v in plan.items() if k not in ("tags", "snapshot_request", "restore_request")} | {
        "restore_request": restore_drill.request_summary(plan["restore_operation"], plan["restore_request"])}


def main():
    module = AnsibleAWSModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    problems = drill.option_problems(params) + upgrade_checklist.option_problems(params)
    if problems:
        module.fail_json(msg="Invalid upgrade drill options: " + "; ".join(problems), problems=problems,
                         changed=False)
    rds = rds_client(module)
    source_id = params["db_instance_identifier"]
    quiet = module.check_mode or params["checks_only"]
    # a checklist-only run has its own report kind: rds_drill_history_info never counts it as an upgrade drill
    runtime = DrillRuntime(module, "upgrade_checklist" if quiet else "upgrade_drill", source_id,
                           f"Upgrade {'checklist' if quiet else 'drill'} of {source_id}",
                           progress_log=None if quiet else params["progress_log"])
    source = read_source(module, rds, runtime)
    checklist = run_checklist(module, rds, runtime, source)
    started = runtime.clock.started_at
    drill_id = f"{started.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"
    plan = drill.plan_rehearsal(params, source["described"], source["target_version"], source["group"], started,
                                drill_id, owner=owner_marker())
    if quiet:
        checklist_exit(module, runtime, source, plan, checklist)
    if not (params["login_password"] or params["iam_auth"]):
        warn(module, "No login_password and no iam_auth: the rehearsal measures the upgrade but runs no SQL check, "
                     "no benchmark and no connection probe on the copy")
    refuse_taken_names(module, rds, runtime, plan)
    runtime.log.event("plan: " + ", ".join(f"{s['call']} {s['resource']}" for s in plan["steps"]), phase="plan")
    run = Rehearsal(module, rds, runtime, source, plan)
    failure = runtime.act(run.steps, run.cleanup)
    runtime.exit(*judge(module, runtime, source, plan, checklist, run, failure))


if __name__ == "__main__":
    main()
