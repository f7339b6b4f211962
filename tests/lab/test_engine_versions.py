# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Engine versions and orderable instance options: DescribeDBEngineVersions and DescribeOrderableDBInstanceOptions
answer for PostgreSQL 15 and 18 and Aurora PostgreSQL 15 (with minor and major upgrade targets); a postgres18
parameter group carries PostgreSQL 18's own metadata; a create with a version or class RDS does not offer fails."""

import pytest
from botocore.exceptions import ClientError

from tests.lab.clients import MASTER_PASSWORD, MASTER_USER, create_postgres

pytestmark = pytest.mark.lab


def test_describe_db_engine_versions(lab_clean):
    rds = lab_clean.client()
    instance = create_postgres(rds, "versioned")
    versions = rds.describe_db_engine_versions(Engine="postgres")["DBEngineVersions"]
    by_version = {v["EngineVersion"]: v for v in versions}
    assert instance["EngineVersion"] in by_version
    assert all(v["Engine"] == "postgres" for v in versions)
    assert {v["DBParameterGroupFamily"] for v in versions} == {"postgres15", "postgres18"}
    assert all(v["DBParameterGroupFamily"] == f"postgres{v['MajorEngineVersion']}" for v in versions)
    assert {"15.7", "15.13", "18.1", "18.6"} <= set(by_version)
    current = by_version[instance["EngineVersion"]]
    targets = [t["EngineVersion"] for t in current["ValidUpgradeTarget"]]
    minor = [t for t in current["ValidUpgradeTarget"] if t["EngineVersion"].startswith("15.")]
    major = [t for t in current["ValidUpgradeTarget"] if t["EngineVersion"].startswith("18.")]
    assert minor and all(not t["IsMajorVersionUpgrade"] for t in minor)
    assert [t["EngineVersion"] for t in major] == [v for v in by_version if v.startswith("18.")]
    assert all(t["IsMajorVersionUpgrade"] and not t["AutoUpgrade"] for t in major)
    assert len(minor) + len(major) == len(targets)
    assert all(tuple(map(int, t.split("."))) > tuple(map(int, instance["EngineVersion"].split("."))) for t in targets)

    aurora = rds.describe_db_engine_versions(Engine="aurora-postgresql", EngineVersion="15")["DBEngineVersions"]
    assert aurora and {v["DBParameterGroupFamily"] for v in aurora} == {"aurora-postgresql15"}
    assert "15.4" in [v["EngineVersion"] for v in aurora]
    one = rds.describe_db_engine_versions(Engine="postgres", EngineVersion="15.7")["DBEngineVersions"]
    assert [v["EngineVersion"] for v in one] == ["15.7"]
    by_family = rds.describe_db_engine_versions(DBParameterGroupFamily="aurora-postgresql15")["DBEngineVersions"]
    assert {v["Engine"] for v in by_family} == {"aurora-postgresql"}
    default = rds.describe_db_engine_versions(Engine="postgres", DefaultOnly=True)["DBEngineVersions"]
    assert len(default) == 1 and default[0]["EngineVersion"] == instance["EngineVersion"]


def test_postgres18_versions_and_parameter_group(lab_clean):
    rds = lab_clean.client()
    eighteen = rds.describe_db_engine_versions(Engine="postgres", EngineVersion="18")["DBEngineVersions"]
    assert [v["EngineVersion"] for v in eighteen] == ["18.1", "18.2", "18.3", "18.4", "18.5", "18.6"]
    assert {(v["MajorEngineVersion"], v["DBParameterGroupFamily"]) for v in eighteen} == {("18", "postgres18")}
    first = eighteen[0]
    assert [t["EngineVersion"] for t in first["ValidUpgradeTarget"]] == ["18.2", "18.3", "18.4", "18.5", "18.6"]
    assert not any(t["IsMajorVersionUpgrade"] for t in first["ValidUpgradeTarget"])
    assert eighteen[-1]["ValidUpgradeTarget"] == []  # no downgrade to 15, nothing newer
    by_family = rds.describe_db_engine_versions(DBParameterGroupFamily="postgres18")["DBEngineVersions"]
    assert [v["EngineVersion"] for v in by_family] == [v["EngineVersion"] for v in eighteen]
    default = rds.describe_db_engine_versions(Engine="postgres", EngineVersion="18", DefaultOnly=True)
    assert [v["EngineVersion"] for v in default["DBEngineVersions"]] == ["18.6"]
    newest_15 = rds.describe_db_engine_versions(Engine="postgres", EngineVersion="15.13")["DBEngineVersions"][0]
    assert [(t["EngineVersion"], t["IsMajorVersionUpgrade"]) for t in newest_15["ValidUpgradeTarget"]] == [
        (v, True) for v in ("18.1", "18.2", "18.3", "18.4", "18.5", "18.6")]
    assert rds.describe_db_engine_versions(Engine="aurora-postgresql", EngineVersion="18")["DBEngineVersions"] == []

    group = rds.create_db_parameter_group(DBParameterGroupName="pg18", DBParameterGroupFamily="postgres18",
                                          Description="PostgreSQL 18")["DBParameterGroup"]
    assert group["DBParameterGroupFamily"] == "postgres18"
    paginator = rds.get_paginator("describe_db_parameters")
    parameters = {p["ParameterName"]: p for page in paginator.paginate(DBParameterGroupName="pg18")
                  for p in page["Parameters"]}
    defaults = {p["ParameterName"]: p for page in rds.get_paginator("describe_engine_default_parameters").paginate(
        DBParameterGroupFamily="postgres18") for p in page["EngineDefaults"]["Parameters"]}
    assert defaults == parameters
    # PostgreSQL 18's own settings, with 18's metadata; settings 18 removed are gone.
    assert parameters["io_method"]["ApplyType"] == "static" and "worker" in parameters["io_method"]["AllowedValues"]
    assert parameters["transaction_timeout"]["DataType"] == "integer"
    assert parameters["transaction_timeout"]["ApplyType"] == "dynamic"
    assert "old_snapshot_threshold" not in parameters and "promote_trigger_file" not in parameters
    assert {p["MinimumEngineVersion"] for p in parameters.values()} == {"18.1"}
    assert parameters["shared_buffers"]["ParameterValue"] == "{DBInstanceClassMemory/32768}"
    assert parameters["rds.logical_replication"]["AllowedValues"] == "0,1"
    fifteen = {p["ParameterName"] for page in rds.get_paginator("describe_engine_default_parameters").paginate(
        DBParameterGroupFamily="postgres15") for p in page["EngineDefaults"]["Parameters"]}
    assert "io_method" not in fifteen and "old_snapshot_threshold" in fifteen

    rds.modify_db_parameter_group(DBParameterGroupName="pg18", Parameters=[
        {"ParameterName": "io_method", "ParameterValue": "worker", "ApplyMethod": "pending-reboot"}])
    user = rds.describe_db_parameters(DBParameterGroupName="pg18", Source="user")["Parameters"]
    assert [(p["ParameterName"], p["ParameterValue"]) for p in user] == [("io_method", "worker")]
    with pytest.raises(ClientError) as removed:
        rds.modify_db_parameter_group(DBParameterGroupName="pg18", Parameters=[
            {"ParameterName": "old_snapshot_threshold", "ParameterValue": "60", "ApplyMethod": "pending-reboot"}])
    assert removed.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert "Could not find parameter with name: old_snapshot_threshold" in removed.value.response["Error"]["Message"]


def test_orderable_db_instance_options_paginate(lab_clean):
    rds = lab_clean.client()
    options, marker, pages = [], None, 0
    while True:
        kwargs = {"Marker": marker} if marker else {}
        page = rds.describe_orderable_db_instance_options(Engine="postgres", EngineVersion="15.7", MaxRecords=20,
                                                          **kwargs)
        assert len(page["OrderableDBInstanceOptions"]) <= 20
        options += page["OrderableDBInstanceOptions"]
        pages += 1
        marker = page.get("Marker")
        if not marker:
            break
    assert pages > 1
    classes = {o["DBInstanceClass"] for o in options}
    assert {"db.t3.micro", "db.t4g.micro", "db.m6g.large", "db.r6g.large"} <= classes
    assert {o["EngineVersion"] for o in options} == {"15.7"} and {o["Engine"] for o in options} == {"postgres"}
    assert len(options) == len({(o["DBInstanceClass"], o["StorageType"]) for o in options})

    aurora = rds.describe_orderable_db_instance_options(Engine="aurora-postgresql", EngineVersion="15.4",
                                                        MaxRecords=1000)["OrderableDBInstanceOptions"]
    aurora_classes = {o["DBInstanceClass"] for o in aurora}
    assert "db.r6g.large" in aurora_classes and "db.serverless" in aurora_classes
    assert "db.t3.micro" not in aurora_classes and "db.m6g.large" not in aurora_classes
    one = rds.describe_orderable_db_instance_options(Engine="postgres", DBInstanceClass="db.t3.micro",
                                                     EngineVersion="15.7")["OrderableDBInstanceOptions"]
    assert one and {o["DBInstanceClass"] for o in one} == {"db.t3.micro"}


def test_create_refuses_what_rds_does_not_offer(lab_clean):
    rds = lab_clean.client()
    rds.create_db_cluster(DBClusterIdentifier="au", Engine="aurora-postgresql", EngineVersion="15.4",
                          MasterUsername=MASTER_USER, MasterUserPassword=MASTER_PASSWORD)
    with pytest.raises(ClientError) as refused:
        rds.create_db_instance(DBInstanceIdentifier="au-1", DBClusterIdentifier="au", Engine="aurora-postgresql",
                               DBInstanceClass="db.t3.micro")
    assert refused.value.response["Error"]["Code"] == "InvalidParameterCombination"
    assert refused.value.response["Error"]["Message"].startswith(
        "RDS does not support creating a DB instance with the following combination: DBInstanceClass=db.t3.micro, "
        "Engine=aurora-postgresql, EngineVersion=15.4, LicenseModel=postgresql-license")
    with pytest.raises(ClientError) as unknown:
        rds.create_db_instance(DBInstanceIdentifier="odd", Engine="postgres", EngineVersion="15.99",
                               DBInstanceClass="db.t3.micro", MasterUsername=MASTER_USER,
                               MasterUserPassword=MASTER_PASSWORD, AllocatedStorage=20)
    assert unknown.value.response["Error"]["Code"] == "InvalidParameterCombination"
    assert "Cannot find version 15.99 for postgres" in unknown.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as aurora_18:
        rds.create_db_cluster(DBClusterIdentifier="au18", Engine="aurora-postgresql", EngineVersion="18.6",
                              MasterUsername=MASTER_USER, MasterUserPassword=MASTER_PASSWORD)
    assert "Cannot find version 18.6 for aurora-postgresql" in aurora_18.value.response["Error"]["Message"]
    # New postgres 18 instances run PostgreSQL 18: tests/lab/test_upgrades.py.
    assert rds.describe_db_instances()["DBInstances"] == []
