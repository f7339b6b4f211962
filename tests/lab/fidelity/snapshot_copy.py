# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Snapshot copies as AWS makes them: encrypted with a KMS key of the target region, across regions, taking time.

- CopyDBSnapshot / CopyDBClusterSnapshot with ``KmsKeyId``: the key must exist in the lab's KMS (moto's kms backend)
  of the region the copy is made in, else ``KMSKeyNotAccessibleFault`` (an unknown alias too); the copy is
  ``Encrypted`` with that key's ARN. Without a key, a copy of an encrypted snapshot keeps the source's key (same
  region); across regions ``KmsKeyId`` is required for an encrypted source (``InvalidParameterValue``).
- Cross-region: a copy asked of us-west-2 with ``SourceDBSnapshotIdentifier`` = the ARN of a us-east-1 snapshot (boto3
  adds ``PreSignedUrl`` from ``SourceRegion``) is made in us-west-2's backend, shows ``SourceRegion`` and
  ``SourceDBSnapshotIdentifier`` (the source ARN; cluster copies: ``SourceDBClusterSnapshotArn``), and has its own
  events there ("Started copy of snapshot ... from region ...", then "Finished copy ...").
- Every copy holds the source's data on its own (hard links of the backup files): restores from it have the rows,
  whatever becomes of the source later.
- A copy takes time: ``creating`` with ``PercentProgress`` rising for the ``snapshot_copy`` duration (default 1 s,
  ``set_timing(snapshot_copy=...)``), then ``available`` with 100. Only an ``available`` source can be copied.
  Deleting a snapshot that is being copied terminates the copies still in progress (AWS: "If the snapshot is being
  copied, the copy operation is terminated"); a snapshot that is not ``available`` cannot be deleted
  (``InvalidDBSnapshotState`` / ``InvalidDBClusterSnapshotStateFault``).
- Control route ``POST /_lab/snapshot_create_time`` {identifier, at (ISO 8601), region, kind "db"|"cluster"} dates a
  snapshot in the past (``SnapshotCreateTime`` and ``OriginalSnapshotCreateTime``), for tests of retention by age;
  ``LabControl.set_snapshot_create_time()`` calls it.
"""

from __future__ import annotations

import itertools
import subprocess
import time
from datetime import datetime, timezone

from moto.rds.exceptions import InvalidParameterValue, KMSKeyNotAccessibleFault, RDSClientError
from moto.rds.models import DBClusterSnapshot, DBSnapshot, RDSBackend, rds_backends

from tests.lab.fidelity._support import add_event, begin_phase, current_status, lab, replace

ACCOUNT = "123456789012"
_COPIES = itertools.count(1)


def snapshot_copy() -> None:
    replace(DBSnapshot, "percent_progress", property(_percent_progress))
    replace(DBClusterSnapshot, "percent_progress", property(_percent_progress, lambda self, value: None))
    replace(RDSBackend, "copy_db_snapshot", _copy(RDSBackend.copy_db_snapshot, _DB))
    replace(RDSBackend, "copy_db_cluster_snapshot", _copy(RDSBackend.copy_db_cluster_snapshot, _CLUSTER))
    replace(RDSBackend, "delete_db_snapshot", _delete(RDSBackend.delete_db_snapshot, _DB))
    replace(RDSBackend, "delete_db_cluster_snapshot", _delete(RDSBackend.delete_db_cluster_snapshot, _CLUSTER))


class _Kind:
    def __init__(self, name, store, status_kind, id_attr, get, event_type, state_error, source_field, params):
        self.name, self.store, self.status_kind, self.id_attr = name, store, status_kind, id_attr
        self.get, self.event_type, self.state_error, self.source_field = get, event_type, state_error, source_field
        self.source_param, self.target_param = params

    def identifier(self, snapshot) -> str:
        return getattr(snapshot, self.id_attr)

    def status(self, snapshot) -> str:
        return current_status(snapshot, self.status_kind, self.identifier(snapshot))


_DB = _Kind("DB snapshot", "database_snapshots", "snapshot", "db_snapshot_identifier", "get_db_snapshot",
            "db-snapshot", "InvalidDBSnapshotState", "source_db_snapshot_identifier",
            ("source_db_snapshot_identifier", "target_db_snapshot_identifier"))
_CLUSTER = _Kind("DB cluster snapshot", "cluster_snapshots", "cluster-snapshot", "db_cluster_snapshot_identifier",
                 "get_db_cluster_snapshot", "db-cluster-snapshot", "InvalidDBClusterSnapshotStateFault",
                 "source_db_cluster_snapshot_arn",
                 ("source_db_cluster_snapshot_identifier", "target_db_cluster_snapshot_identifier"))


def _percent_progress(self) -> int:
    window = self.__dict__.get("_lab_copy_window")
    if not window:
        return 100
    kind = _CLUSTER if isinstance(self, DBClusterSnapshot) else _DB
    if kind.status(self) == "available":
        return 100
    started, until = window
    if until <= started:
        return 99
    return max(0, min(99, int(100 * (time.time() - started) / (until - started))))


def _region_of(identifier: str, default: str) -> str:
    if identifier.startswith("arn:"):
        return identifier.split(":")[3]
    return default


def _validated_key(backend: RDSBackend, kms_key_id: str) -> str:
    """The key's ARN in the backend's region; KMSKeyNotAccessibleFault for anything else (unknown alias too)."""
    try:
        return backend._validate_kms_key(kms_key_id)
    except KMSKeyNotAccessibleFault:
        raise
    except Exception:  # moto fails on an unknown alias with AttributeError: AWS answers KMSKeyNotAccessibleFault
        raise KMSKeyNotAccessibleFault(kms_key_id) from None


def _link_backup(backup: dict | None) -> dict | None:
    """The copy's own files (hard links: instant, and the copy survives the source's deletion)."""
    if not backup:
        return None
    dest = lab().snapshots_root / f"copy-{next(_COPIES)}"
    subprocess.run(["cp", "-al", backup["path"], str(dest)], check=True)
    return dict(backup, path=str(dest), copied_from=backup["path"])


def _copy(original, kind: _Kind):
    def copy_snapshot(self: RDSBackend, *args, **kwargs):
        # moto's response passes every parameter by keyword (source_db_snapshot_identifier, ...); the wrapper of
        # snapshots_hold_data takes the two identifiers by position.
        source_identifier = kwargs.pop(kind.source_param) if kind.source_param in kwargs else args[0]
        target_identifier = kwargs.pop(kind.target_param) if kind.target_param in kwargs else args[1]
        kms_key_id = kwargs.pop("kms_key_id", None)
        source_region = _region_of(source_identifier, self.region_name)
        cross_region = source_region != self.region_name
        source = getattr(self, kind.get)(source_identifier)
        if kind.status(source) != "available":
            raise RDSClientError(kind.state_error,
                                 f"{kind.name} {kind.identifier(source)} is not in the available state.")
        if kms_key_id:
            kms_key_id = _validated_key(self, kms_key_id)
        elif source.encrypted and cross_region:
            raise InvalidParameterValue(
                f"KmsKeyId is required to copy the encrypted {kind.name} {source_identifier} to {self.region_name}: "
                "give a KMS key of the destination region.")
        target = original(self, source_identifier, target_identifier, kms_key_id=kms_key_id or None, **kwargs)
        if kms_key_id:
            target.kms_key_id, target.encrypted, target.storage_encrypted = kms_key_id, True, True
        elif source.encrypted:
            target.kms_key_id, target.encrypted, target.storage_encrypted = source.kms_key_id, True, True
        else:
            target.kms_key_id, target.encrypted, target.storage_encrypted = None, False, False
        if kind is _CLUSTER:
            target.cluster.kms_key_id, target.cluster.storage_encrypted = target.kms_key_id, target.encrypted
            setattr(target, kind.source_field, source.arn)
        if cross_region:
            setattr(target, kind.source_field, source.arn)
            target.source_region = source_region
        backup = _link_backup(source.__dict__.get("_lab_backup"))
        if backup:
            target.__dict__["_lab_backup"] = backup
        else:
            target.__dict__.pop("_lab_backup", None)
        seconds = lab().timing.seconds("snapshot_copy")
        phase = begin_phase(target, "creating", seconds)
        target.__dict__["_lab_copy_window"] = (time.time(), phase.until)
        source.__dict__.setdefault("_lab_copies", []).append((self, kind.identifier(target)))
        name = kind.identifier(source)
        add_event(self, kind.event_type, kind.identifier(target), target.arn,
                  f"Started copy of snapshot {name} from region {source_region}", ["notification"])
        add_event(self, kind.event_type, kind.identifier(target), target.arn,
                  f"Finished copy of snapshot {name} from region {source_region}", ["notification"],
                  date=datetime.fromtimestamp(phase.until, timezone.utc))
        return target

    copy_snapshot.__name__ = original.__name__
    return copy_snapshot


def _delete(original, kind: _Kind):
    def delete_snapshot(self: RDSBackend, identifier):
        snapshot = getattr(self, kind.store).get(identifier)
        if snapshot is not None and kind.status(snapshot) != "available":
            raise RDSClientError(kind.state_error, f"{kind.name} {identifier} is not in the available state "
                                                   f"(it is {kind.status(snapshot)}).")
        deleted = original(self, identifier)
        for backend, target_id in deleted.__dict__.get("_lab_copies", []):
            target = getattr(backend, kind.store).get(target_id)
            if target is not None and kind.status(target) != "available":
                # The copy operation is terminated (DeleteDBSnapshot's documentation).
                original(backend, target_id)
                add_event(backend, kind.event_type, target_id, target.arn,
                          f"Copy of snapshot {identifier} terminated: the source was deleted", ["notification"])
        return deleted

    delete_snapshot.__name__ = original.__name__
    return delete_snapshot


# --------------------------------------------------------------------------------------------------------------
# control route: date a snapshot in the past

def snapshot_create_time(lab_state, method: str, payload: dict) -> dict:
    identifier, at = payload.get("identifier"), payload.get("at")
    if not identifier or not at:
        raise ValueError("identifier and at (ISO 8601) are required")
    region, kind = payload.get("region") or "us-east-1", payload.get("kind") or "db"
    if kind not in ("db", "cluster"):
        raise ValueError("kind is db or cluster")
    when = datetime.fromisoformat(str(at).replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    backend = rds_backends[ACCOUNT][region]
    store = backend.database_snapshots if kind == "db" else backend.cluster_snapshots
    snapshot = store.get(identifier.lower())
    if snapshot is None:
        raise LookupError(f"no {kind} snapshot {identifier!r} in {region}")
    with lab_state.lock:
        snapshot.created = when
        if kind == "db":
            snapshot.original_snapshot_create_time = when
    return {"identifier": identifier, "region": region, "kind": kind, "snapshot_create_time": when.isoformat()}
