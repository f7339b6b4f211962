# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""No secret in any SQL the drills send: with every statement logged (log_statement=all) and pg_stat_statements
installed, the drills' login_password appears neither in the PostgreSQL server log nor in pg_stat_statements, of the
failover drill's instance nor of the restore drill's restored instance, while the drills' own statements (the probe
table and its INSERTs, the checks, freshness_sql) do: so the logs looked at really record what the drills sent.

The restore drill runs with ``cleanup: never`` so that its restored instance can be read; the test deletes it.
"""

import psycopg2
import pytest

from tests.integration.failover_support import PROBE_TABLE
from tests.integration.failover_support import drill
from tests.integration.failover_support import instance_available
from tests.integration.failover_support import run_tasks
from tests.integration.failover_support import wait_for
from tests.integration.test_rds_restore_drill import drill_args
from tests.integration.test_rds_restore_drill import gone
from tests.integration.test_rds_restore_drill import run_drill
from tests.integration.test_rds_restore_drill import wait_snapshot

SECRET = "Sq1-Drill-Secret-4711"
SOURCE, SNAPSHOT, TARGET, LOG_ALL = "sec-source", "sec-source-snap", "sec-restored", "sec-log-all"
# The markers are in comments: pg_stat_statements replaces constants with $n but keeps the text around them.
CHECK_SQL = "SELECT count(*) /* sec-check-marker */ FROM orders WHERE note = 'sec-check-marker'"
FRESHNESS_SQL = "SELECT max(created_at) /* sec-freshness-marker */ FROM orders"


def connect(rds, identifier):
    endpoint = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]["Endpoint"]
    conn = psycopg2.connect(host=endpoint["Address"], port=endpoint["Port"], user="master", password=SECRET,
                            dbname="postgres", connect_timeout=5)
    conn.autocommit = True
    return conn


def run_sql(rds, identifier, statement):
    conn = connect(rds, identifier)
    try:
        with conn.cursor() as cursor:
            cursor.execute(statement)
            return cursor.fetchall() if cursor.description else None
    finally:
        conn.close()


def recorded(lab, rds, identifier):
    """(the server log, the statements in pg_stat_statements) of an instance, and its log_statement setting."""
    statements = [row[0] for row in run_sql(rds, identifier, "SELECT query FROM pg_stat_statements")]
    setting = run_sql(rds, identifier, "SHOW log_statement")[0][0]
    return lab.control.server_log(identifier), statements, setting


@pytest.fixture(scope="module")
def source(lab):
    """A Multi-AZ instance whose parameter group logs every statement, with pg_stat_statements, 100 rows of
    ``orders`` (5 marked for the check) and the manual snapshot SNAPSHOT."""
    lab.control.reset()
    rds = lab.client("rds")
    rds.create_db_parameter_group(DBParameterGroupName=LOG_ALL, DBParameterGroupFamily="postgres15",
                                  Description="log every statement")
    rds.modify_db_parameter_group(DBParameterGroupName=LOG_ALL, Parameters=[
        {"ParameterName": "log_statement", "ParameterValue": "all", "ApplyMethod": "immediate"}])
    rds.create_db_instance(DBInstanceIdentifier=SOURCE, Engine="postgres", DBInstanceClass="db.t3.micro",
                           AllocatedStorage=20, MultiAZ=True, AvailabilityZone="us-east-1a",
                           MasterUsername="master", MasterUserPassword=SECRET, BackupRetentionPeriod=1,
                           DBParameterGroupName=LOG_ALL)
    wait_for(lambda: instance_available(rds, SOURCE), what=f"{SOURCE} available")
    run_sql(rds, SOURCE, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    run_sql(rds, SOURCE, "CREATE TABLE orders (id serial PRIMARY KEY, note text, "
                         "created_at timestamptz NOT NULL DEFAULT clock_timestamp())")
    run_sql(rds, SOURCE, "INSERT INTO orders (note) SELECT CASE WHEN g <= 5 THEN 'sec-check-marker' END "
                         "FROM generate_series(1, 100) g")
    rds.create_db_snapshot(DBInstanceIdentifier=SOURCE, DBSnapshotIdentifier=SNAPSHOT)
    wait_snapshot(rds, SNAPSHOT)
    yield rds
    lab.control.reset()


@pytest.fixture
def kept_target(lab, source):
    """The restore drill's target, kept by ``cleanup: never``: deleted here, whatever the test saw."""
    lab.control.clear_faults()
    lab.control.reset_timing()
    lab.control.wait_jobs()
    yield TARGET
    if not gone(source, TARGET):
        source.delete_db_instance(DBInstanceIdentifier=TARGET, SkipFinalSnapshot=True, DeleteAutomatedBackups=True)
        wait_for(lambda: gone(source, TARGET), timeout=120, what=f"{TARGET} deleted")


def test_the_failover_drills_sql_carries_no_password(lab, source, tmp_path):
    lab.control.clear_faults()
    lab.control.set_timing(failover=1.0)
    wait_for(lambda: instance_available(source, SOURCE), what=f"{SOURCE} available")
    lab.control.wait_jobs()

    (result,) = run_tasks(lab, tmp_path, [drill(SOURCE, login_password=SECRET, wait_timeout=120)])

    assert result.get("failed") is not True, result.get("msg")
    assert result["passed"] is True and result["measurements"]["failover_happened"] is True
    wait_for(lambda: instance_available(source, SOURCE), timeout=120, what=f"{SOURCE} available after the drill")
    log, statements, setting = recorded(lab, source, SOURCE)
    assert setting == "all"
    # What the drill sent is there: its probe table, its probe writes (before and after the failover), the drop.
    assert f'CREATE TABLE "{PROBE_TABLE}"' in log
    assert f'INSERT INTO "{PROBE_TABLE}" (seq) VALUES' in log
    assert f'DROP TABLE "public"."{PROBE_TABLE}"' in log
    assert any(f'INSERT INTO "{PROBE_TABLE}"' in statement for statement in statements), statements
    assert SECRET not in log
    assert not [statement for statement in statements if SECRET in statement]


def test_the_restore_drills_sql_carries_no_password(lab, source, kept_target):
    lab.control.clear_calls()

    result = run_drill(lab, drill_args(
        SOURCE, login_user="master", login_password=SECRET, restore_from="snapshot", snapshot_identifier=SNAPSHOT,
        target_identifier=kept_target, cleanup="never", freshness_sql=FRESHNESS_SQL,
        checks=[{"name": "marked rows", "sql": CHECK_SQL, "expect": {"equals": 5}}]), timeout=300)

    assert result.get("failed") is not True, result.get("msg")
    assert result["passed"] is True and result["checks"][0]["observed"] == 5
    assert result["cleanup"]["kept"] == [kept_target] and not gone(source, kept_target)
    log, statements, setting = recorded(lab, source, kept_target)
    assert setting == "all", "the restored instance has the source's parameter group"
    assert CHECK_SQL in log and FRESHNESS_SQL in log
    assert any("sec-check-marker" in statement for statement in statements), statements
    assert any("sec-freshness-marker" in statement for statement in statements), statements
    assert SECRET not in log
    assert not [statement for statement in statements if SECRET in statement]
    # The drill never connects to its source: the source's log holds no password either.
    assert SECRET not in lab.control.server_log(SOURCE)
