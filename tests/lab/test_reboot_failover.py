# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Behaviour 5: reboot restarts PostgreSQL; ForceFailover fails a Multi-AZ instance over (outage, AZ swap,
events) and is refused on a single-AZ one; failover_db_cluster moves the Aurora writer."""

import time
from datetime import datetime, timedelta, timezone

import psycopg2
import pytest
from botocore.exceptions import ClientError

from tests.lab.clients import (
    MASTER_PASSWORD,
    MASTER_USER,
    connect,
    connect_instance,
    create_postgres,
    query,
    wait_cluster,
    wait_instance,
)

pytestmark = pytest.mark.lab


def _start_time(instance):
    conn = connect_instance(instance)
    try:
        return query(conn, "SELECT pg_postmaster_start_time()")[0][0]
    finally:
        conn.close()


def _messages(rds, source_type, identifier):
    events = rds.describe_events(SourceType=source_type, SourceIdentifier=identifier,
                                 StartTime=datetime.now(timezone.utc) - timedelta(minutes=5))["Events"]
    return [e["Message"] for e in events]


def test_reboot_and_forced_failover(lab_clean):
    rds = lab_clean.client()
    lab_clean.control.set_timing(reboot=0.3, failover=1.5)
    instance = create_postgres(rds, "mazdb", MultiAZ=True)
    assert instance["SecondaryAvailabilityZone"] != instance["AvailabilityZone"]
    before = _start_time(instance)

    rds.reboot_db_instance(DBInstanceIdentifier="mazdb")
    rebooted = wait_instance(rds, "mazdb", "available")
    assert "rebooting" in rebooted["_seen"]
    assert _start_time(rebooted) > before
    assert "DB instance restarted" in _messages(rds, "db-instance", "mazdb")

    answer = rds.reboot_db_instance(DBInstanceIdentifier="mazdb", ForceFailover=True)["DBInstance"]
    assert answer["DBInstanceStatus"] == "rebooting"
    refused = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            connect_instance(instance, timeout=1).close()
            if refused:
                break
        except psycopg2.OperationalError:
            refused += 1
        time.sleep(0.1)
    assert refused, "PostgreSQL never went down during the failover"
    failed_over = wait_instance(rds, "mazdb", "available")
    assert failed_over["AvailabilityZone"] == instance["SecondaryAvailabilityZone"]
    assert failed_over["SecondaryAvailabilityZone"] == instance["AvailabilityZone"]
    messages = _messages(rds, "db-instance", "mazdb")
    assert "Multi-AZ instance failover started" in messages
    assert "Multi-AZ instance failover completed" in messages
    log = lab_clean.control.failover_log()
    assert log[-1]["identifier"] == "mazdb" and log[-1]["completed_at"]


def test_force_failover_on_single_az_is_refused(lab_clean):
    rds = lab_clean.client()
    rds.create_db_instance(DBInstanceIdentifier="single", Engine="mysql", DBInstanceClass="db.t3.micro",
                           MasterUsername="admin", MasterUserPassword=MASTER_PASSWORD, AllocatedStorage=20)
    with pytest.raises(ClientError) as error:
        rds.reboot_db_instance(DBInstanceIdentifier="single", ForceFailover=True)
    assert error.value.response["Error"]["Code"] == "InvalidParameterCombination"


def test_aurora_failover_moves_the_writer(lab_clean):
    rds = lab_clean.client()
    lab_clean.control.set_timing(failover=1.0)
    cluster = rds.create_db_cluster(DBClusterIdentifier="aur", Engine="aurora-postgresql", EngineVersion="15.4",
                                    MasterUsername=MASTER_USER, MasterUserPassword=MASTER_PASSWORD,
                                    DatabaseName="app")["DBCluster"]
    for name, tier in (("aur-1", 1), ("aur-2", 2), ("aur-3", 0)):
        rds.create_db_instance(DBInstanceIdentifier=name, DBClusterIdentifier="aur", Engine="aurora-postgresql",
                               DBInstanceClass="db.r6g.large", PromotionTier=tier)
    cluster = wait_cluster(rds, "aur")
    assert cluster["Endpoint"] == "127.0.0.1" and cluster["ReaderEndpoint"] == "127.0.0.1"
    conn = connect(cluster["Endpoint"], cluster["Port"])
    assert query(conn, "SELECT current_user")[0][0] == MASTER_USER
    conn.close()
    # The writer serves the cluster's port; each reader is a hot standby on a port of its own.
    member = rds.describe_db_instances(DBInstanceIdentifier="aur-1")["DBInstances"][0]
    assert member["Endpoint"]["Port"] == cluster["Port"]
    reader = rds.describe_db_instances(DBInstanceIdentifier="aur-2")["DBInstances"][0]
    assert reader["Endpoint"]["Port"] != cluster["Port"]
    writers = [m["DBInstanceIdentifier"] for m in cluster["DBClusterMembers"] if m["IsClusterWriter"]]
    assert writers == ["aur-1"]

    rds.failover_db_cluster(DBClusterIdentifier="aur")
    assert wait_cluster(rds, "aur", "failing-over", timeout=5)
    cluster = wait_cluster(rds, "aur", "available")
    writers = [m["DBInstanceIdentifier"] for m in cluster["DBClusterMembers"] if m["IsClusterWriter"]]
    assert writers == ["aur-3"], "the highest-priority reader (tier 0) becomes the writer"
    messages = _messages(rds, "db-cluster", "aur")
    assert "Started cluster failover to DB instance: aur-3" in messages
    assert "Completed failover to DB instance: aur-3" in messages

    rds.failover_db_cluster(DBClusterIdentifier="aur", TargetDBInstanceIdentifier="aur-2")
    cluster = wait_cluster(rds, "aur", "available")
    assert [m["DBInstanceIdentifier"] for m in cluster["DBClusterMembers"] if m["IsClusterWriter"]] == ["aur-2"]
