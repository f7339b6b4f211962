# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Behaviour 6: snapshots hold data; restores hold exactly that data; Aurora cluster snapshots likewise."""

import pytest

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


def _rows(conn):
    return [r[0] for r in query(conn, "SELECT id FROM orders ORDER BY id")]


def test_restore_from_snapshot_holds_the_snapshot_data(lab_clean):
    rds = lab_clean.client()
    source = create_postgres(rds, "shop", MultiAZ=True, Tags=[{"Key": "team", "Value": "dbre"}])
    automated = rds.describe_db_snapshots(DBInstanceIdentifier="shop", SnapshotType="automated")["DBSnapshots"]
    assert len(automated) == 1
    conn = connect_instance(source)
    query(conn, "CREATE TABLE orders (id int PRIMARY KEY)")
    query(conn, "INSERT INTO orders SELECT generate_series(1, 50)")
    snapshot = rds.create_db_snapshot(DBInstanceIdentifier="shop", DBSnapshotIdentifier="shop-50",
                                      Tags=[{"Key": "kind", "Value": "manual"}])["DBSnapshot"]
    assert snapshot["SnapshotType"] == "manual"
    query(conn, "INSERT INTO orders SELECT generate_series(51, 80)")
    conn.close()

    if lab_clean.fidelity:
        # Long enough for the first describe to see it on a loaded machine (the 1 s default can pass while the
        # restore's response is still on its way).
        lab_clean.control.set_timing(restore=3)
    rds.restore_db_instance_from_db_snapshot(DBInstanceIdentifier="shop-copy", DBSnapshotIdentifier="shop-50",
                                             MultiAZ=False, Tags=[{"Key": "restored", "Value": "yes"}])
    restored = wait_instance(rds, "shop-copy", "available")
    assert "creating" in restored["_seen"]
    assert restored["MultiAZ"] is False
    assert {"Key": "restored", "Value": "yes"} in restored["TagList"]
    assert restored["Endpoint"]["Port"] != source["Endpoint"]["Port"]
    copy_conn = connect_instance(restored)
    assert _rows(copy_conn) == list(range(1, 51))
    copy_conn.close()

    # The automated snapshot taken at creation holds the empty database (its statuses are not under test here).
    if lab_clean.fidelity:
        lab_clean.control.set_timing(restore=0)
    rds.restore_db_instance_from_db_snapshot(DBInstanceIdentifier="shop-empty",
                                             DBSnapshotIdentifier=automated[0]["DBSnapshotIdentifier"])
    empty = wait_instance(rds, "shop-empty", "available")
    empty_conn = connect_instance(empty)
    assert query(empty_conn, "SELECT to_regclass('public.orders')")[0][0] is None
    empty_conn.close()


def test_cluster_snapshot_restore_has_no_instances_until_added(lab_clean):
    rds = lab_clean.client()
    if lab_clean.fidelity:
        lab_clean.control.set_timing(restore=0)  # the data is under test here, not the statuses
    rds.create_db_cluster(DBClusterIdentifier="ledger", Engine="aurora-postgresql", EngineVersion="15.4",
                          MasterUsername=MASTER_USER, MasterUserPassword=MASTER_PASSWORD, DatabaseName="app")
    cluster = wait_cluster(rds, "ledger")
    conn = connect(cluster["Endpoint"], cluster["Port"])
    query(conn, "CREATE TABLE orders (id int PRIMARY KEY)")
    query(conn, "INSERT INTO orders SELECT generate_series(1, 7)")
    rds.create_db_cluster_snapshot(DBClusterIdentifier="ledger", DBClusterSnapshotIdentifier="ledger-7")
    query(conn, "INSERT INTO orders VALUES (8)")
    conn.close()

    rds.restore_db_cluster_from_snapshot(DBClusterIdentifier="ledger-copy", SnapshotIdentifier="ledger-7",
                                         Engine="aurora-postgresql")
    restored = wait_cluster(rds, "ledger-copy")
    assert restored["DBClusterMembers"] == []
    rds.create_db_instance(DBInstanceIdentifier="ledger-copy-1", DBClusterIdentifier="ledger-copy",
                           Engine="aurora-postgresql", DBInstanceClass="db.r6g.large")
    member = wait_instance(rds, "ledger-copy-1", "available")
    copy_conn = connect_instance(member)
    assert _rows(copy_conn) == list(range(1, 8))
    copy_conn.close()
