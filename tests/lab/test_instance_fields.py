# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""DB instance fields described as AWS describes them: Performance Insights, gp3 baseline, default DB subnet group."""

import pytest

pytestmark = pytest.mark.lab

COMMON = dict(Engine="mysql", DBInstanceClass="db.t3.micro", MasterUsername="admin", MasterUserPassword="lab-password-1")


def _described(rds, identifier):
    return rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]


def test_performance_insights_is_kept_and_modified(lab_clean):
    rds = lab_clean.client()
    rds.create_db_instance(DBInstanceIdentifier="pi", AllocatedStorage=20, EnablePerformanceInsights=True, **COMMON)
    described = _described(rds, "pi")
    assert described["PerformanceInsightsEnabled"] is True
    assert described["PerformanceInsightsRetentionPeriod"] == 7
    assert described["PerformanceInsightsKMSKeyId"] == "arn:aws:kms:us-east-1:123456789012:key/aws-rds-default"

    rds.modify_db_instance(DBInstanceIdentifier="pi", PerformanceInsightsRetentionPeriod=731, ApplyImmediately=True)
    assert _described(rds, "pi")["PerformanceInsightsRetentionPeriod"] == 731
    rds.modify_db_instance(DBInstanceIdentifier="pi", EnablePerformanceInsights=False, ApplyImmediately=True)
    described = _described(rds, "pi")
    assert described["PerformanceInsightsEnabled"] is False
    assert "PerformanceInsightsRetentionPeriod" not in described

    rds.create_db_instance(DBInstanceIdentifier="nopi", AllocatedStorage=20, **COMMON)
    assert _described(rds, "nopi")["PerformanceInsightsEnabled"] is False


@pytest.mark.parametrize("gib, iops, throughput", [(20, 3000, 125), (399, 3000, 125), (400, 12000, 500)])
def test_gp3_describes_its_baseline(lab_clean, gib, iops, throughput):
    rds = lab_clean.client()
    rds.create_db_instance(DBInstanceIdentifier="gp3", AllocatedStorage=gib, StorageType="gp3", **COMMON)
    described = _described(rds, "gp3")
    assert (described["Iops"], described["StorageThroughput"]) == (iops, throughput)


def test_gp3_baseline_follows_storage_but_not_given_values(lab_clean):
    rds = lab_clean.client()
    rds.create_db_instance(DBInstanceIdentifier="gp3", AllocatedStorage=100, StorageType="gp3", **COMMON)
    rds.modify_db_instance(DBInstanceIdentifier="gp3", AllocatedStorage=500, ApplyImmediately=True)
    described = _described(rds, "gp3")
    assert (described["Iops"], described["StorageThroughput"]) == (12000, 500)
    rds.create_db_instance(DBInstanceIdentifier="gp3-set", AllocatedStorage=500, StorageType="gp3", Iops=15000,
                           StorageThroughput=600, **COMMON)
    described = _described(rds, "gp3-set")
    assert (described["Iops"], described["StorageThroughput"]) == (15000, 600)


def test_instance_without_subnet_group_describes_the_default_group(lab_clean):
    rds = lab_clean.client()
    rds.create_db_instance(DBInstanceIdentifier="nosubnet", AllocatedStorage=20, **COMMON)
    group = _described(rds, "nosubnet")["DBSubnetGroup"]
    assert group["DBSubnetGroupName"] == "default"
    default_vpc = lab_clean.client("ec2").describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]
    assert group["VpcId"] == default_vpc["VpcId"] and group["Subnets"]
