# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rds_monitoring, rds_event_subscription and rds_pg_stats_info against the lab, as a user would run them.

Two instances (a db.t4g.micro on the default parameter group, a db.r6g.xlarge on a group that sets max_connections)
are created once for the module; every test reads what AWS (the lab) holds afterwards, not what the modules said.
The role runs here without a login (thresholds from the parameter groups) and owns the role's idempotence; the
molecule scenario extensions/molecule/monitoring runs it with a login and pg_stat_statements.
"""

import json
import os
import pathlib
import re
import subprocess
import sys

import psycopg2
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
ANSIBLE_BIN = pathlib.Path(sys.executable).parent
GIB = 1024 ** 3
PASSWORD = "Monitoring-Lab-1"
MICRO, BIG = "it-mon-micro", "it-mon-big"
BIG_GROUP, BIG_MAX_CONNECTIONS = "it-mon-big-pg15", 2000
TOPIC = "it-monitoring"


def _env(lab):
    env = dict(os.environ)
    env.update(lab.env)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build"),
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_STDOUT_CALLBACK="default",
        ANSIBLE_CALLBACK_RESULT_FORMAT="json",
        ANSIBLE_DEPRECATION_WARNINGS="0",
    )
    return env


def run_playbook(lab, tmp_path, text, *extra):
    playbook = tmp_path / "play.yml"
    playbook.write_text(text)
    command = [str(ANSIBLE_BIN / "ansible-playbook"), str(playbook), "-i", "localhost,", "-c", "local", *extra]
    result = subprocess.run(command, env=_env(lab), cwd=ROOT, capture_output=True, text=True, timeout=900,
                            check=False)
    recap = re.search(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", result.stdout)
    return result, (dict(zip(("ok", "changed", "unreachable", "failed"), map(int, recap.groups()))) if recap else None)


def run_module(lab, module, args, check=False, warnings=None):
    """``ansible localhost -m dbre.rds.<module>``; returns (returncode, result dict). ``warnings``, a list, receives
    the warnings ansible printed (they go to stderr, not into the result)."""
    command = [str(ANSIBLE_BIN / "ansible"), "localhost", "-c", "local", "-m", f"dbre.rds.{module}",
               "-a", json.dumps(args)]
    if check:
        command.append("--check")
    result = subprocess.run(command, env=_env(lab), cwd=ROOT, capture_output=True, text=True, timeout=300,
                            check=False)
    if warnings is not None:
        warnings.extend(" ".join(w.split()) for w in re.split(r"\[WARNING\]:", result.stderr)[1:])
    body = result.stdout[result.stdout.index("{"):] if "{" in result.stdout else "{}"
    try:
        return result.returncode, json.loads(body)
    except ValueError:
        return result.returncode, {"raw": result.stdout + result.stderr}


@pytest.fixture(scope="module")
def instances(lab):
    """The two instances, created once for this file; the lab is reset before and after."""
    lab.control.reset()
    rds = lab.client("rds")
    rds.create_db_parameter_group(DBParameterGroupName=BIG_GROUP, DBParameterGroupFamily="postgres15",
                                  Description="max_connections set explicitly")
    rds.modify_db_parameter_group(DBParameterGroupName=BIG_GROUP, Parameters=[
        {"ParameterName": "max_connections", "ParameterValue": str(BIG_MAX_CONNECTIONS),
         "ApplyMethod": "pending-reboot"}])
    common = dict(Engine="postgres", EngineVersion="15.5", MasterUsername="dbadmin", MasterUserPassword=PASSWORD)
    rds.create_db_instance(DBInstanceIdentifier=MICRO, DBInstanceClass="db.t4g.micro", AllocatedStorage=20,
                           StorageType="gp2", **common)
    rds.create_db_instance(DBInstanceIdentifier=BIG, DBInstanceClass="db.r6g.xlarge", AllocatedStorage=500,
                           StorageType="gp3", DBParameterGroupName=BIG_GROUP, **common)
    waiter = rds.get_waiter("db_instance_available")
    for identifier in (MICRO, BIG):
        waiter.wait(DBInstanceIdentifier=identifier, WaiterConfig={"Delay": 1, "MaxAttempts": 300})
    described = {i["DBInstanceIdentifier"]: i for i in rds.describe_db_instances()["DBInstances"]}
    yield described
    lab.control.reset()


ROLE_PLAY = f"""---
- name: Monitor two instances
  hosts: localhost
  gather_facts: false
  roles:
    - role: dbre.rds.rds_monitoring
      vars:
        rds_monitoring_instances: [{MICRO}, {BIG}]
        rds_monitoring_topic_name: {TOPIC}
        rds_monitoring_topic_subscriptions:
          - protocol: email
            endpoint: dba-oncall@example.com
        rds_monitoring_alarms:
          free_storage_space:
            share: 0.15
          read_latency:
            enabled: false
"""


def test_role_fits_alarms_to_each_instance_and_is_idempotent(lab, instances, tmp_path):
    first, recap = run_playbook(lab, tmp_path, ROLE_PLAY)
    assert first.returncode == 0, first.stdout[-8000:] + first.stderr[-3000:]
    assert recap["changed"] > 0

    cloudwatch, sns, rds = lab.client("cloudwatch"), lab.client("sns"), lab.client("rds")
    topic_arn = next(t["TopicArn"] for t in sns.list_topics()["Topics"] if t["TopicArn"].endswith(f":{TOPIC}"))
    alarms = {a["AlarmName"]: a for a in cloudwatch.describe_alarms(AlarmNamePrefix="rds-it-mon-")["MetricAlarms"]}
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subscriptions] == [("email", "dba-oncall@example.com")]

    # db.t4g.micro on the default group: RDS's formula LEAST({DBInstanceClassMemory/9531392},5000) with the
    # class's 1 GiB less the 10 % RDS keeps (the collection's estimate of DBInstanceClassMemory).
    micro_max_connections = min((GIB - int(GIB * 0.10)) // 9531392, 5000)
    expected = {
        MICRO: dict(connections=int(0.8 * micro_max_connections), storage=0.15 * 20 * GIB, memory=0.25 * GIB),
        BIG: dict(connections=int(0.8 * BIG_MAX_CONNECTIONS), storage=0.15 * 500 * GIB, memory=0.25 * 32 * GIB),
    }
    for identifier, want in expected.items():
        connections = alarms[f"rds-{identifier}-database-connections"]
        assert connections["MetricName"] == "DatabaseConnections"
        assert connections["Threshold"] == want["connections"]
        assert connections["ComparisonOperator"] == "GreaterThanThreshold"
        assert connections["Dimensions"] == [{"Name": "DBInstanceIdentifier", "Value": identifier}]
        assert alarms[f"rds-{identifier}-free-storage-space"]["Threshold"] == want["storage"]
        assert alarms[f"rds-{identifier}-freeable-memory"]["Threshold"] == want["memory"]
        assert alarms[f"rds-{identifier}-cpu-utilization"]["Threshold"] == 80.0
        for name, alarm in alarms.items():
            if name.startswith(f"rds-{identifier}-"):
                assert alarm["AlarmActions"] == [topic_arn], name
                assert alarm["OKActions"] == [topic_arn], name
    assert expected[MICRO]["connections"] == 80 and expected[BIG]["connections"] == 1600
    # Conditional alarms follow the instance: burstable class and gp2 for the micro, neither for the r6g.
    assert f"rds-{MICRO}-cpu-credit-balance" in alarms and f"rds-{MICRO}-burst-balance" in alarms
    assert f"rds-{BIG}-cpu-credit-balance" not in alarms and f"rds-{BIG}-burst-balance" not in alarms
    assert not any(name.endswith("-replica-lag") for name in alarms)
    # A turned-off alarm is not there (moved here from the molecule scenario's verify).
    assert not any(name.endswith("-read-latency") for name in alarms)
    assert f"rds-{MICRO}-write-latency" in alarms

    (subscription,) = rds.describe_event_subscriptions(SubscriptionName=f"{TOPIC}-events")["EventSubscriptionsList"]
    assert subscription["SnsTopicArn"] == topic_arn
    assert subscription["SourceType"] == "db-instance"
    assert sorted(subscription["SourceIdsList"]) == sorted([MICRO, BIG])
    assert sorted(subscription["EventCategoriesList"]) == [
        "failover", "failure", "low storage", "maintenance", "notification"]
    assert subscription["Enabled"] is True

    lab.control.clear_calls()
    second, recap = run_playbook(lab, tmp_path, ROLE_PLAY)
    assert second.returncode == 0, second.stdout[-8000:]
    assert recap["changed"] == 0, second.stdout[-8000:]
    mutating = [c["action"] for c in lab.control.calls() if re.match(r"(Put|Create|Modify|Delete|Set|Add|Remove)",
                                                                     c["action"] or "")]
    assert mutating == []


def test_event_subscription_change_categories_and_disable(lab, instances):
    """Needs ModifyEventSubscription, which moto 5.2.5 does not implement: the lab must add it (see the report)."""
    sns = lab.client("sns")
    topic_arn = sns.create_topic(Name="it-es-modify")["TopicArn"]
    base = dict(name="it-es-modify", sns_topic_arn=topic_arn, source_type="db-instance", source_ids=[MICRO])
    rc, created = run_module(lab, "rds_event_subscription", dict(base, event_categories=["failover"]))
    assert rc == 0 and created["changed"], created

    rds = lab.client("rds")

    def described():
        return rds.describe_event_subscriptions(SubscriptionName="it-es-modify")["EventSubscriptionsList"][0]

    for change, check in (
        (dict(event_categories=["failover", "low storage", "maintenance"]),
         lambda s: sorted(s["EventCategoriesList"]) == ["failover", "low storage", "maintenance"]),
        (dict(enabled=False), lambda s: s["Enabled"] is False),
    ):
        args = dict(base, **{"event_categories": ["failover", "low storage", "maintenance"], **change})
        lab.control.clear_calls()
        rc, planned = run_module(lab, "rds_event_subscription", args, check=True)
        assert rc == 0 and planned["changed"] and planned["actions"] == ["ModifyEventSubscription"], planned
        assert lab.control.calls(action="ModifyEventSubscription") == []
        assert not check(described())

        rc, applied = run_module(lab, "rds_event_subscription", args)
        assert rc == 0 and applied["changed"], applied
        assert check(described())

        lab.control.clear_calls()
        rc, again = run_module(lab, "rds_event_subscription", args)
        rc_check, again_check = run_module(lab, "rds_event_subscription", args, check=True)
        assert rc == 0 and not again["changed"], again
        assert rc_check == 0 and not again_check["changed"], again_check
        assert lab.control.calls(action="ModifyEventSubscription") == []

    rc, deleted = run_module(lab, "rds_event_subscription", dict(name="it-es-modify", state="absent"))
    assert rc == 0 and deleted["changed"]


def test_pg_stats_info_finds_the_slow_statement(lab, instances, tmp_path):
    endpoint = instances[MICRO]["Endpoint"]
    conn = psycopg2.connect(host=endpoint["Address"], port=endpoint["Port"], user="dbadmin", password=PASSWORD,
                            dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        # The instance is new, so pg_stat_statements holds only what this file ran on it.
        for _call in range(20):
            cursor.execute("SELECT pg_sleep(0.05) /* dbre-slow */")
        for value in range(200):
            cursor.execute("SELECT %s::int + 1 /* dbre-fast */", (value,))
        cursor.execute("SHOW max_connections")
        max_connections = int(cursor.fetchone()[0])

        rc, stats = run_module(lab, "rds_pg_stats_info", dict(
            db_instance_identifier=MICRO, login_user="dbadmin", login_password=PASSWORD, limit=10,
            report_dir=str(tmp_path / "report")))
        # No statement sent with the module's login carries the password (a bound parameter: this query is
        # recorded as $1). The lab's own set-up, as its admin role, is not the module's doing.
        cursor.execute("SELECT count(*) FILTER (WHERE strpos(query, %s) > 0), count(*) FROM pg_stat_statements "
                       "WHERE userid = (SELECT oid FROM pg_roles WHERE rolname = current_user)", (PASSWORD,))
        with_secret, sent = cursor.fetchone()
        assert with_secret == 0 and sent > 0
    conn.close()
    assert rc == 0, stats

    slowest = stats["top_statements"]["total_time"][0]
    assert "pg_sleep" in slowest["query"] and "dbre-slow" in slowest["query"]
    assert slowest["calls"] == 20
    assert slowest["total_exec_time_ms"] >= 20 * 50
    assert 50 <= slowest["mean_exec_time_ms"] < 1000
    assert slowest["queryid"] in [item["queryid"] for item in stats["top_statements"]["mean_time"]]
    (fast,) = [item for item in stats["top_statements"]["calls"] if "dbre-fast" in item["query"]]
    assert fast["calls"] == 200

    assert 0 < stats["cache_hit_ratio"] <= 1
    assert stats["connections"]["max_connections"] == max_connections
    assert 1 <= stats["connections"]["used"] < max_connections
    assert stats["connections"]["ratio"] == round(stats["connections"]["used"] / max_connections, 6)
    assert stats["oldest_xid"]["age"] > 0
    assert stats["pg_stat_statements"] == {"preloaded": True, "installed": True,
                                           "version": stats["pg_stat_statements"]["version"]}
    assert any(f["name"] == "dominant_statement" for f in stats["findings"])
    for path in stats["report_files"].values():
        assert pathlib.Path(path).stat().st_size > 0
    report = json.loads(pathlib.Path(stats["report_files"]["json"]).read_text())
    assert report["kind"] == "pg_stats" and report["target"] == MICRO
    assert "pg_sleep" in pathlib.Path(stats["report_files"]["md"]).read_text()
    # ``report`` is the report itself, the same one the files hold.
    assert stats["report"]["kind"] == "pg_stats" and stats["report"]["started_at"] == report["started_at"]
    assert stats["report"]["measurements"]["max_connections"] == max_connections
    assert PASSWORD not in json.dumps(stats)


RUNNING, RUNNING_GROUP, RUNNING_MAX_CONNECTIONS = "it-mon-running", "it-mon-running-pg15", 300


def _show_max_connections(endpoint):
    conn = psycopg2.connect(host=endpoint["Address"], port=endpoint["Port"], user="dbadmin", password=PASSWORD,
                            dbname="postgres")
    try:
        with conn.cursor() as cursor:
            cursor.execute("SHOW max_connections")
            return int(cursor.fetchone()[0])
    finally:
        conn.close()


def test_connections_alarm_follows_the_running_max_connections(lab, instances):
    """The issue's case: a group value pending a reboot is not what the database has; the alarm follows SHOW."""
    rds = lab.client("rds")
    rds.create_db_parameter_group(DBParameterGroupName=RUNNING_GROUP, DBParameterGroupFamily="postgres15",
                                  Description="max_connections 300, statements logged")
    rds.modify_db_parameter_group(DBParameterGroupName=RUNNING_GROUP, Parameters=[
        {"ParameterName": "max_connections", "ParameterValue": str(RUNNING_MAX_CONNECTIONS),
         "ApplyMethod": "pending-reboot"},
        # Every statement the module sends reaches the server log, which is checked for the password below.
        {"ParameterName": "log_statement", "ParameterValue": "all", "ApplyMethod": "immediate"}])
    rds.create_db_instance(DBInstanceIdentifier=RUNNING, DBInstanceClass="db.m6g.large", AllocatedStorage=20,
                           Engine="postgres", EngineVersion="15.5", MasterUsername="dbadmin",
                           MasterUserPassword=PASSWORD, DBParameterGroupName=RUNNING_GROUP)
    rds.get_waiter("db_instance_available").wait(DBInstanceIdentifier=RUNNING,
                                                 WaiterConfig={"Delay": 1, "MaxAttempts": 300})
    endpoint = rds.describe_db_instances(DBInstanceIdentifier=RUNNING)["DBInstances"][0]["Endpoint"]
    assert _show_max_connections(endpoint) == RUNNING_MAX_CONNECTIONS
    # The lab's own set-up (the master user's CREATE ROLE) is logged before this point; the module's SQL after it.
    log_start = len(lab.control.server_log(RUNNING))
    login = dict(login_user="dbadmin", login_password=PASSWORD)

    warnings = []

    def planned(**extra):
        del warnings[:]
        rc, result = run_module(lab, "rds_alarm_thresholds_info", dict(db_instance_identifiers=[RUNNING], **extra),
                                warnings=warnings)
        if rc != 0:
            return rc, result, None, None
        (facts,) = result["instances"]
        alarm = next(a for a in result["alarms"] if a["key"] == "database_connections")
        return rc, result, facts, alarm

    # In sync: the database and the group agree; with a login the number is read from the database.
    rc, result, facts, alarm = planned(**login)
    assert rc == 0, result
    assert facts["max_connections"] == RUNNING_MAX_CONNECTIONS
    assert facts["max_connections_source"] == "running-value"
    assert facts["parameter_apply_status"] == "in-sync" and facts["max_connections_pending"] is None
    assert alarm["threshold"] == 240.0
    rc, result, facts, alarm = planned()
    assert rc == 0, result
    assert (facts["max_connections"], facts["max_connections_source"]) == (300, "parameter-group")
    assert alarm["threshold"] == 240.0

    # The group now says 200, waiting for a reboot: the database still runs with 300.
    rds.modify_db_parameter_group(DBParameterGroupName=RUNNING_GROUP, Parameters=[
        {"ParameterName": "max_connections", "ParameterValue": "200", "ApplyMethod": "pending-reboot"}])
    (group,) = rds.describe_db_instances(DBInstanceIdentifier=RUNNING)["DBInstances"][0]["DBParameterGroups"]
    assert group["ParameterApplyStatus"] == "pending-reboot"
    assert _show_max_connections(endpoint) == RUNNING_MAX_CONNECTIONS
    rc, result, facts, alarm = planned(**login)
    assert rc == 0, result
    assert facts["max_connections"] == RUNNING_MAX_CONNECTIONS
    assert facts["max_connections_source"] == "running-value"
    assert facts["parameter_apply_status"] == "pending-reboot"
    assert facts["max_connections_pending"] == 200 and facts["max_connections_parameter_group"] == 200
    assert alarm["threshold"] == 240.0
    assert any("max_connections 200" in w and "pending-reboot" in w for w in warnings), warnings

    # Without a login the pending value is not used: no number, and the message says why and what to do.
    rc, result, facts, alarm = planned()
    assert rc != 0, result
    message = " ".join((result.get("msg") or result.get("raw") or "").split())
    assert "cannot derive the database_connections threshold" in message, result
    assert "pending-reboot" in message and "(200)" in message and "login_user" in message, result
    # An absolute threshold needs no max_connections; the pending value is still reported.
    rc, result, facts, alarm = planned(alarms={"database_connections": {"threshold": 150}})
    assert rc == 0, result
    assert facts["max_connections"] is None and facts["max_connections_source"] == "unknown"
    assert facts["max_connections_pending"] == 200 and alarm["threshold"] == 150.0

    # After the reboot the database runs with the group's value, and the alarm follows it.
    rds.reboot_db_instance(DBInstanceIdentifier=RUNNING)
    rds.get_waiter("db_instance_available").wait(DBInstanceIdentifier=RUNNING,
                                                 WaiterConfig={"Delay": 1, "MaxAttempts": 300})
    assert _show_max_connections(endpoint) == 200
    rc, result, facts, alarm = planned(**login)
    assert rc == 0, result
    assert (facts["max_connections"], facts["max_connections_pending"], alarm["threshold"]) == (200, None, 160.0)

    # No statement the module sent carries the password (the group logs every statement).
    server_log = lab.control.server_log(RUNNING)[log_start:]
    assert "current_setting('max_connections')" in server_log
    assert PASSWORD not in server_log
    rds.delete_db_instance(DBInstanceIdentifier=RUNNING, SkipFinalSnapshot=True)
