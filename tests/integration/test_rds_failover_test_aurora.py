# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbre.rds.rds_failover_test on Aurora clusters, and every refusal, checked against the lab's call log."""

import pathlib
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from failover_support import create_cluster  # noqa: E402
from failover_support import create_instance  # noqa: E402
from failover_support import cluster_available  # noqa: E402
from failover_support import drill  # noqa: E402
from failover_support import failover_calls  # noqa: E402
from failover_support import instance_available  # noqa: E402
from failover_support import probe_table_exists  # noqa: E402
from failover_support import run_tasks  # noqa: E402
from failover_support import wait_for  # noqa: E402
from failover_support import writer_of  # noqa: E402

SINGLE, AURORA, LONELY = "fo-single", "fo-aurora", "fo-lonely"
AURORA_MEMBERS = ("fo-aurora-a", "fo-aurora-b", "fo-aurora-c")


@pytest.fixture(scope="module")
def fleet(lab):
    """A single-AZ instance, an Aurora cluster with three instances and one with a writer only."""
    lab.control.reset()
    rds = lab.client("rds")
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(create_instance, rds, SINGLE, False),
                   pool.submit(create_cluster, rds, AURORA, AURORA_MEMBERS),
                   pool.submit(create_cluster, rds, LONELY, ("fo-lonely-a",))]
        for future in futures:
            future.result()
    for identifier in (SINGLE, *AURORA_MEMBERS, "fo-lonely-a"):
        wait_for(lambda: instance_available(rds, identifier), what=f"{identifier} available")
    yield rds
    lab.control.reset()


def test_aurora_writer_moves_to_the_target_and_without_one_to_another_instance(lab, fleet, tmp_path):
    lab.control.set_timing(failover=1.0)
    wait_for(lambda: cluster_available(fleet, AURORA))
    first_writer = writer_of(fleet, AURORA)
    target = next(m for m in AURORA_MEMBERS if m != first_writer)
    lab.control.clear_calls()
    targeted, untargeted = run_tasks(lab, tmp_path, [
        drill(cluster=AURORA, target_db_instance_identifier=target, max_downtime_seconds=30),
        drill(cluster=AURORA),
    ])
    assert targeted.get("failed") is not True, targeted.get("msg")
    assert targeted["measurements"]["writer_before"] == first_writer
    assert targeted["measurements"]["writer_after"] == target and targeted["passed"] is True
    assert untargeted.get("failed") is not True, untargeted.get("msg")
    assert untargeted["measurements"]["writer_before"] == target
    assert untargeted["measurements"]["writer_after"] not in (target, None)
    assert writer_of(fleet, AURORA) == untargeted["measurements"]["writer_after"]
    # each drill reports its own RDS events, not those of the drill before it
    for result, writer in ((targeted, target), (untargeted, untargeted["measurements"]["writer_after"])):
        measured = result["measurements"]
        assert measured["requested_at"] <= measured["failover_started_event_at"] <= measured["failover_completed_event_at"]
        assert [event["message"] for event in result["events"]] == [
            f"Started cluster failover to DB instance: {writer}", f"Completed failover to DB instance: {writer}"]
    calls = failover_calls(lab)
    assert [c["params"].get("TargetDBInstanceIdentifier") for c in calls] == [target, None]
    assert all(c["action"] == "FailoverDBCluster" for c in calls)


def test_refusals_call_nothing(lab, fleet, tmp_path):
    wait_for(lambda: cluster_available(fleet, AURORA))
    cloudwatch = lab.client("cloudwatch")
    cloudwatch.put_metric_alarm(AlarmName="fo-cpu-high", MetricName="CPUUtilization", Namespace="AWS/RDS",
                                Statistic="Average", Period=60, EvaluationPeriods=1, Threshold=90,
                                ComparisonOperator="GreaterThanThreshold",
                                Dimensions=[{"Name": "DBClusterIdentifier", "Value": AURORA}])
    cloudwatch.set_alarm_state(AlarmName="fo-cpu-high", StateValue="ALARM", StateReason="CPU at 97 %")
    lab.control.clear_calls()
    stick = {"name": "Keep the cluster modifying", "ansible.builtin.uri": {
        "url": "{{ lab_url }}/_lab/stuck", "method": "POST", "body_format": "json",
        "body": {"identifier": AURORA, "kind": "cluster", "status": "{{ item }}"}}}
    results = run_tasks(lab, tmp_path, [
        dict(drill(cluster=AURORA), check_mode=True),
        drill(SINGLE, probe=False),
        drill(cluster=AURORA, probe=False, abort_if_alarms=["fo-cpu-high"]),
        drill(cluster=AURORA, probe=False, abort_if_alarms=["fo-no-such-alarm"]),
        drill(cluster=LONELY, probe=False),
        dict(stick, loop=["modifying"]),
        drill(cluster=AURORA, probe=False),
        dict(stick, name="Release the cluster", loop=[None]),
    ])
    check, single, alarm, missing_alarm, lonely, modifying = results
    assert check.get("failed") is not True, check.get("msg")
    assert check["changed"] is True and check["passed"] is None
    assert check["plan"]["action"] == "failover_db_cluster"
    assert check["plan"]["api_params"] == {"DBClusterIdentifier": AURORA}
    assert check["plan"]["probing"]["mode"] == "write" and "measurements" not in check
    expected = {
        "single-AZ": (single, "single-AZ instance (MultiAZ is false), so a forced failover is impossible there"),
        "alarm": (alarm, "CloudWatch alarm fo-cpu-high is in ALARM (CPU at 97 %)"),
        "missing alarm": (missing_alarm, "no CloudWatch alarm has that name"),
        "no reader": (lonely, f"Cannot fail over DB cluster {LONELY}: it has no reader instance to fail over to"),
        "not available": (modifying, "its status is modifying, not available"),
    }
    for case, (result, words) in expected.items():
        assert result["failed"] is True, case
        assert result["msg"].startswith("The failover drill was refused before any change"), case
        assert words in result["msg"], (case, result["msg"])
        assert result["changed"] is False, case
    assert failover_calls(lab) == []
    cluster = fleet.describe_db_clusters(DBClusterIdentifier=AURORA)["DBClusters"][0]
    assert not probe_table_exists({"Address": cluster["Endpoint"], "Port": cluster["Port"]})
