# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module's deletion loop: batches, one call per snapshot, confirmation by describe, and the honest split."""

import botocore.exceptions
import pytest

from ansible_collections.dbre.rds.plugins.modules import rds_snapshot_retention as module


class Snapshots:
    """An RDS that holds snapshots, deletes them, and refuses the deletions named in ``refuse``."""

    def __init__(self, names, refuse=(), linger=()):
        self.names = set(names)
        self.refuse = set(refuse)
        self.linger = set(linger)  # answered, but still described as available afterwards
        self.calls = []

    def delete_db_snapshot(self, DBSnapshotIdentifier):
        self.calls.append(("delete", DBSnapshotIdentifier))
        if DBSnapshotIdentifier in self.refuse:
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "AccessDenied", "Message": "not allowed"},
                 "ResponseMetadata": {"HTTPStatusCode": 403}}, "DeleteDBSnapshot")
        if DBSnapshotIdentifier not in self.linger:
            self.names.discard(DBSnapshotIdentifier)
        return {}

    def describe_db_snapshots(self, DBSnapshotIdentifier, aws_retry=True, **_):
        self.calls.append(("describe", DBSnapshotIdentifier))
        if DBSnapshotIdentifier not in self.names:
            raise botocore.exceptions.ClientError({"Error": {"Code": "DBSnapshotNotFound", "Message": "gone"}},
                                                  "DescribeDBSnapshots")
        return {"DBSnapshots": [{"DBSnapshotIdentifier": DBSnapshotIdentifier, "Status": "available"}]}


def _entries(*names):
    return [{"identifier": n, "kind": "instance", "source": "shop", "region": "us-east-1"} for n in names]


def _outcome():
    return dict(deleted=[], not_deleted=[], remaining=[], copied=[], not_copied=[])


def test_batches_are_sent_then_confirmed():
    rds = Snapshots(["s1", "s2", "s3"])
    outcome = _outcome()
    assert module.delete_in_batches(rds, rds, _entries("s1", "s2", "s3"), 2, outcome) is None
    assert [e["identifier"] for e in outcome["deleted"]] == ["s1", "s2", "s3"]
    assert rds.calls == [("delete", "s1"), ("delete", "s2"), ("describe", "s1"), ("describe", "s2"),
                         ("delete", "s3"), ("describe", "s3")]
    assert rds.names == set()


@pytest.mark.parametrize("batch_size", [1, 2, 5])
def test_a_refused_deletion_stops_the_run_with_the_split(batch_size):
    rds = Snapshots(["s1", "s2", "s3", "s4", "s5"], refuse={"s3"})
    outcome = _outcome()
    error = module.delete_in_batches(rds, rds, _entries("s1", "s2", "s3", "s4", "s5"), batch_size, outcome)
    assert isinstance(error, botocore.exceptions.ClientError)
    assert [e["identifier"] for e in outcome["deleted"]] == ["s1", "s2"]
    assert [(e["identifier"], e["error"]) for e in outcome["not_deleted"]] == [("s3", "AccessDenied: not allowed")]
    assert [e["identifier"] for e in outcome["remaining"]] == ["s4", "s5"]
    assert ("delete", "s4") not in rds.calls and rds.names == {"s3", "s4", "s5"}


def test_a_deletion_answered_but_not_seen_is_not_counted_as_deleted():
    rds = Snapshots(["s1", "s2", "s3"], linger={"s2"})
    outcome = _outcome()
    error = module.delete_in_batches(rds, rds, _entries("s1", "s2", "s3"), 2, outcome)
    assert error is not None
    assert [e["identifier"] for e in outcome["deleted"]] == ["s1"]
    assert [e["identifier"] for e in outcome["not_deleted"]] == ["s2"]
    assert [e["identifier"] for e in outcome["remaining"]] == ["s3"]


class Warned:
    """The part of AnsibleAWSModule read_in_use touches: warnings (module_warnings.warn) and failures."""

    def __init__(self):
        self.warnings = []

    def warn(self, message):
        self.warnings.append(message)

    def fail_json_aws(self, exception, msg):
        raise AssertionError(msg)


class NoBlueGreen:
    """An RDS endpoint without DescribeBlueGreenDeployments, and one drill resource."""

    def describe_db_instances(self, aws_retry=True, **_):
        return {"DBInstances": [{"DBInstanceIdentifier": "shop-drill-1", "TagList": [
            {"Key": "dbre:drill-id", "Value": "d-1"}, {"Key": "dbre:drill-snapshot", "Value": "shop-1"}]}]}

    def describe_db_clusters(self, aws_retry=True, **_):
        return {"DBClusters": []}

    def describe_blue_green_deployments(self, aws_retry=True, **_):
        raise botocore.exceptions.ClientError({"Error": {"Code": "InvalidAction", "Message": "unknown action"}},
                                              "DescribeBlueGreenDeployments")


def test_a_missing_blue_green_api_is_a_warning_not_a_failure():
    fake = Warned()
    (drills, unnamed), blue_green = module.read_in_use(fake, NoBlueGreen(), [{"arn": "arn:aws:rds:x:1:db:shop"}])
    assert drills == {"shop-1": "restored by the running restore drill d-1 (shop-drill-1)"} and unnamed == {}
    assert blue_green == {}
    assert len(fake.warnings) == 1 and "InvalidAction" in fake.warnings[0]
    assert "rds:DescribeBlueGreenDeployments" in fake.warnings[0]
