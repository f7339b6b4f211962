# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Automated backups: DescribeDBInstanceAutomatedBackups gives each instance with BackupRetentionPeriod > 0 its
RestoreWindow; RestoreDBInstanceToPointInTime outside the window, or from an instance without retention, fails."""

from datetime import timedelta

import pytest
from botocore.exceptions import ClientError

from tests.lab.clients import create_postgres

pytestmark = pytest.mark.lab


def test_restore_window_and_restores_outside_it(lab_clean):
    rds = lab_clean.client()
    if lab_clean.fidelity:
        lab_clean.control.set_timing(restore=0)
    instance = create_postgres(rds, "kept", BackupRetentionPeriod=3)
    create_postgres(rds, "unkept", BackupRetentionPeriod=0)

    backups = rds.describe_db_instance_automated_backups()["DBInstanceAutomatedBackups"]
    assert [b["DBInstanceIdentifier"] for b in backups] == ["kept"]
    backup = backups[0]
    assert backup["Status"] == "active" and backup["BackupRetentionPeriod"] == 3
    assert backup["DbiResourceId"] == instance["DbiResourceId"]
    window = backup["RestoreWindow"]
    assert instance["InstanceCreateTime"] <= window["EarliestTime"] <= window["LatestTime"]
    assert window["LatestTime"] - window["EarliestTime"] < timedelta(minutes=5)
    by_id = rds.describe_db_instance_automated_backups(DBInstanceIdentifier="kept")["DBInstanceAutomatedBackups"]
    assert [b["DBInstanceIdentifier"] for b in by_id] == ["kept"]

    too_early = window["EarliestTime"] - timedelta(minutes=10)
    with pytest.raises(ClientError) as refused:
        rds.restore_db_instance_to_point_in_time(SourceDBInstanceIdentifier="kept", TargetDBInstanceIdentifier="old",
                                                 RestoreTime=too_early)
    assert refused.value.response["Error"]["Code"] == "InvalidParameterValue"
    with pytest.raises(ClientError) as disabled:
        rds.restore_db_instance_to_point_in_time(SourceDBInstanceIdentifier="unkept",
                                                 TargetDBInstanceIdentifier="never", UseLatestRestorableTime=True)
    assert disabled.value.response["Error"]["Code"] == "PointInTimeRestoreNotEnabled"
    assert {i["DBInstanceIdentifier"] for i in rds.describe_db_instances()["DBInstances"]} == {"kept", "unkept"}

    restored = rds.restore_db_instance_to_point_in_time(
        SourceDBInstanceIdentifier="kept", TargetDBInstanceIdentifier="restored",
        RestoreTime=window["EarliestTime"] + (window["LatestTime"] - window["EarliestTime"]) / 2)
    assert restored["DBInstance"]["DBInstanceIdentifier"] == "restored"
