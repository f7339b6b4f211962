# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A client's view of a database during a drill: a background loop that writes (or reads) every interval and records
what happened, as a well-behaved application would (one connection, reconnecting after an error).

Write probes insert a numbered row into a table the drill owns, so afterwards the drill can check that every write the
server acknowledged is still there.
"""

from __future__ import annotations

import threading

from ansible_collections.dbre.rds.plugins.module_utils.clock import DrillClock

READ_ONLY_SQLSTATE = "25006"
QUERY_CANCELED_SQLSTATE = "57014"

_IDENTIFIER_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_")


def valid_table_name(name):
    """Probe tables are plain lower-case identifiers, so they can be quoted safely without a SQL composer."""
    return bool(name) and len(name) <= 63 and set(name) <= _IDENTIFIER_CHARS and not name[0].isdigit()


def classify_error(exc):
    """The kind of a failed probe: read_only (SQLSTATE 25006, a writer that became a reader), timeout, connection or
    other. Works on psycopg2 errors without importing psycopg2."""
    code = getattr(exc, "pgcode", None)
    if code == READ_ONLY_SQLSTATE or type(exc).__name__ == "ReadOnlySqlTransaction":
        return "read_only"
    if code == QUERY_CANCELED_SQLSTATE or type(exc).__name__ == "QueryCanceled":
        return "timeout"
    text = str(exc).lower()
    if "timeout expired" in text or "timed out" in text:
        return "timeout"
    if type(exc).__name__ in ("OperationalError", "InterfaceError"):
        return "connection"
    return "other"


def short_message(exc, limit=160):
    """First line of an error, without anything after a password-bearing DSN (libpq never prints the password)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:limit]


class ProbeLoop:
    """Probe ``connector``'s database every ``interval`` seconds in a daemon thread until :meth:`stop`.

    ``mode`` is ``write`` (insert row ``seq`` into ``table``) or ``read`` (``SELECT 1``). Each probe is recorded as a
    sample ``{"seq", "sent", "done", "ok", "error", "message"}`` with times on ``clock`` (seconds since its start).
    """

    def __init__(self, connector, mode="write", interval=0.25, timeout=2, table=None, clock=None):
        if mode == "write" and not valid_table_name(table or ""):
            raise ValueError(f"write probes need a plain lower-case table name, not {table!r}")
        self.connector = connector
        self.mode = mode
        self.interval = interval
        self.timeout = timeout
        self.table = table
        self.clock = clock or DrillClock()
        self._samples = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self._conn = None

    # -- results, safe to call while the loop runs
    def samples(self):
        with self._lock:
            return list(self._samples)

    def successes(self):
        with self._lock:
            return sum(1 for s in self._samples if s["ok"])

    # -- lifecycle
    def start(self):
        self._thread = threading.Thread(target=self._run, name="dbre-rds-probe", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            # A probe in flight ends within its own timeouts.
            self._thread.join(timeout=self.timeout * 2 + 5)
        self._close()

    # -- the loop
    def _close(self):
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # pylint: disable=broad-except
                pass  # the connection is already broken: that is why it is being closed

    def _connect(self):
        conn = self.connector.connect(connect_timeout=max(2, int(self.timeout)))
        with conn.cursor() as cursor:
            # A server that accepts the connection but hangs must not stall the loop.
            cursor.execute("SET statement_timeout = %s", (int(self.timeout * 1000),))
        return conn

    def probe_once(self, seq):
        """Send one probe and return its sample."""
        sent = self.clock.elapsed()
        sample = {"seq": seq, "sent": round(sent, 4), "ok": False, "error": None, "message": None}
        try:
            if self._conn is None:
                self._conn = self._connect()
            with self._conn.cursor() as cursor:
                if self.mode == "write":
                    cursor.execute(f'INSERT INTO "{self.table}" (seq) VALUES (%s)', (seq,))
                else:
                    cursor.execute("SELECT 1")
                    cursor.fetchone()
            sample["ok"] = True
        except Exception as exc:  # pylint: disable=broad-except
            # Every failure is data here: the loop records it and reconnects on the next probe.
            sample["error"] = classify_error(exc)
            sample["message"] = short_message(exc)
            self._close()
        sample["done"] = round(self.clock.elapsed(), 4)
        return sample

    def _run(self):
        seq = 0
        next_at = self.clock.elapsed()
        while not self._stop.is_set():
            seq += 1
            sample = self.probe_once(seq)
            with self._lock:
                self._samples.append(sample)
            next_at += self.interval
            now = self.clock.elapsed()
            if next_at < now:
                # A slow probe delays the next one instead of causing a burst.
                next_at = now
            self._stop.wait(next_at - now)


def create_probe_table(conn, table):
    """(Re)create the drill's probe table: a leftover from an interrupted drill is the drill's own and is replaced."""
    if not valid_table_name(table):
        raise ValueError(f"probe table name {table!r} is not a plain lower-case identifier")
    with conn.cursor() as cursor:
        cursor.execute(f'DROP TABLE IF EXISTS "{table}"')
        cursor.execute(f'CREATE TABLE "{table}" (seq bigint PRIMARY KEY, written_at timestamptz NOT NULL DEFAULT '
                       'clock_timestamp())')


def rows_present(conn, table):
    with conn.cursor() as cursor:
        cursor.execute(f'SELECT seq FROM "{table}"')
        return [row[0] for row in cursor.fetchall()]


def drop_probe_table(conn, table):
    with conn.cursor() as cursor:
        cursor.execute(f'DROP TABLE IF EXISTS "{table}"')


def probe_table_exists(conn, table):
    with conn.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (f'"{table}"',))
        return bool(cursor.fetchone()[0])
