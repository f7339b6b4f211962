# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Status transitions with their times, and the real PostgreSQL stop / ready times of a failover, read through the
control API: what a drill's measurements are compared with."""

from datetime import datetime

import pytest

from tests.lab.clients import create_postgres, wait_instance

pytestmark = pytest.mark.lab


def test_status_transitions_are_recorded_with_times(lab_clean):
    rds = lab_clean.client()
    lab_clean.control.set_timing(create=0.6, backing_up=0.4)
    rds.create_db_instance(DBInstanceIdentifier="hist", Engine="mysql", DBInstanceClass="db.t3.micro",
                           MasterUsername="admin", MasterUserPassword="lab-password-1", AllocatedStorage=20)
    wait_instance(rds, "hist", "available", timeout=10, interval=0.05)
    history = lab_clean.control.status_history("hist")["db:hist"]
    assert [e["status"] for e in history] == ["creating", "backing-up", "available"]
    times = [datetime.fromisoformat(e["at"]) for e in history]
    assert times == sorted(times)
    assert (times[1] - times[0]).total_seconds() == pytest.approx(0.6, abs=0.15)
    assert (times[2] - times[1]).total_seconds() == pytest.approx(0.4, abs=0.15)


def test_failover_log_has_postgres_stop_and_ready_times(lab_clean):
    rds = lab_clean.client()
    lab_clean.control.set_timing(failover=1.0)
    create_postgres(rds, "mazhist", MultiAZ=True)
    rds.reboot_db_instance(DBInstanceIdentifier="mazhist", ForceFailover=True)
    wait_instance(rds, "mazhist", "rebooting", timeout=5)
    wait_instance(rds, "mazhist", "available", timeout=30)
    entry = lab_clean.control.failover_log()[-1]
    stopped, ready = datetime.fromisoformat(entry["pg_stopped_at"]), datetime.fromisoformat(entry["pg_ready_at"])
    assert datetime.fromisoformat(entry["started_at"]) <= stopped < ready <= datetime.fromisoformat(entry["completed_at"])
    assert (ready - stopped).total_seconds() >= 1.0
    statuses = [e["status"] for e in lab_clean.control.status_history("mazhist")["db:mazhist"]]
    assert statuses[-2:] == ["rebooting", "available"]
