#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rds_encrypt_instance
short_description: Encrypt an unencrypted RDS for PostgreSQL instance, keeping its identifier and endpoint
version_added: "0.2.0"
description:
  - Turns an unencrypted DB instance into an encrypted one in one task, with a measured cutover. RDS cannot encrypt
    an instance in place, so the module stops writes, takes a final snapshot, copies it encrypted with O(kms_key_id),
    restores the copy with the source's settings under a temporary identifier, validates the copy against the source
    (O(checks), O(compare_row_counts)), then swaps identifiers with two renames (the source becomes
    C(<identifier>-old-<UTC timestamp>), the copy takes C(<identifier>)), so the endpoint name applications use stays
    the same. The old instance is stopped and tagged with its expiry (O(keep_old_hours)); the module never deletes
    it.
  - Writes stop before the final snapshot, so nothing acknowledged after the snapshot is lost. By default the module
    sets C(default_transaction_read_only) on every database of the instance (C(ALTER DATABASE ... SET)) and ends
    the open sessions, so clients reconnect read-only; it resets the setting on the encrypted instance before the
    swap, and on the source when the cutover is abandoned. O(pre_cutover_sql) and O(post_cutover_sql) replace that
    with the user's own write stop and restart.
  - Any failure before the swap (a failed check, a timeout, an AWS error, an interruption) leaves the source as it
    was, writable again, and deletes what the cutover created (the temporary instance and both snapshots, checked by
    the C(dbre:encrypt-id) tag). After the swap the source is never touched again.
  - While the cutover runs, write probes (those of M(dbre.rds.rds_failover_test)) insert a numbered row into
    O(probe_table) every O(probe_interval) seconds through the endpoint, measure the write downtime clients see and
    count acknowledged writes missing afterwards (0 is the objective).
  - This module is imperative, like a drill. An instance that is encrypted already is left alone
    (RV(ignore:changed=false)); every other real run creates resources and reports RV(ignore:changed=true).
  - With O(cutover=logical) writes go on while the copy is made. The module publishes every table of O(login_db) on
    the source (C(CREATE PUBLICATION ... FOR ALL TABLES)), takes the snapshot, copies and restores it, then reloads
    the copy's tables through a subscription (C(copy_data), PostgreSQL's own consistent initial copy; the snapshot's
    rows of those tables are truncated first) that streams every later change. Writes stop (the same write stop)
    only for the end; the module waits until the copy has confirmed all the source's WAL (the slot's
    C(confirmed_flush_lsn) reaches C(pg_current_wal_lsn()) read after the stop), sets the copy's sequences to the
    source's values, drops the subscription, the replication slots and the publication, validates and swaps.
  - O(cutover=logical) requires C(rds.logical_replication=1) in effect on the source (its wal_level is
    C(logical)); the module checks and refuses with the fix (set it in the source's parameter group and reboot),
    and never changes a parameter group. It also refuses tables without a primary key or replica identity (a
    publication would make their UPDATE and DELETE fail), tables the login cannot TRUNCATE, write and grant
    C(SELECT) on (with C(USAGE) on their schema), a login that cannot create roles and grant C(rds_replication),
    and other databases holding tables (one subscription carries O(login_db) only). DDL during the cutover is not
    replicated.
  - With O(cutover=logical) the subscription never carries the login's password. The module creates a login role
    for the run only on the source, C(dbre_encrypt_<run id>), with a random password sent as a SCRAM-SHA-256
    verifier, grants it C(rds_replication), C(USAGE) on the published tables' schemas and C(SELECT) on those tables,
    marks it with C(COMMENT ON ROLE), and drops it with the replication objects (after a failure too), only while it
    still carries this run's marker. Its random password is in the C(CREATE SUBSCRIPTION) text the copy logs and in
    the copy's C(pg_subscription) until the subscription is dropped; it is useless once the role is gone.
author:
  - dbre.rds maintainers (@dbre-rds)
options:
  db_instance_identifier:
    description:
      - The instance to encrypt, a standalone RDS for PostgreSQL instance, C(available), without read replicas.
      - At most 44 characters, so that C(<identifier>-old-<timestamp>) fits the 63 RDS allows.
    type: str
    required: true
  kms_key_id:
    description:
      - The KMS key (id, ARN, alias name or alias ARN) of the instance's region that encrypts the copy. It must exist
        and be enabled; the module checks with C(kms:DescribeKey) before any change.
    type: str
    required: true
  cutover:
    description:
      - V(snapshot) stops writes for the whole copy (snapshot, encrypted copy, restore, validation, swap).
      - V(logical) keeps writes going while the copy is made and loaded, and stops them only for the logical
        replication's catch-up, the sequences, validation and the swap.
    type: str
    default: snapshot
    choices: [snapshot, logical]
  pre_cutover_sql:
    description:
      - Statements run on the source (O(login_db)) to stop writes, instead of the default
        C(default_transaction_read_only) switch. Requires O(post_cutover_sql).
    type: list
    elements: str
  post_cutover_sql:
    description:
      - Statements that undo O(pre_cutover_sql). They run on the encrypted instance before the swap (the copy carries
        the write stop) and on the source when the cutover is abandoned.
    type: list
    elements: str
  checks:
    description:
      - SQL checks run on the source (writes stopped) and on the encrypted copy before the swap. A check passes when
        both sides return the same rows; one failing check stops the cutover before anything is swapped.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - Name of the check, unique; the report names failed checks by it.
        type: str
        required: true
      sql:
        description:
          - The query, run in O(login_db).
        type: str
        required: true
  compare_row_counts:
    description:
      - Tables (C(table) or C(schema.table)) whose row counts must be equal on both sides; each becomes a check named
        C(rows in <table>).
    type: list
    elements: str
    default: []
  keep_old_hours:
    description:
      - Hours the old, unencrypted instance is kept (stopped, renamed C(<identifier>-old-<timestamp>)) after the
        cutover. The module tags it with C(dbre:encrypt-old-expires) (that time) and C(dbre:encrypt-replaced-by); it
        never deletes it. Delete it (and turn its deletion protection off first, if set) once the tag's time has
        passed. Between 0 and 8760.
      - RDS starts a stopped instance again after 7 days, so with more than 168 hours the old instance runs (and is
        billed) again unless you take a snapshot of it and delete it before.
    type: int
    default: 168
  probe:
    description:
      - Whether to run write probes through the endpoint during the cutover. Defaults to true.
    type: bool
    default: true
  probe_interval:
    description:
      - Seconds between two write probes; the resolution of the measured downtime.
    type: float
    default: 0.25
  probe_timeout:
    description:
      - Seconds a probe waits to connect (libpq's minimum is 2) and for its statement.
    type: int
    default: 2
  probe_settle_seconds:
    description:
      - After the swap, how many seconds probes must succeed without a failure before the cutover counts as done.
    type: float
    default: 2.0
  probe_table:
    description:
      - Table the write probes insert into, in the default schema of O(login_db); created by the module, marked as
        its own, and dropped from the encrypted instance afterwards (the stopped old instance keeps its copy).
    type: str
    default: dbre_rds_encrypt_probe
  max_downtime_seconds:
    description:
      - Objective for the write downtime the probes see. Without it the downtime is measured, not judged.
    type: float
  max_lost_writes:
    description:
      - Objective for acknowledged writes missing afterwards.
    type: int
    default: 0
  fail_on_breach:
    description:
      - Fail the task when an objective is missed (the cutover itself has happened then). The result and the report
        are attached either way.
    type: bool
    default: true
  progress_log:
    description:
      - Path of a file to which the module appends one line per phase, for C(tail -f).
    type: path
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
  - dbre.rds.wait
  - dbre.rds.db_connection
  - dbre.rds.report
attributes:
  check_mode:
    description: Runs every pre-check (instance, key, names, database privileges, checks on the source) and returns
      the plan with the settings to carry over; nothing is changed.
    support: full
  diff_mode:
    description: Not supported; the plan lists what would change.
    support: none
notes:
  - O(login_user) defaults to the instance's master user name; O(login_password) or O(iam_auth=true) is required.
    O(login_host) and O(login_port) apply to the source only; the copy is reached at its own endpoint.
  - O(wait_timeout) bounds the whole cutover; cleanup after a failure gets its own 30 minutes at most.
  - The probe table travels with the data into the copy; clients' tables are untouched.
  - The default write stop (C(default_transaction_read_only)) is advisory, not a lock. A client that turns it off
    (C(SET default_transaction_read_only = off), C(BEGIN READ WRITE)) or a superuser session can still write, and
    such writes are lost with the old instance. To lock the application out, give O(pre_cutover_sql) (for example
    C(ALTER ROLE app NOLOGIN) and ending its sessions) and O(post_cutover_sql).
  - O(checks) run in a read-only session (in check mode too); a check that writes fails and changes nothing.
  - Not carried over to the encrypted instance (the plan lists them in C(not_carried)) - the RDS-managed master user
    secret (it stays with the old instance), associated IAM roles, the CA certificate, the Performance Insights KMS
    key, the network type and the Kerberos domain. Set them on the new instance after the cutover.
  - "IAM actions: C(rds:DescribeDBInstances), C(rds:DescribeDBSnapshots), C(rds:ListTagsForResource),
    C(rds:CreateDBSnapshot), C(rds:CopyDBSnapshot), C(rds:RestoreDBInstanceFromDBSnapshot), C(rds:ModifyDBInstance),
    C(rds:StopDBInstance), C(rds:AddTagsToResource), C(rds:DeleteDBInstance), C(rds:DeleteDBSnapshot),
    C(kms:DescribeKey), C(kms:CreateGrant) (RDS's use of the key), and C(rds-db:connect) with O(iam_auth=true)."
  - O(cutover=logical) needs the copy to reach the source's endpoint (the security groups must let the instance's
    own subnet in) and one free replication slot and WAL sender on the source (two more during the initial copy).
seealso:
  - module: amazon.aws.rds_instance
  - module: amazon.aws.rds_instance_snapshot
  - module: dbre.rds.rds_restore_drill
  - module: dbre.rds.rds_failover_test
  - name: Encrypting an unencrypted DB instance (AWS)
    description: The manual procedure this module runs and measures.
    link: https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/Overview.Encryption.html
"""

EXAMPLES = r"""
- name: See what encrypting orders-prod would do (no change)
  dbre.rds.rds_encrypt_instance:
    db_instance_identifier: orders-prod
    kms_key_id: alias/rds-orders
    login_password: "{{ orders_master_password }}"
    login_db: orders
  check_mode: true

- name: Encrypt orders-prod, validate, keep the old instance a week
  dbre.rds.rds_encrypt_instance:
    db_instance_identifier: orders-prod
    kms_key_id: alias/rds-orders
    login_password: "{{ orders_master_password }}"
    login_db: orders
    compare_row_counts: [orders, public.customers]
    checks:
      - name: newest order
        sql: SELECT max(id) FROM orders
    max_downtime_seconds: 1800
    keep_old_hours: 168
    report_dir: /var/lib/dbre/reports
  register: orders_encryption

- name: Show the write downtime clients saw
  ansible.builtin.debug:
    msg: >-
      {{ orders_encryption.measurements.write_downtime_seconds }} s of write downtime,
      {{ orders_encryption.measurements.lost_writes }} writes lost

- name: Encrypt orders-prod with a short write stop (rds.logical_replication=1 in its parameter group)
  dbre.rds.rds_encrypt_instance:
    db_instance_identifier: orders-prod
    kms_key_id: alias/rds-orders
    cutover: logical
    login_password: "{{ orders_master_password }}"
    login_db: orders
    compare_row_counts: [orders, public.customers]
    max_downtime_seconds: 60

- name: Encrypt with the application's own write stop
  dbre.rds.rds_encrypt_instance:
    db_instance_identifier: billing
    kms_key_id: arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab
    login_password: "{{ billing_master_password }}"
    login_db: billing
    pre_cutover_sql:
      - ALTER ROLE billing_app NOLOGIN
      - SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'billing_app'
    post_cutover_sql:
      - ALTER ROLE billing_app LOGIN
"""

RETURN = r"""
encrypted:
  description: Whether the instance under O(db_instance_identifier) is encrypted at the end.
  returned: always
  type: bool
  sample: true
passed:
  description: The verdict; null in check mode and when there was nothing to do.
  returned: always
  type: bool
  sample: true
plan:
  description: What the cutover does (or would do, in check mode). The names it creates, the key, the write stop, the
    checks, the settings carried over (boto3 names in snake case; C(tags) as a dict) and, in C(not_carried), the
    settings that are not carried over.
  returned: when the instance was not encrypted yet
  type: dict
  sample: {"cutover": "snapshot", "replication": null,
           "names": {"temporary": "orders-prod-enc-5f3a9c", "old": "orders-prod-old-20261129010000"},
           "kms_key_arn": "arn:aws:kms:us-east-1:111122223333:key/...", "write_stop": {"databases": ["orders"]}}
kms_key_id:
  description: The key that encrypts the instance (its ARN) at the end.
  returned: always
  type: str
checks:
  description: Each check with what both sides returned and whether they matched.
  returned: when the cutover ran
  type: list
  elements: dict
  sample: [{"name": "rows in orders", "sql": "SELECT count(*) FROM \"orders\"", "source": [[120]],
            "encrypted": [[120]], "passed": true, "message": null}]
measurements:
  description: What the cutover measured.
  returned: when the cutover ran
  type: dict
  contains:
    encrypted:
      description: The instance under the original identifier is encrypted with the key.
      type: bool
    endpoint_unchanged:
      description: The endpoint (address and port) of the original identifier is the same as before.
      type: bool
    write_downtime_seconds:
      description: From the first write probe that failed after the write stop to the first one that succeeded after
        the last failure; null without probes or when writes never came back.
      type: float
    acknowledged_writes:
      description: Write probes the server acknowledged.
      type: int
    rows_found:
      description: Probe rows found on the encrypted instance at the end.
      type: int
    lost_writes:
      description: Acknowledged writes missing on the encrypted instance.
      type: int
    writes_stopped_seconds:
      description: From the write stop to the end of the swap (writes came back on the encrypted instance).
      type: float
    total_seconds:
      description: The whole run.
      type: float
    phases:
      description: Each timed phase with its start, end, seconds and outcome.
      type: list
      elements: dict
    settings_differences:
      description: Carried settings that differ between the source and the encrypted instance (empty when all match).
      type: dict
    kms_key_id:
      description: The key of the instance under O(db_instance_identifier) after the swap; null when nothing was
        swapped.
      type: str
    probing:
      description: Whether write probes ran.
      type: bool
    lost_write_numbers:
      description: The numbers of the first 50 acknowledged writes that are missing.
      type: list
      elements: int
    probes_sent:
      description: Write probes sent.
      type: int
    probes_failed:
      description: Write probes that failed (refused by the write stop, or while the endpoint moved).
      type: int
    probe_table_removed:
      description: Whether the probe table was dropped from the instance the endpoint reaches at the end; null
        without probes.
      type: bool
objectives:
  description: The verdict, one entry per objective.
  returned: when the cutover ran
  type: list
  elements: dict
created:
  description: What the cutover created (instance and snapshots), and which of them it removed again.
  returned: when the cutover ran
  type: dict
  sample: {"instances": ["orders-prod-enc-5f3a9c"], "snapshots": ["orders-prod-pre-encrypt-20261129010000"],
           "removed": [], "kept": ["orders-prod-encrypted-20261129010000"]}
timeline:
  description: Phases, status transitions and probe milestones on one time axis.
  returned: when the cutover ran
  type: list
  elements: dict
report:
  description: The report as written to O(report_dir).
  returned: when the cutover ran
  type: dict
report_files:
  description: Paths of the report files, by format (json, md, xml).
  returned: when O(report_dir) is set and the cutover ran
  type: dict
"""

import datetime
import secrets
import uuid

from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.dbre.rds.plugins.module_utils import encrypt_instance as enc
from ansible_collections.dbre.rds.plugins.module_utils import failover_drill as probes
from ansible_collections.dbre.rds.plugins.module_utils import scram
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import CallNotConfirmed
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import aws_client
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import call_once
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import once_client
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import rds_client
from ansible_collections.dbre.rds.plugins.module_utils.clock import utc_iso
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import report_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import DrillAborted
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import DrillRuntime
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import aws_errors
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import owner_alive
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import owner_marker
from ansible_collections.dbre.rds.plugins.module_utils.module_warnings import warn
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import connector_for
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import db_connection_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import endpoint_of
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import permanent_error
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import with_connection
from ansible_collections.dbre.rds.plugins.module_utils.probing import WriteProbes
from ansible_collections.dbre.rds.plugins.module_utils.probing import marked_probe_tables
from ansible_collections.dbre.rds.plugins.module_utils.probing import probe_marker
from ansible_collections.dbre.rds.plugins.module_utils.probing import probe_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.probing import probe_table_state
from ansible_collections.dbre.rds.plugins.module_utils.probing import short_message
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import INSTANCE
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import BROKEN_STATES
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import NOT_FOUND_CODES
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import describe_instance
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import describe_snapshot
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import read_tags
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import status_of
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import tag_list
from ansible_collections.dbre.rds.plugins.module_utils.waiting import WaitFailed
from ansible_collections.dbre.rds.plugins.module_utils.waiting import WaitTimeout
from ansible_collections.dbre.rds.plugins.module_utils.waiting import wait_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.waiting import wait_until

BASELINE_PROBES = 3
CLEANUP_SECONDS = 1800
# The module's own sessions must write (resume writes, probe table) whatever the databases' default says.
READ_WRITE_OPTIONS = f"-c {enc.WRITE_STOP_SETTING}=off"
MARKER_MARGIN_SECONDS = 600
CHECKS_READ_ONLY_SQL = "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"
READ_ONLY_SQL_TRANSACTION = "25006"

DATABASES_SQL = (
    "SELECT d.datname, pg_has_role(d.datdba, 'MEMBER'), "
    "coalesce(bool_or(c IN ('default_transaction_read_only=on', 'default_transaction_read_only=true')), false) "
    "FROM pg_database d LEFT JOIN pg_db_role_setting s ON s.setdatabase = d.oid AND s.setrole = 0 "
    "LEFT JOIN LATERAL unnest(s.setconfig) c ON true "
    "WHERE d.datallowconn AND NOT d.datistemplate AND d.datname <> 'rdsadmin' GROUP BY 1, 2 ORDER BY 1")
# Ends the sessions opened before the write stop, so every client reconnects into a read-only default.
END_SESSIONS_SQL = (
    "SELECT count(pg_terminate_backend(a.pid)) FROM pg_stat_activity a "
    "WHERE a.backend_type = 'client backend' AND a.pid <> pg_backend_pid() AND a.datname = ANY(%s) "
    "AND NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.oid = a.usesysid AND r.rolsuper)")


# What cutover=logical needs of the source: wal_level, the right to replicate, tables a publication can carry.
# These run without parameters, so a single % is literal.
USER_TABLES = ("FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' "
               "AND c.relpersistence = 'p' AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
               "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'")
LOGICAL_FACTS_SQL = (
    "SELECT current_setting('wal_level'), r.rolsuper OR r.rolcreaterole AND CASE WHEN to_regrole('rds_replication') "
    "IS NULL THEN false ELSE pg_has_role(current_user, 'rds_replication', 'MEMBER WITH ADMIN OPTION') END "
    "FROM pg_roles r WHERE r.rolname = current_user")
WITHOUT_IDENTITY_SQL = (
    "SELECT format('%I.%I', n.nspname, c.relname) " + USER_TABLES + " AND NOT (c.relreplident = 'f' "
    "OR EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND ((c.relreplident = 'd' AND i.indisprimary) "
    "OR (c.relreplident = 'i' AND i.indisreplident)))) ORDER BY 1")
NOT_WRITABLE_SQL = (
    "SELECT format('%I.%I', n.nspname, c.relname) " + USER_TABLES + " AND NOT (has_table_privilege(c.oid, "
    "'TRUNCATE') AND has_table_privilege(c.oid, 'INSERT') AND has_table_privilege(c.oid, 'UPDATE') "
    "AND has_table_privilege(c.oid, 'DELETE') AND has_table_privilege(c.oid, 'SELECT WITH GRANT OPTION') "
    "AND has_schema_privilege(n.oid, 'USAGE WITH GRANT OPTION')) ORDER BY 1")
COUNT_TABLES_SQL = "SELECT count(*) " + USER_TABLES
PUBLISHED_TABLES_SQL = "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s ORDER BY 1, 2"
SYNC_STATES_SQL = (
    "SELECT r.srsubstate FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid "
    "WHERE s.subname = %s")
SUBSCRIPTION_ERRORS_SQL = (
    "SELECT s.oid, coalesce(t.apply_error_count + t.sync_error_count, 0) FROM pg_subscription s "
    "LEFT JOIN pg_stat_subscription_stats t ON t.subid = s.oid WHERE s.subname = %s")
SEQUENCES_SQL = ("SELECT schemaname, sequencename FROM pg_sequences "
                 "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2")
# The slot of the subscription and those of its table synchronisation workers (pg_<subid>_sync_<relid>_<sysid>).
ROLE_COMMENT_SQL = "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = %s"
OUR_SLOTS_SQL = ("SELECT slot_name, active_pid FROM pg_replication_slots WHERE slot_name = %s "
                 "OR (%s::text IS NOT NULL AND slot_name LIKE 'pg\\_' || %s || '\\_sync\\_%%')")


# ----------------------------------------------------------------------------------------------- thin SQL wrappers

def run_statements(conn, statements):
    with conn.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def run_checks(conn, checks):
    """{name: (rows, error)} of each check, in a read-only session (the connection is autocommit: a check that
    writes would be committed, in check mode too). A writing check fails with read_only_sql_transaction."""
    import psycopg2

    with conn.cursor() as cursor:
        cursor.execute(CHECKS_READ_ONLY_SQL)
    found = {}
    for check in checks:
        try:
            with conn.cursor() as cursor:
                cursor.execute(check["sql"])
                found[check["name"]] = (cursor.fetchall() if cursor.description else [], None)
        except psycopg2.Error as exc:
            error = short_message(exc)
            if getattr(exc, "pgcode", None) == READ_ONLY_SQL_TRANSACTION:
                error += " (checks run in a read-only session: a check must only read)"
            found[check["name"]] = (None, error)
    return found


def read_logical_facts(connector, databases, login_db):
    """What enc.logical_problems judges, read on the source (every other database for tables of its own)."""
    def read(conn):
        with conn.cursor() as cursor:
            cursor.execute(LOGICAL_FACTS_SQL)
            wal_level, can_replicate = cursor.fetchone()
            cursor.execute(WITHOUT_IDENTITY_SQL)
            without = [row[0] for row in cursor.fetchall()]
            cursor.execute(NOT_WRITABLE_SQL)
            not_writable = [row[0] for row in cursor.fetchall()]
        return {"wal_level": wal_level, "can_replicate": bool(can_replicate), "without_identity": without,
                "not_writable": not_writable}

    facts = with_connection(connector, read)
    facts["other_databases"] = {}
    for name in databases:
        if name == login_db:
            continue
        count = with_connection(connector, lambda conn: _scalar(conn, COUNT_TABLES_SQL), dbname=name)
        if count:
            facts["other_databases"][name] = count
    return facts


def _rows(conn, statement, params=None):
    with conn.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall()


def _scalar(conn, statement, params=None):
    with conn.cursor() as cursor:
        cursor.execute(statement, params)
        row = cursor.fetchone()
        return row[0] if row else None


def read_databases(conn):
    with conn.cursor() as cursor:
        cursor.execute(DATABASES_SQL)
        return [{"name": name, "can_alter": bool(can), "read_only": bool(ro)} for name, can, ro in cursor.fetchall()]


# ----------------------------------------------------------------------------------------------- thin AWS wrappers

def describe_key(kms, key_id):
    try:
        return kms.describe_key(KeyId=key_id, aws_retry=True)["KeyMetadata"]
    except is_boto3_error_code(["NotFoundException", "InvalidArnException"]):
        return None


def described_snapshot(rds, identifier):
    return describe_snapshot(rds, INSTANCE, identifier)


# ------------------------------------------------------------------------------------------------------ the cutover

class EncryptRun:
    """The mutating part, after the pre-checks: probes, write stop, snapshot, encrypted copy, restore, validation,
    swap, and the cleanup that puts the source back when anything before the swap fails."""

    def __init__(self, module, runtime, rds, plan, source, connector, run_id):
        self.module = module
        self.params = module.params
        self.runtime = runtime
        self.clock = runtime.clock
        self.log = runtime.log
        self.rds = rds
        self.once = once_client(module)
        self.plan = plan
        self.names = plan["names"]
        self.source = source
        self.connector = connector
        self.run_id = run_id
        self.tags = plan["run_tags"]
        self.deadline = self.clock.elapsed() + self.params["wait_timeout"]
        self.write_probes = None
        self.present_rows = None
        self.table_removed = None
        self.writes_stopped_at = None
        self.writes_back_at = None
        self.write_stop_done = False
        self.created = []           # {"kind", "identifier"}
        self.removed = []
        self.source_renamed = False
        self.swapped = False
        self.rolled_back = None
        self.rollback_problems = []
        self.target_connector = None
        self.temporary = None
        self.checks = []
        self.final = None
        self.logical = self.params["cutover"] == "logical"
        self.replication = plan.get("replication")
        self.published = False
        self.subscribed = False
        self.subscription_oid = None
        self.replication_removed = None
        self.replication_role = enc.replication_role_name(run_id)
        self.replication_role_created = False
        self.replication_schemas = []

    def remaining(self):
        return max(0.0, self.deadline - self.clock.elapsed())

    @property
    def prober(self):
        """The probe loop once it runs (None before, and without probes)."""
        return self.write_probes.loop if self.write_probes is not None else None

    # -- waiting and calling
    def _wait(self, phase, fetch, done, label, timeout=None):
        try:
            outcome = wait_until(fetch, done, timeout=self.remaining() if timeout is None else timeout,
                                 interval=self.params["poll_interval"], phase=phase, state_of=status_of,
                                 failed=lambda d: status_of(d) in BROKEN_STATES, clock=self.clock)
        except (WaitTimeout, WaitFailed) as exc:
            self.log.transitions(label, exc.transitions)
            raise
        self.log.transitions(label, outcome.transitions)
        return outcome.value

    def wait_instance(self, identifier, phase, status="available", timeout=None):
        return self._wait(phase, lambda: describe_instance(self.rds, identifier), lambda d: status_of(d) == status,
                          f"instance {identifier}", timeout)

    def wait_snapshot(self, identifier, phase):
        return self._wait(phase, lambda: described_snapshot(self.rds, identifier),
                          lambda d: status_of(d) == "available", f"snapshot {identifier}")

    def call(self, phase, operation, request, took_effect, what):
        try:
            return call_once(self.once, operation, request, took_effect,
                             deadline_seconds=max(1.0, min(self.remaining(), 300.0)))
        except CallNotConfirmed as exc:
            raise DrillAborted(phase, f"{what} was not confirmed ({exc}): check the RDS console", exc.cause)
        except aws_errors() as exc:
            raise DrillAborted(phase, f"{what} failed: {short_message(exc)}", exc)

    # -- steps
    def steps(self):
        if self.params["probe"]:
            self.runtime.enter("probe setup")
            self.start_probing()
        if self.logical:
            # Writes go on while the copy is made and loaded; they stop only for the catch-up's last seconds.
            self.publish()
            self.final_snapshot()
            self.encrypted_copy()
            self.restore()
            self.subscribe()
            self.stop_writes()
            self.catch_up()
            self.remove_replication()
        else:
            self.stop_writes()
            self.final_snapshot()
            self.encrypted_copy()
            self.restore()
        self.validate()
        self.resume_writes_on_copy()
        self.swap()
        self.after_swap()
        if self.prober is not None:
            self.settle()

    def start_probing(self):
        table = self.params["probe_table"]
        expires = self.clock.now() + datetime.timedelta(seconds=self.params["wait_timeout"] + MARKER_MARGIN_SECONDS)
        marker = probe_marker(self.run_id, owner_marker(), self.names["target"], utc_iso(self.clock.now()),
                              utc_iso(expires))
        # The endpoint reaches the source, then the encrypted copy restored from a snapshot that has the table: a
        # table missing there at the end was dropped by someone else, and which rows survived is unknown.
        self.write_probes = WriteProbes(self.connector, table, self.run_id, marker, self.clock,
                                        interval=self.params["probe_interval"], timeout=self.params["probe_timeout"],
                                        absent_means_lost=False)
        try:
            self.write_probes.create()
        except Exception as exc:  # pylint: disable=broad-except
            raise DrillAborted("probe setup", f"Creating the probe table {table} on {self.connector.target} failed "
                               f"({short_message(exc)}): check the login and that probe_table is free; nothing was "
                               "changed", exc)
        self.log.event(f"probe table {table} created", phase="probe setup")
        self.write_probes.begin()
        self.runtime.enter("baseline probes")
        try:
            self.write_probes.wait_baseline(BASELINE_PROBES, timeout=min(self.remaining(), 30))
        except (WaitTimeout, WaitFailed) as exc:
            failed = [s for s in self.prober.samples() if not s["ok"]]
            raise DrillAborted("baseline probes", f"Write probes on {self.connector.target} failed before any change "
                               f"({failed[-1]['message'] if failed else 'no answer'}): check the login", exc)

    def stop_writes(self):
        self.runtime.enter("write stop", timed=True)
        self.writes_stopped_at = self.clock.elapsed()
        self.write_stop_done = True  # set first: an interruption during the statements is still undone
        try:
            if self.params["pre_cutover_sql"]:
                with_connection(self.connector, lambda conn: run_statements(conn, self.params["pre_cutover_sql"]))
            else:
                databases = self.plan["write_stop"]["databases"]

                def stop(conn):
                    run_statements(conn, enc.write_stop_statements(databases))
                    with conn.cursor() as cursor:
                        cursor.execute(END_SESSIONS_SQL, (databases,))
                        return cursor.fetchone()[0]

                ended = with_connection(self.connector, stop, options=READ_WRITE_OPTIONS)
                self.log.event(f"databases read-only: {', '.join(databases)}; {ended} session(s) ended",
                               phase="write stop")
        except Exception as exc:  # pylint: disable=broad-except
            raise DrillAborted("write stop", f"Stopping writes on {self.connector.target} failed "
                               f"({short_message(exc)}); nothing else was changed", exc)
        self.log.finish("write stop")
        self.runtime.enter("writes stopped", timed=True)

    def _ours(self, described):
        return described is not None and read_tags(self.rds, described).get(enc.RUN_ID_TAG) == self.run_id

    def final_snapshot(self):
        name = self.names["final_snapshot"]
        self.runtime.enter("final snapshot", timed=True)
        self.created.append({"kind": "snapshot", "identifier": name})
        self.call("final snapshot", "create_db_snapshot",
                  {"DBInstanceIdentifier": self.names["target"], "DBSnapshotIdentifier": name,
                   "Tags": tag_list(self.tags)},
                  lambda: self._ours(described_snapshot(self.rds, name)), f"Creating the final snapshot {name}")
        self.wait_snapshot(name, "final snapshot")
        self.log.finish("final snapshot")

    def encrypted_copy(self):
        name = self.names["encrypted_snapshot"]
        self.runtime.enter("encrypted copy", timed=True)
        self.created.append({"kind": "snapshot", "identifier": name})
        self.call("encrypted copy", "copy_db_snapshot",
                  {"SourceDBSnapshotIdentifier": self.names["final_snapshot"], "TargetDBSnapshotIdentifier": name,
                   "KmsKeyId": self.plan["kms_key_arn"], "Tags": tag_list(self.tags)},
                  lambda: self._ours(described_snapshot(self.rds, name)), f"Copying the final snapshot to {name}")
        copied = self.wait_snapshot(name, "encrypted copy")
        if not copied.get("Encrypted"):
            raise DrillAborted("encrypted copy", f"The copy {name} is not encrypted: check the key and the region")
        self.log.finish("encrypted copy")

    def restore(self):
        name = self.names["temporary"]
        self.runtime.enter("restore", timed=True)
        self.created.append({"kind": "instance", "identifier": name})
        self.call("restore", "restore_db_instance_from_db_snapshot", self.plan["restore_request"],
                  lambda: self._ours(describe_instance(self.rds, name)), f"Restoring {name} from the encrypted copy")
        self.wait_instance(name, "restore")
        after = self.plan["after_restore_request"]
        if len(after) > 2:
            try:
                self.rds.modify_db_instance(**dict(after, DBInstanceIdentifier=name), aws_retry=True)
            except aws_errors() as exc:
                raise DrillAborted("restore", f"Applying the source's backup, window and monitoring settings to {name} "
                                   f"failed: {short_message(exc)}", exc)
        self.temporary = self.wait_instance(name, "restore")
        params = dict(self.params, login_host=None, login_port=None)
        self.target_connector = connector_for(self.module, params, endpoint_of(self.temporary), self.rds)
        self.log.finish("restore")

    # -- cutover=logical
    def publish(self):
        name = enc.replication_name(self.run_id)
        self.runtime.enter("publication", timed=True)
        self.published = True  # set first: an interruption during the statement is still undone
        try:
            with_connection(self.connector, lambda conn: run_statements(
                conn, [f"CREATE PUBLICATION {enc.quote_ident(name)} FOR ALL TABLES"]))
        except Exception as exc:  # pylint: disable=broad-except
            raise DrillAborted("publication", f"Creating the publication {name} on {self.connector.target} failed "
                               f"({short_message(exc)})", exc)
        self.log.event(f"publication {name} created on the source (all tables)", phase="publication")
        self.log.finish("publication")

    def subscribe(self):
        """Reload the copy's tables through a subscription: PostgreSQL's own initial copy, then the stream."""
        name = enc.replication_name(self.run_id)
        self.runtime.enter("subscription", timed=True)
        tables = with_connection(self.connector, lambda conn: _rows(conn, PUBLISHED_TABLES_SQL, (name,)))
        password = self.create_replication_role(tables)
        address, port = endpoint_of(self.source)
        conninfo = enc.subscription_conninfo(address, port, self.params["login_db"], self.replication_role, password,
                                             self.params["ssl_mode"])
        quoted = enc.quote_ident(name)

        def create(conn):
            with conn.cursor() as cursor:
                if tables:
                    cursor.execute(enc.truncate_statement(tables))
                cursor.execute(f"CREATE SUBSCRIPTION {quoted} CONNECTION %s PUBLICATION {quoted} WITH (copy_data = "
                               "true, create_slot = true, slot_name = %s)", (conninfo, name))
                cursor.execute(SUBSCRIPTION_ERRORS_SQL, (name,))
                return cursor.fetchone()[0]

        self._retry_connection(self.target_connector, lambda conn: _scalar(conn, "SELECT 1"), "subscription")
        self.subscribed = True
        try:
            self.subscription_oid = with_connection(self.target_connector, create)
        except Exception as exc:  # pylint: disable=broad-except
            raise DrillAborted("subscription", f"Subscribing {self.names['temporary']} to the source failed "
                               f"({short_message(exc)}): check that the copy reaches the source's endpoint (security "
                               "groups) and max_replication_slots / max_wal_senders on the source", exc)
        self.log.event(f"subscription {name}: {len(tables)} table(s) reloaded from the source", phase="subscription")

        def states(conn):
            with conn.cursor() as cursor:
                cursor.execute(SUBSCRIPTION_ERRORS_SQL, (name,))
                errors = (cursor.fetchone() or (None, 0))[1]
                return {"states": [row[0] for row in _rows(conn, SYNC_STATES_SQL, (name,))], "errors": errors}

        def ready(found):
            if found["errors"]:
                raise DrillAborted("subscription", f"The subscription on {self.names['temporary']} reports "
                                   f"{found['errors']} error(s) (see its PostgreSQL log): a table the copy cannot "
                                   "load, or a conflict")
            return len(found["states"]) == len(tables) and (enc.tables_synced(found["states"]) or not tables)

        self._poll("subscription", lambda: with_connection(self.target_connector, states), ready,
                   "initial copy of the tables")
        self.log.finish("subscription")

    def create_replication_role(self, tables):
        """The subscription's login on the source, for this run only (never the master user's password): returns
        its random password, which reaches the server only as a SCRAM verifier here."""
        role = self.replication_role
        password = secrets.token_urlsafe(32)
        self.module.no_log_values.add(password)
        self.replication_schemas = sorted({schema for schema, _table in tables})
        statements = enc.replication_role_statements(role, scram.verifier(password), tables, self.run_id)
        self.replication_role_created = True  # set first: an interruption during the statements is still undone
        try:
            with_connection(self.connector, lambda conn: run_statements(conn, statements), options=READ_WRITE_OPTIONS)
        except Exception as exc:  # pylint: disable=broad-except
            raise DrillAborted("subscription", f"Creating the replication login {role} on {self.connector.target} "
                               f"failed ({short_message(exc)}): log in as the master user (it may create roles and "
                               "grant rds_replication)", exc)
        self.log.event(f"replication login {role} created on the source (rds_replication, SELECT on "
                       f"{len(tables)} table(s))", phase="subscription")
        return password

    def drop_replication_role(self):
        """Drop the run's replication login, only if it still carries this run's marker; returns the problem."""
        role = self.replication_role

        def drop(conn):
            found = _rows(conn, ROLE_COMMENT_SQL, (role,))
            statements, problem = enc.replication_role_drop(role, bool(found), found[0][0] if found else None,
                                                            self.replication_schemas, self.run_id)
            run_statements(conn, statements)
            return problem

        problem = with_connection(self.connector, drop, options=READ_WRITE_OPTIONS)
        self.replication_role_created = False
        return problem

    def _poll(self, phase, fetch, done, what, timeout=None):
        try:
            return wait_until(fetch, done, timeout=max(1.0, self.remaining()) if timeout is None else timeout,
                              interval=min(self.params["poll_interval"], 1.0), phase=phase, clock=self.clock).value
        except WaitTimeout as exc:
            raise DrillAborted(phase, f"The {what} did not finish in time ({exc})", exc)

    def catch_up(self):
        """With writes stopped: wait until the copy confirmed all the source wrote, then carry the sequences."""
        name = enc.replication_name(self.run_id)
        self.runtime.enter("catch-up", timed=True)
        target = with_connection(self.connector, lambda conn: _scalar(conn, "SELECT pg_current_wal_lsn()::text"))
        self._poll("catch-up", lambda: with_connection(self.connector, lambda conn: _scalar(
            conn, "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s", (name,))),
            lambda confirmed: enc.caught_up(target, confirmed), f"catch-up to {target}")
        self.log.event(f"the copy confirmed the source's WAL up to {target}", phase="catch-up")

        def read_sequences(conn):
            found = []
            for schema, sequence in _rows(conn, SEQUENCES_SQL):
                qualified = f"{enc.quote_ident(schema)}.{enc.quote_ident(sequence)}"
                last_value, is_called = _rows(conn, f"SELECT last_value, is_called FROM {qualified}")[0]
                found.append((schema, sequence, last_value, is_called))
            return found

        statements = enc.setval_statements(with_connection(self.connector, read_sequences))

        def set_sequences(conn):
            with conn.cursor() as cursor:
                for statement, values in statements:
                    cursor.execute(statement, values)

        with_connection(self.target_connector, set_sequences, options=READ_WRITE_OPTIONS)
        self.log.event(f"{len(statements)} sequence(s) carried over", phase="catch-up")
        self.log.finish("catch-up")

    def remove_replication(self, phase="replication removed"):
        """Subscription off and gone on the copy, then the slots and the publication on the source."""
        name = enc.replication_name(self.run_id)
        quoted = enc.quote_ident(name)
        if phase == "replication removed":
            self.runtime.enter(phase, timed=True)
        if self.subscribed:
            def drop_subscription(conn):
                with conn.cursor() as cursor:
                    cursor.execute("SELECT count(*) FROM pg_subscription WHERE subname = %s", (name,))
                    if cursor.fetchone()[0]:
                        cursor.execute(f"ALTER SUBSCRIPTION {quoted} DISABLE")
                        cursor.execute(f"ALTER SUBSCRIPTION {quoted} SET (slot_name = NONE)")
                        cursor.execute(f"DROP SUBSCRIPTION {quoted}")
                    # The snapshot was taken after the publication was created: the copy holds it too.
                    cursor.execute(f"DROP PUBLICATION IF EXISTS {quoted}")

            try:
                with_connection(self.target_connector, drop_subscription, options=READ_WRITE_OPTIONS)
            except Exception as exc:  # pylint: disable=broad-except
                if phase != "rollback":
                    raise
                # The copy is deleted next; its walsender on the source is ended below.
                self.log.event(f"dropping the subscription failed ({short_message(exc)})", phase=phase)
            self.subscribed = False
        if self.published:
            oid = str(self.subscription_oid) if self.subscription_oid is not None else None

            def drop_slots(conn):
                remaining = _rows(conn, OUR_SLOTS_SQL, (name, oid, oid))
                for slot, active_pid in remaining:
                    if active_pid:  # the copy's walsender has not gone yet
                        _scalar(conn, "SELECT pg_terminate_backend(%s)", (active_pid,))
                    else:
                        _scalar(conn, "SELECT pg_drop_replication_slot(%s)", (slot,))
                return not remaining

            def attempt():
                try:
                    return with_connection(self.connector, drop_slots, options=READ_WRITE_OPTIONS)
                except Exception:  # pylint: disable=broad-except
                    return False

            self._poll(phase, attempt, bool, f"removal of the replication slot {name}",
                       timeout=120 if phase == "rollback" else None)
            with_connection(self.connector, lambda conn: run_statements(
                conn, [f"DROP PUBLICATION IF EXISTS {quoted}"]), options=READ_WRITE_OPTIONS)
            self.published = False
        if self.replication_role_created:
            problem = self.drop_replication_role()
            if problem and phase == "rollback":
                raise RuntimeError(problem)
            if problem:
                warn(self.module, problem)
            else:
                self.log.event(f"replication login {self.replication_role} dropped", phase=phase)
        self.replication_removed = True
        self.log.event(f"subscription, slot and publication {name} removed", phase=phase)
        if phase == "replication removed":
            self.log.finish(phase)

    def validate(self):
        self.runtime.enter("validation", timed=True)
        checks = self.plan["checks"]
        try:
            source_rows = with_connection(self.connector, lambda conn: run_checks(conn, checks))
            target_rows = self._retry_connection(self.target_connector, lambda conn: run_checks(conn, checks),
                                                 "validation")
        except DrillAborted:
            raise
        except Exception as exc:  # pylint: disable=broad-except
            raise DrillAborted("validation", f"Running the checks failed ({short_message(exc)})", exc)
        self.checks = enc.compare_checks(checks, source_rows, target_rows)
        if not all(check["passed"] for check in self.checks):
            self.log.finish("validation", "failed")
            raise DrillAborted("validation", enc.failed_checks_message(self.names["target"], self.checks))
        self.log.finish("validation")

    def _retry_connection(self, connector, action, phase, **options):
        """Run ``action`` on a new connection, retried while the database still refuses (not on bad credentials)."""
        def attempt():
            try:
                return {"value": with_connection(connector, action, **options), "exc": None}
            except Exception as exc:  # pylint: disable=broad-except
                return {"value": None, "exc": exc}

        try:
            outcome = wait_until(attempt, lambda r: r["exc"] is None, timeout=max(1.0, min(self.remaining(), 120)),
                                 interval=min(self.params["poll_interval"], 1.0), phase=phase,
                                 state_of=lambda r: "ok" if r["exc"] is None else "refused",
                                 permanent=lambda r: permanent_error(r["exc"]) if r["exc"] is not None else None,
                                 clock=self.clock)
        except (WaitTimeout, WaitFailed) as exc:
            last = exc.last_value["exc"] if exc.last_value else None
            raise DrillAborted(phase, f"{connector.target} did not answer ({short_message(last) if last else exc})",
                               exc)
        return outcome.value["value"]

    def _resume(self, connector, phase):
        if self.params["post_cutover_sql"]:
            statements = self.params["post_cutover_sql"]
        else:
            statements = enc.write_resume_statements(self.plan["write_stop"]["databases"])
        self._retry_connection(connector, lambda conn: run_statements(conn, statements), phase,
                               options=READ_WRITE_OPTIONS)

    def resume_writes_on_copy(self):
        self.runtime.enter("writes resumed on the copy")
        self._resume(self.target_connector, "writes resumed on the copy")
        self.log.event("the encrypted copy accepts writes (clients cannot reach it before the swap)",
                       phase="writes resumed on the copy")

    def swap(self):
        target, old, temporary = self.names["target"], self.names["old"], self.names["temporary"]
        self.runtime.enter("swap", timed=True)
        self.call("swap", "modify_db_instance",
                  {"DBInstanceIdentifier": target, "NewDBInstanceIdentifier": old, "ApplyImmediately": True},
                  lambda: describe_instance(self.rds, old) is not None, f"Renaming {target} to {old}")
        self.source_renamed = True
        self.wait_instance(old, "swap: source renamed")
        resource_id = self.temporary["DbiResourceId"]
        self.call("swap", "modify_db_instance",
                  {"DBInstanceIdentifier": temporary, "NewDBInstanceIdentifier": target, "ApplyImmediately": True},
                  lambda: (describe_instance(self.rds, target) or {}).get("DbiResourceId") == resource_id,
                  f"Renaming {temporary} to {target}")
        self.swapped = True
        self.final = self.wait_instance(target, "swap: copy renamed")
        self.writes_back_at = self.clock.elapsed()
        self.log.finish("swap")
        self.log.finish("writes stopped")

    def after_swap(self):
        """Deletion protection, tags, stop of the old instance, the unencrypted snapshot gone. The swap is done: a
        failing step does not stop the others; the failure lists what is left to do by hand."""
        target, old = self.names["target"], self.names["old"]
        self.runtime.enter("after the swap", timed=True)
        left = []

        def step(what, by_hand, action):
            try:
                action()
            except Exception as exc:  # pylint: disable=broad-except
                left.append(f"{what} failed ({short_message(exc)}): {by_hand}")
                self.log.event(f"{what} failed ({short_message(exc)})", phase="after the swap")

        if self.plan["settings"]["DeletionProtection"]:
            step(f"turning deletion protection on for {target}", f"turn deletion protection on for {target}",
                 lambda: self.rds.modify_db_instance(DBInstanceIdentifier=target, DeletionProtection=True,
                                                     ApplyImmediately=True, aws_retry=True))
        # The copy carries the run's tags from the restore; as the instance now in service it keeps only the source's.
        step(f"removing the run's tags from {target}", f"remove the tags {', '.join(sorted(self.tags))} from {target}",
             lambda: self.rds.remove_tags_from_resource(ResourceName=self.final["DBInstanceArn"],
                                                        TagKeys=list(self.tags), aws_retry=True))
        old_tags = enc.old_instance_tags(target, self.clock.now(), self.params["keep_old_hours"])
        tag_and_stop = (f"tag {old} with " + ", ".join(f"{k}={v}" for k, v in sorted(old_tags.items())) +
                        f" and stop it (aws rds stop-db-instance --db-instance-identifier {old})")

        def tag_old():
            described = describe_instance(self.rds, old)
            if described is None:
                raise DrillAborted("after the swap", f"{old} was not found")
            self.rds.add_tags_to_resource(ResourceName=described["DBInstanceArn"], Tags=tag_list(old_tags),
                                          aws_retry=True)

        tagged = len(left)
        step(f"tagging the old instance {old}", tag_and_stop, tag_old)
        if len(left) == tagged:
            step(f"stopping the old instance {old}", f"stop {old} (aws rds stop-db-instance "
                 f"--db-instance-identifier {old})",
                 lambda: self.call("after the swap", "stop_db_instance", {"DBInstanceIdentifier": old},
                                   lambda: status_of(describe_instance(self.rds, old)) in ("stopping", "stopped"),
                                   f"Stopping the old instance {old}"))
        snapshot = self.names["final_snapshot"]

        def delete_final_snapshot():
            skipped = self.delete_snapshot(snapshot)
            if skipped:
                warn(self.module, f"left the unencrypted snapshot {snapshot}: {skipped}")

        step(f"deleting the unencrypted snapshot {snapshot}", f"delete the snapshot {snapshot} (it is unencrypted)",
             delete_final_snapshot)
        self.final = self.wait_instance(target, "after the swap")
        if left:
            self.log.finish("after the swap", "failed")
            raise DrillAborted("after the swap", f"The swap is done ({target} is the encrypted instance); left to do "
                               "by hand: " + "; ".join(left))
        self.log.finish("after the swap")

    def settle(self):
        settle = self.params["probe_settle_seconds"]
        self.runtime.enter("writes to settle")
        since = self.writes_back_at or self.writes_stopped_at
        wait_until(lambda: probes.settled_for(self.prober.samples(), since, self.clock.elapsed()),
                   lambda seconds: seconds >= settle, timeout=max(1.0, self.remaining()),
                   interval=self.params["probe_interval"], phase="writes to settle", clock=self.clock)

    # -- removal
    def _deletable(self, kind, name):
        """Described and tag-checked right before a deletion: ``(delete, reason)`` (enc.deletion_decision)."""
        found = describe_instance(self.rds, name) if kind == "instance" else described_snapshot(self.rds, name)
        if found is not None:
            found = dict(found, TagList=tag_list(read_tags(self.rds, found)))
        return enc.deletion_decision(found, self.run_id)

    def delete_snapshot(self, name):
        """Delete a snapshot of this run; None when done, else why it was left (gone already counts as done)."""
        ok, reason = self._deletable("snapshot", name)
        if not ok:
            return None if described_snapshot(self.rds, name) is None else reason

        def took_effect():
            found = described_snapshot(self.rds, name)
            return found is None or status_of(found) == "deleting"

        try:
            call_once(self.once, "delete_db_snapshot", {"DBSnapshotIdentifier": name}, took_effect)
        except is_boto3_error_code(list(NOT_FOUND_CODES["snapshot"])):
            pass
        self.removed.append(name)
        return None

    def delete_instance(self, name):
        """Delete an instance of this run; None when done, else why it was left (gone already counts as done)."""
        ok, reason = self._deletable("instance", name)
        if not ok:
            return None if describe_instance(self.rds, name) is None else reason

        def took_effect():
            return status_of(describe_instance(self.rds, name)) in ("deleting", "gone")

        try:
            call_once(self.once, "delete_db_instance",
                      {"DBInstanceIdentifier": name, "SkipFinalSnapshot": True, "DeleteAutomatedBackups": True},
                      took_effect)
        except is_boto3_error_code(list(NOT_FOUND_CODES["instance"])):
            pass
        wait_until(lambda: describe_instance(self.rds, name), lambda d: d is None, timeout=CLEANUP_SECONDS,
                   interval=self.params["poll_interval"], phase=f"instance {name} deleted", state_of=status_of,
                   clock=self.clock)
        self.removed.append(name)
        return None

    # -- cleanup, whatever happened
    def cleanup(self, failure):
        self.log.close_open("failed" if failure else "ok")
        if failure is not None and not self.swapped:
            self.runtime.enter("rollback", timed=True)
            self.roll_back()
            self.log.finish("rollback", "ok" if self.rolled_back else "failed")
        self.stop_probing()

    def roll_back(self):
        """Put the source back as it was: its name, its writes; remove what this run created."""
        problems = []
        target, old = self.names["target"], self.names["old"]
        if self.source_renamed:
            try:
                call_once(self.once, "modify_db_instance",
                          {"DBInstanceIdentifier": old, "NewDBInstanceIdentifier": target, "ApplyImmediately": True},
                          lambda: describe_instance(self.rds, target) is not None)
                self.wait_instance(target, "rollback: source renamed back", timeout=CLEANUP_SECONDS)
                self.source_renamed = False
            except Exception as exc:  # pylint: disable=broad-except
                problems.append(f"renaming {old} back to {target} failed ({short_message(exc)}): rename it by hand")
        if self.write_stop_done:
            try:
                self._resume(self.connector, "rollback: writes resumed on the source")
                self.log.event("writes resumed on the source", phase="rollback")
            except Exception as exc:  # pylint: disable=broad-except
                undo = "post_cutover_sql" if self.params["post_cutover_sql"] else \
                    f"ALTER DATABASE ... RESET {enc.WRITE_STOP_SETTING}"
                problems.append(f"resuming writes on {target} failed ({short_message(exc)}): run {undo} by hand")
        if self.subscribed or self.published or self.replication_role_created:
            try:
                if self.subscribed and self.target_connector is None:
                    self.subscribed = False
                self.remove_replication(phase="rollback")
                self.log.event("replication objects removed", phase="rollback")
            except Exception as exc:  # pylint: disable=broad-except
                self.replication_removed = False
                name = enc.replication_name(self.run_id)
                problems.append(f"removing the replication objects {name} failed ({short_message(exc)}): drop the "
                                f"publication, the replication slot and the role {name} on {target} by hand (a slot "
                                "keeps WAL)")
        described = {}
        for item in self.created:
            try:
                found = (describe_instance(self.rds, item["identifier"]) if item["kind"] == "instance"
                         else described_snapshot(self.rds, item["identifier"]))
                if found is not None:
                    found = dict(found, TagList=[{"Key": k, "Value": v}
                                                 for k, v in read_tags(self.rds, found).items()])
                described[(item["kind"], item["identifier"])] = found
            except aws_errors() as exc:
                problems.append(f"describing {item['identifier']} failed ({short_message(exc)})")
        delete, skipped = enc.cleanup_targets(self.created, described, self.run_id)
        for item in skipped:
            problems.append(f"left {item['identifier']}: {item['reason']}")
        # The instance first: a snapshot being restored cannot go before it.
        for item in sorted(delete, key=lambda i: i["kind"] != "instance"):
            try:
                delete = self.delete_instance if item["kind"] == "instance" else self.delete_snapshot
                left = delete(item["identifier"])
                if left:
                    problems.append(f"left {item['identifier']}: {left}")
                    continue
                self.log.event(f"removed {item['kind']} {item['identifier']}", phase="rollback")
            except Exception as exc:  # pylint: disable=broad-except
                problems.append(f"removing {item['kind']} {item['identifier']} failed ({short_message(exc)}): "
                                "delete it by hand")
        self.rolled_back = not problems
        self.rollback_problems = problems
        for problem in problems:
            warn(self.module, problem)

    def stop_probing(self):
        if self.prober is not None:
            self.write_probes.stop()
            self.log.event(f"probing stopped after {len(self.prober.samples())} probes", phase="cleanup")
        if self.write_probes is None or not self.write_probes.created:
            return
        # Writes may still be stopped (a rollback that could not resume them): the cleanup's sessions write anyway.
        self.present_rows, self.table_removed = self.write_probes.finish(
            grace=max(1.0, min(self.remaining(), 120)), interval=min(self.params["poll_interval"], 1.0),
            connect_options={"options": READ_WRITE_OPTIONS})
        if self.write_probes.error is not None:
            warn(self.module, f"Could not read and remove the probe table {self.params['probe_table']} "
                              f"({self.connector.target} did not answer ({self.write_probes.error})); drop it by hand")

    # -- what it saw
    def measurements(self):
        samples = self.prober.samples() if self.prober else []
        downtime = probes.measure_downtime(samples, self.writes_stopped_at) if self.prober else {}
        writes = probes.account_writes(probes.acknowledged_writes(samples), self.present_rows) if self.prober else {}
        final = self.final if self.swapped else None
        final_settings = enc.carried_settings(final) if final else None
        return {
            "encrypted": bool(final and final.get("StorageEncrypted")),
            "kms_key_id": final.get("KmsKeyId") if final else None,
            "endpoint_unchanged": bool(final) and endpoint_of(final) == endpoint_of(self.source),
            "probing": self.prober is not None,
            "write_downtime_seconds": downtime.get("observed_downtime_seconds") if self.prober else None,
            "acknowledged_writes": writes.get("acknowledged_writes"),
            "rows_found": writes.get("rows_found"),
            "lost_writes": writes.get("lost_writes"),
            "lost_write_numbers": writes.get("lost_write_numbers", []),
            "probes_sent": len(samples),
            "probes_failed": sum(1 for s in samples if not s["ok"]),
            "writes_stopped_seconds": (round(self.writes_back_at - self.writes_stopped_at, 3)
                                       if self.writes_back_at is not None else None),
            "total_seconds": round(self.clock.elapsed(), 3),
            "phases": list(self.log.phases),
            "settings_differences": enc.settings_differences(self.plan["settings"], final_settings)
            if final_settings else {},
            "probe_table_removed": self.table_removed,
        }


# ------------------------------------------------------------------------------------------------------------- main

def argument_spec():
    spec = dict(
        db_instance_identifier=dict(type="str", required=True),
        kms_key_id=dict(type="str", required=True, no_log=False),
        cutover=dict(type="str", default="snapshot", choices=list(enc.CUTOVERS)),
        pre_cutover_sql=dict(type="list", elements="str"),
        post_cutover_sql=dict(type="list", elements="str"),
        checks=dict(type="list", elements="dict", default=[], options=dict(
            name=dict(type="str", required=True),
            sql=dict(type="str", required=True),
        )),
        compare_row_counts=dict(type="list", elements="str", default=[]),
        keep_old_hours=dict(type="int", default=168),
        probe=dict(type="bool", default=True),
    )
    spec.update(probe_argument_spec(table="dbre_rds_encrypt_probe", settle_seconds=2.0))
    spec.update(wait_argument_spec())
    spec.update(db_connection_argument_spec())
    spec.update(report_argument_spec())
    return spec


def read_aws(module, rds, kms, identifier, names):
    """The instance (with tags), the key, and whether each name the cutover needs is taken."""
    params = module.params
    try:
        source = describe_instance(rds, identifier, with_tags=True)
        if source is None or source.get("StorageEncrypted"):
            return source, None, {}
        key = describe_key(kms, params["kms_key_id"])
        taken = {names["temporary"]: describe_instance(rds, names["temporary"]) is not None,
                 names["old"]: describe_instance(rds, names["old"]) is not None,
                 names["final_snapshot"]: described_snapshot(rds, names["final_snapshot"]) is not None,
                 names["encrypted_snapshot"]: described_snapshot(rds, names["encrypted_snapshot"]) is not None}
    except aws_errors() as exc:
        module.fail_json_aws(exc, msg=f"Describing {identifier} and the KMS key {params['kms_key_id']} failed: check "
                                      "the credentials, the region and the IAM permissions in the notes")
    return source, key, taken


def read_database(module, connector, checks):
    """Databases (for the write stop), the probe table's state and the checks run once on the source."""
    params = module.params
    table = params["probe_table"] if params["probe"] else None

    def read(conn):
        existing = probe_table_state(conn, table) if table else None
        marked = marked_probe_tables(conn) if table else []
        return read_databases(conn), existing, marked, run_checks(conn, checks)

    try:
        databases, existing, marked, check_rows = with_connection(connector, read)
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(msg=f"Connecting to {connector.target} failed ({permanent_error(exc) or short_message(exc)}): "
                             "check the login options and the network; nothing was changed", changed=False)
    alive = {(item["schema"], item["table"]): owner_alive(probes.parse_probe_marker(item["comment"]))
             for item in marked}
    problems, unused = probes.probe_table_decision(table, existing, marked, alive,
                                                   datetime.datetime.now(datetime.timezone.utc))
    problems += [f"check {name} fails on the source: {error}" for name, (unused_rows, error) in check_rows.items()
                 if error]
    return databases, problems


def main():
    module = AnsibleAWSModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    problems = enc.option_problems(params)
    if problems:
        module.fail_json(msg="Invalid options: " + "; ".join(problems), problems=problems, changed=False)
    identifier = params["db_instance_identifier"]
    runtime = DrillRuntime(module, "encrypt_instance", identifier, "Encryption cutover", params["progress_log"])
    run_id = uuid.uuid4().hex[:12]
    names = enc.cutover_names(identifier, runtime.clock.started_at, run_id[:6])

    rds = rds_client(module)
    kms = aws_client(module, "kms")
    source, key, taken = read_aws(module, rds, kms, identifier, names)
    problems = enc.instance_problems(identifier, source)
    if problems:
        runtime.refuse(problems)
    if source.get("StorageEncrypted"):
        module.exit_json(changed=False, encrypted=True, passed=None, kms_key_id=source.get("KmsKeyId"),
                         msg=f"{identifier} is encrypted already (key {source.get('KmsKeyId')}): nothing to do")
    problems = enc.key_problems(params["kms_key_id"], key) + enc.name_problems(names, taken)

    params["login_user"] = params["login_user"] or source.get("MasterUsername")
    connector = connector_for(module, params, endpoint_of(source), rds)
    checks = list(params["checks"]) + enc.row_count_checks(params["compare_row_counts"])
    databases, db_problems = read_database(module, connector, checks)
    write_stop, stop_problems = enc.write_stop_plan(databases)
    if params["pre_cutover_sql"]:
        write_stop, stop_problems = {"databases": [], "statements": "pre_cutover_sql"}, []
    problems += db_problems + stop_problems
    if params["cutover"] == "logical" and not problems:
        try:
            facts = read_logical_facts(connector, [db["name"] for db in databases], params["login_db"])
        except Exception as exc:  # pylint: disable=broad-except
            module.fail_json(msg=f"Reading what cutover=logical needs on {connector.target} failed "
                                 f"({short_message(exc)}): check the login's CONNECT rights; nothing was changed",
                             changed=False)
        problems += enc.logical_problems(identifier, enc.carried_settings(source)["DBParameterGroupName"], facts)
    if problems:
        runtime.refuse(problems)

    settings = enc.carried_settings(source)
    tags = enc.run_tags(run_id, runtime.clock.started_at, owner_marker())
    replication = enc.replication_name(run_id) if params["cutover"] == "logical" else None
    plan = {"cutover": params["cutover"], "names": names, "kms_key_arn": key["Arn"], "write_stop": write_stop,
            "replication": replication,
            "checks": checks, "settings": settings, "run_tags": tags,
            "restore_request": enc.restore_request(settings, names, tags),
            "after_restore_request": enc.after_restore_request(settings, names["temporary"])}
    shown = {"cutover": plan["cutover"], "names": names, "kms_key_arn": key["Arn"], "write_stop": write_stop,
             "checks": [c["name"] for c in checks], "run_id": run_id, "replication": replication,
             "settings": camel_dict_to_snake_dict(settings, ignore_list=["Tags"]), "not_carried": list(enc.NOT_CARRIED)}
    if module.check_mode:
        module.exit_json(changed=True, encrypted=False, passed=None, plan=shown, kms_key_id=key["Arn"])

    runtime.log.event(f"pre-checks passed: encrypt {identifier} with {key['Arn']}", phase="pre-checks")
    run = EncryptRun(module, runtime, rds, plan, source, connector, run_id)
    failure = runtime.act(run.steps, run.cleanup)
    measured = run.measurements()
    objectives = enc.objectives(measured, run.checks, params["max_downtime_seconds"], params["max_lost_writes"])
    passed = failure is None and all(row["held"] for row in objectives)
    created = {"instances": [c["identifier"] for c in run.created if c["kind"] == "instance"],
               "snapshots": [c["identifier"] for c in run.created if c["kind"] == "snapshot"],
               "removed": run.removed,
               "kept": [c["identifier"] for c in run.created if c["identifier"] not in run.removed
                        and c["identifier"] != names["temporary"]]}
    report = runtime.report(passed=passed, objectives=objectives, measurements=measured, failure=failure,
                            details={"plan": shown, "checks": run.checks, "created": created, "run_id": run_id,
                                     "swapped": run.swapped, "rolled_back": run.rolled_back,
                                     "replication_removed": run.replication_removed,
                                     "phase": None if failure is None else failure.phase})
    result = dict(changed=bool(run.created) or run.write_stop_done, encrypted=measured["encrypted"],
                  passed=report["passed"], plan=shown, checks=run.checks, measurements=measured,
                  objectives=objectives, created=created, timeline=report["timeline"],
                  kms_key_id=measured["kms_key_id"] or source.get("KmsKeyId"))
    breach = None if passed or failure is not None else enc.breach_message(identifier, objectives)
    runtime.exit(result, report, failure, breach=breach)


if __name__ == "__main__":
    main()
