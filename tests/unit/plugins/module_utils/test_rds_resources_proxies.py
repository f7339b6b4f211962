# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading RDS Proxies through the one read layer: proxies, endpoints, targets, and whom a proxy fronts."""

import botocore.exceptions
import pytest

from ansible_collections.dbre.rds.plugins.module_utils import rds_resources as rr


class FakeRds:
    """Canned pages per operation and Marker; ``missing`` maps an operation to the error code it raises."""

    def __init__(self, pages=None, missing=None):
        self.pages = pages or {}
        self.missing = missing or {}
        self.calls = []

    def __getattr__(self, operation):
        def call(**params):
            self.calls.append((operation, params))
            if operation in self.missing:
                raise botocore.exceptions.ClientError({"Error": {"Code": self.missing[operation], "Message": "no"}},
                                                      operation)
            return self.pages[operation][params.get("Marker")]
        return call


def test_describe_proxy_asks_for_that_proxy_and_returns_it():
    proxies = [{"DBProxyName": "orders-proxy", "Status": "available"}]
    rds = FakeRds({"describe_db_proxies": {None: {"DBProxies": proxies}}})
    assert rr.describe_proxy(rds, "orders-proxy")["Status"] == "available"
    assert rds.calls == [("describe_db_proxies", {"DBProxyName": "orders-proxy", "aws_retry": True})]


@pytest.mark.parametrize("reader, operation, code", [
    (rr.describe_proxy, "describe_db_proxies", "DBProxyNotFoundFault"),
    (rr.describe_proxy_endpoint, "describe_db_proxy_endpoints", "DBProxyEndpointNotFoundFault"),
])
def test_a_missing_proxy_or_endpoint_is_none(reader, operation, code):
    assert reader(FakeRds(missing={operation: code}), "nope") is None


def test_other_errors_are_raised():
    with pytest.raises(botocore.exceptions.ClientError):
        rr.describe_proxy(FakeRds(missing={"describe_db_proxies": "AccessDenied"}), "orders-proxy")


@pytest.mark.parametrize("reader", [rr.describe_proxy, rr.describe_proxy_endpoint, rr.describe_proxy_endpoints,
                                    rr.describe_proxy_targets, rr.describe_proxy_target_groups])
@pytest.mark.parametrize("blank", ["", "  ", None])
def test_a_blank_name_never_lists_every_proxy(reader, blank):
    rds = FakeRds()
    with pytest.raises(ValueError):
        reader(rds, blank)
    assert rds.calls == []


def test_targets_page_through_the_default_target_group():
    rds = FakeRds({"describe_db_proxy_targets": {
        None: {"Targets": [{"RdsResourceId": "a", "Type": "RDS_INSTANCE"}], "Marker": "m"},
        "m": {"Targets": [{"RdsResourceId": "b", "Type": "RDS_INSTANCE"}]},
    }})
    assert [t["RdsResourceId"] for t in rr.describe_proxy_targets(rds, "p")] == ["a", "b"]
    assert all(params["DBProxyName"] == "p" and params["TargetGroupName"] == "default" for _op, params in rds.calls)


@pytest.mark.parametrize("code", ["DBProxyNotFoundFault", "DBProxyTargetGroupNotFoundFault"])
def test_targets_of_a_missing_proxy_are_none(code):
    assert rr.describe_proxy_targets(FakeRds(missing={"describe_db_proxy_targets": code}), "p") == []


def test_endpoints_of_one_proxy_only():
    rds = FakeRds({"describe_db_proxy_endpoints": {None: {"DBProxyEndpoints": [
        {"DBProxyEndpointName": "ro", "DBProxyName": "p"}, {"DBProxyEndpointName": "x", "DBProxyName": "other"}]}}})
    assert [e["DBProxyEndpointName"] for e in rr.describe_proxy_endpoints(rds, "p")] == ["ro"]


@pytest.mark.parametrize("family, port", [("POSTGRESQL", 5432), ("MYSQL", 3306), ("postgresql", 5432), (None, None)])
def test_a_proxy_listens_on_its_engine_familys_default_port(family, port):
    assert rr.proxy_port({"EngineFamily": family}) == port


INSTANCE_TARGET = {"Type": "RDS_INSTANCE", "RdsResourceId": "orders-db"}
CLUSTER_TARGETS = [{"Type": "TRACKED_CLUSTER", "RdsResourceId": "billing"},
                   {"Type": "RDS_INSTANCE", "RdsResourceId": "billing-1", "TrackedClusterId": "billing"}]


@pytest.mark.parametrize("targets, kind, identifier, members, fronts", [
    ([INSTANCE_TARGET], "instance", "orders-db", (), True),
    ([INSTANCE_TARGET], "instance", "ORDERS-DB", (), True),
    ([INSTANCE_TARGET], "instance", "other-db", (), False),
    ([], "instance", "orders-db", (), False),
    ([INSTANCE_TARGET], "cluster", "orders-db", (), False),
    (CLUSTER_TARGETS, "cluster", "billing", (), True),
    (CLUSTER_TARGETS[1:], "cluster", "billing", (), True),
    ([{"Type": "RDS_INSTANCE", "RdsResourceId": "billing-2"}], "cluster", "billing", ("billing-1", "billing-2"), True),
    (CLUSTER_TARGETS, "cluster", "other", (), False),
    (CLUSTER_TARGETS, "instance", "billing", (), False),
])
def test_proxy_fronts(targets, kind, identifier, members, fronts):
    assert rr.proxy_fronts(targets, kind, identifier, members) is fronts


@pytest.mark.parametrize("status, family", [
    ("available", "available"), ("creating", "transitional"), ("modifying", "transitional"),
    ("reactivating", "transitional"), ("insufficient-resource-limits", "broken"), ("incompatible-network", "broken"),
    ("suspended", "gone"), ("deleting", "gone"),
])
def test_proxy_statuses_have_a_family(status, family):
    assert rr.status_family({"Status": status}) == family
