# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbre.rds.rds_restore_drill refuses bad inputs before its first mutating call, naming the problem and the fix.

Every case runs as a task of one playbook (tests/integration/bad_inputs.py) against a lab holding one instance
(``orders``, with its automated snapshot) and one Aurora cluster (``aur`` with the member ``aur-1``). For each case the
error must name the problem, the lab's call log must show only reads, and the lab must hold exactly what it held
before: no restore of an unrelated instance, no drill resource.
"""

import datetime
import time

import pytest

from tests.integration.bad_inputs import assert_all_refused
from tests.integration.bad_inputs import run_module_cases

MODULE = "dbre.rds.rds_restore_drill"
PASSWORD = "bad-Input-Secret-9"


def iso(moment):
    return moment.isoformat().replace("+00:00", "Z")


def cases():
    now = datetime.datetime.now(datetime.timezone.utc)
    check = [{"name": "rows", "sql": "SELECT 1", "expect": {"rows": 1}}]

    def drill(**args):
        return dict({"db_instance_identifier": "orders", "poll_interval": 0.2}, **args)

    return [
        # exactly one target
        {"id": "blank_instance", "args": {"db_instance_identifier": ""},
         "expect": ["db_instance_identifier must not be empty or blank"]},
        {"id": "spaces_instance", "args": {"db_instance_identifier": "   "},
         "expect": ["db_instance_identifier must not be empty or blank"]},
        {"id": "blank_cluster", "args": {"db_cluster_identifier": " "},
         "expect": ["db_cluster_identifier must not be empty or blank"]},
        {"id": "no_such_instance", "args": drill(db_instance_identifier="orderz"),
         "expect": ["no DB instance 'orderz' exists", "check the identifier and region"]},
        {"id": "no_such_cluster", "args": {"db_cluster_identifier": "ledger"},
         "expect": ["no DB cluster 'ledger' exists"]},
        {"id": "aurora_member_as_instance", "args": drill(db_instance_identifier="aur-1"),
         "expect": ["member of the Aurora cluster 'aur'", "give db_cluster_identifier=aur"]},
        {"id": "invalid_source_identifier", "args": drill(db_instance_identifier="orders_prod"),
         "expect": ["'orders_prod' is not a valid RDS identifier"]},
        # the target
        {"id": "target_is_source", "args": drill(target_identifier="ORDERS"),
         "expect": ["target_identifier must differ from the source"]},
        {"id": "target_double_hyphen", "args": drill(target_identifier="orders--drill"),
         "expect": ["target_identifier 'orders--drill' is not a valid RDS identifier"]},
        {"id": "target_too_long", "args": drill(target_identifier="a" * 64), "expect": ["at most 63"]},
        # times and bounds
        {"id": "ttl_zero", "args": drill(ttl_hours=0), "expect": ["ttl_hours must be positive"]},
        {"id": "ttl_ten_years", "args": drill(ttl_hours=87600), "expect": ["ttl_hours must be at most 8760"]},
        {"id": "wait_timeout_zero", "args": drill(wait_timeout=0), "expect": ["wait_timeout must be greater than 0"]},
        {"id": "wait_timeout_week", "args": drill(wait_timeout=604800), "expect": ["wait_timeout", "at most 86400"]},
        {"id": "cleanup_timeout_negative", "args": drill(cleanup_timeout=-5),
         "expect": ["cleanup_timeout must be greater than 0"]},
        {"id": "poll_interval_zero", "args": drill(poll_interval=0),
         "expect": ["poll_interval must be greater than 0"]},
        {"id": "max_rto_negative", "args": drill(max_rto_seconds=-1), "expect": ["max_rto_seconds must be positive"]},
        # reports
        {"id": "report_name_path", "args": drill(report_dir="/tmp", report_name="../../etc/cron.d/x"),
         "expect": ["report_name", "no '/'"]},
        {"id": "report_name_blank", "args": drill(report_dir="/tmp", report_name=" "),
         "expect": ["report_name must not be blank"]},
        # the recovery point
        {"id": "restore_time_not_iso", "args": drill(restore_from="point_in_time", restore_time="last tuesday"),
         "expect": ["'last tuesday' is not an ISO 8601 time"]},
        {"id": "restore_time_before_window",
         "args": drill(restore_from="point_in_time", restore_time=iso(now - datetime.timedelta(days=3))),
         "expect": ["before the earliest restorable time of orders", "pick a later time"]},
        {"id": "restore_time_in_future",
         "args": drill(restore_from="point_in_time", restore_time=iso(now + datetime.timedelta(days=1))),
         "expect": ["after the latest restorable time of orders"]},
        {"id": "point_in_time_without_time", "args": drill(restore_from="point_in_time"),
         "expect": ["exactly one of restore_time or use_latest_restorable_time"]},
        {"id": "window_zero_days", "args": drill(selection_window_days=0), "expect": ["between 1 and 365"]},
        {"id": "window_two_years", "args": drill(selection_window_days=730), "expect": ["between 1 and 365"]},
        {"id": "no_manual_snapshot", "args": drill(snapshot_type="manual"),
         "expect": ["No available manual snapshot of orders", "the newest available snapshot is"]},
        {"id": "unknown_snapshot", "args": drill(restore_from="snapshot", snapshot_identifier="orders-nope"),
         "expect": ["Snapshot orders-nope of orders not found"]},
        # checks and connections
        {"id": "checks_without_credentials", "args": drill(checks=check),
         "expect": ["give login_password or iam_auth=true"]},
        {"id": "duplicate_check_names", "args": drill(login_password=PASSWORD, checks=check + check),
         "expect": ["'rows' is used twice"]},
        {"id": "min_above_max", "args": drill(login_password=PASSWORD, checks=[
            {"name": "n", "sql": "SELECT 1", "expect": {"min": 5, "max": 1}}]), "expect": ["greater than expect.max"]},
        # the sweep
        {"id": "sweep_older_than_on_a_drill", "args": drill(sweep_older_than=2),
         "expect": ["sweep_older_than applies to state=sweep only"]},
        {"id": "sweep_older_than_zero", "args": {"state": "sweep", "sweep_older_than": 0},
         "expect": ["sweep_older_than must be greater than 0"]},
    ]


@pytest.fixture(scope="module")
def sources(lab):
    lab.control.reset()
    rds = lab.client("rds")
    rds.create_db_instance(DBInstanceIdentifier="orders", Engine="postgres", DBInstanceClass="db.t3.micro",
                           MasterUsername="app", MasterUserPassword=PASSWORD, AllocatedStorage=20,
                           BackupRetentionPeriod=1)
    rds.create_db_cluster(DBClusterIdentifier="aur", Engine="aurora-postgresql", MasterUsername="app",
                          MasterUserPassword=PASSWORD, BackupRetentionPeriod=1)
    rds.create_db_instance(DBInstanceIdentifier="aur-1", DBClusterIdentifier="aur", Engine="aurora-postgresql",
                           DBInstanceClass="db.r6g.large")
    deadline = time.monotonic() + 120
    while {i["DBInstanceStatus"] for i in rds.describe_db_instances()["DBInstances"]} != {"available"}:
        assert time.monotonic() < deadline, "the sources did not become available"
        time.sleep(0.3)
    yield rds
    lab.control.reset()


def test_bad_inputs_are_refused_before_any_change(lab, sources):
    refused = cases()
    assert len(refused) >= 20
    results = assert_all_refused(lab, run_module_cases, MODULE, refused, secrets=(PASSWORD,))
    # No case restored anything: the only instances are the sources (the blank identifier once restored "the first").
    assert sorted(i["DBInstanceIdentifier"] for i in sources.describe_db_instances()["DBInstances"]) == \
        ["aur-1", "orders"]
    assert all(not r["msg"].startswith("Unexpected") for r in results.values())
