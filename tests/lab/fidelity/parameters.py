# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parameter groups as RDS has them: engine metadata and defaults, validation, apply status, values that reach
PostgreSQL."""

from __future__ import annotations

import time

from moto.rds import responses as rds_responses
from moto.rds.exceptions import DBClusterParameterGroupNotFoundError, DBParameterGroupNotFoundError, RDSClientError
from moto.rds.models import DBCluster, DBClusterParameterGroup, DBInstance, DBParameterGroup, RDSBackend

from tests.lab import parameter_metadata as meta
from tests.lab.fidelity._support import cluster_key, instance_key, lab, pg_of_instance, replace, report_clamps

DEFAULT_CLUSTER_CLASS = "db.r6g.large"


def _plain(item):
    return item.original_dict() if hasattr(item, "original_dict") else dict(item)


def _raise(error: meta.ParameterError):
    raise RDSClientError(error.code, error.message)


def _family_of(group) -> str:
    return getattr(group, "family", None) or getattr(group, "db_parameter_group_family", None) or ""


def _default_family(name: str) -> str | None:
    if name.lower().startswith("default."):
        family = name[len("default."):].lower()
        if meta.is_known_family(family):
            return family
    return None


def default_cluster_group_name(engine: str, version: str) -> str:
    return f"default.{engine}{str(version).split('.', maxsplit=1)[0]}"


# --------------------------------------------------------------------------------------------------------------
# lookups (default groups exist from the start, as on AWS)

def group_by_name(backend: RDSBackend, name: str) -> DBParameterGroup:
    group = backend.db_parameter_groups.get(name)
    if group is None:
        family = _default_family(name)
        if family is None:
            raise DBParameterGroupNotFoundError(name)
        group = DBParameterGroup(backend=backend, db_parameter_group_name=name.lower(),
                                 description=f"Default parameter group for {family}",
                                 db_parameter_group_family=family, tags=[])
        backend.db_parameter_groups[name.lower()] = group
    return group


def cluster_group_by_name(backend: RDSBackend, name: str) -> DBClusterParameterGroup:
    group = backend.db_cluster_parameter_groups.get(name)
    if group is None:
        family = _default_family(name)
        if family is None:
            raise DBClusterParameterGroupNotFoundError(name)
        group = DBClusterParameterGroup(backend=backend, db_cluster_parameter_group_name=name.lower(),
                                        description=f"Default cluster parameter group for {family}",
                                        db_parameter_group_family=family, tags=[])
        backend.db_cluster_parameter_groups[name.lower()] = group
    return group


def cluster_group_of(cluster: DBCluster) -> DBClusterParameterGroup:
    return cluster_group_by_name(cluster.backend, cluster.parameter_group)


def instance_group(database: DBInstance) -> DBParameterGroup:
    return database.db_parameter_groups()[0]


def _is_default(group) -> bool:
    return group.name.startswith("default.")


# --------------------------------------------------------------------------------------------------------------
# settings for PostgreSQL

def settings_for_instance(database: DBInstance) -> dict[str, str]:
    if database.db_cluster_identifier:
        cluster = database.backend.clusters.get(database.db_cluster_identifier)
        return settings_for_cluster(cluster) if cluster is not None else {}
    group = instance_group(database)
    return meta.local_settings(_family_of(group), group.parameters, database.db_instance_class)


def settings_for_cluster(cluster: DBCluster) -> dict[str, str]:
    group = cluster_group_of(cluster)
    writer = cluster.writer if cluster.__dict__.get("_db_cluster_identifier") in cluster.backend.clusters else None
    instance_values, instance_class = {}, DEFAULT_CLUSTER_CLASS
    if writer is not None:
        instance_values = instance_group(writer).parameters
        instance_class = writer.db_instance_class
    family = _family_of(group)
    if family not in meta.POSTGRES_FAMILIES:
        return {}
    return meta.local_settings(family, group.parameters, instance_class, extra_user_values=instance_values)


def mark_pending_reboot(resource) -> None:
    resource.__dict__["_lab_pending_reboot"] = True


def clear_pending_reboot(database) -> None:
    database.__dict__.pop("_lab_pending_reboot", None)
    if database.db_cluster_identifier:
        cluster = database.backend.clusters.get(database.db_cluster_identifier)
        if cluster is not None and database.is_cluster_writer:
            cluster.__dict__.pop("_lab_pending_reboot", None)


def _apply_status(resource) -> str:
    if resource.__dict__.get("_lab_pending_reboot"):
        return "pending-reboot"
    if resource.__dict__.get("_lab_applying_until", 0) > time.time():
        return "applying"
    return "in-sync"


def _apply_to_postgres(key: str, pg, before: dict, after: dict, immediate: set[str], resource) -> None:
    """Apply the immediate changes to a running PostgreSQL; anything else waits for a reboot."""
    changed = {name for name in set(before) | set(after) if before.get(name) != after.get(name)}
    now_names = {n for n in changed if n in immediate or (n == "wal_level" and "rds.logical_replication" in immediate)}
    later = changed - now_names
    if later:
        mark_pending_reboot(resource)
    if not now_names or pg is None or not pg.is_running():
        return
    result = pg.apply_settings({name: after.get(name) for name in sorted(now_names)})
    report_clamps(key, result.get("clamped"), resource)
    if result.get("needs_restart"):
        mark_pending_reboot(resource)
    resource.__dict__["_lab_applying_until"] = time.time() + lab().timing.seconds("param_apply")


def _immediate_names(changes: list[dict]) -> set[str]:
    return {change["ParameterName"] for change in changes if change["ApplyMethod"] == "immediate"}


def _pending_names(changes: list[dict]) -> bool:
    return any(change["ApplyMethod"] == "pending-reboot" for change in changes)


def _users_of_group(backend: RDSBackend, group) -> list[DBInstance]:
    users = []
    for database in list(backend.databases.values()):
        try:
            if instance_group(database).name == group.name:
                users.append(database)
        except Exception:  # a database whose group vanished uses nothing we change
            continue
    return users


def _change_instance_group(backend: RDSBackend, group: DBParameterGroup, apply_change) -> None:
    """Run apply_change(group) and push its effect to every instance using the group."""
    users = _users_of_group(backend, group)
    before = {id(db): settings_for_instance(db) for db in users}
    changes = apply_change(group)
    immediate = _immediate_names(changes)
    for database in users:
        after = settings_for_instance(database)
        if database.db_cluster_identifier:
            cluster = backend.clusters.get(database.db_cluster_identifier)
            if not database.is_cluster_writer or cluster is None:
                if _pending_names(changes):
                    mark_pending_reboot(database)
                continue
            key = cluster_key(cluster.db_cluster_identifier)
        else:
            key = instance_key(database.db_instance_identifier)
        _apply_to_postgres(key, pg_of_instance(database), before[id(database)], after, immediate, database)
        if _pending_names(changes):
            mark_pending_reboot(database)


def _change_cluster_group(backend: RDSBackend, group: DBClusterParameterGroup, apply_change) -> None:
    clusters = [c for c in backend.clusters.values() if c.parameter_group == group.name]
    before = {id(c): settings_for_cluster(c) for c in clusters}
    changes = apply_change(group)
    immediate = _immediate_names(changes)
    for cluster in clusters:
        after = settings_for_cluster(cluster)
        pg = lab().pg_for(cluster_key(cluster.db_cluster_identifier))
        _apply_to_postgres(cluster_key(cluster.db_cluster_identifier), pg, before[id(cluster)], after, immediate,
                           cluster)
        if _pending_names(changes):
            mark_pending_reboot(cluster)


# --------------------------------------------------------------------------------------------------------------
# patches

def parameter_group_not_found() -> None:
    """A missing group raises DBParameterGroupNotFound (moto lists []); default groups always exist."""
    original_describe = RDSBackend.describe_db_parameter_groups

    def describe_db_parameter_groups(self, kwargs):
        name = kwargs.get("db_parameter_group_name")
        if name:
            return [group_by_name(self, name)]
        for family in meta.FAMILY_ENGINES:
            group_by_name(self, f"default.{family}")
        return original_describe(self, kwargs)

    def describe_db_cluster_parameter_groups(self, group_name):
        if group_name:
            return [cluster_group_by_name(self, group_name)]
        cluster_group_by_name(self, "default.aurora-postgresql15")
        return list(self.db_cluster_parameter_groups.values())

    original_create = RDSBackend.create_db_parameter_group

    def create_db_parameter_group(self, kwargs):
        family = kwargs.get("db_parameter_group_family")
        if family and not meta.is_known_family(family):
            raise RDSClientError("InvalidParameterValue",
                                 f"The parameter DBParameterGroupFamily {family} is not a valid parameter group "
                                 f"family (the lab knows {', '.join(meta.FAMILY_ENGINES)}).")
        if kwargs.get("db_parameter_group_name", "").lower().startswith("default."):
            raise RDSClientError("InvalidParameterValue", "The parameter group name can't start with 'default.'.")
        return original_create(self, kwargs)

    original_create_cluster = RDSBackend.create_db_cluster_parameter_group

    def create_db_cluster_parameter_group(self, db_cluster_parameter_group_name, db_parameter_group_family,
                                          description, tags):
        if db_parameter_group_family and not meta.is_known_family(db_parameter_group_family):
            raise RDSClientError("InvalidParameterValue",
                                 f"The parameter DBParameterGroupFamily {db_parameter_group_family} is not a valid "
                                 "parameter group family (the lab knows aurora-postgresql15).")
        return original_create_cluster(self, db_cluster_parameter_group_name, db_parameter_group_family,
                                       description, tags)

    original_delete = RDSBackend.delete_db_parameter_group

    def delete_db_parameter_group(self, db_parameter_group_name):
        group = group_by_name(self, db_parameter_group_name)
        if _is_default(group):
            raise RDSClientError("InvalidDBParameterGroupState", "Default parameter groups cannot be deleted.")
        if _users_of_group(self, group):
            raise RDSClientError("InvalidDBParameterGroupState",
                                 f"One or more database instances are still members of this parameter group "
                                 f"{group.name}, so the group cannot be deleted")
        return original_delete(self, db_parameter_group_name)

    replace(RDSBackend, "describe_db_parameter_groups", describe_db_parameter_groups)
    replace(RDSBackend, "describe_db_cluster_parameter_groups", describe_db_cluster_parameter_groups)
    replace(RDSBackend, "create_db_parameter_group", create_db_parameter_group)
    replace(RDSBackend, "create_db_cluster_parameter_group", create_db_cluster_parameter_group)
    replace(RDSBackend, "delete_db_parameter_group", delete_db_parameter_group)


def _page(self, items: list, result_key: str, extra: dict | None = None):
    max_records = self.params.get("MaxRecords")
    if max_records is not None:
        max_records = int(max_records)
        if not 20 <= max_records <= 100:
            raise RDSClientError("InvalidParameterValue",
                                 f"Invalid value {max_records} for MaxRecords. Must be between 20 and 100")
    else:
        max_records = 100
    offset = int(self.params.get("Marker") or 0)
    page = items[offset: offset + max_records]
    marker = str(offset + max_records) if offset + max_records < len(items) else None
    return page, marker


def _source_filter(items: list[dict], source: str | None) -> list[dict]:
    if source is None:
        return items
    if source not in ("user", "system", "engine-default"):
        raise RDSClientError("InvalidParameterValue", f"Invalid source {source}: use user, system or engine-default")
    return [item for item in items if item["Source"] == source]


def parameter_metadata() -> None:
    """describe_db_parameters / describe_db_cluster_parameters list the family's full metadata with Source
    filters and pagination, user values on top."""

    def describe_db_parameters(self):
        group = group_by_name(self.backend, self.params.get("DBParameterGroupName"))
        items = _source_filter(meta.group_parameters(_family_of(group), group.parameters),
                               self.params.get("Source"))
        page, marker = _page(self, items, "Parameters")
        return rds_responses.ActionResult({"Parameters": page, "Marker": marker})

    def describe_db_cluster_parameters(self):
        group = cluster_group_by_name(self.backend, self.params.get("DBClusterParameterGroupName"))
        items = _source_filter(meta.group_parameters(_family_of(group), group.parameters),
                               self.params.get("Source"))
        page, marker = _page(self, items, "Parameters")
        return rds_responses.ActionResult({"Parameters": page, "Marker": marker})

    def db_parameter_group_status_list(self):
        group = instance_group(self)
        return [{"DBParameterGroupName": group.name, "ParameterApplyStatus": _apply_status(self)}]

    def db_cluster_members(self):
        cluster_status = _apply_status(self)
        return [{"DBInstanceIdentifier": m.db_instance_identifier, "IsClusterWriter": m.is_cluster_writer,
                 "DBClusterParameterGroupStatus": cluster_status if m.is_cluster_writer else
                 ("pending-reboot" if cluster_status == "pending-reboot" else "in-sync"),
                 "PromotionTier": m.promotion_tier} for m in self.members]

    replace(rds_responses.RDSResponse, "describe_db_parameters", describe_db_parameters)
    replace(rds_responses.RDSResponse, "describe_db_cluster_parameters", describe_db_cluster_parameters)
    replace(DBInstance, "db_parameter_group_status_list", property(db_parameter_group_status_list))
    replace(DBCluster, "db_cluster_members", property(db_cluster_members))


def describe_engine_default_parameters() -> None:
    """describe_engine_default_parameters and describe_engine_default_cluster_parameters exist."""

    def engine_defaults(self):
        family = self.params.get("DBParameterGroupFamily")
        if not family or not meta.is_known_family(family):
            raise RDSClientError("InvalidParameterValue", f"Invalid parameter group family: {family}")
        page, marker = _page(self, meta.engine_default_parameters(family), "Parameters")
        return {"DBParameterGroupFamily": family, "Marker": marker, "Parameters": page}

    def describe_engine_default_parameters(self):
        return rds_responses.ActionResult({"EngineDefaults": engine_defaults(self)})

    def describe_engine_default_cluster_parameters(self):
        return rds_responses.ActionResult({"EngineDefaults": engine_defaults(self)})

    replace(rds_responses.RDSResponse, "describe_engine_default_parameters", describe_engine_default_parameters)
    replace(rds_responses.RDSResponse, "describe_engine_default_cluster_parameters",
            describe_engine_default_cluster_parameters)


def parameter_modify_limit_of_20() -> None:
    """Modify calls are validated as RDS does (at most 20, known, modifiable, allowed value, no immediate on a
    static parameter) and applied all or nothing; immediate dynamic changes reach PostgreSQL, static ones leave the
    instances pending-reboot."""

    def modify_db_parameter_group(self, db_parameter_group_name, db_parameter_group_parameters):
        group = group_by_name(self, db_parameter_group_name)
        try:
            changes = meta.validate_modification(_family_of(group), [_plain(p) for p in db_parameter_group_parameters],
                                                 is_default_group=_is_default(group))
        except meta.ParameterError as error:
            _raise(error)

        def apply_change(target):
            target.update_parameters(changes)
            return changes

        _change_instance_group(self, group, apply_change)
        return group

    def modify_db_cluster_parameter_group(self, db_cluster_parameter_group_name,
                                          db_cluster_parameter_group_parameters):
        group = cluster_group_by_name(self, db_cluster_parameter_group_name)
        try:
            changes = meta.validate_modification(_family_of(group),
                                                 [_plain(p) for p in db_cluster_parameter_group_parameters],
                                                 is_default_group=_is_default(group))
        except meta.ParameterError as error:
            _raise(error)

        def apply_change(target):
            target.update_cluster_parameters(changes)
            return changes

        _change_cluster_group(self, group, apply_change)
        return group

    replace(RDSBackend, "modify_db_parameter_group", modify_db_parameter_group)
    replace(RDSBackend, "modify_db_cluster_parameter_group", modify_db_cluster_parameter_group)


def reset_db_parameter_group() -> None:
    """reset_db_parameter_group / reset_db_cluster_parameter_group put parameters back to the engine defaults."""

    def _reset(group, params):
        reset_all = str(params.get("ResetAllParameters", "false")).lower() in ("true", "1")
        given = [_plain(p) for p in params.get("Parameters") or []]
        if reset_all and given:
            raise RDSClientError("InvalidParameterCombination",
                                 "Specify either ResetAllParameters or a list of Parameters, not both.")
        if not reset_all and not given:
            raise RDSClientError("InvalidParameterCombination",
                                 "Specify ResetAllParameters or a list of Parameters to reset.")
        family = _family_of(group)
        if reset_all:
            index = meta.parameter_index(family)
            changes = [{"ParameterName": name, "ParameterValue": None,
                        "ApplyMethod": "immediate" if index[name]["ApplyType"] == "dynamic" else "pending-reboot"}
                       for name in list(group.parameters) if name in index]
        else:
            try:
                changes = meta.validate_modification(family, given, is_default_group=_is_default(group), reset=True)
            except meta.ParameterError as error:
                _raise(error)
        if _is_default(group):
            raise RDSClientError("InvalidParameterValue", "Default parameter groups cannot be reset.")

        def apply_change(target):
            for change in changes:
                target.parameters.pop(change["ParameterName"], None)
            return changes

        return apply_change

    def reset_db_parameter_group(self):
        group = group_by_name(self.backend, self.params.get("DBParameterGroupName"))
        _change_instance_group(self.backend, group, _reset(group, self.params))
        return rds_responses.ActionResult({"DBParameterGroupName": group.name})

    def reset_db_cluster_parameter_group(self):
        group = cluster_group_by_name(self.backend, self.params.get("DBClusterParameterGroupName"))
        _change_cluster_group(self.backend, group, _reset(group, self.params))
        return rds_responses.ActionResult({"DBClusterParameterGroupName": group.name})

    replace(rds_responses.RDSResponse, "reset_db_parameter_group", reset_db_parameter_group)
    replace(rds_responses.RDSResponse, "reset_db_cluster_parameter_group", reset_db_cluster_parameter_group)
