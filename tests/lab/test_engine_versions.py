# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Engine versions and orderable instance options: DescribeDBEngineVersions and DescribeOrderableDBInstanceOptions
answer for PostgreSQL 15 and Aurora PostgreSQL 15; a create with a version or class RDS does not offer fails."""

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
    assert all(v["DBParameterGroupFamily"] == "postgres15" and v["Engine"] == "postgres" for v in versions)
    current = by_version[instance["EngineVersion"]]
    targets = [t["EngineVersion"] for t in current["ValidUpgradeTarget"]]
    assert targets and all(not t["IsMajorVersionUpgrade"] and t["EngineVersion"].startswith("15.")
                           for t in current["ValidUpgradeTarget"])
    assert all(tuple(map(int, t.split("."))) > tuple(map(int, instance["EngineVersion"].split("."))) for t in targets)

    aurora = rds.describe_db_engine_versions(Engine="aurora-postgresql", EngineVersion="15")["DBEngineVersions"]
    assert aurora and {v["DBParameterGroupFamily"] for v in aurora} == {"aurora-postgresql15"}
    assert "15.4" in [v["EngineVersion"] for v in aurora]
    one = rds.describe_db_engine_versions(Engine="postgres", EngineVersion="15.7")["DBEngineVersions"]
    assert [v["EngineVersion"] for v in one] == ["15.7"]
    by_family = rds.describe_db_engine_versions(DBParameterGroupFamily="aurora-postgresql15")["DBEngineVersions"]
    assert {v["Engine"] for v in by_family} == {"aurora-postgresql"}
    default = rds.describe_db_engine_versions(Engine="postgres", DefaultOnly=True)["DBEngineVersions"]
    assert len(default) == 1


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
    assert rds.describe_db_instances()["DBInstances"] == []
