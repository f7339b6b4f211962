# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure decisions of the rds_users role: input validation, the grants plan, what check mode can predict, and the
SCRAM verifiers of the passwords a run sets.

Every function takes plain data (the role's variables, rows read from the catalog) and returns plain data; the role
reaches them through its one filter, ``dbre.rds.rds_users_plan`` (:func:`plan`), so its tasks stay declarative and these
rules are tested with plain pytest. Nothing here connects to PostgreSQL or AWS. Passwords only ever leave as SCRAM
verifiers (``verifiers``) or as the master password (``master``), and the filter's callers for those run with
``no_log: true``; no problem message holds a secret.
"""

from __future__ import annotations

import datetime
import json
import re

from ansible_collections.dbre.rds.plugins.module_utils import scram

PROFILES = ("readonly", "readwrite", "owner", "monitoring", "custom")
GROUP_PROFILES = ("readonly", "readwrite", "monitoring")

# Lower-case unquoted identifiers only: they need no quoting, so what a person reads in psql is what was declared.
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
MAX_IDENTIFIER_BYTES = 63
LONGEST_GROUP_SUFFIX = max(len("_" + profile) for profile in GROUP_PROFILES)
RESERVED_ROLE_NAMES = frozenset(("public", "none", "current_user", "session_user", "current_role", "all"))
RESERVED_ROLE_PREFIXES = ("pg_", "rds")  # pg_ is PostgreSQL's, rds* (rdsadmin, rds_superuser, rds_iam...) is RDS's
# PostgreSQL's syntax for a time setting whose base unit is the millisecond: a number, then a unit (case matters).
STATEMENT_TIMEOUT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?\s*$")
TIMEOUT_UNITS_MS = {None: 1, "us": 0.001, "ms": 1, "s": 1000, "min": 60000, "h": 3600000, "d": 86400000}
INT_MAX = 2147483647  # statement_timeout and CONNECTION LIMIT are 32-bit integers in PostgreSQL
# COMMENT ON ROLE set on every login the role creates or manages: state absent drops only roles that carry it.
MARKER = "managed by dbre.rds.rds_users"

PRIVILEGE_CHOICES = {
    "database": ("CONNECT", "TEMPORARY", "CREATE"),
    "schemas": ("USAGE", "CREATE"),
    "tables": ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"),
    "sequences": ("USAGE", "SELECT", "UPDATE"),
    "functions": ("EXECUTE",),
}

# What each group profile may do in every declared schema of its database. TRUNCATE is left out of readwrite on
# purpose: it bypasses row-level triggers and takes an ACCESS EXCLUSIVE lock, so it belongs to the owner.
PROFILE_PRIVILEGES = {
    "readonly": {"database": ["CONNECT"], "schemas": ["USAGE"], "tables": ["SELECT"], "sequences": ["SELECT"],
                 "functions": []},
    "readwrite": {"database": ["CONNECT"], "schemas": ["USAGE"], "tables": ["SELECT", "INSERT", "UPDATE", "DELETE"],
                  "sequences": ["USAGE", "SELECT", "UPDATE"], "functions": []},
    "monitoring": {"database": ["CONNECT"], "schemas": [], "tables": [], "sequences": [], "functions": []},
}
MONITORING_ROLE = "pg_monitor"
MONITORING_EXTENSION = "pg_stat_statements"
IAM_ROLE = "rds_iam"


def _name_problem(where, name, kind="name", role=False, max_bytes=MAX_IDENTIFIER_BYTES):
    """The problem with one identifier, or None. ``where`` says which variable holds it."""
    if not isinstance(name, str) or not name:
        return f"{where}: the {kind} is missing; give a lower-case PostgreSQL identifier such as app_reader."
    if not IDENTIFIER.match(name):
        return (f"{where}: the {kind} {json.dumps(name)} is not a safe PostgreSQL identifier; use lower-case letters, "
                "digits and underscores, starting with a letter or underscore (no quotes, semicolons, spaces, "
                "dashes or capitals).")
    if len(name.encode("utf-8")) > max_bytes:
        return (f"{where}: the {kind} {json.dumps(name)} is longer than {max_bytes} bytes; PostgreSQL would truncate "
                "it, choose a shorter one.")
    if role and (name in RESERVED_ROLE_NAMES or name.startswith(RESERVED_ROLE_PREFIXES)):
        return (f"{where}: the role name {json.dumps(name)} is reserved (PUBLIC and the like, pg_* for PostgreSQL, "
                "rds* for RDS); choose another name.")
    return None


def statement_timeout_ms(value):
    """``statement_timeout`` in milliseconds (30000, "30s", "1.5min", "500us"), rounded as PostgreSQL rounds it, or
    None when PostgreSQL would refuse the value (not a duration, or more than 2147483647 ms)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        milliseconds = value
    else:
        match = STATEMENT_TIMEOUT.match(str(value))
        if not match:
            return None
        milliseconds = round(float(match.group(1)) * TIMEOUT_UNITS_MS[match.group(2)])
    return milliseconds if 0 <= milliseconds <= INT_MAX else None


def conn_limit(value):
    """A connection limit as an integer (-1 means none), or None when it is not one PostgreSQL takes."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and re.match(r"^\s*-?\d+\s*$", value):
        value = int(value)
    if not isinstance(value, int) or not -1 <= value <= INT_MAX:
        return None
    return value


def valid_until_problem(value):
    """Why ``valid_until`` is not a timestamp the role passes to VALID UNTIL, or None. The role takes ISO 8601 (what
    PostgreSQL reads the same whatever its DateStyle) and ``infinity``."""
    if isinstance(value, (datetime.date, datetime.datetime)):
        return None
    text = str(value).strip()
    if text == "infinity":
        return None
    try:
        datetime.datetime.fromisoformat(text)
    except ValueError:
        return (f"valid_until {json.dumps(text)} is not a timestamp; write an ISO 8601 date or time such as "
                "\"2030-01-01\" or \"2030-01-01 12:00:00+00\", or \"infinity\" for no expiry.")
    return None


def _password_sources(login):
    return [key for key in ("password", "password_secret") if login.get(key)] + (
        ["iam_auth"] if login.get("iam_auth") else [])


def _login_problems(where, login, declared, master_user):
    problems = []
    name = login.get("name")
    problem = _name_problem(where + ".name", name, "login name", role=True)
    if problem:
        problems.append(problem)
    if master_user and name == master_user:
        problems.append(f"{where}: {json.dumps(name)} is the master user this role connects as; the role does not "
                        "manage it, declare another login.")
    profile = login.get("profile")
    state = login.get("state") or "present"
    if profile not in PROFILES and (state == "present" or profile is not None):
        problems.append(f"{where}: unknown profile {json.dumps(profile)}; use one of {', '.join(PROFILES)}.")
    if state not in ("present", "absent"):
        problems.append(f"{where}: state {json.dumps(state)} is not present or absent.")
    databases = login.get("databases") or []
    if not isinstance(databases, list):
        problems.append(f"{where}: databases must be a list of database names, such as [app].")
        databases = []
    if state == "present" and not databases:
        problems.append(f"{where}: list the databases (from rds_users_databases) this login works in.")
    for database in databases:
        if database not in declared:
            problems.append(f"{where}: database {json.dumps(database)} is not declared in rds_users_databases; "
                            "declare it there (with its owner and schemas) or remove it from the login.")
    sources = _password_sources(login)
    if state == "present" and not sources:
        problems.append(f"{where}: login {json.dumps(name)} has no password source; set exactly one of password, "
                        "password_secret (a Secrets Manager secret) or iam_auth: true.")
    if len(sources) > 1:
        problems.append(f"{where}: login {json.dumps(name)} sets {' and '.join(sources)}; set exactly one password "
                        "source.")
    if "password" in sources and not isinstance(login["password"], str):
        problems.append(f"{where}: the password of login {json.dumps(name)} is not a string; quote it in YAML.")
    if login.get("conn_limit") is not None and conn_limit(login["conn_limit"]) is None:
        problems.append(f"{where}: conn_limit {json.dumps(str(login['conn_limit']))} is not a connection limit; use "
                        f"an integer from -1 (no limit) to {INT_MAX}.")
    if login.get("valid_until") not in (None, ""):
        problem = valid_until_problem(login["valid_until"])
        if problem:
            problems.append(f"{where}: {problem}")
    if login.get("statement_timeout") is not None and statement_timeout_ms(login["statement_timeout"]) is None:
        problems.append(f"{where}: statement_timeout {json.dumps(str(login['statement_timeout']))} is not a "
                        "PostgreSQL duration; write milliseconds (30000) or a number with us, ms, s, min, h or d "
                        f"(\"30s\"), at most {INT_MAX} ms.")
    if login.get("password_secret_key") is not None and not login.get("password_secret"):
        problems.append(f"{where}: password_secret_key is only read with password_secret; remove it or set "
                        "password_secret.")
    for index, schema in enumerate(login.get("search_path") or []):
        problem = _name_problem(f"{where}.search_path[{index}]", schema, "schema name")
        if problem and schema != "$user":
            problems.append(problem)
    privileges = login.get("privileges")
    if profile == "custom" and not any((privileges or {}).values()):
        problems.append(f"{where}: profile custom needs privileges (database, schemas, tables, sequences, functions).")
    if privileges and profile != "custom":
        problems.append(f"{where}: privileges are only read for profile custom; profile {profile} grants its own set.")
    for kind, granted in (privileges or {}).items():
        if kind not in PRIVILEGE_CHOICES:
            problems.append(f"{where}.privileges: unknown key {json.dumps(kind)}; use {', '.join(PRIVILEGE_CHOICES)}.")
            continue
        unknown = [priv for priv in granted or [] if str(priv).upper() not in PRIVILEGE_CHOICES[kind]]
        if unknown:
            problems.append(f"{where}.privileges.{kind}: {', '.join(map(str, unknown))} cannot be granted on {kind}; "
                            f"use {', '.join(PRIVILEGE_CHOICES[kind])}.")
    return problems


def problems(databases, logins, master_user=None):
    """Every problem with the declarations, as messages naming the variable and the fix; empty when all is well."""
    found = []
    declared = {}
    if not isinstance(databases or [], list) or not isinstance(logins or [], list):
        return ["rds_users_databases and rds_users_logins must be lists of dictionaries."]
    for index, database in enumerate(databases or []):
        where = f"rds_users_databases[{index}]"
        if not isinstance(database, dict):
            found.append(f"{where}: each database is a dictionary with name, owner and schemas.")
            continue
        name = database.get("name")
        problem = _name_problem(where + ".name", name, "database name",
                                max_bytes=MAX_IDENTIFIER_BYTES - LONGEST_GROUP_SUFFIX)
        if problem:
            found.append(problem)
        if name in declared:
            found.append(f"{where}: database {json.dumps(name)} is declared twice; merge the two entries.")
        declared[name] = database
        owner = database.get("owner") or f"{name}_owner"
        problem = _name_problem(where + ".owner", owner, "owner role", role=True)
        if problem:
            found.append(problem)
        if not isinstance(database.get("schemas") or [], list):
            found.append(f"{where}.schemas: a list of schema names, such as [app, public].")
            continue
        for schema_index, schema in enumerate(database.get("schemas") or ["public"]):
            problem = _name_problem(f"{where}.schemas[{schema_index}]", schema, "schema name")
            if problem:
                found.append(problem)
            elif schema.startswith("pg_") or schema == "information_schema":
                found.append(f"{where}.schemas[{schema_index}]: {schema} is a system schema; declare your own.")
    groups = {group["name"] for group in _groups([db for db in databases or [] if isinstance(db, dict)])
              if group.get("name")}
    seen = set()
    for index, login in enumerate(logins or []):
        where = f"rds_users_logins[{index}]"
        if not isinstance(login, dict):
            found.append(f"{where}: each login is a dictionary with name, profile, databases and a password source.")
            continue
        found.extend(_login_problems(where, login, declared, master_user))
        name = login.get("name")
        if name in seen:
            found.append(f"{where}: login {json.dumps(name)} is declared twice; merge the two entries.")
        seen.add(name)
        if name in groups:
            found.append(f"{where}: {json.dumps(name)} is also the name of a group role this role manages; choose "
                         "another login name.")
    return found


def _owner(database):
    return database.get("owner") or f"{database['name']}_owner"


def _schemas(database):
    return list(database.get("schemas") or ["public"])


def _groups(databases):
    groups = []
    for database in databases:
        if not database.get("name"):
            continue
        groups.append({"name": _owner(database), "database": database["name"], "profile": "owner"})
        for profile in GROUP_PROFILES:
            groups.append({"name": f"{database['name']}_{profile}", "database": database["name"], "profile": profile})
    return groups


def profile_group(database, profile):
    """The NOLOGIN group role a login of ``profile`` joins in ``database`` (None for custom)."""
    if profile == "owner":
        return _owner(database)
    if profile in GROUP_PROFILES:
        return f"{database['name']}_{profile}"
    return None


def _grants(database, role, privileges, owner):
    """postgresql_privs items giving ``role`` ``privileges`` in every declared schema, now and on later objects.

    Default privileges are set database-wide for the owner role (no IN SCHEMA): whatever schema the owner role creates
    an object in, the grant follows it, and USAGE on the schema still decides who reaches it.
    """
    name = database["name"]
    schemas = _schemas(database)
    items = []
    if privileges.get("database"):
        items.append({"database": name, "type": "database", "objs": name, "schema": None,
                      "privs": ",".join(privileges["database"]), "roles": role, "target_roles": None})
    if privileges.get("schemas"):
        items.append({"database": name, "type": "schema", "objs": ",".join(schemas), "schema": None,
                      "privs": ",".join(privileges["schemas"]), "roles": role, "target_roles": None})
    for kind, object_type, default_objs in (("tables", "table", "TABLES"), ("sequences", "sequence", "SEQUENCES"),
                                            ("functions", "function", "FUNCTIONS")):
        if not privileges.get(kind):
            continue
        privs = ",".join(privileges[kind])
        for schema in schemas:
            items.append({"database": name, "type": object_type, "objs": "ALL_IN_SCHEMA", "schema": schema,
                          "privs": privs, "roles": role, "target_roles": None})
        items.append({"database": name, "type": "default_privs", "objs": default_objs, "schema": None,
                      "privs": privs, "roles": role, "target_roles": owner})
    return items


def merge_grants(items):
    """Fewer postgresql_privs calls for the same grants: one call per object and privilege set for all roles that
    get it, and one default-privileges call for object kinds that get the same privileges."""
    merged = {}
    for item in items:
        key = tuple(item.get(field) for field in ("database", "type", "objs", "schema", "privs", "target_roles"))
        if key in merged:
            roles = merged[key]["roles"].split(",")
            if item["roles"] not in roles:
                merged[key]["roles"] = ",".join(roles + [item["roles"]])
        else:
            merged[key] = dict(item)
    result = []
    defaults = {}
    for item in merged.values():
        if item["type"] != "default_privs":
            result.append(item)
            continue
        key = (item["database"], item["privs"], item["roles"], item["target_roles"])
        if key in defaults:
            defaults[key]["objs"] = ",".join([defaults[key]["objs"], item["objs"]])
        else:
            defaults[key] = item
            result.append(item)
    return result


def _password_source(login):
    if login.get("iam_auth"):
        return "iam"
    return "secret" if login.get("password_secret") else "password"


def _configuration(login):
    configuration = {}
    timeout = statement_timeout_ms(login.get("statement_timeout"))
    if timeout is not None:
        configuration["statement_timeout"] = str(timeout)
    if login.get("search_path"):
        # Stored unquoted (quote_configuration_values: false), as PostgreSQL prints it in pg_roles.rolconfig, so the
        # comparison on the next run matches; every entry was checked to be a plain identifier.
        configuration["search_path"] = ", ".join(login["search_path"])
    return configuration


def desired_state(databases, logins, master_user=None):
    """The whole desired state: group roles, memberships, databases, schemas, hardening, grants and logins.

    Passwords are not part of the plan: the role keeps them in a separate no_log fact.
    """
    databases = databases or []
    by_name = {database["name"]: database for database in databases}
    result = {
        "marker": MARKER,
        "groups": _groups(databases),
        "group_memberships": [],
        "databases": [],
        "schemas": [],
        "extensions": [],
        "hardening": [],
        "privileges": [],
        "logins": [],
        "login_database_roles": [],
        "absent_logins": [],
    }
    owners, monitoring_groups, grants = [], [], []
    monitored = set()
    for login in logins or []:
        if (login.get("state") or "present") == "present" and login.get("profile") == "monitoring":
            monitored.update(login.get("databases") or [])
    for database in databases:
        name, owner = database["name"], _owner(database)
        result["databases"].append({"name": name, "owner": owner, "schemas": _schemas(database)})
        owners.append(owner)
        monitoring_groups.append(f"{name}_monitoring")
        for schema in _schemas(database):
            result["schemas"].append({"database": name, "name": schema, "owner": owner})
        result["hardening"].append({"database": name, "type": "database", "objs": name, "schema": None,
                                    "privs": "ALL", "roles": "PUBLIC", "target_roles": None})
        result["hardening"].append({"database": name, "type": "schema", "objs": "public", "schema": None,
                                    "privs": "CREATE", "roles": "PUBLIC", "target_roles": None})
        for profile in GROUP_PROFILES:
            grants.extend(_grants(database, f"{name}_{profile}", PROFILE_PRIVILEGES[profile], owner))
        if name in monitored:
            result["extensions"].append({"database": name, "name": MONITORING_EXTENSION})
    for login in logins or []:
        name = login["name"]
        login_databases = [by_name[db] for db in login.get("databases") or [] if db in by_name]
        if (login.get("state") or "present") == "absent":
            result["absent_logins"].append({
                "name": name,
                "databases": [{"name": db["name"], "owner": _owner(db)} for db in databases],
            })
            continue
        profile = login["profile"]
        groups = [profile_group(db, profile) for db in login_databases if profile != "custom"]
        if login.get("iam_auth"):
            groups.append(IAM_ROLE)
        if profile == "custom":
            privileges = {kind: [str(priv).upper() for priv in granted or []]
                          for kind, granted in (login.get("privileges") or {}).items()}
            for db in login_databases:
                grants.extend(_grants(db, name, privileges, _owner(db)))
        if profile == "owner":
            # Sessions of an owner login act as the owner role, so the tables it creates belong to that role and the
            # default privileges given to readonly and readwrite cover them.
            for db in login_databases:
                result["login_database_roles"].append({"login": name, "database": db["name"], "role": _owner(db)})
        result["logins"].append({
            "name": name,
            "login": name,
            "profile": profile,
            "databases": [db["name"] for db in login_databases],
            "groups": sorted(set(groups)),
            "iam_auth": bool(login.get("iam_auth")),
            "password_source": _password_source(login),
            "conn_limit": conn_limit(login["conn_limit"]) if login.get("conn_limit") is not None else None,
            "valid_until": str(login["valid_until"]) if login.get("valid_until") not in (None, "") else None,
            "configuration": _configuration(login),
        })
    # The master user joins each owner role: on PostgreSQL 15 CREATEROLE alone does not let it create schemas for the
    # owner, set the owner's default privileges or grant on the owner's tables, on RDS as here.
    if master_user and owners:
        result["group_memberships"].append({"groups": sorted(set(owners)), "target_roles": [master_user]})
    if monitoring_groups:
        result["group_memberships"].append({"groups": [MONITORING_ROLE], "target_roles": monitoring_groups})
    result["privileges"] = merge_grants(grants)
    return result


PLAN_LISTS = ("groups", "group_memberships", "databases", "schemas", "extensions", "hardening", "privileges", "logins",
              "login_database_roles", "absent_logins")


def _names(value):
    if isinstance(value, (list, tuple)):
        return [str(name) for name in value]
    return [name for name in str(value or "").split(",") if name]


def applicable(items, state):
    """The plan items whose database, schemas and roles exist in ``state`` (what check mode can try honestly).

    ``state`` is what the role read from the catalog: ``{"roles": [...], "databases": [...], "schemas": {db: [...]}}``.
    In check mode nothing is created, so a grant on a schema the run would create cannot be tried; it is left out.
    """
    roles = set(state.get("roles") or [])
    databases = set(state.get("databases") or [])
    schemas = state.get("schemas") or {}
    kept = []
    for item in items or []:
        database = item.get("database")
        if database and database not in databases:
            continue
        needed_schemas = _names(item.get("schema"))
        if item.get("type") == "schema":
            needed_schemas = _names(item.get("objs"))
        if database and any(schema not in (schemas.get(database) or []) for schema in needed_schemas):
            continue
        needed = [role for key in ("roles", "target_roles", "groups", "role", "login", "owner")
                  for role in _names(item.get(key)) if role != "PUBLIC"]
        if any(role not in roles for role in needed):
            continue
        kept.append(item)
    return kept


def todo(plan_, state, check_mode):
    """The plan a run applies: all of it, or in check mode each list cut down to what :func:`applicable` keeps."""
    if not check_mode:
        return plan_
    return {key: applicable(items, state) if isinstance(items, list) else items for key, items in plan_.items()}


def pending_database_roles(items, settings):
    """The ``login_database_roles`` items whose ``role=`` setting is not yet in place.

    ``settings`` are rows of pg_db_role_setting: ``{"role": ..., "database": ..., "config": ["role=x", ...]}``.
    """
    current = {(row.get("role"), row.get("database")): row.get("config") or [] for row in settings or []}
    return [item for item in items or []
            if f"role={item['role']}" not in current.get((item["login"], item["database"]), [])]


def stale_database_roles(settings, login_database_roles, logins):
    """Per-database ``role=`` settings of managed logins that the plan no longer wants (an owner login whose profile
    changed), as ``{"login", "database"}`` items to reset; without the reset its sessions would try to act as a role
    the login is no longer a member of."""
    wanted = {(item["login"], item["database"]) for item in login_database_roles or []}
    managed = {login["name"] for login in logins or []}
    stale = []
    for row in settings or []:
        key = (row.get("role"), row.get("database"))
        if key[0] in managed and key not in wanted and any(
                str(entry).startswith("role=") for entry in row.get("config") or []):
            stale.append({"login": key[0], "database": key[1]})
    return stale


def connection(settings, endpoints=None):
    """The master connection: explicit ``rds_users_login_*`` values win over ``rds_users_endpoints[instance]``.

    Returns host, port, user, db, ssl options, the secret to read the master password from (when no password was
    given) and ``problems``. The password itself is not handled here.
    """
    settings = settings or {}
    endpoints = endpoints or {}
    instance = settings.get("instance")
    endpoint = endpoints.get(instance) or {} if instance else {}
    found = []
    if instance and instance not in endpoints:
        found.append(f"rds_users_instance: {json.dumps(instance)} is not a key of rds_users_endpoints "
                     f"(known: {', '.join(sorted(endpoints)) or 'none'}) and no DB instance or Aurora cluster of that "
                     "name exists in this account and region; check the name and the region, or set "
                     "rds_users_login_host and rds_users_login_port.")
    host = settings.get("login_host") or endpoint.get("writer_endpoint") or endpoint.get("endpoint")
    if not host:
        found.append("No database host: set rds_users_login_host, or rds_users_instance with rds_users_endpoints "
                     "(rds_provision_endpoints from the rds_provision role).")
    secret = None
    if not settings.get("login_password"):
        secret = settings.get("login_secret") or endpoint.get("secret_id") or endpoint.get("secret_arn")
        if not secret:
            found.append("No master password source: set rds_users_login_password (no_log), or "
                         "rds_users_login_secret, or rds_users_instance whose endpoint has the secret RDS manages.")
    user = settings.get("login_user") or endpoint.get("master_username")
    port = settings.get("login_port") or endpoint.get("port") or 5432
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        found.append(f"rds_users_login_port: {json.dumps(str(port))} is not a TCP port; use 1 to 65535, or 0 for the "
                     "endpoint's port.")
        port = 0
    timeout = settings.get("connect_timeout", 10)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
        found.append(f"rds_users_connect_timeout: {json.dumps(str(timeout))} is not a number of seconds; use 1 or "
                     "more.")
    return {
        "host": host,
        "port": port,
        "user": user,
        "db": settings.get("login_db") or "postgres",
        "secret": secret,
        "problems": found,
    }


def secret_password(secret_string, key=None):
    """The password held by a Secrets Manager secret string: a JSON object's ``key`` (``password`` by default), or
    the whole string when it is not a JSON object and no key was asked for."""
    try:
        value = json.loads(secret_string)
    except (TypeError, ValueError):
        value = None
    if isinstance(value, dict):
        field = key or "password"
        if field not in value:
            raise ValueError(f"the secret is a JSON object without the key {json.dumps(field)}; set "
                             "password_secret_key to the key that holds the password")
        return str(value[field])
    if key:
        raise ValueError(f"the secret is not a JSON object, so it has no key {json.dumps(key)}; remove "
                         "password_secret_key to use the whole secret string")
    return str(secret_string)


def secret_username(secret_string):
    """The ``username`` of a JSON secret (as RDS writes its managed master secret), or None."""
    try:
        value = json.loads(secret_string)
    except (TypeError, ValueError):
        return None
    return value.get("username") if isinstance(value, dict) else None


def unmarked_absent_logins(absent_logins, state):
    """Problems for logins declared absent that exist without the role's COMMENT ON ROLE marker: the role refuses to
    drop a role it did not create (a colleague's login, an application's role with the same name)."""
    roles = set(state.get("roles") or [])
    comments = state.get("role_comments") or {}
    return [f"rds_users_logins: {json.dumps(item['name'])} is declared absent but was not created by this role (its "
            f"comment is {json.dumps(comments.get(item['name']))}, not {json.dumps(MARKER)}); nothing was dropped. "
            "Drop it by hand if it really must go, or remove it from rds_users_logins."
            for item in absent_logins or [] if item["name"] in roles and comments.get(item["name"]) != MARKER]


def password_logins(logins, roles, update_password):
    """The present password logins whose password this run sets: each not yet created one, or all of them with
    ``rds_users_update_password: always``. Only names and where the password comes from, never the password."""
    existing = set(roles or [])
    return [{"name": login["name"], "password_secret": login.get("password_secret") or None,
             "password_secret_key": login.get("password_secret_key") or None}
            for login in logins or []
            if (login.get("state") or "present") == "present" and not login.get("iam_auth")
            and (update_password == "always" or login["name"] not in existing)]


def verifiers(logins, wanted, secret_strings):
    """SCRAM verifiers of the ``wanted`` logins' passwords (from the declaration or from the secret string read for
    it), and problems that name the login and the secret but never hold a value."""
    declared = {login.get("name"): login for login in logins or []}
    secret_strings = secret_strings or {}
    result, found = {}, []
    for item in wanted or []:
        name = item["name"]
        if item.get("password_secret"):
            secret_string = secret_strings.get(name)
            if secret_string in (None, "", []):
                found.append(f"rds_users_logins: the secret {json.dumps(item['password_secret'])} of login "
                             f"{json.dumps(name)} was not found or is empty (or access to it was denied); create it "
                             "or fix password_secret.")
                continue
            try:
                password = secret_password(secret_string, item.get("password_secret_key"))
            except ValueError as exc:
                found.append(f"rds_users_logins: the secret {json.dumps(item['password_secret'])} of login "
                             f"{json.dumps(name)}: {exc}.")
                continue
        else:
            password = declared.get(name, {}).get("password")
        if not isinstance(password, str) or not password:
            found.append(f"rds_users_logins: login {json.dumps(name)} has an empty password; set one.")
            continue
        result[name] = scram.verifier(password)
    return result, found


def master_credentials(master_user, secret_string, logins):
    """The master user (the one already known, else the secret's ``username``) and the secret's password."""
    found = []
    user = master_user or secret_username(secret_string)
    password = None
    try:
        password = secret_password(secret_string)
    except ValueError:
        found.append("The master secret (rds_users_login_secret, or the endpoint's secret) is a JSON object without a "
                     "\"password\" key; point it at a secret with username and password, as RDS writes it, or set "
                     "rds_users_login_password.")
    if not user:
        found.append("The master user is unknown: set rds_users_login_user, or use a secret with a \"username\" "
                     "key or an endpoint with master_username.")
    elif user in [login.get("name") for login in logins or []]:
        found.append(f"rds_users_logins: {json.dumps(user)} is the master user this role connects as; the role does "
                     "not manage it, declare another login.")
    return {"user": user or "", "password": password or ""}, found


def plan(databases, logins, master_user=None, settings=None, state=None, check_mode=False, secrets=None,
         master_secret=None):
    """Everything the role's tasks need, from what is known at each step; the one filter the role calls.

    - ``settings`` (the ``rds_users_login_*`` values, ``instance``, ``endpoints``, ``login_password`` as a bool):
      adds ``connection`` and its problems.
    - ``master_secret`` (the secret string read for the master user): adds ``master`` (``user``, ``password``);
      callers run with ``no_log``.
    - ``state`` (read from the catalog: ``roles``, ``databases``, ``schemas``, ``db_role_settings``,
      ``role_comments``): each list cut to what this run applies (:func:`todo`), ``absent_logins`` cut to the roles
      that exist, ``pending_database_roles``, ``stale_database_roles``, ``password_logins`` (with
      ``settings.update_password``), and problems for absent logins this role did not create.
    - ``secrets`` (login name to the secret string read for it) with ``state``: adds ``verifiers``, the SCRAM
      verifier of each password this run sets; callers run with ``no_log``.

    ``problems`` is always there; when it is not empty nothing else is (the declarations cannot be planned).
    """
    settings = settings or {}
    result = {}
    if settings:
        result["connection"] = connection(settings, settings.get("endpoints"))
        master_user = master_user or result["connection"]["user"]
    found = problems(databases, logins, master_user) + result.get("connection", {}).get("problems", [])
    if settings and not master_user and not result["connection"]["secret"]:
        found.append("The master user is unknown: set rds_users_login_user (or rds_users_instance whose endpoint "
                     "has master_username).")
    result["problems"] = found
    if found:
        return result
    if master_secret is not None:
        result["master"], more = master_credentials(master_user, master_secret, logins)
        found.extend(more)
    desired = desired_state(databases, logins, master_user)
    result.update(desired)
    if state is None:
        return result
    result.update(todo({key: desired[key] for key in PLAN_LISTS}, state, check_mode))
    existing = set(state.get("roles") or [])
    result["absent_logins"] = [item for item in result["absent_logins"] if item["name"] in existing]
    found.extend(unmarked_absent_logins(result["absent_logins"], state))
    result["pending_database_roles"] = pending_database_roles(result["login_database_roles"],
                                                              state.get("db_role_settings"))
    result["stale_database_roles"] = stale_database_roles(state.get("db_role_settings"),
                                                          desired["login_database_roles"], desired["logins"])
    result["password_logins"] = password_logins(logins, existing, settings.get("update_password") or "on_create")
    if secrets is not None:
        result["verifiers"], more = verifiers(logins, result["password_logins"], secrets)
        found.extend(more)
    return result
