# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Performance Insights: the ``pi`` service (none in moto 5.2.5) reports the db load sampled from the instance's real
PostgreSQL. The test makes a lock contention (one session holds a row lock in an open transaction, three sessions
wait to update that row, one more sleeps) and reads it back by wait event, SQL, application and user."""

import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest
from botocore.exceptions import ClientError
from botocore.parsers import create_parser
from botocore.serialize import create_serializer

from tests.lab.clients import connect_instance, create_postgres, query

pytestmark = pytest.mark.lab

MARKER = "/* " + "performance insights keeps the first 500 bytes of a statement; " * 10 + "*/"
WAITING_UPDATE = "UPDATE accounts SET balance = balance + 1 WHERE id = 1 " + MARKER
CONTENTION_SECONDS = 5
SLEEPING = f"SELECT pg_sleep({CONTENTION_SECONDS}) /* sleeper */"
WAITERS = 3
LOCK_EVENTS = ("Lock:transactionid", "Lock:tuple")


def _session(instance, application: str):
    conn = connect_instance(instance)
    query(conn, f"SET application_name = '{application}'")
    return conn


@pytest.fixture(scope="module")
def pi_lab(lab):
    lab.control.reset()
    rds = lab.client()
    instance = create_postgres(rds, "pi-on", EnablePerformanceInsights=True)
    yield lab, instance
    lab.control.reset()


@pytest.fixture(scope="module")
def contention(pi_lab):
    """Three sessions wait on a row lock while a fourth sleeps CONTENTION_SECONDS; returns the window."""
    lab, instance = pi_lab
    setup = _session(instance, "pi-setup")
    query(setup, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    query(setup, "CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL)")
    query(setup, "INSERT INTO accounts VALUES (1, 100), (2, 100)")
    holder = _session(instance, "pi-holder")
    holder.autocommit = False
    with holder.cursor() as cur:
        cur.execute("SELECT * FROM accounts WHERE id = 1 FOR UPDATE")  # then idle in transaction: not load
    started = datetime.now(timezone.utc)
    errors = []

    def run(application: str, statement: str) -> None:
        try:
            conn = _session(instance, application)
            query(conn, statement)
            conn.close()
        except Exception as exc:  # reported by the fixture
            errors.append(exc)

    threads = [threading.Thread(target=run, args=("pi-waiter", WAITING_UPDATE)) for _unused in range(WAITERS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while query(setup, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")[0][0] < WAITERS:
        assert time.monotonic() < deadline, "the updates never waited for the row lock"
        time.sleep(0.1)
    sleeper = threading.Thread(target=run, args=("pi-sleeper", SLEEPING))
    sleeper.start()
    sleeper.join(CONTENTION_SECONDS + 20)  # the updates wait as long as the sleeper sleeps
    holder.commit()
    for thread in threads:
        thread.join(20)
    ended = datetime.now(timezone.utc)
    assert not errors
    assert query(setup, "SELECT balance FROM accounts WHERE id = 1") == [(100 + WAITERS,)]
    holder.close()
    setup.close()
    time.sleep(1.5)  # the sampler's next tick has run: the window is complete
    pi = lab.client("pi")
    yield {"pi": pi, "resource_id": instance["DbiResourceId"], "start": started - timedelta(seconds=2),
           "end": ended + timedelta(seconds=1)}


def _keys(contention, group: str, **kwargs) -> list[dict]:
    answer = contention["pi"].describe_dimension_keys(
        ServiceType="RDS", Identifier=contention["resource_id"], StartTime=contention["start"],
        EndTime=contention["end"], Metric="db.load.avg", GroupBy={"Group": group}, **kwargs)
    return answer["Keys"]


def test_top_wait_event_of_a_lock_contention_is_a_row_lock(contention):
    by_event = _keys(contention, "db.wait_event")
    names = [key["Dimensions"]["db.wait_event.name"] for key in by_event]
    totals = {key["Dimensions"]["db.wait_event.name"]: key["Total"] for key in by_event}
    assert names[0] in LOCK_EVENTS
    assert set(LOCK_EVENTS) <= set(names) and "Timeout:PgSleep" in names
    assert [key["Total"] for key in by_event] == sorted((key["Total"] for key in by_event), reverse=True)
    # Three sessions wait on the row for as long as one sleeps: three times its load, within the sampling jitter.
    lock_total = sum(totals[name] for name in LOCK_EVENTS)
    assert 2 * totals["Timeout:PgSleep"] < lock_total < 4 * totals["Timeout:PgSleep"]
    assert by_event[0]["Dimensions"]["db.wait_event.type"] == "Lock"

    by_type = _keys(contention, "db.wait_event_type")
    assert by_type[0]["Dimensions"] == {"db.wait_event_type.name": "Lock"}
    assert by_type[0]["Total"] == pytest.approx(lock_total)


def test_top_sql_is_the_waiting_update_with_its_full_text_on_request(contention):
    by_sql = _keys(contention, "db.sql")
    top = by_sql[0]["Dimensions"]
    assert top["db.sql.statement"] == WAITING_UPDATE[:500] and len(WAITING_UPDATE) > 500
    assert by_sql[1]["Dimensions"]["db.sql.statement"] == SLEEPING
    details = contention["pi"].get_dimension_key_details(
        ServiceType="RDS", Identifier=contention["resource_id"], Group="db.sql", GroupIdentifier=top["db.sql.id"],
        RequestedDimensions=["db.sql.statement"])
    assert details["Dimensions"] == [{"Dimension": "db.sql.statement", "Value": WAITING_UPDATE,
                                      "Status": "AVAILABLE"}]

    tokenized = _keys(contention, "db.sql_tokenized")[0]["Dimensions"]
    # pg_stat_statements is installed: its digest, constants as $n
    assert tokenized["db.sql_tokenized.statement"].startswith(
        "UPDATE accounts SET balance = balance + $1 WHERE id = $2")
    assert tokenized["db.sql_tokenized.id"] == top["db.sql.tokenized_id"]

    # Partitioned by wait event: the update's load is all row-lock waits; the filter keeps only the sleeper.
    partitioned = contention["pi"].describe_dimension_keys(
        ServiceType="RDS", Identifier=contention["resource_id"], StartTime=contention["start"],
        EndTime=contention["end"], Metric="db.load.avg", GroupBy={"Group": "db.sql", "Dimensions": ["db.sql.id"]},
        PartitionBy={"Group": "db.wait_event"})
    partitions = [key["Dimensions"]["db.wait_event.name"] for key in partitioned["PartitionKeys"]]
    update = partitioned["Keys"][0]
    assert update["Dimensions"] == {"db.sql.id": top["db.sql.id"]}
    assert sum(update["Partitions"]) == pytest.approx(update["Total"])
    assert all(value == 0 for name, value in zip(partitions, update["Partitions"]) if name not in LOCK_EVENTS)
    sleeper = _keys(contention, "db.sql", PartitionBy={"Group": "db.wait_event"},
                    Filter={"db.wait_event.name": "Timeout:PgSleep"})
    assert [key["Dimensions"]["db.sql.statement"] for key in sleeper] == [SLEEPING]


def test_load_counts_active_sessions_only(contention):
    applications = {key["Dimensions"]["db.application.name"]: key["Total"]
                    for key in _keys(contention, "db.application")}
    assert "pi-holder" not in applications  # the lock holder is idle in transaction: no load
    assert max(applications, key=applications.get) == "pi-waiter"
    assert _keys(contention, "db.user")[0]["Dimensions"]["db.user.name"] == "master"
    assert all(key["Dimensions"]["db.name"] == "app" for key in _keys(contention, "db"))


def test_resource_metrics_show_the_load_per_second(contention):
    pi = contention["pi"]
    answer = pi.get_resource_metrics(
        ServiceType="RDS", Identifier=contention["resource_id"], StartTime=contention["start"],
        EndTime=contention["end"], PeriodInSeconds=1,
        MetricQueries=[{"Metric": "db.load.avg", "GroupBy": {"Group": "db.wait_event_type", "Limit": 2}},
                       {"Metric": "db.sampledload.max"}])
    assert answer["Identifier"] == contention["resource_id"]
    assert answer["AlignedStartTime"] == contention["start"].replace(microsecond=0)
    total, lock, sleep, sampled = answer["MetricList"]
    assert total["Key"] == {"Metric": "db.load.avg"}
    assert lock["Key"] == {"Metric": "db.load.avg", "Dimensions": {"db.wait_event_type.name": "Lock"}}
    assert sleep["Key"]["Dimensions"] == {"db.wait_event_type.name": "Timeout"}
    assert sampled["Key"] == {"Metric": "db.sampledload.max"}
    values = [point["Value"] for point in total["DataPoints"]]
    assert len(values) >= CONTENTION_SECONDS and max(values) >= WAITERS + 1
    assert max(point["Value"] for point in lock["DataPoints"]) == WAITERS
    stamps = [point["Timestamp"] for point in total["DataPoints"]]
    assert stamps == sorted(stamps) and all(contention["start"] < stamp <= answer["AlignedEndTime"]
                                            for stamp in stamps)

    minute = pi.get_resource_metrics(
        ServiceType="RDS", Identifier=contention["resource_id"], StartTime=contention["start"],
        EndTime=contention["end"], PeriodInSeconds=60, MetricQueries=[{"Metric": "db.load.avg"}])
    assert 0 < sum(point["Value"] for point in minute["MetricList"][0]["DataPoints"])


def test_cbor_protocol_answers_the_same(pi_lab, contention):
    """boto3 speaks JSON 1.1 to ``pi``; SDKs that prefer smithy RPC v2 CBOR get the same answers (request built and
    answer read by botocore's own CBOR serializer and parser)."""
    lab, _unused = pi_lab
    operation = contention["pi"].meta.service_model.operation_model("DescribeDimensionKeys")

    def call(params: dict) -> tuple[int, dict]:
        request = create_serializer("smithy-rpc-v2-cbor").serialize_to_request(params, operation)
        headers = dict(request["headers"], Authorization="AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/pi/"
                                                         "aws4_request, SignedHeaders=host, Signature=0")
        http = urllib.request.Request(lab.endpoint_url + request["url_path"], data=request["body"], method="POST",
                                      headers=headers)
        try:
            with urllib.request.urlopen(http, timeout=10) as response:
                status, answer_headers, body = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            status, answer_headers, body = error.code, dict(error.headers), error.read()
        answer_headers = {k.lower(): v for k, v in answer_headers.items()}
        assert answer_headers["smithy-protocol"] == "rpc-v2-cbor"
        parsed = create_parser("smithy-rpc-v2-cbor").parse(
            {"status_code": status, "headers": answer_headers, "body": body}, operation.output_shape)
        return status, parsed

    params = {"ServiceType": "RDS", "Identifier": contention["resource_id"], "Metric": "db.load.avg",
              "StartTime": contention["start"], "EndTime": contention["end"],
              "GroupBy": {"Group": "db.wait_event_type"}}
    status, answer = call(params)
    assert status == 200 and answer["Keys"][0]["Dimensions"] == {"db.wait_event_type.name": "Lock"}
    assert answer["AlignedStartTime"] == contention["start"].replace(microsecond=0)
    status, error = call(dict(params, PeriodInSeconds=7))
    assert status == 400 and error["Error"]["Code"] == "InvalidArgumentException"


def test_errors_as_aws_answers_them(pi_lab):
    lab, instance = pi_lab
    pi, rds = lab.client("pi"), lab.client()
    now = datetime.now(timezone.utc)
    window = {"ServiceType": "RDS", "Identifier": instance["DbiResourceId"], "StartTime": now - timedelta(minutes=5),
              "EndTime": now}
    dimensions = pi.list_available_resource_dimensions(ServiceType="RDS", Identifier=instance["DbiResourceId"],
                                                       Metrics=["db.load"])["MetricDimensions"][0]
    assert {"Group": "db.sql", "Dimensions": [{"Identifier": "db.sql.id"}, {"Identifier": "db.sql.db_id"},
                                              {"Identifier": "db.sql.statement"},
                                              {"Identifier": "db.sql.tokenized_id"}]} in dimensions["Groups"]
    bad = [
        dict(window, PeriodInSeconds=7, MetricQueries=[{"Metric": "db.load.avg"}]),
        dict(window, MetricQueries=[{"Metric": "db.load.p99"}]),
        dict(window, MetricQueries=[{"Metric": "db.load.avg", "GroupBy": {"Group": "db.session_type"}}]),
        dict(window, StartTime=now, EndTime=now - timedelta(minutes=1), MetricQueries=[{"Metric": "db.load.avg"}]),
    ]
    for params in bad:
        with pytest.raises(ClientError) as error:
            pi.get_resource_metrics(**params)
        assert error.value.response["Error"]["Code"] == "InvalidArgumentException", params
    with pytest.raises(ClientError) as unknown:
        pi.get_resource_metrics(**dict(window, Identifier="db-NOSUCHRESOURCE0000000000"),
                                MetricQueries=[{"Metric": "db.load.avg"}])
    assert unknown.value.response["Error"]["Code"] == "NotAuthorizedException"

    # Performance Insights turned off: AWS answers NotAuthorizedException for the instance's resource id.
    rds.modify_db_instance(DBInstanceIdentifier="pi-on", EnablePerformanceInsights=False, ApplyImmediately=True)
    with pytest.raises(ClientError) as off:
        pi.describe_dimension_keys(**window, Metric="db.load.avg", GroupBy={"Group": "db.wait_event"})
    assert off.value.response["Error"]["Code"] == "NotAuthorizedException"
    assert instance["DbiResourceId"] in off.value.response["Error"]["Message"]
