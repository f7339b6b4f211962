# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One failover drill through an RDS Proxy and one direct, on the same Multi-AZ instance in one playbook run: both
pass, and the results and reports say which path each one measured, with the lab's own outage as the truth.

The proxy is made with boto3 in the fixture (tests/integration/proxy_support.py); behind it the lab runs PgBouncer,
which it repoints to the new writer on a failover, as RDS Proxy does.
"""

import json
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from ansible_collections.dbre.rds.plugins.module_utils.clock import parse_utc  # noqa: E402
from failover_support import create_instance  # noqa: E402
from failover_support import documented_measurements  # noqa: E402
from failover_support import drill  # noqa: E402
from failover_support import failover_calls  # noqa: E402
from failover_support import instance_available  # noqa: E402
from failover_support import probe_table_exists  # noqa: E402
from failover_support import run_tasks  # noqa: E402
from failover_support import wait_for  # noqa: E402
from proxy_support import create_proxy  # noqa: E402
from proxy_support import master_secret  # noqa: E402
from proxy_support import proxy_network  # noqa: E402

MULTI, PROXY = "fp-multi", "fp-proxy"
OUTAGE = 3.0


@pytest.fixture(scope="module")
def proxied(lab):
    """A Multi-AZ instance and a TLS-only POSTGRESQL proxy in front of it, for the whole file."""
    lab.control.reset()
    rds = lab.client("rds")
    create_instance(rds, MULTI, True)
    wait_for(lambda: instance_available(rds, MULTI), timeout=120, what=f"{MULTI} available")
    secret_arn, role_arn = master_secret(lab, "fp-master")
    proxy = create_proxy(lab, PROXY, proxy_network(lab), secret_arn, role_arn, instance=MULTI)
    yield rds, proxy
    lab.control.reset()


def test_a_drill_through_the_proxy_and_one_direct_both_pass_and_say_which_path(lab, proxied, tmp_path):
    rds, proxy = proxied
    lab.control.set_timing(failover=OUTAGE)
    lab.control.clear_calls()
    reports = tmp_path / "reports"
    options = dict(max_downtime_seconds=30, report_dir=str(reports), progress_log=str(tmp_path / "progress.log"))
    through_proxy = drill(MULTI, probe_endpoint=PROXY, report_name="through-proxy", **options)
    direct = drill(MULTI, report_name="direct", **options)
    via_proxy, straight = run_tasks(lab, tmp_path, [through_proxy, direct])

    for result in (via_proxy, straight):
        assert result.get("failed") is not True, result.get("msg")
        assert result["changed"] is True and result["passed"] is True
        measured = result["measurements"]
        assert set(measured) == documented_measurements()
        assert measured["failover_happened"] is True
        assert measured["lost_writes"] == 0 and measured["acknowledged_writes"] > 0
        assert measured["observed_downtime_seconds"] is not None
        assert measured["probe_table_removed"] is True
    instance = rds.describe_db_instances(DBInstanceIdentifier=MULTI)["DBInstances"][0]
    assert not probe_table_exists(instance["Endpoint"])

    # Which path each drill measured, in the result ...
    assert via_proxy["measurements"]["probe_endpoint"] == {"kind": "proxy", "name": PROXY,
                                                           "address": proxy["Endpoint"], "port": 5432}
    assert via_proxy["plan"]["probing"]["endpoint"] == f"{proxy['Endpoint']}:5432/postgres"
    assert straight["measurements"]["probe_endpoint"] == {"kind": "writer", "name": MULTI,
                                                          "address": instance["Endpoint"]["Address"],
                                                          "port": instance["Endpoint"]["Port"]}
    # ... and the writer moved each time, judged on the instance itself: there and back again.
    assert via_proxy["measurements"]["az_after"] == straight["measurements"]["az_before"]
    assert straight["measurements"]["az_after"] == via_proxy["measurements"]["az_before"]
    assert [c["action"] for c in failover_calls(lab)] == ["RebootDBInstance", "RebootDBInstance"]

    # The lab's outages are the truth: each drill's figure covers its own outage and is no longer than it plus the
    # probe resolution and the stop/start around it.
    outages = [(parse_utc(f["completed_at"]) - parse_utc(f["started_at"])).total_seconds()
               for f in lab.control.failover_log() if f["identifier"] == MULTI]
    assert len(outages) == 2
    for result, outage in zip((via_proxy, straight), outages):
        assert 0 < result["measurements"]["observed_downtime_seconds"] <= outage + 0.25 + 0.5, (outage, result)
    # Directly, clients are refused while the writer is away; through the proxy (PgBouncer paused by the lab, as RDS
    # Proxy holds clients) no probe fails: the outage is one probe held past probe_timeout, and still counted.
    assert straight["measurements"]["probes_failed"] > 0 and straight["measurements"]["probes_stalled"] == 0
    assert via_proxy["measurements"]["probes_failed"] == 0 and via_proxy["measurements"]["probes_stalled"] >= 1
    assert via_proxy["measurements"]["observed_downtime_seconds"] >= outages[0] - 0.5, (outages, via_proxy)

    # Both figures appear in the reports, and the proxy's report says so in its title and measurements.
    proxy_report = json.loads((reports / "through-proxy.json").read_text())
    direct_report = json.loads((reports / "direct.json").read_text())
    assert proxy_report["measurements"] == via_proxy["measurements"]
    assert direct_report["measurements"] == straight["measurements"]
    assert proxy_report["title"] == f"Failover drill of Multi-AZ DB instance {MULTI}, probed through RDS Proxy " \
                                    f"endpoint {PROXY}"
    assert direct_report["title"] == f"Failover drill of Multi-AZ DB instance {MULTI}"
    markdown = (reports / "through-proxy.md").read_text()
    assert f'"kind": "proxy", "name": "{PROXY}"' in markdown
    progress = (tmp_path / "progress.log").read_text()
    assert f"probing through RDS Proxy endpoint {PROXY} ({proxy['Endpoint']}:5432)" in progress
    assert f"probing directly on the writer endpoint of {MULTI}" in progress
