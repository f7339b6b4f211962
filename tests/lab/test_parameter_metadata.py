# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Behaviour 1: engine parameter metadata, Source filters, engine defaults, reset (plain moto has none of it)."""

import pytest
from botocore.exceptions import ClientError

from tests.lab import parameter_metadata as meta

pytestmark = pytest.mark.lab


def _all_parameters(rds, **kwargs):
    parameters, marker = [], None
    while True:
        page = rds.describe_db_parameters(MaxRecords=100, **kwargs, **({"Marker": marker} if marker else {}))
        parameters += page["Parameters"]
        marker = page.get("Marker")
        if not marker:
            return parameters


def test_cache_matches_pg_settings():
    from tests.lab.postgres import engine_parameters
    live = meta.settings_row_subset(engine_parameters())
    cached = meta.settings_row_subset(meta.settings_rows())
    assert cached == live, "refresh tests/lab/data/pg15_settings.json from engine_parameters()"


def test_formulas_use_the_class_memory():
    micro, large = meta.instance_class_memory("db.t3.micro"), meta.instance_class_memory("db.r6g.large")
    assert micro < 1024 ** 3 and large < 16 * 1024 ** 3
    assert meta.evaluate_formula("{DBInstanceClassMemory/32768}", large) == large // 32768
    assert meta.evaluate_formula("LEAST({DBInstanceClassMemory/9531392},5000)", micro) == micro // 9531392
    assert meta.evaluate_formula("LEAST({DBInstanceClassMemory/9531392},5000)", 1024 ** 4) == 5000
    assert meta.evaluate_formula("GREATEST({DBInstanceClassMemory*1024/63963136},65536)", micro) == 65536
    assert meta.evaluate_formula("GREATEST({DBInstanceClassMemory/64371566592},3)", large) == 3
    assert meta.evaluate_formula("SUM({DBInstanceClassMemory/12038},-50003)", large) == large // 12038 - 50003


def test_group_lists_engine_metadata(lab_clean):
    rds = lab_clean.client()
    rds.create_db_parameter_group(DBParameterGroupName="meta", DBParameterGroupFamily="postgres15",
                                  Description="metadata")
    parameters = {p["ParameterName"]: p for p in _all_parameters(rds, DBParameterGroupName="meta")}
    assert len(parameters) > 300
    shared = parameters["shared_buffers"]
    assert shared["DataType"] == "integer" and shared["AllowedValues"] == "16-1073741823"
    assert shared["ApplyType"] == "static" and shared["IsModifiable"] is True
    assert shared["ParameterValue"] == "{DBInstanceClassMemory/32768}" and shared["Source"] == "system"
    assert shared["Description"].startswith("(8kB)")
    assert parameters["max_connections"]["ParameterValue"] == "LEAST({DBInstanceClassMemory/9531392},5000)"
    assert parameters["work_mem"]["ApplyType"] == "dynamic" and parameters["work_mem"]["Source"] == "engine-default"
    assert parameters["log_connections"]["DataType"] == "boolean"
    assert parameters["log_connections"]["AllowedValues"] == "0,1"
    assert parameters["random_page_cost"]["DataType"] == "float"
    assert "replica" in parameters["wal_level"]["AllowedValues"].split(",")
    assert parameters["port"]["IsModifiable"] is False
    assert parameters["rds.logical_replication"]["ApplyType"] == "static"
    assert parameters["rds.force_ssl"]["AllowedValues"] == "0,1"
    assert parameters["shared_preload_libraries"]["ParameterValue"] == "pg_stat_statements"


def test_source_filter_pagination_and_engine_defaults(lab_clean):
    rds = lab_clean.client()
    rds.create_db_parameter_group(DBParameterGroupName="paged", DBParameterGroupFamily="postgres15",
                                  Description="paging")
    rds.modify_db_parameter_group(DBParameterGroupName="paged", Parameters=[
        {"ParameterName": "work_mem", "ParameterValue": "8192", "ApplyMethod": "immediate"}])
    user = rds.describe_db_parameters(DBParameterGroupName="paged", Source="user")["Parameters"]
    assert [(p["ParameterName"], p["ParameterValue"]) for p in user] == [("work_mem", "8192")]
    system = {p["ParameterName"] for p in _all_parameters(rds, DBParameterGroupName="paged", Source="system")}
    assert {"shared_buffers", "max_connections", "maintenance_work_mem", "autovacuum_max_workers"} <= system
    first = rds.describe_db_parameters(DBParameterGroupName="paged", MaxRecords=20)
    assert len(first["Parameters"]) == 20 and first["Marker"]
    second = rds.describe_db_parameters(DBParameterGroupName="paged", MaxRecords=20, Marker=first["Marker"])
    assert second["Parameters"][0]["ParameterName"] != first["Parameters"][0]["ParameterName"]
    with pytest.raises(ClientError) as error:
        rds.describe_db_parameters(DBParameterGroupName="paged", MaxRecords=10)
    assert error.value.response["Error"]["Code"] == "InvalidParameterValue"

    paginator = rds.get_paginator("describe_engine_default_parameters")
    defaults = [p for page in paginator.paginate(DBParameterGroupFamily="postgres15")
                for p in page["EngineDefaults"]["Parameters"]]
    assert len(defaults) == len(_all_parameters(rds, DBParameterGroupName="paged"))
    cluster_defaults = rds.describe_engine_default_cluster_parameters(
        DBParameterGroupFamily="aurora-postgresql15")["EngineDefaults"]
    assert cluster_defaults["DBParameterGroupFamily"] == "aurora-postgresql15"
    assert len(cluster_defaults["Parameters"]) == 100 and cluster_defaults["Marker"]
    assert any(p["ParameterName"] == "autovacuum_max_workers" and p["Source"] == "system"
               for p in cluster_defaults["Parameters"])


def test_reset_puts_engine_defaults_back(lab_clean):
    rds = lab_clean.client()
    rds.create_db_parameter_group(DBParameterGroupName="resettable", DBParameterGroupFamily="postgres15",
                                  Description="reset")
    rds.modify_db_parameter_group(DBParameterGroupName="resettable", Parameters=[
        {"ParameterName": "work_mem", "ParameterValue": "8192", "ApplyMethod": "immediate"},
        {"ParameterName": "shared_buffers", "ParameterValue": "16384", "ApplyMethod": "pending-reboot"}])
    rds.reset_db_parameter_group(DBParameterGroupName="resettable", Parameters=[
        {"ParameterName": "work_mem", "ApplyMethod": "immediate"}])
    user = rds.describe_db_parameters(DBParameterGroupName="resettable", Source="user")["Parameters"]
    assert [p["ParameterName"] for p in user] == ["shared_buffers"]
    rds.reset_db_parameter_group(DBParameterGroupName="resettable", ResetAllParameters=True)
    assert rds.describe_db_parameters(DBParameterGroupName="resettable", Source="user")["Parameters"] == []
    shared = [p for p in _all_parameters(rds, DBParameterGroupName="resettable")
              if p["ParameterName"] == "shared_buffers"][0]
    assert shared["Source"] == "system" and shared["ParameterValue"] == "{DBInstanceClassMemory/32768}"


def test_cluster_parameter_groups_have_metadata(lab_clean):
    rds = lab_clean.client()
    rds.create_db_cluster_parameter_group(DBClusterParameterGroupName="cpg",
                                          DBParameterGroupFamily="aurora-postgresql15", Description="cluster")
    paginator = rds.get_paginator("describe_db_cluster_parameters")
    parameters = {p["ParameterName"]: p for page in paginator.paginate(DBClusterParameterGroupName="cpg")
                  for p in page["Parameters"]}
    assert parameters["rds.logical_replication"]["ApplyType"] == "static"
    rds.modify_db_cluster_parameter_group(DBClusterParameterGroupName="cpg", Parameters=[
        {"ParameterName": "rds.logical_replication", "ParameterValue": "1", "ApplyMethod": "pending-reboot"}])
    user = rds.describe_db_cluster_parameters(DBClusterParameterGroupName="cpg", Source="user")["Parameters"]
    assert [(p["ParameterName"], p["ParameterValue"]) for p in user] == [("rds.logical_replication", "1")]
