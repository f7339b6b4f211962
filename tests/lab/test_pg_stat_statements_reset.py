# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""As on RDS, members of rds_superuser (the master user among them) may run pg_stat_statements_reset(); others may not."""

import psycopg2
import pytest

from tests.lab.clients import connect_instance, create_postgres, query

pytestmark = pytest.mark.lab


def test_rds_superuser_members_reset_pg_stat_statements(lab_clean):
    rds = lab_clean.client()
    instance = create_postgres(rds, "stats")
    conn = connect_instance(instance)
    query(conn, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    query(conn, "SELECT pg_stat_statements_reset()")
    assert query(conn, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")[0][0] is False
    query(conn, "CREATE ROLE reader LOGIN PASSWORD 'reader-pass-1'")
    query(conn, "CREATE ROLE ops LOGIN PASSWORD 'ops-pass-1' IN ROLE rds_superuser")
    conn.close()

    ops = connect_instance(instance, user="ops", password="ops-pass-1")
    query(ops, "SELECT pg_stat_statements_reset()")
    ops.close()
    reader = connect_instance(instance, user="reader", password="reader-pass-1")
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        query(reader, "SELECT pg_stat_statements_reset()")
    reader.close()
