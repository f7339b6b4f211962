# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbre.rds.rds_fleet_report refuses bad inputs before it writes anything, naming the problem and the fix.

Every case runs as a task of one playbook (tests/integration/bad_inputs.py) against the lab, with report_dir set:
the error must name the problem, the lab must see no mutating call (the module makes none at all) and no fleet
report may appear in report_dir.
"""

import pathlib
import tempfile

from tests.integration.bad_inputs import assert_all_refused
from tests.integration.bad_inputs import run_module_cases

MODULE = "dbre.rds.rds_fleet_report"


def cases(report_dir, blocked_dir):
    def report(**args):
        return dict({"kind": "restore", "playbook": "restore_drill", "started_at": "2026-11-30T07:00:00Z",
                     "report_dir": report_dir, "databases": [{"name": "orders-db", "region": "us-east-1"}]}, **args)

    return [
        {"id": "unknown_kind", "args": report(kind="backup"), "expect": ["value of kind must be one of", "backup"]},
        {"id": "start_not_a_time", "args": report(started_at="last tuesday"),
         "expect": ["started_at 'last tuesday' is no ISO 8601 time", "2026-11-30T07:00:00Z"]},
        {"id": "host_twice", "args": report(databases=[{"name": "a"}, {"name": "a"}]),
         "expect": ["databases names a host twice"]},
        {"id": "host_without_name", "args": report(databases=[{"region": "us-east-1"}]),
         "expect": ["missing required arguments: name"]},
        {"id": "s3_without_bucket", "args": report(report_s3="s3://"),
         "expect": ["dbre_rds_report_s3 's3://' names no S3 bucket", "s3://<bucket>[/<prefix>]"]},
        {"id": "s3_bad_bucket_name", "args": report(report_s3={"bucket": "Not_A_Bucket"}),
         "expect": ["names no S3 bucket"]},
        {"id": "report_dir_is_a_file", "args": report(report_dir=blocked_dir),
         "expect": ["Writing the fleet report to", "check that the directory is writable or set another report_dir"]},
    ]


def test_bad_inputs_are_refused_before_any_report_is_written(lab):
    lab.control.reset()
    work = pathlib.Path(tempfile.mkdtemp(prefix="dbre-rds-fleet-bad-"))
    report_dir = work / "reports"
    blocked = work / "blocked"
    blocked.write_text("a file where the report directory would be\n")
    refused = cases(str(report_dir), str(blocked))
    results = assert_all_refused(lab, run_module_cases, MODULE, refused)
    assert len(results) >= len(refused)
    assert not (report_dir / "fleet").exists(), "a refused case wrote a fleet report"
    assert blocked.read_text() == "a file where the report directory would be\n"
