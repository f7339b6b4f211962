# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
import datetime

from ansible_collections.dbre.rds.plugins.module_utils.clock import DrillClock
from ansible_collections.dbre.rds.plugins.module_utils.drill_log import DrillLog
from ansible_collections.dbre.rds.plugins.module_utils.drill_log import progress_line

START = datetime.datetime(2026, 11, 27, 7, 35, tzinfo=datetime.timezone.utc)


def test_progress_line():
    line = progress_line(START, 12.34, "rds_restore_drill", "src", "wait_available", "instance t available")
    assert line == "2026-11-27T07:35:00.000Z +    12.3s rds_restore_drill src [wait_available] instance t available\n"


def test_progress_log_gets_a_line_per_phase_event_and_status(tmp_path):
    now = [0.0]
    clock = DrillClock(monotonic=lambda: now[0], wall=lambda: START)
    path = tmp_path / "logs" / "progress.log"
    log = DrillLog(clock, "rds_restore_drill", "src", str(path))
    now[0] = 1.0
    log.start("restore_request")
    now[0] = 2.5
    log.finish("restore_request")
    now[0] = 3.0
    log.start("wait_available")
    log.transitions("instance t", [{"state": "creating", "at": "2026-11-27T07:35:03.000Z"},
                                   {"state": "available", "at": "2026-11-27T07:35:07.000Z"}])
    now[0] = 7.25
    log.finish("wait_available")
    log.event("failover requested", elapsed=2.0)
    lines = path.read_text().splitlines()
    assert lines[0] == "2026-11-27T07:35:01.000Z +     1.0s rds_restore_drill src [restore_request] restore_request started"
    assert "+     3.0s rds_restore_drill src [status] instance t creating" in lines[3]
    assert "+     7.0s rds_restore_drill src [status] instance t available" in lines[4]
    assert lines[5].endswith("[wait_available] wait_available ok after 4.2s")
    assert lines[6] == "2026-11-27T07:35:02.000Z +     2.0s rds_restore_drill src [drill] failover requested"
    assert log.phases[1] == {"name": "wait_available", "started_at": "2026-11-27T07:35:03.000Z",
                             "finished_at": "2026-11-27T07:35:07.250Z", "seconds": 4.25, "outcome": "ok"}
    assert [e["elapsed_seconds"] for e in log.timeline] == [1.0, 2.5, 3.0, 3.0, 7.0, 7.25, 2.0]


def test_open_phases_are_closed_with_the_outcome():
    now = [0.0]
    log = DrillLog(DrillClock(monotonic=lambda: now[0], wall=lambda: START), "rds_failover_test", "db1")
    log.start("failover")
    now[0] = 4.0
    log.close_open("timeout")
    assert log.phases == [{"name": "failover", "started_at": "2026-11-27T07:35:00.000Z",
                           "finished_at": "2026-11-27T07:35:04.000Z", "seconds": 4.0, "outcome": "timeout"}]
    assert log.timeline[-1]["event"] == "failover timeout after 4.0s"
