# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbre.rds.rds_dr_readiness_info against the lab, as a user runs it: a healthy setup passes every check (in check
mode too), and each broken setup fails exactly its check, with the fix.

One setup for the file, converged once: the encrypted primary ``dr-east`` (us-east-1, deletion protection, 7 days of
backups, the parameter group ``dr-pg``, an alarm with an SNS action) with its cross-region read replica ``dr-west``
(us-west-2, a real PostgreSQL standby, encrypted with a key of us-west-2, the same class and parameter values, a
ReplicaLag alarm there) and a snapshot copy in us-west-2. Two more primaries stand beside it: ``dr-solo`` (no DR copy)
and ``dr-plain`` with its replica ``dr-plain-west`` (neither encrypted: a cross-region replica of an encrypted source
is always encrypted, so the unencrypted DR copy comes with an unencrypted primary), and the Aurora cluster
``dr-aurora`` without a global database (no DR copy, the cluster path). The other broken setups are
derived from ``dr-east`` by a describe-cheap change each: the lag alarm deleted, then the retention set to 1 day (the
alarm back), then replay paused on the replica (the retention back; last, since the lag's recent maximum stays high
for the lookback). Every run is a task of ONE ansible-playbook, which waits while the test makes each change: a
module run costs its start-up, a playbook's start-up is paid once.
"""

import json
import os
import pathlib
import subprocess
import sys
import time

import psycopg2
import pytest

from tests.lab.clients import MASTER_PASSWORD, MASTER_USER, wait_instance

ROOT = pathlib.Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(pathlib.Path(sys.executable).parent / "ansible-playbook")
MODULE = "dbre.rds.rds_dr_readiness_info"
USER_AGENT = "dbre.rds/rds_dr_readiness_info"
EAST, WEST = "us-east-1", "us-west-2"
MAX_LAG = 3.0
EVERY_CHECK = ["primary_available", "dr_copy", "dr_copies_available", "replication_lag", "backup_retention",
               "latest_restorable_time", "dr_backups", "encryption", "dr_kms_key", "deletion_protection",
               "instance_class_parity", "parameter_group_parity", "lag_alarm", "primary_alarm", "rto", "rpo"]
ARGS = dict(max_lag_seconds=MAX_LAG, lookback_minutes=5, rpo_objective_seconds=300, rto_objective_seconds=900)


def module_env(lab):
    env = dict(os.environ)
    env.update(lab.env)
    env.update(ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build"), ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_NOCOLOR="1")
    return env


def run_with_breaks(lab, runs, tmp):
    """Every run in ONE ansible-playbook (one start-up, which dominates a run's time): ``runs`` is a list of
    ``(name, module args, check_mode, break_setup)``; before a run with a ``break_setup``, the playbook waits while
    this process calls it (it changes the lab). Returns ({name: result}, the module's calls to the lab)."""
    tasks = []
    for index, (name, args, check, breaker) in enumerate(runs):
        if breaker is not None:
            ready, go = tmp / f"ready-{index}", tmp / f"go-{index}"
            tasks.append({"name": f"wait {index}", "ansible.builtin.shell": (
                f"touch {ready}; for i in $(seq 1800); do test -e {go} && exit 0; sleep 0.1; done; exit 1")})
        tasks.append({"name": f"run {name}", MODULE: args, "check_mode": check})
    path = tmp / "readiness.yml"
    path.write_text(json.dumps([{"hosts": "localhost", "connection": "local", "gather_facts": False,
                                 "tasks": tasks}]))
    since = time.time()
    process = subprocess.Popen([ANSIBLE_PLAYBOOK, "-i", "localhost,", str(path)], env=module_env(lab), cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for index, (name, _args, _check, breaker) in enumerate(runs):
            if breaker is not None:
                wait_for(lambda index=index: (tmp / f"ready-{index}").exists() or process.poll() is not None, 180,
                         f"the playbook reaching {name}")
                breaker()
                (tmp / f"go-{index}").touch()
        stdout, stderr = process.communicate(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    try:
        found = {task["task"]["name"][4:]: task["hosts"]["localhost"]
                 for task in json.loads(stdout)["plays"][0]["tasks"] if task["task"]["name"].startswith("run ")}
    except (ValueError, KeyError, IndexError):
        raise AssertionError(f"no module result:\n{stdout[-3000:]}\n{stderr[-3000:]}") from None
    assert sorted(found) == sorted(r[0] for r in runs), stdout[-3000:]
    for result in found.values():
        assert result.get("failed") is not True, result.get("msg")
        assert result["changed"] is False
    calls = [c for c in lab.control.calls(since=since) if USER_AGENT in str(c.get("user_agent", ""))]
    return found, calls


def checks_of(result):
    return {c["name"]: c for c in result["checks"]}


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(0.25)


def replica_lag_points(lab, identifier):
    cloudwatch = lab.client("cloudwatch", region=WEST)
    end = time.time() + 60
    return cloudwatch.get_metric_statistics(
        Namespace="AWS/RDS", MetricName="ReplicaLag", StartTime=end - 600, EndTime=end, Period=60,
        Dimensions=[{"Name": "DBInstanceIdentifier", "Value": identifier}], Statistics=["Maximum"])["Datapoints"]


def available_snapshot(rds, identifier):
    found = rds.describe_db_snapshots(DBSnapshotIdentifier=identifier)["DBSnapshots"]
    return found[0] if found and found[0]["Status"] == "available" else None


# name: (replica in us-west-2 or None, encrypted)
PRIMARIES = {"dr-east": ("dr-west", True), "dr-plain": ("dr-plain-west", False), "dr-solo": (None, True)}


def converge(lab, keys, topics):
    """Every primary, replica, snapshot copy and alarm, each phase started for all before waiting for any."""
    east, west = lab.client("rds"), lab.client("rds", region=WEST)
    for name, (_replica, encrypted) in PRIMARIES.items():
        east.create_db_instance(
            DBInstanceIdentifier=name, Engine="postgres", EngineVersion="15.7", DBInstanceClass="db.t3.micro",
            MasterUsername=MASTER_USER, MasterUserPassword=MASTER_PASSWORD, DBName="app", AllocatedStorage=20,
            DeletionProtection=True, BackupRetentionPeriod=7, DBParameterGroupName="dr-pg",
            **(dict(StorageEncrypted=True, KmsKeyId=keys[EAST]) if encrypted else {}))
    east.create_db_cluster(DBClusterIdentifier="dr-aurora", Engine="aurora-postgresql", MasterUsername=MASTER_USER,
                           MasterUserPassword=MASTER_PASSWORD, BackupRetentionPeriod=7, DeletionProtection=True,
                           StorageEncrypted=True, KmsKeyId=keys[EAST])
    east.create_db_instance(DBInstanceIdentifier="dr-aurora-1", DBClusterIdentifier="dr-aurora",
                            Engine="aurora-postgresql", DBInstanceClass="db.r6g.large")
    lab.client("cloudwatch").put_metric_alarm(
        AlarmName="dr-aurora-cpu", MetricName="CPUUtilization", Namespace="AWS/RDS", Statistic="Maximum", Period=60,
        EvaluationPeriods=1, Threshold=90, ComparisonOperator="GreaterThanThreshold", AlarmActions=[topics[EAST]],
        Dimensions=[{"Name": "DBClusterIdentifier", "Value": "dr-aurora"}])
    primaries = {name: wait_instance(east, name, "available") for name in PRIMARIES}
    wait_instance(east, "dr-aurora-1", "available")
    for name, (replica, encrypted) in PRIMARIES.items():
        put_alarm(lab, EAST, f"{name}-cpu", "CPUUtilization", name, 90, topics[EAST])
        if not replica:
            continue
        west.create_db_instance_read_replica(
            DBInstanceIdentifier=replica, SourceDBInstanceIdentifier=primaries[name]["DBInstanceArn"],
            SourceRegion=EAST, DBInstanceClass="db.t3.micro", DeletionProtection=True, DBParameterGroupName="dr-pg",
            **({"KmsKeyId": keys[WEST]} if encrypted else {}))
        east.create_db_snapshot(DBInstanceIdentifier=name, DBSnapshotIdentifier=f"{name}-snap")
        put_alarm(lab, WEST, f"{replica}-lag", "ReplicaLag", replica, MAX_LAG, topics[WEST])
    for name, (replica, encrypted) in PRIMARIES.items():
        if not replica:
            continue
        wait_instance(west, replica, "available")
        snapshot = wait_for(lambda name=name: available_snapshot(east, f"{name}-snap"), 30, f"the snapshot of {name}")
        west.copy_db_snapshot(SourceDBSnapshotIdentifier=snapshot["DBSnapshotArn"], SourceRegion=EAST,
                              TargetDBSnapshotIdentifier=f"{name}-dr",
                              **({"KmsKeyId": keys[WEST]} if encrypted else {}))
    return primaries


def put_alarm(lab, region, name, metric, identifier, threshold, topic):
    lab.client("cloudwatch", region=region).put_metric_alarm(
        AlarmName=name, MetricName=metric, Namespace="AWS/RDS", Statistic="Maximum", Period=60, EvaluationPeriods=1,
        Threshold=threshold, ComparisonOperator="GreaterThanThreshold", AlarmActions=[topic],
        Dimensions=[{"Name": "DBInstanceIdentifier", "Value": identifier}])


@pytest.fixture(scope="module")
def setup(lab):
    lab.control.reset()
    lab.control.set_timing(snapshot_copy=0, metrics=2)
    keys = {region: lab.client("kms", region=region).create_key(Description=f"DR {region}")["KeyMetadata"]["Arn"]
            for region in (EAST, WEST)}
    topics = {region: lab.client("sns", region=region).create_topic(Name="dba")["TopicArn"] for region in (EAST, WEST)}
    for region in (EAST, WEST):
        rds = lab.client("rds", region=region)
        rds.create_db_parameter_group(DBParameterGroupName="dr-pg", DBParameterGroupFamily="postgres15",
                                      Description="DR parity")
        rds.modify_db_parameter_group(DBParameterGroupName="dr-pg", Parameters=[
            {"ParameterName": "work_mem", "ParameterValue": "8192", "ApplyMethod": "immediate"}])
    primaries = converge(lab, keys, topics)
    for replica in ("dr-west", "dr-plain-west"):
        wait_for(lambda replica=replica: replica_lag_points(lab, replica), 30, f"ReplicaLag datapoints of {replica}")
    yield dict(keys=keys, topics=topics, primary=primaries["dr-east"])
    lab.control.reset()


def delete_lag_alarm(lab):
    lab.client("cloudwatch", region=WEST).delete_alarms(AlarmNames=["dr-west-lag"])


def one_day_retention(lab, topics):
    put_alarm(lab, WEST, "dr-west-lag", "ReplicaLag", "dr-west", MAX_LAG, topics[WEST])
    east = lab.client("rds")
    east.modify_db_instance(DBInstanceIdentifier="dr-east", BackupRetentionPeriod=1, ApplyImmediately=True)
    wait_instance(east, "dr-east", "available")


def lag_above_the_limit(lab, primary):
    """Retention back to 7 days; replay paused on dr-west while a write lands on dr-east, until the lab's
    ReplicaLag of dr-west is above the limit."""
    east = lab.client("rds")
    east.modify_db_instance(DBInstanceIdentifier="dr-east", BackupRetentionPeriod=7, ApplyImmediately=True)
    wait_instance(east, "dr-east", "available")
    lab.control.pause_replay("dr-west", region=WEST)
    endpoint = primary["Endpoint"]
    conn = psycopg2.connect(host=endpoint["Address"], port=endpoint["Port"], user=MASTER_USER,
                            password=MASTER_PASSWORD, dbname="app", connect_timeout=5)
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute("CREATE TABLE dr_readiness_writes (id serial PRIMARY KEY, at timestamptz DEFAULT now())")
        cursor.execute("INSERT INTO dr_readiness_writes DEFAULT VALUES")
    conn.close()
    wait_for(lambda: max((p["Maximum"] for p in replica_lag_points(lab, "dr-west")), default=0) > MAX_LAG + 1,
             30, "ReplicaLag of dr-west above the limit")


@pytest.fixture(scope="module")
def runs(lab, setup, tmp_path_factory):
    """Every run of the file, in one playbook, in this order: healthy in check mode, healthy with a report, the
    primary with no DR copy, the unencrypted pair, the Aurora cluster with no global database; then, each after its
    change, no lag alarm, 1-day retention and (last: the lag's recent maximum stays high for the lookback) replay
    paused."""
    tmp = tmp_path_factory.mktemp("dr-readiness")
    east = dict(ARGS, db_instance_identifier="dr-east")
    try:
        results, calls = run_with_breaks(lab, [
            ("checked", east, True, None),
            ("healthy", dict(east, report_dir=str(tmp / "reports")), False, None),
            ("solo", dict(ARGS, db_instance_identifier="dr-solo", dr_region=WEST), False, None),
            ("plain", dict(ARGS, db_instance_identifier="dr-plain"), False, None),
            ("aurora", dict(ARGS, db_cluster_identifier="dr-aurora", dr_region=WEST), False, None),
            ("no_lag_alarm", east, False, lambda: delete_lag_alarm(lab)),
            ("one_day", east, False, lambda: one_day_retention(lab, setup["topics"])),
            ("lagging", east, False, lambda: lag_above_the_limit(lab, setup["primary"])),
        ], tmp)
    finally:
        lab.control.resume_replay("dr-west", region=WEST)
    return dict(results, calls=calls)


def test_a_healthy_setup_passes_every_check_in_check_mode_too(setup, runs):
    checked, result = runs["checked"], runs["healthy"]
    for outcome in (checked, result):
        assert outcome["failed_checks"] == [], [c for c in outcome["checks"] if not c["passed"]]
        assert outcome["passed"] is True
        assert [c["name"] for c in outcome["checks"]] == EVERY_CHECK and outcome["not_applicable"] == []
    checks = checks_of(result)
    assert result["topology"]["dr_region"] == WEST  # taken from the replica's ARN
    assert [(c["kind"], c["identifier"]) for c in result["topology"]["dr_copies"]] == [
        ("read_replica", "dr-west"), ("snapshot_copy", "dr-east-dr")]
    assert checks["replication_lag"]["detail"]["dr-west"]["datapoints"] >= 1
    assert 0 <= checks["replication_lag"]["measured"] <= MAX_LAG
    assert checks["dr_kms_key"]["measured"]["dr-west"] == {
        "kms_key_id": setup["keys"][WEST], "region": WEST, "state": "Enabled"}
    assert checks["parameter_group_parity"]["measured"] == {"dr-west": {}}
    assert checks["lag_alarm"]["measured"]["dr-west"]["usable"] == ["dr-west-lag"]
    assert checks["primary_alarm"]["measured"] == ["dr-east-cpu"]
    assert result["estimate"]["strategy"] == "cross_region_read_replica"
    assert result["estimate"]["rto_seconds"] == 600 and result["estimate"]["best_copy"] == "dr-west"
    assert checks["rpo"]["measured"] == checks["replication_lag"]["measured"]
    # The report: one objective per check, the JUnit file with no failure.
    report = json.loads(pathlib.Path(result["report_files"]["json"]).read_text())
    assert [o["name"] for o in report["objectives"]] == EVERY_CHECK and report["passed"] is True
    assert 'failures="0"' in pathlib.Path(result["report_files"]["xml"]).read_text()
    assert "# DR readiness of dr-east: PASSED" in pathlib.Path(result["report_files"]["md"]).read_text()
    # What it read (test_every_run_made_only_reads: reads only).
    actions = {c["action"] for c in runs["calls"]}
    assert {"DescribeDBInstances", "DescribeDBInstanceAutomatedBackups", "DescribeDBSnapshots", "DescribeDBParameters",
            "DescribeKey", "DescribeAlarms", "GetMetricStatistics"} <= actions


def test_no_dr_copy_fails_exactly_dr_copy(runs):
    result = runs["solo"]
    assert result["failed_checks"] == ["dr_copy"]
    fix = checks_of(result)["dr_copy"]["fix"]
    assert "create a cross-region read replica of dr-solo in us-west-2" in fix
    assert set(result["not_applicable_checks"]) == {
        "dr_copies_available", "replication_lag", "dr_backups", "dr_kms_key", "instance_class_parity",
        "parameter_group_parity", "lag_alarm", "rto", "rpo"}
    assert result["estimate"] is None


def test_an_aurora_cluster_without_a_global_database_fails_exactly_dr_copy(runs):
    result = runs["aurora"]
    assert result["failed_checks"] == ["dr_copy"]
    assert "add a secondary cluster in us-west-2 to a global database of dr-aurora" in \
        checks_of(result)["dr_copy"]["fix"]
    assert result["topology"]["kind"] == "cluster"
    assert checks_of(result)["primary_alarm"]["measured"] == ["dr-aurora-cpu"]


def test_an_unencrypted_dr_copy_fails_exactly_encryption(runs):
    result = runs["plain"]
    assert result["failed_checks"] == ["encryption"]
    check = checks_of(result)["encryption"]
    assert check["measured"] == {"dr-plain": False, "dr-plain-west": False, "dr-plain-dr": False}
    assert "read_replica dr-plain-west (us-west-2)" in check["fix"] and "KmsKeyId" in check["fix"]
    assert result["not_applicable_checks"] == ["dr_kms_key"]


def test_no_lag_alarm_fails_exactly_lag_alarm(runs):
    result = runs["no_lag_alarm"]
    assert result["failed_checks"] == ["lag_alarm"]
    assert "no CloudWatch alarm on ReplicaLag of dr-west in us-west-2: create one" in \
        checks_of(result)["lag_alarm"]["fix"]


def test_one_day_retention_fails_exactly_backup_retention(runs):
    result = runs["one_day"]
    assert result["failed_checks"] == ["backup_retention"]
    check = checks_of(result)["backup_retention"]
    assert (check["measured"], check["objective"]) == (1, 7)
    assert "BackupRetentionPeriod=7" in check["fix"]


def test_lag_above_the_limit_fails_exactly_replication_lag(runs):
    result = runs["lagging"]
    assert result["failed_checks"] == ["replication_lag"]
    check = checks_of(result)["replication_lag"]
    assert check["measured"] > MAX_LAG and check["objective"] == MAX_LAG
    assert "dr-west lags" in check["fix"] and "find what holds replay back" in check["fix"]
    # The RPO estimate is that lag, still within its 300 s objective.
    assert checks_of(result)["rpo"]["measured"] == check["measured"] and checks_of(result)["rpo"]["passed"]


def test_every_run_made_only_reads(runs):
    actions = {c["action"] for c in runs["calls"]}
    assert actions and all(action.startswith(("Describe", "Get")) for action in actions), actions
