# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module's reads: a deployment is looked up by the instance it is about (rds_resources.blue_green_deployments_of:
filtered by source and by target, never an unfiltered list), and a missing deployment or parameter group is None. The
client is a small recording stand-in that filters as RDS does and refuses an unknown identifier as RDS does.

And the module's glue where a call's answer matters: a switchover request whose answer is lost is sent again only when
neither the deployment's status nor its events show it reached RDS; a refused create drops the probe table it made."""

import datetime
import functools

import botocore.exceptions
import pytest

from ansible_collections.dbre.rds.plugins.module_utils import aws_clients
from ansible_collections.dbre.rds.plugins.module_utils import rds_resources
from ansible_collections.dbre.rds.plugins.module_utils.clock import DrillClock
from ansible_collections.dbre.rds.plugins.module_utils.drill_runtime import DrillAborted
from ansible_collections.dbre.rds.plugins.module_utils.waiting import WaitFailed
from ansible_collections.dbre.rds.plugins.modules import rds_blue_green as module

ARN = "arn:aws:rds:us-east-1:123456789012:db:"


class FakeRDS:
    def __init__(self, deployments=()):
        self.deployments = list(deployments)
        self.requests = []

    def describe_blue_green_deployments(self, aws_retry=False, **request):
        self.requests.append(request)
        if "BlueGreenDeploymentIdentifier" in request:
            found = [d for d in self.deployments
                     if d["BlueGreenDeploymentIdentifier"] == request["BlueGreenDeploymentIdentifier"]]
            if not found:
                raise botocore.exceptions.ClientError(
                    {"Error": {"Code": "BlueGreenDeploymentNotFoundFault", "Message": "not found"},
                     "ResponseMetadata": {"HTTPStatusCode": 404}}, "DescribeBlueGreenDeployments")
            return {"BlueGreenDeployments": found}
        keys = {"source": "Source", "target": "Target", "blue-green-deployment-name": "BlueGreenDeploymentName"}
        found = self.deployments
        for item in request.get("Filters") or []:
            found = [d for d in found if d[keys[item["Name"]]] in item["Values"]]
        return {"BlueGreenDeployments": found}

    def describe_db_parameter_groups(self, aws_retry=False, **request):
        raise botocore.exceptions.ClientError({"Error": {"Code": "DBParameterGroupNotFound", "Message": "none"},
                                               "ResponseMetadata": {"HTTPStatusCode": 404}},
                                              "DescribeDBParameterGroups")


def _deployment(identifier, name, source, target):
    return {"BlueGreenDeploymentIdentifier": identifier, "BlueGreenDeploymentName": name, "Source": ARN + source,
            "Target": ARN + target, "Status": "AVAILABLE"}


@pytest.fixture
def rds():
    return FakeRDS([_deployment("bgd-1", "shop-bg", "shop", "shop-green-abcdef"),
                    _deployment("bgd-2", "other-bg", "other", "other-green-ghijkl"),
                    _deployment("bgd-3", "done-bg", "done-old1", "done")])


def test_deployments_are_read_by_source_and_by_target_only(rds):
    def of(arn):
        return [d["BlueGreenDeploymentIdentifier"] for d in rds_resources.blue_green_deployments_of(rds, arn)]

    assert of(ARN + "shop") == ["bgd-1"]
    assert of(ARN + "done") == ["bgd-3"]
    assert of(ARN + "nothing") == []
    assert all(request.get("Filters") for request in rds.requests)


def test_a_deployment_by_identifier_or_name_is_none_when_missing(rds):
    assert module.describe_deployment(rds, "bgd-2")["BlueGreenDeploymentName"] == "other-bg"
    assert module.describe_deployment(rds, "bgd-9") is None
    assert module.describe_deployment_named(rds, "done-bg")["BlueGreenDeploymentIdentifier"] == "bgd-3"
    assert module.describe_deployment_named(rds, "nope") is None
    assert rds_resources.describe_parameter_group(rds, "missing") is None
    assert rds_resources.describe_parameter_group(rds, None) is None


# ------------------------------------------------------------------------------------------------------------------
# The switchover request whose answer is lost (m7) and the probe table of a refused create (m4): the module's glue with
# a stand-in RDS that answers as RDS does in each case. call_once is the real one (no sleeping).

LOST = botocore.exceptions.ReadTimeoutError(endpoint_url="https://rds.us-east-1.amazonaws.com")


def _client_error(code, status=400, operation="Operation"):
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": code},
                                            "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


class SwitchoverRDS:
    """The deployment ``bgd-1``: each switchover request is counted; ``rolled_back`` makes RDS start the switchover,
    cancel it and show the deployment AVAILABLE again before anyone reads it (its answer lost on the way)."""

    def __init__(self, events=(), events_fail=False, reached=True):
        self.switchovers = 0
        self.events = list(events)
        self.events_fail = events_fail
        self.reached = reached
        self.event_reads = []

    def switchover_blue_green_deployment(self, **request):
        self.switchovers += 1
        if self.switchovers == 1:
            raise LOST  # the request reached RDS (or not: self.reached), its answer did not come back
        return {"BlueGreenDeployment": {"BlueGreenDeploymentIdentifier": "bgd-1", "Status": "SWITCHOVER_IN_PROGRESS"}}

    def describe_blue_green_deployments(self, aws_retry=False, **request):
        return {"BlueGreenDeployments": [{"BlueGreenDeploymentIdentifier": "bgd-1",
                                          "BlueGreenDeploymentName": "shop-blue-green", "Status": "AVAILABLE"}]}

    def describe_events(self, aws_retry=False, **request):
        self.event_reads.append(request)
        if self.events_fail:
            raise _client_error("AccessDenied", 403, "DescribeEvents")
        return {"Events": [e for e in self.events if e["Date"] >= request["StartTime"]] if self.reached else []}

    def describe_db_instances(self, aws_retry=False, **request):
        return {"DBInstances": [{"DBInstanceIdentifier": "shop", "DBInstanceStatus": "available"}]}


class Log:
    def __init__(self):
        self.events = []

    def event(self, message, phase=None):
        self.events.append(message)

    def transitions(self, *args):
        pass

    def finish(self, *args):
        pass


class Runtime:
    def __init__(self):
        self.clock = DrillClock()
        self.log = Log()

    def enter(self, *args, **kwargs):
        pass


class Module:
    def __init__(self, **params):
        self.params = dict(wait_timeout=3, poll_interval=0.01, switchover_timeout=300, probe_table="probe",
                           tags=None, target_engine_version="18.6", target_db_parameter_group_name=None,
                           target_db_instance_class=None)
        self.params.update(params)


class World:
    def __init__(self):
        self.identifier = "shop"
        self.instance = {"DBInstanceIdentifier": "shop", "DBInstanceArn": ARN + "shop", "DbiResourceId": "db-BLUE"}
        self.deployment = {"BlueGreenDeploymentIdentifier": "bgd-1", "BlueGreenDeploymentName": "shop-blue-green"}


@pytest.fixture
def no_sleep(monkeypatch):
    monkeypatch.setattr(module, "call_once", functools.partial(aws_clients.call_once, sleep=lambda seconds: None))


def _switch(rds, monkeypatch):
    monkeypatch.setattr(module, "once_client", lambda _module: rds)
    run = module.Switchover(Module(), rds, Runtime(), World(), probing=False)
    run.switch()
    return run


def _switchover_event(message, run_started):
    return {"SourceIdentifier": "bgd-1", "SourceType": "blue-green-deployment", "Message": message,
            "Date": run_started + datetime.timedelta(seconds=5)}


@pytest.mark.parametrize("events", [
    # started, canceled, AVAILABLE again before the check: confirmed by the events, never sent again, and the wait
    # ends at once with the rollback (AVAILABLE after a switchover that started)
    ["Switchover started on blue/green deployment shop-blue-green.",
     "Switchover canceled on blue/green deployment shop-blue-green due to lag. Changes were rolled back."],
    ["Switchover canceled on blue/green deployment shop-blue-green due to lag."],
])
def test_a_lost_switchover_that_rds_rolled_back_is_not_sent_again(events, monkeypatch, no_sleep):
    now = datetime.datetime.now(datetime.timezone.utc)
    rds = SwitchoverRDS(events=[_switchover_event(message, now) for message in events])
    with pytest.raises(WaitFailed):
        _switch(rds, monkeypatch)
    assert rds.switchovers == 1
    (read,) = rds.event_reads
    assert read["SourceType"] == "blue-green-deployment" and read["SourceIdentifier"] == "bgd-1"


def test_a_lost_switchover_is_not_sent_again_when_its_effect_cannot_be_read(monkeypatch, no_sleep):
    rds = SwitchoverRDS(events_fail=True)
    with pytest.raises(DrillAborted) as aborted:
        _switch(rds, monkeypatch)
    assert rds.switchovers == 1
    assert "it was not sent again" in str(aborted.value) and "reading its status and events failed" in \
        str(aborted.value)


def test_a_switchover_request_that_never_reached_rds_is_sent_again(monkeypatch, no_sleep):
    # no status, no event: RDS did not get it, so it is sent again (once); the stand-in answers it in progress and
    # then shows AVAILABLE, which ends the wait as a rollback
    rds = SwitchoverRDS(reached=False)
    with pytest.raises(WaitFailed):
        _switch(rds, monkeypatch)
    assert rds.switchovers == 2


class CreateRDS:
    def __init__(self, answer):
        self.answer = answer
        self.requests = []

    def create_blue_green_deployment(self, **request):
        self.requests.append(request)
        raise self.answer

    def describe_blue_green_deployments(self, aws_retry=False, **request):
        return {"BlueGreenDeployments": []}


@pytest.mark.parametrize("answer, drop_fails, dropped, expected", [
    # RDS refused the deployment: the probe table made just before has no use, it goes, and the message says so
    (_client_error("SourceDatabaseNotSupportedFault"), False, True,
     "probe table probe created on shop and dropped again"),
    (_client_error("SourceDatabaseNotSupportedFault"), True, True,
     "probe table probe created on shop and not dropped (connection refused): drop it by hand"),
    # not confirmed: the deployment may exist and its green needs the table: kept, and said
    (LOST, False, False, "probe table probe created on shop (kept: the deployment may exist"),
])
def test_a_refused_create_drops_the_probe_table_it_made_and_says_so(answer, drop_fails, dropped, expected,
                                                                    monkeypatch, no_sleep):
    made, drops = [], []

    class Conn:
        def close(self):
            pass

    class Connector:
        def connect(self, **options):
            return Conn()

    def drop(conn, table, drill_id):
        drops.append((table, drill_id))
        if drop_fails:
            raise OSError("connection refused")
        return True

    rds = CreateRDS(answer)
    monkeypatch.setattr(module, "once_client", lambda _module: rds)
    monkeypatch.setattr(module, "connector", lambda *args: Connector())
    monkeypatch.setattr(module, "create_probe_table", lambda conn, table, marker: made.append(table))
    monkeypatch.setattr(module, "drop_probe_table", drop)
    applier = module.Applier(Module(wait_timeout=0.5), rds, World())
    with pytest.raises((botocore.exceptions.ClientError, aws_clients.CallNotConfirmed)):
        applier.create("shop-blue-green", "blue-green-shop-blue-green", make_probe_table=True)
    assert made == ["probe"] and bool(drops) is dropped
    assert drops in ([], [("probe", "blue-green-shop-blue-green")])
    assert expected in applier.done() and applier.actions == []
    # the blue's resource id is recorded on the deployment
    assert {"Key": "dbre:blue-dbi-resource-id", "Value": "db-BLUE"} in rds.requests[0]["Tags"]


def test_a_refused_create_leaves_a_probe_table_it_did_not_make(monkeypatch, no_sleep):
    rds = CreateRDS(_client_error("SourceDatabaseNotSupportedFault"))
    monkeypatch.setattr(module, "once_client", lambda _module: rds)
    monkeypatch.setattr(module, "drop_probe_table", lambda *args: pytest.fail("dropped a table this run did not make"))
    applier = module.Applier(Module(), rds, World())
    with pytest.raises(botocore.exceptions.ClientError):
        applier.create("shop-blue-green", "blue-green-shop-blue-green", make_probe_table=False)
    assert applier.done() == "none"
