# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
import datetime

import pytest

from ansible_collections.dbre.rds.plugins.module_utils.clock import DrillClock
from ansible_collections.dbre.rds.plugins.module_utils.clock import parse_utc
from ansible_collections.dbre.rds.plugins.module_utils.clock import utc_iso

UTC = datetime.timezone.utc


def test_times_come_from_the_monotonic_clock_not_the_wall_clock():
    ticks = iter([10.0, 12.5, 15.0])
    walls = iter([datetime.datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC), datetime.datetime(1999, 1, 1, tzinfo=UTC)])
    clock = DrillClock(monotonic=lambda: next(ticks), wall=lambda: next(walls))
    assert clock.elapsed() == 2.5
    assert utc_iso(clock.now()) == "2026-05-01T12:00:05.000Z"


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2026-05-01T12:00:00Z", "2026-05-01T12:00:00.000Z"),
        ("2026-05-01T14:00:00+02:00", "2026-05-01T12:00:00.000Z"),
        (datetime.datetime(2026, 5, 1, 12, 0, 0), "2026-05-01T12:00:00.000Z"),
        ("2026-05-01 12:00:00.250", "2026-05-01T12:00:00.250Z"),
    ],
)
def test_parse_and_render_utc(value, expected):
    assert utc_iso(parse_utc(value)) == expected


def test_external_timestamps_fall_on_the_drill_clock():
    clock = DrillClock(monotonic=lambda: 0.0, wall=lambda: datetime.datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC))
    assert clock.seconds_since_start("2026-05-01T12:00:07.5Z") == 7.5
    assert utc_iso(clock.at(3)) == "2026-05-01T12:00:03.000Z"
