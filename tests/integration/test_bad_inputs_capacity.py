# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rds_capacity_info and rds_performance_insights_info refuse bad inputs with a clear error, read only, and change
nothing.

Every case runs through tests/integration/bad_inputs.py (one playbook per module): the error must name the problem,
the lab's call log must show only reads, and the lab's resources must be as before. A fleet that cannot fit is no
bad input but a finding (fits false, the shortfall, the recommendation, a failed objective): asserted, numbers and
all, in test_rds_capacity_info.py (test_a_fleet_that_cannot_fit_is_a_finding_that_says_by_how_much). The option
checks that need no AWS are covered case by case by the unit tests (test_capacity.py, test_performance_insights.py);
here are the cases the issue names and a few more.
"""

import pytest

from tests.integration.bad_inputs import assert_all_refused
from tests.integration.bad_inputs import run_module_cases
from tests.integration.capacity_support import create_capacity_instance

INSTANCE = "bad-cap-db"


@pytest.fixture(scope="module")
def instance(lab):
    """An instance without Performance Insights whose group sets max_connections 60."""
    lab.control.reset()
    yield create_capacity_instance(lab, INSTANCE)
    lab.control.reset()


FLEET = dict(name="web", instances=3, threads=10)
CAPACITY_CASES = [
    {"id": "unknown_instance", "args": {"db_instance_identifiers": ["bad-cap-nowhere"]},
     "expect": ["DB instance bad-cap-nowhere does not exist", "check the identifier"]},
    {"id": "nothing_named", "args": {},
     "expect": ["name at least one instance or cluster"]},
    {"id": "lookback_zero", "args": {"db_instance_identifiers": [INSTANCE], "lookback_days": 0},
     "expect": ["lookback_days must be from 1 to 455", "got 0"]},
    {"id": "fleet_twice", "args": {"db_instance_identifiers": [INSTANCE], "app_fleets": [FLEET, FLEET]},
     "expect": ["app_fleets names web more than once"]},
    {"id": "fleet_without_threads", "args": {"db_instance_identifiers": [INSTANCE],
                                             "app_fleets": [dict(name="web", instances=2)]},
     "expect": ["missing required arguments: threads"]},
    {"id": "unknown_threshold", "args": {"db_instance_identifiers": [INSTANCE], "thresholds": {"cpu": 90}},
     "expect": ["thresholds.cpu is not a threshold", "cpu_high_p95"]},
    {"id": "threshold_nan", "args": {"db_instance_identifiers": [INSTANCE],
                                     "thresholds": {"cpu_high_p95": float("nan")}},
     "expect": ["thresholds.cpu_high_p95 must be a finite number of at least 0", "nan"]},
]

PI_CASES = [
    {"id": "unknown_instance", "args": {"db_instance_identifier": "bad-cap-nowhere"},
     "expect": ["DB instance bad-cap-nowhere does not exist"]},
    {"id": "pi_only_without_pi", "args": {"db_instance_identifier": INSTANCE, "source": "performance_insights"},
     "expect": ["Performance Insights is not enabled on bad-cap-db", "source=auto"]},
    {"id": "fallback_without_login", "args": {"db_instance_identifier": INSTANCE},
     "expect": ["Performance Insights is off on bad-cap-db", "needs a login"]},
    {"id": "window_zero", "args": {"db_instance_identifier": INSTANCE, "window_minutes": 0},
     "expect": ["window_minutes must be from 1 to 1052640"]},
    {"id": "sample_seconds_too_long", "args": {"db_instance_identifier": INSTANCE, "sample_seconds": 61},
     "expect": ["sample_seconds must be from 0 to 60", "got 61"]},
    {"id": "max_query_length_tiny", "args": {"db_instance_identifier": INSTANCE, "max_query_length": 5},
     "expect": ["max_query_length must be at least 20, got 5"]},
]


def test_capacity_bad_inputs(lab, instance):
    assert_all_refused(lab, run_module_cases, "dbre.rds.rds_capacity_info", CAPACITY_CASES)


def test_performance_insights_bad_inputs(lab, instance):
    assert_all_refused(lab, run_module_cases, "dbre.rds.rds_performance_insights_info", PI_CASES)
