# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rds_users role's decisions: validation messages, the grants plan, check-mode applicability, connection."""

import json

import pytest

from ansible_collections.dbre.rds.plugins.module_utils import rds_users

DATABASES = [{"name": "app", "schemas": ["app", "public"]}]


def login(**overrides):
    base = {"name": "app_reader", "profile": "readonly", "databases": ["app"], "password": "pw"}
    base.update(overrides)
    return base


def test_valid_declarations_have_no_problems():
    logins = [
        login(),
        login(name="app_writer", profile="readwrite", password=None, password_secret="prod/app_writer"),
        login(name="app_migrator", profile="owner", password=None, iam_auth=True),
        login(name="metrics", profile="monitoring", statement_timeout="30s", search_path=["app", "public"]),
        login(name="reporting", profile="custom", privileges={"database": ["CONNECT"], "tables": ["SELECT"]}),
        {"name": "old_app", "state": "absent"},
    ]
    assert rds_users.problems(DATABASES, logins, "master") == []


@pytest.mark.parametrize("name", ['app"; DROP ROLE master; --', "app;x", "app reader", "App", "app-reader", "9app",
                                  "", "x" * 64])
def test_unsafe_login_names_are_refused(name):
    found = rds_users.problems(DATABASES, [login(name=name)])
    assert any("login name" in problem for problem in found), found


@pytest.mark.parametrize("name", ["pg_reader", "rds_admin", "rdsadmin", "public", "current_user"])
def test_reserved_role_names_are_refused(name):
    found = rds_users.problems(DATABASES, [login(name=name)])
    assert any("reserved" in problem for problem in found), found


@pytest.mark.parametrize("field, value, expected", [
    ("name", "app;drop", "database name"),
    ("owner", "Owner", "owner role"),
    ("schemas", ["ok", "bad name"], "schema name"),
    ("schemas", ["pg_catalog"], "system schema"),
    ("name", "d" * 53, "longer than 52 bytes"),
])
def test_unsafe_database_declarations_are_refused(field, value, expected):
    database = {"name": "app", "schemas": ["app"], field: value}
    found = rds_users.problems([database], [])
    assert any(expected in problem for problem in found), found


@pytest.mark.parametrize("overrides, expected", [
    ({"profile": "admin"}, 'unknown profile "admin"'),
    ({"password": None}, "has no password source"),
    ({"password": ""}, "has no password source"),
    ({"password_secret": "s"}, "sets password and password_secret"),
    ({"iam_auth": True}, "sets password and iam_auth"),
    ({"databases": ["other"]}, 'database "other" is not declared'),
    ({"databases": []}, "list the databases"),
    ({"conn_limit": -2}, "conn_limit"),
    ({"conn_limit": "many"}, 'conn_limit "many" is not a connection limit'),
    ({"conn_limit": 2147483648}, "conn_limit"),
    ({"conn_limit": True}, "conn_limit"),
    ({"statement_timeout": "soon"}, "statement_timeout"),
    ({"statement_timeout": "30 sec"}, "statement_timeout"),
    ({"statement_timeout": "30S"}, "statement_timeout"),
    ({"statement_timeout": "25d"}, "at most 2147483647 ms"),
    ({"valid_until": "next tuesday"}, 'valid_until "next tuesday" is not a timestamp'),
    ({"valid_until": "2030-13-01"}, "valid_until"),
    ({"valid_until": "-infinity"}, "valid_until"),
    ({"password": 12345}, "is not a string; quote it"),
    ({"password_secret_key": "pw"}, "password_secret_key is only read with password_secret"),
    ({"databases": "app"}, "databases must be a list"),
    ({"search_path": ["app", "x;y"]}, "search_path[1]"),
    ({"profile": "custom"}, "profile custom needs privileges"),
    ({"privileges": {"tables": ["SELECT"]}}, "only read for profile custom"),
    ({"profile": "custom", "privileges": {"tables": ["DROP"]}}, "DROP cannot be granted on tables"),
    ({"state": "gone"}, "state"),
])
def test_bad_logins_are_refused_with_the_fix(overrides, expected):
    found = rds_users.problems(DATABASES, [login(**overrides)])
    assert any(expected in problem for problem in found), found


def test_absent_login_needs_no_password_or_profile():
    assert rds_users.problems(DATABASES, [{"name": "old_app", "state": "absent"}]) == []


def test_duplicates_master_and_group_names_are_refused():
    found = rds_users.problems(DATABASES, [login(), login(), login(name="master"), login(name="app_readonly")],
                               "master")
    assert any("declared twice" in problem for problem in found)
    assert any("master user" in problem for problem in found)
    assert any("group role" in problem for problem in found)


def test_messages_never_contain_the_password():
    found = rds_users.problems(DATABASES, [login(name="bad name", password="S3cret-value", iam_auth=True)])
    assert found and not any("S3cret-value" in problem for problem in found)


@pytest.mark.parametrize("value, expected", [
    (30000, 30000), ("30000", 30000), ("30s", 30000), ("5min", 300000), ("250ms", 250), ("1h", 3600000),
    ("2d", 172800000), ("soon", None), (-1, None), (True, None), (None, None),
    ("30 s", 30000), ("1.5s", 1500), ("2500us", 2), ("0", 0), ("24d", 2073600000), ("25d", None), ("30S", None),
    (2147483648, None),
])
def test_statement_timeout_in_milliseconds(value, expected):
    assert rds_users.statement_timeout_ms(value) == expected


def test_plan_groups_and_memberships():
    plan = rds_users.desired_state(DATABASES, [login()], "master")
    assert [group["name"] for group in plan["groups"]] == ["app_owner", "app_readonly", "app_readwrite",
                                                           "app_monitoring"]
    assert plan["group_memberships"] == [
        {"groups": ["app_owner"], "target_roles": ["master"]},
        {"groups": ["pg_monitor"], "target_roles": ["app_monitoring"]},
    ]
    assert plan["databases"] == [{"name": "app", "owner": "app_owner", "schemas": ["app", "public"]}]
    assert plan["schemas"] == [{"database": "app", "name": "app", "owner": "app_owner"},
                               {"database": "app", "name": "public", "owner": "app_owner"}]
    assert {(item["type"], item["objs"], item["privs"]) for item in plan["hardening"]} == {
        ("database", "app", "ALL"), ("schema", "public", "CREATE")}
    assert all(item["roles"] == "PUBLIC" for item in plan["hardening"])


def _grants(plan, roles):
    return {(item["type"], item["objs"], item["schema"], item["privs"], item["target_roles"])
            for item in plan["privileges"] if roles in item["roles"].split(",")}


def test_readonly_reads_existing_and_future_tables_only():
    grants = _grants(rds_users.desired_state(DATABASES, [login()], "master"), "app_readonly")
    assert grants == {
        ("database", "app", None, "CONNECT", None),
        ("schema", "app,public", None, "USAGE", None),
        ("table", "ALL_IN_SCHEMA", "app", "SELECT", None),
        ("table", "ALL_IN_SCHEMA", "public", "SELECT", None),
        ("sequence", "ALL_IN_SCHEMA", "app", "SELECT", None),
        ("sequence", "ALL_IN_SCHEMA", "public", "SELECT", None),
        ("default_privs", "TABLES,SEQUENCES", None, "SELECT", "app_owner"),
    }


def test_readwrite_changes_rows_and_uses_sequences_but_gets_no_ddl():
    grants = _grants(rds_users.desired_state(DATABASES, [], "master"), "app_readwrite")
    privileges = {privilege for grant in grants for privilege in grant[3].split(",")}
    assert privileges == {"CONNECT", "USAGE", "SELECT", "INSERT", "UPDATE", "DELETE"}
    assert ("default_privs", "TABLES", None, "SELECT,INSERT,UPDATE,DELETE", "app_owner") in grants
    assert ("default_privs", "SEQUENCES", None, "USAGE,SELECT,UPDATE", "app_owner") in grants


def test_grants_shared_by_groups_take_one_call():
    plan = rds_users.desired_state(DATABASES, [], "master")
    connect = [item for item in plan["privileges"] if item["type"] == "database"]
    assert connect == [{"database": "app", "type": "database", "objs": "app", "schema": None, "privs": "CONNECT",
                        "roles": "app_readonly,app_readwrite,app_monitoring", "target_roles": None}]
    keys = [tuple(item[k] for k in ("database", "type", "objs", "schema", "privs", "target_roles"))
            for item in plan["privileges"]]
    assert len(keys) == len(set(keys))


def test_profiles_join_their_groups_and_iam_joins_rds_iam():
    logins = [login(), login(name="w", profile="readwrite"),
              login(name="o", profile="owner", password=None, iam_auth=True),
              login(name="m", profile="monitoring"),
              login(name="c", profile="custom", privileges={"tables": ["SELECT"]})]
    plan = rds_users.desired_state(DATABASES, logins, "master")
    groups = {item["name"]: item["groups"] for item in plan["logins"]}
    assert groups == {"app_reader": ["app_readonly"], "w": ["app_readwrite"], "o": ["app_owner", "rds_iam"],
                      "m": ["app_monitoring"], "c": []}
    assert plan["login_database_roles"] == [{"login": "o", "database": "app", "role": "app_owner"}]
    assert plan["extensions"] == [{"database": "app", "name": "pg_stat_statements"}]
    assert ("default_privs", "TABLES", None, "SELECT", "app_owner") in _grants(plan, "c")
    assert "pw" not in json.dumps(plan).replace("password", "")


def test_login_settings_are_stored_as_postgresql_prints_them():
    plan = rds_users.desired_state(DATABASES, [login(statement_timeout="30s", search_path=["app", "public"])], "master")
    assert plan["logins"][0]["configuration"] == {"statement_timeout": "30000", "search_path": "app, public"}


def test_absent_logins_reassign_to_each_database_owner():
    plan = rds_users.desired_state(DATABASES + [{"name": "other", "owner": "other_admin"}],
                                   [{"name": "old_app", "state": "absent"}], "master")
    assert plan["logins"] == []
    assert plan["absent_logins"] == [{"name": "old_app", "databases": [{"name": "app", "owner": "app_owner"},
                                                                       {"name": "other", "owner": "other_admin"}]}]


def test_applicable_keeps_what_check_mode_can_try():
    plan = rds_users.desired_state(DATABASES, [login()], "master")
    fresh = {"roles": ["master", "pg_monitor"], "databases": ["postgres"], "schemas": {}}
    assert rds_users.applicable(plan["privileges"], fresh) == []
    assert rds_users.applicable(plan["group_memberships"], fresh) == []
    assert rds_users.applicable(plan["logins"], fresh) == []
    done = {"roles": ["master", "pg_monitor", "app_owner", "app_readonly", "app_readwrite", "app_monitoring",
                      "app_reader"],
            "databases": ["postgres", "app"], "schemas": {"app": ["app", "public", "pg_catalog"]}}
    assert rds_users.applicable(plan["privileges"], done) == plan["privileges"]
    assert rds_users.applicable(plan["logins"], done) == plan["logins"]
    partly = dict(done, schemas={"app": ["public"]})
    kept = rds_users.applicable(plan["privileges"], partly)
    assert kept and all("app" not in (item["schema"] or "") for item in kept)
    assert not any(item["type"] == "schema" and item["objs"] == "app,public" for item in kept)


def test_todo_is_the_whole_plan_outside_check_mode():
    plan = rds_users.desired_state(DATABASES, [login()], "master")
    fresh = {"roles": ["master"], "databases": ["postgres"], "schemas": {}}
    assert rds_users.todo(plan, fresh, False) is plan
    checked = rds_users.todo(plan, fresh, True)
    assert checked["privileges"] == [] and checked["hardening"] == [] and checked["groups"] == []
    assert sorted(checked) == sorted(plan)


def test_pending_database_roles():
    items = [{"login": "o", "database": "app", "role": "app_owner"}]
    assert rds_users.pending_database_roles(items, []) == items
    assert rds_users.pending_database_roles(
        items, [{"role": "o", "database": "app", "config": ["role=app_owner"]}]) == []
    assert rds_users.pending_database_roles(
        items, [{"role": "o", "database": "other", "config": ["role=app_owner"]}]) == items


def test_stale_database_roles_of_former_owner_logins_are_reset():
    logins = [{"name": "o"}, {"name": "r"}]
    wanted = [{"login": "o", "database": "app", "role": "app_owner"}]
    settings = [
        {"role": "o", "database": "app", "config": ["role=app_owner"]},
        {"role": "r", "database": "app", "config": ["statement_timeout=1000", "role=app_owner"]},
        {"role": "r", "database": "other", "config": ["statement_timeout=1000"]},
        {"role": "someone_else", "database": "app", "config": ["role=app_owner"]},
    ]
    assert rds_users.stale_database_roles(settings, wanted, logins) == [{"login": "r", "database": "app"}]
    assert rds_users.stale_database_roles([], wanted, logins) == []


@pytest.mark.parametrize("settings, endpoints, expected", [
    ({"login_host": "db.local", "login_port": 6543, "login_user": "admin", "login_password": True}, {},
     {"host": "db.local", "port": 6543, "user": "admin", "db": "postgres", "secret": None, "problems": []}),
    ({"instance": "orders", "login_db": "orders"},
     {"orders": {"writer_endpoint": "10.0.0.5", "port": 5433, "secret_arn": "arn:secret", "master_username": "dba"}},
     {"host": "10.0.0.5", "port": 5433, "user": "dba", "db": "orders", "secret": "arn:secret", "problems": []}),
    ({"instance": "orders", "login_host": "127.0.0.1", "login_port": 0, "login_secret": "mine"},
     {"orders": {"writer_endpoint": "10.0.0.5", "port": 5433, "secret_arn": "arn:secret"}},
     {"host": "127.0.0.1", "port": 5433, "user": None, "db": "postgres", "secret": "mine", "problems": []}),
    ({"instance": "orders"},
     {"orders": {"writer_endpoint": "10.0.0.5", "port": 5433, "secret_arn": "arn:masked",
                 "secret_id": "rds-provision/orders/master",
                 "master_username": "dba"}},
     {"host": "10.0.0.5", "port": 5433, "user": "dba", "db": "postgres", "secret": "rds-provision/orders/master",
      "problems": []}),
])
def test_connection_prefers_explicit_values(settings, endpoints, expected):
    assert rds_users.connection(settings, endpoints) == expected


def test_connection_problems_name_the_variables():
    found = rds_users.connection({"instance": "nope"}, {"orders": {}})["problems"]
    assert any("rds_users_instance" in problem for problem in found)
    assert any("rds_users_login_host" in problem for problem in found)
    assert any("rds_users_login_password" in problem for problem in found)


@pytest.mark.parametrize("secret, key, expected", [
    ('{"username": "dba", "password": "p@ss"}', None, "p@ss"),
    ('{"pw": "x"}', "pw", "x"),
    ("plain-secret", None, "plain-secret"),
])
def test_secret_password(secret, key, expected):
    assert rds_users.secret_password(secret, key) == expected


@pytest.mark.parametrize("secret, key", [('{"user": "x"}', None), ("plain", "password")])
def test_secret_password_errors_say_what_to_change(secret, key):
    with pytest.raises(ValueError, match="password_secret_key"):
        rds_users.secret_password(secret, key)


def test_secret_username():
    assert rds_users.secret_username('{"username": "dba", "password": "x"}') == "dba"
    assert rds_users.secret_username("plain") is None


@pytest.mark.parametrize("value", ["2030-01-01", "2030-01-01 12:00:00+00", "2030-01-01T12:00:00Z", "infinity"])
def test_valid_until_takes_iso_timestamps_and_infinity(value):
    assert rds_users.problems(DATABASES, [login(valid_until=value)]) == []


@pytest.mark.parametrize("value, expected", [(10, 10), ("10", 10), (" -1 ", -1), (-2, None), ("x", None),
                                             (None, None), (1.5, None)])
def test_conn_limit(value, expected):
    assert rds_users.conn_limit(value) == expected


def test_entries_that_are_not_dictionaries_are_refused():
    found = rds_users.problems(["app"], ["app_reader"])
    assert any("rds_users_databases[0]: each database is a dictionary" in problem for problem in found), found
    assert any("rds_users_logins[0]: each login is a dictionary" in problem for problem in found), found
    assert rds_users.problems("app", []) == ["rds_users_databases and rds_users_logins must be lists of dictionaries."]


def test_logins_carry_normalised_limits_and_expiry():
    plan = rds_users.desired_state(DATABASES, [login(conn_limit="5", valid_until="2030-01-01")], "master")
    assert (plan["logins"][0]["conn_limit"], plan["logins"][0]["valid_until"]) == (5, "2030-01-01")
    assert plan["marker"] == rds_users.MARKER


def test_password_logins_are_new_ones_or_all_with_always():
    logins = [login(), login(name="w", password=None, password_secret="s", password_secret_key="k"),
              login(name="i", password=None, iam_auth=True), {"name": "old", "state": "absent"}]
    assert rds_users.password_logins(logins, ["app_reader"], "on_create") == [
        {"name": "w", "password_secret": "s", "password_secret_key": "k"}]
    assert [item["name"] for item in rds_users.password_logins(logins, ["app_reader", "w"], "always")] == [
        "app_reader", "w"]
    assert rds_users.password_logins(logins, ["app_reader", "w"], "on_create") == []


def test_verifiers_come_from_declarations_and_secrets_and_problems_hold_no_value():
    logins = [login(password="Plain-pw-1"), login(name="w", password=None, password_secret="s"),
              login(name="k", password=None, password_secret="t", password_secret_key="pw"),
              login(name="gone", password=None, password_secret="missing"),
              login(name="badkey", password=None, password_secret="u", password_secret_key="nope")]
    wanted = rds_users.password_logins(logins, [], "on_create")
    secrets = {"w": "Raw-secret-2", "k": '{"pw": "Json-secret-3"}', "gone": "", "badkey": '{"pw": "Hidden-4"}'}
    verifiers, found = rds_users.verifiers(logins, wanted, secrets)
    assert sorted(verifiers) == ["app_reader", "k", "w"]
    assert all(value.startswith("SCRAM-SHA-256$4096:") for value in verifiers.values())
    text = json.dumps([verifiers, found])
    assert not any(secret in text for secret in ("Plain-pw-1", "Raw-secret-2", "Json-secret-3", "Hidden-4"))
    assert any('secret "missing" of login "gone" was not found' in problem for problem in found), found
    assert any('"badkey"' in problem and "password_secret_key" in problem for problem in found), found


def test_master_credentials_from_the_secret():
    assert rds_users.master_credentials(None, '{"username": "dba", "password": "M-1"}', []) == (
        {"user": "dba", "password": "M-1"}, [])
    assert rds_users.master_credentials("admin", '{"username": "dba", "password": "M-1"}', [])[0]["user"] == "admin"
    credentials, found = rds_users.master_credentials(None, "plain-secret", [])
    assert credentials["password"] == "plain-secret" and any("master user is unknown" in p for p in found)
    unused, found = rds_users.master_credentials(None, '{"username": "dba"}', [login(name="dba")])
    assert any('without a "password" key' in p for p in found) and any("is the master user" in p for p in found)


def test_absent_logins_without_the_marker_are_refused():
    absent = [{"name": "mine"}, {"name": "theirs"}, {"name": "nobody"}]
    state = {"roles": ["mine", "theirs"], "role_comments": {"mine": rds_users.MARKER, "theirs": "DBA team"}}
    found = rds_users.unmarked_absent_logins(absent, state)
    assert len(found) == 1 and '"theirs" is declared absent but was not created by this role' in found[0]
    assert '"DBA team"' in found[0] and "nothing was dropped" in found[0]
