# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbre.rds.rds_drill_history_info refuses bad options and damaged reports with a message that names the fix.

Every case runs as a task of one playbook (tests/integration/bad_inputs.py) against the lab: the error must name
the problem, and the lab must see no mutating call (the module makes none at all). A damaged report fails the module
rather than being skipped, since the compliance view would be wrong without it.
"""

import pathlib
import tempfile

import pytest

from ansible_collections.dbre.rds.plugins.module_utils.fleet_report import FORMAT
from tests.integration.bad_inputs import assert_all_refused
from tests.integration.bad_inputs import run_module_cases

pytestmark = pytest.mark.lab

MODULE = "dbre.rds.rds_drill_history_info"


def report_dirs(work):
    """Three report directories: one sound, one with a fleet report whose time is no time, one with broken JSON."""
    dirs = {name: work / name / "fleet" for name in ("sound", "bad_time", "broken")}
    for directory in dirs.values():
        directory.mkdir(parents=True)
    line = ('{"identifier": "orders-db", "region": "us-east-1", "kind": "restore", "verdict": "passed", '
            '"passed": true, "finished_at": "%s"}')
    (dirs["sound"] / "fleet-restore_drill-20261101T000000Z.json").write_text(
        '{"format": "%s", "databases": [%s]}' % (FORMAT, line % "2026-11-01T00:00:00Z"))
    (dirs["bad_time"] / "fleet-restore_drill-20261102T000000Z.json").write_text(
        '{"format": "%s", "databases": [%s]}' % (FORMAT, line % "last tuesday"))
    (dirs["broken"] / "fleet-restore_drill-20261103T000000Z.json").write_text('{"format": "%s", "datab' % FORMAT)
    return {name: str(directory.parent) for name, directory in dirs.items()}


def cases(dirs, missing):
    sound = dirs["sound"]
    return [
        {"id": "no_source", "args": {"kinds": ["restore"]},
         "expect": ["one of the following is required: report_dir, report_s3"]},
        {"id": "missing_dir", "args": {"report_dir": missing},
         "expect": [f"Reading the stored reports in {missing} failed: no such directory", "dbre_rds_report_dir"]},
        {"id": "unknown_kind", "args": {"report_dir": sound, "kinds": ["restore", "backup"]},
         "expect": ["value of kinds must be one or more of", "backup"]},
        {"id": "no_kind", "args": {"report_dir": sound, "kinds": []},
         "expect": ["kinds must name at least one kind of run"]},
        {"id": "window_zero", "args": {"report_dir": sound, "max_age_days": 0},
         "expect": ["max_age_days must be more than 0 and at most 3660 days, not 0"]},
        {"id": "as_of_not_a_time", "args": {"report_dir": sound, "as_of": "yesterday"},
         "expect": ["as_of 'yesterday' is not an ISO 8601 time", "2026-11-30T07:00:00Z"]},
        {"id": "blank_identifier", "args": {"report_dir": sound, "identifiers": ["orders-db", " "]},
         "expect": ["identifiers must not hold blank names"]},
        {"id": "every_option_problem_at_once",
         "args": {"report_dir": sound, "max_age_days": -1, "as_of": "soon", "report_s3": "s3://"},
         "expect": ["max_age_days must be more than 0", "as_of 'soon' is not an ISO 8601 time",
                    "report_s3 's3://' names no S3 bucket"]},
        {"id": "s3_bucket_missing", "args": {"report_s3": "s3://dbre-no-such-bucket/prod"},
         "expect": ["Listing the stored reports in s3://dbre-no-such-bucket/prod/fleet/ failed",
                    "check report_s3, the region and that the role may s3:ListBucket"]},
        {"id": "report_with_a_time_that_is_none", "args": {"report_dir": dirs["bad_time"]},
         "expect": ["Reading the stored reports failed", "fleet-restore_drill-20261102T000000Z.json",
                    "database orders-db has finished_at 'last tuesday', which is not an ISO 8601 time",
                    "Fix or remove these files"]},
        {"id": "broken_json", "args": {"report_dir": dirs["broken"]},
         "expect": ["fleet-restore_drill-20261103T000000Z.json is not valid JSON", "Fix or remove these files"]},
        {"id": "check_mode_same", "check_mode": True, "args": {"report_dir": dirs["broken"]},
         "expect": ["is not valid JSON"]},
    ]


def test_bad_inputs_are_refused_with_the_fix_named(lab):
    lab.control.reset()
    work = pathlib.Path(tempfile.mkdtemp(prefix="dbre-rds-history-bad-"))
    refused = cases(report_dirs(work), str(work / "nowhere"))
    results = assert_all_refused(lab, run_module_cases, MODULE, refused)
    assert len(results) >= len(refused)
