# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one CloudWatch replication-lag reader: the latest datapoint of an AWS/RDS lag metric, in seconds.

Used by rds_dr_drill (a cross-region replica's or an Aurora global database's lag) and rds_blue_green (the green's
lag behind the blue).
"""

from __future__ import annotations

import datetime

# kind -> (AWS/RDS metric, its unit in seconds): ReplicaLag is in seconds, AuroraGlobalDBReplicationLag in ms.
LAG_METRICS = {"instance": ("ReplicaLag", 1.0), "global": ("AuroraGlobalDBReplicationLag", 0.001)}
WINDOW_MINUTES = 10


def lag_request(metric, dimensions, now, minutes=WINDOW_MINUTES):
    """The GetMetricStatistics request for the Maximum of ``metric`` per minute over the last ``minutes``."""
    return dict(Namespace="AWS/RDS", MetricName=metric,
                Dimensions=[{"Name": name, "Value": value} for name, value in dimensions.items()],
                StartTime=now - datetime.timedelta(minutes=minutes), EndTime=now, Period=60, Statistics=["Maximum"])


def latest_seconds(datapoints, scale=1.0):
    """The newest datapoint's Maximum in seconds (rounded to ms), or None without datapoints."""
    points = sorted(datapoints or [], key=lambda point: point["Timestamp"])
    return None if not points else round(points[-1]["Maximum"] * scale, 3)


def cloudwatch_lag(cloudwatch, kind, dimensions, now=None):
    """The latest lag datapoint of the last ten minutes (seconds), or None; ``kind`` is a key of LAG_METRICS and
    ``cloudwatch`` a client of amazon.aws's (``aws_retry``). ClientError/BotoCoreError propagate."""
    metric, scale = LAG_METRICS[kind]
    now = now or datetime.datetime.now(datetime.timezone.utc)
    found = cloudwatch.get_metric_statistics(aws_retry=True, **lag_request(metric, dimensions, now))
    return latest_seconds(found.get("Datapoints"), scale)
