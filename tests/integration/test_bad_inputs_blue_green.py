# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbre.rds.rds_blue_green's bad inputs: the cases, refused before its first mutating call, naming the option and the
fix.

They run in tests/integration/test_rds_blue_green.py (test_bad_inputs_are_refused_before_any_change), on that file's
lab and blue instance, before its deployment: one instance and one lab reset less than a file of their own. The blue
(PostgreSQL 15, rds.logical_replication=1) holds a blocker of a major upgrade (a ``regproc`` column) while the cases
run, and a second instance has no logical replication. For each case the error must name the problem, the lab's call
log must show only reads, and the lab's resources must be as before (no blue/green deployment either).
This file holds no test of its own.
"""

from tests.integration.bad_inputs import assert_all_refused
from tests.integration.bad_inputs import run_module_cases
from tests.lab.clients import MASTER_PASSWORD, MASTER_USER

MODULE = "dbre.rds.rds_blue_green"
LOGIN = {"login_user": MASTER_USER, "login_password": MASTER_PASSWORD, "login_db": "app"}
# pg_upgrade cannot carry a regproc column (it stores an OID): a blocker of a major upgrade, seeded while the cases run.
BLOCKER_TABLE = "hooks"
SEED_BLOCKER = f"CREATE TABLE {BLOCKER_TABLE} (id int PRIMARY KEY, handler regproc)"
REMOVE_BLOCKER = f"DROP TABLE {BLOCKER_TABLE}"


def cases(blue, plain, group, version):
    """``blue``: the instance with logical replication and the blocker; ``plain``: one without logical replication;
    ``group``: blue's (postgres15) parameter group; ``version``: blue's engine version."""
    return [
        {"id": "invalid_target_version", "args": {"db_instance_identifier": blue, "target_engine_version": "15.99"},
         "expect": ["target_engine_version 15.99 is not a version RDS offers", "nothing was changed"]},
        {"id": "downgrade", "args": {"db_instance_identifier": blue, "target_engine_version": "15.2"},
         "expect": [f"target_engine_version 15.2 is older than the current version {version}",
                    "cannot downgrade"]},
        {"id": "unknown_instance", "args": {"db_instance_identifier": "bad-bg-nowhere",
                                            "target_engine_version": "18.6"},
         "expect": ["DB instance bad-bg-nowhere does not exist", "check db_instance_identifier and the region"]},
        {"id": "blocker", "args": dict(LOGIN, db_instance_identifier=blue, target_engine_version="18.6"),
         "expect": [f"{blue} has a blocker, reg_columns", BLOCKER_TABLE]},
        {"id": "without_logical_replication",
         "args": {"db_instance_identifier": plain, "target_engine_version": "18.6"},
         "expect": ["rds.logical_replication", "RDS needs rds.logical_replication=1"]},
        {"id": "parameter_group_of_the_old_family",
         "args": {"db_instance_identifier": blue, "target_engine_version": "18.6",
                  "target_db_parameter_group_name": group},
         "expect": [f"target_db_parameter_group_name {group} is of family postgres15, not postgres18"]},
        {"id": "switchover_without_deployment", "args": {"db_instance_identifier": blue, "state": "switched_over"},
         "expect": [f"{blue} has no blue/green deployment to switch over", "state=present first"]},
        {"id": "bad_options",
         "args": {"db_instance_identifier": blue, "target_engine_version": "fifteen", "switchover_timeout": 5,
                  "delete_old_blue": True, "probe_table": "Not-A-Table"},
         "expect": ["target_engine_version 'fifteen' is not a PostgreSQL version",
                    "switchover_timeout must be 30 to 3600 seconds", "delete_old_blue is for state=absent",
                    "probe_table 'Not-A-Table' must be a plain lower-case identifier"]},
        {"id": "check_mode_downgrade", "check_mode": True,
         "args": {"db_instance_identifier": blue, "target_engine_version": "15.2"},
         "expect": ["cannot downgrade"]},
    ]


def refuse_bad_inputs(lab, blue, plain, group, version):
    """Run every case in one playbook and check each rule (tests/integration/bad_inputs.py); returns the results and
    the deployments the lab holds afterwards (none expected)."""
    results = assert_all_refused(lab, run_module_cases, MODULE, cases(blue, plain, group, version))
    return results, lab.client("rds").describe_blue_green_deployments()["BlueGreenDeployments"]
