# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbre.rds.rds_drill_history_info reads what the collection stored, in the lab's S3 and in a local directory.

One playbook: dbre.rds.rds_fleet_report reports two restore runs of a fleet, put in the lab's S3 with
amazon.aws.s3_object as the fleet playbooks put them (40 and 3 days ago, with passes, a failure and a database the
second batch never reached), a restore drill's own report lies in a local
directory beside a capacity report, and rds_drill_history_info answers from both, in check mode and for real. Its
only calls are S3 reads.
"""

import datetime
import json
import pathlib
import subprocess
import tempfile
import time

import pytest
import yaml

from ansible_collections.dbre.rds.plugins.module_utils.drill_report import build_report
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import render_json
from tests.integration.bad_inputs import ANSIBLE_PLAYBOOK
from tests.integration.bad_inputs import ROOT
from tests.integration.bad_inputs import module_env

pytestmark = pytest.mark.lab

BUCKET = "dbre-drill-history"
NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def ago(days):
    return (NOW - datetime.timedelta(days=days)).isoformat().replace("+00:00", "Z")


def passed(days):
    return {"changed": True, "passed": True, "report": {"started_at": ago(days), "finished_at": ago(days)}}


def breached(days):
    return {"failed": True, "passed": False, "failure": "rto_seconds 41.2 above 30", "msg": "breached",
            "report": {"started_at": ago(days), "finished_at": ago(days)}}


def fleet_run(days, databases):
    """The report of a restore run, put in S3 as playbooks/tasks/fleet_report.yml puts it."""
    return [
        {"name": f"Report the restore run of {days} days ago", "register": "history_fleet_report",
         "dbre.rds.rds_fleet_report": {"kind": "restore", "playbook": "restore_drill", "started_at": ago(days),
                                       "targets": "dbre_drill_monthly", "report_s3": f"s3://{BUCKET}/prod",
                                       "databases": databases}},
        {"name": f"Put the report of {days} days ago in S3", "loop": ["json", "md"], "amazon.aws.s3_object": {
            "bucket": "{{ history_fleet_report.s3.bucket }}",
            "object": "{{ history_fleet_report.s3.prefix }}{{ history_fleet_report.renderings.stem }}.{{ item }}",
            "content": "{{ history_fleet_report.renderings[item] }}", "mode": "put"}},
    ]


def history_task(name, report_dir, check_mode=False):
    """In check mode as of now (the default), for real as of the time the test computed the ages from."""
    task = {"name": name, "dbre.rds.rds_drill_history_info": {
        "report_s3": f"s3://{BUCKET}/prod", "report_dir": report_dir, "kinds": ["restore", "failover"],
        "max_age_days": 30}}
    if check_mode:
        task["check_mode"] = True
    else:
        task["dbre.rds.rds_drill_history_info"]["as_of"] = ago(0)
    return task


@pytest.fixture(scope="module")
def answered(lab):
    lab.control.reset()
    lab.client("s3").create_bucket(Bucket=BUCKET)
    work = pathlib.Path(tempfile.mkdtemp(prefix="dbre-drill-history-"))
    reports = work / "reports"
    reports.mkdir()
    drill = build_report(kind="restore_drill", title="Restore drill of reports-db", target="reports-db",
                         started_at=ago(1), finished_at=ago(1), passed=True, objectives=[], measurements={})
    (reports / "restore_drill-reports-db-1.json").write_text(render_json(drill))
    capacity = build_report(kind="capacity", title="Capacity of orders-db", target="orders-db", started_at=ago(1),
                            finished_at=ago(1), passed=True, objectives=[], measurements={})
    (reports / "capacity-orders-db-1.json").write_text(render_json(capacity))
    region = {"region": "us-east-1"}
    tasks = fleet_run(40, [dict(region, name="orders-db", result=passed(40)),
                           dict(region, name="billing-db", result=passed(40))])
    tasks += fleet_run(3, [dict(region, name="orders-db", result=breached(3)),
                           dict(region, name="billing-db", result=passed(3)),
                           dict(region, name="ledger-db")])
    tasks += [history_task("Compliance in check mode", str(reports), check_mode=True),
              history_task("Compliance", str(reports))]
    playbook = work / "history.yml"
    playbook.write_text(yaml.safe_dump([{"name": "Drill history", "hosts": "localhost", "connection": "local",
                                         "gather_facts": False, "tasks": tasks}], sort_keys=False))
    since = time.time()
    done = subprocess.run([ANSIBLE_PLAYBOOK, "-i", "localhost,", str(playbook)], env=module_env(lab), cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    results = {task["task"]["name"]: task["hosts"]["localhost"]
               for task in json.loads(done.stdout)["plays"][0]["tasks"]}
    calls = [c for c in lab.control.calls(since=since) if "dbre.rds/rds_drill_history_info" in c.get("user_agent", "")]
    yield {"results": results, "calls": calls, "reports": reports}
    lab.control.reset()


def test_names_exactly_the_databases_out_of_compliance(answered):
    result = answered["results"]["Compliance"]
    assert result["changed"] is False
    # orders-db: passed 40 days ago, breached 3 days ago; ledger-db: in the run, never reached
    assert result["out_of_compliance"] == {"restore": ["ledger-db", "orders-db"],
                                           "failover": ["billing-db", "ledger-db", "orders-db", "reports-db"]}
    assert result["compliant"] is False
    by_id = {d["identifier"]: d for d in result["databases"]}
    assert sorted(by_id) == ["billing-db", "ledger-db", "orders-db", "reports-db"]
    orders = by_id["orders-db"]["kinds"]["restore"]
    assert (orders["age_days"], orders["last_run_verdict"], orders["runs"]) == (40.0, "failed", 2)
    assert orders["last_passed_source"].startswith(f"s3://{BUCKET}/prod/fleet/fleet-restore_drill-")
    assert by_id["billing-db"]["kinds"]["restore"]["age_days"] == 3.0
    assert by_id["ledger-db"]["kinds"]["restore"]["reason"] == "no passed restore run on record"
    # the drill's own report (no region) counts for reports-db
    assert by_id["reports-db"]["kinds"]["restore"]["last_passed_source"] == str(
        answered["reports"] / "restore_drill-reports-db-1.json")
    assert by_id["reports-db"]["region"] is None and by_id["orders-db"]["region"] == "us-east-1"


def test_says_what_it_read_and_what_it_skipped(answered):
    reports = answered["results"]["Compliance"]["reports"]
    assert reports["read"] == 3
    assert sum(source.startswith(f"s3://{BUCKET}/prod/fleet/") for source in reports["sources"]) == 2
    assert reports["ignored"] == [{"source": str(answered["reports"] / "capacity-orders-db-1.json"),
                                   "reason": "neither a fleet report (dbre.rds.fleet_report/1) nor a drill report "
                                             "(dr_drill, failover_test, restore_drill, upgrade_drill)"}]


def test_check_mode_answers_the_same(answered):
    checked, real = answered["results"]["Compliance in check mode"], answered["results"]["Compliance"]
    assert checked["changed"] is False
    assert checked["out_of_compliance"] == real["out_of_compliance"]

    def passes(result):
        return [(d["identifier"], kind, view["last_passed_at"]) for d in result["databases"]
                for kind, view in d["kinds"].items()]

    assert passes(checked) == passes(real)
    assert checked["as_of"] >= real["as_of"]


def test_only_reads_s3(answered):
    actions = sorted({str(call.get("action")) for call in answered["calls"]})
    assert actions and all(action.startswith("GET ") for action in actions), actions
