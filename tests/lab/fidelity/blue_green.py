# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RDS blue/green deployments of PostgreSQL DB instances, with a real green PostgreSQL kept in sync by logical
replication.

moto 5.2.5 answers Create/Describe/Switchover/DeleteBlueGreenDeployment with no database behind them: the green
instance is an empty copy made at once, the deployment is ``AVAILABLE`` in the same call, a switchover renames the
instances in the request and is ``SWITCHOVER_COMPLETED`` at once, SwitchoverTimeout is ignored, nothing is replicated
and nothing refuses a blue without logical replication. The lab's ``blue_green_deployments``:

- ``CreateBlueGreenDeployment`` (Source: the ARN of a PostgreSQL DB instance; TargetEngineVersion,
  TargetDBParameterGroupName, TargetDBInstanceClass, Tags). Refused as RDS refuses it: blue's parameter group without
  ``rds.logical_replication`` = 1 (or set but not yet in effect: reboot first), a blue that is not ``available``, a
  downgrade, a target parameter group of another family than the target version's (DBParameterGroupNotFound for a
  missing one), a name in use. Then the green DB instance ``<blue>-green-<6 letters>`` is created at once (its own
  PostgreSQL of the target's major, made by engine_versions: 15 -> 18 runs an 18 green; its port and endpoint, blue's
  settings otherwise) and, in the background, the deployment is ``PROVISIONING``. For a major version upgrade blue is
  first checked for what stops an upgrade (``PgCluster.upgrade_blockers``, as RDS's upgrade of green's copy would
  stop): a blocker makes the deployment ``INVALID_CONFIGURATION`` (task DB_ENGINE_VERSION_UPGRADE FAILED,
  StatusDetails and event with RDS's upgrade message). Then blue's roles (pg_dumpall --roles-only: the same passwords)
  and each database's schema (pg_dump --schema-only) are copied to green, blue publishes every table of each database
  (``FOR ALL TABLES``) and green subscribes (its initial copy of the data, then streaming). When every table is
  synchronised the deployment is ``AVAILABLE`` (event "Blue/green deployment tasks completed. ..."). Green is
  read-only for clients until switchover (``default_transaction_read_only``), as RDS's green is. The lab uses logical
  replication for every deployment (RDS uses physical replication within one major version), so it always asks for
  rds.logical_replication.
- ``ReplicaLag`` (AWS/RDS, Seconds, DBInstanceIdentifier = green's) from the subscription's replay lag on blue
  (0 when green has applied all of blue's WAL; while replication is broken: the seconds since it last was healthy).
- ``SwitchoverBlueGreenDeployment`` (SwitchoverTimeout, default 300, at least 30; counted in lab seconds: times the
  lab's time scale): status ``SWITCHOVER_IN_PROGRESS``; blue takes no more writes (new TCP logins refused and client
  sessions ended on blue and green), green applies all blue has (the lab waits until the subscription received all
  of blue's WAL and every table holds blue's row count), sequences are set to blue's values, replication is removed,
  blue is renamed ``<blue>-old1`` and green takes blue's identifier and its endpoint (the lab's endpoints differ by
  port: green serves on blue's old port, see ``encryption.renames_move_the_endpoint``), the new blue accepts writes,
  the old one stays read-only. Then ``SWITCHOVER_COMPLETED`` (events on the deployment and the instances). A
  switchover that cannot finish within its timeout (green cannot catch up: its replication is broken, or too far
  behind) is rolled back as RDS does: nothing renamed, blue takes writes again, replication goes on, the deployment is
  ``AVAILABLE`` again, an event says why.
- ``LabControl.blue_green_log()`` (entries of kind ``blue_green_switchover`` in the replication log): requested_at,
  writes_stopped_at, caught_up_at, switched_at (epochs), ok, rolled_back, reason, lost_rows ({table: rows blue had
  that green lacked when it took over}, counted from real rows), lost_total, sequences_synced.
- ``DeleteBlueGreenDeployment``: replication removed; with ``DeleteTarget`` the green instance is deleted (not after
  a switchover: InvalidParameterCombination, as RDS); without it green stays a stand-alone instance, writable. Refused
  while a switchover runs. The deployment answers ``DELETING`` and is gone from DescribeBlueGreenDeployments.

Aurora clusters as blue keep moto's thin model (no replication behind them).
"""

from __future__ import annotations

import random
import string
import subprocess
import threading
import time
from datetime import datetime, timezone

from moto.rds.exceptions import (
    BlueGreenDeploymentAlreadyExistsFault,
    BlueGreenDeploymentNotFoundFault,
    InvalidBlueGreenDeploymentStateFault,
    InvalidParameterCombination,
    InvalidParameterValue,
    RDSClientError,
)
from moto.rds.models import (
    BlueGreenDeployment,
    BlueGreenDeploymentTask,
    DBInstance,
    RDSBackend,
    RDSBaseModel,
    SwitchoverDetails,
    rds_backends,
)

from tests.lab.fidelity import parameters
from tests.lab.fidelity._support import (
    REQUEST_REGION,
    add_event,
    begin_phase,
    current_status,
    instance_event,
    lab,
    pg_of_instance,
    replace,
)

ACCOUNT = "123456789012"
SOURCE_TYPE = "blue-green-deployment"
LOG_KIND = "blue_green_switchover"
MIN_TIMEOUT = 30
DEFAULT_TIMEOUT = 300
SYNC_TIMEOUT = 120.0          # initial copy of the data, real seconds
TASKS_COMPLETED = ("Blue/green deployment tasks completed. You can make more modifications to the green environment "
                   "databases or switch over the deployment.")
# SwitchoverDetails' Status values (a deployment also has INVALID_CONFIGURATION and DELETING).
MEMBER_STATUSES = ("PROVISIONING", "AVAILABLE", "SWITCHOVER_IN_PROGRESS", "SWITCHOVER_COMPLETED", "SWITCHOVER_FAILED")
_LOCK = threading.RLock()
# moto's own actions, for what the lab leaves to them (Aurora clusters as blue).
_MOTO_CREATE = RDSBackend.create_blue_green_deployment
_MOTO_SWITCHOVER = RDSBackend.switchover_blue_green_deployment
_MOTO_DELETE = RDSBackend.delete_blue_green_deployment


def _pg_module():
    from tests.lab import postgres
    return postgres


def _now_utc() -> datetime:
    return datetime.now(timezone.utc)


# --------------------------------------------------------------------------------------------------------------
# the patch

def blue_green_deployments() -> None:
    replace(BlueGreenDeployment, "resource_type", "deployment")  # arn:aws:rds:<region>:<account>:deployment:bgd-...
    replace(RDSBackend, "create_blue_green_deployment", _create)
    replace(RDSBackend, "switchover_blue_green_deployment", _switchover)
    replace(RDSBackend, "delete_blue_green_deployment", _delete)
    from tests.lab.fidelity import metrics
    metrics.register_sampler("blue_green_replica_lag", green_lag_samples)


# --------------------------------------------------------------------------------------------------------------
# the deployment model

def _set_status(bg, status: str, details: str | None = None) -> None:
    """The deployment's status; its member's (SwitchoverDetails) follows when it is one a member can have."""
    previous = bg.switchover_details[0].Status if getattr(bg, "switchover_details", None) else "PROVISIONING"
    bg.status = status
    bg.switchover_details = [SwitchoverDetails(bg.source, bg.target,
                                               status if status in MEMBER_STATUSES else previous)]
    if details is not None:
        bg.status_details = details


def _set_task(bg, name: str, status: str) -> None:
    for task in bg.tasks:
        if task.Name == name:
            task.Status = status


def _event(bg, message: str, categories: list[str]) -> None:
    add_event(bg.backend, SOURCE_TYPE, bg.blue_green_deployment_identifier, bg.arn, message, categories)


def _new_deployment(backend: RDSBackend, name: str, source_arn: str, tags) -> BlueGreenDeployment:
    bg = BlueGreenDeployment.__new__(BlueGreenDeployment)
    RDSBaseModel.__init__(bg, backend)
    bg.blue_green_deployment_identifier = "bgd-" + "".join(random.choices(string.ascii_lowercase + string.digits,
                                                                          k=16))
    bg.blue_green_deployment_name = name
    bg.source = source_arn
    bg.target = None
    bg.tasks = []
    bg.status_details = None
    bg.create_time = _now_utc()
    bg.deletion_time = None
    bg.tags = tags or []
    return bg


def _lab_of(bg) -> dict:
    return bg.__dict__.setdefault("_lab", {})


# --------------------------------------------------------------------------------------------------------------
# CreateBlueGreenDeployment

def _major(version: str) -> int:
    return int(str(version).split(".", 1)[0])


def _version_key(version: str) -> tuple:
    return tuple(int(part) if part.isdigit() else 0 for part in str(version).split("."))


def _logical_replication_on(blue: DBInstance) -> bool:
    group = parameters.instance_group(blue)
    return str(group.parameters.get("rds.logical_replication", {}).get("ParameterValue")) == "1"


def _check_blue(backend: RDSBackend, source_arn: str) -> DBInstance:
    if not source_arn or not str(source_arn).startswith("arn:"):
        raise InvalidParameterValue("Provided string is not a valid arn")
    blue = backend.find_db_from_id(source_arn)
    status = current_status(blue, "db", blue.db_instance_identifier)
    if status != "available":
        raise RDSClientError("InvalidDBInstanceState",
                             f"DB instance {blue.db_instance_identifier} is not in the available state (it is "
                             f"{status}): a blue/green deployment can only be created from an available instance.")
    if any(bg.source == blue.db_instance_arn and bg.status != "SWITCHOVER_COMPLETED"
           for bg in backend.blue_green_deployments.values()):
        raise RDSClientError("InvalidDBInstanceState",
                             f"DB instance {blue.db_instance_identifier} is already the source of a blue/green "
                             "deployment.")
    if not _logical_replication_on(blue):
        group = parameters.instance_group(blue).name
        raise RDSClientError(
            "SourceDatabaseNotSupportedFault",
            f"The source DB instance {blue.db_instance_arn} isn't supported for a blue/green deployment: logical "
            f"replication isn't turned on. Set the rds.logical_replication parameter to 1 in the DB parameter group "
            f"{group} of the source DB instance, reboot the DB instance, and create the blue/green deployment "
            "again.")
    blue_pg = pg_of_instance(blue)
    if blue_pg is None or not blue_pg.is_running():
        raise RDSClientError("InvalidDBInstanceState",
                             f"DB instance {blue.db_instance_identifier} has no running PostgreSQL.")
    if blue_pg.show("wal_level") != "logical":
        raise RDSClientError("InvalidDBInstanceState",
                             f"The rds.logical_replication parameter of DB instance {blue.db_instance_identifier} "
                             "is pending reboot: reboot the DB instance, then create the blue/green deployment.")
    return blue


def _target_version(blue: DBInstance, requested: str | None) -> str:
    from tests.lab.fidelity import engine_versions
    version = engine_versions.check_engine_version("postgres", requested) if requested else blue.engine_version
    if _version_key(version) < _version_key(blue.engine_version):
        raise InvalidParameterCombination(
            f"Cannot upgrade postgres from {blue.engine_version} to {version}: the target engine version of a "
            "blue/green deployment can't be lower than the source's.")
    return version


def _target_group(backend: RDSBackend, blue: DBInstance, version: str, requested: str | None) -> str | None:
    family = f"postgres{_major(version)}"
    if requested:
        group = parameters.group_by_name(backend, requested)  # DBParameterGroupNotFound
        if group.family.lower() != family:
            raise InvalidParameterCombination(
                f"The parameter group {requested} with DBParameterGroupFamily {group.family} can't be used for the "
                f"green environment of engine version {version}: use a DB parameter group of family {family}.")
        return requested
    if _major(version) == _major(blue.engine_version):
        return blue.db_parameter_group_name
    return f"default.{family}"


def _green_kwargs(blue: DBInstance, version: str, group: str | None, instance_class: str | None) -> dict:
    """The green DB instance: blue's settings (as moto's _create_green_instance copies them), with the targets."""
    suffix = "".join(random.choices(string.ascii_lowercase, k=6))
    kwargs = {
        "db_instance_identifier": f"{blue.db_instance_identifier}-green-{suffix}",
        "engine": blue.engine, "engine_version": version,
        "db_instance_class": instance_class or blue.db_instance_class,
        "port": blue.port, "iops": blue.iops, "storage_type": blue.storage_type,
        "allocated_storage": blue.allocated_storage, "max_allocated_storage": blue.max_allocated_storage,
        "storage_throughput": blue.storage_throughput or None,
        "backup_retention_period": blue.backup_retention_period,
        "auto_minor_version_upgrade": blue.auto_minor_version_upgrade,
        "copy_tags_to_snapshot": blue.copy_tags_to_snapshot, "master_username": blue.master_username,
        "master_user_password": blue.__dict__.get("_master_user_password") or "lab-password",
        "multi_az": blue.multi_az, "license_model": blue.license_model,
        "preferred_backup_window": blue.preferred_backup_window,
        "preferred_maintenance_window": blue.preferred_maintenance_window,
        "storage_encrypted": blue.storage_encrypted, "kms_key_id": blue.kms_key_id,
        "tags": [dict(tag) for tag in blue.tags or []],
        "enable_cloudwatch_logs_exports": blue.enabled_cloudwatch_logs_exports,
        "publicly_accessible": blue.publicly_accessible,
        "vpc_security_group_ids": list(blue.vpc_security_group_ids or []),
        "ca_certificate_identifier": blue.ca_certificate_identifier,
        "availability_zone": blue.availability_zone,
        "db_subnet_group_name": blue.__dict__.get("_db_subnet_group_name"),
        "db_name": blue.db_name,
    }
    if group:
        kwargs["db_parameter_group_name"] = group
    return kwargs


def _create(self: RDSBackend, bg_kwargs: dict) -> BlueGreenDeployment:
    name = bg_kwargs.get("blue_green_deployment_name") or ""
    source = bg_kwargs.get("source") or ""
    if self._is_cluster(source):
        return _MOTO_CREATE(self, bg_kwargs)
    for existing in self.blue_green_deployments.values():
        if existing.blue_green_deployment_name == name:
            raise BlueGreenDeploymentAlreadyExistsFault(name)
    blue = _check_blue(self, source)
    version = _target_version(blue, bg_kwargs.get("target_engine_version"))
    group = _target_group(self, blue, version, bg_kwargs.get("target_db_parameter_group_name"))
    bg = _new_deployment(self, name, blue.db_instance_arn, bg_kwargs.get("tags"))
    major_upgrade = _major(version) != _major(blue.engine_version)
    # A green of another major runs that major's PostgreSQL (engine_versions.engine_versions makes it).
    green = self.create_db_instance(_green_kwargs(blue, version, group, bg_kwargs.get("target_db_instance_class")))
    bg.target = green.db_instance_arn
    bg.tasks = [BlueGreenDeploymentTask("CREATING_READ_REPLICA_OF_SOURCE", "PENDING")]
    if major_upgrade:
        bg.tasks.append(BlueGreenDeploymentTask("DB_ENGINE_VERSION_UPGRADE", "PENDING"))
    bg.tasks.append(BlueGreenDeploymentTask("CONFIGURE_BACKUPS", "PENDING"))
    _set_status(bg, "PROVISIONING")
    self.blue_green_deployments[bg.blue_green_deployment_identifier] = bg
    _event(bg, "Blue/green deployment created.", ["creation"])
    _start_provisioning(self, bg, blue, green)
    return bg


def _slot_prefix(bg) -> str:
    return "lab_bg_" + bg.blue_green_deployment_identifier[4:12]


def _start_provisioning(backend: RDSBackend, bg, blue: DBInstance, green: DBInstance) -> None:
    state = lab()
    generation = state.generation
    blue_pg, green_pg = pg_of_instance(blue), pg_of_instance(green)
    info = _lab_of(bg)
    info.update(blue_pg=blue_pg, green_pg=green_pg, prefix=_slot_prefix(bg), databases=[], subscriptions=[],
                healthy_at=time.time(), region=backend.region_name)

    def provision():
        task = "CREATING_READ_REPLICA_OF_SOURCE"
        _set_task(bg, task, "IN_PROGRESS")
        try:
            if green_pg.major != blue_pg.major:
                # RDS upgrades green's copy of blue with pg_upgrade: what blocks an upgrade blocks the deployment.
                task = "DB_ENGINE_VERSION_UPGRADE"
                _set_task(bg, task, "IN_PROGRESS")
                blockers = blue_pg.upgrade_blockers(green_pg.major)["blockers"]
                if blockers:
                    raise UpgradeBlocked(" ".join(blocker["message"] for blocker in blockers))
                _set_task(bg, task, "COMPLETED")
                task = "CREATING_READ_REPLICA_OF_SOURCE"
            _set_read_only(green_pg, True)
            _copy_roles(blue_pg, green_pg)
            for db in _databases(blue_pg):
                _copy_schema(blue_pg, green_pg, db)
                subscription = _subscribe(blue_pg, green_pg, db, info["prefix"], len(info["databases"]))
                info["databases"].append(db)
                info["subscriptions"].append((db, subscription))
            _wait_synchronised(green_pg, info["subscriptions"], SYNC_TIMEOUT)
        except Exception as exc:
            with state.lock:
                if state.generation != generation or bg.__dict__.get("_lab_deleted"):
                    return
                _set_task(bg, task, "FAILED")
                _set_status(bg, "INVALID_CONFIGURATION", details=f"Creation of blue/green deployment failed: {exc}")
                _event(bg, f"Creation of blue/green deployment failed due to {_one_line(exc)}.", ["creation"])
            if not isinstance(exc, UpgradeBlocked):
                raise
            return
        with state.lock:
            if state.generation != generation:
                return
            if bg.__dict__.get("_lab_deleted"):
                _remove_replication(info)
                return
            for task in bg.tasks:
                task.Status = "COMPLETED"
            info["healthy_at"] = time.time()
            _set_status(bg, "AVAILABLE")
            _event(bg, TASKS_COMPLETED, ["creation"])

    job = state.run_job(f"blue-green-{bg.blue_green_deployment_identifier}", provision)
    begin_phase(green, "creating", 0.0, job=job)


class UpgradeBlocked(RuntimeError):
    """Blue holds what stops a major version upgrade (PgCluster.upgrade_blockers)."""


def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# --------------------------------------------------------------------------------------------------------------
# PostgreSQL: copy, replicate, catch up

def _client(pg, program: str, *args, stdin: str | None = None, check: bool = True,
            tools=None) -> subprocess.CompletedProcess:
    """Run a PostgreSQL client program as the lab admin over ``pg``'s unix socket: the program of ``tools``' version
    (a PgCluster; default ``pg``'s), e.g. the target version's pg_dump against blue."""
    command = [str((tools or pg).bin_dir / program), "-h", str(pg.socket_dir), "-p", str(pg.port),
               "-U", _pg_module().ADMIN_USER, *args]
    proc = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=120, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{program} on {pg.name} failed: {proc.stderr.strip()[:500]}")
    return proc


def _databases(pg) -> list[str]:
    return [row[0] for row in pg.admin_query(
        "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname = 'postgres' DESC, "
        "datname")]


def _run_sql(pg, db: str, text: str) -> None:
    """Apply a dump: statements that fail because the object exists already (roles, extensions) are skipped."""
    proc = _client(pg, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=0", "-d", db, stdin=text, check=False)
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line and "already exists" not in line]
    if proc.returncode not in (0, 3) or errors:
        raise RuntimeError(f"applying a dump to {pg.name}/{db} failed: {'; '.join(errors)[:500] or proc.stderr}")


def _copy_roles(blue_pg, green_pg) -> None:
    postgres = _pg_module()
    dump = _client(blue_pg, "pg_dumpall", "--roles-only", "-l", "postgres", tools=green_pg).stdout
    kept = [line for line in dump.splitlines() if postgres.ADMIN_USER not in line]
    _run_sql(green_pg, "postgres", "\n".join(kept) + "\n")


def _copy_schema(blue_pg, green_pg, db: str) -> None:
    from psycopg2 import sql
    owner = blue_pg.admin_query("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (db,))[0][0]
    if not green_pg.admin_query("SELECT 1 FROM pg_database WHERE datname = %s", (db,)):
        green_pg.admin_query(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(db), sql.Identifier(owner)))
    dump = _client(blue_pg, "pg_dump", "--schema-only", "--no-publications", "--no-subscriptions", "-d", db,
                   tools=green_pg).stdout
    # Debian's PostgreSQL 15 stamps columns with an option no other build (nor RDS) knows (postgres.py,
    # _drop_column_options_unknown_to): not part of the schema green gets.
    dump = "\n".join(line for line in dump.splitlines() if "SET (pg_attver=" not in line) + "\n"
    _run_sql(green_pg, db, dump)


def _subscribe(blue_pg, green_pg, db: str, prefix: str, index: int) -> str:
    from psycopg2 import sql
    postgres = _pg_module()
    name = f"{prefix}_{index}"
    blue_pg.admin_query(sql.SQL("CREATE PUBLICATION {} FOR ALL TABLES").format(sql.Identifier(name)), db=db)
    conninfo = (f"host={blue_pg.socket_dir} port={blue_pg.port} user={postgres.ADMIN_USER} dbname={db} "
                f"application_name={name}")
    green_pg.admin_query(sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {}").format(
        sql.Identifier(name), sql.Literal(conninfo), sql.Identifier(name)), db=db)
    return name


def _wait_synchronised(green_pg, subscriptions: list, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for db, unused_name in subscriptions:
        while green_pg.admin_query("SELECT count(*) FROM pg_subscription_rel WHERE srsubstate <> 'r'", db=db)[0][0]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the initial copy of database {db} did not finish in {timeout:.0f} s")
            time.sleep(0.1)


def _set_read_only(pg, read_only: bool) -> None:
    """Read-only for clients (as RDS's green before switchover, and the old blue after): every session but the lab
    admin's (whose role setting wins), which applies replication and runs the switchover."""
    from tests.lab.postgres import ADMIN_USER
    from psycopg2 import sql
    pg.admin_query(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = off").format(sql.Identifier(ADMIN_USER)))
    if read_only:
        pg.admin_query("ALTER SYSTEM SET default_transaction_read_only = on")
    else:
        pg.admin_query("ALTER SYSTEM RESET default_transaction_read_only")
    pg.admin_query("SELECT pg_reload_conf()")


def _caught_up(blue_pg, green_pg, subscriptions: list, target_lsn: str) -> bool:
    """Green received all of blue's WAL up to ``target_lsn`` (blue fenced) and holds blue's rows."""
    for db, name in subscriptions:
        rows = green_pg.admin_query(
            "SELECT received_lsn >= %s::pg_lsn FROM pg_stat_subscription WHERE subname = %s AND relid IS NULL",
            (target_lsn, name), db=db)
        if not rows or not rows[0][0]:
            return False
    return blue_pg._count_rows() == green_pg._count_rows()


def _sync_sequences(blue_pg, green_pg, databases: list[str]) -> int:
    synced = 0
    for db in databases:
        for schema, name, value in blue_pg.admin_query(
                "SELECT schemaname, sequencename, last_value FROM pg_sequences WHERE last_value IS NOT NULL", db=db):
            green_pg.admin_query("SELECT setval(format('%%I.%%I', %s, %s)::regclass, %s, true)",
                                 (schema, name, value), db=db)
            synced += 1
    return synced


def _remove_replication(info: dict) -> None:
    """Drop green's subscriptions (their slots on blue go with them) and blue's publications."""
    from psycopg2 import sql
    blue_pg, green_pg = info["blue_pg"], info["green_pg"]
    for db, name in info.get("subscriptions", []):
        if green_pg is not None and green_pg.is_running():
            green_pg.admin_query(sql.SQL("DROP SUBSCRIPTION IF EXISTS {}").format(sql.Identifier(name)), db=db)
        if blue_pg is not None and blue_pg.is_running():
            blue_pg.admin_query(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(name)), db=db)
            blue_pg.admin_query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                                "WHERE slot_name = %s AND NOT active", (name,))
    info["subscriptions"] = []


# --------------------------------------------------------------------------------------------------------------
# SwitchoverBlueGreenDeployment

def _find(backend: RDSBackend, identifier: str):
    bg = backend.blue_green_deployments.get(identifier)
    if bg is None:
        raise BlueGreenDeploymentNotFoundFault(identifier)
    return bg


def _switchover(self: RDSBackend, blue_green_deployment_identifier: str,
                switchover_timeout: int | None = None) -> BlueGreenDeployment:
    bg = _find(self, blue_green_deployment_identifier)
    info = _lab_of(bg)
    if not info:
        return _MOTO_SWITCHOVER(self, blue_green_deployment_identifier, switchover_timeout or DEFAULT_TIMEOUT)
    timeout = DEFAULT_TIMEOUT if switchover_timeout is None else int(switchover_timeout)
    if timeout < MIN_TIMEOUT:
        raise InvalidParameterValue(f"SwitchoverTimeout must be at least {MIN_TIMEOUT} seconds.")
    with _LOCK:
        if bg.status != "AVAILABLE":
            raise InvalidBlueGreenDeploymentStateFault(blue_green_deployment_identifier)
        blue, green = self.find_db_from_id(bg.source), self.find_db_from_id(bg.target)
        for database in (blue, green):
            status = current_status(database, "db", database.db_instance_identifier)
            if status != "available":
                raise RDSClientError("InvalidBlueGreenDeploymentStateFault",
                                     f"The blue/green deployment {blue_green_deployment_identifier} can't be switched "
                                     f"over: DB instance {database.db_instance_identifier} is {status}.")
        _set_status(bg, "SWITCHOVER_IN_PROGRESS")
    _event(bg, "Switchover started on blue/green deployment "
               f"{bg.blue_green_deployment_name}.", ["notification"])
    _start_switchover(self, bg, blue, green, timeout)
    return bg


def _start_switchover(backend: RDSBackend, bg, blue: DBInstance, green: DBInstance, timeout: int) -> None:
    state = lab()
    generation = state.generation
    info = _lab_of(bg)
    blue_pg, green_pg = info["blue_pg"], info["green_pg"]
    blue_id, green_id = blue.db_instance_identifier, green.db_instance_identifier
    requested_at = time.time()
    deadline = requested_at + timeout * state.timing.scale
    entry = {"kind": LOG_KIND, "identifier": bg.blue_green_deployment_identifier,
             "name": bg.blue_green_deployment_name, "region": backend.region_name, "blue": blue_id, "green": green_id,
             "timeout_seconds": timeout, "requested_at": requested_at, "writes_stopped_at": None,
             "caught_up_at": None, "switched_at": None, "ok": False, "rolled_back": False, "reason": None,
             "lost_rows": None, "lost_total": None, "sequences_synced": 0}

    def work():
        from tests.lab.fidelity.lifecycle import fence
        token = REQUEST_REGION.set(backend.region_name)
        try:
            fence(blue_pg)
            fence(green_pg)
            entry["writes_stopped_at"] = time.time()
            target_lsn = blue_pg.admin_query("SELECT pg_current_wal_lsn()::text")[0][0]
            while not _caught_up(blue_pg, green_pg, info["subscriptions"], target_lsn):
                if time.time() > deadline or state.generation != generation:
                    _roll_back(state, generation, bg, entry, blue_pg, green_pg,
                               f"green did not catch up with blue within the switchover timeout ({timeout} s)")
                    return
                time.sleep(0.05)
            entry["caught_up_at"] = time.time()
            before, after = blue_pg._count_rows(), green_pg._count_rows()
            lost = {table: rows for table, rows in _pg_module()._row_difference(before, after).items() if rows > 0}
            entry["lost_rows"], entry["lost_total"] = lost, sum(lost.values())
            entry["sequences_synced"] = _sync_sequences(blue_pg, green_pg, info["databases"])
            _remove_replication(info)
            _set_read_only(blue_pg, True)
            _set_read_only(green_pg, False)
            _rename_and_wait(backend, blue_id, f"{blue_id}-old1")
            _rename_and_wait(backend, green_id, blue_id)
            blue_pg.refuse_tcp_logins(False)
            green_pg.refuse_tcp_logins(False)
            entry["switched_at"] = time.time()
            with state.lock:
                if state.generation != generation:
                    return
                old_blue, new_blue = backend.databases[f"{blue_id}-old1"], backend.databases[blue_id]
                bg.source, bg.target = old_blue.db_instance_arn, new_blue.db_instance_arn
                _set_status(bg, "SWITCHOVER_COMPLETED", details="Switchover completed")
                _event(bg, f"Switchover completed on blue/green deployment {bg.blue_green_deployment_name}.",
                       ["notification"])
                instance_event(new_blue, f"Switchover from DB instance {blue_id} to {green_id} was successful. "
                                         f"{green_id} is now {blue_id}.", ["notification"])
                instance_event(old_blue, f"DB instance {blue_id} was renamed {blue_id}-old1 by the switchover of "
                                         f"blue/green deployment {bg.blue_green_deployment_name}.", ["notification"])
                entry["ok"] = True
                _record(state, entry)
        except Exception as exc:
            if entry["switched_at"] is None and state.generation == generation:
                _roll_back(state, generation, bg, entry, blue_pg, green_pg, _one_line(exc))
            raise
        finally:
            REQUEST_REGION.reset(token)

    state.run_job(f"switchover-{bg.blue_green_deployment_identifier}", work)


def _rename_and_wait(backend: RDSBackend, identifier: str, new_identifier: str, timeout: float = 60) -> None:
    """Rename through ModifyDBInstance (the endpoint follows the name: encryption.renames_move_the_endpoint) and wait
    until the instance's PostgreSQL serves on its new port."""
    database = backend.modify_db_instance(identifier, {"new_db_instance_identifier": new_identifier,
                                                       "apply_immediately": True})
    deadline = time.monotonic() + timeout
    while current_status(database, "db", database.db_instance_identifier) == "renaming":
        if time.monotonic() > deadline:
            raise RuntimeError(f"renaming {identifier} to {new_identifier} did not finish in {timeout:.0f} s")
        time.sleep(0.05)


def _roll_back(state, generation: int, bg, entry: dict, blue_pg, green_pg, reason: str) -> None:
    """Nothing renamed: blue takes writes again, replication goes on, the deployment is AVAILABLE again."""
    blue_pg.refuse_tcp_logins(False)
    green_pg.refuse_tcp_logins(False)
    with state.lock:
        if state.generation != generation:
            return
        entry.update(rolled_back=True, reason=reason)
        _set_status(bg, "AVAILABLE", details=f"Switchover rolled back: {reason}")
        _event(bg, f"Switchover canceled on blue/green deployment {bg.blue_green_deployment_name} due to {reason}. "
                   "Changes were rolled back; no changes were made to the environments.", ["notification"])
        _record(state, entry)


def _record(state, entry: dict) -> None:
    from tests.lab.fidelity import replication
    replication.record(state, dict(entry))


# --------------------------------------------------------------------------------------------------------------
# DeleteBlueGreenDeployment

def _delete(self: RDSBackend, blue_green_deployment_identifier: str,
            delete_target: bool = False) -> BlueGreenDeployment:
    bg = _find(self, blue_green_deployment_identifier)
    info = _lab_of(bg)
    if not info:
        return _MOTO_DELETE(self, blue_green_deployment_identifier, delete_target)
    delete_target = str(delete_target).lower() == "true"
    with _LOCK:
        if bg.status == "SWITCHOVER_IN_PROGRESS":
            raise InvalidBlueGreenDeploymentStateFault(blue_green_deployment_identifier)
        if delete_target and bg.status == "SWITCHOVER_COMPLETED":
            raise InvalidParameterCombination(
                "You can't delete the green environment of a blue/green deployment whose switchover completed: "
                "omit DeleteTarget.")
        self.blue_green_deployments.pop(blue_green_deployment_identifier)
        bg.__dict__["_lab_deleted"] = True
        green = None
        if bg.status != "SWITCHOVER_COMPLETED":
            try:
                green = self.find_db_from_id(bg.target)
            except RDSClientError:
                green = None
        _set_status(bg, "DELETING")
        bg.deletion_time = bg.delete_time = _now_utc()
    state = lab()
    generation = state.generation

    def work():
        if info.get("subscriptions"):
            _remove_replication(info)
        if green is None or state.generation != generation:
            return
        if delete_target:
            green.deletion_protection = False
            self.delete_db_instance(green.db_instance_identifier, skip_final_snapshot=True)
        else:
            green_pg = pg_of_instance(green)
            if green_pg is not None and green_pg.is_running():
                _set_read_only(green_pg, False)

    if info.get("subscriptions") or green is not None:
        state.run_job(f"delete-{blue_green_deployment_identifier}", work).join(60)
    _event(bg, "Blue/green deployment deleted.", ["deletion"])
    return bg


# --------------------------------------------------------------------------------------------------------------
# ReplicaLag of green

def green_lag_samples(now: float) -> list:
    from tests.lab.fidelity.metrics import Datapoint
    return [Datapoint(*point) for point in green_lag_datapoints(now)]


def green_lag_seconds(info: dict, now: float) -> float | None:
    """Seconds green is behind blue: the subscriptions' replay lag as blue's walsenders measure it (0 once green has
    confirmed all of blue's WAL); while a subscription has no walsender (replication broken), the time since every
    subscription last had one."""
    blue_pg = info.get("blue_pg")
    names = [name for unused_db, name in info.get("subscriptions", [])]
    if not names or blue_pg is None or not blue_pg.is_running():
        return None
    rows = blue_pg.admin_query(
        "SELECT s.slot_name, r.pid IS NOT NULL, pg_current_wal_lsn() <= s.confirmed_flush_lsn, "
        "COALESCE(extract(epoch FROM r.replay_lag), 0) FROM pg_replication_slots s "
        "LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid WHERE s.slot_name = ANY(%s)", (names,))
    if len(rows) < len(names) or not all(row[1] for row in rows):
        return max(0.0, now - info.get("healthy_at", now))
    info["healthy_at"] = now
    return max(0.0 if row[2] else float(row[3]) for row in rows)


def green_lag_datapoints(now: float) -> list[tuple]:
    points = []
    account = rds_backends[ACCOUNT]
    for region in ("us-east-1", "us-west-2"):
        backend = account[region]
        for bg in list(backend.blue_green_deployments.values()):
            info = bg.__dict__.get("_lab")
            if not info or bg.status not in ("AVAILABLE", "SWITCHOVER_IN_PROGRESS"):
                continue
            try:
                green = backend.find_db_from_id(bg.target)
                lag = green_lag_seconds(info, now)
            except Exception:  # being switched over or deleted: no sample this time
                continue
            if lag is not None:
                points.append((region, "AWS/RDS", "ReplicaLag", {"DBInstanceIdentifier": green.db_instance_identifier},
                               round(lag, 3), "Seconds"))
    return points
