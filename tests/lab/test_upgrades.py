# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Engine upgrades of PostgreSQL DB instances run for real (tests/lab/fidelity/upgrades.py): RDS's refusals before
any change, a minor upgrade's restart, a major upgrade's pre-checks that keep a blocked instance on its version with
its data, then a real pg_upgrade from 15 to 18 with its outage, events and the new version everywhere; snapshots of
the upgraded instance restore as 18, and new 18 instances run PostgreSQL 18.

One instance ("legacy") goes through every step in order (an upgrade costs seconds: each is run once and asserted on
from every side)."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import psycopg2
import pytest
from botocore.exceptions import ClientError

from tests.lab.clients import (
    MASTER_PASSWORD,
    MASTER_USER,
    connect_instance,
    create_postgres,
    describe_instance,
    query,
    wait_instance,
)

pytestmark = pytest.mark.lab
INSTANCE = "legacy"


def _messages(rds, identifier: str = INSTANCE) -> list[str]:
    events = rds.describe_events(SourceType="db-instance", SourceIdentifier=identifier,
                                 StartTime=datetime.now(timezone.utc) - timedelta(minutes=30))["Events"]
    return [event["Message"] for event in events]


def _refused(rds, **params) -> str:
    with pytest.raises(ClientError) as refused:
        rds.modify_db_instance(DBInstanceIdentifier=INSTANCE, ApplyImmediately=True, **params)
    assert refused.value.response["Error"]["Code"] == "InvalidParameterCombination", refused.value.response
    return refused.value.response["Error"]["Message"]


class Prober:
    """Logs in to an endpoint every 50 ms and records when logins failed: the outage clients see."""

    def __init__(self, instance: dict):
        self.instance, self.failures, self.successes = instance, [], []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            at = time.time()
            try:
                connect_instance(self.instance, timeout=1).close()
                self.successes.append(at)
            except psycopg2.Error:
                self.failures.append(at)
            time.sleep(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)


@pytest.fixture(scope="module")
def legacy(lab):
    """Instance "legacy" (postgres 15.7, group "legacy15" with rds.logical_replication=1);
    test_minor_upgrade_restarts_postgres gives it 40 orders and pg_stat_statements."""
    lab.control.reset()
    rds = lab.client()
    rds.create_db_parameter_group(DBParameterGroupName="legacy15", DBParameterGroupFamily="postgres15",
                                  Description="logical replication")
    rds.modify_db_parameter_group(DBParameterGroupName="legacy15", Parameters=[
        {"ParameterName": "rds.logical_replication", "ParameterValue": "1", "ApplyMethod": "pending-reboot"}])
    yield create_postgres(rds, INSTANCE, DBInstanceClass="db.t3.small", DBParameterGroupName="legacy15")
    lab.control.reset()


def test_refusals_in_rds_words_change_nothing(lab, legacy):
    rds = lab.client()
    assert _refused(rds, EngineVersion="18.6") == (
        "The AllowMajorVersionUpgrade flag must be present when upgrading to a new major version.")
    assert _refused(rds, EngineVersion="15.4") == "Cannot upgrade postgres from 15.7 to 15.4"
    assert _refused(rds, EngineVersion="15.99", AllowMajorVersionUpgrade=True) == (
        "Cannot find upgrade target from 15.7 with requested version 15.99.")
    assert _refused(rds, EngineVersion="18.6", AllowMajorVersionUpgrade=True,
                    DBParameterGroupName="legacy15") == (
        "The parameter group legacy15 with DBParameterGroupFamily postgres15 can't be used for this "
        "instance. Use a parameter group with DBParameterGroupFamily postgres18.")
    rds.create_db_parameter_group(DBParameterGroupName="pg18-tuned", DBParameterGroupFamily="postgres18",
                                  Description="for 18")
    assert _refused(rds, EngineVersion="15.10", DBParameterGroupName="pg18-tuned").startswith(
        "The parameter group pg18-tuned with DBParameterGroupFamily postgres18 can't be used")
    after = describe_instance(rds, INSTANCE)
    assert (after["EngineVersion"], after["DBInstanceStatus"]) == ("15.7", "available")
    assert after["DBParameterGroups"][0]["DBParameterGroupName"] == "legacy15"
    assert not [m for m in _messages(rds) if "pgrade" in m]
    assert lab.control.upgrade_log() == []


def test_minor_upgrade_restarts_postgres(lab, legacy):
    rds = lab.client()
    conn = connect_instance(legacy)
    query(conn, "CREATE TABLE orders (id serial PRIMARY KEY, note text)")
    query(conn, "INSERT INTO orders (note) SELECT 'before' FROM generate_series(1, 40)")
    query(conn, "CREATE EXTENSION pg_stat_statements")
    conn.close()
    with Prober(legacy) as probe:
        answer = rds.modify_db_instance(DBInstanceIdentifier=INSTANCE, EngineVersion="15.10",
                                        ApplyImmediately=True)["DBInstance"]
        upgraded = wait_instance(rds, INSTANCE, "available", timeout=60)
        time.sleep(0.2)
    assert answer["EngineVersion"] == "15.7"  # the answer shows the version it is leaving, as on RDS
    assert "upgrading" in upgraded["_seen"]
    assert upgraded["EngineVersion"] == "15.10"
    (entry,) = lab.control.upgrade_log()
    assert (entry["upgrade"], entry["from_version"], entry["to_version"], entry["ok"]) == ("minor", "15.7", "15.10",
                                                                                           True)
    assert entry["down_at"] < entry["up_at"] <= entry["finished_at"]
    assert [at for at in probe.failures if entry["down_at"] - 0.2 <= at <= entry["up_at"]], "no outage seen"
    messages = _messages(rds)
    assert "Upgrade in progress: Upgrading database engine from 15.7 to 15.10." in messages
    assert messages.index("DB instance shutdown") < messages.index("DB instance restarted") < messages.index(
        "Database instance upgraded from engine version 15.7 to 15.10.")
    conn = connect_instance(upgraded)
    assert query(conn, "SELECT count(*) FROM orders")[0][0] == 40
    conn.close()


def test_blocked_major_upgrade_stays_on_its_version_with_its_data(lab, legacy):
    rds = lab.client()
    conn = connect_instance(legacy)
    query(conn, "CREATE TABLE routines (handler regproc)")  # pg_upgrade --check: reg* columns are not preserved
    query(conn, "INSERT INTO routines VALUES ('now')")
    query(conn, "CREATE EXTENSION pgcrypto")  # RDS's pre-check: the lab's 18 ships no pgcrypto
    query(conn, "SELECT pg_create_logical_replication_slot('cdc', 'pgoutput')")  # RDS's pre-check: logical slots
    with Prober(legacy) as probe:
        rds.modify_db_instance(DBInstanceIdentifier=INSTANCE, EngineVersion="18.6", AllowMajorVersionUpgrade=True,
                               ApplyImmediately=True)
        blocked = wait_instance(rds, INSTANCE, "available", timeout=90)
    assert "upgrading" in blocked["_seen"]
    assert (blocked["EngineVersion"], blocked["DBParameterGroups"][0]["DBParameterGroupName"]) == (
        "15.10", "legacy15")
    # The server never went down: the session opened before the upgrade still works, and no login failed.
    assert query(conn, "SELECT count(*) FROM orders")[0][0] == 40
    assert query(conn, "SELECT current_setting('server_version_num')::int / 10000")[0][0] == 15
    assert probe.successes and not probe.failures
    entry = lab.control.upgrade_log()[-1]
    assert (entry["upgrade"], entry["ok"], entry["down_at"], entry["pg_upgrade_seconds"]) == (
        "major", False, None, None)
    assert entry["check_seconds"] > 0
    by_check = {blocker["check"]: blocker for blocker in entry["blockers"]}
    assert set(by_check) == {"extension_versions", "logical_replication_slots", "pg_upgrade"}
    assert by_check["extension_versions"]["objects"] == ["app: pgcrypto 1.3"]
    assert by_check["logical_replication_slots"]["objects"] == ["cdc"]
    assert "reg* data types" in by_check["pg_upgrade"]["message"]
    assert "public.routines.handler" in by_check["pg_upgrade"]["objects"]
    failed = [m for m in _messages(rds) if m.startswith("Database instance is in a state that cannot be upgraded: ")]
    assert len(failed) == 1 and all(word in failed[0] for word in ("pgcrypto", "reg* data types", "cdc"))
    assert "Upgrade in progress: Performing online pre-upgrade checks." in _messages(rds)
    assert "DB instance shutdown" not in _messages(rds)[_messages(rds).index(
        "Upgrade in progress: Performing online pre-upgrade checks."):]
    logs = rds.describe_db_log_files(DBInstanceIdentifier=INSTANCE, FilenameContains="pg_upgrade_precheck")
    (log_file,) = logs["DescribeDBLogFiles"]
    assert log_file["LogFileName"].startswith("error/pg_upgrade_precheck.log.")
    text = rds.download_db_log_file_portion(DBInstanceIdentifier=INSTANCE,
                                            LogFileName=log_file["LogFileName"])["LogFileData"]
    assert "pgcrypto 1.3" in text and "Checking data type usage" in text
    query(conn, "DROP TABLE routines")
    query(conn, "DROP EXTENSION pgcrypto")
    query(conn, "SELECT pg_drop_replication_slot('cdc')")
    conn.close()


def test_major_upgrade_runs_pg_upgrade_with_an_outage(lab, legacy):
    rds = lab.client()
    requested = time.time()
    with Prober(legacy) as probe:
        rds.modify_db_instance(DBInstanceIdentifier=INSTANCE, EngineVersion="18.6", AllowMajorVersionUpgrade=True,
                               ApplyImmediately=True)
        upgraded = wait_instance(rds, INSTANCE, "available", timeout=120)
        time.sleep(0.2)
    assert "upgrading" in upgraded["_seen"]
    assert upgraded["EngineVersion"] == "18.6"
    assert upgraded["DBParameterGroups"][0]["DBParameterGroupName"] == "default.postgres18"
    assert upgraded["Endpoint"] == legacy["Endpoint"]
    entry = lab.control.upgrade_log()[-1]
    assert (entry["upgrade"], entry["from_version"], entry["to_version"], entry["ok"], entry["blockers"]) == (
        "major", "15.10", "18.6", True, [])
    assert requested <= entry["requested_at"] < entry["down_at"] < entry["up_at"] <= entry["finished_at"]
    assert 0 < entry["pg_upgrade_seconds"] < entry["up_at"] - entry["down_at"]
    assert entry["check_seconds"] > 0
    outage = [at for at in probe.failures if entry["down_at"] - 0.2 <= at <= entry["up_at"]]
    assert outage and not [at for at in probe.failures if at < entry["down_at"] - 0.2], probe.failures
    messages = _messages(rds)
    expected = ["Upgrade in progress: Performing online pre-upgrade checks.", "DB instance shutdown",
                "Upgrade in progress: Upgrading database engine from 15.10 to 18.6.", "DB instance restarted",
                "Updated to use DBParameterGroup default.postgres18",
                "Database instance upgraded from engine version 15.10 to 18.6."]
    tail = messages[len(messages) - messages[::-1].index(expected[0]) - 1:]
    assert [m for m in tail if m in expected] == expected

    conn = connect_instance(upgraded, user=MASTER_USER, password=MASTER_PASSWORD)
    assert query(conn, "SHOW server_version")[0][0] == "18.6"
    assert query(conn, "SELECT count(*), max(id) FROM orders")[0] == (40, 40)
    query(conn, "INSERT INTO orders (note) VALUES ('after')")  # the sequence carried over
    assert query(conn, "SELECT max(id) FROM orders")[0][0] == 41
    # Extensions keep their installed version; the new one is an ALTER EXTENSION away, as RDS leaves it.
    assert query(conn, "SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements'")[0][0] == "1.10"
    query(conn, "ALTER EXTENSION pg_stat_statements UPDATE")
    assert query(conn, "SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements'")[0][0] == "1.12"
    assert query(conn, "SELECT count(*) >= 0 FROM pg_stat_statements")[0][0] is True
    conn.close()


def test_an_idle_18_instance_reports_its_latest_restorable_time_at_once(lab, legacy):
    """LatestRestorableTime switches WAL and waits for the archive. Describing an idle server again switches
    nothing: the wait must name the last segment archived (PostgreSQL 17 changed what pg_walfile_name() says of a
    segment boundary; the lab used to wait 15 s for a segment never archived, then answer an older time)."""
    rds = lab.client()
    for _attempt in range(3):  # the first may switch a segment; the next ones find nothing written since
        before = datetime.now(timezone.utc)
        started = time.monotonic()
        described = describe_instance(rds, INSTANCE)
        took = time.monotonic() - started
        assert described["EngineVersion"] == "18.6"
        assert described["LatestRestorableTime"] >= before, (described["LatestRestorableTime"], before)
        assert took < 8, f"describe of an idle 18 instance took {took:.1f}s (archive wait timed out?)"


def test_upgraded_snapshots_and_new_18_instances_run_postgres_18(lab, legacy):
    rds = lab.client()
    if lab.fidelity:  # only to go faster: on plain moto the test fails on its behaviour
        lab.control.set_timing(restore=0)
    rds.create_db_snapshot(DBInstanceIdentifier=INSTANCE, DBSnapshotIdentifier="legacy-18")
    snapshot = rds.describe_db_snapshots(DBSnapshotIdentifier="legacy-18")["DBSnapshots"][0]
    assert snapshot["EngineVersion"] == "18.6"
    # The automated snapshot taken at creation, before the upgrade, still holds 15 and its (empty) data.
    (automated,) = rds.describe_db_snapshots(DBInstanceIdentifier=INSTANCE, SnapshotType="automated")["DBSnapshots"]
    assert automated["EngineVersion"] == "15.7"
    requests = [
        ("restore_db_instance_from_db_snapshot", dict(DBInstanceIdentifier="legacy-copy",
                                                      DBSnapshotIdentifier="legacy-18")),
        ("restore_db_instance_from_db_snapshot", dict(DBInstanceIdentifier="legacy-born",
                                                      DBSnapshotIdentifier=automated["DBSnapshotIdentifier"])),
        ("create_db_instance", dict(DBInstanceIdentifier="fresh18", Engine="postgres", EngineVersion="18",
                                    DBInstanceClass="db.t3.micro", MasterUsername=MASTER_USER,
                                    MasterUserPassword=MASTER_PASSWORD, DBName="app", AllocatedStorage=20)),
    ]
    with ThreadPoolExecutor(len(requests)) as pool:  # each builds a PostgreSQL inside its request: side by side
        for future in [pool.submit(lambda call: getattr(lab.client(), call[0])(**call[1]), call) for call in requests]:
            future.result()
    restored = wait_instance(rds, "legacy-copy", "available", timeout=90)
    fresh = wait_instance(rds, "fresh18", "available", timeout=90)
    born = wait_instance(rds, "legacy-born", "available", timeout=90)
    assert born["EngineVersion"] == "15.7"
    conn = connect_instance(born)
    assert query(conn, "SELECT current_setting('server_version_num')::int / 10000")[0][0] == 15
    assert query(conn, "SELECT to_regclass('public.orders')")[0][0] is None
    conn.close()
    assert (restored["EngineVersion"], fresh["EngineVersion"]) == ("18.6", "18.6")
    assert fresh["DBParameterGroups"][0]["DBParameterGroupName"] == "default.postgres18"
    for instance, orders in ((restored, 41), (fresh, None)):
        conn = connect_instance(instance)
        assert query(conn, "SHOW server_version")[0][0] == "18.6"
        if orders is None:
            assert query(conn, "SELECT to_regclass('public.orders')")[0][0] is None
            assert query(conn, "SELECT pg_has_role('rds_superuser', 'MEMBER')")[0][0] is True
        else:
            assert query(conn, "SELECT count(*) FROM orders")[0][0] == orders
        conn.close()


def test_read_replicas_and_their_sources_are_refused_before_any_change():
    """The lab does not upgrade replicas with their primary as RDS does: it refuses, before anything changes."""
    from moto.rds.exceptions import InvalidParameterCombination

    from tests.lab.fidelity.upgrades import plan_upgrade

    source = SimpleNamespace(db_instance_identifier="orders", engine_version="15.7", replicas=["orders-r1"],
                             is_replica=False, source_db_instance_identifier=None)
    replica = SimpleNamespace(db_instance_identifier="orders-r1", engine_version="15.7", replicas=[],
                              is_replica=True, source_db_instance_identifier="orders")
    for database, version in ((source, "18.6"), (replica, "18.6"), (source, "15.10")):
        with pytest.raises(InvalidParameterCombination) as refused:
            plan_upgrade(None, database, version, True, None)
        assert f"does not upgrade DB instance {database.db_instance_identifier}: it has read replicas" in str(
            refused.value)
    assert plan_upgrade(None, replica, "15", True, None) is None  # its own major: nothing to do, nothing refused
