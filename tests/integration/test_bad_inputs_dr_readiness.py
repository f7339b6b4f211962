# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbre.rds.rds_dr_readiness_info refuses bad inputs with a clear error, and never makes a mutating call.

Every case runs as a task of one playbook (tests/integration/bad_inputs.py) against a lab holding the instance
``orders`` with a same-region read replica ``orders-ro``. For each case the error must name the problem, the lab's call
log must show only reads, and the lab must hold exactly what it held before. The cases are few on purpose (each is a
module run): every option rule is unit-tested in tests/unit/plugins/module_utils/test_dr_readiness.py.
"""

import pytest

from tests.integration.bad_inputs import assert_all_refused
from tests.integration.bad_inputs import run_module_cases
from tests.lab.clients import create_postgres, wait_instance

MODULE = "dbre.rds.rds_dr_readiness_info"


def cases():
    def instance(**args):
        return dict({"db_instance_identifier": "orders"}, **args)

    return [
        # unknown identifiers
        {"id": "unknown_instance", "args": {"db_instance_identifier": "orderz"},
         "expect": ["DB instance orderz does not exist in us-east-1", "check the identifier and the region"]},
        {"id": "unknown_cluster", "args": {"db_cluster_identifier": "ledger"},
         "expect": ["DB cluster ledger does not exist in us-east-1"]},
        {"id": "unknown_global", "args": {"global_cluster_identifier": "ledger-global"},
         "expect": ["Global database ledger-global does not exist"]},
        # not a primary
        {"id": "read_replica_as_primary", "args": {"db_instance_identifier": "orders-ro"},
         "expect": ["orders-ro is a read replica of orders", "give db_instance_identifier=orders"]},
        # a same-region "DR" target
        {"id": "same_region_dr", "args": instance(dr_region="us-east-1"),
         "expect": ["dr_region us-east-1 is the region of the primary", "must live in another region"]},
        # negative objectives and every other wrong option: each rule is unit-tested (test_dr_readiness.py); here all
        # at once, each named in the one message
        {"id": "every_option_wrong", "args": instance(rto_objective_seconds=-60, rpo_objective_seconds=-1,
                                                      max_lag_seconds=0, max_restorable_age_seconds=-5,
                                                      max_dr_backup_age_hours=-1, lookback_minutes=2880,
                                                      min_backup_retention_days=40, dr_region="west",
                                                      report_dir="/tmp", report_name="../../etc/cron.d/x"),
         "expect": ["rto_objective_seconds must be positive, got -60", "rpo_objective_seconds must be positive",
                    "max_lag_seconds must be positive", "max_restorable_age_seconds must be positive",
                    "max_dr_backup_age_hours must be positive", "lookback_minutes must be between 1 and 1440",
                    "min_backup_retention_days must be between 1 and 35", "dr_region 'west' is not an AWS region",
                    "report_name", "no '/'"]},
    ]


@pytest.fixture(scope="module")
def sources(lab):
    lab.control.reset()
    rds = lab.client("rds")
    create_postgres(rds, "orders", BackupRetentionPeriod=1)
    rds.create_db_instance_read_replica(DBInstanceIdentifier="orders-ro", SourceDBInstanceIdentifier="orders")
    wait_instance(rds, "orders-ro", "available")
    yield rds
    lab.control.reset()


def test_bad_inputs_are_refused_without_a_mutating_call(lab, sources):
    refused = cases()
    results = assert_all_refused(lab, run_module_cases, MODULE, refused)
    assert all(not r["msg"].startswith(("Unexpected", "MODULE FAILURE")) for r in results.values())
    # Nothing was created or removed (the harness compared the whole lab too).
    assert sorted(i["DBInstanceIdentifier"] for i in sources.describe_db_instances()["DBInstances"]) == \
        ["orders", "orders-ro"]
