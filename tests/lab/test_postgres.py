# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's real PostgreSQL 15: RDS-like roles, settings, snapshots, point-in-time restore, faults and cleanup."""

import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import psycopg2
import pytest

from tests.lab import postgres
from tests.lab.postgres import PgCluster, engine_parameters, stop_all

MASTER, PASSWORD, DB = "dbadmin", "Lab-Secret-1", "app"
REPO = Path(__file__).resolve().parents[2]


def _pg_processes(path: Path) -> str:
    proc = subprocess.run(["pgrep", "-af", str(path)], capture_output=True, text=True, timeout=10, check=False)
    return proc.stdout.strip()


def _connect(cluster: PgCluster, password: str = PASSWORD, db: str = DB, user: str = MASTER):
    conn = psycopg2.connect(host=cluster.host, port=cluster.port, user=user, password=password, dbname=db,
                            connect_timeout=3)
    conn.autocommit = True
    return conn


def _sql(cluster: PgCluster, statement: str, params=None, db: str = DB):
    conn = _connect(cluster, db=db)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


@pytest.fixture(scope="module")
def state_root():
    root = Path(tempfile.mkdtemp(prefix="lab-pg-test-", dir="/tmp"))
    try:
        yield root
    finally:
        stop_all(root)
        shutil.rmtree(root, ignore_errors=True)
        assert not _pg_processes(root), "a PostgreSQL of the test was left running"


@pytest.fixture(scope="module")
def primary(state_root):
    cluster = PgCluster(state_root, "primary")
    try:
        cluster.initialize(MASTER, PASSWORD, DB)
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture()
def make_cluster(state_root):
    made = []

    def make(name: str) -> PgCluster:
        cluster = PgCluster(state_root, name)
        made.append(cluster)
        cluster.initialize(MASTER, PASSWORD, DB)
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            cluster.destroy()


def test_master_user_is_rds_like_not_superuser(primary):
    conn = _connect(primary)
    try:
        cur = conn.cursor()
        cur.execute("SELECT rolsuper, rolcreaterole, rolcreatedb, pg_has_role(current_user, 'rds_superuser', 'member')"
                    " FROM pg_roles WHERE rolname = current_user")
        assert cur.fetchone() == (False, True, True, True)
        cur.execute("SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'rds%' ORDER BY 1")
        roles = dict(cur.fetchall())
        assert {"rds_superuser", "rds_iam", "rds_replication"} <= set(roles)
        assert not roles["rds_superuser"]
        cur.execute("SELECT pg_has_role('rds_superuser', 'pg_monitor', 'member')")
        assert cur.fetchone() == (True,)
        # RDS lets rds_superuser create pg_stat_statements and see other users' queries.
        cur.execute("CREATE EXTENSION pg_stat_statements")
        cur.execute("SELECT count(*) >= 0 FROM pg_stat_statements")
        with primary._admin_connection() as admin, admin.cursor() as admin_cur:
            admin_cur.execute("SELECT 'lab-admin-marker', pg_sleep(0)")
            cur.execute("SELECT query FROM pg_stat_activity WHERE usename = 'lab_admin'")
            assert any("lab-admin-marker" in row[0] for row in cur.fetchall())
        cur.execute("CREATE ROLE app_reader LOGIN PASSWORD 'x'")
        cur.execute("GRANT pg_monitor TO app_reader")
        cur.execute("DROP ROLE app_reader")
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("ALTER SYSTEM SET work_mem = '1MB'")
    finally:
        conn.close()
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        _connect(primary, password="wrong")
    assert primary.admin_query("SELECT datname FROM pg_database WHERE datname IN ('postgres', %s) ORDER BY 1",
                               (DB,)) == [(DB,), ("postgres",)]


def test_set_master_password(primary):
    primary.set_master_password(MASTER, "Rotated-2")
    try:
        _connect(primary, password="Rotated-2").close()
        with pytest.raises(psycopg2.OperationalError):
            _connect(primary)
    finally:
        primary.set_master_password(MASTER, PASSWORD)


def test_dynamic_setting_is_visible_with_show(primary):
    result = primary.apply_settings({"work_mem": "8192", "log_min_duration_statement": "250"})
    assert result["applied"] == {"work_mem": "8192", "log_min_duration_statement": "250"}
    assert result["needs_restart"] == [] and result["clamped"] == {}
    assert primary.show("work_mem") == "8MB"
    assert _sql(primary, "SHOW log_min_duration_statement") == [("250ms",)]
    # A module's setting is accepted before its library is loaded, as RDS accepts it in a parameter group.
    result = primary.apply_settings({"auto_explain.log_min_duration": "1000", "enable_seqscan": "0"})
    assert result["rejected"] == {} and primary.show("enable_seqscan") == "off"


def test_static_setting_is_clamped_and_needs_restart(primary, monkeypatch):
    monkeypatch.setenv("LAB_PG_MEMORY_BUDGET_MB", "128")
    # 8 GiB of 8 kB pages, as RDS computes for a 32 GiB class; the budget allows a quarter of 128 MB.
    result = primary.apply_settings({"shared_buffers": "1048576", "max_connections": "5000",
                                     "rds.force_ssl": "1", "port": "5432", "no_such_setting": "1"})
    # max_connections: half of 128 MB at 48 kB a slot, but never below 1000.
    assert result["clamped"] == {"shared_buffers": {"requested": "1048576", "used": "4096"},
                                 "max_connections": {"requested": "5000", "used": "1365"}}
    assert sorted(result["needs_restart"]) == ["max_connections", "shared_buffers"]
    assert set(result["ignored"]) == {"port", "no_such_setting"}
    assert result["applied"]["rds.force_ssl"] == "1" and primary.force_ssl
    assert primary.show("shared_buffers") == "16MB"
    primary.restart()
    assert primary.show("shared_buffers") == "32MB"
    assert primary.show("max_connections") == "1365"
    assert primary.pending_restart() == []


def test_snapshot_restore_holds_exactly_the_rows_at_backup_time(primary, state_root):
    _sql(primary, "CREATE TABLE snap_rows (id int)")
    _sql(primary, "INSERT INTO snap_rows SELECT generate_series(1, 50)")
    meta = primary.base_backup(state_root / "snapshots" / "snap1")
    _sql(primary, "INSERT INTO snap_rows SELECT generate_series(51, 60)")
    assert meta["path"] == str(state_root / "snapshots" / "snap1") and meta["size_bytes"] > 0
    restored = PgCluster.from_backup(state_root, "from-snap", state_root / "snapshots" / "snap1",
                                     settings={"work_mem": "2048"})
    try:
        assert restored.port != primary.port and restored.archive_dir != primary.archive_dir
        assert _sql(restored, "SELECT count(*), max(id) FROM snap_rows") == [(50, 50)]
        assert restored.show("work_mem") == "2MB"
        _sql(restored, "INSERT INTO snap_rows VALUES (999)")
        assert _sql(primary, "SELECT count(*) FROM snap_rows") == [(60,)]
    finally:
        restored.destroy()


def test_point_in_time_restore_drops_rows_after_target(primary, state_root):
    _sql(primary, "CREATE TABLE pitr_rows (id int, at timestamptz DEFAULT clock_timestamp())")
    _sql(primary, "INSERT INTO pitr_rows (id) SELECT generate_series(1, 20)")
    time.sleep(0.2)
    target = datetime.now(timezone.utc)
    time.sleep(0.2)
    _sql(primary, "INSERT INTO pitr_rows (id) SELECT generate_series(21, 30)")
    latest = primary.latest_restorable_time()
    assert latest > target and primary.earliest_restorable_time() < target
    restored = PgCluster.restore_to_time(state_root, "pitr", primary, target)
    try:
        assert _sql(restored, "SELECT count(*), max(id) FROM pitr_rows") == [(20, 20)]
        assert restored.admin_query("SELECT pg_is_in_recovery()") == [(False,)]
        _sql(restored, "INSERT INTO pitr_rows (id) VALUES (100)")
    finally:
        restored.destroy()
    # Later than every archived commit: PostgreSQL stops short of the target, the lab replays everything.
    restored = PgCluster.restore_to_time(state_root, "pitr-latest", primary, latest)
    try:
        assert _sql(restored, "SELECT count(*) FROM pitr_rows") == [(30,)]
    finally:
        restored.destroy()


def _probe(cluster: PgCluster, stop: threading.Event, events: list) -> None:
    while not stop.is_set():
        try:
            _connect(cluster).close()
            events.append((time.monotonic(), True))
        except psycopg2.OperationalError as exc:
            events.append((time.monotonic(), str(exc)))
        time.sleep(0.05)


def _gap(events: list) -> float:
    failed = [i for i, (unused, ok) in enumerate(events) if ok is not True]
    assert failed, "the probe never failed"
    before = events[failed[0] - 1][0]
    after = next(at for at, ok in events[failed[-1]:] if ok is True)
    return after - before


def test_outage_gives_a_connection_gap(primary):
    stop, events = threading.Event(), []
    probe = threading.Thread(target=_probe, args=(primary, stop, events))
    probe.start()
    try:
        time.sleep(0.2)
        primary.outage(1.0)
        time.sleep(0.3)
    finally:
        stop.set()
        probe.join()
    assert 1.0 <= _gap(events) < 3.0
    assert any("refused" in str(ok) for unused, ok in events if ok is not True)
    assert primary.is_running()


def test_refuse_connections_rejects_logins_for_a_while(primary):
    stop, events = threading.Event(), []
    probe = threading.Thread(target=_probe, args=(primary, stop, events))
    probe.start()
    try:
        time.sleep(0.2)
        primary.refuse_connections(1.0)
        time.sleep(0.3)
    finally:
        stop.set()
        probe.join()
    assert 0.9 <= _gap(events) < 3.0
    assert any("rejects connection" in str(ok) for unused, ok in events if ok is not True)


def test_lossy_failover_drops_exactly_the_writes_made_during_the_freeze(make_cluster):
    cluster = make_cluster("lossy")
    port = cluster.port
    _sql(cluster, "CREATE TABLE seed (id int)")
    _sql(cluster, "INSERT INTO seed SELECT generate_series(1, 100)")
    _sql(cluster, "CREATE TABLE writes (id int PRIMARY KEY)")
    cluster.prepare_standby()
    acked, stop_writing = [], threading.Event()

    def writer():
        conn, next_id = _connect(cluster), 1
        try:
            while not stop_writing.is_set():
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO writes VALUES (%s)", (next_id,))
                acked.append(next_id)
                next_id += 1
                time.sleep(0.01)
        finally:
            conn.close()

    def on_phase(name, _at):
        # Keep writing into the freeze, and stop before the primary dies: every committed row was acknowledged.
        if name == "frozen":
            timers.append(threading.Timer(0.3, stop_writing.set))
            timers[-1].start()
        phases.append(name)

    timers, phases = [], []
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        result = cluster.lossy_failover(freeze_seconds=1.5, outage_seconds=0.3, on_phase=on_phase)
    finally:
        stop_writing.set()
        for timer in timers:
            timer.cancel()
        thread.join()
    assert phases == ["frozen", "primary_down", "promoted"]
    present = {row[0] for row in _sql(cluster, "SELECT id FROM writes")}
    lost = [i for i in acked if i not in present]
    assert lost, "no acknowledged write was lost"
    assert lost == acked[-len(lost):], "lost writes must be the most recent ones"
    assert result["dropped_total"] == len(lost)
    assert result["dropped_rows"] == {"public.seed": 0, "public.writes": len(lost)}
    assert result["timeline"] == 2
    assert cluster.port == port and _sql(cluster, "SELECT count(*) FROM seed") == [(100,)]
    _sql(cluster, "INSERT INTO writes VALUES (100000)")
    assert cluster.admin_query("SELECT pg_is_in_recovery()") == [(False,)]
    assert not cluster.standby_dir.exists() and not (cluster.dir / "old_primary").exists()


def test_destroy_leaves_no_process_and_no_files(make_cluster):
    cluster = make_cluster("doomed")
    cluster.prepare_standby()
    assert _pg_processes(cluster.data_dir) and _pg_processes(cluster.standby_dir)
    cluster.destroy()
    assert not _pg_processes(cluster.dir)
    assert not cluster.dir.exists()


def test_stop_all_stops_clusters_of_a_crashed_process(state_root):
    script = (
        "import os, sys; from pathlib import Path; from tests.lab.postgres import PgCluster\n"
        f"c = PgCluster(Path({str(state_root)!r}), 'crashed'); c.initialize('m', 'pw'); c.prepare_standby()\n"
        "os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == -9, proc.stderr
    crashed_dir = state_root / "pg" / "crashed"
    try:
        assert _pg_processes(crashed_dir / "data") and _pg_processes(crashed_dir / "standby")
        stop_all(state_root)
        assert not _pg_processes(crashed_dir)
        assert crashed_dir.exists()
    finally:
        PgCluster(state_root, "crashed").destroy()
    assert not crashed_dir.exists()


def test_engine_parameters_come_from_pg_settings(tmp_path, monkeypatch):
    monkeypatch.setattr(postgres, "_engine_parameters_cache", None)
    params = {p["name"]: p for p in engine_parameters(cache_dir=tmp_path)}
    assert params["shared_buffers"]["unit"] == "8kB" and params["shared_buffers"]["context"] == "postmaster"
    assert params["work_mem"]["vartype"] == "integer" and params["work_mem"]["boot_val"] == "4096"
    assert "replica" in params["wal_level"]["enumvals"]
    assert "pg_stat_statements.max" in params
    assert list(tmp_path.glob("pg_settings-*.json"))
    started = time.monotonic()
    assert engine_parameters(cache_dir=tmp_path) is postgres._engine_parameters_cache
    assert time.monotonic() - started < 0.1


def test_initialize_refuses_the_lab_admin_name(state_root):
    with pytest.raises(ValueError):
        PgCluster(state_root, "nope").initialize(postgres.ADMIN_USER, "pw")
    assert not (state_root / "pg" / "nope").exists()


def test_initialize_starts_with_its_settings_and_falls_back_on_a_refused_value(state_root):
    preset = PgCluster(state_root, "preset")
    try:
        preset.initialize(MASTER, PASSWORD, DB, settings={"work_mem": "8192", "shared_buffers": "1048576",
                                                          "rds.force_ssl": "1"})
        assert preset.show("work_mem") == "8MB"
        assert preset.pending_restart() == []
        used = str(postgres._memory_budget_mb() * 1024 ** 2 // 4 // 8192)
        assert preset.start_result["clamped"] == {"shared_buffers": {"requested": "1048576", "used": used}}
        assert preset.show("shared_buffers") == f"{int(used) * 8 // 1024}MB"
        assert preset.start_result["applied"]["rds.force_ssl"] == "1" and preset.force_ssl
        assert "hostnossl all" in (preset.data_dir / "pg_hba.conf").read_text()
    finally:
        preset.destroy()
    refused = PgCluster(state_root, "refused")
    try:
        refused.initialize(MASTER, PASSWORD, DB, settings={"work_mem": "lots", "log_min_duration_statement": "250"})
        assert list(refused.start_result["rejected"]) == ["work_mem"]
        assert refused.show("log_min_duration_statement") == "250ms"
        assert _sql(refused, "SELECT current_user") == [(MASTER,)]
    finally:
        refused.destroy()
