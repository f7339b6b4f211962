# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rds_proxy's decisions: option checks, the comparable state of a described proxy, the plan and check mode."""

import copy

import pytest

from ansible_collections.dbre.rds.plugins.module_utils import rds_proxy as rp

SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:orders-app-AbCdEf"
OTHER_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:orders-ro-GhIjKl"
ROLE = "arn:aws:iam::123456789012:role/orders-proxy-secrets"
SUBNETS = ["subnet-0a1b2c3d", "subnet-1a2b3c4d"]
SG = "sg-0123456789abcdef0"
MARKER = [{"Key": "dbre:managed-by", "Value": "rds_proxy"}]


def _params(**changes):
    """Module parameters as AnsibleModule hands them over (argspec defaults applied)."""
    params = dict(
        name="orders-proxy", state="present", engine_family="POSTGRESQL",
        auth=[dict(secret_arn=SECRET, iam_auth="DISABLED", client_password_auth_type="POSTGRES_SCRAM_SHA_256",
                   description=None)],
        role_arn=ROLE, require_tls=True, idle_client_timeout=1800, debug_logging=False, vpc_subnet_ids=SUBNETS,
        vpc_security_group_ids=None, tags={"team": "dbre"}, purge_tags=True,
        target_group=dict(max_connections_percent=80, max_idle_connections_percent=20, connection_borrow_timeout=120,
                          init_query=None, session_pinning_filters=None),
        db_instance_identifier=None, db_cluster_identifier="orders-aurora",
        endpoints=[dict(name="orders-proxy-ro", target_role="READ_ONLY", vpc_subnet_ids=None,
                        vpc_security_group_ids=None)],
        wait=True, wait_timeout=900, poll_interval=5.0,
    )
    params.update(changes)
    return params


def _pool(**changes):
    pool = dict(max_connections_percent=80, max_idle_connections_percent=20, connection_borrow_timeout=120,
                init_query=None, session_pinning_filters=None)
    pool.update(changes)
    return pool


# What the lab / RDS describes for the proxy _params() creates.
PROXY = {
    "DBProxyName": "orders-proxy", "DBProxyArn": "arn:aws:rds:us-east-1:123456789012:db-proxy:prx-0abc",
    "Status": "available", "EngineFamily": "POSTGRESQL", "VpcId": "vpc-1", "VpcSecurityGroupIds": [SG],
    "VpcSubnetIds": list(reversed(SUBNETS)), "RoleArn": ROLE, "RequireTLS": True, "IdleClientTimeout": 1800,
    "DebugLogging": False, "Endpoint": "orders-proxy.proxy-abc.us-east-1.rds.amazonaws.com",
    "Auth": [{"AuthScheme": "SECRETS", "SecretArn": SECRET, "IAMAuth": "DISABLED",
              "ClientPasswordAuthType": "POSTGRES_SCRAM_SHA_256", "UserName": "app"}],
}
TARGET_GROUP = {"DBProxyName": "orders-proxy", "TargetGroupName": "default", "IsDefault": True, "Status": "available",
                "ConnectionPoolConfig": {"MaxConnectionsPercent": 80, "MaxIdleConnectionsPercent": 20,
                                         "ConnectionBorrowTimeout": 120, "SessionPinningFilters": []}}
# A cluster target: the TRACKED_CLUSTER entry (no health of its own) and its member.
TARGETS = [{"RdsResourceId": "orders-aurora", "TrackedClusterId": "orders-aurora", "Type": "TRACKED_CLUSTER",
            "Role": "UNKNOWN"},
           {"RdsResourceId": "orders-aurora-1", "TrackedClusterId": "orders-aurora", "Type": "RDS_INSTANCE",
            "Role": "READ_WRITE", "Port": 5432, "TargetHealth": {"State": "AVAILABLE"}}]
INSTANCE_TARGETS = [{"RdsResourceId": "orders-db", "Type": "RDS_INSTANCE", "Port": 5432,
                     "TargetHealth": {"State": "AVAILABLE"}}]
ENDPOINTS = [
    {"DBProxyEndpointName": "default", "DBProxyName": "orders-proxy", "IsDefault": True, "Status": "available",
     "TargetRole": "READ_WRITE", "VpcSubnetIds": SUBNETS, "VpcSecurityGroupIds": [SG]},
    {"DBProxyEndpointName": "orders-proxy-ro", "DBProxyName": "orders-proxy", "IsDefault": False,
     "Status": "available", "TargetRole": "READ_ONLY", "VpcSubnetIds": SUBNETS, "VpcSecurityGroupIds": [SG]},
]
READ = dict(proxy=PROXY, tags={"team": "dbre"}, target_group=TARGET_GROUP, targets=TARGETS, endpoints=ENDPOINTS)


def _current(**read_changes):
    read = dict(copy.deepcopy(READ), **read_changes)
    return rp.current_state(read["proxy"], read["tags"], read["target_group"], read["targets"], read["endpoints"])


def _plan(params, current=None, purge_tags=True):
    return rp.plan_proxy(rp.desired_state(params), current, purge_tags=purge_tags)


# ------------------------------------------------------------------------------------------------------- options

@pytest.mark.parametrize("changes, fragment", [
    (dict(name="9proxy"), "name '9proxy' is not a valid RDS identifier"),
    (dict(name="orders--proxy"), "do not end with a hyphen or use two hyphens in a row"),
    (dict(name="orders-proxy-"), "do not end with a hyphen"),
    (dict(name="p" * 61), "is 61 characters long; RDS allows at most 60"),
    (dict(name=" "), "name must not be empty or blank"),
    (dict(engine_family="MYSQL"), "engine_family 'MYSQL' is not supported: this collection manages PostgreSQL"),
    (dict(engine_family="SQLSERVER"), "use engine_family=POSTGRESQL"),
    (dict(role_arn=None), "role_arn is required with state=present"),
    (dict(role_arn="orders-proxy-secrets"), "role_arn 'orders-proxy-secrets' is not an IAM role ARN"),
    (dict(role_arn="arn:aws:iam::123456789012:user/bob"), "is not an IAM role ARN"),
    (dict(auth=[]), "auth is empty: give at least one secret"),
    (dict(auth=[dict(secret_arn="orders-app", iam_auth="DISABLED",
                     client_password_auth_type="POSTGRES_SCRAM_SHA_256")]),
     "auth[0].secret_arn 'orders-app' is not a Secrets Manager secret ARN"),
    (dict(auth=[dict(secret_arn=SECRET, iam_auth="DISABLED", client_password_auth_type="POSTGRES_MD5")] * 2),
     "auth[1].secret_arn " + SECRET + " is given more than once"),
    (dict(auth=[dict(secret_arn=SECRET, iam_auth="DISABLED", client_password_auth_type="MYSQL_NATIVE_PASSWORD")]),
     "client_password_auth_type must be one of POSTGRES_SCRAM_SHA_256, POSTGRES_MD5"),
    (dict(idle_client_timeout=-1), "idle_client_timeout must be a whole number from 1 to 28800 seconds, got -1"),
    (dict(idle_client_timeout=0), "idle_client_timeout must be a whole number from 1 to 28800 seconds, got 0"),
    (dict(idle_client_timeout=28801), "got 28801"),
    (dict(target_group=_pool(max_connections_percent=0)), "max_connections_percent must be a whole number from 1 "
                                                          "to 100 (percent), got 0"),
    (dict(target_group=_pool(max_connections_percent=101)), "max_connections_percent must be a whole number"),
    (dict(target_group=_pool(max_connections_percent=True)), "got True"),
    (dict(target_group=_pool(max_idle_connections_percent=-1)), "max_idle_connections_percent must be a whole number"
                                                                " from 0 to 100 (percent), got -1"),
    (dict(target_group=_pool(max_connections_percent=30, max_idle_connections_percent=50)),
     "max_idle_connections_percent (50) must not exceed target_group.max_connections_percent (30)"),
    (dict(target_group=_pool(connection_borrow_timeout=-5)), "connection_borrow_timeout must be a whole number from 0 "
                                                             "to 3600 seconds, got -5"),
    (dict(target_group=_pool(connection_borrow_timeout=3601)), "got 3601"),
    (dict(target_group=_pool(session_pinning_filters=["EXCLUDE_EVERYTHING"])), "use EXCLUDE_VARIABLE_SETS"),
    (dict(vpc_subnet_ids=[]), "vpc_subnet_ids is empty"),
    (dict(vpc_subnet_ids=["10.0.1.0/24"]), "vpc_subnet_ids item '10.0.1.0/24' is not a subnet ID"),
    (dict(vpc_security_group_ids=["default"]), "vpc_security_group_ids item 'default' is not a security group ID"),
    (dict(db_instance_identifier="orders_db"), "db_instance_identifier 'orders_db' is not a valid RDS identifier"),
    (dict(endpoints=[dict(name="default", target_role="READ_ONLY")]), "'default' is the proxy's own endpoint"),
    (dict(endpoints=[dict(name="orders-proxy", target_role="READ_ONLY")]), "is the proxy's name"),
    (dict(endpoints=[dict(name="ro", target_role="READ_ONLY")] * 2), "endpoints[1].name 'ro' is given more than once"),
    (dict(endpoints=[dict(name="ro-", target_role="READ_ONLY")]), "endpoints[0].name 'ro-' is not a valid RDS"),
    (dict(endpoints=[dict(name="ro", target_role="READER")]), "endpoints[0].target_role must be one of READ_WRITE"),
    (dict(endpoints=[dict(name="ro", target_role="READ_ONLY", vpc_subnet_ids=["a"])]),
     "endpoints[0].vpc_subnet_ids item 'a' is not a subnet ID"),
    (dict(tags={"aws:owner": "x"}), "the aws: prefix is reserved"),
    (dict(tags={"owner": None}), "needs a value of at most 256 characters"),
    (dict(wait_timeout=0), "wait_timeout must be at least 1 second"),
    (dict(poll_interval=0), "poll_interval must be a positive number"),
])
def test_option_problems_name_the_option_and_the_fix(changes, fragment):
    problems = rp.option_problems(_params(**changes))
    assert any(fragment in p for p in problems), problems


@pytest.mark.parametrize("changes", [
    {},
    dict(name="p"),
    dict(name="p" * 60),
    dict(engine_family="postgresql"),
    dict(target_group=_pool(max_connections_percent=1, max_idle_connections_percent=0, connection_borrow_timeout=0)),
    dict(target_group=_pool(max_connections_percent=100, max_idle_connections_percent=100,
                            connection_borrow_timeout=3600, session_pinning_filters=["EXCLUDE_VARIABLE_SETS"])),
    dict(target_group=None, endpoints=None, auth=None, tags=None, vpc_subnet_ids=None),
    dict(idle_client_timeout=1), dict(idle_client_timeout=28800),
    dict(role_arn="arn:aws-us-gov:iam::123456789012:role/service-role/proxy"),
    dict(db_instance_identifier=None, db_cluster_identifier="orders-aurora"),
])
def test_valid_options_have_no_problems(changes):
    assert rp.option_problems(_params(**changes)) == []


def test_absent_needs_only_a_valid_name():
    assert rp.option_problems(dict(name="orders-proxy", state="absent", role_arn=None, engine_family="MYSQL")) == []
    assert rp.option_problems(dict(name="orders_proxy", state="absent"))


@pytest.mark.parametrize("kind, described, fragment", [
    ("instance", None, "db_instance_identifier 'x': no DB instance of that name exists"),
    ("cluster", None, "db_cluster_identifier 'x': no DB cluster of that name exists"),
    ("instance", {"Engine": "mysql"}, "runs mysql, not PostgreSQL"),
    ("cluster", {"Engine": "aurora-mysql"}, "runs aurora-mysql, not PostgreSQL"),
    ("instance", {"Engine": "aurora-postgresql", "DBClusterIdentifier": "orders-aurora"},
     "register the cluster instead (db_cluster_identifier=orders-aurora)"),
])
def test_target_problems(kind, described, fragment):
    assert fragment in rp.target_problem(kind, "x", described)


@pytest.mark.parametrize("kind, described", [
    ("instance", {"Engine": "postgres"}),
    ("cluster", {"Engine": "aurora-postgresql"}),
])
def test_postgres_targets_are_fine(kind, described):
    assert rp.target_problem(kind, "x", described) is None


def test_secret_problem():
    assert rp.secret_problem(0, SECRET, True) is None
    assert "auth[2].secret_arn " + SECRET + ": no such secret in Secrets Manager" in rp.secret_problem(2, SECRET, False)


# ------------------------------------------------------------------------------------------------ current state

@pytest.mark.parametrize("targets, expected", [
    ([], {}),
    (INSTANCE_TARGETS, {"db_instance_identifier": "orders-db"}),
    ([{"RdsResourceId": "orders-aurora", "Type": "TRACKED_CLUSTER", "TrackedClusterId": "orders-aurora"},
      {"RdsResourceId": "orders-aurora-1", "Type": "RDS_INSTANCE", "TrackedClusterId": "orders-aurora"}],
     {"db_cluster_identifier": "orders-aurora"}),
    # moto names the cluster in RdsResourceId only
    ([{"RdsResourceId": "orders-aurora", "Type": "TRACKED_CLUSTER"}], {"db_cluster_identifier": "orders-aurora"}),
    # members listed without the TRACKED_CLUSTER entry still name their cluster
    ([{"RdsResourceId": "orders-aurora-1", "Type": "RDS_INSTANCE", "TrackedClusterId": "orders-aurora"}],
     {"db_cluster_identifier": "orders-aurora"}),
])
def test_registered_target(targets, expected):
    assert rp.registered_target(targets) == expected


def test_current_state_is_comparable():
    current = _current()
    assert current["auth"] == [dict(secret_arn=SECRET, iam_auth="DISABLED",
                                    client_password_auth_type="POSTGRES_SCRAM_SHA_256", description="")]
    assert current["vpc_subnet_ids"] == sorted(SUBNETS)
    assert current["target_group"] == dict(max_connections_percent=80, max_idle_connections_percent=20,
                                           connection_borrow_timeout=120, init_query="", session_pinning_filters=[])
    assert current["target"] == {"db_cluster_identifier": "orders-aurora"}
    assert [e["name"] for e in current["endpoints"]] == ["orders-proxy-ro"]  # never the default endpoint
    assert rp.current_state(None) is None


# ---------------------------------------------------------------------------------------------------------- plan

def test_create_plan_sends_everything_in_order():
    plan = _plan(_params(vpc_security_group_ids=[SG]))
    assert plan["action"] == "create" and plan["changed"] and not plan["problems"]
    assert plan["create"] == dict(
        EngineFamily="POSTGRESQL", RoleArn=ROLE, VpcSubnetIds=sorted(SUBNETS), VpcSecurityGroupIds=[SG],
        RequireTLS=True, IdleClientTimeout=1800, DebugLogging=False,
        Tags=MARKER + [{"Key": "team", "Value": "dbre"}],
        Auth=[dict(AuthScheme="SECRETS", SecretArn=SECRET, IAMAuth="DISABLED",
                   ClientPasswordAuthType="POSTGRES_SCRAM_SHA_256")])
    assert plan["pool"] == dict(MaxConnectionsPercent=80, MaxIdleConnectionsPercent=20, ConnectionBorrowTimeout=120)
    assert plan["register"] == {"DBClusterIdentifiers": ["orders-aurora"]} and plan["deregister"] is None
    assert plan["create_endpoints"] == [dict(DBProxyEndpointName="orders-proxy-ro", TargetRole="READ_ONLY",
                                             VpcSubnetIds=sorted(SUBNETS), Tags=MARKER)]
    assert rp.planned_actions(plan) == ["CreateDBProxy", "ModifyDBProxyTargetGroup", "RegisterDBProxyTargets",
                                        "CreateDBProxyEndpoint"]
    assert plan["before"] is None and plan["after"]["target"] == {"db_cluster_identifier": "orders-aurora"}


def test_create_with_default_pool_makes_no_pool_call():
    plan = _plan(_params(target_group=_pool(max_connections_percent=100, max_idle_connections_percent=50)))
    assert plan["pool"] is None
    assert "ModifyDBProxyTargetGroup" not in rp.planned_actions(plan)


@pytest.mark.parametrize("changes, fragment", [
    (dict(auth=None), "auth is required to create the proxy"),
    (dict(vpc_subnet_ids=None), "vpc_subnet_ids is required to create the proxy"),
])
def test_create_needs_auth_and_subnets(changes, fragment):
    plan = _plan(_params(**changes))
    assert any(fragment in p for p in plan["problems"]), plan["problems"]
    assert rp.planned_actions(dict(plan, action="none", create=None)) == []


def test_same_declaration_changes_nothing():
    plan = _plan(_params(), _current())
    assert plan == dict(plan, action="none", changed=False, problems=[], create=None, modify={}, add_tags={},
                        remove_tags=[], pool=None, deregister=None, register=None, delete_endpoints=[],
                        modify_endpoints=[], create_endpoints=[])
    assert plan["before"] == plan["after"]
    assert rp.planned_actions(plan) == []


def test_omitted_options_leave_the_proxy_as_it_is():
    params = _params(auth=None, vpc_subnet_ids=None, tags=None, target_group=None, db_instance_identifier=None,
                     endpoints=None)
    plan = _plan(params, _current())
    assert not plan["changed"], rp.planned_actions(plan)


@pytest.mark.parametrize("changes, modify", [
    (dict(require_tls=False), {"RequireTLS": False}),
    (dict(idle_client_timeout=600), {"IdleClientTimeout": 600}),
    (dict(debug_logging=True), {"DebugLogging": True}),
    (dict(role_arn=ROLE + "-2"), {"RoleArn": ROLE + "-2"}),
    (dict(vpc_security_group_ids=["sg-0aaaaaaa"]), {"SecurityGroups": ["sg-0aaaaaaa"]}),
    (dict(auth=[dict(secret_arn=SECRET, iam_auth="REQUIRED", client_password_auth_type="POSTGRES_SCRAM_SHA_256")]),
     {"Auth": [dict(AuthScheme="SECRETS", SecretArn=SECRET, IAMAuth="REQUIRED",
                    ClientPasswordAuthType="POSTGRES_SCRAM_SHA_256")]}),
    (dict(auth=[dict(secret_arn=OTHER_SECRET, iam_auth="DISABLED", client_password_auth_type="POSTGRES_MD5",
                     description="read-only"),
                dict(secret_arn=SECRET, iam_auth="DISABLED", client_password_auth_type="POSTGRES_SCRAM_SHA_256")]),
     {"Auth": [dict(AuthScheme="SECRETS", SecretArn=SECRET, IAMAuth="DISABLED",
                    ClientPasswordAuthType="POSTGRES_SCRAM_SHA_256"),
               dict(AuthScheme="SECRETS", SecretArn=OTHER_SECRET, IAMAuth="DISABLED",
                    ClientPasswordAuthType="POSTGRES_MD5", Description="read-only")]}),
])
def test_proxy_changes_are_one_modify(changes, modify):
    plan = _plan(_params(**changes), _current())
    assert plan["action"] == "update" and plan["modify"] == modify
    assert rp.planned_actions(plan) == ["ModifyDBProxy"]


def test_auth_compares_as_a_set():
    params = _params(auth=[dict(secret_arn=s, iam_auth="DISABLED", client_password_auth_type="POSTGRES_SCRAM_SHA_256")
                           for s in (SECRET, OTHER_SECRET)])
    proxy = dict(PROXY, Auth=list(reversed(PROXY["Auth"] + [dict(PROXY["Auth"][0], SecretArn=OTHER_SECRET)])))
    assert not _plan(params, _current(proxy=proxy))["changed"]


@pytest.mark.parametrize("tags, purge, add, remove", [
    ({"team": "dbre", "env": "prod"}, True, {"env": "prod"}, []),
    ({"env": "prod"}, True, {"env": "prod"}, ["team"]),
    ({"env": "prod"}, False, {"env": "prod"}, []),
    ({}, True, {}, ["team"]),
    ({"team": "ops"}, True, {"team": "ops"}, []),
])
def test_tags(tags, purge, add, remove):
    plan = _plan(_params(tags=tags), _current(), purge_tags=purge)
    assert plan["add_tags"] == add and plan["remove_tags"] == remove


@pytest.mark.parametrize("pool, request_", [
    (_pool(max_connections_percent=50, max_idle_connections_percent=10),
     dict(MaxConnectionsPercent=50, MaxIdleConnectionsPercent=10, ConnectionBorrowTimeout=120)),
    (_pool(connection_borrow_timeout=30),
     dict(MaxConnectionsPercent=80, MaxIdleConnectionsPercent=20, ConnectionBorrowTimeout=30)),
    (_pool(init_query="SET timezone = 'UTC'"),
     dict(MaxConnectionsPercent=80, MaxIdleConnectionsPercent=20, ConnectionBorrowTimeout=120,
          InitQuery="SET timezone = 'UTC'")),
    (_pool(session_pinning_filters=["EXCLUDE_VARIABLE_SETS"]),
     dict(MaxConnectionsPercent=80, MaxIdleConnectionsPercent=20, ConnectionBorrowTimeout=120,
          SessionPinningFilters=["EXCLUDE_VARIABLE_SETS"])),
    # defaults of the option are AWS's: a target_group with only one key resets the others to them
    (dict(max_connections_percent=None, max_idle_connections_percent=None, connection_borrow_timeout=None,
          init_query=None, session_pinning_filters=None),
     dict(MaxConnectionsPercent=100, MaxIdleConnectionsPercent=50, ConnectionBorrowTimeout=120)),
])
def test_pool_changes_send_the_whole_pool(pool, request_):
    plan = _plan(_params(target_group=pool), _current())
    assert plan["pool"] == request_
    assert rp.planned_actions(plan) == ["ModifyDBProxyTargetGroup"]


def test_pool_keys_left_out_keep_their_value():
    group = copy.deepcopy(TARGET_GROUP)
    group["ConnectionPoolConfig"].update(InitQuery="SET x = 1", SessionPinningFilters=["EXCLUDE_VARIABLE_SETS"])
    assert _plan(_params(), _current(target_group=group))["pool"] is None
    cleared = _plan(_params(target_group=_pool(init_query="", session_pinning_filters=[])),
                    _current(target_group=group))["pool"]
    assert cleared["InitQuery"] == "" and cleared["SessionPinningFilters"] == []


@pytest.mark.parametrize("changes, deregister, register", [
    (dict(db_cluster_identifier="billing-aurora"), {"DBClusterIdentifiers": ["orders-aurora"]},
     {"DBClusterIdentifiers": ["billing-aurora"]}),
    (dict(db_instance_identifier="orders-db", db_cluster_identifier=None, endpoints=[]),
     {"DBClusterIdentifiers": ["orders-aurora"]}, {"DBInstanceIdentifiers": ["orders-db"]}),
])
def test_target_changes_deregister_the_old_one(changes, deregister, register):
    plan = _plan(_params(**changes), _current())
    assert plan["deregister"] == deregister and plan["register"] == register
    assert rp.planned_actions(plan)[:2] == ["DeregisterDBProxyTargets", "RegisterDBProxyTargets"]


def test_registering_on_a_proxy_without_target():
    plan = _plan(_params(), _current(targets=[]))
    assert plan["deregister"] is None and plan["register"] == {"DBClusterIdentifiers": ["orders-aurora"]}


@pytest.mark.parametrize("endpoints, delete, modify, create", [
    ([], ["orders-proxy-ro"], [], []),
    ([dict(name="orders-proxy-ro2", target_role="READ_ONLY")], ["orders-proxy-ro"], [],
     [dict(DBProxyEndpointName="orders-proxy-ro2", TargetRole="READ_ONLY", VpcSubnetIds=sorted(SUBNETS),
           Tags=MARKER)]),
    ([dict(name="orders-proxy-ro", target_role="READ_ONLY", vpc_security_group_ids=["sg-0bbbbbbb"])], [],
     [dict(DBProxyEndpointName="orders-proxy-ro", VpcSecurityGroupIds=["sg-0bbbbbbb"])], []),
    ([dict(name="orders-proxy-ro", target_role="READ_ONLY"),
      dict(name="orders-proxy-rw2", target_role="READ_WRITE", vpc_subnet_ids=["subnet-0ccccccc"],
           vpc_security_group_ids=[SG])], [], [],
     [dict(DBProxyEndpointName="orders-proxy-rw2", TargetRole="READ_WRITE", VpcSubnetIds=["subnet-0ccccccc"],
           VpcSecurityGroupIds=[SG], Tags=MARKER)]),
])
def test_endpoints_are_a_declaration(endpoints, delete, modify, create):
    plan = _plan(_params(endpoints=endpoints), _current())
    assert (plan["delete_endpoints"], plan["modify_endpoints"], plan["create_endpoints"]) == (delete, modify, create)
    assert "default" not in plan["delete_endpoints"]
    assert sorted(e["name"] for e in plan["after"]["endpoints"]) == sorted(e["name"] for e in endpoints)


@pytest.mark.parametrize("changes, fragment", [
    (dict(vpc_subnet_ids=["subnet-0ccccccc", "subnet-0ddddddd"]), "vpc_subnet_ids cannot change on an existing "
                                                                  "proxy"),
    (dict(endpoints=[dict(name="orders-proxy-ro", target_role="READ_WRITE")]),
     "endpoint orders-proxy-ro: target_role cannot change from READ_ONLY: give the endpoint a new name"),
    (dict(endpoints=[dict(name="orders-proxy-ro", target_role="READ_ONLY", vpc_subnet_ids=["subnet-0ccccccc"])]),
     "endpoint orders-proxy-ro: vpc_subnet_ids cannot change on an existing endpoint"),
])
def test_changes_rds_cannot_make_are_problems_and_plan_nothing(changes, fragment):
    plan = _plan(_params(**changes), _current())
    assert any(fragment in p for p in plan["problems"]), plan["problems"]
    assert not plan["changed"] and rp.planned_actions(plan) == []


@pytest.mark.parametrize("changes, current_changes", [
    # a new proxy in front of an instance, with a read-only endpoint declared
    (dict(db_instance_identifier="orders-db", db_cluster_identifier=None), None),
    # the target changes to an instance while the existing read-only endpoint stays (endpoints omitted)
    (dict(db_instance_identifier="orders-db", db_cluster_identifier=None, endpoints=None), {}),
    # a proxy in front of an instance gains a read-only endpoint
    (dict(db_instance_identifier="orders-db", db_cluster_identifier=None),
     dict(targets=INSTANCE_TARGETS, endpoints=ENDPOINTS[:1])),
])
def test_read_only_endpoints_need_a_cluster(changes, current_changes):
    current = None if current_changes is None else _current(**current_changes)
    plan = _plan(_params(**changes), current)
    assert any("endpoint orders-proxy-ro is READ_ONLY, but the proxy's target is the DB instance orders-db" in p
               for p in plan["problems"]), plan["problems"]
    assert not plan["changed"] and rp.planned_actions(plan) == []


def test_read_write_endpoints_suit_an_instance():
    params = _params(db_instance_identifier="orders-db", db_cluster_identifier=None,
                     endpoints=[dict(name="orders-proxy-rw", target_role="READ_WRITE")])
    assert not _plan(params)["problems"]


def test_same_subnets_in_another_order_are_no_change():
    assert not _plan(_params(vpc_subnet_ids=list(reversed(SUBNETS))), _current())["changed"]


def test_delete_plan_removes_endpoints_then_the_proxy():
    plan = rp.plan_proxy(None, _current())
    assert plan["action"] == "delete" and plan["after"] is None
    assert rp.planned_actions(plan) == ["DeleteDBProxyEndpoint", "DeleteDBProxy"]
    assert rp.plan_proxy(None, None)["changed"] is False


# ---------------------------------------------------------------------------------------------------- waiting

@pytest.mark.parametrize("proxy_status, endpoint_status, target_state, waiting", [
    ("available", "available", "AVAILABLE", []),
    ("creating", "available", "AVAILABLE", ["proxy creating"]),
    ("available", "creating", "REGISTERING",
     ["endpoint orders-proxy-ro creating", "target orders-aurora-1 REGISTERING"]),
])
def test_readiness(proxy_status, endpoint_status, target_state, waiting):
    endpoints = [ENDPOINTS[0], dict(ENDPOINTS[1], Status=endpoint_status)]
    targets = [TARGETS[0], dict(TARGETS[1], TargetHealth={"State": target_state})]
    assert rp.readiness(dict(PROXY, Status=proxy_status), endpoints, targets) == waiting
    assert rp.readiness(None, [], []) == ["proxy missing"]


@pytest.mark.parametrize("proxy_status, health, fragment", [
    ("incompatible-network", {"State": "AVAILABLE"}, "the proxy is incompatible-network"),
    ("available", {"State": "UNAVAILABLE", "Reason": "AUTH_FAILURE", "Description": "bad password"},
     "target orders-aurora-1 is UNAVAILABLE (AUTH_FAILURE: bad password)"),
    ("available", {"State": "UNAVAILABLE", "Reason": "CONNECTION_FAILED"}, None),
    ("creating", {"State": "REGISTERING"}, None),
])
def test_readiness_stop_reason(proxy_status, health, fragment):
    targets = [TARGETS[0], dict(TARGETS[1], TargetHealth=health)]
    reason = rp.readiness_stop_reason(dict(PROXY, Status=proxy_status), ENDPOINTS, targets)
    assert (reason is None) if fragment is None else (fragment in reason)


# ------------------------------------------------------------------------------------------------- check mode

def test_predicted_read_of_a_new_proxy():
    plan = _plan(_params())
    empty = dict(proxy=None, tags={}, target_group=None, targets=[], endpoints=[])
    predicted = rp.predicted_read("orders-proxy", empty, plan)
    assert predicted["proxy"]["Status"] == "creating" and predicted["proxy"]["RequireTLS"] is True
    assert predicted["target_group"]["ConnectionPoolConfig"]["MaxConnectionsPercent"] == 80
    assert predicted["targets"] == [dict(RdsResourceId="orders-aurora", TrackedClusterId="orders-aurora",
                                         Type="TRACKED_CLUSTER", TargetHealth={"State": "REGISTERING"})]
    assert [(e["DBProxyEndpointName"], e["Status"], e["TargetRole"]) for e in predicted["endpoints"]] == [
        ("orders-proxy-ro", "creating", "READ_ONLY")]
    assert predicted["tags"] == {"team": "dbre", "dbre:managed-by": "rds_proxy"}


def test_predicted_read_of_a_change_keeps_what_stays():
    plan = _plan(_params(require_tls=False, endpoints=[], db_instance_identifier=None,
                         db_cluster_identifier="orders-aurora"), _current())
    predicted = rp.predicted_read("orders-proxy", READ, plan)
    assert predicted["proxy"]["RequireTLS"] is False and predicted["proxy"]["Status"] == "available"
    assert predicted["proxy"]["Endpoint"] == PROXY["Endpoint"]
    assert [e["DBProxyEndpointName"] for e in predicted["endpoints"]] == ["default"]
    assert predicted["targets"][0]["Type"] == "TRACKED_CLUSTER"
    unchanged = rp.predicted_read("orders-proxy", READ, _plan(_params(), _current()))
    assert unchanged["targets"] == TARGETS
    assert rp.predicted_read("orders-proxy", READ, rp.plan_proxy(None, _current()))["proxy"] is None


# ------------------------------------------------------------------------------------------------------ ownership

MANAGED = {"dbre:managed-by": "rds_proxy"}


@pytest.mark.parametrize("tags, expected", [
    ({"dbre:managed-by": "rds_proxy"}, True),
    ({"dbre:managed-by": "rds_proxy", "team": "dbre"}, True),
    ({"dbre:managed-by": "someone-else"}, False),
    ({"team": "dbre"}, False),
    ({}, False),
    (None, False),
])
def test_is_managed(tags, expected):
    assert rp.is_managed(tags) is expected


def test_create_tags_the_proxy_even_without_user_tags():
    plan = _plan(_params(tags=None))
    assert plan["create"]["Tags"] == MARKER and plan["after"]["tags"] == MANAGED


@pytest.mark.parametrize("tags, purge, add, remove", [
    ({}, True, {}, ["team"]),
    ({"env": "prod"}, True, {"env": "prod"}, ["team"]),
    ({"env": "prod"}, False, {"env": "prod"}, []),
])
def test_purge_tags_never_removes_the_marker(tags, purge, add, remove):
    plan = _plan(_params(tags=tags), _current(tags=dict(MANAGED, team="dbre")), purge_tags=purge)
    assert plan["add_tags"] == add and plan["remove_tags"] == remove
    assert plan["after"]["tags"]["dbre:managed-by"] == "rds_proxy"


def test_an_unmarked_proxy_is_not_adopted_silently_but_can_be_adopted_by_tag():
    assert "dbre:managed-by" not in _plan(_params(tags={"team": "dbre"}), _current())["add_tags"]
    adopt = _plan(_params(tags=dict(MANAGED, team="dbre")), _current())
    assert adopt["add_tags"] == MANAGED and adopt["remove_tags"] == []


def test_the_marker_key_takes_only_its_value():
    problems = rp.option_problems(_params(tags={"dbre:managed-by": "me"}))
    assert any("marker" in p and "rds_proxy" in p for p in problems)
    assert rp.option_problems(_params(tags=dict(MANAGED))) == []


def test_endpoints_without_the_marker_are_skipped_not_deleted():
    plan = _plan(_params(endpoints=[]), _current())
    limited, skipped = rp.limit_to_managed("orders-proxy", plan, MANAGED, {"orders-proxy-ro": {"team": "x"}})
    assert limited["delete_endpoints"] == [] and limited["changed"] is False and limited["action"] == "none"
    assert [e["name"] for e in limited["after"]["endpoints"]] == ["orders-proxy-ro"]
    assert rp.planned_actions(limited) == []
    assert [s["endpoint"] for s in skipped] == ["orders-proxy-ro"]
    assert "not created by dbre.rds.rds_proxy" in skipped[0]["reason"]
    # a missing read (the endpoint vanished meanwhile) counts as unmarked too
    assert rp.limit_to_managed("orders-proxy", plan, MANAGED, {})[0]["delete_endpoints"] == []


def test_endpoints_with_the_marker_are_deleted():
    plan = _plan(_params(endpoints=[]), _current())
    limited, skipped = rp.limit_to_managed("orders-proxy", plan, MANAGED, {"orders-proxy-ro": dict(MANAGED)})
    assert limited == plan and skipped == []


def test_skipping_keeps_the_other_changes():
    plan = _plan(_params(endpoints=[], require_tls=False), _current())
    limited, skipped = rp.limit_to_managed("orders-proxy", plan, MANAGED, {})
    assert limited["changed"] is True and limited["action"] == "update"
    assert rp.planned_actions(limited) == ["ModifyDBProxy"] and len(skipped) == 1


@pytest.mark.parametrize("proxy_tags, endpoint_tags, fragment", [
    ({"team": "dbre"}, {"orders-proxy-ro": dict(MANAGED)},
     "RDS proxy orders-proxy was not created by dbre.rds.rds_proxy (no dbre:managed-by tag); add the tag"),
    (dict(MANAGED), {"orders-proxy-ro": {}}, "endpoint orders-proxy-ro was not created by dbre.rds.rds_proxy"),
])
def test_removing_what_the_module_did_not_create_is_refused(proxy_tags, endpoint_tags, fragment):
    plan = rp.plan_proxy(None, _current(tags=proxy_tags))
    limited, skipped = rp.limit_to_managed("orders-proxy", plan, proxy_tags, endpoint_tags)
    assert skipped == [] and limited["changed"] is False and rp.planned_actions(limited) == []
    assert limited["action"] == "none" and any(fragment in p for p in limited["problems"])


def test_removing_a_marked_proxy_goes_ahead():
    plan = rp.plan_proxy(None, _current(tags=dict(MANAGED)))
    limited, unused_skipped = rp.limit_to_managed("orders-proxy", plan, MANAGED, {"orders-proxy-ro": dict(MANAGED)})
    assert limited == plan and rp.planned_actions(limited) == ["DeleteDBProxyEndpoint", "DeleteDBProxy"]
