# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbre.rds.rds_users refuses bad declarations before it changes anything, naming the problem.

Every case runs through the role in one playbook (tests/integration/bad_inputs.py) against one lab instance. For each,
the error must name the problem (and never be "the output has been hidden", though some steps run with no_log), the
lab's call log must show only reads, no password may appear in the output, and PostgreSQL must be as it was: no role,
membership, database or setting created, changed or dropped. Most cases stop in the validation step, before any
connection; the last three read a secret or the catalog, and still change nothing.
"""

import json

import psycopg2
import pytest

from tests.integration.bad_inputs import assert_all_refused
from tests.integration.bad_inputs import run_role_cases
from tests.lab.clients import wait_instance

pytestmark = pytest.mark.lab

ROLE = "dbre.rds.rds_users"
IDENTIFIER = "users-bad-inputs"
MASTER = "dbmaster"
COLLEAGUE = "colleague_login"  # a login somebody else created, with a comment that is not the role's marker
PASSWORD = "Bad-input-pw-7c1e"
DATABASES = [{"name": "app", "schemas": ["app", "public"]}]


def login(**changes):
    return dict({"name": "app_reader", "profile": "readonly", "databases": ["app"], "password": PASSWORD}, **changes)


def logins(*entries, databases=None):
    return {"rds_users_logins": list(entries), "rds_users_databases": DATABASES if databases is None else databases}


CASES = [
    {"id": "unknown_profile", "vars": logins(login(profile="superuser")),
     "expect": ["value of profile must be one of: readonly, readwrite, owner, monitoring, custom, got: superuser"]},
    {"id": "sql_in_the_name", "vars": logins(login(name='app"; DROP ROLE dbmaster; --')),
     "expect": ["rds_users_logins[0].name", "is not a safe PostgreSQL identifier"]},
    {"id": "name_longer_than_63_bytes", "vars": logins(login(name="a" * 64)),
     "expect": ["rds_users_logins[0].name", "longer than 63 bytes"]},
    {"id": "reserved_name", "vars": logins(login(name="pg_reader")),
     "expect": ['the role name "pg_reader" is reserved']},
    {"id": "no_password_source", "vars": logins(login(password=None)),
     "expect": ['login "app_reader" has no password source', "set exactly one of password, password_secret"]},
    {"id": "two_password_sources", "vars": logins(login(iam_auth=True)),
     "expect": ['login "app_reader" sets password and iam_auth', "set exactly one password source"]},
    {"id": "valid_until_not_a_timestamp", "vars": logins(login(valid_until="next tuesday")),
     "expect": ['valid_until "next tuesday" is not a timestamp', "infinity"]},
    {"id": "statement_timeout_not_a_duration", "vars": logins(login(statement_timeout="30 sec")),
     "expect": ['statement_timeout "30 sec" is not a PostgreSQL duration', "ms, s, min, h or d"]},
    {"id": "statement_timeout_too_long", "vars": logins(login(statement_timeout="30d")),
     "expect": ['statement_timeout "30d"', "at most 2147483647 ms"]},
    {"id": "connection_limit_below_minus_one", "vars": logins(login(conn_limit=-5)),
     "expect": ['conn_limit "-5" is not a connection limit', "from -1 (no limit)"]},
    {"id": "login_declared_twice", "vars": logins(login(), login()),
     "expect": ['login "app_reader" is declared twice']},
    {"id": "database_not_declared", "vars": logins(login(databases=["billing"])),
     "expect": ['database "billing" is not declared in rds_users_databases']},
    {"id": "database_name_too_long", "vars": logins(databases=[{"name": "d" * 53}]),
     "expect": ["rds_users_databases[0].name", "longer than 52 bytes"]},
    {"id": "system_schema", "vars": logins(databases=[{"name": "app", "schemas": ["pg_catalog"]}]),
     "expect": ["rds_users_databases[0].schemas[0]: pg_catalog is a system schema"]},
    {"id": "master_user_as_a_login", "vars": logins(login(name=MASTER)),
     "expect": ['"dbmaster" is the master user this role connects as']},
    {"id": "custom_without_privileges", "vars": logins(login(profile="custom")),
     "expect": ["profile custom needs privileges"]},
    {"id": "privileges_on_a_group_profile", "vars": logins(login(privileges={"tables": ["SELECT"]})),
     "expect": ["privileges are only read for profile custom"]},
    {"id": "login_named_like_a_group", "vars": logins(login(name="app_readonly")),
     "expect": ['"app_readonly" is also the name of a group role']},
    {"id": "instance_not_in_endpoints", "vars": dict(logins(login()), rds_users_instance="nope",
                                                     rds_users_login_host=""),
     "expect": ['rds_users_instance: "nope" is not a key of rds_users_endpoints']},
    {"id": "port_out_of_range", "vars": dict(logins(login()), rds_users_login_port=70000),
     "expect": ['rds_users_login_port: "70000" is not a TCP port']},
    {"id": "update_password_unknown", "vars": dict(logins(login()), rds_users_update_password="sometimes"),
     "expect": ["value of rds_users_update_password must be one of: on_create, always, got: sometimes"]},
    # The master secret cannot be read: the lookup fails inside a no_log task, and the role shows its error.
    {"id": "master_secret_missing",
     "vars": dict(logins(login()), rds_users_login_password="", rds_users_login_secret="rds/does-not-exist"),
     "expect": ["rds_users: Read the master credentials from Secrets Manager failed", "rds/does-not-exist"]},
    # Valid declarations; the secret of the login cannot be read. Its lookup runs with no_log: the error must show.
    {"id": "login_secret_missing",
     "vars": logins(login(name="app_writer", password=None, password_secret="app/does-not-exist")),
     "expect": ['the secret "app/does-not-exist" of login "app_writer" was not found']},
    # Valid declarations; the login to drop exists but this role did not create it.
    {"id": "absent_login_not_ours", "vars": logins({"name": COLLEAGUE, "state": "absent"}),
     "expect": [f'"{COLLEAGUE}" is declared absent but was not created by this role', "nothing was dropped"]},
]


@pytest.fixture(scope="module")
def instance(lab):
    rds = lab.client("rds")
    rds.create_db_instance(DBInstanceIdentifier=IDENTIFIER, Engine="postgres", EngineVersion="15.7",
                           DBInstanceClass="db.t3.micro", MasterUsername=MASTER, MasterUserPassword="Master-pw-3f9a1",
                           DBName="app", AllocatedStorage=20)
    try:
        described = wait_instance(rds, IDENTIFIER, "available", timeout=120)
        info = {"host": described["Endpoint"]["Address"], "port": described["Endpoint"]["Port"],
                "password": "Master-pw-3f9a1"}
        with _master(info) as conn:
            conn.cursor().execute(f"CREATE ROLE {COLLEAGUE} LOGIN")
            conn.cursor().execute(f"COMMENT ON ROLE {COLLEAGUE} IS 'created by the DBA team'")
        yield info
    finally:
        rds.delete_db_instance(DBInstanceIdentifier=IDENTIFIER, SkipFinalSnapshot=True)


def _master(info, dbname="postgres"):
    conn = psycopg2.connect(host=info["host"], port=info["port"], user=MASTER, password=info["password"],
                            dbname=dbname, connect_timeout=5)
    conn.autocommit = True
    return conn


def _postgres_state(info):
    """Roles (with attributes and comments), memberships, databases, per-database settings and app's schemas."""
    queries = {
        "roles": "SELECT rolname, rolcanlogin, rolconnlimit, rolvaliduntil::text, rolconfig, "
                 "shobj_description(oid, 'pg_authid') FROM pg_roles ORDER BY 1",
        "members": "SELECT roleid::regrole::text, member::regrole::text FROM pg_auth_members ORDER BY 1, 2",
        "databases": "SELECT datname, datdba::regrole::text, datacl::text FROM pg_database ORDER BY 1",
        "settings": "SELECT setdatabase, setrole, setconfig FROM pg_db_role_setting ORDER BY 1, 2",
        "schemas": "SELECT nspname, nspowner::regrole::text, nspacl::text FROM pg_namespace ORDER BY 1",
    }
    conn = _master(info, "app")
    try:
        with conn.cursor() as cur:
            state = {}
            for key, sql in queries.items():
                cur.execute(sql)
                state[key] = cur.fetchall()
            return json.loads(json.dumps(state, default=str))
    finally:
        conn.close()


def test_bad_inputs_are_refused_before_any_change(lab, instance):
    play_vars = {"rds_users_login_host": instance["host"], "rds_users_login_port": instance["port"],
                 "rds_users_login_user": MASTER, "rds_users_login_password": instance["password"]}
    before = _postgres_state(instance)
    assert any(row[0] == COLLEAGUE for row in before["roles"])
    assert_all_refused(lab, run_role_cases, ROLE, CASES, play_vars=play_vars,
                       secrets=(PASSWORD, instance["password"]))
    assert _postgres_state(instance) == before
