# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Throttling on each mutating call the drills send is survived with exactly one side effect.

Every call that must happen once (FailoverDBCluster; RestoreDBClusterFromSnapshot, CreateDBInstance,
DeleteDBInstance, DeleteDBCluster of an Aurora restore drill; DeleteDBInstance of an instance restore drill's
cleanup) is answered with Throttling a few times. The lab's call log shows each throttled call, then exactly one call
that went through; the lab holds exactly one failover, and nothing of the restore drills after their cleanup.
(The throttled RebootDBInstance and RestoreDBInstanceFromDBSnapshot are covered in test_failover_faults.py and
test_restore_faults.py.)
"""

import pytest

from tests.integration.failover_support import PASSWORD as CLUSTER_PASSWORD
from tests.integration.failover_support import cluster_available
from tests.integration.failover_support import create_cluster
from tests.integration.failover_support import drill
from tests.integration.failover_support import instance_available
from tests.integration.failover_support import run_tasks
from tests.integration.failover_support import sql
from tests.integration.failover_support import wait_for
from tests.integration.failover_support import writer_of
from tests.integration.test_rds_restore_drill import add_rows
from tests.integration.test_rds_restore_drill import drill_args
from tests.integration.test_rds_restore_drill import gone
from tests.integration.test_rds_restore_drill import make_source
from tests.integration.test_rds_restore_drill import run_drill
from tests.integration.test_rds_restore_drill import wait_snapshot

AURORA, AURORA_MEMBERS, AURORA_SNAPSHOT = "thr-aurora", ("thr-aurora-a", "thr-aurora-b"), "thr-aurora-snap"
ORDERS, ORDERS_SNAPSHOT = "thr-orders", "thr-orders-snap"
THROTTLED = 2  # call_once backs off about 1 then 2 s: small counts keep the module fast


@pytest.fixture(scope="module")
def sources(lab):
    """One Aurora cluster with a reader and a cluster snapshot of 42 rows; one instance with a snapshot of 100."""
    lab.control.reset()
    rds = lab.client("rds")
    create_cluster(rds, AURORA, AURORA_MEMBERS)
    for member in AURORA_MEMBERS:
        wait_for(lambda: instance_available(rds, member), what=f"{member} available")
    cluster = wait_for(lambda: cluster_available(rds, AURORA), what=f"{AURORA} available")
    endpoint = {"Address": cluster["Endpoint"], "Port": cluster["Port"]}
    sql(endpoint, "CREATE TABLE orders (id serial PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now())",
        fetch=False)
    sql(endpoint, "INSERT INTO orders (created_at) SELECT now() FROM generate_series(1, 42)", fetch=False)
    rds.create_db_cluster_snapshot(DBClusterIdentifier=AURORA, DBClusterSnapshotIdentifier=AURORA_SNAPSHOT)
    wait_snapshot(rds, AURORA_SNAPSHOT, cluster=True)

    _rds, _described, conn = make_source(lab, ORDERS, 0)
    add_rows(conn, 100)
    conn.close()
    rds.create_db_snapshot(DBInstanceIdentifier=ORDERS, DBSnapshotIdentifier=ORDERS_SNAPSHOT)
    wait_snapshot(rds, ORDERS_SNAPSHOT)
    yield rds
    lab.control.reset()


@pytest.fixture
def quiet_lab(lab, sources):
    """No faults, default timing, an empty call log."""
    lab.control.clear_faults()
    lab.control.reset_timing()
    lab.control.wait_jobs()
    lab.control.clear_calls()
    yield lab
    lab.control.clear_faults()
    lab.control.reset_timing()


def throttle(lab, *actions):
    for action in actions:
        lab.control.set_fault("throttle", actions=[action], count=THROTTLED)


def assert_throttled_then_once(lab, action, key, identifier):
    """The call log holds THROTTLED throttled calls for ``identifier``, then exactly one that went through."""
    calls = [c for c in lab.control.calls(action=action) if c["params"].get(key) == identifier]
    assert [(c["fault"], c["error"]) for c in calls] == [("throttle", "Throttling")] * THROTTLED + [(None, None)], \
        (action, calls)
    assert len([c for c in calls if c["error"] is None]) == 1, action


def failovers_of(lab, identifier):
    return [f for f in lab.control.failover_log() if f["identifier"] == identifier]


def test_a_throttled_cluster_failover_fails_over_once(quiet_lab, sources, tmp_path):
    lab = quiet_lab
    lab.control.set_timing(failover=1.0)
    before, first_writer = len(failovers_of(lab, AURORA)), writer_of(sources, AURORA)
    throttle(lab, "FailoverDBCluster")

    (result,) = run_tasks(lab, tmp_path, [drill(cluster=AURORA, wait_timeout=120)])

    assert result.get("failed") is not True, result.get("msg")
    assert result["passed"] is True
    assert result["measurements"]["failover_request"] == {"attempts": THROTTLED + 1, "throttled": THROTTLED,
                                                          "lost_answers": 0, "confirmed_by": "answer"}
    assert_throttled_then_once(lab, "FailoverDBCluster", "DBClusterIdentifier", AURORA)
    assert len(failovers_of(lab, AURORA)) == before + 1, "exactly one failover"
    assert result["measurements"]["writer_before"] == first_writer
    assert writer_of(sources, AURORA) == result["measurements"]["writer_after"] != first_writer


def test_an_aurora_restore_drill_throttled_on_every_mutating_call_creates_and_deletes_once(quiet_lab, sources):
    lab = quiet_lab
    target, writer = "thr-aurora-drill", "thr-aurora-drill-writer"
    throttle(lab, "RestoreDBClusterFromSnapshot", "CreateDBInstance", "DeleteDBInstance", "DeleteDBCluster")

    args = drill_args(AURORA, login_password=CLUSTER_PASSWORD, wait_timeout=180, restore_from="snapshot",
                      snapshot_identifier=AURORA_SNAPSHOT, target_identifier=target,
                      checks=[{"name": "rows", "sql": "SELECT count(*) FROM orders", "expect": {"equals": 42}}])
    args["db_cluster_identifier"] = args.pop("db_instance_identifier")
    result = run_drill(lab, args, timeout=400)

    assert result.get("failed") is not True, result.get("msg")
    assert result["passed"] is True and result["checks"][0]["observed"] == 42
    assert result["target"] == {"cluster": target, "instance": writer}
    throttled_once = {"attempts": THROTTLED + 1, "throttled": THROTTLED, "lost_answers": 0, "confirmed_by": "answer"}
    assert result["restore_request"]["outcome"] == throttled_once
    assert result["instance_request"]["outcome"] == throttled_once
    assert_throttled_then_once(lab, "RestoreDBClusterFromSnapshot", "DBClusterIdentifier", target)
    assert_throttled_then_once(lab, "CreateDBInstance", "DBInstanceIdentifier", writer)
    assert_throttled_then_once(lab, "DeleteDBInstance", "DBInstanceIdentifier", writer)
    assert_throttled_then_once(lab, "DeleteDBCluster", "DBClusterIdentifier", target)
    assert result["cleanup"]["removed"] == [writer, target] and result["cleanup"]["left_behind"] == []
    assert gone(sources, writer) and gone(sources, target, kind="cluster")
    history = lab.control.status_history(target)
    assert [s["status"] for s in history.get(f"cluster:{target}", [])].count("creating") == 1
    assert sorted(c["DBClusterIdentifier"] for c in sources.describe_db_clusters()["DBClusters"]) == [AURORA]
    assert sorted(i["DBInstanceIdentifier"] for i in sources.describe_db_instances()["DBInstances"]) == \
        sorted([*AURORA_MEMBERS, ORDERS])


def test_a_throttled_delete_in_an_instance_drills_cleanup_deletes_once(quiet_lab, sources):
    lab = quiet_lab
    target = "thr-orders-drill"
    throttle(lab, "DeleteDBInstance")

    result = run_drill(lab, drill_args(
        ORDERS, restore_from="snapshot", snapshot_identifier=ORDERS_SNAPSHOT, target_identifier=target,
        checks=[{"name": "rows", "sql": "SELECT count(*) FROM orders", "expect": {"equals": 100}}]), timeout=300)

    assert result.get("failed") is not True, result.get("msg")
    assert result["passed"] is True and result["checks"][0]["observed"] == 100
    assert result["restore_request"]["outcome"]["attempts"] == 1
    restores = lab.control.calls(action="RestoreDBInstanceFromDBSnapshot")
    assert [(c["params"]["DBInstanceIdentifier"], c["error"]) for c in restores] == [(target, None)]
    assert_throttled_then_once(lab, "DeleteDBInstance", "DBInstanceIdentifier", target)
    assert result["cleanup"]["removed"] == [target] and result["cleanup"]["left_behind"] == []
    assert gone(sources, target)
    assert sorted(i["DBInstanceIdentifier"] for i in sources.describe_db_instances()["DBInstances"]) == \
        sorted([*AURORA_MEMBERS, ORDERS])
