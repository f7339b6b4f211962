# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one way dbre.rds modules connect to PostgreSQL: password or IAM token, host and port from the RDS endpoint."""

from __future__ import annotations

import time

try:
    import psycopg2

    HAS_PSYCOPG2 = True
except ImportError:
    psycopg2 = None
    HAS_PSYCOPG2 = False

SSL_MODES = ["allow", "disable", "prefer", "require", "verify-ca", "verify-full"]

# RDS IAM tokens are valid for 15 minutes; a drill renews its token well before that.
IAM_TOKEN_LIFETIME_SECONDS = 600


# Connection errors that waiting does not cure: the server (or libpq) said no for a reason that stays true.
# SQLSTATE: invalid_authorization_specification (no pg_hba.conf entry, a pg_hba reject), invalid_password,
# invalid_catalog_name (the database does not exist).
PERMANENT_SQLSTATES = frozenset(["28000", "28P01", "3D000"])
PERMANENT_MESSAGES = (
    "password authentication failed",
    "pam authentication failed",
    "no pg_hba.conf entry",
    "pg_hba.conf rejects connection",
    "server does not support ssl",
    "ssl is not enabled on the server",
    "ssl connection is required",
    "ssl off",
    "certificate verify failed",
    "root certificate file",
    "server certificate for",
    "no password supplied",
    "fe_sendauth",
)


def permanent_error(exc):
    """The server's (or libpq's) message when a connection error is permanent (authentication failed, the database
    or role does not exist, SSL refused or required, no pg_hba.conf entry), else None: waiting longer cannot help."""
    if exc is None:
        return None
    text = str(exc).strip()
    lowered = text.lower()
    code = getattr(exc, "pgcode", None)
    permanent = code in PERMANENT_SQLSTATES or any(words in lowered for words in PERMANENT_MESSAGES)
    if not permanent and "does not exist" in lowered and ("database \"" in lowered or "role \"" in lowered):
        permanent = True
    if not permanent:
        return None
    lines = []
    for line in text.splitlines():
        line = line.strip()
        # libpq puts "connection to server at ... failed:" before the server's words; keep the server's words.
        if line.lower().startswith("connection to server") and " failed: " in line:
            line = line.split(" failed: ", 1)[1].strip()
        if line:
            lines.append(line)
    fatal = [line for line in lines if line.upper().startswith(("FATAL:", "ERROR:"))]
    return (fatal[0] if fatal else lines[-1] if lines else type(exc).__name__)[:300]


def db_connection_argument_spec():
    """Options documented by the ``dbre.rds.db_connection`` doc fragment (names as in community.postgresql)."""
    return dict(
        login_host=dict(type="str"),
        login_port=dict(type="int"),
        login_user=dict(type="str"),
        login_password=dict(type="str", no_log=True),
        login_db=dict(type="str", default="postgres"),
        ssl_mode=dict(type="str", default="prefer", choices=SSL_MODES),
        ca_cert=dict(type="str", aliases=["ssl_rootcert"]),
        connect_timeout=dict(type="int", default=5),
        iam_auth=dict(type="bool", default=False),
    )


def connection_problems(params):
    """Problems with the DB connection options, as messages that say what to change."""
    problems = []
    if params.get("iam_auth") and params.get("login_password"):
        problems.append("login_password and iam_auth=true are mutually exclusive: IAM authentication uses a token")
    if params.get("ssl_mode") in ("verify-ca", "verify-full") and not params.get("ca_cert"):
        problems.append(f"ssl_mode={params['ssl_mode']} needs ca_cert (the RDS CA bundle) to verify the server")
    if params.get("connect_timeout") is not None and params["connect_timeout"] < 1:
        problems.append("connect_timeout must be at least 1 second (libpq ignores smaller values)")
    return problems


def has_credentials(params):
    """True when the options name a user and a way to authenticate, so the module can connect at all."""
    return bool(params.get("login_user")) and (bool(params.get("login_password")) or bool(params.get("iam_auth")))


def endpoint_of(described):
    """(host, port) of a described DB instance or cluster, whichever shape RDS returned."""
    if not described:
        return None, None
    endpoint = described.get("Endpoint")
    if isinstance(endpoint, dict):
        return endpoint.get("Address"), endpoint.get("Port")
    return endpoint, described.get("Port")


def connection_params(params, endpoint=(None, None), password=None, connect_timeout=None):
    """Keyword arguments for ``psycopg2.connect``: explicit login_host/login_port win over the tested endpoint."""
    host = params.get("login_host") or endpoint[0]
    port = params.get("login_port") or endpoint[1] or 5432
    kwargs = dict(
        host=host,
        port=int(port),
        user=params.get("login_user"),
        dbname=params.get("login_db") or "postgres",
        sslmode=params.get("ssl_mode") or "prefer",
        connect_timeout=int(connect_timeout or params.get("connect_timeout") or 5),
        application_name="dbre.rds",
    )
    secret = password if password is not None else params.get("login_password")
    if secret:
        kwargs["password"] = secret
    if params.get("ca_cert"):
        kwargs["sslrootcert"] = params["ca_cert"]
    if params.get("iam_auth") and kwargs["sslmode"] in ("disable", "allow", "prefer"):
        # RDS accepts IAM tokens over TLS only.
        kwargs["sslmode"] = "require"
    return kwargs


class Connector:
    """Opens PostgreSQL connections for one module run; with ``iam_auth`` it signs a token and renews it in time.

    ``token_signer(host, port, user)`` returns an IAM token (see :func:`iam_token_signer`); ``connect`` defaults to
    ``psycopg2.connect`` and is injectable for tests. The token is never returned or logged.
    """

    def __init__(self, params, endpoint=(None, None), token_signer=None, connect=None, monotonic=time.monotonic):
        self.params = params
        self.endpoint = endpoint
        self._token_signer = token_signer
        self._connect = connect
        self._monotonic = monotonic
        self._token = None
        self._token_at = None

    @property
    def target(self):
        """'host:port/db' for messages (no credentials)."""
        kwargs = connection_params(self.params, self.endpoint)
        return f"{kwargs['host']}:{kwargs['port']}/{kwargs['dbname']}"

    def _password(self, host, port, user):
        if not self.params.get("iam_auth"):
            return None
        if self._token_signer is None:
            raise ValueError("iam_auth=true needs a token signer")
        now = self._monotonic()
        if self._token is None or now - self._token_at > IAM_TOKEN_LIFETIME_SECONDS:
            self._token = self._token_signer(host, port, user)
            self._token_at = now
        return self._token

    def connect(self, connect_timeout=None, autocommit=True, **libpq_options):
        """A new connection (the caller closes it); ``libpq_options`` such as keepalives or options are passed on."""
        kwargs = connection_params(self.params, self.endpoint, connect_timeout=connect_timeout)
        kwargs.update(libpq_options)
        token = self._password(kwargs["host"], kwargs["port"], kwargs["user"])
        if token is not None:
            kwargs["password"] = token
        connect = self._connect or psycopg2.connect
        conn = connect(**kwargs)
        conn.autocommit = autocommit
        return conn


def with_connection(connector, action, **connect_options):
    """``action(conn)`` on a new connection of ``connector`` (anything with ``connect``), closed afterwards."""
    conn = connector.connect(**connect_options)
    try:
        return action(conn)
    finally:
        conn.close()


def iam_token_signer(rds, region):
    """A signer for :class:`Connector` that uses RDS's ``generate_db_auth_token`` (a local signature, no API call)."""

    def sign(host, port, user):
        return rds.generate_db_auth_token(DBHostname=host, Port=int(port), DBUsername=user, Region=region)

    return sign


def connector_for(module, params, endpoint=(None, None), rds=None):
    """The :class:`Connector` a module uses; fails the module when psycopg2 is missing or the options conflict."""
    if not HAS_PSYCOPG2:
        from ansible.module_utils.basic import missing_required_lib

        module.fail_json(msg=missing_required_lib("psycopg2 (or psycopg2-binary)"))
    problems = connection_problems(params)
    if problems:
        module.fail_json(msg="Invalid DB connection options: " + "; ".join(problems))
    signer = None
    if params.get("iam_auth"):
        signer = iam_token_signer(rds, module.region)
    return Connector(params, endpoint=endpoint, token_signer=signer)
