# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rds.force_ssl: a dynamic RDS parameter (0/1, default 0 on postgres15); with 1 the PostgreSQL refuses connections
without TLS, from the start or as soon as the group's change is applied (no reboot)."""

import psycopg2
import pytest

from tests.lab.clients import MASTER_PASSWORD, MASTER_USER, create_postgres, describe_instance, wait_cluster

pytestmark = pytest.mark.lab


def _connect(instance: dict, sslmode: str):
    conn = psycopg2.connect(host=instance["Endpoint"]["Address"], port=instance["Endpoint"]["Port"],
                            user=MASTER_USER, password=MASTER_PASSWORD, dbname="app", connect_timeout=5,
                            sslmode=sslmode)
    conn.close()


def _force_ssl(rds, group: str, value: str) -> None:
    rds.modify_db_parameter_group(DBParameterGroupName=group, Parameters=[
        {"ParameterName": "rds.force_ssl", "ParameterValue": value, "ApplyMethod": "immediate"}])


def test_force_ssl_refuses_connections_without_tls(lab_clean):
    rds = lab_clean.client()
    rds.create_db_parameter_group(DBParameterGroupName="tls-only", DBParameterGroupFamily="postgres15",
                                  Description="rds.force_ssl")
    _force_ssl(rds, "tls-only", "1")
    user = rds.describe_db_parameters(DBParameterGroupName="tls-only", Source="user")["Parameters"]
    assert [(p["ParameterName"], p["ParameterValue"], p["ApplyType"], p["AllowedValues"]) for p in user] == [
        ("rds.force_ssl", "1", "dynamic", "0,1")]
    instance = create_postgres(rds, "forced", DBParameterGroupName="tls-only")

    with pytest.raises(psycopg2.OperationalError, match="no encryption"):
        _connect(instance, "disable")
    _connect(instance, "require")

    _force_ssl(rds, "tls-only", "0")
    _connect(instance, "disable")
    _force_ssl(rds, "tls-only", "1")
    with pytest.raises(psycopg2.OperationalError, match="no encryption"):
        _connect(instance, "disable")
    statuses = [g["ParameterApplyStatus"] for g in describe_instance(rds, "forced")["DBParameterGroups"]]
    assert statuses == ["in-sync"], "a dynamic parameter needs no reboot"


def test_force_ssl_in_an_aurora_cluster_parameter_group(lab_clean):
    rds = lab_clean.client()
    rds.create_db_cluster_parameter_group(DBClusterParameterGroupName="aurora-tls",
                                          DBParameterGroupFamily="aurora-postgresql15", Description="rds.force_ssl")
    rds.create_db_cluster(DBClusterIdentifier="tls-aurora", Engine="aurora-postgresql",
                          DBClusterParameterGroupName="aurora-tls", MasterUsername=MASTER_USER,
                          MasterUserPassword=MASTER_PASSWORD, DatabaseName="app")
    cluster = wait_cluster(rds, "tls-aurora")
    endpoint = {"Endpoint": {"Address": cluster["Endpoint"], "Port": cluster["Port"]}}
    _connect(endpoint, "disable")
    rds.modify_db_cluster_parameter_group(DBClusterParameterGroupName="aurora-tls", Parameters=[
        {"ParameterName": "rds.force_ssl", "ParameterValue": "1", "ApplyMethod": "immediate"}])
    with pytest.raises(psycopg2.OperationalError, match="no encryption"):
        _connect(endpoint, "disable")
    _connect(endpoint, "require")
