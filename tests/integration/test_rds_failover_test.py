# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbre.rds.rds_failover_test on a Multi-AZ instance in the lab, with the lab's own figures as the truth: the outage
it made, the rows it dropped, the calls it served. Aurora and the refusals are in test_rds_failover_test_aurora.py.

Each test runs a playbook with ansible-playbook, as a user would, and reads the registered results back as JSON.
"""

import json
import pathlib
import sys

import pytest

from ansible_collections.dbre.rds.plugins.module_utils.clock import parse_utc
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from failover_support import PROBE_TABLE  # noqa: E402
from failover_support import create_instance  # noqa: E402
from failover_support import documented_measurements  # noqa: E402
from failover_support import drill  # noqa: E402
from failover_support import failover_calls  # noqa: E402
from failover_support import instance_available  # noqa: E402
from failover_support import probe_table_exists  # noqa: E402
from failover_support import run_tasks  # noqa: E402
from failover_support import wait_for  # noqa: E402

MULTI = "fo-multi"


@pytest.fixture(scope="module")
def fleet(lab):
    """One Multi-AZ instance for the whole file (creating PostgreSQL clusters is the slow part)."""
    lab.control.reset()
    rds = lab.client("rds")
    create_instance(rds, MULTI, True)
    wait_for(lambda: instance_available(rds, MULTI), what=f"{MULTI} available")
    yield rds
    lab.control.reset()


def test_multi_az_failover_measures_what_clients_saw(lab, fleet, tmp_path):
    lab.control.set_timing(failover=3.0)
    lab.control.clear_calls()
    before = wait_for(lambda: instance_available(fleet, MULTI))
    task = drill(MULTI, max_downtime_seconds=30, report_dir=str(tmp_path / "reports"),
                 progress_log=str(tmp_path / "progress.log"))
    task.update({"async": 120, "poll": 1})
    (result,) = run_tasks(lab, tmp_path, [task])

    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is True and result["passed"] is True
    measured = result["measurements"]
    assert set(measured) == documented_measurements()
    after = fleet.describe_db_instances(DBInstanceIdentifier=MULTI)["DBInstances"][0]
    # the AZs are swapped, and the module saw it
    assert measured["failover_happened"] is True
    assert (measured["az_before"], measured["az_after"]) == (before["AvailabilityZone"],
                                                             before["SecondaryAvailabilityZone"])
    assert (after["AvailabilityZone"], after["SecondaryAvailabilityZone"]) == (before["SecondaryAvailabilityZone"],
                                                                               before["AvailabilityZone"])
    # the client-side downtime matches the outage the lab made
    (failover,) = [f for f in lab.control.failover_log() if f["identifier"] == MULTI]
    assert failover["outage_seconds"] == pytest.approx(3.0)
    # The lab keeps PostgreSQL stopped for outage_seconds between its started and completed marks; stopping and
    # starting PostgreSQL come on top, so the window between the marks is the outage clients really had.
    outage = (parse_utc(failover["completed_at"]) - parse_utc(failover["started_at"])).total_seconds()
    assert abs(measured["observed_downtime_seconds"] - outage) <= 0.25 + 0.5, (outage, measured)
    assert measured["observed_downtime_seconds"] >= failover["outage_seconds"] - 0.25
    assert measured["lost_writes"] == 0 and measured["acknowledged_writes"] > 0
    assert measured["probes_failed"] > 0 and measured["read_only_errors"] == 0
    assert measured["failover_started_event_at"] and measured["failover_completed_event_at"]
    assert measured["api_failover_seconds"] >= measured["observed_downtime_seconds"] - 0.5
    assert measured["probe_table_removed"] is True
    assert not probe_table_exists(after["Endpoint"])
    # exactly one forced failover call
    calls = failover_calls(lab)
    assert [(c["action"], c["params"].get("ForceFailover")) for c in calls] == [("RebootDBInstance", "true")]
    # the report files carry the same figures
    files = result["report_files"]
    report = json.loads(pathlib.Path(files["json"]).read_text())
    assert report["measurements"] == measured and report["passed"] is True
    markdown = pathlib.Path(files["md"]).read_text()
    assert "## Timeline" in markdown and "failover requested" in markdown
    downtime = f"{measured['observed_downtime_seconds']:.3f}".rstrip("0").rstrip(".")
    assert f"| observed_downtime_seconds | 30 s | {downtime} s | yes |" in markdown
    assert 'failures="0"' in pathlib.Path(files["xml"]).read_text()
    progress = (tmp_path / "progress.log").read_text()
    for phase in ("pre-checks passed", "failover requested", "RDS reports the failover done",
                  f"probe table {PROBE_TABLE} removed", "drill finished: PASSED"):
        assert phase in progress


def test_lossy_failover_counts_the_writes_the_lab_dropped(lab, fleet, tmp_path):
    lab.control.set_timing(failover=1.0)
    endpoint = wait_for(lambda: instance_available(fleet, MULTI))["Endpoint"]
    lab.control.arm_lossy_failover(MULTI, freeze_seconds=1.0)
    (result,) = run_tasks(lab, tmp_path, [drill(MULTI, report_dir=str(tmp_path / "reports"))])

    failover = [f for f in lab.control.failover_log() if f["identifier"] == MULTI][-1]
    dropped = failover["dropped_rows"][f"public.{PROBE_TABLE}"]
    measured = result["measurements"]
    assert failover["lossy"] is True and dropped > 0
    assert measured["lost_writes"] == dropped
    assert len(measured["lost_write_numbers"]) == dropped
    assert result["failed"] is True and result["passed"] is False
    assert f"lost_writes was {dropped} against an objective of at most 0" in result["msg"]
    assert measured["failover_happened"] is True
    report = json.loads(pathlib.Path(result["report_files"]["json"]).read_text())
    assert report["passed"] is False and report["measurements"]["lost_writes"] == dropped
    assert measured["probe_table_removed"] is True and not probe_table_exists(endpoint)


def test_a_stuck_failover_ends_at_wait_timeout_with_the_report(lab, fleet, tmp_path):
    lab.control.set_timing(failover=1.0)
    endpoint = wait_for(lambda: instance_available(fleet, MULTI))["Endpoint"]
    lab.control.clear_calls()
    finish = run_tasks(lab, tmp_path, [drill(MULTI, wait_timeout=8, report_dir=str(tmp_path / "reports"))],
                       background=True)
    try:
        wait_for(lambda: lab.control.calls(action="RebootDBInstance"), timeout=120, interval=0.05,
                 what="the failover call")
        lab.control.stick(MULTI, "rebooting")
        (result,) = finish()
    finally:
        lab.control.unstick(MULTI)
    assert result["failed"] is True and result["passed"] is False
    assert result["phase"] == "failover to complete"
    assert "Timed out after" in result["msg"] and "waiting for failover to complete" in result["msg"]
    assert "last state seen: rebooting" in result["msg"]
    report = json.loads(pathlib.Path(result["report_files"]["json"]).read_text())
    assert "failover to complete" in report["failure"] and report["passed"] is False
    assert report["measurements"]["requested_at"] is not None
    assert "<error" in pathlib.Path(result["report_files"]["xml"]).read_text()
    assert result["measurements"]["probe_table_removed"] is True and not probe_table_exists(endpoint)
