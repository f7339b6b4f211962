# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
import datetime

import pytest

from ansible_collections.dbre.rds.plugins.module_utils import cloudwatch_lag as cl

NOW = datetime.datetime(2026, 11, 30, 7, 0, tzinfo=datetime.timezone.utc)


def at(minutes):
    return NOW - datetime.timedelta(minutes=minutes)


class FakeCloudWatch:
    def __init__(self, datapoints):
        self.datapoints = datapoints
        self.calls = []

    def get_metric_statistics(self, **request):
        self.calls.append(request)
        return {"Datapoints": self.datapoints}


@pytest.mark.parametrize("datapoints, scale, expected", [
    ([], 1.0, None),
    (None, 1.0, None),
    ([{"Timestamp": at(1), "Maximum": 2.5}], 1.0, 2.5),
    # the newest point counts, whatever the order CloudWatch answers in
    ([{"Timestamp": at(1), "Maximum": 0.0}, {"Timestamp": at(5), "Maximum": 40.0}], 1.0, 0.0),
    ([{"Timestamp": at(5), "Maximum": 40.0}, {"Timestamp": at(1), "Maximum": 3.1234}], 1.0, 3.123),
    # AuroraGlobalDBReplicationLag is in milliseconds
    ([{"Timestamp": at(2), "Maximum": 1500.0}], 0.001, 1.5),
])
def test_latest_seconds(datapoints, scale, expected):
    assert cl.latest_seconds(datapoints, NOW, scale) == expected


@pytest.mark.parametrize("minutes_ago, expected", [
    # a period that ended at most 2 periods (minutes) ago is recent: the minute starting 3 minutes ago ended 2 ago
    (0, 0.5),
    (1, 0.5),
    (2, 0.5),
    (3, 0.5),
    # older: the lag now is unknown, not the old value (replication may have stopped since)
    (3.01, None),
    (4, None),
    (9, None),
])
def test_only_a_recent_datapoint_counts(minutes_ago, expected):
    assert cl.latest_seconds([{"Timestamp": at(minutes_ago), "Maximum": 0.5}], NOW) == expected


def test_a_stale_low_lag_does_not_hide_that_the_recent_points_are_missing():
    # replication broke 9 minutes ago: its last points showed ~0 s, nothing since
    points = [{"Timestamp": at(m), "Maximum": 0.0} for m in (9, 10)]
    assert cl.latest_seconds(points, NOW) is None
    # a recent point wins over older ones, high or low
    assert cl.latest_seconds(points + [{"Timestamp": at(2), "Maximum": 30.0}], NOW) == 30.0


@pytest.mark.parametrize("kind, dimensions, points, expected_metric, expected", [
    ("instance", {"DBInstanceIdentifier": "shop-green-abcdef"}, [{"Timestamp": at(1), "Maximum": 4.0}],
     "ReplicaLag", 4.0),
    ("global", {"DBClusterIdentifier": "orders-dr", "SourceRegion": "us-east-1"},
     [{"Timestamp": at(1), "Maximum": 250.0}], "AuroraGlobalDBReplicationLag", 0.25),
    ("instance", {"DBInstanceIdentifier": "quiet"}, [], "ReplicaLag", None),
    ("instance", {"DBInstanceIdentifier": "stale"}, [{"Timestamp": at(9), "Maximum": 0.0}], "ReplicaLag", None),
    ("global", {"DBClusterIdentifier": "orders-dr", "SourceRegion": "us-east-1"},
     [{"Timestamp": at(8), "Maximum": 0.0}], "AuroraGlobalDBReplicationLag", None),
])
def test_cloudwatch_lag_reads_the_metric_of_its_kind(kind, dimensions, points, expected_metric, expected):
    cloudwatch = FakeCloudWatch(points)
    assert cl.cloudwatch_lag(cloudwatch, kind, dimensions, now=NOW) == expected
    (request,) = cloudwatch.calls
    assert request == {"Namespace": "AWS/RDS", "MetricName": expected_metric,
                       "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
                       "StartTime": at(10), "EndTime": NOW, "Period": 60, "Statistics": ["Maximum"],
                       "aws_retry": True}


def test_an_unknown_kind_is_a_programming_error():
    with pytest.raises(KeyError):
        cl.cloudwatch_lag(FakeCloudWatch([]), "cluster", {}, now=NOW)
