# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The probe lifecycle (WriteProbes) and a connector that follows a moving writer, against scripted databases: the
marked table is created, written to, read back on whichever server is the writer afterwards and dropped only while
it carries the drill's marker."""

import threading
import time

import psycopg2
import psycopg2.errors
import pytest

from ansible_collections.dbre.rds.plugins.module_utils import probing
from ansible_collections.dbre.rds.plugins.module_utils.clock import DrillClock


class Server:
    """A database holding at most one table (the probe table): its comment and rows; writable or read-only."""

    def __init__(self, name):
        self.name = name
        self.table = None
        self.comment = None
        self.rows = []
        self.read_only = False
        self.lock = threading.Lock()


class Cursor:
    def __init__(self, server):
        self.server = server
        self.result = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def close(self):
        pass

    def execute(self, sql, params=None):
        server, text = self.server, " ".join(sql.split())
        with server.lock:
            if text.startswith("INSERT"):
                if server.read_only:
                    raise psycopg2.errors.ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction")
                if server.table is None:
                    raise psycopg2.errors.UndefinedTable("relation does not exist")
                server.rows.append(params[0])
            elif text.startswith("CREATE TABLE"):
                if server.table is not None:
                    raise psycopg2.errors.DuplicateTable("relation already exists")
                server.table = text.split('"')[1]
            elif text.startswith("COMMENT ON TABLE"):
                server.comment = params[0]
            elif text.startswith("SELECT n.nspname, c.relname, obj_description"):
                self.result = [] if server.table is None else [("public", server.table, server.comment)]
            elif text.startswith("SELECT to_regclass"):
                self.result = [(server.table is not None,)]
            elif text.startswith("SELECT obj_description"):
                self.result = [(server.comment,)]
            elif text.startswith("DROP TABLE"):
                server.table, server.comment, server.rows = None, None, []
            elif text.startswith("SELECT seq"):
                self.result = [(seq,) for seq in server.rows]

    def fetchone(self):
        return self.result[0] if self.result else None

    def fetchall(self):
        return list(self.result)


class Connection:
    def __init__(self, server):
        self.server = server
        self.autocommit = True

    def cursor(self):
        return Cursor(self.server)

    def close(self):
        pass


class Connector:
    def __init__(self, server):
        self.server = server
        self.target = f"{server.name}:5432/postgres"
        self.connects = 0

    def connect(self, connect_timeout=None, autocommit=True):
        self.connects += 1
        return Connection(self.server)


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def probes(connector, drill_id="d1"):
    marker = probing.probe_marker(drill_id, {"host": "h", "pid": 1}, "pay", "2026-11-30T03:00:00.000Z",
                                  "2026-11-30T04:00:00.000Z")
    return probing.WriteProbes(probing.FollowingConnector(connector), "dbre_rds_dr_probe", drill_id, marker,
                               DrillClock(), interval=0.01, timeout=2)


def test_a_following_connector_moves_its_probes_to_the_new_writer():
    old, new = Server("east"), Server("west")
    run = probes(Connector(old))
    run.start(baseline=3, timeout=5)
    assert old.table == "dbre_rds_dr_probe" and probing.parse_probe_marker(old.comment)["drill_id"] == "d1"
    wait_for(lambda: len(old.rows) >= 5)
    # The new writer got the table and the rows so far (replication), then the writer moves.
    with old.lock:
        new.table, new.comment, new.rows = old.table, old.comment, list(old.rows)
    generation = run.connector.generation
    run.connector.retarget(Connector(new))
    assert run.connector.generation == generation + 1
    wait_for(lambda: len(new.rows) >= len(old.rows) + 5)
    present, dropped = run.finish(grace=5, interval=0.01)
    acknowledged = run.acknowledged()
    assert dropped is True and new.table is None, "the table is dropped on the writer it was read on"
    assert set(acknowledged) <= set(present), "every acknowledged write is on the new writer"
    assert old.table == "dbre_rds_dr_probe", "the old writer is left alone"


def test_retargeting_to_the_same_endpoint_keeps_the_connection():
    server = Server("east")
    connector = probing.FollowingConnector(Connector(server))
    connector.retarget(Connector(server))
    assert connector.generation == 0


def test_writes_the_new_writer_never_got_are_missing_from_what_finish_reads():
    old, new = Server("east"), Server("west")
    run = probes(Connector(old))
    run.start(baseline=3, timeout=5)
    wait_for(lambda: len(old.rows) >= 4)
    with old.lock:
        new.table, new.comment, new.rows = old.table, old.comment, list(old.rows[:2])  # replay stopped after 2
    run.connector.retarget(Connector(new))
    wait_for(lambda: len(new.rows) >= 5)
    present, _dropped = run.finish(grace=5, interval=0.01)
    lost = sorted(set(run.acknowledged()) - set(present))
    assert lost and lost == sorted(set(old.rows) - set(old.rows[:2])), "exactly what the old writer had alone"


def test_a_new_writer_without_the_table_lost_every_write():
    old, new = Server("east"), Server("west")
    run = probes(Connector(old))
    run.start(baseline=3, timeout=5)
    run.stop()
    present, dropped = run.finish(connector=Connector(new), grace=1, interval=0.01)
    assert present == [] and dropped is True


def test_a_table_that_lost_the_drill_marker_is_not_dropped():
    server = Server("east")
    run = probes(Connector(server))
    run.start(baseline=2, timeout=5)
    run.stop()
    server.comment = "someone else's table now"
    present, dropped = run.finish(grace=1, interval=0.01)
    assert present is None and dropped is False and server.table == "dbre_rds_dr_probe"


def test_a_probe_table_name_in_use_fails_start_before_any_probe():
    server = Server("east")
    server.table = "dbre_rds_dr_probe"
    run = probes(Connector(server))
    with pytest.raises(psycopg2.errors.DuplicateTable):
        run.start(baseline=2, timeout=1)
    assert run.samples() == [] and run.confirmed is False
    assert run.finish(grace=1, interval=0.01) == (None, False), "the other table is neither read nor dropped"
    assert server.table == "dbre_rds_dr_probe"
