# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbre.rds.rds_upgrade_drill refuses bad inputs before its first mutating call, naming the problem and the fix.

Every case runs as a task of one playbook (tests/integration/bad_inputs.py) against a lab holding ``orders``
(PostgreSQL 15.7), the Aurora cluster ``aur`` (member ``aur-1``) and a parameter group ``orders-pg15`` of family
postgres15. For each case the error must name the problem, the lab's call log must show only reads, and the lab must
hold exactly what it held before: no snapshot, no copy, no parameter group.
"""

import time

import pytest

from tests.integration.bad_inputs import assert_all_refused
from tests.integration.bad_inputs import run_module_cases

MODULE = "dbre.rds.rds_upgrade_drill"
PASSWORD = "bad-Upgrade-Secret-7"


def cases():
    def drill(**args):
        return dict({"db_instance_identifier": "orders", "target_engine_version": "18.6",
                     "allow_major_version_upgrade": True, "poll_interval": 0.2}, **args)

    return [
        # the source
        {"id": "unknown_instance", "args": drill(db_instance_identifier="orderz"),
         "expect": ["no DB instance 'orderz' exists", "check the identifier and region"]},
        {"id": "aurora_member", "args": drill(db_instance_identifier="aur-1"),
         "expect": ["member of the Aurora cluster 'aur'"]},
        # the target version
        {"id": "invalid_target_version", "args": drill(target_engine_version="eighteen"),
         "expect": ["'eighteen' is not a PostgreSQL engine version"]},
        {"id": "target_not_offered", "args": drill(target_engine_version="18.99"),
         "expect": ["18.99 is not a version RDS offers", "the 18.x versions offered are"]},
        {"id": "downgrade", "args": drill(target_engine_version="15.5"),
         "expect": ["older than the current version 15.7", "cannot downgrade"]},
        {"id": "same_version", "args": drill(target_engine_version="15.7"),
         "expect": ["is the version the instance already runs"]},
        {"id": "major_without_consent", "args": drill(allow_major_version_upgrade=False),
         "expect": ["is a major version upgrade", "allow_major_version_upgrade=true"]},
        {"id": "major_without_consent_check_mode", "args": drill(allow_major_version_upgrade=False),
         "check_mode": True, "expect": ["allow_major_version_upgrade=true"]},
        # the parameter group
        {"id": "group_missing", "args": drill(target_parameter_group="orders-pg18"),
         "expect": ["orders-pg18 does not exist", "create_parameter_group=true"]},
        {"id": "group_of_old_family", "args": drill(target_parameter_group="orders-pg15"),
         "expect": ["orders-pg15 is of family postgres15, not postgres18"]},
        # options (the others are unit-tested: test_upgrade_drill.py::test_option_problems) and the login
        {"id": "checks_without_credentials",
         "args": drill(checks=[{"name": "rows", "sql": "SELECT 1", "expect": {"rows": 1}}]),
         "expect": ["Invalid upgrade drill options", "give login_password or iam_auth=true"]},
        {"id": "wrong_password", "args": drill(login_password="not-the-password", login_db="postgres"),
         "expect": ["reading the source database orders for the checklist failed", "password authentication failed"]},
    ]


@pytest.fixture(scope="module")
def sources(lab):
    lab.control.reset()
    rds = lab.client("rds")
    rds.create_db_instance(DBInstanceIdentifier="orders", Engine="postgres", EngineVersion="15.7",
                           DBInstanceClass="db.t3.micro", MasterUsername="app", MasterUserPassword=PASSWORD,
                           AllocatedStorage=20, BackupRetentionPeriod=1)
    rds.create_db_cluster(DBClusterIdentifier="aur", Engine="aurora-postgresql", MasterUsername="app",
                          MasterUserPassword=PASSWORD, BackupRetentionPeriod=1)
    rds.create_db_instance(DBInstanceIdentifier="aur-1", DBClusterIdentifier="aur", Engine="aurora-postgresql",
                           DBInstanceClass="db.r6g.large")
    rds.create_db_parameter_group(DBParameterGroupName="orders-pg15", DBParameterGroupFamily="postgres15",
                                  Description="orders on 15")
    deadline = time.monotonic() + 120
    while {i["DBInstanceStatus"] for i in rds.describe_db_instances()["DBInstances"]} != {"available"}:
        assert time.monotonic() < deadline, "the sources did not become available"
        time.sleep(0.3)
    yield rds
    lab.control.reset()


def test_bad_inputs_are_refused_before_any_change(lab, sources):
    refused = cases()
    results = assert_all_refused(lab, run_module_cases, MODULE, refused, secrets=(PASSWORD,))
    assert sorted(i["DBInstanceIdentifier"] for i in sources.describe_db_instances()["DBInstances"]) == \
        ["aur-1", "orders"]
    assert sources.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"] == []
    assert all(not r["msg"].startswith("Unexpected") for r in results.values())
