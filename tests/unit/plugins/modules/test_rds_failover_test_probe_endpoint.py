# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rds_failover_test's read of probe_endpoint: a proxy name first, then a proxy endpoint's name and its proxy, then the
proxy's targets; the writer endpoint without it; an AWS error fails the module naming the permissions."""

import botocore.exceptions
import pytest

from ansible_collections.dbre.rds.plugins.modules import rds_failover_test as module

PROXY = {"DBProxyName": "orders-proxy", "Status": "available", "EngineFamily": "POSTGRESQL", "Endpoint": "127.9.9.9"}
ENDPOINT = {"DBProxyEndpointName": "orders-rw", "DBProxyName": "orders-proxy", "Status": "available",
            "TargetRole": "READ_WRITE", "Endpoint": "127.9.9.10"}
TARGETS = [{"Type": "RDS_INSTANCE", "RdsResourceId": "orders-db"}]
INSTANCE = {"DBInstanceIdentifier": "orders-db", "Endpoint": {"Address": "127.0.0.1", "Port": 40001}}


class FakeRds:
    """Describe calls answered from what exists; the not-found error for anything else, as RDS does."""

    def __init__(self, proxies=(), endpoints=(), targets=(), error=None):
        self.proxies, self.endpoints, self.targets, self.error = list(proxies), list(endpoints), list(targets), error
        self.calls = []

    def _missing(self, code, operation):
        return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": "not found"}}, operation)

    def describe_db_proxies(self, DBProxyName, aws_retry=False):
        self.calls.append(("describe_db_proxies", DBProxyName))
        if self.error:
            raise self.error
        found = [p for p in self.proxies if p["DBProxyName"] == DBProxyName]
        if not found:
            raise self._missing("DBProxyNotFoundFault", "DescribeDBProxies")
        return {"DBProxies": found}

    def describe_db_proxy_endpoints(self, DBProxyEndpointName, aws_retry=False):
        self.calls.append(("describe_db_proxy_endpoints", DBProxyEndpointName))
        found = [e for e in self.endpoints if e["DBProxyEndpointName"] == DBProxyEndpointName]
        if not found:
            raise self._missing("DBProxyEndpointNotFoundFault", "DescribeDBProxyEndpoints")
        return {"DBProxyEndpoints": found}

    def describe_db_proxy_targets(self, DBProxyName, TargetGroupName, aws_retry=False):
        self.calls.append(("describe_db_proxy_targets", DBProxyName))
        return {"Targets": self.targets}


class Failed(Exception):
    pass


class FakeModule:
    def __init__(self, **params):
        self.params = dict({"probe_endpoint": None, "probe_mode": "write", "login_host": None, "login_port": None},
                           **params)

    def fail_json_aws(self, exc, msg):
        raise Failed(msg)


def test_without_probe_endpoint_the_writer_endpoint_and_no_proxy_call():
    rds = FakeRds()
    path, problems = module.read_probe_path(FakeModule(), rds, "instance", "orders-db", INSTANCE, {})
    assert (path, problems, rds.calls) == (
        {"kind": "writer", "name": "orders-db", "address": "127.0.0.1", "port": 40001}, [], [])


def test_a_proxy_name_is_looked_up_first():
    rds = FakeRds([PROXY], [ENDPOINT], TARGETS)
    path, problems = module.read_probe_path(FakeModule(probe_endpoint="orders-proxy"), rds, "instance", "orders-db",
                                            INSTANCE, {})
    assert problems == [] and path == {"kind": "proxy", "name": "orders-proxy", "address": "127.9.9.9", "port": 5432}
    assert rds.calls == [("describe_db_proxies", "orders-proxy"), ("describe_db_proxy_targets", "orders-proxy")]


def test_an_endpoint_name_leads_to_its_proxy_and_the_proxys_targets():
    rds = FakeRds([PROXY], [ENDPOINT], TARGETS)
    path, problems = module.read_probe_path(FakeModule(probe_endpoint="orders-rw"), rds, "instance", "orders-db",
                                            INSTANCE, {})
    assert problems == [] and path["address"] == "127.9.9.10"
    assert rds.calls == [("describe_db_proxies", "orders-rw"), ("describe_db_proxy_endpoints", "orders-rw"),
                         ("describe_db_proxies", "orders-proxy"), ("describe_db_proxy_targets", "orders-proxy")]


def test_an_unknown_name_is_a_problem_not_an_error():
    path, problems = module.read_probe_path(FakeModule(probe_endpoint="ghost"), FakeRds(), "instance", "orders-db",
                                            INSTANCE, {})
    assert path is None and "probe_endpoint ghost is neither an RDS Proxy nor an RDS Proxy endpoint" in problems[0]


def test_a_describe_that_fails_fails_the_module_naming_the_permissions():
    denied = botocore.exceptions.ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "DescribeDBProxies")
    with pytest.raises(Failed, match="allow rds:DescribeDBProxies, rds:DescribeDBProxyEndpoints and "
                                     "rds:DescribeDBProxyTargets; nothing was changed"):
        module.read_probe_path(FakeModule(probe_endpoint="orders-proxy"), FakeRds(error=denied), "instance",
                               "orders-db", INSTANCE, {})
