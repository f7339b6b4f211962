# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A point-in-time restore by resource id restores THAT instance or cluster; an unknown id is not found."""

import pytest
from botocore.exceptions import ClientError

from tests.lab.clients import (MASTER_PASSWORD, MASTER_USER, connect, connect_instance, create_postgres, query,
                               wait_cluster, wait_instance)

pytestmark = pytest.mark.lab


def _error_code(call, **kwargs):
    with pytest.raises(ClientError) as error:
        call(**kwargs)
    return error.value.response["Error"]["Code"]


def test_instance_restore_by_dbi_resource_id(lab_clean):
    rds = lab_clean.client()
    if lab_clean.fidelity:
        lab_clean.control.set_timing(restore=0)
    first = create_postgres(rds, "first")
    second = create_postgres(rds, "second")
    assert first["DbiResourceId"] != second["DbiResourceId"]
    conn = connect_instance(second)
    query(conn, "CREATE TABLE only_in_second (id int)")
    conn.close()

    rds.restore_db_instance_to_point_in_time(SourceDbiResourceId=second["DbiResourceId"],
                                             TargetDBInstanceIdentifier="second-copy", UseLatestRestorableTime=True)
    copy_conn = connect_instance(wait_instance(rds, "second-copy", "available"))
    assert query(copy_conn, "SELECT to_regclass('public.only_in_second') IS NOT NULL")[0][0] is True
    copy_conn.close()
    assert _error_code(rds.restore_db_instance_to_point_in_time, SourceDbiResourceId="db-NOSUCHRESOURCE",
                       TargetDBInstanceIdentifier="nowhere", UseLatestRestorableTime=True) == "DBInstanceNotFound"


def test_cluster_restore_by_cluster_resource_id(lab_clean):
    rds = lab_clean.client()
    if lab_clean.fidelity:
        lab_clean.control.set_timing(restore=0)
    common = dict(Engine="aurora-postgresql", EngineVersion="15.4", MasterUsername=MASTER_USER,
                  MasterUserPassword=MASTER_PASSWORD, DatabaseName="app")
    rds.create_db_cluster(DBClusterIdentifier="first", **common)
    rds.create_db_cluster(DBClusterIdentifier="second", **common)
    wait_cluster(rds, "first")
    second = wait_cluster(rds, "second")
    conn = connect(second["Endpoint"], second["Port"])
    query(conn, "CREATE TABLE only_in_second (id int)")
    conn.close()

    rds.restore_db_cluster_to_point_in_time(SourceDbClusterResourceId=second["DbClusterResourceId"],
                                            DBClusterIdentifier="second-copy", UseLatestRestorableTime=True)
    copy = wait_cluster(rds, "second-copy")
    copy_conn = connect(copy["Endpoint"], copy["Port"])
    assert query(copy_conn, "SELECT to_regclass('public.only_in_second') IS NOT NULL")[0][0] is True
    copy_conn.close()
    assert _error_code(rds.restore_db_cluster_to_point_in_time, SourceDbClusterResourceId="cluster-NOSUCH",
                       DBClusterIdentifier="nowhere", UseLatestRestorableTime=True) == "DBClusterNotFoundFault"
