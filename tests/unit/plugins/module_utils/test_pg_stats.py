# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
import pytest

from ansible_collections.dbre.rds.plugins.module_utils import pg_stats


def _stats(**changes):
    stats = dict(
        pg_stat_statements=dict(preloaded=True, installed=True, version="1.10"),
        top_statements=dict(total_time=[], mean_time=[], calls=[]),
        cache_hit_ratio=0.999,
        connections=pg_stats.connection_use(10, 100, 3),
        oldest_xid=dict(database="app", age=1000),
        long_running_transactions=[],
    )
    stats.update(changes)
    return stats


def _names(found):
    return [f["name"] for f in found]


@pytest.mark.parametrize("version, expected", [(150005, "s.total_exec_time"), (120010, "s.total_time")])
def test_statements_sql_follows_the_server_version(version, expected):
    sql = pg_stats.statements_sql(version, "total_time", 5)
    assert f"ORDER BY {expected} DESC" in sql and sql.endswith("LIMIT 5")


def test_statements_sql_rejects_unknown_ordering():
    with pytest.raises(ValueError):
        pg_stats.statements_sql(150000, "rows; DROP TABLE x", 5)


def test_statement_rows():
    rows = [(1, "app", "u", "SELECT pg_sleep($1)", 20, 1012.34567, 50.6172, 60.1, 3.2, 20, 5, 1)]
    (item,) = pg_stats.statement_rows(rows)
    assert item["total_exec_time_ms"] == 1012.346 and item["calls"] == 20 and item["database"] == "app"
    (cut,) = pg_stats.statement_rows([(1, "a", "u", "x" * 50, 1, 1, 1, 1, 0, 1, 0, 0)], max_query_length=10)
    assert cut["query"] == "x" * 10 + "…"


@pytest.mark.parametrize("hit, read, expected", [(99, 1, 0.99), (0, 0, None), (0, 5, 0.0), ("3", None, 1.0)])
def test_cache_hit_ratio(hit, read, expected):
    assert pg_stats.cache_hit_ratio(hit, read) == expected


def test_connection_use():
    expected = dict(used=40, max_connections=112, reserved_connections=5, available_to_users=107,
                    ratio=round(40 / 112, 6))
    assert pg_stats.connection_use(40, 112, 5) == expected


def test_healthy_database_has_no_findings():
    assert pg_stats.findings(_stats()) == []
    assert all(o["held"] for o in pg_stats.objectives(_stats()))


@pytest.mark.parametrize("changes, name, severity", [
    (dict(pg_stat_statements=dict(preloaded=False, installed=False)), "pg_stat_statements_not_preloaded", "warning"),
    (dict(pg_stat_statements=dict(preloaded=True, installed=False)), "pg_stat_statements_not_installed", "warning"),
    (dict(cache_hit_ratio=0.9), "low_cache_hit_ratio", "warning"),
    (dict(connections=pg_stats.connection_use(85, 100)), "high_connection_use", "warning"),
    (dict(connections=pg_stats.connection_use(97, 100)), "high_connection_use", "critical"),
    (dict(oldest_xid=dict(database="app", age=1_200_000_000)), "old_transaction_ids", "warning"),
    (dict(oldest_xid=dict(database="app", age=1_800_000_000)), "old_transaction_ids", "critical"),
    (dict(long_running_transactions=[dict(seconds=912.0)]), "long_running_transactions", "warning"),
])
def test_each_problem_is_a_finding_with_advice(changes, name, severity):
    found = pg_stats.findings(_stats(**changes))
    assert _names(found) == [name]
    assert found[0]["severity"] == severity and len(found[0]["advice"]) > 20


def test_limits_can_be_tuned():
    assert _names(pg_stats.findings(_stats(cache_hit_ratio=0.95), {"cache_hit_ratio_min": 0.9})) == []
    objectives = pg_stats.objectives(_stats(cache_hit_ratio=0.95))
    assert [o["held"] for o in objectives] == [False, True, True, True]


def test_dominant_statement():
    top = [dict(total_exec_time_ms=900.0, calls=20, mean_exec_time_ms=45.0), dict(total_exec_time_ms=100.0, calls=1)]
    found = pg_stats.findings(_stats(top_statements=dict(total_time=top)))
    assert _names(found) == ["dominant_statement"] and found[0]["observed"] == 0.9


def _options(**changes):
    params = dict(db_instance_identifier="orders-db", login_host=None, login_port=None, login_user="monitoring",
                  limit=10, max_query_length=2000, cache_hit_ratio_min=0.99, connection_use_max=0.8,
                  xid_age_max=1000000000, long_running_seconds=300)
    params.update(changes)
    return params


@pytest.mark.parametrize("changes, fragment", [
    (dict(db_instance_identifier=""), "db_instance_identifier must not be empty or blank"),
    (dict(db_instance_identifier="orders_db"), "'orders_db' is not a valid RDS identifier"),
    (dict(db_instance_identifier=None), "name the database: db_instance_identifier"),
    (dict(db_instance_identifier=None, login_host=" "), "login_host must not be blank"),
    (dict(login_user=None), "login_user is required"),
    (dict(login_port=70000), "login_port must be from 1 to 65535"),
    (dict(limit=0), "limit must be from 1 to 1000"),
    (dict(limit=5000), "limit must be from 1 to 1000"),
    (dict(max_query_length=5), "max_query_length must be at least 20"),
    (dict(cache_hit_ratio_min=99), "cache_hit_ratio_min is a share from 0 to 1"),
    (dict(connection_use_max=0), "connection_use_max is a share above 0 and at most 1"),
    (dict(connection_use_max=80), "connection_use_max is a share above 0 and at most 1"),
    (dict(xid_age_max=0), "xid_age_max must be from 1 to 2147483647"),
    (dict(xid_age_max=2 ** 31), "xid_age_max must be from 1 to 2147483647"),
    (dict(long_running_seconds=0), "long_running_seconds must be at least 1"),
])
def test_option_problems(changes, fragment):
    problems = pg_stats.option_problems(_options(**changes))
    assert any(fragment in p for p in problems), problems


def test_valid_options_have_no_problems():
    assert pg_stats.option_problems(_options()) == []
    assert pg_stats.option_problems(_options(db_instance_identifier=None, login_host="db.example.com",
                                             login_port=5432)) == []
