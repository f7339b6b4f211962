# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RDS Proxy for PostgreSQL: option checks, the comparable state of a proxy, and the plan from current to desired.

Pure functions over boto3-shaped dicts; ``rds_proxy`` does the calls. A proxy's declaration covers the proxy
itself (auth, TLS, timeouts, network, tags), its default target group's connection pool, the one instance or
cluster registered in that group, and its extra endpoints (never the default endpoint, which comes and goes with the
proxy). ``None`` in the declaration means "leave as it is", except where the module documents a default.
"""

from __future__ import annotations

import re

from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list
from ansible_collections.amazon.aws.plugins.module_utils.tagging import compare_aws_tags

from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import DEFAULT_TARGET_GROUP
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import identifier_problems

ENGINE_FAMILY = "POSTGRESQL"
PROXY_NAME_MAX = 60
ENDPOINT_NAME_MAX = 63
IAM_AUTH_MODES = ("DISABLED", "REQUIRED")
CLIENT_PASSWORD_AUTH_TYPES = ("POSTGRES_SCRAM_SHA_256", "POSTGRES_MD5")
TARGET_ROLES = ("READ_WRITE", "READ_ONLY")
SESSION_PINNING_FILTERS = ("EXCLUDE_VARIABLE_SETS",)
POSTGRES_ENGINES = ("postgres", "aurora-postgresql")
# The name DescribeDBProxyEndpoints may give the proxy's own endpoint (which also carries IsDefault).
DEFAULT_ENDPOINT_NAME = "default"

# The tag the module puts on every proxy and endpoint it creates; it deletes nothing that lacks it.
MANAGED_TAG_KEY = "dbre:managed-by"
MANAGED_TAG_VALUE = "rds_proxy"
MANAGED_TAGS = {MANAGED_TAG_KEY: MANAGED_TAG_VALUE}

# AWS's defaults for a new proxy's default target group (the module's defaults for the target_group option).
POOL_DEFAULTS = dict(max_connections_percent=100, max_idle_connections_percent=50, connection_borrow_timeout=120)
IDLE_CLIENT_TIMEOUT_RANGE = (1, 28800)
CONNECTION_BORROW_TIMEOUT_RANGE = (0, 3600)

_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[\w/+=.@-]+$")
_SUBNET_ID = re.compile(r"^subnet-[0-9a-f]+$")
_SECURITY_GROUP_ID = re.compile(r"^sg-[0-9a-f]+$")

# Statuses (DBProxyStatus, DBProxyEndpointStatus, TargetState) that waiting cannot turn into "available".
BROKEN_PROXY_STATES = frozenset(["incompatible-network", "insufficient-resource-limits", "suspended", "suspending"])
# TargetHealth reasons that say the proxy cannot reach or log in to its target until someone changes something.
PERMANENT_TARGET_REASONS = frozenset(["AUTH_FAILURE", "INVALID_REPLICATION_STATE", "UNSUPPORTED_ENGINE"])


# ---------------------------------------------------------------------------------------------------------- options

def _int_problem(value, what, low, high, unit="", advice=""):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return f"{what} must be a whole number from {low} to {high}{unit}, got {value!r}{advice}"
    return None


def _name_problems(name, what, maximum):
    """The RDS identifier rule (a letter first; letters, digits and hyphens; no double or trailing hyphen)."""
    return identifier_problems(name, what, maximum=maximum)


def pool_problems(pool):
    """What is wrong with the target_group option (a dict, or None when omitted)."""
    if pool is None:
        return []
    problems = []
    maximum, idle = pool.get("max_connections_percent"), pool.get("max_idle_connections_percent")
    for problem in (
        _int_problem(maximum, "target_group.max_connections_percent", 1, 100, " (percent)",
                     ": it is a share of the target's max_connections, 100 for all of them"),
        _int_problem(idle, "target_group.max_idle_connections_percent", 0, 100, " (percent)"),
        _int_problem(pool.get("connection_borrow_timeout"), "target_group.connection_borrow_timeout",
                     *CONNECTION_BORROW_TIMEOUT_RANGE, " seconds"),
    ):
        if problem:
            problems.append(problem)
    if not problems and maximum is not None and idle is not None and idle > maximum:
        problems.append(f"target_group.max_idle_connections_percent ({idle}) must not exceed "
                        f"target_group.max_connections_percent ({maximum}): lower it or raise the maximum")
    for pinning in pool.get("session_pinning_filters") or []:
        if pinning not in SESSION_PINNING_FILTERS:
            problems.append(f"target_group.session_pinning_filters item {pinning!r} is not a filter RDS Proxy knows: "
                            f"use {', '.join(SESSION_PINNING_FILTERS)}")
    return problems


def auth_problems(auth):
    """What is wrong with the auth option's shape (the secrets' existence is checked against Secrets Manager)."""
    problems = []
    seen = set()
    for index, item in enumerate(auth or []):
        where = f"auth[{index}]"
        arn = item.get("secret_arn")
        if not arn or not _SECRET_ARN.match(str(arn)):
            problems.append(f"{where}.secret_arn {arn!r} is not a Secrets Manager secret ARN "
                            "(arn:aws:secretsmanager:<region>:<account>:secret:<name>): give the ARN of the secret "
                            "that holds the database user's name and password")
        elif arn in seen:
            problems.append(f"{where}.secret_arn {arn} is given more than once: list each secret once")
        seen.add(arn)
        if item.get("iam_auth") not in IAM_AUTH_MODES:
            problems.append(f"{where}.iam_auth must be one of {', '.join(IAM_AUTH_MODES)}, "
                            f"got {item.get('iam_auth')!r}")
        if item.get("client_password_auth_type") not in CLIENT_PASSWORD_AUTH_TYPES:
            problems.append(f"{where}.client_password_auth_type must be one of "
                            f"{', '.join(CLIENT_PASSWORD_AUTH_TYPES)} for a PostgreSQL proxy, got "
                            f"{item.get('client_password_auth_type')!r}")
    return problems


def endpoint_problems(endpoints, proxy_name):
    problems = []
    seen = set()
    for index, item in enumerate(endpoints or []):
        where = f"endpoints[{index}]"
        name = item.get("name")
        problems += _name_problems(name, f"{where}.name", ENDPOINT_NAME_MAX)
        if str(name).lower() == DEFAULT_ENDPOINT_NAME:
            problems.append(f"{where}.name 'default' is the proxy's own endpoint, which comes with the proxy: "
                            "name the extra endpoint differently")
        if name and str(name).lower() == str(proxy_name).lower():
            problems.append(f"{where}.name {name!r} is the proxy's name: RDS refuses an endpoint named like its "
                            "proxy; name it differently")
        if name in seen:
            problems.append(f"{where}.name {name!r} is given more than once: list each endpoint once")
        seen.add(name)
        if item.get("target_role") not in TARGET_ROLES:
            problems.append(f"{where}.target_role must be one of {', '.join(TARGET_ROLES)}, "
                            f"got {item.get('target_role')!r}")
        problems += _network_problems(item, where)
    return problems


def _network_problems(params, where=""):
    prefix = f"{where}." if where else ""
    problems = []
    subnets = params.get("vpc_subnet_ids")
    if subnets is not None and not subnets:
        problems.append(f"{prefix}vpc_subnet_ids is empty: give the subnets (at least two Availability Zones) or "
                        "omit it")
    for subnet in subnets or []:
        if not _SUBNET_ID.match(str(subnet)):
            problems.append(f"{prefix}vpc_subnet_ids item {subnet!r} is not a subnet ID (subnet-...)")
    for group in params.get("vpc_security_group_ids") or []:
        if not _SECURITY_GROUP_ID.match(str(group)):
            problems.append(f"{prefix}vpc_security_group_ids item {group!r} is not a security group ID (sg-...)")
    return problems


def tag_problems(tags):
    problems = []
    for key, value in (tags or {}).items():
        if not str(key).strip() or len(str(key)) > 128:
            problems.append(f"tag key {key!r} must be 1 to 128 characters")
        elif str(key).lower().startswith("aws:"):
            problems.append(f"tag key {key!r}: the aws: prefix is reserved for AWS")
        if value is None or len(str(value)) > 256:
            problems.append(f"tag {key!r} needs a value of at most 256 characters (an empty string is fine)")
        elif key == MANAGED_TAG_KEY and value != MANAGED_TAG_VALUE:
            problems.append(f"tag {MANAGED_TAG_KEY} is the marker of what dbre.rds.rds_proxy manages: its value is "
                            f"{MANAGED_TAG_VALUE} (give that to adopt a proxy you own) or leave the tag out")
    return problems


def option_problems(params):
    """What is wrong with the options of rds_proxy that needs no AWS call; empty when they are valid."""
    problems = _name_problems(params.get("name"), "name", PROXY_NAME_MAX)
    if params.get("state") == "absent":
        return problems
    family = params.get("engine_family")
    if str(family or "").upper() != ENGINE_FAMILY:
        problems.append(f"engine_family {family!r} is not supported: this collection manages PostgreSQL proxies; "
                        f"use engine_family={ENGINE_FAMILY} (or omit it)")
    role = params.get("role_arn")
    if not role:
        problems.append("role_arn is required with state=present: give the ARN of the IAM role the proxy uses to "
                        "read its secrets (secretsmanager:GetSecretValue on them)")
    elif not _ROLE_ARN.match(str(role)):
        problems.append(f"role_arn {role!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
    if params.get("auth") is not None and not params["auth"]:
        problems.append("auth is empty: give at least one secret (secret_arn) the proxy logs in with")
    problems += auth_problems(params.get("auth"))
    problem = _int_problem(params.get("idle_client_timeout"), "idle_client_timeout", *IDLE_CLIENT_TIMEOUT_RANGE,
                           " seconds", " (1800, half an hour, is RDS's default)")
    if problem:
        problems.append(problem)
    problems += pool_problems(params.get("target_group"))
    problems += _network_problems(params)
    for key in ("db_instance_identifier", "db_cluster_identifier"):
        if params.get(key) is not None:
            problems += identifier_problems(params[key], key)
    problems += endpoint_problems(params.get("endpoints"), params.get("name"))
    problems += tag_problems(params.get("tags"))
    if params.get("wait_timeout") is not None and params["wait_timeout"] < 1:
        problems.append(f"wait_timeout must be at least 1 second, got {params['wait_timeout']}")
    if params.get("poll_interval") is not None and params["poll_interval"] <= 0:
        problems.append(f"poll_interval must be a positive number of seconds, got {params['poll_interval']}")
    return problems


def target_problem(kind, identifier, described):
    """Why the instance or cluster named as the proxy's target cannot be one (None when it can)."""
    what = "db_cluster_identifier" if kind == "cluster" else "db_instance_identifier"
    noun = "DB cluster" if kind == "cluster" else "DB instance"
    if described is None:
        return f"{what} {identifier!r}: no {noun} of that name exists in this region: check the identifier"
    engine = str(described.get("Engine") or "")
    if engine not in POSTGRES_ENGINES:
        return (f"{what} {identifier!r} runs {engine or 'an unknown engine'}, not PostgreSQL: this collection manages "
                "PostgreSQL proxies; name a postgres or aurora-postgresql target")
    if kind == "instance" and described.get("DBClusterIdentifier"):
        return (f"{what} {identifier!r} is a member of the Aurora cluster {described['DBClusterIdentifier']!r}: "
                f"register the cluster instead (db_cluster_identifier={described['DBClusterIdentifier']})")
    return None


def secret_problem(index, arn, found):
    """Why auth[index]'s secret cannot be used (None when it exists)."""
    if found:
        return None
    return (f"auth[{index}].secret_arn {arn}: no such secret in Secrets Manager: create the secret (username and "
            "password of the database user) first, or correct the ARN")


# ------------------------------------------------------------------------------------------------- desired, current

def _auth_entry(item):
    return dict(secret_arn=item.get("secret_arn"), iam_auth=item.get("iam_auth") or "DISABLED",
                client_password_auth_type=item.get("client_password_auth_type") or "POSTGRES_SCRAM_SHA_256",
                description=item.get("description") or "")


def normalise_auth(auth):
    """Auth entries (module options or DescribeDBProxies' UserAuthConfigInfo) as comparable dicts, by secret."""
    entries = []
    for item in auth or []:
        if "SecretArn" in item or "IAMAuth" in item:
            item = dict(secret_arn=item.get("SecretArn"), iam_auth=item.get("IAMAuth"),
                        client_password_auth_type=item.get("ClientPasswordAuthType"),
                        description=item.get("Description"))
        entries.append(_auth_entry(item))
    return sorted(entries, key=lambda e: str(e["secret_arn"]))


def normalise_pool(config):
    """A ConnectionPoolConfig(Info) as the target_group option's keys."""
    config = config or {}
    return dict(
        max_connections_percent=config.get("MaxConnectionsPercent", POOL_DEFAULTS["max_connections_percent"]),
        max_idle_connections_percent=config.get("MaxIdleConnectionsPercent",
                                                POOL_DEFAULTS["max_idle_connections_percent"]),
        connection_borrow_timeout=config.get("ConnectionBorrowTimeout", POOL_DEFAULTS["connection_borrow_timeout"]),
        init_query=config.get("InitQuery") or "",
        session_pinning_filters=sorted(config.get("SessionPinningFilters") or []),
    )


def registered_target(targets):
    """``{"db_instance_identifier": id}`` or ``{"db_cluster_identifier": id}`` from DescribeDBProxyTargets, or {}.

    A cluster target shows a TRACKED_CLUSTER entry (and an RDS_INSTANCE entry per member, carrying the cluster's
    TrackedClusterId); an instance target one RDS_INSTANCE entry with no TrackedClusterId.
    """
    for target in targets or []:
        if target.get("Type") == "TRACKED_CLUSTER":
            return dict(db_cluster_identifier=target.get("TrackedClusterId") or target.get("RdsResourceId"))
    for target in targets or []:
        if target.get("TrackedClusterId"):
            return dict(db_cluster_identifier=target["TrackedClusterId"])
    for target in targets or []:
        if target.get("Type", "RDS_INSTANCE") == "RDS_INSTANCE" and target.get("RdsResourceId"):
            return dict(db_instance_identifier=target["RdsResourceId"])
    return {}


def extra_endpoints(endpoints):
    """The proxy's endpoints other than its default one."""
    return [e for e in endpoints or []
            if not e.get("IsDefault") and e.get("DBProxyEndpointName") != DEFAULT_ENDPOINT_NAME]


def _endpoint_state(described):
    return dict(name=described["DBProxyEndpointName"], target_role=described.get("TargetRole") or "READ_WRITE",
                vpc_subnet_ids=sorted(described.get("VpcSubnetIds") or []),
                vpc_security_group_ids=sorted(described.get("VpcSecurityGroupIds") or []))


def current_state(proxy, tags=None, target_group=None, targets=None, endpoints=None):
    """The comparable state of a described proxy (DescribeDBProxies item) and what belongs to it; None when missing."""
    if not proxy:
        return None
    return dict(
        engine_family=proxy.get("EngineFamily"),
        auth=normalise_auth(proxy.get("Auth")),
        role_arn=proxy.get("RoleArn"),
        require_tls=bool(proxy.get("RequireTLS")),
        idle_client_timeout=proxy.get("IdleClientTimeout"),
        debug_logging=bool(proxy.get("DebugLogging")),
        vpc_subnet_ids=sorted(proxy.get("VpcSubnetIds") or []),
        vpc_security_group_ids=sorted(proxy.get("VpcSecurityGroupIds") or []),
        tags=dict(tags or {}),
        target_group=normalise_pool((target_group or {}).get("ConnectionPoolConfig")),
        target=registered_target(targets),
        endpoints=sorted((_endpoint_state(e) for e in extra_endpoints(endpoints)), key=lambda e: e["name"]),
    )


def desired_state(params):
    """The declaration the options make; None for a key means "leave as it is"."""
    if params.get("state") == "absent":
        return None
    pool = params.get("target_group")
    if pool is not None:
        pool = dict(
            max_connections_percent=pool.get("max_connections_percent"),
            max_idle_connections_percent=pool.get("max_idle_connections_percent"),
            connection_borrow_timeout=pool.get("connection_borrow_timeout"),
            init_query=pool.get("init_query"),
            session_pinning_filters=(sorted(pool["session_pinning_filters"])
                                     if pool.get("session_pinning_filters") is not None else None),
        )
        for key, value in POOL_DEFAULTS.items():
            if pool[key] is None:
                pool[key] = value
    target = None
    if params.get("db_instance_identifier"):
        target = dict(db_instance_identifier=params["db_instance_identifier"])
    elif params.get("db_cluster_identifier"):
        target = dict(db_cluster_identifier=params["db_cluster_identifier"])
    endpoints = None
    if params.get("endpoints") is not None:
        endpoints = sorted((dict(name=e["name"], target_role=e.get("target_role") or "READ_ONLY",
                                 vpc_subnet_ids=sorted(e["vpc_subnet_ids"]) if e.get("vpc_subnet_ids") else None,
                                 vpc_security_group_ids=(sorted(e["vpc_security_group_ids"])
                                                         if e.get("vpc_security_group_ids") is not None else None))
                            for e in params["endpoints"]), key=lambda e: e["name"])
    return dict(
        engine_family=str(params.get("engine_family") or ENGINE_FAMILY).upper(),
        auth=normalise_auth(params["auth"]) if params.get("auth") is not None else None,
        role_arn=params.get("role_arn"),
        require_tls=params.get("require_tls"),
        idle_client_timeout=params.get("idle_client_timeout"),
        debug_logging=params.get("debug_logging"),
        vpc_subnet_ids=sorted(params["vpc_subnet_ids"]) if params.get("vpc_subnet_ids") else None,
        vpc_security_group_ids=(sorted(params["vpc_security_group_ids"])
                                if params.get("vpc_security_group_ids") is not None else None),
        tags=dict(params["tags"]) if params.get("tags") is not None else None,
        target_group=pool,
        target=target,
        endpoints=endpoints,
    )


# ------------------------------------------------------------------------------------------------------------ plan

def _auth_request(entries):
    request = []
    for entry in entries:
        item = dict(AuthScheme="SECRETS", SecretArn=entry["secret_arn"], IAMAuth=entry["iam_auth"],
                    ClientPasswordAuthType=entry["client_password_auth_type"])
        if entry["description"]:
            item["Description"] = entry["description"]
        request.append(item)
    return request


def pool_request(pool):
    """ModifyDBProxyTargetGroup's ConnectionPoolConfig for a pool declaration: the three numbers always (so RDS
    derives none of them, for example the idle share from the maximum), the init query and pinning filters when
    declared."""
    config = dict(MaxConnectionsPercent=pool["max_connections_percent"],
                  MaxIdleConnectionsPercent=pool["max_idle_connections_percent"],
                  ConnectionBorrowTimeout=pool["connection_borrow_timeout"])
    if pool.get("init_query") is not None:
        config["InitQuery"] = pool["init_query"]
    if pool.get("session_pinning_filters") is not None:
        config["SessionPinningFilters"] = list(pool["session_pinning_filters"])
    return config


def endpoint_request(endpoint):
    request = dict(DBProxyEndpointName=endpoint["name"], TargetRole=endpoint["target_role"],
                   VpcSubnetIds=list(endpoint["vpc_subnet_ids"]), Tags=ansible_dict_to_boto3_tag_list(MANAGED_TAGS))
    if endpoint.get("vpc_security_group_ids") is not None:
        request["VpcSecurityGroupIds"] = list(endpoint["vpc_security_group_ids"])
    return request


def _merged(current_value, desired_value):
    return current_value if desired_value is None else desired_value


def state_problems(desired, current):
    """What the declaration lacks to create the proxy, and changes RDS cannot make to an existing proxy or endpoint,
    each with what to do instead."""
    if desired is None:
        return []
    if current is None:
        problems = []
        if not desired["auth"]:
            problems.append("auth is required to create the proxy: give at least one secret_arn (the database "
                            "user the proxy logs in as)")
        if not desired["vpc_subnet_ids"]:
            problems.append("vpc_subnet_ids is required to create the proxy: give subnets in at least two "
                            "Availability Zones of the target's VPC")
        return problems
    problems = []
    if desired["engine_family"] != current["engine_family"]:
        problems.append(f"engine_family cannot change from {current['engine_family']}: the proxy stays "
                        f"{current['engine_family']}")
    if desired["vpc_subnet_ids"] is not None and desired["vpc_subnet_ids"] != current["vpc_subnet_ids"]:
        problems.append("vpc_subnet_ids cannot change on an existing proxy (it has "
                        f"{', '.join(current['vpc_subnet_ids'])}): RDS has no call for it; remove the proxy "
                        "(state=absent) and create it again, or omit vpc_subnet_ids")
    existing = {e["name"]: e for e in current["endpoints"]}
    for endpoint in desired["endpoints"] or []:
        found = existing.get(endpoint["name"])
        if found is None:
            continue
        if endpoint["target_role"] != found["target_role"]:
            problems.append(f"endpoint {endpoint['name']}: target_role cannot change from {found['target_role']}: "
                            "give the endpoint a new name (the old one is then removed)")
        if endpoint["vpc_subnet_ids"] is not None and endpoint["vpc_subnet_ids"] != found["vpc_subnet_ids"]:
            problems.append(f"endpoint {endpoint['name']}: vpc_subnet_ids cannot change on an existing endpoint: "
                            "give the endpoint a new name (the old one is then removed)")
    return problems


def _no_change(current):
    return dict(action="none", changed=False, problems=[], create=None, modify={}, add_tags={}, remove_tags=[],
                pool=None, deregister=None, register=None, delete_endpoints=[], modify_endpoints=[],
                create_endpoints=[], before=current, after=current)


def plan_proxy(desired, current, purge_tags=True):
    """The calls that take ``current`` (from :func:`current_state`, None when missing) to ``desired`` (from
    :func:`desired_state`, None for state=absent).

    Returns a dict: action (create, update, delete or none), changed, problems (changes RDS cannot make; nothing
    may be called when there are any), create (CreateDBProxy arguments besides the name), modify (ModifyDBProxy
    arguments besides the name), add_tags, remove_tags, pool (ConnectionPoolConfig or None), deregister and register
    (``{"DBInstanceIdentifiers": [...]}`` or ``{"DBClusterIdentifiers": [...]}``, or None), delete_endpoints (names),
    modify_endpoints (ModifyDBProxyEndpoint arguments), create_endpoints (CreateDBProxyEndpoint arguments besides
    the proxy's name), before and after (for diff mode).
    """
    plan = _no_change(current)
    if desired is None:
        if current is not None:
            plan.update(action="delete", changed=True, after=None,
                        delete_endpoints=[e["name"] for e in current["endpoints"]])
        return plan
    plan["problems"] = state_problems(desired, current)
    if plan["problems"]:
        return plan

    base = current or dict(
        engine_family=desired["engine_family"], auth=[], role_arn=None, require_tls=False,
        idle_client_timeout=1800, debug_logging=False, vpc_subnet_ids=desired["vpc_subnet_ids"] or [],
        vpc_security_group_ids=[], tags={}, target_group=normalise_pool(None), target={}, endpoints=[])
    after = {key: _merged(base[key], desired.get(key)) for key in base}
    after["endpoints"] = base["endpoints"]

    if current is None:
        after["tags"] = dict(after["tags"], **MANAGED_TAGS)
        create = dict(EngineFamily=after["engine_family"], Auth=_auth_request(after["auth"]),
                      RoleArn=after["role_arn"], VpcSubnetIds=list(after["vpc_subnet_ids"]),
                      RequireTLS=after["require_tls"], IdleClientTimeout=after["idle_client_timeout"],
                      DebugLogging=after["debug_logging"])
        if desired["vpc_security_group_ids"]:
            create["VpcSecurityGroupIds"] = list(desired["vpc_security_group_ids"])
        create["Tags"] = ansible_dict_to_boto3_tag_list(dict(sorted(after["tags"].items())))
        plan.update(action="create", create=create)
    else:
        modify = {}
        for key, api in (("require_tls", "RequireTLS"), ("idle_client_timeout", "IdleClientTimeout"),
                         ("debug_logging", "DebugLogging"), ("role_arn", "RoleArn")):
            if after[key] != current[key]:
                modify[api] = after[key]
        if after["auth"] != current["auth"]:
            modify["Auth"] = _auth_request(after["auth"])
        if after["vpc_security_group_ids"] != current["vpc_security_group_ids"]:
            modify["SecurityGroups"] = list(after["vpc_security_group_ids"])
        add_tags, remove_tags = {}, []
        if desired["tags"] is not None:
            wanted_tags = dict(desired["tags"])
            if is_managed(current["tags"]):
                wanted_tags.update(MANAGED_TAGS)  # purge_tags never removes the marker
            add_tags, remove_tags = compare_aws_tags(current["tags"], wanted_tags, purge_tags=purge_tags)
            add_tags = {k: str(v) for k, v in add_tags.items()}
            remove_tags = sorted(remove_tags)
            tags_after = dict(current["tags"])
            tags_after.update(add_tags)
            for key in remove_tags:
                tags_after.pop(key, None)
            after["tags"] = tags_after
        plan.update(modify=modify, add_tags=add_tags, remove_tags=remove_tags)

    if desired["target_group"] is not None:
        wanted = dict(desired["target_group"])
        for key in ("init_query", "session_pinning_filters"):
            if wanted[key] is None:
                wanted[key] = base["target_group"][key]
        after["target_group"] = wanted
        if wanted != base["target_group"]:
            plan["pool"] = pool_request(desired["target_group"])

    if desired["target"] is not None and desired["target"] != base["target"]:
        plan["deregister"] = _target_request(base["target"]) if base["target"] else None
        plan["register"] = _target_request(desired["target"])
        after["target"] = dict(desired["target"])

    if desired["endpoints"] is not None:
        existing = {e["name"]: e for e in base["endpoints"]}
        wanted_names = {e["name"] for e in desired["endpoints"]}
        plan["delete_endpoints"] = sorted(name for name in existing if name not in wanted_names)
        endpoints_after = []
        for endpoint in desired["endpoints"]:
            found = existing.get(endpoint["name"])
            if found is None:
                endpoint = dict(endpoint, vpc_subnet_ids=endpoint["vpc_subnet_ids"] or after["vpc_subnet_ids"])
                plan["create_endpoints"].append(endpoint_request(endpoint))
                endpoints_after.append(dict(endpoint, vpc_security_group_ids=(
                    endpoint["vpc_security_group_ids"] if endpoint["vpc_security_group_ids"] is not None
                    else after["vpc_security_group_ids"])))
                continue
            groups = endpoint["vpc_security_group_ids"]
            if groups is not None and groups != found["vpc_security_group_ids"]:
                plan["modify_endpoints"].append(dict(DBProxyEndpointName=found["name"], VpcSecurityGroupIds=groups))
                found = dict(found, vpc_security_group_ids=groups)
            endpoints_after.append(found)
        after["endpoints"] = sorted(endpoints_after, key=lambda e: e["name"])

    problems = read_only_problems(after)
    if problems:
        return dict(_no_change(current), problems=problems)

    changed = _changed(plan)
    if current is not None:
        plan["action"] = "update" if changed else "none"
    plan.update(changed=changed, after=after)
    return plan


def _changed(plan):
    return bool(plan["create"] or plan["modify"] or plan["add_tags"] or plan["remove_tags"] or plan["pool"]
                or plan["register"] or plan["delete_endpoints"] or plan["modify_endpoints"]
                or plan["create_endpoints"])


# ------------------------------------------------------------------------------------------------------- ownership

def is_managed(tags):
    """Whether tags (a dict) carry the marker of what this module created (or what its owner adopted)."""
    return (tags or {}).get(MANAGED_TAG_KEY) == MANAGED_TAG_VALUE


def unmanaged_proxy_message(name):
    return (f"RDS proxy {name} was not created by dbre.rds.rds_proxy (no {MANAGED_TAG_KEY} tag); add the tag "
            f"({MANAGED_TAG_KEY}={MANAGED_TAG_VALUE}) if it is yours, then run again")


def unmanaged_endpoint_reason(name):
    return (f"endpoint {name} was not created by dbre.rds.rds_proxy (no {MANAGED_TAG_KEY}={MANAGED_TAG_VALUE} "
            "tag): left in place; delete it yourself, or add the tag if it is yours")


def limit_to_managed(name, plan, proxy_tags, endpoint_tags):
    """The proxy ``name``'s ``plan``, deleting only what carries the marker: returns ``(plan, skipped)``.

    ``proxy_tags`` are the proxy's tags, ``endpoint_tags`` ``{endpoint name: tags}`` of the endpoints the plan
    deletes (a name missing counts as unmarked). Removing the proxy (action delete) is refused, as a problem and a
    plan of nothing, when the proxy or one of its endpoints (RDS deletes them with the proxy) lacks the marker.
    Otherwise an unmarked endpoint is left in place and listed in ``skipped`` (``{"endpoint", "reason"}``).
    """
    unmarked = [endpoint for endpoint in plan["delete_endpoints"] if not is_managed(endpoint_tags.get(endpoint))]
    if plan["action"] == "delete":
        if not is_managed(proxy_tags):
            problems = [unmanaged_proxy_message(name)]
        else:
            problems = [f"endpoint {endpoint} was not created by dbre.rds.rds_proxy (no {MANAGED_TAG_KEY} tag) and "
                        "RDS deletes a proxy's endpoints with it: delete the endpoint yourself, or add the tag if "
                        "it is yours, then run again" for endpoint in unmarked]
        if problems:
            return dict(_no_change(plan["before"]), problems=problems), []
        return plan, []
    if not unmarked:
        return plan, []
    before = {e["name"]: e for e in (plan["before"] or {}).get("endpoints") or []}
    after = dict(plan["after"], endpoints=sorted(plan["after"]["endpoints"] + [before[e] for e in unmarked],
                                                 key=lambda e: e["name"]))
    plan = dict(plan, after=after, delete_endpoints=[e for e in plan["delete_endpoints"] if e not in unmarked])
    plan["changed"] = _changed(plan)
    if plan["action"] == "update" and not plan["changed"]:
        plan["action"] = "none"
    return plan, [dict(endpoint=e, reason=unmanaged_endpoint_reason(e)) for e in unmarked]


def read_only_problems(after):
    """READ_ONLY endpoints lead to the readers of an Aurora cluster: on a proxy in front of a DB instance every request
    through them fails (RDS creates them all the same)."""
    instance = (after.get("target") or {}).get("db_instance_identifier")
    if not instance:
        return []
    return [f"endpoint {e['name']} is READ_ONLY, but the proxy's target is the DB instance {instance}: read-only "
            "endpoints lead to the readers of an Aurora cluster and requests through them to an instance fail; "
            "give it target_role READ_WRITE, leave it out of endpoints, or register a cluster"
            for e in after.get("endpoints") or [] if e["target_role"] == "READ_ONLY"]


def _target_request(target):
    if target.get("db_cluster_identifier"):
        return dict(DBClusterIdentifiers=[target["db_cluster_identifier"]])
    return dict(DBInstanceIdentifiers=[target["db_instance_identifier"]])


def planned_actions(plan):
    """The RDS call names a plan makes, in the order the module makes them."""
    if plan["action"] == "delete":
        return ["DeleteDBProxyEndpoint"] * len(plan["delete_endpoints"]) + ["DeleteDBProxy"]
    actions = ["CreateDBProxy"] if plan["create"] else []
    actions += ["ModifyDBProxy"] if plan["modify"] else []
    actions += ["AddTagsToResource"] if plan["add_tags"] else []
    actions += ["RemoveTagsFromResource"] if plan["remove_tags"] else []
    actions += ["ModifyDBProxyTargetGroup"] if plan["pool"] else []
    actions += ["DeregisterDBProxyTargets"] if plan["deregister"] else []
    actions += ["RegisterDBProxyTargets"] if plan["register"] else []
    actions += ["DeleteDBProxyEndpoint"] * len(plan["delete_endpoints"])
    actions += ["ModifyDBProxyEndpoint"] * len(plan["modify_endpoints"])
    actions += ["CreateDBProxyEndpoint"] * len(plan["create_endpoints"])
    return actions


# ------------------------------------------------------------------------------------------------------------ waits

def _connected_targets(targets):
    """The targets the proxy connects to: instances (a cluster's TRACKED_CLUSTER entry has no health of its own;
    its members are listed beside it)."""
    return [t for t in targets or [] if t.get("Type") != "TRACKED_CLUSTER"]


def readiness(proxy, endpoints, targets):
    """What still keeps the proxy from serving: a list of ``"<what> <state>"`` (empty when everything is ready)."""
    if proxy is None:
        return ["proxy missing"]
    waiting = []
    if proxy.get("Status") != "available":
        waiting.append(f"proxy {proxy.get('Status')}")
    for endpoint in extra_endpoints(endpoints):
        if endpoint.get("Status") != "available":
            waiting.append(f"endpoint {endpoint['DBProxyEndpointName']} {endpoint.get('Status')}")
    for target in _connected_targets(targets):
        health = target.get("TargetHealth") or {}
        if health.get("State") != "AVAILABLE":
            name = target.get("RdsResourceId") or target.get("TrackedClusterId") or target.get("Endpoint")
            waiting.append(f"target {name} {health.get('State')}")
    return waiting


def readiness_stop_reason(proxy, endpoints, targets):
    """Why waiting for readiness cannot succeed (a broken status, a target that cannot log in), or None."""
    if proxy is not None and proxy.get("Status") in BROKEN_PROXY_STATES:
        return f"the proxy is {proxy['Status']}"
    for endpoint in extra_endpoints(endpoints):
        if endpoint.get("Status") in BROKEN_PROXY_STATES:
            return f"endpoint {endpoint['DBProxyEndpointName']} is {endpoint['Status']}"
    for target in _connected_targets(targets):
        health = target.get("TargetHealth") or {}
        if health.get("State") == "UNAVAILABLE" and health.get("Reason") in PERMANENT_TARGET_REASONS:
            name = target.get("RdsResourceId") or target.get("TrackedClusterId")
            return (f"target {name} is UNAVAILABLE ({health['Reason']}: {health.get('Description') or 'no detail'}); "
                    "check the secrets, the role's access to them and the target's engine")
    return None


# ------------------------------------------------------------------------------------------------------- check mode

def _predicted_target(target):
    if target.get("db_cluster_identifier"):
        cluster = target["db_cluster_identifier"]
        return dict(RdsResourceId=cluster, TrackedClusterId=cluster, Type="TRACKED_CLUSTER",
                    TargetHealth=dict(State="REGISTERING"))
    return dict(RdsResourceId=target["db_instance_identifier"], Type="RDS_INSTANCE",
                TargetHealth=dict(State="REGISTERING"))


def predicted_read(name, read, plan):
    """What the module would read after applying ``plan`` (check mode): the describes of ``read`` (proxy, tags,
    target_group, targets, endpoints) with the plan's ``after`` applied; new things show as creating/registering."""
    after = plan["after"]
    if after is None:
        return dict(proxy=None, tags={}, target_group=None, targets=[], endpoints=[])
    described = read.get("proxy") or {}
    proxy = dict(described, DBProxyName=name, Status=described.get("Status", "creating"),
                 EngineFamily=after["engine_family"], Auth=_auth_request(after["auth"]), RoleArn=after["role_arn"],
                 RequireTLS=after["require_tls"], IdleClientTimeout=after["idle_client_timeout"],
                 DebugLogging=after["debug_logging"], VpcSubnetIds=list(after["vpc_subnet_ids"]),
                 VpcSecurityGroupIds=list(after["vpc_security_group_ids"]))
    pool = after["target_group"]
    config = dict(MaxConnectionsPercent=pool["max_connections_percent"],
                  MaxIdleConnectionsPercent=pool["max_idle_connections_percent"],
                  ConnectionBorrowTimeout=pool["connection_borrow_timeout"],
                  SessionPinningFilters=list(pool["session_pinning_filters"]))
    if pool["init_query"]:
        config["InitQuery"] = pool["init_query"]
    new_group = dict(DBProxyName=name, TargetGroupName=DEFAULT_TARGET_GROUP, IsDefault=True, Status="available")
    target_group = dict(read.get("target_group") or new_group, ConnectionPoolConfig=config)
    before_target = (plan["before"] or {}).get("target") or {}
    targets = list(read.get("targets") or []) if after["target"] == before_target else (
        [_predicted_target(after["target"])] if after["target"] else [])
    kept = {e["name"]: e for e in after["endpoints"]}
    endpoints = []
    for endpoint in read.get("endpoints") or []:
        endpoint_name = endpoint.get("DBProxyEndpointName")
        if endpoint.get("IsDefault") or endpoint_name == DEFAULT_ENDPOINT_NAME:
            endpoints.append(endpoint)
        elif endpoint_name in kept:
            groups = kept.pop(endpoint_name)["vpc_security_group_ids"]
            endpoints.append(dict(endpoint, VpcSecurityGroupIds=list(groups)))
    for endpoint in sorted(kept.values(), key=lambda e: e["name"]):
        endpoints.append(dict(DBProxyEndpointName=endpoint["name"], DBProxyName=name, Status="creating",
                              TargetRole=endpoint["target_role"], VpcSubnetIds=list(endpoint["vpc_subnet_ids"]),
                              VpcSecurityGroupIds=list(endpoint["vpc_security_group_ids"] or []), IsDefault=False))
    return dict(proxy=proxy, tags=dict(after["tags"]), target_group=target_group, targets=targets,
                endpoints=endpoints)
