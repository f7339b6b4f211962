# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Instances and clusters with a real PostgreSQL behind them, statuses that take time, reboots, failovers, events."""

from __future__ import annotations

import copy
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from moto.rds import models as rds_models
from moto.rds import responses as rds_responses
from moto.rds.exceptions import (
    DBClusterNotFoundError,
    DBInstanceAlreadyExists,
    InvalidDBClusterStateFault,
    InvalidDBInstanceEngine,
    InvalidDBInstanceStateError,
    InvalidParameterCombination,
    InvalidParameterValue,
    RDSClientError,
)
from moto.rds.models import DBCluster, DBInstance, DBInstanceClustered, RDSBackend
from moto.rds.utils import ClusterEngine

from tests.lab.fidelity import parameters
from tests.lab.fidelity._support import (
    HOSTED_ZONE_ID,
    Phase,
    begin_phase,
    cluster_event,
    cluster_key,
    current_status,
    instance_event,
    instance_key,
    lab,
    master_password_of,
    pg_name,
    pg_of_instance,
    member_key,
    member_pg,
    replace,
    report_clamps,
)

POSTGRES_ENGINES = ("postgres", "aurora-postgresql")
DEFAULT_VERSIONS = {"postgres": "15.7", "aurora-postgresql": "15.4"}
AZS = ("us-east-1a", "us-east-1b", "us-east-1c")


def _pg_module():
    from tests.lab import postgres
    return postgres


def _azs(region: str | None) -> tuple[str, ...]:
    region = region or "us-east-1"
    return tuple(f"{region}{letter}" for letter in "abc")


def _other_az(az: str | None, region: str | None = None) -> str:
    region_azs = [a for a in _azs(region or (az[:-1] if az else None)) if a != az]
    return region_azs[0]


# --------------------------------------------------------------------------------------------------------------
# endpoints_reach_postgres

def endpoints_reach_postgres() -> None:
    """Every DB instance and Aurora cluster gets a real PostgreSQL 15; Endpoint/ReaderEndpoint point at it."""
    DBInstance.default_engine_versions["postgres"] = DEFAULT_VERSIONS["postgres"]
    original_default_cluster_version = DBCluster.default_engine_version

    def default_engine_version(engine: str) -> str:
        return DEFAULT_VERSIONS.get(engine) or original_default_cluster_version(engine)

    replace(DBCluster, "default_engine_version", staticmethod(default_engine_version))
    replace(DBInstance, "address", property(lambda self: "127.0.0.1"))
    replace(DBInstance, "endpoint", property(_instance_endpoint))
    replace(DBCluster, "endpoint", property(lambda self: "127.0.0.1"))
    replace(DBCluster, "reader_endpoint", property(lambda self: "127.0.0.1"))
    replace(RDSBackend, "create_db_instance", create_db_instance)
    replace(RDSBackend, "create_db_cluster", create_db_cluster)
    replace(RDSBackend, "modify_db_instance", _wrap_modify_db_instance(RDSBackend.modify_db_instance))
    replace(RDSBackend, "modify_db_cluster", _wrap_modify_db_cluster(RDSBackend.modify_db_cluster))
    replace(rds_responses.RDSResponse, "create_db_instance", _create_response("create_db_instance", "DBInstance"))
    replace(rds_responses.RDSResponse, "create_db_cluster", _create_response("create_db_cluster", "DBCluster"))


def _instance_endpoint(self) -> dict:
    # An Aurora writer's port is its cluster's (the lab's instance endpoint of the writer is the writer endpoint); a
    # reader's is its own standby's. Failovers swap them (_promote_reader, _rekey_members).
    return {"Address": "127.0.0.1", "Port": self.port, "HostedZoneId": HOSTED_ZONE_ID}


def _create_response(method: str, key: str):
    original = getattr(rds_responses.RDSResponse, method)

    def respond(self):
        result = original(self)
        # AWS answers a create with "creating" whatever happens next; describe shows the real phases.
        shown = copy.copy(result.result[key])
        shown.__dict__["_lab_phases"] = [Phase("creating", float("inf"))]
        return rds_responses.ActionResult({key: shown})

    respond.__name__ = method
    return respond


def _default_version(kwargs: dict) -> None:
    engine = kwargs.get("engine")
    if engine in DEFAULT_VERSIONS and not kwargs.get("engine_version"):
        kwargs["engine_version"] = DEFAULT_VERSIONS[engine]


def _record_start_clamps(key: str, pg, settings: dict, resource) -> None:
    """PgCluster clamps settings to the lab's limits: record and report what it did to the settings it started with."""
    started = getattr(pg, "start_result", None)
    if started is not None:
        report_clamps(key, started.get("clamped"), resource)
        return
    memory = {name: value for name, value in settings.items() if name in (
        "shared_buffers", "effective_cache_size", "maintenance_work_mem", "work_mem", "wal_buffers",
        "autovacuum_work_mem", "temp_buffers", "max_connections", "autovacuum_max_workers")}
    if memory:
        report_clamps(key, pg.apply_settings(memory).get("clamped"), resource)


def create_db_instance(self: RDSBackend, db_kwargs: dict, pg_factory=None, creating_seconds=None) -> DBInstance:
    """moto's create_db_instance, with a PostgreSQL started before the automated snapshot is taken."""
    database_id = db_kwargs["db_instance_identifier"]
    if database_id in self.databases:
        raise DBInstanceAlreadyExists()
    self._validate_db_identifier(database_id)
    _default_version(db_kwargs)
    if db_kwargs.get("db_cluster_identifier") is None:
        database = DBInstance(self, **db_kwargs)
    else:
        database = DBInstanceClustered(backend=self, **db_kwargs)
    cluster_id = database.db_cluster_identifier
    cluster = self.clusters.get(cluster_id) if cluster_id else None
    if cluster is not None:
        if cluster.engine in ClusterEngine.serverless_engines() and cluster.engine_mode == "serverless":
            raise InvalidParameterValue("Instances cannot be added to Aurora Serverless clusters.")
        if database.engine != cluster.engine:
            raise InvalidDBInstanceEngine(str(database.engine), str(cluster.engine))
    started = None  # (key, PgCluster, settings) of a new instance's own PostgreSQL
    if database.multi_az and cluster is None:
        database.secondary_availability_zone = _other_az(database.availability_zone, self.region_name)
    if cluster is not None:
        if not db_kwargs.get("availability_zone"):
            azs = _azs(self.region_name)
            database.availability_zone = azs[len(cluster._members) % len(azs)]
        database.port = cluster.port
        writer_pg = lab().pg_for(cluster_key(cluster.db_cluster_identifier, cluster.region))
        if writer_pg is not None and cluster._members:
            # Aurora reader: a hot standby of the cluster's writer (streaming from the global writer's PostgreSQL,
            # which is the cluster's own unless the cluster is a global database's secondary).
            key = member_key(database_id, self.region_name)
            # The cluster's settings: a hot standby pauses replay with max_connections (and the like) below its
            # source's, so readers run the writer's.
            pg = _pg_module().PgCluster.create_standby(lab().root, pg_name("member", database_id),
                                                       _replication_source(cluster),
                                                       settings=parameters.settings_for_cluster(cluster))
            lab().set_pg(key, pg)
            database.port = pg.port
        # moto leaves DBSubnetGroup off cluster members; AWS shows the cluster's.
        subnet_group = self.subnet_groups.get(cluster.db_subnet_group_name)
        if subnet_group is not None:
            database.db_subnet_group = subnet_group
    elif database.engine == "postgres":
        settings = parameters.settings_for_instance(database)
        key = instance_key(database_id)
        if pg_factory is not None:
            pg = pg_factory(pg_name("db", database_id), settings)
        else:
            pg = _pg_module().PgCluster(lab().root, pg_name("db", database_id))
            try:
                pg.initialize(database.master_username or "postgres", master_password_of(database),
                              database.db_name, settings=settings)
            except BaseException:
                pg.destroy()
                raise
        lab().set_pg(key, pg)
        started = (key, pg, settings)
        database.port = pg.port
    database.__dict__["_lab_started_at"] = time.time()
    self.databases[database_id] = database
    instance_event(database, "DB instance created", ["creation"])
    if started is not None:
        _record_start_clamps(*started, database)
    timing = lab().timing
    begin_phase(database, "creating", timing.seconds("create") if creating_seconds is None else creating_seconds)
    begin_phase(database, "backing-up", timing.seconds("backing_up"))
    if cluster is None:
        database.save_automated_backup()
    return database


def create_db_cluster(self: RDSBackend, kwargs: dict, pg_factory=None, creating_seconds=None) -> DBCluster:
    """moto's create_db_cluster, with one PostgreSQL per Aurora PostgreSQL cluster."""
    _default_version(kwargs)
    if kwargs.get("engine") == "aurora-postgresql" and not kwargs.get("db_cluster_parameter_group_name"):
        kwargs["db_cluster_parameter_group_name"] = parameters.default_cluster_group_name(
            kwargs["engine"], kwargs["engine_version"])
    cluster_id = kwargs["db_cluster_identifier"]
    if cluster_id in self.clusters:
        raise RDSClientError("DBClusterAlreadyExistsFault", "DB Cluster already exists")
    cluster = DBCluster(self, **kwargs)
    global_source = _global_primary_pg(self, cluster) if pg_factory is None else None
    if cluster.engine in POSTGRES_ENGINES:
        parameters.cluster_group_of(cluster)  # DBClusterParameterGroupNotFound before anything is started
        settings = parameters.settings_for_cluster(cluster)
        if global_source is not None:
            # A global database's secondary: its PostgreSQL is a hot standby of the primary cluster's writer.
            pg = _pg_module().PgCluster.create_standby(lab().root, pg_name("cluster", cluster_id), global_source,
                                                       settings=settings)
        elif pg_factory is not None:
            pg = pg_factory(pg_name("cluster", cluster_id), settings)
        else:
            pg = _pg_module().PgCluster(lab().root, pg_name("cluster", cluster_id))
            try:
                pg.initialize(cluster.master_username or "postgres", master_password_of(cluster),
                              cluster.database_name, settings=settings)
            except BaseException:
                pg.destroy()
                raise
        lab().set_pg(cluster_key(cluster_id), pg)
        cluster.port = pg.port
    self.clusters[cluster_id] = cluster
    cluster.__dict__["_lab_started_at"] = time.time()
    cluster_event(cluster, "DB cluster created", ["creation"])
    if cluster.engine in POSTGRES_ENGINES:
        _record_start_clamps(cluster_key(cluster_id), lab().pg_for(cluster_key(cluster_id)), settings, cluster)
    timing = lab().timing
    begin_phase(cluster, "creating", timing.seconds("create") if creating_seconds is None else creating_seconds)
    begin_phase(cluster, "backing-up", timing.seconds("backing_up"))
    cluster.save_automated_backup()
    if cluster.global_cluster_identifier:
        for regional_backend in rds_models.rds_backends[self.account_id]:
            regional = rds_models.rds_backends[self.account_id][regional_backend]
            if cluster.global_cluster_identifier in regional.global_clusters:
                global_cluster = regional.global_clusters[cluster.global_cluster_identifier]
                global_cluster.members.append(cluster)
                cluster.is_writer = len(global_cluster.members) == 1
    if cluster.replication_source_identifier:
        original_cluster = rds_models.find_cluster(cluster.replication_source_identifier)
        original_cluster.read_replica_identifiers.append(cluster.db_cluster_arn)
    return cluster


def _wrap_modify_db_instance(original):
    def modify_db_instance(self: RDSBackend, db_instance_identifier: str, db_kwargs: dict) -> DBInstance:
        database = self.describe_db_instances(db_instance_identifier)[0]
        if current_status(database, "db", database.db_instance_identifier) not in ("available", "storage-optimization"):
            raise InvalidDBInstanceStateError(db_instance_identifier, "modify")
        old_group = database.db_parameter_group_name
        old_class = database.db_instance_class
        old_key = instance_key(db_instance_identifier)
        new_id = db_kwargs.get("new_db_instance_identifier")
        password = db_kwargs.get("master_user_password")
        multi_az = db_kwargs.get("multi_az")
        database = original(self, db_instance_identifier, db_kwargs)
        if new_id:
            lab().rename_pg(old_key, instance_key(new_id))
        pg = pg_of_instance(database)
        if password and pg is not None:
            pg.set_master_password(database.master_username, password)
            instance_event(database, "Reset master credentials", ["configuration change"])
        if multi_az is not None and database.db_cluster_identifier is None:
            database.secondary_availability_zone = _other_az(database.availability_zone) if multi_az else None
        if database.db_parameter_group_name != old_group or database.db_instance_class != old_class:
            parameters.mark_pending_reboot(database)
        begin_phase(database, "modifying", lab().timing.seconds("modify"))
        return database

    return modify_db_instance


def _wrap_modify_db_cluster(original):
    def modify_db_cluster(self: RDSBackend, kwargs: dict) -> DBCluster:
        cluster_id = kwargs["db_cluster_identifier"]
        if cluster_id not in self.clusters:
            raise DBClusterNotFoundError(cluster_id)
        password = kwargs.get("master_user_password")
        new_id = kwargs.get("new_db_cluster_identifier")
        if kwargs.get("db_cluster_parameter_group_name"):
            parameters.cluster_group_by_name(self, kwargs["db_cluster_parameter_group_name"])
        result = original(self, kwargs)
        cluster = self.clusters[new_id or cluster_id]
        if new_id:
            lab().rename_pg(cluster_key(cluster_id), cluster_key(new_id))
        pg = lab().pg_for(cluster_key(cluster.db_cluster_identifier))
        if password and pg is not None:
            pg.set_master_password(cluster.master_username, password)
        begin_phase(cluster, "modifying", lab().timing.seconds("modify"))
        return result

    return modify_db_cluster


# --------------------------------------------------------------------------------------------------------------
# status_takes_time

def status_takes_time() -> None:
    """Statuses come from timestamps (creating -> backing-up -> available, modifying, rebooting, deleting...)."""

    def instance_status(self):
        return current_status(self, "db", self.__dict__.get("_db_instance_identifier", ""))

    def set_instance_status(self, value):
        self.__dict__["_lab_base_status"] = value

    def cluster_status(self):
        return current_status(self, "cluster", self.__dict__.get("_db_cluster_identifier", ""))

    replace(DBInstance, "status", property(instance_status, set_instance_status))
    replace(DBCluster, "status", property(cluster_status, set_instance_status))
    replace(DBInstance, "db_instance_status", property(instance_status))
    replace(RDSBackend, "stop_db_instance", _timed(RDSBackend.stop_db_instance, "stopping"))
    replace(RDSBackend, "start_db_instance", _timed(RDSBackend.start_db_instance, "starting"))


def _timed(original, status: str):
    def method(self, db_instance_identifier, *args, **kwargs):
        database = original(self, db_instance_identifier, *args, **kwargs)
        pg = pg_of_instance(database)
        if pg is not None and database.db_cluster_identifier is None:
            if status == "stopping":
                pg.stop("fast")
            else:
                pg.start()
        begin_phase(database, status, lab().timing.seconds("start_stop"))
        return database

    method.__name__ = original.__name__
    return method


# --------------------------------------------------------------------------------------------------------------
# reboot_restarts_postgres / forced_failover

def forced_failover() -> None:
    """reboot_db_instance restarts PostgreSQL; ForceFailover fails a Multi-AZ instance over (and is refused
    on a single-AZ one); failover_db_cluster moves an Aurora writer."""
    replace(rds_responses.RDSResponse, "reboot_db_instance", _reboot_response)
    replace(RDSBackend, "reboot_db_instance", reboot_db_instance)
    replace(RDSBackend, "failover_db_cluster", failover_db_cluster)


def _reboot_response(self):
    identifier = self.params.get("DBInstanceIdentifier")
    force = str(self.params.get("ForceFailover", "false")).lower() in ("true", "1")
    database = self.backend.reboot_db_instance(identifier, force_failover=force)
    return rds_responses.ActionResult({"DBInstance": database})


def reboot_db_instance(self: RDSBackend, db_instance_identifier: str, force_failover: bool = False) -> DBInstance:
    database = self.describe_db_instances(db_instance_identifier)[0]
    identifier = database.db_instance_identifier
    if current_status(database, "db", identifier) != "available":
        raise RDSClientError("InvalidDBInstanceState", f"DB instance {identifier} is not in available state.")
    if force_failover and database.db_cluster_identifier:
        raise InvalidParameterCombination("ForceFailover is not supported for DB instances in a DB cluster; "
                                          "use FailoverDBCluster.")
    if force_failover and not database.multi_az:
        raise InvalidParameterCombination(
            "Failover is not supported for DB instance " f"{identifier} because it is not a Multi-AZ DB instance.")
    state = lab()
    generation = state.generation
    timing = state.timing
    pg = pg_of_instance(database)
    restarts_pg = pg is not None and (database.db_cluster_identifier is None or database.is_cluster_writer)
    settings = parameters.settings_for_instance(database) if restarts_pg else None

    if force_failover:
        lossy = state.lossy.pop(instance_key(identifier), None)
        outage = timing.seconds("failover")
        dns = timing.seconds("dns_propagation")

        def work():
            started = datetime.now(timezone.utc)
            instance_event(database, "Multi-AZ instance failover started", ["failover"])
            entry = {"kind": "db-instance", "identifier": identifier, "started_at": started.isoformat(),
                     "outage_seconds": outage, "lossy": bool(lossy),
                     "from_az": database.availability_zone, "to_az": database.secondary_availability_zone}
            state.failover_phase("started", entry)
            if pg is not None:
                if dns:
                    pg.refuse_tcp_logins(reload=False)
                if lossy:
                    entry.update(pg.lossy_failover(lossy["freeze_seconds"], outage))
                    entry.update(pg_stopped_at=entry["primary_stopped_at"], pg_ready_at=entry["promoted_at"])
                else:
                    entry.update(pg.outage(outage))
                _writer_ready(state, generation, pg, entry, dns)
            with state.lock:
                if state.generation != generation:
                    return
                database.availability_zone, database.secondary_availability_zone = (
                    database.secondary_availability_zone, database.availability_zone)
                parameters.clear_pending_reboot(database)
                instance_event(database, "Multi-AZ instance failover completed", ["failover"])
                entry["completed_at"] = datetime.now(timezone.utc).isoformat()
                state.record_failover(entry)

        job = state.run_job(f"failover-{identifier}", work)
        begin_phase(database, "rebooting", 0.0, job=job)
        return database

    reader_pg = member_pg(database) if database.db_cluster_identifier and not database.is_cluster_writer else None
    reader_pgs = []
    # The job runs outside the request: its keys take the instance's region now (REQUEST_REGION is not set there).
    clamp_key = instance_key(identifier, database.region)
    if restarts_pg and database.db_cluster_identifier:
        reader_pgs = [standby for standby in (member_pg(m) for m in list(database.cluster._members)
                                              if m is not database) if standby is not None]

    def restart():
        instance_event(database, "DB instance shutdown", ["availability"])
        began = time.monotonic()
        if restarts_pg:
            report_clamps(clamp_key, pg.apply_settings(settings).get("clamped"), database)
            pg.restart()
            # As Aurora restarts its readers with the writer: they take the cluster's settings too (a hot standby
            # whose max_connections and the like are below its source's stops replaying).
            for standby in reader_pgs:
                standby.apply_settings(settings)
                standby.restart()
        elif reader_pg is not None:  # an Aurora reader restarts its own standby
            reader_pg.restart()
        time.sleep(max(0.0, timing.seconds("reboot") - (time.monotonic() - began)))
        with state.lock:
            if state.generation != generation:
                return
            parameters.clear_pending_reboot(database)
            instance_event(database, "DB instance restarted", ["availability"])

    job = state.run_job(f"reboot-{identifier}", restart)
    begin_phase(database, "rebooting", 0.0, job=job)
    return database


def _writer_ready(state, generation: int, pg, entry: dict, dns: float) -> None:
    """The failover's new writer accepts connections (``pg_ready_at``): RDS Proxy, which tracks the writer itself,
    reaches it now (the ``writer_ready`` phase); the endpoint clients resolve takes ``dns`` seconds longer, its TCP
    logins refused meanwhile (``endpoint_ready_at``; clients still resolve the old primary, as with the RDS
    endpoint's DNS record moving and its TTL running out in client caches)."""
    state.failover_phase("writer_ready", entry)
    if dns:
        waited = (datetime.now(timezone.utc) - datetime.fromisoformat(entry["pg_ready_at"])).total_seconds()
        time.sleep(max(0.0, dns - waited))
        if state.generation != generation:  # the lab was reset meanwhile: the cluster is gone
            return
        pg.refuse_tcp_logins(False)
    entry["endpoint_ready_at"] = datetime.now(timezone.utc).isoformat() if dns else entry["pg_ready_at"]


def failover_db_cluster(self: RDSBackend, db_cluster_identifier: str,
                        target_db_instance_identifier: str | None = None) -> DBCluster:
    if db_cluster_identifier not in self.clusters:
        raise DBClusterNotFoundError(
            db_cluster_identifier,
            f"The source cluster could not be found or cannot be accessed: {db_cluster_identifier}")
    cluster = self.clusters[db_cluster_identifier]
    if current_status(cluster, "cluster", cluster.db_cluster_identifier) != "available":
        raise InvalidDBClusterStateFault(f"DbCluster {db_cluster_identifier} is not in available state.")
    members = cluster.members
    if len(members) < 2:
        raise InvalidDBClusterStateFault(
            f"Database cluster:{cluster.db_cluster_identifier} should have at least two database instances "
            "for failover")
    writer = cluster.writer
    if target_db_instance_identifier is not None:
        target = next((m for m in members if m.db_instance_identifier == target_db_instance_identifier.lower()),
                      None)
        if target is None:
            raise InvalidParameterValue(f"Cannot find target instance: {target_db_instance_identifier}")
        if target.is_cluster_writer:
            raise InvalidParameterValue(f"Instance {target_db_instance_identifier} is already the writer.")
    else:
        readers = [m for m in members if not m.is_cluster_writer and
                   current_status(m, "db", m.db_instance_identifier) == "available"]
        if not readers:
            raise InvalidDBClusterStateFault(
                f"Database cluster:{db_cluster_identifier} should have at least two database instances in valid "
                "states or a valid target instance for failover.")
        # Highest priority is the lowest tier; AWS breaks ties by size, the lab by name.
        target = sorted(readers, key=lambda m: (m.promotion_tier, m.db_instance_identifier))[0]
    if current_status(target, "db", target.db_instance_identifier) != "available":
        raise rds_models.InvalidDBInstanceStateFault(
            f"Instance {target.db_instance_identifier} should be in valid state for failover.")
    if _is_global_secondary(cluster):
        raise InvalidDBClusterStateFault(
            f"DB cluster {db_cluster_identifier} is a secondary cluster of a global database: use "
            "SwitchoverGlobalCluster or FailoverGlobalCluster.")
    state = lab()
    generation = state.generation
    outage = state.timing.seconds("failover")
    dns = state.timing.seconds("dns_propagation")
    pg = state.pg_for(cluster_key(cluster.db_cluster_identifier))
    lossy = state.lossy.pop(cluster_key(cluster.db_cluster_identifier), None)
    target_id = target.db_instance_identifier
    target_pg = member_pg(target)

    def work():
        started = datetime.now(timezone.utc)
        cluster_event(cluster, f"Started cluster failover to DB instance: {target_id}", ["failover"])
        entry = {"kind": "db-cluster", "identifier": cluster.db_cluster_identifier, "started_at": started.isoformat(),
                 "outage_seconds": outage, "lossy": bool(lossy),
                 "from_writer": writer.db_instance_identifier if writer else None, "to_writer": target_id}
        state.failover_phase("started", entry)
        rejoin = None  # what makes the other instances readers of the new writer again, after the failover
        if pg is not None and target_pg is not None and not lossy:
            rejoin = _promote_reader(state, generation, cluster, writer, target, pg, target_pg, entry, outage, dns)
        elif pg is not None:
            if dns:
                pg.refuse_tcp_logins(reload=False)
            if lossy:
                entry.update(pg.lossy_failover(lossy["freeze_seconds"], outage))
                entry.update(pg_stopped_at=entry["primary_stopped_at"], pg_ready_at=entry["promoted_at"])
            else:
                entry.update(pg.outage(outage))
            _writer_ready(state, generation, pg, entry, dns)
            if target_pg is not None:
                # The writer's PostgreSQL moved to a new timeline: the readers' standbys start again from it, the
                # target's own standby now serves the old writer instance.
                _rekey_members(state, target, writer)

                def rejoin():
                    _follow_writer(cluster, pg)
        if rejoin is not None and state.generation == generation:
            # Until the others are readers of the new writer again, the cluster is failing-over (a drill that waits
            # for "available" may fail over again at once).
            rejoin()
        with state.lock:
            if state.generation != generation:
                return
            cluster.failover(target)
            cluster_event(cluster, f"Completed failover to DB instance: {target_id}", ["failover"])
            entry["completed_at"] = datetime.now(timezone.utc).isoformat()
            state.record_failover(entry)

    job = state.run_job(f"failover-{cluster.db_cluster_identifier}", work)
    begin_phase(cluster, "failing-over", 0.0, job=job)
    for member in (writer, target):
        if member is not None:
            begin_phase(member, "rebooting", 0.0, job=job)
    return cluster


def _promote_reader(state, generation: int, cluster, writer, target, pg, target_pg, entry: dict, outage: float,
                    dns: float):
    """Aurora's failover is lossless (one shared storage volume): the writer takes no more writes, the target
    reader's standby replays all it has, the writer stops, and after ``outage`` seconds the standby takes the
    cluster's port (the writer endpoint) and is promoted there (the lab counts the rows it lacks: none). Returns what
    then makes the old writer a hot standby of the new one on the target's former port, and the other readers follow
    it (None if the lab was reset)."""
    cluster_port = pg.port
    reader_port = target_pg.port
    fence(pg)
    catch_up(target_pg)
    pg.stop("fast")
    stopped = time.monotonic()
    entry["pg_stopped_at"] = datetime.now(timezone.utc).isoformat()
    pg.refuse_tcp_logins(False, reload=False)
    if dns:
        target_pg.refuse_tcp_logins(reload=False)
    time.sleep(max(0.0, outage - (time.monotonic() - stopped)))
    # The standby takes the writer endpoint's port first, then is promoted there: clients that connect in between
    # get read-only errors, as on AWS before the promotion ends.
    target_pg.move_to_port(cluster_port)
    promoted = target_pg.promote()
    entry["pg_ready_at"] = datetime.fromtimestamp(promoted["writable_at"], timezone.utc).isoformat()
    entry["lost_rows"], entry["lost_total"] = promoted.get("lost_rows"), promoted.get("lost_total")
    if state.generation != generation:
        return None
    with state.lock:
        state.set_pg(cluster_key(cluster.db_cluster_identifier, cluster.region), target_pg)
        state.pg.pop(member_key(target.db_instance_identifier, cluster.region), None)
        target.port = cluster_port
    _writer_ready(state, generation, target_pg, entry, dns)
    if writer is None or state.generation != generation:
        return None

    def rejoin():
        pg.move_to_port(reader_port)
        with state.lock:
            state.set_pg(member_key(writer.db_instance_identifier, cluster.region), pg)
            writer.port = pg.port
        _follow_writer(cluster, target_pg, skip=(target.db_instance_identifier,))

    return rejoin


def _rekey_members(state, target, writer) -> None:
    """After a failover that kept the writer's PostgreSQL: the target's standby now serves the old writer."""
    with state.lock:
        standby = state.pg.pop(member_key(target.db_instance_identifier, target.region), None)
        if standby is None or writer is None:
            return
        state.set_pg(member_key(writer.db_instance_identifier, writer.region), standby)
        cluster_port = writer.port
        writer.port = standby.port
        target.port = cluster_port


def _follow_writer(cluster, writer_pg, skip=()) -> None:
    """Every reader standby of the cluster streams from ``writer_pg`` from now on."""
    standbys = [standby for standby in (member_pg(member) for member in list(cluster._members)
                                        if member.db_instance_identifier not in skip)
                if standby is not None and standby is not writer_pg]
    follow_all(standbys, writer_pg)


def follow_all(standbys: list, source) -> None:
    """``standby.follow(source)`` for each, side by side (each is a base backup of the source and a start)."""
    if len(standbys) <= 1:
        for standby in standbys:
            standby.follow(source)
        return
    with ThreadPoolExecutor(len(standbys), thread_name_prefix="lab-follow") as pool:
        for future in [pool.submit(standby.follow, source) for standby in standbys]:
            future.result()


def fence(pg) -> None:
    """The writer takes no more writes: new TCP logins refused, client sessions ended (the unix socket, which the
    standbys stream over, stays open)."""
    from tests.lab.postgres import ADMIN_USER
    pg.refuse_tcp_logins(True)
    pg.admin_query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                   "AND usename IS DISTINCT FROM %s AND pid <> pg_backend_pid()", (ADMIN_USER,))


def catch_up(standby, timeout: float = 60.0) -> None:
    """Wait until ``standby`` has replayed all its (fenced) source has."""
    deadline = time.monotonic() + timeout
    while standby.lag_bytes() > 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"standby {standby.name} did not catch up in {timeout} s")
        time.sleep(0.02)


def _is_global_secondary(cluster) -> bool:
    from tests.lab.fidelity import global_clusters
    return global_clusters.is_secondary(cluster)


def _global_primary_pg(backend, cluster):
    from tests.lab.fidelity import global_clusters
    return global_clusters.primary_pg_for_new_member(backend, cluster)


def _replication_source(cluster):
    """The PostgreSQL a new reader of ``cluster`` streams from: the global database's writer for a secondary
    cluster, else the cluster's own writer."""
    from tests.lab.fidelity import global_clusters
    return global_clusters.writer_pg_of_topology(cluster)


# --------------------------------------------------------------------------------------------------------------
# describe_events

def describe_events() -> None:
    """describe_events filters by SourceType, SourceIdentifier, StartTime/EndTime/Duration and EventCategories."""
    replace(rds_responses.RDSResponse, "describe_events", _describe_events_response)


def _as_datetime(value) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    text = str(value).replace("Z", "+00:00")
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _describe_events_response(self):
    params = self.params
    source_type = params.get("SourceType")
    source_id = params.get("SourceIdentifier")
    if source_id is not None and source_type is None:
        raise InvalidParameterCombination("Cannot specify source identifier without source type")
    now = datetime.now(timezone.utc)
    start, end = _as_datetime(params.get("StartTime")), _as_datetime(params.get("EndTime"))
    if start is None:
        duration = int(params.get("Duration") or 60)
        start = (end or now) - timedelta(minutes=duration)
    end = end or now
    categories = set(params.get("EventCategories") or [])
    events = []
    for event in self.backend.events:
        date = _as_datetime(event.date)
        if not (start <= date <= end):
            continue
        if source_type and event.source_type != source_type:
            continue
        if source_id and event.source_identifier != source_id.lower():
            continue
        if categories and not categories & set(event.event_categories):
            continue
        events.append(event)
    max_records = int(params.get("MaxRecords") or 100)
    offset = int(params.get("Marker") or 0)
    page = events[offset: offset + max_records]
    marker = str(offset + max_records) if offset + max_records < len(events) else None
    return rds_responses.ActionResult({"Events": page, "Marker": marker})
