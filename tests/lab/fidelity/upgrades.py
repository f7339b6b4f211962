# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Engine upgrades of RDS for PostgreSQL DB instances, run for real (``engine_upgrades``).

ModifyDBInstance with a new ``EngineVersion`` of a ``postgres`` DB instance (not an Aurora member):

- Refused before anything changes, as RDS words it (InvalidParameterCombination): a version that is not one of the
  current version's ``ValidUpgradeTarget`` ("Cannot find upgrade target from 15.7 with requested version 15.99."), a
  downgrade ("Cannot upgrade postgres from 15.7 to 15.4"), a major upgrade without ``AllowMajorVersionUpgrade`` ("The
  AllowMajorVersionUpgrade flag must be present when upgrading to a new major version."), a parameter group of
  another family than the target's ("The parameter group default.postgres15 with DBParameterGroupFamily postgres15
  can't be used for this instance. Use a parameter group with DBParameterGroupFamily postgres18."). A major upgrade
  without ``DBParameterGroupName`` takes the target family's default group (default.postgres18). An instance with
  read replicas, or a read replica, is refused (InvalidParameterCombination naming the lab): RDS upgrades in-Region
  replicas with their primary, the lab does not. The current version (or its major alone) changes nothing.
- The upgrade runs at once (ApplyImmediately or not) in a background job, the instance ``upgrading`` meanwhile. A
  major upgrade first runs RDS's pre-checks and ``pg_upgrade --check`` with the server up
  (``PgCluster.upgrade_blockers``): a blocker (prepared transaction, logical replication slot, extension version the
  target lacks, whatever pg_upgrade --check calls fatal: reg* columns other than regclass/regrole/regtype, removed
  data types, missing libraries) leaves the instance ``available`` on its version with its data, and the event
  "Database instance is in a state that cannot be upgraded: PreUpgrade checks failed: ..." says why. Otherwise the
  server stops (the outage), ``pg_upgrade --link`` runs, the target's PostgreSQL starts on the same endpoint with the
  new parameter group's settings, and EngineVersion, DBParameterGroups and ``SHOW server_version`` say the new
  version. A minor upgrade restarts PostgreSQL (the lab's 15 binaries stay Debian's: SHOW server_version does not
  change, EngineVersion does).
- Events (db-instance, category ``maintenance`` unless said): "Upgrade in progress: Performing online pre-upgrade
  checks.", "DB instance shutdown" (availability), "Upgrade in progress: Upgrading database engine from 15.7 to
  18.6.", "DB instance restarted" (availability), "Updated to use DBParameterGroup default.postgres18"
  (configuration change), "Database instance upgraded from engine version 15.7 to 18.6."; or the failure above.
- DescribeDBLogFiles lists ``error/pg_upgrade_precheck.log.<YYYY-MM-DD-HH>`` after a major upgrade's pre-check (what
  RDS's pre-checks and pg_upgrade --check reported); DownloadDBLogFilePortion serves it.
- ``LabControl.upgrade_log()``: per upgrade {kind ("engine_upgrade"), identifier, region, upgrade ("major" or
  "minor"), from_version, to_version, ok (None while running), requested_at, down_at, up_at, finished_at (epochs;
  down_at and up_at None when the server never went down), check_seconds, pg_upgrade_seconds, blockers ([{check,
  message, objects}]), error}: entries of the replication log (tests/lab/fidelity/replication.py) of kind
  ``engine_upgrade``, so the lab's control routes stay as they are.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

from moto.rds import responses as rds_responses
from moto.rds.exceptions import InvalidDBInstanceStateError, InvalidParameterCombination
from moto.rds.models import RDSBackend

from tests.lab import parameter_metadata as meta
from tests.lab.fidelity import parameters, replication
from tests.lab.fidelity._support import (
    begin_phase,
    current_status,
    instance_event,
    instance_key,
    lab,
    pg_of_instance,
    replace,
    report_clamps,
)
from tests.lab.fidelity.engine_versions import VERSIONS, _version_key, family_of, major_of, resolve_version

ENGINE = "postgres"
FAILED_PREFIX = "Database instance is in a state that cannot be upgraded: "
PRECHECK_LOG = "error/pg_upgrade_precheck.log."

LOG_KIND = "engine_upgrade"

_PRECHECK_LOCK = threading.Lock()
_PRECHECK_LOGS: list[tuple[int, str, str, datetime, str]] = []  # (generation, identifier, region, at, text)


# --------------------------------------------------------------------------------------------------------------
# the upgrade log (LabControl.upgrade_log: the replication log's entries of kind engine_upgrade)

def entries(state) -> list[dict]:
    return [entry for entry in replication.entries(state) if entry.get("kind") == LOG_KIND]


def _keep_precheck_log(state, database, text: str) -> None:
    with _PRECHECK_LOCK:
        _PRECHECK_LOGS[:] = [item for item in _PRECHECK_LOGS if item[0] == state.generation]
        _PRECHECK_LOGS.append((state.generation, database.db_instance_identifier, database.region,
                               datetime.now(timezone.utc), text))


# --------------------------------------------------------------------------------------------------------------
# validation (pure: before any change)

def plan_upgrade(backend: RDSBackend, database, requested: str, allow_major: bool,
                 group_name: str | None) -> dict | None:
    """What an EngineVersion change of ``database`` does: {"from", "to", "major" (bool), "group" (the parameter group
    the instance has after it, None: unchanged)}; None when it changes nothing. InvalidParameterCombination (RDS's
    words) when RDS would refuse it."""
    current = database.engine_version
    if str(requested) == major_of(current):  # the major it runs: nothing to do, whatever that major's default is
        return None
    target = resolve_version(ENGINE, str(requested))
    if target == current:
        return None
    if target is None:
        raise InvalidParameterCombination(
            f"Cannot find upgrade target from {current} with requested version {requested}.")
    if _version_key(target) < _version_key(current):
        raise InvalidParameterCombination(f"Cannot upgrade {ENGINE} from {current} to {target}")
    if target not in VERSIONS[ENGINE]:
        raise InvalidParameterCombination(
            f"Cannot find upgrade target from {current} with requested version {requested}.")
    major = major_of(target) != major_of(current)
    if major and not allow_major:
        raise InvalidParameterCombination(
            "The AllowMajorVersionUpgrade flag must be present when upgrading to a new major version.")
    if database.replicas or database.is_replica or database.source_db_instance_identifier:
        raise InvalidParameterCombination(
            f"The dbre.rds lab does not upgrade DB instance {database.db_instance_identifier}: it has read replicas "
            "or is one (RDS upgrades in-Region read replicas with their primary). Delete or promote the replicas "
            "first.")
    family = family_of(ENGINE, target)
    group = None
    if group_name:
        group = parameters.group_by_name(backend, group_name)
        group_family = getattr(group, "family", None) or getattr(group, "db_parameter_group_family", None)
        if group_family != family:
            raise InvalidParameterCombination(
                f"The parameter group {group.name} with DBParameterGroupFamily {group_family} can't be used for this "
                f"instance. Use a parameter group with DBParameterGroupFamily {family}.")
    elif major:
        group = parameters.group_by_name(backend, f"default.{family}")
    return {"from": current, "to": target, "major": major, "group": group.name if group is not None else None}


# --------------------------------------------------------------------------------------------------------------
# the upgrade itself (a background job)

def _settings_of_group(backend, group_name: str, database) -> dict:
    group = parameters.group_by_name(backend, group_name)
    family = getattr(group, "family", None) or getattr(group, "db_parameter_group_family", None)
    return meta.local_settings(family, group.parameters, database.db_instance_class)


def _run_upgrade(backend, database, plan: dict, state, generation: int, entry: dict) -> None:
    pg = pg_of_instance(database)
    target_major = major_of(plan["to"])
    clamp_key = instance_key(database.db_instance_identifier, database.region)

    def stale() -> bool:
        return state.generation != generation

    def phase(name: str, at: float) -> None:
        entry[f"{name}_at"] = at
        if name == "down":
            instance_event(database, "DB instance shutdown", ["availability"])
            instance_event(database, f"Upgrade in progress: Upgrading database engine from {plan['from']} to "
                                     f"{plan['to']}.", ["maintenance"])
        else:
            instance_event(database, "DB instance restarted", ["availability"])

    if plan["major"]:
        instance_event(database, "Upgrade in progress: Performing online pre-upgrade checks.", ["maintenance"])
        found = pg.upgrade_blockers(target_major)
        entry.update(check_seconds=found["seconds"], blockers=found["blockers"])
        _keep_precheck_log(state, database, found["log"])
        if found["blockers"] or stale():
            if not stale():
                reasons = " ".join(blocker["message"] for blocker in found["blockers"])
                instance_event(database, f"{FAILED_PREFIX}PreUpgrade checks failed: {reasons}", ["maintenance"])
            entry.update(ok=False, error="pre-upgrade checks failed")
            return
        settings = _settings_of_group(backend, plan["group"], database)
        result = pg.upgrade(target_major, settings, on_phase=phase)
        entry["pg_upgrade_seconds"] = result["pg_upgrade_seconds"]
        if not result["ok"]:
            instance_event(database, f"{FAILED_PREFIX}pg_upgrade failed: {result['output'].strip()[-600:]}",
                           ["maintenance"])
            entry.update(ok=False, error="pg_upgrade failed", output=result["output"][-4000:])
            return
        report_clamps(clamp_key, (pg.start_result or {}).get("clamped"), database)
        _repoint_snapshots(backend, str(pg.base_backup_dir), result.get("previous_base_backup"))
    else:
        if plan["group"] is not None and plan["group"] != database.db_parameter_group_name:
            report_clamps(clamp_key, pg.apply_settings(_settings_of_group(backend, plan["group"], database)).get(
                "clamped"), database)  # the new group takes effect at the restart
        down_at = time.time()  # logins fail from the start of the shutdown
        pg.stop("fast")
        phase("down", down_at)
        started = time.monotonic()
        pg.start()
        pg._wait_ready()
        entry["pg_upgrade_seconds"] = 0.0
        entry["restart_seconds"] = round(time.monotonic() - started, 3)
        phase("up", time.time())
    with state.lock:
        if stale():
            return
        database.engine_version = plan["to"]
        if plan["group"] is not None and plan["group"] != database.db_parameter_group_name:
            database.db_parameter_group_name = plan["group"]
            instance_event(database, f"Updated to use DBParameterGroup {plan['group']}", ["configuration change"])
        parameters.clear_pending_reboot(database)
        instance_event(database, f"Database instance upgraded from engine version {plan['from']} to {plan['to']}.",
                       ["maintenance"])
        entry["ok"] = True


def _repoint_snapshots(backend, base_path: str, previous: str | None) -> None:
    """Snapshots that held the instance's base backup (the automated one at creation) keep holding that data, now
    moved aside by the upgrade."""
    if not previous:
        return
    for snapshot in list(backend.database_snapshots.values()):
        backup = snapshot.__dict__.get("_lab_backup")
        if backup and backup.get("path") == base_path:
            snapshot.__dict__["_lab_backup"] = dict(backup, path=previous)


def _upgrade_job(backend, database, plan: dict):
    state = lab()
    generation = state.generation
    entry = replication.record(state, {
        "kind": LOG_KIND, "identifier": database.db_instance_identifier, "region": database.region,
        "upgrade": "major" if plan["major"] else "minor", "from_version": plan["from"], "to_version": plan["to"],
        "ok": None, "requested_at": time.time(), "down_at": None, "up_at": None, "finished_at": None,
        "check_seconds": None, "pg_upgrade_seconds": None, "blockers": [], "error": None})

    def work():
        try:
            _run_upgrade(backend, database, plan, state, generation, entry)
        except Exception as exc:
            entry.update(ok=False, error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            entry["finished_at"] = time.time()

    return state.run_job(f"upgrade-{database.db_instance_identifier}", work)


# --------------------------------------------------------------------------------------------------------------
# patches

def engine_upgrades() -> None:
    """ModifyDBInstance EngineVersion runs a real pg_upgrade (major) or restart (minor); pg_upgrade_precheck.log."""
    original_modify = RDSBackend.modify_db_instance

    def modify_db_instance(self: RDSBackend, db_instance_identifier: str, db_kwargs: dict, *args, **kwargs):
        requested = db_kwargs.get("engine_version")
        database = self.describe_db_instances(db_instance_identifier)[0] if requested else None
        if database is None or database.engine != ENGINE or database.db_cluster_identifier:
            return original_modify(self, db_instance_identifier, db_kwargs, *args, **kwargs)
        status = current_status(database, "db", database.db_instance_identifier)
        if status not in ("available", "storage-optimization"):
            raise InvalidDBInstanceStateError(db_instance_identifier, "modify")
        allow = str(db_kwargs.get("allow_major_version_upgrade", "false")).lower() in ("true", "1")
        plan = plan_upgrade(self, database, requested, allow, db_kwargs.get("db_parameter_group_name"))
        rest = {key: value for key, value in db_kwargs.items()
                if key not in ("engine_version", "allow_major_version_upgrade")
                and not (key == "db_parameter_group_name" and plan is not None)}
        database = original_modify(self, db_instance_identifier, rest, *args, **kwargs)
        if plan is None or pg_of_instance(database) is None:
            return database
        job = _upgrade_job(self, database, plan)
        begin_phase(database, "upgrading", 0.0, job=job)
        return database

    replace(RDSBackend, "modify_db_instance", modify_db_instance)

    original_describe = rds_responses.RDSResponse.describe_db_log_files
    original_download = rds_responses.RDSResponse.download_db_log_file_portion

    def describe_db_log_files(self):
        result = original_describe(self)
        identifier = str(self.params.get("DBInstanceIdentifier", "")).lower()
        rows = [{"LogFileName": name, "LastWritten": int(at.timestamp() * 1000), "Size": len(text.encode())}
                for name, (at, text) in _precheck_logs(identifier, self.backend.region_name).items()
                if str(self.params.get("FilenameContains") or "") in name]
        if rows:
            result.result["DescribeDBLogFiles"] = list(result.result["DescribeDBLogFiles"]) + rows
        return result

    def download_db_log_file_portion(self):
        identifier = str(self.params.get("DBInstanceIdentifier", "")).lower()
        found = _precheck_logs(identifier, self.backend.region_name).get(self.params.get("LogFileName"))
        if found is None:
            return original_download(self)
        return rds_responses.ActionResult({"LogFileData": found[1], "Marker": "0", "AdditionalDataPending": False})

    replace(rds_responses.RDSResponse, "describe_db_log_files", describe_db_log_files)
    replace(rds_responses.RDSResponse, "download_db_log_file_portion", download_db_log_file_portion)


def _precheck_logs(identifier: str, region: str) -> dict[str, tuple[datetime, str]]:
    """{log file name: (written at, text)} of the pre-checks of ``identifier``'s major upgrades (the newest of an
    hour wins)."""
    generation = lab().generation
    with _PRECHECK_LOCK:
        return {f"{PRECHECK_LOG}{at:%Y-%m-%d-%H}": (at, text) for made_in, name, where, at, text in _PRECHECK_LOGS
                if made_in == generation and name == identifier and where == region}
