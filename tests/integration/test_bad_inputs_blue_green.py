# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbre.rds.rds_blue_green refuses bad inputs before its first mutating call, naming the option and the fix.

Every case runs as a task of one playbook (tests/integration/bad_inputs.py) against a lab holding a PostgreSQL 15
instance with rds.logical_replication=1 whose database has a blocker of a major upgrade (a ``regproc`` column), and one
without logical replication. For each case the error must name the problem, the lab's call log must show only reads,
and the lab's resources must be as before (no blue/green deployment either).
"""

import pytest

from tests.integration.bad_inputs import assert_all_refused
from tests.integration.bad_inputs import run_module_cases
from tests.lab.clients import MASTER_PASSWORD, MASTER_USER, connect, create_postgres, query

pytestmark = pytest.mark.lab

MODULE = "dbre.rds.rds_blue_green"
BLUE, PLAIN, GROUP = "bad-bg-blue", "bad-bg-plain", "bad-bg-logical15"
LOGIN = {"login_user": MASTER_USER, "login_password": MASTER_PASSWORD, "login_db": "app"}


@pytest.fixture(scope="module")
def world(lab):
    """The instances the cases name, made before the cases so the cases' own call log holds only what they did."""
    lab.control.reset()
    rds = lab.client("rds")
    rds.create_db_parameter_group(DBParameterGroupName=GROUP, DBParameterGroupFamily="postgres15",
                                  Description="logical replication for blue/green")
    rds.modify_db_parameter_group(DBParameterGroupName=GROUP, Parameters=[
        {"ParameterName": "rds.logical_replication", "ParameterValue": "1", "ApplyMethod": "pending-reboot"}])
    blue = create_postgres(rds, BLUE, DBParameterGroupName=GROUP)
    create_postgres(rds, PLAIN)
    conn = connect(blue["Endpoint"]["Address"], blue["Endpoint"]["Port"])
    try:
        # pg_upgrade cannot carry a regproc column (it stores an OID): a blocker of a major upgrade.
        query(conn, "CREATE TABLE hooks (id int PRIMARY KEY, handler regproc)")
    finally:
        conn.close()
    yield {"version": blue["EngineVersion"]}
    lab.control.reset()


def cases(world):
    version = world["version"]
    return [
        {"id": "invalid_target_version", "args": {"db_instance_identifier": BLUE, "target_engine_version": "15.99"},
         "expect": ["target_engine_version 15.99 is not a version RDS offers", "nothing was changed"]},
        {"id": "downgrade", "args": {"db_instance_identifier": BLUE, "target_engine_version": "15.2"},
         "expect": [f"target_engine_version 15.2 is older than the current version {version}",
                    "cannot downgrade"]},
        {"id": "unknown_instance", "args": {"db_instance_identifier": "bad-bg-nowhere",
                                            "target_engine_version": "18.6"},
         "expect": ["DB instance bad-bg-nowhere does not exist", "check db_instance_identifier and the region"]},
        {"id": "blocker", "args": dict(LOGIN, db_instance_identifier=BLUE, target_engine_version="18.6"),
         "expect": [f"{BLUE} has a blocker, reg_columns", "hooks"]},
        {"id": "without_logical_replication",
         "args": {"db_instance_identifier": PLAIN, "target_engine_version": "18.6"},
         "expect": ["rds.logical_replication", "RDS needs rds.logical_replication=1"]},
        {"id": "parameter_group_of_the_old_family",
         "args": {"db_instance_identifier": BLUE, "target_engine_version": "18.6",
                  "target_db_parameter_group_name": GROUP},
         "expect": [f"target_db_parameter_group_name {GROUP} is of family postgres15, not postgres18"]},
        {"id": "switchover_without_deployment", "args": {"db_instance_identifier": BLUE, "state": "switched_over"},
         "expect": [f"{BLUE} has no blue/green deployment to switch over", "state=present first"]},
        {"id": "bad_options",
         "args": {"db_instance_identifier": BLUE, "target_engine_version": "fifteen", "switchover_timeout": 5,
                  "delete_old_blue": True, "probe_table": "Not-A-Table"},
         "expect": ["target_engine_version 'fifteen' is not a PostgreSQL version",
                    "switchover_timeout must be 30 to 3600 seconds", "delete_old_blue is for state=absent",
                    "probe_table 'Not-A-Table' must be a plain lower-case identifier"]},
        {"id": "check_mode_downgrade", "check_mode": True,
         "args": {"db_instance_identifier": BLUE, "target_engine_version": "15.2"},
         "expect": ["cannot downgrade"]},
    ]


def test_bad_inputs_are_refused_before_any_change(lab, world):
    results = assert_all_refused(lab, run_module_cases, MODULE, cases(world))
    assert all("nothing was changed" in r["msg"] for r in results.values())
    assert lab.client("rds").describe_blue_green_deployments()["BlueGreenDeployments"] == []
