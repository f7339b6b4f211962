# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The failover drill's decisions: pre-checks, plan, what clients saw, lost writes, verdict and report."""

import datetime

import pytest

from ansible_collections.dbre.rds.plugins.module_utils import failover_drill as drill
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import render_junit
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import render_markdown


def instance(**overrides):
    described = {
        "DBInstanceIdentifier": "db1",
        "DBInstanceStatus": "available",
        "MultiAZ": True,
        "AvailabilityZone": "us-east-1a",
        "SecondaryAvailabilityZone": "us-east-1b",
        "PendingModifiedValues": {},
        "Endpoint": {"Address": "127.0.0.1", "Port": 5433},
    }
    described.update(overrides)
    return described


def cluster(members=(("w", True, 1), ("r1", False, 1), ("r2", False, 0)), **overrides):
    described = {
        "DBClusterIdentifier": "c1",
        "Status": "available",
        "Endpoint": "127.0.0.1",
        "Port": 5440,
        "DBClusterMembers": [
            {"DBInstanceIdentifier": name, "IsClusterWriter": writer, "PromotionTier": tier}
            for name, writer, tier in members
        ],
    }
    described.update(overrides)
    return described


def members(**statuses):
    azs = {"w": "us-east-1a", "r1": "us-east-1b", "r2": "us-east-1c"}
    return {name: {"DBInstanceIdentifier": name, "DBInstanceStatus": statuses.get(name, "available"),
                   "AvailabilityZone": azs.get(name)} for name in ("w", "r1", "r2")}


# ---------------------------------------------------------------------------------------------------- pre-checks

@pytest.mark.parametrize(
    "described, allow, expected",
    [
        (instance(), False, []),
        (None, False, ["does not exist"]),
        (instance(MultiAZ=False), False, ["single-AZ", "forced failover is impossible"]),
        (instance(DBInstanceStatus="modifying"), False, ["status is modifying, not available"]),
        (instance(PendingModifiedValues={"DBInstanceClass": "db.r6g.large"}), False,
         ["pending modifications (DBInstanceClass)", "allow_pending_modifications=true"]),
        (instance(PendingModifiedValues={"DBInstanceClass": "db.r6g.large"}), True, []),
        (instance(PendingModifiedValues={"PendingCloudwatchLogsExports": {"LogTypesToEnable": ["postgresql"]}}),
         False, []),
        (instance(DBClusterIdentifier="c1"), False, ["belongs to DB cluster c1", "db_cluster_identifier=c1"]),
    ],
    ids=["ok", "missing", "single-az", "not-available", "pending", "pending-allowed", "log-exports-ignored",
         "cluster-member"],
)
def test_instance_problems(described, allow, expected):
    problems = drill.instance_problems("db1", described, allow)
    text = " | ".join(problems)
    assert bool(problems) == bool(expected)
    for fragment in expected:
        assert fragment in text


def test_instance_problems_lists_every_problem_at_once():
    problems = drill.instance_problems("db1", instance(MultiAZ=False, DBInstanceStatus="stopped"))
    assert len(problems) == 2


@pytest.mark.parametrize(
    "described, statuses, target, expected",
    [
        (cluster(), {}, None, []),
        (cluster(), {}, "r1", []),
        (None, {}, None, ["does not exist"]),
        (cluster(members=(("w", True, 1),)), {}, None, ["no reader instance to fail over to"]),
        (cluster(Status="backing-up"), {}, None, ["status is backing-up"]),
        (cluster(), {}, "w", ["already the writer"]),
        (cluster(), {}, "nope", ["not a member", "readers: r2, r1"]),
        (cluster(), {"r1": "rebooting"}, "r1", ["r1: that reader's status is rebooting"]),
        (cluster(), {"r1": "rebooting"}, "r2", []),
        (cluster(PendingModifiedValues={"EngineVersion": "15.5"}), {}, None, ["pending modifications (EngineVersion)"]),
    ],
    ids=["ok", "ok-target", "missing", "no-reader", "not-available", "target-is-writer", "target-not-member",
         "target-busy", "other-reader-busy", "pending"],
)
def test_cluster_problems(described, statuses, target, expected):
    problems = drill.cluster_problems("c1", described, members(**statuses), target)
    text = " | ".join(problems)
    assert bool(problems) == bool(expected), text
    for fragment in expected:
        assert fragment in text


@pytest.mark.parametrize(
    "names, alarms, expected",
    [
        ([], [], []),
        (["cpu"], [{"AlarmName": "cpu", "StateValue": "OK"}], []),
        (["cpu"], [{"AlarmName": "cpu", "StateValue": "INSUFFICIENT_DATA"}], []),
        (["cpu"], [{"AlarmName": "cpu", "StateValue": "ALARM", "StateReason": "CPU 97%"}],
         ["alarm cpu is in ALARM (CPU 97%)", "remove it from abort_if_alarms"]),
        (["cpu", "lag"], [{"AlarmName": "cpu", "StateValue": "OK"}], ["guardrail alarm lag", "no CloudWatch alarm"]),
    ],
    ids=["none", "ok", "insufficient-data", "in-alarm", "missing"],
)
def test_alarm_problems(names, alarms, expected):
    problems = drill.alarm_problems(names, alarms)
    text = " | ".join(problems)
    assert bool(problems) == bool(expected)
    for fragment in expected:
        assert fragment in text


@pytest.mark.parametrize(
    "params, credentials, wanted, problem",
    [
        ({}, True, True, None),
        ({}, False, False, None),
        ({"probe": False}, True, False, None),
        ({"probe": True}, False, False, "probe=true needs DB credentials"),
        ({"max_downtime_seconds": 30}, False, False, "give login_user"),
        ({"probe": False, "max_downtime_seconds": 30}, True, False, "needs probing"),
    ],
)
def test_probing_wanted(params, credentials, wanted, problem):
    got, message = drill.probing_wanted(params, credentials)
    assert got is wanted
    if problem:
        assert problem in message
    else:
        assert message is None


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"db_instance_identifier": "a", "probe_interval": 0.25, "wait_timeout": 60}, []),
        ({"db_instance_identifier": "a", "target_db_instance_identifier": "b"}, ["Aurora only"]),
        ({"probe_interval": 0}, ["probe_interval must be greater than 0"]),
        ({"max_downtime_seconds": -1}, ["max_downtime_seconds must not be negative"]),
        ({"max_lost_writes": -1}, ["max_lost_writes must not be negative"]),
        ({"wait_timeout": 0}, ["wait_timeout must be at least 1"]),
    ],
)
def test_option_problems(params, expected):
    problems = drill.option_problems(params)
    assert len(problems) == len(expected)
    for fragment, problem in zip(expected, problems):
        assert fragment in problem


# ---------------------------------------------------------------------------------------------------------- plan

def test_plan_for_a_multi_az_instance():
    plan = drill.plan_failover(drill.INSTANCE, "db1", instance())
    assert plan["action"] == "reboot_db_instance"
    assert plan["api_params"] == {"DBInstanceIdentifier": "db1", "ForceFailover": True}
    assert (plan["writer_before"], plan["az_before"], plan["secondary_az_before"]) == ("db1", "us-east-1a", "us-east-1b")
    assert "from us-east-1a to us-east-1b" in plan["expected"]


@pytest.mark.parametrize("target, api_params, words", [
    ("r1", {"DBClusterIdentifier": "c1", "TargetDBInstanceIdentifier": "r1"}, "from w to r1"),
    (None, {"DBClusterIdentifier": "c1"}, "usually picks r2"),
])
def test_plan_for_a_cluster(target, api_params, words):
    plan = drill.plan_failover(drill.CLUSTER, "c1", cluster(), members(), target)
    assert plan["action"] == "failover_db_cluster"
    assert plan["api_params"] == api_params
    assert (plan["writer_before"], plan["az_before"]) == ("w", "us-east-1a")
    assert words in plan["expected"]


@pytest.mark.parametrize("kind, target, writer_after, az_after, moved", [
    (drill.INSTANCE, None, "db1", "us-east-1b", True),
    (drill.INSTANCE, None, "db1", "us-east-1a", False),
    (drill.INSTANCE, None, "db1", None, False),
    (drill.CLUSTER, None, "r2", "us-east-1c", True),
    (drill.CLUSTER, None, "w", "us-east-1a", False),
    (drill.CLUSTER, "r1", "r1", "us-east-1b", True),
    (drill.CLUSTER, "r1", "r2", "us-east-1c", False),
])
def test_failover_moved(kind, target, writer_after, az_after, moved):
    described = instance() if kind == drill.INSTANCE else cluster()
    plan = drill.plan_failover(kind, "x", described, members(), target)
    assert drill.failover_moved(plan, writer_after, az_after) is moved


def test_status_label_names_where_the_writer_is():
    assert drill.status_label(drill.INSTANCE, instance(DBInstanceStatus="rebooting")) == "rebooting (us-east-1a)"
    assert drill.status_label(drill.CLUSTER, cluster(Status="failing-over"), members()) == "failing-over (writer w)"
    assert drill.status_label(drill.INSTANCE, None) == "missing"


# --------------------------------------------------------------------------------------------------- measurement

def samples_from(pattern, interval=0.25, start=0.0, latency=0.01, errors=None):
    """'.' a success, 'x' a connection failure, 'r' a read-only refusal; one probe per interval."""
    result = []
    for index, mark in enumerate(pattern):
        sent = start + index * interval
        ok = mark == "."
        result.append({"seq": index + 1, "sent": sent, "done": sent + latency, "ok": ok,
                       "error": None if ok else {"x": "connection", "r": "read_only"}[mark],
                       "message": None if ok else "boom"})
    return result


def test_downtime_runs_from_first_failure_to_first_success_after_the_last():
    samples = samples_from("....xxxxrr..x...", interval=0.5)
    downtime = drill.measure_downtime(samples, requested_elapsed=1.0)
    assert downtime["first_failed_probe"]["seq"] == 5
    assert downtime["last_failed_probe"]["seq"] == 13
    assert downtime["first_success_after"]["seq"] == 14
    # probe 5 sent at 2.0; probe 14 done at 6.5 + 0.01
    assert downtime["observed_downtime_seconds"] == pytest.approx(4.51)
    assert downtime["recovered"] is True


def test_failures_before_the_request_do_not_count():
    samples = samples_from("x.........")
    assert drill.measure_downtime(samples, requested_elapsed=0.5)["observed_downtime_seconds"] == 0.0


def test_no_failure_means_zero_downtime():
    downtime = drill.measure_downtime(samples_from("......"), requested_elapsed=0.0)
    assert downtime["observed_downtime_seconds"] == 0.0
    assert downtime["first_failed_probe"] is None


def test_never_recovered_means_unknown_downtime():
    downtime = drill.measure_downtime(samples_from("...xxxx"), requested_elapsed=0.0)
    assert downtime["recovered"] is False
    assert downtime["observed_downtime_seconds"] is None
    assert downtime["first_success_after"] is None


@pytest.mark.parametrize("pattern, now, expected", [
    ("....", 1.0, 1.0 - 0.01),
    ("..x.", 1.0, 1.0 - 0.76),
    ("...x", 1.0, 0.0),
    ("", 1.0, 0.0),
])
def test_settled_for(pattern, now, expected):
    assert drill.settled_for(samples_from(pattern), 0.0, now) == pytest.approx(expected)


def test_probe_counts():
    counts = drill.probe_counts(samples_from("..xxrr.r."))
    assert counts["probes_sent"] == 9
    assert counts["probes_failed"] == 5
    assert counts["read_only_errors"] == 3
    assert counts["probe_errors"]["connection"] == 2


@pytest.mark.parametrize("acknowledged, present, lost, numbers, unacknowledged", [
    ([1, 2, 3], [1, 2, 3], 0, [], 0),
    ([1, 2, 3, 4, 5], [1, 2, 5], 2, [3, 4], 0),
    ([1, 2], [1, 2, 3], 0, [], 1),
    ([1, 2], None, None, [], None),
])
def test_account_writes(acknowledged, present, lost, numbers, unacknowledged):
    result = drill.account_writes(acknowledged, present)
    assert result["lost_writes"] == lost
    assert result["lost_write_numbers"] == numbers
    assert result["unacknowledged_rows_found"] == unacknowledged
    assert result["acknowledged_writes"] == len(acknowledged)


def test_acknowledged_writes_are_the_successful_probes():
    assert drill.acknowledged_writes(samples_from("..x.")) == [1, 2, 4]


def test_failover_events_picks_started_and_completed():
    t0 = datetime.datetime(2026, 11, 27, 8, 0, 0, tzinfo=datetime.timezone.utc)
    events = [
        {"Message": "Multi-AZ instance failover completed.", "EventCategories": ["failover"],
         "Date": t0 + datetime.timedelta(seconds=30)},
        {"Message": "DB instance restarted", "EventCategories": ["availability"], "Date": t0},
        {"Message": "Multi-AZ instance failover started.", "EventCategories": ["failover"], "Date": t0},
    ]
    picked = drill.failover_events(events)
    assert picked["started"]["Date"] == t0
    assert picked["completed"]["Message"].endswith("completed.")
    assert len(picked["events"]) == 2


def test_aurora_failover_event_wording():
    events = [{"Message": "Started cross AZ failover to DB instance: r1", "EventCategories": ["failover"], "Date": 1},
              {"Message": "Completed failover to DB instance: r1", "EventCategories": ["failover"], "Date": 2}]
    picked = drill.failover_events(events)
    assert picked["started"]["Date"] == 1 and picked["completed"]["Date"] == 2


# ------------------------------------------------------------------------------------------------------- verdict

@pytest.mark.parametrize("measured, max_down, max_lost, probing, mode, passed, names", [
    ({"failover_happened": True, "observed_downtime_seconds": 10.0, "lost_writes": 0}, 30, 0, True, "write",
     True, ["failover_happened", "observed_downtime_seconds", "lost_writes"]),
    ({"failover_happened": True, "observed_downtime_seconds": 40.0, "lost_writes": 0}, 30, 0, True, "write",
     False, ["failover_happened", "observed_downtime_seconds", "lost_writes"]),
    ({"failover_happened": True, "observed_downtime_seconds": 1.0, "lost_writes": 3}, None, 0, True, "write",
     False, ["failover_happened", "lost_writes"]),
    ({"failover_happened": True, "observed_downtime_seconds": 1.0, "lost_writes": 3}, None, 5, True, "write",
     True, ["failover_happened", "lost_writes"]),
    ({"failover_happened": False, "observed_downtime_seconds": 1.0, "lost_writes": 0}, 30, 0, True, "write",
     False, ["failover_happened", "observed_downtime_seconds", "lost_writes"]),
    ({"failover_happened": True, "observed_downtime_seconds": None}, 30, 0, True, "read",
     False, ["failover_happened", "observed_downtime_seconds"]),
    ({"failover_happened": True}, None, 0, False, "write", True, ["failover_happened"]),
    ({"failover_happened": True, "lost_writes": None}, None, 0, True, "write", False,
     ["failover_happened", "lost_writes"]),
])
def test_judge(measured, max_down, max_lost, probing, mode, passed, names):
    objectives, verdict = drill.judge(measured, max_down, max_lost, probing, mode)
    assert verdict is passed
    assert [item["name"] for item in objectives] == names


def test_breach_message_names_each_broken_objective():
    objectives = drill.judge({"failover_happened": False, "observed_downtime_seconds": 40.0, "lost_writes": 2},
                             30, 0, True, "write")[0]
    message = drill.breach_message("db1", objectives)
    assert "the writer did not move" in message
    assert "observed_downtime_seconds was 40.0 s against an objective of at most 30 s" in message
    assert "lost_writes was 2 against an objective of at most 0" in message
    assert "fail_on_breach=false" in message


def at_of(elapsed):
    return f"2026-11-27T08:00:{elapsed:06.3f}Z"


def test_report_renders_timeline_and_verdict():
    samples = samples_from("....xxxx....", interval=0.5)
    downtime = drill.measure_downtime(samples, 1.0)
    timeline = [{"at": at_of(1.0), "elapsed_seconds": 1.0, "event": "failover requested"}]
    timeline += drill.probe_timeline(downtime, at_of)
    objectives, passed = drill.judge({"failover_happened": True, "observed_downtime_seconds": 2.01, "lost_writes": 0},
                                     30, 0, True, "write")
    report = drill.build_report(identifier="db1", plan=drill.plan_failover(drill.INSTANCE, "db1", instance()),
                                started_at=at_of(0), finished_at=at_of(9),
                                measurements={"observed_downtime_seconds": 2.01},
                                objectives=objectives, passed=passed, timeline=timeline, details={})
    assert report["passed"] is True and report["kind"] == "failover_test"
    assert [e["event"].split(" #")[0] for e in report["timeline"]] == [
        "failover requested", "first failed probe", "last failed probe", "first successful probe after the outage"]
    markdown = render_markdown(report)
    assert "## Timeline" in markdown and "## Verdict" in markdown
    assert "| observed_downtime_seconds | 30 s | 2.01 s | yes |" in markdown
    assert 'failures="0"' in render_junit(report)


def test_a_failure_makes_the_report_fail_even_when_objectives_held():
    report = drill.build_report(identifier="db1", plan=drill.plan_failover(drill.INSTANCE, "db1", instance()),
                                started_at="a", finished_at="b", measurements={}, objectives=[], passed=True,
                                timeline=[], details={}, failure="Timed out")
    assert report["passed"] is False
    assert "<error" in render_junit(report)


def test_failover_events_skip_an_earlier_failover():
    t0 = datetime.datetime(2026, 11, 27, 8, 0, 0, tzinfo=datetime.timezone.utc)
    second = datetime.timedelta(seconds=1)
    events = [
        {"Message": "Multi-AZ instance failover started.", "EventCategories": ["failover"], "Date": t0},
        {"Message": "Multi-AZ instance failover completed.", "EventCategories": ["failover"], "Date": t0 + 3 * second},
        {"Message": "Multi-AZ instance failover started.", "EventCategories": ["failover"], "Date": t0 + 20 * second},
        {"Message": "Multi-AZ instance failover completed.", "EventCategories": ["failover"], "Date": t0 + 24 * second},
    ]
    picked = drill.failover_events(events, since=t0 + 18 * second)
    assert picked["started"]["Date"] == t0 + 20 * second
    assert picked["completed"]["Date"] == t0 + 24 * second
    assert len(picked["events"]) == 2


# ------------------------------------------------------------------------------------------- options, one place

BASE = {"db_instance_identifier": "orders-prod", "db_cluster_identifier": None, "target_db_instance_identifier": None,
        "abort_if_alarms": [], "probe": None, "probe_mode": "write", "probe_interval": 0.25, "probe_timeout": 2,
        "probe_settle_seconds": 5.0, "probe_table": "dbre_rds_failover_probe", "max_downtime_seconds": None,
        "max_lost_writes": 0, "wait_timeout": 1800, "poll_interval": 5.0, "report_name": None,
        "login_user": "drill", "login_password": "x", "iam_auth": False, "ssl_mode": "prefer", "ca_cert": None,
        "connect_timeout": 5}


@pytest.mark.parametrize("overrides, credentials, fragments", [
    ({}, True, []),
    ({"db_instance_identifier": "  "}, True, ["db_instance_identifier must not be empty or blank"]),
    ({"db_instance_identifier": "1abc"}, True, ["'1abc' is not a valid RDS identifier"]),
    ({"db_instance_identifier": "a" * 64}, True, ["64 characters long"]),
    ({"db_instance_identifier": None, "db_cluster_identifier": "bad--name"}, True, ["not a valid RDS identifier"]),
    ({"db_instance_identifier": None, "db_cluster_identifier": "c1", "target_db_instance_identifier": "x-"}, True,
     ["target_db_instance_identifier 'x-' is not a valid RDS identifier"]),
    ({"abort_if_alarms": ["ok", " "]}, True, ["blank alarm name"]),
    ({"report_name": "../etc/passwd"}, True, ["plain file name stem"]),
    ({"report_name": " "}, True, ["report_name must not be blank"]),
    ({"probe_interval": -1}, True, ["probe_interval must be greater than 0"]),
    ({"probe_interval": 120}, True, ["probe_interval must be at most 60"]),
    ({"probe_timeout": 0}, True, ["probe_timeout must be between 1 and 60"]),
    ({"poll_interval": 0}, True, ["poll_interval must be greater than 0"]),
    ({"poll_interval": 1000}, True, ["poll_interval must be at most 300"]),
    ({"wait_timeout": -5}, True, ["wait_timeout must be at least 1"]),
    ({"wait_timeout": 100000}, True, ["wait_timeout must be at most 86400"]),
    ({"wait_timeout": 4, "poll_interval": 1}, True, ["probe_settle_seconds (5) must be below wait_timeout (4)"]),
    ({"wait_timeout": 10, "probe_settle_seconds": 1, "poll_interval": 10}, True,
     ["poll_interval (10) must be below wait_timeout (10)"]),
    ({"probe_table": "Orders"}, True, ["probe_table must be a plain lower-case identifier"]),
    ({"probe_table": "Orders", "probe_mode": "read"}, True, []),
    ({"probe": True}, False, ["probe=true needs DB credentials"]),
    ({"connect_timeout": 0}, True, ["connect_timeout must be at least 1"]),
    ({"ssl_mode": "verify-full"}, True, ["needs ca_cert"]),
    ({"connect_timeout": 0}, False, []),
], ids=lambda v: None if isinstance(v, (dict, list, bool)) else str(v))
def test_problems_checks_every_option_before_any_call(overrides, credentials, fragments):
    probing, found = drill.problems(dict(BASE, **overrides), credentials)
    assert len(found) == len(fragments), found
    for fragment, problem in zip(fragments, found):
        assert fragment in problem
    assert probing is (credentials and overrides.get("probe") is not False)


def test_an_aurora_member_is_refused_with_the_cluster_to_name():
    (problem,) = drill.instance_problems("w", instance(DBInstanceIdentifier="w", DBClusterIdentifier="c1"))
    assert "member of the Aurora cluster 'c1'" in problem and "db_cluster_identifier=c1" in problem


# ------------------------------------------------------------------------------------ a failover that went through

T0 = datetime.datetime(2026, 11, 27, 8, 0, 0, tzinfo=datetime.timezone.utc)
STARTED = {"Message": "Multi-AZ instance failover started.", "Date": T0}


@pytest.mark.parametrize("kind, described, events, evidence", [
    (drill.INSTANCE, instance(), {"started": STARTED}, "RDS event: Multi-AZ instance failover started."),
    (drill.INSTANCE, instance(DBInstanceStatus="rebooting"), None, "status rebooting"),
    (drill.INSTANCE, instance(AvailabilityZone="us-east-1b"), None, "writer moved to us-east-1b"),
    (drill.INSTANCE, instance(), {"started": None}, None),
    (drill.INSTANCE, None, None, None),
    (drill.CLUSTER, cluster(Status="failing-over"), None, "status failing-over"),
    (drill.CLUSTER, cluster(members=(("w", False, 1), ("r1", True, 1), ("r2", False, 0))), None,
     "writer moved to r1"),
    (drill.CLUSTER, cluster(), None, None),
], ids=["event", "rebooting", "az-moved", "nothing", "missing", "failing-over", "writer-moved", "cluster-nothing"])
def test_failover_evidence(kind, described, events, evidence):
    plan = (drill.plan_failover(drill.INSTANCE, "db1", instance()) if kind == drill.INSTANCE
            else drill.plan_failover(drill.CLUSTER, "c1", cluster(), members()))
    found = drill.failover_evidence(plan, described, members() if kind == drill.CLUSTER else {}, events)
    if evidence is None:
        assert found is None
    else:
        assert found.startswith(evidence)


# ------------------------------------------------------------------------------------------------ the probe table

MARK = 'dbre.rds probe table {"drill_id": "%s", "host": "h", "pid": 9, "expires_at": "2026-11-27T09:00:00.000Z"}'
APP = {"schema": "public", "table": "orders", "comment": "the shop's orders"}
DEAD = {"schema": "public", "table": "dbre_rds_failover_probe", "comment": MARK % "dead"}
LIVE = {"schema": "public", "table": "dbre_rds_failover_probe", "comment": MARK % "live"}
OTHER_DEAD = {"schema": "drills", "table": "old_probe", "comment": MARK % "old"}


@pytest.mark.parametrize("table, existing, marked, alive, fragments, leftovers", [
    ("dbre_rds_failover_probe", None, [], {}, [], []),
    ("orders", APP, [], {}, ["names an existing table (public.orders) that this module did not create"], []),
    ("dbre_rds_failover_probe", dict(APP, table="dbre_rds_failover_probe", comment=None), [], {},
     ["carries no dbre.rds probe marker"], []),
    ("dbre_rds_failover_probe", DEAD, [DEAD], {("public", "dbre_rds_failover_probe"): False}, [],
     ["public.dbre_rds_failover_probe"]),
    ("dbre_rds_failover_probe", LIVE, [LIVE], {("public", "dbre_rds_failover_probe"): True},
     ["belongs to drill live (pid 9 on h"], []),
    ("dbre_rds_failover_probe", None, [OTHER_DEAD, LIVE],
     {("drills", "old_probe"): False, ("public", "dbre_rds_failover_probe"): True}, [], ["drills.old_probe"]),
    ("orders", APP, [OTHER_DEAD], {("drills", "old_probe"): None}, ["did not create"], []),
], ids=["free", "application-table", "unmarked-same-name", "dead-leftover", "live-drill", "sweep-only-dead",
        "unknown-owner-not-expired"])
def test_probe_table_decision(table, existing, marked, alive, fragments, leftovers):
    now = T0 + datetime.timedelta(minutes=10)
    found, dropped = drill.probe_table_decision(table, existing, marked, alive, now)
    assert len(found) == len(fragments), found
    for fragment, problem in zip(fragments, found):
        assert fragment in problem
    assert [f"{item['schema']}.{item['table']}" for item in dropped] == leftovers
    assert all(item["reason"] for item in dropped)


def test_an_expired_marker_is_a_leftover_even_when_the_owner_is_unknown():
    later = T0 + datetime.timedelta(hours=2)
    found, dropped = drill.probe_table_decision("dbre_rds_failover_probe", LIVE, [LIVE], {}, later)
    assert found == [] and [item["table"] for item in dropped] == ["dbre_rds_failover_probe"]


# ----------------------------------------------------------------------------------------------- measuring, pure

def _sample(seq, sent, ok, error=None):
    return {"seq": seq, "sent": sent, "done": round(sent + 0.01, 4), "ok": ok, "error": error, "message": None}


OUTAGE = [_sample(1, 0.5, True), _sample(2, 1.5, True), _sample(3, 2.5, False, "connection"),
          _sample(4, 3.5, False, "read_only"), _sample(5, 4.5, True), _sample(6, 5.5, True)]
EVENTS = {"started": {"Message": "failover started", "Date": T0 + datetime.timedelta(seconds=2)},
          "completed": {"Message": "failover completed", "Date": T0 + datetime.timedelta(seconds=5)},
          "events": []}
MOVED = (instance(AvailabilityZone="us-east-1b", SecondaryAvailabilityZone="us-east-1a"), {})
REQUEST = {"response": {}, "attempts": 2, "throttled": 0, "lost_answers": 1, "confirmed_by": "status rebooting"}


@pytest.mark.parametrize("inputs, expected", [
    (dict(requested=2.0, available=6.0, final=MOVED, events=EVENTS, samples=OUTAGE,
          probing={"mode": "write", "interval": 1.0}, present_rows=[1, 2, 5, 6], table_removed=True,
          failover_request=REQUEST),
     {"requested_at": "2026-11-27T08:00:02.000Z", "api_available_at": "2026-11-27T08:00:06.000Z",
      "api_failover_seconds": 4.0, "event_failover_seconds": 3.0, "failover_happened": True,
      "az_after": "us-east-1b", "first_failed_probe_at": "2026-11-27T08:00:02.500Z",
      "last_failed_probe_at": "2026-11-27T08:00:03.500Z", "first_success_after_at": "2026-11-27T08:00:04.510Z",
      "observed_downtime_seconds": 2.01, "probes_sent": 6, "probes_failed": 2, "read_only_errors": 1,
      "acknowledged_writes": 4, "lost_writes": 0, "rows_found": 4, "probe_table_removed": True,
      "failover_request": {"attempts": 2, "throttled": 0, "lost_answers": 1, "confirmed_by": "status rebooting"}}),
    (dict(requested=2.0, available=6.0, final=MOVED, samples=OUTAGE, probing={"mode": "write", "interval": 1.0},
          present_rows=[1, 5]),
     {"lost_writes": 2, "lost_write_numbers": [2, 6], "failover_started_event_at": None,
      "event_failover_seconds": None}),
    (dict(requested=2.0, available=6.0, final=MOVED, samples=OUTAGE, probing={"mode": "write", "interval": 1.0},
          present_rows=None, table_removed=False),
     {"lost_writes": None, "rows_found": None, "probe_table_removed": False}),
    (dict(requested=2.0, final=(instance(), {}), samples=OUTAGE, probing={"mode": "read", "interval": 1.0}),
     {"failover_happened": False, "api_failover_seconds": None, "acknowledged_writes": None,
      "observed_downtime_seconds": 2.01, "probe_mode": "read"}),
    (dict(requested=None, final=(instance(), {}), samples=OUTAGE, probing={"mode": "write", "interval": 1.0}),
     {"requested_at": None, "failover_happened": False, "observed_downtime_seconds": None, "probes_sent": 6,
      "failover_request": None}),
    (dict(requested=2.0, available=6.0, final=MOVED),
     {"probe_mode": None, "probes_sent": None, "observed_downtime_seconds": None, "failover_happened": True,
      "probe_table_removed": None, "leftover_probe_tables_removed": []}),
    (dict(leftovers_removed=["public.dbre_rds_failover_probe"]),
     {"leftover_probe_tables_removed": ["public.dbre_rds_failover_probe"], "duration_seconds": 9.5}),
], ids=["full-write-drill", "lost-writes", "table-unreadable", "read-probes-no-move", "never-requested",
        "no-probing", "leftovers"])
def test_measure(inputs, expected):
    plan = drill.plan_failover(drill.INSTANCE, "db1", instance())
    measured = drill.measure(plan, started_at=T0, duration=9.5, **inputs)
    for key, value in expected.items():
        assert measured[key] == value, key
    assert "response" not in (measured["failover_request"] or {})


def test_timeline_puts_everything_on_one_axis():
    events = dict(EVENTS, events=[EVENTS["started"], EVENTS["completed"]])
    entries = drill.timeline(started_at=T0, log=[{"at": "x", "elapsed_seconds": 2.0, "event": "failover requested"}],
                             transitions=[{"at": "y", "elapsed_seconds": 4.0, "state": "rebooting (us-east-1a)"}],
                             events=events, samples=OUTAGE, requested=2.0)
    assert [e["event"].split(" #")[0] for e in entries] == [
        "failover requested", "RDS event: failover started", "first failed probe", "last failed probe",
        "status: rebooting (us-east-1a)", "first successful probe after the outage", "RDS event: failover completed"]
    assert [e["elapsed_seconds"] for e in entries] == sorted(e["elapsed_seconds"] for e in entries)
