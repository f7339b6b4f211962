# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One clock per drill, so every timestamp and duration in a report is measured against the same origin."""

from __future__ import annotations

import datetime
import time


def utc_iso(moment):
    """ISO 8601 in UTC with a ``Z`` suffix and millisecond precision, as the drills report times."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_utc(value):
    """Accept a datetime (naive means UTC) or an ISO 8601 string and return an aware UTC datetime."""
    if isinstance(value, datetime.datetime):
        moment = value
    else:
        text = str(value).strip().replace("Z", "+00:00")
        moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


class DrillClock:
    """Wall-clock times derived from a monotonic clock anchored once, so NTP steps cannot bend a measured duration.

    ``monotonic`` and ``wall`` are injectable for tests.
    """

    def __init__(self, monotonic=time.monotonic, wall=None):
        self._monotonic = monotonic
        wall = wall or (lambda: datetime.datetime.now(datetime.timezone.utc))
        self._origin_mono = monotonic()
        self.started_at = parse_utc(wall())

    def elapsed(self):
        """Seconds since the clock started."""
        return self._monotonic() - self._origin_mono

    def now(self):
        """The current time as an aware UTC datetime on this clock."""
        return self.started_at + datetime.timedelta(seconds=self.elapsed())

    def at(self, elapsed_seconds):
        """The datetime ``elapsed_seconds`` after the start."""
        return self.started_at + datetime.timedelta(seconds=elapsed_seconds)

    def seconds_since_start(self, moment):
        """Where an external timestamp (an RDS event, a call log entry) falls on this clock."""
        return (parse_utc(moment) - self.started_at).total_seconds()
