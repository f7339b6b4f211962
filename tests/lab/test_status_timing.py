# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Behaviour 4: statuses take time (creating -> backing-up -> available, modifying, deleting), scaled by
LAB_TIME_SCALE / set_timing(scale=...). MySQL instances have no PostgreSQL behind them, so these are quick."""

import time

import pytest
from botocore.exceptions import ClientError

from tests.lab.clients import describe_instance, wait_instance

pytestmark = pytest.mark.lab


def _create(rds, identifier):
    return rds.create_db_instance(DBInstanceIdentifier=identifier, Engine="mysql", EngineVersion="8.0.35",
                                  DBInstanceClass="db.t3.micro", MasterUsername="admin",
                                  MasterUserPassword="lab-secret-1", AllocatedStorage=20)["DBInstance"]


def test_defaults_are_final_by_the_first_describe(lab_clean):
    rds = lab_clean.client()
    assert _create(rds, "quick")["DBInstanceStatus"] == "creating"
    assert describe_instance(rds, "quick")["DBInstanceStatus"] == "available"


def test_create_modify_delete_take_time(lab_clean):
    rds = lab_clean.client()
    lab_clean.control.set_timing(create=0.6, backing_up=0.4, modify=0.5, delete=0.5)
    started = time.monotonic()
    _create(rds, "slow")
    instance = wait_instance(rds, "slow", "available", timeout=10, interval=0.05)
    assert instance["_seen"][:3] == ["creating", "backing-up", "available"]
    assert time.monotonic() - started >= 1.0

    rds.modify_db_instance(DBInstanceIdentifier="slow", BackupRetentionPeriod=3, ApplyImmediately=True)
    assert describe_instance(rds, "slow")["DBInstanceStatus"] == "modifying"
    wait_instance(rds, "slow", "available", timeout=10)

    rds.delete_db_instance(DBInstanceIdentifier="slow", SkipFinalSnapshot=True)
    assert describe_instance(rds, "slow")["DBInstanceStatus"] == "deleting"
    deadline = time.monotonic() + 10
    with pytest.raises(ClientError) as error:
        while time.monotonic() < deadline:
            describe_instance(rds, "slow")
            time.sleep(0.05)
    assert error.value.response["Error"]["Code"] == "DBInstanceNotFound"


def test_time_scale_multiplies_durations(lab_clean):
    rds = lab_clean.client()
    timing = lab_clean.control.set_timing(create=0.4, scale=3)
    assert timing["scale"] == 3
    started = time.monotonic()
    _create(rds, "scaled")
    wait_instance(rds, "scaled", "available", timeout=10, interval=0.05)
    assert time.monotonic() - started >= 1.2


def test_stuck_instance_never_leaves_its_status(lab_clean):
    rds = lab_clean.client()
    _create(rds, "stuck")
    lab_clean.control.stick("stuck", "rebooting")
    time.sleep(0.3)
    assert describe_instance(rds, "stuck")["DBInstanceStatus"] == "rebooting"
    lab_clean.control.unstick("stuck")
    assert describe_instance(rds, "stuck")["DBInstanceStatus"] == "available"
