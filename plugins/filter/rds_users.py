# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure decisions of the rds_users role: input validation, the grants plan, and what check mode can predict.

Every function takes plain data (the role's variables, rows read from the catalog) and returns plain data, so the
role's tasks stay declarative and these rules are tested with plain pytest. Nothing here connects to PostgreSQL or AWS,
and no function returns a password except :func:`secret_password`, whose callers run with ``no_log: true``.
"""

from __future__ import annotations

import json
import re

PROFILES = ("readonly", "readwrite", "owner", "monitoring", "custom")
GROUP_PROFILES = ("readonly", "readwrite", "monitoring")

# Lower-case unquoted identifiers only: they need no quoting, so what a person reads in psql is what was declared.
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
MAX_IDENTIFIER_BYTES = 63
LONGEST_GROUP_SUFFIX = max(len("_" + profile) for profile in GROUP_PROFILES)
RESERVED_ROLE_NAMES = frozenset(("public", "none", "current_user", "session_user", "current_role", "all"))
RESERVED_ROLE_PREFIXES = ("pg_", "rds")  # pg_ is PostgreSQL's, rds* (rdsadmin, rds_superuser, rds_iam...) is RDS's
STATEMENT_TIMEOUT = re.compile(r"^\s*(\d+)\s*(ms|s|min|h|d)?\s*$")
TIMEOUT_UNITS_MS = {None: 1, "ms": 1, "s": 1000, "min": 60000, "h": 3600000, "d": 86400000}

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
    """``statement_timeout`` in milliseconds (30000, "30s", "5min"), or None when the value cannot be read."""
    if value is None:
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    match = STATEMENT_TIMEOUT.match(str(value))
    if not match:
        return None
    return int(match.group(1)) * TIMEOUT_UNITS_MS[match.group(2)]


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
    if login.get("conn_limit") is not None and (isinstance(login["conn_limit"], bool)
                                                or not isinstance(login["conn_limit"], int)
                                                or login["conn_limit"] < -1):
        problems.append(f"{where}: conn_limit must be an integer, -1 (no limit) or more.")
    if login.get("statement_timeout") is not None and statement_timeout_ms(login["statement_timeout"]) is None:
        problems.append(f"{where}: statement_timeout {json.dumps(str(login['statement_timeout']))} is not a "
                        "duration; write milliseconds (30000) or a number with ms, s, min, h or d (\"30s\").")
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
    for index, database in enumerate(databases or []):
        where = f"rds_users_databases[{index}]"
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
        for schema_index, schema in enumerate(database.get("schemas") or ["public"]):
            problem = _name_problem(f"{where}.schemas[{schema_index}]", schema, "schema name")
            if problem:
                found.append(problem)
            elif schema.startswith("pg_") or schema == "information_schema":
                found.append(f"{where}.schemas[{schema_index}]: {schema} is a system schema; declare your own.")
    groups = {group["name"] for group in _groups(databases or []) if group.get("name")}
    seen = set()
    for index, login in enumerate(logins or []):
        where = f"rds_users_logins[{index}]"
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


def plan(databases, logins, master_user=None):
    """The whole desired state: group roles, memberships, databases, schemas, hardening, grants and logins.

    Passwords are not part of the plan: the role keeps them in a separate no_log fact.
    """
    databases = databases or []
    by_name = {database["name"]: database for database in databases}
    result = {
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
            "conn_limit": login.get("conn_limit"),
            "valid_until": login.get("valid_until"),
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
    return {key: applicable(items, state) for key, items in plan_.items()}


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
                     f"(known: {', '.join(sorted(endpoints)) or 'none'}); run the rds_provision role first or set "
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
    return {
        "host": host,
        "port": int(settings.get("login_port") or endpoint.get("port") or 5432),
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


class FilterModule:
    """Filters of the dbre.rds.rds_users role."""

    def filters(self):
        return {
            "rds_users_problems": problems,
            "rds_users_plan": plan,
            "rds_users_todo": todo,
            "rds_users_pending_database_roles": pending_database_roles,
            "rds_users_stale_database_roles": stale_database_roles,
            "rds_users_connection": connection,
            "rds_users_secret_password": secret_password,
            "rds_users_secret_username": secret_username,
        }
