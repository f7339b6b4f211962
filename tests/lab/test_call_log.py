# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Behaviour 10: the call log records every action with time and parameters, passwords masked."""

import time

import pytest

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
