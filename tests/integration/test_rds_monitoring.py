# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rds_monitoring, rds_event_subscription and rds_pg_stats_info against the lab, as a user would run them.

Two instances (a db.t4g.micro on the default parameter group, a db.r6g.xlarge on a group that sets max_connections)
are created once for the module; every test reads what AWS (the lab) holds afterwards, not what the modules said.
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


def run_module(lab, module, args, check=False):
    """``ansible localhost -m dbre.rds.<module>``; returns (returncode, result dict)."""
    command = [str(ANSIBLE_BIN / "ansible"), "localhost", "-c", "local", "-m", f"dbre.rds.{module}",
               "-a", json.dumps(args)]
    if check:
        command.append("--check")
    result = subprocess.run(command, env=_env(lab), cwd=ROOT, capture_output=True, text=True, timeout=300,
                            check=False)
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
        rds_monitoring_alarms:
          free_storage_space:
            share: 0.15
"""


def test_role_fits_alarms_to_each_instance_and_is_idempotent(lab, instances, tmp_path):
    first, recap = run_playbook(lab, tmp_path, ROLE_PLAY)
    assert first.returncode == 0, first.stdout[-8000:] + first.stderr[-3000:]
    assert recap["changed"] > 0

    cloudwatch, sns, rds = lab.client("cloudwatch"), lab.client("sns"), lab.client("rds")
    topic_arn = next(t["TopicArn"] for t in sns.list_topics()["Topics"] if t["TopicArn"].endswith(f":{TOPIC}"))
    alarms = {a["AlarmName"]: a for a in cloudwatch.describe_alarms(AlarmNamePrefix="rds-it-mon-")["MetricAlarms"]}

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
    for path in stats["report"].values():
        assert pathlib.Path(path).stat().st_size > 0
    report = json.loads(pathlib.Path(stats["report"]["json"]).read_text())
    assert report["kind"] == "pg_stats" and report["target"] == MICRO
    assert "pg_sleep" in pathlib.Path(stats["report"]["md"]).read_text()
