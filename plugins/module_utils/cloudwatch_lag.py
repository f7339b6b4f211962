# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one CloudWatch replication-lag reader: the latest recent datapoint of an AWS/RDS lag metric, in seconds.

Used by rds_dr_drill (a cross-region replica's or an Aurora global database's lag) and rds_blue_green (the green's
lag behind the blue).

Only a recent datapoint counts: one whose period ended at most :data:`RECENT_PERIODS` periods ago (CloudWatch
publishes a minute's datapoint shortly after the minute ends). An older one says nothing about the lag now: a replica
whose replication stopped nine minutes ago still shows its last ~0 s there. Without a recent datapoint the lag is
unknown (None), which the callers treat as "no recent lag" and never as in sync.
"""

from __future__ import annotations

import datetime

# kind -> (AWS/RDS metric, its unit in seconds): ReplicaLag is in seconds, AuroraGlobalDBReplicationLag in ms.
LAG_METRICS = {"instance": ("ReplicaLag", 1.0), "global": ("AuroraGlobalDBReplicationLag", 0.001)}
WINDOW_MINUTES = 10
PERIOD_SECONDS = 60
RECENT_PERIODS = 2


def lag_request(metric, dimensions, now, minutes=WINDOW_MINUTES):
    """The GetMetricStatistics request for the Maximum of ``metric`` per minute over the last ``minutes``."""
    return dict(Namespace="AWS/RDS", MetricName=metric,
                Dimensions=[{"Name": name, "Value": value} for name, value in dimensions.items()],
                StartTime=now - datetime.timedelta(minutes=minutes), EndTime=now, Period=PERIOD_SECONDS,
                Statistics=["Maximum"])


def recent(timestamp, now, period=PERIOD_SECONDS, periods=RECENT_PERIODS):
    """The datapoint of the period starting at ``timestamp`` ended at most ``periods`` periods before ``now``."""
    return timestamp + datetime.timedelta(seconds=period) >= now - datetime.timedelta(seconds=periods * period)


def latest_seconds(datapoints, now, scale=1.0, period=PERIOD_SECONDS):
    """The newest recent datapoint's Maximum in seconds (rounded to ms), or None when no datapoint is recent."""
    points = sorted((point for point in datapoints or [] if recent(point["Timestamp"], now, period)),
                    key=lambda point: point["Timestamp"])
    return None if not points else round(points[-1]["Maximum"] * scale, 3)


def cloudwatch_lag(cloudwatch, kind, dimensions, now=None):
    """The latest recent lag datapoint (seconds), or None when CloudWatch has none (see the module's docstring);
    ``kind`` is a key of LAG_METRICS and ``cloudwatch`` a client of amazon.aws's (``aws_retry``).
    ClientError/BotoCoreError propagate."""
    metric, scale = LAG_METRICS[kind]
    now = now or datetime.datetime.now(datetime.timezone.utc)
    found = cloudwatch.get_metric_statistics(aws_retry=True, **lag_request(metric, dimensions, now))
    return latest_seconds(found.get("Datapoints"), now, scale)
