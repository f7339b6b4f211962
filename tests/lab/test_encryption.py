# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What encrypting an instance needs: encrypted restores, renames that move the endpoint, stop and start."""

import time

import botocore.exceptions
import pytest

from tests.lab.clients import connect_instance, create_postgres, describe_instance, query, wait_instance

pytestmark = pytest.mark.lab


def _wait_snapshot(rds, identifier, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        snapshot = rds.describe_db_snapshots(DBSnapshotIdentifier=identifier)["DBSnapshots"][0]
        if snapshot["Status"] == "available" or time.monotonic() > deadline:
            return snapshot
        time.sleep(0.1)


def _events(rds, identifier):
    return [e["Message"] for e in rds.describe_events(SourceType="db-instance", SourceIdentifier=identifier,
                                                      Duration=60)["Events"]]


def test_encrypt_by_copy_restore_and_rename(lab_clean):
    rds = lab_clean.client()
    key = lab_clean.client("kms").create_key(Description="lab encryption")["KeyMetadata"]
    source = create_postgres(rds, "shop")
    old_endpoint = (source["Endpoint"]["Address"], source["Endpoint"]["Port"])
    conn = connect_instance(source)
    query(conn, "CREATE TABLE orders (id int PRIMARY KEY)")
    query(conn, "INSERT INTO orders SELECT generate_series(1, 40)")
    conn.close()
    rds.create_db_snapshot(DBInstanceIdentifier="shop", DBSnapshotIdentifier="shop-final")
    rds.copy_db_snapshot(SourceDBSnapshotIdentifier="shop-final", TargetDBSnapshotIdentifier="shop-final-enc",
                         KmsKeyId=key["KeyId"])
    assert _wait_snapshot(rds, "shop-final-enc")["Encrypted"] is True

    # Restored from an encrypted snapshot: encrypted with the snapshot's key, holding the data.
    rds.restore_db_instance_from_db_snapshot(DBInstanceIdentifier="shop-enc", DBSnapshotIdentifier="shop-final-enc")
    restored = wait_instance(rds, "shop-enc", "available")
    assert restored["StorageEncrypted"] is True
    assert restored["KmsKeyId"] == key["Arn"]
    with connect_instance(restored) as copy_conn:
        assert query(copy_conn, "SELECT count(*) FROM orders")[0][0] == 40
    copy_conn.close()

    # A rename to a name in use is refused; the old instance gives its name up at once.
    with pytest.raises(botocore.exceptions.ClientError) as taken:
        rds.modify_db_instance(DBInstanceIdentifier="shop", NewDBInstanceIdentifier="shop-enc", ApplyImmediately=True)
    assert taken.value.response["Error"]["Code"] == "DBInstanceAlreadyExists"
    rds.modify_db_instance(DBInstanceIdentifier="shop", NewDBInstanceIdentifier="shop-old", ApplyImmediately=True)
    with pytest.raises(botocore.exceptions.ClientError) as gone:
        describe_instance(rds, "shop")
    assert gone.value.response["Error"]["Code"] == "DBInstanceNotFound"
    old = wait_instance(rds, "shop-old", "available", interval=0.05)
    assert "renaming" in old["_seen"]
    assert old["Endpoint"]["Port"] != old_endpoint[1]
    assert "Renamed DB instance from shop to shop-old" in _events(rds, "shop-old")

    # The encrypted instance takes the name, and with it the endpoint clients already use.
    rds.modify_db_instance(DBInstanceIdentifier="shop-enc", NewDBInstanceIdentifier="shop", ApplyImmediately=True)
    renamed = wait_instance(rds, "shop", "available", interval=0.05)
    assert "renaming" in renamed["_seen"]
    assert renamed["StorageEncrypted"] is True
    assert (renamed["Endpoint"]["Address"], renamed["Endpoint"]["Port"]) == old_endpoint
    with connect_instance(source) as client:  # the endpoint described before any of this
        assert query(client, "SELECT count(*) FROM orders")[0][0] == 40
        query(client, "INSERT INTO orders VALUES (41)")
    client.close()
    with connect_instance(old) as old_conn:
        assert query(old_conn, "SELECT count(*) FROM orders")[0][0] == 40
    old_conn.close()

    # Stop and start reach the real PostgreSQL.
    rds.stop_db_instance(DBInstanceIdentifier="shop-old")
    stopped = wait_instance(rds, "shop-old", "stopped")
    with pytest.raises(Exception):
        connect_instance(stopped, timeout=2)
    rds.start_db_instance(DBInstanceIdentifier="shop-old")
    started = wait_instance(rds, "shop-old", "available")
    with connect_instance(started) as again:
        assert query(again, "SELECT count(*) FROM orders")[0][0] == 40
    again.close()
    messages = _events(rds, "shop-old")
    assert "DB instance stopped" in messages and "DB instance started" in messages
