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
        raise Failed(exception, msg)


class Failed(Exception):
    def __init__(self, exception, msg):
        super().__init__(msg)
        self.exception, self.msg = exception, msg


class Drills:
    """An RDS endpoint with one drill resource and no blue/green deployment call (a botocore too old to know it)."""

    def describe_db_instances(self, aws_retry=True, **_):
        return {"DBInstances": [{"DBInstanceIdentifier": "shop-drill-1", "TagList": [
            {"Key": "dbre:drill-id", "Value": "d-1"}, {"Key": "dbre:drill-snapshot", "Value": "shop-1"}]}]}

    def describe_db_clusters(self, aws_retry=True, **_):
        return {"DBClusters": []}


class RefusedBlueGreen(Drills):
    def __init__(self, code):
        self.code = code

    def describe_blue_green_deployments(self, aws_retry=True, **_):
        raise botocore.exceptions.ClientError({"Error": {"Code": self.code, "Message": "no"}},
                                              "DescribeBlueGreenDeployments")


@pytest.mark.parametrize("code", ["AccessDenied", "InvalidAction", "Throttling"])
def test_a_refused_blue_green_read_fails_before_any_change(code):
    fake = Warned()
    with pytest.raises(Failed) as failed:
        module.read_in_use(fake, RefusedBlueGreen(code), [{"arn": "arn:aws:rds:x:1:db:shop"}])
    assert "allow rds:DescribeBlueGreenDeployments" in failed.value.msg and "nothing was changed" in failed.value.msg
    assert failed.value.exception.response["Error"]["Code"] == code
    assert fake.warnings == []


def test_a_botocore_without_blue_green_keeps_every_snapshot_of_the_sources_and_warns():
    fake = Warned()
    arns = ["arn:aws:rds:x:1:db:shop", "arn:aws:rds:x:1:cluster:shop-c"]
    (drills, unnamed), blue_green = module.read_in_use(fake, Drills(), [{"arn": a} for a in arns])
    assert drills == {"shop-1": "restored by the running restore drill d-1 (shop-drill-1)"} and unnamed == {}
    assert sorted(blue_green) == sorted(arns)
    assert all("could not be read" in reason and "AttributeError" in reason for reason in blue_green.values())
    assert len(fake.warnings) == 1 and "no snapshot of the selected sources is deleted" in fake.warnings[0]
    assert "upgrade botocore" in fake.warnings[0]


class Rechecked(Snapshots):
    """Snapshots whose tags, status, sharing and the drills can change after the plan."""

    def __init__(self, names, tags=None, status=None, shared=None, drill_snapshot=None):
        super().__init__(names)
        self.tags, self.status, self.shared = tags or {}, status or {}, shared or {}
        self.drill_snapshot = drill_snapshot

    def describe_db_snapshots(self, DBSnapshotIdentifier, aws_retry=True, **_):
        self.calls.append(("describe", DBSnapshotIdentifier))
        if DBSnapshotIdentifier not in self.names:
            raise botocore.exceptions.ClientError({"Error": {"Code": "DBSnapshotNotFound", "Message": "gone"}},
                                                  "DescribeDBSnapshots")
        tags = [{"Key": k, "Value": v} for k, v in self.tags.get(DBSnapshotIdentifier, {}).items()]
        return {"DBSnapshots": [{"DBSnapshotIdentifier": DBSnapshotIdentifier, "TagList": tags,
                                 "Status": self.status.get(DBSnapshotIdentifier, "available")}]}

    def describe_db_snapshot_attributes(self, DBSnapshotIdentifier, aws_retry=True):
        self.calls.append(("attributes", DBSnapshotIdentifier))
        values = self.shared.get(DBSnapshotIdentifier, [])
        return {"DBSnapshotAttributesResult": {"DBSnapshotAttributes": [
            {"AttributeName": "restore", "AttributeValues": values}]}}

    def describe_db_instances(self, aws_retry=True, **_):
        self.calls.append(("drills", None))
        if not self.drill_snapshot:
            return {"DBInstances": []}
        return {"DBInstances": [{"DBInstanceIdentifier": "x-drill-1", "TagList": [
            {"Key": "dbre:drill-id", "Value": "d-9"}, {"Key": "dbre:drill-snapshot", "Value": self.drill_snapshot}]}]}

    def describe_db_clusters(self, aws_retry=True, **_):
        return {"DBClusters": []}


KEEP = {"key": "Permanent", "value": "true"}


def test_each_snapshot_is_described_again_before_its_deletion_and_changes_keep_it():
    rds = Rechecked(["s1", "s2", "s3", "s4", "s5"], tags={"s2": {"Permanent": "true"}}, status={"s3": "copying"},
                    shared={"s4": ["111122223333"]}, drill_snapshot="s5")
    outcome = _outcome()
    assert module.delete_in_batches(rds, rds, _entries("s1", "s2", "s3", "s4", "s5"), 2, outcome,
                                    keep_tag=KEEP) is None
    assert [e["identifier"] for e in outcome["deleted"]] == ["s1"]
    kept = {e["identifier"]: e for e in outcome["kept"]}
    assert sorted(kept) == ["s2", "s3", "s4", "s5"]
    assert {e["reason_code"] for e in kept.values()} == {"changed_since_plan"}
    assert "tagged Permanent=true" in kept["s2"]["reason"] and "copying" in kept["s3"]["reason"]
    assert "111122223333" in kept["s4"]["reason"] and "d-9" in kept["s5"]["reason"]
    assert rds.names == {"s2", "s3", "s4", "s5"}
    deletes = [c for c in rds.calls if c[0] == "delete"]
    assert deletes == [("delete", "s1")]
    assert rds.calls.index(("describe", "s1")) < rds.calls.index(("attributes", "s1")) < rds.calls.index(deletes[0])
    assert rds.calls.count(("drills", None)) == 3  # once per batch of 2


def test_a_dr_copy_that_lost_the_modules_tags_is_kept():
    ours = {"dbre:managed-by": "dbre.rds.rds_snapshot_retention", "dbre:copy-source": "arn:src"}
    rds = Rechecked(["c1", "c2"], tags={"c1": ours, "c2": dict(ours, **{"dbre:copy-source": "arn:other"})})
    outcome = _outcome()
    assert module.delete_in_batches(rds, rds, _entries("c1", "c2"), 5, outcome, keep_tag=KEEP,
                                    copy_sources={"shop": "arn:src"}) is None
    assert [e["identifier"] for e in outcome["deleted"]] == ["c1"]
    assert [(e["identifier"], e["reason_code"]) for e in outcome["kept"]] == [("c2", "changed_since_plan")]
