# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Each DB instance's and cluster's status transitions with their times, for tests and drills to compare with what a
module measured (``LabControl.status_history()``, ``GET /_lab/status_history``).

A transition is recorded when the lab computes a status that differs from the last one recorded: on every describe,
and for every resource each time the history is read. When the status before it came from a timed phase that has
ended, the transition is dated at that phase's end (exact); otherwise at the moment the lab saw it (at most one poll
late, e.g. for the end of a reboot or failover, whose real PostgreSQL times are in ``failover_log()``).

Keys are the lab's regional keys (``_support.regional``): "db:<id>" / "cluster:<id>" in us-east-1,
"db:<id>@<region>" / "cluster:<id>@<region>" elsewhere; a read answers for one region (``region``, default us-east-1).
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

from moto.rds.models import DBCluster, DBInstance, rds_backends

from tests.lab.fidelity._support import DEFAULT_REGION, lab, regional, replace

ACCOUNT = "123456789012"
_LOCK = threading.Lock()
_HISTORY: dict[str, list[dict]] = {}
_GENERATION = [None]


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat()


def _ended_phase_end(model, now: float) -> float | None:
    """End of the latest time-based phase that has ended (when the previous status came from it)."""
    ended = [p.until for p in model.__dict__.get("_lab_phases", []) if p.job is None and p.until <= now]
    return max(ended) if ended else None


def record(model, key: str, status: str) -> None:
    now = time.time()
    with _LOCK:
        generation = lab().generation
        if _GENERATION[0] != generation:
            _HISTORY.clear()
            _GENERATION[0] = generation
        entries = _HISTORY.setdefault(key, [])
        if entries and entries[-1]["status"] == status:
            return
        at = now
        if entries:
            ended = _ended_phase_end(model, now)
            if ended is not None and ended > entries[-1]["epoch"]:
                at = ended
        else:
            at = model.__dict__.get("_lab_started_at") or now
        entries.append({"status": status, "at": _iso(at), "epoch": at})


def _recording(getter, kind: str, id_attr: str):
    def status(self):
        value = getter(self)
        identifier = self.__dict__.get(id_attr, "")
        if identifier:
            region = getattr(self.__dict__.get("backend"), "region_name", None) or DEFAULT_REGION
            record(self, regional(f"{kind}:{identifier.lower()}", region), value)
        return value
    return status


def _key_parts(key: str) -> tuple[str, str]:
    """(identifier, region) of a regional key."""
    identifier, _unused, region = key.split(":", 1)[1].partition("@")
    return identifier, region or DEFAULT_REGION


def history(lab_state, method: str, payload: dict) -> dict:
    """Sample the statuses of one region's resources now (``region``, default us-east-1), then return every
    transition recorded there (optionally one identifier's)."""
    region = payload.get("region") or DEFAULT_REGION
    if region not in rds_backends[ACCOUNT]:
        raise ValueError(f"no region {region!r}")
    backend = rds_backends[ACCOUNT][region]
    for database in list(backend.databases.values()):
        database.status  # pylint: disable=pointless-statement  # reading it records a transition
    for cluster in list(backend.clusters.values()):
        cluster.status  # pylint: disable=pointless-statement
    wanted = (payload.get("identifier") or "").lower()
    with _LOCK:
        return {"history": {key: [{"status": e["status"], "at": e["at"]} for e in entries]
                            for key, entries in _HISTORY.items()
                            if _key_parts(key)[1] == region and (not wanted or _key_parts(key)[0] == wanted)}}


def status_history() -> None:
    """Record status transitions as statuses are computed (after ``status_takes_time`` replaced the properties)."""
    instance_status = DBInstance.__dict__["status"]
    cluster_status = DBCluster.__dict__["status"]
    replace(DBInstance, "status", property(_recording(instance_status.fget, "db", "_db_instance_identifier"),
                                           instance_status.fset))
    replace(DBInstance, "db_instance_status", property(_recording(DBInstance.__dict__["db_instance_status"].fget, "db",
                                                                  "_db_instance_identifier")))
    replace(DBCluster, "status", property(_recording(cluster_status.fget, "cluster", "_db_cluster_identifier"),
                                          cluster_status.fset))
