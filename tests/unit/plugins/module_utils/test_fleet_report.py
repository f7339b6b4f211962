# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
import json
from xml.etree import ElementTree

import pytest

from ansible_collections.dbre.rds.plugins.module_utils.fleet_report import FORMAT
from ansible_collections.dbre.rds.plugins.module_utils.fleet_report import build_fleet_report
from ansible_collections.dbre.rds.plugins.module_utils.fleet_report import database_line
from ansible_collections.dbre.rds.plugins.module_utils.fleet_report import render
from ansible_collections.dbre.rds.plugins.module_utils.fleet_report import report_stem
from ansible_collections.dbre.rds.plugins.module_utils.fleet_report import s3_location

NOW = "2026-11-30T07:10:00Z"
HOST = {"name": "orders-db", "identifier": "orders-db", "region": "us-east-1", "cluster": None}
RESTORE_PASSED = {"changed": True, "passed": True, "verdict": "passed", "failure": None, "rto_seconds": 41.23456,
                  "rpo_seconds": 300, "report": {"started_at": "2026-11-30T07:00:00.000Z",
                                                 "finished_at": "2026-11-30T07:01:00.000Z"},
                  "report_files": {"json": "/r/restore_drill-orders-db.json"}}
RESTORE_BREACHED = {"failed": True, "passed": False, "failure": "rto_seconds 41.2 above 30",
                    "msg": "Restore drill of orders-db failed: rto_seconds 41.2 above 30", "rto_seconds": 41.2,
                    "report": {"finished_at": "2026-11-30T07:01:00.000Z"}}
FAILOVER_PASSED = {"changed": True, "passed": True, "measurements": {"observed_downtime_seconds": 12.5},
                   "report": {"finished_at": "2026-11-30T07:05:00.000Z"}}
LOGIN_FAILED = {"failed": True, "msg": "could not read the secret rds-provision/orders-db/master"}
TUNED = {"changed": True, "changes": [{"name": "work_mem"}, {"name": "random_page_cost"}], "pending_reboot": []}


@pytest.mark.parametrize("kind, result, expected", [
    ("restore", RESTORE_PASSED, {"verdict": "passed", "passed": True, "rto_seconds": 41.235, "rpo_seconds": 300.0,
                                 "finished_at": "2026-11-30T07:01:00.000Z", "failure": None,
                                 "report_files": {"json": "/r/restore_drill-orders-db.json"}}),
    ("restore", RESTORE_BREACHED, {"verdict": "failed", "passed": False, "failure": "rto_seconds 41.2 above 30"}),
    ("failover", FAILOVER_PASSED, {"verdict": "passed", "downtime_seconds": 12.5, "rto_seconds": None}),
    # a failure before the drill (no `passed`): failed, with the task's message
    ("restore", LOGIN_FAILED, {"verdict": "failed", "passed": False, "finished_at": NOW,
                               "failure": "could not read the secret rds-provision/orders-db/master"}),
    ("tune", TUNED, {"verdict": "changed", "passed": True, "parameters_changed": ["random_page_cost", "work_mem"]}),
    ("tune", {"changed": False, "changes": []}, {"verdict": "unchanged", "passed": True, "parameters_changed": []}),
    # never ran (the batch was stopped), or skipped
    ("restore", None, {"verdict": "not_run", "passed": None, "finished_at": None}),
    ("restore", {"skipped": True, "changed": False}, {"verdict": "not_run", "passed": None}),
])
def test_a_database_line_from_the_registered_result(kind, result, expected):
    line = database_line(HOST, kind, result, NOW)
    assert {key: line[key] for key in expected} == expected
    assert line["identifier"] == "orders-db" and line["region"] == "us-east-1" and line["kind"] == kind


def test_a_drill_failure_message_wins_over_passed_true():
    line = database_line(HOST, "restore", dict(RESTORE_PASSED, failure={"message": "cleanup left orders-r1"}), NOW)
    assert (line["verdict"], line["failure"]) == ("failed", "cleanup left orders-r1")


def _report(results, previous=()):
    hosts = [HOST, {"name": "billing-db", "region": "us-west-2"}, {"name": "ledger-db", "region": "us-east-1"}]
    return build_fleet_report(playbook="restore_drill", kind="restore", started_at="2026-11-30T07:00:00Z",
                              finished_at=NOW, targets="dbre_drill_monthly", hosts=hosts, results=results,
                              previous_reports=previous)


def test_the_report_counts_verdicts_and_keeps_the_run_order():
    report = _report({"orders-db": RESTORE_PASSED, "billing-db": RESTORE_BREACHED})
    assert report["format"] == FORMAT
    assert [(line["identifier"], line["verdict"]) for line in report["databases"]] == [
        ("orders-db", "passed"), ("billing-db", "failed"), ("ledger-db", "not_run")]
    assert report["summary"] == {"databases": 3, "passed": 1, "failed": 1, "changed": 0, "unchanged": 0,
                                 "not_run": 1}


def test_last_passed_comes_from_this_run_and_the_stored_reports_newest_first():
    older = _report({"orders-db": dict(RESTORE_PASSED, report={"finished_at": "2026-10-30T07:01:00Z"}),
                     "billing-db": dict(RESTORE_PASSED, report={"finished_at": "2026-10-30T07:02:00Z"})})
    failover = build_fleet_report(playbook="failover_drill", kind="failover", started_at="2026-11-02T03:00:00Z",
                                  finished_at=NOW, targets="x", hosts=[HOST], results={"orders-db": FAILOVER_PASSED},
                                  previous_reports=[])
    stored = [json.loads(json.dumps(older)), json.loads(json.dumps(failover)), {"format": "something else"}]
    report = _report({"orders-db": RESTORE_PASSED, "billing-db": RESTORE_BREACHED}, stored)
    lines = {line["identifier"]: line for line in report["databases"]}
    # this run's pass is newer than October's; the failover drill's pass is carried over
    assert lines["orders-db"]["last_passed"] == {"failover": "2026-11-30T07:05:00.000Z",
                                                 "restore": "2026-11-30T07:01:00.000Z"}
    # billing-db failed now: its last passed restore is October's
    assert lines["billing-db"]["last_passed"] == {"restore": "2026-10-30T07:02:00Z"}
    assert lines["ledger-db"]["last_passed"] == {}
    # a database of the same name in another region is another database
    elsewhere = build_fleet_report(playbook="restore_drill", kind="restore", started_at=NOW, finished_at=NOW,
                                   targets="x", hosts=[{"name": "billing-db", "region": "eu-west-1"}], results={},
                                   previous_reports=[json.loads(json.dumps(older))])
    assert elsewhere["databases"][0]["last_passed"] == {}


def test_the_renderings_name_every_database_with_its_verdict():
    rendered = render(_report({"orders-db": RESTORE_PASSED, "billing-db": RESTORE_BREACHED}))
    assert rendered["stem"] == "fleet-restore_drill-20261130T070000Z"
    assert json.loads(rendered["json"])["summary"]["failed"] == 1
    title = "# Fleet report: restore_drill on dbre_drill_monthly - 1 passed, 1 failed, 1 not run of 3"
    assert rendered["md"].splitlines()[0] == title
    md_rows = [row for row in rendered["md"].splitlines() if row.startswith("| `")]
    assert [row.split(" | ")[2] for row in md_rows] == ["PASSED", "FAILED", "NOT RUN"]
    assert "rto_seconds 41.2 above 30" in md_rows[1]
    assert rendered["html"].count("<tr class=") == 3 and '<tr class="failed">' in rendered["html"]
    suite = ElementTree.fromstring(rendered["xml"])
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    cases = {case.get("classname"): case for case in suite.findall("testcase")}
    assert cases["us-west-2.billing-db"].find("failure").get("message") == "rto_seconds 41.2 above 30"
    assert cases["us-east-1.ledger-db"].find("skipped") is not None
    assert list(cases["us-east-1.orders-db"]) == []


def test_a_tuning_report_counts_changed_and_unchanged():
    report = build_fleet_report(playbook="tune_parameters", kind="tune", started_at=NOW, finished_at=NOW, targets="x",
                                hosts=[HOST, {"name": "billing-db"}],
                                results={"orders-db": TUNED, "billing-db": {"changed": False}})
    assert render(report)["md"].splitlines()[0] == ("# Fleet report: tune_parameters on x - 0 failed, 1 changed, "
                                                    "1 unchanged, 0 not run of 2")


def test_html_escapes_what_it_shows():
    report = _report({"orders-db": dict(RESTORE_BREACHED, failure="<script>x</script>")})
    assert "<script>" not in render(report)["html"]


@pytest.mark.parametrize("setting, expected", [
    ("s3://dbre-reports/drills", {"bucket": "dbre-reports", "prefix": "drills/fleet/", "region": None}),
    ("s3://dbre-reports", {"bucket": "dbre-reports", "prefix": "fleet/", "region": None}),
    ("dbre-reports/a/b/", {"bucket": "dbre-reports", "prefix": "a/b/fleet/", "region": None}),
    ({"bucket": "dbre-reports", "region": "eu-west-1"}, {"bucket": "dbre-reports", "prefix": "fleet/",
                                                         "region": "eu-west-1"}),
])
def test_s3_location(setting, expected):
    assert s3_location(setting) == expected


@pytest.mark.parametrize("setting", ["", "s3://", "s3://Bad_Bucket/x", {"prefix": "x"}])
def test_s3_location_refuses_what_names_no_bucket(setting):
    with pytest.raises(ValueError, match="names no S3 bucket"):
        s3_location(setting)


def test_report_stem_sorts_by_time_and_is_a_plain_name():
    assert report_stem("restore drill/x", "2026-11-30T07:00:00.123+01:00") == "fleet-restore_drill_x-20261130T060000Z"


def test_runs_starting_in_the_same_second_get_different_stems():
    # two slices of an AWX sliced job start together: the job id (or the run's suffix) keeps their files apart
    started = "2026-11-30T07:00:00Z"
    stems = {report_stem("restore_drill", started, run_id) for run_id in ("awx-4711", "awx-4712", None)}
    assert stems == {"fleet-restore_drill-20261130T070000Z-awx-4711", "fleet-restore_drill-20261130T070000Z-awx-4712",
                     "fleet-restore_drill-20261130T070000Z"}
    assert report_stem("x", started, "a/b c") == "fleet-x-20261130T070000Z-a_b_c"
    assert render(_report({"orders-db": RESTORE_PASSED}), run_id="awx-9")["stem"].endswith("-awx-9")


@pytest.mark.parametrize("kind", ["restore", "failover", "dr", "upgrade"])
def test_a_drill_result_without_a_verdict_is_never_a_pass(kind):
    line = database_line({"name": "orders-db"}, kind, {"changed": False, "verdict": "planned"}, "2026-11-30T00:00:00Z")
    assert (line["passed"], line["verdict"]) == (False, "not_run")


def test_a_tune_result_without_passed_is_changed_or_unchanged():
    line = database_line({"name": "orders-db"}, "tune", {"changed": True}, "2026-11-30T00:00:00Z")
    assert (line["passed"], line["verdict"]) == (True, "changed")
