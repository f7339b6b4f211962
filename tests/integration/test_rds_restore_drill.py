# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbre.rds.rds_restore_drill against the lab: real restores with real data, measured against the lab's call log.

Each test runs the module as a user would (``ansible localhost -m dbre.rds.rds_restore_drill``) and compares what
it returns with what the lab saw: the rows in the restored database, the calls it served and when, what is left.
"""

import datetime
import json
import os
import pathlib
import subprocess
import sys
import time

import psycopg2
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
ANSIBLE = str(pathlib.Path(sys.executable).parent / "ansible")
PASSWORD = "drill-Secret-1"
READ_ONLY_PREFIXES = ("Describe", "List")


# ------------------------------------------------------------------------------------------------ helpers


def module_env(lab):
    env = dict(os.environ)
    env.update(lab.env)
    env.update(ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build"), ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_NOCOLOR="1")
    return env


def drill_command(args, check=False):
    command = [ANSIBLE, "localhost", "-i", "localhost,", "-c", "local", "-m", "dbre.rds.rds_restore_drill",
               "-a", json.dumps(args)]
    return command + (["--check"] if check else [])


def parse(stdout, stderr):
    try:
        return json.loads(stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError):
        raise AssertionError(f"no module result in the output:\n{stdout[-3000:]}\n{stderr[-3000:]}") from None


def run_drill(lab, args, check=False, timeout=180):
    done = subprocess.run(drill_command(args, check), env=module_env(lab), cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False)
    return parse(done.stdout, done.stderr)


def wait_available(rds, identifier, kind="instance", timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if kind == "instance":
            status = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]["DBInstanceStatus"]
        else:
            status = rds.describe_db_clusters(DBClusterIdentifier=identifier)["DBClusters"][0]["Status"]
        if status == "available":
            return
        time.sleep(0.2)
    raise AssertionError(f"{kind} {identifier} not available after {timeout}s")


def wait_snapshot(rds, identifier, cluster=False, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cluster:
            snapshot = rds.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=identifier)["DBClusterSnapshots"][0]
        else:
            snapshot = rds.describe_db_snapshots(DBSnapshotIdentifier=identifier)["DBSnapshots"][0]
        if snapshot["Status"] == "available":
            return snapshot
        time.sleep(0.2)
    raise AssertionError(f"snapshot {identifier} not available after {timeout}s")


def connect(described, dbname="postgres"):
    if "Endpoint" in described and isinstance(described["Endpoint"], dict):
        host, port = described["Endpoint"]["Address"], described["Endpoint"]["Port"]
    else:
        host, port = described["Endpoint"], described["Port"]
    conn = psycopg2.connect(host=host, port=port, user="app", password=PASSWORD, dbname=dbname, connect_timeout=5)
    conn.autocommit = True
    return conn


def add_rows(conn, count):
    with conn.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS orders (id serial PRIMARY KEY, "
                       "created_at timestamptz NOT NULL DEFAULT clock_timestamp())")
        cursor.execute("INSERT INTO orders (created_at) SELECT clock_timestamp() FROM generate_series(1, %s)",
                       (count,))


def network(lab):
    """A VPC with a subnet group, a security group and a parameter group: what a restore must not forget."""
    ec2, rds = lab.client("ec2"), lab.client("rds")
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.42.{i}.0/24", AvailabilityZone=f"us-east-1{z}")
               ["Subnet"]["SubnetId"] for i, z in ((1, "a"), (2, "b"))]
    rds.create_db_subnet_group(DBSubnetGroupName="drill-private", DBSubnetGroupDescription="private",
                               SubnetIds=subnets)
    group = ec2.create_security_group(GroupName="drill-db", Description="db", VpcId=vpc)["GroupId"]
    rds.create_db_parameter_group(DBParameterGroupName="drill-pg15", DBParameterGroupFamily="postgres15",
                                  Description="tuned")
    return {"DBSubnetGroupName": "drill-private", "VpcSecurityGroupIds": [group], "DBParameterGroupName": "drill-pg15"}


def make_source(lab, identifier, rows, **extra):
    rds = lab.client("rds")
    rds.create_db_instance(DBInstanceIdentifier=identifier, Engine="postgres", DBInstanceClass="db.t3.micro",
                           MasterUsername="app", MasterUserPassword=PASSWORD, AllocatedStorage=20,
                           BackupRetentionPeriod=1, **extra)
    wait_available(rds, identifier)
    described = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
    conn = connect(described)
    add_rows(conn, rows)
    return rds, described, conn


def gone(rds, identifier, kind="instance"):
    try:
        if kind == "instance":
            rds.describe_db_instances(DBInstanceIdentifier=identifier)
        else:
            rds.describe_db_clusters(DBClusterIdentifier=identifier)
    except rds.exceptions.DBInstanceNotFoundFault:
        return True
    except rds.exceptions.DBClusterNotFoundFault:
        return True
    return False


def values(params):
    if isinstance(params, dict):
        for value in params.values():
            yield from values(value)
    elif isinstance(params, list):
        for value in params:
            yield from values(value)
    else:
        yield str(params)


def assert_source_untouched(lab, *sources):
    """No call other than Describe*/List* carries a source identifier in any parameter."""
    names = {s.lower() for s in sources}
    offending = [(call["action"], call["params"]) for call in lab.control.calls(service="rds")
                 if not call["action"].startswith(READ_ONLY_PREFIXES)
                 and names & {v.lower() for v in values(call["params"])}]
    assert offending == []


def mutating(lab):
    return [c["action"] for c in lab.control.calls(service="rds") if not c["action"].startswith(READ_ONLY_PREFIXES)]


def drill_args(source, **extra):
    args = {"db_instance_identifier": source, "login_password": PASSWORD, "poll_interval": 0.2, "wait_timeout": 120,
            "cleanup_timeout": 60}
    args.update(extra)
    return args


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def orders(lab):
    """One source for the instance drills (drills never change it, and each test asserts so from the call log):
    100 rows, a manual snapshot, a moment to restore to, then 20 more rows."""
    lab.control.reset()
    groups = network(lab)
    rds, described, conn = make_source(lab, "orders", 100, **groups)
    rds.create_db_snapshot(DBInstanceIdentifier="orders", DBSnapshotIdentifier="orders-before")
    wait_snapshot(rds, "orders-before")
    time.sleep(1.2)
    restore_time = datetime.datetime.now(datetime.timezone.utc)
    time.sleep(1.2)
    add_rows(conn, 20)
    conn.close()
    deadline = time.monotonic() + 60
    while rds.describe_db_instances(DBInstanceIdentifier="orders")["DBInstances"][0]["LatestRestorableTime"] \
            <= restore_time + datetime.timedelta(seconds=1):
        assert time.monotonic() < deadline, "the lab's LatestRestorableTime did not move past the restore time"
        time.sleep(0.3)
    yield {"rds": rds, "described": described, "groups": groups, "restore_time": restore_time}
    lab.control.reset()


@pytest.fixture
def drill_lab(lab, orders):
    """The lab with the shared source, an empty call log and default timing."""
    lab.control.clear_faults()
    lab.control.reset_timing()
    lab.control.clear_calls()
    yield lab
    lab.control.reset_timing()


def source_rows(orders):
    with connect(orders["rds"].describe_db_instances(DBInstanceIdentifier="orders")["DBInstances"][0]) as conn:
        with conn.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM orders")
            return cursor.fetchone()[0]


# ------------------------------------------------------------------------------------------------ tests


def test_snapshot_drill_finds_exactly_the_snapshot_rows_and_cleans_up(drill_lab, orders, tmp_path):
    lab, rds, groups = drill_lab, orders["rds"], orders["groups"]
    lab.control.set_timing(restore=2.0)
    progress = tmp_path / "progress.log"

    result = run_drill(lab, drill_args(
        "orders", restore_from="snapshot", snapshot_identifier="orders-before", target_identifier="orders-drill-a",
        checks=[{"name": "orders at snapshot", "sql": "SELECT count(*) FROM orders", "expect": {"equals": 100}},
                {"name": "engine", "sql": "SHOW server_version", "expect": {"regex": "^15\\."}}],
        freshness_sql="SELECT max(created_at) FROM orders", max_rto_seconds=300, max_rpo_seconds=3600,
        report_dir=str(tmp_path / "reports"), progress_log=str(progress)))

    assert result.get("failed") is not True, result.get("msg")
    assert result["passed"] is True and result["verdict"] == "passed"
    assert [(c["name"], c["passed"]) for c in result["checks"]] == [("orders at snapshot", True), ("engine", True)]
    assert result["checks"][0]["observed"] == 100
    assert result["recovery_point"]["snapshot_identifier"] == "orders-before"
    assert gone(rds, "orders-drill-a")
    assert result["cleanup"]["removed"] == ["orders-drill-a"] and result["cleanup"]["left_behind"] == []
    assert source_rows(orders) == 120
    assert_source_untouched(lab, "orders")

    # The restore kept the source's subnet group, security groups and parameter group, and is a safe copy.
    restore = lab.control.calls(action="RestoreDBInstanceFromDBSnapshot")[0]["params"]
    assert restore["DBSubnetGroupName"] == "drill-private"
    assert restore["VpcSecurityGroupIds.VpcSecurityGroupId.1"] == groups["VpcSecurityGroupIds"][0]
    assert restore["DBParameterGroupName"] == "drill-pg15"
    assert (restore["MultiAZ"], restore["PubliclyAccessible"], restore["DeletionProtection"]) == \
        ("false", "false", "false")
    tags = {restore[k]: restore[k.replace(".Key", ".Value")] for k in restore if k.endswith(".Key")}
    assert tags["dbre:drill-id"] == result["drill_id"]
    assert datetime.datetime.fromisoformat(tags["dbre:drill-expires"].replace("Z", "+00:00")) > \
        datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=23)
    delete = lab.control.calls(action="DeleteDBInstance")[0]["params"]
    assert (delete["DBInstanceIdentifier"], delete["SkipFinalSnapshot"], delete["DeleteAutomatedBackups"]) == \
        ("orders-drill-a", "true", "true")

    # RTO: from the restore request to validated, within 1 s of the restore as the lab's call log shows it: from
    # the start of the restore call to the describe that found it available (the last describe of the target
    # before cleanup's own describe and delete).
    call = lab.control.calls(action="RestoreDBInstanceFromDBSnapshot")[0]
    deleted_at = lab.control.calls(action="DeleteDBInstance")[0]["epoch"]
    describes = [c["epoch"] for c in lab.control.calls(action="DescribeDBInstances")
                 if c["params"].get("DBInstanceIdentifier") == "orders-drill-a" and c["epoch"] < deleted_at]
    lab_restore_seconds = describes[-2] - (call["epoch"] - call["seconds"])
    assert abs(result["rto_seconds"] - lab_restore_seconds) <= 1.0, (result["rto_seconds"], lab_restore_seconds)
    assert result["measurements"]["restore_wait_seconds"] <= result["rto_seconds"]
    snapshot_time = datetime.datetime.fromisoformat(result["recovery_point"]["time"].replace("Z", "+00:00"))
    started = datetime.datetime.fromisoformat(result["report"]["started_at"].replace("Z", "+00:00"))
    assert result["rpo_seconds"] == pytest.approx((started - snapshot_time).total_seconds(), abs=0.01)
    assert result["measurements"]["data_freshness"] <= result["recovery_point"]["time"]

    # Reports and progress.
    files = result["report_files"]
    markdown = pathlib.Path(files["md"]).read_text()
    assert "## Timeline" in markdown and "## Verdict" in markdown and "| check: orders at snapshot |" in markdown
    assert json.loads(pathlib.Path(files["json"]).read_text())["measurements"]["rto_seconds"] == result["rto_seconds"]
    assert 'failures="0"' in pathlib.Path(files["xml"]).read_text()
    phases = [line.split("[")[1].split("]")[0] for line in progress.read_text().splitlines()]
    for phase in ("select", "restore_request", "wait_available", "status", "validation", "cleanup", "verdict"):
        assert phase in phases
    assert [p["name"] for p in result["phases"]] == ["select", "restore_request", "wait_available", "validation",
                                                     "cleanup"]


def test_point_in_time_drill_excludes_later_rows(drill_lab, orders):
    lab, rds = drill_lab, orders["rds"]
    restore_time = orders["restore_time"]

    result = run_drill(lab, drill_args(
        "orders", restore_from="point_in_time", restore_time=restore_time.isoformat(),
        checks=[{"name": "rows before restore_time", "sql": "SELECT count(*) FROM orders", "expect": {"equals": 100}}],
        freshness_sql="SELECT max(created_at) FROM orders"))

    assert result.get("failed") is not True, result.get("msg")
    assert result["checks"][0]["observed"] == 100
    assert result["recovery_point"]["type"] == "point_in_time"
    freshness = datetime.datetime.fromisoformat(result["measurements"]["data_freshness"].replace("Z", "+00:00"))
    assert freshness <= restore_time
    assert result["measurements"]["data_lag_behind_recovery_point_seconds"] >= 0
    assert gone(rds, result["target"]["instance"])
    # The request names the source by resource id only (as AWS accepts). The lab does not resolve
    # SourceDbiResourceId yet: moto then restores from the first instance it holds, which in this module is "orders"
    # (created first after the reset), so the data check above still shows the point-in-time semantics.
    request = lab.control.calls(action="RestoreDBInstanceToPointInTime")[0]["params"]
    assert request["SourceDbiResourceId"] == orders["described"]["DbiResourceId"]
    assert "SourceDBInstanceIdentifier" not in request
    assert_source_untouched(lab, "orders")


def test_failing_check_fails_the_verdict_and_still_deletes(drill_lab, orders, tmp_path):
    lab, rds = drill_lab, orders["rds"]

    result = run_drill(lab, drill_args(
        "orders", snapshot_type="manual", target_identifier="orders-drill-f", report_dir=str(tmp_path),
        checks=[{"name": "row count", "sql": "SELECT count(*) FROM orders", "expect": {"equals": 120}},
                {"name": "has rows", "sql": "SELECT 1 FROM orders LIMIT 1", "expect": {"rows": 1}}]))

    assert result["failed"] is True
    assert result["passed"] is False and result["verdict"] == "failed"
    assert "check: row count did not hold (observed 100, objective equals 120)" in result["msg"]
    assert "cleanup removed orders-drill-f" in result["msg"]
    assert [c["passed"] for c in result["checks"]] == [False, True]
    assert gone(rds, "orders-drill-f")
    assert result["cleanup"]["removed"] == ["orders-drill-f"]
    markdown = pathlib.Path(result["report_files"]["md"]).read_text()
    assert "| check: row count | equals 120 | 100 | **no** |" in markdown
    assert 'failures="1"' in pathlib.Path(result["report_files"]["xml"]).read_text()
    assert_source_untouched(lab, "orders")


def test_restore_stuck_in_creating_times_out_and_is_still_deleted(drill_lab, orders):
    lab, rds = drill_lab, orders["rds"]
    lab.control.set_timing(restore=120.0)
    target = "orders-drill-s"
    process = subprocess.Popen(drill_command(drill_args("orders", target_identifier=target, wait_timeout=6, checks=[
        {"name": "rows", "sql": "SELECT count(*) FROM orders", "expect": {"min": 1}}])), env=module_env(lab),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not lab.control.calls(action="RestoreDBInstanceFromDBSnapshot"):
            assert time.monotonic() < deadline and process.poll() is None, "the drill never requested the restore"
            time.sleep(0.1)
        # Still inside its 120 s of creating: from now on it never leaves.
        lab.control.stick(target, "creating")
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
        lab.control.unstick(target)
    result = parse(stdout, stderr)

    assert result.get("failed") is True and result["passed"] is False, result.get("msg")
    assert "Timed out after" in result["msg"] and "last state seen: creating" in result["msg"]
    assert "cleanup removed " + target in result["msg"]
    phases = {p["name"]: p for p in result["phases"]}
    assert 6.0 <= phases["wait_available"]["seconds"] <= 7.5 and phases["wait_available"]["outcome"] == "failed"
    assert "validation" not in phases
    assert result["rto_seconds"] is None
    assert result["transitions"]["instance"][-1]["state"] == "creating"
    assert result["cleanup"]["removed"] == [target]
    assert gone(rds, target)
    assert [c["params"]["DBInstanceIdentifier"] for c in lab.control.calls(action="DeleteDBInstance")] == [target]
    assert_source_untouched(lab, "orders")


def test_check_mode_selects_and_plans_with_zero_mutating_calls(drill_lab, orders):
    lab, rds = drill_lab, orders["rds"]

    result = run_drill(lab, drill_args("orders", snapshot_type="manual", checks=[
        {"name": "rows", "sql": "SELECT count(*) FROM orders", "expect": {"equals": 100}}]), check=True)

    assert result["changed"] is True and result["verdict"] == "planned"
    assert result["recovery_point"]["snapshot_identifier"] == "orders-before"
    assert result["restore_request"]["operation"] == "restore_db_instance_from_db_snapshot"
    assert result["restore_request"]["parameters"]["DBParameterGroupName"] == "drill-pg15"
    assert result["would_create"] == [{"kind": "instance", "identifier": result["target"]["instance"]}]
    assert result["target"]["instance"].startswith("orders-drill-")
    assert mutating(lab) == []
    assert [d["DBInstanceIdentifier"] for d in rds.describe_db_instances()["DBInstances"]] == ["orders"]


def test_aurora_cluster_drill_creates_validates_and_deletes_cluster_and_instance(drill_lab):
    lab = drill_lab
    rds = lab.client("rds")
    rds.create_db_cluster(DBClusterIdentifier="aur", Engine="aurora-postgresql", MasterUsername="app",
                          MasterUserPassword=PASSWORD, BackupRetentionPeriod=1)
    rds.create_db_instance(DBInstanceIdentifier="aur-1", DBClusterIdentifier="aur", Engine="aurora-postgresql",
                           DBInstanceClass="db.r6g.large")
    try:
        wait_available(rds, "aur", kind="cluster")
        wait_available(rds, "aur-1")
        with connect(rds.describe_db_clusters(DBClusterIdentifier="aur")["DBClusters"][0]) as conn:
            add_rows(conn, 42)
        rds.create_db_cluster_snapshot(DBClusterIdentifier="aur", DBClusterSnapshotIdentifier="aur-snap")
        wait_snapshot(rds, "aur-snap", cluster=True)
        lab.control.clear_calls()

        result = run_drill(lab, {
            "db_cluster_identifier": "aur", "login_password": PASSWORD, "poll_interval": 0.2, "wait_timeout": 180,
            "target_identifier": "aur-drill-x", "snapshot_type": "manual",
            "checks": [{"name": "rows", "sql": "SELECT count(*) FROM orders", "expect": {"equals": 42}}]})

        assert result.get("failed") is not True, result.get("msg")
        assert result["target"] == {"cluster": "aur-drill-x", "instance": "aur-drill-x-writer"}
        assert result["recovery_point"]["snapshot_identifier"] == "aur-snap"
        assert result["checks"][0]["observed"] == 42
        assert mutating(lab) == ["RestoreDBClusterFromSnapshot", "CreateDBInstance", "DeleteDBInstance",
                                 "DeleteDBCluster"]
        create = lab.control.calls(action="CreateDBInstance")[0]["params"]
        assert (create["DBClusterIdentifier"], create["DBInstanceClass"]) == ("aur-drill-x", "db.r6g.large")
        assert result["cleanup"]["removed"] == ["aur-drill-x-writer", "aur-drill-x"]
        assert gone(rds, "aur-drill-x-writer") and gone(rds, "aur-drill-x", kind="cluster")
        assert [p["name"] for p in result["phases"]] == ["select", "restore_request", "create_instance",
                                                         "wait_available", "validation", "cleanup"]
        assert set(result["transitions"]) == {"cluster", "instance"}
        assert_source_untouched(lab, "aur", "aur-1")

        # The same cluster to its latest restorable time: the cluster is named by its resource id.
        lab.control.clear_calls()
        result = run_drill(lab, {
            "db_cluster_identifier": "aur", "login_password": PASSWORD, "poll_interval": 0.2, "wait_timeout": 180,
            "target_identifier": "aur-drill-p", "restore_from": "point_in_time", "use_latest_restorable_time": True,
            "checks": [{"name": "rows", "sql": "SELECT count(*) FROM orders", "expect": {"equals": 42}}]})
        assert result.get("failed") is not True, result.get("msg")
        assert result["recovery_point"]["type"] == "point_in_time" and result["checks"][0]["observed"] == 42
        assert mutating(lab) == ["RestoreDBClusterToPointInTime", "CreateDBInstance", "DeleteDBInstance",
                                 "DeleteDBCluster"]
        assert gone(rds, "aur-drill-p-writer") and gone(rds, "aur-drill-p", kind="cluster")
        assert_source_untouched(lab, "aur", "aur-1")
    finally:
        rds.delete_db_instance(DBInstanceIdentifier="aur-1", SkipFinalSnapshot=True)
        deadline = time.monotonic() + 60
        while not gone(rds, "aur-1") and time.monotonic() < deadline:
            time.sleep(0.2)
        rds.delete_db_cluster(DBClusterIdentifier="aur", SkipFinalSnapshot=True)


def test_sweep_removes_expired_drill_instances_only(drill_lab):
    lab = drill_lab
    rds = lab.client("rds")
    past = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)).isoformat()
    created = {"app-drill-old": {"dbre:drill-id": "x", "dbre:drill-expires": past},
               "app-drill-lookalike": {"team": "app"}}
    for identifier, tags in created.items():
        rds.create_db_instance(DBInstanceIdentifier=identifier, Engine="postgres", DBInstanceClass="db.t3.micro",
                               MasterUsername="app", MasterUserPassword=PASSWORD, AllocatedStorage=20,
                               Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    try:
        lab.control.clear_calls()
        planned = run_drill(lab, {"state": "sweep"}, check=True)
        assert planned["changed"] is True and [r["identifier"] for r in planned["removed"]] == ["app-drill-old"]
        assert mutating(lab) == []
        swept = run_drill(lab, {"state": "sweep", "poll_interval": 0.2})
        assert swept["changed"] is True and [r["identifier"] for r in swept["removed"]] == ["app-drill-old"]
        assert swept["left_alone"] == [] and swept["left_behind"] == []
        assert gone(rds, "app-drill-old")
        assert not gone(rds, "app-drill-lookalike") and not gone(rds, "orders")
        again = run_drill(lab, {"state": "sweep"})
        assert again["changed"] is False and again["removed"] == []
        assert [c["params"]["DBInstanceIdentifier"] for c in lab.control.calls(action="DeleteDBInstance")] == \
            ["app-drill-old"]
        assert_source_untouched(lab, "orders", "app-drill-lookalike")
    finally:
        rds.delete_db_instance(DBInstanceIdentifier="app-drill-lookalike", SkipFinalSnapshot=True)
