# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Behaviour 10: the call log records every request with time, parameters (passwords masked), HTTP status and error
code, including requests that make moto raise."""

import time

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

pytestmark = pytest.mark.lab


def test_calls_are_logged_with_secrets_masked(lab_clean):
    rds, control = lab_clean.client(), lab_clean.control
    rds.create_db_instance(DBInstanceIdentifier="logged", Engine="mysql", DBInstanceClass="db.t3.micro",
                           MasterUsername="admin", MasterUserPassword="very-secret-1", AllocatedStorage=20)
    rds.describe_db_instances()
    mark = time.time()
    rds.describe_db_instances(DBInstanceIdentifier="logged")

    calls = control.calls()
    assert [c["action"] for c in calls] == ["CreateDBInstance", "DescribeDBInstances", "DescribeDBInstances"]
    create = calls[0]
    assert create["service"] == "rds" and create["status"] == 200
    assert create["params"]["MasterUserPassword"] == "********"
    assert create["params"]["DBInstanceIdentifier"] == "logged"
    assert "very-secret-1" not in str(calls)
    assert create["at"].endswith("Z") and create["epoch"] <= mark
    recent = control.calls(action="DescribeDBInstances", since=mark)
    assert len(recent) == 1 and recent[0]["params"]["DBInstanceIdentifier"] == "logged"

    cloudwatch = lab_clean.client("cloudwatch")
    cloudwatch.put_metric_alarm(AlarmName="cpu", MetricName="CPUUtilization", Namespace="AWS/RDS",
                                Statistic="Average", Period=60, EvaluationPeriods=1, Threshold=80,
                                ComparisonOperator="GreaterThanThreshold")
    alarm = control.calls(action="PutMetricAlarm")
    assert len(alarm) == 1 and alarm[0]["service"] == "monitoring"
    assert alarm[0]["params"]["AlarmName"] == "cpu"

    control.clear_calls()
    assert control.calls() == []


def test_every_request_is_logged_with_its_error_code_crashes_included(lab_clean):
    control = lab_clean.control
    rds = lab_clean.client(config=Config(parameter_validation=False,
                                         retries={"mode": "standard", "total_max_attempts": 1}))

    with pytest.raises(ClientError) as missing:
        rds.describe_db_instances(DBInstanceIdentifier="nope")
    assert missing.value.response["Error"]["Code"] == "DBInstanceNotFound"
    # moto raises ValueError on a MaxRecords that is not a number: AWS would answer; the lab must still log the call.
    with pytest.raises(ClientError) as crashed:
        rds.describe_db_instances(MaxRecords="not-a-number")
    assert crashed.value.response["Error"]["Code"] == "InternalFailure"
    assert crashed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500

    calls = control.calls(action="DescribeDBInstances")
    assert [(c["status"], c["error"]) for c in calls] == [(404, "DBInstanceNotFound"), (500, "InternalFailure")]
    assert calls[0].get("crash") is None
    assert "ValueError" in calls[1]["crash"] and calls[1]["params"]["MaxRecords"] == "not-a-number"
    rds.describe_db_instances()
    assert control.calls(action="DescribeDBInstances")[-1]["error"] is None
