# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A client's view of a database during a drill: a background loop that writes (or reads) every interval and records
what happened, as a well-behaved application would (one connection, reconnecting after an error).

Write probes insert a numbered row into a table the drill owns, so afterwards the drill can check that every write the
server acknowledged is still there. The drill proves the table its own before it drops it: the table is created (never
"created if missing", never dropped and re-created) with a comment that carries the drill's marker (drill id, owner
process, the end it announces), and a DROP happens only, in one transaction with the table locked, when that marker
is still there. A table without the marker is never written to or dropped; a marked table whose drill is gone is a
leftover that the next drill drops.

:class:`WriteProbes` is that lifecycle in one object (create the marked table, probe, read back which acknowledged
writes are present on whichever server is the writer afterwards, drop the table); a :class:`FollowingConnector`
moves the probes to a new writer, as clients that resolve the endpoint again.
"""

from __future__ import annotations

import json
import threading

from ansible_collections.dbre.rds.plugins.module_utils.clock import DrillClock
from ansible_collections.dbre.rds.plugins.module_utils.clock import parse_utc
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import permanent_error
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import with_connection
from ansible_collections.dbre.rds.plugins.module_utils.waiting import wait_until

READ_ONLY_SQLSTATE = "25006"
QUERY_CANCELED_SQLSTATE = "57014"

_IDENTIFIER_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_")


def probe_argument_spec(table, settle_seconds):
    """The options of a module that measures writes with a ProbeLoop: the probes, the objectives they are judged
    against and the progress log (each module documents them with its own defaults)."""
    return dict(
        probe_interval=dict(type="float", default=0.25),
        probe_timeout=dict(type="int", default=2),
        probe_settle_seconds=dict(type="float", default=settle_seconds),
        probe_table=dict(type="str", default=table),
        max_downtime_seconds=dict(type="float"),
        max_lost_writes=dict(type="int", default=0),
        fail_on_breach=dict(type="bool", default=True),
        progress_log=dict(type="path"),
    )


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
        self._conn_generation = None

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
            generation = getattr(self.connector, "generation", None)
            if self._conn is not None and generation != self._conn_generation:
                # The connector now points elsewhere (a DNS cutover, a new writer): reconnect as a client would.
                self._close()
            if self._conn is None:
                self._conn = self._connect()
                self._conn_generation = generation
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
            permanent = permanent_error(exc)
            if permanent:
                sample["permanent"] = permanent
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


# ------------------------------------------------------------------------------------------- probe table ownership

PROBE_MARKER = "dbre.rds probe table"


def probe_marker(drill_id, owner, target, created_at, expires_at):
    """The comment that marks a probe table as the drill's: ``owner`` is drill_runtime.owner_marker()."""
    data = dict(owner or {}, drill_id=drill_id, target=target, created_at=created_at, expires_at=expires_at)
    return f"{PROBE_MARKER} {json.dumps(data, sort_keys=True)}"


def parse_probe_marker(comment):
    """The marker dict of a probe table's comment, or None when the comment is not a dbre.rds probe marker."""
    if not comment or not str(comment).startswith(PROBE_MARKER + " "):
        return None
    try:
        data = json.loads(str(comment)[len(PROBE_MARKER) + 1:])
    except ValueError:
        return None
    return data if isinstance(data, dict) and data.get("drill_id") else None


def leftover_reason(marker, alive, now):
    """Why a marked probe table is a dead drill's leftover that may be dropped, or None to leave it alone.

    ``alive`` is drill_runtime.owner_alive(marker): False when its process is gone; True or None (another host)
    keep the table until the end its marker announced (``expires_at``) has passed.
    """
    if marker is None:
        return None
    if alive is False:
        return (f"its drill {marker['drill_id']} (pid {marker.get('pid')} on {marker.get('host')}) is no longer "
                "running")
    try:
        expires = parse_utc(marker.get("expires_at"))
    except (TypeError, ValueError):
        expires = None
    if expires is not None and now > expires:
        return f"its drill {marker['drill_id']} should have ended by {marker.get('expires_at')}"
    return None


def _quote(identifier):
    return '"' + str(identifier).replace('"', '""') + '"'


class _Transaction:
    """BEGIN ... COMMIT on an autocommit connection, ROLLBACK when the block raises."""

    def __init__(self, conn):
        self.conn = conn
        self.cursor = None

    def __enter__(self):
        self.cursor = self.conn.cursor()
        self.cursor.execute("BEGIN")
        return self.cursor

    def __exit__(self, exc_type, exc, trace):
        try:
            self.cursor.execute("COMMIT" if exc_type is None else "ROLLBACK")
        except Exception:  # pylint: disable=broad-except
            if exc_type is None:
                raise
        finally:
            self.cursor.close()
        return False


def probe_table_state(conn, table):
    """``{"schema", "table", "comment"}`` of the table ``table`` resolves to (search_path), or None."""
    with conn.cursor() as cursor:
        cursor.execute("SELECT n.nspname, c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c "
                       "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)", (_quote(table),))
        row = cursor.fetchone()
    return None if row is None else {"schema": row[0], "table": row[1], "comment": row[2]}


def marked_probe_tables(conn):
    """Every table of the database whose comment carries a dbre.rds probe marker: ``[{"schema", "table",
    "comment"}]``."""
    with conn.cursor() as cursor:
        cursor.execute("SELECT n.nspname, c.relname, d.description FROM pg_description d "
                       "JOIN pg_class c ON c.oid = d.objoid JOIN pg_namespace n ON n.oid = c.relnamespace "
                       "WHERE d.classoid = 'pg_class'::regclass AND d.objsubid = 0 AND c.relkind = 'r' "
                       "AND starts_with(d.description, %s) ORDER BY 1, 2", (PROBE_MARKER + " ",))
        rows = cursor.fetchall()
    return [{"schema": schema, "table": table, "comment": comment} for schema, table, comment in rows]


def create_probe_table(conn, table, marker):
    """Create the drill's probe table and mark it, in one transaction; fails if any table of that name exists."""
    if not valid_table_name(table):
        raise ValueError(f"probe table name {table!r} is not a plain lower-case identifier")
    with _Transaction(conn) as cursor:
        cursor.execute(f'CREATE TABLE "{table}" (seq bigint PRIMARY KEY, written_at timestamptz NOT NULL DEFAULT '
                       'clock_timestamp())')
        cursor.execute(f'COMMENT ON TABLE "{table}" IS %s', (marker,))


def drop_marked_table(conn, schema, table, owned, lock_timeout_ms=5000):
    """Drop ``schema.table`` only if its marker, read with the table locked, passes ``owned(marker)``.

    Returns True when dropped, False when the table is gone or not (any longer) owned: then nothing is dropped.
    """
    qualified = f"{_quote(schema)}.{_quote(table)}"
    with _Transaction(conn) as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (qualified,))
        if not cursor.fetchone()[0]:
            return False
        cursor.execute(f"LOCK TABLE {qualified} IN ACCESS EXCLUSIVE MODE")
        cursor.execute("SELECT obj_description(to_regclass(%s), 'pg_class')", (qualified,))
        marker = parse_probe_marker(cursor.fetchone()[0])
        if marker is None or not owned(marker):
            return False
        cursor.execute(f"DROP TABLE {qualified}")
    return True


def drop_probe_table(conn, table, drill_id):
    """Drop the drill's own probe table: only when the table ``table`` resolves to carries ``drill_id``'s marker."""
    state = probe_table_state(conn, table)
    if state is None:
        return False
    return drop_marked_table(conn, state["schema"], state["table"], lambda marker: marker["drill_id"] == drill_id)


def rows_present(conn, table):
    with conn.cursor() as cursor:
        cursor.execute(f'SELECT seq FROM "{table}"')
        return [row[0] for row in cursor.fetchall()]


# ------------------------------------------------------------------------------------------ the probe lifecycle

class FollowingConnector:
    """A connector whose target can move (to a new writer, through a DNS cutover): :meth:`retarget` bumps
    ``generation``, and a :class:`ProbeLoop` reconnects on its next probe, as a client resolving the name again."""

    def __init__(self, connector):
        self._connector = connector
        self.generation = 0
        self._lock = threading.Lock()

    @property
    def target(self):
        return self._connector.target

    def retarget(self, connector):
        with self._lock:
            if connector.target != self._connector.target:
                self._connector = connector
                self.generation += 1

    def connect(self, *args, **kwargs):
        with self._lock:
            connector = self._connector
        return connector.connect(*args, **kwargs)


class WriteProbes:
    """One drill's write probes from start to end: create the marked probe table, run the :class:`ProbeLoop`, and
    afterwards read which acknowledged writes are present (on whichever server is the writer then) and drop the table
    (only while it still carries this drill's marker).

    ``connector`` is where the table is created and the probes write (a :class:`FollowingConnector` to follow a
    moving writer); ``marker`` is :func:`probe_marker` of this drill; ``clock`` the drill's clock. Waiting goes
    through ``wait`` (waiting.wait_until's signature), so a drill keeps one deadline and one polling helper.
    ``mode="read"`` probes with ``SELECT 1`` and has no table (nothing to create, read back or drop).
    ``absent_means_lost`` is for a writer that can move to a server that never got the table (see :meth:`finish`);
    a drill whose table stays on the server the endpoint reaches passes False.
    """

    def __init__(self, connector, table, drill_id, marker, clock, interval=0.25, timeout=2, wait=None, mode="write",
                 absent_means_lost=True):
        self.connector = connector
        self.table = table
        self.drill_id = drill_id
        self.marker = marker
        self.clock = clock
        self.interval = interval
        self.timeout = timeout
        self.mode = mode
        self.absent_means_lost = absent_means_lost
        self._wait = wait or wait_until
        self.loop = None
        self.error = None
        self.created = False
        self.confirmed = False
        self.present = None
        self.dropped = None

    def samples(self):
        return self.loop.samples() if self.loop else []

    def acknowledged(self):
        return [s["seq"] for s in self.samples() if s["ok"]]

    def last_permanent_error(self, _value=None):
        """The newest probe's permanent error (a wait's ``permanent`` check), whenever it was sent."""
        return self.permanent_error_since(float("-inf"))()

    def permanent_error_since(self, since):
        """A wait's ``permanent`` check that counts only probes sent at or after ``since`` (clock seconds): after a
        switchover or failover RDS reports done, a login the fenced writer refused while the change was under way
        (its pg_hba.conf rejected every TCP login) is history, not a reason to stop waiting."""
        def check(_value=None):
            samples = self.samples()
            last = samples[-1] if samples else None
            return last.get("permanent") if last and not last["ok"] and last["sent"] >= since else None
        return check

    def start(self, baseline=3, timeout=30.0):
        """Create the table (write mode), start probing and wait until ``baseline`` probes succeeded: :meth:`create`,
        :meth:`begin` and :meth:`wait_baseline` in a row, for a drill with nothing to do between them."""
        if self.mode == "write":
            self.create()
        self.begin()
        self.wait_baseline(baseline, timeout)

    def create(self):
        """Create the table, marked first so an interruption still finds it; raises what creating it raised (a table
        of that name exists, the login cannot create it)."""
        self.created = True
        with_connection(self.connector, lambda conn: create_probe_table(conn, self.table, self.marker))
        self.confirmed = True

    def begin(self):
        """Start the probe loop (writes into the table, or ``SELECT 1`` in read mode, which needs no table)."""
        self.loop = ProbeLoop(self.connector, mode=self.mode, interval=self.interval, timeout=self.timeout,
                              table=self.table, clock=self.clock)
        self.loop.start()

    def wait_baseline(self, baseline=3, timeout=30.0):
        """Wait until ``baseline`` probes succeeded; raises the wait's WaitTimeout, or WaitFailed at once on a
        permanent error (authentication failed, ...)."""
        self._wait(self.loop.successes, lambda n: n >= baseline, timeout=timeout, interval=self.interval,
                   phase="baseline probes", state_of=lambda n: "ready" if n >= baseline else "warming up",
                   permanent=self.last_permanent_error, clock=self.clock)

    def stop(self):
        if self.loop is not None:
            self.loop.stop()

    def finish(self, connector=None, grace=60.0, interval=1.0, connect_options=None):
        """Stop writing, read the rows present on ``connector`` (default: the probes' own) and drop the table if it
        is still this drill's. Returns ``(present seq list or None, dropped)``; retried within ``grace`` while the
        server is away (``connect_options``: libpq options of those connections, such as ``{"options": ...}``).
        Never raises for the database's sake: what could not be done is None/False, and :attr:`error` says why.

        A table created and written to but absent here means, with ``absent_means_lost`` (the writer moved to a
        server that never got it), that no write survived (``[]``); without it, that the rows are unknown (None)."""
        self.stop()
        if not self.created:
            return None, None
        connector = connector or self.connector

        def finish(conn):
            state = probe_table_state(conn, self.table)
            if state is None and self.confirmed and self.absent_means_lost:
                # Created and written to, yet absent here: this server never got the table, so no row survived.
                return [], True
            if state is None:
                return None, True  # never created (interrupted before the CREATE): nothing to remove
            marker = parse_probe_marker(state["comment"])
            if marker is None or marker.get("drill_id") != self.drill_id:
                return None, False
            return rows_present(conn, self.table), drop_probe_table(conn, self.table, self.drill_id)

        def attempt():
            try:
                return with_connection(connector, finish, **(connect_options or {}))
            except Exception as exc:  # pylint: disable=broad-except
                return exc

        try:
            outcome = self._wait(attempt, lambda v: not isinstance(v, Exception), timeout=grace, interval=interval,
                                 phase="probe table removal",
                                 state_of=lambda v: "error" if isinstance(v, Exception) else "removed",
                                 permanent=lambda v: permanent_error(v) if isinstance(v, Exception) else None,
                                 clock=self.clock)
        except Exception as exc:  # pylint: disable=broad-except
            self.present, self.dropped = None, False
            self.error = short_message(getattr(exc, "last_value", None) or exc)
            return None, False
        self.present, self.dropped = outcome.value
        return self.present, self.dropped
