# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module's glue: the order of its calls, waiting for the proxy before the calls RDS refuses while it is creating
or modifying, and calls sent once (a lost answer is checked, never resent blindly). The client is a small recording
stand-in that answers like RDS (a proxy that is ``creating`` for its first describes, InvalidDBProxyStateFault for a
target group call before it is available, a lost answer raised as botocore raises it)."""

import botocore.exceptions
import pytest

from ansible_collections.dbre.rds.plugins.module_utils import rds_proxy
from ansible_collections.dbre.rds.plugins.modules import rds_proxy as module

SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app-AbCdEf"
ROLE = "arn:aws:iam::123456789012:role/proxy-secrets"


def _error(code, operation):
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": code},
                                            "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)


class FakeRDS:
    """One proxy's worth of RDS: ``creating_describes`` describes say ``creating`` after a create or a modify."""

    def __init__(self, creating_describes=2, lose_create_answer=False):
        self.calls, self.proxy, self.endpoints, self.targets = [], None, {}, []
        self.pool = {"MaxConnectionsPercent": 100, "MaxIdleConnectionsPercent": 50, "ConnectionBorrowTimeout": 120}
        self.creating_describes, self.busy = creating_describes, 0
        self.lose_create_answer = lose_create_answer
        self.lose_deregister_answer = False

    def _available(self, operation):
        if self.busy:
            raise _error("InvalidDBProxyStateFault", operation)

    def create_db_proxy(self, DBProxyName, **request):
        self.calls.append("CreateDBProxy")
        self.proxy = dict(request, DBProxyName=DBProxyName, DBProxyArn="arn:aws:rds:us-east-1:1:db-proxy:prx-1",
                          Endpoint="p.proxy-1.us-east-1.rds.amazonaws.com")
        self.busy = self.creating_describes
        if self.lose_create_answer:
            raise botocore.exceptions.ReadTimeoutError(endpoint_url="https://rds.us-east-1.amazonaws.com")
        return {"DBProxy": self.proxy}

    def modify_db_proxy(self, aws_retry, DBProxyName, **changes):
        self._available("ModifyDBProxy")
        self.calls.append("ModifyDBProxy")
        self.proxy.update(changes)
        self.busy = self.creating_describes

    def describe_db_proxies(self, aws_retry, DBProxyName):
        if self.proxy is None:
            raise _error("DBProxyNotFoundFault", "DescribeDBProxies")
        status = "available"
        if self.busy:
            self.busy -= 1
            status = "creating"
        return {"DBProxies": [dict(self.proxy, Status=status)]}

    def list_tags_for_resource(self, aws_retry, ResourceName):
        for endpoint in self.endpoints.values():
            if endpoint["DBProxyEndpointArn"] == ResourceName:
                return {"TagList": endpoint.get("Tags", [])}
        return {"TagList": self.proxy.get("Tags", [])}

    def deregister_db_proxy_targets(self, DBProxyName, TargetGroupName, DBInstanceIdentifiers):
        self.calls.append("DeregisterDBProxyTargets")
        before = len(self.targets)
        self.targets = [t for t in self.targets if t["RdsResourceId"] not in DBInstanceIdentifiers]
        if len(self.targets) == before:
            raise _error("DBProxyTargetNotFoundFault", "DeregisterDBProxyTargets")
        if self.lose_deregister_answer:
            self.lose_deregister_answer = False
            raise botocore.exceptions.ReadTimeoutError(endpoint_url="https://rds.us-east-1.amazonaws.com")

    def delete_db_proxy_endpoint(self, DBProxyEndpointName):
        self.calls.append("DeleteDBProxyEndpoint")
        del self.endpoints[DBProxyEndpointName]

    def delete_db_proxy(self, DBProxyName):
        self.calls.append("DeleteDBProxy")
        self.proxy = None

    def describe_db_proxy_target_groups(self, aws_retry, DBProxyName):
        return {"TargetGroups": [{"TargetGroupName": "default", "ConnectionPoolConfig": dict(self.pool)}]}

    def modify_db_proxy_target_group(self, aws_retry, DBProxyName, TargetGroupName, ConnectionPoolConfig):
        self._available("ModifyDBProxyTargetGroup")
        self.calls.append("ModifyDBProxyTargetGroup")
        self.pool.update(ConnectionPoolConfig)

    def register_db_proxy_targets(self, DBProxyName, TargetGroupName, DBInstanceIdentifiers):
        self._available("RegisterDBProxyTargets")
        self.calls.append("RegisterDBProxyTargets")
        self.targets = [{"RdsResourceId": DBInstanceIdentifiers[0], "Type": "RDS_INSTANCE",
                         "TargetHealth": {"State": "AVAILABLE"}}]

    def describe_db_proxy_targets(self, aws_retry, DBProxyName, TargetGroupName):
        return {"Targets": list(self.targets)}

    def create_db_proxy_endpoint(self, DBProxyName, DBProxyEndpointName, **request):
        self._available("CreateDBProxyEndpoint")
        self.calls.append("CreateDBProxyEndpoint")
        self.endpoints[DBProxyEndpointName] = dict(request, DBProxyName=DBProxyName, Status="available",
                                                   DBProxyEndpointName=DBProxyEndpointName, IsDefault=False,
                                                   DBProxyEndpointArn=f"arn:aws:rds:us-east-1:1:db-proxy-endpoint:"
                                                                      f"{DBProxyEndpointName}")

    def describe_db_proxy_endpoints(self, aws_retry, DBProxyName=None, DBProxyEndpointName=None):
        found = [e for e in self.endpoints.values()
                 if DBProxyEndpointName in (None, e["DBProxyEndpointName"]) and DBProxyName in (None, e["DBProxyName"])]
        if DBProxyEndpointName and not found:
            raise _error("DBProxyEndpointNotFoundFault", "DescribeDBProxyEndpoints")
        return {"DBProxyEndpoints": found}


class FakeModule:
    def __init__(self, rds, wait=True):
        self.rds = rds
        self.params = dict(wait=wait, wait_timeout=30, poll_interval=0.001)
        self.warnings = []

    def warn(self, message):
        self.warnings.append(message)

    def client(self, service, **_config):
        assert service == "rds"
        return self.rds


def _plan():
    params = dict(name="p", state="present", engine_family="POSTGRESQL", role_arn=ROLE,
                  auth=[dict(secret_arn=SECRET, iam_auth="DISABLED", client_password_auth_type="POSTGRES_MD5")],
                  require_tls=True, idle_client_timeout=1800, debug_logging=False, vpc_subnet_ids=["subnet-0a"],
                  vpc_security_group_ids=None, tags=None, db_instance_identifier="db1", db_cluster_identifier=None,
                  target_group=dict(max_connections_percent=40, max_idle_connections_percent=10,
                                    connection_borrow_timeout=60, init_query=None, session_pinning_filters=None),
                  endpoints=[dict(name="p-rw", target_role="READ_WRITE", vpc_subnet_ids=None,
                                  vpc_security_group_ids=None)])
    desired = rds_proxy.desired_state(params)
    return rds_proxy.plan_proxy(desired, None), desired


@pytest.mark.parametrize("lose_create_answer", [False, True])
def test_create_waits_for_the_proxy_before_pool_target_and_endpoint(lose_create_answer):
    rds = FakeRDS(creating_describes=3, lose_create_answer=lose_create_answer)
    applier = module.Applier(FakeModule(rds), rds, "p")
    plan, desired = _plan()
    applier.present(plan, desired)
    # without the wait, RDS would refuse the target group call with InvalidDBProxyStateFault
    assert rds.calls == ["CreateDBProxy", "ModifyDBProxyTargetGroup", "RegisterDBProxyTargets",
                         "CreateDBProxyEndpoint"]
    assert applier.actions == rds.calls  # a lost answer to CreateDBProxy was confirmed by a describe, not resent
    assert [t["state"] for t in applier.transitions][:2] == ["proxy creating", "ready"]
    assert rds.pool["MaxConnectionsPercent"] == 40 and rds.targets[0]["RdsResourceId"] == "db1"


def test_modify_is_awaited_before_the_pool_changes():
    rds = FakeRDS(creating_describes=2)
    applier = module.Applier(FakeModule(rds), rds, "p")
    applier.present(*_plan())
    current = rds_proxy.current_state(rds.describe_db_proxies(True, "p")["DBProxies"][0], {},
                                      rds.describe_db_proxy_target_groups(True, "p")["TargetGroups"][0], rds.targets,
                                      list(rds.endpoints.values()))
    rds.calls.clear()
    desired = rds_proxy.desired_state(dict(
        name="p", state="present", engine_family="POSTGRESQL", role_arn=ROLE, auth=None, require_tls=False,
        idle_client_timeout=1800, debug_logging=False, vpc_subnet_ids=None, vpc_security_group_ids=None, tags=None,
        db_instance_identifier=None, db_cluster_identifier=None, endpoints=None,
        target_group=dict(max_connections_percent=20, max_idle_connections_percent=5, connection_borrow_timeout=60,
                          init_query=None, session_pinning_filters=None)))
    params_plan = rds_proxy.plan_proxy(desired, current)
    assert params_plan["modify"] == {"RequireTLS": False}
    applier.present(params_plan, desired)
    assert rds.calls == ["ModifyDBProxy", "ModifyDBProxyTargetGroup"]
    assert rds.pool["MaxConnectionsPercent"] == 20


def test_result_parts_are_snake_case_and_empty_for_a_missing_proxy():
    read = dict(proxy={"DBProxyName": "p", "RequireTLS": True}, tags={"team": "dbre"},
                target_group={"TargetGroupName": "default", "ConnectionPoolConfig": {"MaxConnectionsPercent": 40}},
                targets=[{"RdsResourceId": "db1", "TargetHealth": {"State": "AVAILABLE"}}],
                endpoints=[{"DBProxyEndpointName": "default", "IsDefault": True}])
    parts = module.result_parts(read)
    assert parts["proxy"] == {"db_proxy_name": "p", "require_tls": True, "tags": {"team": "dbre"}}
    assert parts["target_group"]["connection_pool_config"] == {"max_connections_percent": 40}
    assert parts["targets"] == [{"rds_resource_id": "db1", "target_health": {"state": "AVAILABLE"}}]
    assert parts["endpoints"] == [{"db_proxy_endpoint_name": "default", "is_default": True}]
    assert module.result_parts(dict(proxy=None, tags={}, target_group=None, targets=[], endpoints=[])) == dict(
        proxy={}, target_group={}, targets=[], endpoints=[])


def _built(tags=None):
    """A proxy (tags: its own) with the marked endpoint p-rw the module created and one p-adhoc made by hand."""
    rds = FakeRDS(creating_describes=0)
    module.Applier(FakeModule(rds), rds, "p").present(*_plan())
    if tags is not None:
        rds.proxy["Tags"] = tags
    rds.create_db_proxy_endpoint("p", "p-adhoc", TargetRole="READ_WRITE", VpcSubnetIds=["subnet-0a"])
    rds.calls.clear()
    return rds


@pytest.mark.parametrize("lose_answer, gone_already", [(False, False), (True, False), (False, True)])
def test_deregister_is_sent_once_and_a_missing_target_is_done(lose_answer, gone_already):
    rds = _built()
    rds.lose_deregister_answer = lose_answer
    if gone_already:
        rds.targets = []
    applier = module.Applier(FakeModule(rds), rds, "p")
    plan = dict(rds_proxy.plan_proxy(None, None), action="update", register=None,
                before=dict(target={"db_instance_identifier": "db1"}), deregister={"DBInstanceIdentifiers": ["db1"]})
    applier.present(plan, None)
    # a lost answer is confirmed by describing the targets, never resent (a resend would fail with NotFound)
    assert rds.calls == ["DeregisterDBProxyTargets"] and applier.actions == ["DeregisterDBProxyTargets"]
    assert rds.targets == []


def test_endpoints_without_the_marker_are_read_again_and_skipped():
    rds = _built()
    fake = FakeModule(rds)
    applier = module.Applier(fake, rds, "p")
    applier.delete_endpoints(["p-adhoc", "p-rw"], wait=True)
    assert rds.calls == ["DeleteDBProxyEndpoint"] and sorted(rds.endpoints) == ["p-adhoc"]
    assert [item["endpoint"] for item in applier.skipped] == ["p-adhoc"]
    assert len(fake.warnings) == 1 and "p-adhoc was not created by dbre.rds.rds_proxy" in fake.warnings[0]


def test_absent_keeps_a_proxy_that_lost_its_marker():
    rds = _built(tags=[{"Key": "team", "Value": "dbre"}])
    del rds.endpoints["p-adhoc"]
    applier = module.Applier(FakeModule(rds), rds, "p")
    with pytest.raises(module.NotManaged, match="no dbre:managed-by tag"):
        applier.absent(dict(delete_endpoints=[]))
    assert rds.calls == [] and rds.proxy is not None


def test_absent_keeps_the_proxy_when_an_endpoint_lost_its_marker():
    rds = _built(tags=[{"Key": "dbre:managed-by", "Value": "rds_proxy"}])
    applier = module.Applier(FakeModule(rds), rds, "p")
    with pytest.raises(module.NotManaged, match="p-adhoc"):
        applier.absent(dict(delete_endpoints=["p-adhoc", "p-rw"]))
    assert rds.calls == ["DeleteDBProxyEndpoint"] and rds.proxy is not None and list(rds.endpoints) == ["p-adhoc"]


def test_absent_deletes_a_marked_proxy():
    rds = _built(tags=[{"Key": "dbre:managed-by", "Value": "rds_proxy"}])
    del rds.endpoints["p-adhoc"]
    applier = module.Applier(FakeModule(rds), rds, "p")
    applier.absent(dict(delete_endpoints=["p-rw"]))
    assert rds.calls == ["DeleteDBProxyEndpoint", "DeleteDBProxy"] and rds.proxy is None
