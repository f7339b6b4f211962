# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A stuck status can be set for an identifier that does not exist yet: it applies once the resource is created or
restored (a restore drill's target that never becomes available)."""

import time

import pytest

from tests.lab.clients import describe_instance

pytestmark = pytest.mark.lab


def test_stick_applies_to_an_instance_created_later(lab_clean):
    rds = lab_clean.client()
    lab_clean.control.set_timing(create=0, backing_up=0)
    lab_clean.control.stick("later", "creating")
    rds.create_db_instance(DBInstanceIdentifier="later", Engine="mysql", DBInstanceClass="db.t3.micro",
                           MasterUsername="admin", MasterUserPassword="lab-password-1", AllocatedStorage=20)
    time.sleep(0.5)
    assert describe_instance(rds, "later")["DBInstanceStatus"] == "creating"
    lab_clean.control.unstick("later")
    assert describe_instance(rds, "later")["DBInstanceStatus"] == "available"
