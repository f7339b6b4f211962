# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Server log: ``LabControl.server_log(identifier)`` is the text of the PostgreSQL server log behind an instance or an
Aurora cluster, so a test can check what reached it (and that no password did); DescribeDBLogFiles and
DownloadDBLogFilePortion serve the same log as RDS does (``error/postgresql.log.<date-hour>``)."""

import re

import psycopg2
import pytest
from botocore.exceptions import ClientError

from tests.lab.clients import MASTER_PASSWORD, connect_instance, create_postgres, query, wait_cluster

pytestmark = pytest.mark.lab


def test_server_log_of_an_instance_holds_its_errors_and_no_password(lab_clean):
    rds, control = lab_clean.client(), lab_clean.control
    instance = create_postgres(rds, "logged")
    conn = connect_instance(instance)
    with pytest.raises(psycopg2.errors.UndefinedTable):
        query(conn, "SELECT * FROM table_marker_4711")
    conn.close()
    with pytest.raises(psycopg2.OperationalError):
        connect_instance(instance, password="wrong-password-0815")

    text = control.server_log("logged")
    assert "database system is ready to accept connections" in text
    assert 'relation "table_marker_4711" does not exist' in text
    assert 'password authentication failed for user "master"' in text
    assert MASTER_PASSWORD not in text and "wrong-password-0815" not in text


def test_server_log_of_an_aurora_cluster(lab_clean):
    rds, control = lab_clean.client(), lab_clean.control
    rds.create_db_cluster(DBClusterIdentifier="aurora-logged", Engine="aurora-postgresql",
                          MasterUsername="master", MasterUserPassword=MASTER_PASSWORD)
    wait_cluster(rds, "aurora-logged")
    assert "database system is ready to accept connections" in control.server_log("aurora-logged")
    with pytest.raises(Exception, match="no DB instance or cluster"):
        control.server_log("no-such-instance")


def test_describe_db_log_files_and_download_portions(lab_clean):
    rds, control = lab_clean.client(), lab_clean.control
    instance = create_postgres(rds, "rotated")
    conn = connect_instance(instance)
    with pytest.raises(psycopg2.errors.UndefinedTable):
        query(conn, "SELECT * FROM download_marker_2342")
    conn.close()

    files = rds.describe_db_log_files(DBInstanceIdentifier="rotated")["DescribeDBLogFiles"]
    assert files and all(re.fullmatch(r"error/postgresql\.log\.\d{4}-\d{2}-\d{2}-\d{2}", f["LogFileName"])
                         for f in files)
    assert all(f["Size"] > 0 and f["LastWritten"] > 0 for f in files)
    downloaded, marker = "", "0"
    while True:
        portion = rds.download_db_log_file_portion(DBInstanceIdentifier="rotated", LogFileName=files[-1]["LogFileName"],
                                                   Marker=marker, NumberOfLines=5)
        downloaded += portion.get("LogFileData", "")
        marker = portion["Marker"]
        if not portion["AdditionalDataPending"]:
            break
    assert 'relation "download_marker_2342" does not exist' in downloaded
    assert downloaded in control.server_log("rotated")
    # Without a marker: the most recent lines (the server may log a checkpoint meanwhile: compare before and after).
    last_two = [control.server_log("rotated").splitlines(keepends=True)[-2:]]
    tail = rds.download_db_log_file_portion(DBInstanceIdentifier="rotated", LogFileName=files[-1]["LogFileName"],
                                            NumberOfLines=2)
    last_two.append(control.server_log("rotated").splitlines(keepends=True)[-2:])
    assert tail["LogFileData"] in ["".join(lines) for lines in last_two] and not tail["AdditionalDataPending"]
    with pytest.raises(ClientError) as missing:
        rds.download_db_log_file_portion(DBInstanceIdentifier="rotated", LogFileName="error/postgresql.log.1999")
    assert missing.value.response["Error"]["Code"] == "DBLogFileNotFoundFault"


def test_the_master_password_set_by_the_control_plane_is_recorded_nowhere(lab_clean):
    """RDS sets and resets the master password outside SQL: with every statement logged and pg_stat_statements
    preloaded, neither the log nor the statistics hold it, at creation or after ModifyDBInstance resets it."""
    rds, control = lab_clean.client(), lab_clean.control
    rds.create_db_parameter_group(DBParameterGroupName="log-all", DBParameterGroupFamily="postgres15",
                                  Description="log every statement")
    rds.modify_db_parameter_group(DBParameterGroupName="log-all", Parameters=[
        {"ParameterName": "log_statement", "ParameterValue": "all", "ApplyMethod": "immediate"}])
    instance = create_postgres(rds, "quiet-master", DBParameterGroupName="log-all")
    rds.modify_db_instance(DBInstanceIdentifier="quiet-master", MasterUserPassword="reset-Secret-77",
                           ApplyImmediately=True)
    conn = connect_instance(instance, password="reset-Secret-77")  # the reset took effect
    assert query(conn, "SHOW log_statement") == [("all",)]
    query(conn, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    statements = query(conn, "SELECT query FROM pg_stat_statements")
    conn.close()
    assert statements, "pg_stat_statements records the instance's statements"
    text = control.server_log("quiet-master") + "\n".join(row[0] for row in statements)
    assert "SHOW log_statement" in text
    assert MASTER_PASSWORD not in text and "reset-Secret-77" not in text
