# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Snapshots that hold data, real point-in-time restore, and deletion as AWS does it."""

from __future__ import annotations

import copy
import itertools
import pathlib
import shutil
import subprocess
import time
from datetime import datetime, timezone

from moto.rds import responses as rds_responses
from moto.rds.exceptions import (
    DBClusterNotFoundError,
    DBClusterToBeDeletedHasActiveMembers,
    DBInstanceNotFoundError,
    InvalidParameterCombination,
    InvalidParameterValue,
    RDSClientError,
)
from moto.rds.models import DBCluster, DBClusterSnapshot, DBInstance, DBSnapshot, RDSBackend

from tests.lab.fidelity._support import (
    Phase,
    begin_phase,
    cluster_event,
    cluster_key,
    current_status,
    instance_event,
    instance_key,
    lab,
    member_key,
    pg_of_instance,
    replace,
)

_BACKUPS = itertools.count(1)
# Model attributes a restore must not inherit from the source (moto copies the whole __dict__).
_NOT_INHERITED = {"backend", "db_parameter_group_name", "vpc_security_group_ids", "max_allocated_storage",
                  "availability_zone", "secondary_availability_zone", "port", "db_subnet_group", "tags", "created",
                  "instance_create_time", "dbi_resource_id", "status", "replicas", "is_replica",
                  "source_db_instance_identifier", "deletion_protection", "master_user_secret",
                  "manage_master_user_password"}


def _pg():
    from tests.lab import postgres
    return postgres


def _take_backup(pg, label: str) -> dict | None:
    if pg is None or not pg.is_running():
        return None
    dest = lab().snapshots_root / f"{label}-{next(_BACKUPS)}"
    return pg.base_backup(dest)


def _initial_backup(pg) -> dict | None:
    """The base backup PgCluster took when it was created: what the automated snapshot at creation holds."""
    if pg is None or not pg.base_backup_dir.exists():
        return None
    return {"path": str(pg.base_backup_dir), "source": pg.name, "taken_at": pg.base_backup_at, "initial": True}


def _keep_backup(snapshot) -> None:
    """Copy a snapshot's backup out of its cluster's folder before that folder goes."""
    backup = snapshot.__dict__.get("_lab_backup")
    if not backup or str(lab().snapshots_root) in backup["path"]:
        return
    dest = lab().snapshots_root / f"retained-{next(_BACKUPS)}"
    subprocess.run(["cp", "-a", backup["path"], str(dest)], check=True)
    snapshot.__dict__["_lab_backup"] = dict(backup, path=str(dest))


def _drop_backup(snapshot, others) -> None:
    backup = snapshot.__dict__.get("_lab_backup")
    if not backup or not backup["path"].startswith(str(lab().snapshots_root)):
        return
    if any(other.__dict__.get("_lab_backup", {}).get("path") == backup["path"] for other in others
           if other is not snapshot):
        return
    shutil.rmtree(backup["path"], ignore_errors=True)


def _is_true(value) -> bool:
    return str(value).lower() in ("true", "1")


def _as_datetime(value) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _restored_props(source: dict, overrides: dict) -> dict:
    props = {}
    for key, value in source.items():
        key = key[1:] if key.startswith("_") else key
        if key.startswith("lab_") or key in _NOT_INHERITED:
            continue
        props[key] = copy.copy(value)
    for key, value in overrides.items():
        if value is not None:
            props[key] = value
    return props


# --------------------------------------------------------------------------------------------------------------
# snapshots_hold_data

def snapshots_hold_data() -> None:
    """create_db_snapshot (and the automated snapshot at creation) take a real base backup; restores start a
    PostgreSQL holding exactly that data; the same for Aurora cluster snapshots."""

    def snapshot_status(self):
        return current_status(self, "snapshot", self.__dict__.get("_db_snapshot_identifier", ""))

    def cluster_snapshot_status(self):
        return current_status(self, "cluster-snapshot", self.__dict__.get("_db_cluster_snapshot_identifier", ""))

    def set_status(self, value):
        self.__dict__["_lab_base_status"] = value

    replace(DBSnapshot, "status", property(snapshot_status, set_status))
    replace(DBClusterSnapshot, "status", property(cluster_snapshot_status, set_status))
    replace(RDSBackend, "create_db_snapshot", _create_db_snapshot(RDSBackend.create_db_snapshot))
    replace(RDSBackend, "create_db_cluster_snapshot",
            _create_db_cluster_snapshot(RDSBackend.create_db_cluster_snapshot))
    replace(RDSBackend, "copy_db_snapshot", _copy_keeps_backup(RDSBackend.copy_db_snapshot, "database_snapshots"))
    replace(RDSBackend, "copy_db_cluster_snapshot",
            _copy_keeps_backup(RDSBackend.copy_db_cluster_snapshot, "cluster_snapshots"))
    replace(RDSBackend, "delete_db_snapshot", _delete_snapshot(RDSBackend.delete_db_snapshot, "database_snapshots"))
    replace(RDSBackend, "delete_db_cluster_snapshot",
            _delete_snapshot(RDSBackend.delete_db_cluster_snapshot, "cluster_snapshots"))
    replace(RDSBackend, "restore_db_instance_from_db_snapshot", restore_db_instance_from_db_snapshot)
    replace(RDSBackend, "restore_db_cluster_from_snapshot", restore_db_cluster_from_snapshot)


def _create_db_snapshot(original):
    def create_db_snapshot(self, db_instance_identifier, db_snapshot_identifier, snapshot_type="manual", tags=None,
                           original_created_at=None, kms_key_id=None):
        database = self.databases.get(db_instance_identifier)
        if database is None:
            raise DBInstanceNotFoundError(db_instance_identifier)
        if snapshot_type == "manual":
            if database.db_cluster_identifier:
                raise InvalidParameterValue("The specified instance is a member of a cluster and a snapshot cannot be "
                                            "created directly. Please use the CreateDBClusterSnapshot API instead.")
            status = current_status(database, "db", database.db_instance_identifier)
            if status not in ("available", "backing-up", "deleting"):
                raise RDSClientError("InvalidDBInstanceState",
                                     f"Cannot create a snapshot because the database instance "
                                     f"{db_instance_identifier} is not currently in the available state.")
        snapshot = original(self, db_instance_identifier, db_snapshot_identifier, snapshot_type, tags,
                            original_created_at, kms_key_id)
        if snapshot_type == "automated":
            backup = _initial_backup(pg_of_instance(database))
        else:
            backup = _take_backup(pg_of_instance(database), f"db-{db_snapshot_identifier.replace(':', '-')}")
        if backup:
            snapshot.__dict__["_lab_backup"] = backup
        if snapshot_type == "manual":
            snapshot.add_event("DB_SNAPSHOT_CREATE_MANUAL_START")
            begin_phase(snapshot, "creating", lab().timing.seconds("snapshot"))
            snapshot.add_event("DB_SNAPSHOT_CREATE_MANUAL_FINISH")
        return snapshot

    return create_db_snapshot


def _create_db_cluster_snapshot(original):
    def create_db_cluster_snapshot(self, db_cluster_identifier, db_cluster_snapshot_identifier,
                                   snapshot_type="manual", tags=None):
        snapshot = original(self, db_cluster_identifier, db_cluster_snapshot_identifier, snapshot_type, tags)
        pg = lab().pg_for(cluster_key(db_cluster_identifier))
        if snapshot_type == "automated":
            backup = _initial_backup(pg)
        else:
            backup = _take_backup(pg, f"cluster-{db_cluster_snapshot_identifier.replace(':', '-')}")
        if backup:
            snapshot.__dict__["_lab_backup"] = backup
        if snapshot_type == "manual":
            begin_phase(snapshot, "creating", lab().timing.seconds("snapshot"))
        return snapshot

    return create_db_cluster_snapshot


def _copy_keeps_backup(original, store: str):
    def copy_snapshot(self, source_identifier, target_identifier, *args, **kwargs):
        target = original(self, source_identifier, target_identifier, *args, **kwargs)
        name = source_identifier.split(":")[-1] if source_identifier.startswith("arn:") else source_identifier
        source = getattr(self, store).get(name)
        if source is not None and source.__dict__.get("_lab_backup"):
            target.__dict__["_lab_backup"] = source.__dict__["_lab_backup"]
        return target

    copy_snapshot.__name__ = original.__name__
    return copy_snapshot


def _delete_snapshot(original, store: str):
    def delete_snapshot(self, identifier):
        snapshot = original(self, identifier)
        _drop_backup(snapshot, list(getattr(self, store).values()))
        return snapshot

    delete_snapshot.__name__ = original.__name__
    return delete_snapshot


def _from_backup_factory(backup: dict | None):
    if not backup:
        return None

    def factory(name, settings):
        return _pg().PgCluster.from_backup(lab().root, name, pathlib.Path(backup["path"]), settings)

    return factory


def restore_db_instance_from_db_snapshot(self: RDSBackend, from_snapshot_id: str, overrides: dict) -> DBInstance:
    if from_snapshot_id.startswith("arn:"):
        from_snapshot_id = self.extract_snapshot_name_from_arn(from_snapshot_id)
    snapshot = self.describe_db_snapshots(db_instance_identifier=None, db_snapshot_identifier=from_snapshot_id)[0]
    if snapshot.status != "available":
        raise RDSClientError("InvalidDBSnapshotState", f"Snapshot {from_snapshot_id} is not available.")
    if overrides["db_instance_identifier"] in self.databases:
        from moto.rds.exceptions import DBInstanceAlreadyExists
        raise DBInstanceAlreadyExists()
    original = snapshot.database
    if "allocated_storage" in overrides and overrides["allocated_storage"] < snapshot.allocated_storage:
        raise InvalidParameterValue("The allocated storage size can't be less than the source snapshot or backup "
                                    "size.")
    props = _restored_props(original.__dict__, {k: v for k, v in overrides.items() if k != "tags"})
    props["kms_key_id"] = snapshot.kms_key_id
    props["storage_encrypted"] = snapshot.encrypted
    if not original.option_group_supplied and "option_group_name" not in overrides:
        props.pop("option_group_name", None)
    props["tags"] = overrides.get("tags") or list(snapshot.tags or [])
    props.pop("db_snapshot_identifier", None)
    return self.create_db_instance(props, pg_factory=_from_backup_factory(snapshot.__dict__.get("_lab_backup")),
                                   creating_seconds=lab().timing.seconds("restore"))


def restore_db_cluster_from_snapshot(self: RDSBackend, from_snapshot_id: str, overrides: dict) -> DBCluster:
    snapshot = self.describe_db_cluster_snapshots(db_cluster_identifier=None,
                                                  db_snapshot_identifier=from_snapshot_id)[0]
    props = _restored_props(snapshot.cluster.get_cfg(), {})
    for key in ("vpc_security_group_ids", "parameter_group", "url_identifier", "hosted_zone_id",
                "db_cluster_resource_id", "read_replica_identifiers", "is_writer", "cluster_create_time",
                "earliest_restorable_time", "associated_roles"):
        props.pop(key, None)
    for key, value in overrides.items():
        if value is not None:
            props[key] = value
    props["tags"] = overrides.get("tags") or list(snapshot.tags or [])
    return self.create_db_cluster(props, pg_factory=_from_backup_factory(snapshot.__dict__.get("_lab_backup")),
                                  creating_seconds=lab().timing.seconds("restore"))


# --------------------------------------------------------------------------------------------------------------
# point_in_time_restore

def point_in_time_restore() -> None:
    """LatestRestorableTime comes from the WAL archive; restores to a point in time replay it for real."""

    def latest_restorable_time(self):
        pg = pg_of_instance(self) if isinstance(self, DBInstance) else lab().pg_for(
            cluster_key(self.db_cluster_identifier))
        cached = self.__dict__.get("_lab_latest_restorable")
        if pg is None:
            return cached or datetime.now(timezone.utc)
        try:
            value = pg.latest_restorable_time()
        except Exception:  # down for an outage or failover: the archive still holds what it held
            return cached or datetime.now(timezone.utc)
        self.__dict__["_lab_latest_restorable"] = value
        return value

    replace(DBInstance, "latest_restorable_time", property(latest_restorable_time))
    replace(DBCluster, "latest_restorable_time", property(latest_restorable_time))
    replace(RDSBackend, "restore_db_instance_to_point_in_time", restore_db_instance_to_point_in_time)
    replace(RDSBackend, "restore_db_cluster_to_point_in_time", restore_db_cluster_to_point_in_time)


def _target_time(pg, resource, restore_time, use_latest) -> datetime:
    if restore_time is not None and _is_true(use_latest):
        raise InvalidParameterCombination("Cannot specify both RestoreTime and UseLatestRestorableTime")
    if pg is None:
        raise RDSClientError("InvalidDBInstanceState", "The source has no PostgreSQL to restore from in the lab.")
    latest = pg.latest_restorable_time()
    if restore_time is None:
        if not _is_true(use_latest):
            raise InvalidParameterCombination("Specify RestoreTime or UseLatestRestorableTime")
        return latest
    target = _as_datetime(restore_time)
    earliest = pg.earliest_restorable_time()
    if target > latest or (earliest is not None and target < earliest):
        raise InvalidParameterValue(
            f"The restore time {target.isoformat()} is outside the restorable window "
            f"({earliest.isoformat() if earliest else '?'} to {latest.isoformat()}).")
    return target


def _pitr_factory(source_pg, target: datetime):
    def factory(name, settings):
        return _pg().PgCluster.restore_to_time(lab().root, name, source_pg, target, settings)

    return factory


def restore_db_instance_to_point_in_time(self: RDSBackend, source_db_identifier: str, target_db_identifier: str,
                                         overrides: dict) -> DBInstance:
    source = self.describe_db_instances(db_instance_identifier=source_db_identifier)[0]
    if target_db_identifier in self.databases:
        from moto.rds.exceptions import DBInstanceAlreadyExists
        raise DBInstanceAlreadyExists()
    pg = pg_of_instance(source)
    target = _target_time(pg, source, overrides.get("restore_time"), overrides.get("use_latest_restorable_time"))
    if "allocated_storage" in overrides and overrides["allocated_storage"] < source.allocated_storage:
        raise InvalidParameterValue("Allocated storage size can't be less than the source instance size.")
    skip = {"restore_time", "use_latest_restorable_time", "source_db_instance_identifier",
            "target_db_instance_identifier", "tags"}
    props = _restored_props(source.__dict__, {k: v for k, v in overrides.items() if k not in skip})
    if not source.option_group_supplied and "option_group_name" not in overrides:
        props.pop("option_group_name", None)
    props["db_instance_identifier"] = target_db_identifier
    props["tags"] = overrides.get("tags") or []
    database = self.create_db_instance(props, pg_factory=_pitr_factory(pg, target),
                                       creating_seconds=lab().timing.seconds("restore"))
    database.__dict__["_lab_restored_to"] = target.isoformat()
    return database


def restore_db_cluster_to_point_in_time(self: RDSBackend, db_cluster_identifier: str,
                                        source_db_cluster_identifier: str, restore_type: str = "full-copy",
                                        restore_to_time=None, use_latest_restorable_time=False,
                                        **overrides) -> DBCluster:
    if restore_to_time is not None and restore_type == "copy-on-write":
        raise InvalidParameterCombination("RestoreToTime cannot be specified when RestoreType is copy-on-write")
    source = self.describe_db_clusters(db_cluster_identifier=source_db_cluster_identifier)[0]
    pg = lab().pg_for(cluster_key(source.db_cluster_identifier))
    target = _target_time(pg, source, restore_to_time, use_latest_restorable_time)
    props = _restored_props(source.get_cfg(), {})
    for key in ("vpc_security_group_ids", "url_identifier", "hosted_zone_id", "db_cluster_resource_id",
                "read_replica_identifiers", "is_writer", "cluster_create_time", "earliest_restorable_time",
                "associated_roles", "parameter_group"):
        props.pop(key, None)
    for key, value in overrides.items():
        if value is not None:
            props[key] = value
    props["db_cluster_identifier"] = db_cluster_identifier
    props["tags"] = overrides.get("tags") or []
    return self.create_db_cluster(props, pg_factory=_pitr_factory(pg, target),
                                  creating_seconds=lab().timing.seconds("restore"))


# --------------------------------------------------------------------------------------------------------------
# deletion_rules

def deletion_rules() -> None:
    """DeletionProtection blocks deletes; SkipFinalSnapshot / FinalDBSnapshotIdentifier behave as on AWS; the
    PostgreSQL and its files are removed."""
    replace(RDSBackend, "delete_db_instance", delete_db_instance)
    replace(RDSBackend, "delete_db_cluster", delete_db_cluster)
    replace(rds_responses.RDSResponse, "delete_db_cluster", _delete_db_cluster_response)


def _final_snapshot_rules(final_id, skip) -> None:
    if not _is_true(skip) and not final_id:
        raise InvalidParameterCombination("FinalDBSnapshotIdentifier is required unless SkipFinalSnapshot is "
                                          "specified.")
    if _is_true(skip) and final_id:
        raise InvalidParameterCombination("Cannot specify both SkipFinalSnapshot and FinalDBSnapshotIdentifier.")


def _finish_delete(key: str, remove, seconds: float) -> None:
    """Remove the resource and its PostgreSQL now, or after ``seconds`` of "deleting"."""
    state = lab()
    if seconds <= 0:
        remove()
        state.drop_pg(key)
        return
    generation = state.generation

    def later():
        time.sleep(seconds)
        with state.lock:
            if state.generation != generation:
                return
            remove()
        state.drop_pg(key)

    return state.run_job(f"delete-{key}", later)


def delete_db_instance(self: RDSBackend, db_instance_identifier: str, final_db_snapshot_identifier=None,
                       skip_final_snapshot=False, delete_automated_backups=True) -> DBInstance:
    self._validate_db_identifier(db_instance_identifier)
    if db_instance_identifier not in self.databases:
        raise DBInstanceNotFoundError(db_instance_identifier)
    database = self.databases[db_instance_identifier]
    identifier = database.db_instance_identifier
    if current_status(database, "db", identifier) == "deleting":
        raise RDSClientError("InvalidDBInstanceState", f"Instance {identifier} is already being deleted.")
    if database.deletion_protection:
        raise InvalidParameterCombination(
            "Cannot delete protected DB Instance, please disable deletion protection and try again.")
    clustered = bool(database.db_cluster_identifier)
    if not clustered:
        _final_snapshot_rules(final_db_snapshot_identifier, skip_final_snapshot)
        if final_db_snapshot_identifier:
            self.create_db_snapshot(identifier, final_db_snapshot_identifier, snapshot_type="manual")
    if database.manage_master_user_password:
        database.master_user_secret.delete_secret()
    if database.is_replica:
        primary = self.find_db_from_id(database.source_db_instance_identifier)
        primary.remove_replica(database)
    automated = [s for s in self.database_snapshots.values()
                 if s.snapshot_type == "automated" and s.db_instance_identifier == identifier]
    if delete_automated_backups is None or _is_true(delete_automated_backups):
        for snapshot in automated:
            self.delete_db_snapshot(snapshot.db_snapshot_identifier)
    else:
        for snapshot in automated:
            _keep_backup(snapshot)
    instance_event(database, "DB instance deleted", ["deletion"])
    seconds = lab().timing.seconds("delete")
    begin_phase(database, "deleting", seconds if seconds > 0 else float("inf"))

    def remove():
        self.databases.pop(identifier, None)
        if clustered:
            cluster = self.clusters.get(database.db_cluster_identifier)
            if cluster is not None and database.is_cluster_writer:
                database.is_cluster_writer = False
                cluster.designate_writer()

    _finish_delete(instance_key(identifier) if not clustered else member_key(identifier), remove, seconds)
    shown = copy.copy(database)
    shown.__dict__["_lab_phases"] = [Phase("deleting", float("inf"))]
    return shown


def _delete_db_cluster_response(self):
    cluster = self.backend.delete_db_cluster(
        cluster_identifier=self.params.get("DBClusterIdentifier"),
        snapshot_name=self.params.get("FinalDBSnapshotIdentifier"),
        skip_final_snapshot=self.params.get("SkipFinalSnapshot", False))
    return rds_responses.ActionResult({"DBCluster": cluster})


def delete_db_cluster(self: RDSBackend, cluster_identifier: str, snapshot_name=None,
                      skip_final_snapshot=False) -> DBCluster:
    if cluster_identifier not in self.clusters:
        raise DBClusterNotFoundError(cluster_identifier)
    cluster = self.clusters[cluster_identifier]
    identifier = cluster.db_cluster_identifier
    if cluster.deletion_protection:
        raise InvalidParameterCombination(
            "Cannot delete protected Cluster, please disable deletion protection and try again.")
    if cluster.members:
        raise DBClusterToBeDeletedHasActiveMembers()
    _final_snapshot_rules(snapshot_name, skip_final_snapshot)
    global_id = cluster.global_cluster_identifier or ""
    if global_id in self.global_clusters:
        self.remove_from_global_cluster(global_id, cluster_identifier)
    if cluster.manage_master_user_password:
        cluster.master_user_secret.delete_secret()
    if snapshot_name:
        self.create_db_cluster_snapshot(identifier, snapshot_name)
    for snapshot in [s for s in self.cluster_snapshots.values()
                     if s.snapshot_type == "automated" and s.db_cluster_identifier == identifier]:
        self.delete_db_cluster_snapshot(snapshot.db_cluster_snapshot_identifier)
    cluster_event(cluster, "DB cluster deleted", ["deletion"])
    seconds = lab().timing.seconds("delete")
    begin_phase(cluster, "deleting", seconds if seconds > 0 else float("inf"))
    _finish_delete(cluster_key(identifier), lambda: self.clusters.pop(identifier, None), seconds)
    shown = copy.copy(cluster)
    shown.__dict__["_lab_phases"] = [Phase("deleting", float("inf"))]
    return shown
