# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
import botocore.exceptions
import pytest

from ansible_collections.dbre.rds.plugins.module_utils import rds_resources as rr


class FakeRds:
    """Answers describe calls from canned pages; raises the AWS not-found error for unknown identifiers."""

    def __init__(self, pages=None, missing_code=None):
        self.pages = pages or {}
        self.missing_code = missing_code
        self.calls = []

    def __getattr__(self, operation):
        def call(**params):
            self.calls.append((operation, params))
            if self.missing_code:
                raise botocore.exceptions.ClientError({"Error": {"Code": self.missing_code, "Message": "nope"}},
                                                      operation)
            return self.pages[operation][params.get("Marker")]
        return call


def test_paginate_follows_markers_and_retries_every_page():
    rds = FakeRds({"describe_db_instances": {
        None: {"DBInstances": [{"DBInstanceIdentifier": "a"}], "Marker": "m1"},
        "m1": {"DBInstances": [{"DBInstanceIdentifier": "b"}]},
    }})
    assert [i["DBInstanceIdentifier"] for i in rr.paginate(rds, "describe_db_instances", "DBInstances")] == ["a", "b"]
    assert all(call[1]["aws_retry"] is True for call in rds.calls)


def test_paginate_nested_result_key():
    rds = FakeRds({"describe_engine_default_parameters": {
        None: {"EngineDefaults": {"Parameters": [{"ParameterName": "x"}], "Marker": "2"}},
        "2": {"EngineDefaults": {"Parameters": [{"ParameterName": "y"}]}},
    }})
    found = rr.paginate(rds, "describe_engine_default_parameters", "EngineDefaults.Parameters")
    assert [p["ParameterName"] for p in found] == ["x", "y"]


@pytest.mark.parametrize("reader, code", [
    (rr.describe_instance, "DBInstanceNotFound"),
    (rr.describe_cluster, "DBClusterNotFoundFault"),
    (rr.describe_global_cluster, "GlobalClusterNotFoundFault"),
])
def test_not_found_is_none(reader, code):
    assert reader(FakeRds(missing_code=code), "orders") is None


def test_other_errors_are_raised():
    with pytest.raises(botocore.exceptions.ClientError):
        rr.describe_instance(FakeRds(missing_code="AccessDenied"), "orders")


@pytest.mark.parametrize("blank", ["", "   ", None])
def test_a_blank_identifier_never_becomes_an_unfiltered_describe(blank):
    rds = FakeRds()
    with pytest.raises(ValueError):
        rr.describe_instance(rds, blank)
    with pytest.raises(ValueError):
        rr.describe_snapshots(rds, "instance", blank)
    assert rds.calls == []


def test_describe_returns_only_the_named_resource():
    rds = FakeRds({"describe_db_instances": {None: {"DBInstances": [{"DBInstanceIdentifier": "other"}]}}})
    assert rr.describe_instance(rds, "orders") is None


def test_describe_with_tags_reads_them_once():
    rds = FakeRds({"describe_db_clusters": {None: {"DBClusters": [{"DBClusterIdentifier": "c", "DBClusterArn": "arn"}]}},
                   "list_tags_for_resource": {None: {"TagList": [{"Key": "k", "Value": "v"}]}}})
    cluster = rr.describe_cluster(rds, "c", with_tags=True)
    assert rr.read_tags(rds, cluster) == {"k": "v"}
    assert [call[0] for call in rds.calls] == ["describe_db_clusters", "list_tags_for_resource"]


def test_cluster_members_are_filtered_by_cluster():
    rds = FakeRds({"describe_db_instances": {None: {"DBInstances": [
        {"DBInstanceIdentifier": "w", "DBClusterIdentifier": "c"},
        {"DBInstanceIdentifier": "x", "DBClusterIdentifier": "other"}]}}})
    assert list(rr.describe_cluster_members(rds, "c")) == ["w"]
    assert rds.calls[0][1]["Filters"] == [{"Name": "db-cluster-id", "Values": ["c"]}]


def test_snapshots_newest_first():
    rds = FakeRds({"describe_db_snapshots": {None: {"DBSnapshots": [
        {"DBSnapshotIdentifier": "old", "SnapshotCreateTime": "2026-01-01T00:00:00Z"},
        {"DBSnapshotIdentifier": "new", "SnapshotCreateTime": "2026-02-01T00:00:00Z"}]}}})
    assert [s["DBSnapshotIdentifier"] for s in rr.describe_snapshots(rds, "instance", "db")] == ["new", "old"]


def test_describe_tagged_keeps_only_tagged():
    rds = FakeRds({"describe_db_instances": {None: {"DBInstances": [
        {"DBInstanceIdentifier": "mine", "TagList": [{"Key": "dbre:drill-id", "Value": "1"}]},
        {"DBInstanceIdentifier": "theirs", "TagList": []}]}}})
    assert [i["DBInstanceIdentifier"] for i in rr.describe_tagged(rds, "instance", "dbre:drill-id")] == ["mine"]


@pytest.mark.parametrize("status, family", [
    ("available", "available"), ("modifying", "transitional"), ("rebooting", "transitional"),
    ("failed", "broken"), ("storage-full", "broken"), ("incompatible-parameters", "broken"),
    ("deleting", "gone"), ("stopped", "gone"), (None, "gone"), ("something-new", "unknown"),
])
def test_status_families(status, family):
    assert rr.status_family(status) == family


def test_status_of_described_resources():
    assert rr.status_of({"DBInstanceStatus": "Available"}) == "available"
    assert rr.status_of({"Status": "creating"}) == "creating"
    assert rr.status_of(None) == "gone"
    assert rr.stops_waiting({"Status": "failed"}) and not rr.stops_waiting({"Status": "modifying"})


def test_writer_and_readers():
    cluster = {"DBClusterMembers": [
        {"DBInstanceIdentifier": "r2", "IsClusterWriter": False, "PromotionTier": 2},
        {"DBInstanceIdentifier": "w", "IsClusterWriter": True},
        {"DBInstanceIdentifier": "r1", "IsClusterWriter": False, "PromotionTier": 1}]}
    assert rr.cluster_writer(cluster) == "w"
    assert rr.cluster_readers(cluster) == ["r1", "r2"]
    assert rr.cluster_member_ids(cluster) == ["w", "r1", "r2"]
    assert rr.cluster_writer(None) is None
    assert rr.global_writer({"GlobalClusterMembers": [{"DBClusterArn": "a", "IsWriter": False},
                                                      {"DBClusterArn": "b", "IsWriter": True}]}) == "b"


def test_standalone_instance_problem_gives_the_cluster():
    assert rr.standalone_instance_problem("db", {"DBInstanceIdentifier": "db"}) is None
    problem = rr.standalone_instance_problem("db-1", {"DBClusterIdentifier": "orders"})
    assert "db_cluster_identifier=orders" in problem


@pytest.mark.parametrize("name, fragment", [
    ("", "must not be empty"), ("  ", "must not be empty"), (None, "must not be empty"),
    ("1abc", "start with a letter"), ("a--b", "two hyphens"), ("abc-", "end with a hyphen"),
    ("a_b", "letters, digits and hyphens"), ("a" * 64, "at most 63"),
])
def test_identifier_problems(name, fragment):
    assert any(fragment in p for p in rr.identifier_problems(name, "db_instance_identifier"))


def test_good_identifier():
    assert rr.identifier_problems("orders-prod-1", "db_instance_identifier") == []


def test_tags_round_trip():
    assert rr.tags_dict(rr.tag_list({"a": "1", "b": "2"})) == {"a": "1", "b": "2"}
    assert rr.tags_dict(None) == {}


def test_parameter_group_values_reads_every_page_and_leaves_unset_names_none():
    pages = [{"Parameters": [{"ParameterName": "max_connections", "ParameterValue": "60"},
                             {"ParameterName": "work_mem"}], "Marker": "m1"},
             {"Parameters": [{"ParameterName": "superuser_reserved_connections", "ParameterValue": "3"}]}]
    calls = []

    class Client:
        def describe_db_parameters(self, **kwargs):
            calls.append(kwargs)
            return pages[len(calls) - 1]

    values = rr.parameter_group_values(
        Client(), "g", ("max_connections", "superuser_reserved_connections", "rds.rds_superuser_reserved_connections"))
    assert values == {"max_connections": "60", "superuser_reserved_connections": "3",
                      "rds.rds_superuser_reserved_connections": None}
    assert [c.get("Marker") for c in calls] == [None, "m1"] and all(c["DBParameterGroupName"] == "g" for c in calls)
