# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
import pytest

from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import Connector
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import connection_params
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import connection_problems
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import endpoint_of
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import iam_token_signer
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import permanent_error


def params(**overrides):
    base = dict(login_host=None, login_port=None, login_user="app", login_password=None, login_db="postgres",
                ssl_mode="prefer", ca_cert=None, connect_timeout=5, iam_auth=False)
    base.update(overrides)
    return base


class FakeConnection:
    autocommit = False


class RecordingConnect:
    def __init__(self):
        self.calls = []

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        return FakeConnection()


class FakeRds:
    def __init__(self):
        self.calls = []

    def generate_db_auth_token(self, **kwargs):
        self.calls.append(kwargs)
        return f"token-{len(self.calls)}"


def test_host_and_port_default_to_the_rds_endpoint():
    kwargs = connection_params(params(login_password="pw"), endpoint=("db1.example", 5433))
    assert (kwargs["host"], kwargs["port"], kwargs["user"], kwargs["password"]) == ("db1.example", 5433, "app", "pw")


def test_explicit_login_host_and_port_win():
    kwargs = connection_params(params(login_host="proxy", login_port=6432), endpoint=("db1.example", 5433))
    assert (kwargs["host"], kwargs["port"]) == ("proxy", 6432)
    assert "password" not in kwargs


def test_iam_auth_uses_a_signed_token_as_password_and_requires_tls():
    rds = FakeRds()
    connect = RecordingConnect()
    connector = Connector(params(iam_auth=True), endpoint=("db1.example", 5432),
                          token_signer=iam_token_signer(rds, "eu-west-1"), connect=connect)
    conn = connector.connect()
    assert conn.autocommit is True
    assert rds.calls == [dict(DBHostname="db1.example", Port=5432, DBUsername="app", Region="eu-west-1")]
    assert connect.calls[0]["password"] == "token-1"
    assert connect.calls[0]["sslmode"] == "require"


def test_iam_token_is_reused_then_renewed_before_it_expires():
    rds = FakeRds()
    connect = RecordingConnect()
    now = [0.0]
    connector = Connector(params(iam_auth=True), endpoint=("h", 5432), token_signer=iam_token_signer(rds, "r"),
                          connect=connect, monotonic=lambda: now[0])
    connector.connect()
    now[0] = 300.0
    connector.connect()
    now[0] = 700.0
    connector.connect()
    assert [c["password"] for c in connect.calls] == ["token-1", "token-1", "token-2"]


def test_password_login_never_signs_a_token():
    rds = FakeRds()
    connect = RecordingConnect()
    Connector(params(login_password="pw"), endpoint=("h", 5432), token_signer=iam_token_signer(rds, "r"),
              connect=connect).connect(connect_timeout=1, keepalives_idle=5)
    assert rds.calls == []
    assert connect.calls[0]["password"] == "pw"
    assert connect.calls[0]["connect_timeout"] == 1
    assert connect.calls[0]["keepalives_idle"] == 5


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (dict(iam_auth=True, login_password="pw"), "mutually exclusive"),
        (dict(ssl_mode="verify-full"), "needs ca_cert"),
        (dict(connect_timeout=0), "at least 1 second"),
    ],
)
def test_conflicting_options_are_reported(overrides, fragment):
    problems = connection_problems(params(**overrides))
    assert len(problems) == 1 and fragment in problems[0]


def test_valid_options_have_no_problems():
    assert connection_problems(params(login_password="pw")) == []


@pytest.mark.parametrize(
    "described, expected",
    [
        ({"Endpoint": {"Address": "i.example", "Port": 5432}}, ("i.example", 5432)),
        ({"Endpoint": "c.cluster.example", "Port": 5433}, ("c.cluster.example", 5433)),
        (None, (None, None)),
    ],
)
def test_endpoint_of_instances_and_clusters(described, expected):
    assert endpoint_of(described) == expected


class ServerError(Exception):
    def __init__(self, text, pgcode=None):
        super().__init__(text)
        self.pgcode = pgcode


@pytest.mark.parametrize("exc, expected", [
    (ServerError('connection to server at "10.0.0.5", port 5432 failed: FATAL:  password authentication failed for '
                 'user "drill"'), 'FATAL:  password authentication failed for user "drill"'),
    (ServerError('connection to server at "h", port 5432 failed: FATAL:  database "nope" does not exist'),
     'FATAL:  database "nope" does not exist'),
    (ServerError('FATAL:  role "ghost" does not exist'), 'FATAL:  role "ghost" does not exist'),
    (ServerError('connection to server at "h", port 5432 failed: FATAL:  no pg_hba.conf entry for host "10.0.0.9", '
                 'user "drill", database "postgres", no encryption'), "no pg_hba.conf entry"),
    (ServerError("connection to server at \"h\", port 5432 failed: server does not support SSL, but SSL was "
                 "required"), "server does not support SSL, but SSL was required"),
    (ServerError("auth", pgcode="28P01"), "auth"),
    (ServerError('connection to server at "h", port 5432 failed: Connection refused'), None),
    (ServerError("timeout expired"), None),
    (ServerError("FATAL:  the database system is starting up", pgcode="57P03"), None),
    (ServerError('relation "dbre_rds_failover_probe" does not exist', pgcode="42P01"), None),
    (None, None),
], ids=["password", "database", "role", "pg_hba", "ssl-required", "sqlstate", "refused", "timeout", "starting-up",
        "missing-table", "none"])
def test_permanent_error_keeps_the_servers_words(exc, expected):
    found = permanent_error(exc)
    if expected is None:
        assert found is None
    else:
        assert expected in found and "connection to server at" not in found
