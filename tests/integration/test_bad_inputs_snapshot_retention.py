# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbre.rds.rds_snapshot_retention refuses bad inputs before its first mutating call, naming the problem and the fix.

Every case runs as a task of one playbook (tests/integration/bad_inputs.py) against a lab holding one instance
(``keep-db``) with an old unencrypted manual snapshot and a newer encrypted one, and a KMS key in us-west-2. For
each case the error must name the problem, the lab's call log must show only reads, and the lab must hold exactly
what it held before: every snapshot is still there and nothing was copied to us-west-2.
"""

import datetime

import pytest

from tests.integration.bad_inputs import assert_all_refused
from tests.integration.bad_inputs import run_module_cases
from tests.lab.clients import create_postgres

MODULE = "dbre.rds.rds_snapshot_retention"
DB = "keep-db"


def cases(west_key_arn, east_key_arn):
    def policy(**args):
        return dict({"db_instance_identifiers": [DB], "retention_days": 30}, **args)

    dr = dict(copy_to_region="us-west-2")
    return [
        {"id": "retention_zero", "args": policy(retention_days=0),
         "expect": ["retention_days must be at least 1 (got 0)"]},
        {"id": "keep_tag_empty_key", "args": policy(keep_tag={"key": "", "value": "true"}),
         "expect": ["keep_tag.key must not be empty"]},
        {"id": "unknown_identifier", "args": policy(db_instance_identifiers=[DB, "no-such-db"]),
         "expect": ["DB instance no-such-db does not exist", "check the identifier and the region"]},
        {"id": "two_selectors", "args": policy(tags={"retention": "daily"}),
         "expect": ["mutually exclusive", "db_instance_identifiers", "tags"]},
        {"id": "no_selector", "args": {"retention_days": 30},
         "expect": ["one of the following is required", "db_instance_identifiers"]},
        {"id": "all_false", "args": {"all": False, "retention_days": 30},
         "expect": ["give exactly one selector"]},
        {"id": "empty_tags", "args": {"tags": {}, "retention_days": 30}, "expect": ["tags is empty"]},
        {"id": "copy_to_same_region", "args": policy(copy_to_region="us-east-1", copy_kms_key_id=east_key_arn),
         "expect": ["copy_to_region us-east-1 is the region the snapshots are in"]},
        {"id": "unknown_kms_key_in_copy_region",
         "args": policy(copy_kms_key_id="0b7a0c4e-1111-2222-3333-444455556666", **dr),
         "expect": ["copy_kms_key_id 0b7a0c4e-1111-2222-3333-444455556666 does not exist in us-west-2"]},
        {"id": "kms_key_of_the_source_region", "args": policy(copy_kms_key_id=east_key_arn, **dr),
         "expect": ["is a key of another region", "give a KMS key of us-west-2"]},
        {"id": "kms_key_without_copy_region", "args": policy(copy_kms_key_id=west_key_arn),
         "expect": ["copy_kms_key_id needs copy_to_region"]},
        {"id": "encrypted_snapshot_without_key", "args": policy(**dr),
         "expect": ["keep-db-enc are encrypted", "give copy_kms_key_id, a KMS key of us-west-2"]},
        {"id": "copy_keep_last_zero", "args": policy(copy_kms_key_id=west_key_arn, **dict(dr, copy_keep_last=0)),
         "expect": ["copy_keep_last must be at least 1"]},
    ]


@pytest.fixture(scope="module")
def keys(lab):
    lab.control.reset()
    rds = lab.client("rds")
    west_key = lab.client("kms", region="us-west-2").create_key(Description="dr")["KeyMetadata"]["Arn"]
    east_key = lab.client("kms").create_key(Description="east")["KeyMetadata"]["Arn"]
    lab.control.set_timing(snapshot_copy=0)
    create_postgres(rds, DB)
    rds.create_db_snapshot(DBInstanceIdentifier=DB, DBSnapshotIdentifier="keep-db-old")
    old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=90)
    lab.control.set_snapshot_create_time("keep-db-old", old)
    # The newest snapshot is encrypted (an encrypted copy of a fresh one): the one a DR copy would start from.
    rds.create_db_snapshot(DBInstanceIdentifier=DB, DBSnapshotIdentifier="keep-db-new")
    rds.copy_db_snapshot(SourceDBSnapshotIdentifier="keep-db-new", TargetDBSnapshotIdentifier="keep-db-enc",
                         KmsKeyId=east_key)
    rds.delete_db_snapshot(DBSnapshotIdentifier="keep-db-new")
    yield west_key, east_key
    lab.control.reset()


def test_bad_inputs_are_refused_before_any_change(lab, keys):
    refused = cases(*keys)
    results = assert_all_refused(lab, run_module_cases, MODULE, refused)
    assert len(results) >= len(refused)
    # Nothing reached the DR region either (the harness compares us-east-1).
    west = lab.client("rds", region="us-west-2")
    assert west.describe_db_snapshots()["DBSnapshots"] == []
    assert {s["DBSnapshotIdentifier"] for s in lab.client("rds").describe_db_snapshots(
        SnapshotType="manual")["DBSnapshots"]} == {"keep-db-old", "keep-db-enc"}
