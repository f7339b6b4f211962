# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rds_encrypt_instance's decisions: options, pre-checks, names, carried settings, write stop, checks, verdict."""

import datetime
import re

import pytest

from ansible_collections.dbre.rds.plugins.module_utils import encrypt_instance as enc

UTC = datetime.timezone.utc
STARTED = datetime.datetime(2026, 11, 29, 23, 50, 1, tzinfo=UTC)

PARAMS = {
    "db_instance_identifier": "orders", "kms_key_id": "alias/rds", "cutover": "snapshot", "keep_old_hours": 168,
    "wait_timeout": 1800, "poll_interval": 5.0, "probe_interval": 0.25, "probe_timeout": 2,
    "probe_settle_seconds": 2.0, "max_lost_writes": 0, "max_downtime_seconds": None,
    "probe_table": "dbre_rds_encrypt_probe", "pre_cutover_sql": None, "post_cutover_sql": None, "checks": [],
    "compare_row_counts": [], "login_password": "x", "iam_auth": False, "ssl_mode": "prefer", "ca_cert": None,
    "connect_timeout": 5, "report_name": None,
}

INSTANCE = {
    "DBInstanceIdentifier": "orders", "Engine": "postgres", "DBInstanceStatus": "available",
    "StorageEncrypted": False, "DBInstanceClass": "db.r6g.large", "StorageType": "gp3", "AllocatedStorage": 100,
    "Iops": 3000, "StorageThroughput": 125, "MaxAllocatedStorage": 500, "MultiAZ": True,
    "DBParameterGroups": [{"DBParameterGroupName": "orders-pg15", "ParameterApplyStatus": "in-sync"}],
    "OptionGroupMemberships": [{"OptionGroupName": "default:postgres-15", "Status": "in-sync"}],
    "DBSubnetGroup": {"DBSubnetGroupName": "private"},
    "VpcSecurityGroups": [{"VpcSecurityGroupId": "sg-2", "Status": "active"},
                          {"VpcSecurityGroupId": "sg-1", "Status": "active"},
                          {"VpcSecurityGroupId": "sg-old", "Status": "inactive"}],
    "PubliclyAccessible": False, "Endpoint": {"Address": "orders.x.rds.amazonaws.com", "Port": 5432},
    "BackupRetentionPeriod": 7, "PreferredBackupWindow": "03:00-03:30",
    "PreferredMaintenanceWindow": "sun:04:00-sun:04:30", "MonitoringInterval": 60,
    "MonitoringRoleArn": "arn:aws:iam::1:role/rds-monitoring", "PerformanceInsightsEnabled": True,
    "AutoMinorVersionUpgrade": True, "IAMDatabaseAuthenticationEnabled": True,
    "EnabledCloudwatchLogsExports": ["postgresql"], "CopyTagsToSnapshot": True, "DeletionProtection": True,
    "TagList": [{"Key": "team", "Value": "orders"}],
}


def params(**changes):
    return dict(PARAMS, **changes)


@pytest.mark.parametrize("changes, fragment", [
    ({}, None),
    ({"db_instance_identifier": ""}, "must not be empty"),
    ({"db_instance_identifier": "a" * 45}, "at most 44"),
    ({"kms_key_id": " "}, "kms_key_id must name a KMS key"),
    ({"cutover": "blue-green"}, "cutover must be one of snapshot, logical"),
    ({"keep_old_hours": -1}, "keep_old_hours must be between 0 and 8760"),
    ({"keep_old_hours": 9000}, "keep_old_hours must be between 0 and 8760"),
    ({"wait_timeout": 0}, "wait_timeout must be between"),
    ({"probe_interval": 0}, "probe_interval must be between"),
    ({"max_lost_writes": -1}, "max_lost_writes must be 0 or more"),
    ({"probe_table": "Probe-Table"}, "plain lower-case identifier"),
    ({"pre_cutover_sql": ["ALTER ROLE app NOLOGIN"]}, "pre_cutover_sql and post_cutover_sql go together"),
    ({"checks": [{"name": "a", "sql": "SELECT 1"}, {"name": "a", "sql": "SELECT 2"}]}, "used twice"),
    ({"checks": [{"name": "a", "sql": " "}]}, "check a needs sql"),
    ({"compare_row_counts": ["orders; DROP TABLE x"]}, "is not a table name"),
    ({"login_password": None}, "login_password (or iam_auth=true) is needed"),
    ({"iam_auth": True}, "mutually exclusive"),
    ({"report_name": "../x"}, "report_name"),
])
def test_option_problems(changes, fragment):
    problems = enc.option_problems(params(**changes))
    if fragment is None:
        assert problems == []
    else:
        assert any(fragment in p for p in problems), problems


@pytest.mark.parametrize("instance, fragments", [
    (None, ["no DB instance 'orders' exists"]),
    (dict(INSTANCE, DBClusterIdentifier="aur"), ["member of the Aurora cluster 'aur'"]),
    (dict(INSTANCE, StorageEncrypted=True, DBInstanceStatus="stopped"), []),
    (INSTANCE, []),
    (dict(INSTANCE, DBInstanceStatus="stopped"), ["is stopped, not available"]),
    (dict(INSTANCE, Engine="mysql"), ["this module encrypts RDS for PostgreSQL only"]),
    (dict(INSTANCE, ReadReplicaDBInstanceIdentifiers=["orders-ro"]), ["read replicas (orders-ro)"]),
    (dict(INSTANCE, ReadReplicaSourceDBInstanceIdentifier="main"), ["is a read replica of main"]),
])
def test_instance_problems(instance, fragments):
    problems = enc.instance_problems("orders", instance)
    assert len(problems) == len(fragments)
    for fragment, problem in zip(fragments, problems):
        assert fragment in problem


@pytest.mark.parametrize("key, fragment", [
    (None, "does not exist in this region"),
    ({"KeyState": "Disabled", "Enabled": False}, "is Disabled, not Enabled"),
    ({"KeyState": "PendingDeletion", "Enabled": False}, "is PendingDeletion"),
    ({"KeyState": "Enabled", "KeySpec": "RSA_2048", "KeyUsage": "SIGN_VERIFY"}, "symmetric encryption key"),
    ({"KeyState": "Enabled", "Enabled": True, "KeySpec": "SYMMETRIC_DEFAULT", "KeyUsage": "ENCRYPT_DECRYPT"}, None),
])
def test_key_problems(key, fragment):
    problems = enc.key_problems("alias/rds", key)
    assert (problems == []) if fragment is None else any(fragment in p for p in problems)


def test_names_come_from_the_identifier_and_start():
    names = enc.cutover_names("Orders", STARTED, "5f3a9c")
    assert names == {"target": "Orders", "temporary": "orders-enc-5f3a9c", "old": "orders-old-20261129235001",
                     "final_snapshot": "orders-pre-encrypt-20261129235001",
                     "encrypted_snapshot": "orders-encrypted-20261129235001"}
    longest = enc.cutover_names("a" * 44, STARTED, "5f3a9c")
    assert max(len(longest["old"]), len(longest["temporary"])) <= 63


def test_name_problems_name_each_taken_name():
    names = enc.cutover_names("orders", STARTED, "abc123")
    problems = enc.name_problems(names, {names["old"]: True, names["temporary"]: False})
    assert problems == [f"the old instance's name {names['old']} is taken already: an earlier run left it, or another "
                        "resource has the name; remove or rename it"]


def test_carried_settings_and_the_requests_that_carry_them():
    settings = enc.carried_settings(INSTANCE)
    assert settings["VpcSecurityGroupIds"] == ["sg-1", "sg-2"]
    assert settings["OptionGroupName"] is None  # default option groups are what RDS picks anyway
    assert settings["DBParameterGroupName"] == "orders-pg15"
    names = enc.cutover_names("orders", STARTED, "abc123")
    request = enc.restore_request(settings, names, {"dbre:encrypt-id": "r1"})
    assert request["DBInstanceIdentifier"] == "orders-enc-abc123"
    assert request["DBSnapshotIdentifier"] == names["encrypted_snapshot"]
    assert request["DeletionProtection"] is False  # set after the swap: a failed cutover must delete the copy
    assert request["MultiAZ"] is True and request["StorageType"] == "gp3" and request["Iops"] == 3000
    assert request["EnableCloudwatchLogsExports"] == ["postgresql"]
    assert {"Key": "team", "Value": "orders"} in request["Tags"]
    assert {"Key": "dbre:encrypt-id", "Value": "r1"} in request["Tags"]
    assert "OptionGroupName" not in request and "Port" not in request
    after = enc.after_restore_request(settings, "orders-enc-abc123")
    assert after == {"DBInstanceIdentifier": "orders-enc-abc123", "ApplyImmediately": True,
                     "BackupRetentionPeriod": 7, "PreferredBackupWindow": "03:00-03:30",
                     "PreferredMaintenanceWindow": "sun:04:00-sun:04:30", "MaxAllocatedStorage": 500,
                     "MonitoringInterval": 60, "MonitoringRoleArn": "arn:aws:iam::1:role/rds-monitoring",
                     "EnablePerformanceInsights": True}


@pytest.mark.parametrize("changes, differences", [
    ({}, {}),
    ({"StorageEncrypted": True, "TagList": [], "Endpoint": {"Port": 5433}}, {}),  # tags, port, encryption ignored
    ({"DBInstanceClass": "db.t3.micro"}, {"DBInstanceClass": {"source": "db.r6g.large", "encrypted": "db.t3.micro"}}),
    ({"MultiAZ": False}, {"MultiAZ": {"source": True, "encrypted": False}}),
])
def test_settings_differences(changes, differences):
    source = enc.carried_settings(INSTANCE)
    assert enc.settings_differences(source, enc.carried_settings(dict(INSTANCE, **changes))) == differences


@pytest.mark.parametrize("databases, switched, problem", [
    ([{"name": "app", "can_alter": True, "read_only": False}], ["app"], None),
    ([{"name": "app", "can_alter": True, "read_only": False}, {"name": "ro", "can_alter": False, "read_only": True}],
     ["app"], None),
    ([{"name": "other", "can_alter": False, "read_only": False}], ["other"], "cannot switch database other"),
])
def test_write_stop_plan(databases, switched, problem):
    plan, problems = enc.write_stop_plan(databases)
    assert plan["databases"] == switched
    assert (problems == []) if problem is None else problem in problems[0]


def test_write_stop_statements_quote_names():
    assert enc.write_stop_statements(['we"ird']) == ['ALTER DATABASE "we""ird" SET default_transaction_read_only = on']
    assert enc.write_resume_statements(["app"]) == ['ALTER DATABASE "app" RESET default_transaction_read_only']


def test_row_count_checks():
    assert enc.row_count_checks(["orders", "sales.Items"]) == [
        {"name": "rows in orders", "sql": 'SELECT count(*) FROM "orders"'},
        {"name": "rows in sales.Items", "sql": 'SELECT count(*) FROM "sales"."Items"'}]


@pytest.mark.parametrize("source, target, passed, fragment", [
    (([[500]], None), ([[500]], None), True, None),
    (([[500]], None), ([[499]], None), False, "the source returned [[500]], the encrypted instance [[499]]"),
    (([[500]], None), (None, "relation \"orders\" does not exist"), False, "failed to run on the encrypted instance"),
    ((None, "permission denied"), ([[1]], None), False, "failed to run on the source"),
    (([[datetime.date(2026, 1, 2)]], None), ([["2026-01-02"]], None), True, None),
])
def test_compare_checks(source, target, passed, fragment):
    checks = [{"name": "c", "sql": "SELECT 1"}]
    result = enc.compare_checks(checks, {"c": source}, {"c": target})[0]
    assert result["passed"] is passed
    if fragment:
        assert fragment in result["message"]


@pytest.mark.parametrize("measured, max_downtime, held", [
    ({"encrypted": True, "probing": True, "lost_writes": 0, "write_downtime_seconds": 4.0}, None,
     {"encrypted": True, "lost_writes": True}),
    ({"encrypted": True, "probing": True, "lost_writes": 2, "write_downtime_seconds": 4.0}, 3.0,
     {"encrypted": True, "lost_writes": False, "write_downtime_seconds": False}),
    ({"encrypted": False, "probing": False}, 3.0, {"encrypted": False}),
    ({"encrypted": True, "probing": True, "lost_writes": None, "write_downtime_seconds": None}, 10,
     {"encrypted": True, "lost_writes": False, "write_downtime_seconds": False}),
])
def test_objectives(measured, max_downtime, held):
    rows = enc.objectives(measured, [], max_downtime, 0)
    assert {row["name"]: row["held"] for row in rows} == held


def test_failed_check_is_an_objective():
    checks = [{"name": "rows in orders", "passed": False, "message": "check rows in orders: ..."}]
    rows = enc.objectives({"encrypted": False, "probing": False}, checks)
    assert rows[1] == {"name": "check: rows in orders", "objective": "equal on both sides",
                       "observed": "check rows in orders: ...", "unit": None, "held": False}


def test_cleanup_deletes_only_what_carries_the_run_id():
    created = [{"kind": "instance", "identifier": "orders-enc-1"}, {"kind": "snapshot", "identifier": "s1"},
               {"kind": "snapshot", "identifier": "s2"}]
    described = {("instance", "orders-enc-1"): {"TagList": [{"Key": enc.RUN_ID_TAG, "Value": "r1"}]},
                 ("snapshot", "s1"): {"TagList": [{"Key": enc.RUN_ID_TAG, "Value": "other"}]},
                 ("snapshot", "s2"): None}
    delete, skipped = enc.cleanup_targets(created, described, "r1")
    assert delete == [created[0]]
    assert skipped == [dict(created[1], reason=f"it does not carry {enc.RUN_ID_TAG}=r1")]


@pytest.mark.parametrize("found, expected", [
    (None, (False, "it is gone already")),
    ({"TagList": [{"Key": enc.RUN_ID_TAG, "Value": "r1"}]}, (True, None)),
    ({"TagList": [{"Key": enc.RUN_ID_TAG, "Value": "r2"}]}, (False, f"it does not carry {enc.RUN_ID_TAG}=r1")),
    ({"TagList": []}, (False, f"it does not carry {enc.RUN_ID_TAG}=r1")),
    ({}, (False, f"it does not carry {enc.RUN_ID_TAG}=r1")),
])
def test_deletion_decision_deletes_only_what_carries_this_runs_id(found, expected):
    assert enc.deletion_decision(found, "r1") == expected


def test_not_carried_names_the_settings_the_new_instance_does_not_get():
    text = " ".join(enc.NOT_CARRIED)
    for setting in ("master user secret", "AssociatedRoles", "CA certificate", "Performance Insights KMS key",
                    "NetworkType", "Kerberos"):
        assert setting in text


def test_old_instance_tags_say_when_it_may_go():
    assert enc.old_instance_tags("orders", STARTED, 48) == {
        enc.OLD_EXPIRES_TAG: "2026-12-01T23:50:01.000Z", enc.REPLACED_BY_TAG: "orders"}


# ------------------------------------------------------------------------------------------------ cutover=logical

GOOD_FACTS = {"wal_level": "logical", "can_replicate": True, "without_identity": [], "not_writable": [],
              "other_databases": {}}


def test_logical_is_a_cutover_and_needs_a_password():
    assert enc.option_problems(dict(PARAMS, cutover="logical")) == []
    problems = enc.option_problems(dict(PARAMS, cutover="logical", login_password=None, iam_auth=True))
    assert any("cutover=logical needs login_password (not iam_auth)" in p for p in problems)
    assert not any("cutover=logical" in p for p in enc.option_problems(dict(PARAMS, login_password=None,
                                                                            iam_auth=True)))


@pytest.mark.parametrize("facts, group, expected", [
    ({}, "orders-pg15", []),
    ({"wal_level": "replica"}, "orders-pg15",
     ["needs rds.logical_replication=1 in effect on orders, and its wal_level is replica: set "
      "rds.logical_replication=1 in its parameter group orders-pg15 and reboot it"]),
    ({"wal_level": "replica"}, "default.postgres15",
     ["set rds.logical_replication=1 in a custom parameter group (the default group default.postgres15 cannot be "
      "changed), attach it and reboot it"]),
    ({"can_replicate": False}, "orders-pg15", ["may create roles and grant rds_replication"]),
    ({"without_identity": ["public.audit", "public.log"]}, "orders-pg15",
     ["without a primary key or replica identity would refuse UPDATE and DELETE while they are published: "
      "public.audit, public.log"]),
    ({"not_writable": ["billing.invoices"]}, "orders-pg15",
     ["cannot TRUNCATE and write these tables, which the copy reloads, or grant SELECT on them (and USAGE on their "
      "schema) to the run's replication login: billing.invoices"]),
    ({"other_databases": {"reports": 3, "audit": 1}}, "orders-pg15",
     ["database audit holds 1 table(s)", "database reports holds 3 table(s)"]),
])
def test_logical_problems_name_the_fix(facts, group, expected):
    problems = enc.logical_problems("orders", group, dict(GOOD_FACTS, **facts))
    assert len(problems) == len(expected)
    for problem, fragment in zip(problems, expected):
        assert fragment in problem


def test_replication_name_and_conninfo_quoting():
    assert enc.replication_name("5F3A9C0011aa") == "dbre_encrypt_5f3a9c0011aa"
    conninfo = enc.subscription_conninfo("db.x", 5432, "shop", "master", "it's a \\secret", "verify-full")
    assert conninfo == ("host='db.x' port='5432' dbname='shop' user='master' password='it\\'s a \\\\secret' "
                        "sslmode='require' application_name='dbre_rds_encrypt'")
    assert "sslmode='prefer'" in enc.subscription_conninfo("h", 1, "d", "u", "p", "disable")


@pytest.mark.parametrize("target, confirmed, expected", [
    ("0/3000100", "0/3000100", True),
    ("0/3000100", "0/30000FF", False),
    ("0/FFFFFFFF", "1/0", True),
    ("1/0", "0/FFFFFFFF", False),
    ("16/B374D848", None, False),
])
def test_caught_up_compares_lsns_as_numbers(target, confirmed, expected):
    assert enc.caught_up(target, confirmed) is expected


def test_lsn_value():
    assert enc.lsn_value("16/B374D848") == (0x16 << 32) + 0xB374D848
    assert enc.lsn_value(None) is None


@pytest.mark.parametrize("states, expected", [
    ([], False), (["r", "r"], True), (["r", "s"], True), (["r", "d"], False), (["i"], False),
])
def test_tables_synced(states, expected):
    assert enc.tables_synced(states) is expected


def test_truncate_and_setval_statements():
    assert enc.truncate_statement([("public", "orders"), ("Sales", 'odd"name')]) == \
        'TRUNCATE "public"."orders", "Sales"."odd""name"'
    assert enc.setval_statements([("public", "orders_id_seq", 41, True), ("public", "unused_seq", None, False),
                                  ("Sales", "Seq", 1, False)]) == [
        ("SELECT setval(%s, %s, %s)", ('"public"."orders_id_seq"', 41, True)),
        ("SELECT setval(%s, %s, %s)", ('"Sales"."Seq"', 1, False))]


@pytest.mark.parametrize("run_id, expected", [
    ("5F3A9C0011aa", "dbre_encrypt_5f3a9c0011aa"),
    ("a-b.c d", "dbre_encrypt_a_b_c_d"),
    ("x" * 80, "dbre_encrypt_" + "x" * 50),
    ("é'\"", "dbre_encrypt____"),
])
def test_replication_role_name_is_a_plain_identifier_of_at_most_63_bytes(run_id, expected):
    name = enc.replication_role_name(run_id)
    assert name == expected
    assert len(name.encode()) <= 63 and re.fullmatch(r"[a-z_][a-z0-9_]*", name)


def test_replication_role_statements_send_only_the_verifier_and_grant_what_the_copy_reads():
    verifier = "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy"
    statements = enc.replication_role_statements("dbre_encrypt_ab12", verifier,
                                                 [("public", "orders"), ("Sales", 'odd"name'), ("public", "x")],
                                                 "ab12")
    assert statements == [
        f'CREATE ROLE "dbre_encrypt_ab12" LOGIN PASSWORD \'{verifier}\'',
        'COMMENT ON ROLE "dbre_encrypt_ab12" IS \'dbre.rds rds_encrypt_instance run ab12\'',
        'GRANT rds_replication TO "dbre_encrypt_ab12"',
        'GRANT USAGE ON SCHEMA "Sales" TO "dbre_encrypt_ab12"',
        'GRANT USAGE ON SCHEMA "public" TO "dbre_encrypt_ab12"',
        'GRANT SELECT ON "public"."orders", "Sales"."odd""name", "public"."x" TO "dbre_encrypt_ab12"',
    ]
    # No table published: no schema or table grant (an empty GRANT SELECT ON would be a syntax error).
    assert [s.split()[0] for s in enc.replication_role_statements("r", verifier, [], "ab12")] == \
        ["CREATE", "COMMENT", "GRANT"]
    assert enc.quote_literal("it's") == "'it''s'"


@pytest.mark.parametrize("found, comment, statements, problem", [
    (False, None, [], None),
    (True, "dbre.rds rds_encrypt_instance run ab12",
     ['REVOKE ALL ON ALL TABLES IN SCHEMA "Sales" FROM "dbre_encrypt_ab12"',
      'REVOKE USAGE ON SCHEMA "Sales" FROM "dbre_encrypt_ab12"',
      'REVOKE ALL ON ALL TABLES IN SCHEMA "public" FROM "dbre_encrypt_ab12"',
      'REVOKE USAGE ON SCHEMA "public" FROM "dbre_encrypt_ab12"',
      'DROP ROLE "dbre_encrypt_ab12"'], None),
    (True, "dbre.rds rds_encrypt_instance run other", [], "not this run's marker"),
    (True, None, [], "not this run's marker"),
])
def test_replication_role_drop_only_with_this_runs_marker(found, comment, statements, problem):
    got, why = enc.replication_role_drop("dbre_encrypt_ab12", found, comment, ["public", "Sales", "public"], "ab12")
    assert got == statements
    assert (why is None) if problem is None else (problem in why and "dbre_encrypt_ab12" in why)
