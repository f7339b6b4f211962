# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from ansible_collections.dbre.rds.plugins.module_utils import rds_resources as rr

BLUE = "arn:aws:rds:us-east-1:123456789012:db:shop"
OTHER = "arn:aws:rds:us-east-1:123456789012:db:other"
DEPLOYMENTS = [
    {"BlueGreenDeploymentIdentifier": "bgd-other", "Source": OTHER, "Target": OTHER + "-green-aaaaaa"},
    {"BlueGreenDeploymentIdentifier": "bgd-shop", "Source": BLUE, "Target": BLUE + "-green-bbbbbb"},
    {"BlueGreenDeploymentIdentifier": "bgd-switched", "Source": BLUE + "-old1", "Target": BLUE},
]


class FakeRds:
    """Answers describe_blue_green_deployments by its source/target filter (one page, then a second one)."""

    def __init__(self):
        self.calls = []

    def describe_blue_green_deployments(self, **params):
        self.calls.append(params)
        (wanted,) = params["Filters"]
        key = {"source": "Source", "target": "Target"}[wanted["Name"]]
        found = [d for d in DEPLOYMENTS if d[key] in wanted["Values"]]
        if params.get("Marker") is None:
            return {"BlueGreenDeployments": found[:1], "Marker": "next"} if len(found) > 1 else \
                {"BlueGreenDeployments": found}
        return {"BlueGreenDeployments": found[1:]}


def test_blue_green_deployments_of_reads_by_source_and_by_target_only():
    rds = FakeRds()
    found = rr.blue_green_deployments_of(rds, BLUE)
    assert [d["BlueGreenDeploymentIdentifier"] for d in found] == ["bgd-shop", "bgd-switched"]
    # never the region's unfiltered list: every read names the instance
    assert [c["Filters"] for c in rds.calls] == [
        [{"Name": "source", "Values": [BLUE]}], [{"Name": "target", "Values": [BLUE]}]]
    assert all(c["aws_retry"] is True for c in rds.calls)


def test_blue_green_deployments_of_an_instance_without_one_is_empty():
    assert rr.blue_green_deployments_of(FakeRds(), "arn:aws:rds:us-east-1:123456789012:db:none") == []
