# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rds_provision role's RDS Proxy: merged settings, validation, what the proxy tasks get, its endpoints in
rds_provision_endpoints, and what destroy may remove of it."""

import pytest

from ansible_collections.dbre.rds.plugins.module_utils.rds_provision import MARKER_TAG
from ansible_collections.dbre.rds.plugins.module_utils.rds_provision import PROXY_DEFAULTS
from ansible_collections.dbre.rds.plugins.module_utils.rds_provision import destroy_plan
from ansible_collections.dbre.rds.plugins.module_utils.rds_provision import endpoints
from ansible_collections.dbre.rds.plugins.module_utils.rds_provision import normalize
from ansible_collections.dbre.rds.plugins.module_utils.rds_provision import plan
from ansible_collections.dbre.rds.plugins.module_utils.rds_provision import problems
from ansible_collections.dbre.rds.plugins.module_utils.rds_provision import proxy_policy
from ansible_collections.dbre.rds.plugins.module_utils.rds_provision import proxy_settings
from tests.unit.plugins.module_utils.test_rds_provision import DEFAULTS

SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds-provision/orders/master-AbCdEf"


def declared(kind="instance", defaults=None, **changes):
    base = ({"name": "orders", "engine_version": "15.7", "db_instance_class": "db.r6g.large"} if kind == "instance"
            else {"name": "ledger", "engine_version": "15.4", "db_instance_class": "db.r6g.large"})
    merged_defaults = dict(DEFAULTS, proxy=defaults if defaults is not None else dict(PROXY_DEFAULTS))
    return normalize([dict(base, **changes)], merged_defaults, kind)[0]


def test_the_proxy_is_off_unless_enabled_and_then_takes_the_aws_defaults():
    assert declared()["proxy"]["enabled"] is False
    proxy = declared(proxy={"enabled": True})["proxy"]
    assert {key: proxy[key] for key in PROXY_DEFAULTS} == dict(PROXY_DEFAULTS, enabled=True)
    assert (proxy["name"], proxy["role_name"], proxy["read_only_endpoint_name"]) == (
        "orders-proxy", "orders-proxy", "orders-proxy-ro")


def test_declaration_keys_win_over_the_role_defaults_and_nulls_take_them():
    proxy = proxy_settings("orders", {"enabled": True, "max_connections_percent": 80, "name": "ignored"},
                           {"max_connections_percent": None, "require_tls": "false", "name": "orders-pool"})
    assert (proxy["enabled"], proxy["max_connections_percent"], proxy["require_tls"]) == (True, 80, False)
    assert (proxy["name"], proxy["read_only_endpoint_name"], proxy["named"]) == ("orders-pool", "orders-pool-ro", True)


def test_an_enabled_proxy_opens_the_database_group_to_itself_and_the_proxy_port_to_the_applications():
    rules = declared(proxy={"enabled": True}, port=6543)["ingress_rules"]
    assert rules == [
        {"proto": "tcp", "ports": [6543], "group_id": "sg-app", "rule_desc": "PostgreSQL from sg-app"},
        {"proto": "tcp", "ports": [6543], "group_name": "orders-db",
         "rule_desc": "PostgreSQL from the RDS Proxy orders-proxy"},
        {"proto": "tcp", "ports": [5432], "group_id": "sg-app", "rule_desc": "RDS Proxy orders-proxy from sg-app"}]
    assert len(declared(proxy={"enabled": True})["ingress_rules"]) == 2
    assert len(declared()["ingress_rules"]) == 1


WHERE = "rds_provision_instances[0] (orders).proxy"


@pytest.mark.parametrize("changes, expected", [
    ({"proxy": {"enabled": True}}, []),
    ({"proxy": {"enabled": False, "max_connections_percent": 0}}, []),
    ({"proxy": {"enabled": True, "max_connections_percent": 0}},
     [f"{WHERE}.max_connections_percent: 0 is outside 1-100; it is the share of the database's max_connections"]),
    ({"proxy": {"enabled": True, "max_connections_percent": 101}},
     [f"{WHERE}.max_connections_percent: 101 is outside 1-100"]),
    ({"proxy": {"enabled": True, "max_idle_connections_percent": -1}},
     [f"{WHERE}.max_idle_connections_percent: -1 is outside 0-100"]),
    ({"proxy": {"enabled": True, "max_connections_percent": 40, "max_idle_connections_percent": 60}},
     [f"{WHERE}.max_idle_connections_percent: 60 is above max_connections_percent 40"]),
    ({"proxy": {"enabled": True, "connection_borrow_timeout": 3601}},
     [f"{WHERE}.connection_borrow_timeout: 3601 is outside 0-3600"]),
    ({"proxy": {"enabled": True, "idle_client_timeout": 0}}, [f"{WHERE}.idle_client_timeout: 0 is outside 1-28800"]),
    ({"proxy": {"enabled": True, "max_connections_percent": True}},
     [f"{WHERE}.max_connections_percent: True is outside 1-100"]),
    ({"proxy": {"enabled": "perhaps"}}, [f"{WHERE}.enabled: 'perhaps' is not true or false"]),
    ({"proxy": {"enabled": True, "iam_auth": "sometimes"}}, [f"{WHERE}.iam_auth: 'sometimes' is not true or false"]),
    ({"proxy": {"enabled": True, "read_only_endpoint": True}},
     [f"{WHERE}.read_only_endpoint: read-only proxy endpoints lead to Aurora readers"]),
    ({"proxy": {"enabled": True}, "master_user_password": "given-here"},
     [f"{WHERE}: the proxy logs in with the master secret the role keeps", "leave master_user_password out"]),
    ({"proxy": {"enabled": True}, "engine": "mysql"}, ["this role puts POSTGRESQL proxies in front of postgres and "
                                                       "aurora-postgresql only, not 'mysql'"]),
    ({"proxy": {"enabled": True, "name": "orders_pool"}},
     [f"{WHERE}.name: 'orders_pool' is not a valid RDS Proxy name"]),
    ({"name": "o" * 55, "proxy": {"enabled": True}},
     [f"proxy.name: '{'o' * 55}-proxy' (<name>-proxy) is not a valid RDS Proxy name", "set proxy.name"]),
])
def test_proxy_problems(changes, expected):
    """``expected``: the fragments of the one proxy problem the declaration has (none for a good one)."""
    found = [p for p in problems([declared(**changes)], []) if "proxy" in p.lower()]
    assert len(found) == (1 if expected else 0), found
    for fragment in expected:
        assert fragment in found[0]


def test_a_cluster_may_have_a_read_only_endpoint():
    item = declared("cluster", proxy={"enabled": True, "read_only_endpoint": True})
    assert [p for p in problems([], [item]) if "proxy" in p] == []


def test_the_policy_reads_that_one_secret_and_decrypts_only_through_secrets_manager():
    assert proxy_policy(SECRET) == {"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadTheMasterSecret", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
         "Resource": SECRET}]}
    decrypt = proxy_policy(SECRET, "alias/orders")["Statement"][1]
    assert decrypt["Action"] == "kms:Decrypt"
    assert decrypt["Condition"] == {"StringLike": {"kms:ViaService": "secretsmanager.*.amazonaws.com"}}


SETTINGS = {"instance_defaults": dict(DEFAULTS, proxy=dict(PROXY_DEFAULTS, max_connections_percent=90)),
            "cluster_defaults": dict(DEFAULTS, proxy=dict(PROXY_DEFAULTS)), "tags": {"managed_by": "dbre"}}
DECLARED = [{"name": "orders", "engine_version": "15.7", "db_instance_class": "db.r6g.large",
             "proxy": {"enabled": True, "iam_auth": True}},
            {"name": "plain", "engine_version": "15.7", "db_instance_class": "db.r6g.large"}]
CLUSTERS = [{"name": "ledger", "engine_version": "15.4", "db_instance_class": "db.r6g.large",
             "proxy": {"enabled": True, "read_only_endpoint": True, "require_tls": False}}]


def test_the_plan_lists_what_each_proxy_task_needs():
    found = plan(DECLARED, CLUSTERS, SETTINGS, {"secret_arns": {"orders": SECRET}})
    assert found["problems"] == []
    orders, ledger = found["proxies"]
    assert orders == {
        "declaration": "orders", "kind": "instance", "name": "orders-proxy", "role_name": "orders-proxy",
        "secret_arn": SECRET, "role_policy": proxy_policy(SECRET), "iam_auth": "REQUIRED", "require_tls": True,
        "idle_client_timeout": 1800,
        "target_group": {"max_connections_percent": 90, "max_idle_connections_percent": 50,
                         "connection_borrow_timeout": 120},
        "endpoints": [], "subnet_ids": ["subnet-a", "subnet-b"],
        "resource_tags": {"managed_by": "dbre", MARKER_TAG: "orders"}}
    # The cluster's secret is not known yet (check mode on a new account): the tasks skip it.
    assert (ledger["secret_arn"], ledger["role_policy"], ledger["iam_auth"], ledger["require_tls"]) == (
        None, None, "DISABLED", False)
    assert ledger["endpoints"] == [{"name": "ledger-proxy-ro", "target_role": "READ_ONLY"}]


def proxy_result(declaration, endpoint=None, read_only=None):
    endpoints_found = [{"db_proxy_endpoint_name": "x", "endpoint": endpoint, "target_role": "READ_WRITE",
                        "is_default": True}]
    if read_only:
        endpoints_found.append({"db_proxy_endpoint_name": "x-ro", "endpoint": read_only, "target_role": "READ_ONLY",
                                "is_default": False})
    return {"item": {"declaration": declaration}, "proxy": {"endpoint": endpoint} if endpoint else {},
            "endpoints": endpoints_found}


def test_the_endpoints_carry_the_proxys_addresses():
    items = normalize(DECLARED, SETTINGS["instance_defaults"], "instance")
    clusters = normalize(CLUSTERS, SETTINGS["cluster_defaults"], "cluster")
    info = [proxy_result("orders", "127.1.2.3"), proxy_result("ledger", "127.1.2.4", "127.1.2.5"),
            {"item": {"declaration": "plain"}, "skipped": True}]
    result = endpoints(items, clusters, [], [], {}, info)
    assert {key: result["orders"][key] for key in ("proxy_endpoint", "proxy_read_only_endpoint", "proxy_port")} == {
        "proxy_endpoint": "127.1.2.3", "proxy_read_only_endpoint": None, "proxy_port": 5432}
    assert (result["ledger"]["proxy_endpoint"], result["ledger"]["proxy_read_only_endpoint"]) == (
        "127.1.2.4", "127.1.2.5")
    assert (result["plain"]["proxy_endpoint"], result["plain"]["proxy_port"]) == (None, None)


def marked(name):
    return {MARKER_TAG: name}


def test_destroy_removes_the_proxy_and_its_role_only_when_they_carry_the_marker():
    item = declared(proxy={"enabled": True})
    instance_info = [{"db_instance_identifier": "orders", "tags": marked("orders")}]
    reads = {"proxy_reads": [{"item": item, "diff": {"before": {"tags": marked("orders")}, "after": {}}}],
             "proxy_role_reads": [{"item": item, "iam_roles": [{"role_name": "orders-proxy",
                                                                "tags": marked("orders")}]}]}
    removal = destroy_plan([item], ["orders"], instance_info, [], reads)
    assert removal["problems"] == []
    assert [(p["kind"], p["name"]) for p in removal["proxies"] + removal["proxy_roles"]] == [
        ("RDS Proxy", "orders-proxy"), ("IAM role", "orders-proxy")]

    foreign = {"proxy_reads": [{"item": item, "diff": {"before": {"tags": {"team": "x"}}, "after": {}}}],
               "proxy_role_reads": [{"item": item, "iam_roles": [{"role_name": "orders-proxy", "tags": {}}]}]}
    refused = destroy_plan([item], ["orders"], instance_info, [], foreign)
    assert refused["proxies"] == [] and refused["proxy_roles"] == [] and refused["instances"] == []
    assert refused["problems"] == [
        f"RDS Proxy orders-proxy has no tag {MARKER_TAG}=orders, so dbre.rds.rds_provision did not create it; "
        "remove it yourself or tag it, then rerun.",
        f"IAM role orders-proxy has no tag {MARKER_TAG}=orders, so dbre.rds.rds_provision did not create it; "
        "remove it yourself or tag it, then rerun.",
        "Nothing was removed."]


def test_destroy_without_a_proxy_removes_none():
    item = declared()
    reads = {"proxy_reads": [{"item": item, "diff": {"before": {}, "after": {}}}],
             "proxy_role_reads": [{"item": item, "iam_roles": []}]}
    removal = destroy_plan([item], ["orders"], [{"db_instance_identifier": "orders", "tags": marked("orders")}], [],
                           reads)
    assert removal["problems"] == [] and removal["proxies"] == [] and removal["proxy_roles"] == []
