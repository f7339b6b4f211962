# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbre.rds.rds_failover_test refuses bad inputs before any change: names, ranges, combinations, a member of an Aurora
cluster given as a standalone instance, and logins the server refuses for good. All cases run in one playbook."""

import pathlib
import sys
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from bad_inputs import assert_all_refused  # noqa: E402
from bad_inputs import run_module_cases  # noqa: E402
from failover_support import PASSWORD  # noqa: E402
from failover_support import create_cluster  # noqa: E402
from failover_support import create_instance  # noqa: E402
from failover_support import instance_available  # noqa: E402
from failover_support import wait_for  # noqa: E402

MULTI, AURORA, MEMBER = "bi-multi", "bi-aurora", "bi-aurora-a"
LOGIN = {"login_user": "master", "login_password": PASSWORD}
WRONG_PASSWORD = "not-the-password-7"


def case(case_id, expect, **args):
    """A case against the Multi-AZ instance unless it names its own target; ``None`` leaves an option out."""
    if "db_cluster_identifier" not in args:
        args.setdefault("db_instance_identifier", MULTI)
    args.setdefault("probe", False)
    return {"id": case_id, "args": {k: v for k, v in args.items() if v is not None},
            "expect": expect if isinstance(expect, list) else [expect]}


CASES = [
    case("blank-instance", "db_instance_identifier must not be empty or blank", db_instance_identifier="   "),
    case("instance-starts-with-digit", "'1orders' is not a valid RDS identifier", db_instance_identifier="1orders"),
    case("instance-double-hyphen", "is not a valid RDS identifier", db_instance_identifier="orders--prod"),
    case("instance-trailing-hyphen", "is not a valid RDS identifier", db_instance_identifier="orders-"),
    case("instance-too-long", "64 characters long", db_instance_identifier="a" * 64),
    case("blank-cluster", "db_cluster_identifier must not be empty or blank", db_cluster_identifier=" "),
    case("cluster-underscore", "'billing_aurora' is not a valid RDS identifier",
         db_cluster_identifier="billing_aurora"),
    case("target-without-cluster", "target_db_instance_identifier applies to Aurora only",
         target_db_instance_identifier=MEMBER),
    case("target-bad-name", "target_db_instance_identifier 'x y' is not a valid RDS identifier",
         db_cluster_identifier=AURORA, target_db_instance_identifier="x y"),
    case("aurora-member-as-instance", ["refused before any change", f"member of the Aurora cluster '{AURORA}'",
                                       f"db_cluster_identifier={AURORA}"], db_instance_identifier=MEMBER),
    case("missing-instance", ["refused before any change", "does not exist"], db_instance_identifier="bi-nowhere"),
    case("instance-and-cluster", "mutually exclusive", db_cluster_identifier=AURORA, db_instance_identifier=MULTI),
    case("probe-interval-zero", "probe_interval must be greater than 0", probe_interval=0),
    case("probe-interval-negative", "probe_interval must be greater than 0", probe_interval=-0.5),
    case("probe-interval-huge", "probe_interval must be at most 60", probe_interval=600),
    case("probe-timeout-zero", "probe_timeout must be between 1 and 60", probe_timeout=0),
    case("settle-negative", "probe_settle_seconds must not be negative", probe_settle_seconds=-1),
    case("settle-not-below-timeout", "probe_settle_seconds (120) must be below wait_timeout (60)",
         probe_settle_seconds=120, wait_timeout=60),
    case("wait-timeout-zero", "wait_timeout must be at least 1", wait_timeout=0),
    case("wait-timeout-negative", "wait_timeout must be at least 1", wait_timeout=-30),
    case("wait-timeout-huge", "wait_timeout must be at most 86400", wait_timeout=10 ** 7),
    case("poll-interval-zero", "poll_interval must be greater than 0", poll_interval=0),
    case("poll-interval-huge", "poll_interval must be at most 300", poll_interval=3600),
    case("max-downtime-negative", "max_downtime_seconds must not be negative", max_downtime_seconds=-1, probe=None,
         **LOGIN),
    case("max-lost-writes-negative", "max_lost_writes must not be negative", max_lost_writes=-2),
    case("max-downtime-without-probing", "max_downtime_seconds is judged on what clients see",
         max_downtime_seconds=30),
    case("probe-without-credentials", "probe=true needs DB credentials", probe=True),
    case("report-name-path", "must be a plain file name stem", report_name="../../etc/cron.d/x"),
    case("report-name-blank", "report_name must not be blank", report_name="  "),
    case("blank-alarm", "abort_if_alarms must not contain a blank alarm name", abort_if_alarms=["ok-alarm", ""]),
    case("probe-table-injection", "probe_table must be a plain lower-case identifier", probe=None,
         probe_table='p"; DROP TABLE orders; --', **LOGIN),
    case("verify-full-without-ca", "ssl_mode=verify-full needs ca_cert", probe=None, ssl_mode="verify-full", **LOGIN),
    case("connect-timeout-zero", "connect_timeout must be at least 1", probe=None, connect_timeout=0, **LOGIN),
    case("wrong-password", "password authentication failed", probe=None, login_user="master",
         login_password=WRONG_PASSWORD),
    case("missing-database", 'database "no_such_db" does not exist', probe=None, login_db="no_such_db", **LOGIN),
    dict(case("check-mode-blank", "db_instance_identifier must not be empty or blank", db_instance_identifier=""),
         check_mode=True),
]


def test_bad_inputs_are_refused_before_any_change(lab):
    lab.control.reset()
    rds = lab.client("rds")
    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(create_instance, rds, MULTI, True),
                       pool.submit(create_cluster, rds, AURORA, (MEMBER, "bi-aurora-b"))]:
            future.result()
    for identifier in (MULTI, MEMBER, "bi-aurora-b"):
        wait_for(lambda: instance_available(rds, identifier), timeout=120, what=f"{identifier} available")
    lab.control.wait_jobs()
    assert len(CASES) >= 20
    results = assert_all_refused(lab, run_module_cases, "dbre.rds.rds_failover_test", CASES,
                                 secrets=(WRONG_PASSWORD,))
    # The login problems came from the server at once, not from a wait that timed out.
    for key in ("wrong-password", "missing-database"):
        assert "Timed out" not in results[key]["msg"]
    lab.control.reset()
