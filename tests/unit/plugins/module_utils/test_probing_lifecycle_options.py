# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the failover drill and the encryption need of WriteProbes besides the DR drill's use: the lifecycle in steps
(create, begin, wait for the baseline), read probes without a table, a table that stays on one server (absent at the
end means unknown rows, not lost ones), libpq options for the cleanup's connections, and why a cleanup failed."""

import time

import psycopg2
import pytest

from ansible_collections.dbre.rds.plugins.module_utils import probing
from ansible_collections.dbre.rds.plugins.module_utils.clock import DrillClock
from ansible_collections.dbre.rds.plugins.module_utils.waiting import WaitStopped
from tests.unit.plugins.module_utils.test_probing_lifecycle import Connector
from tests.unit.plugins.module_utils.test_probing_lifecycle import Server
from tests.unit.plugins.module_utils.test_probing_lifecycle import wait_for


class RecordingConnector(Connector):
    """Records the libpq options of each connection; ``refuse`` makes every new connection fail with that error."""

    def __init__(self, server):
        super().__init__(server)
        self.options = []
        self.refuse = None

    def connect(self, connect_timeout=None, autocommit=True, **libpq_options):
        self.options.append(libpq_options)
        if self.refuse is not None:
            raise self.refuse
        return super().connect(connect_timeout=connect_timeout, autocommit=autocommit)


def probes(connector, mode="write", absent_means_lost=True):
    marker = probing.probe_marker("d1", {"host": "h", "pid": 1}, "pay", "2026-11-30T03:00:00.000Z",
                                  "2026-11-30T04:00:00.000Z")
    return probing.WriteProbes(connector, "dbre_rds_failover_probe", "d1", marker if mode == "write" else None,
                               DrillClock(), interval=0.01, timeout=2, mode=mode, absent_means_lost=absent_means_lost)


def written(**options):
    """A server, its connector and probes that wrote a baseline into the marked table and stopped."""
    server = Server("east")
    connector = RecordingConnector(server)
    run = probes(connector, **options)
    run.start(baseline=3, timeout=5)
    run.stop()
    return server, connector, run


def test_the_lifecycle_in_steps_creates_the_marked_table_before_any_probe():
    server = Server("east")
    run = probes(RecordingConnector(server))
    run.create()
    assert run.created and run.confirmed and run.loop is None and run.samples() == []
    assert probing.parse_probe_marker(server.comment)["drill_id"] == "d1" and server.rows == []
    run.begin()
    run.wait_baseline(3, timeout=5)
    assert run.loop.successes() >= 3 and set(run.acknowledged()) <= set(server.rows)
    present, dropped = run.finish(grace=1, interval=0.01)
    assert dropped is True and server.table is None and set(run.acknowledged()) <= set(present)


def test_read_probes_have_no_table_to_create_read_back_or_drop():
    server = Server("east")
    run = probes(RecordingConnector(server), mode="read")
    run.start(baseline=3, timeout=5)
    assert run.loop.successes() >= 3 and server.table is None and server.rows == []
    assert run.finish(grace=1, interval=0.01) == (None, None) and run.created is False


@pytest.mark.parametrize("absent_means_lost, expected", [(True, []), (False, None)])
def test_a_table_someone_dropped_from_the_same_server(absent_means_lost, expected):
    server, _connector, run = written(absent_means_lost=absent_means_lost)
    server.table, server.comment, server.rows = None, None, []
    # Lost (every write) when the writer may have moved to a server without the table; unknown when it cannot have.
    assert run.finish(grace=1, interval=0.01) == (expected, True)


def test_the_cleanup_connections_carry_the_options_and_the_probes_do_not():
    _server, connector, run = written()
    before = len(connector.options)
    present, dropped = run.finish(grace=1, interval=0.01, connect_options={"options": "-c x=off"})
    assert dropped is True and present
    assert connector.options[before:] == [{"options": "-c x=off"}]
    assert all("options" not in options for options in connector.options[:before])


def test_a_cleanup_that_cannot_connect_says_why_and_leaves_the_table():
    server, connector, run = written()
    connector.refuse = psycopg2.OperationalError("connection to server at \"east\" failed: Connection refused")
    assert run.finish(grace=0.2, interval=0.01) == (None, False)
    assert "Connection refused" in run.error and server.table == "dbre_rds_failover_probe"


def test_a_permanent_error_ends_the_baseline_wait_at_once():
    server = Server("east")
    connector = RecordingConnector(server)
    run = probes(connector)
    run.create()
    connector.refuse = psycopg2.OperationalError('FATAL:  password authentication failed for user "app"')
    run.begin()
    wait_for(run.samples)
    started = time.monotonic()
    with pytest.raises(WaitStopped, match="password authentication failed"):
        run.wait_baseline(3, timeout=10)
    assert time.monotonic() - started < 5, "the wait does not run to its timeout"
    run.stop()


def test_a_login_the_fenced_writer_refused_before_the_settle_wait_does_not_end_it():
    """The blue/green flake of stop 24: the last probe before the settle wait was refused by the fenced blue's
    pg_hba.conf. Only a probe sent after the wait began may stop it; a refusal after that still does, at once."""
    server = Server("east")
    connector = RecordingConnector(server)
    run = probes(connector)
    run.create()
    connector.refuse = psycopg2.OperationalError('FATAL:  pg_hba.conf rejects connection for host "127.0.0.1"')
    run.begin()
    wait_for(lambda: [s for s in run.samples() if not s["ok"]])
    run.stop()
    since = run.clock.elapsed()
    assert run.last_permanent_error() is not None, "the refusal counts as permanent without a start time"
    assert run.permanent_error_since(since)() is None, "a refusal sent before the wait began is history"
    run.begin()
    wait_for(lambda: [s for s in run.samples() if s["sent"] >= since and not s["ok"]])
    assert "pg_hba.conf rejects" in run.permanent_error_since(since)()
    connector.refuse = None
    wait_for(lambda: run.samples()[-1]["ok"])
    assert run.permanent_error_since(since)() is None
    run.stop()
