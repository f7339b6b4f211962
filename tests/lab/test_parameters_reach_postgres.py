# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Behaviour 3: parameter changes reach PostgreSQL; static ones wait for a reboot; formulas use the class memory."""

import pytest

from tests.lab import parameter_metadata as meta
from tests.lab.clients import connect_instance, create_postgres, describe_instance, query, wait_instance

pytestmark = pytest.mark.lab


def _show(instance, name):
    conn = connect_instance(instance)
    try:
        return query(conn, f"SHOW {name}")[0][0]
    finally:
        conn.close()


def _apply_status(rds, identifier):
    return describe_instance(rds, identifier)["DBParameterGroups"][0]["ParameterApplyStatus"]


def test_parameters_reach_postgres(lab_clean):
    rds = lab_clean.client()
    rds.create_db_parameter_group(DBParameterGroupName="tuned", DBParameterGroupFamily="postgres15",
                                  Description="reaches postgres")
    rds.modify_db_parameter_group(DBParameterGroupName="tuned", Parameters=[
        {"ParameterName": "work_mem", "ParameterValue": "6144", "ApplyMethod": "immediate"}])
    instance = create_postgres(rds, "tuned1", DBParameterGroupName="tuned")

    # The instance starts with the group's values, RDS formulas evaluated for db.t3.micro.
    assert _show(instance, "work_mem") == "6MB"
    expected = meta.evaluate_formula("LEAST({DBInstanceClassMemory/9531392},5000)",
                                     meta.instance_class_memory("db.t3.micro"))
    assert _show(instance, "max_connections") == str(expected)
    assert "pg_stat_statements" in _show(instance, "shared_preload_libraries")
    assert _apply_status(rds, "tuned1") == "in-sync"

    # A dynamic parameter with immediate: visible at once.
    rds.modify_db_parameter_group(DBParameterGroupName="tuned", Parameters=[
        {"ParameterName": "work_mem", "ParameterValue": "12288", "ApplyMethod": "immediate"},
        {"ParameterName": "log_min_duration_statement", "ParameterValue": "250", "ApplyMethod": "immediate"}])
    assert _show(instance, "work_mem") == "12MB"
    assert _show(instance, "log_min_duration_statement") == "250ms"
    assert _apply_status(rds, "tuned1") == "in-sync"

    # A static parameter: pending-reboot until the instance is rebooted.
    rds.modify_db_parameter_group(DBParameterGroupName="tuned", Parameters=[
        {"ParameterName": "max_locks_per_transaction", "ParameterValue": "128", "ApplyMethod": "pending-reboot"}])
    assert _show(instance, "max_locks_per_transaction") == "64"
    assert _apply_status(rds, "tuned1") == "pending-reboot"
    rds.reboot_db_instance(DBInstanceIdentifier="tuned1")
    wait_instance(rds, "tuned1", "available")
    assert _show(instance, "max_locks_per_transaction") == "128"
    assert _apply_status(rds, "tuned1") == "in-sync"


def test_memory_settings_are_clamped_and_recorded(lab_clean):
    rds = lab_clean.client()
    instance = create_postgres(rds, "big1", DBInstanceClass="db.r6g.4xlarge")
    # {DBInstanceClassMemory/32768} of 128 GiB would be ~30 GB of shared_buffers: the lab clamps it.
    assert _show(instance, "shared_buffers") != str(meta.instance_class_memory("db.r6g.4xlarge") // 32768)
    state = lab_clean.control.state()
    clamps = state["postgres"]["db:big1"]["clamps"]
    assert any("shared_buffers" in c["clamped"] for c in clamps), state
