# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Behaviour 7: LatestRestorableTime comes from the WAL archive; a point-in-time restore replays to the time."""

import time

import pytest
from botocore.exceptions import ClientError

from tests.lab.clients import connect_instance, create_postgres, describe_instance, query, wait_instance

pytestmark = pytest.mark.lab


def test_restore_to_point_in_time(lab_clean):
    rds = lab_clean.client()
    if lab_clean.fidelity:
        lab_clean.control.set_timing(restore=0)  # the data is under test here, not the statuses
    source = create_postgres(rds, "events")
    conn = connect_instance(source)
    query(conn, "CREATE TABLE seen (id int)")
    query(conn, "INSERT INTO seen SELECT generate_series(1, 10)")
    time.sleep(0.2)
    target = describe_instance(rds, "events")["LatestRestorableTime"]
    time.sleep(0.2)
    query(conn, "INSERT INTO seen SELECT generate_series(11, 20)")
    conn.close()
    assert describe_instance(rds, "events")["LatestRestorableTime"] > target

    rds.restore_db_instance_to_point_in_time(SourceDBInstanceIdentifier="events",
                                             TargetDBInstanceIdentifier="events-then", RestoreTime=target)
    then = wait_instance(rds, "events-then", "available")
    then_conn = connect_instance(then)
    assert query(then_conn, "SELECT count(*) FROM seen")[0][0] == 10
    then_conn.close()

    rds.restore_db_instance_to_point_in_time(SourceDBInstanceIdentifier="events",
                                             TargetDBInstanceIdentifier="events-now", UseLatestRestorableTime=True)
    now = wait_instance(rds, "events-now", "available")
    now_conn = connect_instance(now)
    assert query(now_conn, "SELECT count(*) FROM seen")[0][0] == 20
    now_conn.close()

    with pytest.raises(ClientError) as error:
        rds.restore_db_instance_to_point_in_time(SourceDBInstanceIdentifier="events",
                                                 TargetDBInstanceIdentifier="events-both", RestoreTime=target,
                                                 UseLatestRestorableTime=True)
    assert error.value.response["Error"]["Code"] == "InvalidParameterCombination"
