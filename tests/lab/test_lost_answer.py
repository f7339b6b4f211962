# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lost answers: ``set_fault("lost_answer", seconds=...)`` carries the call out, then holds its answer back, so a
client that times out sees a failure although the call happened (unlike ``latency``, which waits before the call)."""

import time

import pytest
from botocore.config import Config
from botocore.exceptions import ReadTimeoutError

from tests.lab.clients import create_postgres, wait_instance

pytestmark = pytest.mark.lab


def test_a_reboot_whose_answer_is_lost_fails_over_once(lab_clean):
    rds, control = lab_clean.client(), lab_clean.control
    control.set_timing(failover=0.5)
    create_postgres(rds, "lost", MultiAZ=True)
    hasty = lab_clean.client(config=Config(retries={"mode": "standard", "total_max_attempts": 1}, read_timeout=1,
                                           connect_timeout=5))
    control.set_fault("lost_answer", actions=["RebootDBInstance"], seconds=6, count=1)

    started = time.monotonic()
    with pytest.raises(ReadTimeoutError):
        hasty.reboot_db_instance(DBInstanceIdentifier="lost", ForceFailover=True)
    assert time.monotonic() - started < 5, "the client gave up at its read timeout, not when the answer came"
    wait_instance(rds, "lost", "available")
    control.wait_jobs()

    failovers = control.failover_log()
    assert [f["identifier"] for f in failovers] == ["lost"]
    reboots = control.calls(action="RebootDBInstance")
    assert len(reboots) == 1
    assert reboots[0]["status"] == 200 and reboots[0]["fault"] == "lost_answer"
    assert reboots[0]["params"]["ForceFailover"] == "true"


def test_a_held_answer_arrives_after_its_delay(lab_clean):
    control = lab_clean.control
    patient = lab_clean.client(config=Config(retries={"mode": "standard", "total_max_attempts": 1}, read_timeout=30))
    control.set_fault("lost_answer", actions=["DescribeDBClusters"], seconds=1.0, count=1)
    started = time.monotonic()
    patient.describe_db_clusters()
    assert time.monotonic() - started >= 1.0
    logged = control.calls(action="DescribeDBClusters")
    # Logged when carried out, before the answer left: the entry is older than the answer.
    assert len(logged) == 1 and logged[0]["fault"] == "lost_answer"
    assert logged[0]["epoch"] < time.time() - 0.9
    started = time.monotonic()
    patient.describe_db_clusters()
    assert time.monotonic() - started < 1.0, "count=1: the second answer is not held"
