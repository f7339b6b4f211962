# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Behaviour: logical replication as on RDS. With rds.logical_replication=1 the master user (a member of
rds_superuser and rds_replication, never a superuser) publishes FOR ALL TABLES, and the master user of another
instance subscribes; rows replicate. Without the parameter, wal_level stays replica and no logical slot can be made.
A login the master user makes a member of rds_replication (GRANT, or CREATE ROLE ... IN ROLE) may replicate at once,
as on RDS; here the subscription connects as such a login, not as the master user.
"""

import time

import psycopg2
import pytest

from tests.lab.clients import connect_instance, create_postgres, query

pytestmark = pytest.mark.lab


def test_master_user_replicates_between_instances(lab_clean):
    rds = lab_clean.client()
    rds.create_db_parameter_group(DBParameterGroupName="logical15", DBParameterGroupFamily="postgres15",
                                  Description="logical replication")
    rds.modify_db_parameter_group(DBParameterGroupName="logical15", Parameters=[
        {"ParameterName": "rds.logical_replication", "ParameterValue": "1", "ApplyMethod": "pending-reboot"}])
    source = create_postgres(rds, "pub", DBParameterGroupName="logical15")
    copy = create_postgres(rds, "sub")

    pub = connect_instance(source)
    assert query(pub, "SELECT rolsuper, rolreplication FROM pg_roles WHERE rolname = current_user") == [(False, True)]
    assert query(pub, "SHOW wal_level") == [("logical",)]
    query(pub, "CREATE TABLE orders (id int PRIMARY KEY, note text)")
    query(pub, "INSERT INTO orders SELECT g, 'before' FROM generate_series(1, 10) g")
    query(pub, "CREATE PUBLICATION everything FOR ALL TABLES")

    # A login for the subscription only: GRANT rds_replication is enough (no superuser sets REPLICATION on RDS).
    query(pub, "CREATE ROLE replicator LOGIN PASSWORD 'Replicat0r-pw'")
    assert query(pub, "SELECT rolreplication FROM pg_roles WHERE rolname = 'replicator'") == [(False,)]
    query(pub, "GRANT rds_replication TO replicator")
    query(pub, "GRANT SELECT ON orders TO replicator")
    assert query(pub, "SELECT rolreplication FROM pg_roles WHERE rolname = 'replicator'") == [(True,)]

    sub = connect_instance(copy)
    # Without rds.logical_replication the master user cannot use logical decoding (as on RDS).
    assert query(sub, "SELECT rolsuper, rolreplication FROM pg_roles WHERE rolname = current_user") == \
        [(False, False)]
    with pytest.raises(psycopg2.Error):
        query(sub, "SELECT pg_create_logical_replication_slot('nope', 'pgoutput')")
    query(sub, "CREATE TABLE orders (id int PRIMARY KEY, note text)")
    conninfo = (f"host={source['Endpoint']['Address']} port={source['Endpoint']['Port']} dbname=app "
                "user=replicator password=Replicat0r-pw")
    query(sub, f"CREATE SUBSCRIPTION follow CONNECTION '{conninfo}' PUBLICATION everything")
    query(pub, "INSERT INTO orders SELECT g, 'after' FROM generate_series(11, 15) g")
    query(pub, "UPDATE orders SET note = 'changed' WHERE id = 1")

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        rows = query(sub, "SELECT count(*), count(*) FILTER (WHERE note = 'changed') FROM orders")[0]
        if rows == (15, 1):
            break
        time.sleep(0.2)
    assert rows == (15, 1)

    # The master user manages the subscription and the publication to the end; the slot goes with the subscription.
    query(sub, "ALTER SUBSCRIPTION follow DISABLE")
    query(sub, "DROP SUBSCRIPTION follow")
    query(pub, "DROP PUBLICATION everything")
    assert query(pub, "SELECT count(*) FROM pg_replication_slots") == [(0,)]
    assert query(pub, "SELECT count(*) FROM pg_publication") == [(0,)]
    assert query(sub, "SELECT count(*) FROM pg_subscription") == [(0,)]
    # Anything else that needs a superuser still does.
    with pytest.raises(psycopg2.Error, match="permission denied"):
        query(sub, "ALTER SYSTEM SET work_mem = '8MB'")
    with pytest.raises(psycopg2.Error, match="superuser|pg_execute_server_program"):
        query(sub, "COPY orders FROM PROGRAM 'true'")
    pub.close()
    sub.close()
