# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The control API aims at one region: one identifier ("twin") in us-east-1 and us-west-2, each with its own
PostgreSQL; status history, stuck states, refused connections, outages and the server log of the us-west-2 one leave
the us-east-1 one alone, and a reboot's clamp report is filed under the rebooted instance's own regional key."""

import time

import psycopg2
import pytest

from tests.lab.clients import MASTER_PASSWORD, MASTER_USER, connect_instance, describe_instance, query, wait_instance

pytestmark = pytest.mark.lab

EAST, WEST = "us-east-1", "us-west-2"
WEST_KEY = "db:twin@us-west-2"


@pytest.fixture(scope="module")
def twins(lab):
    """"twin" in both regions (the us-west-2 one with its own parameter group): {"rds": {region: client},
    "instance": {region: described instance}, "control": LabControl}."""
    lab.control.reset()
    rds = {EAST: lab.client(), WEST: lab.client(region=WEST)}
    rds[WEST].create_db_parameter_group(DBParameterGroupName="twin-west", DBParameterGroupFamily="postgres15",
                                        Description="us-west-2 twin")
    for region, extra in ((EAST, {}), (WEST, {"DBParameterGroupName": "twin-west"})):
        rds[region].create_db_instance(DBInstanceIdentifier="twin", Engine="postgres", EngineVersion="15.7",
                                       DBInstanceClass="db.t3.micro", MasterUsername=MASTER_USER,
                                       MasterUserPassword=MASTER_PASSWORD, DBName="app", AllocatedStorage=20, **extra)
    instance = {region: wait_instance(client, "twin", "available") for region, client in rds.items()}
    assert instance[EAST]["Endpoint"]["Port"] != instance[WEST]["Endpoint"]["Port"]
    yield {"rds": rds, "instance": instance, "control": lab.control}
    lab.control.reset()


def _status(twins, region: str) -> str:
    return describe_instance(twins["rds"][region], "twin")["DBInstanceStatus"]


def _connects(instance: dict) -> bool:
    try:
        connect_instance(instance, timeout=1).close()
    except psycopg2.OperationalError:
        return False
    return True


def _until_west_refuses(twins, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while _connects(twins["instance"][WEST]):
        assert time.monotonic() < deadline, "the us-west-2 twin kept accepting connections"
        time.sleep(0.1)


def test_status_history_of_each_region(twins):
    control = twins["control"]
    west = control.status_history("twin", region=WEST)
    east = control.status_history("twin")
    assert list(west) == [WEST_KEY] and list(east) == ["db:twin"]
    assert west[WEST_KEY][-1]["status"] == east["db:twin"][-1]["status"] == "available"
    assert all(key.endswith("@us-west-2") for key in control.status_history(region=WEST))
    assert not any("@" in key for key in control.status_history())


def test_stuck_in_one_region(twins):
    control = twins["control"]
    assert control.stick("twin", "storage-full", region=WEST)["stuck"] == {WEST_KEY: "storage-full"}
    assert (_status(twins, WEST), _status(twins, EAST)) == ("storage-full", "available")
    assert control.status_history("twin", region=WEST)[WEST_KEY][-1]["status"] == "storage-full"
    assert "storage-full" not in [e["status"] for e in control.status_history("twin")["db:twin"]]
    assert control.unstick("twin", region=WEST)["stuck"] == {}
    assert _status(twins, WEST) == "available"

    # Not created yet in us-west-2: the state waits for it there.
    stuck = control.stick("later", "creating", kind="db", region=WEST)["stuck"]
    assert stuck == {"db:later@us-west-2": "creating"}
    west = twins["rds"][WEST]
    west.create_db_instance(DBInstanceIdentifier="later", Engine="mysql", DBInstanceClass="db.t3.micro",
                            MasterUsername="admin", MasterUserPassword="lab-password-1", AllocatedStorage=20)
    time.sleep(0.3)
    assert describe_instance(west, "later")["DBInstanceStatus"] == "creating"
    control.unstick("later", kind="db", region=WEST)
    assert wait_instance(west, "later", "available", timeout=10)["DBInstanceStatus"] == "available"


def test_refused_connections_and_outage_in_one_region(twins):
    control, east = twins["control"], twins["instance"][EAST]
    control.refuse_connections("twin", 3, region=WEST)
    _until_west_refuses(twins)
    assert _connects(east), "the us-east-1 twin refused connections meant for the us-west-2 one"
    control.wait_jobs(timeout=30)
    assert _connects(twins["instance"][WEST])

    control.outage("twin", 3, region=WEST)
    _until_west_refuses(twins)
    assert _connects(east), "the us-east-1 twin went down with the us-west-2 one"
    assert _status(twins, WEST) == "available", "an outage does not change the API status"
    control.wait_jobs(timeout=30)
    assert _connects(twins["instance"][WEST])

    with pytest.raises(Exception, match="no region"):
        control.outage("twin", 1, region="us-weest-2")


def test_server_log_of_each_region(twins):
    control = twins["control"]
    conn = connect_instance(twins["instance"][WEST])
    with pytest.raises(psycopg2.errors.UndefinedTable):
        query(conn, "SELECT * FROM west_marker_4242")
    conn.close()
    assert 'relation "west_marker_4242" does not exist' in control.server_log("twin", region=WEST)
    assert "west_marker_4242" not in control.server_log("twin")


def test_reboot_files_its_clamps_under_the_regional_key(twins):
    control, west = twins["control"], twins["rds"][WEST]
    west.modify_db_parameter_group(DBParameterGroupName="twin-west", Parameters=[
        {"ParameterName": "max_connections", "ParameterValue": "60000", "ApplyMethod": "pending-reboot"}])
    west.reboot_db_instance(DBInstanceIdentifier="twin")
    wait_instance(west, "twin", "available")
    control.wait_jobs(timeout=30)

    postgres = control.state()["postgres"]
    west_clamps = [c["clamped"]["max_connections"] for c in postgres[WEST_KEY]["clamps"]
                   if "max_connections" in c["clamped"]]
    assert [clamp["requested"] for clamp in west_clamps] == ["60000"]
    assert not [c for c in postgres["db:twin"]["clamps"] if "max_connections" in c["clamped"]], \
        "the us-west-2 reboot's clamp was filed under the us-east-1 twin"
    events = west.describe_events(SourceType="db-instance", SourceIdentifier="twin")["Events"]
    assert any(e["Message"].startswith("Lab: max_connections requested 60000") for e in events)

    assert [e["status"] for e in control.status_history("twin", region=WEST)[WEST_KEY]][-2:] == [
        "rebooting", "available"]
    assert "rebooting" not in [e["status"] for e in control.status_history("twin")["db:twin"]]
