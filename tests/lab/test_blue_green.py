# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Blue/green deployments of a PostgreSQL 15 instance to 18: green is a real PostgreSQL 18 kept in sync with blue by
logical replication (refused without rds.logical_replication, as on RDS; failed by what blocks a major upgrade),
read-only until switchover, its ReplicaLag in CloudWatch; a switchover with writes running stops writes on blue, lets
green catch up (sequences too), swaps the names and endpoints and loses no acknowledged write; one that cannot finish
within SwitchoverTimeout is rolled back; deleting a deployment with DeleteTarget deletes green."""

import threading
import time
from datetime import datetime, timedelta, timezone

import psycopg2
import pytest
from botocore.exceptions import ClientError

from tests.lab.clients import connect, connect_instance, create_postgres, describe_instance, query, wait_instance

pytestmark = pytest.mark.lab
GROUP = "logical15"
GROUP_18 = "logical18"
TARGET = "18.6"


def _wait_for(predicate, timeout: float = 30, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def _deployment(rds, identifier: str) -> dict:
    return rds.describe_blue_green_deployments(BlueGreenDeploymentIdentifier=identifier)["BlueGreenDeployments"][0]


def _wait_status(rds, identifier: str, status: str, timeout: float = 180) -> dict:
    seen = []

    def reached():
        deployment = _deployment(rds, identifier)
        if not seen or seen[-1] != deployment["Status"]:
            seen.append(deployment["Status"])
        return deployment if deployment["Status"] == status else None

    deployment = _wait_for(reached, timeout=timeout, interval=0.1)
    assert deployment, f"deployment {identifier} not {status} after {timeout}s; statuses seen: {seen}"
    deployment["_seen"] = seen
    return deployment


def _lag_points(lab, identifier: str, statistic: str) -> list[float]:
    points = lab.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/RDS", MetricName="ReplicaLag",
        Dimensions=[{"Name": "DBInstanceIdentifier", "Value": identifier}],
        StartTime=datetime.now(timezone.utc) - timedelta(minutes=5),
        EndTime=datetime.now(timezone.utc) + timedelta(minutes=1), Period=60, Statistics=[statistic])["Datapoints"]
    return [point[statistic] for point in points]


def _events(rds, source_type: str, identifier: str) -> list[str]:
    return [event["Message"] for event in rds.describe_events(
        SourceType=source_type, SourceIdentifier=identifier,
        StartTime=datetime.now(timezone.utc) - timedelta(minutes=10))["Events"]]


class Writer:
    """A client inserting into orders through one endpoint (host, port) every few ms, reconnecting after errors, as
    an application does: the ids it got back are the acknowledged writes."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.acknowledged: list[int] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)

    def _run(self):
        conn = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = connect(self.host, self.port, timeout=2)
                self.acknowledged.append(query(conn, "INSERT INTO orders (note) VALUES ('probe') RETURNING id")[0][0])
            except psycopg2.Error as exc:
                self.errors.append(f"{type(exc).__name__}: {str(exc).strip()[:80]}")
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)
            time.sleep(0.005)
        if conn is not None:
            conn.close()


@pytest.fixture(scope="module")
def blue_green(lab):
    """Blue "shop" (PostgreSQL 15, orders with 50 rows) on the default parameter group; the groups "logical15" (which
    the first test moves it to) and "logical18" with rds.logical_replication=1. The tests run in order on the same
    instances."""
    lab.control.reset()
    rds = lab.client()
    if lab.fidelity:
        lab.control.set_timing(metrics=0.5)
    rds.create_db_parameter_group(DBParameterGroupName=GROUP, DBParameterGroupFamily="postgres15",
                                  Description="logical replication")
    rds.create_db_parameter_group(DBParameterGroupName=GROUP_18, DBParameterGroupFamily="postgres18",
                                  Description="logical replication")
    for group in (GROUP, GROUP_18):
        rds.modify_db_parameter_group(DBParameterGroupName=group, Parameters=[
            {"ParameterName": "rds.logical_replication", "ParameterValue": "1", "ApplyMethod": "pending-reboot"}])
    blue = create_postgres(rds, "shop", BackupRetentionPeriod=1)
    if lab.fidelity:  # plain moto has no database to seed: its tests then fail on the API's answers
        conn = connect_instance(blue)
        query(conn, "CREATE TABLE orders (id serial PRIMARY KEY, note text)")
        query(conn, "INSERT INTO orders (note) SELECT 'seed' FROM generate_series(1, 50)")
        conn.close()
    yield {"lab": lab, "rds": rds, "shop": blue}
    lab.control.reset()


def _refused(rds, blue: dict, version: str = TARGET, **targets) -> dict:
    with pytest.raises(ClientError) as error:
        rds.create_blue_green_deployment(BlueGreenDeploymentName="shop-upgrade", Source=blue["DBInstanceArn"],
                                         TargetEngineVersion=version, **targets)
    return error.value.response["Error"]


def test_refused_without_logical_replication(blue_green):
    rds, blue = blue_green["rds"], blue_green["shop"]
    error = _refused(rds, blue)
    assert error["Code"] == "SourceDatabaseNotSupportedFault"
    assert "rds.logical_replication" in error["Message"] and "default.postgres15" in error["Message"]
    # In the group but not rebooted into: still refused.
    rds.modify_db_instance(DBInstanceIdentifier="shop", DBParameterGroupName=GROUP, ApplyImmediately=True)
    wait_instance(rds, "shop", "available")
    error = _refused(rds, blue)
    assert error["Code"] == "InvalidDBInstanceState" and "reboot" in error["Message"]
    assert rds.describe_blue_green_deployments()["BlueGreenDeployments"] == []
    assert [i["DBInstanceIdentifier"] for i in rds.describe_db_instances()["DBInstances"]] == ["shop"]
    rds.reboot_db_instance(DBInstanceIdentifier="shop")
    wait_instance(rds, "shop", "available")
    # A target parameter group of the old family, a downgrade: refused too, before anything is made.
    error = _refused(rds, blue, TargetDBParameterGroupName=GROUP)
    assert error["Code"] == "InvalidParameterCombination" and "postgres18" in error["Message"]
    assert _refused(rds, blue, version="15.4")["Code"] == "InvalidParameterCombination"
    assert [i["DBInstanceIdentifier"] for i in rds.describe_db_instances()["DBInstances"]] == ["shop"]


def test_upgrade_blocker_fails_the_deployment(blue_green):
    rds, blue = blue_green["rds"], blue_green["shop"]
    conn = connect_instance(blue)
    query(conn, "CREATE TABLE lookups (fn regprocedure)")  # pg_upgrade refuses reg* types with OIDs it cannot keep
    try:
        bg_id = rds.create_blue_green_deployment(
            BlueGreenDeploymentName="shop-upgrade", Source=blue["DBInstanceArn"], TargetEngineVersion=TARGET,
            TargetDBParameterGroupName=GROUP_18)["BlueGreenDeployment"]["BlueGreenDeploymentIdentifier"]
        failed = _wait_status(rds, bg_id, "INVALID_CONFIGURATION")
        assert {task["Name"]: task["Status"] for task in failed["Tasks"]}["DB_ENGINE_VERSION_UPGRADE"] == "FAILED"
        assert "reg" in failed["StatusDetails"]
        assert any("Creation of blue/green deployment failed due to" in m
                   for m in _events(rds, "blue-green-deployment", bg_id))
        with pytest.raises(ClientError) as refused:
            rds.switchover_blue_green_deployment(BlueGreenDeploymentIdentifier=bg_id)
        assert refused.value.response["Error"]["Code"] == "InvalidBlueGreenDeploymentStateFault"
        green_id = failed["Target"].rsplit(":", 1)[1]
        rds.delete_blue_green_deployment(BlueGreenDeploymentIdentifier=bg_id, DeleteTarget=True)
        assert [i["DBInstanceIdentifier"] for i in rds.describe_db_instances()["DBInstances"]] == ["shop"], green_id
    finally:
        query(conn, "DROP TABLE lookups")
        conn.close()


def test_switchover_with_writes_running_loses_nothing(blue_green):
    lab, rds, blue = blue_green["lab"], blue_green["rds"], blue_green["shop"]
    blue_port = blue["Endpoint"]["Port"]
    created = rds.create_blue_green_deployment(
        BlueGreenDeploymentName="shop-upgrade", Source=blue["DBInstanceArn"], TargetEngineVersion=TARGET,
        TargetDBParameterGroupName=GROUP_18, TargetDBInstanceClass="db.t3.small",
        Tags=[{"Key": "team", "Value": "dbre"}])["BlueGreenDeployment"]
    bg_id = created["BlueGreenDeploymentIdentifier"]
    assert created["Status"] == "PROVISIONING"
    green_id = created["Target"].rsplit(":", 1)[1]
    assert green_id.startswith("shop-green-") and len(green_id) == len("shop-green-") + 6
    available = _wait_status(rds, bg_id, "AVAILABLE")
    assert available["_seen"][0] == "PROVISIONING"
    assert all(task["Status"] == "COMPLETED" for task in available["Tasks"])
    assert available["TagList"] == [{"Key": "team", "Value": "dbre"}]
    filtered = rds.describe_blue_green_deployments(Filters=[{"Name": "blue-green-deployment-name",
                                                             "Values": ["shop-upgrade"]}])["BlueGreenDeployments"]
    assert [d["BlueGreenDeploymentIdentifier"] for d in filtered] == [bg_id]

    # Green: its own instance and endpoint, blue's data, read-only for clients, following blue's writes.
    green = describe_instance(rds, green_id)
    assert green["DBInstanceStatus"] == "available" and green["DBInstanceClass"] == "db.t3.small"
    assert green["EngineVersion"] == TARGET and green["DBParameterGroups"][0]["DBParameterGroupName"] == GROUP_18
    assert green["Endpoint"]["Port"] != blue_port
    green_resource_id = green["DbiResourceId"]
    green_conn = connect_instance(green)
    assert query(green_conn, "SHOW server_version")[0][0].startswith("18.")
    assert query(green_conn, "SELECT count(*) FROM orders") == [(50,)]
    with pytest.raises(psycopg2.Error) as read_only:
        query(green_conn, "INSERT INTO orders (note) VALUES ('on green')")
    assert read_only.value.pgcode == "25006"
    blue_conn = connect_instance(blue)
    query(blue_conn, "INSERT INTO orders (note) VALUES ('replicated')")
    assert _wait_for(lambda: query(green_conn, "SELECT count(*) FROM orders") == [(51,)], timeout=10)
    green_conn.close()
    blue_conn.close()
    lags = _wait_for(lambda: _lag_points(lab, green_id, "Minimum"), timeout=10)
    assert lags and min(lags) < 1.0

    # Switchover while a client writes through blue's endpoint.
    with Writer("127.0.0.1", blue_port) as writer:
        assert _wait_for(lambda: len(writer.acknowledged) >= 20, timeout=10)
        answer = rds.switchover_blue_green_deployment(BlueGreenDeploymentIdentifier=bg_id,
                                                      SwitchoverTimeout=60)["BlueGreenDeployment"]
        assert answer["Status"] == "SWITCHOVER_IN_PROGRESS"
        done = _wait_status(rds, bg_id, "SWITCHOVER_COMPLETED", timeout=120)
        before = len(writer.acknowledged)
        assert _wait_for(lambda: len(writer.acknowledged) >= before + 20, timeout=10), writer.errors[-3:]

    # Names and endpoints swapped: "shop" is the former green, on blue's port; blue is "shop-old1".
    new_blue = blue_green["shop"] = describe_instance(rds, "shop")
    assert new_blue["DbiResourceId"] == green_resource_id
    assert new_blue["Endpoint"]["Port"] == blue_port
    old_blue = describe_instance(rds, "shop-old1")
    assert old_blue["DbiResourceId"] == blue["DbiResourceId"] and old_blue["Endpoint"]["Port"] != blue_port
    with pytest.raises(ClientError):
        describe_instance(rds, green_id)
    assert done["Source"] == old_blue["DBInstanceArn"] and done["Target"] == new_blue["DBInstanceArn"]
    assert done["SwitchoverDetails"][0]["Status"] == "SWITCHOVER_COMPLETED"

    # Every acknowledged write is on the new blue, and the writes after the switchover got new ids (sequence synced).
    conn = connect_instance(new_blue)
    ids = {row[0] for row in query(conn, "SELECT id FROM orders")}
    assert set(writer.acknowledged) <= ids
    assert len(writer.acknowledged) == len(set(writer.acknowledged))
    query(conn, "INSERT INTO orders (note) VALUES ('after')")
    conn.close()
    old_conn = connect_instance(old_blue)
    with pytest.raises(psycopg2.Error) as old_read_only:
        query(old_conn, "INSERT INTO orders (note) VALUES ('on old blue')")
    assert old_read_only.value.pgcode == "25006"
    old_conn.close()

    entry = [e for e in lab.control.blue_green_log() if e["identifier"] == bg_id][-1]
    assert entry["ok"] and not entry["rolled_back"] and entry["lost_total"] == 0
    assert entry["requested_at"] <= entry["writes_stopped_at"] <= entry["caught_up_at"] <= entry["switched_at"]
    assert entry["sequences_synced"] >= 1
    assert any("Switchover completed" in m for m in _events(rds, "blue-green-deployment", bg_id))
    assert any("Switchover from DB instance shop" in m for m in _events(rds, "db-instance", "shop"))

    # After a switchover the green environment cannot be deleted with the deployment; the deployment can.
    with pytest.raises(ClientError) as refused:
        rds.delete_blue_green_deployment(BlueGreenDeploymentIdentifier=bg_id, DeleteTarget=True)
    assert refused.value.response["Error"]["Code"] == "InvalidParameterCombination"
    deleted = rds.delete_blue_green_deployment(BlueGreenDeploymentIdentifier=bg_id)["BlueGreenDeployment"]
    assert deleted["Status"] == "DELETING"
    with pytest.raises(ClientError) as gone:
        _deployment(rds, bg_id)
    assert gone.value.response["Error"]["Code"] == "BlueGreenDeploymentNotFoundFault"
    assert describe_instance(rds, "shop-old1")["DBInstanceStatus"] == "available"


def test_switchover_timeout_rolls_back_and_delete_target(blue_green):
    # Blue is now the former green of the first deployment: a deployment of it again.
    lab, rds, blue = blue_green["lab"], blue_green["rds"], blue_green["shop"]
    bg_id = rds.create_blue_green_deployment(BlueGreenDeploymentName="shop-again", Source=blue["DBInstanceArn"],
                                             )["BlueGreenDeployment"]["BlueGreenDeploymentIdentifier"]
    available = _wait_status(rds, bg_id, "AVAILABLE")
    green_id = available["Target"].rsplit(":", 1)[1]
    green = describe_instance(rds, green_id)
    # Someone writes on green (turning read-only off for the session): the row blue inserts next cannot be applied
    # there, replication stops, green falls behind.
    green_conn = connect(green["Endpoint"]["Address"], green["Endpoint"]["Port"])
    query(green_conn, "SET default_transaction_read_only = off")
    query(green_conn, "INSERT INTO orders (id, note) SELECT max(id) + g, 'conflict' FROM orders, "
                      "generate_series(1, 100) g GROUP BY g")
    green_conn.close()
    blue_conn = connect_instance(blue)
    query(blue_conn, "INSERT INTO orders (note) VALUES ('never replicated')")
    blue_conn.close()
    assert _wait_for(lambda: [v for v in _lag_points(lab, green_id, "Maximum") if v >= 1.0], timeout=10)

    scale = lab.control.timing()["scale"]
    lab.control.set_timing(scale=0.1)  # SwitchoverTimeout=30 is 3 lab seconds
    try:
        rds.switchover_blue_green_deployment(BlueGreenDeploymentIdentifier=bg_id, SwitchoverTimeout=30)
        assert _deployment(rds, bg_id)["Status"] == "SWITCHOVER_IN_PROGRESS"
        rolled_back = _wait_status(rds, bg_id, "AVAILABLE", timeout=30)
    finally:
        lab.control.set_timing(scale=scale)
    assert "rolled back" in rolled_back["StatusDetails"]
    assert rolled_back["_seen"][0] == "SWITCHOVER_IN_PROGRESS"
    assert describe_instance(rds, "shop")["DbiResourceId"] == blue["DbiResourceId"]
    assert describe_instance(rds, green_id)["DBInstanceStatus"] == "available"
    blue_conn = connect_instance(blue)
    assert query(blue_conn, "INSERT INTO orders (note) VALUES ('blue writes again') RETURNING true") == [(True,)]
    blue_conn.close()
    entry = [e for e in lab.control.blue_green_log() if e["identifier"] == bg_id][-1]
    assert entry["rolled_back"] and not entry["ok"] and entry["switched_at"] is None
    assert any("Switchover canceled" in m for m in _events(rds, "blue-green-deployment", bg_id))

    deleted = rds.delete_blue_green_deployment(BlueGreenDeploymentIdentifier=bg_id, DeleteTarget=True)
    assert deleted["BlueGreenDeployment"]["Status"] == "DELETING"

    def green_gone():
        try:
            describe_instance(rds, green_id)
        except ClientError as exc:
            return exc.response["Error"]["Code"] == "DBInstanceNotFound"
        return False

    assert _wait_for(green_gone, timeout=15)
    conn = connect_instance(blue)
    assert query(conn, "SELECT count(*) FROM pg_replication_slots") == [(0,)]
    assert query(conn, "SELECT count(*) FROM pg_publication") == [(0,)]
    conn.close()
