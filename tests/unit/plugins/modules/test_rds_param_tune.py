# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module's run-wide reads: each family's engine defaults, each class's sizing and each instance read once, and a
silent EC2 asked once per run. The clients are small recording stand-ins that answer like RDS and EC2 (pages with a
Marker, errors as botocore raises them), so a test sees the calls a run would make."""

import botocore.exceptions
import pytest

from ansible_collections.dbre.rds.plugins.modules import rds_param_tune as module

PAGE = 2


def _parameter(name, value=None, source="engine-default"):
    item = {"ParameterName": name, "DataType": "integer", "AllowedValues": "0-2147483647", "ApplyType": "dynamic",
            "IsModifiable": True, "Source": source}
    if value is not None:
        item["ParameterValue"] = value
    return item


DEFAULTS = [_parameter(name) for name in ("work_mem", "max_connections", "maintenance_work_mem", "temp_buffers")]


class FakeRDS:
    def __init__(self, own):
        self.own, self.calls = own, []

    def _page(self, items, marker):
        start = int(marker or 0)
        return items[start:start + PAGE], (str(start + PAGE) if start + PAGE < len(items) else None)

    def describe_engine_default_parameters(self, aws_retry, DBParameterGroupFamily, Marker=None):
        self.calls.append(("DescribeEngineDefaultParameters", DBParameterGroupFamily, Marker))
        page, marker = self._page(DEFAULTS, Marker)
        return {"EngineDefaults": {"Parameters": page, "Marker": marker}}

    def describe_db_parameters(self, aws_retry, DBParameterGroupName, Source=None, Marker=None):
        self.calls.append(("DescribeDBParameters", DBParameterGroupName, Source))
        own = [_parameter(n, v, "user") for n, v in self.own[DBParameterGroupName].items()]
        items = own if Source == "user" else [p for p in DEFAULTS if p["ParameterName"] not in self.own[
            DBParameterGroupName]] + own
        page, marker = self._page(items, Marker)
        return {"Parameters": page, "Marker": marker}

    def describe_db_instances(self, aws_retry, DBInstanceIdentifier=None, Marker=None, Filters=None):
        self.calls.append(("DescribeDBInstances", DBInstanceIdentifier))
        return {"DBInstances": [{"DBInstanceIdentifier": DBInstanceIdentifier, "Engine": "postgres",
                                 "DBInstanceClass": "db.r6g.large"}]}


class FakeEC2:
    def __init__(self, error=None):
        self.error, self.calls = error, []

    def describe_instance_types(self, InstanceTypes):
        self.calls.append(InstanceTypes[0])
        if self.error:
            raise self.error
        vcpus = {"r6g.large": 2, "r6g.xlarge": 4}[InstanceTypes[0]]
        return {"InstanceTypes": [{"MemoryInfo": {"SizeInMiB": vcpus * 8192}, "VCpuInfo": {"DefaultVCpus": vcpus}}]}


class FakeModule:
    def __init__(self, ec2, sizing_source="auto"):
        self.params = {"sizing_source": sizing_source}
        self.ec2, self.client_configs = ec2, []

    def client(self, service, config=None):
        assert service == "ec2"
        self.client_configs.append(config)
        return self.ec2


def _reads(own=None, ec2=None, sizing_source="auto"):
    rds, fake_module = FakeRDS(own or {}), FakeModule(ec2 or FakeEC2(), sizing_source)
    return module.RunReads(fake_module, rds), rds, fake_module


def test_engine_defaults_are_read_once_per_family_over_all_pages():
    reads, rds, _module = _reads()
    new_a, new_b = module.Target({"db_parameter_group_name": "a", "db_cluster_parameter_group_name": None}), \
        module.Target({"db_parameter_group_name": "b", "db_cluster_parameter_group_name": None})
    assert reads.parameters(new_a, False, "postgres15") == DEFAULTS
    assert reads.parameters(new_b, False, "postgres15") == DEFAULTS
    assert rds.calls == [("DescribeEngineDefaultParameters", "postgres15", None),
                         ("DescribeEngineDefaultParameters", "postgres15", "2")]
    reads.parameters(new_a, False, "postgres16")
    assert [c[1] for c in rds.calls].count("postgres16") == 2


def test_shared_family_reads_each_groups_own_values_only():
    reads, rds, _module = _reads(own={"a": {"work_mem": "4096"}, "b": {}})
    reads.shared_families = {(False, "postgres15")}
    a = module.Target({"db_parameter_group_name": "a", "db_cluster_parameter_group_name": None})
    parameters = {p["ParameterName"]: p for p in reads.parameters(a, True, "postgres15")}
    assert parameters["work_mem"]["ParameterValue"] == "4096" and "max_connections" in parameters
    reads.parameters(module.Target({"db_parameter_group_name": "b", "db_cluster_parameter_group_name": None}),
                     True, "postgres15")
    assert [c for c in rds.calls if c[0] == "DescribeDBParameters"] == [
        ("DescribeDBParameters", "a", "user"), ("DescribeDBParameters", "b", "user")]


def test_a_lone_existing_group_keeps_its_one_full_read():
    reads, rds, _module = _reads(own={"a": {"work_mem": "4096"}})
    a = module.Target({"db_parameter_group_name": "a", "db_cluster_parameter_group_name": None})
    shared = {p["ParameterName"]: p.get("ParameterValue") for p in reads.parameters(a, True, "postgres15")}
    assert shared["work_mem"] == "4096" and len(shared) == len(DEFAULTS)
    assert {c[0] for c in rds.calls} == {"DescribeDBParameters"} and all(c[2] is None for c in rds.calls)


def test_each_class_is_sized_once_with_a_bounded_ec2_client():
    reads, _rds, fake_module = _reads()
    assert reads.sizing("db.r6g.large")["source"] == "ec2:DescribeInstanceTypes"
    assert reads.sizing("db.r6g.large")["vcpus"] == 2
    assert reads.sizing("db.r6g.xlarge")["vcpus"] == 4
    assert fake_module.ec2.calls == ["r6g.large", "r6g.xlarge"]
    config = fake_module.client_configs[0]
    assert len(fake_module.client_configs) == 1
    assert (config.connect_timeout, config.read_timeout) == (2, 3)
    assert config.retries["total_max_attempts"] == 1


@pytest.mark.parametrize("error", [
    botocore.exceptions.ReadTimeoutError(endpoint_url="https://ec2.us-east-1.amazonaws.com"),
    botocore.exceptions.ClientError({"Error": {"Code": "UnauthorizedOperation", "Message": "no"}},
                                    "DescribeInstanceTypes"),
])
def test_a_silent_or_denied_ec2_is_asked_once_then_the_table_sizes(error):
    reads, _rds, fake_module = _reads(ec2=FakeEC2(error))
    assert reads.sizing("db.r6g.large")["source"] == "table"
    assert reads.sizing("db.m5.large")["source"] == "table"
    assert fake_module.ec2.calls == ["r6g.large"]


def test_a_class_ec2_does_not_know_still_lets_ec2_size_the_others():
    unknown = botocore.exceptions.ClientError({"Error": {"Code": "InvalidInstanceType", "Message": "no"}},
                                              "DescribeInstanceTypes")
    reads, _rds, fake_module = _reads(ec2=FakeEC2(unknown))
    assert reads.sizing("db.x2g.large")["source"] == "table"
    fake_module.ec2.error = None
    assert reads.sizing("db.r6g.large")["source"] == "ec2:DescribeInstanceTypes"


def test_sizing_source_table_never_asks_ec2():
    reads, _rds, fake_module = _reads(sizing_source="table")
    assert reads.sizing("db.r6g.large")["source"] == "table"
    assert fake_module.ec2.calls == [] and fake_module.client_configs == []


def test_an_instance_named_by_several_groups_is_described_once():
    reads, rds, _module = _reads()
    assert reads.instance("orders")["DBInstanceClass"] == "db.r6g.large"
    reads.instance("orders")
    assert rds.calls == [("DescribeDBInstances", "orders")]
