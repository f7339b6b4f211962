# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
import pytest

from ansible_collections.dbre.rds.plugins.module_utils import performance_insights as pi

ON = dict(DBInstanceIdentifier="orders-db", PerformanceInsightsEnabled=True)
OFF = dict(DBInstanceIdentifier="orders-db", PerformanceInsightsEnabled=False)


@pytest.mark.parametrize("requested, instance, source, problem", [
    ("auto", ON, "performance_insights", None),
    ("auto", OFF, "pg_stat_statements", None),
    ("performance_insights", ON, "performance_insights", None),
    ("performance_insights", OFF, None, "Performance Insights is not enabled on orders-db"),
    ("pg_stat_statements", ON, "pg_stat_statements", None),
    ("pg_stat_statements", OFF, "pg_stat_statements", None),
])
def test_choose_source(requested, instance, source, problem):
    got, note, refusal = pi.choose_source(requested, instance)
    assert got == source
    if problem:
        assert problem in refusal and "source=auto" in refusal
    else:
        assert refusal is None and note


def test_fallback_says_so():
    _source, note, _unused = pi.choose_source("auto", OFF)
    assert "Performance Insights is off on orders-db" in note and "pg_stat_statements" in note


@pytest.mark.parametrize("metric_list, expected", [
    ([], None),
    ([{"Key": {"Metric": "db.load.avg"}, "DataPoints": [{"Value": 1.0}, {"Value": 3.0}, {"Value": None}]}], 2.0),
    ([{"Key": {"Metric": "db.load.avg", "Dimensions": {"db.wait_event.name": "CPU"}},
       "DataPoints": [{"Value": 9.0}]}], None),
])
def test_average_load(metric_list, expected):
    assert pi.average_load(metric_list) == expected


KEYS_WAIT = [
    {"Dimensions": {"db.wait_event.name": "CPU", "db.wait_event.type": "CPU"}, "Total": 0.5},
    {"Dimensions": {"db.wait_event.name": "Lock:transactionid", "db.wait_event.type": "Lock"}, "Total": 3.0},
]
KEYS_SQL = [
    {"Dimensions": {"db.sql_tokenized.statement": "SELECT ?", "db.sql_tokenized.id": "a"}, "Total": 0.5},
    {"Dimensions": {"db.sql_tokenized.statement": "UPDATE t SET v = ? WHERE id = ?", "db.sql_tokenized.id": "b"},
     "Total": 3.0},
]


def test_top_lists_from_keys_heaviest_first_with_share():
    waits = pi.wait_events_from_keys(KEYS_WAIT, 4.0, 10)
    assert [w["wait_event"] for w in waits] == ["Lock:transactionid", "CPU"]
    assert waits[0]["share_of_load"] == 0.75 and waits[0]["wait_event_type"] == "Lock"
    sql = pi.sql_from_keys(KEYS_SQL, 4.0, 1)
    assert sql == [dict(statement="UPDATE t SET v = ? WHERE id = ?", id="b", average_active_sessions=3.0,
                        share_of_load=0.75)]
    assert pi.wait_events_from_keys(KEYS_WAIT, None, 10)[0]["share_of_load"] is None


@pytest.mark.parametrize("event_type, event, name", [
    (None, None, "CPU"), ("Lock", "transactionid", "Lock:transactionid"), ("IO", "DataFileRead", "IO:DataFileRead"),
])
def test_wait_event_name(event_type, event, name):
    assert pi.wait_event_name(event_type, event) == name


def test_wait_events_from_samples():
    samples = [[("Lock", "transactionid"), ("Lock", "transactionid"), (None, None)],
               [("Lock", "transactionid"), ("Lock", "transactionid"), ("Lock", "transactionid")]]
    events, total = pi.wait_events_from_samples(samples, 5)
    assert total == 3.0
    assert events[0] == dict(wait_event="Lock:transactionid", wait_event_type="Lock", average_active_sessions=2.5,
                             share_of_load=0.8333)
    assert events[1]["wait_event"] == "CPU"
    assert pi.wait_events_from_samples([], 5) == ([], None)


def test_sql_without_pi():
    statements = [dict(query="SELECT pg_sleep($1)", queryid=7, calls=3, total_exec_time_ms=30000.0)]
    items = pi.sql_from_samples_and_statements([["UPDATE t"], ["UPDATE t", "SELECT 1"]], statements, 600, 10)
    assert items[0]["statement"] == "UPDATE t" and items[0]["average_active_sessions"] == 1.0
    assert items[-1]["average_active_sessions"] == 0.05 and items[-1]["basis"] == "pg_stat_statements since its reset"


@pytest.mark.parametrize("load, vcpus, waits, names", [
    (1.0, 2, [dict(wait_event="CPU", wait_event_type="CPU", share_of_load=0.9)], []),
    (5.0, 2, [dict(wait_event="CPU", wait_event_type="CPU", share_of_load=0.9)], ["load_above_vcpus"]),
    (1.0, 2, [dict(wait_event="Lock:tuple", wait_event_type="Lock", share_of_load=0.6)], ["top_wait_event"]),
    (1.0, 2, [dict(wait_event="Lock:tuple", wait_event_type="Lock", share_of_load=0.1)], []),
    (None, None, [], []),
])
def test_findings(load, vcpus, waits, names):
    assert [f["name"] for f in pi.findings(load, vcpus, waits)] == names


@pytest.mark.parametrize("changes, fragment", [
    (dict(db_instance_identifier="bad_name"), "not a valid RDS identifier"),
    (dict(window_minutes=0), "window_minutes must be from 1"),
    (dict(limit=30), "limit must be from 1 to 25"),
    (dict(max_query_length=19), "max_query_length must be at least 20, got 19"),
    (dict(max_query_length=None), "max_query_length must be at least 20"),
    (dict(sample_seconds=-1.0), "sample_seconds must be from 0 to 60, got -1.0"),
    (dict(sample_seconds=60.5), "sample_seconds must be from 0 to 60"),
    (dict(sample_seconds=float("nan")), "sample_seconds must be from 0 to 60, got nan"),
    (dict(sample_seconds=float("inf")), "sample_seconds must be from 0 to 60, got inf"),
])
def test_option_problems(changes, fragment):
    params = dict(db_instance_identifier="orders-db", window_minutes=60, limit=10, max_query_length=20,
                  sample_seconds=0.0)
    assert pi.option_problems(params) == []
    params.update(changes)
    assert any(fragment in p for p in pi.option_problems(params))


@pytest.mark.parametrize("text, expected", [
    ("ALTER ROLE app PASSWORD 'se''cr;et' VALID UNTIL 'infinity'",
     "ALTER ROLE app PASSWORD '********' VALID UNTIL 'infinity'"),
    ("create role a login encrypted password 'abc'", "create role a login encrypted password '********'"),
    ("ALTER ROLE a PASSWORD 'cut short by max_query_len", "ALTER ROLE a PASSWORD '********'"),
    ("ALTER ROLE a PASSWORD E'a\\'b' LOGIN", "ALTER ROLE a PASSWORD '********' LOGIN"),
    ("ALTER ROLE a PASSWORD $pw$x'y$pw$ LOGIN", "ALTER ROLE a PASSWORD '********' LOGIN"),
    ("ALTER ROLE a PASSWORD NULL", "ALTER ROLE a PASSWORD NULL"),
    ("SELECT password, 'password' FROM users WHERE id = $1", "SELECT password, 'password' FROM users WHERE id = $1"),
    (None, None),
])
def test_redact(text, expected):
    assert pi.redact(text) == expected


def test_password_literals_never_reach_the_top_sql():
    secret = "ALTER ROLE app PASSWORD 'hunter2-secret'"
    statements = [dict(query="ALTER ROLE app PASSWORD 'pgss-secret'", queryid=1, calls=1, total_exec_time_ms=1.0)]
    items = pi.sql_from_samples_and_statements([[secret], [secret]], statements, 60, 10, max_query_length=30)
    texts = [i["statement"] for i in items]
    assert texts == ["ALTER ROLE app PASSWORD '*****…", "ALTER ROLE app PASSWORD '*****…"]
    keys = [{"Dimensions": {"db.sql.statement": secret, "db.sql.id": "s"}, "Total": 1.0}]
    assert pi.sql_from_keys(keys, 1.0, 5)[0]["statement"] == "ALTER ROLE app PASSWORD '********'"
    assert not any("secret" in t for t in texts)
