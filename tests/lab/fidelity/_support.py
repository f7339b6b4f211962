# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared pieces of the fidelity patches: patch bookkeeping, status phases, events, PostgreSQL lookups."""

from __future__ import annotations

import contextvars
import itertools
import json
import time
from datetime import datetime, timezone

from tests.lab import state

PATCHED: list[tuple[object, str, object]] = []
_NAMES = itertools.count(1)
HOSTED_ZONE_ID = "Z2R2ITUGPM61AM"


def replace(owner, name: str, value) -> None:
    """Set owner.name = value, remembering the original (for docs and debugging)."""
    PATCHED.append((owner, name, owner.__dict__.get(name)))
    setattr(owner, name, value)


def lab() -> state.LabState:
    return state.current()


def pg_name(kind: str, identifier: str) -> str:
    """A PgCluster name no other resource ever had (an identifier may be reused after a delete)."""
    return f"{kind}-{identifier}-{next(_NAMES)}"


# --- PostgreSQL behind resources -------------------------------------------------------------------------------
# Keys of the lab's PostgreSQL registry (and of stuck states): "db:<id>" / "cluster:<id>" in us-east-1, the lab's
# first region; "db:<id>@<region>" / "cluster:<id>@<region>" in any other, so that one identifier in two regions
# never shares a PostgreSQL. Without an explicit region a key is of the region of the RDS request being served
# (replication.regions_side_by_side sets it for each request), else of us-east-1.

DEFAULT_REGION = "us-east-1"
REQUEST_REGION: contextvars.ContextVar[str] = contextvars.ContextVar("lab_request_region", default=DEFAULT_REGION)


def regional(key: str, region: str | None = None) -> str:
    """``key`` of ``region`` (default: the region of the request being served): unchanged in us-east-1."""
    region = region or REQUEST_REGION.get()
    return key if region == DEFAULT_REGION else f"{key}@{region}"


def instance_key(identifier: str, region: str | None = None) -> str:
    return regional(f"db:{identifier.lower()}", region)


def cluster_key(identifier: str, region: str | None = None) -> str:
    return regional(f"cluster:{identifier.lower()}", region)


def pg_key_of_instance(database) -> str:
    region = database.backend.region_name
    cluster_id = getattr(database, "db_cluster_identifier", None)
    if cluster_id:
        return cluster_key(cluster_id, region)
    return instance_key(database.db_instance_identifier, region)


def pg_of_instance(database):
    """The PostgreSQL of an instance's data: its own, or (an Aurora instance) its cluster's writer."""
    return lab().pg_for(pg_key_of_instance(database))


def member_key(identifier: str, region: str | None = None) -> str:
    """The PostgreSQL of an Aurora reader instance: a hot standby of its cluster's writer (``cluster_key`` stays the
    current writer's)."""
    return regional(f"member:{identifier.lower()}", region)


def member_pg(database):
    """The reader's own standby, or None (the writer, or a reader created before its cluster had a PostgreSQL)."""
    return lab().pg_for(member_key(database.db_instance_identifier, database.region))


def serving_pg(database):
    """The PostgreSQL whose sessions, metrics and log are the instance's: an Aurora reader's own hot standby when it
    has one, else ``pg_of_instance``."""
    if getattr(database, "db_cluster_identifier", None) and not getattr(database, "is_cluster_writer", True):
        pg = member_pg(database)
        if pg is not None:
            return pg
    return pg_of_instance(database)


def master_password_of(resource) -> str:
    secret = getattr(resource, "master_user_secret", None)
    if secret is not None:
        try:
            return json.loads(secret.secret.secret_string)["password"]
        except (ValueError, KeyError, AttributeError):
            pass
    password = resource.__dict__.get("_master_user_password") or resource.__dict__.get("master_user_password")
    return password or "lab-password"


# --- status phases ---------------------------------------------------------------------------------------------

class Phase:
    """A status shown from now until ``until`` (epoch seconds) and, if a job is attached, until the job is done."""

    __slots__ = ("status", "until", "job")

    def __init__(self, status: str, until: float, job=None):
        self.status, self.until, self.job = status, until, job

    def active(self, now: float) -> bool:
        return now < self.until or (self.job is not None and not self.job.done)

    def __deepcopy__(self, memo):
        return self

    def __copy__(self):
        return self


def begin_phase(model, status: str, seconds: float, job=None) -> Phase:
    """Show ``status`` for ``seconds`` after the phases already running (and while ``job`` runs)."""
    now = time.time()
    phases = [p for p in model.__dict__.get("_lab_phases", []) if p.active(now)]
    start = max([now] + [p.until for p in phases])
    phase = Phase(status, start + seconds, job)
    model.__dict__["_lab_phases"] = phases + [phase]
    return phase


def current_status(model, kind: str, identifier: str) -> str:
    region = getattr(getattr(model, "backend", None), "region_name", None) or DEFAULT_REGION
    stuck = lab().stuck.get(regional(f"{kind}:{identifier.lower()}", region)) if state._CURRENT else None
    if stuck:
        return stuck
    now = time.time()
    for phase in model.__dict__.get("_lab_phases", []):
        if phase.active(now):
            return phase.status
    return model.__dict__.get("_lab_base_status", "available")


# --- events ----------------------------------------------------------------------------------------------------

class LabEvent:
    """An RDS event, shaped as describe_events returns it."""

    def __init__(self, source_type: str, source_identifier: str, source_arn: str, message: str,
                 categories: list[str], date: datetime | None = None):
        self.source_type = source_type
        self.source_identifier = source_identifier
        self.source_arn = source_arn
        self.message = message
        self.event_categories = categories
        self.date = date or datetime.now(timezone.utc)


def add_event(backend, source_type: str, resource_id: str, arn: str, message: str, categories: list[str],
              date: datetime | None = None) -> LabEvent:
    event = LabEvent(source_type, resource_id, arn, message, categories, date)
    backend.events.append(event)
    return event


def instance_event(database, message: str, categories: list[str]) -> LabEvent:
    return add_event(database.backend, "db-instance", database.db_instance_identifier, database.arn, message,
                     categories)


def cluster_event(cluster, message: str, categories: list[str]) -> LabEvent:
    return add_event(cluster.backend, "db-cluster", cluster.db_cluster_identifier, cluster.arn, message, categories)


# --- clamps ----------------------------------------------------------------------------------------------------

def report_clamps(key: str, clamped: dict | None, resource) -> None:
    """Record settings the lab's PostgreSQL could not use as the group asks (``LabControl.state()``) and say so in an
    RDS event of the instance (or cluster): a clamp is never silent. A clamp already reported is not repeated.

    The event message reads "Lab: max_connections requested 9000, used 2730; ..." (names, requested and used values).
    """
    if not clamped:
        return
    state_ = lab()
    reported: dict = {}
    for record in state_.clamps.get(key, []):
        reported.update(record["clamped"])
    state_.record_clamp(key, clamped)
    new = {name: clamp for name, clamp in sorted(clamped.items()) if reported.get(name) != clamp}
    if not new or resource is None:
        return
    message = "Lab: " + "; ".join(f"{name} requested {clamp['requested']}, used {clamp['used']}"
                                  for name, clamp in new.items())
    message += " (the lab's limits for a local PostgreSQL; the parameter group keeps the requested value)"
    if hasattr(resource, "db_instance_identifier"):
        instance_event(resource, message, ["notification"])
    else:
        cluster_event(resource, message, ["notification"])
