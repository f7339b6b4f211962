# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read replicas of DB instances as real PostgreSQL standbys, in their own region; promotion; lag; replay faults.

- ``regions_side_by_side``: every RDS request is served with its region known to the patches (``_support.
  REQUEST_REGION``), so the PostgreSQL keys of one identifier in us-east-1 and us-west-2 never collide
  ("db:<id>" in us-east-1, "db:<id>@us-west-2" elsewhere).
- ``read_replicas_stream``: CreateDBInstanceReadReplica of a PostgreSQL instance, in the source's region or in another
  one (called there with ``SourceDBInstanceIdentifier`` = the source's ARN), makes a hot standby of the source's
  PostgreSQL (``PgCluster.create_standby``) on its own port, ``creating`` until it streams and at least the
  ``replica`` duration has passed. Writes on it fail with SQLSTATE 25006. The replica lives in its own region
  (endpoint, events, describe); the source lists it in ReadReplicaDBInstanceIdentifiers (by ARN across regions).
  As on AWS: the source must be ``available`` with automated backups; an encrypted source needs ``KmsKeyId`` of the
  replica's region across regions (same region: the source's key); a cross-region replica without
  ``DBParameterGroupName`` gets the default group; a replica has no automated backups (retention 0), no Multi-AZ and
  no deletion protection unless asked. StatusInfos shows "read replication" replicating (error when its standby
  does not stream). Deleting a replica stops its standby and drops its replication slot on the source. An instance
  with read replicas cannot be stopped (nor can a replica, as moto already has it).
- ``promote_read_replica``: PromoteReadReplica promotes the standby for real: ``modifying`` while the lab promotes it
  (at least the ``promote`` duration), then ``available``, a stand-alone instance (source's list updated) with
  automated backups (BackupRetentionPeriod, default 1) and the event "Promoted Read Replica to a stand-alone database
  instance". Just after the request the standby stops following and applies all it received; the writes it had not
  received (cut off by ``pause_replay``, or on their way) are gone; the lab counts them from real rows and records the
  promotion in ``LabControl.replication_log()`` (requested_at, writable_at, lag at the request, lost_rows, lost_total).
- ``replica_lag_metric``: ``ReplicaLag`` (AWS/RDS, DBInstanceIdentifier, Seconds) of each replica, in the replica's
  region, from its standby's replay position (``replica_lag_datapoints``, a sampler of the metrics publisher).
- Deleting a source with replicas promotes each of them (AWS does the same), with lost_total None in the log.

Control routes (server.py FIDELITY_ROUTES, through fidelity/control.py): ``replication_log``, ``pause_replay``,
``resume_replay`` (also ends a delay),
``delay_replay``, ``replication_status``; {identifier, region (us-east-1), kind ("cluster": a global database's
secondary, through global_clusters.secondary_pg)}.
"""

from __future__ import annotations

import threading
import time

from moto.core.utils import utcnow
from moto.rds import responses as rds_responses
from moto.rds.exceptions import (
    DBInstanceAlreadyExists,
    DBInstanceNotFoundError,
    DBSubnetGroupNotFoundError,
    InvalidParameterCombination,
    RDSClientError,
)
from moto.rds.models import DBInstance, RDSBackend, rds_backends

from tests.lab.fidelity import parameters
from tests.lab.fidelity._support import (
    REQUEST_REGION,
    begin_phase,
    current_status,
    instance_event,
    instance_key,
    lab,
    member_key,
    pg_name,
    pg_of_instance,
    replace,
    report_clamps,
)

ACCOUNT = "123456789012"
LAB_REGIONS = ("us-east-1", "us-west-2")
PROMOTED_EVENT = "Promoted Read Replica to a stand-alone database instance"
RESUMED_EVENT = "Replication for the Read Replica resumed."

_LOG_LOCK = threading.Lock()
_LOG: list[dict] = []
_LOG_GENERATION = [None]


def _pg_module():
    from tests.lab import postgres
    return postgres


# --------------------------------------------------------------------------------------------------------------
# the replication log (LabControl.replication_log)

def record(state, entry: dict) -> dict:
    """Append an entry to the lab's replication log (promotions; global switchovers and failovers)."""
    with _LOG_LOCK:
        if _LOG_GENERATION[0] != state.generation:
            _LOG.clear()
            _LOG_GENERATION[0] = state.generation
        _LOG.append(entry)
    return entry


def entries(state) -> list[dict]:
    with _LOG_LOCK:
        return [dict(entry) for entry in _LOG] if _LOG_GENERATION[0] == state.generation else []


# --------------------------------------------------------------------------------------------------------------
# regions_side_by_side

def regions_side_by_side() -> None:
    original = rds_responses.RDSResponse.call_action

    def call_action(self):
        token = REQUEST_REGION.set(self.region)
        try:
            return original(self)
        finally:
            REQUEST_REGION.reset(token)

    replace(rds_responses.RDSResponse, "call_action", call_action)


# --------------------------------------------------------------------------------------------------------------
# read_replicas_stream

def read_replicas_stream() -> None:
    replace(RDSBackend, "create_db_instance_read_replica",
            _create_read_replica(RDSBackend.create_db_instance_read_replica))
    replace(RDSBackend, "delete_db_instance", _delete_db_instance(RDSBackend.delete_db_instance))
    replace(DBInstance, "remove_replica", _remove_replica)
    replace(DBInstance, "status_infos", property(_status_infos))
    replace(RDSBackend, "stop_db_instance", _refuse_stop_with_replicas(RDSBackend.stop_db_instance))


def _is_arn(identifier: str) -> bool:
    return identifier.startswith("arn:")


def _source_of(replica) -> DBInstance | None:
    """The replica's source instance, wherever it lives, or None when it is gone."""
    source_id = replica.source_db_instance_identifier
    if not source_id:
        return None
    try:
        return replica.backend.find_db_from_id(source_id)
    except DBInstanceNotFoundError:
        return None


def _remove_replica(self, replica) -> None:
    """moto lists a cross-region replica by ARN but removes it by identifier: accept both."""
    for entry in (replica.db_instance_identifier, replica.db_instance_arn):
        if entry in self.replicas:
            self.replicas.remove(entry)


def _create_read_replica(original):
    def create_db_instance_read_replica(self: RDSBackend, db_kwargs: dict) -> DBInstance:
        identifier = db_kwargs["db_instance_identifier"]
        source_id = db_kwargs["source_db_instance_identifier"]
        if identifier in self.databases:
            raise DBInstanceAlreadyExists()
        self._validate_db_identifier(identifier)
        source = self.find_db_from_id(source_id)
        if source.engine != "postgres":
            return original(self, db_kwargs)
        cross_region = source.backend.region_name != self.region_name
        source_status = current_status(source, "db", source.db_instance_identifier)
        if source_status != "available":
            raise RDSClientError("InvalidDBInstanceState",
                                 f"DB instance {source.db_instance_identifier} is not in the available state "
                                 f"(it is {source_status}): a read replica can only be created from an available "
                                 "instance.")
        if not source.backup_retention_period:
            raise RDSClientError("InvalidDBInstanceState",
                                 "Automated backups are not enabled for this database instance. To enable automated "
                                 "backups, use ModifyDBInstance to set the backup retention period to a non-zero "
                                 "value.")
        source_pg = pg_of_instance(source)
        if source_pg is None or not source_pg.is_running():
            raise RDSClientError("InvalidDBInstanceState",
                                 f"DB instance {source.db_instance_identifier} has no running PostgreSQL to replicate.")
        kms_key_id = _replica_kms_key(self, source, db_kwargs.get("kms_key_id"), cross_region)
        group_name = db_kwargs.get("db_parameter_group_name")
        if group_name:
            parameters.group_by_name(self, group_name)  # DBParameterGroupNotFound in the replica's region
        subnet_group = None
        if db_kwargs.get("db_subnet_group_name"):
            subnet_group = self.subnet_groups.get(db_kwargs["db_subnet_group_name"])
            if subnet_group is None:
                raise DBSubnetGroupNotFoundError(db_kwargs["db_subnet_group_name"])

        replica = original(self, dict(db_kwargs, kms_key_id=None))
        for key, value in list(replica.__dict__.items()):  # moto's replica is a shallow copy of its source
            if key.startswith("_lab_"):
                del replica.__dict__[key]
            elif isinstance(value, list):
                replica.__dict__[key] = list(value)
        region = self.region_name
        replica.created = replica.instance_create_time = utcnow()
        replica.tags = list(db_kwargs.get("tags") or [])
        replica.multi_az = bool(db_kwargs.get("multi_az"))
        replica.availability_zone = db_kwargs.get("availability_zone") or f"{region}a"
        replica.secondary_availability_zone = (f"{region}b" if replica.availability_zone != f"{region}b"
                                               else f"{region}a") if replica.multi_az else None
        replica.deletion_protection = bool(db_kwargs.get("deletion_protection"))
        replica.backup_retention_period = 0
        replica.storage_encrypted, replica.kms_key_id = bool(kms_key_id), kms_key_id
        if cross_region:
            replica.db_parameter_group_name = group_name or None
            if subnet_group is None:
                from tests.lab.fidelity.instance_fields import _default_subnet_group
                subnet_group = _default_subnet_group(replica)
        if subnet_group is not None:
            replica.db_subnet_group = subnet_group
        _start_standby(self, replica, source_pg)
        return replica

    create_db_instance_read_replica.__name__ = original.__name__
    return create_db_instance_read_replica


def _replica_kms_key(backend: RDSBackend, source, kms_key_id: str | None, cross_region: bool) -> str | None:
    """The replica's key: the source's in its region; across regions the given key of the replica's region."""
    if not source.storage_encrypted:
        if kms_key_id:
            raise InvalidParameterCombination(
                f"Cannot create an encrypted read replica of the unencrypted DB instance "
                f"{source.db_instance_identifier}: omit KmsKeyId, or encrypt the source first.")
        return None
    if not cross_region:
        return source.kms_key_id
    if not kms_key_id:
        raise InvalidParameterCombination(
            f"KmsKeyId is required to create a cross-region read replica of the encrypted DB instance "
            f"{source.db_instance_identifier}: give a KMS key of {backend.region_name}.")
    from tests.lab.fidelity.snapshot_copy import _validated_key
    return _validated_key(backend, kms_key_id)


def _start_standby(backend: RDSBackend, replica: DBInstance, source_pg) -> None:
    """Build the replica's standby in a job; the replica is ``creating`` until it streams."""
    state = lab()
    generation = state.generation
    identifier = replica.db_instance_identifier
    key = instance_key(identifier, backend.region_name)
    settings = parameters.settings_for_instance(replica)
    postgres = _pg_module()
    port = postgres.free_port()
    name = pg_name("db", identifier)
    replica.port = port

    def build():
        try:
            pg = postgres.PgCluster.create_standby(state.root, name, source_pg, settings=settings, port=port)
        except Exception:
            with state.lock:
                if state.generation == generation and backend.databases.get(identifier) is replica:
                    replica.__dict__["_lab_base_status"] = "failed"
                    instance_event(replica, "Read replica creation failed.", ["read replica"])
            raise
        with state.lock:
            alive = state.generation == generation and backend.databases.get(identifier) is replica
            if alive:
                state.set_pg(key, pg)
                report_clamps(key, (pg.start_result or {}).get("clamped"), replica)
                instance_event(replica, RESUMED_EVENT, ["read replica"])
        if not alive:  # deleted (or the lab reset) while it was being made
            pg.destroy()

    replica.__dict__["_lab_started_at"] = time.time()
    instance_event(replica, "DB instance created", ["creation"])
    job = state.run_job(f"replica-{identifier}", build)
    begin_phase(replica, "creating", state.timing.seconds("replica"), job=job)


def _delete_db_instance(original):
    def delete_db_instance(self: RDSBackend, db_instance_identifier: str, *args, **kwargs) -> DBInstance:
        database = self.databases.get(db_instance_identifier)
        if database is not None and database.is_replica and _source_of(database) is None:
            database.is_replica = False  # its source is gone: nothing to detach from
        deleted = original(self, db_instance_identifier, *args, **kwargs)
        # A source deleted with its replicas: each replica is promoted to a stand-alone instance (as on AWS).
        for reference in list(database.replicas if database is not None else []):
            try:
                replica = self.find_db_from_id(reference)
            except DBInstanceNotFoundError:
                continue
            pg = lab().pg_for(instance_key(replica.db_instance_identifier, replica.backend.region_name))
            if pg is not None and pg.upstream:
                pg.source = None  # gone with the source: the lost writes cannot be counted
                _start_promotion(replica, pg, kind="promote")
        return deleted

    delete_db_instance.__name__ = "delete_db_instance"
    return delete_db_instance


def _refuse_stop_with_replicas(original):
    def stop_db_instance(self: RDSBackend, db_instance_identifier: str, *args, **kwargs) -> DBInstance:
        database = self.databases.get(db_instance_identifier)
        if database is not None and database.replicas:
            raise RDSClientError("InvalidDBInstanceState",
                                 f"Cannot stop DB instance {db_instance_identifier}: it has read replicas. Delete or "
                                 "promote them first.")
        return original(self, db_instance_identifier, *args, **kwargs)

    stop_db_instance.__name__ = "stop_db_instance"
    return stop_db_instance


def _status_infos(self) -> list[dict] | None:
    if not self.is_replica:
        return None
    status, normal = "replicating", True
    pg = lab().pg_for(instance_key(self.db_instance_identifier, self.backend.region_name))
    if pg is not None and pg.upstream and not pg.replay_paused:  # a replay fault is lag, not a replication error
        try:
            streaming = pg.admin_query("SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'")[0][0]
        except Exception:  # down for a reboot: not an error of replication
            streaming = 1
        if not streaming:
            status, normal = "error", False
    return [{"StatusType": "read replication", "Normal": normal, "Status": status}]


# --------------------------------------------------------------------------------------------------------------
# promote_read_replica

def promote_read_replica() -> None:
    replace(RDSBackend, "promote_read_replica", _promote_read_replica)


def _promote_read_replica(self: RDSBackend, db_kwargs: dict) -> DBInstance:
    identifier = db_kwargs["db_instance_identifier"]
    database = self.describe_db_instances(identifier)[0]
    if not database.is_replica:
        raise RDSClientError("InvalidDBInstanceState", f"DB Instance {identifier} is not a read replica.")
    status = current_status(database, "db", database.db_instance_identifier)
    if status != "available":
        raise RDSClientError("InvalidDBInstanceState",
                             f"DB instance {identifier} is not in the available state (it is {status}).")
    pg = pg_of_instance(database)
    if pg is None or not pg.upstream:
        raise RDSClientError("InvalidDBInstanceState", f"DB instance {identifier} has no standby to promote.")
    retention = db_kwargs.get("backup_retention_period")
    database.backup_retention_period = 1 if retention is None else int(retention)
    if db_kwargs.get("preferred_backup_window"):
        database.preferred_backup_window = db_kwargs["preferred_backup_window"]
    _start_promotion(database, pg, kind="promote")
    return database


def _start_promotion(database: DBInstance, pg, kind: str) -> None:
    """Promote the replica's standby in a job (``modifying`` meanwhile) and record it in the replication log."""
    state = lab()
    generation = state.generation
    requested_at = time.time()
    hold = state.timing.seconds("promote")
    region = database.backend.region_name
    source_ref = database.source_db_instance_identifier

    def work():
        result = pg.promote(hold_seconds=hold)
        with state.lock:
            if state.generation != generation:
                return
            source = _source_of(database)
            if source is not None:
                source.remove_replica(database)
            database.is_replica = False
            database.source_db_instance_identifier = None
            instance_event(database, PROMOTED_EVENT, ["read replica"])
            if database.backup_retention_period:
                database.save_automated_backup()
            record(state, {
                "kind": kind, "identifier": database.db_instance_identifier, "region": region, "source": source_ref,
                "requested_at": requested_at, "writable_at": result["writable_at"],
                "stopped_following_at": result["stopped_following_at"],
                "lag_seconds_at_request": result["lag_seconds_at_request"],
                "lag_bytes_at_request": result["lag_bytes_at_request"],
                "lost_rows": result["lost_rows"], "lost_total": result["lost_total"], "completed_at": time.time()})

    job = state.run_job(f"promote-{database.db_instance_identifier}", work)
    begin_phase(database, "modifying", 0.0, job=job)


# --------------------------------------------------------------------------------------------------------------
# replica_lag_metric

def replica_lag_metric() -> None:
    from tests.lab.fidelity import metrics
    metrics.register_sampler("replica_lag", replica_lag_samples)


def replica_lag_samples(now: float) -> list:
    from tests.lab.fidelity.metrics import Datapoint
    return [Datapoint(*point) for point in replica_lag_datapoints(now)]


def _regional_backends():
    account = rds_backends[ACCOUNT]
    for region in LAB_REGIONS:
        yield region, account[region]


def replica_lag_datapoints(now: float) -> list[tuple[str, str, str, dict, float, str]]:
    """(region, namespace, metric, dimensions, value, unit) of ReplicaLag for every replica whose standby streams,
    measured now from its replay position (``PgCluster.replay_lag_seconds``)."""
    state = lab()
    points = []
    for region, backend in _regional_backends():
        for database in list(backend.databases.values()):
            if not database.is_replica:
                continue
            pg = state.pg_for(instance_key(database.db_instance_identifier, region))
            if pg is None or not pg.upstream:
                continue
            try:
                lag = pg.replay_lag_seconds()
            except Exception:  # restarting, or being deleted: no sample this time
                continue
            if lag is not None:
                points.append((region, "AWS/RDS", "ReplicaLag",
                               {"DBInstanceIdentifier": database.db_instance_identifier}, round(lag, 3), "Seconds"))
    return points


# --------------------------------------------------------------------------------------------------------------
# control routes

def _replica_pg(state, payload: dict):
    identifier = (payload.get("identifier") or "").lower()
    if not identifier:
        raise ValueError("identifier is required")
    region = payload.get("region") or "us-east-1"
    if payload.get("kind") == "cluster":
        from tests.lab.fidelity import global_clusters
        pg = global_clusters.secondary_pg(identifier, region)
    else:
        database = rds_backends[ACCOUNT][region].databases.get(identifier)
        if database is None:
            raise LookupError(f"no DB instance {identifier!r} in {region}")
        # A read replica, or an Aurora reader (its own standby; the writer has none).
        pg = state.pg_for(instance_key(identifier, region)) or state.pg_for(member_key(identifier, region))
    if pg is None or not pg.upstream:
        raise LookupError(f"{identifier!r} in {region} is not a streaming standby (a read replica still creating, "
                          "or promoted)")
    return pg


def control(state, route: str, method: str, payload: dict) -> dict:
    """The control routes of this module (see the module docstring)."""
    if route == "replication_log":
        return {"replication_log": entries(state)}
    pg = _replica_pg(state, payload)
    if route == "pause_replay":
        pg.pause_replay()
    elif route == "resume_replay":
        pg.set_replay_delay(0)
        pg.resume_replay()
    elif route == "delay_replay":
        pg.set_replay_delay(float(payload.get("seconds", 0)))
    elif route != "replication_status":
        raise KeyError(f"no control route /_lab/{route}")
    return {"identifier": payload["identifier"], "region": payload.get("region") or "us-east-1",
            **pg.replication_status()}
