# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Behaviour 8: DeletionProtection blocks deletes; SkipFinalSnapshot/FinalDBSnapshotIdentifier as on AWS; the
PostgreSQL and its files go."""

import psycopg2
import pytest
from botocore.exceptions import ClientError

from tests.lab.clients import connect_instance, create_postgres, query, wait_instance

pytestmark = pytest.mark.lab


def _code(call, **kwargs):
    with pytest.raises(ClientError) as error:
        call(**kwargs)
    return error.value.response["Error"]["Code"]


def test_deletion_rules(lab_clean):
    rds = lab_clean.client()
    if lab_clean.fidelity:
        lab_clean.control.set_timing(restore=0)  # the data is under test here, not the statuses
    instance = create_postgres(rds, "precious", DeletionProtection=True)
    conn = connect_instance(instance)
    query(conn, "CREATE TABLE keep (v text)")
    query(conn, "INSERT INTO keep VALUES ('last words')")
    conn.close()
    pg_dir = lab_clean.control.state()["postgres"]["db:precious"]["name"]

    assert _code(rds.delete_db_instance, DBInstanceIdentifier="precious", SkipFinalSnapshot=True) == \
        "InvalidParameterCombination"
    rds.modify_db_instance(DBInstanceIdentifier="precious", DeletionProtection=False, ApplyImmediately=True)
    assert _code(rds.delete_db_instance, DBInstanceIdentifier="precious") == "InvalidParameterCombination"
    assert _code(rds.delete_db_instance, DBInstanceIdentifier="precious", SkipFinalSnapshot=True,
                 FinalDBSnapshotIdentifier="precious-final") == "InvalidParameterCombination"

    deleted = rds.delete_db_instance(DBInstanceIdentifier="precious",
                                     FinalDBSnapshotIdentifier="precious-final")["DBInstance"]
    assert deleted["DBInstanceStatus"] == "deleting"
    assert _code(rds.describe_db_instances, DBInstanceIdentifier="precious") == "DBInstanceNotFound"
    with pytest.raises(psycopg2.OperationalError):
        connect_instance(instance, timeout=2)
    assert "db:precious" not in lab_clean.control.state()["postgres"]
    if lab_clean.state_dir:
        assert not (lab_clean.state_dir / "pg" / pg_dir).exists()

    snapshots = rds.describe_db_snapshots(DBInstanceIdentifier="precious")["DBSnapshots"]
    assert [s["DBSnapshotIdentifier"] for s in snapshots] == ["precious-final"], "automated backups are deleted"
    rds.restore_db_instance_from_db_snapshot(DBInstanceIdentifier="revived", DBSnapshotIdentifier="precious-final")
    revived = wait_instance(rds, "revived", "available")
    conn = connect_instance(revived)
    assert query(conn, "SELECT v FROM keep")[0][0] == "last words"
    conn.close()
