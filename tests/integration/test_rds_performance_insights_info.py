# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rds_performance_insights_info against the lab under a lock contention the test creates.

Two instances, one with Performance Insights and one without, each get the same contention: one session holds a
row lock in an open transaction and three others wait to update the same row. While they wait, one playbook reads
the first through the PI API and the second through the pg_stat_statements fallback; the top wait event must be a
lock wait and the top SQL the waiting UPDATE, with the vCPU line beside them. The same playbook writes a report in
check mode and runs the rds_monitoring role's weekly report (its entry point weekly_report) over both instances.
"""

import threading
import time

import psycopg2
import pytest

from tests.integration.capacity_support import PASSWORD
from tests.integration.capacity_support import run_module_tasks

WITH_PI, WITHOUT_PI = "it-pi-on", "it-pi-off"
WAITERS = 3
LOCK_WAITS = ("Lock:transactionid", "Lock:tuple")
UPDATE = "UPDATE contended SET v = v + 1 WHERE id = 1"


def _connect(instance):
    conn = psycopg2.connect(host=instance["Endpoint"]["Address"], port=instance["Endpoint"]["Port"], user="dbadmin",
                            password=PASSWORD, dbname="postgres", connect_timeout=10)
    conn.autocommit = True
    return conn


class Contention:
    """One session holding the row lock, WAITERS sessions blocked on the same row until release()."""

    def __init__(self, instance):
        self.instance = instance
        self.holder = _connect(instance)
        with self.holder.cursor() as cursor:
            cursor.execute("CREATE TABLE contended (id int PRIMARY KEY, v int)")
            cursor.execute("INSERT INTO contended VALUES (1, 0)")
            cursor.execute("BEGIN")
            cursor.execute(UPDATE)
        self.threads = [threading.Thread(target=self._wait) for _unused in range(WAITERS)]
        for thread in self.threads:
            thread.start()

    def _wait(self):
        conn = _connect(self.instance)
        try:
            with conn.cursor() as cursor:
                cursor.execute(UPDATE)
        finally:
            conn.close()

    def waiting(self):
        with _connect(self.instance) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
            return cursor.fetchone()[0]

    def release(self):
        with self.holder.cursor() as cursor:
            cursor.execute("COMMIT")
        for thread in self.threads:
            thread.join(timeout=30)
        self.holder.close()


@pytest.fixture(scope="module")
def insights(lab, tmp_path_factory):
    lab.control.reset()
    rds = lab.client("rds")
    common = dict(DBInstanceClass="db.t4g.medium", AllocatedStorage=20, Engine="postgres", EngineVersion="15.5",
                  MasterUsername="dbadmin", MasterUserPassword=PASSWORD)
    rds.create_db_instance(DBInstanceIdentifier=WITH_PI, EnablePerformanceInsights=True, **common)
    rds.create_db_instance(DBInstanceIdentifier=WITHOUT_PI, **common)
    instances = {}
    for identifier in (WITH_PI, WITHOUT_PI):
        rds.get_waiter("db_instance_available").wait(DBInstanceIdentifier=identifier,
                                                     WaiterConfig={"Delay": 1, "MaxAttempts": 300})
        instances[identifier] = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
    with _connect(instances[WITHOUT_PI]) as conn, conn.cursor() as cursor:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    contentions = [Contention(instances[identifier]) for identifier in (WITH_PI, WITHOUT_PI)]
    try:
        deadline = time.monotonic() + 20
        while any(c.waiting() < WAITERS for c in contentions) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(c.waiting() == WAITERS for c in contentions)
        time.sleep(4)  # a few seconds of PI samples (one a second) while everyone waits
        login = dict(login_user="dbadmin", login_password=PASSWORD, login_db="postgres")
        report_dir, weekly_dir = tmp_path_factory.mktemp("pi-report"), tmp_path_factory.mktemp("weekly")
        results = run_module_tasks(lab, tmp_path_factory.mktemp("pi"), "rds_performance_insights_info", {
            "pi": dict(db_instance_identifier=WITH_PI, window_minutes=5, limit=5),
            "fallback": dict(db_instance_identifier=WITHOUT_PI, window_minutes=5, limit=5, sample_seconds=1, **login),
        }, [{
            "name": "report", "check_mode": True, "ignore_errors": True,
            "dbre.rds.rds_performance_insights_info": dict(
                db_instance_identifier=WITH_PI, window_minutes=5, source="performance_insights",
                report_dir=str(report_dir), report_name="load"),
        }, {
            # The role's weekly report over both instances (its entry point alone), with the login for the fallback.
            "name": "weekly report", "ansible.builtin.include_role": {
                "name": "dbre.rds.rds_monitoring", "tasks_from": "weekly_report"},
            "vars": {"rds_monitoring_instances": [WITH_PI, WITHOUT_PI],
                     "rds_monitoring_weekly_report_dir": str(weekly_dir),
                     "rds_monitoring_login_user": "dbadmin", "rds_monitoring_login_password": PASSWORD,
                     # "batch" cannot fit anywhere (10,000 connections during a deploy): a finding in the
                     # report, not a failed run.
                     "rds_monitoring_weekly_report_app_fleets": [dict(name="web", instances=2, threads=8),
                                                                 dict(name="batch", instances=5000, threads=1)]},
        }, {
            # The role's tasks pass the password under no_log, so the callback shows them censored: read the
            # registered results instead.
            "name": "weekly results", "ansible.builtin.debug": {"msg": {
                "capacity": "{{ rds_monitoring_capacity }}", "load": "{{ rds_monitoring_load }}"}},
        }])
    finally:
        for contention in contentions:
            contention.release()
    results["weekly_dir"] = weekly_dir
    yield results
    lab.control.reset()


def test_performance_insights_names_the_lock_wait_and_the_waiting_statement(insights):
    result = insights["pi"]
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False and result["source"] == "performance_insights"
    top = result["wait_events"][0]
    assert top["wait_event"] in LOCK_WAITS and top["wait_event_type"] == "Lock"
    lock_share = sum(w["share_of_load"] for w in result["wait_events"] if w["wait_event"] in LOCK_WAITS)
    assert lock_share > 0.5
    assert "UPDATE contended" in result["top_sql"][0]["statement"]
    assert result["top_sql"][0]["share_of_load"] > 0.5
    # Three sessions waiting most of the window's sampled time: the load is above 1 and below the sessions + 1.
    assert result["average_active_sessions"] is not None and 0 < result["average_active_sessions"] <= WAITERS + 1
    assert result["vcpus"] == 2
    assert [f["name"] for f in result["findings"]].count("top_wait_event") == 1


def test_without_performance_insights_it_falls_back_and_says_so(insights):
    result = insights["fallback"]
    assert not result.get("failed"), result.get("msg")
    assert result["source"] == "pg_stat_statements"
    assert "Performance Insights is off on it-pi-off" in result["source_note"]
    top = result["wait_events"][0]
    assert top["wait_event"] in LOCK_WAITS
    # Every sample saw the three waiters: the first on the holder's transaction, the others on the row (tuple).
    # (Another active session, such as a monitoring query, may show up as CPU in a sample.)
    waits = {w["wait_event"]: w["average_active_sessions"] for w in result["wait_events"]}
    assert (waits["Lock:transactionid"], waits["Lock:tuple"]) == (1.0, WAITERS - 1.0)
    assert result["average_active_sessions"] >= WAITERS
    assert result["top_sql"][0]["statement"] == UPDATE
    assert result["top_sql"][0]["basis"] == "pg_stat_activity samples"


def test_report_of_the_load_in_check_mode(insights):
    result = insights["report"]
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False  # read-only: the same in check mode, the report files written
    report = result["report"]
    assert report["kind"] == "performance_insights" and report["target"] == WITH_PI
    markdown = open(result["report_files"]["md"], encoding="utf-8").read()
    assert "| wait 1: Lock:" in markdown and "| vcpus | 2 |" in markdown


def test_weekly_report_of_the_role_uses_both_modules(insights):
    # Task names inside a role come as "<role> : <name>".
    weekly = {name.split(" : ")[-1]: result for name, result in insights.items() if " : " in name}
    for name in ("Capacity of the instances (connection budget, pools, right-sizing, storage forecast)",
                 "Database load of each instance (top wait events and SQL)"):
        shown = weekly[name]
        assert not shown.get("failed"), shown.get("msg")
        assert "censored" in shown and PASSWORD not in str(shown)  # no_log: the task passes the password
    registered = insights["weekly results"]["msg"]
    capacity = registered["capacity"]
    assert not capacity.get("failed"), capacity.get("msg")
    assert [i["db_instance_identifier"] for i in capacity["instances"]] == [WITH_PI, WITHOUT_PI]
    for item in capacity["instances"]:
        pools = item["pools"]
        assert [f["name"] for f in pools["fleets"]] == ["web", "batch"]
        # The fleet that cannot fit is a finding, by how much: the run and the other reports go on.
        assert pools["fits"] is False and pools["needed"] == 2 * 2 + 10000
        assert pools["shortfall"] == pools["needed"] - pools["budget"]["budget"] > 0
        assert pools["max_connections_needed"] == pools["budget"]["max_connections"] + pools["shortfall"]
        assert "RDS Proxy" in pools["recommendation"]
    assert capacity["report"]["passed"] is False
    assert [o["held"] for o in capacity["report"]["objectives"]] == [False, False]
    load = registered["load"]["results"]
    assert [r["source"] for r in load] == ["performance_insights", "pg_stat_statements"]
    files = sorted(path.name.split("-")[0] for path in insights["weekly_dir"].glob("*.md"))
    assert files == ["capacity", "performance_insights", "performance_insights"]
