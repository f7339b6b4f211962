# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""DB instance classes are the ones RDS offers: an unknown DBInstanceClass is InvalidParameterValue at create and
modify (moto 5.2.5 accepts any string), and DBInstanceClassMemory comes from the collection's class table
(``tests.lab.parameter_metadata.class_sizing``)."""

from __future__ import annotations

from moto.rds.exceptions import InvalidParameterValue
from moto.rds.models import RDSBackend

from tests.lab import parameter_metadata as meta
from tests.lab.fidelity._support import replace


def _check_class(instance_class) -> None:
    if instance_class is None:
        return
    try:
        meta.class_sizing(instance_class)
    except meta.ParameterError as error:
        raise InvalidParameterValue(error.message) from None


def _checked_create(original):
    def create_db_instance(self, db_kwargs, *args, **kwargs):
        _check_class(db_kwargs.get("db_instance_class"))
        return original(self, db_kwargs, *args, **kwargs)
    return create_db_instance


def _checked_modify(original):
    def modify_db_instance(self, db_instance_identifier, db_kwargs, *args, **kwargs):
        _check_class(db_kwargs.get("db_instance_class"))
        return original(self, db_instance_identifier, db_kwargs, *args, **kwargs)
    return modify_db_instance


def instance_class_memory() -> None:
    """Unknown DB instance classes are rejected before anything is created or changed."""
    replace(RDSBackend, "create_db_instance", _checked_create(RDSBackend.create_db_instance))
    replace(RDSBackend, "modify_db_instance", _checked_modify(RDSBackend.modify_db_instance))
