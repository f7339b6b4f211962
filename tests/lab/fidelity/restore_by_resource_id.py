# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Point-in-time restores name their source by resource id as on AWS: ``SourceDbiResourceId`` restores that DB
instance and ``SourceDbClusterResourceId`` that cluster; an unknown id is DBInstanceNotFound / DBClusterNotFoundFault.
moto 5.2.5 gives every instance the same DbiResourceId and restores the first instance it holds instead."""

from __future__ import annotations

import secrets
import string

from moto.rds import responses as rds_responses
from moto.rds.exceptions import DBClusterNotFoundError, DBInstanceNotFoundError
from moto.rds.models import DBInstance

from tests.lab.fidelity._support import replace

_ALPHABET = string.ascii_uppercase + string.digits


def _new_dbi_resource_id() -> str:
    return "db-" + "".join(secrets.choice(_ALPHABET) for unused in range(26))


def _dbi_resource_id(self) -> str:
    """Each instance's own resource id, made on first read and kept for the instance's life."""
    return self.__dict__.setdefault("_lab_dbi_resource_id", _new_dbi_resource_id())


def _set_dbi_resource_id(self, value) -> None:
    """moto's constructor (and restores copying a source's fields) assign one; an instance keeps its own."""


def _drop_resource_id(params, name: str) -> str | None:
    value = params.get(name)
    if name in params:
        del params[name]
    return value


def _instance_restore(original):
    def restore_db_instance_to_point_in_time(self):
        resource_id = _drop_resource_id(self.params, "SourceDbiResourceId")
        if resource_id and not self.params.get("SourceDBInstanceIdentifier"):
            found = [db for db in self.backend.databases.values() if db.dbi_resource_id == resource_id]
            if not found:
                raise DBInstanceNotFoundError(resource_id)
            self.params["SourceDBInstanceIdentifier"] = found[0].db_instance_identifier
        elif not self.params.get("SourceDBInstanceIdentifier"):
            raise DBInstanceNotFoundError("(no SourceDBInstanceIdentifier or SourceDbiResourceId)")
        return original(self)
    return restore_db_instance_to_point_in_time


def _cluster_restore(original):
    def restore_db_cluster_to_point_in_time(self):
        resource_id = _drop_resource_id(self.params, "SourceDbClusterResourceId")
        if resource_id and not self.params.get("SourceDBClusterIdentifier"):
            found = [c for c in self.backend.clusters.values() if c.db_cluster_resource_id == resource_id]
            if not found:
                raise DBClusterNotFoundError(resource_id)
            self.params["SourceDBClusterIdentifier"] = found[0].db_cluster_identifier
        elif not self.params.get("SourceDBClusterIdentifier"):
            raise DBClusterNotFoundError("(no SourceDBClusterIdentifier or SourceDbClusterResourceId)")
        return original(self)
    return restore_db_cluster_to_point_in_time


def restore_by_resource_id() -> None:
    """Unique DbiResourceIds, and point-in-time restores that find their source by resource id."""
    replace(DBInstance, "dbi_resource_id", property(_dbi_resource_id, _set_dbi_resource_id))
    replace(rds_responses.RDSResponse, "restore_db_instance_to_point_in_time",
            _instance_restore(rds_responses.RDSResponse.restore_db_instance_to_point_in_time))
    replace(rds_responses.RDSResponse, "restore_db_cluster_to_point_in_time",
            _cluster_restore(rds_responses.RDSResponse.restore_db_cluster_to_point_in_time))
