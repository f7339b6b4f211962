# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Automated backups with their restore window, as RDS has them.

``DescribeDBInstanceAutomatedBackups`` lists every DB instance (not Aurora members: their backups are the cluster's)
with ``BackupRetentionPeriod`` > 0 as ``active``, with ``RestoreWindow`` {``EarliestTime``, ``LatestTime``}: earliest
is the latest of the instance's creation, now less the retention days, and the start of the lab's WAL archive (its
base backup, taken at creation); latest is ``LatestRestorableTime``. Backups kept after a delete
(``DeleteAutomatedBackups=False``) are listed as ``retained``. moto 5.2.5 lists backups without a window.

``RestoreDBInstanceToPointInTime`` from an instance with ``BackupRetentionPeriod`` 0 is ``PointInTimeRestoreNotEnabled``
and a ``RestoreTime`` before the window's earliest time is refused (``InvalidParameterValue``, as a time after
``LatestRestorableTime`` already is, see ``storage.point_in_time_restore``).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from moto.rds import responses as rds_responses
from moto.rds.exceptions import InvalidParameterValue, RDSClientError
from moto.rds.models import RDSBackend

from tests.lab.fidelity._support import pg_of_instance, replace

REGION = "us-east-1"


def _utc(value) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def earliest_restorable_time(database) -> datetime:
    """max(creation, now - retention days, start of the lab's archive) of a DB instance."""
    retention = int(database.backup_retention_period or 0)
    candidates = [_utc(database.instance_create_time), datetime.now(timezone.utc) - timedelta(days=retention)]
    pg = pg_of_instance(database)
    if pg is not None and pg.earliest_restorable_time() is not None:
        candidates.append(_utc(pg.earliest_restorable_time()))
    return max(c for c in candidates if c is not None)


def _active(database) -> dict:
    latest = _utc(database.latest_restorable_time)
    earliest = earliest_restorable_time(database)
    return {
        "DBInstanceArn": database.arn,
        "DbiResourceId": database.dbi_resource_id,
        "Region": REGION,
        "DBInstanceIdentifier": database.db_instance_identifier,
        "RestoreWindow": {"EarliestTime": earliest, "LatestTime": max(latest, earliest)},
        "AllocatedStorage": database.allocated_storage,
        "Status": "active",
        "Port": database.port,
        "AvailabilityZone": database.availability_zone,
        "InstanceCreateTime": _utc(database.instance_create_time),
        "MasterUsername": database.master_username,
        "Engine": database.engine,
        "EngineVersion": database.engine_version,
        "LicenseModel": database.license_model,
        "Encrypted": bool(database.storage_encrypted),
        "StorageType": database.storage_type,
        "KmsKeyId": database.kms_key_id,
        "IAMDatabaseAuthenticationEnabled": bool(database.enable_iam_database_authentication),
        "BackupRetentionPeriod": int(database.backup_retention_period),
        "PreferredBackupWindow": database.preferred_backup_window,
        "DBInstanceAutomatedBackupsArn": _backup_arn(database.dbi_resource_id),
        "BackupTarget": "region",
    }


def _retained(identifier: str, snapshots: list) -> dict:
    first = min(snapshots, key=lambda s: _utc(s.created))
    times = [_utc(s.created) for s in snapshots]
    database = first.database
    return {
        "DBInstanceArn": database.arn,
        "DbiResourceId": database.dbi_resource_id,
        "Region": REGION,
        "DBInstanceIdentifier": identifier,
        "RestoreWindow": {"EarliestTime": min(times), "LatestTime": max(times)},
        "AllocatedStorage": database.allocated_storage,
        "Status": "retained",
        "InstanceCreateTime": _utc(database.instance_create_time),
        "MasterUsername": database.master_username,
        "Engine": database.engine,
        "EngineVersion": database.engine_version,
        "BackupRetentionPeriod": int(database.backup_retention_period or 0),
        "DBInstanceAutomatedBackupsArn": _backup_arn(database.dbi_resource_id),
        "BackupTarget": "region",
    }


def _backup_arn(resource_id: str) -> str:
    return f"arn:aws:rds:{REGION}:123456789012:auto-backup:ab-{resource_id.removeprefix('db-').lower()}"


def automated_backups(backend: RDSBackend) -> list[dict]:
    rows = [_active(db) for db in backend.databases.values()
            if not db.db_cluster_identifier and int(db.backup_retention_period or 0) > 0]
    kept: dict[str, list] = {}
    for snapshot in backend.database_snapshots.values():
        if snapshot.snapshot_type == "automated" and snapshot.db_instance_identifier not in backend.databases:
            kept.setdefault(snapshot.db_instance_identifier, []).append(snapshot)
    rows += [_retained(identifier, snapshots) for identifier, snapshots in sorted(kept.items())]
    return rows


def _filtered(rows: list[dict], params: dict) -> list[dict]:
    wanted = {"db-instance-id": params.get("DBInstanceIdentifier"), "dbi-resource-id": params.get("DbiResourceId")}
    keys = {"db-instance-id": "DBInstanceIdentifier", "dbi-resource-id": "DbiResourceId", "status": "Status"}
    for name, value in wanted.items():
        if value:
            rows = [r for r in rows if r[keys[name]] == value]
    for item in params.get("Filters") or []:
        key = keys.get(item.get("Name"))
        if key is None:
            raise InvalidParameterValue(f"Unrecognized filter name: {item.get('Name')}")
        rows = [r for r in rows if r[key] in (item.get("Values") or [])]
    return rows


def automated_backup_restore_window() -> None:
    """DescribeDBInstanceAutomatedBackups with RestoreWindow; restores outside the window refused."""

    def describe_db_instance_automated_backups(self):
        rows = _filtered(automated_backups(self.backend), self.params)
        if self.params.get("DBInstanceIdentifier") and not rows and \
                self.params["DBInstanceIdentifier"] not in self.backend.databases:
            raise RDSClientError("DBInstanceAutomatedBackupNotFound",
                                 f"No automated backup found for {self.params['DBInstanceIdentifier']}.")
        max_records = int(self.params.get("MaxRecords") or 100)
        if not 20 <= max_records <= 100:
            raise InvalidParameterValue(f"Invalid value {max_records} for MaxRecords. Must be between 20 and 100")
        offset = int(self.params.get("Marker") or 0)
        page = rows[offset: offset + max_records]
        marker = str(offset + max_records) if offset + max_records < len(rows) else None
        return rds_responses.ActionResult({"DBInstanceAutomatedBackups": page, "Marker": marker})

    original_restore = RDSBackend.restore_db_instance_to_point_in_time

    def restore_db_instance_to_point_in_time(self, source_db_identifier, target_db_identifier, overrides):
        source = self.describe_db_instances(db_instance_identifier=source_db_identifier)[0]
        if int(source.backup_retention_period or 0) == 0:
            raise RDSClientError("PointInTimeRestoreNotEnabled",
                                 f"SourceDBInstanceIdentifier {source.db_instance_identifier} refers to a DB "
                                 "instance with BackupRetentionPeriod equal to 0.")
        restore_time = overrides.get("restore_time")
        if restore_time is not None:
            earliest = earliest_restorable_time(source)
            if _utc(restore_time) < earliest:
                raise InvalidParameterValue(
                    f"The restore time {_utc(restore_time).isoformat()} is before the earliest restorable time "
                    f"{earliest.isoformat()} of {source.db_instance_identifier}.")
        return original_restore(self, source_db_identifier, target_db_identifier, overrides)

    replace(rds_responses.RDSResponse, "describe_db_instance_automated_backups", describe_db_instance_automated_backups)
    replace(RDSBackend, "restore_db_instance_to_point_in_time", restore_db_instance_to_point_in_time)
