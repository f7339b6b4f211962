# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Aurora Global Database with real PostgreSQL: a secondary cluster is a hot standby of the primary's writer.

moto 5.2.5 keeps global clusters in its us-east-1 backend and answers Create/Describe/Delete/RemoveFromGlobalCluster
without any database behind them (the source cluster listed with ``IsWriter: false``, a source cluster of another
region not found, ``RemoveFromGlobalCluster`` of another region's cluster silently ignored, no Switchover or Failover).
The lab's global database:

- ``CreateGlobalCluster`` with ``SourceDBClusterIdentifier`` (an ARN, any region): the source becomes the writer;
  ``Tags`` are kept (``TagList``; ``ListTagsForResource`` / ``AddTagsToResource`` / ``RemoveTagsFromResource`` take
  the global ARN ``arn:aws:rds::<account>:global-cluster:<id>``).
- ``CreateDBCluster`` with ``GlobalClusterIdentifier`` in another region (lifecycle.create_db_cluster): the secondary's
  PostgreSQL is a hot standby of the primary's writer (read-only: SQLSTATE 25006), its instances readers
  (``IsClusterWriter`` false for all of them), the master user the primary's.
- ``DescribeGlobalClusters`` from any region, filtered by ``GlobalClusterIdentifier`` (GlobalClusterNotFoundFault),
  ``Status`` and ``FailoverState`` while a switchover or failover runs, ``IsWriter``, ``SynchronizationStatus``.
- ``SwitchoverGlobalCluster`` (and ``FailoverGlobalCluster`` without ``AllowDataLoss``): status ``switching-over``;
  the old primary's writer takes no more writes (``lifecycle.fence``), replay faults on the secondary are lifted, it
  catches up and is promoted, and the old primary is rebuilt as its standby: no write lost.
- ``FailoverGlobalCluster`` with ``AllowDataLoss``: status ``failing-over``; the old primary's writer is fenced (its
  region is gone) and the secondary promoted at once with what it had received; the writes it lacked are lost,
  counted from real rows, and the old primary is rebuilt as a secondary.
  Both record an entry (kind ``global_switchover`` / ``global_failover``) in ``LabControl.replication_log()`` and RDS
  events (category ``global-failover``) on both clusters, each in its own region.
- ``RemoveFromGlobalCluster`` of a secondary (an ARN, any region): it is promoted to a standalone, writable cluster;
  the writer is refused while secondaries remain. ``DeleteDBCluster`` of a member leaves the global cluster.
- CloudWatch (via tests.lab.fidelity.metrics): ``AuroraReplicaLag`` (ms, DBInstanceIdentifier) of every Aurora
  reader, ``AuroraGlobalDBReplicationLag`` and ``AuroraGlobalDBRPOLag`` (ms, DBClusterIdentifier + SourceRegion) of
  every secondary, in the secondary's region.
"""

from __future__ import annotations

import re
import time

from moto.rds import models as rds_models
from moto.rds import responses as rds_responses
from moto.rds.exceptions import (
    DBClusterNotFoundError,
    InvalidDBClusterStateFault,
    InvalidParameterCombination,
    InvalidParameterValue,
    RDSClientError,
)
from moto.rds.models import DBCluster, GlobalCluster, RDSBackend

from tests.lab.fidelity._support import (
    begin_phase,
    cluster_event,
    cluster_key,
    current_status,
    lab,
    member_pg,
    replace,
)
from tests.lab.fidelity.lifecycle import catch_up, fence, follow_all

GLOBAL_REGION = "us-east-1"  # where moto keeps every global cluster (RDSResponse.global_backend)
GLOBAL_ARN = re.compile(r"^arn:aws[\w-]*:rds::(?P<account>\d+):global-cluster:(?P<id>.+)$")
CATCH_UP_TIMEOUT = 60.0


class GlobalClusterNotFound(RDSClientError):
    def __init__(self, identifier: str):
        super().__init__("GlobalClusterNotFoundFault", f"Global cluster {identifier} not found.")


class GlobalClusterAlreadyExists(RDSClientError):
    def __init__(self, identifier: str):
        super().__init__("GlobalClusterAlreadyExistsFault", f"Global cluster {identifier} already exists.")


class InvalidGlobalClusterState(RDSClientError):
    def __init__(self, message: str):
        super().__init__("InvalidGlobalClusterStateFault", message)


# --- the topology ----------------------------------------------------------------------------------------------

def _global_backend(account_id: str) -> RDSBackend:
    return rds_models.rds_backends[account_id][GLOBAL_REGION]


def _regional_backends(account_id: str) -> list[RDSBackend]:
    backends = rds_models.rds_backends[account_id]
    return [backends[region] for region in list(backends)]  # only the regions already used


def global_cluster_of(cluster) -> GlobalCluster | None:
    identifier = getattr(cluster, "global_cluster_identifier", None)
    if not identifier:
        return None
    global_cluster = _global_backend(cluster.account_id).global_clusters.get(_global_id(identifier))
    if global_cluster is None or cluster not in global_cluster.members:
        return None
    return global_cluster


def _global_id(identifier: str) -> str:
    match = GLOBAL_ARN.match(identifier or "")
    return match.group("id") if match else identifier


def _writer_cluster(global_cluster: GlobalCluster):
    return next((member for member in global_cluster.members if member.is_writer), None)


def is_secondary(cluster) -> bool:
    global_cluster = global_cluster_of(cluster)
    return global_cluster is not None and not cluster.is_writer


def cluster_pg(cluster):
    return lab().pg_for(cluster_key(cluster.db_cluster_identifier, cluster.region))


def writer_pg_of_topology(cluster):
    """The writable PostgreSQL every standby of ``cluster`` streams from: the global writer's for a secondary."""
    global_cluster = global_cluster_of(cluster)
    if global_cluster is not None and not cluster.is_writer:
        writer = _writer_cluster(global_cluster)
        if writer is not None and cluster_pg(writer) is not None:
            return cluster_pg(writer)
    return cluster_pg(cluster)


def primary_pg_for_new_member(backend: RDSBackend, cluster) -> object | None:
    """For CreateDBCluster with GlobalClusterIdentifier: the primary's writer PostgreSQL when the new cluster joins
    as a secondary (None for a standalone cluster or a global cluster's first member). Refuses unknown global
    clusters and a second cluster in the primary's region, as AWS does."""
    identifier = getattr(cluster, "global_cluster_identifier", None)
    if not identifier:
        return None
    global_cluster = _global_backend(backend.account_id).global_clusters.get(_global_id(identifier))
    if global_cluster is None:
        raise GlobalClusterNotFound(identifier)
    writer = _writer_cluster(global_cluster)
    if writer is None:
        return None
    if writer.region == backend.region_name:
        raise InvalidParameterValue(f"The global cluster {identifier} already has a member in {backend.region_name}: "
                                    "a secondary cluster must be in another AWS Region.")
    if not cluster.master_username:
        cluster.master_username = writer.master_username
    if not cluster.database_name:
        cluster.database_name = writer.database_name
    return cluster_pg(writer)


def secondary_pg(identifier: str, region: str | None = None, account_id: str = "123456789012"):
    """The PostgreSQL of a global database's secondary cluster (control routes pause/delay/resume_replay with
    kind="cluster")."""
    backend = rds_models.rds_backends[account_id][region or GLOBAL_REGION]
    cluster = backend.clusters.get(identifier)
    if cluster is None:
        raise LookupError(f"no DB cluster {identifier!r} in {region or GLOBAL_REGION}")
    if not is_secondary(cluster):
        raise LookupError(f"DB cluster {identifier!r} is not the secondary cluster of a global database")
    pg = cluster_pg(cluster)
    if pg is None:
        raise LookupError(f"{identifier!r} has no PostgreSQL")
    return pg


def _find_cluster(account_id: str, identifier: str):
    """A cluster by ARN (any region) or by identifier (searched in every region in use)."""
    if identifier.startswith("arn:"):
        region = identifier.split(":")[3]
        backend = rds_models.rds_backends[account_id][region]
        name = identifier.split(":")[-1]
        if name in backend.clusters:
            return backend.clusters[name]
        raise DBClusterNotFoundError(identifier)
    for backend in _regional_backends(account_id):
        if identifier in backend.clusters:
            return backend.clusters[identifier]
    raise DBClusterNotFoundError(identifier)


def _members_pgs(cluster) -> list:
    """The reader standbys of a cluster's instances."""
    return [pg for pg in (member_pg(member) for member in cluster._members) if pg is not None]


# --- statuses and rendering ------------------------------------------------------------------------------------

def _global_status(self) -> str:
    now = time.time()
    for phase in self.__dict__.get("_lab_phases", []):
        if phase.active(now):
            return phase.status
    return self.__dict__.get("_lab_base_status", "available")


def _set_global_status(self, value) -> None:
    self.__dict__["_lab_base_status"] = value


def _failover_state(self):
    state = self.__dict__.get("_lab_failover_state")
    if state is None or _global_status(self) == "available":
        return None
    return state


def _global_cluster_members(self) -> list[dict]:
    writer = _writer_cluster(self)
    members = []
    for member in self.members:
        entry = {"DBClusterArn": member.db_cluster_arn, "IsWriter": member is writer,
                 "Readers": [m.db_cluster_arn for m in self.members if m is not writer] if member is writer else []}
        if member is not writer:
            entry["GlobalWriteForwardingStatus"] = "disabled"
            entry["SynchronizationStatus"] = "connected"
        members.append(entry)
    return members


def _wrap_cluster_members(original):
    def db_cluster_members(self):
        members = original.fget(self)
        if is_secondary(self):  # a secondary's instances are all readers
            for entry in members:
                entry["IsClusterWriter"] = False
        return members

    return property(db_cluster_members)


# --- API -------------------------------------------------------------------------------------------------------

def global_databases() -> None:
    """The behaviours of the module docstring."""
    replace(GlobalCluster, "status", property(_global_status, _set_global_status))
    replace(GlobalCluster, "failover_state", property(_failover_state))
    replace(GlobalCluster, "global_cluster_members", property(_global_cluster_members))
    replace(DBCluster, "db_cluster_members", _wrap_cluster_members(DBCluster.db_cluster_members))
    replace(RDSBackend, "create_global_cluster", _wrap_create_global_cluster(RDSBackend.create_global_cluster))
    replace(RDSBackend, "_get_resource_for_tagging", _wrap_tagging(RDSBackend._get_resource_for_tagging))
    replace(RDSBackend, "delete_db_cluster", _wrap_delete_db_cluster(RDSBackend.delete_db_cluster))
    replace(rds_responses.RDSResponse, "create_global_cluster", _create_global_cluster_response)
    replace(rds_responses.RDSResponse, "describe_global_clusters", _describe_global_clusters_response)
    replace(rds_responses.RDSResponse, "remove_from_global_cluster", _remove_from_global_cluster_response)
    replace(rds_responses.RDSResponse, "modify_global_cluster", _modify_global_cluster_response)
    replace(rds_responses.RDSResponse, "delete_global_cluster", _delete_global_cluster_response)
    replace(rds_responses.RDSResponse, "switchover_global_cluster", _switchover_response)
    replace(rds_responses.RDSResponse, "failover_global_cluster", _failover_response)
    from tests.lab.fidelity import metrics
    metrics.register_sampler("aurora_replication", sample_replication)


def _wrap_create_global_cluster(original):
    def create_global_cluster(self: RDSBackend, global_cluster_identifier: str, source_db_cluster_identifier=None,
                              engine=None, engine_version=None, storage_encrypted=None, deletion_protection=None):
        if global_cluster_identifier in self.global_clusters:
            raise GlobalClusterAlreadyExists(global_cluster_identifier)
        source = None
        if source_db_cluster_identifier:
            if not source_db_cluster_identifier.startswith("arn:"):
                raise InvalidParameterValue("SourceDBClusterIdentifier must be the ARN of the source DB cluster.")
            source = _find_cluster(self.account_id, source_db_cluster_identifier)
            if global_cluster_of(source) is not None:
                raise InvalidDBClusterStateFault(
                    f"DB cluster {source.db_cluster_identifier} is already a member of a global cluster.")
            if engine is not None:
                raise InvalidParameterCombination(
                    "When creating global cluster from existing db cluster, value for engineName should not be "
                    "specified since it will be inherited from source cluster")
            engine = source.engine
            engine_version = source.engine_version
            storage_encrypted = source.storage_encrypted if storage_encrypted is None else storage_encrypted
        global_cluster = original(self, global_cluster_identifier, None, engine, engine_version, storage_encrypted,
                                  deletion_protection)
        if source is not None:
            source.global_cluster_identifier = global_cluster.global_cluster_identifier
            source.is_writer = True
            global_cluster.members.append(source)
            global_cluster.__dict__["_lab_database_name"] = source.database_name
        return global_cluster

    return create_global_cluster


def _create_global_cluster_response(self):
    params = self.params
    global_cluster = self.global_backend.create_global_cluster(
        global_cluster_identifier=params["GlobalClusterIdentifier"],
        source_db_cluster_identifier=params.get("SourceDBClusterIdentifier"),
        engine=params.get("Engine"),
        engine_version=params.get("EngineVersion"),
        storage_encrypted=params.get("StorageEncrypted"),
        deletion_protection=params.get("DeletionProtection"),
    )
    if params.get("Tags"):
        global_cluster.add_tags(params["Tags"])
    return rds_responses.ActionResult({"GlobalCluster": global_cluster})


def _describe_global_clusters_response(self):
    identifier = self.params.get("GlobalClusterIdentifier")
    clusters = self.global_backend.describe_global_clusters()
    if identifier:
        clusters = [c for c in clusters if c.global_cluster_identifier == identifier.lower()]
        if not clusters:
            raise GlobalClusterNotFound(identifier)
    return rds_responses.ActionResult({"GlobalClusters": clusters})


def _modify_global_cluster_response(self):
    params = self.params
    global_cluster = _lookup_global(self.current_account, params.get("GlobalClusterIdentifier"))
    new_id = params.get("NewGlobalClusterIdentifier")
    clusters = self.global_backend.global_clusters
    if new_id and new_id.lower() != global_cluster.global_cluster_identifier:
        if new_id in clusters:
            raise GlobalClusterAlreadyExists(new_id)
        clusters.pop(global_cluster.global_cluster_identifier)
        global_cluster.global_cluster_identifier = new_id
        clusters[new_id] = global_cluster
        for member in global_cluster.members:
            member.global_cluster_identifier = global_cluster.global_cluster_identifier
    if params.get("DeletionProtection") is not None:
        global_cluster.deletion_protection = _is_true(params["DeletionProtection"])
    return rds_responses.ActionResult({"GlobalCluster": global_cluster})


def _delete_global_cluster_response(self):
    global_cluster = _lookup_global(self.current_account, self.params.get("GlobalClusterIdentifier"))
    if global_cluster.deletion_protection:
        raise InvalidGlobalClusterState(
            f"Cannot delete protected Global Cluster {global_cluster.global_cluster_identifier}, please disable "
            "deletion protection and try again.")
    if global_cluster.members:
        raise InvalidGlobalClusterState(f"Global Cluster {global_cluster.global_cluster_arn} is not empty")
    self.global_backend.global_clusters.pop(global_cluster.global_cluster_identifier)
    return rds_responses.ActionResult({"GlobalCluster": global_cluster})


def _wrap_tagging(original):
    def get_resource_for_tagging(self: RDSBackend, arn: str):
        match = GLOBAL_ARN.match(arn or "")
        if match:
            global_cluster = _global_backend(self.account_id).global_clusters.get(match.group("id"))
            if global_cluster is None:
                raise GlobalClusterNotFound(match.group("id"))
            return global_cluster
        return original(self, arn)

    return get_resource_for_tagging


def _wrap_delete_db_cluster(original):
    def delete_db_cluster(self: RDSBackend, cluster_identifier: str, snapshot_name=None, skip_final_snapshot=False):
        cluster = self.clusters.get(cluster_identifier)
        global_cluster = global_cluster_of(cluster) if cluster is not None else None
        if global_cluster is not None and cluster.is_writer and len(global_cluster.members) > 1:
            raise InvalidDBClusterStateFault(
                f"DB cluster {cluster.db_cluster_identifier} is the primary cluster of global cluster "
                f"{global_cluster.global_cluster_identifier}: remove its secondary clusters first.")
        result = original(self, cluster_identifier, snapshot_name, skip_final_snapshot)
        if global_cluster is not None and cluster in global_cluster.members:
            global_cluster.members.remove(cluster)
            cluster.global_cluster_identifier = None
        return result

    return delete_db_cluster


def _remove_from_global_cluster_response(self):
    params = self.params
    global_cluster = _lookup_global(self.current_account, params.get("GlobalClusterIdentifier"))
    cluster = _find_cluster(self.current_account, params.get("DbClusterIdentifier") or "")
    if cluster not in global_cluster.members:
        raise InvalidParameterValue(f"DB cluster {cluster.db_cluster_identifier} is not a member of global cluster "
                                    f"{global_cluster.global_cluster_identifier}.")
    if _global_status(global_cluster) != "available":
        raise InvalidGlobalClusterState(f"Global cluster {global_cluster.global_cluster_identifier} is "
                                        f"{_global_status(global_cluster)}.")
    if cluster.is_writer and len(global_cluster.members) > 1:
        raise InvalidGlobalClusterState(
            f"DB cluster {cluster.db_cluster_identifier} is the primary cluster of global cluster "
            f"{global_cluster.global_cluster_identifier}: remove its secondary clusters first.")
    was_secondary = not cluster.is_writer
    global_cluster.members.remove(cluster)
    cluster.global_cluster_identifier = None
    cluster.is_writer = False
    if was_secondary:
        _detach(cluster)
    return rds_responses.ActionResult({"GlobalCluster": global_cluster})


def _detach(cluster) -> None:
    """A secondary leaves the global database: its PostgreSQL is promoted, its readers follow it."""
    state = lab()
    generation = state.generation
    pg = cluster_pg(cluster)

    def work():
        if pg is None:
            return
        pg.promote()
        if state.generation != generation:
            return
        follow_all(_members_pgs(cluster), pg)
        cluster_event(cluster, "DB cluster was removed from its global cluster and promoted to a standalone cluster",
                      ["global-failover"])

    job = state.run_job(f"detach-{cluster.db_cluster_identifier}", work)
    begin_phase(cluster, "promoting", 0.0, job=job)


def _lookup_global(account_id: str, identifier: str | None) -> GlobalCluster:
    if not identifier:
        raise InvalidParameterValue("GlobalClusterIdentifier is required.")
    global_cluster = _global_backend(account_id).global_clusters.get(_global_id(identifier))
    if global_cluster is None:
        raise GlobalClusterNotFound(identifier)
    return global_cluster


def _is_true(value) -> bool:
    return str(value).lower() in ("true", "1")


def _switchover_response(self):
    params = self.params
    global_cluster = _start_switch(self.current_account, params.get("GlobalClusterIdentifier"),
                                   params.get("TargetDbClusterIdentifier"), allow_data_loss=False)
    return rds_responses.ActionResult({"GlobalCluster": global_cluster})


def _failover_response(self):
    params = self.params
    allow = params.get("AllowDataLoss")
    switchover = params.get("Switchover")
    if allow is not None and switchover is not None:
        raise InvalidParameterCombination("AllowDataLoss and Switchover can't be specified together.")
    global_cluster = _start_switch(self.current_account, params.get("GlobalClusterIdentifier"),
                                   params.get("TargetDbClusterIdentifier"),
                                   allow_data_loss=allow is not None and _is_true(allow))
    return rds_responses.ActionResult({"GlobalCluster": global_cluster})


# --- switchover and failover -----------------------------------------------------------------------------------

def _start_switch(account_id: str, global_id: str | None, target_id: str | None, allow_data_loss: bool):
    requested_at = time.time()
    global_cluster = _lookup_global(account_id, global_id)
    if not target_id:
        raise InvalidParameterValue("TargetDbClusterIdentifier is required.")
    target = _find_cluster(account_id, target_id)
    if target not in global_cluster.members:
        raise InvalidParameterValue(f"DB cluster {target_id} is not a member of global cluster "
                                    f"{global_cluster.global_cluster_identifier}.")
    if _global_status(global_cluster) != "available":
        raise InvalidGlobalClusterState(f"Global cluster {global_cluster.global_cluster_identifier} is "
                                        f"{_global_status(global_cluster)}.")
    primary = _writer_cluster(global_cluster)
    if target is primary:
        raise InvalidParameterValue(f"DB cluster {target_id} is already the primary cluster of global cluster "
                                    f"{global_cluster.global_cluster_identifier}.")
    for cluster in (primary, target):
        status = current_status(cluster, "cluster", cluster.db_cluster_identifier)
        if status != "available":
            raise InvalidDBClusterStateFault(f"DB cluster {cluster.db_cluster_identifier} is {status}, not available.")
        if not cluster._members:
            raise InvalidDBClusterStateFault(f"DB cluster {cluster.db_cluster_identifier} has no DB instance.")
    old_pg, new_pg = cluster_pg(primary), cluster_pg(target)
    if old_pg is None or new_pg is None:
        raise InvalidDBClusterStateFault("The lab runs no PostgreSQL behind these clusters.")

    state = lab()
    generation = state.generation
    kind = "global_failover" if allow_data_loss else "global_switchover"
    word = "failover" if allow_data_loss else "switchover"
    status = "failing-over" if allow_data_loss else "switching-over"
    lag_at_request = _replay_lag(new_pg)
    global_cluster.__dict__["_lab_failover_state"] = {
        "Status": status, "FromDbClusterArn": primary.db_cluster_arn, "ToDbClusterArn": target.db_cluster_arn,
        "IsDataLossAllowed": allow_data_loss}
    where = f"DB cluster {target.db_cluster_identifier} in Region {target.region}"

    def work():
        for cluster in (primary, target):
            cluster_event(cluster, f"Global {word} to {where} started.", ["global-failover"])
        # The old primary takes no more writes: with data loss because its region is gone (what the secondary had
        # not replayed is lost), for a switchover because it is demoted once the secondary has caught up.
        fence(old_pg)
        if not allow_data_loss:
            new_pg.resume_replay()
            new_pg.set_replay_delay(0)
            catch_up(new_pg, CATCH_UP_TIMEOUT)
        promoted = new_pg.promote()
        writable_at = promoted.get("writable_at") or time.time()
        old_pg.stop("immediate" if allow_data_loss else "fast")
        old_pg.refuse_tcp_logins(False, reload=False)
        if state.generation != generation:
            return
        with state.lock:
            primary.is_writer, target.is_writer = False, True
        if not allow_data_loss:
            cluster_event(primary, f"Old primary DB cluster {primary.db_cluster_identifier} in Region "
                                   f"{primary.region} successfully shut down.", ["global-failover"])
        cluster_event(target, f"New primary DB cluster {target.db_cluster_identifier} in Region {target.region} "
                              "was successfully promoted.", ["global-failover"])
        # Every other PostgreSQL of the global database now streams from the new writer (the old primary's writer
        # rebuilt from it: with data loss, what it had that the new writer lacks is gone, as on AWS).
        standbys = [old_pg] + [cluster_pg(cluster) for cluster in global_cluster.members
                               if cluster is not target and cluster is not primary and cluster_pg(cluster) is not None]
        follow_all(standbys + [standby for cluster in global_cluster.members for standby in _members_pgs(cluster)],
                   new_pg)
        entry = {"kind": kind, "identifier": target.db_cluster_identifier, "region": target.region,
                 "global_cluster_identifier": global_cluster.global_cluster_identifier,
                 "from_identifier": primary.db_cluster_identifier, "from_region": primary.region,
                 "requested_at": requested_at, "writable_at": writable_at, "lag_seconds_at_request": lag_at_request,
                 "lost_rows": promoted.get("lost_rows", {}), "lost_total": promoted.get("lost_total", 0),
                 "completed_at": time.time()}
        _record(state, entry)
        for cluster in (primary, target):
            cluster_event(cluster, f"Global {word} to {where} completed.", ["global-failover"])

    job = state.run_job(f"global-{word}-{global_cluster.global_cluster_identifier}", work)
    begin_phase(global_cluster, status, 0.0, job=job)
    return global_cluster


def _replay_lag(pg) -> float | None:
    try:
        return float(pg.replay_lag_seconds())
    except Exception:  # a standby being rebuilt answers nothing: no figure
        return None


def _record(state, entry: dict) -> None:
    from tests.lab.fidelity import replication
    replication.record(state, entry)


# --- CloudWatch ------------------------------------------------------------------------------------------------

_RPO_CAUGHT_UP: dict[str, float] = {}


def sample_replication(now: float) -> list:
    """AuroraReplicaLag of every Aurora reader; AuroraGlobalDBReplicationLag / RPOLag of every secondary."""
    from tests.lab import state as lab_state
    from tests.lab.fidelity.metrics import Datapoint, NAMESPACE
    if lab_state._CURRENT is None:
        return []
    points = []
    account = "123456789012"
    for backend in _regional_backends(account):
        for member in list(backend.databases.values()):
            standby = member_pg(member) if getattr(member, "db_cluster_identifier", None) else None
            if standby is None or member.is_cluster_writer:
                continue
            lag = _replay_lag(standby)
            if lag is not None:
                points.append(Datapoint(backend.region_name, NAMESPACE, "AuroraReplicaLag",
                                        {"DBInstanceIdentifier": member.db_instance_identifier}, lag * 1000.0,
                                        "Milliseconds"))
        for cluster in list(backend.clusters.values()):
            if not is_secondary(cluster):
                continue
            global_cluster = global_cluster_of(cluster)
            writer = _writer_cluster(global_cluster)
            pg, source = cluster_pg(cluster), cluster_pg(writer) if writer is not None else None
            if pg is None or source is None:
                continue
            dimensions = {"DBClusterIdentifier": cluster.db_cluster_identifier, "SourceRegion": writer.region}
            lag = _replay_lag(pg)
            rpo = _rpo_lag(pg, source, now)
            if lag is not None:
                points.append(Datapoint(backend.region_name, NAMESPACE, "AuroraGlobalDBReplicationLag", dimensions,
                                        lag * 1000.0, "Milliseconds"))
            if rpo is not None:
                points.append(Datapoint(backend.region_name, NAMESPACE, "AuroraGlobalDBRPOLag", dimensions,
                                        rpo * 1000.0, "Milliseconds"))
    return points


def _rpo_lag(pg, source, now: float) -> float | None:
    """Seconds since the secondary last held (received and flushed) all the WAL its source had: what a failover now
    would lose at most. Replay may lag behind that (a delayed apply loses nothing)."""
    try:
        received = pg.admin_query("SELECT pg_last_wal_receive_lsn()")[0][0]
        behind = source.admin_query("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)",
                                    (received or "0/0",))[0][0]
    except Exception:  # a PostgreSQL being rebuilt or promoted: no figure this tick
        return None
    if behind is not None and float(behind) <= 0:
        _RPO_CAUGHT_UP[pg.name] = now  # PostgreSQL names are never reused, also across lab resets
        return 0.0
    since = _RPO_CAUGHT_UP.setdefault(pg.name, now)
    return max(0.0, now - since)
