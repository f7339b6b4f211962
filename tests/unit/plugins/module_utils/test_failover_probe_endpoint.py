# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""probe_endpoint: the options, resolving an RDS Proxy endpoint against the drilled target, and what the
measurements and the report say about the path measured."""

import datetime

import pytest

from ansible_collections.dbre.rds.plugins.module_utils import failover_drill as drill
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import render_markdown

CREDENTIALS = dict(login_user="drill", login_password="pw")


def option_problems(**params):
    merged = dict(CREDENTIALS, db_instance_identifier="orders-db", probe_mode="write", probe_table="t")
    merged.update(params)
    return drill.problems(merged, bool(merged.get("login_user") and merged.get("login_password")))[1]


@pytest.mark.parametrize("params, expected", [
    (dict(probe_endpoint="orders-proxy"), []),
    (dict(probe_endpoint="orders-ro-endpoint", probe_mode="read"), []),
    (dict(probe_endpoint=""), ["probe_endpoint must not be empty"]),
    (dict(probe_endpoint="bad_name"), ["probe_endpoint 'bad_name' is not a valid RDS identifier"]),
    (dict(probe_endpoint="p" * 64), ["64 characters long"]),
    (dict(probe_endpoint="orders-proxy", login_user=None, login_password=None),
     ["probe_endpoint names the RDS Proxy endpoint the probes connect through, so it needs probing"]),
    (dict(probe_endpoint="orders-proxy", probe=False), ["and probe=false turns probing off: drop one of them"]),
    (dict(probe_endpoint="orders-proxy", login_host="10.0.0.5"), ["probe_endpoint and login_host both say"]),
    (dict(probe_endpoint="orders-proxy", login_port=6432), ["probe_endpoint and login_port both say"]),
])
def test_probe_endpoint_options(params, expected):
    found = option_problems(**params)
    assert len(found) == len(expected), found
    for fragment, problem in zip(expected, found):
        assert fragment in problem


def test_probe_true_without_credentials_is_one_problem_not_two():
    found = option_problems(probe_endpoint="orders-proxy", probe=True, login_user=None, login_password=None)
    assert found == ["probe=true needs DB credentials: give login_user and login_password (or iam_auth=true)"]


@pytest.mark.parametrize("params, path", [
    ({}, {"kind": "writer", "name": "orders-db", "address": "db.example", "port": 5433}),
    ({"login_host": "10.0.0.9"}, {"kind": "writer", "name": "orders-db", "address": "10.0.0.9", "port": 5433}),
    ({"login_port": 6000}, {"kind": "writer", "name": "orders-db", "address": "db.example", "port": 6000}),
])
def test_writer_path_is_where_the_connection_goes(params, path):
    assert drill.writer_probe_path("orders-db", ("db.example", 5433), params) == path


def test_writer_path_without_port_is_postgres_default():
    assert drill.writer_probe_path("c1", ("c1.example", None))["port"] == 5432


def proxy(**overrides):
    described = {"DBProxyName": "orders-proxy", "Status": "available", "EngineFamily": "POSTGRESQL",
                 "Endpoint": "orders-proxy.proxy-abc.us-east-1.rds.amazonaws.com"}
    described.update(overrides)
    return described


def endpoint(**overrides):
    described = {"DBProxyEndpointName": "orders-ro", "DBProxyName": "orders-proxy", "Status": "available",
                 "TargetRole": "READ_ONLY", "Endpoint": "orders-ro.endpoint.proxy-abc.us-east-1.rds.amazonaws.com"}
    described.update(overrides)
    return described


TARGETS = [{"Type": "RDS_INSTANCE", "RdsResourceId": "orders-db", "Port": 5433}]


def test_a_proxy_name_leads_to_its_default_endpoint_on_the_family_port():
    path, problems = drill.proxy_probe_path("orders-proxy", "instance", "orders-db", proxy(), None, TARGETS)
    assert problems == []
    assert path == {"kind": "proxy", "name": "orders-proxy",
                    "address": "orders-proxy.proxy-abc.us-east-1.rds.amazonaws.com", "port": 5432}


def test_an_endpoint_name_leads_to_that_endpoints_address():
    path, problems = drill.proxy_probe_path("orders-ro", "instance", "orders-db", proxy(), endpoint(), TARGETS,
                                            probe_mode="read")
    assert problems == []
    assert path["address"].startswith("orders-ro.endpoint") and path["name"] == "orders-ro"


def test_a_cluster_is_fronted_through_its_tracked_target():
    targets = [{"Type": "TRACKED_CLUSTER", "RdsResourceId": "billing"}]
    path, problems = drill.proxy_probe_path("orders-proxy", "cluster", "billing", proxy(), None, targets,
                                            ["billing-1", "billing-2"])
    assert problems == [] and path["kind"] == "proxy"


@pytest.mark.parametrize("name, kind, identifier, described_proxy, described_endpoint, targets, mode, expected", [
    ("ghost", "instance", "orders-db", None, None, TARGETS, "write",
     ["probe_endpoint ghost is neither an RDS Proxy nor an RDS Proxy endpoint in this region"]),
    ("orders-ro", "instance", "orders-db", None, endpoint(), TARGETS, "read",
     ["belongs to RDS Proxy orders-proxy, which does not exist any more"]),
    ("orders-proxy", "instance", "other-db", proxy(), None, TARGETS, "write",
     ["probe_endpoint orders-proxy does not lead to DB instance other-db: RDS Proxy orders-proxy targets "
      "RDS_INSTANCE orders-db; name the proxy in front of other-db or register other-db"]),
    ("orders-proxy", "instance", "orders-db", proxy(), None, [], "write",
     ["RDS Proxy orders-proxy targets nothing"]),
    ("orders-proxy", "instance", "orders-db", proxy(EngineFamily="MYSQL"), None, TARGETS, "write",
     ["is for engine family MYSQL, not POSTGRESQL"]),
    ("orders-proxy", "instance", "orders-db", proxy(Status="creating"), None, TARGETS, "write",
     ["RDS Proxy orders-proxy is creating, not available"]),
    ("orders-ro", "instance", "orders-db", proxy(), endpoint(Status="modifying"), TARGETS, "read",
     ["RDS Proxy endpoint orders-ro (of proxy orders-proxy) is modifying, not available"]),
    ("orders-ro", "instance", "orders-db", proxy(), endpoint(), TARGETS, "write",
     ["orders-ro is a read-only proxy endpoint: write probes cannot succeed there"]),
    ("orders-proxy", "instance", "orders-db", proxy(Endpoint=None), None, TARGETS, "write", ["has no address yet"]),
    ("default", "instance", "orders-db", proxy(), endpoint(DBProxyEndpointName="default", IsDefault=True), TARGETS,
     "write", ["default endpoint of RDS Proxy orders-proxy, a name every proxy shares: name the proxy itself "
               "(probe_endpoint=orders-proxy)"]),
    ("orders-proxy", "cluster", "billing", proxy(), None, TARGETS, "write",
     ["does not lead to DB cluster billing"]),
])
def test_proxy_path_problems(name, kind, identifier, described_proxy, described_endpoint, targets, mode, expected):
    path, problems = drill.proxy_probe_path(name, kind, identifier, described_proxy, described_endpoint, targets,
                                            probe_mode=mode)
    assert path is None
    assert len(problems) == len(expected), problems
    for fragment, problem in zip(expected, problems):
        assert fragment in problem


def test_a_read_write_endpoint_takes_write_probes():
    path, problems = drill.proxy_probe_path("orders-rw", "instance", "orders-db", proxy(),
                                            endpoint(DBProxyEndpointName="orders-rw", TargetRole="READ_WRITE"),
                                            TARGETS)
    assert problems == [] and path["name"] == "orders-rw"


PROXY_PATH = {"kind": "proxy", "name": "orders-proxy", "address": "orders-proxy.example", "port": 5432}
WRITER_PATH = {"kind": "writer", "name": "orders-db", "address": "127.0.0.1", "port": 5433}


@pytest.mark.parametrize("path, words", [
    (PROXY_PATH, "through RDS Proxy endpoint orders-proxy (orders-proxy.example:5432)"),
    (WRITER_PATH, "directly on the writer endpoint of orders-db (127.0.0.1:5433)"),
    (None, None),
])
def test_describe_probe_path(path, words):
    assert drill.describe_probe_path(path) == words


def plan(path):
    described = {"DBInstanceIdentifier": "orders-db", "DBInstanceStatus": "available", "MultiAZ": True,
                 "AvailabilityZone": "us-east-1a", "SecondaryAvailabilityZone": "us-east-1b"}
    probing = None if path is None else {"mode": "write", "interval": 0.25, "probe_endpoint": path}
    return drill.plan_failover("instance", "orders-db", described, probing=probing)


@pytest.mark.parametrize("path, title", [
    (PROXY_PATH, "Failover drill of Multi-AZ DB instance orders-db, probed through RDS Proxy endpoint orders-proxy"),
    (WRITER_PATH, "Failover drill of Multi-AZ DB instance orders-db"),
    (None, "Failover drill of Multi-AZ DB instance orders-db"),
])
def test_the_report_title_names_the_proxy_path(path, title):
    assert drill.report_title(plan(path)) == title


STARTED = datetime.datetime(2026, 11, 27, 8, 0, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize("path", [PROXY_PATH, WRITER_PATH])
def test_measurements_say_which_path_was_measured(path):
    samples = [{"seq": 1, "sent": 0.0, "done": 0.01, "ok": True, "error": None, "message": None}]
    measured = drill.measure(plan(path), started_at=STARTED, duration=3.0, requested=1.0, samples=samples,
                             probing={"mode": "write", "interval": 0.25, "endpoint": dict(path, extra="dropped")},
                             present_rows=[1])
    assert measured["probe_endpoint"] == path
    report = drill.build_report(identifier="orders-db", plan=plan(path), started_at="2026-11-27T08:00:00.000Z",
                                finished_at="2026-11-27T08:00:03.000Z", measurements=measured, objectives=[],
                                passed=True, timeline=[], details={})
    markdown = render_markdown(report)
    assert "| probe_endpoint |" in markdown and path["address"] in markdown


def test_without_probing_no_path():
    measured = drill.measure(plan(None), started_at=STARTED, duration=1.0, requested=0.5)
    assert measured["probe_endpoint"] is None


def sample(seq, sent, done, ok=True, error=None):
    return {"seq": seq, "sent": sent, "done": done, "ok": ok, "error": error, "message": None}


# Through a pooler the outage is one probe held until the target is back: it succeeds, late.
HELD = [sample(1, 0.0, 0.01), sample(2, 1.0, 4.2), sample(3, 4.2, 4.21), sample(4, 4.5, 4.51)]


@pytest.mark.parametrize("samples, stall_seconds, downtime", [
    (HELD, 2, 3.21),                      # the held probe is the outage, until the next quick success
    (HELD, None, 0.0),                    # without a timeout a late success is no outage
    (HELD, 5, 0.0),                       # held for less than the timeout: not a stall
    ([sample(1, 1.0, 1.01, False, "connection"), sample(2, 1.25, 3.6), sample(3, 3.6, 3.61)], 2, 2.61),
    ([sample(1, 1.0, 1.01), sample(2, 1.25, 1.26)], 2, 0.0),
])
def test_a_probe_held_past_the_timeout_counts_as_down(samples, stall_seconds, downtime):
    assert drill.measure_downtime(samples, 1.0, stall_seconds)["observed_downtime_seconds"] == downtime


def test_stalled_probes_are_counted_and_named_in_the_timeline():
    assert drill.probe_counts(HELD, 2)["probes_stalled"] == 1 and drill.probe_counts(HELD, 2)["probes_failed"] == 0
    assert drill.probe_counts(HELD)["probes_stalled"] == 0
    entries = drill.timeline(started_at=STARTED, samples=HELD, requested=1.0, stall_seconds=2)
    assert [e["event"] for e in entries] == ["first failed probe #2 (stalled 3.20 s)",
                                             "first successful probe after the outage #3"]
    measured = drill.measure(plan(PROXY_PATH), started_at=STARTED, duration=5.0, requested=1.0, samples=HELD,
                             probing={"mode": "read", "interval": 0.25, "timeout": 2, "endpoint": PROXY_PATH})
    assert (measured["observed_downtime_seconds"], measured["probes_stalled"]) == (3.21, 1)
