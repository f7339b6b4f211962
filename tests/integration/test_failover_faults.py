# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbre.rds.rds_failover_test when things go wrong: the failover request's answer lost or throttled, a probe_table
that names an application table, the drill interrupted (SIGTERM to ansible-playbook in each phase) or killed
(SIGKILL, then the next run removes what it left). The lab's call log, failover log and PostgreSQL are the truth.
"""

import json
import os
import pathlib
import signal
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from failover_support import PROBE_TABLE  # noqa: E402
from failover_support import create_instance  # noqa: E402
from failover_support import drill  # noqa: E402
from failover_support import instance_available  # noqa: E402
from failover_support import probe_table_marker  # noqa: E402
from failover_support import run_tasks  # noqa: E402
from failover_support import sql  # noqa: E402
from failover_support import start_playbook  # noqa: E402
from failover_support import wait_for  # noqa: E402

MULTI = "fo-faults"
MARKER = "dbre.rds probe table "


@pytest.fixture(scope="module")
def fleet(lab):
    lab.control.reset()
    rds = lab.client("rds")
    create_instance(rds, MULTI, True)
    wait_for(lambda: instance_available(rds, MULTI), what=f"{MULTI} available")
    yield rds
    lab.control.reset()


@pytest.fixture
def ready(lab, fleet):
    """The instance available, no faults, no stuck state, an empty call log; returns its endpoint."""
    lab.control.clear_faults()
    lab.control.unstick(MULTI)
    lab.control.set_timing(failover=1.0)
    endpoint = wait_for(lambda: instance_available(fleet, MULTI), timeout=120, what=f"{MULTI} available")["Endpoint"]
    lab.control.wait_jobs()
    lab.control.clear_calls()
    yield endpoint
    lab.control.clear_faults()
    lab.control.unstick(MULTI)


def failovers_of(lab):
    return [f for f in lab.control.failover_log() if f["identifier"] == MULTI]


def reboot_calls(lab):
    return lab.control.calls(action="RebootDBInstance")


# ------------------------------------------------------------------------------------------- exactly one failover

def test_a_lost_answer_to_the_failover_request_fails_over_once(lab, ready, tmp_path):
    before = len(failovers_of(lab))
    # The lab carries the reboot out, then holds its answer 65 s: longer than botocore's 60 s read timeout.
    lab.control.set_fault("lost_answer", actions=["RebootDBInstance"], seconds=65, count=1)
    (result,) = run_tasks(lab, tmp_path, [drill(MULTI, wait_timeout=300)])

    assert result.get("failed") is not True, result.get("msg")
    assert result["passed"] is True and result["measurements"]["failover_happened"] is True
    assert len(failovers_of(lab)) == before + 1, "exactly one failover"
    calls = reboot_calls(lab)
    assert len(calls) == 1 and calls[0]["fault"] == "lost_answer"
    request = result["measurements"]["failover_request"]
    assert {k: request[k] for k in ("attempts", "lost_answers", "throttled")} == {
        "attempts": 1, "lost_answers": 1, "throttled": 0}
    assert request["confirmed_by"].startswith(("RDS event:", "status ", "writer moved")), request
    assert request["confirmed_by"] != "answer"


def test_throttling_on_the_failover_request_is_survived_with_one_failover(lab, ready, tmp_path):
    before = len(failovers_of(lab))
    lab.control.set_fault("throttle", actions=["RebootDBInstance"], count=5)
    (result,) = run_tasks(lab, tmp_path, [drill(MULTI, wait_timeout=300)])

    assert result.get("failed") is not True, result.get("msg")
    assert result["passed"] is True
    assert len(failovers_of(lab)) == before + 1, "exactly one failover"
    calls = reboot_calls(lab)
    assert [c["fault"] for c in calls] == ["throttle"] * 5 + [None]
    assert result["measurements"]["failover_request"] == {"attempts": 6, "throttled": 5, "lost_answers": 0,
                                                          "confirmed_by": "answer"}


# -------------------------------------------------------------------------------------- never drop what is not ours

def test_an_application_table_named_as_probe_table_survives_and_the_drill_refuses(lab, ready, tmp_path):
    sql(ready, "CREATE TABLE orders (id int PRIMARY KEY, item text)", fetch=False)
    sql(ready, f"CREATE TABLE {PROBE_TABLE} (seq bigint)", fetch=False)
    try:
        sql(ready, "INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(1, 25) g", fetch=False)
        sql(ready, f"INSERT INTO {PROBE_TABLE} VALUES (1), (2), (3)", fetch=False)
        named, default_name, checked = run_tasks(lab, tmp_path, [
            drill(MULTI, probe_table="orders"),
            drill(MULTI),
            dict(drill(MULTI, probe_table="orders"), check_mode=True),
        ])
        for result, where in ((named, "public.orders"), (default_name, f"public.{PROBE_TABLE}"),
                              (checked, "public.orders")):
            assert result["failed"] is True and result["changed"] is False
            assert result["msg"].startswith("The failover drill was refused before any change"), result["msg"]
            assert f"names an existing table ({where}) that this module did not create" in result["msg"]
        assert sql(ready, "SELECT count(*), max(item) FROM orders") == [(25, "item 9")]
        assert sql(ready, f"SELECT array_agg(seq ORDER BY seq) FROM {PROBE_TABLE}") == [([1, 2, 3],)]
        assert probe_table_marker(ready, "orders") is None
        assert reboot_calls(lab) == []
    finally:
        sql(ready, f"DROP TABLE IF EXISTS orders, {PROBE_TABLE}", fetch=False)


# ----------------------------------------------------------------------------------------------- interrupted runs

def _tmp(tmp_path, name):
    path = tmp_path / name
    path.mkdir()
    return path


def _wait_for_line(progress, words, process, timeout=120):
    def seen():
        assert process.poll() is None, f"the playbook ended before '{words}':\n{process.communicate()[0][-4000:]}"
        return progress.exists() and words in progress.read_text()
    wait_for(seen, timeout=timeout, interval=0.05, what=words)


def _owner_pid(endpoint):
    """The pid in the probe table's marker: the module process (read before the failover takes the database away)."""
    marker = wait_for(lambda: probe_table_marker(endpoint), timeout=60, interval=0.05, what="the probe table")
    assert marker.startswith(MARKER)
    return json.loads(marker[len(MARKER):])["pid"]


def _gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("phase, waiting_line, options", [
    ("baseline probes", "waiting for baseline probes", {"probe_interval": 4}),
    ("failover to complete", "waiting for failover to complete", {}),
    ("settling", "waiting for writes to settle", {"probe_settle_seconds": 60}),
], ids=["baseline", "after-the-failover-request", "settling"])
def test_sigterm_to_ansible_playbook_cleans_up_in_each_phase(lab, ready, tmp_path, phase, waiting_line, options):
    tmp = tmp_path
    reports, progress = tmp / "reports", tmp / "progress.log"
    task = drill(MULTI, wait_timeout=180, report_dir=str(reports), report_name="interrupted",
                 progress_log=str(progress), **options)
    process = start_playbook(lab, tmp, [task])
    stuck = False
    try:
        pid = _owner_pid(ready)
        if phase == "failover to complete":
            wait_for(lambda: reboot_calls(lab), timeout=120, interval=0.05, what="the failover call")
            lab.control.stick(MULTI, "rebooting")
            stuck = True
        _wait_for_line(progress, waiting_line, process)
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=120)
        report_file = reports / "interrupted.json"
        wait_for(report_file.exists, timeout=120, what="the report of the interrupted drill")
        report = json.loads(report_file.read_text())
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        if stuck:
            lab.control.unstick(MULTI)
    assert report["passed"] is False
    assert f"interrupted by SIGTERM while {phase} ran" in report["failure"]
    assert report["details"]["interrupted_by"] == "SIGTERM" and report["details"]["phase"] == phase
    assert report["measurements"]["probe_table_removed"] is True
    assert probe_table_marker(ready) is None, "the probe table is gone"
    assert len(reboot_calls(lab)) == (0 if phase == "baseline probes" else 1)
    wait_for(lambda: _gone(pid), timeout=60, what="the module process to end")
    assert "probe table dbre_rds_failover_probe removed" in progress.read_text()


def test_a_killed_drill_leaves_a_marked_table_that_the_next_run_removes(lab, ready, tmp_path):
    tmp = _tmp(tmp_path, "killed")
    progress = tmp / "progress.log"
    process = start_playbook(lab, tmp, [drill(MULTI, wait_timeout=180, probe_settle_seconds=60,
                                              progress_log=str(progress))])
    try:
        pid = _owner_pid(ready)
        _wait_for_line(progress, "waiting for writes to settle", process)
        os.kill(pid, signal.SIGKILL)
        process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    wait_for(lambda: _gone(pid), timeout=30, what="the killed module to be gone")
    leftover = probe_table_marker(ready)
    assert leftover is not None and json.loads(leftover[len(MARKER):])["pid"] == pid

    wait_for(lambda: instance_available(lab.client("rds"), MULTI), timeout=120)
    lab.control.wait_jobs()
    (check,) = run_tasks(lab, _tmp(tmp_path, "check"), [dict(drill(MULTI), check_mode=True)])
    assert check.get("failed") is not True, check.get("msg")
    assert check["plan"]["probing"]["leftover_probe_tables"] == [f"public.{PROBE_TABLE}"]
    assert probe_table_marker(ready) == leftover, "check mode drops nothing"
    (result,) = run_tasks(lab, _tmp(tmp_path, "next"), [drill(MULTI)])
    assert result.get("failed") is not True, result.get("msg")
    assert result["passed"] is True
    assert result["measurements"]["leftover_probe_tables_removed"] == [f"public.{PROBE_TABLE}"]
    assert result["measurements"]["probe_table_removed"] is True
    assert probe_table_marker(ready) is None
