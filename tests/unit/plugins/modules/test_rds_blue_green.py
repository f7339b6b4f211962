# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module's reads: a deployment is looked up by the instance it is about (rds_resources.blue_green_deployments_of:
filtered by source and by target, never an unfiltered list), and a missing deployment or parameter group is None. The client is a small recording
stand-in that filters as RDS does and refuses an unknown identifier as RDS does."""

import botocore.exceptions
import pytest

from ansible_collections.dbre.rds.plugins.module_utils import rds_resources
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
    assert module.parameter_group(rds, "missing") is None and module.parameter_group(rds, None) is None
