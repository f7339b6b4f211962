# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RDS Proxy: the API as AWS answers it, and a real pooler (``tests/lab/pgbouncer.py``) behind every POSTGRESQL proxy.

moto 5.2.5 keeps proxies (``backend.db_proxies``, tags by ARN) but answers everything ``available`` at once, checks
no input, has no ModifyDBProxy and no proxy endpoints. Here every proxy action is answered by the lab:

- CreateDBProxy / DescribeDBProxies / ModifyDBProxy / DeleteDBProxy, statuses from the ``proxy`` timing
  (``creating``, ``modifying``, ``deleting`` and then gone), ``InvalidDBProxyStateFault`` while not ``available``;
- the default target group: Describe/ModifyDBProxyTargetGroup(s) with ConnectionPoolConfig (AWS defaults 100 / 50 /
  120 s), RegisterDBProxyTargets / DeregisterDBProxyTargets / DescribeDBProxyTargets (an instance, or a cluster and
  its members with their roles; TargetHealth REGISTERING for the ``proxy`` timing, then AVAILABLE, or UNAVAILABLE
  while the target's PostgreSQL is down);
- Create/Describe/Modify/DeleteDBProxyEndpoint (READ_WRITE / READ_ONLY) and the default endpoint;
- AWS's errors for bad input (see ``_validate_*``).

A POSTGRESQL proxy's ``Endpoint`` (and each endpoint's) is a loopback address of its own on port 5432, served by the
proxy's PgBouncer (see pgbouncer.py). MYSQL and SQLSERVER proxies exist in the API only.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

from moto.core.utils import utcnow
from moto.iam.models import iam_backends
from moto.moto_api._internal import mock_random as random
from moto.rds import responses as rds_responses
from moto.rds.exceptions import (
    DBClusterNotFoundError,
    DBInstanceNotFoundError,
    DBProxyAlreadyExistsFault,
    DBProxyNotFoundFault,
    InvalidParameterCombination,
    InvalidParameterValue,
    RDSClientError,
)
from moto.rds.models import RDSBackend
from moto.secretsmanager.models import secretsmanager_backends

from tests.lab import pgbouncer
from tests.lab.fidelity._support import begin_phase, cluster_key, current_status, lab, pg_of_instance, replace

ENGINE_FAMILIES = ("POSTGRESQL", "MYSQL", "SQLSERVER")
POOL_DEFAULTS = {"MaxConnectionsPercent": 100, "MaxIdleConnectionsPercent": 50, "ConnectionBorrowTimeout": 120}
PINNING_FILTERS = ("EXCLUDE_VARIABLE_SETS",)
IAM_MODES = ("DISABLED", "REQUIRED", "ENABLED")
CLIENT_AUTH_TYPES = {"POSTGRESQL": ("POSTGRES_SCRAM_SHA_256", "POSTGRES_MD5"),
                     "MYSQL": ("MYSQL_NATIVE_PASSWORD", "MYSQL_CACHING_SHA2_PASSWORD"),
                     "SQLSERVER": ("SQL_SERVER_AUTHENTICATION",)}
MAX_ENDPOINTS = 20
KNOWN_KEYS = {"testing": "testing"}  # the lab's own credentials (lab_env, fixtures): every client signs with them


class _Fault(RDSClientError):
    def __init__(self, code: str, message: str):
        super().__init__(code, message)


class ProxyEndpoint:
    """A proxy endpoint (the default one or one made by CreateDBProxyEndpoint)."""

    def __init__(self, proxy, name: str, role: str, subnets, groups, is_default: bool, address: str | None):
        self.proxy, self.name, self.role, self.is_default, self.address = proxy, name, role, is_default, address
        self.subnets, self.groups = list(subnets or []), list(groups or [])
        self.created = utcnow()
        self.tags: list[dict] = []
        suffix = random.get_random_string(17, lower_case=True)
        self.arn = f"arn:aws:rds:{proxy.region}:{proxy.account_id}:db-proxy-endpoint:prx-endpoint-{suffix}"

    def hostname(self) -> str:
        """The loopback address serving it; AWS's host name when no pooler serves it (MYSQL, SQLSERVER)."""
        if self.address:
            return self.address
        if self.is_default:
            return self.proxy.endpoint
        return f"{self.name}.endpoint.proxy-{self.proxy.url_identifier}.{self.proxy.region}.rds.amazonaws.com"

    def describe(self) -> dict:
        return {"DBProxyEndpointName": self.name, "DBProxyEndpointArn": None if self.is_default else self.arn,
                "DBProxyName": self.proxy.db_proxy_name,
                "Status": current_status(self, "proxy-endpoint", self.name),
                "VpcId": self.proxy.vpc_id, "VpcSecurityGroupIds": self.groups, "VpcSubnetIds": self.subnets,
                "Endpoint": self.hostname(), "CreatedDate": self.created, "TargetRole": self.role,
                "IsDefault": self.is_default}


def _backend(response):
    return response.backend


def _proxy(backend, name: str | None):
    if not name or name not in backend.db_proxies:
        raise DBProxyNotFoundFault(name)
    return backend.db_proxies[name]


def _extra(proxy) -> dict:
    return proxy.__dict__.setdefault("_lab_proxy", {})


def _status(proxy) -> str:
    return current_status(proxy, "proxy", proxy.db_proxy_name)


def _require_available(proxy) -> None:
    status = _status(proxy)
    if status != "available":
        raise _Fault("InvalidDBProxyStateFault", f"DBProxy {proxy.db_proxy_name} is not in the available state "
                     f"(it is {status}).")


def _seconds() -> float:
    return lab().timing.seconds("proxy")


# ------------------------------------------------------------------------------------------------ validation

def _int(value, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidParameterValue(f"{name} must be an integer, not {value!r}.") from None


def _secret_value(account_id: str, region: str, arn: str) -> dict | None:
    try:
        value = secretsmanager_backends[account_id][region].get_secret_value(arn, None, None)
    except Exception:  # pylint: disable=broad-except  # moto's SecretNotFoundException and friends
        return None
    try:
        return json.loads(value.get("SecretString") or "{}")
    except ValueError:
        return {}


def _validate_auth(backend, family: str, auth) -> list[dict]:
    if not auth:
        raise InvalidParameterValue("Auth must contain at least one secret for DefaultAuthScheme NONE.")
    checked = []
    for item in auth:
        arn = item.get("SecretArn")
        if not arn:
            raise InvalidParameterValue("SecretArn is required in each Auth element.")
        if _secret_value(backend.account_id, backend.region_name, arn) is None:
            raise InvalidParameterValue(f"Secrets Manager secret {arn} does not exist or cannot be read.")
        scheme = item.get("AuthScheme") or "SECRETS"
        iam = item.get("IAMAuth") or "DISABLED"
        client = item.get("ClientPasswordAuthType") or CLIENT_AUTH_TYPES[family][0]
        if scheme != "SECRETS":
            raise InvalidParameterValue(f"AuthScheme {scheme} is not valid: SECRETS.")
        if iam not in IAM_MODES or (iam == "ENABLED" and family != "SQLSERVER"):
            raise InvalidParameterValue(f"IAMAuth {iam} is not valid for EngineFamily {family}.")
        if client not in CLIENT_AUTH_TYPES[family]:
            raise InvalidParameterValue(f"ClientPasswordAuthType {client} is not valid for EngineFamily {family}.")
        info = {"AuthScheme": scheme, "SecretArn": arn, "IAMAuth": iam, "ClientPasswordAuthType": client}
        for key in ("Description", "UserName"):
            if item.get(key):
                info[key] = item[key]
        checked.append(info)
    return checked


def _validate_idle(value) -> int | None:
    seconds = _int(value, "IdleClientTimeout")
    if seconds is not None and not 1 <= seconds <= 28800:
        raise InvalidParameterValue("IdleClientTimeout must be between 1 and 28800 seconds.")
    return seconds


def _validate_pool(current: dict, config: dict) -> dict:
    pool = dict(current)
    for key in ("MaxConnectionsPercent", "MaxIdleConnectionsPercent", "ConnectionBorrowTimeout"):
        value = _int((config or {}).get(key), key)
        if value is not None:
            pool[key] = value
    if not 1 <= pool["MaxConnectionsPercent"] <= 100:
        raise InvalidParameterValue("MaxConnectionsPercent must be between 1 and 100.")
    if not 0 <= pool["MaxIdleConnectionsPercent"] <= pool["MaxConnectionsPercent"]:
        raise InvalidParameterValue("MaxIdleConnectionsPercent must be between 0 and MaxConnectionsPercent "
                                    f"({pool['MaxConnectionsPercent']}).")
    if not 0 <= pool["ConnectionBorrowTimeout"] <= 3600:
        raise InvalidParameterValue("ConnectionBorrowTimeout must be between 0 and 3600 seconds.")
    if "SessionPinningFilters" in (config or {}):
        filters = list(config.get("SessionPinningFilters") or [])
        unknown = [f for f in filters if f not in PINNING_FILTERS]
        if unknown:
            raise InvalidParameterValue(f"SessionPinningFilters {unknown} are not valid: {list(PINNING_FILTERS)}.")
        pool["SessionPinningFilters"] = filters
    if "InitQuery" in (config or {}):
        pool["InitQuery"] = config.get("InitQuery") or ""
    return pool


# ------------------------------------------------------------------------------------------------ the pooler

def _target_pg(backend, proxy):
    """(PgCluster, instance or cluster) the proxy's target group points at (the current writer), or (None, None)."""
    target = _extra(proxy).get("target")
    if target is None:
        return None, None
    kind, identifier = target
    if kind == "cluster":
        cluster = backend.clusters.get(identifier)
        return (lab().pg_for(cluster_key(identifier)), cluster) if cluster else (None, None)
    database = backend.databases.get(identifier)
    return (pg_of_instance(database), database) if database else (None, None)


def _pool_settings(backend, proxy) -> dict:
    extra = _extra(proxy)
    pool = extra["pool"]
    settings = {"borrow_timeout": pool["ConnectionBorrowTimeout"], "init_query": pool.get("InitQuery"),
                "idle_client_timeout": proxy.idle_client_timeout, "debug_logging": bool(proxy.debug_logging)}
    pg, unused = _target_pg(backend, proxy)
    if pg is not None:
        try:
            max_connections = int(pg.show("max_connections"))
        except Exception:  # pylint: disable=broad-except  # down (failover): keep the size it had
            max_connections = extra.get("max_connections") or 100
        extra["max_connections"] = max_connections
        # The unix socket, not the instance's TCP endpoint: the proxy tracks the writer itself and never waits for
        # the endpoint's DNS record (the lab's dns_propagation refuses TCP logins only).
        settings["target"] = (str(pg.socket_dir), pg.port)
        settings["pool_size"] = max(1, max_connections * pool["MaxConnectionsPercent"] // 100)
    return settings


def _apply(backend, proxy) -> None:
    pooler = _extra(proxy).get("pooler")
    if pooler is not None:
        pooler.require_tls = bool(proxy.require_tls)
        pooler.configure(_pool_settings(backend, proxy))


def secret_for_key(key_id: str) -> str | None:
    if key_id in KNOWN_KEYS:
        return KNOWN_KEYS[key_id]
    for account in list(iam_backends.values()):
        for partition in list(account.values()):
            key = getattr(partition, "access_keys", {}).get(key_id)
            if key is not None:
                return key.secret_access_key
    return None


def _authenticator(backend, proxy):
    def authenticate(user: str, password: str, address: str) -> str:
        for item in _extra(proxy).get("auth", []):
            secret = _secret_value(backend.account_id, backend.region_name, item["SecretArn"]) or {}
            if secret.get("username") != user:
                continue
            if item["IAMAuth"] == "REQUIRED":
                pgbouncer.verify_iam_token(password, user, address, pgbouncer.PROXY_PORT, secret_for_key,
                                           region=backend.region_name)
            elif password != secret.get("password"):
                raise pgbouncer.AuthFailed(f'password authentication failed for user "{user}"')
            return secret.get("password") or ""
        raise pgbouncer.AuthFailed(f"This RDS proxy has no credentials for the role {user}. Check the credentials "
                                   "for this role and try again.")

    return authenticate


# ------------------------------------------------------------------------------------------------ describe shapes

def _describe_proxy(proxy) -> dict:
    extra = _extra(proxy)
    default = extra["endpoints"]["default"]
    return {"DBProxyName": proxy.db_proxy_name, "DBProxyArn": proxy.arn, "Status": _status(proxy),
            "EngineFamily": proxy.engine_family, "VpcId": proxy.vpc_id,
            "VpcSecurityGroupIds": list(proxy.vpc_security_group_ids), "VpcSubnetIds": list(proxy.vpc_subnet_ids),
            "DefaultAuthScheme": "NONE", "Auth": [dict(item) for item in extra["auth"]], "RoleArn": proxy.role_arn,
            "Endpoint": default.hostname(), "RequireTLS": bool(proxy.require_tls),
            "IdleClientTimeout": int(proxy.idle_client_timeout), "DebugLogging": bool(proxy.debug_logging),
            "CreatedDate": proxy.created_date, "UpdatedDate": proxy.updated_date,
            "EndpointNetworkType": "IPV4", "TargetConnectionNetworkType": "IPV4"}


def _describe_group(proxy) -> dict:
    extra = _extra(proxy)
    pool = {k: v for k, v in extra["pool"].items() if not (k == "InitQuery" and not v)}
    return {"DBProxyName": proxy.db_proxy_name, "TargetGroupName": "default", "TargetGroupArn": extra["group_arn"],
            "IsDefault": True, "Status": "available", "ConnectionPoolConfig": pool,
            "CreatedDate": proxy.created_date, "UpdatedDate": extra.get("group_updated", proxy.created_date)}


def _health(proxy, model, kind: str, identifier: str, pg) -> dict:
    registered = _extra(proxy).get("registered")
    if registered is not None and registered.active(time.time()):
        return {"State": "REGISTERING"}
    status = current_status(model, kind, identifier)
    running = False
    if pg is not None:
        try:
            running = bool(pg.is_running())
        except Exception:  # pylint: disable=broad-except
            running = False
    if status in ("available", "backing-up", "modifying") and running:
        return {"State": "AVAILABLE"}
    return {"State": "UNAVAILABLE", "Reason": "CONNECTION_FAILED",
            "Description": f"Database is {status}; the proxy cannot connect to it."}


def _describe_targets(backend, proxy) -> list[dict]:
    target = _extra(proxy).get("target")
    if target is None:
        return []
    kind, identifier = target
    pg, model = _target_pg(backend, proxy)
    if model is None:
        return []
    if kind == "db":
        return [{"TargetArn": model.db_instance_arn, "Endpoint": "127.0.0.1", "RdsResourceId": identifier,
                 "Port": pg.port if pg else model.port, "Type": "RDS_INSTANCE", "Role": "READ_WRITE",
                 "TargetHealth": _health(proxy, model, "db", identifier, pg)}]
    targets = [{"TargetArn": model.db_cluster_arn, "TrackedClusterId": identifier, "RdsResourceId": identifier,
                "Type": "TRACKED_CLUSTER", "Role": "UNKNOWN"}]
    for member in model.members:
        targets.append({"TargetArn": member.db_instance_arn, "Endpoint": "127.0.0.1", "TrackedClusterId": identifier,
                        "RdsResourceId": member.db_instance_identifier, "Port": pg.port if pg else model.port,
                        "Type": "RDS_INSTANCE", "Role": "READ_WRITE" if member.is_cluster_writer else "READ_ONLY",
                        "TargetHealth": _health(proxy, member, "db", member.db_instance_identifier, pg)})
    return targets


def _all_endpoints(backend) -> dict:
    endpoints = {}
    for proxy in backend.db_proxies.values():
        for name, endpoint in _extra(proxy).get("endpoints", {}).items():
            if not endpoint.is_default:
                endpoints[name] = endpoint
    return endpoints


# ------------------------------------------------------------------------------------------------ responses

def _create_db_proxy(self):
    params, backend = self.params, _backend(self)
    family = params.get("EngineFamily")
    if family not in ENGINE_FAMILIES:
        raise InvalidParameterValue(f"Provided EngineFamily {family} is not valid: {', '.join(ENGINE_FAMILIES)}.")
    name = params.get("DBProxyName")
    if name in backend.db_proxies:
        raise DBProxyAlreadyExistsFault(name)
    if params.get("DefaultAuthScheme") not in (None, "", "NONE"):
        raise InvalidParameterValue("The lab supports DefaultAuthScheme NONE (secrets) only.")
    auth = _validate_auth(backend, family, params.get("Auth"))
    idle = _validate_idle(params.get("IdleClientTimeout"))
    if not params.get("RoleArn"):
        raise InvalidParameterValue("RoleArn is required.")
    proxy = backend.create_db_proxy(
        db_proxy_name=name, engine_family=family, auth=auth, role_arn=params["RoleArn"],
        vpc_subnet_ids=params.get("VpcSubnetIds") or [], vpc_security_group_ids=params.get("VpcSecurityGroupIds"),
        require_tls=params.get("RequireTLS") in (True, "true"), idle_client_timeout=idle,
        debug_logging=params.get("DebugLogging") in (True, "true"), tags=params.get("Tags") or [])
    extra = _extra(proxy)
    extra.update(auth=auth, pool=dict(POOL_DEFAULTS, SessionPinningFilters=[]), target=None,
                 group_arn=proxy.proxy_target_groups["default"].arn)
    address = None
    if family == "POSTGRESQL":
        pooler = pgbouncer.Pooler(lab().root, name, _authenticator(backend, proxy), bool(proxy.require_tls))
        try:
            pooler.start(_pool_settings(backend, proxy))
            address = pooler.add_endpoint()
        except BaseException:
            pooler.stop()
            backend.db_proxies.pop(name, None)
            raise
        extra["pooler"] = pooler
    default = ProxyEndpoint(proxy, "default", "READ_WRITE", proxy.vpc_subnet_ids, proxy.vpc_security_group_ids,
                            True, address)
    extra["endpoints"] = {"default": default}
    begin_phase(proxy, "creating", _seconds())
    begin_phase(default, "creating", _seconds())
    shown = _describe_proxy(proxy)
    shown["Status"] = "creating"
    return rds_responses.ActionResult({"DBProxy": shown})


def _describe_db_proxies(self):
    backend, name = _backend(self), self.params.get("DBProxyName")
    proxies = [_proxy(backend, name)] if name else list(backend.db_proxies.values())
    return rds_responses.ActionResult({"DBProxies": [_describe_proxy(p) for p in proxies]})


def _modify_db_proxy(self):
    params, backend = self.params, _backend(self)
    proxy = _proxy(backend, params.get("DBProxyName"))
    _require_available(proxy)
    new_name = params.get("NewDBProxyName")
    if new_name and new_name != proxy.db_proxy_name and new_name in backend.db_proxies:
        raise DBProxyAlreadyExistsFault(new_name)
    auth = _validate_auth(backend, proxy.engine_family, params["Auth"]) if params.get("Auth") else None
    idle = _validate_idle(params.get("IdleClientTimeout"))
    if auth is not None:
        _extra(proxy)["auth"] = auth
        proxy.auth = auth
    if idle is not None:
        proxy.idle_client_timeout = idle
    for key, attribute in (("RequireTLS", "require_tls"), ("DebugLogging", "debug_logging")):
        if params.get(key) is not None:
            setattr(proxy, attribute, params[key] in (True, "true"))
    if params.get("RoleArn"):
        proxy.role_arn = params["RoleArn"]
    if params.get("SecurityGroups"):
        proxy.vpc_security_group_ids = list(params["SecurityGroups"])
    if new_name and new_name != proxy.db_proxy_name:
        backend.db_proxies[new_name] = backend.db_proxies.pop(proxy.db_proxy_name)
        proxy.db_proxy_name = new_name
    proxy.updated_date = utcnow()
    _apply(backend, proxy)
    begin_phase(proxy, "modifying", _seconds())
    shown = _describe_proxy(proxy)
    return rds_responses.ActionResult({"DBProxy": shown})


def _delete_db_proxy(self):
    backend = _backend(self)
    proxy = _proxy(backend, self.params.get("DBProxyName"))
    if _status(proxy) in ("creating", "deleting"):
        _require_available(proxy)
    extra = _extra(proxy)
    pooler = extra.pop("pooler", None)
    if pooler is not None:
        pooler.stop()
    name = proxy.db_proxy_name
    begin_phase(proxy, "deleting", _seconds())
    shown = _describe_proxy(proxy)
    shown["Status"] = "deleting"
    seconds = _seconds()
    if seconds <= 0:
        backend.db_proxies.pop(name, None)
    else:
        state, generation = lab(), lab().generation

        def remove():
            time.sleep(seconds)
            with state.lock:
                if state.generation == generation and backend.db_proxies.get(name) is proxy:
                    backend.db_proxies.pop(name, None)

        state.run_job(f"delete-proxy-{name}", remove)
    return rds_responses.ActionResult({"DBProxy": shown})


def _group(proxy, name: str | None) -> None:
    if name not in (None, "", "default"):
        raise _Fault("DBProxyTargetGroupNotFoundFault",
                     f"DBProxyTargetGroup {name} not found for DBProxy {proxy.db_proxy_name}.")


def _register_db_proxy_targets(self):
    params, backend = self.params, _backend(self)
    proxy = _proxy(backend, params.get("DBProxyName"))
    _group(proxy, params.get("TargetGroupName"))
    _require_available(proxy)
    instances = list(params.get("DBInstanceIdentifiers") or [])
    clusters = list(params.get("DBClusterIdentifiers") or [])
    if len(instances) + len(clusters) != 1:
        raise InvalidParameterCombination("Specify exactly one DB instance or one DB cluster to register.")
    extra = _extra(proxy)
    engines = {"POSTGRESQL": ("postgres", "aurora-postgresql"), "MYSQL": ("mysql", "mariadb", "aurora-mysql"),
               "SQLSERVER": ("sqlserver-ee", "sqlserver-se", "sqlserver-ex", "sqlserver-web")}[proxy.engine_family]
    if instances:
        identifier = instances[0].lower()
        if identifier not in backend.databases:
            raise DBInstanceNotFoundError(instances[0])
        model, target = backend.databases[identifier], ("db", identifier)
        if model.db_cluster_identifier:
            raise InvalidParameterValue(f"DB instance {identifier} is a member of DB cluster "
                                        f"{model.db_cluster_identifier}: register the cluster.")
    else:
        identifier = clusters[0].lower()
        if identifier not in backend.clusters:
            raise DBClusterNotFoundError(clusters[0])
        model, target = backend.clusters[identifier], ("cluster", identifier)
    if model.engine not in engines:
        raise InvalidParameterValue(f"The engine {model.engine} of {identifier} does not match the proxy's "
                                    f"EngineFamily {proxy.engine_family}.")
    if extra.get("target") is not None:
        raise _Fault("DBProxyTargetAlreadyRegisteredFault",
                     f"The proxy {proxy.db_proxy_name} already has a target registered: {extra['target'][1]}.")
    extra["target"] = target
    extra["registered"] = begin_phase(proxy.proxy_target_groups["default"], "registering", _seconds())
    _apply(backend, proxy)
    return rds_responses.ActionResult({"DBProxyTargets": _describe_targets(backend, proxy)})


def _deregister_db_proxy_targets(self):
    params, backend = self.params, _backend(self)
    proxy = _proxy(backend, params.get("DBProxyName"))
    _group(proxy, params.get("TargetGroupName"))
    extra = _extra(proxy)
    wanted = [("db", i.lower()) for i in params.get("DBInstanceIdentifiers") or []] + \
             [("cluster", c.lower()) for c in params.get("DBClusterIdentifiers") or []]
    for target in wanted:
        if extra.get("target") != target:
            raise _Fault("DBProxyTargetNotFoundFault", f"DBProxyTarget {target[1]} is not registered with "
                         f"DBProxy {proxy.db_proxy_name}.")
    if wanted:
        extra["target"] = None
        _apply(backend, proxy)
    return rds_responses.ActionResult({})


def _describe_db_proxy_targets(self):
    backend = _backend(self)
    proxy = _proxy(backend, self.params.get("DBProxyName"))
    _group(proxy, self.params.get("TargetGroupName"))
    return rds_responses.ActionResult({"Targets": _describe_targets(backend, proxy)})


def _describe_db_proxy_target_groups(self):
    backend = _backend(self)
    proxy = _proxy(backend, self.params.get("DBProxyName"))
    _group(proxy, self.params.get("TargetGroupName"))
    return rds_responses.ActionResult({"TargetGroups": [_describe_group(proxy)]})


def _modify_db_proxy_target_group(self):
    params, backend = self.params, _backend(self)
    proxy = _proxy(backend, params.get("DBProxyName"))
    _group(proxy, params.get("TargetGroupName"))
    _require_available(proxy)
    if params.get("NewName") not in (None, "", "default"):
        raise InvalidParameterValue("The default target group cannot be renamed.")
    extra = _extra(proxy)
    extra["pool"] = _validate_pool(extra["pool"], params.get("ConnectionPoolConfig") or {})
    extra["group_updated"] = utcnow()
    _apply(backend, proxy)
    return rds_responses.ActionResult({"DBProxyTargetGroup": _describe_group(proxy)})


def _create_db_proxy_endpoint(self):
    params, backend = self.params, _backend(self)
    proxy = _proxy(backend, params.get("DBProxyName"))
    name = params.get("DBProxyEndpointName")
    if name in _all_endpoints(backend) or name == "default":
        raise _Fault("DBProxyEndpointAlreadyExistsFault", f"DBProxyEndpoint {name} already exists.")
    _require_available(proxy)
    role = params.get("TargetRole") or "READ_WRITE"
    if role not in ("READ_WRITE", "READ_ONLY"):
        raise InvalidParameterValue(f"TargetRole {role} is not valid: READ_WRITE, READ_ONLY.")
    extra = _extra(proxy)
    if len(extra["endpoints"]) > MAX_ENDPOINTS:
        raise _Fault("DBProxyEndpointQuotaExceededFault", f"DBProxy {proxy.db_proxy_name} has {MAX_ENDPOINTS} "
                     "endpoints already.")
    pooler = extra.get("pooler")
    address = pooler.add_endpoint() if pooler is not None else None
    endpoint = ProxyEndpoint(proxy, name, role, params.get("VpcSubnetIds") or proxy.vpc_subnet_ids,
                             params.get("VpcSecurityGroupIds") or proxy.vpc_security_group_ids, False, address)
    endpoint.tags = [{"Key": t["Key"], "Value": t.get("Value", "")} for t in params.get("Tags") or []]
    extra["endpoints"][name] = endpoint
    begin_phase(endpoint, "creating", _seconds())
    shown = endpoint.describe()
    shown["Status"] = "creating"
    return rds_responses.ActionResult({"DBProxyEndpoint": shown})


def _endpoint(backend, name: str | None) -> ProxyEndpoint:
    endpoint = _all_endpoints(backend).get(name)
    if endpoint is None:
        raise _Fault("DBProxyEndpointNotFoundFault", f"DBProxyEndpoint {name} not found.")
    return endpoint


def _describe_db_proxy_endpoints(self):
    backend = _backend(self)
    proxy_name, name = self.params.get("DBProxyName"), self.params.get("DBProxyEndpointName")
    proxies = [_proxy(backend, proxy_name)] if proxy_name else list(backend.db_proxies.values())
    endpoints = [e for p in proxies for e in _extra(p).get("endpoints", {}).values()]
    if name:
        endpoints = [e for e in endpoints if e.name == name and not e.is_default]
        if not endpoints:
            raise _Fault("DBProxyEndpointNotFoundFault", f"DBProxyEndpoint {name} not found.")
    return rds_responses.ActionResult({"DBProxyEndpoints": [e.describe() for e in endpoints]})


def _modify_db_proxy_endpoint(self):
    params, backend = self.params, _backend(self)
    endpoint = _endpoint(backend, params.get("DBProxyEndpointName"))
    if current_status(endpoint, "proxy-endpoint", endpoint.name) != "available":
        raise _Fault("InvalidDBProxyEndpointStateFault", f"DBProxyEndpoint {endpoint.name} is not available.")
    new_name = params.get("NewDBProxyEndpointName")
    if new_name and new_name != endpoint.name:
        if new_name in _all_endpoints(backend) or new_name == "default":
            raise _Fault("DBProxyEndpointAlreadyExistsFault", f"DBProxyEndpoint {new_name} already exists.")
        endpoints = _extra(endpoint.proxy)["endpoints"]
        endpoints[new_name] = endpoints.pop(endpoint.name)
        endpoint.name = new_name
    if params.get("VpcSecurityGroupIds"):
        endpoint.groups = list(params["VpcSecurityGroupIds"])
    begin_phase(endpoint, "modifying", _seconds())
    return rds_responses.ActionResult({"DBProxyEndpoint": endpoint.describe()})


def _delete_db_proxy_endpoint(self):
    backend = _backend(self)
    endpoint = _endpoint(backend, self.params.get("DBProxyEndpointName"))
    if current_status(endpoint, "proxy-endpoint", endpoint.name) in ("creating", "deleting"):
        raise _Fault("InvalidDBProxyEndpointStateFault", f"DBProxyEndpoint {endpoint.name} is not available.")
    pooler = _extra(endpoint.proxy).get("pooler")
    if pooler is not None and endpoint.address:
        pooler.remove_endpoint(endpoint.address)
    _extra(endpoint.proxy)["endpoints"].pop(endpoint.name, None)
    shown = endpoint.describe()
    shown["Status"] = "deleting"
    return rds_responses.ActionResult({"DBProxyEndpoint": shown})


# ------------------------------------------------------------------------------------------------ tags

def _tagged(backend, arn: str | None):
    """The proxy endpoint an ARN names (moto knows none), or None for other resources; unknown proxies and
    endpoints are AWS's not-found faults (moto answers an empty list)."""
    arn = arn or ""
    if ":db-proxy-endpoint:" in arn:
        for proxy in backend.db_proxies.values():
            for endpoint in _extra(proxy).get("endpoints", {}).values():
                if endpoint.arn == arn and not endpoint.is_default:
                    return endpoint
        raise _Fault("DBProxyEndpointNotFoundFault", f"DBProxyEndpoint {arn} not found.")
    if ":db-proxy:" in arn and not any(p.arn == arn for p in backend.db_proxies.values()):
        raise DBProxyNotFoundFault(arn.rsplit(":", 1)[-1])
    return None


def _wrap_tags(original, action: str):
    def method(self, arn, *args):
        endpoint = _tagged(self, arn)
        if endpoint is None:
            return original(self, arn, *args)
        if action == "list":
            return list(endpoint.tags)
        if action == "add":
            keys = {t["Key"] for t in args[0]}
            endpoint.tags = [t for t in endpoint.tags if t["Key"] not in keys] + [
                {"Key": t["Key"], "Value": t.get("Value", "")} for t in args[0]]
            return list(endpoint.tags)
        endpoint.tags = [t for t in endpoint.tags if t["Key"] not in set(args[0] or [])]
        return None

    method.__name__ = original.__name__
    return method


# ------------------------------------------------------------------------------------------------ failovers

def _proxies_on(entry: dict):
    from moto.rds.models import rds_backends
    kind = "db" if entry.get("kind") == "db-instance" else "cluster"
    for account in list(rds_backends.values()):
        for backend in list(account.values()):
            for proxy in list(backend.db_proxies.values()):
                extra = _extra(proxy)
                if extra.get("pooler") is not None and extra.get("target") == (kind, entry.get("identifier")):
                    yield backend, proxy


def on_failover(phase: str, entry: dict) -> None:
    """What RDS Proxy does in a failover: hold client requests (PgBouncer PAUSE) while the writer is down, then point
    the pool at the new writer (RELOAD with its address) and let them through (RESUME) as soon as it is ready
    (``writer_ready``), without waiting for the endpoint's DNS (``dns_propagation``)."""
    for backend, proxy in _proxies_on(entry):
        pooler = _extra(proxy)["pooler"]
        if phase == "started":
            entry.setdefault("proxies_paused", {})[proxy.db_proxy_name] = pooler.pause(timeout=1.0)
        elif phase in ("writer_ready", "completed") and proxy.db_proxy_name not in entry.get("proxies_resumed_at", {}):
            _apply(backend, proxy)
            pooler.resume()
            entry.setdefault("proxies_resumed_at", {})[proxy.db_proxy_name] = \
                datetime.now(timezone.utc).isoformat()


# ------------------------------------------------------------------------------------------------ patch

def db_proxies() -> None:
    """RDS Proxy actions answered by the lab, with a PgBouncer behind every POSTGRESQL proxy."""
    for action, function in (
            ("create_db_proxy", _create_db_proxy), ("describe_db_proxies", _describe_db_proxies),
            ("modify_db_proxy", _modify_db_proxy), ("delete_db_proxy", _delete_db_proxy),
            ("register_db_proxy_targets", _register_db_proxy_targets),
            ("deregister_db_proxy_targets", _deregister_db_proxy_targets),
            ("describe_db_proxy_targets", _describe_db_proxy_targets),
            ("describe_db_proxy_target_groups", _describe_db_proxy_target_groups),
            ("modify_db_proxy_target_group", _modify_db_proxy_target_group),
            ("create_db_proxy_endpoint", _create_db_proxy_endpoint),
            ("describe_db_proxy_endpoints", _describe_db_proxy_endpoints),
            ("modify_db_proxy_endpoint", _modify_db_proxy_endpoint),
            ("delete_db_proxy_endpoint", _delete_db_proxy_endpoint)):
        function.__name__ = action
        replace(rds_responses.RDSResponse, action, function)
    for action in ("list", "add", "remove"):
        name = f"{action}_tags_{'for' if action == 'list' else 'to' if action == 'add' else 'from'}_resource"
        replace(RDSBackend, name, _wrap_tags(getattr(RDSBackend, name), action))
    listeners = lab().failover_listeners
    if on_failover not in listeners:
        listeners.append(on_failover)
