# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An "error" fault answers with a chosen error code and HTTP status, per action: what a user without permission
(AccessDenied, UnauthorizedOperation) sees."""

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

pytestmark = pytest.mark.lab

NO_RETRIES = Config(retries={"mode": "standard", "max_attempts": 1})


def _error(call, **kwargs):
    with pytest.raises(ClientError) as error:
        call(**kwargs)
    return error.value.response["Error"]["Code"], error.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_error_fault_with_code_and_status(lab_clean):
    rds = lab_clean.client(config=NO_RETRIES)
    lab_clean.control.set_fault("error", code="AccessDenied", status=403, actions=["DescribeDBInstances"],
                                message="User is not authorized to perform: rds:DescribeDBInstances")
    assert _error(rds.describe_db_instances) == ("AccessDenied", 403)
    assert rds.describe_db_parameter_groups()["DBParameterGroups"] is not None  # other actions are untouched

    ec2 = lab_clean.client("ec2", config=NO_RETRIES)
    lab_clean.control.set_fault("error", code="UnauthorizedOperation", actions=["DescribeVpcs"])
    assert _error(ec2.describe_vpcs) == ("UnauthorizedOperation", 403)
    lab_clean.control.set_fault("error", code="InvalidParameterValue", actions=["DescribeDBClusters"], count=1)
    assert _error(rds.describe_db_clusters) == ("InvalidParameterValue", 400)
    assert rds.describe_db_clusters()["DBClusters"] == []
