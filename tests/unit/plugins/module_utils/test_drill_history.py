# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""drill_history: stored reports of several ages and verdicts name exactly the databases out of compliance."""

import datetime

import pytest

from ansible_collections.dbre.rds.plugins.module_utils.drill_history import compliance
from ansible_collections.dbre.rds.plugins.module_utils.drill_history import history_argument_problems
from ansible_collections.dbre.rds.plugins.module_utils.drill_history import records_of
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import build_report
from ansible_collections.dbre.rds.plugins.module_utils.fleet_report import FORMAT
from ansible_collections.dbre.rds.plugins.module_utils.fleet_report import build_fleet_report

AS_OF = "2026-11-30T12:00:00Z"


def day(days_ago, hour=12):
    """The time ``days_ago`` days before AS_OF (2026-11-30T12:00Z), as the reports write it."""
    moment = datetime.datetime(2026, 11, 30, hour, tzinfo=datetime.timezone.utc) - datetime.timedelta(days=days_ago)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def line(identifier, kind, verdict, finished_at, region="us-east-1", last_passed=None):
    passed = {"passed": True, "failed": False, "not_run": None}.get(verdict, True)
    return {"host": identifier, "identifier": identifier, "region": region, "cluster": None, "kind": kind,
            "verdict": verdict, "passed": passed, "started_at": finished_at,
            "finished_at": None if verdict == "not_run" else finished_at, "rto_seconds": None, "rpo_seconds": None,
            "downtime_seconds": None, "parameters_changed": [], "failure": None, "report_files": {},
            "last_passed": last_passed or {}}


def fleet(*lines, playbook="restore_drill", kind="restore"):
    return {"format": FORMAT, "playbook": playbook, "kind": kind, "started_at": day(0), "finished_at": day(0),
            "targets": "all", "summary": {}, "databases": list(lines)}


def drill(kind, target, passed, finished_at):
    return build_report(kind=kind, title=f"{kind} of {target}", target=target, started_at=finished_at,
                        finished_at=finished_at, passed=passed, objectives=[], measurements={})


def view(documents, **options):
    records = []
    for number, document in enumerate(documents):
        found, reason, problems = records_of(document, f"report-{number}.json")
        assert reason is None and problems == [], (reason, problems)
        records += found
    options.setdefault("kinds", ["restore"])
    options.setdefault("max_age_days", 30)
    return compliance(records, as_of=AS_OF, **options)


# A fleet of six: reports of several ages and verdicts over three monthly runs and one single drill.
FLEET_HISTORY = [
    fleet(line("orders-db", "restore", "passed", day(62)), line("billing-db", "restore", "passed", day(62)),
          line("users-db", "restore", "passed", day(62)), line("search-db", "restore", "failed", day(62))),
    fleet(line("orders-db", "restore", "passed", day(31)), line("billing-db", "restore", "passed", day(12)),
          line("users-db", "restore", "failed", day(31)), line("ledger-db", "restore", "not_run", None)),
    fleet(line("orders-db", "restore", "failed", day(2)), line("users-db", "restore", "passed", day(29)),
          line("ledger-db", "restore", "failed", day(2)), line("search-db", "restore", "passed", day(1))),
    # rds_restore_drill run by hand on reports-db, with report_dir: no region in its report
    drill("restore_drill", "reports-db", True, day(5)),
]


def test_reports_of_several_ages_and_verdicts_name_exactly_the_databases_out_of_compliance():
    result = view(FLEET_HISTORY)
    assert result["out_of_compliance"] == {"restore": ["ledger-db", "orders-db"]}
    assert result["compliant"] is False
    by_id = {d["identifier"]: d for d in result["databases"]}
    assert sorted(by_id) == ["billing-db", "ledger-db", "orders-db", "reports-db", "search-db", "users-db"]
    orders = by_id["orders-db"]["kinds"]["restore"]
    # passed 31 days ago, failed 2 days ago: the failure does not count, the pass is one day too old
    assert (orders["last_passed_at"], orders["age_days"], orders["compliant"]) == (day(31), 31.0, False)
    assert (orders["last_run_at"], orders["last_run_verdict"], orders["runs"]) == (day(2), "failed", 3)
    assert orders["reason"] == "last passed restore run 31 days ago, more than 30; the last run since failed"
    assert orders["last_passed_source"] == "report-1.json"
    ledger = by_id["ledger-db"]["kinds"]["restore"]
    # never passed: one run not run (a stopped batch), one failed
    assert (ledger["last_passed_at"], ledger["runs"], ledger["reason"]) == (
        None, 1, "no passed restore run on record (1 failed)")
    assert by_id["billing-db"]["kinds"]["restore"]["age_days"] == 12.0
    assert by_id["users-db"]["kinds"]["restore"]["compliant"] is True  # 29 days: inside the window
    assert by_id["search-db"]["kinds"]["restore"]["last_passed_at"] == day(1)
    # the hand-run drill's report: counted, and its region stays unknown (no fleet report names reports-db)
    assert (by_id["reports-db"]["region"], by_id["reports-db"]["compliant"]) == (None, True)
    assert by_id["orders-db"]["region"] == "us-east-1" and by_id["orders-db"]["host"] == "orders-db"


@pytest.mark.parametrize("max_age_days, expected", [
    (0.5, ["billing-db", "ledger-db", "orders-db", "reports-db", "search-db", "users-db"]),
    (1, ["billing-db", "ledger-db", "orders-db", "reports-db", "users-db"]),
    (5, ["billing-db", "ledger-db", "orders-db", "users-db"]),
    (12, ["ledger-db", "orders-db", "users-db"]),
    (29, ["ledger-db", "orders-db"]),
    (31, ["ledger-db"]),
    (62, ["ledger-db"]),
])
def test_the_window_decides_who_is_out(max_age_days, expected):
    assert view(FLEET_HISTORY, max_age_days=max_age_days)["out_of_compliance"]["restore"] == expected


def test_as_of_leaves_out_later_runs_and_counts_ages_from_it():
    records = []
    for document in FLEET_HISTORY:
        records += records_of(document, "r.json")[0]
    then = (datetime.datetime(2026, 11, 30, 12, tzinfo=datetime.timezone.utc) - datetime.timedelta(days=30))
    result = compliance(records, kinds=["restore"], max_age_days=30, as_of=then)
    by_id = {d["identifier"]: d for d in result["databases"]}
    # 30 days ago: orders-db's pass of day 31 was one day old; billing-db's of day 62 thirty-two days old
    assert by_id["orders-db"]["kinds"]["restore"]["age_days"] == 1.0
    assert by_id["billing-db"]["kinds"]["restore"]["last_passed_at"] == day(62)
    # users-db's pass of day 29 had not happened; its pass of day 62 was 32 days old
    assert result["out_of_compliance"]["restore"] == ["billing-db", "ledger-db", "reports-db", "search-db",
                                                      "users-db"]


def test_identifiers_limit_the_answer_and_a_database_never_reported_is_out_for_every_kind():
    result = view(FLEET_HISTORY, identifiers=["billing-db", "new-db"], kinds=["restore", "failover"])
    assert [d["identifier"] for d in result["databases"]] == ["billing-db", "new-db"]
    assert result["out_of_compliance"] == {"restore": ["new-db"], "failover": ["billing-db", "new-db"]}
    new = result["databases"][1]
    assert (new["region"], new["out_of_compliance"]) == (None, ["restore", "failover"])
    assert new["kinds"]["failover"]["reason"] == "no passed failover run on record"


def test_kinds_are_separate_and_last_passed_carries_history_of_pruned_reports():
    # the only stored report is a tune run; its line carries a restore pass from a report no longer stored
    tune = fleet(line("orders-db", "tune", "changed", day(1), last_passed={"restore": day(10), "failover": day(40)}),
                 playbook="tune_parameters", kind="tune")
    result = view([tune], kinds=["restore", "failover", "tune"])
    kinds = result["databases"][0]["kinds"]
    assert (kinds["restore"]["last_passed_at"], kinds["restore"]["runs"]) == (day(10), 0)
    assert (kinds["tune"]["last_passed_at"], kinds["tune"]["last_run_verdict"]) == (day(1), "changed")
    assert result["out_of_compliance"] == {"restore": [], "failover": ["orders-db"], "tune": []}


def test_the_same_identifier_in_two_regions_is_two_databases():
    result = view([fleet(line("orders-db", "restore", "passed", day(3), region="us-east-1"),
                         line("orders-db", "restore", "failed", day(3), region="eu-west-1"))])
    assert [(d["region"], d["compliant"]) for d in result["databases"]] == [("eu-west-1", False),
                                                                            ("us-east-1", True)]
    assert result["out_of_compliance"]["restore"] == ["orders-db"]


def test_a_drill_report_joins_the_one_region_the_fleet_reports_know():
    result = view([fleet(line("orders-db", "restore", "failed", day(3), region="eu-west-1")),
                   drill("restore_drill", "orders-db", True, day(1)),
                   drill("failover_test", "orders-db", False, day(1))],
                  kinds=["restore", "failover"])
    assert len(result["databases"]) == 1
    orders = result["databases"][0]
    assert (orders["region"], orders["kinds"]["restore"]["compliant"]) == ("eu-west-1", True)
    assert orders["kinds"]["failover"]["last_run_verdict"] == "failed"
    assert result["out_of_compliance"] == {"restore": [], "failover": ["orders-db"]}


def test_reads_what_the_fleet_report_writer_writes():
    hosts = [{"name": "orders-db", "identifier": "orders-db", "region": "us-east-1", "cluster": None},
             {"name": "billing", "identifier": "billing-cluster", "region": "us-west-2", "cluster": "billing-cluster"},
             {"name": "ledger-db", "identifier": "ledger-db", "region": "us-east-1", "cluster": None}]
    results = {"orders-db": {"changed": True, "passed": True, "report": {"finished_at": day(3)}},
               "billing": {"failed": True, "passed": False, "failure": "rto_seconds 41 above 30",
                           "report": {"finished_at": day(3)}}}
    report = build_fleet_report(playbook="restore_drill", kind="restore", started_at=day(3), finished_at=day(3),
                                targets="dbre_drill_monthly", hosts=hosts, results=results)
    result = view([report])
    assert result["out_of_compliance"]["restore"] == ["billing-cluster", "ledger-db"]
    by_id = {d["identifier"]: d for d in result["databases"]}
    assert (by_id["billing-cluster"]["host"], by_id["billing-cluster"]["region"]) == ("billing", "us-west-2")
    assert by_id["ledger-db"]["kinds"]["restore"]["runs"] == 0  # not_run: in the run, never drilled


@pytest.mark.parametrize("document, reason", [
    ({"format": "dbre.rds.fleet_report/2", "databases": []}, "fleet report format dbre.rds.fleet_report/2 is not"),
    ({"title": "Capacity of orders-db", "kind": "capacity", "target": "orders-db", "passed": True},
     "neither a fleet report"),
    ([1, 2], "not a JSON object"),
])
def test_other_documents_are_ignored_with_a_reason(document, reason):
    records, ignored, problems = records_of(document, "x.json")
    assert (records, problems) == ([], [])
    assert ignored.startswith(reason)


@pytest.mark.parametrize("document, problem", [
    (fleet(line("orders-db", "restore", "passed", "last tuesday")),
     "x.json: database orders-db has finished_at 'last tuesday', which is not an ISO 8601 time"),
    ({"format": FORMAT, "databases": "orders-db"}, "x.json: the fleet report has no list of databases"),
    (fleet({"identifier": "orders-db", "kind": "backup"}),
     "x.json: database line 0 has no identifier or no known kind"),
    (fleet(line("orders-db", "restore", "passed", day(1), last_passed={"failover": "soon"})),
     "x.json: database orders-db (last_passed failover) has finished_at 'soon'"),
    (dict(drill("restore_drill", "orders-db", True, day(1)), target=""), "x.json: the restore_drill report names no "
                                                                         "target"),
])
def test_damaged_reports_of_ours_are_problems(document, problem):
    problems = records_of(document, "x.json")[2]
    assert len(problems) == 1 and problems[0].startswith(problem), problems


@pytest.mark.parametrize("params, expected", [
    ({"kinds": ["restore"], "max_age_days": 30}, []),
    ({"kinds": ["restore"], "max_age_days": 0}, ["max_age_days must be more than 0 and at most 3660 days, not 0"]),
    ({"kinds": [], "max_age_days": 30}, ["kinds must name at least one kind of run"]),
    ({"kinds": ["restore", "backup"], "max_age_days": 30}, ["kinds backup unknown: choose from restore, failover"]),
    ({"kinds": ["restore"], "max_age_days": 30, "as_of": "yesterday"},
     ["as_of 'yesterday' is not an ISO 8601 time: give e.g. 2026-11-30T07:00:00Z"]),
    ({"kinds": ["restore"], "max_age_days": 30, "identifiers": ["a", " "]}, ["identifiers must not hold blank names"]),
])
def test_option_problems(params, expected):
    problems = history_argument_problems(params)
    assert len(problems) == len(expected)
    for found, fragment in zip(problems, expected):
        assert found.startswith(fragment)


def upgrade(passed, finished_at, measurements, kind="upgrade_drill"):
    return build_report(kind=kind, title=f"{kind} of orders-db", target="orders-db", started_at=finished_at,
                        finished_at=finished_at, passed=passed, objectives=[], measurements=measurements)


REHEARSED = {"from_version": "15.10", "to_version": "18.6", "upgraded": True, "rehearsed": True}


@pytest.mark.parametrize("checklist_only", [
    upgrade(True, day(1), {"rehearsed": False}, kind="upgrade_checklist"),  # rds_upgrade_drill checks_only, now
    upgrade(True, day(1), {"rehearsed": False}),  # a checklist-only report marked not rehearsed
    upgrade(True, day(1), {}),  # a checks_only report of the upgrade_drill kind written before the fix
])
def test_a_checklist_only_upgrade_report_never_makes_a_database_compliant(checklist_only):
    """C1: the checklist is no rehearsal; with it newest and the rehearsal failed, orders-db is out of compliance."""
    records, reason, problems = records_of(checklist_only, "checklist.json")
    assert records == [] and problems == [] and "nothing was rehearsed" in reason
    failed = records_of(upgrade(False, day(1, hour=11), dict(REHEARSED, upgraded=False)), "rehearsal.json")[0]
    answer = compliance(records + failed, kinds=["upgrade"], max_age_days=30, as_of=AS_OF)
    assert answer["out_of_compliance"] == {"upgrade": ["orders-db"]}
    assert answer["databases"][0]["kinds"]["upgrade"]["last_run_verdict"] == "failed"


def test_a_rehearsed_upgrade_drill_still_counts():
    records = records_of(upgrade(True, day(3), REHEARSED), "rehearsal.json")[0]
    answer = compliance(records, kinds=["upgrade"], max_age_days=30, as_of=AS_OF)
    assert answer["out_of_compliance"] == {"upgrade": []}
    assert answer["databases"][0]["kinds"]["upgrade"]["last_passed_source"] == "rehearsal.json"
