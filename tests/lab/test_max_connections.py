# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""max_connections reaches PostgreSQL as the group says (a static parameter: pending-reboot until a reboot); where
the lab has to clamp a value it says so in an RDS event ("Lab: ..."), never silently."""

import pytest

from tests.lab.clients import connect_instance, create_postgres, describe_instance, query, wait_instance

pytestmark = pytest.mark.lab


def _set_max_connections(rds, group: str, value: int) -> None:
    rds.modify_db_parameter_group(DBParameterGroupName=group, Parameters=[
        {"ParameterName": "max_connections", "ParameterValue": str(value), "ApplyMethod": "pending-reboot"}])


def _reboot(rds, identifier: str) -> dict:
    rds.reboot_db_instance(DBInstanceIdentifier=identifier)
    return wait_instance(rds, identifier, "available")


def _show_max_connections(instance: dict) -> int:
    conn = connect_instance(instance)
    try:
        return int(query(conn, "SHOW max_connections")[0][0])
    finally:
        conn.close()


def _apply_status(rds, identifier: str) -> str:
    return describe_instance(rds, identifier)["DBParameterGroups"][0]["ParameterApplyStatus"]


def _lab_events(rds, identifier: str) -> list[str]:
    """The lab's clamp events about max_connections (a micro class's shared_buffers is clamped too)."""
    events = rds.describe_events(SourceType="db-instance", SourceIdentifier=identifier)["Events"]
    return [event["Message"] for event in events
            if event["Message"].startswith("Lab:") and "max_connections" in event["Message"]]


def test_max_connections_of_the_group_after_a_reboot_and_clamps_reported(lab_clean):
    rds = lab_clean.client()
    rds.create_db_parameter_group(DBParameterGroupName="conns", DBParameterGroupFamily="postgres15",
                                  Description="max_connections")
    instance = create_postgres(rds, "conns", DBParameterGroupName="conns")
    before = _show_max_connections(instance)
    assert before != 300
    assert _lab_events(rds, "conns") == []

    _set_max_connections(rds, "conns", 300)
    assert _apply_status(rds, "conns") == "pending-reboot"
    assert _show_max_connections(instance) == before
    instance = _reboot(rds, "conns")
    assert _show_max_connections(instance) == 300
    assert _apply_status(rds, "conns") == "in-sync"
    assert _lab_events(rds, "conns") == [], "300 is within the lab's limits: nothing to report"

    _set_max_connections(rds, "conns", 60000)
    instance = _reboot(rds, "conns")
    used = _show_max_connections(instance)
    assert 1000 <= used < 60000
    assert _lab_events(rds, "conns") == [
        f"Lab: max_connections requested 60000, used {used} (the lab's limits for a local PostgreSQL; "
        "the parameter group keeps the requested value)"]
    assert _apply_status(rds, "conns") == "in-sync"
    group = rds.describe_db_parameters(DBParameterGroupName="conns", Source="user")["Parameters"]
    assert [(p["ParameterName"], p["ParameterValue"]) for p in group] == [("max_connections", "60000")]
