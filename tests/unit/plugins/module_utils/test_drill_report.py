# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
import json
from xml.etree import ElementTree

from ansible_collections.dbre.rds.plugins.module_utils.drill_report import check_rows
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import render_json
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import render_junit
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import render_markdown
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import report_basename
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import write_report

REPORT = {
    "title": "Failover drill",
    "kind": "failover",
    "target": "orders-db",
    "started_at": "2026-05-01T12:00:00.000Z",
    "finished_at": "2026-05-01T12:01:00.000Z",
    "passed": False,
    "failure": None,
    "objectives": [
        {"name": "observed downtime", "objective": 30, "observed": 41.25, "unit": "s", "held": False},
        {"name": "lost writes", "objective": 0, "observed": 0, "unit": None, "held": True},
    ],
    "timeline": [
        {"at": "2026-05-01T12:00:41.250Z", "elapsed_seconds": 41.25, "event": "first successful write"},
        {"at": "2026-05-01T12:00:00.000Z", "elapsed_seconds": 0.0, "event": "failover requested"},
    ],
    "measurements": {"observed_downtime_seconds": 41.25, "duration_seconds": 60.0},
}


def test_json_holds_the_same_figures():
    assert json.loads(render_json(REPORT)) == REPORT


def test_markdown_has_verdict_table_and_ordered_timeline():
    text = render_markdown(REPORT)
    assert text.startswith("# Failover drill: FAILED")
    assert "| observed downtime | 30 s | 41.25 s | **no** |" in text
    assert "| lost writes | 0 | 0 | yes |" in text
    assert text.index("failover requested") < text.index("first successful write")
    assert "| observed_downtime_seconds | 41.25 |" in text


def test_markdown_shows_a_structured_measurement_as_json():
    report = dict(REPORT, measurements={"probe_endpoint": {"kind": "proxy", "name": "orders-proxy", "port": 5432}})
    assert '| probe_endpoint | {"kind": "proxy", "name": "orders-proxy", "port": 5432} |' in render_markdown(report)


def test_junit_marks_each_breached_objective_as_a_failure():
    suite = ElementTree.fromstring(render_junit(REPORT))
    assert suite.get("tests") == "2" and suite.get("failures") == "1" and suite.get("errors") == "0"
    assert suite.get("time") == "60.000"
    cases = {case.get("name"): case for case in suite.findall("testcase")}
    assert cases["observed downtime"].find("failure").get("message") == "observed 41.25 s, objective 30 s"
    assert cases["lost writes"].find("failure") is None


def test_junit_reports_a_drill_that_could_not_finish_as_an_error():
    report = dict(REPORT, objectives=[], failure="Timed out while waiting for failover to complete")
    suite = ElementTree.fromstring(render_junit(report))
    assert suite.get("errors") == "1"
    assert suite.find("testcase/error").get("message").startswith("Timed out")


def test_write_report_renders_one_result_in_three_files(tmp_path):
    paths = write_report(REPORT, str(tmp_path / "reports"), "failover-orders-db-20260501T120000Z")
    assert sorted(paths) == ["json", "md", "xml"]
    assert json.loads(open(paths["json"]).read())["measurements"]["observed_downtime_seconds"] == 41.25
    assert "41.25 s" in open(paths["md"]).read()
    assert ElementTree.parse(paths["xml"]).getroot().get("failures") == "1"
    assert not list((tmp_path / "reports").glob("*.tmp"))


def test_report_basename_sorts_by_time_and_is_file_safe():
    assert report_basename("restore", "orders/db", "2026-05-01T12:00:00.123Z") == "restore-orders_db-20260501T120000Z"


def test_check_rows_are_one_row_per_check_with_long_observed_values_shortened():
    checks = [{"name": "free storage", "passed": True, "unit": "GiB", "expected": ">= 10", "value": 42},
              {"name": "prepared transactions", "passed": False, "unit": None, "expected": "none",
               "value": [f"transaction-{n}" for n in range(40)]}]
    rows = check_rows(checks, objective="expected", observed="value")
    assert rows[0] == {"name": "free storage", "objective": ">= 10", "observed": 42, "unit": "GiB", "held": True}
    assert rows[1]["held"] is False and len(rows[1]["observed"]) == 200 and rows[1]["observed"].endswith("...")
    assert check_rows([{"name": "n", "passed": True, "unit": "s", "objective": 1, "measured": {"a": 1}}]) == [
        {"name": "n", "objective": 1, "observed": "{'a': 1}", "unit": "s", "held": True}]
