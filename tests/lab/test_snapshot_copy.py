# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Snapshot copies: encrypted with a KMS key of the target region, across regions, holding the data, taking time."""

from datetime import datetime, timedelta, timezone

import pytest
from botocore.exceptions import ClientError

from tests.lab.clients import connect_instance, create_postgres, query, wait_instance

pytestmark = pytest.mark.lab
WEST = "us-west-2"


def _snapshot(rds, identifier: str) -> dict:
    return rds.describe_db_snapshots(DBSnapshotIdentifier=identifier)["DBSnapshots"][0]


def _wait_snapshot(rds, identifier: str, timeout: float = 30) -> list:
    """Poll until available; the (status, PercentProgress) pairs seen."""
    import time
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        snapshot = _snapshot(rds, identifier)
        pair = (snapshot["Status"], snapshot.get("PercentProgress"))
        if not seen or seen[-1] != pair:
            seen.append(pair)
        if snapshot["Status"] == "available":
            return seen
        assert time.monotonic() < deadline, f"{identifier} not available after {timeout}s: {seen}"
        time.sleep(0.1)


def _rows(rds, snapshot_id: str, instance_id: str) -> list:
    rds.restore_db_instance_from_db_snapshot(DBInstanceIdentifier=instance_id, DBSnapshotIdentifier=snapshot_id)
    restored = wait_instance(rds, instance_id, "available")
    conn = connect_instance(restored)
    try:
        return [r[0] for r in query(conn, "SELECT id FROM orders ORDER BY id")]
    finally:
        conn.close()


def test_copies_are_encrypted_with_a_key_of_their_region_and_hold_the_data(lab_clean):
    rds, rds_west = lab_clean.client(), lab_clean.client("rds", region=WEST)
    kms, kms_west = lab_clean.client("kms"), lab_clean.client("kms", region=WEST)
    if lab_clean.fidelity:
        lab_clean.control.set_timing(restore=0, snapshot_copy=1.5)
    east_key = kms.create_key(Description="east")["KeyMetadata"]
    west_key = kms_west.create_key(Description="dr")["KeyMetadata"]
    kms_west.create_alias(AliasName="alias/dr", TargetKeyId=west_key["KeyId"])

    source = create_postgres(rds, "shop")
    conn = connect_instance(source)
    query(conn, "CREATE TABLE orders (id int PRIMARY KEY)")
    query(conn, "INSERT INTO orders SELECT generate_series(1, 30)")
    conn.close()
    plain = rds.create_db_snapshot(DBInstanceIdentifier="shop", DBSnapshotIdentifier="shop-30")["DBSnapshot"]
    assert plain["Encrypted"] is False

    # A key unknown in the region of the copy is refused, as AWS refuses it (a us-west-2 key in us-east-1 too).
    for key in ("0b7a0c4e-1111-2222-3333-444455556666", "alias/nope", west_key["Arn"]):
        with pytest.raises(ClientError) as refused:
            rds.copy_db_snapshot(SourceDBSnapshotIdentifier="shop-30", TargetDBSnapshotIdentifier="bad",
                                 KmsKeyId=key)
        assert refused.value.response["Error"]["Code"] == "KMSKeyNotAccessibleFault"

    # Same region, with a key: encrypted with that key; the copy takes time and shows its progress.
    copied = rds.copy_db_snapshot(SourceDBSnapshotIdentifier="shop-30", TargetDBSnapshotIdentifier="shop-30-enc",
                                  KmsKeyId=east_key["KeyId"])["DBSnapshot"]
    assert copied["Encrypted"] is True and copied["KmsKeyId"] == east_key["Arn"]
    assert copied["Status"] == "creating"
    seen = _wait_snapshot(rds, "shop-30-enc")
    assert seen[0][0] == "creating" and seen[0][1] < 100 and seen[-1] == ("available", 100)

    # A copy of the encrypted copy, without a key, keeps its key.
    rds.copy_db_snapshot(SourceDBSnapshotIdentifier="shop-30-enc", TargetDBSnapshotIdentifier="shop-30-enc-2")
    again = _snapshot(rds, "shop-30-enc-2")
    assert again["Encrypted"] is True and again["KmsKeyId"] == east_key["Arn"]

    # Across regions: the ARN of the source, SourceRegion (boto3 adds PreSignedUrl) and a key of the target region.
    source_arn = _snapshot(rds, "shop-30-enc")["DBSnapshotArn"]
    with pytest.raises(ClientError) as keyless:
        rds_west.copy_db_snapshot(SourceDBSnapshotIdentifier=source_arn, TargetDBSnapshotIdentifier="dr-keyless",
                                  SourceRegion="us-east-1")
    assert keyless.value.response["Error"]["Code"] == "InvalidParameterValue"
    with pytest.raises(ClientError) as east_in_west:
        rds_west.copy_db_snapshot(SourceDBSnapshotIdentifier=source_arn, TargetDBSnapshotIdentifier="dr-east-key",
                                  KmsKeyId=east_key["KeyId"], SourceRegion="us-east-1")
    assert east_in_west.value.response["Error"]["Code"] == "KMSKeyNotAccessibleFault"
    dr = rds_west.copy_db_snapshot(SourceDBSnapshotIdentifier=source_arn, TargetDBSnapshotIdentifier="shop-30-dr",
                                   KmsKeyId="alias/dr", SourceRegion="us-east-1",
                                   Tags=[{"Key": "dbre:copy-of", "Value": "shop-30-enc"}])["DBSnapshot"]
    assert dr["Encrypted"] is True and dr["KmsKeyId"] == west_key["Arn"]
    assert dr["SourceRegion"] == "us-east-1" and dr["SourceDBSnapshotIdentifier"] == source_arn
    assert dr["DBSnapshotArn"].split(":")[3] == WEST
    assert [s["DBSnapshotIdentifier"] for s in rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]
            if s["DBSnapshotIdentifier"] == "shop-30-dr"] == []
    _wait_snapshot(rds_west, "shop-30-dr")
    messages = [e["Message"] for e in rds_west.describe_events(SourceType="db-snapshot",
                                                               SourceIdentifier="shop-30-dr")["Events"]]
    assert messages == ["Started copy of snapshot shop-30-enc from region us-east-1",
                        "Finished copy of snapshot shop-30-enc from region us-east-1"]
    assert rds.describe_events(SourceType="db-snapshot", SourceIdentifier="shop-30-dr")["Events"] == []

    # Every copy holds the data, on its own: the source goes, the copies still restore with the rows.
    rds.delete_db_snapshot(DBSnapshotIdentifier="shop-30-enc-2")
    rds.delete_db_snapshot(DBSnapshotIdentifier="shop-30-enc")
    assert _rows(rds_west, "shop-30-dr", "dr-restored") == list(range(1, 31))
    restored = rds_west.describe_db_instances(DBInstanceIdentifier="dr-restored")["DBInstances"][0]
    assert restored["StorageEncrypted"] is True and restored["KmsKeyId"] == west_key["Arn"]


def test_deleting_a_snapshot_being_copied_ends_the_copy_and_ages_can_be_set(lab_clean):
    rds, rds_west = lab_clean.client(), lab_clean.client("rds", region=WEST)
    if lab_clean.fidelity:
        lab_clean.control.set_timing(snapshot_copy=30)
    create_postgres(rds, "ledger")
    rds.create_db_snapshot(DBInstanceIdentifier="ledger", DBSnapshotIdentifier="ledger-1")
    arn = _snapshot(rds, "ledger-1")["DBSnapshotArn"]
    rds_west.copy_db_snapshot(SourceDBSnapshotIdentifier=arn, TargetDBSnapshotIdentifier="ledger-1-dr",
                              SourceRegion="us-east-1")
    copying = _snapshot(rds_west, "ledger-1-dr")
    assert copying["Status"] == "creating" and copying["SourceDBSnapshotIdentifier"] == arn
    # A snapshot that is not available can be neither copied nor deleted.
    with pytest.raises(ClientError) as busy:
        rds_west.delete_db_snapshot(DBSnapshotIdentifier="ledger-1-dr")
    assert busy.value.response["Error"]["Code"] == "InvalidDBSnapshotState"
    with pytest.raises(ClientError) as not_ready:
        rds_west.copy_db_snapshot(SourceDBSnapshotIdentifier="ledger-1-dr", TargetDBSnapshotIdentifier="x")
    assert not_ready.value.response["Error"]["Code"] == "InvalidDBSnapshotState"
    # Deleting the source terminates the copy in progress.
    rds.delete_db_snapshot(DBSnapshotIdentifier="ledger-1")
    with pytest.raises(ClientError) as gone:
        rds_west.describe_db_snapshots(DBSnapshotIdentifier="ledger-1-dr")
    assert gone.value.response["Error"]["Code"] == "DBSnapshotNotFound"

    # The lab dates a snapshot in the past (for retention tests): SnapshotCreateTime as if taken then.
    rds.create_db_snapshot(DBInstanceIdentifier="ledger", DBSnapshotIdentifier="ledger-old")
    old = datetime.now(timezone.utc) - timedelta(days=40)
    lab_clean.control.set_snapshot_create_time("ledger-old", old)
    described = _snapshot(rds, "ledger-old")
    assert abs((described["SnapshotCreateTime"] - old).total_seconds()) < 1
