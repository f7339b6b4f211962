# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rds_users role against the lab's real PostgreSQL, checked the way an attacker would: by connecting as each login.

One lab DB instance (master password managed by RDS in Secrets Manager, an application table that exists before the
role runs, ``log_statement = all`` from its parameter group) serves the whole module; the tests run in file order:
SCRAM verifiers PostgreSQL accepts, check mode on the fresh database, the converge at -vvv, the second run and check
mode again, what each login can and cannot do, an absent login with a password rotation in the same run, a role the
role did not create refused for removal, and finally no password anywhere another login or the server log can read.
Bad inputs are in test_bad_inputs_users.py.
"""

import json
import os
import pathlib
import re
import subprocess
import sys
import threading
import time

import psycopg2
import psycopg2.errors
import pytest

from ansible_collections.dbre.rds.plugins.module_utils import scram
from tests.lab.clients import wait_instance

pytestmark = pytest.mark.lab

ROOT = pathlib.Path(__file__).resolve().parents[2]
IDENTIFIER = "users-it"
MASTER = "dbmaster"
PASSWORDS = {
    "app_reader": "Rd-7f3b9c2e-reader",
    "app_migrator": "Ow-1d8e4a6b-owner",
    "app_metrics": "Mo-5c2f7e9a-metrics",
    "app_reporting": "Cu-9a4b1c7d-custom",
    "app_legacy": "Lg-3e6d8f1a-legacy",
}
WRITER_SECRET = ("app/writer", "Wr-8b2c5d4e-from-secrets-manager")
ROTATED = ("app_reader", "Rd-2a9c4f6b-rotated")  # app_reader's password after the rotation run
PARAMETER_GROUP = "users-it-log-all"
PLAY = """---
- name: Least-privilege users on the lab instance
  hosts: localhost
  gather_facts: false
  roles:
    - role: dbre.rds.rds_users
"""


def logins(legacy_state="present", migrator_profile="owner"):
    return [
        {"name": "app_reader", "profile": "readonly", "databases": ["app"], "password": PASSWORDS["app_reader"],
         "statement_timeout": "30s", "search_path": ["app", "public"], "conn_limit": 10},
        {"name": "app_writer", "profile": "readwrite", "databases": ["app"], "password_secret": WRITER_SECRET[0],
         "valid_until": "2099-01-01"},
        {"name": "app_migrator", "profile": migrator_profile, "databases": ["app"],
         "password": PASSWORDS["app_migrator"]},
        {"name": "app_metrics", "profile": "monitoring", "databases": ["app"], "password": PASSWORDS["app_metrics"]},
        {"name": "app_iam", "profile": "readonly", "databases": ["app"], "iam_auth": True},
        {"name": "app_reporting", "profile": "custom", "databases": ["app"], "password": PASSWORDS["app_reporting"],
         "privileges": {"database": ["CONNECT"], "schemas": ["USAGE"], "tables": ["SELECT"]}},
        {"name": "app_legacy", "profile": "custom", "databases": ["app"], "password": PASSWORDS["app_legacy"],
         "privileges": {"database": ["CONNECT"], "schemas": ["USAGE", "CREATE"], "tables": ["SELECT"]},
         "state": legacy_state},
    ]


DATABASES = [{"name": "app", "owner": "app_owner", "schemas": ["app", "public"]}]


@pytest.fixture(scope="module")
def instance(lab):
    """A fresh lab instance with database app, a table owned by the master user and the writer's secret."""
    rds, secrets = lab.client("rds"), lab.client("secretsmanager")
    # Every statement in the server log, as a DBA debugging something would set it: no password may reach it.
    rds.create_db_parameter_group(DBParameterGroupName=PARAMETER_GROUP, DBParameterGroupFamily="postgres15",
                                  Description="log every statement")
    rds.modify_db_parameter_group(DBParameterGroupName=PARAMETER_GROUP, Parameters=[
        {"ParameterName": "log_statement", "ParameterValue": "all", "ApplyMethod": "immediate"}])
    rds.create_db_instance(DBInstanceIdentifier=IDENTIFIER, Engine="postgres", EngineVersion="15.7",
                           DBInstanceClass="db.t3.micro", MasterUsername=MASTER, ManageMasterUserPassword=True,
                           DBName="app", AllocatedStorage=20, DBParameterGroupName=PARAMETER_GROUP)
    try:
        described = wait_instance(rds, IDENTIFIER, "available", timeout=120)
        secret_arn = described["MasterUserSecret"]["SecretArn"]
        master_password = json.loads(secrets.get_secret_value(SecretId=secret_arn)["SecretString"])["password"]
        secrets.create_secret(Name=WRITER_SECRET[0], SecretString=json.dumps({"password": WRITER_SECRET[1]}))
        info = {
            "host": described["Endpoint"]["Address"],
            "port": described["Endpoint"]["Port"],
            "secret_arn": secret_arn,
            "master_password": master_password,
        }
        with _connect(info, MASTER, master_password) as conn:
            _run(conn, "CREATE TABLE public.orders (id serial PRIMARY KEY, item text)")
            _run(conn, "INSERT INTO public.orders (item) VALUES ('existing')")
        yield info
    finally:
        try:
            secrets.delete_secret(SecretId=WRITER_SECRET[0], ForceDeleteWithoutRecovery=True)
        except Exception:  # noqa: BLE001 - the secret may not have been created
            pass
        rds.delete_db_instance(DBInstanceIdentifier=IDENTIFIER, SkipFinalSnapshot=True)
        rds.delete_db_parameter_group(DBParameterGroupName=PARAMETER_GROUP)


class _Conn:
    def __init__(self, conn):
        self.conn = conn

    def __enter__(self):
        return self.conn

    def __exit__(self, *exc):
        self.conn.close()


def _connect(info, user, password, dbname="app"):
    conn = psycopg2.connect(host=info["host"], port=info["port"], user=user, password=password, dbname=dbname,
                            connect_timeout=5)
    conn.autocommit = True
    return _Conn(conn)


def _run(conn, sql, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else None


def _master(info, dbname="app"):
    return _connect(info, MASTER, info["master_password"], dbname)


def _role_vars(info, logins_list, **extra):
    variables = {
        "rds_users_instance": IDENTIFIER,
        # The shape rds_provision_endpoints has: the role reads the endpoint and the secret RDS manages from it.
        "rds_users_endpoints": {IDENTIFIER: {"writer_endpoint": info["host"], "port": info["port"],
                                             "secret_arn": info["secret_arn"], "master_username": MASTER}},
        "rds_users_databases": DATABASES,
        "rds_users_logins": logins_list,
    }
    variables.update(extra)
    return variables


def _playbook(lab, tmp_path, variables, *args):
    """Run the role; returns (returncode, output, seconds). Variables go through a file, never the command line."""
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    env = dict(os.environ)
    env.update(lab.env)
    env.update(ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build"), ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_PIPELINING="1", ANSIBLE_RETRY_FILES_ENABLED="0")
    command = [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), str(tmp_path / "play.yml"),
               "-i", "localhost,", "-c", "local", "-e", f"@{tmp_path / 'vars.json'}", *args]
    started = time.monotonic()
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    output = result.stdout + result.stderr
    return result.returncode, output, time.monotonic() - started


def _changed(output):
    match = re.search(r"localhost\s*:\s*ok=\d+\s+changed=(\d+)", output)
    assert match, output[-3000:]
    return int(match.group(1))


def _catalog(info):
    """What the role could change, as plain data: roles, memberships, settings, databases, schemas and ACLs."""
    with _master(info, "postgres") as conn:
        shared = {
            "roles": _run(conn, "SELECT rolname, rolcanlogin, rolconnlimit, rolvaliduntil::text, rolconfig "
                                "FROM pg_roles ORDER BY 1"),
            "members": _run(conn, "SELECT roleid::regrole::text, member::regrole::text FROM pg_auth_members "
                                  "ORDER BY 1, 2"),
            "settings": _run(conn, "SELECT setdatabase, setrole, setconfig FROM pg_db_role_setting ORDER BY 1, 2"),
            "databases": _run(conn, "SELECT datname, datdba::regrole::text, datacl::text FROM pg_database "
                                    "ORDER BY 1"),
        }
    with _master(info) as conn:
        shared["schemas"] = _run(conn, "SELECT nspname, nspowner::regrole::text, nspacl::text FROM pg_namespace "
                                       "ORDER BY 1")
        shared["default_acl"] = _run(conn, "SELECT defaclrole::regrole::text, defaclnamespace, defaclobjtype, "
                                           "defaclacl::text FROM pg_default_acl ORDER BY 1, 2, 3")
        shared["relations"] = _run(conn, "SELECT oid::regclass::text, relowner::regrole::text, relacl::text "
                                         "FROM pg_class WHERE relnamespace = 'public'::regnamespace ORDER BY 1")
        shared["extensions"] = _run(conn, "SELECT extname FROM pg_extension ORDER BY 1")
    return shared


class _ActivityWatch:
    """Every query text pg_stat_activity shows to ``user`` while a run goes on, polled from another thread."""

    def __init__(self, info, user, password):
        self.conn = _connect(info, user, password).conn
        self.queries = set()
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self):
        while not self._stop.is_set():
            for (query,) in _run(self.conn, "SELECT query FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                                            "AND query <> ''"):
                self.queries.add(query)
            self.polls += 1
            self._stop.wait(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)
        self.conn.close()


ACTIVITY = {}  # query texts pg_stat_activity showed during the runs that set passwords, by who was watching


def _denied(info, user, password, sql, dbname="app"):
    with _connect(info, user, password, dbname) as conn:
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            _run(conn, sql)


def test_verifiers_made_here_are_what_postgresql_accepts(instance):
    """A fixed-salt verifier, and SASLprep on non-ASCII passwords as PostgreSQL and libpq apply it: CREATE ROLE with
    the verifier, then log in with the password (and not with a near miss)."""
    cases = [("scram_ascii", "Plain-ASCII-pw-1", "Plain-ASCII-pw-2"),
             ("scram_nfkc", "\uff30\uff57-\u2168-caf\u00e9", "Pw-IX-caf\u00e9x"),  # full-width letters, roman nine
             ("scram_mapped", "soft\u00adhyphen\u00a0space-\u00e9", "softhyphen space-e"),
             ("scram_prohibited", "bell\u0007-\u00e9", "bell-\u00e9")]  # SASLprep refuses it: raw bytes, as PG
    with _master(instance) as conn:
        for name, password, unused_wrong in cases:
            _run(conn, f"DROP ROLE IF EXISTS {name}")
            verifier = scram.verifier(password, salt=bytes(range(16)))
            assert verifier.startswith("SCRAM-SHA-256$4096:AAECAwQFBgcICQoLDA0ODw==$")
            _run(conn, f"CREATE ROLE {name} LOGIN PASSWORD %s", (verifier,))  # PUBLIC still has CONNECT on app
    try:
        for name, password, wrong in cases:
            with _connect(instance, name, password) as conn:
                assert _run(conn, "SELECT current_user")[0][0] == name
            with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
                _connect(instance, name, wrong)
    finally:
        with _master(instance) as conn:
            for name, unused_password, unused_wrong in cases:
                _run(conn, f"DROP ROLE IF EXISTS {name}")


def test_check_mode_on_a_fresh_database_changes_nothing(lab, instance, tmp_path):
    before = _catalog(instance)
    returncode, output, unused_seconds = _playbook(lab, tmp_path, _role_vars(instance, logins()), "--check")
    assert returncode == 0, output[-5000:]
    assert _catalog(instance) == before


def test_converge_at_vvv_shows_no_password(lab, instance, tmp_path):
    with _ActivityWatch(instance, MASTER, instance["master_password"]) as watch:
        returncode, output, unused_seconds = _playbook(lab, tmp_path, _role_vars(instance, logins()), "-vvv")
    ACTIVITY["master during the converge"] = watch.queries
    assert returncode == 0, output[-5000:]
    assert _changed(output) > 0
    secrets = list(PASSWORDS.values()) + [WRITER_SECRET[1], instance["master_password"]]
    leaked = [secret for secret in secrets if secret in output]
    assert not leaked, f"{len(leaked)} password(s) appear in the -vvv output"
    assert "(censored due to no_log)" in output


def test_second_run_and_check_mode_again_change_nothing(lab, instance, tmp_path):
    # This time the master password is given directly instead of read from the secret RDS manages.
    variables = _role_vars(instance, logins(), rds_users_instance="", rds_users_login_host=instance["host"],
                           rds_users_login_port=instance["port"], rds_users_login_user=MASTER,
                           rds_users_login_password=instance["master_password"])
    returncode, output, unused_seconds = _playbook(lab, tmp_path, variables)
    assert returncode == 0, output[-5000:]
    assert _changed(output) == 0, output[-5000:]
    returncode, output, unused_seconds = _playbook(lab, tmp_path, variables, "--check")
    assert returncode == 0, output[-5000:]
    assert _changed(output) == 0, output[-5000:]


def test_a_play_without_rds_provision_describes_the_instance_and_reads_its_secret(lab, instance, tmp_path):
    # users.md's standalone run: only the instance's name; the role describes it and reads the secret RDS manages.
    variables = _role_vars(instance, logins(), rds_users_endpoints={})
    returncode, output, unused_seconds = _playbook(lab, tmp_path, variables, "--check")
    assert returncode == 0, output[-5000:]
    assert re.search(r"TASK \[dbre.rds.rds_users : Describe the DB instance\][^\n]*\nok:", output), output[-5000:]
    assert _changed(output) == 0, output[-5000:]


def test_owner_creates_tables_that_readonly_reads_later(instance):
    with _connect(instance, "app_migrator", PASSWORDS["app_migrator"]) as conn:
        assert _run(conn, "SELECT current_user")[0][0] == "app_owner"
        _run(conn, "CREATE TABLE app.shipments (id bigserial PRIMARY KEY, note text)")
        _run(conn, "INSERT INTO app.shipments (note) VALUES ('created after the role ran')")
        _run(conn, "CREATE TABLE public.audit_log (id int)")
    with _connect(instance, "app_reader", PASSWORDS["app_reader"]) as conn:
        assert _run(conn, "SELECT count(*) FROM app.shipments")[0][0] == 1
        assert _run(conn, "SELECT item FROM public.orders")[0][0] == "existing"
        assert _run(conn, "SELECT count(*) FROM audit_log")[0][0] == 0  # search_path app, public
        assert _run(conn, "SHOW statement_timeout")[0][0] == "30s"


@pytest.mark.parametrize("sql", [
    "INSERT INTO app.shipments (note) VALUES ('x')",
    "UPDATE public.orders SET item = 'x'",
    "DELETE FROM app.shipments",
    "TRUNCATE public.orders",
    "CREATE TABLE app.reader_table (id int)",
    "CREATE TABLE public.reader_table (id int)",
    "SELECT nextval('public.orders_id_seq')",
])
def test_readonly_cannot_change_anything(instance, sql):
    _denied(instance, "app_reader", PASSWORDS["app_reader"], sql)


def test_readwrite_changes_rows_and_uses_sequences(instance):
    with _connect(instance, "app_writer", WRITER_SECRET[1]) as conn:
        _run(conn, "INSERT INTO public.orders (item) VALUES ('written')")
        _run(conn, "INSERT INTO app.shipments (note) VALUES ('written')")
        _run(conn, "UPDATE app.shipments SET note = 'updated' WHERE note = 'written'")
        _run(conn, "DELETE FROM public.orders WHERE item = 'written'")
        assert _run(conn, "SELECT nextval('app.shipments_id_seq')")[0][0] > 1
        assert _run(conn, "SELECT count(*) FROM app.shipments WHERE note = 'updated'")[0][0] == 1


@pytest.mark.parametrize("sql", [
    "CREATE TABLE app.writer_table (id int)",
    "CREATE TABLE public.writer_table (id int)",
    "DROP TABLE app.shipments",
    "DROP TABLE public.orders",
    "TRUNCATE app.shipments",
])
def test_readwrite_cannot_create_or_drop(instance, sql):
    _denied(instance, "app_writer", WRITER_SECRET[1], sql)


def test_monitoring_reads_statements_and_other_sessions(instance):
    marker = "users_it_marker_4711"
    with _connect(instance, "app_reader", PASSWORDS["app_reader"]) as other:
        _run(other, f"SELECT 1 AS {marker}")
        with _connect(instance, "app_metrics", PASSWORDS["app_metrics"]) as conn:
            activity = _run(conn, "SELECT query FROM pg_stat_activity WHERE usename = 'app_reader'")
            assert any(marker in row[0] for row in activity), activity
            statements = _run(conn, "SELECT query FROM pg_stat_statements WHERE query LIKE %s",
                              (f"%{marker}%",))
            assert statements, "pg_stat_statements did not show another login's statement"


def test_public_cannot_create_in_schema_public_or_connect(instance):
    with _master(instance) as conn:
        assert _run(conn, "SELECT has_schema_privilege('public', 'public', 'CREATE')")[0][0] is False
        assert _run(conn, "SELECT has_database_privilege('public', 'app', 'CONNECT')")[0][0] is False
        assert _run(conn, "SELECT has_database_privilege('public', 'app', 'TEMPORARY')")[0][0] is False
    # A custom login with only USAGE on its schemas cannot create in public either.
    _denied(instance, "app_reporting", PASSWORDS["app_reporting"], "CREATE TABLE public.reporting_table (id int)")
    with _connect(instance, "app_reporting", PASSWORDS["app_reporting"]) as conn:
        assert _run(conn, "SELECT count(*) FROM app.shipments")[0][0] >= 1
    _denied(instance, "app_reporting", PASSWORDS["app_reporting"], "UPDATE app.shipments SET note = 'x'")


def test_iam_login_is_a_member_of_rds_iam_and_nobody_is_superuser(instance):
    with _master(instance) as conn:
        members = _run(conn, "SELECT pg_has_role('app_iam', 'rds_iam', 'MEMBER'), "
                             "pg_has_role('app_reader', 'rds_iam', 'MEMBER')")[0]
        assert members == (True, False)
        superusers = _run(conn, "SELECT rolname FROM pg_roles WHERE rolname LIKE 'app%%' AND rolsuper")
        assert superusers == []


def test_absent_login_is_removed_without_touching_other_objects(lab, instance, tmp_path):
    with _connect(instance, "app_legacy", PASSWORDS["app_legacy"]) as conn:
        _run(conn, "CREATE TABLE app.legacy_notes (id int)")
    # The same run demotes the owner login to readwrite: it must leave the owner group and stop acting as it; and it
    # rotates app_reader's password (update always), watched by the monitoring login as another tenant would.
    rotated = logins(legacy_state="absent", migrator_profile="readwrite")
    rotated[0]["password"] = ROTATED[1]
    variables = _role_vars(instance, rotated, rds_users_update_password="always")
    with _ActivityWatch(instance, "app_metrics", PASSWORDS["app_metrics"]) as watch:
        returncode, output, unused_seconds = _playbook(lab, tmp_path, variables)
    ACTIVITY["the monitoring login during the rotation"] = watch.queries
    assert returncode == 0, output[-5000:]
    assert _changed(output) > 0
    with _connect(instance, *ROTATED) as conn:
        assert _run(conn, "SELECT current_user")[0][0] == ROTATED[0]
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        _connect(instance, "app_reader", PASSWORDS["app_reader"])
    with pytest.raises(psycopg2.OperationalError):
        _connect(instance, "app_legacy", PASSWORDS["app_legacy"])
    with _master(instance) as conn:
        owners = dict(_run(conn, "SELECT relname, relowner::regrole::text FROM pg_class "
                                 "WHERE relname IN ('legacy_notes', 'shipments', 'orders')"))
        assert owners == {"legacy_notes": "app_owner", "shipments": "app_owner", "orders": MASTER}
        assert _run(conn, "SELECT count(*) FROM pg_roles WHERE rolname = 'app_legacy'")[0][0] == 0
    with _connect(instance, *ROTATED) as conn:
        assert _run(conn, "SELECT count(*) FROM app.legacy_notes")[0][0] == 0
    with _connect(instance, "app_migrator", PASSWORDS["app_migrator"]) as conn:
        assert _run(conn, "SELECT current_user, pg_has_role('app_owner', 'MEMBER'), "
                          "pg_has_role('app_readwrite', 'MEMBER')")[0] == ("app_migrator", False, True)
    _denied(instance, "app_migrator", PASSWORDS["app_migrator"], "CREATE TABLE app.demoted_table (id int)")


def test_absent_refuses_a_role_this_role_did_not_create(lab, instance, tmp_path):
    with _master(instance, "postgres") as conn:
        _run(conn, "CREATE ROLE colleague_login LOGIN")
        _run(conn, "COMMENT ON ROLE colleague_login IS 'DBA team, do not touch'")
    try:
        before = _catalog(instance)
        variables = _role_vars(instance, logins(legacy_state="absent", migrator_profile="readwrite")
                               + [{"name": "colleague_login", "state": "absent"}])
        returncode, output, unused_seconds = _playbook(lab, tmp_path, variables)
        assert returncode != 0
        text = " ".join(output.split())
        assert '"colleague_login" is declared absent but was not created by this role' in text, output[-3000:]
        assert "nothing was dropped" in text
        assert _catalog(instance) == before
    finally:
        with _master(instance, "postgres") as conn:
            _run(conn, "DROP ROLE IF EXISTS colleague_login")


def test_no_password_in_statistics_activity_or_server_log(lab, instance):
    """Last, after every run that set a password (the converge, the rotation): what the monitoring login and the
    master can read, and the server log with log_statement = all, hold no password of any login."""
    passwords = {**PASSWORDS, "app_writer": WRITER_SECRET[1], "app_reader (rotated)": ROTATED[1]}
    with _master(instance) as conn:
        assert _run(conn, "SHOW log_statement")[0][0] == "all"
        master_statements = [row[0] for row in _run(conn, "SELECT query FROM pg_stat_statements")]
        master_activity = [row[0] for row in _run(conn, "SELECT query FROM pg_stat_activity")]
    with _connect(instance, "app_metrics", PASSWORDS["app_metrics"]) as conn:
        monitoring_statements = [row[0] for row in _run(conn, "SELECT query FROM pg_stat_statements")]
        monitoring_activity = [row[0] for row in _run(conn, "SELECT query FROM pg_stat_activity")]
    server_log = lab.control.server_log(IDENTIFIER)
    sources = {
        "pg_stat_statements read by the master": "\n".join(master_statements),
        "pg_stat_statements read by the monitoring login": "\n".join(monitoring_statements),
        "pg_stat_activity read by the master": "\n".join(master_activity),
        "pg_stat_activity read by the monitoring login": "\n".join(monitoring_activity),
        "the server log": server_log,
        **{f"pg_stat_activity read by {who}": "\n".join(queries) for who, queries in ACTIVITY.items()},
    }
    leaks = sorted(f"{login} in {where}" for where, text in sources.items()
                   for login, password in passwords.items() if password in text)
    assert not leaks, "passwords found:\n" + "\n".join(leaks)
    # The places looked at did record the role's work, so finding nothing there means something.
    assert set(ACTIVITY) == {"master during the converge", "the monitoring login during the rotation"}
    assert all(any("pg_catalog" in query for query in queries) for queries in ACTIVITY.values()), ACTIVITY
    assert any("CREATE USER" in query and "SCRAM-SHA-256$" in query for query in monitoring_statements)
    assert "SCRAM-SHA-256$" in server_log and "ALTER USER" in server_log
