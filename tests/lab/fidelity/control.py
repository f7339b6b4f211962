# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Control API actions that act on resources: stuck states, refused connections, outages, lossy failovers, server
logs."""

from __future__ import annotations

from moto.rds.models import rds_backends

from tests.lab.fidelity._support import DEFAULT_REGION, cluster_key, instance_key, pg_key_of_instance

ACCOUNT = "123456789012"


def _region(payload: dict) -> str:
    """The region a control call aims at (``region`` in its payload; us-east-1 by default)."""
    region = payload.get("region") or DEFAULT_REGION
    if region not in rds_backends[ACCOUNT]:
        raise ValueError(f"no region {region!r}")
    return region


def _backend(region: str = DEFAULT_REGION):
    return rds_backends[ACCOUNT][region]


def _resolve(identifier: str, kind: str | None = None, region: str = DEFAULT_REGION) -> tuple[str, str]:
    """(status key, PostgreSQL key) of a DB instance or cluster identifier in ``region``."""
    if not identifier:
        raise ValueError("identifier is required")
    backend = _backend(region)
    identifier = identifier.lower()
    if kind in (None, "db", "instance") and identifier in backend.databases:
        return instance_key(identifier, region), pg_key_of_instance(backend.databases[identifier])
    if kind in (None, "cluster") and identifier in backend.clusters:
        return cluster_key(identifier, region), cluster_key(identifier, region)
    raise LookupError(f"no DB instance or cluster {identifier!r} in {region}")


def _pg(lab, identifier: str, region: str = DEFAULT_REGION):
    pg_key = _resolve(identifier, region=region)[1]
    pg = lab.pg_for(pg_key)
    if pg is None:
        raise LookupError(f"{identifier!r} in {region} has no PostgreSQL")
    return pg


def stuck(lab, method: str, payload: dict) -> dict:
    identifier, status, kind = payload.get("identifier"), payload.get("status"), payload.get("kind")
    region = _region(payload)
    try:
        keys = [_resolve(identifier, kind, region)[0]]
    except LookupError:
        # Not created yet: the state applies once an instance (or cluster) of that name is created or restored.
        keys = [key_of(identifier, region) for wanted, key_of in (("db", instance_key), ("cluster", cluster_key))
                if kind in (None, wanted) or (wanted == "db" and kind == "instance")]
    for key in keys:
        if status:
            lab.stuck[key] = status
        else:
            lab.stuck.pop(key, None)
    return {"stuck": dict(lab.stuck)}


def refuse_connections(lab, method: str, payload: dict) -> dict:
    pg = _pg(lab, payload.get("identifier"), _region(payload))
    seconds = float(payload.get("seconds", 5))
    lab.run_job(f"refuse-{payload['identifier']}", lambda: pg.refuse_connections(seconds))
    return {"refusing": payload["identifier"], "seconds": seconds}


def outage(lab, method: str, payload: dict) -> dict:
    pg = _pg(lab, payload.get("identifier"), _region(payload))
    seconds = float(payload.get("seconds", 5))
    lab.run_job(f"outage-{payload['identifier']}", lambda: pg.outage(seconds))
    return {"outage": payload["identifier"], "seconds": seconds}


def lossy_failover(lab, method: str, payload: dict) -> dict:
    """Arm the next failover of an instance/cluster to lose the writes of the last ``freeze_seconds``."""
    key = _resolve(payload.get("identifier"), region=_region(payload))[0]
    pg = _pg(lab, payload.get("identifier"), _region(payload))
    pg.prepare_standby()
    lab.lossy[key] = {"freeze_seconds": float(payload.get("freeze_seconds", 1.0))}
    return {"armed": key, **lab.lossy[key]}


def server_log(lab, method: str, payload: dict) -> dict:
    """The PostgreSQL server log (stderr of the postmaster) of an instance or cluster, as text."""
    pg = _pg(lab, payload.get("identifier"), _region(payload))
    try:
        text = pg.log_file.read_text(errors="replace")
    except FileNotFoundError:
        text = ""
    return {"identifier": payload["identifier"], "path": str(pg.log_file), "log": text}


def load_metric_history(lab, method: str, payload: dict) -> dict:
    """Put a canned CloudWatch history of one metric (``tests.lab.fidelity.metrics.load_history``)."""
    from tests.lab.fidelity import metrics
    return metrics.load_history(lab, payload)


def replication_log(lab, method: str, payload: dict) -> dict:
    """Promotions, global switchovers and failovers the lab performed (``tests.lab.fidelity.replication``)."""
    from tests.lab.fidelity import replication
    return replication.control(lab, "replication_log", method, payload)


def pause_replay(lab, method: str, payload: dict) -> dict:
    """Hold replay on a read replica (or a global secondary, kind "cluster"): its lag grows with the source's writes."""
    from tests.lab.fidelity import replication
    return replication.control(lab, "pause_replay", method, payload)


def resume_replay(lab, method: str, payload: dict) -> dict:
    from tests.lab.fidelity import replication
    return replication.control(lab, "resume_replay", method, payload)


def delay_replay(lab, method: str, payload: dict) -> dict:
    from tests.lab.fidelity import replication
    return replication.control(lab, "delay_replay", method, payload)


def replication_status(lab, method: str, payload: dict) -> dict:
    from tests.lab.fidelity import replication
    return replication.control(lab, "replication_status", method, payload)
