# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The probe loop against a scripted database: outages, read-only writers, reconnects, error kinds."""

import datetime
import threading
import time

import psycopg2
import psycopg2.errors
import pytest

from ansible_collections.dbre.rds.plugins.module_utils import failover_drill as drill
from ansible_collections.dbre.rds.plugins.module_utils import probing
from ansible_collections.dbre.rds.plugins.module_utils.clock import DrillClock


class FakeServer:
    """A database that can be down or read-only, keeping the rows that writes committed."""

    def __init__(self):
        self.up = True
        self.read_only = False
        self.rows = []
        self.connects = 0
        self.statements = []
        self.fail_on = None
        self.lock = threading.Lock()


class FakeCursor:
    def __init__(self, conn):
        self.conn = conn
        self.result = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, sql, params=None):
        server = self.conn.server
        if server.fail_on and sql.startswith(server.fail_on):
            raise psycopg2.errors.DuplicateTable('relation "probe" already exists')
        if not server.up or self.conn.closed or self.conn.generation != server.generation:
            raise psycopg2.OperationalError("server closed the connection unexpectedly")
        server.statements.append(sql)
        if sql.startswith("INSERT"):
            if server.read_only:
                raise psycopg2.errors.ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction")
            server.rows.append(params[0])
        elif sql.startswith("SELECT seq"):
            self.result = [(seq,) for seq in server.rows]
        elif sql.startswith("SELECT 1"):
            self.result = [(1,)]

    def close(self):
        pass

    def fetchone(self):
        return self.result[0]

    def fetchall(self):
        return self.result


class FakeConnection:
    def __init__(self, server):
        self.server = server
        self.closed = False
        self.generation = server.generation
        self.autocommit = False

    def cursor(self):
        return FakeCursor(self)

    def close(self):
        self.closed = True


class FakeConnector:
    target = "fake:5432/postgres"

    def __init__(self, server):
        self.server = server

    def connect(self, connect_timeout=None, autocommit=True):
        self.server.connects += 1
        if not self.server.up:
            raise psycopg2.OperationalError('connection to server at "127.0.0.1", port 1 failed: Connection refused')
        return FakeConnection(self.server)


@pytest.fixture
def server():
    fake = FakeServer()
    fake.generation = 0
    return fake


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


@pytest.mark.parametrize("name, ok", [
    ("dbre_rds_failover_probe", True), ("probe1", True), ("Probe", False), ("a-b", False), ("1abc", False),
    ("x" * 64, False), ("", False), ('p"; DROP TABLE t; --', False),
])
def test_valid_table_name(name, ok):
    assert probing.valid_table_name(name) is ok


@pytest.mark.parametrize("exc, kind", [
    (psycopg2.errors.ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction"), "read_only"),
    (psycopg2.OperationalError("Connection refused"), "connection"),
    (psycopg2.OperationalError("timeout expired"), "timeout"),
    (psycopg2.errors.QueryCanceled("canceling statement due to statement timeout"), "timeout"),
    (psycopg2.errors.UndefinedTable('relation "x" does not exist'), "other"),
])
def test_classify_error(exc, kind):
    assert probing.classify_error(exc) == kind


def test_a_write_probe_loop_rides_through_an_outage_and_a_read_only_phase(server):
    clock = DrillClock()
    loop = probing.ProbeLoop(FakeConnector(server), mode="write", interval=0.01, timeout=2, table="probe", clock=clock)
    loop.start()
    try:
        wait_for(lambda: loop.successes() >= 5)
        requested = clock.elapsed()
        server.up = False
        server.generation += 1  # every open connection is dead
        wait_for(lambda: sum(1 for s in loop.samples() if not s["ok"]) >= 5)
        server.up = True
        server.read_only = True
        wait_for(lambda: drill.probe_counts(loop.samples())["read_only_errors"] >= 3)
        server.read_only = False
        settled_from = len(loop.samples())
        wait_for(lambda: sum(1 for s in loop.samples()[settled_from:] if s["ok"]) >= 5)
    finally:
        loop.stop()
    samples = loop.samples()
    counts = drill.probe_counts(samples)
    assert counts["probe_errors"]["connection"] >= 5
    assert counts["read_only_errors"] >= 3
    # numbered rows: every acknowledged write is in the table, no failed one is
    assert sorted(server.rows) == drill.acknowledged_writes(samples)
    assert [s["seq"] for s in samples] == list(range(1, len(samples) + 1))
    downtime = drill.measure_downtime(samples, requested)
    assert downtime["recovered"] and downtime["observed_downtime_seconds"] > 0
    # a statement timeout is set on every new connection; a reconnect happened after the outage
    assert server.connects >= 3
    assert any(s.startswith("SET statement_timeout") for s in server.statements)


def test_stop_ends_the_thread_and_probing(server):
    loop = probing.ProbeLoop(FakeConnector(server), mode="read", interval=0.01, timeout=2)
    loop.start()
    wait_for(lambda: loop.successes() >= 2)
    loop.stop()
    count = len(loop.samples())
    time.sleep(0.05)
    assert len(loop.samples()) == count
    assert not loop._thread.is_alive()
    assert all(s.startswith(("SET", "SELECT 1")) for s in server.statements)


def test_the_loop_does_not_burst_after_a_slow_probe(server):
    clock = DrillClock()
    loop = probing.ProbeLoop(FakeConnector(server), mode="read", interval=0.05, timeout=2, clock=clock)
    original = loop.probe_once
    calls = []

    def slow_first(seq):
        calls.append(seq)
        if seq == 2:
            time.sleep(0.3)
        return original(seq)

    loop.probe_once = slow_first
    loop.start()
    wait_for(lambda: len(loop.samples()) >= 5)
    loop.stop()
    sent = [s["sent"] for s in loop.samples()]
    gaps = [b - a for a, b in zip(sent[2:], sent[3:])]
    assert min(gaps) >= 0.04


def test_write_probes_need_a_safe_table_name(server):
    with pytest.raises(ValueError):
        probing.ProbeLoop(FakeConnector(server), mode="write", table="Bad Name")


def test_probe_table_helpers(server):
    conn = FakeConnection(server)
    marker = probing.probe_marker("d1", {"host": "h", "pid": 1, "started": "9"}, "db1", "t0", "t1")
    probing.create_probe_table(conn, "dbre_rds_failover_probe", marker)
    # Created in one transaction with its marker, never after a DROP: a table of that name that exists makes the
    # CREATE fail instead of being replaced.
    assert server.statements == ["BEGIN",
                                 'CREATE TABLE "dbre_rds_failover_probe" (seq bigint PRIMARY KEY, written_at '
                                 'timestamptz NOT NULL DEFAULT clock_timestamp())',
                                 'COMMENT ON TABLE "dbre_rds_failover_probe" IS %s', "COMMIT"]
    server.rows = [1, 2]
    assert probing.rows_present(conn, "dbre_rds_failover_probe") == [1, 2]
    with pytest.raises(ValueError):
        probing.create_probe_table(conn, "x; drop", marker)
    assert not any(statement.startswith("DROP") for statement in server.statements)


def test_a_failed_create_rolls_back(server):
    conn = FakeConnection(server)
    server.fail_on = "CREATE TABLE"
    with pytest.raises(psycopg2.errors.DuplicateTable):
        probing.create_probe_table(conn, "probe", "marker")
    assert server.statements == ["BEGIN", "ROLLBACK"]


def test_marker_round_trip_and_foreign_comments():
    owner = {"host": "h", "pid": 42, "started": "77"}
    marker = probing.probe_marker("d1", owner, "db1", "2026-11-27T08:00:00.000Z", "2026-11-27T09:00:00.000Z")
    assert marker.startswith("dbre.rds probe table {")
    assert probing.parse_probe_marker(marker) == dict(owner, drill_id="d1", target="db1",
                                                      created_at="2026-11-27T08:00:00.000Z",
                                                      expires_at="2026-11-27T09:00:00.000Z")
    for comment in (None, "", "orders of the shop", "dbre.rds probe table not json", 'dbre.rds probe table {"a": 1}',
                    'dbre.rds probe table ["d1"]'):
        assert probing.parse_probe_marker(comment) is None, comment


NOW = datetime.datetime(2026, 11, 27, 8, 30, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize("marker, alive, words", [
    (None, False, None),
    ({"drill_id": "d1", "pid": 5, "host": "h", "expires_at": "2026-11-27T09:00:00.000Z"}, True, None),
    ({"drill_id": "d1", "pid": 5, "host": "h", "expires_at": "2026-11-27T09:00:00.000Z"}, None, None),
    ({"drill_id": "d1", "pid": 5, "host": "h", "expires_at": "2026-11-27T09:00:00.000Z"}, False,
     "drill d1 (pid 5 on h) is no longer running"),
    ({"drill_id": "d1", "pid": 5, "host": "other", "expires_at": "2026-11-27T08:00:00.000Z"}, None,
     "should have ended by 2026-11-27T08:00:00.000Z"),
    ({"drill_id": "d1", "pid": 5, "host": "h", "expires_at": "garbage"}, None, None),
], ids=["no-marker", "alive", "unknown-not-expired", "owner-gone", "expired", "bad-expiry"])
def test_leftover_reason(marker, alive, words):
    reason = probing.leftover_reason(marker, alive, NOW)
    if words is None:
        assert reason is None
    else:
        assert words in reason
